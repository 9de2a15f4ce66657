//! Connection, producer, admin and consumer against scripted fake brokers.
#![allow(clippy::unwrap_used)]

mod fake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use client::connection::Connection;
use client::consumer::{Consumer, ConsumerConfig};
use client::error::code;
use client::producer::{Producer, ProducerConfig};
use client::{ClientConfig, ClientError};
use fake::{
    api_versions_response, broker_versions, metadata_response, produce_batch_epoch,
    produce_batch_info, FakeServer, Reply, Seen,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, InitProducerIdResponse, ProduceResponse, RequestKind, ResponseKind,
};
use kafka_protocol::messages::{ListOffsetsResponse, MetadataRequest, ProducerId};
use kafka_protocol::protocol::StrBytes;

const TIMEOUT_MS: u64 = 200;

fn client_config(addr: &str) -> ClientConfig {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.request_timeout_ms = TIMEOUT_MS;
    config.retry_backoff_ms = 5;
    config
}

fn produce_answer(topic: &str, partition: i32, error_code: i16, base_offset: i64) -> Reply {
    let partition = PartitionProduceResponse::default()
        .with_index(partition)
        .with_error_code(error_code)
        .with_base_offset(base_offset);
    let topic = TopicProduceResponse::default()
        .with_name(StrBytes::from_string(topic.to_string()).into())
        .with_partition_responses(vec![partition]);
    Reply::Respond(ResponseKind::Produce(
        ProduceResponse::default().with_responses(vec![topic]),
    ))
}

/// A producer on `server` with `config`, and the error its first send (to t-0) ends with.
async fn first_send_refused(
    server: &FakeServer,
    config: &ProducerConfig,
) -> (Producer, ClientError) {
    let producer = Producer::new(client_config(&server.addr), config.clone())
        .await
        .unwrap();
    let error = producer
        .send("t", Some(0), None, Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    (producer, error)
}

fn init_pid_answer(producer_id: i64) -> Reply {
    Reply::Respond(ResponseKind::InitProducerId(
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
    ))
}

/// A single broker (id 1) leading every partition of `topic`; `produce` scripts Produce.
async fn single_broker(
    topic: &'static str,
    partitions: usize,
    produce: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> FakeServer {
    let mut server = FakeServer::bind().await;
    let port = server.port;
    let produce_count = Arc::new(AtomicUsize::new(0));
    server.start(Arc::new(move |seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => Reply::Respond(api_versions_response(&broker_versions())),
        ApiKey::Metadata => {
            Reply::Respond(metadata_response(&[(1, port)], topic, &vec![1; partitions]))
        }
        ApiKey::InitProducerId => init_pid_answer(1000),
        ApiKey::Produce => produce(seen, produce_count.fetch_add(1, Ordering::SeqCst)),
        _ => Reply::Silent,
    }));
    server
}

#[tokio::test]
async fn negotiates_highest_common_versions() {
    let mut server = FakeServer::bind().await;
    server.start(Arc::new(|seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => Reply::Respond(api_versions_response(&[
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::Produce, 0, 7),
            (ApiKey::Fetch, 4, 5),
            (ApiKey::FindCoordinator, 4, 6),
        ])),
        _ => Reply::Silent,
    }));
    let connection = Connection::connect(&server.addr, "test", TIMEOUT_MS)
        .await
        .unwrap();
    assert_eq!(connection.version(ApiKey::Produce), Some(7));
    assert_eq!(connection.version(ApiKey::Fetch), Some(5));
    assert_eq!(
        connection.version(ApiKey::FindCoordinator),
        None,
        "disjoint ranges"
    );
    assert_eq!(connection.version(ApiKey::Metadata), None, "not advertised");
    let mut connection = connection;
    let request = RequestKind::Metadata(MetadataRequest::default());
    let error = connection.request(request).await.unwrap_err();
    assert_eq!(error, ClientError::UnsupportedVersion { api: "Metadata" });
    assert!(!error.is_indeterminate(), "never sent");
    assert!(!connection.is_closed());
    let first = &server.seen(ApiKey::ApiVersions)[0];
    assert_eq!(first.version, 3, "ApiVersions v3 first");
}

#[tokio::test]
async fn api_versions_falls_back_to_the_v0_body() {
    let mut server = FakeServer::bind().await;
    server.start(Arc::new(|seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => {
            let ResponseKind::ApiVersions(body) =
                api_versions_response(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 9)])
            else {
                unreachable!()
            };
            Reply::RespondAt(
                0,
                ResponseKind::ApiVersions(body.with_error_code(code::UNSUPPORTED_VERSION)),
            )
        }
        _ => Reply::Silent,
    }));
    let connection = Connection::connect(&server.addr, "test", TIMEOUT_MS)
        .await
        .unwrap();
    assert_eq!(connection.version(ApiKey::Metadata), Some(9));
    assert_eq!(connection.version(ApiKey::ApiVersions), Some(2));
}

