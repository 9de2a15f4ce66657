//! Partition state from the controller: becoming leader/follower, stale state, truncation bug.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{Acks, BugSwitches, Effect, Error, Input, RecoveredLog, Replica, TimerKind};
use wire::{LeaderEpoch, Offset};

#[test]
fn a_new_leader_starts_its_epoch_at_its_leo_and_truncates_nothing() {
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(5),
        epochs: vec![(LeaderEpoch(1), Offset(0))],
        high_watermark: Offset(2),
    };
    let mut replica = Replica::recover(config(B1), BugSwitches::default(), &log);
    let effects = replica.step(0, Input::PartitionState(state(B1, 4, 4, &[B1])));
    assert!(replica.is_leader());
    assert!(!effects.iter().any(|e| matches!(e, Effect::TruncateTo(_))));
    assert_eq!(
        replica.epochs().start_offset(LeaderEpoch(4)),
        Some(Offset(5))
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::SetTimer {
            timer: TimerKind::IsrCheck,
            ..
        }
    )));
    assert_eq!(
        replica.high_watermark(),
        Offset(2),
        "alone in the ISR, below min ISR 2: the HW stands (KIP-966)"
    );
    let mut config = config(B1);
    config.min_insync_replicas = 1;
    let mut replica = Replica::recover(config, BugSwitches::default(), &log);
    replica.step(0, Input::PartitionState(state(B1, 4, 4, &[B1])));
    assert_eq!(
        replica.high_watermark(),
        Offset(5),
        "sole ISR member with min ISR 1: HW = durable LEO"
    );
}

#[test]
fn a_new_leader_assigns_its_epoch_start_in_the_log_by_effect() {
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(5),
        epochs: vec![(LeaderEpoch(1), Offset(0))],
        high_watermark: Offset(5),
    };
    let mut replica = Replica::recover(config(B1), BugSwitches::default(), &log);
    let effects = replica.step(0, Input::PartitionState(state(B1, 4, 4, &[B1, B2])));
    assert_eq!(
        effects,
        vec![
            Effect::AssignEpochStart {
                epoch: LeaderEpoch(4),
                start: Offset(5),
            },
            Effect::CancelTimer(TimerKind::FetchBackoff),
            Effect::SetTimer {
                timer: TimerKind::IsrCheck,
                delay_ms_min: 500,
                delay_ms_max: 500,
            },
        ]
    );
}

#[test]
fn losing_leadership_fails_waiting_produces() {
    let mut leader = leader();
    produce(&mut leader, 9, Acks::All);
    let effects = leader.step(0, Input::PartitionState(state(B1, 2, 2, &[B0, B1, B2])));
    assert!(leader.is_follower());
    assert_eq!(
        replies(&effects),
        vec![(9, Err(Error::NotLeaderOrFollower))]
    );
}

#[test]
fn stale_partition_state_is_ignored() {
    let mut leader = leader();
    let effects = leader.step(0, Input::PartitionState(state(B1, 0, 5, &[B1])));
    assert!(effects.is_empty());
    assert!(leader.is_leader());
}

#[test]
fn the_truncate_to_hw_bug_cuts_the_log_on_becoming_follower() {
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(5),
        epochs: vec![(LeaderEpoch(1), Offset(0))],
        high_watermark: Offset(2),
    };
    let bugs = BugSwitches {
        truncate_to_high_watermark: true,
        ..BugSwitches::default()
    };
    let mut buggy = Replica::recover(config(B1), bugs, &log);
    let effects = buggy.step(0, Input::PartitionState(state(B0, 2, 2, &[B0, B1])));
    assert!(effects.contains(&Effect::TruncateTo(Offset(2))));
    let mut clean = Replica::recover(config(B1), BugSwitches::default(), &log);
    let effects = clean.step(0, Input::PartitionState(state(B0, 2, 2, &[B0, B1])));
    assert!(!effects.iter().any(|e| matches!(e, Effect::TruncateTo(_))));
    assert_eq!(clean.log_end_offset(), Offset(5));
}
