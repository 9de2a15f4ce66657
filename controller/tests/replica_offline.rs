//! Handler: ReplicaOffline, a broker's copy of a partition failed (disk error, corruption).
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, register, three_replicas, Solo, TICK_MS};
use controller::{AlterPartitionRequest, ControllerError, PartitionState, Reply, Request};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

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

fn sorted(mut brokers: Vec<BrokerId>) -> Vec<BrokerId> {
    brokers.sort();
    brokers
}

/// Found on real processes: three bad sends failed the copies on 2, then 1 (ISR {2,1,3} -> {1,3}
/// -> {3}), then 3 died and the controller elected 1 from the ELR although its copy had failed:
/// the partition was offline for good. An offline copy may stay in the ELR (its flushed bytes
/// are intact) but is elected only after its broker registers a new incarnation, clean.
#[test]
fn a_failed_copy_is_not_elected_until_its_broker_registers_again() {
    let (mut solo, tp) = setup(2);
    let start = solo.ctl.image().partition(&tp).unwrap().clone();
    let [a, b, c] = <[BrokerId; 3]>::try_from(start.replicas.clone()).unwrap();
    assert_eq!((start.leader, start.isr.clone()), (Some(a), vec![a, b, c]));
    let expect = |state: &PartitionState, changes: &dyn Fn(&mut PartitionState)| {
        let mut next = state.clone();
        changes(&mut next);
        next
    };

    let Ok(Reply::PartitionAltered(first)) = solo.request(offline(&tp, a.0, a.0 as u64)) else {
        panic!("the offline report of the leader is committed")
    };
    let first_expected = expect(&start, &|s| {
        s.leader = Some(b);
        s.leader_epoch = LeaderEpoch(1);
        s.isr = vec![b, c];
        s.last_known_leader = Some(a);
        s.partition_epoch = PartitionEpoch(1);
        s.offline = vec![a];
    });
    assert_eq!(first, first_expected);

    let Ok(Reply::PartitionAltered(second)) = solo.request(offline(&tp, b.0, b.0 as u64)) else {
        panic!("the offline report of the new leader is committed")
    };
    let second_expected = expect(&first, &|s| {
        s.leader = Some(c);
        s.leader_epoch = LeaderEpoch(2);
        s.isr = vec![c];
        s.elr = vec![b];
        s.last_known_leader = Some(b);
        s.partition_epoch = PartitionEpoch(2);
        s.offline = sorted(vec![a, b]);
    });
    assert_eq!(second, second_expected, "below min ISR: b joins the ELR");

    // c dies: a and b keep heartbeating (their brokers live, only their copies failed).
    for _ in 0..100 {
        solo.heartbeat(&[(a.0, a.0 as u64), (b.0, b.0 as u64)]);
        solo.advance(TICK_MS);
    }
    assert!(!solo.ctl.image().is_unfenced(c) && solo.ctl.image().is_unfenced(b));
    let leaderless = expect(&second, &|s| {
        s.leader = None;
        s.leader_epoch = LeaderEpoch(3);
        s.isr = vec![];
        s.elr = sorted(vec![b, c]);
        s.last_known_leader = Some(c);
        s.partition_epoch = PartitionEpoch(3);
    });
    assert_eq!(
        solo.ctl.image().partition(&tp).unwrap(),
        &leaderless,
        "b is unfenced and in the ELR but its copy failed: nobody may lead"
    );

    // b restarts with intact storage: its mark is cleared with the registration, and it leads
    // from the ELR once unfenced.
    let incarnation = 100;
    assert_eq!(
        solo.request(register(b.0, incarnation)),
        Ok(Reply::Registered)
    );
    let registered = expect(&leaderless, &|s| {
        s.partition_epoch = PartitionEpoch(4);
        s.offline = vec![a];
    });
    assert_eq!(solo.ctl.image().partition(&tp).unwrap(), &registered);
    solo.heartbeat(&[(b.0, incarnation)]);
    let elected = expect(&registered, &|s| {
        s.leader = Some(b);
        s.leader_epoch = LeaderEpoch(4);
        s.isr = vec![b];
        s.elr = vec![c];
        s.partition_epoch = PartitionEpoch(5);
    });
    assert_eq!(solo.ctl.image().partition(&tp).unwrap(), &elected);
}