#[tokio::test]
async fn correlation_ids_increase_and_a_mismatch_closes_the_connection() {
    let mut server = FakeServer::bind().await;
    let port = server.port;
    let calls = Arc::new(AtomicUsize::new(0));
    server.start(Arc::new(move |seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => Reply::Respond(api_versions_response(&broker_versions())),
        ApiKey::Metadata => {
            let answer = metadata_response(&[(1, port)], "t", &[1]);
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Respond(answer)
            } else {
                Reply::WrongCorrelation(answer)
            }
        }
        _ => Reply::Silent,
    }));
    let mut connection = Connection::connect(&server.addr, "test", TIMEOUT_MS)
        .await
        .unwrap();
    let request = || {
        RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(None)
                .with_allow_auto_topic_creation(false),
        )
    };
    let ok = connection.request(request()).await.unwrap();
    assert!(matches!(ok, ResponseKind::Metadata(_)));
    let error = connection.request(request()).await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error}");
    assert!(error.is_indeterminate());
    assert!(connection.is_closed());
    assert_eq!(
        connection.request(request()).await.unwrap_err(),
        ClientError::Closed
    );
    let ids: Vec<i32> = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.header.correlation_id)
        .collect();
    assert_eq!(ids, vec![0, 1, 2], "one id per request, in order");
}

#[tokio::test]
async fn a_silent_server_times_out_indeterminately() {
    let mut server = FakeServer::bind().await;
    server.start(Arc::new(|seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => Reply::Respond(api_versions_response(&broker_versions())),
        _ => Reply::Silent,
    }));
    let mut connection = Connection::connect(&server.addr, "test", TIMEOUT_MS)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let request = RequestKind::Metadata(
        MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false),
    );
    let error = connection.request(request).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        error,
        ClientError::Timeout {
            timeout_ms: TIMEOUT_MS
        }
    );
    assert!(error.is_indeterminate());
    assert!(
        waited >= Duration::from_millis(TIMEOUT_MS) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        connection.is_closed(),
        "a late reply must not be read as the next one's"
    );
}

#[tokio::test]
async fn connect_failure_is_definite() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = Connection::connect(&addr, "test", TIMEOUT_MS)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    assert!(!error.is_indeterminate());
}

#[tokio::test]
async fn retries_not_leader_after_a_metadata_refresh() {
    let mut old_leader = FakeServer::bind().await;
    let mut new_leader = FakeServer::bind().await;
    let (old_port, new_port) = (old_leader.port, new_leader.port);
    let metadata_calls = Arc::new(AtomicUsize::new(0));
    let script = move |produce_reply: fn() -> Reply, metadata_calls: Arc<AtomicUsize>| {
        Arc::new(move |seen: &Seen| match seen.api_key {
            ApiKey::ApiVersions => Reply::Respond(api_versions_response(&broker_versions())),
            ApiKey::Metadata => {
                // The first answer names the old leader; later ones the new leader.
                let leader = if metadata_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    1
                } else {
                    2
                };
                Reply::Respond(metadata_response(
                    &[(1, old_port), (2, new_port)],
                    "t",
                    &[leader],
                ))
            }
            ApiKey::Produce => produce_reply(),
            _ => Reply::Silent,
        })
    };
    old_leader.start(script(
        || produce_answer("t", 0, code::NOT_LEADER_OR_FOLLOWER, -1),
        metadata_calls.clone(),
    ));
    new_leader.start(script(
        || produce_answer("t", 0, 0, 42),
        metadata_calls.clone(),
    ));
    let config = ProducerConfig {
        idempotence: false,
        acks: 1,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&old_leader.addr), config)
        .await
        .unwrap();
    let sent = producer
        .send("t", None, None, Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!((sent.partition, sent.offset), (0, 42));
    assert_eq!(old_leader.seen(ApiKey::Produce).len(), 1);
    assert_eq!(new_leader.seen(ApiKey::Produce).len(), 1);
    assert!(
        metadata_calls.load(Ordering::SeqCst) >= 2,
        "metadata refreshed after NOT_LEADER"
    );
}

