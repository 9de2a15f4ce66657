//! A connection's pipelined Produce requests to one partition reach the log in request order,
//! as Kafka's do: an idempotent producer with five batches in flight (rill's client, librdkafka,
//! the Java producer) sees every one appended, none refused OUT_OF_ORDER_SEQUENCE_NUMBER for
//! overtaking its predecessor.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use std::time::Duration;

use broker::node::config::TopicDefaults;
use bytes::Bytes;
use client::admin::Admin;
use client::connection::Connection;
use client::metadata::MetadataCache;
use client::pool::ConnectionPool;
use client::producer::init_producer_id;
use client::records::{encode_batch, OutgoingRecord};
use client::sequence::BatchStamp;
use client::ClientConfig;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const ROUNDS: i32 = 30;
const IN_FLIGHT: i32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_idempotent_batches_are_appended_in_request_order() {
    let (_node, address) = node_support::start_node(TopicDefaults::default()).await;
    let config = ClientConfig::new(vec![address.clone()]);
    let admin = Admin::new(config.clone()).unwrap();
    let mut created = false;
    for _ in 0..100 {
        if admin.create_topic("piped", 1, 1, &[]).await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(created, "the topic was created");
    let pool = ConnectionPool::new(config);
    let identity = init_producer_id(&pool, &MetadataCache::new(), 50)
        .await
        .unwrap();
    let mut connection = Connection::connect(&address, "pipeline-test", 10_000)
        .await
        .unwrap();
    let mut expected_offset = 0i64;
    let mut leading = false;
    for _ in 0..100 {
        // Wait for the partition's leader to serve, one request at a time.
        let stamp = BatchStamp {
            identity,
            base_sequence: 0,
            record_count: 1,
        };
        connection
            .send(ApiKey::Produce, produce(&stamp))
            .await
            .unwrap();
        if answer(connection.receive(10_000).await.unwrap()) == (0, 0) {
            leading = true;
            expected_offset = 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(leading, "the partition serves");
    let mut sequence = 1;
    for _ in 0..ROUNDS {
        for _ in 0..IN_FLIGHT {
            let stamp = BatchStamp {
                identity,
                base_sequence: sequence,
                record_count: 1,
            };
            connection
                .send(ApiKey::Produce, produce(&stamp))
                .await
                .unwrap();
            sequence += 1;
        }
        assert_eq!(connection.pending(), IN_FLIGHT as usize);
        for _ in 0..IN_FLIGHT {
            let (code, offset) = answer(connection.receive(10_000).await.unwrap());
            assert_eq!(code, 0, "appended, not refused (45: overtaken)");
            assert_eq!(offset, expected_offset, "in request order");
            expected_offset += 1;
        }
    }
}

/// Produce (acks=all) of a one-record idempotent batch with `stamp` to partition 0 of "piped".
fn produce(stamp: &BatchStamp) -> impl FnOnce(i16) -> client::error::Result<RequestKind> {
    let record = OutgoingRecord {
        key: None,
        value: Bytes::from(format!("s{}", stamp.base_sequence)),
        timestamp: 1_000,
    };
    let batch = encode_batch(&[record], Some(stamp), Compression::None).unwrap();
    move |_version| {
        let data = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch));
        let topic = TopicProduceData::default()
            .with_name(StrBytes::from_static_str("piped").into())
            .with_partition_data(vec![data]);
        Ok(RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![topic]),
        ))
    }
}

/// (error code, base offset) of a Produce answer's only partition.
fn answer(response: ResponseKind) -> (i16, i64) {
    let ResponseKind::Produce(response) = response else {
        panic!("not a Produce answer")
    };
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}
