//! Issue 15's attacks on a 3-node cluster over real TCP, each refused with nothing changed and
//! the cluster serving on: a forged raft heartbeat with term u64::MAX, forged CreateTopic /
//! DeleteTopic / broker registrations on the controller port (unauthenticated, with another
//! secret, and from a member impersonating another), a forged follower fetch and
//! OffsetForLeaderEpoch on the Kafka port, and clients deleting or creating
//! `__consumer_offsets`. Before issue 15 every one of these was accepted.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

mod node_support;

use std::sync::Arc;
use std::time::Duration;

use broker::auth::{ClusterSecret, NodeCredentials};
use broker::control::wire::{self as control_wire, ControlMessage, MessageReader};
use broker::node::config::{Listeners, NodeConfig, Role, SecuritySettings, Timing, TopicDefaults};
use broker::node::{self, NodeHandle, NodeOptions};
use broker::protocol::frame::{encode_frame, FrameReader};
use bytes::{Bytes, BytesMut};
use client::admin::Admin;
use client::producer::{Producer, ProducerConfig};
use client::ClientConfig;
use controller::raft_prelude::{Message, MessageType};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId as KBroker, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use log_core::MemDisk;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::{BrokerId, TopicPartition};

const CLUSTER_SECRET: &str = "forged-frames-test-secret";
/// Bounds every wait in this file.
const WAIT_MS_MAX: u64 = 30_000;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;

struct Cluster {
    nodes: Vec<NodeHandle>,
    kafka: Vec<String>,
    controllers: Vec<String>,
    admin: Admin,
}

impl Cluster {
    /// Three combined nodes; `secret: None` runs the insecure mode (no handshake).
    async fn start(secret: Option<&str>) -> Cluster {
        if let Ok(filter) = std::env::var("RILL_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| (node_support::free_port(), node_support::free_port()))
            .collect();
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, (kafka, controller)) in ports.iter().enumerate() {
            let config = NodeConfig {
                node_id: i32::try_from(i + 1).unwrap(),
                roles: vec![Role::Broker, Role::Controller],
                data_dir: format!("/unused/{i}").into(),
                controller_voters: voters.clone(),
                broker_rack: None,
                replica_selector_class: None,
                listeners: Listeners {
                    kafka: Some(format!("127.0.0.1:{kafka}")),
                    advertised_kafka: None,
                    controller: Some(format!("127.0.0.1:{controller}")),
                    metrics: None,
                    ..Listeners::default()
                },
                topics: TopicDefaults {
                    replication_factor: 3,
                    partitions: 1,
                    min_insync_replicas: 2,
                    unclean_leader_election: false,
                    auto_create: true,
                },
                log: Default::default(),
                timing: Timing {
                    replica_lag_time_max_ms: 3_000,
                    broker_session_timeout_ms: 3_000,
                    broker_heartbeat_interval_ms: 200,
                    controller_tick_ms: 50,
                    group_initial_rebalance_delay_ms: 0,
                    ..Timing::default()
                },
                connections: Default::default(),
                security: SecuritySettings {
                    cluster_secret: secret.map(str::to_string),
                    ..SecuritySettings::default()
                },
            };
            let disk: Arc<dyn log_core::Disk> = MemDisk::new(i as u64).as_disk();
            nodes.push(
                node::start(config, disk, NodeOptions::default())
                    .await
                    .unwrap(),
            );
        }
        let kafka: Vec<String> = ports
            .iter()
            .map(|(k, _)| format!("127.0.0.1:{k}"))
            .collect();
        let controllers = ports
            .iter()
            .map(|(_, c)| format!("127.0.0.1:{c}"))
            .collect();
        let admin = Admin::new(ClientConfig::new(kafka.clone())).unwrap();
        let cluster = Cluster {
            nodes,
            kafka,
            controllers,
            admin,
        };
        eventually("every broker unfenced", || async {
            cluster
                .admin
                .metadata(None)
                .await
                .is_ok_and(|m| m.brokers.len() == 3)
        })
        .await;
        cluster
    }

    /// Creates `topic` (RF 3) and waits for its leader with a full ISR.
    async fn topic_with_full_isr(&self, topic: &str) -> usize {
        self.admin.create_topic(topic, 1, 3, &[]).await.unwrap();
        let tp = TopicPartition::new(topic, 0);
        let mut leader = None;
        eventually("a leader with a full ISR", || {
            let found = self.leader_with_full_isr(&tp);
            leader = found;
            async move { found.is_some() }
        })
        .await;
        leader.unwrap()
    }

