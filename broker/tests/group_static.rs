//! Static membership (KIP-345, `group.instance.id`): a restarted static member takes its old
//! member's place without a rebalance, and the old instance is fenced.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{error_code, GroupConfig, GroupCoordinator, GroupEffect, GroupState};
use bytes::Bytes;
use group_support::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, GroupId, JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, ResponseKind, TopicName,
};

/// JoinGroup v5 carries the instance id.
const V: i16 = 5;

fn static_join(
    group: &str,
    member_id: &str,
    instance: &str,
    protocols: &[(&str, &str)],
) -> JoinGroupRequest {
    join_request(group, member_id, protocols).with_group_instance_id(Some(s(instance)))
}

/// `request` sent at JoinGroup version [`V`] by client `client_id`.
fn join_v(
    c: &mut GroupCoordinator,
    now_ms: u64,
    ticket: u64,
    client_id: &str,
    request: &JoinGroupRequest,
) -> Vec<GroupEffect> {
    c.join(now_ms, ticket, &client(client_id), request, V)
}

/// Two static members ("i1", "i2") form generation 1 and sync.
/// Returns (coordinator, leader id, follower id, leader instance, follower instance).
fn static_pair(group: &str) -> (GroupCoordinator, String, String, String, String) {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..config()
    });
    let protocols = [("range", "m")];
    let e1 = join_v(&mut c, 0, 1, "a", &static_join(group, "", "i1", &protocols));
    let e2 = join_v(
        &mut c,
        10,
        2,
        "b",
        &static_join(group, "", "i2", &protocols),
    );
    assert!(
        !answered(&e1, 1) && !answered(&e2, 2),
        "static members join at once"
    );
    let done = c.tick(110);
    let (r1, r2) = (join_response(&done, 1), join_response(&done, 2));
    assert_eq!((r1.error_code, r2.generation_id), (0, 1));
    let (leader, follower, li, fi) = if r1.leader == r1.member_id {
        (
            r1.member_id.to_string(),
            r2.member_id.to_string(),
            "i1",
            "i2",
        )
    } else {
        (
            r2.member_id.to_string(),
            r1.member_id.to_string(),
            "i2",
            "i1",
        )
    };
    c.sync(120, 10, &sync_request(group, &follower, 1, &[]), 3);
    let l = c.sync(
        120,
        11,
        &sync_request(group, &leader, 1, &[(&leader, "L"), (&follower, "F")]),
        3,
    );
    assert_eq!(sync_response(&l, 10).assignment, Bytes::from_static(b"F"));
    c.check_invariants();
    (c, leader, follower, li.to_string(), fi.to_string())
}

fn commit(
    group: &str,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])])
}

fn leave_v3(group: &str, members: &[(&str, Option<&str>)]) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(
            members
                .iter()
                .map(|(member, instance)| {
                    MemberIdentity::default()
                        .with_member_id(s(member))
                        .with_group_instance_id(instance.map(s))
                })
                .collect(),
        )
}

fn leave_response(effects: &[GroupEffect], ticket: u64) -> LeaveGroupResponse {
    match response(effects, ticket) {
        ResponseKind::LeaveGroup(r) => r,
        other => panic!("not a LeaveGroup response: {other:?}"),
    }
}

#[test]
fn a_new_static_member_skips_member_id_required() {
    let mut c = coordinator();
    let e = join_v(
        &mut c,
        0,
        1,
        "a",
        &static_join("g", "", "i1", &[("range", "")]),
    );
    let r = join_response(&e, 1);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    let group = c.group("g").unwrap();
    assert!(group.pending_members.is_empty());
    assert_eq!(group.static_member("i1"), Some(&*r.member_id));
    assert_eq!(
        group.members[&*r.member_id].group_instance_id.as_deref(),
        Some("i1")
    );
}

#[test]
fn below_v5_the_instance_id_is_not_read() {
    let mut c = coordinator();
    let e = c.join(
        0,
        1,
        &client("a"),
        &static_join("g", "", "i1", &[("range", "")]),
        4,
    );
    assert_eq!(
        join_response(&e, 1).error_code,
        error_code::MEMBER_ID_REQUIRED
    );
    assert!(c.group("g").unwrap().static_members.is_empty());
}

