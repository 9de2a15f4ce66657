//! SyncGroup: the leader's assignment reaches every member; refusals.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{error_code, GroupState};
use bytes::Bytes;
use group_support::*;

#[test]
fn sync_distributes_the_leaders_assignment() {
    let (c, leader, follower, _) = stable_pair("g");
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.members[&leader].assignment, Bytes::from_static(b"L"));
    assert_eq!(
        group.members[&follower].assignment,
        Bytes::from_static(b"F")
    );
}

#[test]
fn a_late_follower_sync_in_a_stable_group_gets_its_assignment_at_once() {
    let (mut c, _leader, follower, generation) = stable_pair("g");
    let e = c.sync(140, 50, &sync_request("g", &follower, generation, &[]), 5);
    let r = sync_response(&e, 50);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.assignment, Bytes::from_static(b"F"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    for version in 0..=5 {
        assert_encodes(&r, version);
    }
}

#[test]
fn sync_refusals() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    let e = c.sync(
        140,
        1,
        &sync_request("g", &follower, generation + 1, &[]),
        3,
    );
    assert_eq!(
        sync_response(&e, 1).error_code,
        error_code::ILLEGAL_GENERATION
    );
    let e = c.sync(140, 2, &sync_request("g", "stranger", generation, &[]), 3);
    assert_eq!(
        sync_response(&e, 2).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
    let mut wrong = sync_request("g", &follower, generation, &[]);
    wrong.protocol_name = Some(s("roundrobin"));
    let e = c.sync(140, 3, &wrong, 5);
    assert_eq!(
        sync_response(&e, 3).error_code,
        error_code::INCONSISTENT_GROUP_PROTOCOL
    );
    // A rejoin starts a rebalance: syncs now learn REBALANCE_IN_PROGRESS.
    c.join(
        141,
        4,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    let e = c.sync(142, 5, &sync_request("g", &follower, generation, &[]), 3);
    assert_eq!(
        sync_response(&e, 5).error_code,
        error_code::REBALANCE_IN_PROGRESS
    );
    c.check_invariants();
}

#[test]
fn a_waiting_follower_sync_is_released_when_the_group_rebalances() {
    let mut c = coordinator_with(broker::group::GroupConfig {
        initial_rebalance_delay_ms: 10,
        ..config()
    });
    c.join(
        0,
        1,
        &client("a"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    c.join(
        1,
        2,
        &client("b"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    let done = c.tick(11);
    let (r1, r2) = (join_response(&done, 1), join_response(&done, 2));
    let follower = if r1.leader == r1.member_id {
        r2.member_id
    } else {
        r1.member_id
    };
    let e = c.sync(12, 3, &sync_request("g", &follower, 1, &[]), 3);
    assert!(e.is_empty());
    // A third member arrives before the leader syncs.
    let e = c.join(
        13,
        4,
        &client("c"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert_eq!(
        sync_response(&e, 3).error_code,
        error_code::REBALANCE_IN_PROGRESS
    );
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    c.check_invariants();
}
