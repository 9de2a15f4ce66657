//! A connection's limits under hostile or careless clients, over `tokio::io::duplex`:
//! pipelined requests run concurrently and are answered in order; a panicking handler ends only
//! its connection and frees its slot; idle connections and stalled frames are closed; the
//! broker-wide byte budget keeps a second large frame out until the first is answered.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use broker::protocol::connection::{serve_connection, ConnectionConfig, Refusal, RequestHandler};
use broker::protocol::frame::{encode_frame, FrameReader};
use broker::protocol::limits::{ConnectionSlots, RequestBytesBudget};
use broker::protocol::request::Request;
use broker::protocol::versions::{ApiVersionRange, VersionTable};
use broker::protocol::ProtocolError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;

/// Bounds every wait of a test, so a broken limit fails instead of hanging.
const TEST_WAIT: Duration = Duration::from_secs(10);

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

fn metadata_request(correlation_id: i32, topic_name_bytes: usize) -> Vec<u8> {
    let topics = (topic_name_bytes > 0).then(|| {
        vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(
                "t".repeat(topic_name_bytes),
            )))),
        ]
    });
    let body = MetadataRequest::default().with_topics(topics);
    request_bytes(ApiKey::Metadata, 9, correlation_id, &body)
}

fn heartbeat_request(correlation_id: i32) -> Vec<u8> {
    request_bytes(
        ApiKey::Heartbeat,
        4,
        correlation_id,
        &HeartbeatRequest::default(),
    )
}

fn correlation_id(api_key: ApiKey, version: i16, mut payload: Bytes) -> i32 {
    let header =
        ResponseHeader::decode(&mut payload, api_key.response_header_version(version)).unwrap();
    header.correlation_id
}

fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        encode_frame(frame, &mut out);
    }
    out.to_vec()
}

fn table() -> &'static VersionTable {
    static TABLE: LazyLock<VersionTable> = LazyLock::new(table_new);
    &TABLE
}

fn table_new() -> VersionTable {
    let range = |api_key, version_min, version_max| ApiVersionRange {
        api_key,
        version_min,
        version_max,
    };
    VersionTable::new(&[
        range(ApiKey::ApiVersions, 0, 3),
        range(ApiKey::Metadata, 1, 12),
        range(ApiKey::Heartbeat, 0, 4),
        range(ApiKey::Produce, 3, 9),
    ])
}

fn config() -> &'static ConnectionConfig {
    static CONFIG: LazyLock<ConnectionConfig> = LazyLock::new(config_new);
    &CONFIG
}

fn config_new() -> ConnectionConfig {
    ConnectionConfig {
        frame_bytes_max: 4096,
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        frame_read_timeout: Duration::from_secs(60),
        in_flight_max: 5,
    }
}

/// Heartbeat waits until a Metadata handler has started (so it finishes only if both run at
/// once); Metadata with topics waits for `gate`; Produce answers; each counts what it sees.
#[derive(Default)]
struct GatedHandler {
    /// Signalled by every Metadata handler when it starts.
    metadata_started: Notify,
    /// Released by the test to let a Metadata request with topics finish.
    gate: Notify,
    /// Handlers running now, and the most seen at once.
    running: AtomicUsize,
    running_max: AtomicUsize,
    /// Handlers started so far.
    started: AtomicUsize,
    /// Produce handlers running now, and the most seen at once.
    producing: AtomicUsize,
    producing_max: AtomicUsize,
}

