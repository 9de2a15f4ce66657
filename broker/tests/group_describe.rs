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
    for version in 0..=5 {
        assert_encodes(&c.list(&ListGroupsRequest::default(), version), version);
    }
}

/// KIP-848's ListGroups v5: every group is `classic` (rill has no other protocol), and a types
/// filter keeps all of them or none (librdkafka's 0081 filters by the type in use and by the
/// other one).
#[test]
fn list_reports_and_filters_the_classic_group_type_from_v5() {
    let (c, _, _, _) = stable_pair("g");
    let all = c.list(&ListGroupsRequest::default(), 5);
    assert_eq!(all.groups.len(), 1);
    assert_eq!(&*all.groups[0].group_type, "classic");
    assert_eq!(
        &*c.list(&ListGroupsRequest::default(), 4).groups[0].group_type,
        ""
    );
    let classic = c.list(
        &ListGroupsRequest::default().with_types_filter(vec![s("Classic")]),
        5,
    );
    assert_eq!(classic.groups.len(), 1);
    let consumer = c.list(
        &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        5,
    );
    assert!(consumer.groups.is_empty());
    let both = c.list(
        &ListGroupsRequest::default()
            .with_types_filter(vec![s("consumer"), s("classic")])
            .with_states_filter(vec![s("Stable")]),
        5,
    );
    assert_eq!(both.groups.len(), 1);
}

/// Kafka keeps an Empty group's protocol type ("consumer": kafka-python and sarama read it) and
/// describes members with their client host.
#[test]
fn an_empty_group_keeps_its_protocol_type_and_members_show_their_host() {
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{LeaveGroupRequest, OffsetCommitRequest, TopicName};
    let (mut c, leader, follower, generation) = stable_pair("g");
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let described = c.describe(&request, 5);
    let hosts: Vec<&str> = described.groups[0]
        .members
        .iter()
        .map(|m| &*m.client_host)
        .collect();
    assert_eq!(hosts, vec!["/127.0.0.1", "/127.0.0.1"]);
    // An offset keeps the group once everyone leaves.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(&leader))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])]);
    let plan = c.commit_offsets(150, &commit, 8);
    c.offsets_committed(0, plan.records);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(
            [leader.as_str(), follower.as_str()]
                .iter()
                .map(|m| MemberIdentity::default().with_member_id(s(m)))
                .collect(),
        );
    c.leave(200, 9, &leave, 4);
    let g = &c.describe(&request, 5).groups[0];
    assert_eq!(&*g.group_state, "Empty");
    assert_eq!(
        &*g.protocol_type, "consumer",
        "kept while Empty, as Kafka does"
    );
    assert!(g.members.is_empty());
    assert_eq!(
        c.group("g").unwrap().protocol_type.as_deref(),
        Some("consumer")
    );
    c.check_invariants();
}
