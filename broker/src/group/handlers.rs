//! Request handlers: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups,
//! OffsetCommit and OffsetFetch, following Kafka's classic `GroupCoordinator`.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{
    commit_topic, join_error, sync_error, sync_response, versioned_join, ClientInfo, CommitPlan,
    GroupCoordinator, GroupEffect,
};
use super::error_code;
use super::offsets::{OffsetKey, OffsetRecord, OffsetValue};
use super::state::{Group, GroupState, Member, Waiting};

/// What a JoinGroup asks for, validated and converted.
struct JoinParams {
    member_id: String,
    /// `group.instance.id` (v5+): a static member.
    group_instance_id: Option<String>,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
}

/// One topic's partitions with their committed offsets (`None`: nothing committed).
type PartitionOffsets<'a> = Vec<(i32, Option<&'a OffsetValue>)>;

/// Highest OffsetFetch version answered (v9+ carries KIP-848 member epochs).
pub const OFFSET_FETCH_VERSION_MAX: i16 = 8;

/// The group type ListGroups v5 reports: rill's groups all speak the classic protocol.
const CLASSIC_GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    /// A JoinGroup. The answer may come later (when the rebalance completes); see the runbook.
    pub fn join(
        &mut self,
        now_ms: u64,
        ticket: u64,
        client: &ClientInfo,
        request: &JoinGroupRequest,
        api_version: i16,
    ) -> Vec<GroupEffect> {
        let waiting = Waiting {
            ticket,
            api_version,
        };
        let group_id = request.group_id.0.to_string();
        let mut effects = Vec::new();
        match self.join_validate(request, api_version) {
            Err(code) => effects.push(join_error(waiting, code, &request.member_id)),
            Ok(params) => {
                let result = if params.member_id.is_empty() {
                    self.join_new_member(now_ms, waiting, client, &group_id, params, &mut effects)
                } else {
                    self.join_known_member(now_ms, waiting, client, &group_id, params, &mut effects)
                };
                if let Err(code) = result {
                    effects.push(join_error(waiting, code, &request.member_id));
                }
                self.forget_if_unused(&group_id);
            }
        }
        self.check_invariants();
        assert!(!effects.is_empty() || self.member_waits(&group_id, ticket));
        effects
    }

    fn member_waits(&self, group_id: &str, ticket: u64) -> bool {
        self.groups.get(group_id).is_some_and(|g| {
            g.members
                .values()
                .any(|m| m.awaiting_join.is_some_and(|w| w.ticket == ticket))
        })
    }

    fn join_validate(
        &self,
        request: &JoinGroupRequest,
        api_version: i16,
    ) -> Result<JoinParams, i16> {
        let group_id: &str = &request.group_id.0;
        if group_id.is_empty() {
            return Err(error_code::INVALID_GROUP_ID);
        }
        let coordinator = self.is_coordinator_for(group_id);
        if coordinator != error_code::NONE {
            return Err(coordinator);
        }
        let session_timeout_ms = u64::try_from(request.session_timeout_ms).unwrap_or(0);
        let bounds = self.config.session_timeout_ms_min..=self.config.session_timeout_ms_max;
        if !bounds.contains(&session_timeout_ms) {
            return Err(error_code::INVALID_SESSION_TIMEOUT);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout_ms = match u64::try_from(request.rebalance_timeout_ms) {
            Ok(ms) if api_version >= 1 => ms,
            _ => session_timeout_ms,
        };
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect();
        let protocols_valid =
            !protocols.is_empty() && protocols.len() <= self.config.protocols_per_member_max;
        if request.protocol_type.is_empty() || !protocols_valid {
            return Err(error_code::INCONSISTENT_GROUP_PROTOCOL);
        }
        let group_instance_id = request
            .group_instance_id
            .as_ref()
            .filter(|_| api_version >= 5)
            .map(|id| id.to_string());
        Ok(JoinParams {
            member_id: request.member_id.to_string(),
            group_instance_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type: request.protocol_type.to_string(),
            protocols,
        })
    }

    fn supports_protocols(&self, group_id: &str, params: &JoinParams) -> bool {
        let Some(group) = self.groups.get(group_id) else {
            return true;
        };
        if group.members.is_empty() {
            return true;
        }
        group.protocol_type.as_deref() == Some(params.protocol_type.as_str())
            && !group
                .candidate_protocols(Some(&params.protocols))
                .is_empty()
    }

    fn join_new_member(
        &mut self,
        now_ms: u64,
        waiting: Waiting,
        client: &ClientInfo,
        group_id: &str,
        params: JoinParams,
        effects: &mut Vec<GroupEffect>,
    ) -> Result<(), i16> {
        if !self.groups.contains_key(group_id) {
            if self.groups.len() >= self.config.groups_max {
                return Err(error_code::COORDINATOR_NOT_AVAILABLE);
            }
            let group = Group::new(group_id.to_string());
            self.groups.insert(group_id.to_string(), group);
        }
        if !self.supports_protocols(group_id, &params) {
            return Err(error_code::INCONSISTENT_GROUP_PROTOCOL);
        }
        let group = &self.groups[group_id];
        let replaced = params
            .group_instance_id
            .as_deref()
            .and_then(|instance_id| group.static_member(instance_id))
            .map(str::to_string);
        if let Some(old_member_id) = replaced {
            // KIP-345: a static member restarted; the new instance takes the old one's place.
            let member_id = self.generate_member_id(&client.client_id);
            self.replace_static_member(
                now_ms,
                waiting,
                group_id,
                &old_member_id,
                member_id,
                params,
                effects,
            );
            return Ok(());
        }
        let group = &self.groups[group_id];
        let size = group.members.len() + group.pending_members.len();
        if size >= self.config.members_per_group_max {
            return Err(error_code::GROUP_MAX_SIZE_REACHED);
        }
        let member_id = self.generate_member_id(&client.client_id);
        // A static member joins at once (Kafka's `doStaticNewMemberJoinGroup`): its instance id
        // already keeps a retried join from leaving an orphan behind.
        if waiting.api_version >= 4 && params.group_instance_id.is_none() {
            // KIP-394: hand out the id first, so a client that times out rejoins as the same
            // member instead of leaving an orphan behind.
            let deadline_ms = now_ms.saturating_add(params.session_timeout_ms);
            let group = self.groups.get_mut(group_id).expect("created above");
            group.pending_members.insert(member_id.clone(), deadline_ms);
            effects.push(join_error(
                waiting,
                error_code::MEMBER_ID_REQUIRED,
                &member_id,
            ));
            effects.push(GroupEffect::SetTimer { at_ms: deadline_ms });
            return Ok(());
        }
        let params = JoinParams {
            member_id,
            ..params
        };
        self.add_member_and_rebalance(now_ms, waiting, client, group_id, params, effects);
        Ok(())
    }

    fn join_known_member(
        &mut self,
        now_ms: u64,
        waiting: Waiting,
        client: &ClientInfo,
        group_id: &str,
        params: JoinParams,
        effects: &mut Vec<GroupEffect>,
    ) -> Result<(), i16> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        if !self.supports_protocols(group_id, &params) {
            return Err(error_code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if group.pending_members.contains_key(&params.member_id) {
            // Pending ids are handed to dynamic members; one that now names an instance id
            // still may not take another member's.
            if let Some(instance_id) = &params.group_instance_id {
                if group.static_member(instance_id).is_some() {
                    return Err(error_code::FENCED_INSTANCE_ID);
                }
            }
            self.add_member_and_rebalance(now_ms, waiting, client, group_id, params, effects);
            return Ok(());
        }
        validate_current_member(
            group,
            &params.member_id,
            params.group_instance_id.as_deref(),
        )?;
        let member = group
            .members
            .get(&params.member_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        let unchanged = member.protocols == params.protocols;
        let is_leader = group.leader_id.as_deref() == Some(params.member_id.as_str());
        let state = group.state;
        match state {
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
            GroupState::PreparingRebalance => {
                self.update_member(now_ms, waiting, group_id, params, effects);
                self.maybe_complete_join(now_ms, group_id, effects);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // A retried JoinGroup of the current generation: answer it again.
                let group = self.groups.get_mut(group_id).expect("checked above");
                let member = group
                    .members
                    .get_mut(&params.member_id)
                    .expect("checked above");
                member.heartbeat_last_ms = now_ms;
                let response = super::coordinator::join_success_for(group, &params.member_id);
                effects.push(GroupEffect::Respond {
                    ticket: waiting.ticket,
                    response: ResponseKind::JoinGroup(versioned_join(
                        response,
                        waiting.api_version,
                    )),
                });
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(now_ms, waiting, group_id, params, effects);
                self.prepare_rebalance(now_ms, group_id, effects);
            }
        }
        Ok(())
    }

    fn update_member(
        &mut self,
        now_ms: u64,
        waiting: Waiting,
        group_id: &str,
        params: JoinParams,
        effects: &mut Vec<GroupEffect>,
    ) {
        let group = self.groups.get_mut(group_id).expect("caller checked");
        let member = group
            .members
            .get_mut(&params.member_id)
            .expect("caller checked");
        if let Some(previous) = member.awaiting_join.replace(waiting) {
            // Each ticket is answered exactly once; the client has moved on to the new request.
            effects.push(join_error(
                previous,
                error_code::REBALANCE_IN_PROGRESS,
                &params.member_id,
            ));
        }
        member.protocols = params.protocols;
        member.session_timeout_ms = params.session_timeout_ms;
        member.rebalance_timeout_ms = params.rebalance_timeout_ms;
        member.heartbeat_last_ms = now_ms;
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: u64,
        waiting: Waiting,
        client: &ClientInfo,
        group_id: &str,
        params: JoinParams,
        effects: &mut Vec<GroupEffect>,
    ) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("caller checked");
        assert!(!group.members.contains_key(&params.member_id));
        group.pending_members.remove(&params.member_id);
        if group.members.is_empty() {
            group.protocol_type = Some(params.protocol_type.clone());
        }
        if let Some(instance_id) = &params.group_instance_id {
            let previous = group
                .static_members
                .insert(instance_id.clone(), params.member_id.clone());
            assert!(previous.is_none(), "callers replace known instance ids");
        }
        let member = Member {
            member_id: params.member_id.clone(),
            group_instance_id: params.group_instance_id.clone(),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout_ms: params.session_timeout_ms,
            rebalance_timeout_ms: params.rebalance_timeout_ms,
            protocols: params.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(waiting),
            awaiting_sync: None,
            heartbeat_last_ms: now_ms,
        };
        group.members.insert(params.member_id.clone(), member);
        if group.leader_id.is_none() {
            group.leader_id = Some(params.member_id);
        }
        if group.state == GroupState::PreparingRebalance {
            if let Some(end_ms) = group.initial_delay_end_ms.as_mut() {
                // Kafka's InitialDelayedJoin: each newcomer buys another delay, up to the
                // rebalance timeout.
                *end_ms = now_ms
                    .saturating_add(delay_ms)
                    .min(group.rebalance_deadline_ms)
                    .max(*end_ms);
            }
            self.maybe_complete_join(now_ms, group_id, effects);
        } else {
            self.prepare_rebalance(now_ms, group_id, effects);
        }
    }

    /// A static member's new instance takes the old member's place (Kafka's
    /// `updateStaticMemberAndRebalance`): the old id's waiting requests learn
    /// FENCED_INSTANCE_ID, the leadership moves along. In Stable, when the group's protocol
    /// stays, the member gets the current generation at once (no rebalance) and syncs for its
    /// stored assignment; in CompletingRebalance a rebalance starts (the leader may have
    /// assigned to the old id); in PreparingRebalance the member waits like any other.
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        now_ms: u64,
        waiting: Waiting,
        group_id: &str,
        old_member_id: &str,
        new_member_id: String,
        params: JoinParams,
        effects: &mut Vec<GroupEffect>,
    ) {
        let group = self.groups.get_mut(group_id).expect("caller checked");
        let instance_id = params
            .group_instance_id
            .clone()
            .expect("static members have an instance id");
        let previous_leader = group.leader_id.clone();
        let mut member = group
            .members
            .remove(old_member_id)
            .expect("the static mapping names a member");
        if let Some(previous) = member.awaiting_join.take() {
            effects.push(join_error(
                previous,
                error_code::FENCED_INSTANCE_ID,
                old_member_id,
            ));
        }
        if let Some(previous) = member.awaiting_sync.take() {
            effects.push(sync_error(previous, error_code::FENCED_INSTANCE_ID));
        }
        tracing::info!(
            group = group_id,
            instance = %instance_id,
            old = old_member_id,
            new = %new_member_id,
            state = group.state.name(),
            "static member replaced"
        );
        member.member_id = new_member_id.clone();
        member.protocols = params.protocols;
        member.session_timeout_ms = params.session_timeout_ms;
        member.rebalance_timeout_ms = params.rebalance_timeout_ms;
        member.heartbeat_last_ms = now_ms;
        group.members.insert(new_member_id.clone(), member);
        group
            .static_members
            .insert(instance_id, new_member_id.clone());
        if group.leader_id.as_deref() == Some(old_member_id) {
            group.leader_id = Some(new_member_id.clone());
        }
        let state = group.state;
        let selected = group.candidate_protocols(None).into_iter().next();
        let keeps_protocol = selected.is_some() && selected == group.protocol_name;
        match state {
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
            GroupState::Stable if keeps_protocol => {
                // Before JoinGroup v9 Kafka names the previous leader, so a replaced leader does
                // not compute an assignment a Stable group would not hand out.
                let response = super::coordinator::join_success_for(group, &new_member_id)
                    .with_members(Vec::new())
                    .with_leader(StrBytes::from_string(
                        previous_leader.expect("a formed generation has a leader"),
                    ));
                effects.push(GroupEffect::Respond {
                    ticket: waiting.ticket,
                    response: ResponseKind::JoinGroup(versioned_join(
                        response,
                        waiting.api_version,
                    )),
                });
                if let Some(at_ms) = group.next_deadline_ms() {
                    // The new session timeout may be shorter than the old one.
                    effects.push(GroupEffect::SetTimer { at_ms });
                }
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                set_awaiting_join(group, &new_member_id, waiting);
                self.prepare_rebalance(now_ms, group_id, effects);
            }
            GroupState::PreparingRebalance => {
                set_awaiting_join(group, &new_member_id, waiting);
                self.maybe_complete_join(now_ms, group_id, effects);
            }
        }
    }

    /// Drops a group that holds nothing (no members, pending members or offsets), so failed
    /// joins of made-up group ids do not fill the coordinator.
    pub(super) fn forget_if_unused(&mut self, group_id: &str) {
        let unused = self.groups.get(group_id).is_some_and(|g| {
            g.state == GroupState::Empty
                && g.members.is_empty()
                && g.pending_members.is_empty()
                && g.offsets.is_empty()
        });
        if unused {
            self.groups.remove(group_id);
        }
    }

    /// Finds the member a request names, checking group id, coordinator and generation.
    fn member_check(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        if group_id.is_empty() {
            return Err(error_code::INVALID_GROUP_ID);
        }
        let coordinator = self.is_coordinator_for(group_id);
        if coordinator != error_code::NONE {
            return Err(coordinator);
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        validate_current_member(group, member_id, group_instance_id)?;
        if generation_id != group.generation_id {
            return Err(error_code::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// A SyncGroup. Followers wait for the leader's assignment; the leader's sync completes the
    /// rebalance and answers everyone.
    pub fn sync(
        &mut self,
        now_ms: u64,
        ticket: u64,
        request: &kafka_protocol::messages::SyncGroupRequest,
        api_version: i16,
    ) -> Vec<GroupEffect> {
        let waiting = Waiting {
            ticket,
            api_version,
        };
        let group_id: &str = &request.group_id.0;
        let member_id: &str = &request.member_id;
        let instance_id = request.group_instance_id.as_deref();
        if let Err(code) =
            self.member_check(group_id, member_id, instance_id, request.generation_id)
        {
            return vec![sync_error(waiting, code)];
        }
        let group = self.groups.get_mut(group_id).expect("checked above");
        let type_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_deref() != Some(&**t));
        let name_mismatch = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_deref() != Some(&**n));
        if type_mismatch || name_mismatch {
            return vec![sync_error(waiting, error_code::INCONSISTENT_GROUP_PROTOCOL)];
        }
        let mut effects = Vec::new();
        let member = group.members.get_mut(member_id).expect("checked above");
        member.heartbeat_last_ms = now_ms;
        match group.state {
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
            GroupState::PreparingRebalance => {
                effects.push(sync_error(waiting, error_code::REBALANCE_IN_PROGRESS));
            }
            GroupState::Stable => {
                let protocol = (&group.protocol_type, &group.protocol_name);
                let assignment = member.assignment.clone();
                effects.push(sync_response(
                    waiting,
                    error_code::NONE,
                    assignment,
                    Some(protocol),
                ));
            }
            GroupState::CompletingRebalance => {
                if let Some(previous) = member.awaiting_sync.replace(waiting) {
                    effects.push(sync_error(previous, error_code::REBALANCE_IN_PROGRESS));
                }
                if group.leader_id.as_deref() == Some(member_id) {
                    complete_sync(now_ms, group, request, &mut effects);
                }
            }
        }
        self.check_invariants();
        effects
    }

    /// A Heartbeat: keeps the session alive and tells the member whether to rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        ticket: u64,
        request: &HeartbeatRequest,
        api_version: i16,
    ) -> Vec<GroupEffect> {
        assert!(
            (0..=4).contains(&api_version),
            "Heartbeat versions are capped at 4"
        );
        let group_id: &str = &request.group_id.0;
        let instance_id = request.group_instance_id.as_deref();
        let checked = self.member_check(
            group_id,
            &request.member_id,
            instance_id,
            request.generation_id,
        );
        let code = match checked {
            Err(code) => code,
            Ok(()) => {
                let group = self.groups.get_mut(group_id).expect("checked above");
                let member = group
                    .members
                    .get_mut(&*request.member_id)
                    .expect("checked above");
                member.heartbeat_last_ms = now_ms;
                match group.state {
                    GroupState::PreparingRebalance => error_code::REBALANCE_IN_PROGRESS,
                    GroupState::CompletingRebalance | GroupState::Stable => error_code::NONE,
                    GroupState::Empty | GroupState::Dead => unreachable!("no members"),
                }
            }
        };
        let response = HeartbeatResponse::default().with_error_code(code);
        vec![GroupEffect::Respond {
            ticket,
            response: ResponseKind::Heartbeat(response),
        }]
    }

    /// A LeaveGroup (v0-2: one member; v3+: a batch of members).
    pub fn leave(
        &mut self,
        now_ms: u64,
        ticket: u64,
        request: &LeaveGroupRequest,
        api_version: i16,
    ) -> Vec<GroupEffect> {
        let group_id: &str = &request.group_id.0;
        let member_ids: Vec<(String, Option<String>)> = if api_version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    let instance_id = m.group_instance_id.as_ref().map(|id| id.to_string());
                    (m.member_id.to_string(), instance_id)
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let mut effects = Vec::new();
        let mut top_code = self.is_coordinator_for(group_id);
        if group_id.is_empty() {
            top_code = error_code::INVALID_GROUP_ID;
        }
        let mut member_codes = Vec::with_capacity(member_ids.len());
        if top_code == error_code::NONE {
            for (member_id, instance_id) in &member_ids {
                let code = self.leave_one(
                    now_ms,
                    group_id,
                    member_id,
                    instance_id.as_deref(),
                    &mut effects,
                );
                member_codes.push(code);
            }
            self.forget_if_unused(group_id);
        }
        let mut response = LeaveGroupResponse::default();
        if api_version >= 3 {
            response.error_code = top_code;
            response.members = member_ids
                .iter()
                .zip(&member_codes)
                .map(|((id, instance_id), code)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(id.clone()))
                        .with_group_instance_id(instance_id.clone().map(StrBytes::from_string))
                        .with_error_code(*code)
                })
                .collect();
        } else {
            response.error_code = member_codes.first().copied().unwrap_or(top_code);
        }
        effects.push(GroupEffect::Respond {
            ticket,
            response: ResponseKind::LeaveGroup(response),
        });
        self.check_invariants();
        effects
    }

    fn leave_one(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        effects: &mut Vec<GroupEffect>,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return error_code::UNKNOWN_MEMBER_ID;
        };
        if member_id.is_empty() {
            // KIP-345: an admin removes a static member by its instance id alone.
            let Some(current) = group_instance_id.and_then(|id| group.static_member(id)) else {
                return error_code::UNKNOWN_MEMBER_ID;
            };
            let current = current.to_string();
            self.remove_member(now_ms, group_id, &current, effects);
            return error_code::NONE;
        }
        if group.pending_members.remove(member_id).is_some() {
            self.maybe_complete_join(now_ms, group_id, effects);
            return error_code::NONE;
        }
        if let Err(code) = validate_current_member(group, member_id, group_instance_id) {
            return code;
        }
        self.remove_member(now_ms, group_id, member_id, effects);
        error_code::NONE
    }

    /// A DescribeGroups (answered at once).
    pub fn describe(
        &self,
        request: &DescribeGroupsRequest,
        api_version: i16,
    ) -> DescribeGroupsResponse {
        assert!(
            (0..=5).contains(&api_version),
            "DescribeGroups versions are capped at 5"
        );
        let groups = request
            .groups
            .iter()
            .map(|group_id| self.describe_one(group_id))
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    fn describe_one(&self, group_id: &GroupId) -> DescribedGroup {
        let described = DescribedGroup::default().with_group_id(group_id.clone());
        let code = self.is_coordinator_for(&group_id.0);
        if code != error_code::NONE {
            return described.with_error_code(code);
        }
        let Some(group) = self.groups.get(&*group_id.0) else {
            return described.with_group_state(StrBytes::from(GroupState::Dead.name()));
        };
        let stable = group.state == GroupState::Stable;
        let protocol = group
            .protocol_name
            .clone()
            .filter(|_| stable)
            .unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| {
                let mut member = DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                    .with_group_instance_id(m.group_instance_id.clone().map(StrBytes::from_string));
                if stable {
                    member.member_metadata = m.metadata_for(&protocol).cloned().unwrap_or_default();
                    member.member_assignment = m.assignment.clone();
                }
                member
            })
            .collect();
        described
            .with_group_state(StrBytes::from(group.state.name()))
            .with_protocol_type(StrBytes::from_string(
                group.protocol_type.clone().unwrap_or_default(),
            ))
            .with_protocol_data(StrBytes::from_string(protocol))
            .with_members(members)
    }

    /// A ListGroups (answered at once) over the loaded offsets partitions.
    ///
    /// v5 (KIP-848's group types): every group is `classic`.
    pub fn list(&self, request: &ListGroupsRequest, api_version: i16) -> ListGroupsResponse {
        assert!(
            (0..=5).contains(&api_version),
            "ListGroups versions are capped at 5"
        );
        let wanted = |group: &Group| {
            let state = api_version < 4
                || request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(group.state.name()));
            // Every group here speaks the classic protocol (no KIP-848 groups), so a types
            // filter (v5) keeps them all or none, as Kafka's `GroupType.parse` would.
            let kind = api_version < 5
                || request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
            state && kind
        };
        let groups = self
            .groups
            .values()
            .filter(|g| wanted(g))
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id.clone())))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ));
                if api_version >= 4 {
                    listed.group_state = StrBytes::from(g.state.name());
                }
                if api_version >= 5 {
                    listed.group_type = StrBytes::from_static_str(CLASSIC_GROUP_TYPE);
                }
                listed
            })
            .collect();
        let code = if self.loading.is_empty() {
            error_code::NONE
        } else {
            error_code::COORDINATOR_LOAD_IN_PROGRESS
        };
        ListGroupsResponse::default()
            .with_error_code(code)
            .with_groups(groups)
    }

    /// Validates an OffsetCommit and plans its records (see [`CommitPlan`]).
    pub fn commit_offsets(
        &mut self,
        now_ms: u64,
        request: &OffsetCommitRequest,
        api_version: i16,
    ) -> CommitPlan {
        assert!(
            (2..=8).contains(&api_version),
            "OffsetCommit versions are 2..=8"
        );
        let group_id: &str = &request.group_id.0;
        let offsets_partition = self.partition_for(group_id);
        let group_code = self.commit_check(now_ms, request);
        let mut records = Vec::new();
        let mut new_keys = 0usize;
        let held = self.groups.get(group_id).map_or(0, |g| g.offsets.len());
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let codes = topic.partitions.iter().map(|partition| {
                let metadata = partition.committed_metadata.as_deref().unwrap_or("");
                let key = OffsetKey {
                    group: group_id.to_string(),
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                };
                let is_new = self
                    .groups
                    .get(group_id)
                    .is_none_or_absent(&(key.topic.clone(), key.partition));
                let code = if group_code != error_code::NONE {
                    group_code
                } else if metadata.len() > self.config.offset_metadata_bytes_max {
                    error_code::OFFSET_METADATA_TOO_LARGE
                } else if is_new && held + new_keys >= self.config.offsets_per_group_max {
                    error_code::INVALID_COMMIT_OFFSET_SIZE
                } else {
                    new_keys += usize::from(is_new);
                    records.push(OffsetRecord {
                        key,
                        value: Some(OffsetValue {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: metadata.to_string(),
                            commit_timestamp_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
                        }),
                    });
                    error_code::NONE
                };
                (partition.partition_index, code)
            });
            let codes: Vec<(i32, i16)> = codes.collect();
            topics.push(commit_topic(&topic.name, codes.into_iter()));
        }
        let plan = CommitPlan {
            offsets_partition,
            records,
            response: OffsetCommitResponse::default().with_topics(topics),
        };
        assert!(plan.records.iter().all(|r| r.key.group == group_id));
        plan
    }

    /// The group-level check of a commit (Kafka's `doCommitOffsets` preconditions).
    fn commit_check(&mut self, now_ms: u64, request: &OffsetCommitRequest) -> i16 {
        let group_id: &str = &request.group_id.0;
        if group_id.is_empty() {
            return error_code::INVALID_GROUP_ID;
        }
        let coordinator = self.is_coordinator_for(group_id);
        if coordinator != error_code::NONE {
            return coordinator;
        }
        let generation_id = request.generation_id_or_member_epoch;
        let groups_full = self.groups.len() >= self.config.groups_max;
        let Some(group) = self.groups.get_mut(group_id) else {
            return match (generation_id < 0, groups_full) {
                (true, false) => error_code::NONE,
                (true, true) => error_code::COORDINATOR_NOT_AVAILABLE,
                (false, _) => error_code::ILLEGAL_GENERATION,
            };
        };
        if generation_id < 0 && group.state == GroupState::Empty {
            // A standalone consumer storing offsets in an unused group.
            return error_code::NONE;
        }
        let instance_id = request.group_instance_id.as_deref();
        if let Err(code) = validate_current_member(group, &request.member_id, instance_id) {
            return code;
        }
        if group.state == GroupState::CompletingRebalance {
            return error_code::REBALANCE_IN_PROGRESS;
        }
        let Some(member) = group.members.get_mut(&*request.member_id) else {
            return error_code::UNKNOWN_MEMBER_ID;
        };
        if generation_id != group.generation_id {
            return error_code::ILLEGAL_GENERATION;
        }
        member.heartbeat_last_ms = now_ms;
        error_code::NONE
    }

    /// An OffsetFetch (answered at once from the cache): -1 for partitions without a commit.
    pub fn fetch_offsets(
        &self,
        request: &OffsetFetchRequest,
        api_version: i16,
    ) -> OffsetFetchResponse {
        assert!(
            (1..=OFFSET_FETCH_VERSION_MAX).contains(&api_version),
            "OffsetFetch versions are 1..=8"
        );
        if api_version >= 8 {
            let groups = request
                .groups
                .iter()
                .map(|g| {
                    let requested = g.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                            .collect()
                    });
                    self.fetch_group_v8(&g.group_id, requested)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let group_id: &str = &request.group_id.0;
        let requested: Option<Vec<(TopicName, Vec<i32>)>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        let code = match self.is_coordinator_for(group_id) {
            _ if group_id.is_empty() => error_code::INVALID_GROUP_ID,
            code => code,
        };
        if code != error_code::NONE && api_version >= 2 {
            return OffsetFetchResponse::default().with_error_code(code);
        }
        let topics = self
            .committed(group_id, requested)
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, value)| {
                        let (offset, epoch, metadata) = unpack(value);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(index)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(StrBytes::from_string(metadata)))
                            .with_error_code(code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default()
            .with_topics(topics)
            .with_error_code(code)
    }

    fn fetch_group_v8(
        &self,
        group_id: &GroupId,
        requested: Option<Vec<(TopicName, Vec<i32>)>>,
    ) -> OffsetFetchResponseGroup {
        let response = OffsetFetchResponseGroup::default().with_group_id(group_id.clone());
        let code = match self.is_coordinator_for(&group_id.0) {
            _ if group_id.0.is_empty() => error_code::INVALID_GROUP_ID,
            code => code,
        };
        if code != error_code::NONE {
            return response.with_error_code(code);
        }
        let topics = self
            .committed(&group_id.0, requested)
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, value)| {
                        let (offset, epoch, metadata) = unpack(value);
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(index)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(StrBytes::from_string(metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopics::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        response.with_topics(topics)
    }

    /// The committed offsets of the requested partitions (or all, for `None`), by topic.
    fn committed(
        &self,
        group_id: &str,
        requested: Option<Vec<(TopicName, Vec<i32>)>>,
    ) -> Vec<(TopicName, PartitionOffsets<'_>)> {
        let group = self.groups.get(group_id);
        match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(name, partitions)| {
                    let values = partitions
                        .into_iter()
                        .map(|p| {
                            (
                                p,
                                group.and_then(|g| g.offsets.get(&(name.0.to_string(), p))),
                            )
                        })
                        .collect();
                    (name, values)
                })
                .collect(),
            None => {
                let mut out: Vec<(TopicName, PartitionOffsets<'_>)> = Vec::new();
                for ((topic, partition), value) in group.iter().flat_map(|g| g.offsets.iter()) {
                    if out.last().is_none_or_other(topic) {
                        out.push((TopicName(StrBytes::from_string(topic.clone())), Vec::new()));
                    }
                    out.last_mut()
                        .expect("pushed above")
                        .1
                        .push((*partition, Some(value)));
                }
                out
            }
        }
    }
}

/// Parks `member_id`'s JoinGroup until the rebalance completes.
fn set_awaiting_join(group: &mut Group, member_id: &str, waiting: Waiting) {
    let member = group.members.get_mut(member_id).expect("caller checked");
    assert!(
        member.awaiting_join.is_none(),
        "the old instance's join was fenced"
    );
    member.awaiting_join = Some(waiting);
}

/// Kafka's `validateCurrentMember`: a request naming `group_instance_id` must come from the
/// member id holding it (FENCED_INSTANCE_ID if another holds it, UNKNOWN_MEMBER_ID if none);
/// `member_id` must be a member.
fn validate_current_member(
    group: &Group,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), i16> {
    if let Some(instance_id) = group_instance_id {
        match group.static_member(instance_id) {
            Some(current) if current != member_id => {
                tracing::info!(
                    group = %group.group_id,
                    instance = instance_id,
                    member = member_id,
                    current,
                    "fenced static member"
                );
                return Err(error_code::FENCED_INSTANCE_ID);
            }
            Some(_) => {}
            None => return Err(error_code::UNKNOWN_MEMBER_ID),
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(error_code::UNKNOWN_MEMBER_ID);
    }
    Ok(())
}

/// Offset, leader epoch and metadata of a committed value, or Kafka's "none" answer.
fn unpack(value: Option<&OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

/// The leader's SyncGroup: store every member's assignment and answer all waiting syncs.
fn complete_sync(
    now_ms: u64,
    group: &mut Group,
    request: &kafka_protocol::messages::SyncGroupRequest,
    effects: &mut Vec<GroupEffect>,
) {
    assert_eq!(group.state, GroupState::CompletingRebalance);
    for member in group.members.values_mut() {
        member.assignment = Bytes::new();
    }
    for assignment in &request.assignments {
        if let Some(member) = group.members.get_mut(&*assignment.member_id) {
            member.assignment = assignment.assignment.clone();
        }
    }
    group.state = GroupState::Stable;
    let protocol = (&group.protocol_type, &group.protocol_name);
    for member in group.members.values_mut() {
        if let Some(waiting) = member.awaiting_sync.take() {
            member.heartbeat_last_ms = now_ms;
            let assignment = member.assignment.clone();
            effects.push(sync_response(
                waiting,
                error_code::NONE,
                assignment,
                Some(protocol),
            ));
        }
    }
    assert!(group.members.values().all(|m| m.awaiting_sync.is_none()));
}

/// Small helpers that keep the handlers' conditions readable.
trait OptionGroupExt {
    fn is_none_or_absent(&self, key: &(String, i32)) -> bool;
}

impl OptionGroupExt for Option<&Group> {
    fn is_none_or_absent(&self, key: &(String, i32)) -> bool {
        self.is_none_or(|g| !g.offsets.contains_key(key))
    }
}

trait LastTopicExt {
    fn is_none_or_other(&self, topic: &str) -> bool;
}

impl LastTopicExt for Option<&(TopicName, PartitionOffsets<'_>)> {
    fn is_none_or_other(&self, topic: &str) -> bool {
        self.is_none_or(|(name, _)| &*name.0 != topic)
    }
}