#[test]
fn a_restarted_follower_in_stable_gets_its_assignment_without_a_rebalance() {
    let (mut c, leader, follower, _, fi) = static_pair("g");
    let e = join_v(
        &mut c,
        200,
        20,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    let r = join_response(&e, 20);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1, "the current generation");
    assert_ne!(*r.member_id, *follower, "a new member id");
    assert_eq!(*r.leader, *leader);
    assert!(r.members.is_empty());
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::Stable, "no rebalance");
    assert!(!group.members.contains_key(&follower));
    assert_eq!(group.static_member(&fi), Some(&*r.member_id));
    let s = c.sync(201, 21, &sync_request("g", &r.member_id, 1, &[]), 3);
    let sr = sync_response(&s, 21);
    assert_eq!(sr.error_code, 0);
    assert_eq!(
        sr.assignment,
        Bytes::from_static(b"F"),
        "its stored assignment"
    );
    // The leader is undisturbed.
    let h = c.heartbeat(202, 22, &heartbeat_request("g", &leader, 1), 3);
    assert_eq!(heartbeat_code(&h, 22), 0);
    for version in 0..=7 {
        assert_encodes(&r, version);
    }
}

#[test]
fn a_restarted_leader_in_stable_keeps_the_leadership_but_is_told_the_old_leader() {
    let (mut c, leader, follower, li, _) = static_pair("g");
    let e = join_v(
        &mut c,
        200,
        20,
        "a",
        &static_join("g", "", &li, &[("range", "m")]),
    );
    let r = join_response(&e, 20);
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_eq!(
        *r.leader, *leader,
        "pre-v9: the previous leader, so it does not assign"
    );
    assert!(r.members.is_empty());
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(
        group.leader_id.as_deref(),
        Some(&*r.member_id),
        "the leadership moved"
    );
    let s = c.sync(201, 21, &sync_request("g", &r.member_id, 1, &[]), 3);
    assert_eq!(sync_response(&s, 21).assignment, Bytes::from_static(b"L"));
    // The next rebalance's leader is the new member id.
    c.leave(202, 23, &leave_v3("g", &[(&follower, None)]), 3);
    let e = join_v(
        &mut c,
        203,
        24,
        "a",
        &join_request("g", &r.member_id, &[("range", "m")]),
    );
    let r2 = join_response(&e, 24);
    assert_eq!(r2.leader, r.member_id);
    assert_eq!(r2.members.len(), 1);
}

#[test]
fn a_restart_that_changes_the_selected_protocol_rebalances() {
    let mut c = coordinator();
    let both = [("range", ""), ("rr", "")];
    let e = join_v(&mut c, 0, 1, "a", &static_join("g", "", "i1", &both));
    let id = join_response(&e, 1).member_id.to_string();
    c.sync(1, 2, &sync_request("g", &id, 1, &[(&id, "A")]), 3);
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    // Same protocols, new order: the leader's preference now selects "rr".
    let e = join_v(
        &mut c,
        2,
        3,
        "a",
        &static_join("g", "", "i1", &[("rr", ""), ("range", "")]),
    );
    let r = join_response(&e, 3);
    assert_eq!(r.generation_id, 2, "a rebalance formed the next generation");
    assert_eq!(r.protocol_name.as_deref(), Some("rr"));
    assert_eq!(r.leader, r.member_id);
}

#[test]
fn a_restart_with_the_selected_protocol_kept_does_not_rebalance() {
    let (mut c, _, _, li, _) = static_pair("g");
    // The follower supports only "range": the leader's new preference cannot change it.
    let e = join_v(
        &mut c,
        200,
        20,
        "a",
        &static_join("g", "", &li, &[("rr", ""), ("range", "m")]),
    );
    assert_eq!(join_response(&e, 20).generation_id, 1);
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
}

