//! The group protocol and admin operations against scripted fake brokers.
#![allow(clippy::unwrap_used)]

mod fake;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use client::admin::Admin;
use client::consumer::{Consumer, ConsumerConfig};
use client::consumer_protocol::{decode_assignment, encode_subscription};
use client::error::code;
use client::{ClientConfig, ClientError};
use fake::{api_versions_response, broker_versions, metadata_response, FakeServer, Reply, Seen};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsResponse, DeleteTopicsResponse, FetchResponse,
    FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListOffsetsResponse, OffsetCommitResponse, OffsetFetchResponse, RequestKind, ResponseKind,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

fn config(addr: &str) -> ClientConfig {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.request_timeout_ms = 500;
    config.retry_backoff_ms = 5;
    config
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A coordinator + leader for topic "t" (3 partitions). The group has a second, scripted member
/// "m-2"; ours is told MEMBER_ID_REQUIRED first, then "m-1", and leads. The first heartbeat
/// answers REBALANCE_IN_PROGRESS.
fn group_script(port: i32) -> Arc<dyn Fn(&Seen) -> Reply + Send + Sync> {
    let heartbeats = Arc::new(AtomicUsize::new(0));
    let generation = Arc::new(AtomicUsize::new(0));
    Arc::new(move |seen: &Seen| {
        let response = match &seen.body {
            RequestKind::ApiVersions(_) => api_versions_response(&broker_versions()),
            RequestKind::Metadata(_) => metadata_response(&[(1, port)], "t", &[1, 1, 1]),
            RequestKind::FindCoordinator(request) => {
                assert_eq!(request.key.as_str(), "g");
                ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default()
                        .with_node_id(BrokerId(1))
                        .with_host(s("127.0.0.1"))
                        .with_port(port),
                )
            }
            RequestKind::JoinGroup(request) => {
                assert_eq!(request.protocol_type.as_str(), "consumer");
                assert_eq!(request.protocols[0].name.as_str(), "range");
                if request.member_id.is_empty() {
                    ResponseKind::JoinGroup(
                        JoinGroupResponse::default()
                            .with_error_code(code::MEMBER_ID_REQUIRED)
                            .with_member_id(s("m-1")),
                    )
                } else {
                    let generation = generation.fetch_add(1, Ordering::SeqCst) as i32 + 1;
                    let ours = JoinGroupResponseMember::default()
                        .with_member_id(s("m-1"))
                        .with_metadata(request.protocols[0].metadata.clone());
                    let theirs = JoinGroupResponseMember::default()
                        .with_member_id(s("m-2"))
                        .with_metadata(encode_subscription(&["t".to_string()]).unwrap());
                    ResponseKind::JoinGroup(
                        JoinGroupResponse::default()
                            .with_generation_id(generation)
                            .with_protocol_name(Some(s("range")))
                            .with_leader(s("m-1"))
                            .with_member_id(s("m-1"))
                            .with_members(vec![ours, theirs]),
                    )
                }
            }
            RequestKind::SyncGroup(request) => {
                let mine = request
                    .assignments
                    .iter()
                    .find(|a| a.member_id.as_str() == "m-1")
                    .unwrap();
                ResponseKind::SyncGroup(
                    SyncGroupResponse::default().with_assignment(mine.assignment.clone()),
                )
            }
            RequestKind::OffsetFetch(request) => {
                let partitions = request.topics.as_ref().unwrap()[0]
                    .partition_indexes
                    .iter()
                    .map(|&p| {
                        let offset = if p == 0 { 7 } else { -1 };
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                    })
                    .collect();
                let topic = OffsetFetchResponseTopic::default()
                    .with_name(s("t").into())
                    .with_partitions(partitions);
                ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_topics(vec![topic]))
            }
            RequestKind::ListOffsets(request) => {
                let topic = &request.topics[0];
                let answer = ListOffsetsPartitionResponse::default()
                    .with_partition_index(topic.partitions[0].partition_index)
                    .with_offset(0);
                let topic = ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(vec![answer]);
                ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(vec![topic]))
            }
            RequestKind::Fetch(_) => ResponseKind::Fetch(FetchResponse::default()),
            RequestKind::Heartbeat(_) => {
                let error_code = if heartbeats.fetch_add(1, Ordering::SeqCst) == 0 {
                    code::REBALANCE_IN_PROGRESS
                } else {
                    0
                };
                ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(error_code))
            }
            RequestKind::OffsetCommit(request) => {
                let topics = request
                    .topics
                    .iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                            })
                            .collect();
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
            }
            RequestKind::LeaveGroup(_) => ResponseKind::LeaveGroup(LeaveGroupResponse::default()),
            _ => return Reply::Silent,
        };
        Reply::Respond(response)
    })
}

