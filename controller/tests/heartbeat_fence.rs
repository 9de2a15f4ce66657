//! Handler: BrokerHeartbeat and session expiry (fence / unfence).
#![allow(clippy::unwrap_used)]
mod common;

use common::{register, Solo};
use controller::{ControllerError, Reply, Request, TopicConfig};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

const SESSION_MS: u64 = 1_000;

fn solo() -> Solo {
    Solo::new(|c| c.broker_session_timeout_ms = SESSION_MS)
}

#[test]
fn heartbeat_unfences_a_registered_broker() {
    let mut solo = solo();
    solo.request(register(1, 11)).unwrap();
    let hb = Request::BrokerHeartbeat {
        broker: BrokerId(1),
        incarnation: 11,
    };
    // The first heartbeat answers with the applied state (fenced) and proposes the unfence.
    assert_eq!(
        solo.request(hb.clone()),
        Ok(Reply::Heartbeat { fenced: true })
    );
    assert!(solo.ctl.image().is_unfenced(BrokerId(1)));
    assert_eq!(solo.request(hb), Ok(Reply::Heartbeat { fenced: false }));
}

#[test]
fn heartbeat_refusals_are_typed() {
    let mut solo = solo();
    solo.request(register(1, 11)).unwrap();
    let stale = Request::BrokerHeartbeat {
        broker: BrokerId(1),
        incarnation: 10,
    };
    assert_eq!(
        solo.request(stale),
        Err(ControllerError::StaleBrokerIncarnation(BrokerId(1)))
    );
    let unknown = Request::BrokerHeartbeat {
        broker: BrokerId(9),
        incarnation: 1,
    };
    assert_eq!(
        solo.request(unknown),
        Err(ControllerError::UnknownBroker(BrokerId(9)))
    );
    assert!(!solo.ctl.image().is_unfenced(BrokerId(1)));
}

#[test]
fn missed_heartbeats_fence_and_elect_from_the_isr() {
    let mut solo = solo();
    let brokers = [(1, 11), (2, 22), (3, 33)];
    for (b, i) in brokers {
        solo.add_broker(b, i);
    }
    solo.create_topic(
        "t",
        1,
        3,
        TopicConfig {
            unclean_leader_election: false,
            min_insync_replicas: 2,
            overrides: Default::default(),
        },
    );
    let tp = TopicPartition::new("t", 0);
    let before = solo.ctl.image().partition(&tp).unwrap().clone();
    let leader = before.leader.unwrap();
    // Everyone but the leader keeps heartbeating, for longer than the session.
    let alive: Vec<_> = brokers
        .iter()
        .copied()
        .filter(|(b, _)| BrokerId(*b) != leader)
        .collect();
    for _ in 0..(2 * SESSION_MS / 500) {
        solo.advance(500);
        solo.heartbeat(&alive);
    }
    let after = solo.ctl.image().partition(&tp).unwrap().clone();
    assert!(!solo.ctl.image().is_unfenced(leader));
    assert!(after.leader.is_some() && after.leader != Some(leader));
    assert_eq!(
        after.leader,
        before.replicas.iter().copied().find(|b| *b != leader)
    );
    assert_eq!(after.leader_epoch, LeaderEpoch(1));
    assert_eq!(after.partition_epoch, PartitionEpoch(1));
    assert_eq!(after.isr.len(), 2);
    assert!(after.elr.is_empty(), "ISR still at min ISR: no ELR");
    // The fenced broker comes back: unfenced, but not back in the ISR (the leader expands it).
    let (b, i) = brokers
        .iter()
        .copied()
        .find(|(b, _)| BrokerId(*b) == leader)
        .unwrap();
    solo.heartbeat(&[(b, i)]);
    assert!(solo.ctl.image().is_unfenced(leader));
    assert_eq!(solo.ctl.image().partition(&tp).unwrap(), &after);
}

#[test]
fn a_broker_that_keeps_heartbeating_stays_unfenced() {
    let mut solo = solo();
    solo.add_broker(1, 11);
    for _ in 0..10 {
        solo.advance(SESSION_MS / 2);
        solo.heartbeat(&[(1, 11)]);
    }
    assert!(solo.ctl.image().is_unfenced(BrokerId(1)));
    solo.advance(SESSION_MS + 200);
    assert!(!solo.ctl.image().is_unfenced(BrokerId(1)));
}

/// A replication factor 1 topic under min ISR 2 (Kafka allows it; the effective min ISR is 1):
/// fencing its only replica leaves it leaderless with that replica in the ELR (KIP-966), and the
/// replica leads again once it heartbeats.
#[test]
fn a_single_replica_below_min_isr_goes_to_the_elr_and_comes_back() {
    let mut solo = solo();
    solo.add_broker(1, 11);
    solo.add_broker(2, 22);
    let config = TopicConfig {
        unclean_leader_election: false,
        overrides: Default::default(),
        min_insync_replicas: 2,
    };
    let assignments = solo.create_topic("t", 1, 1, config);
    let only = assignments[0][0];
    let other = if only == BrokerId(1) {
        (2, 22)
    } else {
        (1, 11)
    };
    let tp = TopicPartition::new("t", 0);
    for _ in 0..(2 * SESSION_MS / 500) {
        solo.advance(500);
        solo.heartbeat(&[other]);
    }
    let fenced = solo.ctl.image().partition(&tp).unwrap().clone();
    assert_eq!(fenced.leader, None);
    assert!(fenced.isr.is_empty());
    assert_eq!(fenced.elr, vec![only], "the last ISR member is eligible");
    let me = if only == BrokerId(1) {
        (1, 11)
    } else {
        (2, 22)
    };
    solo.heartbeat(&[me]);
    let back = solo.ctl.image().partition(&tp).unwrap().clone();
    assert_eq!(back.leader, Some(only));
    assert_eq!(back.isr, vec![only]);
    assert!(back.elr.is_empty());
    solo.ctl.check_invariants().unwrap();
}
