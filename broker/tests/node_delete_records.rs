//! DeleteRecords (issue 13 item 4) over real TCP: a single node for every answer (low watermark,
//! OFFSET_OUT_OF_RANGE, unknown partitions, a compacted topic, v0), and three nodes in one
//! process for the followers: they follow the leader's new log start, and a follower that was
//! away starts over inside the batch holding it.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::{eventually, ready_cluster, Connection, TestCluster};

use broker::node::config::{LogSettings, TopicDefaults};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use log_core::{BatchBuilder, Disk};
use wire::TopicPartition;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const POLICY_VIOLATION: i16 = 44;

/// `n` nodes, topics of 1 partition with `n` replicas and min ISR 2, 4 KiB segments.
/// Three nodes and topic `name` (3 partitions, RF 3) whose partition 0 has a leader with a full
/// ISR: the cluster, that partition, and its leader's index.
async fn three_nodes_with_led_topic(name: &str) -> (TestCluster, TopicPartition, usize) {
    let cluster = start_cluster(3).await;
    let mut c = Connection::open(&cluster.address(0)).await;
    ready_cluster(&mut c, 3).await;
    c.create_topic(name, 3, &[]).await;
    let tp = TopicPartition::new(name, 0);
    eventually("a leader with a full ISR", || {
        cluster.leader_with_full_isr(&tp).is_some()
    })
    .await;
    let leader = cluster.leader_with_full_isr(&tp).unwrap();
    (cluster, tp, leader)
}

async fn start_cluster(n: usize) -> TestCluster {
    let topics = TopicDefaults {
        replication_factor: i32::try_from(n).unwrap(),
        partitions: 1,
        min_insync_replicas: 2,
        unclean_leader_election: false,
        auto_create: false,
    };
    let log = LogSettings {
        segment_bytes: 4096,
        ..LogSettings::default()
    };
    TestCluster::start(n, topics, log, 40).await
}

impl TestCluster {
    fn address(&self, i: usize) -> String {
        self.configs[i].listeners.kafka.clone().unwrap()
    }

