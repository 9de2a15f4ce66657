//! One connection end to end over `tokio::io::duplex`: a client built from kafka-protocol's own
//! encoders talks to `serve_connection`, and decodes our answers with kafka-protocol's decoders.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use broker::protocol::connection::{serve_connection, ConnectionConfig, Refusal, RequestHandler};
use broker::protocol::frame::{encode_frame, FrameReader};
use broker::protocol::limits::RequestBytesBudget;
use broker::protocol::request::Request;
use broker::protocol::versions::{ApiVersionRange, VersionTable};
use broker::protocol::ProtocolError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, HeartbeatRequest, HeartbeatResponse,
    ListGroupsRequest, MetadataRequest, MetadataResponse, RequestHeader, RequestKind,
    ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncWriteExt, DuplexStream};

const CLIENT_FRAME_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// Encodes header + body the way a Kafka client does.
fn request_bytes<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rill-test")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.to_vec()
}

/// Splits a response into (correlation id, body bytes) using the response header version.
fn response_parts(api_key: ApiKey, version: i16, mut payload: Bytes) -> (i32, Bytes) {
    let header =
        ResponseHeader::decode(&mut payload, api_key.response_header_version(version)).unwrap();
    (header.correlation_id, payload)
}

/// Sends every frame, half-closes, and collects every response frame until the server closes.
async fn exchange(mut client: DuplexStream, frames: Vec<Vec<u8>>, raw_tail: Vec<u8>) -> Vec<Bytes> {
    let mut out = BytesMut::new();
    for frame in &frames {
        encode_frame(frame, &mut out);
    }
    out.extend_from_slice(&raw_tail);
    // The server may close early on bad input; a failed write is then expected, not a test failure.
    let _ = client.write_all(&out).await;
    let _ = client.shutdown().await;
    let mut reader = FrameReader::new(CLIENT_FRAME_BYTES_MAX);
    let mut responses = Vec::new();
    while let Ok(Some(frame)) = reader.read_frame(&mut client).await {
        responses.push(frame);
    }
    responses
}

/// Serves `frames` (plus raw trailing bytes) against `table` and `handler`.
async fn run<H: RequestHandler>(
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
    frames: Vec<Vec<u8>>,
    raw_tail: Vec<u8>,
) -> (Result<(), ProtocolError>, Vec<Bytes>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let budget = RequestBytesBudget::new(1 << 20);
    tokio::join!(
        serve_connection(server, table, handler, config, &budget),
        exchange(client, frames, raw_tail)
    )
}

/// Answers Metadata with `throttle_time_ms = correlation id` (so order is visible in the body too),
/// sleeps through Heartbeat (to trip the timeout) and refuses everything else.
struct TestHandler;

impl RequestHandler for TestHandler {
    async fn handle(&self, request: Request) -> Result<ResponseKind, Refusal> {
        match request.body {
            RequestKind::Metadata(_) => Ok(ResponseKind::Metadata(
                MetadataResponse::default().with_throttle_time_ms(request.header.correlation_id),
            )),
            RequestKind::Heartbeat(_) => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(ResponseKind::Heartbeat(HeartbeatResponse::default()))
            }
            _ => Err(Refusal::NotImplemented),
        }
    }
}

/// A broker that serves only ApiVersions: every other API is unsupported at every version.
fn api_versions_only() -> VersionTable {
    VersionTable::new(&[ApiVersionRange {
        api_key: ApiKey::ApiVersions,
        version_min: 0,
        version_max: 3,
    }])
}

fn test_table() -> VersionTable {
    VersionTable::new(&[
        ApiVersionRange {
            api_key: ApiKey::ApiVersions,
            version_min: 0,
            version_max: 3,
        },
        ApiVersionRange {
            api_key: ApiKey::Metadata,
            version_min: 1,
            version_max: 12,
        },
        ApiVersionRange {
            api_key: ApiKey::Heartbeat,
            version_min: 0,
            version_max: 4,
        },
        ApiVersionRange {
            api_key: ApiKey::ListGroups,
            version_min: 0,
            version_max: 4,
        },
    ])
}

fn small_config() -> ConnectionConfig {
    ConnectionConfig {
        frame_bytes_max: 1024,
        request_timeout: Duration::from_millis(100),
        ..ConnectionConfig::default()
    }
}

fn api_versions_request(version: i16, correlation_id: i32) -> Vec<u8> {
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rill-test"))
        .with_client_software_version(StrBytes::from_static_str("0.1"));
    let body = if version >= 3 {
        body
    } else {
        ApiVersionsRequest::default()
    };
    request_bytes(ApiKey::ApiVersions, version, correlation_id, &body)
}

