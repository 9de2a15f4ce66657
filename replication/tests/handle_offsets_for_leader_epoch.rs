//! OffsetsForLeaderEpoch: the leader's answer, and a follower truncating through it (KIP-101).
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{
    BugSwitches, Effect, EpochEndOffset, Error, Input, Message, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse, RecoveredLog, Replica,
};
use wire::{LeaderEpoch, Offset};

fn recovered(end: i64, epochs: &[(i32, i64)], hw: i64) -> RecoveredLog {
    RecoveredLog {
        log_start_offset: Offset(0),
        log_end_offset: Offset(end),
        epochs: epochs
            .iter()
            .map(|&(e, s)| (LeaderEpoch(e), Offset(s)))
            .collect(),
        high_watermark: Offset(hw),
    }
}

#[test]
fn the_leader_answers_where_an_epoch_ends() {
    let mut leader = Replica::recover(
        config(B0),
        BugSwitches::default(),
        &recovered(6, &[(1, 0), (2, 4)], 0),
    );
    leader.step(0, Input::PartitionState(state(B0, 3, 3, &[B0, B1])));
    let ask = |epoch| OffsetsForLeaderEpochRequest {
        replica_id: B1,
        current_leader_epoch: LeaderEpoch(3),
        leader_epoch: LeaderEpoch(epoch),
    };
    let answer = |effects: Vec<Effect>| match &effects[0] {
        Effect::Send {
            message: Message::OffsetsForLeaderEpochResponse(r),
            ..
        } => r.result,
        other => panic!("unexpected {other:?}"),
    };
    let end = |e, o| {
        Ok(EpochEndOffset {
            leader_epoch: LeaderEpoch(e),
            end_offset: Offset(o),
        })
    };
    assert_eq!(
        answer(leader.handle_offsets_for_leader_epoch(ask(1))),
        end(1, 4)
    );
    assert_eq!(
        answer(leader.handle_offsets_for_leader_epoch(ask(2))),
        end(2, 6)
    );
    assert_eq!(
        answer(leader.handle_offsets_for_leader_epoch(ask(3))),
        end(3, 6)
    );
    let mut stale = ask(1);
    stale.current_leader_epoch = LeaderEpoch(2);
    assert_eq!(
        answer(leader.handle_offsets_for_leader_epoch(stale)),
        Err(Error::FencedLeaderEpoch)
    );
}

#[test]
fn a_follower_truncates_through_offsets_for_leader_epoch_then_fetches() {
    let mut cfg = config(B1);
    cfg.truncate_via_offsets_for_leader_epoch = true;
    let mut follower = Replica::recover(
        cfg,
        BugSwitches::default(),
        &recovered(6, &[(1, 0), (2, 3)], 1),
    );
    let effects = follower.step(0, Input::PartitionState(state(B0, 3, 3, &[B0, B1])));
    let asked = effects.iter().any(|e| matches!(e, Effect::Send { message: Message::OffsetsForLeaderEpoch(r), .. } if r.leader_epoch == LeaderEpoch(2)));
    assert!(asked, "asks for its latest epoch first");
    // The leader never saw epoch 2: it answers epoch 1 ending at 4.
    let response = OffsetsForLeaderEpochResponse {
        leader_id: B0,
        current_leader_epoch: LeaderEpoch(3),
        requested_epoch: LeaderEpoch(2),
        result: Ok(EpochEndOffset {
            leader_epoch: LeaderEpoch(1),
            end_offset: Offset(4),
        }),
    };
    let message = Message::OffsetsForLeaderEpochResponse(response);
    let effects = follower.step(0, Input::Message { from: B0, message });
    // Our epoch 1 ends at 3 (epoch 2 starts there): truncate to min(3, 4), above our HW of 1.
    assert!(effects.contains(&Effect::TruncateTo(Offset(3))));
    assert_eq!(follower.log_end_offset(), Offset(3));
    let fetched = effects.iter().any(|e| matches!(e, Effect::Send { message: Message::Fetch(f), .. } if f.fetch_offset == Offset(3)));
    assert!(fetched, "fetching once truncation is complete");
}

#[test]
fn consumers_never_read_past_the_hw_even_on_a_follower() {
    let mut follower = Replica::recover(
        config(B1),
        BugSwitches::default(),
        &recovered(6, &[(1, 0)], 2),
    );
    follower.step(0, Input::PartitionState(state(B0, 3, 3, &[B0, B1])));
    let range = follower
        .consumer_read_range(Some(LeaderEpoch(3)), Offset(0), 100)
        .unwrap();
    assert_eq!(range.to, Offset(2));
    // Between the HW and the LEO: an empty answer, not a refusal (regression from the cluster
    // simulation: a refusal sent consumers back to the earliest offset after a leader change).
    let leo = follower.log_end_offset();
    assert!(leo > Offset(3));
    let empty = follower.consumer_read_range(None, Offset(3), 100).unwrap();
    assert_eq!((empty.from, empty.to), (Offset(3), Offset(3)));
    assert!(
        follower.consumer_read_range(None, leo.add(1), 100).is_err(),
        "past the LEO is out of range"
    );
    assert_eq!(
        follower.consumer_read_range(Some(LeaderEpoch(2)), Offset(0), 100),
        Err(Error::FencedLeaderEpoch)
    );
}