impl RequestHandler for GatedHandler {
    async fn handle(&self, request: Request) -> Result<ResponseKind, Refusal> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.running_max.fetch_max(running, Ordering::SeqCst);
        let response = match request.body {
            RequestKind::Heartbeat(_) => {
                self.metadata_started.notified().await;
                ResponseKind::Heartbeat(HeartbeatResponse::default())
            }
            RequestKind::Metadata(metadata) => {
                self.metadata_started.notify_one();
                if metadata.topics.is_some_and(|topics| !topics.is_empty()) {
                    self.gate.notified().await;
                }
                ResponseKind::Metadata(MetadataResponse::default())
            }
            RequestKind::Produce(_) => {
                let producing = self.producing.fetch_add(1, Ordering::SeqCst) + 1;
                self.producing_max.fetch_max(producing, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.producing.fetch_sub(1, Ordering::SeqCst);
                ResponseKind::Produce(ProduceResponse::default())
            }
            _ => return Err(Refusal::NotImplemented),
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(response)
    }
}

/// Serves `frames` (written at once, then the write side closed) on one connection; the
/// connection's result and every response frame it wrote.
async fn serve_frames<H: RequestHandler>(
    handler: &H,
    budget: &RequestBytesBudget,
    frames: &[u8],
) -> (Result<(), ProtocolError>, Vec<Bytes>) {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    tokio::join!(
        serve_connection(server, table(), handler, config(), budget),
        async {
            client.write_all(frames).await.unwrap();
            client.shutdown().await.unwrap();
            read_all(&mut client).await
        }
    )
}

/// Reads response frames until the server closes the stream.
async fn read_all(client: &mut DuplexStream) -> Vec<Bytes> {
    let mut reader = FrameReader::new(1 << 20);
    let mut responses = Vec::new();
    while let Ok(Some(frame)) = reader.read_frame(client).await {
        responses.push(frame);
    }
    responses
}

#[tokio::test]
async fn a_slow_request_and_a_fast_one_run_at_once_and_are_answered_in_order() {
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let frames = framed(&[heartbeat_request(1), metadata_request(2, 0)]);
    let (result, responses) = tokio::join!(
        serve_connection(server, table(), &handler, config(), &budget),
        async {
            client.write_all(&frames).await.unwrap();
            client.shutdown().await.unwrap();
            read_all(&mut client).await
        }
    );
    // Served one at a time, Heartbeat would wait for a Metadata that never starts: a timeout.
    result.unwrap();
    assert_eq!(handler.running_max.load(Ordering::SeqCst), 2);
    let ids: Vec<i32> = vec![
        correlation_id(ApiKey::Heartbeat, 4, responses[0].clone()),
        correlation_id(ApiKey::Metadata, 9, responses[1].clone()),
    ];
    assert_eq!((ids, responses.len()), (vec![1, 2], 2));
    assert_eq!(budget.bytes_held(), 0, "every request's bytes went back");
}

#[tokio::test]
async fn acks_0_produce_gets_no_response_between_pipelined_answers() {
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let produce = request_bytes(
        ApiKey::Produce,
        9,
        2,
        &ProduceRequest::default().with_acks(0),
    );
    let frames = framed(&[metadata_request(1, 0), produce, metadata_request(3, 0)]);
    let (result, responses) = serve_frames(&handler, &budget, &frames).await;
    result.unwrap();
    assert_eq!(handler.started.load(Ordering::SeqCst), 3);
    let ids: Vec<i32> = responses
        .into_iter()
        .map(|r| correlation_id(ApiKey::Metadata, 9, r))
        .collect();
    assert_eq!(ids, vec![1, 3]);
}

/// Panics on every request.
struct PanickingHandler;

impl RequestHandler for PanickingHandler {
    async fn handle(&self, _request: Request) -> Result<ResponseKind, Refusal> {
        panic!("a handler bug reached by client input");
    }
}

#[tokio::test]
async fn a_panicking_handler_ends_only_its_connection_and_frees_its_slot() {
    let slots = ConnectionSlots::new(2);
    let open_at_start = slots.open();
    let budget = RequestBytesBudget::new(1 << 20);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let slot = slots.try_acquire().unwrap();
    let task_budget = budget.clone();
    let task = tokio::spawn(async move {
        let _slot = slot;
        let _ = serve_connection(server, table(), &PanickingHandler, config(), &task_budget).await;
    });
    assert_eq!(slots.open(), open_at_start + 1);
    client
        .write_all(&framed(&[metadata_request(1, 0)]))
        .await
        .unwrap();
    let joined = tokio::time::timeout(TEST_WAIT, task).await.unwrap();
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(slots.open(), open_at_start, "the slot came back");
    assert_eq!(budget.bytes_held(), 0, "the request's bytes came back");
    assert!(
        read_all(&mut client).await.is_empty(),
        "the connection is closed"
    );
    // Another connection is served as before.
    let handler = GatedHandler::default();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (result, responses) = tokio::join!(
        serve_connection(server, table(), &handler, config(), &budget),
        async {
            client
                .write_all(&framed(&[metadata_request(7, 0)]))
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            read_all(&mut client).await
        }
    );
    result.unwrap();
    assert_eq!(correlation_id(ApiKey::Metadata, 9, responses[0].clone()), 7);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_millis(200);
    let config = ConnectionConfig {
        idle_timeout,
        ..config().clone()
    };
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let started = tokio::time::Instant::now();
    let (result, responses) = tokio::join!(
        serve_connection(server, table(), &handler, &config, &budget),
        async {
            // One answered request, then silence without closing.
            client
                .write_all(&framed(&[metadata_request(1, 0)]))
                .await
                .unwrap();
            tokio::time::timeout(TEST_WAIT, read_all(&mut client))
                .await
                .unwrap()
        }
    );
    assert!(matches!(
        result,
        Err(ProtocolError::IdleTimedOut { idle_ms: 200 })
    ));
    assert_eq!(responses.len(), 1, "answered before idling");
    assert!(started.elapsed() >= idle_timeout);
}

#[tokio::test]
async fn activity_moves_the_idle_deadline_on() {
    // One timer serves all of a connection's read deadlines and is left where it is when the
    // deadline moves later: it must then be moved on when it fires, not close the connection.
    let idle_timeout = Duration::from_millis(1_000);
    let gap = Duration::from_millis(300);
    let config = ConnectionConfig {
        idle_timeout,
        ..config().clone()
    };
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let started = tokio::time::Instant::now();
    let (result, responses, ()) = tokio::join!(
        serve_connection(server, table(), &handler, &config, &budget),
        tokio::time::timeout(TEST_WAIT, async {
            let mut reader = FrameReader::new(1 << 20);
            let mut responses = Vec::new();
            while let Ok(Some(frame)) = reader.read_frame(&mut client_read).await {
                responses.push(frame);
            }
            responses
        }),
        async {
            // Three requests `gap` apart (each well inside the idle timeout of the one before,
            // and together past the first deadline), then silence without closing.
            for correlation_id in 1..=3 {
                client_write
                    .write_all(&framed(&[metadata_request(correlation_id, 0)]))
                    .await
                    .unwrap();
                tokio::time::sleep(gap).await;
            }
        }
    );
    assert!(matches!(
        result,
        Err(ProtocolError::IdleTimedOut { idle_ms: 1_000 })
    ));
    assert_eq!(responses.unwrap().len(), 3, "every request answered");
    assert!(started.elapsed() >= 2 * gap + idle_timeout);
}

#[tokio::test]
async fn a_frame_whose_body_never_arrives_is_closed_after_the_read_timeout() {
    let frame_read_timeout = Duration::from_millis(200);
    let config = ConnectionConfig {
        frame_read_timeout,
        ..config().clone()
    };
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let started = tokio::time::Instant::now();
    let (result, ()) = tokio::join!(
        serve_connection(server, table(), &handler, &config, &budget),
        async {
            // A prefix announcing 100 bytes and 10 of them, then nothing, the stream kept open.
            let mut partial = 100i32.to_be_bytes().to_vec();
            partial.extend_from_slice(&[0; 10]);
            client.write_all(&partial).await.unwrap();
            let closed = tokio::time::timeout(TEST_WAIT, read_all(&mut client)).await;
            assert!(closed.unwrap().is_empty());
        }
    );
    assert!(matches!(
        result,
        Err(ProtocolError::FrameReadTimedOut {
            buffered_bytes: 14,
            timeout_ms: 200
        })
    ));
    assert!(started.elapsed() >= frame_read_timeout);
    assert_eq!(
        budget.bytes_held(),
        0,
        "the stalled frame's bytes went back"
    );
}

#[tokio::test]
async fn a_second_large_frame_waits_for_the_budget_the_first_holds() {
    let large = metadata_request(1, 2_000);
    let budget = RequestBytesBudget::new(3_000);
    assert!(large.len() > 1_500, "two of them exceed the budget");
    let handler = Arc::new(GatedHandler::default());
    let serve = |server: DuplexStream| {
        let (handler, budget) = (handler.clone(), budget.clone());
        tokio::spawn(async move {
            serve_connection(server, table(), &*handler, config(), &budget).await
        })
    };
    let (mut first, first_server) = tokio::io::duplex(1 << 16);
    let (mut second, second_server) = tokio::io::duplex(1 << 16);
    let first_task = serve(first_server);
    let second_task = serve(second_server);
    first
        .write_all(&framed(std::slice::from_ref(&large)))
        .await
        .unwrap();
    tokio::time::timeout(TEST_WAIT, handler.metadata_started.notified())
        .await
        .unwrap();
    second
        .write_all(&framed(std::slice::from_ref(&large)))
        .await
        .unwrap();
    // Give the second connection every chance to buffer its frame.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Its bytes are all there to read, so only the budget can keep its handler from starting.
    // (`bytes_held` may count more than the first frame: tokio's semaphore sets permits aside
    // for the waiting second frame as they free, but nothing is allocated until all are.)
    assert_eq!(
        handler.started.load(Ordering::SeqCst),
        1,
        "the second frame waits"
    );
    assert!(budget.bytes_held() <= budget.bytes_total());
    // The first answer returns its bytes; the second frame is read and handled.
    handler.gate.notify_one();
    let mut reader = FrameReader::new(1 << 20);
    let answer = tokio::time::timeout(TEST_WAIT, reader.read_frame(&mut first)).await;
    assert_eq!(
        correlation_id(ApiKey::Metadata, 9, answer.unwrap().unwrap().unwrap()),
        1
    );
    tokio::time::timeout(TEST_WAIT, handler.metadata_started.notified())
        .await
        .unwrap();
    assert_eq!(handler.started.load(Ordering::SeqCst), 2);
    handler.gate.notify_one();
    let mut reader = FrameReader::new(1 << 20);
    let answer = tokio::time::timeout(TEST_WAIT, reader.read_frame(&mut second)).await;
    assert_eq!(
        correlation_id(ApiKey::Metadata, 9, answer.unwrap().unwrap().unwrap()),
        1
    );
    drop((first, second));
    first_task.await.unwrap().unwrap();
    second_task.await.unwrap().unwrap();
    assert_eq!(budget.bytes_held(), 0);
}

#[tokio::test]
async fn a_frame_larger_than_the_whole_budget_closes_the_connection() {
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1_000);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let (result, responses) = tokio::join!(
        serve_connection(server, table(), &handler, config(), &budget),
        async {
            let frames = framed(&[metadata_request(1, 0), metadata_request(2, 1_500)]);
            let _closed_early = client.write_all(&frames).await;
            read_all(&mut client).await
        }
    );
    assert!(matches!(
        result,
        Err(ProtocolError::FrameTooLarge {
            frame_bytes_max: 1_000,
            ..
        })
    ));
    assert_eq!(
        responses.len(),
        1,
        "the request before it is still answered"
    );
}