#[tokio::test]
async fn idempotent_retry_reuses_the_sequence() {
    // First attempt: no answer (timeout, may have been applied). Second: acknowledged.
    let server = single_broker("t", 1, |_, n| {
        if n == 0 {
            Reply::Silent
        } else {
            produce_answer("t", 0, 0, 10)
        }
    })
    .await;
    let producer = Producer::new(client_config(&server.addr), ProducerConfig::default())
        .await
        .unwrap();
    assert_eq!(producer.identity().unwrap().producer_id, 1000);
    let sent = producer
        .send("t", Some(0), None, Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(sent.offset, 10);
    let sent = producer
        .send("t", Some(0), None, Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(sent.offset, 10, "scripted answer");
    let produces: Vec<_> = server
        .seen(ApiKey::Produce)
        .iter()
        .map(|s| produce_batch_info(&s.body))
        .collect();
    assert_eq!(produces.len(), 3);
    assert_eq!(produces[0], (1000, 0, 1, -1));
    assert_eq!(
        produces[1], produces[0],
        "the retry resends the same batch and sequence"
    );
    assert_eq!(produces[2], (1000, 1, 1, -1), "the next batch follows");
}

#[tokio::test]
async fn idempotence_requires_acks_all() {
    let config = ProducerConfig {
        acks: 1,
        idempotence: true,
        ..ProducerConfig::default()
    };
    let error = Producer::new(ClientConfig::new(vec!["127.0.0.1:1".into()]), config)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Config(_)));
}

