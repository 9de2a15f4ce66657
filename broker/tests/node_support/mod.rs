//! Shared helpers of the tests that speak the Kafka protocol to a real node over TCP: a free
//! port, a combined single node on a memory disk, framed requests and a connection that sends
//! one request at a time and checks each answer's correlation id.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::node::config::{
    Listeners, LogSettings, NodeConfig, Role, SecuritySettings, Timing, TopicDefaults,
};
use broker::node::{self, NodeOptions};
use broker::partition::Partition;
use broker::protocol::frame::{encode_frame, FrameReader};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use log_core::MemDisk;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::TopicPartition;

/// A free port in 24000..27000, never the same twice in this process: the tests run in
/// parallel, and a port found free is bound only later by the node. Below the kernel's ephemeral
/// range (32768..61000 here) on purpose: tests stop and restart nodes on their ports, and a port
/// from the ephemeral range can meanwhile become the local port of some outgoing connection
/// ("address in use" at the restart, seen once in five runs on a busy machine).
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(24_000);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 27_000, "no free port left in 24000..27000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One combined node on a memory disk with these topic defaults; returns its Kafka address.
pub async fn start_node(topics: TopicDefaults) -> (node::NodeHandle, String) {
    start_node_with(topics, Timing::default()).await
}

/// One combined node on a memory disk with these topic defaults and timing.
pub async fn start_node_with(topics: TopicDefaults, timing: Timing) -> (node::NodeHandle, String) {
    let (kafka, controller) = (free_port(), free_port());
    let config = single_node_config(kafka, controller, topics, timing);
    let disk: Arc<dyn log_core::Disk> = MemDisk::new(1).as_disk();
    let handle = node::start(config, disk, NodeOptions::default())
        .await
        .unwrap();
    (handle, format!("127.0.0.1:{kafka}"))
}

/// The config of a combined node 1 on 127.0.0.1 with these ports, topic defaults and timing.
pub fn single_node_config(
    kafka: u16,
    controller: u16,
    topics: TopicDefaults,
    timing: Timing,
) -> NodeConfig {
    NodeConfig {
        node_id: 1,
        roles: vec![Role::Broker, Role::Controller],
        data_dir: "/unused".into(),
        controller_voters: vec![format!("1@127.0.0.1:{controller}")],
        broker_rack: None,
        replica_selector_class: None,
        listeners: Listeners {
            kafka: Some(format!("127.0.0.1:{kafka}")),
            advertised_kafka: None,
            controller: Some(format!("127.0.0.1:{controller}")),
            metrics: None,
            ..Listeners::default()
        },
        topics,
        log: Default::default(),
        timing,
        connections: Default::default(),
        security: Default::default(),
    }
}

/// A request with its header, framed for the wire.
pub fn framed<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> BytesMut {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).unwrap();
    framed_raw(api_key, version, correlation_id, &encoded)
}

/// A request whose body is already encoded (by hand, for versions kafka-protocol no longer
/// writes), with its header, framed for the wire.
pub fn framed_raw(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rill-test")));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, api_key.request_header_version(version))
        .unwrap();
    payload.put_slice(body);
    let mut framed = BytesMut::new();
    encode_frame(&payload, &mut framed);
    framed
}

/// A client connection that sends one request at a time.
pub struct Connection {
    pub stream: TcpStream,
    pub reader: FrameReader,
    pub correlation_id: i32,
}

impl Connection {
    pub async fn open(address: &str) -> Connection {
        Connection {
            stream: TcpStream::connect(address).await.unwrap(),
            reader: FrameReader::new(4 << 20),
            correlation_id: 0,
        }
    }

    /// Sends `body` and returns the answer's body (after its header, whose correlation id
    /// must match); the connection must stay open and answer within 20 s.
    pub async fn call<T: Encodable>(&mut self, api_key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut encoded = BytesMut::new();
        body.encode(&mut encoded, version).unwrap();
        self.call_raw(api_key, version, &encoded).await
    }

    /// [`Connection::call`] with a body already encoded.
    pub async fn call_raw(&mut self, api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        self.correlation_id += 1;
        let request = framed_raw(api_key, version, self.correlation_id, body);
        self.stream.write_all(&request).await.unwrap();
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

    /// CreateTopics v7 with a 10 s timeout.
    pub async fn create(
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

    /// FindCoordinator v2 for `group_id` until this node answers as the coordinator (the first
    /// call creates the offsets topic).
    pub async fn find_coordinator(&mut self, group_id: &str) {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group_id.to_string()))
            .with_key_type(0);
        for _ in 0..200 {
            let mut body = self.call(ApiKey::FindCoordinator, 2, &request).await;
            let found = FindCoordinatorResponse::decode(&mut body, 2).unwrap();
            if found.error_code == 0 && found.node_id.0 == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no coordinator for {group_id}");
    }

    /// Produces `records` (one or more batches) to `topic`-`partition` with acks=all (Produce
    /// v9): (error code, base offset).
    pub async fn produce_batch(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> (i16, i64) {
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records));
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![data])]);
        let mut body = self.call(ApiKey::Produce, 9, &request).await;
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// The (min, max) version ApiVersions (v`version`) advertises for `key`, if any.
    pub async fn advertised(&mut self, version: i16, key: ApiKey) -> Option<(i16, i16)> {
        let request = ApiVersionsRequest::default();
        let mut body = self.call(ApiKey::ApiVersions, version, &request).await;
        let response = ApiVersionsResponse::decode(&mut body, version).unwrap();
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    }

    /// Metadata v12 of every topic.
    pub async fn metadata(&mut self) -> MetadataResponse {
        let request = MetadataRequest::default().with_topics(None);
        let mut body = self.call(ApiKey::Metadata, 12, &request).await;
        MetadataResponse::decode(&mut body, 12).unwrap()
    }
}

