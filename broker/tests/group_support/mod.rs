//! Shared helpers of the group coordinator tests: requests, a driver stand-in, response lookup.
#![allow(dead_code, clippy::unwrap_used)]

use broker::group::{ClientInfo, GroupConfig, GroupCoordinator, GroupEffect};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, ResponseKind, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// Partitions of the offsets topic in tests.
pub const PARTITIONS: i32 = 4;

pub fn config() -> GroupConfig {
    GroupConfig {
        offsets_partitions: PARTITIONS,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

/// A coordinator owning every offsets partition.
pub fn coordinator_with(config: GroupConfig) -> GroupCoordinator {
    let partitions = config.offsets_partitions;
    let mut coordinator = GroupCoordinator::new(config);
    for partition in 0..partitions {
        coordinator.begin_loading(partition);
        coordinator.load(partition, Vec::new());
    }
    coordinator
}

pub fn coordinator() -> GroupCoordinator {
    coordinator_with(config())
}

pub fn client(id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A JoinGroup for `group` with protocols given as (name, metadata).
pub fn join_request(group: &str, member_id: &str, protocols: &[(&str, &str)]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(Bytes::copy_from_slice(metadata.as_bytes()))
                })
                .collect(),
        )
}

pub fn sync_request(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &str)],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(Bytes::copy_from_slice(assignment.as_bytes()))
                })
                .collect(),
        )
}

pub fn heartbeat_request(group: &str, member_id: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member_id))
        .with_generation_id(generation)
}

/// The response effect for `ticket`, exactly one.
pub fn response(effects: &[GroupEffect], ticket: u64) -> ResponseKind {
    let found: Vec<&ResponseKind> = effects
        .iter()
        .filter_map(|e| match e {
            GroupEffect::Respond {
                ticket: t,
                response,
            } if *t == ticket => Some(response),
            _ => None,
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one answer for ticket {ticket} in {effects:?}"
    );
    found[0].clone()
}

pub fn answered(effects: &[GroupEffect], ticket: u64) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, GroupEffect::Respond { ticket: t, .. } if *t == ticket))
}

pub fn join_response(effects: &[GroupEffect], ticket: u64) -> JoinGroupResponse {
    match response(effects, ticket) {
        ResponseKind::JoinGroup(r) => r,
        other => panic!("not a JoinGroup response: {other:?}"),
    }
}

pub fn sync_response(effects: &[GroupEffect], ticket: u64) -> SyncGroupResponse {
    match response(effects, ticket) {
        ResponseKind::SyncGroup(r) => r,
        other => panic!("not a SyncGroup response: {other:?}"),
    }
}

pub fn heartbeat_code(effects: &[GroupEffect], ticket: u64) -> i16 {
    match response(effects, ticket) {
        ResponseKind::Heartbeat(r) => r.error_code,
        other => panic!("not a Heartbeat response: {other:?}"),
    }
}

pub fn timers(effects: &[GroupEffect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            GroupEffect::SetTimer { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect()
}

/// Encodes a response at `version`, as the connection will: the coordinator must only build
/// responses the version can carry.
pub fn assert_encodes<T: Encodable>(response: &T, version: i16) {
    let mut buf = BytesMut::new();
    response
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("does not encode at v{version}: {e}"));
}

/// Two members join a fresh group at JoinGroup v3 (no MEMBER_ID_REQUIRED round) within the
/// initial delay, and the rebalance completes at its end.
/// Returns (coordinator, leader id, follower id, generation), the group Stable.
pub fn stable_pair(group: &str) -> (GroupCoordinator, String, String, i32) {
    let mut c = coordinator_with(GroupConfig {
        initial_rebalance_delay_ms: 100,
        ..config()
    });
    let protocols = [("range", "m")];
    let e1 = c.join(0, 1, &client("a"), &join_request(group, "", &protocols), 3);
    assert_eq!(timers(&e1), vec![100]);
    let e2 = c.join(10, 2, &client("b"), &join_request(group, "", &protocols), 3);
    assert!(
        !answered(&e1, 1) && !answered(&e2, 2),
        "the initial delay holds both"
    );
    let done = c.tick(110);
    let (r1, r2) = (join_response(&done, 1), join_response(&done, 2));
    assert_eq!(r1.generation_id, 1);
    assert_eq!(r2.generation_id, 1);
    let leader = r1.leader.to_string();
    let (leader_id, follower_id) = if leader == *r1.member_id {
        (r1.member_id.to_string(), r2.member_id.to_string())
    } else {
        (r2.member_id.to_string(), r1.member_id.to_string())
    };
    let f = c.sync(120, 10, &sync_request(group, &follower_id, 1, &[]), 3);
    assert!(f.is_empty(), "the follower waits for the leader");
    let l = c.sync(
        120,
        11,
        &sync_request(
            group,
            &leader_id,
            1,
            &[(&leader_id, "L"), (&follower_id, "F")],
        ),
        3,
    );
    assert_eq!(sync_response(&l, 10).assignment, Bytes::from_static(b"F"));
    assert_eq!(sync_response(&l, 11).assignment, Bytes::from_static(b"L"));
    c.check_invariants();
    (c, leader_id, follower_id, 1)
}
