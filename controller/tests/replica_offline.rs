//! Handler: ReplicaOffline, a broker's copy of a partition failed (disk error, corruption).
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, three_replicas, Solo};
use controller::{ControllerError, Reply, Request};
use wire::{BrokerId, TopicPartition};

fn setup(min_isr: i32) -> (Solo, TopicPartition) {
    three_replicas(min_isr)
}

fn offline(tp: &TopicPartition, broker: i32, incarnation: u64) -> Request {
    Request::ReplicaOffline {
        broker: BrokerId(broker),
        incarnation,
        partition: tp.clone(),
    }
}

#[test]
fn a_failed_leader_is_replaced() {
    let (mut solo, tp) = setup(2);
    let before = solo.ctl.image().partition(&tp).unwrap().clone();
    let leader = before.leader.unwrap().0;
    let Ok(Reply::PartitionAltered(after)) = solo.request(offline(&tp, leader, leader as u64))
    else {
        panic!("the offline report is committed")
    };
    assert_ne!(
        after.leader,
        Some(BrokerId(leader)),
        "another replica leads"
    );
    assert!(after.leader.is_some());
    assert!(after.leader_epoch > before.leader_epoch);
    assert!(!after.isr.contains(&BrokerId(leader)));
    assert_eq!(solo.ctl.image().partition(&tp).unwrap(), &after);
    // Reported again: nothing left to change, the state is answered as it is.
    let Ok(Reply::PartitionAltered(again)) = solo.request(offline(&tp, leader, leader as u64))
    else {
        panic!()
    };
    assert_eq!(again, after);
}

/// An I/O error loses only unflushed bytes, so a failed copy that takes the ISR below min ISR
/// joins the ELR like any other: with every copy failed, the partition can still be led again
/// once a broker restarts (found by the cluster simulation: disk faults on all three nodes left a
/// partition with neither ISR nor ELR, offline for good).
#[test]
fn a_failed_copy_taking_the_isr_below_min_joins_the_elr() {
    let (mut solo, tp) = setup(3);
    let state = solo.ctl.image().partition(&tp).unwrap().clone();
    let follower = state
        .isr
        .iter()
        .find(|b| Some(**b) != state.leader)
        .unwrap()
        .0;
    let Ok(Reply::PartitionAltered(after)) = solo.request(offline(&tp, follower, follower as u64))
    else {
        panic!()
    };
    assert_eq!(
        after.leader, state.leader,
        "a follower's failure keeps the leader"
    );
    let rest: Vec<BrokerId> = ids(&[1, 2, 3])
        .into_iter()
        .filter(|b| b.0 != follower)
        .collect();
    assert_eq!(after.isr, rest);
    assert_eq!(after.elr, vec![BrokerId(follower)]);
}

#[test]
fn a_stale_incarnation_or_unknown_partition_is_refused() {
    let (mut solo, tp) = setup(2);
    assert_eq!(
        solo.request(offline(&tp, 1, 99)),
        Err(ControllerError::StaleBrokerIncarnation(BrokerId(1)))
    );
    assert!(matches!(
        solo.request(offline(&TopicPartition::new("nope", 0), 1, 1)),
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
}
