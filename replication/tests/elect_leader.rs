//! The controller-side election rule (clean, ELR per KIP-966, unclean) and its bug switch.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use replication::election::{
    elect_leader, elr_after_isr_change, isr_after_election, ElectionInput, ElectionKind,
};
use wire::BrokerId;

const R: [BrokerId; 3] = [BrokerId(0), BrokerId(1), BrokerId(2)];
/// No replica reported offline.
static NONE: BTreeSet<BrokerId> = BTreeSet::new();

fn set(ids: &[i32]) -> BTreeSet<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn input<'a>(
    isr: &'a BTreeSet<BrokerId>,
    elr: &'a BTreeSet<BrokerId>,
    live: &'a BTreeSet<BrokerId>,
    unclean: bool,
    bug: bool,
) -> ElectionInput<'a> {
    ElectionInput {
        replicas: &R,
        isr,
        elr,
        live,
        offline: &NONE,
        unclean_allowed: unclean,
        last_replica_standing_bug: bug,
    }
}

#[test]
fn clean_election_prefers_the_first_live_isr_member() {
    let (isr, elr, live) = (set(&[1, 2]), set(&[]), set(&[0, 1, 2]));
    let elected = elect_leader(&input(&isr, &elr, &live, false, false));
    assert_eq!(elected, Some((ElectionKind::Clean, BrokerId(1))));
}

#[test]
fn elr_member_is_elected_when_no_isr_member_lives() {
    let (isr, elr, live) = (set(&[0]), set(&[1]), set(&[1, 2]));
    let elected = elect_leader(&input(&isr, &elr, &live, false, false));
    assert_eq!(elected, Some((ElectionKind::Elr, BrokerId(1))));
    let (new_isr, new_elr) = isr_after_election(ElectionKind::Elr, BrokerId(1), &isr, &elr);
    assert_eq!((new_isr, new_elr), (set(&[1]), set(&[])));
}

#[test]
fn without_isr_or_elr_the_partition_stays_offline_unless_unclean() {
    let (isr, elr, live) = (set(&[0]), set(&[]), set(&[2]));
    assert_eq!(elect_leader(&input(&isr, &elr, &live, false, false)), None);
    let unclean = elect_leader(&input(&isr, &elr, &live, true, false));
    assert_eq!(unclean, Some((ElectionKind::Unclean, BrokerId(2))));
}

#[test]
fn the_last_replica_standing_bug_elects_a_replica_outside_isr_and_elr() {
    let (isr, elr, live) = (set(&[0]), set(&[1]), set(&[2]));
    assert_eq!(elect_leader(&input(&isr, &elr, &live, false, false)), None);
    let buggy = elect_leader(&input(&isr, &elr, &live, false, true));
    assert_eq!(buggy, Some((ElectionKind::Unclean, BrokerId(2))));
}

#[test]
fn unclean_election_waits_while_the_elr_has_members() {
    // KIP-966: ELR member 1 is fenced but may return with every committed record.
    let (isr, elr, live) = (set(&[]), set(&[1]), set(&[2]));
    assert_eq!(elect_leader(&input(&isr, &elr, &live, true, false)), None);
}

