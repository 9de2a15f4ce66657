//! Group and cluster admin APIs against a real node over TCP (issue 13 item 4): DeleteGroups,
//! OffsetDelete (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, GROUP_SUBSCRIBED_TO_TOPIC, unknown
//! partitions) and DescribeCluster.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use node_support::Connection;

use std::time::Duration;

use broker::node::config::{Timing, TopicDefaults};
use broker::node::{self};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeClusterRequest, DescribeClusterResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_GROUP_ID: i16 = 24;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// One combined node with min ISR 1, so its offsets topic can be created at once.
async fn start_node() -> (node::NodeHandle, String) {
    let topics = TopicDefaults {
        min_insync_replicas: 1,
        ..TopicDefaults::default()
    };
    let timing = Timing {
        group_initial_rebalance_delay_ms: 0,
        ..Timing::default()
    };
    node_support::start_node_with(topics, timing).await
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn group(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

/// Commits `offset` for each (topic, partition) as a simple commit (generation -1), retrying
/// while the offsets topic is created and loaded; every partition's code.
async fn commit(c: &mut Connection, group_id: &str, offsets: &[(&str, i32, i64)]) -> Vec<i16> {
    let topics = offsets
        .iter()
        .map(|(topic, partition, offset)| {
            OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)])
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_topics(topics);
    let mut codes = Vec::new();
    for _ in 0..200 {
        let mut body = c.call(ApiKey::OffsetCommit, 8, &request).await;
        let response = OffsetCommitResponse::decode(&mut body, 8).unwrap();
        codes = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: not yet.
        if !codes.iter().any(|c| [14, 15, 16].contains(c)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    codes
}

/// The committed offset of (topic, partition) for the group, -1 when none.
async fn committed(c: &mut Connection, group_id: &str, topic: &str, partition: i32) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![partition])]));
    let mut body = c.call(ApiKey::OffsetFetch, 7, &request).await;
    let response = OffsetFetchResponse::decode(&mut body, 7).unwrap();
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0].partitions[0].committed_offset
}

async fn delete_groups(c: &mut Connection, ids: &[&str]) -> Vec<(String, i16)> {
    let request =
        DeleteGroupsRequest::default().with_groups_names(ids.iter().map(|id| group(id)).collect());
    let mut body = c.call(ApiKey::DeleteGroups, 2, &request).await;
    let response = DeleteGroupsResponse::decode(&mut body, 2).unwrap();
    response
        .results
        .iter()
        .map(|r| (r.group_id.0.to_string(), r.error_code))
        .collect()
}

/// OffsetDelete: (top-level code, per requested partition code).
async fn delete_offsets(
    c: &mut Connection,
    group_id: &str,
    partitions: &[(&str, i32)],
) -> (i16, Vec<i16>) {
    let topics = partitions
        .iter()
        .map(|(topic, partition)| {
            OffsetDeleteRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(*partition)
                ])
        })
        .collect();
    let request = OffsetDeleteRequest::default()
        .with_group_id(group(group_id))
        .with_topics(topics);
    let mut body = c.call(ApiKey::OffsetDelete, 0, &request).await;
    let response = OffsetDeleteResponse::decode(&mut body, 0).unwrap();
    let codes = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    (response.error_code, codes)
}

