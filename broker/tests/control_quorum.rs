//! A 3-voter controller quorum on loopback: election, a broker's registration and unfencing, a
//! topic created through the client reaching the broker's watched image, failover after the
//! active controller shuts down, and a restart from the durable state.
#![allow(clippy::unwrap_used)]
#![cfg(not(madsim))]

use broker::control::{
    BrokerLifecycle, ControlError, ControllerClient, ControllerHandle, ControllerNode,
    LifecycleConfig, QuorumConfig,
};
use broker::watch;
use controller::{ControllerConfig, ControllerError, MetadataImage, Reply, Request, TopicConfig};
use log_core::MemDisk;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wire::BrokerId;

/// Polling step and bound of every wait in this file.
const POLL_MS: u64 = 20;
const WAIT_MS_MAX: u64 = 10_000;

struct Cluster {
    voters: BTreeMap<u64, String>,
    disks: BTreeMap<u64, MemDisk>,
    nodes: BTreeMap<u64, ControllerHandle>,
}

fn quorum_config(id: u64, voters: &BTreeMap<u64, String>) -> QuorumConfig {
    let mut controller = ControllerConfig::new(id, voters.keys().copied().collect());
    controller.broker_session_timeout_ms = 3_000;
    controller.snapshot_interval_entries = 8;
    QuorumConfig {
        node_id: id,
        voters: voters.clone(),
        listen: voters[&id].clone(),
        tick_ms: 20,
        tick_jitter_ms: 20,
        controller,
        secret: None,
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let mut listeners = BTreeMap::new();
        let mut voters = BTreeMap::new();
        for id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            voters.insert(id, listener.local_addr().unwrap().to_string());
            listeners.insert(id, listener);
        }
        let mut cluster = Cluster {
            voters,
            disks: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        for (id, listener) in listeners {
            let disk = MemDisk::new(id);
            let config = quorum_config(id, &cluster.voters);
            let node = ControllerNode::start_on(config, listener, disk.as_disk(), Path::new("ctl"))
                .unwrap();
            cluster.disks.insert(id, disk);
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    /// Waits for exactly one active controller among the running nodes, other than `not`.
    async fn active(&self, not: Option<u64>) -> u64 {
        for _ in 0..WAIT_MS_MAX / POLL_MS {
            let active: Vec<u64> = self
                .nodes
                .iter()
                .filter(|(id, node)| Some(**id) != not && node.status().is_active)
                .map(|(id, _)| *id)
                .collect();
            if let [one] = active[..] {
                return one;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        panic!("no single active controller within {WAIT_MS_MAX} ms");
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..WAIT_MS_MAX / POLL_MS {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn wait_for_topic(image: &mut watch::Receiver<Arc<MetadataImage>>, name: &str) {
    let found = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), async {
        loop {
            if image.borrow_and_update().topics().contains_key(name) {
                return;
            }
            image.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "topic {name} never reached the broker's image"
    );
}

fn create_topic(name: &str) -> Request {
    Request::CreateTopic {
        name: name.to_string(),
        partitions: 2,
        replication_factor: 1,
        config: TopicConfig::default(),
        assignments: Vec::new(),
        validate_only: false,
    }
}

fn lifecycle_config() -> LifecycleConfig {
    LifecycleConfig {
        heartbeat_interval_ms: 100,
        metadata_wait_ms: 500,
        session_timeout_ms: 3_000,
        retry_backoff_ms: 50,
        rack: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_serves_a_broker_and_survives_losing_its_active_controller() {
    let mut cluster = Cluster::start().await;
    let first = cluster.active(None).await;
    let client = ControllerClient::new(cluster.voters.clone(), 3_000);
    let broker = BrokerLifecycle::start(
        client.clone(),
        BrokerId(7),
        Vec::new(),
        true,
        lifecycle_config(),
    );
    let session = broker.session();
    wait_for("unfenced", || !broker.fenced()).await;
    assert!(session.borrow().registered);
    assert_eq!(session.borrow().registrations, 1);

    let created = client.request(create_topic("events")).await.unwrap();
    assert!(
        matches!(&created, Reply::TopicCreated { assignments, .. } if assignments.len() == 2),
        "{created:?}"
    );
    let refused = client.request(create_topic("events")).await;
    assert_eq!(
        refused,
        Err(ControlError::Refused(ControllerError::TopicAlreadyExists(
            "events".into()
        )))
    );
    let mut image = broker.image();
    wait_for_topic(&mut image, "events").await;
    assert!(image.borrow().brokers().contains_key(&BrokerId(7)));

    // Kill the active controller: another takes over and the broker keeps its session.
    cluster.nodes[&first].shutdown();
    let second = cluster.active(Some(first)).await;
    assert_ne!(first, second);
    let beats = session.borrow().heartbeats_accepted;
    wait_for("heartbeats after failover", || {
        session.borrow().heartbeats_accepted >= beats + 5
    })
    .await;
    assert!(!broker.fenced(), "the session survived the failover");
    assert_eq!(
        session.borrow().registrations,
        1,
        "no re-registration needed"
    );
    client
        .request(create_topic("after-failover"))
        .await
        .unwrap();
    wait_for_topic(&mut image, "after-failover").await;

    // The killed node restarts from its durable state and catches up.
    let stopped = cluster.nodes.remove(&first).unwrap();
    wait_for("node stopped", || stopped.status().stopped).await;
    drop(stopped);
    let listener = rebind(&cluster.voters[&first]).await;
    let restarted = ControllerNode::start_on(
        quorum_config(first, &cluster.voters),
        listener,
        cluster.disks[&first].as_disk(),
        Path::new("ctl"),
    )
    .unwrap();
    let target = cluster.nodes[&second].status().applied_index;
    wait_for("restarted node catches up", || {
        restarted.status().applied_index >= target
    })
    .await;
    broker.shutdown();
}

/// Binds the address a stopped node used (its listener closes asynchronously).
async fn rebind(addr: &str) -> TcpListener {
    for _ in 0..WAIT_MS_MAX / POLL_MS {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    panic!("could not rebind {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gives_up_in_time_without_a_quorum() {
    // Nothing listens on these ports (bound then released).
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, listener.local_addr().unwrap().to_string());
    }
    let client = ControllerClient::new(voters, 300);
    let started = tokio::time::Instant::now();
    let outcome = client.request(create_topic("nowhere")).await;
    assert_eq!(outcome, Err(ControlError::Unavailable));
    assert!(started.elapsed() < Duration::from_millis(2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_voter_of_three_never_becomes_active() {
    let mut voters = BTreeMap::new();
    let mut listeners = Vec::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let listener = listeners.remove(0);
    drop(listeners);
    let disk = MemDisk::new(5);
    let node = ControllerNode::start_on(
        quorum_config(1, &voters),
        listener,
        disk.as_disk(),
        Path::new("ctl"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!node.status().is_active, "no quorum, no controller");
    let client = ControllerClient::new(voters, 300);
    let outcome = client.request(create_topic("nowhere")).await;
    assert!(
        matches!(
            outcome,
            Err(ControlError::Unavailable | ControlError::Timeout)
        ),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::start().await;
    let active = cluster.active(None).await;
    let garbage: [&[u8]; 3] = [
        b"\x00\x00\x00\x05{nope",          // Not JSON.
        b"\x7f\xff\xff\xff",               // Over the frame limit.
        b"\x00\x00\x00\x0b{\"Raft\":[9]}", // Not a raft message.
    ];
    for bytes in garbage {
        let mut stream = tokio::net::TcpStream::connect(cluster.voters[&active].as_str())
            .await
            .unwrap();
        stream.write_all(bytes).await.unwrap();
        stream.flush().await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), stream.read(&mut buf))
            .await
            .expect("the node closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let client = ControllerClient::new(cluster.voters.clone(), 3_000);
    let fetched = client
        .request(Request::FetchMetadata { after_index: 0 })
        .await
        .unwrap();
    assert!(
        matches!(fetched, Reply::Metadata(_)),
        "the node still serves"
    );
    assert!(cluster.nodes[&active].status().is_active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_fetch_long_polls_until_its_wait_ends() {
    let cluster = Cluster::start().await;
    cluster.active(None).await;
    let client = ControllerClient::new(cluster.voters.clone(), 3_000);
    let Reply::Metadata(fetch) = client
        .request(Request::FetchMetadata { after_index: 0 })
        .await
        .unwrap()
    else {
        panic!("metadata fetch answered with something else");
    };
    let mut image = MetadataImage::new();
    fetch.apply_to(&mut image);
    let started = tokio::time::Instant::now();
    let parked = client
        .request_waiting(
            Request::FetchMetadata {
                after_index: image.applied_index(),
            },
            400,
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "answered after {waited:?}"
    );
    let Reply::Metadata(controller::MetadataFetch::Records { batches, .. }) = parked else {
        panic!("{parked:?}");
    };
    assert!(batches.is_empty(), "nothing new was committed");
}
