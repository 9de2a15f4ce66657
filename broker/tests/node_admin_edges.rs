//! Admin requests and protocol edges against a real single node over TCP (issue 13): CreateTopics
//! with a replication factor below min ISR, explicit assignments, validate-only and a message on
//! every refusal; DeleteTopics' message; OffsetCommit to an unknown partition; FindCoordinator
//! for a transactional id; Metadata's controller id.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::node::config::{Listeners, NodeConfig, Role, TopicDefaults};
use broker::node::{self, NodeOptions};
use broker::protocol::frame::{encode_frame, FrameReader};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use log_core::MemDisk;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A free port in 26000..26200, never the same twice in this process: the tests run in
/// parallel, and a port found free is bound only later by the node. Below the kernel's ephemeral
/// range, where outgoing connections take their local ports.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(26_000);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 26_200, "no free port left in 26000..26200");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One combined node, default topics of 1 partition, replication factor 1 and min ISR 2.
async fn start_node() -> (node::NodeHandle, String) {
    let (kafka, controller) = (free_port(), free_port());
    let config = NodeConfig {
        node_id: 1,
        roles: vec![Role::Broker, Role::Controller],
        data_dir: "/unused".into(),
        controller_voters: vec![format!("1@127.0.0.1:{controller}")],
        listeners: Listeners {
            kafka: Some(format!("127.0.0.1:{kafka}")),
            advertised_kafka: None,
            controller: Some(format!("127.0.0.1:{controller}")),
            metrics: None,
        },
        topics: TopicDefaults {
            min_insync_replicas: 2,
            ..TopicDefaults::default()
        },
        log: Default::default(),
        timing: Default::default(),
        connections: Default::default(),
        security: Default::default(),
    };
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    (handle, format!("127.0.0.1:{kafka}"))
}

struct Connection {
    stream: TcpStream,
    reader: FrameReader,
    correlation_id: i32,
}

impl Connection {
    async fn open(address: &str) -> Connection {
        Connection {
            stream: TcpStream::connect(address).await.unwrap(),
            reader: FrameReader::new(1 << 20),
            correlation_id: 0,
        }
    }

    async fn call<T: Encodable>(&mut self, api_key: ApiKey, version: i16, body: &T) -> Bytes {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rill-test")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut payload, version).unwrap();
        let mut framed = BytesMut::new();
        encode_frame(&payload, &mut framed);
        self.stream.write_all(&framed).await.unwrap();
        let mut response = tokio::time::timeout(
            Duration::from_secs(20),
            self.reader.read_frame(&mut self.stream),
        )
        .await
        .expect("answered in time")
        .expect("the connection stays open")
        .expect("a response, not EOF");
        let header =
            ResponseHeader::decode(&mut response, api_key.response_header_version(version))
                .unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        response
    }

    async fn create(
        &mut self,
        topics: Vec<CreatableTopic>,
        validate_only: bool,
    ) -> CreateTopicsResponse {
        let request = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only);
        let mut body = self.call(ApiKey::CreateTopics, 7, &request).await;
        CreateTopicsResponse::decode(&mut body, 7).unwrap()
    }

    async fn metadata(&mut self) -> MetadataResponse {
        let request = MetadataRequest::default().with_topics(None);
        let mut body = self.call(ApiKey::Metadata, 12, &request).await;
        MetadataResponse::decode(&mut body, 12).unwrap()
    }
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

/// (error code, message) of each topic of a CreateTopics answer.
fn outcomes(response: &CreateTopicsResponse) -> Vec<(i16, String)> {
    response
        .topics
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (t.error_code, message.unwrap_or_default())
        })
        .collect()
}

async fn ready(connection: &mut Connection) {
    for _ in 0..200 {
        let metadata = connection.metadata().await;
        if metadata.brokers.len() == 1 && metadata.controller_id.0 == 1 {
            return;
        }
        assert_eq!(
            metadata.controller_id.0, -1,
            "no controller named before the broker is listed: {metadata:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node never listed itself with a controller");
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