#[tokio::test]
async fn group_member_joins_leads_commits_rejoins_and_leaves() {
    let mut server = FakeServer::bind().await;
    server.start(group_script(server.port));
    let mut consumer_config = ConsumerConfig::new(Some("g".to_string()));
    consumer_config.heartbeat_interval_ms = 1;
    let mut consumer = Consumer::new(config(&server.addr), consumer_config).unwrap();
    consumer.subscribe(vec!["t".to_string()]).unwrap();
    consumer.poll(0).await.unwrap();

    assert_eq!(
        consumer.assignment(),
        vec![("t".to_string(), 0), ("t".to_string(), 1)]
    );
    assert_eq!(
        consumer.position("t", 0),
        Some(7),
        "resumed from the committed offset"
    );
    assert_eq!(
        consumer.position("t", 1),
        Some(0),
        "no commit: reset to earliest"
    );
    assert_eq!(
        server.seen(ApiKey::JoinGroup).len(),
        2,
        "MEMBER_ID_REQUIRED, then joined"
    );
    let sync = server.seen(ApiKey::SyncGroup);
    let RequestKind::SyncGroup(sync) = &sync[0].body else {
        unreachable!()
    };
    let assigned: BTreeMap<String, BTreeMap<String, Vec<i32>>> = sync
        .assignments
        .iter()
        .map(|a| {
            (
                a.member_id.as_str().to_string(),
                decode_assignment(&a.assignment).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        assigned["m-1"]["t"],
        vec![0, 1],
        "range assignment by the leader"
    );
    assert_eq!(assigned["m-2"]["t"], vec![2]);

    consumer.commit_sync().await.unwrap();
    let commits = server.seen(ApiKey::OffsetCommit);
    let RequestKind::OffsetCommit(commit) = &commits[0].body else {
        unreachable!()
    };
    assert_eq!(commit.generation_id_or_member_epoch, 1);
    assert_eq!(commit.member_id.as_str(), "m-1");
    let offsets: Vec<(i32, i64)> = commit.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 7), (1, 0)]);
    assert_eq!(consumer.committed("t", 0).await.unwrap(), Some(7));
    assert_eq!(consumer.committed("t", 1).await.unwrap(), None);

    // Heartbeat answers REBALANCE_IN_PROGRESS: the member rejoins in the same poll.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    consumer.poll(0).await.unwrap();
    assert_eq!(server.seen(ApiKey::Heartbeat).len(), 1);
    assert_eq!(
        server.seen(ApiKey::JoinGroup).len(),
        3,
        "rejoined after the rebalance signal"
    );
    assert_eq!(consumer.group().unwrap().generation_id, 2);

    consumer.close().await.unwrap();
    let leaves = server.seen(ApiKey::LeaveGroup);
    assert_eq!(leaves.len(), 1);
    let RequestKind::LeaveGroup(leave) = &leaves[0].body else {
        unreachable!()
    };
    assert_eq!(leaves[0].version, 4);
    assert_eq!(leave.members[0].member_id.as_str(), "m-1");
}

#[tokio::test]
async fn subscribe_and_commit_need_a_group() {
    let mut consumer = Consumer::new(
        ClientConfig::new(vec!["127.0.0.1:1".into()]),
        ConsumerConfig::new(None),
    )
    .unwrap();
    assert!(matches!(
        consumer.subscribe(vec!["t".into()]),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        consumer.commit_sync().await,
        Err(ClientError::Config(_))
    ));
}

#[tokio::test]
async fn admin_creates_refuses_existing_and_deletes() {
    let mut server = FakeServer::bind().await;
    let port = server.port;
    let created = Arc::new(AtomicUsize::new(0));
    server.start(Arc::new(move |seen: &Seen| {
        let response = match &seen.body {
            RequestKind::ApiVersions(_) => api_versions_response(&broker_versions()),
            RequestKind::Metadata(_) => metadata_response(&[(1, port)], "t", &[1]),
            RequestKind::CreateTopics(request) => {
                let topic = &request.topics[0];
                assert_eq!((topic.num_partitions, topic.replication_factor), (3, 2));
                assert_eq!(topic.configs[0].name.as_str(), "min.insync.replicas");
                let error_code = if created.fetch_add(1, Ordering::SeqCst) == 0 {
                    0
                } else {
                    code::TOPIC_ALREADY_EXISTS
                };
                let result = CreatableTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(error_code);
                ResponseKind::CreateTopics(
                    CreateTopicsResponse::default().with_topics(vec![result]),
                )
            }
            RequestKind::DeleteTopics(request) => {
                let result =
                    DeletableTopicResult::default().with_name(Some(request.topic_names[0].clone()));
                ResponseKind::DeleteTopics(
                    DeleteTopicsResponse::default().with_responses(vec![result]),
                )
            }
            _ => return Reply::Silent,
        };
        Reply::Respond(response)
    }));
    let admin = Admin::new(config(&server.addr)).unwrap();
    let configs = [("min.insync.replicas".to_string(), "2".to_string())];
    admin.create_topic("new", 3, 2, &configs).await.unwrap();
    let error = admin.create_topic("new", 3, 2, &configs).await.unwrap_err();
    assert_eq!(
        error,
        ClientError::TopicAlreadyExists {
            topic: "new".into()
        }
    );
    assert!(!error.is_indeterminate());
    admin.delete_topic("new").await.unwrap();
    let metadata = admin.metadata(None).await.unwrap();
    assert_eq!(metadata.partition_count("t").unwrap(), 1);
    assert_eq!(metadata.leader_addr("t", 0).unwrap().1, server.addr);
}