    fn leader_with_full_isr(&self, tp: &TopicPartition) -> Option<usize> {
        (0..3).find(|&i| {
            let partition = self.nodes[i].broker.as_ref().and_then(|b| b.partition(tp));
            partition.is_some_and(|p| {
                let status = p.status();
                status.is_leader && status.state.as_ref().is_some_and(|s| s.isr.len() == 3)
            })
        })
    }

    /// Every controller runs, no term moved far, and the cluster still creates a topic and takes
    /// an acks=all write.
    async fn still_serves(&self, topic: &str) {
        for node in &self.nodes {
            let status = node.controller.as_ref().unwrap().status();
            assert!(!status.stopped, "a controller stopped");
            assert!(status.term < 1_000, "term moved to {}", status.term);
        }
        self.topic_with_full_isr(topic).await;
        let producer = Producer::new(
            ClientConfig::new(self.kafka.clone()),
            ProducerConfig::default(),
        )
        .await
        .unwrap();
        producer
            .send(
                topic,
                Some(0),
                None,
                Bytes::from_static(b"after the attack"),
            )
            .await
            .unwrap();
    }

    async fn topic_names(&self) -> Vec<String> {
        let metadata = self.admin.metadata(None).await.unwrap();
        metadata.topics.keys().cloned().collect()
    }
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

/// The 86-byte frame of issue 15: a heartbeat "from 2" with term u64::MAX.
fn forged_heartbeat(to: u64) -> ControlMessage {
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = 2;
    heartbeat.to = to;
    heartbeat.term = u64::MAX;
    ControlMessage::Raft(control_wire::raft_to_bytes(&heartbeat).unwrap())
}

fn forged_requests() -> Vec<ControlMessage> {
    let request = |id: u64, request: controller::Request| ControlMessage::Request {
        id,
        request,
        wait_ms: 0,
    };
    vec![
        request(
            1,
            controller::Request::CreateTopic {
                name: "forged".into(),
                partitions: 1024,
                replication_factor: 1,
                config: controller::TopicConfig {
                    unclean_leader_election: true,
                    ..controller::TopicConfig::default()
                },
                assignments: Vec::new(),
                validate_only: false,
            },
        ),
        request(
            2,
            controller::Request::DeleteTopic {
                name: "victim".into(),
            },
        ),
        request(
            3,
            controller::Request::RegisterBroker {
                broker: BrokerId(2),
                incarnation: 42,
                listeners: Vec::new(),
                rack: None,
                clean_shutdown: false,
            },
        ),
    ]
}

/// Sends `messages` on one connection to a controller port; returns every answer read before
/// the connection closed or went quiet for a second.
async fn send_to_controller(
    address: &str,
    credentials: Option<(&NodeCredentials, u64)>,
    messages: &[ControlMessage],
) -> Vec<ControlMessage> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut reader = MessageReader::default();
    if let Some((credentials, server)) = credentials {
        control_wire::authenticate(&mut stream, &mut reader, credentials, server)
            .await
            .unwrap();
    }
    for message in messages {
        if control_wire::write_message(&mut stream, message)
            .await
            .is_err()
        {
            break; // Closed on us: what a refusal looks like.
        }
    }
    let mut answers = Vec::new();
    while let Ok(Ok(Some(answer))) =
        tokio::time::timeout(Duration::from_secs(1), reader.read(&mut stream)).await
    {
        answers.push(answer);
    }
    answers
}

