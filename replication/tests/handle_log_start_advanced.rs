//! The log start moving up (retention, later DeleteRecords): the core owns it, so fetches and
//! consumer reads below it are refused with OFFSET_OUT_OF_RANGE naming it, and the epoch cache
//! forgets the epochs wholly below it (Kafka's `truncateFromStart`).
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{
    BugSwitches, Effect, Error, FetchRequest, FetchResponse, Input, Message, ReadRange,
    RecoveredLog, Replica,
};
use wire::{LeaderEpoch, Offset};

/// Broker 0 leading epoch 3 over records 0..10: epoch 1 from 0, epoch 2 from 4, epoch 3 from 10;
/// every record committed (HW 10).
fn leader_with_log() -> Replica {
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(10),
        epochs: vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(2), Offset(4))],
        high_watermark: Offset(10),
    };
    let mut config = config(B0);
    config.min_insync_replicas = 1;
    let mut replica = Replica::recover(config, BugSwitches::default(), &log);
    replica.step(0, Input::PartitionState(state(B0, 3, 3, &[B0])));
    assert!(replica.is_leader());
    assert_eq!(replica.high_watermark(), Offset(10));
    replica
}

#[test]
fn a_leader_learns_its_new_log_start_and_forgets_epochs_below_it() {
    let mut leader = leader_with_log();
    let effects = leader.step(0, Input::LogStartAdvanced(Offset(6)));
    assert_eq!(
        effects,
        vec![],
        "nothing to send: followers learn it when they fetch"
    );
    assert_eq!(leader.log_start_offset(), Offset(6));
    assert_eq!(leader.high_watermark(), Offset(10), "the HW stands");
    assert_eq!(leader.log_end_offset(), Offset(10));
    let epochs: Vec<_> = leader.epochs().entries().collect();
    assert_eq!(
        epochs,
        vec![(LeaderEpoch(2), Offset(6)), (LeaderEpoch(3), Offset(10))],
        "epoch 1 is gone; epoch 2, which covers the new start, starts there"
    );
}

#[test]
fn a_start_at_or_below_the_current_one_changes_nothing() {
    let mut leader = leader_with_log();
    leader.step(0, Input::LogStartAdvanced(Offset(6)));
    let before = leader.clone();
    assert_eq!(leader.step(0, Input::LogStartAdvanced(Offset(6))), vec![]);
    assert_eq!(leader.step(0, Input::LogStartAdvanced(Offset(2))), vec![]);
    assert_eq!(leader, before);
}

#[test]
#[should_panic(expected = "past the HW")]
fn a_start_past_the_hw_is_a_driver_bug() {
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(10),
        epochs: vec![(LeaderEpoch(1), Offset(0))],
        high_watermark: Offset(4),
    };
    let mut replica = Replica::recover(config(B1), BugSwitches::default(), &log);
    replica.step(0, Input::LogStartAdvanced(Offset(5)));
}

#[test]
fn a_consumer_below_the_log_start_is_refused_with_the_start() {
    let mut leader = leader_with_log();
    leader.step(0, Input::LogStartAdvanced(Offset(6)));
    let out_of_range = Error::OffsetOutOfRange {
        log_start_offset: Offset(6),
        log_end_offset: Offset(10),
    };
    assert_eq!(
        leader.consumer_read_range(None, Offset(0), 100),
        Err(out_of_range)
    );
    assert_eq!(
        leader.consumer_read_range(None, Offset(5), 100),
        Err(out_of_range)
    );
    assert_eq!(
        leader.consumer_read_range(None, Offset(6), 100),
        Ok(ReadRange {
            from: Offset(6),
            to: Offset(10)
        })
    );
}

#[test]
fn a_follower_fetching_below_the_log_start_is_told_the_start_and_not_counted() {
    let mut leader = leader_with_log();
    leader.step(0, Input::LogStartAdvanced(Offset(6)));
    let request = FetchRequest {
        replica_id: B2,
        fetch_offset: Offset(2),
        current_leader_epoch: LeaderEpoch(3),
        last_fetched_epoch: LeaderEpoch(1),
    };
    let effects = leader.step(
        7,
        Input::Message {
            from: B2,
            message: Message::Fetch(request),
        },
    );
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(2),
        last_fetched_epoch: LeaderEpoch(1),
        result: Err(Error::OffsetOutOfRange {
            log_start_offset: Offset(6),
            log_end_offset: Offset(10),
        }),
    };
    assert_eq!(
        effects,
        vec![Effect::Send {
            to: B2,
            message: Message::FetchResponse(response),
        }]
    );
    assert_eq!(
        leader.follower_progress(B2).unwrap().log_end_offset,
        None,
        "a follower below the start is not counted towards the HW or the ISR"
    );
}
