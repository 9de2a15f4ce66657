//! ElectLeaders (KIP-460), DescribeLogDirs and DescribeProducers (KIP-664) over real TCP (issue
//! 13 item 4): every answer of one node, then three nodes where a preferred election moves the
//! leadership back to a restarted replica with nothing acknowledged lost, and followers describe
//! their producers too.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::{eventually, ready_cluster, Connection, TestCluster};

use broker::node::config::{LogSettings, TopicDefaults};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, DescribeLogDirsRequest, DescribeLogDirsResponse,
    DescribeProducersRequest, DescribeProducersResponse, ElectLeadersRequest, ElectLeadersResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use log_core::BatchBuilder;
use wire::TopicPartition;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELECTION_NOT_NEEDED: i16 = 84;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One idempotent (or, with `producer` `None`, plain) batch of `records` records.
fn batch(producer: Option<(i64, i16, i32)>, records: usize, timestamp: i64) -> Bytes {
    let mut builder = BatchBuilder::new();
    if let Some((id, epoch, sequence)) = producer {
        builder = builder.producer(id, epoch, sequence);
    }
    for i in 0..records {
        let value = format!("value-{i}");
        builder.push(None, Some(value.as_bytes()), timestamp + i as i64, &[]);
    }
    Bytes::from(builder.build())
}