/// (error code, message) of each topic of a CreateTopics answer.
pub fn outcomes(response: &CreateTopicsResponse) -> Vec<(i16, String)> {
    response
        .topics
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (t.error_code, message.unwrap_or_default())
        })
        .collect()
}

/// Waits until the single node lists itself and names itself controller (it names none before).
pub async fn ready(connection: &mut Connection) {
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

/// Logs to the test's output with the filter in `RILL_LOG`, when set.
pub fn log_from_env() {
    if let Ok(filter) = std::env::var("RILL_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Bounds [`eventually`]'s waits.
pub const EVENTUALLY_MS_MAX: u64 = 30_000;

/// Polls `check` every 50 ms until it holds; fails the test after [`EVENTUALLY_MS_MAX`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(EVENTUALLY_MS_MAX);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node behind `connection` lists `brokers` brokers and names a controller.
pub async fn ready_cluster(connection: &mut Connection, brokers: usize) {
    for _ in 0..400 {
        let metadata = connection.metadata().await;
        if metadata.brokers.len() == brokers && metadata.controller_id.0 >= 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster never listed {brokers} brokers with a controller");
}

/// `n` combined nodes on 127.0.0.1, each on its own memory disk (which survives a stop), with
/// fast timeouts and a cluster secret: nodes can be stopped and booted again on their ports.
pub struct TestCluster {
    pub configs: Vec<NodeConfig>,
    pub disks: Vec<MemDisk>,
    pub nodes: Vec<Option<node::NodeHandle>>,
}

impl TestCluster {
    /// Starts `n` nodes with these topic defaults and log settings; node `i`'s disk is seeded
    /// with `disk_seed + i`.
    pub async fn start(
        n: usize,
        topics: TopicDefaults,
        log: LogSettings,
        disk_seed: u64,
    ) -> TestCluster {
        Self::start_configured(n, topics, log, disk_seed, |_, _| {}).await
    }

    /// [`TestCluster::start`] with `configure(i, config)` applied to node `i`'s configuration
    /// before any node boots.
    pub async fn start_configured(
        n: usize,
        topics: TopicDefaults,
        log: LogSettings,
        disk_seed: u64,
        configure: impl Fn(usize, &mut NodeConfig),
    ) -> TestCluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let mut cluster = TestCluster {
            configs: Vec::new(),
            disks: Vec::new(),
            nodes: Vec::new(),
        };
        for (i, (kafka, controller)) in ports.iter().enumerate() {
            cluster.configs.push(NodeConfig {
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
                topics: topics.clone(),
                log: log.clone(),
                timing: Timing {
                    replica_lag_time_max_ms: 3_000,
                    broker_session_timeout_ms: 3_000,
                    broker_heartbeat_interval_ms: 200,
                    controller_tick_ms: 50,
                    group_initial_rebalance_delay_ms: 0,
                    ..Timing::default()
                },
                connections: Default::default(),
                // Inter-node traffic authenticated, as `rill cluster up` runs it.
                security: SecuritySettings {
                    cluster_secret: Some("node-test-cluster-secret".into()),
                    ..SecuritySettings::default()
                },
            });
            cluster.disks.push(MemDisk::new(disk_seed + i as u64));
            cluster.nodes.push(None);
        }
        for (i, config) in cluster.configs.iter_mut().enumerate() {
            configure(i, config);
        }
        for i in 0..n {
            cluster.boot(i).await;
        }
        cluster
    }

    /// Starts node `i`, retrying while a stopped predecessor still holds its ports (bounded).
    pub async fn boot(&mut self, i: usize) {
        for attempt in 0.. {
            let disk: Arc<dyn log_core::Disk> = self.disks[i].as_disk();
            match node::start(self.configs[i].clone(), disk, NodeOptions::default()).await {
                Ok(handle) => {
                    self.nodes[i] = Some(handle);
                    return;
                }
                Err(error) if attempt < 50 && error.to_string().contains("in use") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("node {} does not start: {error}", i + 1),
            }
        }
    }

    /// Stops node `i` (its disk stays).
    pub fn stop(&mut self, i: usize) {
        if let Some(handle) = self.nodes[i].take() {
            handle.shutdown();
        }
    }

    /// Node `i`'s replica of `tp`, if it is up and hosts one.
    pub fn partition_on(&self, i: usize, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.nodes[i].as_ref()?.broker.as_ref()?.partition(tp)
    }

    /// The node leading `tp` with every replica in its ISR, if any.
    pub fn leader_with_full_isr(&self, tp: &TopicPartition) -> Option<usize> {
        let n = self.nodes.len();
        (0..n).find(|&i| {
            self.partition_on(i, tp).is_some_and(|p| {
                let status = p.status();
                let full = status.state.as_ref().is_some_and(|s| s.isr.len() == n);
                status.is_leader && full
            })
        })
    }

    /// Every node's Kafka address.
    pub fn bootstrap(&self) -> Vec<String> {
        self.configs
            .iter()
            .map(|c| c.listeners.kafka.clone().unwrap())
            .collect()
    }
}
