//! LeaveGroup: single (v0-2) and batch (v3+) forms.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{error_code, GroupState};
use group_support::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{GroupId, LeaveGroupRequest, ResponseKind};

fn leave_v0(group: &str, member: &str) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
}

fn leave_response(
    effects: &[broker::group::GroupEffect],
    ticket: u64,
) -> kafka_protocol::messages::LeaveGroupResponse {
    match response(effects, ticket) {
        ResponseKind::LeaveGroup(r) => r,
        other => panic!("not a LeaveGroup response: {other:?}"),
    }
}

#[test]
fn leave_removes_the_member_and_rebalances() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    let e = c.leave(200, 1, &leave_v0("g", &follower), 1);
    let r = leave_response(&e, 1);
    assert_eq!(r.error_code, 0);
    assert_encodes(&r, 1);
    let group = c.group("g").unwrap();
    assert!(!group.members.contains_key(&follower));
    assert_eq!(group.state, GroupState::PreparingRebalance);
    // The remaining leader rejoins and forms the next generation alone.
    let e = c.join(
        201,
        2,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    assert_eq!(join_response(&e, 2).generation_id, generation + 1);
    let e = c.leave(202, 3, &leave_v0("g", "ghost"), 0);
    assert_eq!(
        leave_response(&e, 3).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
    c.check_invariants();
}

#[test]
fn batch_leave_reports_each_member() {
    let (mut c, leader, follower, generation) = stable_pair("g");
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(
            [leader.as_str(), follower.as_str(), "ghost"]
                .iter()
                .map(|m| MemberIdentity::default().with_member_id(s(m)))
                .collect(),
        );
    let e = c.leave(200, 1, &request, 4);
    let r = leave_response(&e, 1);
    assert_eq!(r.error_code, 0);
    let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 0, error_code::UNKNOWN_MEMBER_ID]);
    for version in 3..=4 {
        assert_encodes(&r, version);
    }
    // Everyone left: the rebalance completes at once into an Empty group of the next generation
    // (or the group, holding nothing, is forgotten).
    if let Some(group) = c.group("g") {
        assert_eq!(group.state, GroupState::Empty);
        assert_eq!(group.generation_id, generation + 1);
    }
    c.check_invariants();
}

#[test]
fn a_leaving_member_waiting_in_join_is_answered() {
    let (mut c, leader, follower, _) = stable_pair("g");
    c.join(
        200,
        1,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    // The leader waits in JoinGroup for the follower; the leader leaves instead.
    let e = c.leave(201, 2, &leave_v0("g", &leader), 1);
    assert_eq!(
        join_response(&e, 1).error_code,
        error_code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(leave_response(&e, 2).error_code, 0);
    let e = c.join(
        202,
        3,
        &client("b"),
        &join_request("g", &follower, &[("range", "m")]),
        3,
    );
    let r = join_response(&e, 3);
    assert_eq!(r.leader, r.member_id, "the follower becomes leader");
    c.check_invariants();
}