#[tokio::test]
async fn acks_zero_returns_offset_minus_one_without_waiting() {
    let server = single_broker("t", 1, |_, _| Reply::Silent).await;
    let config = ProducerConfig {
        acks: 0,
        idempotence: false,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let sent = producer
        .send("t", None, None, Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!(sent.offset, -1);
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS),
        "no reply awaited"
    );
    // The request was flushed; give the fake a moment to read it.
    for _ in 0..100 {
        if !server.seen(ApiKey::Produce).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let produces = server.seen(ApiKey::Produce);
    assert_eq!(produces.len(), 1);
    assert_eq!(produce_batch_info(&produces[0].body).3, 0);
}

#[tokio::test]
async fn outcomes_are_classified_definite_or_indeterminate() {
    let config = ProducerConfig {
        retries_max: 1,
        ..ProducerConfig::default()
    };
    // NOT_ENOUGH_REPLICAS twice: refused before appending, definite.
    let server = single_broker("t", 1, |_, _| {
        produce_answer("t", 0, code::NOT_ENOUGH_REPLICAS, -1)
    })
    .await;
    let (_, error) = first_send_refused(&server, &config).await;
    assert_eq!(error.kafka_code(), Some(code::NOT_ENOUGH_REPLICAS));
    assert!(!error.is_indeterminate(), "{error}");
    assert_eq!(server.seen(ApiKey::Produce).len(), 2, "retried once");
    // A timeout, then NOT_ENOUGH_REPLICAS: the first attempt may have landed.
    let server = single_broker("t", 1, |_, n| {
        if n == 0 {
            Reply::Silent
        } else {
            produce_answer("t", 0, code::NOT_ENOUGH_REPLICAS, -1)
        }
    })
    .await;
    let (_, error) = first_send_refused(&server, &config).await;
    assert!(error.is_indeterminate(), "{error}");
    assert_eq!(error.kafka_code(), Some(code::NOT_ENOUGH_REPLICAS));
    // NOT_ENOUGH_REPLICAS_AFTER_APPEND: written to the leader, indeterminate.
    let server = single_broker("t", 1, |_, _| {
        produce_answer("t", 0, code::NOT_ENOUGH_REPLICAS_AFTER_APPEND, -1)
    })
    .await;
    let (_, error) = first_send_refused(&server, &config).await;
    assert!(error.is_indeterminate(), "{error}");
    // OUT_OF_ORDER_SEQUENCE_NUMBER on a batch the broker certainly never wrote (its only
    // attempt was refused): the broker's sequence state differs from ours, so the partition
    // starts over at sequence 0 of the next epoch of the same producer id (bumped locally, as
    // Java's producer does, KIP-360) and the batch is sent again in it.
    let server = single_broker("t", 1, |_, n| {
        if n == 0 {
            produce_answer("t", 0, code::OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
        } else {
            produce_answer("t", 0, 0, 5)
        }
    })
    .await;
    let producer = Producer::new(client_config(&server.addr), config.clone())
        .await
        .unwrap();
    let sent = producer
        .send("t", Some(0), None, Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!(sent.offset, 5);
    assert_eq!(
        server.seen(ApiKey::InitProducerId).len(),
        1,
        "no new producer id after OOOS: the epoch is bumped"
    );
    let produces = server.seen(ApiKey::Produce);
    assert_eq!(produces.len(), 2);
    let (first, second) = (&produces[0].body, &produces[1].body);
    assert_eq!(produce_batch_info(first).0, produce_batch_info(second).0);
    assert_eq!(produce_batch_epoch(second), produce_batch_epoch(first) + 1);
    assert_eq!(
        produce_batch_info(second).1,
        0,
        "the new epoch starts at sequence 0"
    );
    // The same refusal after an attempt whose fate is unknown: the batch may be in the log, so
    // sending it again under a new stamp could write it twice. It is given up as
    // indeterminate, and the next batch starts the new epoch.
    let server = single_broker("t", 1, |_, n| match n {
        0 => Reply::Silent,
        1 => produce_answer("t", 0, code::OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
        _ => produce_answer("t", 0, 0, 9),
    })
    .await;
    let (producer, error) = first_send_refused(&server, &config).await;
    assert!(error.is_indeterminate(), "{error}");
    assert_eq!(error.kafka_code(), Some(code::OUT_OF_ORDER_SEQUENCE_NUMBER));
    producer
        .send("t", Some(0), None, Bytes::from_static(b"w"))
        .await
        .unwrap();
    let produces = server.seen(ApiKey::Produce);
    assert_eq!(produces.len(), 3);
    assert_eq!(
        produce_batch_info(&produces[1].body),
        produce_batch_info(&produces[0].body)
    );
    assert_eq!(
        produce_batch_epoch(&produces[2].body),
        produce_batch_epoch(&produces[0].body) + 1
    );
    assert_eq!(produce_batch_info(&produces[2].body).1, 0);
}

/// Up to five idempotent batches of a partition leave before the first is answered, pipelined
/// on one connection; when the answers do not come (the connection times out), every batch is
/// sent again in order with its own sequence, and each record gets its batch's offset.
#[tokio::test]
async fn idempotent_batches_are_pipelined_and_resent_in_order() {
    let server = single_broker("t", 1, |seen, n| {
        if n < 5 {
            Reply::Silent
        } else {
            let (_, sequence, _, _) = produce_batch_info(&seen.body);
            produce_answer("t", 0, 0, 100 + i64::from(sequence))
        }
    })
    .await;
    let config = ProducerConfig {
        linger_ms: 0,
        batch_records_max: 1,
        ..ProducerConfig::default()
    };
    assert_eq!(config.max_in_flight, 5, "Kafka's default");
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut sends = Vec::new();
    for i in 0..5 {
        let producer = producer.clone();
        sends.push(tokio::spawn(async move {
            producer
                .send("t", Some(0), None, Bytes::from(format!("v{i}")))
                .await
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while server.seen(ApiKey::Produce).len() < 5 {
        assert!(
            started.elapsed() < Duration::from_millis(TIMEOUT_MS),
            "all five left before the first answer timed out"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (i, send) in sends.into_iter().enumerate() {
        let sent = send.await.unwrap().unwrap();
        assert_eq!(
            sent.offset,
            100 + i as i64,
            "each record its batch's offset"
        );
    }
    let produces: Vec<_> = server
        .seen(ApiKey::Produce)
        .iter()
        .map(|s| produce_batch_info(&s.body))
        .collect();
    assert_eq!(produces.len(), 10);
    let sequences: Vec<i32> = produces.iter().map(|p| p.1).collect();
    assert_eq!(sequences, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    assert_eq!(produces[..5], produces[5..], "the same batches, in order");
}

#[tokio::test]
async fn sends_within_linger_share_one_batch() {
    let server = single_broker("t", 1, |_, _| produce_answer("t", 0, 0, 100)).await;
    let config = ProducerConfig {
        linger_ms: 50,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    let mut sends = Vec::new();
    for i in 0..5u8 {
        let producer = producer.clone();
        sends.push(tokio::spawn(async move {
            producer
                .send("t", Some(0), None, Bytes::from(vec![i]))
                .await
        }));
    }
    let mut offsets = Vec::new();
    for send in sends {
        offsets.push(send.await.unwrap().unwrap().offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, vec![100, 101, 102, 103, 104]);
    let produces = server.seen(ApiKey::Produce);
    assert_eq!(produces.len(), 1, "one Produce for the lingered records");
    assert_eq!(produce_batch_info(&produces[0].body).2, 5);
    producer.flush().await;
}

#[tokio::test]
async fn keyed_records_follow_murmur2() {
    let server = single_broker("t", 50, |seen, _| {
        let RequestKind::Produce(request) = &seen.body else {
            unreachable!()
        };
        produce_answer("t", request.topic_data[0].partition_data[0].index, 0, 0)
    })
    .await;
    let config = ProducerConfig {
        idempotence: false,
        acks: 1,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    let sent = producer
        .send(
            "t",
            None,
            Some(Bytes::from_static(b"foobar")),
            Bytes::from_static(b"v"),
        )
        .await
        .unwrap();
    assert_eq!(sent.partition, 16);
    let error = producer
        .send("nope", None, None, Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::UnknownTopic { .. }) && !error.is_indeterminate());
}

fn fetch_answer(topic: &str, partition: i32, error_code: i16, records: Option<Bytes>) -> Reply {
    let data = PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error_code)
        .with_high_watermark(10)
        .with_records(records);
    let topic = FetchableTopicResponse::default()
        .with_topic(StrBytes::from_string(topic.to_string()).into())
        .with_partitions(vec![data]);
    Reply::Respond(ResponseKind::Fetch(
        FetchResponse::default().with_responses(vec![topic]),
    ))
}

fn list_offsets_answer(topic: &str, partition: i32, offset: i64) -> Reply {
    let answer = ListOffsetsPartitionResponse::default()
        .with_partition_index(partition)
        .with_offset(offset);
    let topic = ListOffsetsTopicResponse::default()
        .with_name(StrBytes::from_string(topic.to_string()).into())
        .with_partitions(vec![answer]);
    Reply::Respond(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(vec![topic]),
    ))
}

/// Records at offsets `base..base+n` as a Fetch answer carries them.
fn stored_batch(base: i64, n: usize) -> Bytes {
    use kafka_protocol::records::*;
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: -1 + i as i32,
            timestamp: 7,
            key: None,
            value: Some(Bytes::from(format!("r{}", base + i as i64))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

#[tokio::test]
async fn assigned_consumer_resets_out_of_range_and_reads() {
    let mut server = FakeServer::bind().await;
    let port = server.port;
    let fetches = Arc::new(Mutex::new(Vec::new()));
    let fetches_seen = fetches.clone();
    server.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&[(1, port)], "t", &[1, 1])),
        RequestKind::ListOffsets(request) => {
            assert_eq!(request.replica_id.0, -1, "a consumer, not a replica");
            // The log holds [3, 5): the refused position (100) is checked against it first.
            list_offsets_range(request, 3, 5)
        }
        RequestKind::Fetch(request) => {
            let p = &request.topics[0].partitions[0];
            fetches_seen.lock().unwrap().push(p.fetch_offset);
            assert_eq!(request.isolation_level, 0);
            assert_eq!(
                p.current_leader_epoch, 1,
                "the metadata's leader epoch fences stale leaders"
            );
            if p.fetch_offset == 100 {
                fetch_answer("t", 1, code::OFFSET_OUT_OF_RANGE, None)
            } else {
                // The batch starts before the position: records below it are skipped.
                fetch_answer("t", 1, 0, Some(stored_batch(2, 3)))
            }
        }
        _ => Reply::Silent,
    }));
    let mut consumer =
        Consumer::new(client_config(&server.addr), ConsumerConfig::new(None)).unwrap();
    consumer.assign(vec![("t".to_string(), 1)]);
    assert!(matches!(
        consumer.seek("t", 0, 5),
        Err(ClientError::NotAssigned { .. })
    ));
    let _ = consumer.poll(0).await.unwrap();
    consumer.seek("t", 1, 100).unwrap();
    let mut records = Vec::new();
    for _ in 0..5 {
        records.extend(consumer.poll(50).await.unwrap());
        if !records.is_empty() {
            break;
        }
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![3, 4]);
    assert_eq!(records[0].value.as_deref(), Some(&b"r3"[..]));
    assert_eq!(consumer.position("t", 1), Some(5));
    let fetched = fetches.lock().unwrap().clone();
    assert!(
        fetched.contains(&100) && fetched.contains(&3),
        "{fetched:?}"
    );
}

/// ListOffsets answers (for the partition asked about) of a log holding `[earliest, latest)`.
fn list_offsets_range(
    request: &kafka_protocol::messages::ListOffsetsRequest,
    earliest: i64,
    latest: i64,
) -> Reply {
    let p = &request.topics[0].partitions[0];
    let offset = match p.timestamp {
        -2 => earliest,
        -1 => latest,
        other => panic!("ListOffsets for timestamp {other}"),
    };
    list_offsets_answer("t", p.partition_index, offset)
}

#[tokio::test]
async fn a_position_a_deposed_leader_refuses_is_kept_when_the_new_leader_holds_it() {
    // Simulator seed 310094: the old leader (2), paused, deleted [0, 2) by retention when it
    // resumed, still leader in its own eyes, and refused the consumer's position 1 with
    // OFFSET_OUT_OF_RANGE; the new leader (1) still held [0, 6). Kafka's clients reset to the
    // earliest offset, 0 on the new leader, and read record 0 again: a poll going back. The
    // consumer now checks the refused position with the current leader first and keeps it.
    let mut old = FakeServer::bind().await;
    let mut new = FakeServer::bind().await;
    let brokers = [(1, new.port), (2, old.port)];
    let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let new_fetches = Arc::new(Mutex::new(Vec::new()));
    let metadata = {
        let moved = moved.clone();
        move || {
            let leader = if moved.load(Ordering::SeqCst) { 1 } else { 2 };
            Reply::Respond(metadata_response(&brokers, "t", &[leader]))
        }
    };
    let old_metadata = metadata.clone();
    let old_moved = moved.clone();
    old.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => old_metadata(),
        RequestKind::ListOffsets(request) => list_offsets_range(request, 0, 6),
        RequestKind::Fetch(request) => match request.topics[0].partitions[0].fetch_offset {
            0 => fetch_answer("t", 0, 0, Some(stored_batch(0, 1))),
            _ => {
                // Its retention passed 1; the controller has moved the leadership meanwhile.
                old_moved.store(true, Ordering::SeqCst);
                fetch_answer("t", 0, code::OFFSET_OUT_OF_RANGE, None)
            }
        },
        _ => Reply::Silent,
    }));
    let seen_by_new = new_fetches.clone();
    new.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => metadata(),
        RequestKind::ListOffsets(request) => list_offsets_range(request, 0, 6),
        RequestKind::Fetch(request) => {
            let offset = request.topics[0].partitions[0].fetch_offset;
            seen_by_new.lock().unwrap().push(offset);
            let n = usize::try_from(6 - offset.min(6)).unwrap();
            fetch_answer("t", 0, 0, (n > 0).then(|| stored_batch(offset, n)))
        }
        _ => Reply::Silent,
    }));
    let mut consumer = Consumer::new(client_config(&old.addr), ConsumerConfig::new(None)).unwrap();
    consumer.assign(vec![("t".to_string(), 0)]);
    let mut offsets = Vec::new();
    for _ in 0..20 {
        offsets.extend(consumer.poll(20).await.unwrap().iter().map(|r| r.offset));
        if offsets.last() == Some(&5) {
            break;
        }
    }
    assert_eq!(
        offsets,
        vec![0, 1, 2, 3, 4, 5],
        "each record once, in order"
    );
    let fetched = new_fetches.lock().unwrap().clone();
    assert_eq!(
        fetched.first(),
        Some(&1),
        "the new leader is asked from the kept position: {fetched:?}"
    );
}

#[tokio::test]
async fn a_kept_position_refused_again_is_reset() {
    // A leader that lists [0, 6) but refuses position 1: the check keeps 1 once, and the second
    // refusal resets it (earliest), so such a broker cannot hold the consumer in a loop.
    let mut server = FakeServer::bind().await;
    let port = server.port;
    let fetches = Arc::new(Mutex::new(Vec::new()));
    let seen_fetches = fetches.clone();
    server.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&[(1, port)], "t", &[1])),
        RequestKind::ListOffsets(request) => list_offsets_range(request, 0, 6),
        RequestKind::Fetch(request) => {
            let offset = request.topics[0].partitions[0].fetch_offset;
            seen_fetches.lock().unwrap().push(offset);
            match offset {
                0 => fetch_answer("t", 0, 0, Some(stored_batch(0, 1))),
                _ => fetch_answer("t", 0, code::OFFSET_OUT_OF_RANGE, None),
            }
        }
        _ => Reply::Silent,
    }));
    let mut consumer =
        Consumer::new(client_config(&server.addr), ConsumerConfig::new(None)).unwrap();
    consumer.assign(vec![("t".to_string(), 0)]);
    let _ = consumer.poll(0).await.unwrap();
    consumer.seek("t", 0, 1).unwrap();
    let mut records = Vec::new();
    for _ in 0..10 {
        records.extend(consumer.poll(20).await.unwrap());
        if !records.is_empty() {
            break;
        }
    }
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0]
    );
    let fetched = fetches.lock().unwrap().clone();
    assert_eq!(
        fetched.iter().filter(|&&offset| offset == 1).count(),
        2,
        "refused, kept once, refused again, reset: {fetched:?}"
    );
}