/// A replica whose copy failed is elected from no set until its broker registers again (found on
/// real processes: ISR {2,1,3} -> {1,3} -> {3} by offline reports, then 3 died and the failed
/// copy on 1 was elected from the ELR; the partition stayed offline for good).
#[test]
fn an_offline_replica_is_never_elected_and_still_blocks_unclean_elections() {
    let offline = set(&[1]);
    let with = |isr, elr, live, unclean| ElectionInput {
        offline: &offline,
        ..input(isr, elr, live, unclean, false)
    };
    let (isr, elr, live) = (set(&[1, 2]), set(&[]), set(&[0, 1, 2]));
    let clean = elect_leader(&with(&isr, &elr, &live, false));
    assert_eq!(
        clean,
        Some((ElectionKind::Clean, BrokerId(2))),
        "ISR: skipped"
    );
    let (isr, elr, live) = (set(&[]), set(&[1, 2]), set(&[1]));
    assert_eq!(
        elect_leader(&with(&isr, &elr, &live, true)),
        None,
        "ELR: skipped"
    );
    let live_all = set(&[0, 1, 2]);
    assert_eq!(
        elect_leader(&with(&isr, &elr, &live_all, true)),
        Some((ElectionKind::Elr, BrokerId(2)))
    );
    let (isr, elr, live) = (set(&[]), set(&[]), set(&[1]));
    assert_eq!(
        elect_leader(&with(&isr, &elr, &live, true)),
        None,
        "unclean: skipped"
    );
    let (elr_offline, live) = (set(&[1]), set(&[0, 2]));
    assert_eq!(
        elect_leader(&with(&isr, &elr_offline, &live, true)),
        None,
        "an offline ELR member keeps its flushed bytes: no unclean election past it"
    );
}

#[test]
fn elr_collects_members_leaving_an_isr_below_min() {
    let elr = elr_after_isr_change(&set(&[0, 1]), &set(&[0]), &set(&[]), 2, false);
    assert_eq!(elr, set(&[1]));
    let cleared = elr_after_isr_change(&set(&[0]), &set(&[0, 2]), &set(&[1]), 2, false);
    assert_eq!(cleared, set(&[]), "an ISR at min clears the ELR");
    let shrink_at_min = elr_after_isr_change(&set(&[0, 1, 2]), &set(&[0, 1]), &set(&[]), 2, false);
    assert_eq!(
        shrink_at_min,
        set(&[]),
        "leaving while the ISR stays at min: not eligible"
    );
    let buggy = elr_after_isr_change(&set(&[0, 1]), &set(&[0]), &set(&[]), 2, true);
    assert_eq!(buggy, set(&[]), "no ELR before KIP-966");
}

/// An administrator's elections (KIP-460): preferred only cleanly; unclean past the ELR.
#[test]
fn requested_elections_follow_kafkas_partition_change_builder() {
    use replication::election::{elect_requested, RequestedElection};
    // Replica 0 is back in the ISR, 1 leads: a preferred election moves the leadership to 0.
    let (isr, elr, live) = (set(&[0, 1]), set(&[]), set(&[0, 1, 2]));
    let preferred = elect_requested(
        &input(&isr, &elr, &live, false, false),
        Some(BrokerId(1)),
        RequestedElection::Preferred,
    );
    assert_eq!(preferred, Some((ElectionKind::Clean, BrokerId(0))));
    // Replica 0 outside the ISR: not available while 1 leads.
    let isr = set(&[1, 2]);
    let input_led = input(&isr, &elr, &live, false, false);
    let refused = elect_requested(&input_led, Some(BrokerId(1)), RequestedElection::Preferred);
    assert_eq!(refused, None);
    // Leaderless with an ELR member fenced: the controller's own rule waits for it even with
    // unclean elections allowed; an administrator's unclean election does not.
    let (isr, elr, live) = (set(&[]), set(&[0]), set(&[1, 2]));
    let waiting = input(&isr, &elr, &live, true, false);
    assert_eq!(elect_leader(&waiting), None);
    let unclean = elect_requested(&waiting, None, RequestedElection::Unclean);
    assert_eq!(unclean, Some((ElectionKind::Unclean, BrokerId(1))));
    // A live ELR member is a clean candidate and comes first.
    let live = set(&[0, 2]);
    let elr_first = elect_requested(
        &input(&isr, &elr, &live, false, false),
        None,
        RequestedElection::Unclean,
    );
    assert_eq!(elr_first, Some((ElectionKind::Elr, BrokerId(0))));
    // Nobody live: nothing.
    let nobody = set(&[]);
    let none = elect_requested(
        &input(&isr, &elr, &nobody, true, false),
        None,
        RequestedElection::Unclean,
    );
    assert_eq!(none, None);
}