/// The mark also keeps an offline copy out of the ISR: a leader cannot add it back.
#[test]
fn an_offline_copy_cannot_rejoin_the_isr() {
    let (mut solo, tp) = setup(1);
    let state = solo.ctl.image().partition(&tp).unwrap().clone();
    let [a, b, _] = <[BrokerId; 3]>::try_from(state.replicas.clone()).unwrap();
    let Ok(Reply::PartitionAltered(after)) = solo.request(offline(&tp, b.0, b.0 as u64)) else {
        panic!()
    };
    assert_eq!((after.offline.clone(), after.leader), (vec![b], Some(a)));
    let alter = Request::AlterPartition(AlterPartitionRequest {
        partition: tp.clone(),
        broker: a,
        leader_epoch: after.leader_epoch,
        partition_epoch: after.partition_epoch,
        isr: state.replicas.clone(),
    });
    assert_eq!(
        solo.request(alter),
        Err(ControllerError::IneligibleReplica {
            partition: tp.clone(),
            broker: b
        })
    );
    // A second report changes nothing.
    assert_eq!(
        solo.request(offline(&tp, b.0, b.0 as u64)),
        Ok(Reply::PartitionAltered(after))
    );
}

fn online(tp: &TopicPartition, broker: BrokerId, intact: bool) -> Request {
    Request::ReplicaOnline {
        broker,
        incarnation: broker.0 as u64,
        partition: tp.clone(),
        intact,
    }
}

/// A copy repaired without a restart (a full disk with space back): its mark is cleared, so the
/// leader may add it back to the ISR; a second report changes nothing.
#[test]
fn a_repaired_copy_may_rejoin_the_isr() {
    let (mut solo, tp) = setup(2);
    let state = solo.ctl.image().partition(&tp).unwrap().clone();
    let [a, b, _] = <[BrokerId; 3]>::try_from(state.replicas.clone()).unwrap();
    let Ok(Reply::PartitionAltered(failed)) = solo.request(offline(&tp, b.0, b.0 as u64)) else {
        panic!()
    };
    assert_eq!(failed.offline, vec![b]);
    let Ok(Reply::PartitionAltered(back)) = solo.request(online(&tp, b, true)) else {
        panic!("the repair is committed")
    };
    assert!(back.offline.is_empty());
    assert_eq!(
        (back.leader, back.leader_epoch),
        (Some(a), failed.leader_epoch)
    );
    assert!(back.partition_epoch > failed.partition_epoch);
    assert!(
        !back.isr.contains(&b),
        "it rejoins through the leader, once caught up"
    );
    let alter = Request::AlterPartition(AlterPartitionRequest {
        partition: tp.clone(),
        broker: a,
        leader_epoch: back.leader_epoch,
        partition_epoch: back.partition_epoch,
        isr: state.replicas.clone(),
    });
    let Ok(Reply::PartitionAltered(whole)) = solo.request(alter) else {
        panic!("a repaired copy is eligible for the ISR")
    };
    assert_eq!(whole.isr, state.replicas);
    assert_eq!(
        solo.request(online(&tp, b, true)),
        Ok(Reply::PartitionAltered(whole)),
        "reported again: nothing changes"
    );
    assert_eq!(
        solo.request(Request::ReplicaOnline {
            broker: b,
            incarnation: 99,
            partition: tp.clone(),
            intact: true
        }),
        Err(ControllerError::StaleBrokerIncarnation(b))
    );
}

/// Every copy failed (the shape of a disk filling on every broker): the partition is leaderless
/// with the copies in the ELR. The first intact copy to come back is elected at once; a copy
/// whose repair set its log aside leaves the ELR instead and cannot be elected cleanly.
#[test]
fn a_leaderless_partition_elects_the_first_intact_copy_back() {
    let (mut solo, tp) = setup(2);
    let start = solo.ctl.image().partition(&tp).unwrap().clone();
    let [a, b, c] = <[BrokerId; 3]>::try_from(start.replicas.clone()).unwrap();
    for broker in [a, b, c] {
        let leader = solo.ctl.image().partition(&tp).unwrap().leader;
        // The current leader's copy fails each time, until nobody is left.
        let failing = leader.unwrap_or(broker);
        assert!(solo
            .request(offline(&tp, failing.0, failing.0 as u64))
            .is_ok());
    }
    let down = solo.ctl.image().partition(&tp).unwrap().clone();
    assert_eq!(down.leader, None);
    assert_eq!(down.offline, vec![a, b, c]);
    let in_elr = down.elr.clone();
    assert!(
        !in_elr.is_empty(),
        "the last copies standing wait in the ELR"
    );

    let lost = in_elr[0];
    let Ok(Reply::PartitionAltered(after_lost)) = solo.request(online(&tp, lost, false)) else {
        panic!()
    };
    assert_eq!(
        after_lost.leader, None,
        "a copy that lost flushed bytes is not elected"
    );
    assert!(!after_lost.elr.contains(&lost) && !after_lost.offline.contains(&lost));

    let intact = *in_elr.get(1).expect("two copies in the ELR at min ISR 2");
    let Ok(Reply::PartitionAltered(led)) = solo.request(online(&tp, intact, true)) else {
        panic!()
    };
    assert_eq!(
        led.leader,
        Some(intact),
        "elected from the ELR as it comes back"
    );
    assert!(led.leader_epoch > down.leader_epoch);
    assert_eq!(led.isr, vec![intact]);
}