/// A Fetch answer for partition 0 of `t` that names a preferred read replica, no records.
fn redirect_answer(preferred: i32) -> Reply {
    let data = PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(10)
        .with_preferred_read_replica(preferred.into());
    let topic = FetchableTopicResponse::default()
        .with_topic(StrBytes::from_static_str("t").into())
        .with_partitions(vec![data]);
    Reply::Respond(ResponseKind::Fetch(
        FetchResponse::default().with_responses(vec![topic]),
    ))
}

#[tokio::test]
async fn a_consumer_follows_the_preferred_read_replica_and_returns_to_the_leader_on_its_error() {
    // KIP-392: the leader (1) names follower 2 for a consumer of rack "r2"; the follower serves
    // until it answers OFFSET_OUT_OF_RANGE (it lags), which sends the consumer back to the
    // leader without resetting its position (no ListOffsets).
    let mut leader = FakeServer::bind().await;
    let mut follower = FakeServer::bind().await;
    let brokers = [(1, leader.port), (2, follower.port)];
    let leader_fetches = Arc::new(Mutex::new(Vec::new()));
    let leader_seen = leader_fetches.clone();
    leader.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&brokers, "t", &[1])),
        RequestKind::Fetch(request) => {
            assert!(seen.version >= 11, "the rack needs Fetch v11+");
            assert_eq!(request.rack_id.as_str(), "r2");
            let offset = request.topics[0].partitions[0].fetch_offset;
            leader_seen.lock().unwrap().push(offset);
            if offset == 0 {
                redirect_answer(2)
            } else {
                fetch_answer("t", 0, 0, Some(stored_batch(offset, 2)))
            }
        }
        _ => Reply::Silent,
    }));
    let follower_fetches = Arc::new(Mutex::new(Vec::new()));
    let follower_seen = follower_fetches.clone();
    follower.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&brokers, "t", &[1])),
        RequestKind::Fetch(request) => {
            let p = &request.topics[0].partitions[0];
            follower_seen.lock().unwrap().push(p.fetch_offset);
            assert_eq!(p.current_leader_epoch, 1, "fenced like a leader");
            if p.fetch_offset == 0 {
                fetch_answer("t", 0, 0, Some(stored_batch(0, 3)))
            } else {
                fetch_answer("t", 0, code::OFFSET_OUT_OF_RANGE, None)
            }
        }
        _ => Reply::Silent,
    }));
    let config = ConsumerConfig {
        client_rack: Some("r2".to_string()),
        ..ConsumerConfig::new(None)
    };
    let mut consumer = Consumer::new(client_config(&leader.addr), config).unwrap();
    consumer.assign(vec![("t".to_string(), 0)]);
    consumer.seek("t", 0, 0).unwrap();
    let mut records = Vec::new();
    for _ in 0..20 {
        records.extend(consumer.poll(50).await.unwrap());
        if records.len() >= 5 {
            break;
        }
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(follower_fetches.lock().unwrap()[..2], [0, 3]);
    assert_eq!(leader_fetches.lock().unwrap()[..2], [0, 3]);
    assert!(leader.seen(ApiKey::ListOffsets).is_empty(), "no reset");
    assert!(follower.seen(ApiKey::ListOffsets).is_empty(), "no reset");
}

