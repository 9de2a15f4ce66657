//! Handler: AlterPartition, validated against leader epoch and partition epoch.
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, three_replicas, Solo};
use controller::{
    AlterPartitionRequest, Controller, ControllerConfig, ControllerError, Effect, Reply, Request,
};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

fn setup(min_isr: i32) -> (Solo, TopicPartition) {
    three_replicas(min_isr)
}

fn alter(
    tp: &TopicPartition,
    broker: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: &[i32],
) -> Request {
    Request::AlterPartition(AlterPartitionRequest {
        partition: tp.clone(),
        broker: BrokerId(broker),
        leader_epoch: LeaderEpoch(leader_epoch),
        partition_epoch: PartitionEpoch(partition_epoch),
        isr: ids(isr),
    })
}

#[test]
fn the_leader_shrinks_and_expands_the_isr() {
    let (mut solo, tp) = setup(1);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap().0;
    let other: Vec<i32> = (1..=3).filter(|b| *b != leader).collect();
    let Ok(Reply::PartitionAltered(shrunk)) =
        solo.request(alter(&tp, leader, 0, 0, &[leader, other[0]]))
    else {
        panic!()
    };
    assert_eq!(shrunk.partition_epoch, PartitionEpoch(1));
    assert_eq!(
        shrunk.leader_epoch,
        LeaderEpoch(0),
        "an ISR change keeps the leader epoch"
    );
    assert_eq!(shrunk.isr.len(), 2);
    assert_eq!(solo.ctl.image().partition(&tp).unwrap(), &shrunk);
    let Ok(Reply::PartitionAltered(grown)) = solo.request(alter(&tp, leader, 0, 1, &[1, 2, 3]))
    else {
        panic!()
    };
    assert_eq!(
        (grown.isr.clone(), grown.partition_epoch),
        (ids(&[1, 2, 3]), PartitionEpoch(2))
    );
}

#[test]
fn a_stale_partition_epoch_is_refused() {
    let (mut solo, tp) = setup(1);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap().0;
    solo.request(alter(&tp, leader, 0, 0, &[leader])).unwrap();
    let before = solo.ctl.image().partition(&tp).unwrap().clone();
    assert_eq!(
        solo.request(alter(&tp, leader, 0, 0, &[1, 2, 3])),
        Err(ControllerError::InvalidUpdateVersion {
            partition: tp.clone(),
            requested: 0,
            current: 1
        })
    );
    assert_eq!(
        solo.ctl.image().partition(&tp).unwrap(),
        &before,
        "nothing changed"
    );
}

#[test]
fn a_non_leader_or_stale_leader_epoch_is_fenced() {
    let (mut solo, tp) = setup(1);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap().0;
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    let fenced = |broker, epoch| ControllerError::FencedLeaderEpoch {
        partition: tp.clone(),
        broker: BrokerId(broker),
        requested: epoch,
    };
    assert_eq!(
        solo.request(alter(&tp, follower, 0, 0, &[follower])),
        Err(fenced(follower, 0))
    );
    assert_eq!(
        solo.request(alter(&tp, leader, 5, 0, &[leader])),
        Err(fenced(leader, 5))
    );
    assert_eq!(
        solo.ctl.image().partition(&tp).unwrap().partition_epoch,
        PartitionEpoch(0)
    );
}

#[test]
fn ineligible_isr_members_are_refused() {
    let (mut solo, tp) = setup(1);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap().0;
    let ineligible = |b| ControllerError::IneligibleReplica {
        partition: tp.clone(),
        broker: BrokerId(b),
    };
    assert_eq!(
        solo.request(alter(&tp, leader, 0, 0, &[leader, 9])),
        Err(ineligible(9))
    );
    let other = (1..=3).find(|b| *b != leader).unwrap();
    assert_eq!(
        solo.request(alter(&tp, leader, 0, 0, &[other])),
        Err(ineligible(leader)),
        "the leader stays in"
    );
    // A fenced broker may not join.
    solo.request(common::register(other, 777)).unwrap();
    assert_eq!(
        solo.request(alter(&tp, leader, 0, 1, &[leader, other])),
        Err(ineligible(other))
    );
    let unknown = alter(&TopicPartition::new("t", 7), leader, 0, 0, &[leader]);
    assert_eq!(
        solo.request(unknown),
        Err(ControllerError::UnknownTopicOrPartition("t-7".into()))
    );
}

#[test]
fn shrinking_below_min_isr_keeps_the_removed_replicas_eligible() {
    let (mut solo, tp) = setup(2);
    let leader = solo.ctl.image().partition(&tp).unwrap().leader.unwrap().0;
    let Ok(Reply::PartitionAltered(state)) = solo.request(alter(&tp, leader, 0, 0, &[leader]))
    else {
        panic!()
    };
    let mut others = ids(&[1, 2, 3]);
    others.retain(|b| b.0 != leader);
    assert_eq!(
        state.elr, others,
        "KIP-966: below min ISR the removed replicas join the ELR"
    );
    let Ok(Reply::PartitionAltered(state)) = solo.request(alter(&tp, leader, 0, 1, &[1, 2, 3]))
    else {
        panic!()
    };
    assert!(state.elr.is_empty(), "back at min ISR: no ELR");
}

#[test]
fn a_follower_controller_refuses_with_not_controller() {
    let mut follower = Controller::new(
        ControllerConfig::new(3, vec![1, 2, 3]),
        controller::RaftStore::bootstrap(&[1, 2, 3]),
        0,
    );
    let tp = TopicPartition::new("t", 0);
    follower.request(1, alter(&tp, 1, 0, 0, &[1]), 0);
    assert_eq!(
        follower.take_effects(),
        vec![Effect::Reply {
            request_id: 1,
            reply: Err(ControllerError::NotController)
        }]
    );
}
