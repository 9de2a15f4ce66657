//! Heartbeat and session expiry.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{error_code, GroupConfig, GroupState};
use group_support::*;

#[test]
fn heartbeat_in_a_stable_group_is_fine_and_refreshes_the_session() {
    let (mut c, leader, _follower, generation) = stable_pair("g");
    let e = c.heartbeat(5_000, 1, &heartbeat_request("g", &leader, generation), 4);
    assert_eq!(heartbeat_code(&e, 1), error_code::NONE);
    assert_eq!(
        c.group("g").unwrap().members[&leader].heartbeat_last_ms,
        5_000
    );
}

#[test]
fn heartbeat_during_rebalance_says_rejoin() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    c.join(
        130,
        1,
        &client("c"),
        &join_request("g", "", &[("range", "")]),
        3,
    );
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    let e = c.heartbeat(131, 2, &heartbeat_request("g", &follower, generation), 4);
    assert_eq!(heartbeat_code(&e, 2), error_code::REBALANCE_IN_PROGRESS);
    let e = c.heartbeat(131, 3, &heartbeat_request("g", &leader, generation - 1), 4);
    assert_eq!(heartbeat_code(&e, 3), error_code::ILLEGAL_GENERATION);
    let e = c.heartbeat(131, 4, &heartbeat_request("g", "ghost", generation), 4);
    assert_eq!(heartbeat_code(&e, 4), error_code::UNKNOWN_MEMBER_ID);
}

#[test]
fn session_expiry_removes_the_member_and_rebalances() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    // Only the leader keeps heartbeating; sessions are 10 s, the pair synced at 120 ms.
    c.heartbeat(9_000, 1, &heartbeat_request("g", &leader, generation), 4);
    let e = c.tick(10_120);
    assert!(!c.group("g").unwrap().members.contains_key(&follower));
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    assert!(timers(&e).iter().all(|at| *at > 10_120));
    let e = c.heartbeat(10_021, 2, &heartbeat_request("g", &leader, generation), 4);
    assert_eq!(heartbeat_code(&e, 2), error_code::REBALANCE_IN_PROGRESS);
    let e = c.join(
        10_022,
        3,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    let r = join_response(&e, 3);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    c.check_invariants();
}

#[test]
fn when_every_session_expires_the_group_becomes_empty() {
    let (mut c, _leader, _follower, generation) = stable_pair("g");
    c.tick(10_120);
    c.tick(10_120 + 30_000);
    let group = c.group("g");
    // Without committed offsets the empty group is dropped or empty; either way no members.
    if let Some(group) = group {
        assert_eq!(group.state, GroupState::Empty);
        assert!(group.members.is_empty());
        assert_eq!(group.generation_id, generation + 1);
    }
    c.check_invariants();
}

/// Found by the cluster campaign's consumer group (seeds 34, 60, 75, 181 and 190 of
/// `cargo sim --seeds 200` when the group workload came in): a tick late past both a rebalance's
/// deadline and two members' sessions (a paused node ticks late). Removing the first expired
/// member completed the overdue rebalance, which dropped the second as a straggler, and removing
/// the second then panicked the coordinator's tick ("caller checked").
#[test]
fn members_expiring_at_a_tick_past_the_rebalance_deadline_are_removed_once() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..config()
    });
    let protocols = [("range", "m")];
    // Sessions of 10 s, rebalances of 1 s.
    let join =
        |member: &str| join_request("g", member, &protocols).with_rebalance_timeout_ms(1_000);
    let e1 = c.join(0, 1, &client("a"), &join(""), 3);
    let e2 = c.join(10, 2, &client("b"), &join(""), 3);
    assert!(!answered(&e1, 1) && !answered(&e2, 2));
    let done = c.tick(110);
    let (r1, r2) = (join_response(&done, 1), join_response(&done, 2));
    let (a, b) = (r1.member_id.to_string(), r2.member_id.to_string());
    let leader = r1.leader.to_string();
    let follower = if leader == a { b.clone() } else { a.clone() };
    c.sync(120, 10, &sync_request("g", &follower, 1, &[]), 3);
    c.sync(
        120,
        11,
        &sync_request("g", &leader, 1, &[(&a, "A"), (&b, "B")]),
        3,
    );
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    // A third member starts a rebalance at 9.5 s (deadline 10.5 s); the pair never rejoins and
    // their sessions end at 10.12 s. The next tick comes only at 11 s.
    c.join(9_500, 3, &client("c"), &join(""), 3);
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    let e = c.tick(11_000);
    let group = c.group("g").unwrap();
    assert!(!group.members.contains_key(&a) && !group.members.contains_key(&b));
    assert_eq!(group.members.len(), 1, "only the third member is left");
    assert_eq!(join_response(&e, 3).generation_id, 2);
    c.check_invariants();
}

/// Seed 17751: the leader never sent its SyncGroup and its session ended; the tick that
/// expired it came late (a 100 ms tick loop, or a paused process) and its rebalance answered
/// the follower's waiting SyncGroup without restarting the follower's session, which had not
/// counted while it waited and was itself past due: the coordinator's check that every due
/// deadline was handled panicked (the release build aborts the broker).
#[test]
fn a_leader_expiring_before_its_sync_restarts_the_waiting_followers_sessions() {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..config()
    });
    let protocols = [("range", "m")];
    c.join(0, 1, &client("a"), &join_request("g", "", &protocols), 3);
    c.join(10, 2, &client("b"), &join_request("g", "", &protocols), 3);
    let done = c.tick(110);
    let (first, second) = (join_response(&done, 1), join_response(&done, 2));
    let follower = if first.leader == first.member_id {
        second.member_id
    } else {
        first.member_id
    }
    .to_string();
    assert!(c
        .sync(120, 10, &sync_request("g", &follower, 1, &[]), 3)
        .is_empty());
    // The leader's session ends at 10_110, the follower's (not counted while it waits) at
    // 10_120; the tick comes at 10_200.
    let e = c.tick(10_200);
    assert_eq!(
        sync_response(&e, 10).error_code,
        error_code::REBALANCE_IN_PROGRESS
    );
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.members[&follower].heartbeat_last_ms, 10_200);
    assert!(timers(&e).iter().all(|at| *at > 10_200));
    c.check_invariants();
}
