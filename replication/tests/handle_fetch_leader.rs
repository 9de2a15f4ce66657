//! Follower fetches arriving at the leader: fencing, divergence, HW, ISR expansion.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{Acks, Effect, Error, FetchRequest, Input, Message, ReadRange};
use wire::{LeaderEpoch, Offset};

fn error_of(effects: &[Effect]) -> Option<Error> {
    effects.iter().find_map(|e| match e {
        Effect::Send {
            message: Message::FetchResponse(r),
            ..
        } => r.result.clone().err(),
        _ => None,
    })
}

#[test]
fn stale_and_newer_epochs_are_fenced() {
    let mut leader = leader();
    assert_eq!(
        error_of(&fetch(&mut leader, 0, B1, 0, 0)),
        Some(Error::FencedLeaderEpoch)
    );
    assert_eq!(
        error_of(&fetch(&mut leader, 0, B1, 0, 2)),
        Some(Error::UnknownLeaderEpoch)
    );
    assert_eq!(leader.follower_progress(B1).unwrap().log_end_offset, None);
}

#[test]
fn a_valid_fetch_is_counted_and_answered_with_a_read() {
    let mut leader = leader();
    let effects = produce(&mut leader, 1, Acks::Leader);
    complete_flushes(&mut leader, &effects);
    let effects = fetch(&mut leader, 5, B1, 0, 1);
    let read = effects.iter().find_map(|e| match e {
        Effect::SendFetchResponse { read, .. } => Some(*read),
        _ => None,
    });
    assert_eq!(
        read,
        Some(ReadRange {
            from: Offset(0),
            to: Offset(1)
        })
    );
    assert_eq!(
        leader.follower_progress(B1).unwrap().log_end_offset,
        Some(Offset(0))
    );
}

#[test]
fn a_diverging_follower_is_told_where_its_epoch_ends() {
    let mut leader = leader();
    let request = FetchRequest {
        replica_id: B1,
        fetch_offset: Offset(3),
        current_leader_epoch: LeaderEpoch(1),
        last_fetched_epoch: LeaderEpoch(0),
    };
    let effects = leader.step(
        0,
        Input::Message {
            from: B1,
            message: Message::Fetch(request),
        },
    );
    let diverging = effects.iter().find_map(|e| match e {
        Effect::Send {
            message: Message::FetchResponse(r),
            ..
        } => r.result.as_ref().unwrap().diverging_epoch,
        _ => None,
    });
    let diverging = diverging.expect("diverging epoch");
    assert_eq!(diverging.end_offset, Offset(0));
    assert_eq!(
        leader.follower_progress(B1).unwrap().log_end_offset,
        None,
        "not counted"
    );
}

#[test]
fn a_caught_up_follower_is_proposed_back_into_the_isr() {
    let mut leader = leader();
    leader.step(0, Input::PartitionState(state(B0, 1, 2, &[B0, B1])));
    let effects = fetch(&mut leader, 0, B2, 0, 1);
    let proposal = effects.iter().find_map(|e| match e {
        Effect::AlterPartition(p) => Some(p.clone()),
        _ => None,
    });
    let proposal = proposal.expect("expansion proposed");
    assert!(proposal.new_isr.contains(&B2));
    assert_eq!(proposal.partition_epoch.0, 2);
    assert!(leader.alter_partition_pending());
    assert!(
        leader.maximal_isr().contains(&B2),
        "maximal ISR counts the pending member"
    );
}
