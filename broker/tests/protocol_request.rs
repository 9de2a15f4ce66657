//! Request decoding and response encoding against kafka-protocol's own encoders and decoders.
#![allow(clippy::unwrap_used)]

use broker::protocol::legacy;
use broker::protocol::request::{
    decode_request, encode_response, encode_version_unsupported, Decoded,
};
use broker::protocol::versions::VersionTable;
use broker::protocol::ProtocolError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

/// A default body of every planned API, as a client would send it.
fn default_request(api_key: ApiKey) -> RequestKind {
    match api_key {
        ApiKey::Produce => ProduceRequest::default().into(),
        ApiKey::Fetch => FetchRequest::default().into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default().into(),
        ApiKey::Metadata => MetadataRequest::default().into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default().into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default().into(),
        ApiKey::FindCoordinator => FindCoordinatorRequest::default().into(),
        ApiKey::JoinGroup => JoinGroupRequest::default().into(),
        ApiKey::Heartbeat => HeartbeatRequest::default().into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default().into(),
        ApiKey::SyncGroup => SyncGroupRequest::default().into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default().into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::ApiVersions => ApiVersionsRequest::default().into(),
        ApiKey::CreateTopics => CreateTopicsRequest::default().into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default().into(),
        ApiKey::InitProducerId => InitProducerIdRequest::default().into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default().into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default().into(),
        ApiKey::SaslHandshake => SaslHandshakeRequest::default().into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default().into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default().into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default().into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default().into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default().into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default().into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default().into(),
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default().into(),
        ApiKey::ElectLeaders => ElectLeadersRequest::default().into(),
        ApiKey::DescribeProducers => DescribeProducersRequest::default().into(),
        ApiKey::CreateAcls => CreateAclsRequest::default().into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default().into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default().into(),
        ApiKey::DescribeUserScramCredentials => {
            DescribeUserScramCredentialsRequest::default().into()
        }
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default().into(),
        other => panic!("{other:?} is not planned"),
    }
}

fn frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("conformance")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

/// Every planned API at every planned version decodes to exactly what the client encoded.
#[test]
fn every_planned_api_and_version_round_trips() {
    let table = VersionTable::planned();
    let mut checked = 0;
    for entry in table.entries() {
        for version in entry.version_min..=entry.version_max {
            if legacy::handled_as(entry.api_key, version).is_some() {
                // kafka-protocol cannot encode it: legacy_versions_decode_into_the_handled_version.
                continue;
            }
            let body = default_request(entry.api_key);
            let correlation_id = i32::from(version) * 1000 + entry.api_key as i32;
            let decoded =
                decode_request(frame(entry.api_key, version, correlation_id, &body), &table);
            let Decoded::Request(request) = decoded.unwrap() else {
                panic!("{:?} v{version} reported unsupported", entry.api_key);
            };
            assert_eq!(request.api_key, entry.api_key);
            assert_eq!(request.api_version(), version);
            assert_eq!(request.correlation_id(), correlation_id);
            assert_eq!(request.header.client_id.as_deref(), Some("conformance"));
            assert_eq!(request.body, body, "{:?} v{version}", entry.api_key);
            checked += 1;
        }
    }
    // 116, SaslHandshake v0..=1, SaslAuthenticate v0..=2, Metadata v0, AlterConfigs v0..=2,
    // CreatePartitions v0..=3, IncrementalAlterConfigs v0..=1, DeleteRecords v0..=2,
    // DescribeCluster v0..=1, DeleteGroups v0..=2, OffsetDelete v0, DescribeLogDirs v1..=4,
    // ElectLeaders v0..=2, DescribeProducers v0; SaslHandshake v0 too; CreateAcls,
    // DescribeAcls and DeleteAcls v1..=3, Describe/AlterUserScramCredentials v0; ListGroups v5.
    assert_eq!(
        checked,
        120 + 2 + 3 + 4 + 2 + 3 + 2 + 3 + 1 + 4 + 3 + 1 + 9 + 2 + 1
    );
}