#[tokio::test]
async fn pipelined_produces_take_turns_while_other_requests_run_beside_them() {
    let handler = GatedHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let produce = |id| {
        request_bytes(
            ApiKey::Produce,
            9,
            id,
            &ProduceRequest::default().with_acks(1),
        )
    };
    let frames = framed(&[produce(1), produce(2), produce(3), metadata_request(4, 0)]);
    let (result, responses) = serve_frames(&handler, &budget, &frames).await;
    result.unwrap();
    // One Produce at a time (so batches append in request order), Metadata beside them.
    assert_eq!(handler.producing_max.load(Ordering::SeqCst), 1);
    assert_eq!(handler.running_max.load(Ordering::SeqCst), 2);
    let ids: Vec<i32> = responses
        .into_iter()
        .zip([
            ApiKey::Produce,
            ApiKey::Produce,
            ApiKey::Produce,
            ApiKey::Metadata,
        ])
        .map(|(response, api_key)| correlation_id(api_key, 9, response))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

/// Produce handlers that "append" (record their correlation id), release their turn, then wait
/// (as a produce waits for replication), counting how many wait at once.
#[derive(Default)]
struct AppendingHandler {
    /// Correlation ids in the order their batches were appended.
    appended: std::sync::Mutex<Vec<i32>>,
    /// Produces waiting now, and the most seen at once.
    waiting: AtomicUsize,
    waiting_max: AtomicUsize,
}

impl RequestHandler for AppendingHandler {
    async fn handle(&self, request: Request) -> Result<ResponseKind, Refusal> {
        let id = request.correlation_id();
        let RequestKind::Produce(_) = request.body else {
            return Err(Refusal::NotImplemented);
        };
        // Later produces sleep less: without turns they would append out of order.
        let append_delay = 30 - 10 * u64::try_from(id).unwrap();
        tokio::time::sleep(Duration::from_millis(append_delay)).await;
        self.appended.lock().unwrap().push(id);
        drop(request.append_turn);
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.waiting_max.fetch_max(waiting, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        Ok(ResponseKind::Produce(ProduceResponse::default()))
    }
}

#[tokio::test]
async fn pipelined_produces_append_in_order_and_wait_for_replication_together() {
    let handler = AppendingHandler::default();
    let budget = RequestBytesBudget::new(1 << 20);
    let produce = |id| {
        request_bytes(
            ApiKey::Produce,
            9,
            id,
            &ProduceRequest::default().with_acks(-1),
        )
    };
    let frames = framed(&[produce(1), produce(2), produce(3)]);
    let (result, responses) = serve_frames(&handler, &budget, &frames).await;
    result.unwrap();
    // Appended in request order although the later ones were quicker to append...
    assert_eq!(*handler.appended.lock().unwrap(), vec![1, 2, 3]);
    // ...and their waits overlapped (one at a time before the append turn existed).
    assert_eq!(handler.waiting_max.load(Ordering::SeqCst), 3);
    let ids: Vec<i32> = responses
        .into_iter()
        .map(|response| correlation_id(ApiKey::Produce, 9, response))
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
}
