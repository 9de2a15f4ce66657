//! Consumers fetch from followers (KIP-392, issue 13 item 9) over real TCP: three nodes in one
//! process, node n in rack `rack-n` with the rack-aware replica selector. Racks are reported in
//! Metadata and DescribeCluster; the leader names a follower of the client's rack as the
//! preferred read replica (no records, at once); a follower serves Fetch v11+ up to its HW with
//! Kafka's errors; older consumers, ListOffsets and brokers that are no replica are refused.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::{eventually, ready_cluster, Connection, TestCluster};

use broker::node::config::{LogSettings, TopicDefaults, REPLICA_SELECTOR_RACK_AWARE_KAFKA};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, DescribeClusterRequest, DescribeClusterResponse, FetchRequest,
    FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use log_core::BatchBuilder;
use wire::TopicPartition;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const INVALID_RECORD: i16 = 87;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn rack(i: usize) -> String {
    format!("rack-{}", i + 1)
}

/// Three nodes in racks rack-1..3, rack-aware selection on, 1-partition topics of 3 replicas.
async fn start_racked_cluster() -> TestCluster {
    let topics = TopicDefaults {
        replication_factor: 3,
        partitions: 1,
        min_insync_replicas: 2,
        unclean_leader_election: false,
        auto_create: false,
    };
    TestCluster::start_configured(3, topics, LogSettings::default(), 70, |i, config| {
        config.broker_rack = Some(rack(i));
        config.replica_selector_class = Some(REPLICA_SELECTOR_RACK_AWARE_KAFKA.to_string());
    })
    .await
}

/// A consumer's Fetch of partition 0 of `topic` at `offset`.
struct ConsumerFetch<'a> {
    topic: &'a str,
    offset: i64,
    version: i16,
    rack: &'a str,
    current_leader_epoch: i32,
}

impl Connection {
    async fn consumer_fetch(&mut self, fetch: &ConsumerFetch<'_>) -> PartitionData {
        // The rack field exists from v11 on (kafka-protocol refuses to encode it below).
        let rack = if fetch.version >= 11 { fetch.rack } else { "" };
        let request = FetchRequest::default()
            .with_replica_id(KBroker(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_rack_id(StrBytes::from_string(rack.to_string()))
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(fetch.topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(fetch.current_leader_epoch)
                    .with_fetch_offset(fetch.offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let mut body = self.call(ApiKey::Fetch, fetch.version, &request).await;
        let response = FetchResponse::decode(&mut body, fetch.version).unwrap();
        assert_eq!(response.responses.len(), 1);
        response.responses[0].partitions[0].clone()
    }

    /// Creates `topic` with one partition of `replicas` replicas.
    async fn create_one(&mut self, topic: &'static str, replicas: i16) {
        let created = self
            .create(
                vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_num_partitions(1)
                    .with_replication_factor(replicas)],
                false,
            )
            .await;
        assert_eq!(created.topics.len(), 1);
        assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    }

    async fn list_latest(&mut self, topic: &str) -> i16 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(KBroker(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1)])]);
        let mut body = self.call(ApiKey::ListOffsets, 7, &request).await;
        let response = ListOffsetsResponse::decode(&mut body, 7).unwrap();
        response.topics[0].partitions[0].error_code
    }
}

