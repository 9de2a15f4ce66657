//! Fetch responses arriving at a follower: append, HW, truncation to the divergence point.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{
    Batch, BugSwitches, Effect, EpochEndOffset, Error, FetchData, FetchRequest, FetchResponse,
    Input, Message, RecoveredLog, Replica, TimerKind,
};
use wire::{LeaderEpoch, Offset};

fn follower_with_log() -> Replica {
    // Records 0..2 of epoch 1, then 2..4 of epoch 2; HW 1.
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(4),
        epochs: vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(2), Offset(2))],
        high_watermark: Offset(1),
    };
    let mut replica = Replica::recover(config(B1), BugSwitches::default(), &log);
    replica.step(0, Input::PartitionState(state(B0, 3, 3, &[B0, B1])));
    replica
}

fn respond(replica: &mut Replica, fetch_offset: i64, data: FetchData) -> Vec<Effect> {
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(fetch_offset),
        last_fetched_epoch: LeaderEpoch(2),
        result: Ok(data),
    };
    replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    )
}

#[test]
fn diverging_epoch_truncates_to_the_true_divergence_point_not_the_hw() {
    let mut replica = follower_with_log();
    let diverging = EpochEndOffset {
        leader_epoch: LeaderEpoch(2),
        end_offset: Offset(3),
    };
    let data = FetchData {
        high_watermark: Offset(1),
        diverging_epoch: Some(diverging),
        batches: vec![],
    };
    let effects = respond(&mut replica, 4, data);
    assert!(effects.contains(&Effect::TruncateTo(Offset(3))));
    assert_eq!(
        replica.log_end_offset(),
        Offset(3),
        "kept records 1..3 above the HW"
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Send { message: Message::Fetch(f), .. } if f.fetch_offset == Offset(3))));
}

#[test]
fn records_are_appended_flushed_and_the_hw_taken_from_the_leader() {
    let mut replica = follower_with_log();
    let batch = Batch {
        base_offset: Offset(4),
        leader_epoch: LeaderEpoch(3),
        record_count: 2,
        payload: vec![9].into(),
    };
    let data = FetchData {
        high_watermark: Offset(9),
        diverging_epoch: None,
        batches: vec![batch.clone()],
    };
    let effects = respond(&mut replica, 4, data);
    assert_eq!(effects[0], Effect::Append(batch));
    assert!(matches!(
        effects[1],
        Effect::Flush {
            up_to: Offset(6),
            ..
        }
    ));
    assert_eq!(
        replica.high_watermark(),
        Offset(6),
        "HW is min(leader HW, own LEO)"
    );
    assert_eq!(replica.epochs().latest_epoch(), LeaderEpoch(3));
}

#[test]
fn answers_to_another_epoch_or_offset_are_dropped() {
    let mut replica = follower_with_log();
    let data = FetchData {
        high_watermark: Offset(4),
        diverging_epoch: None,
        batches: vec![],
    };
    assert!(
        respond(&mut replica, 2, data).is_empty(),
        "stale fetch offset"
    );
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(2),
        fetch_offset: Offset(4),
        last_fetched_epoch: LeaderEpoch(2),
        result: Ok(FetchData {
            high_watermark: Offset(4),
            diverging_epoch: None,
            batches: vec![],
        }),
    };
    let effects = replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    );
    assert!(effects.is_empty(), "stale epoch");
    assert_eq!(replica.high_watermark(), Offset(1));
}

/// Regression (found by the model at the bounds): a late diverging answer to a fetch
/// from before a truncation and re-append names the same fetch offset; it must not truncate the
/// re-appended records the leader has already counted.
#[test]
fn a_late_answer_for_an_older_log_with_the_same_offset_is_dropped() {
    let mut replica = follower_with_log();
    let diverging = EpochEndOffset {
        leader_epoch: LeaderEpoch(1),
        end_offset: Offset(2),
    };
    let late = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(4),
        last_fetched_epoch: LeaderEpoch(1),
        result: Ok(FetchData {
            high_watermark: Offset(1),
            diverging_epoch: Some(diverging),
            batches: vec![],
        }),
    };
    let message = Message::FetchResponse(late);
    let effects = replica.step(0, Input::Message { from: B0, message });
    assert!(
        effects.is_empty(),
        "answer for a log whose last epoch was 1, ours is 2"
    );
    assert_eq!(replica.log_end_offset(), Offset(4));
}