fn is_reply(answer: &ControlMessage) -> bool {
    matches!(
        answer,
        ControlMessage::Reply { .. } | ControlMessage::NotController { .. }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_max_term_heartbeat_is_refused_even_without_a_secret() {
    let cluster = Cluster::start(None).await;
    for (i, address) in cluster.controllers.iter().enumerate() {
        let to = u64::try_from(i + 1).unwrap();
        send_to_controller(address, None, &[forged_heartbeat(to)]).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.still_serves("after-heartbeat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_controller_frames_are_refused() {
    let cluster = Cluster::start(Some(CLUSTER_SECRET)).await;
    let leader = cluster.topic_with_full_isr("victim").await;
    let topics_before = cluster.topic_names().await;
    let mut frames = vec![forged_heartbeat(1)];
    frames.extend(forged_requests());
    // Unauthenticated: the frames are refused and the connection closed, nothing answered.
    for address in &cluster.controllers {
        let answers = send_to_controller(address, None, &frames).await;
        assert!(!answers.iter().any(is_reply), "answered {answers:?}");
    }
    // With another secret the handshake fails.
    let stranger = NodeCredentials {
        node_id: 3,
        secret: ClusterSecret::new("not-the-cluster-secret").unwrap(),
    };
    let mut stream = TcpStream::connect(cluster.controllers[0].as_str())
        .await
        .unwrap();
    let refused =
        control_wire::authenticate(&mut stream, &mut MessageReader::default(), &stranger, 1).await;
    assert!(refused.is_err(), "a stranger authenticated");
    // A member speaks for itself only: node 3 registering broker 2 or sending raft "from 2".
    let member = NodeCredentials {
        node_id: 3,
        secret: ClusterSecret::new(CLUSTER_SECRET).unwrap(),
    };
    for (i, address) in cluster.controllers.iter().enumerate() {
        let server = u64::try_from(i + 1).unwrap();
        let impersonation = [forged_requests().remove(2), forged_heartbeat(server)];
        for frame in impersonation {
            let answers = send_to_controller(address, Some((&member, server)), &[frame]).await;
            assert!(!answers.iter().any(is_reply), "answered {answers:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.topic_names().await, topics_before, "topics changed");
    let tp = TopicPartition::new("victim", 0);
    assert!(
        cluster.leader_with_full_isr(&tp).is_some(),
        "broker 2 left the ISR"
    );
    let registration = cluster.nodes[leader].broker.as_ref().unwrap().image();
    assert_ne!(registration.brokers()[&BrokerId(2)].incarnation, 42);
    cluster.still_serves("after-forgeries").await;
}

/// A framed Kafka request.
fn framed<T: Encodable>(api_key: ApiKey, version: i16, body: &T) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("forger")));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    let mut framed = BytesMut::new();
    encode_frame(&payload, &mut framed);
    framed
}

async fn kafka_call<T: Encodable, R: Decodable>(
    address: &str,
    api_key: ApiKey,
    version: i16,
    body: &T,
) -> R {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(&framed(api_key, version, body))
        .await
        .unwrap();
    let mut reader = FrameReader::new(1 << 24);
    let mut payload = tokio::time::timeout(Duration::from_secs(10), reader.read_frame(&mut stream))
        .await
        .expect("answered in time")
        .unwrap()
        .expect("an answer");
    let header =
        ResponseHeader::decode(&mut payload, api_key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    R::decode(&mut payload, version).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_follower_fetch_is_refused_and_moves_nothing() {
    let cluster = Cluster::start(Some(CLUSTER_SECRET)).await;
    let leader = cluster.topic_with_full_isr("acked").await;
    let tp = TopicPartition::new("acked", 0);
    let partition = cluster.nodes[leader]
        .broker
        .as_ref()
        .unwrap()
        .partition(&tp)
        .unwrap();
    let status_before = partition.status();
    // A follower fetch far ahead would, if counted, move the follower's offset (and the HW).
    let follower = i32::try_from((leader + 1) % 3 + 1).unwrap();
    let fetch = FetchRequest::default()
        .with_replica_id(KBroker(follower))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("acked")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(1_000)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let answer: FetchResponse = kafka_call(&cluster.kafka[leader], ApiKey::Fetch, 12, &fetch).await;
    let code = answer.responses[0].partitions[0].error_code;
    assert_eq!(code, TOPIC_AUTHORIZATION_FAILED);
    let epochs = OffsetForLeaderEpochRequest::default()
        .with_replica_id(KBroker(follower))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("acked")))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(0)])]);
    let answer: OffsetForLeaderEpochResponse = kafka_call(
        &cluster.kafka[leader],
        ApiKey::OffsetForLeaderEpoch,
        4,
        &epochs,
    )
    .await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    let status_after = partition.status();
    assert_eq!(
        status_after.state.as_ref().map(|s| s.isr.clone()),
        status_before.state.as_ref().map(|s| s.isr.clone())
    );
    assert_eq!(status_after.high_watermark, status_before.high_watermark);
    cluster.still_serves("after-fetch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_neither_delete_nor_create_internal_topics() {
    let cluster = Cluster::start(Some(CLUSTER_SECRET)).await;
    // A commit makes the coordinator create __consumer_offsets with its own settings.
    let metadata = cluster.admin.metadata(None).await.unwrap();
    let offsets_before = metadata.topics.get("__consumer_offsets").cloned();
    let deleted = cluster.admin.delete_topic("__consumer_offsets").await;
    assert_eq!(
        deleted.unwrap_err().kafka_code(),
        Some(TOPIC_AUTHORIZATION_FAILED)
    );
    let created = cluster
        .admin
        .create_topic("__consumer_offsets", 1, 1, &[])
        .await;
    assert_eq!(created.unwrap_err().kafka_code(), Some(INVALID_REQUEST));
    let created = cluster
        .admin
        .create_topic("__transaction_state", 1, 1, &[])
        .await;
    assert!(created.is_err());
    let metadata = cluster.admin.metadata(None).await.unwrap();
    assert_eq!(
        metadata.topics.get("__consumer_offsets").cloned(),
        offsets_before
    );
    assert!(!metadata.topics.contains_key("__transaction_state"));
    cluster.still_serves("after-internal").await;
}