impl Connection {
    async fn create_topic(&mut self, topic: &str, partitions: i32, replicas: i16) {
        let topic = CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replicas);
        let response = self.create(vec![topic], false).await;
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }

    /// ElectLeaders at `version`: (topic, partition, error code) of every partition answered,
    /// and the top-level error code.
    async fn elect(
        &mut self,
        version: i16,
        election_type: i8,
        partitions: Option<&[(&str, i32)]>,
    ) -> (Vec<(String, i32, i16)>, i16) {
        let topic_partitions = partitions.map(|named| {
            named
                .iter()
                .map(|(topic, partition)| {
                    TopicPartitions::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![*partition])
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(10_000);
        let mut body = self.call(ApiKey::ElectLeaders, version, &request).await;
        let response = ElectLeadersResponse::decode(&mut body, version).unwrap();
        let mut results = Vec::new();
        for topic in &response.replica_election_results {
            for p in &topic.partition_result {
                if p.error_code != 0 {
                    assert!(p.error_message.is_some(), "a refusal says why: {p:?}");
                }
                results.push((topic.topic.0.to_string(), p.partition_id, p.error_code));
            }
        }
        results.sort();
        (results, response.error_code)
    }

    /// DescribeLogDirs v4: (log dir, [(topic, partition, size)]).
    async fn log_dirs(
        &mut self,
        topics: Option<&[(&str, i32)]>,
    ) -> (String, Vec<(String, i32, i64)>) {
        let topics = topics.map(|named| {
            named
                .iter()
                .map(|(topic, partition)| {
                    DescribableLogDirTopic::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![*partition])
                })
                .collect()
        });
        let request = DescribeLogDirsRequest::default().with_topics(topics);
        let mut body = self.call(ApiKey::DescribeLogDirs, 4, &request).await;
        let response = DescribeLogDirsResponse::decode(&mut body, 4).unwrap();
        assert_eq!(response.error_code, 0);
        assert_eq!(response.results.len(), 1, "one log directory per node");
        let dir = &response.results[0];
        assert_eq!(dir.error_code, 0);
        let mut sizes = Vec::new();
        for topic in &dir.topics {
            for p in &topic.partitions {
                assert_eq!((p.offset_lag, p.is_future_key), (0, false));
                sizes.push((
                    topic.name.0.to_string(),
                    p.partition_index,
                    p.partition_size,
                ));
            }
        }
        sizes.sort();
        (dir.log_dir.to_string(), sizes)
    }

    /// DescribeProducers v0 of `topic`'s `partitions`: per partition (error code, [(id, epoch,
    /// last sequence, last timestamp)]).
    async fn producers(
        &mut self,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<(i16, Vec<(i64, i32, i32, i64)>)> {
        let request = DescribeProducersRequest::default()
            .with_topics(vec![TopicRequest::default()
                .with_name(name(topic))
                .with_partition_indexes(partitions.to_vec())]);
        let mut body = self.call(ApiKey::DescribeProducers, 0, &request).await;
        let response = DescribeProducersResponse::decode(&mut body, 0).unwrap();
        response.topics[0]
            .partitions
            .iter()
            .map(|p| {
                let producers = p
                    .active_producers
                    .iter()
                    .map(|s| {
                        assert_eq!((s.coordinator_epoch, s.current_txn_start_offset), (-1, -1));
                        (
                            s.producer_id.0,
                            s.producer_epoch,
                            s.last_sequence,
                            s.last_timestamp,
                        )
                    })
                    .collect();
                (p.error_code, producers)
            })
            .collect()
    }
}

#[tokio::test]
async fn the_three_apis_are_advertised() {
    let (node, address) = node_support::start_node(TopicDefaults::default()).await;
    let mut connection = Connection::open(&address).await;
    assert_eq!(
        connection.advertised(3, ApiKey::ElectLeaders).await,
        Some((0, 2))
    );
    assert_eq!(
        connection.advertised(3, ApiKey::DescribeLogDirs).await,
        Some((1, 4))
    );
    assert_eq!(
        connection.advertised(3, ApiKey::DescribeProducers).await,
        Some((0, 0))
    );
    node.shutdown();
}

#[tokio::test]
async fn one_node_answers_every_case() {
    let topics = TopicDefaults {
        replication_factor: 1,
        min_insync_replicas: 1,
        auto_create: false,
        ..TopicDefaults::default()
    };
    let (node, address) = node_support::start_node(topics).await;
    let mut connection = Connection::open(&address).await;
    node_support::ready(&mut connection).await;
    connection.create_topic("logs", 2, 1).await;

    // DescribeLogDirs: the configured directory, every hosted partition, sizes from the log.
    let (dir, sizes) = connection.log_dirs(None).await;
    assert_eq!(dir, "/unused");
    assert_eq!(sizes, vec![("logs".into(), 0, 0), ("logs".into(), 1, 0)]);
    assert_eq!(
        connection
            .produce_batch("logs", 1, batch(None, 10, 1_000))
            .await,
        (0, 0)
    );
    let broker = node.broker.as_ref().unwrap();
    let on_disk = broker
        .partition(&TopicPartition::new("logs", 1))
        .unwrap()
        .size_bytes()
        .unwrap();
    assert!(on_disk > 0);
    let (_, sizes) = connection
        .log_dirs(Some(&[("logs", 1), ("absent", 0)]))
        .await;
    assert_eq!(
        sizes,
        vec![("logs".into(), 1, i64::try_from(on_disk).unwrap())],
        "only named partitions this node hosts"
    );

    // DescribeProducers: two idempotent producers, a plain one not listed.
    let (first, second) = (4_000, 4_001);
    assert_eq!(
        connection
            .produce_batch("logs", 0, batch(Some((first, 0, 0)), 3, 10_000))
            .await,
        (0, 0)
    );
    assert_eq!(
        connection
            .produce_batch("logs", 0, batch(Some((first, 0, 3)), 2, 20_000))
            .await,
        (0, 3)
    );
    assert_eq!(
        connection
            .produce_batch("logs", 0, batch(Some((second, 7, 0)), 4, 30_000))
            .await,
        (0, 5)
    );
    assert_eq!(
        connection
            .produce_batch("logs", 0, batch(None, 1, 40_000))
            .await,
        (0, 9)
    );
    let described = connection.producers("logs", &[0, 1, 9, -1]).await;
    assert_eq!(
        described[0],
        (0, vec![(first, 0, 4, 20_001), (second, 7, 3, 30_003)]),
        "id, epoch, last sequence and the last batch's max timestamp"
    );
    assert_eq!(described[1], (0, vec![]), "plain producers are not tracked");
    assert_eq!(described[2].0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(described[3].0, UNKNOWN_TOPIC_OR_PARTITION);
    let unknown = connection.producers("absent", &[0]).await;
    assert_eq!(unknown[0].0, UNKNOWN_TOPIC_OR_PARTITION);

    // ElectLeaders: the only replica leads (preferred: not needed; unclean: it has a leader).
    let expected_not_needed = vec![
        ("logs".to_string(), 0, ELECTION_NOT_NEEDED),
        ("logs".to_string(), 1, ELECTION_NOT_NEEDED),
    ];
    let both = [("logs", 0), ("logs", 1)];
    for (version, election_type) in [(0, 0), (1, 0), (2, 0), (2, 1)] {
        let (results, error) = connection.elect(version, election_type, Some(&both)).await;
        assert_eq!(
            results, expected_not_needed,
            "v{version} type {election_type}"
        );
        assert_eq!(error, 0);
    }
    // Every partition (a null list): those needing no election are left out.
    assert_eq!(connection.elect(2, 0, None).await, (vec![], 0));
    let (results, _) = connection
        .elect(2, 0, Some(&[("absent", 0), ("logs", 5), ("bad name!", 0)]))
        .await;
    assert!(
        results.iter().all(|r| r.2 == UNKNOWN_TOPIC_OR_PARTITION),
        "{results:?}"
    );
    assert_eq!(results.len(), 3);
    let (results, error) = connection.elect(2, 5, Some(&both)).await;
    assert_eq!(error, INVALID_REQUEST, "an unknown election type");
    assert!(results.iter().all(|r| r.2 == INVALID_REQUEST));
    node.shutdown();
}

/// A partition is created while its preferred replica's node is stopped, so another replica
/// leads; the node comes back and joins the ISR (rill moves no leadership by itself): a
/// preferred election moves the leadership to it through the controller, Metadata shows it,
/// every acknowledged record is still there and produces go on; followers answer
/// DescribeProducers with the same state. (The node stops before any partition exists: an
/// in-process stop leaves the connections other nodes' fetchers hold to it answering.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preferred_election_moves_the_leadership_back() {
    node_support::log_from_env();
    let topics = TopicDefaults {
        replication_factor: 3,
        partitions: 1,
        min_insync_replicas: 2,
        unclean_leader_election: false,
        auto_create: false,
    };
    let mut cluster = TestCluster::start(3, topics, LogSettings::default(), 70).await;
    let bootstrap = cluster.bootstrap();
    let mut admin = Connection::open(&bootstrap[1]).await;
    ready_cluster(&mut admin, 3).await;
    cluster.stop(0);
    ready_cluster(&mut admin, 2).await;
    let assigned = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![KBroker(1), KBroker(2), KBroker(3)]);
    let topic = CreatableTopic::default()
        .with_name(name("moved"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![assigned]);
    let created = admin.create(vec![topic], false).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let tp = TopicPartition::new("moved", 0);
    let leader_of = |metadata: &kafka_protocol::messages::MetadataResponse| {
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().unwrap().0.as_str() == "moved")
            .unwrap();
        topic.partitions[0].leader_id.0
    };
    assert_eq!(
        leader_of(&admin.metadata().await),
        2,
        "the first live replica leads"
    );
    let mut produced = 0i64;
    let producer = 9_000;
    let mut sequence = 0;
    let mut produce_to_leader = async |cluster: &TestCluster, records: usize| {
        let mut leader = None;
        eventually("a leader", || {
            leader = (0..3).find(|&i| {
                cluster
                    .partition_on(i, &tp)
                    .is_some_and(|p| p.status().is_leader)
            });
            leader.is_some()
        })
        .await;
        let leader = leader.unwrap();
        let mut connection = Connection::open(&cluster.bootstrap()[leader]).await;
        let records_batch = batch(Some((producer, 0, sequence)), records, 50_000 + produced);
        let answer = connection.produce_batch("moved", 0, records_batch).await;
        assert_eq!(
            answer,
            (0, produced),
            "acks=all produce to node {}",
            leader + 1
        );
        sequence += i32::try_from(records).unwrap();
        produced += i64::try_from(records).unwrap();
    };
    produce_to_leader(&cluster, 10).await;
    // While it is away: not available (fenced, outside the ISR).
    let (results, _) = admin.elect(2, 0, Some(&[("moved", 0)])).await;
    assert_eq!(
        results,
        vec![("moved".into(), 0, PREFERRED_LEADER_NOT_AVAILABLE)]
    );

    cluster.boot(0).await;
    eventually("the preferred replica in a full ISR", || {
        cluster.leader_with_full_isr(&tp).is_some()
    })
    .await;
    produce_to_leader(&cluster, 5).await;
    assert_eq!(
        leader_of(&admin.metadata().await),
        2,
        "nothing moved it back"
    );

    let (results, error) = admin.elect(2, 0, Some(&[("moved", 0)])).await;
    assert_eq!((results, error), (vec![("moved".into(), 0, 0)], 0));
    assert_eq!(
        leader_of(&admin.metadata().await),
        1,
        "the answering broker's Metadata shows the new leader at once"
    );
    eventually("the preferred replica's partition leads", || {
        cluster
            .partition_on(0, &tp)
            .is_some_and(|p| p.status().is_leader)
    })
    .await;
    let (results, _) = admin.elect(2, 0, Some(&[("moved", 0)])).await;
    assert_eq!(results, vec![("moved".into(), 0, ELECTION_NOT_NEEDED)]);
    produce_to_leader(&cluster, 7).await;
    eventually("every replica holds every acknowledged record", || {
        (0..3).all(|i| {
            cluster.partition_on(i, &tp).is_some_and(|p| {
                let status = p.status();
                status.high_watermark.0 == produced && status.log_end_offset.0 == produced
            })
        })
    })
    .await;

    // Every replica remembers the producer; followers answer as the leader does.
    for address in &bootstrap {
        let mut connection = Connection::open(address).await;
        let described = connection.producers("moved", &[0]).await;
        let (code, producers) = &described[0];
        assert_eq!(*code, 0);
        assert_eq!(producers.len(), 1);
        assert_eq!(producers[0].0, producer);
        assert_eq!(producers[0].2, sequence - 1);
        assert_eq!(
            producers[0].3,
            50_000 + 15 + 6,
            "the last batch's max timestamp"
        );
    }
    for i in 0..3 {
        cluster.stop(i);
    }
}