#[tokio::test]
async fn no_leader_fails_definitely_without_producing() {
    let mut server = FakeServer::bind().await;
    let port = server.port;
    server.start(Arc::new(move |seen: &Seen| match seen.api_key {
        ApiKey::ApiVersions => Reply::Respond(api_versions_response(&broker_versions())),
        ApiKey::Metadata => Reply::Respond(metadata_response(&[(1, port)], "t", &[-1])),
        ApiKey::InitProducerId => init_pid_answer(7),
        _ => Reply::Silent,
    }));
    let config = ProducerConfig {
        retries_max: 2,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    let error = producer
        .send("t", None, None, Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::NoLeader { .. }), "{error}");
    assert!(!error.is_indeterminate());
    assert!(server.seen(ApiKey::Produce).is_empty());
    assert!(
        server.seen(ApiKey::Metadata).len() >= 3,
        "refreshed between attempts"
    );
}

/// A head given up while a batch behind it was already acknowledged (the simulator found the
/// worker asserting there: a head whose attempt timed out had landed, and the batch behind it
/// was acknowledged before the head's retries ran out): the acknowledged batch keeps its offset.
#[tokio::test]
async fn a_given_up_head_leaves_an_acknowledged_batch_behind_it_acknowledged() {
    let server = single_broker("t", 1, |_, n| match n {
        0 => produce_answer("t", 0, code::NOT_ENOUGH_REPLICAS, -1),
        _ => produce_answer("t", 0, 0, 7),
    })
    .await;
    let config = ProducerConfig {
        linger_ms: 0,
        batch_records_max: 1,
        retries_max: 0,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client_config(&server.addr), config)
        .await
        .unwrap();
    // Both batches leave before the first answer comes back.
    let (first, second) = tokio::join!(
        producer.send("t", Some(0), None, Bytes::from_static(b"a")),
        producer.send("t", Some(0), None, Bytes::from_static(b"b")),
    );
    assert_eq!(
        server.seen(ApiKey::Produce).len(),
        2,
        "no retry: retries_max 0"
    );
    assert_eq!(second.unwrap().offset, 7);
    let error = first.unwrap_err();
    assert_eq!(error.kafka_code(), Some(code::NOT_ENOUGH_REPLICAS));
}

