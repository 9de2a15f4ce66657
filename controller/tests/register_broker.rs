//! Handler: RegisterBroker.
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, register, Solo};
use controller::{Controller, ControllerConfig, ControllerError, Effect, Reply, TopicConfig};
use wire::{BrokerId, LeaderEpoch, TopicPartition};

#[test]
fn registration_commits_a_fenced_broker() {
    let mut solo = Solo::new(|_| {});
    assert_eq!(solo.request(register(7, 70)), Ok(Reply::Registered));
    let broker = &solo.ctl.image().brokers()[&BrokerId(7)];
    assert_eq!((broker.incarnation, broker.fenced), (70, true));
    assert_eq!(broker.listeners[0].host, "b7");
    // Effects: the entry was persisted before the reply, and the image moved.
    let persisted = solo
        .log
        .iter()
        .position(|e| matches!(e, Effect::Persist(b) if !b.entries.is_empty()));
    let replied = solo
        .log
        .iter()
        .position(|e| matches!(e, Effect::Reply { .. }));
    assert!(persisted.unwrap() < replied.unwrap());
    assert!(solo
        .log
        .iter()
        .any(|e| matches!(e, Effect::MetadataChanged { .. })));
}

#[test]
fn retried_registration_changes_nothing() {
    let mut solo = Solo::new(|_| {});
    solo.add_broker(1, 10);
    assert_eq!(solo.request(register(1, 10)), Ok(Reply::Registered));
    assert!(
        solo.ctl.image().is_unfenced(BrokerId(1)),
        "a retry does not fence"
    );
}

#[test]
fn new_incarnation_fences_and_moves_leadership_away() {
    let mut solo = Solo::new(|_| {});
    for b in 1..=3 {
        solo.add_broker(b, 10 * b as u64);
    }
    let assignments = solo.create_topic("t", 1, 3, TopicConfig::default());
    let tp = TopicPartition::new("t", 0);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap();
    assert_eq!(leader, assignments[0][0]);
    assert_eq!(solo.request(register(leader.0, 999)), Ok(Reply::Registered));
    let state = solo.ctl.image().partition(&tp).unwrap().clone();
    assert!(
        !solo.ctl.image().is_unfenced(leader),
        "the restarted broker is fenced"
    );
    assert_ne!(state.leader, Some(leader));
    assert!(!state.isr.contains(&leader));
    assert_eq!(state.leader_epoch, LeaderEpoch(1));
    assert_eq!(state.last_known_leader, Some(leader));
    assert_eq!(state.isr.len(), 2);
    assert!(state.isr.iter().all(|b| ids(&[1, 2, 3]).contains(b)));
}

#[test]
fn a_follower_refuses_with_not_controller() {
    let config = ControllerConfig::new(2, vec![1, 2, 3]);
    let mut follower = Controller::new(config, controller::RaftStore::bootstrap(&[1, 2, 3]), 0);
    follower.request(5, register(1, 1), 0);
    let effects = follower.take_effects();
    assert_eq!(
        effects,
        vec![Effect::Reply {
            request_id: 5,
            reply: Err(ControllerError::NotController)
        }]
    );
    assert!(follower.image().brokers().is_empty());
}