#[test]
fn the_old_instance_is_fenced_on_heartbeat_sync_commit_and_join() {
    let (mut c, _, follower, _, fi) = static_pair("g");
    let e = join_v(
        &mut c,
        200,
        20,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    let new_id = join_response(&e, 20).member_id.to_string();
    let fenced = error_code::FENCED_INSTANCE_ID;
    let hb = heartbeat_request("g", &follower, 1).with_group_instance_id(Some(s(&fi)));
    assert_eq!(heartbeat_code(&c.heartbeat(201, 21, &hb, 3), 21), fenced);
    let sync = sync_request("g", &follower, 1, &[]).with_group_instance_id(Some(s(&fi)));
    assert_eq!(
        sync_response(&c.sync(201, 22, &sync, 3), 22).error_code,
        fenced
    );
    let plan = c.commit_offsets(201, &commit("g", &follower, Some(&fi), 1), 7);
    assert_eq!(plan.response.topics[0].partitions[0].error_code, fenced);
    assert!(plan.records.is_empty());
    let join = static_join("g", &follower, &fi, &[("range", "m")]);
    assert_eq!(
        join_response(&join_v(&mut c, 201, 23, "b", &join), 23).error_code,
        fenced
    );
    // Without the instance id the old member id is simply unknown.
    let hb = heartbeat_request("g", &follower, 1);
    assert_eq!(
        heartbeat_code(&c.heartbeat(201, 24, &hb, 3), 24),
        error_code::UNKNOWN_MEMBER_ID
    );
    // The current instance passes every check.
    let hb = heartbeat_request("g", &new_id, 1).with_group_instance_id(Some(s(&fi)));
    assert_eq!(heartbeat_code(&c.heartbeat(201, 25, &hb, 3), 25), 0);
    let plan = c.commit_offsets(201, &commit("g", &new_id, Some(&fi), 1), 7);
    assert_eq!(plan.response.topics[0].partitions[0].error_code, 0);
    // An instance id nobody holds: unknown member.
    let hb = heartbeat_request("g", &new_id, 1).with_group_instance_id(Some(s("other")));
    assert_eq!(
        heartbeat_code(&c.heartbeat(201, 26, &hb, 3), 26),
        error_code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
}

#[test]
fn a_restart_in_completing_rebalance_fences_the_waiting_sync_and_rebalances() {
    let mut c = coordinator();
    let protocols = [("range", "m")];
    let e1 = join_v(&mut c, 0, 1, "a", &static_join("g", "", "i1", &protocols));
    let leader = join_response(&e1, 1).member_id.to_string();
    let e2 = join_v(&mut c, 1, 2, "b", &static_join("g", "", "i2", &protocols));
    assert!(!answered(&e2, 2));
    let e = join_v(
        &mut c,
        2,
        3,
        "a",
        &static_join("g", &leader, "i1", &protocols),
    );
    let follower = join_response(&e, 2).member_id.to_string();
    assert_eq!(c.group("g").unwrap().state, GroupState::CompletingRebalance);
    let f = c.sync(3, 4, &sync_request("g", &follower, 2, &[]), 3);
    assert!(f.is_empty(), "the follower waits for the leader");
    let e = join_v(&mut c, 4, 5, "b", &static_join("g", "", "i2", &protocols));
    assert_eq!(
        sync_response(&e, 4).error_code,
        error_code::FENCED_INSTANCE_ID
    );
    assert!(!answered(&e, 5), "the new instance waits for the rebalance");
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert!(!group.members.contains_key(&follower));
    // The leader rejoins; the generation forms with the new member id.
    let e = join_v(
        &mut c,
        5,
        6,
        "a",
        &static_join("g", &leader, "i1", &protocols),
    );
    let (rl, rf) = (join_response(&e, 6), join_response(&e, 5));
    assert_eq!((rl.generation_id, rf.generation_id), (3, 3));
    assert_eq!(rl.members.len(), 2);
    assert!(rl.members.iter().any(|m| m.member_id == rf.member_id));
}

#[test]
fn a_restart_in_preparing_rebalance_waits_like_any_member() {
    let (mut c, leader, follower, _, fi) = static_pair("g");
    // The leader changes its metadata: a rebalance starts.
    let e = join_v(
        &mut c,
        200,
        20,
        "a",
        &join_request("g", &leader, &[("range", "x")]),
    );
    assert!(!answered(&e, 20));
    assert_eq!(c.group("g").unwrap().state, GroupState::PreparingRebalance);
    // The follower's new instance completes it, under its new member id.
    let e = join_v(
        &mut c,
        201,
        21,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    let (rl, rf) = (join_response(&e, 20), join_response(&e, 21));
    assert_eq!((rl.error_code, rf.error_code), (0, 0));
    assert_eq!((rl.generation_id, rf.generation_id), (2, 2));
    assert!(rl.members.iter().any(|m| m.member_id == rf.member_id));
    assert!(rl.members.iter().all(|m| *m.member_id != *follower));
}

#[test]
fn a_restart_while_the_old_instance_waits_to_join_fences_that_join() {
    let (mut c, leader, follower, _, fi) = static_pair("g");
    let e = join_v(
        &mut c,
        200,
        20,
        "a",
        &join_request("g", &leader, &[("range", "x")]),
    );
    assert!(!answered(&e, 20));
    // A dynamic newcomer's pending id holds the rebalance open.
    let e = c.join(
        201,
        21,
        &client("x"),
        &join_request("g", "", &[("range", "m")]),
        4,
    );
    assert_eq!(
        join_response(&e, 21).error_code,
        error_code::MEMBER_ID_REQUIRED
    );
    let e = join_v(
        &mut c,
        202,
        22,
        "b",
        &static_join("g", &follower, &fi, &[("range", "m")]),
    );
    assert!(
        !answered(&e, 22),
        "the old instance waits for the rebalance"
    );
    let e = join_v(
        &mut c,
        203,
        23,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    assert_eq!(
        join_response(&e, 22).error_code,
        error_code::FENCED_INSTANCE_ID
    );
    assert!(!answered(&e, 23), "the new instance waits in its place");
    let group = c.group("g").unwrap();
    assert_eq!(group.state, GroupState::PreparingRebalance);
    let new_id = group.static_member(&fi).unwrap();
    assert!(group.members[new_id].awaiting_join.is_some());
    assert!(!group.members.contains_key(&follower));
}

#[test]
fn leave_v3_by_instance_id_removes_the_static_member() {
    let (mut c, _, follower, _, fi) = static_pair("g");
    let e = c.leave(
        200,
        1,
        &leave_v3("g", &[("", Some(&fi)), ("", Some("nobody"))]),
        3,
    );
    let r = leave_response(&e, 1);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(r.members[0].group_instance_id.as_deref(), Some(&*fi));
    assert_eq!(r.members[1].error_code, error_code::UNKNOWN_MEMBER_ID);
    assert_encodes(&r, 3);
    let group = c.group("g").unwrap();
    assert!(!group.members.contains_key(&follower));
    assert!(group.static_member(&fi).is_none());
    assert_eq!(group.state, GroupState::PreparingRebalance);
}

#[test]
fn leave_v3_with_a_fenced_member_id_is_refused() {
    let (mut c, _, follower, _, fi) = static_pair("g");
    let e = join_v(
        &mut c,
        200,
        20,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    let new_id = join_response(&e, 20).member_id.to_string();
    let e = c.leave(201, 1, &leave_v3("g", &[(&follower, Some(&fi))]), 3);
    let r = leave_response(&e, 1);
    assert_eq!(r.members[0].error_code, error_code::FENCED_INSTANCE_ID);
    let group = c.group("g").unwrap();
    assert!(group.members.contains_key(&new_id));
    assert_eq!(group.state, GroupState::Stable);
    let e = c.leave(202, 2, &leave_v3("g", &[(&new_id, Some(&fi))]), 3);
    assert_eq!(leave_response(&e, 2).members[0].error_code, 0);
    assert!(c.group("g").unwrap().static_member(&fi).is_none());
}

#[test]
fn session_expiry_removes_the_static_member_and_its_mapping() {
    let (mut c, leader, follower, _, fi) = static_pair("g");
    // Only the leader heartbeats.
    for at in [5_000, 9_000] {
        let e = c.heartbeat(at, at, &heartbeat_request("g", &leader, 1), 3);
        assert_eq!(heartbeat_code(&e, at), 0);
    }
    c.tick(10_200);
    let group = c.group("g").unwrap();
    assert!(!group.members.contains_key(&follower));
    assert!(group.static_member(&fi).is_none());
    // The instance joins again as a new static member.
    let e = join_v(
        &mut c,
        10_300,
        30,
        "b",
        &static_join("g", "", &fi, &[("range", "m")]),
    );
    assert!(!answered(&e, 30), "a new member waits for the rebalance");
    assert!(c.group("g").unwrap().static_member(&fi).is_some());
}

#[test]
fn describe_v4_reports_the_instance_id() {
    let (c, _, follower, _, fi) = static_pair("g");
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let r = c.describe(&request, 4);
    let m = r.groups[0]
        .members
        .iter()
        .find(|m| *m.member_id == *follower)
        .unwrap();
    assert_eq!(m.group_instance_id.as_deref(), Some(&*fi));
    assert_encodes(&r, 4);
    assert_encodes(&r, 3);
}