/// Found by the cluster simulation (seeds 18 and 23 of the first campaign): a replica that led
/// an epoch without writing in it keeps that epoch's entry at its LEO. As a follower of a later
/// leader that never saw the epoch, every fetch named it, the leader answered "diverging at
/// your LEO", truncating to the LEO did nothing, and the follower never rejoined the ISR.
#[test]
fn an_empty_epoch_of_our_own_is_dropped_when_the_leader_says_we_diverge_at_our_leo() {
    // Records 0..4 of epoch 1; then we led epoch 2 from offset 4 without appending.
    let log = RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(4),
        epochs: vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(2), Offset(4))],
        high_watermark: Offset(4),
    };
    let mut replica = Replica::recover(config(B1), BugSwitches::default(), &log);
    replica.step(0, Input::PartitionState(state(B0, 3, 3, &[B0, B2])));
    // The leader of epoch 3 never saw epoch 2: epoch 1 ends at 4 for it.
    let data = FetchData {
        high_watermark: Offset(4),
        diverging_epoch: Some(EpochEndOffset {
            leader_epoch: LeaderEpoch(1),
            end_offset: Offset(4),
        }),
        batches: vec![],
    };
    let effects = respond(&mut replica, 4, data);
    assert!(
        effects.contains(&Effect::TruncateTo(Offset(4))),
        "the driver is told to drop the epoch from the log too: {effects:?}"
    );
    assert_eq!(replica.log_end_offset(), Offset(4), "no record goes");
    let next_fetch = effects.iter().find_map(|e| match e {
        Effect::Send {
            message: Message::Fetch(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    let next_fetch = next_fetch.expect("the follower fetches again at once");
    assert_eq!(next_fetch.fetch_offset, Offset(4));
    assert_eq!(
        next_fetch.last_fetched_epoch,
        LeaderEpoch(1),
        "the next fetch names the epoch the leader knows"
    );
}

#[test]
fn below_the_leaders_log_start_a_follower_truncates_fully_and_fetches_from_the_start() {
    let mut replica = follower_with_log();
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(4),
        last_fetched_epoch: LeaderEpoch(2),
        result: Err(Error::OffsetOutOfRange {
            log_start_offset: Offset(7),
            log_end_offset: Offset(12),
        }),
    };
    let effects = replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    );
    let fetch = FetchRequest {
        replica_id: B1,
        fetch_offset: Offset(7),
        current_leader_epoch: LeaderEpoch(3),
        last_fetched_epoch: LeaderEpoch::NONE,
    };
    assert_eq!(
        effects,
        vec![
            Effect::TruncateFullyAndStartAt(Offset(7)),
            Effect::Send {
                to: B0,
                message: Message::Fetch(fetch),
            },
            Effect::SetTimer {
                timer: TimerKind::FetchBackoff,
                delay_ms_min: 30_000,
                delay_ms_max: 30_500,
            },
        ]
    );
    assert_eq!(replica.log_start_offset(), Offset(7));
    assert_eq!(replica.log_end_offset(), Offset(7));
    assert_eq!(
        replica.durable_end_offset(),
        Offset(7),
        "an empty log is all durable"
    );
    assert_eq!(replica.high_watermark(), Offset(7));
    assert_eq!(replica.epochs().entries().count(), 0, "no record, no epoch");
}

#[test]
fn above_the_leaders_log_end_a_follower_truncates_to_it() {
    let mut replica = follower_with_log();
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(4),
        last_fetched_epoch: LeaderEpoch(2),
        result: Err(Error::OffsetOutOfRange {
            log_start_offset: Offset(0),
            log_end_offset: Offset(3),
        }),
    };
    let effects = replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    );
    let fetch = FetchRequest {
        replica_id: B1,
        fetch_offset: Offset(3),
        current_leader_epoch: LeaderEpoch(3),
        last_fetched_epoch: LeaderEpoch(2),
    };
    assert_eq!(
        effects,
        vec![
            Effect::TruncateTo(Offset(3)),
            Effect::Send {
                to: B0,
                message: Message::Fetch(fetch),
            },
            Effect::SetTimer {
                timer: TimerKind::FetchBackoff,
                delay_ms_min: 30_000,
                delay_ms_max: 30_500,
            },
        ]
    );
    assert_eq!(replica.log_start_offset(), Offset(0));
}

