//! Admin requests and protocol edges against a real single node over TCP (issue 13): CreateTopics
//! with a replication factor below min ISR, explicit assignments, validate-only and a message on
//! every refusal; DeleteTopics' message; OffsetCommit to an unknown partition; FindCoordinator
//! for a transactional id; Metadata's controller id.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use broker::node;
use broker::node::config::TopicDefaults;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, DeleteTopicsRequest, DeleteTopicsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use node_support::{outcomes, ready, Connection};

/// One combined node, default topics of 1 partition, replication factor 1 and min ISR 2.
async fn start_node() -> (node::NodeHandle, String) {
    node_support::start_node(TopicDefaults {
        min_insync_replicas: 2,
        ..TopicDefaults::default()
    })
    .await
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn topic(topic: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn assigned(topic: &str, assignments: &[(i32, &[i32])]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            assignments
                .iter()
                .map(|(index, brokers)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(*index)
                        .with_broker_ids(brokers.iter().map(|b| KBroker(*b)).collect())
                })
                .collect(),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_below_min_isr_assigned_validated_and_refused_with_messages() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;
    ready(&mut c).await;

    // Replication factor 1 under min ISR 2 (the node's default and the topic's own config).
    let min_isr = CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("min.insync.replicas"))
        .with_value(Some(StrBytes::from_static_str("2")));
    let response = c
        .create(
            vec![
                topic("rf1", 2, 1).with_configs(vec![min_isr]),
                topic("dflt", -1, -1),
            ],
            false,
        )
        .await;
    assert_eq!(
        outcomes(&response),
        vec![(0, String::new()), (0, String::new())]
    );
    let counts: Vec<(i32, i16)> = response
        .topics
        .iter()
        .map(|t| (t.num_partitions, t.replication_factor))
        .collect();
    assert_eq!(
        counts,
        vec![(2, 1), (1, 1)],
        "what was created, defaults resolved"
    );

    // Validate-only answers as creating would, and creates nothing.
    let response = c
        .create(
            vec![
                topic("dry", 3, 1),
                topic("rf1", 1, 1),
                topic("dry-rf", 1, 3),
            ],
            true,
        )
        .await;
    let got = outcomes(&response);
    assert_eq!(got[0], (0, String::new()));
    assert_eq!(got[1].0, 36, "TOPIC_ALREADY_EXISTS: {got:?}");
    assert_eq!(got[2].0, 38, "INVALID_REPLICATION_FACTOR: {got:?}");
    assert_eq!(response.topics[0].num_partitions, 3);
    let listed: Vec<String> = c
        .metadata()
        .await
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(!listed.contains(&"dry".to_string()), "{listed:?}");

    // Explicit assignments: kept; Kafka's broker-side and controller-side checks refused.
    let response = c
        .create(
            vec![
                assigned("manual", &[(1, &[1]), (0, &[1])]),
                assigned("gap", &[(0, &[1]), (2, &[1])]),
                assigned("twice", &[(0, &[1]), (0, &[1])]),
                assigned("unknown-broker", &[(0, &[7])]),
                assigned("dup-broker", &[(0, &[1, 1])]),
                assigned("with-rf", &[(0, &[1])]).with_replication_factor(1),
                topic("rf0", 1, 0),
                topic("p0", 0, 1),
                topic("bad/name", 1, 1),
                topic("manual", 1, 1),
            ],
            false,
        )
        .await;
    let got = outcomes(&response);
    let codes: Vec<i16> = got.iter().map(|(code, _)| *code).collect();
    // Both "manual" entries: Kafka refuses a name given twice in one request (INVALID_REQUEST).
    assert_eq!(
        codes,
        vec![42, 39, 39, 39, 39, 42, 38, 37, 17, 42],
        "{got:?}"
    );
    for (code, message) in &got {
        assert!(
            *code == 0 || !message.is_empty(),
            "a refusal says why: {got:?}"
        );
    }
    assert!(got[1].1.contains("consecutive"), "{got:?}");
    assert!(got[3].1.contains("broker 7 is not registered"), "{got:?}");
    assert!(
        got[5].1.contains("replication factor was not set to -1"),
        "{got:?}"
    );
    let response = c
        .create(vec![assigned("manual", &[(1, &[1]), (0, &[1])])], false)
        .await;
    assert_eq!(outcomes(&response), vec![(0, String::new())]);
    assert_eq!(
        (
            response.topics[0].num_partitions,
            response.topics[0].replication_factor
        ),
        (2, 1)
    );

    // DeleteTopics v5 carries a message.
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![name("nope"), name("dflt")])
        .with_timeout_ms(10_000);
    let mut body = c.call(ApiKey::DeleteTopics, 5, &request).await;
    let response = DeleteTopicsResponse::decode(&mut body, 5).unwrap();
    let codes: Vec<(i16, bool)> = response
        .responses
        .iter()
        .map(|r| (r.error_code, r.error_message.is_some()))
        .collect();
    assert_eq!(codes, vec![(3, true), (0, false)]);
    node.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_to_unknown_partitions_and_find_coordinator_for_transactions() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;
    ready(&mut c).await;
    let response = c.create(vec![topic("known", 1, 1)], false).await;
    assert_eq!(outcomes(&response), vec![(0, String::new())]);

    // No transaction coordinator: a transactional id gets a non-retriable error at once.
    let find = |key_type: i8| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")])
    };
    let mut body = c.call(ApiKey::FindCoordinator, 4, &find(1)).await;
    let response = FindCoordinatorResponse::decode(&mut body, 4).unwrap();
    let coordinator = &response.coordinators[0];
    assert_eq!(
        coordinator.error_code, 53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED, not retriable: {response:?}"
    );
    assert!(coordinator.error_message.is_some());
    let mut body = c.call(ApiKey::FindCoordinator, 4, &find(7)).await;
    let response = FindCoordinatorResponse::decode(&mut body, 4).unwrap();
    assert_eq!(response.coordinators[0].error_code, 42, "INVALID_REQUEST");

    // A standalone commit (generation -1): the unknown topic and partition get
    // UNKNOWN_TOPIC_OR_PARTITION, whatever the group's own answer for the known one.
    let partition = |index: i32| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(0)
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("known"))
                .with_partitions(vec![partition(0), partition(5)]),
            OffsetCommitRequestTopic::default()
                .with_name(name("unknown"))
                .with_partitions(vec![partition(0)]),
        ]);
    let mut body = c.call(ApiKey::OffsetCommit, 8, &request).await;
    let response = OffsetCommitResponse::decode(&mut body, 8).unwrap();
    let codes: Vec<(String, i32, i16)> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(codes[1], ("known".into(), 5, 3), "{codes:?}");
    assert_eq!(codes[2], ("unknown".into(), 0, 3), "{codes:?}");
    assert_eq!(codes[0].0, "known");
    assert_ne!(
        codes[0].2, 3,
        "the known partition is not refused as unknown: {codes:?}"
    );
    node.shutdown();
}