/// The versions kafka-protocol no longer encodes, written by hand in Kafka 3.x's layouts, decode
/// into the struct of the version their handler sees; a truncated body is a malformed request
/// (never a panic), and answers are written back in the old layout.
#[test]
fn legacy_versions_decode_into_the_handled_version() {
    use bytes::BufMut;
    let table = VersionTable::planned();
    let frame_raw = |api_key: ApiKey, version: i16, body: &[u8]| {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut out = BytesMut::new();
        header
            .encode(&mut out, api_key.request_header_version(version))
            .unwrap();
        out.put_slice(body);
        out.freeze()
    };
    // OffsetCommit v1: group, generation, member, [topic [partition, offset, timestamp, metadata]].
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_slice(b"g");
    body.put_i32(4);
    body.put_i16(1);
    body.put_slice(b"m");
    body.put_i32(1);
    body.put_i16(1);
    body.put_slice(b"t");
    body.put_i32(1);
    body.put_i32(2);
    body.put_i64(42);
    body.put_i64(-1);
    body.put_i16(-1);
    let Decoded::Request(request) =
        decode_request(frame_raw(ApiKey::OffsetCommit, 1, &body), &table).unwrap()
    else {
        panic!("OffsetCommit v1 is served");
    };
    assert_eq!((request.api_version(), request.wire_version), (2, 1));
    let RequestKind::OffsetCommit(commit) = &request.body else {
        panic!("an OffsetCommit");
    };
    assert_eq!(commit.group_id.0.as_str(), "g");
    assert_eq!(commit.generation_id_or_member_epoch, 4);
    assert_eq!(commit.member_id.as_str(), "m");
    let partition = &commit.topics[0].partitions[0];
    assert_eq!(
        (partition.partition_index, partition.committed_offset),
        (2, 42)
    );
    assert_eq!(partition.committed_metadata, None);
    for cut in 0..body.len() {
        let decoded = decode_request(frame_raw(ApiKey::OffsetCommit, 1, &body[..cut]), &table);
        assert!(
            matches!(decoded, Err(ProtocolError::RequestMalformed { .. })),
            "cut at {cut}: {decoded:?}"
        );
    }
    // A forged count is an error, not an allocation.
    let mut forged = BytesMut::new();
    forged.put_i32(-1);
    forged.put_i32(i32::MAX);
    let decoded = decode_request(frame_raw(ApiKey::ListOffsets, 0, &forged), &table);
    assert!(matches!(
        decoded,
        Err(ProtocolError::RequestMalformed { .. })
    ));

    // ListOffsets v0's answer: [topic [partition, error, [offset]]].
    let response = ListOffsetsResponse::default().with_topics(vec![
        list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![
                list_offsets_response::ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_offset(9)
                    .with_timestamp(-1),
            ]),
    ]);
    let encoded = encode_response(ApiKey::ListOffsets, 0, 7, &response.into()).unwrap();
    let expected: &[u8] = &[
        0, 0, 0, 7, // correlation id
        0, 0, 0, 1, 0, 1, b't', // one topic "t"
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, // one partition: index 0, no error
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, // offsets [9]
    ];
    assert_eq!(&encoded[..], expected);
}

#[test]
fn versions_outside_the_table_are_reported_not_decoded() {
    // Metadata v13 exists in Kafka and kafka-protocol, but rill serves up to v12.
    let table = VersionTable::implemented();
    assert!(!table.supports(ApiKey::Metadata, 13));
    let body = default_request(ApiKey::Metadata);
    let decoded = decode_request(frame(ApiKey::Metadata, 13, 77, &body), &table).unwrap();
    assert_eq!(
        decoded,
        Decoded::VersionUnsupported {
            api_key: ApiKey::Metadata,
            api_version: 13,
            correlation_id: 77
        }
    );
}