fn decode_api_versions(version: i16, payload: Bytes) -> (i32, ApiVersionsResponse) {
    let (correlation_id, mut body) = response_parts(ApiKey::ApiVersions, version, payload);
    let response = ApiVersionsResponse::decode(&mut body, version).unwrap();
    assert!(
        body.is_empty(),
        "trailing bytes after the ApiVersions response"
    );
    (correlation_id, response)
}

#[tokio::test]
async fn api_versions_v0_and_v3_round_trip() {
    let table = api_versions_only();
    for (version, correlation_id) in [(0, 11), (3, 33)] {
        let frames = vec![api_versions_request(version, correlation_id)];
        let (result, responses) =
            run(&table, &TestHandler, &small_config(), frames, Vec::new()).await;
        result.unwrap();
        assert_eq!(responses.len(), 1);
        let (echoed, response) = decode_api_versions(version, responses[0].clone());
        assert_eq!(echoed, correlation_id);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.api_keys.len(), 1);
        let advertised = &response.api_keys[0];
        assert_eq!(
            (
                advertised.api_key,
                advertised.min_version,
                advertised.max_version
            ),
            (18, 0, 3)
        );
    }
}

#[tokio::test]
async fn api_versions_above_our_max_gets_v0_error_35_with_our_ranges() {
    let table = test_table();
    // v4 is valid Kafka (kafka-protocol encodes it) but above our max; the answer is v0 (KIP-511).
    let frames = vec![api_versions_request(4, 7)];
    let (result, responses) = run(&table, &TestHandler, &small_config(), frames, Vec::new()).await;
    result.unwrap();
    let (echoed, response) = decode_api_versions(0, responses[0].clone());
    assert_eq!(echoed, 7);
    assert_eq!(response.error_code, 35);
    assert_eq!(response.api_keys.len(), 4);
}

#[tokio::test]
async fn api_versions_from_the_future_gets_v0_error_35() {
    // A v99 body is unknown to everyone; only the fixed header prefix may be read.
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&5i32.to_be_bytes());
    frame.extend_from_slice(&[0xff; 9]);
    let (result, responses) = run(
        &api_versions_only(),
        &TestHandler,
        &small_config(),
        vec![frame],
        Vec::new(),
    )
    .await;
    result.unwrap();
    let (echoed, response) = decode_api_versions(0, responses[0].clone());
    assert_eq!((echoed, response.error_code), (5, 35));
}

#[tokio::test]
async fn unsupported_version_with_an_error_field_is_answered_with_35() {
    // Heartbeat is not in this table, so every version is unsupported; v0 carries error_code.
    let body = HeartbeatRequest::default();
    let frames = vec![request_bytes(ApiKey::Heartbeat, 0, 21, &body)];
    let (result, responses) = run(
        &api_versions_only(),
        &TestHandler,
        &small_config(),
        frames,
        Vec::new(),
    )
    .await;
    result.unwrap();
    let (echoed, mut body) = response_parts(ApiKey::Heartbeat, 0, responses[0].clone());
    assert_eq!(echoed, 21);
    assert_eq!(
        HeartbeatResponse::decode(&mut body, 0).unwrap().error_code,
        35
    );
}

#[tokio::test]
async fn unsupported_version_without_an_error_field_closes_the_connection() {
    let frames = vec![
        request_bytes(ApiKey::Metadata, 1, 1, &MetadataRequest::default()),
        api_versions_request(0, 2),
    ];
    let (result, responses) = run(
        &api_versions_only(),
        &TestHandler,
        &small_config(),
        frames,
        Vec::new(),
    )
    .await;
    assert!(matches!(
        result,
        Err(ProtocolError::VersionUnsupported {
            api_key: ApiKey::Metadata,
            api_version: 1
        })
    ));
    assert!(responses.is_empty(), "nothing after the close");
}

#[tokio::test]
async fn oversized_frame_closes_the_connection() {
    let config = small_config();
    let frames = vec![api_versions_request(3, 1), vec![0; 1025]];
    let (result, responses) = run(&test_table(), &TestHandler, &config, frames, Vec::new()).await;
    assert!(matches!(
        result,
        Err(ProtocolError::FrameTooLarge {
            length: 1025,
            frame_bytes_max: 1024
        })
    ));
    assert_eq!(
        responses.len(),
        1,
        "the request before the oversized frame is still answered"
    );
}

#[tokio::test]
async fn negative_length_closes_the_connection() {
    let tail = (-5i32).to_be_bytes().to_vec();
    let (result, responses) = run(
        &test_table(),
        &TestHandler,
        &small_config(),
        Vec::new(),
        tail,
    )
    .await;
    assert!(matches!(
        result,
        Err(ProtocolError::FrameLengthNegative { length: -5 })
    ));
    assert!(responses.is_empty());
}

