//! The 3-voter controller quorum under the madsim simulator: each voter on its own simulated
//! node, a broker on a fourth; the active controller's node is killed and another takes over.
//! Runs only in the madsim build (`RUSTFLAGS="--cfg madsim"`).
#![cfg(madsim)]
#![allow(clippy::unwrap_used)]

use broker::control::{
    BrokerLifecycle, ControllerClient, ControllerHandle, ControllerNode, LifecycleConfig,
    QuorumConfig,
};
use controller::{ControllerConfig, Reply, Request, TopicConfig};
use log_core::MemDisk;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use wire::BrokerId;

const POLL_MS: u64 = 50;
const WAIT_MS_MAX: u64 = 30_000;

fn voter_ip(id: u64) -> IpAddr {
    format!("10.0.0.{id}").parse().unwrap()
}

fn active_among(nodes: &BTreeMap<u64, ControllerHandle>, dead: &[u64]) -> Option<u64> {
    let active: Vec<u64> = nodes
        .iter()
        .filter(|(id, node)| !dead.contains(id) && node.status().is_active)
        .map(|(id, _)| *id)
        .collect();
    match active[..] {
        [one] => Some(one),
        _ => None,
    }
}

async fn wait_active(nodes: &BTreeMap<u64, ControllerHandle>, dead: &[u64]) -> u64 {
    for _ in 0..WAIT_MS_MAX / POLL_MS {
        if let Some(id) = active_among(nodes, dead) {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    panic!("no single active controller");
}

#[madsim::test]
async fn simulated_quorum_fails_over() {
    let runtime = madsim::runtime::Handle::current();
    let voters: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("{}:9093", voter_ip(id))))
        .collect();
    let mut nodes = BTreeMap::new();
    let mut sim_nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let node = runtime
            .create_node()
            .name(format!("controller-{id}"))
            .ip(voter_ip(id))
            .build();
        let mut controller = ControllerConfig::new(id, voters.keys().copied().collect());
        controller.broker_session_timeout_ms = 3_000;
        let config = QuorumConfig {
            node_id: id,
            voters: voters.clone(),
            listen: "0.0.0.0:9093".to_string(),
            tick_ms: 100,
            tick_jitter_ms: 100,
            controller,
            secret: None,
        };
        let disk = MemDisk::new(id).as_disk();
        let handle = node
            .spawn(async move { ControllerNode::start(config, disk, Path::new("ctl")).await })
            .await
            .unwrap()
            .unwrap();
        nodes.insert(id, handle);
        sim_nodes.insert(id, node);
    }
    let first = wait_active(&nodes, &[]).await;

    let broker_node = runtime
        .create_node()
        .name("broker")
        .ip("10.0.1.1".parse().unwrap())
        .build();
    let client = ControllerClient::new(voters, 3_000);
    let config = LifecycleConfig {
        heartbeat_interval_ms: 500,
        metadata_wait_ms: 1_000,
        session_timeout_ms: 3_000,
        retry_backoff_ms: 100,
        rack: None,
    };
    let admin = client.clone();
    let (broker, created) = broker_node
        .spawn(async move {
            let broker = BrokerLifecycle::start(client, BrokerId(1), Vec::new(), true, config);
            for _ in 0..WAIT_MS_MAX / POLL_MS {
                if !broker.fenced() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
            let request = Request::CreateTopic {
                name: "sim".into(),
                partitions: 1,
                replication_factor: 1,
                config: TopicConfig::default(),
                assignments: Vec::new(),
                validate_only: false,
            };
            let created = admin.request(request).await;
            (broker, created)
        })
        .await
        .unwrap();
    assert!(!broker.fenced(), "unfenced");
    assert!(
        matches!(created, Ok(Reply::TopicCreated { .. })),
        "{created:?}"
    );

    runtime.kill(sim_nodes[&first].id());
    let second = wait_active(&nodes, &[first]).await;
    assert_ne!(first, second);
    let session = broker.session();
    let beats = session.borrow().heartbeats_accepted;
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    assert!(
        session.borrow().heartbeats_accepted >= beats + 3,
        "heartbeats continue"
    );
    assert!(!broker.fenced());
    assert!(broker.image().borrow().topics().contains_key("sim"));
}