/// Seed 25241: a final read fell 779 acknowledged values short because the consumer asked its
/// leaders one after another and every round waited out an idle leader's long poll, while each
/// Fetch of a partition with small segments brought one batch. Every leader is asked at once,
/// and while records flow nobody is asked to hold.
#[tokio::test]
async fn a_consumer_asks_every_leader_at_once_and_does_not_long_poll_while_records_flow() {
    // The idle leader's address sorts first: asked in order, it would be asked first.
    let (mut idle, mut busy) = {
        let a = FakeServer::bind().await;
        let b = FakeServer::bind().await;
        if a.addr < b.addr {
            (a, b)
        } else {
            (b, a)
        }
    };
    let brokers = [(1, idle.port), (2, busy.port)];
    type Asked = Arc<Mutex<Vec<(tokio::time::Instant, i32)>>>;
    let idle_asked: Asked = Arc::default();
    let busy_asked: Asked = Arc::default();
    let seen_by_idle = idle_asked.clone();
    idle.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&brokers, "t", &[1, 2])),
        RequestKind::Fetch(request) => {
            let wait = request.max_wait_ms;
            seen_by_idle
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), wait));
            // Nothing to read: held for the whole wait, as a broker's long poll is.
            let hold = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            match fetch_answer("t", 0, 0, None) {
                Reply::Respond(answer) => Reply::Held(hold, answer),
                _ => unreachable!("an answer"),
            }
        }
        _ => Reply::Silent,
    }));
    let seen_by_busy = busy_asked.clone();
    busy.start(Arc::new(move |seen: &Seen| match &seen.body {
        RequestKind::ApiVersions(_) => Reply::Respond(api_versions_response(&broker_versions())),
        RequestKind::Metadata(_) => Reply::Respond(metadata_response(&brokers, "t", &[1, 2])),
        RequestKind::Fetch(request) => {
            let offset = request.topics[0].partitions[0].fetch_offset;
            seen_by_busy
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), request.max_wait_ms));
            // One batch per Fetch, as a segment holding one batch gives.
            fetch_answer("t", 1, 0, Some(stored_batch(offset, 1)))
        }
        _ => Reply::Silent,
    }));
    // A long poll of 500 ms: the order of the first round's two requests shows whatever the
    // machine's load.
    let config = ConsumerConfig {
        fetch_max_wait_ms: 500,
        ..ConsumerConfig::new(None)
    };
    let mut consumer = Consumer::new(client_config(&busy.addr), config).unwrap();
    consumer.assign(vec![("t".to_string(), 0), ("t".to_string(), 1)]);
    consumer.seek("t", 0, 0).unwrap();
    consumer.seek("t", 1, 0).unwrap();
    let mut offsets = Vec::new();
    for _ in 0..50 {
        offsets.extend(consumer.poll(2_000).await.unwrap().iter().map(|r| r.offset));
        if offsets.len() >= 10 {
            break;
        }
    }
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    let idle_asked = idle_asked.lock().unwrap().clone();
    let busy_asked = busy_asked.lock().unwrap().clone();
    let (idle_first, first_wait) = idle_asked[0];
    assert!(
        first_wait > 0,
        "nothing read yet: the first round long-polls"
    );
    let held_until = idle_first + Duration::from_millis(u64::try_from(first_wait).unwrap());
    assert!(
        busy_asked[0].0 < held_until,
        "the busy leader is asked while the idle one still holds its long poll"
    );
    assert!(
        idle_asked[1..]
            .iter()
            .chain(&busy_asked[1..])
            .all(|(_, wait)| *wait == 0),
        "after a round that read records nobody holds: {idle_asked:?} {busy_asked:?}"
    );
}