/// Kafka's ConsumerProtocol subscription v0 to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(i32::try_from(topics.len()).unwrap());
    for topic in topics {
        out.put_i16(i16::try_from(topic.len()).unwrap());
        out.put_slice(topic.as_bytes());
    }
    out.put_i32(-1); // no user data
    out.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_delete_groups_and_offset_delete_answer_as_kafka() {
    let (node, address) = start_node().await;
    let mut c = Connection::open(&address).await;
    for _ in 0..200 {
        let mut body = c
            .call(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(None),
            )
            .await;
        let metadata = MetadataResponse::decode(&mut body, 12).unwrap();
        if metadata.brokers.len() == 1 && metadata.controller_id.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // DescribeCluster v0 and v1: the broker, its controller id and the cluster id.
    for version in [0, 1] {
        let mut body = c
            .call(
                ApiKey::DescribeCluster,
                version,
                &DescribeClusterRequest::default(),
            )
            .await;
        let cluster = DescribeClusterResponse::decode(&mut body, version).unwrap();
        assert_eq!(cluster.error_code, 0);
        assert_eq!(cluster.cluster_id.to_string(), "rill");
        assert_eq!(cluster.controller_id.0, 1);
        let brokers: Vec<(i32, String)> = cluster
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        assert_eq!(brokers, vec![(1, address.clone())]);
    }
    let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
    let mut body = c.call(ApiKey::DescribeCluster, 1, &controllers).await;
    let refused = DescribeClusterResponse::decode(&mut body, 1).unwrap();
    assert_eq!(refused.error_code, UNSUPPORTED_ENDPOINT_TYPE);

    let create = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(2)
                .with_replication_factor(1),
            CreatableTopic::default()
                .with_name(name("u"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000);
    let mut body = c.call(ApiKey::CreateTopics, 7, &create).await;
    let created = CreateTopicsResponse::decode(&mut body, 7).unwrap();
    assert!(
        created.topics.iter().all(|t| t.error_code == 0),
        "{created:?}"
    );

    // An Empty group: OffsetDelete takes one partition (and names an unknown one), then
    // DeleteGroups takes the group.
    c.find_coordinator("gone").await;
    c.find_coordinator("busy").await;
    assert_eq!(
        commit(&mut c, "gone", &[("t", 0, 5), ("t", 1, 7)]).await,
        vec![0, 0]
    );
    assert_eq!(
        delete_offsets(&mut c, "gone", &[("t", 0), ("nope", 0)]).await,
        (0, vec![0, UNKNOWN_TOPIC_OR_PARTITION])
    );
    assert_eq!(committed(&mut c, "gone", "t", 0).await, -1);
    assert_eq!(committed(&mut c, "gone", "t", 1).await, 7);
    assert_eq!(
        delete_groups(&mut c, &["gone", "never", ""]).await,
        vec![
            ("gone".to_string(), 0),
            ("never".to_string(), GROUP_ID_NOT_FOUND),
            (String::new(), INVALID_GROUP_ID),
        ]
    );
    assert_eq!(committed(&mut c, "gone", "t", 1).await, -1);
    assert_eq!(
        delete_groups(&mut c, &["gone"]).await,
        vec![("gone".to_string(), GROUP_ID_NOT_FOUND)],
        "deleted once"
    );
    assert_eq!(
        delete_offsets(&mut c, "gone", &[("t", 1)]).await,
        (GROUP_ID_NOT_FOUND, vec![])
    );

    // A group with a member subscribed to t: DeleteGroups refuses it, OffsetDelete keeps t's
    // offsets and deletes u's.
    assert_eq!(
        commit(&mut c, "busy", &[("t", 0, 3), ("u", 0, 4)]).await,
        vec![0, 0]
    );
    let join = JoinGroupRequest::default()
        .with_group_id(group("busy"))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription(&["t"]))]);
    let mut body = c.call(ApiKey::JoinGroup, 3, &join).await;
    let joined = JoinGroupResponse::decode(&mut body, 3).unwrap();
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(
        delete_groups(&mut c, &["busy"]).await,
        vec![("busy".to_string(), NON_EMPTY_GROUP)]
    );
    assert_eq!(
        delete_offsets(&mut c, "busy", &[("t", 0), ("u", 0)]).await,
        (0, vec![GROUP_SUBSCRIBED_TO_TOPIC, 0])
    );
    assert_eq!(committed(&mut c, "busy", "t", 0).await, 3);
    assert_eq!(committed(&mut c, "busy", "u", 0).await, -1);
    node.shutdown();
}