#[test]
fn after_an_empty_answer_a_follower_fetches_again_at_once() {
    // The leader held the fetch for its long poll and nothing came: backing off now would only
    // delay the next record (Kafka's fetcher fetches again at once).
    let mut replica = follower_with_log();
    let nothing = FetchData {
        high_watermark: Offset(1),
        diverging_epoch: None,
        batches: Vec::new(),
    };
    let effects = respond(&mut replica, 4, nothing);
    let fetch = FetchRequest {
        replica_id: B1,
        fetch_offset: Offset(4),
        current_leader_epoch: LeaderEpoch(3),
        last_fetched_epoch: LeaderEpoch(2),
    };
    assert_eq!(
        effects,
        vec![
            Effect::Send {
                to: B0,
                message: Message::Fetch(fetch),
            },
            Effect::SetTimer {
                timer: TimerKind::FetchBackoff,
                delay_ms_min: 30_000,
                delay_ms_max: 30_500,
            },
        ],
        "the next fetch leaves now; only the retransmit timer is armed"
    );
}

/// The follower of the test above, started over empty at the leader's log start 7.
fn follower_started_over_at_7() -> Replica {
    let mut replica = follower_with_log();
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(4),
        last_fetched_epoch: LeaderEpoch(2),
        result: Err(Error::OffsetOutOfRange {
            log_start_offset: Offset(7),
            log_end_offset: Offset(12),
        }),
    };
    replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    );
    assert_eq!(replica.log_end_offset(), Offset(7));
    replica
}

#[test]
fn an_empty_follower_starts_over_at_the_base_of_a_batch_holding_the_leaders_log_start() {
    // DeleteRecords put the leader's start at 7, inside its batch 5..9: the answer to a fetch at
    // 7 is that whole batch, and the empty follower starts over at 5 (Kafka's follower does).
    let mut replica = follower_started_over_at_7();
    let batch = Batch {
        base_offset: Offset(5),
        leader_epoch: LeaderEpoch(3),
        record_count: 4,
        payload: vec![5].into(),
    };
    let response = FetchResponse {
        leader_id: B0,
        leader_epoch: LeaderEpoch(3),
        fetch_offset: Offset(7),
        last_fetched_epoch: LeaderEpoch::NONE,
        result: Ok(FetchData {
            high_watermark: Offset(9),
            diverging_epoch: None,
            batches: vec![batch.clone()],
        }),
    };
    let effects = replica.step(
        0,
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        },
    );
    assert_eq!(
        effects,
        vec![
            Effect::TruncateFullyAndStartAt(Offset(5)),
            Effect::Append(batch),
            Effect::Flush {
                up_to: Offset(9),
                seq: 0,
            },
        ]
    );
    assert_eq!(replica.log_start_offset(), Offset(5));
    assert_eq!(replica.log_end_offset(), Offset(9));
    assert_eq!(replica.high_watermark(), Offset(9));
    // The leader's start reaches the follower afterwards, up to its HW.
    replica.step(0, Input::LogStartAdvanced(Offset(7)));
    assert_eq!(replica.log_start_offset(), Offset(7));
    replica.check_invariants();
}

#[test]
fn a_follower_with_records_backs_off_from_a_batch_starting_below_its_log_end() {
    let mut replica = follower_with_log();
    let batch = Batch {
        base_offset: Offset(3),
        leader_epoch: LeaderEpoch(3),
        record_count: 4,
        payload: vec![3].into(),
    };
    let data = FetchData {
        high_watermark: Offset(4),
        diverging_epoch: None,
        batches: vec![batch],
    };
    let effects = respond(&mut replica, 4, data);
    assert_eq!(
        effects,
        vec![Effect::SetTimer {
            timer: TimerKind::FetchBackoff,
            delay_ms_min: 500,
            delay_ms_max: 1_000,
        }]
    );
    assert_eq!(replica.log_end_offset(), Offset(4), "nothing appended");
    assert_eq!(replica.log_start_offset(), Offset(0));
}
