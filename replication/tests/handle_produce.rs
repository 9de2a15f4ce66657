//! Produce on a leader: acks 0/1/all, NOT_ENOUGH_REPLICAS, durable-HW completion.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{Acks, BugSwitches, Effect, Error, Input, Replica};
use wire::Offset;

#[test]
fn acks_one_replies_after_the_volatile_append() {
    let mut leader = leader();
    let effects = produce(&mut leader, 7, Acks::Leader);
    assert!(matches!(effects[0], Effect::Append(ref b) if b.base_offset == Offset(0)));
    assert!(matches!(
        effects[1],
        Effect::Flush {
            up_to: Offset(1),
            ..
        }
    ));
    assert_eq!(replies(&effects), vec![(7, Ok(Offset(0)))]);
    assert_eq!(leader.log_end_offset(), Offset(1));
    assert_eq!(leader.durable_end_offset(), Offset(0));
}

#[test]
fn acks_zero_never_replies() {
    let mut leader = leader();
    let effects = produce(&mut leader, 7, Acks::None);
    assert!(replies(&effects).is_empty());
    assert_eq!(leader.log_end_offset(), Offset(1));
}

#[test]
fn acks_all_waits_for_every_isr_member_and_the_leaders_flush() {
    let mut leader = leader();
    let effects = produce(&mut leader, 7, Acks::All);
    assert!(replies(&effects).is_empty());
    assert_eq!(leader.produce_waiting_count(), 1);
    fetch(&mut leader, 1, B1, 1, 1);
    let effects = fetch(&mut leader, 1, B2, 1, 1);
    assert!(
        replies(&effects).is_empty(),
        "the leader's own record is not flushed yet"
    );
    assert_eq!(leader.high_watermark(), Offset(0));
    let flush = vec![Effect::Flush {
        up_to: Offset(1),
        seq: 0,
    }];
    let effects = complete_flushes(&mut leader, &flush);
    assert_eq!(replies(&effects), vec![(7, Ok(Offset(0)))]);
    assert_eq!(leader.high_watermark(), Offset(1));
}

#[test]
fn acks_all_with_a_small_isr_is_refused_before_the_append() {
    let mut replica = Replica::new(config(B0), BugSwitches::default());
    replica.step(0, Input::PartitionState(state(B0, 1, 1, &[B0])));
    let effects = produce(&mut replica, 7, Acks::All);
    assert_eq!(replies(&effects), vec![(7, Err(Error::NotEnoughReplicas))]);
    assert_eq!(replica.log_end_offset(), Offset(0), "nothing appended");
}

/// A topic's `min.insync.replicas` lowered at run time (AlterConfigs) admits the next acks=all
/// produce the old value refused; raised again, it refuses again.
#[test]
fn a_changed_min_isr_applies_to_the_next_produce() {
    let mut replica = Replica::new(config(B0), BugSwitches::default());
    // state(B0, 1, 1, ...) is led by B0 with a three-replica assignment; only B0 is in sync.
    replica.step(0, Input::PartitionState(state(B0, 1, 1, &[B0])));
    assert_eq!(replica.min_insync_replicas(), 2);
    let effects = produce(&mut replica, 7, Acks::All);
    assert_eq!(replies(&effects), vec![(7, Err(Error::NotEnoughReplicas))]);
    replica.set_min_insync_replicas(1);
    assert_eq!(replica.min_insync_replicas(), 1);
    let effects = produce(&mut replica, 8, Acks::All);
    assert!(
        replies(&effects).is_empty(),
        "taken, waiting for its flush: {effects:?}"
    );
    let effects = complete_flushes(&mut replica, &effects);
    assert_eq!(replies(&effects), vec![(8, Ok(Offset(0)))]);
    assert_eq!(replica.high_watermark(), Offset(1));
    replica.set_min_insync_replicas(2);
    let effects = produce(&mut replica, 9, Acks::All);
    assert_eq!(replies(&effects), vec![(9, Err(Error::NotEnoughReplicas))]);
    assert_eq!(replica.log_end_offset(), Offset(1), "nothing more appended");
}