#[tokio::test]
async fn garbage_closes_the_connection() {
    type ErrorCheck = fn(&ProtocolError) -> bool;
    let cases: Vec<(Vec<u8>, ErrorCheck)> = vec![
        // Unknown API key 0x7f7f.
        (vec![0x7f; 40], |e| {
            matches!(e, ProtocolError::ApiKeyUnknown { api_key: 0x7f7f })
        }),
        // Shorter than the fixed header prefix.
        (vec![0, 18, 0], |e| {
            matches!(e, ProtocolError::RequestTooShort { length: 3 })
        }),
        // A supported ApiVersions v3 header followed by a body that ends mid-string.
        (
            {
                let mut frame = api_versions_request(3, 9);
                frame.truncate(frame.len() - 3);
                frame
            },
            |e| {
                matches!(
                    e,
                    ProtocolError::RequestMalformed {
                        api_key: ApiKey::ApiVersions,
                        ..
                    }
                )
            },
        ),
        // Metadata v1 whose topic array claims 65,536 entries but holds none. (A count near
        // i32::MAX aborts the process inside kafka-protocol 0.18's decoder, which pre-allocates
        // the claimed count; see upstream kafka-protocol-rs PRs #152/#161/#200.)
        (
            {
                let mut frame = request_bytes(ApiKey::Metadata, 1, 3, &MetadataRequest::default());
                let topics_count = frame.len() - 4;
                frame[topics_count..].copy_from_slice(&0x0001_0000i32.to_be_bytes());
                frame
            },
            |e| {
                matches!(
                    e,
                    ProtocolError::RequestMalformed {
                        api_key: ApiKey::Metadata,
                        ..
                    }
                )
            },
        ),
    ];
    for (frame, expected) in cases {
        let (result, responses) = run(
            &test_table(),
            &TestHandler,
            &small_config(),
            vec![frame.clone()],
            Vec::new(),
        )
        .await;
        let error = result.unwrap_err();
        assert!(expected(&error), "{frame:?} gave {error:?}");
        assert!(responses.is_empty());
    }
}

#[tokio::test]
async fn truncated_frame_at_eof_is_an_error() {
    let mut tail = 100i32.to_be_bytes().to_vec();
    tail.extend_from_slice(&[0; 10]);
    let frames = vec![api_versions_request(0, 1)];
    let (result, responses) = run(&test_table(), &TestHandler, &small_config(), frames, tail).await;
    assert!(matches!(
        result,
        Err(ProtocolError::FrameTruncated { buffered_bytes: 14 })
    ));
    assert_eq!(responses.len(), 1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let request_count = 200;
    let frames: Vec<Vec<u8>> = (0..request_count)
        .map(|correlation_id| {
            if correlation_id % 3 == 0 {
                api_versions_request(3, correlation_id)
            } else {
                request_bytes(
                    ApiKey::Metadata,
                    9,
                    correlation_id,
                    &MetadataRequest::default(),
                )
            }
        })
        .collect();
    let (result, responses) = run(
        &test_table(),
        &TestHandler,
        &small_config(),
        frames,
        Vec::new(),
    )
    .await;
    result.unwrap();
    assert_eq!(responses.len(), request_count as usize);
    for (correlation_id, payload) in (0..request_count).zip(responses) {
        if correlation_id % 3 == 0 {
            let (echoed, response) = decode_api_versions(3, payload);
            assert_eq!((echoed, response.error_code), (correlation_id, 0));
        } else {
            let (echoed, mut body) = response_parts(ApiKey::Metadata, 9, payload);
            let response = MetadataResponse::decode(&mut body, 9).unwrap();
            assert_eq!(
                (echoed, response.throttle_time_ms),
                (correlation_id, correlation_id)
            );
        }
    }
}

#[tokio::test]
async fn slow_handler_times_out_and_closes() {
    let frames = vec![request_bytes(
        ApiKey::Heartbeat,
        4,
        8,
        &HeartbeatRequest::default(),
    )];
    let (result, responses) = run(
        &test_table(),
        &TestHandler,
        &small_config(),
        frames,
        Vec::new(),
    )
    .await;
    assert!(matches!(
        result,
        Err(ProtocolError::RequestTimedOut {
            api_key: ApiKey::Heartbeat,
            correlation_id: 8,
            timeout_ms: 100
        })
    ));
    assert!(responses.is_empty());
}

#[tokio::test]
async fn refusal_closes_the_connection() {
    let frames = vec![request_bytes(
        ApiKey::ListGroups,
        4,
        2,
        &ListGroupsRequest::default(),
    )];
    let (result, _) = run(
        &test_table(),
        &TestHandler,
        &small_config(),
        frames,
        Vec::new(),
    )
    .await;
    assert!(matches!(
        result,
        Err(ProtocolError::Refused {
            api_key: ApiKey::ListGroups,
            refusal: Refusal::NotImplemented
        })
    ));
}
