//! DescribeGroups and ListGroups.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::error_code;
use group_support::*;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest};

#[test]
fn describe_a_stable_group_an_unknown_one_and_a_foreign_one() {
    let (mut c, leader, _follower, _) = stable_pair("g");
    let request =
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("nope"))]);
    let r = c.describe(&request, 5);
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(&*g.group_state, "Stable");
    assert_eq!(&*g.protocol_type, "consumer");
    assert_eq!(&*g.protocol_data, "range");
    assert_eq!(g.members.len(), 2);
    let member = g.members.iter().find(|m| *m.member_id == *leader).unwrap();
    assert_eq!(&member.member_assignment[..], b"L");
    assert_eq!(&member.member_metadata[..], b"m");
    assert_eq!(&*r.groups[1].group_state, "Dead");
    for version in 0..=5 {
        assert_encodes(&r, version);
    }
    c.unload(c.partition_for("g"));
    let r = c.describe(&request, 5);
    assert_eq!(r.groups[0].error_code, error_code::NOT_COORDINATOR);
}

#[test]
fn list_filters_by_state_from_v4() {
    let (mut c, _, _, _) = stable_pair("g");
    c.join(
        200,
        1,
        &client("x"),
        &join_request("h", "", &[("range", "")]),
        3,
    );
    let all = c.list(&ListGroupsRequest::default(), 4);
    let ids: Vec<String> = all
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect();
    assert_eq!(ids, vec!["g", "h"]);
    let stable = c.list(
        &ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
        4,
    );
    assert_eq!(stable.groups.len(), 1);
    assert_eq!(&*stable.groups[0].group_state, "Stable");
    for version in 0..=4 {
        assert_encodes(&c.list(&ListGroupsRequest::default(), version), version);
    }
}