    /// Segment files of `tp` on node `i`'s disk.
    fn segment_files(&self, i: usize, tp: &TopicPartition) -> usize {
        let dir = std::path::PathBuf::from(format!("{}-{}", tp.topic, tp.partition));
        let names = self.disks[i].list(&dir).unwrap_or_default();
        names.iter().filter(|n| n.ends_with(".log")).count()
    }
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

impl Connection {
    async fn create_topic(&mut self, topic: &str, replicas: i16, configs: &[(&str, &str)]) {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(replicas)
                .with_configs(configs)])
            .with_timeout_ms(10_000);
        let mut body = self.call(ApiKey::CreateTopics, 7, &request).await;
        let response = CreateTopicsResponse::decode(&mut body, 7).unwrap();
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }

    /// Produces one batch of `records` records of 200 bytes to partition 0 (acks=all); returns
    /// (error code, base offset).
    async fn produce(&mut self, topic: &str, records: usize) -> (i16, i64) {
        let mut builder = BatchBuilder::new();
        for i in 0..records {
            let value = vec![b'a' + (i % 26) as u8; 200];
            builder.push(None, Some(&value), 1_000 + i as i64, &[]);
        }
        self.produce_batch(topic, 0, Bytes::from(builder.build()))
            .await
    }

    /// DeleteRecords at `version`: (partition, low watermark, error code) per partition named.
    async fn delete_records(
        &mut self,
        version: i16,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Vec<(i32, i64, i16)> {
        self.delete_records_within(version, topic, offsets, 15_000)
            .await
    }

    /// [`Connection::delete_records`] with the request's own `timeout_ms`.
    async fn delete_records_within(
        &mut self,
        version: i16,
        topic: &str,
        offsets: &[(i32, i64)],
        timeout_ms: i32,
    ) -> Vec<(i32, i64, i16)> {
        let partitions = offsets
            .iter()
            .map(|(p, o)| {
                DeleteRecordsPartition::default()
                    .with_partition_index(*p)
                    .with_offset(*o)
            })
            .collect();
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(partitions)])
            .with_timeout_ms(timeout_ms);
        let mut body = self.call(ApiKey::DeleteRecords, version, &request).await;
        let response = DeleteRecordsResponse::decode(&mut body, version).unwrap();
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].name, name(topic));
        response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.low_watermark, p.error_code))
            .collect()
    }

    /// ListOffsets earliest (-2) or latest (-1) of partition 0: (error code, offset).
    async fn list_offset(&mut self, topic: &str, timestamp: i64) -> (i16, i64) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(KBroker(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let mut body = self.call(ApiKey::ListOffsets, 7, &request).await;
        let response = ListOffsetsResponse::decode(&mut body, 7).unwrap();
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset)
    }

    /// A consumer's fetch of partition 0 at `offset`: (error code, log start, base offset of the
    /// first batch returned, or -1).
    async fn fetch(&mut self, topic: &str, offset: i64) -> (i16, i64, i64) {
        let request = FetchRequest::default()
            .with_replica_id(KBroker(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let mut body = self.call(ApiKey::Fetch, 12, &request).await;
        let response = FetchResponse::decode(&mut body, 12).unwrap();
        let p = &response.responses[0].partitions[0];
        let first_base = p
            .records
            .as_ref()
            .filter(|r| r.len() >= 8)
            .map_or(-1, |r| i64::from_be_bytes(r[..8].try_into().unwrap()));
        (p.error_code, p.log_start_offset, first_base)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_answers_kafkas_codes() {
    let mut cluster = start_cluster(1).await;
    let mut c = Connection::open(&cluster.address(0)).await;
    ready_cluster(&mut c, 1).await;
    c.create_topic("trim", 1, &[("segment.bytes", "4096")])
        .await;
    let tp = TopicPartition::new("trim", 0);
    eventually("the partition led", || {
        cluster
            .partition_on(0, &tp)
            .is_some_and(|p| p.status().is_leader)
    })
    .await;
    // 10 batches of 10 records of ~200 bytes: about one 4 KiB segment per two batches.
    for i in 0..10 {
        assert_eq!(c.produce("trim", 10).await, (0, i * 10));
    }
    let segments_before = cluster.segment_files(0, &tp);
    assert!(segments_before >= 4, "{segments_before} segments");

    // Inside a batch: the start is exactly the offset asked for.
    assert_eq!(
        c.delete_records(2, "trim", &[(0, 35)]).await,
        vec![(0, 35, 0)]
    );
    assert_eq!(c.list_offset("trim", -2).await, (0, 35), "earliest");
    assert_eq!(c.list_offset("trim", -1).await, (0, 100), "latest");
    let (code, start, _) = c.fetch("trim", 20).await;
    assert_eq!((code, start), (OFFSET_OUT_OF_RANGE, -1), "below the start");
    let (code, start, first) = c.fetch("trim", 35).await;
    assert_eq!(
        (code, start, first),
        (0, 35, 30),
        "the batch holding the start, whole"
    );
    let segments_after = cluster.segment_files(0, &tp);
    assert!(
        segments_after < segments_before,
        "segments wholly below are deleted: {segments_before} -> {segments_after}"
    );

    // Refusals: past the HW, negative, unknown partitions; below the start changes nothing.
    assert_eq!(
        c.delete_records(1, "trim", &[(0, 101), (0, -7), (3, 5), (-1, 5), (0, 10)])
            .await,
        vec![
            (0, -1, OFFSET_OUT_OF_RANGE),
            (0, -1, OFFSET_OUT_OF_RANGE),
            (3, -1, UNKNOWN_TOPIC_OR_PARTITION),
            (-1, -1, UNKNOWN_TOPIC_OR_PARTITION),
            (0, 35, 0),
        ]
    );
    assert_eq!(
        c.delete_records(0, "nope", &[(0, 1)]).await,
        vec![(0, -1, UNKNOWN_TOPIC_OR_PARTITION)],
        "v0"
    );

    // -1 is the HW: everything goes, and the partition serves on from there.
    assert_eq!(
        c.delete_records(0, "trim", &[(0, -1)]).await,
        vec![(0, 100, 0)]
    );
    assert_eq!(c.list_offset("trim", -2).await, (0, 100));
    assert_eq!(c.produce("trim", 3).await, (0, 100));
    let (code, start, first) = c.fetch("trim", 100).await;
    assert_eq!((code, start, first), (0, 100, 100));
    cluster.partition_on(0, &tp).unwrap().check_invariants();

    // A topic compacted only: Kafka's POLICY_VIOLATION, nothing deleted.
    c.create_topic("keyed", 1, &[("cleanup.policy", "compact")])
        .await;
    let kt = TopicPartition::new("keyed", 0);
    eventually("the compacted partition led", || {
        cluster
            .partition_on(0, &kt)
            .is_some_and(|p| p.status().is_leader)
    })
    .await;
    assert_eq!(
        c.delete_records(2, "keyed", &[(0, -1)]).await,
        vec![(0, -1, POLICY_VIOLATION)]
    );
    cluster.stop(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_follow_the_leaders_new_log_start_even_one_that_was_away() {
    node_support::log_from_env();
    let (mut cluster, tp, leader) = three_nodes_with_led_topic("shared").await;
    let away = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut c = Connection::open(&cluster.address(leader)).await;
    for _ in 0..10 {
        assert_eq!(c.produce("shared", 10).await.0, 0);
    }
    // A follower refuses DeleteRecords.
    let mut on_follower = Connection::open(&cluster.address(other)).await;
    assert_eq!(
        on_follower.delete_records(2, "shared", &[(0, 5)]).await,
        vec![(0, -1, NOT_LEADER_OR_FOLLOWER)]
    );

    // The answer waits until every live replica's start reached 35 (DelayedDeleteRecords).
    assert_eq!(
        c.delete_records(2, "shared", &[(0, 35)]).await,
        vec![(0, 35, 0)]
    );
    for i in [away, other] {
        let start = cluster
            .partition_on(i, &tp)
            .unwrap()
            .status()
            .log_start_offset;
        assert_eq!(start.0, 35, "node {i} moved before the answer");
    }
    eventually("both followers start at 35", || {
        [away, other].iter().all(|&i| {
            cluster
                .partition_on(i, &tp)
                .is_some_and(|p| p.status().log_start_offset.0 == 35)
        })
    })
    .await;
    for i in 0..3 {
        cluster.partition_on(i, &tp).unwrap().check_invariants();
        assert!(cluster.segment_files(i, &tp) >= 1);
    }

    // A follower away while the start passes its log end, inside a batch (155 in 150..160).
    let away_end = cluster
        .partition_on(away, &tp)
        .unwrap()
        .status()
        .log_end_offset;
    assert_eq!(away_end.0, 100);
    cluster.stop(away);
    // Until the controller fences it, the stopped replica counts and never reports a new start:
    // the answer times out (Kafka's expired DelayedDeleteRecords), the leader deleted anyway.
    assert_eq!(
        c.delete_records_within(2, "shared", &[(0, 40)], 300).await,
        vec![(0, -1, REQUEST_TIMED_OUT)]
    );
    assert_eq!(c.list_offset("shared", -2).await, (0, 40));
    for _ in 0..10 {
        assert_eq!(c.produce("shared", 10).await.0, 0);
    }
    assert_eq!(
        c.delete_records(2, "shared", &[(0, 155)]).await,
        vec![(0, 155, 0)]
    );
    cluster.boot(away).await;
    eventually("the follower back in the ISR", || {
        cluster.leader_with_full_isr(&tp) == Some(leader)
    })
    .await;
    eventually("every replica starts at 155", || {
        (0..3).all(|i| {
            cluster
                .partition_on(i, &tp)
                .is_some_and(|p| p.status().log_start_offset.0 == 155)
        })
    })
    .await;
    assert_eq!(c.produce("shared", 10).await, (0, 200));
    eventually("every replica holds 210", || {
        (0..3).all(|i| {
            cluster
                .partition_on(i, &tp)
                .is_some_and(|p| p.status().high_watermark.0 == 210)
        })
    })
    .await;
    for i in 0..3 {
        let partition = cluster.partition_on(i, &tp).unwrap();
        assert_eq!(partition.status().failed, None);
        partition.check_invariants();
    }
    assert_eq!(c.list_offset("shared", -2).await, (0, 155));
    for i in 0..3 {
        cluster.stop(i);
    }
}

/// Two fetches of one follower that report different log starts (an old connection's request
/// and a new one's, as after a follower restarts) used to wake each other's long poll on every
/// pass: each noted its start, the change woke the other, which noted its own. A livelock that
/// burned a core until both deadlines; the simulator's seed 81 found it as a 40x slowdown.
/// Found in the simulator (alarm `fetch.long_poll_spinning`); this is its real-TCP regression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fetches_of_one_follower_with_different_log_starts_do_not_wake_each_other() {
    use broker::auth::{ClusterSecret, NodeCredentials};
    use broker::node::peer::PeerConnection;
    use std::time::Duration;

    node_support::log_from_env();
    let (mut cluster, tp, leader) = three_nodes_with_led_topic("quiet").await;
    let follower = u64::try_from((leader + 1) % 3 + 1).unwrap();
    let mut c = Connection::open(&cluster.address(leader)).await;
    assert_eq!(c.produce("quiet", 10).await, (0, 0));
    eventually("every replica holds 10", || {
        (0..3).all(|i| {
            cluster
                .partition_on(i, &tp)
                .is_some_and(|p| p.status().high_watermark.0 == 10)
        })
    })
    .await;
    let credentials = NodeCredentials {
        node_id: follower,
        secret: ClusterSecret::new("node-test-cluster-secret").unwrap(),
    };
    let leader_id = u64::try_from(leader + 1).unwrap();
    let status = cluster.partition_on(leader, &tp).unwrap().status();
    let epoch = status.state.unwrap().leader_epoch.0;
    let timeout = Duration::from_secs(10);
    let mut connections = Vec::new();
    for _ in 0..2 {
        let mut peer = PeerConnection::connect(&cluster.address(leader), "test", timeout)
            .await
            .unwrap();
        peer.authenticate(&credentials, leader_id, timeout)
            .await
            .unwrap();
        connections.push(peer);
    }
    // At the end of the log, so each waits out its long poll; log starts 0 and 3.
    let fetch = |log_start: i64| {
        FetchRequest::default()
            .with_replica_id(KBroker(i32::try_from(follower).unwrap()))
            .with_max_wait_ms(1_500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("quiet"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(epoch)
                    .with_fetch_offset(10)
                    .with_last_fetched_epoch(epoch)
                    .with_log_start_offset(log_start)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let metrics = &cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .broker
        .as_ref()
        .unwrap()
        .metrics;
    let wakeups_before = metrics.counter("rill_fetch_long_poll_wakeups_total");
    let (a, b) = (fetch(0), fetch(3));
    let [first, second] = &mut connections[..] else {
        unreachable!("two connections")
    };
    let (a, b): (Result<FetchResponse, _>, Result<FetchResponse, _>) = tokio::join!(
        first.request(ApiKey::Fetch, 12, &a, timeout),
        second.request(ApiKey::Fetch, 12, &b, timeout),
    );
    for answer in [a.unwrap(), b.unwrap()] {
        let p = &answer.responses[0].partitions[0];
        // Answered at the deadline with nothing: both long-polled.
        assert_eq!(p.error_code, 0);
        assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    let wakeups = metrics.counter("rill_fetch_long_poll_wakeups_total") - wakeups_before;
    // The real followers' fetches wake on nothing either (no produce meanwhile); a few
    // wakeups from a housekeeping step are fine, a livelock makes millions.
    assert!(
        wakeups < 100,
        "{wakeups} long-poll wakeups in one quiet long poll"
    );
    for i in 0..3 {
        cluster.stop(i);
    }
}