/// Kafka's `effectiveMinIsr`: a partition with fewer replicas than `min.insync.replicas` (a
/// topic created with replication factor 1 under the default min ISR 2) needs only all of its
/// replicas. Before the cap its acks=all produces were refused and its HW never moved, so even
/// acks=1 records never became readable.
#[test]
fn min_isr_above_the_replication_factor_is_capped_at_it() {
    let mut replica = Replica::new(config(B0), BugSwitches::default());
    assert_eq!(config(B0).min_insync_replicas, 2, "the default min ISR");
    let mut single = state(B0, 1, 1, &[B0]);
    single.replicas = vec![B0];
    replica.step(0, Input::PartitionState(single));
    let effects = produce(&mut replica, 7, Acks::All);
    assert!(
        replies(&effects).is_empty(),
        "waits for the flush: {effects:?}"
    );
    let effects = complete_flushes(&mut replica, &effects);
    assert_eq!(replies(&effects), vec![(7, Ok(Offset(0)))]);
    assert_eq!(replica.high_watermark(), Offset(1));
    let effects = produce(&mut replica, 8, Acks::Leader);
    assert_eq!(replies(&effects), vec![(8, Ok(Offset(1)))]);
    complete_flushes(&mut replica, &effects);
    assert_eq!(
        replica.high_watermark(),
        Offset(2),
        "acks=1 records become readable"
    );
    assert_eq!(replication::isr::min_insync_replicas_effective(2, 1), 1);
    assert_eq!(replication::isr::min_insync_replicas_effective(2, 3), 2);
    assert_eq!(replication::isr::min_insync_replicas_effective(1, 3), 1);
}

/// KIP-966: while the ISR is below min ISR the HW stands still, so a waiting acks=all produce
/// is not answered (it times out) rather than committed on too few replicas. Found by the
/// cluster simulation: the HW moved on with the leader alone, a replica that had left into the
/// ELR lacked the record, was elected, and an acknowledged record was lost.
#[test]
fn the_hw_stands_still_while_the_isr_is_below_min_and_moves_when_it_recovers() {
    let mut leader = leader();
    let effects = produce(&mut leader, 7, Acks::All);
    complete_flushes(&mut leader, &effects);
    let effects = leader.step(0, Input::PartitionState(state(B0, 1, 2, &[B0])));
    assert!(replies(&effects).is_empty(), "not answered: {effects:?}");
    assert_eq!(
        leader.high_watermark(),
        Offset(0),
        "the HW waits for min ISR"
    );
    assert_eq!(leader.produce_waiting_count(), 1);
    leader.step(0, Input::PartitionState(state(B0, 1, 3, &[B0, B1])));
    let effects = fetch(&mut leader, 1, B1, 1, 1);
    assert_eq!(replies(&effects), vec![(7, Ok(Offset(0)))]);
    assert_eq!(leader.high_watermark(), Offset(1));
}

#[test]
fn before_kip_966_the_hw_moved_on_and_the_produce_got_not_enough_replicas_after_append() {
    let bugs = BugSwitches {
        last_replica_standing: true,
        ..BugSwitches::default()
    };
    let mut leader = Replica::new(config(B0), bugs);
    leader.step(0, Input::PartitionState(state(B0, 1, 1, &[B0, B1, B2])));
    let effects = produce(&mut leader, 7, Acks::All);
    complete_flushes(&mut leader, &effects);
    let effects = leader.step(0, Input::PartitionState(state(B0, 1, 2, &[B0])));
    assert_eq!(
        replies(&effects),
        vec![(7, Err(Error::NotEnoughReplicasAfterAppend))]
    );
}

#[test]
fn a_follower_refuses_produce() {
    let mut replica = Replica::new(config(B1), BugSwitches::default());
    replica.step(0, Input::PartitionState(state(B0, 1, 1, &[B0, B1])));
    let effects = produce(&mut replica, 7, Acks::All);
    assert_eq!(
        replies(&effects),
        vec![(7, Err(Error::NotLeaderOrFollower))]
    );
}