#[test]
fn unknown_api_key_is_an_error() {
    let payload = Bytes::from_static(&[0x03, 0xe8, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    let error = decode_request(payload, &VersionTable::planned()).unwrap_err();
    assert!(matches!(
        error,
        ProtocolError::ApiKeyUnknown { api_key: 1000 }
    ));
}

#[test]
fn api_versions_response_header_is_v0_even_when_flexible() {
    let body = ResponseKind::ApiVersions(VersionTable::implemented().api_versions_response(0));
    let encoded = encode_response(ApiKey::ApiVersions, 3, 0x0102_0304, &body).unwrap();
    let mut body_only = BytesMut::new();
    body.encode(&mut body_only, 3).unwrap();
    // Header v0 is the bare correlation id: no tagged-field byte before the body.
    assert_eq!(&encoded[..4], &[1, 2, 3, 4]);
    assert_eq!(&encoded[4..], &body_only[..]);
}

#[test]
fn flexible_responses_use_header_v1() {
    let body = ResponseKind::Metadata(MetadataResponse::default());
    let encoded = encode_response(ApiKey::Metadata, 9, 5, &body).unwrap();
    let mut body_only = BytesMut::new();
    body.encode(&mut body_only, 9).unwrap();
    // Header v1 adds an empty tagged-field section (one zero byte).
    assert_eq!(&encoded[..5], &[0, 0, 0, 5, 0]);
    assert_eq!(&encoded[5..], &body_only[..]);
}

#[test]
fn unsupported_version_answers_depend_on_an_error_field() {
    let table = VersionTable::implemented();
    // FindCoordinator v0..3 carry a top-level error_code; v4 moved it into the per-key list.
    assert!(encode_version_unsupported(ApiKey::FindCoordinator, 3, 1, &table).is_ok());
    assert!(matches!(
        encode_version_unsupported(ApiKey::FindCoordinator, 4, 1, &table),
        Err(ProtocolError::VersionUnsupported {
            api_key: ApiKey::FindCoordinator,
            api_version: 4
        })
    ));
    // Produce has no top-level error code at all; a version kafka-protocol cannot encode neither.
    assert!(encode_version_unsupported(ApiKey::Produce, 9, 1, &table).is_err());
    assert!(encode_version_unsupported(ApiKey::Heartbeat, 99, 1, &table).is_err());
}

/// A Metadata request claiming 2^31 - 1 topics in a few bytes is a decode error, not an
/// allocation of gigabytes (kafka-protocol 0.18 as published aborted the process here; the
/// vendored copy caps preallocation, see vendor/kafka-protocol/RILL-PATCH.md).
#[test]
fn forged_array_count_is_a_decode_error() {
    let table = VersionTable::planned();
    for (version, count) in [
        (1_i16, i32::MAX.to_be_bytes().to_vec()),
        (9, vec![0xff, 0xff, 0xff, 0xff, 0x07]),
    ] {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("forger")));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, ApiKey::Metadata.request_header_version(version))
            .unwrap();
        // Topics array: a huge count (i32 for v1, unsigned varint for flexible v9) and no elements.
        out.extend_from_slice(&count);
        match decode_request(out.freeze(), &table) {
            Err(ProtocolError::RequestMalformed { api_key, .. }) => {
                assert_eq!(api_key, ApiKey::Metadata)
            }
            other => panic!("v{version}: expected a malformed-request error, got {other:?}"),
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever bytes a client sends at a translated version, the hand-written decoder answers
    /// a request or a malformed-request error of its own, never a panic (which the decode's
    /// catch_unwind would report as "decoder panicked").
    #[test]
    fn legacy_decoders_never_panic(
        which in 0..legacy::LEGACY_VERSIONS.len(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
    ) {
        use bytes::BufMut;
        let (api_key, version, handled) = legacy::LEGACY_VERSIONS[which];
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1);
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        frame.put_slice(&body);
        match decode_request(frame.freeze(), &VersionTable::planned()) {
            Ok(Decoded::Request(request)) => {
                proptest::prop_assert_eq!(request.api_version(), handled);
                proptest::prop_assert_eq!(request.wire_version, version);
            }
            Ok(Decoded::VersionUnsupported { .. }) => {
                proptest::prop_assert!(false, "{:?} v{} is served", api_key, version);
            }
            Err(ProtocolError::RequestMalformed { reason, .. }) => {
                proptest::prop_assert!(!reason.contains("panicked"), "{}", reason);
            }
            Err(other) => proptest::prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
