//! Three combined broker+controller nodes in one process on 127.0.0.1 (real tokio, real TCP, each
//! node on its own MemDisk), driven by rill's own client: topic creation, idempotent acks=all
//! produce, reading everything back in order, a consumer group with commits, and a leader stop.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::TestCluster;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use broker::node::config::{LogSettings, TopicDefaults};
use bytes::Bytes;
use client::admin::Admin;
use client::consumer::{Consumer, ConsumerConfig};
use client::producer::{Producer, ProducerConfig};
use client::ClientConfig;

/// Bounds every wait in this file.
const WAIT_MS_MAX: u64 = 30_000;

/// Three nodes, topics of 3 partitions, replication factor 3, min ISR 2, auto-created.
async fn start_cluster(log: LogSettings) -> TestCluster {
    let topics = TopicDefaults {
        replication_factor: 3,
        partitions: 3,
        min_insync_replicas: 2,
        unclean_leader_election: false,
        auto_create: true,
    };
    TestCluster::start(3, topics, log, 0).await
}

impl TestCluster {
    /// Waits (bounded) for a leader of `tp` with a full ISR.
    async fn wait_for_full_isr(&self, tp: &wire::TopicPartition) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            if let Some(leader) = self.leader_with_full_isr(tp) {
                return leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader with a full ISR"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until the metadata lists `brokers` unfenced brokers.
async fn every_broker_unfenced(admin: &Admin, brokers: usize) {
    eventually("every broker unfenced", || async {
        admin
            .metadata(None)
            .await
            .is_ok_and(|m| m.brokers.len() == brokers)
    })
    .await;
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every partition of `topic` from the start until `expected` records arrived.
async fn read_all(
    bootstrap: &[String],
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut consumer = Consumer::new(
        ClientConfig::new(bootstrap.to_vec()),
        ConsumerConfig::new(None),
    )
    .unwrap();
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)).collect());
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while read.values().map(Vec::len).sum::<usize>() < expected {
        assert!(tokio::time::Instant::now() < deadline, "read only {read:?}");
        for record in consumer.poll(200).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            read.entry(record.partition)
                .or_default()
                .push((record.offset, value));
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_produce_consume_groups_and_failover() {
    node_support::log_from_env();
    let mut cluster = start_cluster(LogSettings::default()).await;
    let bootstrap = cluster.bootstrap();
    let admin = Admin::new(ClientConfig::new(bootstrap.clone())).unwrap();
    every_broker_unfenced(&admin, 3).await;
    admin
        .create_topic(
            "orders",
            3,
            3,
            &[("min.insync.replicas".into(), "2".into())],
        )
        .await
        .unwrap();
    eventually("leaders for every partition", || async {
        admin
            .metadata(Some(&["orders".to_string()]))
            .await
            .is_ok_and(|m| {
                m.topics.get("orders").is_some_and(|t| {
                    t.partitions.len() == 3 && t.partitions.values().all(|p| p.leader.is_some())
                })
            })
    })
    .await;

    // Idempotent acks=all produce, keyed: every send is acknowledged with a distinct offset.
    let producer = Producer::new(
        ClientConfig::new(bootstrap.clone()),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    let mut acked = BTreeSet::new();
    for i in 0..150 {
        let sent = producer
            .send(
                "orders",
                None,
                Some(Bytes::from(format!("k{}", i % 7))),
                Bytes::from(format!("v{i}")),
            )
            .await
            .unwrap();
        assert!(
            acked.insert((sent.partition, sent.offset)),
            "offset given twice"
        );
    }
    let read = read_all(&bootstrap, "orders", 3, 150).await;
    let values: BTreeSet<String> = read.values().flatten().map(|(_, v)| v.clone()).collect();
    assert_eq!(values.len(), 150, "every record exactly once");
    for records in read.values() {
        assert!(
            records.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets increase per partition"
        );
    }

    // A consumer group of two members, each polling in its own task as real consumers do,
    // splits the partitions, reads everything, and commits once the group is stable.
    let group_read = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let mut members = Vec::new();
    for _ in 0..2 {
        let (bootstrap, group_read) = (bootstrap.clone(), group_read.clone());
        members.push(tokio::spawn(async move {
            let mut config = ConsumerConfig::new(Some("billing".into()));
            config.session_timeout_ms = 6_000;
            config.rebalance_timeout_ms = 6_000;
            config.heartbeat_interval_ms = 300;
            let mut consumer = Consumer::new(ClientConfig::new(bootstrap), config).unwrap();
            consumer.subscribe(vec!["orders".into()]).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
            loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "group read {} of 150",
                    group_read.lock().unwrap().len()
                );
                for record in consumer.poll(100).await.unwrap() {
                    group_read
                        .lock()
                        .unwrap()
                        .insert(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
                }
                let done = group_read.lock().unwrap().len() >= 150;
                if done && !consumer.assignment().is_empty() && consumer.commit_sync().await.is_ok()
                {
                    let assigned = consumer.assignment().len();
                    // Keep the session alive until the other member committed too.
                    for _ in 0..10 {
                        let _ = consumer.poll(100).await;
                    }
                    consumer.close().await.unwrap();
                    return assigned;
                }
            }
        }));
    }
    let mut assigned = 0;
    for member in members {
        assigned += member.await.unwrap();
    }
    assert_eq!(
        group_read.lock().unwrap().len(),
        150,
        "the group read every record"
    );
    // Who held what depends on when the second member joined; together they covered all three.
    assert!(
        assigned >= 3,
        "the members' assignments cover the partitions"
    );
    let mut again = Consumer::new(
        ClientConfig::new(bootstrap.clone()),
        ConsumerConfig::new(Some("billing".into())),
    )
    .unwrap();
    for p in 0..3 {
        let committed = again.committed("orders", p).await.unwrap();
        assert_eq!(
            committed,
            Some(read[&p].last().unwrap().0 + 1),
            "committed position of partition {p}"
        );
    }

    // Stop the leader of partition 0: the others elect a new one and keep every acked record.
    let metadata = admin.metadata(Some(&["orders".to_string()])).await.unwrap();
    let leader = metadata.topics["orders"].partitions[&0].leader.unwrap();
    cluster.stop(usize::try_from(leader.0 - 1).unwrap());
    let survivors: Vec<String> = bootstrap
        .iter()
        .enumerate()
        .filter(|(i, _)| *i + 1 != leader.0 as usize)
        .map(|(_, b)| b.clone())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let producer = loop {
        match Producer::new(
            ClientConfig::new(survivors.clone()),
            ProducerConfig::default(),
        )
        .await
        {
            Ok(producer) => break producer,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "no producer: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for i in 150..200 {
        producer
            .send("orders", Some(0), None, Bytes::from(format!("v{i}")))
            .await
            .unwrap();
    }
    let total_in_0 = read[&0].len() + 50;
    let after = read_all(&survivors, "orders", 1, total_in_0).await;
    assert_eq!(after[&0].len(), total_in_0);
    assert_eq!(
        &after[&0][..read[&0].len()],
        &read[&0][..],
        "acknowledged records survive the failover in place"
    );
    for i in 0..3 {
        cluster.stop(i);
    }
}

/// Issue 12's retention bug on real nodes: a follower stopped while the leader's retention moves
/// the log start past the follower's LEO comes back, is told the leader's start (OFFSET_OUT_OF_RANGE),
/// truncates fully and starts there, and rejoins the ISR. Before the fix the leader's core let it
/// fetch below the log start, the read failed and the partition went offline with
/// KAFKA_STORAGE_ERROR; ListOffsets earliest answered 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_back_after_retention_passed_it_starts_over_at_the_leaders_log_start() {
    node_support::log_from_env();
    let log = LogSettings {
        segment_bytes: 4096,
        retention_bytes: 16_384,
        retention_check_interval_ms: 100,
        ..LogSettings::default()
    };
    let mut cluster = start_cluster(log).await;
    let bootstrap = cluster.bootstrap();
    let admin = Admin::new(ClientConfig::new(bootstrap.clone())).unwrap();
    every_broker_unfenced(&admin, 3).await;
    let min_isr = [("min.insync.replicas".to_string(), "2".to_string())];
    admin
        .create_topic("retained", 1, 3, &min_isr)
        .await
        .unwrap();
    let tp = wire::TopicPartition::new("retained", 0);
    let partition_on = |cluster: &TestCluster, i: usize| cluster.partition_on(i, &tp);
    let full_isr = |cluster: &TestCluster| cluster.leader_with_full_isr(&tp);
    let leader = cluster.wait_for_full_isr(&tp).await;
    let follower = (leader + 1) % 3;
    let survivors: Vec<String> = (0..3)
        .filter(|&i| i != follower)
        .map(|i| bootstrap[i].clone())
        .collect();
    let value = Bytes::from(vec![b'r'; 400]);
    let producer = Producer::new(
        ClientConfig::new(survivors.clone()),
        ProducerConfig::default(),
    )
    .await
    .unwrap();
    // Some records the follower holds before it stops, so it comes back with a log (and an
    // epoch) of its own, not an empty one.
    for _ in 0..5 {
        producer
            .send("retained", Some(0), None, value.clone())
            .await
            .unwrap();
    }
    eventually("the follower has the first records", || {
        let caught_up =
            partition_on(&cluster, follower).is_some_and(|p| p.status().log_end_offset.0 >= 5);
        async move { caught_up }
    })
    .await;
    let follower_end = partition_on(&cluster, follower)
        .unwrap()
        .status()
        .log_end_offset;
    cluster.stop(follower);

    // ~120 KiB in 4 KiB segments with 16 KiB retained: the leader's start passes the follower.
    for _ in 0..300 {
        producer
            .send("retained", Some(0), None, value.clone())
            .await
            .unwrap();
    }
    // Ten retention checks: the leader's log now starts past the follower's LEO. (Waited by
    // time, not by asking the core: the bug was that the core never heard of the new start.)
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    cluster.boot(follower).await;
    eventually("the follower back in the ISR", || {
        let back = full_isr(&cluster) == Some(leader);
        async move { back }
    })
    .await;
    for i in 0..3 {
        let status = partition_on(&cluster, i).unwrap().status();
        assert_eq!(status.failed, None, "node {i} serves the partition");
    }
    let leader_status = partition_on(&cluster, leader).unwrap().status();
    assert!(
        leader_status.log_start_offset > follower_end,
        "retention moved the leader's log start past the follower: {leader_status:?}"
    );
    let follower_status = partition_on(&cluster, follower).unwrap().status();
    assert!(
        follower_status.log_start_offset > follower_end,
        "the follower started over at the leader's log start: {follower_status:?}"
    );

    // The partition keeps serving: produce with every replica, and ListOffsets earliest answers
    // the real start, where a consumer from the beginning starts reading.
    for _ in 0..5 {
        producer
            .send("retained", Some(0), None, value.clone())
            .await
            .unwrap();
    }
    for i in 0..3 {
        // Among them: the core's log start is the log's.
        partition_on(&cluster, i).unwrap().check_invariants();
    }
    let earliest = partition_on(&cluster, leader)
        .unwrap()
        .list_offset(None, -2)
        .unwrap()
        .expect("the log start is always listed")
        .offset;
    assert!(
        earliest > follower_end && earliest >= leader_status.log_start_offset,
        "ListOffsets earliest is the real start: {earliest:?}"
    );
    let mut consumer = Consumer::new(
        ClientConfig::new(bootstrap.clone()),
        ConsumerConfig::new(None),
    )
    .unwrap();
    consumer.assign(vec![("retained".to_string(), 0)]);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let first = loop {
        assert!(tokio::time::Instant::now() < deadline, "nothing read");
        if let Some(record) = consumer.poll(200).await.unwrap().first() {
            break record.offset;
        }
    };
    assert!(
        first >= earliest.0 && first > follower_end.0,
        "a consumer from the beginning starts at the log start, not at 0 (read {first}, earliest {earliest:?})"
    );
    for i in 0..3 {
        cluster.stop(i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_cannot_open_a_partition_tells_the_controller() {
    let mut cluster = start_cluster(LogSettings::default()).await;
    let admin = Admin::new(ClientConfig::new(cluster.bootstrap())).unwrap();
    every_broker_unfenced(&admin, 3).await;
    admin.create_topic("unopenable", 1, 3, &[]).await.unwrap();
    let hosted_by_all = |cluster: &TestCluster| {
        (0..3).all(|i| {
            cluster.nodes[i]
                .as_ref()
                .and_then(|n| n.broker.as_ref())
                .is_some_and(|b| {
                    b.partition(&wire::TopicPartition::new("unopenable", 0))
                        .is_some()
                })
        })
    };
    eventually("every broker hosts the partition", || {
        let hosted = hosted_by_all(&cluster);
        async move { hosted }
    })
    .await;
    // Broker 3 restarts to find a file where the partition's directory was: it cannot open it.
    cluster.stop(2);
    let disk = cluster.disks[2].as_disk();
    disk.remove_dir(std::path::Path::new("unopenable-0"), true)
        .unwrap();
    disk.create(std::path::Path::new("unopenable-0")).unwrap();
    cluster.boot(2).await;
    let offline_in_metadata = |cluster: &TestCluster| {
        let Some(broker) = cluster.nodes[0].as_ref().and_then(|n| n.broker.as_ref()) else {
            return false;
        };
        let image = broker.image();
        image
            .topics()
            .get("unopenable")
            .is_some_and(|t| t.partitions[0].offline.contains(&wire::BrokerId(3)))
    };
    eventually("the controller knows broker 3's copy is offline", || {
        let offline = offline_in_metadata(&cluster);
        async move { offline }
    })
    .await;
    // The operator removes the stray file: the copy is repaired without a restart.
    disk.remove(std::path::Path::new("unopenable-0")).unwrap();
    eventually("broker 3's copy back and hosted", || {
        let back = !offline_in_metadata(&cluster) && hosted_by_all(&cluster);
        async move { back }
    })
    .await;
    for i in 0..3 {
        cluster.stop(i);
    }
}

/// A 3-node cluster with topic `topic` (1 partition, RF 3, min ISR 2) whose follower's disk is
/// full: 20 records of `fill` are acknowledged after the disk stopped taking more, so the
/// follower's copy has failed. Returns the cluster, its partition, the leader's and the
/// follower's node index, and a producer.
async fn cluster_with_a_full_follower(
    topic: &str,
    fill: u8,
) -> (TestCluster, wire::TopicPartition, usize, usize, Producer) {
    let cluster = start_cluster(LogSettings::default()).await;
    let bootstrap = cluster.bootstrap();
    let admin = Admin::new(ClientConfig::new(bootstrap.clone())).unwrap();
    every_broker_unfenced(&admin, 3).await;
    let min_isr = [("min.insync.replicas".to_string(), "2".to_string())];
    admin.create_topic(topic, 1, 3, &min_isr).await.unwrap();
    let tp = wire::TopicPartition::new(topic, 0);
    let leader = cluster.wait_for_full_isr(&tp).await;
    let follower = (leader + 1) % 3;
    let producer = Producer::new(ClientConfig::new(bootstrap), ProducerConfig::default())
        .await
        .unwrap();
    let value = Bytes::from(vec![fill; 1024]);
    // The follower's disk is full from now on: its next append fails.
    let disk = &cluster.disks[follower];
    disk.set_faults(log_core::FaultConfig {
        capacity_bytes: Some(disk.used_bytes()),
        ..log_core::FaultConfig::default()
    });
    for _ in 0..20 {
        producer
            .send(topic, Some(0), None, value.clone())
            .await
            .unwrap();
    }
    (cluster, tp, leader, follower, producer)
}

/// A follower's disk fills up: its append fails, the copy leaves the ISR (the controller marks
/// it offline) while the others go on acknowledging; once space returns the copy is repaired in
/// place — no restart — catches up and rejoins the ISR, and nothing acknowledged is missing.
/// (Before, a full disk kept the partition failed until the broker restarted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_failed_on_a_full_disk_comes_back_once_space_returns() {
    node_support::log_from_env();
    let (cluster, tp, leader, follower, producer) =
        cluster_with_a_full_follower("full", b'f').await;
    let bootstrap = cluster.bootstrap();
    let value = Bytes::from(vec![b'f'; 1024]);
    let disk = &cluster.disks[follower];
    let partition_on = |cluster: &TestCluster, i: usize| cluster.partition_on(i, &tp);
    let state_on = |cluster: &TestCluster, i: usize| {
        let broker = cluster.nodes[i].as_ref()?.broker.as_ref()?;
        Some(broker.image().partition(&tp)?.clone())
    };
    let follower_id = wire::BrokerId(i32::try_from(follower + 1).unwrap());
    eventually("the full copy is marked offline", || {
        let offline = state_on(&cluster, leader)
            .is_some_and(|s| s.offline.contains(&follower_id) && !s.isr.contains(&follower_id));
        async move { offline }
    })
    .await;
    // Not hosted counts too: a repair attempt reopens the partition, and it fails again.
    assert!(
        partition_on(&cluster, follower).is_none_or(|p| p.status().failed.is_some()),
        "the copy on the full disk stopped serving"
    );

    // Space returns: no restart, the copy comes back by itself.
    disk.set_faults(log_core::FaultConfig::default());
    eventually("the repaired copy back in the ISR", || {
        let state = state_on(&cluster, leader);
        let back = state.is_some_and(|s| s.offline.is_empty() && s.isr.len() == 3);
        async move { back }
    })
    .await;
    let repaired = partition_on(&cluster, follower).unwrap().status();
    assert_eq!(repaired.failed, None, "serving again: {repaired:?}");
    for _ in 0..5 {
        producer
            .send("full", Some(0), None, value.clone())
            .await
            .unwrap();
    }
    let read = read_all(&bootstrap, "full", 1, 25).await;
    let offsets: Vec<i64> = read[&0].iter().map(|(offset, _)| *offset).collect();
    assert_eq!(
        offsets,
        (0..25).collect::<Vec<i64>>(),
        "nothing acknowledged is missing"
    );
    eventually("the repaired copy holds every record", || {
        let end = partition_on(&cluster, follower).map(|p| p.status().log_end_offset.0);
        async move { end == Some(25) }
    })
    .await;
    let mut cluster = cluster;
    for i in 0..3 {
        cluster.stop(i);
    }
}

/// A failed copy's offline mark cleared while it is still failed (simulator seed 541): a first
/// repair's `ReplicaOnline`, refused for a stale partition epoch and retried, commits after the
/// copy failed again and its new repair task's `ReplicaOffline` was answered (already marked,
/// nothing changed). The new task must say offline again and repair once space returns; before,
/// it waited for good for a mark that never came back, and the copy never rejoined the ISR.
/// The late `ReplicaOnline` is sent here as that retry would, with the broker's incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_whose_offline_mark_a_late_online_report_cleared_still_comes_back() {
    node_support::log_from_env();
    // The follower's disk fills up: its copy fails and is marked offline.
    let (cluster, tp, leader, follower, _producer) =
        cluster_with_a_full_follower("remarked", b'r').await;
    let disk = &cluster.disks[follower];
    let state_on = |cluster: &TestCluster, i: usize| {
        let broker = cluster.nodes[i].as_ref()?.broker.as_ref()?;
        Some(broker.image().partition(&tp)?.clone())
    };
    let follower_id = wire::BrokerId(i32::try_from(follower + 1).unwrap());
    eventually("the full copy is marked offline", || {
        let offline = state_on(&cluster, follower)
            .is_some_and(|s| s.offline.contains(&follower_id) && !s.isr.contains(&follower_id));
        async move { offline }
    })
    .await;

    // An earlier repair's retried ReplicaOnline commits now, while the copy is still failed.
    let broker = cluster.nodes[follower]
        .as_ref()
        .and_then(|n| n.broker.clone())
        .unwrap();
    let late_online = controller::Request::ReplicaOnline {
        broker: broker.broker_id,
        incarnation: broker.incarnation,
        partition: tp.clone(),
        intact: true,
    };
    let cleared = match broker.controller.request(late_online).await.unwrap() {
        controller::Reply::PartitionAltered(state) => state,
        other => panic!("unexpected answer to ReplicaOnline: {other:?}"),
    };
    assert!(
        !cleared.offline.contains(&follower_id),
        "the late report cleared the mark: {cleared:?}"
    );
    // The follower's image shows it (or something newer) before space returns, else its repair
    // task could simply find the old mark still there.
    eventually("the cleared mark in the follower's image", || {
        let seen = state_on(&cluster, follower)
            .is_some_and(|s| s.partition_epoch >= cleared.partition_epoch);
        async move { seen }
    })
    .await;
    assert!(
        cluster
            .partition_on(follower, &tp)
            .is_none_or(|p| p.status().failed.is_some()),
        "the copy on the full disk is still failed"
    );

    // Space returns: the copy is marked offline again, repaired and back in the ISR.
    disk.set_faults(log_core::FaultConfig::default());
    eventually("the repaired copy back in the ISR", || {
        let back =
            state_on(&cluster, leader).is_some_and(|s| s.offline.is_empty() && s.isr.len() == 3);
        async move { back }
    })
    .await;
    let repaired = cluster.partition_on(follower, &tp).unwrap().status();
    assert_eq!(repaired.failed, None, "serving again: {repaired:?}");
    let mut cluster = cluster;
    for i in 0..3 {
        cluster.stop(i);
    }
}

/// A serving copy marked offline by a late report (simulator seed 38294): a follower's copy
/// failed while its broker was cut off, its `ReplicaOffline` was retried, and an earlier try
/// landed after the repair's `ReplicaOnline` had cleared the mark. The copy served on, but the
/// controller refused every AlterPartition adding it back (an offline copy cannot join the ISR)
/// and nobody reported again: it stayed out of the ISR for good. The broker now says a serving
/// copy marked offline is online again. The late report is sent here as that try would land,
/// with the broker's incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_copy_a_late_offline_report_marked_says_it_is_online_and_rejoins_the_isr() {
    node_support::log_from_env();
    let cluster = start_cluster(LogSettings::default()).await;
    let admin = Admin::new(ClientConfig::new(cluster.bootstrap())).unwrap();
    every_broker_unfenced(&admin, 3).await;
    let min_isr = [("min.insync.replicas".to_string(), "2".to_string())];
    admin.create_topic("late", 1, 3, &min_isr).await.unwrap();
    let tp = wire::TopicPartition::new("late", 0);
    let leader = cluster.wait_for_full_isr(&tp).await;
    let follower = (leader + 1) % 3;
    let broker = cluster.nodes[follower]
        .as_ref()
        .and_then(|n| n.broker.clone())
        .unwrap();
    let late_offline = controller::Request::ReplicaOffline {
        broker: broker.broker_id,
        incarnation: broker.incarnation,
        partition: tp.clone(),
    };
    let marked = match broker.controller.request(late_offline).await.unwrap() {
        controller::Reply::PartitionAltered(state) => state,
        other => panic!("unexpected answer to ReplicaOffline: {other:?}"),
    };
    assert!(
        marked.offline.contains(&broker.broker_id) && !marked.isr.contains(&broker.broker_id),
        "the late report marked the serving copy offline: {marked:?}"
    );
    let state_on = |cluster: &TestCluster, i: usize| {
        let broker = cluster.nodes[i].as_ref()?.broker.as_ref()?;
        Some(broker.image().partition(&tp)?.clone())
    };
    eventually("the copy unmarked and back in the ISR", || {
        let back = state_on(&cluster, leader).is_some_and(|s| {
            s.partition_epoch > marked.partition_epoch && s.offline.is_empty() && s.isr.len() == 3
        });
        async move { back }
    })
    .await;
    let serving = cluster.partition_on(follower, &tp).unwrap().status();
    assert_eq!(
        serving.failed, None,
        "it never stopped serving: {serving:?}"
    );
    let mut cluster = cluster;
    for i in 0..3 {
        cluster.stop(i);
    }
}