/// The records' bytes of a fetch answer (none counts as empty).
fn record_bytes(data: &PartitionData) -> usize {
    data.records.as_ref().map_or(0, Bytes::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_are_sent_to_followers_of_their_rack_which_serve_up_to_their_hw() {
    node_support::log_from_env();
    let mut cluster = start_racked_cluster().await;
    let bootstrap = cluster.bootstrap();
    let mut any = Connection::open(&bootstrap[0]).await;
    ready_cluster(&mut any, 3).await;

    // Racks reach Metadata and DescribeCluster.
    let metadata = any.metadata().await;
    let mut racks: Vec<(i32, Option<String>)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    racks.sort();
    assert_eq!(
        racks,
        (0..3)
            .map(|i| (i as i32 + 1, Some(rack(i))))
            .collect::<Vec<_>>()
    );
    let mut body = any
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .await;
    let described = DescribeClusterResponse::decode(&mut body, 0).unwrap();
    assert!(described
        .brokers
        .iter()
        .all(|b| b.rack.as_deref() == Some(rack(b.broker_id.0 as usize - 1).as_str())));

    let topic = "follow";
    any.create_one(topic, 3).await;
    let tp = TopicPartition::new(topic, 0);
    eventually("a leader with the full ISR", || {
        cluster.leader_with_full_isr(&tp).is_some()
    })
    .await;
    let leader = cluster.leader_with_full_isr(&tp).unwrap();
    let follower = (leader + 1) % 3;
    let mut to_leader = Connection::open(&bootstrap[leader]).await;
    let mut builder = BatchBuilder::new();
    for i in 0..5 {
        builder.push(None, Some(format!("v{i}").as_bytes()), 1_000 + i, &[]);
    }
    let (code, base) = to_leader
        .produce_batch(topic, 0, Bytes::from(builder.build()))
        .await;
    assert_eq!((code, base), (0, 0));
    // The follower learns the HW from the leader's next fetch answer.
    eventually("the follower's HW at 5", || {
        cluster
            .partition_on(follower, &tp)
            .is_some_and(|p| p.status().high_watermark.0 == 5)
    })
    .await;
    let epoch = cluster
        .partition_on(leader, &tp)
        .unwrap()
        .status()
        .state
        .unwrap()
        .leader_epoch
        .0;
    fn at<'a>(offset: i64, version: i16, rack: &'a str, epoch: i32) -> ConsumerFetch<'a> {
        ConsumerFetch {
            topic: "follow",
            offset,
            version,
            rack,
            current_leader_epoch: epoch,
        }
    }
    let fetch = |offset, version, rack| at(offset, version, rack, epoch);

    // The leader sends a consumer of the follower's rack there, with no records.
    let follower_rack = rack(follower);
    let answer = to_leader
        .consumer_fetch(&fetch(0, 12, &follower_rack))
        .await;
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.preferred_read_replica.0, follower as i32 + 1);
    assert_eq!(record_bytes(&answer), 0);
    assert_eq!(answer.high_watermark, 5);
    // Its own rack, no rack, a rack nobody is in, or Fetch v10 (no rack field): it serves.
    for (version, client_rack) in [
        (12, rack(leader)),
        (12, String::new()),
        (11, "z".into()),
        (10, rack(follower)),
    ] {
        let answer = to_leader
            .consumer_fetch(&at(0, version, &client_rack, epoch))
            .await;
        assert_eq!(answer.error_code, 0, "v{version} rack {client_rack:?}");
        assert_eq!(
            answer.preferred_read_replica.0, -1,
            "v{version} rack {client_rack:?}"
        );
        assert!(record_bytes(&answer) > 0, "v{version} rack {client_rack:?}");
    }

    // The follower serves v11+ up to its HW, never names a preferred replica.
    let mut to_follower = Connection::open(&bootstrap[follower]).await;
    let answer = to_follower
        .consumer_fetch(&fetch(0, 12, &follower_rack))
        .await;
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.preferred_read_replica.0, -1);
    assert_eq!(answer.high_watermark, 5);
    assert!(record_bytes(&answer) > 0);
    // At its LEO: an empty answer; past it: OFFSET_OUT_OF_RANGE, as Kafka's `LocalLog.read`.
    let answer = to_follower.consumer_fetch(&fetch(5, 12, "")).await;
    assert_eq!((answer.error_code, record_bytes(&answer)), (0, 0));
    let answer = to_follower.consumer_fetch(&fetch(6, 12, "")).await;
    assert_eq!(answer.error_code, OFFSET_OUT_OF_RANGE);
    // KIP-320 fencing, on the follower as on the leader.
    let newer = ConsumerFetch {
        current_leader_epoch: epoch + 1,
        ..fetch(0, 12, "")
    };
    assert_eq!(
        to_follower.consumer_fetch(&newer).await.error_code,
        UNKNOWN_LEADER_EPOCH
    );
    if epoch > 0 {
        let older = ConsumerFetch {
            current_leader_epoch: epoch - 1,
            ..fetch(0, 12, "")
        };
        assert_eq!(
            to_follower.consumer_fetch(&older).await.error_code,
            FENCED_LEADER_EPOCH
        );
    }
    // Without client metadata (Fetch v10) only the leader serves; ListOffsets stays the leader's.
    let answer = to_follower.consumer_fetch(&fetch(0, 10, "")).await;
    assert_eq!(answer.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(to_follower.list_latest(topic).await, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(to_leader.list_latest(topic).await, 0);

    // A broker that holds no replica refuses.
    let single = "single";
    any.create_one(single, 1).await;
    let single_tp = TopicPartition::new(single, 0);
    eventually("the single replica leads", || {
        (0..3).any(|i| {
            cluster
                .partition_on(i, &single_tp)
                .is_some_and(|p| p.status().is_leader)
        })
    })
    .await;
    let host = (0..3)
        .find(|i| cluster.partition_on(*i, &single_tp).is_some())
        .unwrap();
    let mut elsewhere = Connection::open(&bootstrap[(host + 1) % 3]).await;
    let answer = elsewhere
        .consumer_fetch(&ConsumerFetch {
            topic: single,
            current_leader_epoch: -1,
            ..fetch(0, 12, "")
        })
        .await;
    assert_eq!(answer.error_code, NOT_LEADER_OR_FOLLOWER);
    // A produce there: the payload's shape is checked first, as Kafka's
    // `ProduceRequest.validateRecords` runs before leadership (seed 16353: several batches, one
    // idempotent, were answered NOT_LEADER_OR_FOLLOWER).
    let plain = |value: &str| {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(value.as_bytes()), 1_000, &[]);
        builder.build()
    };
    let mut idempotent = BatchBuilder::new().producer(5, 0, 0);
    idempotent.push(None, Some(b"i".as_slice()), 1_000, &[]);
    let two = [plain("p"), idempotent.build()].concat();
    assert_eq!(
        elsewhere.produce_batch(single, 0, two.into()).await.0,
        INVALID_RECORD
    );
    assert_eq!(
        elsewhere
            .produce_batch(single, 0, plain("p").into())
            .await
            .0,
        NOT_LEADER_OR_FOLLOWER
    );
    for i in 0..3 {
        cluster.stop(i);
    }
}
