//! JoinGroup: rebalances, generations, leader election, protocol selection, refusals.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{error_code, GroupConfig, GroupState};
use group_support::*;

#[test]
fn two_members_join_one_rebalance_same_generation_leader_gets_members() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..config()
    });
    let protocols = [("range", "meta")];
    c.join(0, 1, &client("a"), &join_request("g", "", &protocols), 3);
    c.join(50, 2, &client("b"), &join_request("g", "", &protocols), 3);
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    assert!(c
        .tick(149)
        .iter()
        .all(|e| !matches!(e, broker::group::GroupEffect::Respond { .. })));
    let effects = c.tick(150);
    let (r1, r2) = (join_response(&effects, 1), join_response(&effects, 2));
    assert_eq!((r1.error_code, r2.error_code), (0, 0));
    assert_eq!(r1.generation_id, 1);
    assert_eq!(r2.generation_id, 1);
    assert_eq!(r1.leader, r2.leader);
    assert_eq!(r1.protocol_name.as_deref(), Some("range"));
    let (leader, follower) = if r1.leader == r1.member_id {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert_eq!(
        leader.members.len(),
        2,
        "the leader learns every member's metadata"
    );
    assert!(leader.members.iter().all(|m| &m.metadata[..] == b"meta"));
    assert!(follower.members.is_empty());
    assert_ne!(leader.member_id, follower.member_id);
    assert!(leader.member_id.starts_with("a-") || leader.member_id.starts_with("b-"));
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::CompletingRebalance);
    assert_eq!(group.generation_id, 1);
    for version in 0..=7 {
        assert_encodes(&leader, version);
    }
}

#[test]
fn first_join_v4_needs_a_member_id() {
    let mut c = coordinator();
    let effects = c.join(
        0,
        1,
        &client("cli"),
        &join_request("g", "", &[("range", "")]),
        4,
    );
    let r = join_response(&effects, 1);
    assert_eq!(r.error_code, error_code::MEMBER_ID_REQUIRED);
    assert!(r.member_id.starts_with("cli-"));
    assert_eq!(c.group("g").unwrap().pending_members.len(), 1);
    assert!(c.group("g").unwrap().members.is_empty());
    let effects = c.join(
        5,
        2,
        &client("cli"),
        &join_request("g", &r.member_id, &[("range", "")]),
        4,
    );
    let joined = join_response(&effects, 2);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.member_id, r.member_id);
    assert_eq!(joined.leader, r.member_id);
    assert_eq!(joined.generation_id, 1);
    assert!(c.group("g").unwrap().pending_members.is_empty());
}

#[test]
fn an_unclaimed_pending_member_id_expires() {
    let mut c = coordinator();
    let effects = c.join(
        0,
        1,
        &client("cli"),
        &join_request("g", "", &[("range", "")]),
        5,
    );
    assert_eq!(timers(&effects), vec![10_000]);
    c.tick(10_000);
    assert!(
        c.group("g").is_none(),
        "the group held nothing but the pending member"
    );
    let member_id = join_response(&effects, 1).member_id;
    let late = c.join(
        10_001,
        2,
        &client("cli"),
        &join_request("g", &member_id, &[("range", "")]),
        5,
    );
    assert_eq!(
        join_response(&late, 2).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn protocol_is_the_one_all_support_in_the_leaders_order() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 10,
        ..config()
    });
    c.join(
        0,
        1,
        &client("a"),
        &join_request("g", "", &[("sticky", ""), ("range", ""), ("rr", "")]),
        3,
    );
    c.join(
        1,
        2,
        &client("b"),
        &join_request("g", "", &[("rr", ""), ("range", "")]),
        3,
    );
    let effects = c.tick(11);
    assert_eq!(
        join_response(&effects, 2).protocol_name.as_deref(),
        Some("range")
    );
    let bad = c.join(
        12,
        3,
        &client("c"),
        &join_request("g", "", &[("other", "")]),
        3,
    );
    assert_eq!(
        join_response(&bad, 3).error_code,
        error_code::INCONSISTENT_GROUP_PROTOCOL
    );
    c.check_invariants();
}

#[test]
fn a_new_member_rebalances_a_stable_group() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    let effects = c.join(
        130,
        20,
        &client("c"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert!(!answered(&effects, 20));
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    c.join(
        131,
        21,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    let done = c.join(
        132,
        22,
        &client("b"),
        &join_request("g", &follower, &[("range", "m")]),
        3,
    );
    for ticket in [20, 21, 22] {
        assert_eq!(join_response(&done, ticket).generation_id, generation + 1);
    }
    assert_eq!(
        join_response(&done, 21).leader.to_string(),
        leader,
        "the leader stays leader"
    );
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    // The leader rejoins (forcing a rebalance); the follower heartbeats but never rejoins.
    let effects = c.join(
        200,
        30,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    assert!(!answered(&effects, 30));
    assert_eq!(
        timers(&effects),
        vec![120 + 10_000],
        "the follower's session ends first"
    );
    for (ticket, at) in [(31, 9_000), (32, 18_000), (33, 27_000)] {
        let e = c.heartbeat(
            at,
            ticket,
            &heartbeat_request("g", &follower, generation),
            4,
        );
        assert_eq!(
            heartbeat_code(&e, ticket),
            error_code::REBALANCE_IN_PROGRESS
        );
    }
    assert!(c
        .tick(30_199)
        .iter()
        .all(|e| !answered(std::slice::from_ref(e), 30)));
    let done = c.tick(200 + 30_000);
    let r = join_response(&done, 30);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert_eq!(c.group("g").unwrap().members.len(), 1);
}

#[test]
fn refusals_for_bad_requests_and_foreign_groups() {
    let mut c = coordinator();
    let e = c.join(
        0,
        1,
        &client("a"),
        &join_request("", "", &[("range", "")]),
        3,
    );
    assert_eq!(
        join_response(&e, 1).error_code,
        error_code::INVALID_GROUP_ID
    );
    let mut short = join_request("g", "", &[("range", "")]);
    short.session_timeout_ms = 10;
    let e = c.join(0, 2, &client("a"), &short, 3);
    assert_eq!(
        join_response(&e, 2).error_code,
        error_code::INVALID_SESSION_TIMEOUT
    );
    let e = c.join(
        0,
        3,
        &client("a"),
        &join_request("g", "nobody", &[("range", "")]),
        3,
    );
    assert_eq!(
        join_response(&e, 3).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
    let partition = c.partition_for("g");
    c.unload(partition);
    let e = c.join(
        0,
        4,
        &client("a"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert_eq!(join_response(&e, 4).error_code, error_code::NOT_COORDINATOR);
    c.begin_loading(partition);
    let e = c.join(
        0,
        5,
        &client("a"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert_eq!(
        join_response(&e, 5).error_code,
        error_code::COORDINATOR_LOAD_IN_PROGRESS
    );
    for version in 0..=7 {
        assert_encodes(&join_response(&e, 5), version);
    }
    c.check_invariants();
}

#[test]
fn group_size_is_bounded() {
    let mut c = coordinator_with(GroupConfig {
        members_per_group_max: 1,
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
    let e = c.join(
        0,
        2,
        &client("b"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert_eq!(
        join_response(&e, 2).error_code,
        error_code::GROUP_MAX_SIZE_REACHED
    );
}
