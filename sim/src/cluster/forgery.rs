//! The nemesis as an attacker on the cluster's network (issue 15): forged frames from a host
//! that does not know the cluster secret. Each is one of the attacks that used to work: a raft
//! heartbeat with term u64::MAX claiming another voter, CreateTopic with 1,024 partitions and
//! unclean election, DeleteTopic of the workload's topic, a registration of another broker, and
//! follower fetches far ahead of the log (which, if counted, would acknowledge records one copy
//! holds). All must be refused; the run's checkers see anything that was not.

use std::time::Duration;

use broker::control::wire::{self as control_wire, ControlMessage};
use broker::node::peer::PeerConnection;
use broker::node::replication_wire::fetches_to_kafka;
use controller::raft_prelude::{Message, MessageType};
use kafka_protocol::messages::{ApiKey, FetchResponse};
use replication::FetchRequest;
use wire::{BrokerId, LeaderEpoch, Offset, TopicPartition};

use super::workload::{PARTITIONS, TOPIC};

/// Bounds every step of a forgery: a clogged link holds data silently.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// The frames forged in the name of voter `from` to the controller listener of voter `to`.
fn controller_frames(from: u64, to: u64) -> Vec<ControlMessage> {
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = from;
    heartbeat.to = to;
    heartbeat.term = u64::MAX;
    let raft = control_wire::raft_to_bytes(&heartbeat).expect("a heartbeat encodes");
    let request = |id: u64, request: controller::Request| ControlMessage::Request {
        id,
        request,
        wait_ms: 0,
    };
    vec![
        ControlMessage::Raft(raft),
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
        request(2, controller::Request::DeleteTopic { name: TOPIC.into() }),
        request(
            3,
            controller::Request::RegisterBroker {
                broker: BrokerId(i32::try_from(from).expect("small ids")),
                incarnation: 42,
                listeners: Vec::new(),
                rack: None,
                clean_shutdown: false,
            },
        ),
    ]
}

/// Sends the forged controller frames to `address` (voter `to`) in the name of voter `from`.
pub async fn forge_controller(address: String, from: u64, to: u64) {
    let connect = tokio::net::TcpStream::connect(address.as_str());
    let Ok(Ok(mut stream)) = tokio::time::timeout(STEP_TIMEOUT, connect).await else {
        return;
    };
    for frame in controller_frames(from, to) {
        let write = control_wire::write_message(&mut stream, &frame);
        if !matches!(tokio::time::timeout(STEP_TIMEOUT, write).await, Ok(Ok(()))) {
            return; // Closed on us: what a refusal looks like.
        }
    }
    tracing::info!(%address, from, to, "nemesis: forged controller frames sent");
}

/// Sends a follower fetch far past the log, as broker `replica`, to the Kafka listener at
/// `address`, for every partition of the workload's topic.
pub async fn forge_follower_fetch(address: String, replica: i32) {
    let Ok(mut connection) = PeerConnection::connect(&address, "forger", STEP_TIMEOUT).await else {
        return;
    };
    let fetches: Vec<(TopicPartition, FetchRequest)> = (0..PARTITIONS)
        .map(|partition| {
            let request = FetchRequest {
                replica_id: BrokerId(replica),
                fetch_offset: Offset(1 << 40),
                current_leader_epoch: LeaderEpoch::NONE,
                last_fetched_epoch: LeaderEpoch::NONE,
            };
            (TopicPartition::new(TOPIC, partition), request)
        })
        .collect();
    let fetch = fetches_to_kafka(BrokerId(replica), &fetches, std::iter::empty(), 0);
    let answer: Result<FetchResponse, _> = connection
        .request(ApiKey::Fetch, 12, &fetch, STEP_TIMEOUT)
        .await;
    let codes: Vec<i16> = answer
        .iter()
        .flat_map(|r| r.responses.iter())
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    tracing::info!(%address, replica, ?codes, "nemesis: forged follower fetch answered");
}
