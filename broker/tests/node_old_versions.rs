//! Old request versions Kafka 3.x still serves (issue 13 item 6), against a real node over TCP:
//! Metadata v0, ListOffsets v0, OffsetCommit v0 and v1, OffsetFetch v0, DescribeConfigs v0. The
//! versions kafka-protocol no longer encodes are written and read by hand here, in Kafka 3.x's
//! layouts, independently of the broker's translation.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::Connection;

use std::time::Duration;

use broker::node::config::TopicDefaults;
use broker::node::{self};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    GroupId, MetadataRequest, MetadataResponse, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use log_core::BatchBuilder;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// One combined node with min ISR 1, so its offsets topic can be created at once.
async fn start_node() -> (node::NodeHandle, String) {
    node_support::start_node(TopicDefaults {
        min_insync_replicas: 1,
        ..TopicDefaults::default()
    })
    .await
}

fn put_string(out: &mut BytesMut, value: &str) {
    out.put_i16(i16::try_from(value.len()).unwrap());
    out.put_slice(value.as_bytes());
}

fn get_string(body: &mut Bytes) -> Option<String> {
    let length = body.get_i16();
    if length < 0 {
        return None;
    }
    let bytes = body.split_to(usize::try_from(length).unwrap());
    Some(String::from_utf8(bytes.to_vec()).unwrap())
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// ListOffsets v0 for partition 0 of `topic` at `timestamp`: (error code, offsets).
async fn list_offsets_v0(c: &mut Connection, topic: &str, timestamp: i64) -> (i16, Vec<i64>) {
    let mut body = BytesMut::new();
    body.put_i32(-1); // replica id
    body.put_i32(1);
    put_string(&mut body, topic);
    body.put_i32(1);
    body.put_i32(0); // partition
    body.put_i64(timestamp);
    body.put_i32(1); // max_num_offsets
    let mut answer = c.call_raw(ApiKey::ListOffsets, 0, &body).await;
    assert_eq!(answer.get_i32(), 1, "one topic");
    assert_eq!(get_string(&mut answer).unwrap(), topic);
    assert_eq!(answer.get_i32(), 1, "one partition");
    assert_eq!(answer.get_i32(), 0, "partition 0");
    let code = answer.get_i16();
    let count = answer.get_i32();
    let offsets = (0..count).map(|_| answer.get_i64()).collect();
    assert!(!answer.has_remaining(), "nothing after the v0 layout");
    (code, offsets)
}

/// OffsetCommit v0 (or v1, with generation -1 and no member) of `offset` for partition 0 of
/// `topic`: the partition's error code. The answer of v0 and v1 is v2's layout.
async fn commit(c: &mut Connection, version: i16, group: &str, topic: &str, offset: i64) -> i16 {
    let mut body = BytesMut::new();
    put_string(&mut body, group);
    if version == 1 {
        body.put_i32(-1); // generation
        put_string(&mut body, ""); // member id
    }
    body.put_i32(1);
    put_string(&mut body, topic);
    body.put_i32(1);
    body.put_i32(0);
    body.put_i64(offset);
    if version == 1 {
        body.put_i64(-1); // commit timestamp
    }
    put_string(&mut body, "meta");
    let mut answer = c.call_raw(ApiKey::OffsetCommit, version, &body).await;
    let response = OffsetCommitResponse::decode(&mut answer, 2).unwrap();
    assert!(!answer.has_remaining());
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v0 (v1's layout) of partition 0 of `topic`: (error code, offset, metadata).
async fn fetch_offset_v0(c: &mut Connection, group: &str, topic: &str) -> (i16, i64, String) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![0])]));
    let mut encoded = BytesMut::new();
    request.encode(&mut encoded, 1).unwrap();
    let mut answer = c.call_raw(ApiKey::OffsetFetch, 0, &encoded).await;
    let response = OffsetFetchResponse::decode(&mut answer, 1).unwrap();
    assert!(!answer.has_remaining());
    let p = &response.topics[0].partitions[0];
    let metadata = p
        .metadata
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (p.error_code, p.committed_offset, metadata)
}

/// A DescribeConfigs v0 entry: (name, value, read_only, is_default, is_sensitive).
type ConfigV0 = (String, Option<String>, bool, bool, bool);

