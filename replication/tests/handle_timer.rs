//! Timers: ISR shrink after the lag limit, produce deadlines, fetch retransmission.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use replication::{Acks, BugSwitches, Effect, Error, Input, Message, Replica, TimerKind};

#[test]
fn followers_lagging_past_the_limit_are_proposed_out_of_the_isr() {
    let mut leader = leader();
    fetch(&mut leader, 900, B1, 0, 1);
    let effects = leader.step(1_500, Input::Timer(TimerKind::IsrCheck));
    let proposal = effects.iter().find_map(|e| match e {
        Effect::AlterPartition(p) => Some(p.clone()),
        _ => None,
    });
    let proposal = proposal.expect("shrink proposed");
    assert_eq!(proposal.new_isr, [B0, B1].into_iter().collect());
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::SetTimer {
            timer: TimerKind::IsrCheck,
            ..
        }
    )));
    let effects = leader.step(3_000, Input::Timer(TimerKind::IsrCheck));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::AlterPartition(_))),
        "pending blocks"
    );
}

#[test]
fn acks_all_past_its_deadline_times_out() {
    let mut leader = leader();
    produce(&mut leader, 3, Acks::All);
    let effects = leader.step(60_000, Input::Timer(TimerKind::ProduceDeadline));
    assert_eq!(replies(&effects), vec![(3, Err(Error::RequestTimedOut))]);
    assert_eq!(leader.produce_waiting_count(), 0);
}

#[test]
fn the_fetch_timer_retransmits_a_lost_fetch() {
    let mut follower = Replica::new(config(B1), BugSwitches::default());
    let first = follower.step(0, Input::PartitionState(state(B0, 1, 1, &[B0, B1])));
    assert!(first.iter().any(|e| matches!(
        e,
        Effect::Send {
            message: Message::Fetch(_),
            ..
        }
    )));
    let again = follower.step(1_000, Input::Timer(TimerKind::FetchBackoff));
    assert!(again.iter().any(|e| matches!(
        e,
        Effect::Send {
            message: Message::Fetch(_),
            ..
        }
    )));
}
