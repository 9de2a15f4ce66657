//! AlterPartition answers and flush completions: pending ISR changes, stale flushes.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{
    Acks, Batch, BugSwitches, Effect, EpochEndOffset, Error, FetchData, FetchResponse, Input,
    Message, Replica, TimerKind,
};
use wire::{LeaderEpoch, Offset};

#[test]
fn only_a_refusal_proving_nothing_applied_clears_the_pending_change() {
    let mut leader = leader();
    leader.step(1_500, Input::Timer(TimerKind::IsrCheck));
    assert!(leader.alter_partition_pending());
    // Stale: the metadata moved on, perhaps by this change; the newer state will tell.
    let effects = leader.step(
        1_500,
        Input::AlterPartitionResponse(Err(Error::InvalidUpdateVersion)),
    );
    assert!(effects.is_empty());
    assert!(leader.alter_partition_pending());
    // Refused at the epoch it named: certainly not applied.
    let effects = leader.step(
        1_500,
        Input::AlterPartitionResponse(Err(Error::IneligibleReplica)),
    );
    assert!(effects.is_empty());
    assert!(!leader.alter_partition_pending());
}

/// Cluster simulation seed 284071: a controller frozen while it led was deposed; resumed, it
/// answered the leader's expansion from its old image ("not the current leader": stale) before
/// it learned it no longer led. No newer partition state ever came, and the pending change
/// blocked every later ISR change: the ISR stayed one broker, below min ISR. A stale refusal
/// keeps the change pending and sends it again at the next ISR check.
#[test]
fn a_stale_refusal_sends_the_pending_change_again() {
    let mut leader = leader();
    leader.step(1_500, Input::Timer(TimerKind::IsrCheck));
    assert!(leader.alter_partition_pending());
    leader.step(
        1_500,
        Input::AlterPartitionResponse(Err(Error::InvalidUpdateVersion)),
    );
    let effects = leader.step(2_000, Input::Timer(TimerKind::IsrCheck));
    let resent = effects
        .iter()
        .filter(|e| matches!(e, Effect::AlterPartition(_)))
        .count();
    assert_eq!(resent, 1, "the same proposal goes again: {effects:?}");
    let committed = state(B0, 1, 2, &[B0, B1]);
    leader.step(2_000, Input::AlterPartitionResponse(Ok(committed)));
    assert!(!leader.alter_partition_pending());
}

/// Cluster simulation seed 154: an ISR expansion committed, but its answer was an error. The
/// leader dropped the pending change and let the HW pass the new member, which the controller
/// then elected without acknowledged records. The change stays pending (the HW waits for the
/// member) and goes again at the next ISR check.
#[test]
fn an_expansion_with_an_unknown_outcome_stays_pending_and_goes_again() {
    let mut leader = leader();
    // Broker 2 lags: the ISR check proposes dropping it, and the answer is lost.
    leader.step(1_500, Input::Timer(TimerKind::IsrCheck));
    assert!(leader.alter_partition_pending());
    let effects = leader.step(
        1_500,
        Input::AlterPartitionResponse(Err(Error::AlterPartitionOutcomeUnknown)),
    );
    assert!(effects.is_empty());
    assert!(leader.alter_partition_pending(), "the outcome is unknown");
    let effects = leader.step(2_000, Input::Timer(TimerKind::IsrCheck));
    let resent: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::AlterPartition(_)))
        .collect();
    assert_eq!(resent.len(), 1, "the same proposal goes again: {effects:?}");
    // Its commit arrives as partition state: the change is no longer pending.
    let committed = state(B0, 1, 2, &[B0, B1]);
    leader.step(2_000, Input::AlterPartitionResponse(Ok(committed)));
    assert!(!leader.alter_partition_pending());
}

#[test]
fn a_committed_shrink_lets_the_hw_advance() {
    let mut leader = leader();
    let effects = produce(&mut leader, 4, Acks::All);
    complete_flushes(&mut leader, &effects);
    fetch(&mut leader, 10, B1, 1, 1);
    assert_eq!(
        leader.high_watermark(),
        Offset(0),
        "broker 2 holds the HW back"
    );
    leader.step(1_500, Input::Timer(TimerKind::IsrCheck));
    let committed = state(B0, 1, 2, &[B0, B1]);
    let effects = leader.step(1_500, Input::AlterPartitionResponse(Ok(committed)));
    assert_eq!(leader.high_watermark(), Offset(1));
    assert_eq!(replies(&effects), vec![(4, Ok(Offset(0)))]);
    assert!(!leader.alter_partition_pending());
}

#[test]
fn a_flush_completion_from_before_a_truncation_is_ignored() {
    let mut follower = Replica::new(config(B1), BugSwitches::default());
    follower.step(0, Input::PartitionState(state(B0, 1, 1, &[B0, B1])));
    let batch = |base, epoch| Batch {
        base_offset: Offset(base),
        leader_epoch: LeaderEpoch(epoch),
        record_count: 1,
        payload: vec![1].into(),
    };
    let response = |offset, data| {
        let response = FetchResponse {
            leader_id: B0,
            leader_epoch: LeaderEpoch(1),
            fetch_offset: Offset(offset),
            last_fetched_epoch: LeaderEpoch::NONE,
            result: Ok(data),
        };
        Input::Message {
            from: B0,
            message: Message::FetchResponse(response),
        }
    };
    let data = FetchData {
        high_watermark: Offset(0),
        diverging_epoch: None,
        batches: vec![batch(0, 1)],
    };
    let effects = follower.step(0, response(0, data));
    let (seq, up_to) = effects
        .iter()
        .find_map(|e| match e {
            Effect::Flush { seq, up_to } => Some((*seq, *up_to)),
            _ => None,
        })
        .unwrap();
    // A newer leader says epoch 1 ended at 0: the record goes before its flush completes.
    follower.step(0, Input::PartitionState(state(B2, 2, 2, &[B1, B2])));
    let diverging = EpochEndOffset {
        leader_epoch: LeaderEpoch(1),
        end_offset: Offset(0),
    };
    let data = FetchData {
        high_watermark: Offset(0),
        diverging_epoch: Some(diverging),
        batches: vec![],
    };
    let answer = FetchResponse {
        leader_id: B2,
        leader_epoch: LeaderEpoch(2),
        fetch_offset: Offset(1),
        last_fetched_epoch: LeaderEpoch(1),
        result: Ok(data),
    };
    follower.step(0, Input::FlushCompleted { seq, up_to });
    assert_eq!(
        follower.durable_end_offset(),
        Offset(1),
        "flush before truncation counts"
    );
    let effects = follower.step(
        0,
        Input::Message {
            from: B2,
            message: Message::FetchResponse(answer),
        },
    );
    assert!(effects.contains(&Effect::TruncateTo(Offset(0))));
    assert_eq!(follower.durable_end_offset(), Offset(0));
    follower.step(0, Input::FlushCompleted { seq, up_to });
    assert_eq!(
        follower.durable_end_offset(),
        Offset(0),
        "a stale completion is ignored"
    );
}