/// DescribeConfigs v0 of topic `topic`, every config: (error code, entries).
async fn describe_topic_v0(c: &mut Connection, topic: &str) -> (i16, Vec<ConfigV0>) {
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_i8(2); // TOPIC
    put_string(&mut body, topic);
    body.put_i32(-1); // every config
    let mut answer = c.call_raw(ApiKey::DescribeConfigs, 0, &body).await;
    let _throttle = answer.get_i32();
    assert_eq!(answer.get_i32(), 1, "one resource");
    let code = answer.get_i16();
    let _message = get_string(&mut answer);
    assert_eq!(answer.get_i8(), 2);
    assert_eq!(get_string(&mut answer).unwrap(), topic);
    let count = answer.get_i32().max(0);
    let entries = (0..count)
        .map(|_| {
            let name = get_string(&mut answer).unwrap();
            let value = get_string(&mut answer);
            let read_only = answer.get_u8() != 0;
            let is_default = answer.get_u8() != 0;
            let is_sensitive = answer.get_u8() != 0;
            (name, value, read_only, is_default, is_sensitive)
        })
        .collect();
    assert!(!answer.has_remaining(), "nothing after the v0 layout");
    (code, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clients_versions_are_served_in_their_layouts() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;

    // ApiVersions advertises the old versions.
    let mut answer = c
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    let versions = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    let min_of = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.min_version)
    };
    for key in [
        ApiKey::Metadata,
        ApiKey::ListOffsets,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeConfigs,
        ApiKey::DeleteRecords,
    ] {
        assert_eq!(min_of(key), Some(0), "{key:?}");
    }

    // Wait until the node lists itself, then create a topic with one config of its own.
    for _ in 0..200 {
        let mut body = c
            .call(
                ApiKey::Metadata,
                1,
                &MetadataRequest::default().with_topics(None),
            )
            .await;
        let metadata = MetadataResponse::decode(&mut body, 1).unwrap();
        if metadata.brokers.len() == 1 && metadata.controller_id.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retention = CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("retention.ms"))
        .with_value(Some(StrBytes::from_static_str("3600000")));
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("old"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![retention])])
        .with_timeout_ms(10_000);
    let mut body = c.call(ApiKey::CreateTopics, 7, &create).await;
    let created = CreateTopicsResponse::decode(&mut body, 7).unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    // Metadata v0: an empty topic list is every topic.
    let mut listed = Vec::new();
    for _ in 0..200 {
        let mut body = c
            .call(
                ApiKey::Metadata,
                0,
                &MetadataRequest::default().with_topics(Some(vec![])),
            )
            .await;
        let metadata = MetadataResponse::decode(&mut body, 0).unwrap();
        assert!(!body.has_remaining());
        assert_eq!(metadata.brokers.len(), 1);
        listed = metadata
            .topics
            .iter()
            .filter(|t| t.partitions.first().is_some_and(|p| p.leader_id.0 == 1))
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        if listed.contains(&"old".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed.contains(&"old".to_string()), "{listed:?}");

    // Five records, then ListOffsets v0: earliest and latest as one-element lists.
    let mut builder = BatchBuilder::new();
    for i in 0..5 {
        builder.push(None, Some(b"v"), 1_000 + i, &[]);
    }
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("old"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(builder.build())))])]);
    // Metadata shows the leader as soon as the broker's image has it; the partition may take
    // its leadership a moment later and answer NOT_LEADER_OR_FOLLOWER (6) or
    // LEADER_NOT_AVAILABLE (5) until then, which a client retries (Kafka has the same window).
    let mut code = -1;
    for _ in 0..200 {
        let mut body = c.call(ApiKey::Produce, 3, &produce).await;
        let produced = ProduceResponse::decode(&mut body, 3).unwrap();
        code = produced.responses[0].partition_responses[0].error_code;
        if code != 5 && code != 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, 0, "Produce v3");
    assert_eq!(list_offsets_v0(&mut c, "old", -2).await, (0, vec![0]));
    assert_eq!(list_offsets_v0(&mut c, "old", -1).await, (0, vec![5]));
    assert_eq!(
        list_offsets_v0(&mut c, "nope", -1).await,
        (UNKNOWN_TOPIC_OR_PARTITION, vec![])
    );

    // OffsetCommit v0 and v1, read back with OffsetFetch v0. The first commit may find the
    // offsets topic still being created and loaded (a retriable code).
    c.find_coordinator("sarama").await;
    let mut code = -1;
    for _ in 0..200 {
        code = commit(&mut c, 0, "sarama", "old", 3).await;
        if code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, 0, "OffsetCommit v0");
    assert_eq!(
        fetch_offset_v0(&mut c, "sarama", "old").await,
        (0, 3, "meta".to_string())
    );
    assert_eq!(commit(&mut c, 1, "sarama", "old", 4).await, 0, "v1");
    assert_eq!(fetch_offset_v0(&mut c, "sarama", "old").await.1, 4);
    assert_eq!(
        commit(&mut c, 0, "sarama", "nope", 1).await,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // DescribeConfigs v0: the topic's own value is not a default, the others are.
    let (code, entries) = describe_topic_v0(&mut c, "old").await;
    assert_eq!(code, 0);
    let entry = |key: &str| {
        entries
            .iter()
            .find(|e| e.0 == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} described: {entries:?}"))
    };
    assert_eq!(
        entry("retention.ms"),
        (
            "retention.ms".into(),
            Some("3600000".into()),
            false,
            false,
            false
        )
    );
    assert_eq!(
        entry("cleanup.policy"),
        (
            "cleanup.policy".into(),
            Some("delete".into()),
            false,
            true,
            false
        )
    );
    let (code, _) = describe_topic_v0(&mut c, "nope").await;
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    node.shutdown();
}
