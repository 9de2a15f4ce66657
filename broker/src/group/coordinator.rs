//! The coordinator's shared machinery: configuration, effects, ownership of offsets partitions,
//! timers and the rebalance itself. The request handlers live in `handlers.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    JoinGroupResponse, OffsetCommitResponse, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::error_code;
use super::offsets::{offsets_partition, OffsetRecord};
use super::state::{Group, GroupState, Waiting};

/// The coordinator's settings and limits.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Partitions of `__consumer_offsets` (Kafka's `offsets.topic.num.partitions`); fixed for
    /// the cluster's life because it decides where each group lives.
    pub offsets_partitions: i32,
    /// How long a first rebalance of an Empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`): 0 in tests, e.g. 300 in production.
    pub initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub session_timeout_ms_min: u64,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub session_timeout_ms_max: u64,
    /// Most groups this coordinator holds; beyond it new groups are refused
    /// COORDINATOR_NOT_AVAILABLE.
    pub groups_max: usize,
    /// Most members per group (`group.max.size`).
    pub members_per_group_max: usize,
    /// Most protocols one member may list.
    pub protocols_per_member_max: usize,
    /// Most committed offsets one group may hold.
    pub offsets_per_group_max: usize,
    /// Longest commit metadata string (`offset.metadata.max.bytes`).
    pub offset_metadata_bytes_max: usize,
    /// Mixed into generated member ids so ids of this coordinator incarnation never equal ids
    /// an earlier coordinator of the group handed out (e.g. broker id and incarnation).
    pub member_id_salt: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            offsets_partitions: 50,
            initial_rebalance_delay_ms: 0,
            session_timeout_ms_min: 1_000,
            session_timeout_ms_max: 1_800_000,
            groups_max: 100_000,
            members_per_group_max: 1_000,
            protocols_per_member_max: 16,
            offsets_per_group_max: 100_000,
            offset_metadata_bytes_max: 4_096,
            member_id_salt: 0,
        }
    }
}

/// What the driver must do after a call.
// Responses dominate the effects; boxing them would cost an allocation per answer to shrink
// the rare timer variant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum GroupEffect {
    /// Answer the client request identified by `ticket`.
    Respond {
        /// The ticket the driver passed with the request.
        ticket: u64,
        /// The response, built at the request's version.
        response: ResponseKind,
    },
    /// Call `tick` at (or after) `at_ms`.
    SetTimer {
        /// The deadline in the driver's milliseconds.
        at_ms: u64,
    },
}

/// Who sent a request (from the request header and the connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The header's client id; the prefix of generated member ids.
    pub client_id: String,
    /// The peer's address, for DescribeGroups.
    pub client_host: String,
}

/// A validated OffsetCommit: records to make durable and the response to send once they are.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitPlan {
    /// The `__consumer_offsets` partition the records go to.
    pub offsets_partition: i32,
    /// Records to append with acks=all (empty: answer at once).
    pub records: Vec<OffsetRecord>,
    /// The response: NONE for every partition in `records`, refusals for the others.
    pub response: OffsetCommitResponse,
}

impl CommitPlan {
    /// The response to send when the append failed: every partition that was to be written
    /// carries `error_code` (COORDINATOR_NOT_AVAILABLE, REQUEST_TIMED_OUT, NOT_COORDINATOR).
    pub fn failed(&self, error_code: i16) -> OffsetCommitResponse {
        assert!(
            error_code != error_code::NONE,
            "a failure has an error code"
        );
        let mut response = self.response.clone();
        for topic in &mut response.topics {
            for partition in &mut topic.partitions {
                if partition.error_code == error_code::NONE {
                    partition.error_code = error_code;
                }
            }
        }
        response
    }
}

/// The group coordinator of one broker.
#[derive(Clone, Debug)]
pub struct GroupCoordinator {
    /// Settings and limits.
    pub(super) config: GroupConfig,
    /// Groups of the loaded offsets partitions, by id.
    pub(super) groups: BTreeMap<String, Group>,
    /// Offsets partitions this broker leads and has loaded.
    pub(super) loaded: BTreeSet<i32>,
    /// Offsets partitions this broker leads and is still reading.
    pub(super) loading: BTreeSet<i32>,
    /// Counter behind generated member ids.
    pub(super) member_counter: u64,
}

impl GroupCoordinator {
    /// A coordinator that owns no offsets partition yet.
    pub fn new(config: GroupConfig) -> Self {
        assert!(config.offsets_partitions >= 1);
        assert!(config.session_timeout_ms_min <= config.session_timeout_ms_max);
        assert!(config.members_per_group_max >= 1 && config.groups_max >= 1);
        Self {
            config,
            groups: BTreeMap::new(),
            loaded: BTreeSet::new(),
            loading: BTreeSet::new(),
            member_counter: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// A group, if this coordinator holds it.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// The `__consumer_offsets` partition of a group under this configuration.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        offsets_partition(group_id, self.config.offsets_partitions)
    }

    /// NONE if this broker coordinates `group_id`, else the error code to answer with.
    pub fn is_coordinator_for(&self, group_id: &str) -> i16 {
        let partition = self.partition_for(group_id);
        if self.loaded.contains(&partition) {
            error_code::NONE
        } else if self.loading.contains(&partition) {
            error_code::COORDINATOR_LOAD_IN_PROGRESS
        } else {
            error_code::NOT_COORDINATOR
        }
    }

    /// This broker became leader of offsets `partition` and starts reading it. Groups it held
    /// from an earlier term are dropped first (their waiting requests answered NOT_COORDINATOR):
    /// the reload is the truth.
    pub fn begin_loading(&mut self, partition: i32) -> Vec<GroupEffect> {
        assert!((0..self.config.offsets_partitions).contains(&partition));
        let effects = self.unload(partition);
        self.loading.insert(partition);
        assert!(!self.loaded.contains(&partition));
        effects
    }

    /// The partition's records were read, in log order: rebuild its groups' committed offsets.
    /// Records of groups that belong to another partition are skipped (a misplaced record
    /// must not resurrect a group this broker does not coordinate).
    pub fn load(&mut self, partition: i32, records: impl IntoIterator<Item = OffsetRecord>) {
        assert!((0..self.config.offsets_partitions).contains(&partition));
        self.loading.remove(&partition);
        self.loaded.insert(partition);
        for record in records {
            if self.partition_for(&record.key.group) != partition || record.key.group.is_empty() {
                continue;
            }
            // In log order, below every append of this term.
            self.apply_offset_record(record, i64::MIN);
        }
        self.check_invariants();
    }

    /// This broker no longer leads offsets `partition`: drop its groups and answer their
    /// waiting requests NOT_COORDINATOR, so clients find the new coordinator.
    pub fn unload(&mut self, partition: i32) -> Vec<GroupEffect> {
        self.loaded.remove(&partition);
        self.loading.remove(&partition);
        let group_ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| self.partition_for(id) == partition)
            .cloned()
            .collect();
        let mut effects = Vec::new();
        for group_id in group_ids {
            let group = self.groups.remove(&group_id).expect("listed above");
            if matches!(
                group.state,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance
            ) {
                // The offsets partition moved away in the middle of a rebalance.
                buggify::probe!("group.coordinator_moved_mid_rebalance");
            }
            for member in group.members.values() {
                if let Some(waiting) = member.awaiting_join {
                    effects.push(join_error(waiting, error_code::NOT_COORDINATOR, ""));
                }
                if let Some(waiting) = member.awaiting_sync {
                    effects.push(sync_error(waiting, error_code::NOT_COORDINATOR));
                }
            }
        }
        assert!(self
            .groups
            .keys()
            .all(|id| self.partition_for(id) != partition));
        effects
    }

    /// Applies durable offset records to the cache (after the acks=all append of a commit),
    /// `base_offset` being where the append put the first of them. Appends complete in any
    /// order (their tasks wake in any order once the HW passes them): a record never replaces
    /// one that lies later in the log (Kafka's `onOffsetCommitAppend`, `olderThan`).
    pub fn offsets_committed(
        &mut self,
        base_offset: i64,
        records: impl IntoIterator<Item = OffsetRecord>,
    ) {
        for (position, record) in (base_offset..).zip(records) {
            // The partition may have moved away while the append was in flight.
            if self.is_coordinator_for(&record.key.group) == error_code::NONE {
                self.apply_offset_record(record, position);
            }
        }
    }

    fn apply_offset_record(&mut self, record: OffsetRecord, position: i64) {
        let key = (record.key.topic, record.key.partition);
        let newer = self
            .groups
            .get(&record.key.group)
            .and_then(|g| g.offsets_applied_at.get(&key).filter(|at| **at > position));
        if newer.is_some() {
            buggify::probe!("group.late_commit_append_not_applied");
            return;
        }
        match record.value {
            Some(value) => {
                let groups_full = self.groups.len() >= self.config.groups_max;
                if groups_full && !self.groups.contains_key(&record.key.group) {
                    tracing::warn!(group = %record.key.group, "groups_max reached; offset dropped");
                    return;
                }
                let group = self
                    .groups
                    .entry(record.key.group.clone())
                    .or_insert_with(|| Group::new(record.key.group));
                if group.offsets.len() < self.config.offsets_per_group_max
                    || group.offsets.contains_key(&key)
                {
                    group.offsets_applied_at.insert(key.clone(), position);
                    group.offsets.insert(key, value);
                }
            }
            None => {
                if let Some(group) = self.groups.get_mut(&record.key.group) {
                    // The position is kept whether or not the cache held the key: a commit of
                    // it still in flight lies before the tombstone and must not put it back.
                    group.offsets.remove(&key);
                    group.offsets_applied_at.insert(key, position);
                    // Removed keys' positions are kept only against the few appends in flight:
                    // beyond twice the offsets a group may hold, the oldest go.
                    let bound = 2 * self.config.offsets_per_group_max;
                    while group.offsets_applied_at.len() > bound {
                        let offsets = &group.offsets;
                        let oldest = group
                            .offsets_applied_at
                            .iter()
                            .filter(|(key, _)| !offsets.contains_key(*key))
                            .min_by_key(|(_, at)| **at)
                            .map(|(key, _)| key.clone());
                        let Some(oldest) = oldest else { break };
                        group.offsets_applied_at.remove(&oldest);
                    }
                }
            }
        }
    }

    /// Fired timers: expires sessions and pending members, completes rebalances whose deadline
    /// passed, and announces the next deadline.
    pub fn tick(&mut self, now_ms: u64) -> Vec<GroupEffect> {
        let mut effects = Vec::new();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, group)| group.next_deadline_ms().is_some_and(|at| at <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for group_id in due {
            self.expire_members(now_ms, &group_id, &mut effects);
            self.maybe_complete_join(now_ms, &group_id, &mut effects);
            self.forget_if_unused(&group_id);
        }
        let next = self
            .groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min();
        if let Some(at_ms) = next {
            assert!(at_ms > now_ms, "every due deadline was handled");
            effects.push(GroupEffect::SetTimer { at_ms });
        }
        self.check_invariants();
        effects
    }

    fn expire_members(&mut self, now_ms: u64, group_id: &str, effects: &mut Vec<GroupEffect>) {
        let group = self.groups.get_mut(group_id).expect("caller checked");
        group
            .pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|m| m.session_expired(now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            // Removing one member may complete a rebalance whose deadline passed, which drops
            // every member that did not rejoin: an expired member listed here may be gone by
            // now (a late tick, e.g. after the node was paused).
            let present = self
                .groups
                .get(group_id)
                .expect("caller checked")
                .members
                .contains_key(&member_id);
            if !present {
                continue;
            }
            tracing::debug!(group = group_id, member = %member_id, "session expired");
            self.remove_member(now_ms, group_id, &member_id, effects);
        }
    }

    /// Removes a member and moves the group on (Kafka's `removeMemberAndUpdateGroup`).
    pub(super) fn remove_member(
        &mut self,
        now_ms: u64,
        group_id: &str,
        member_id: &str,
        effects: &mut Vec<GroupEffect>,
    ) {
        let group = self.groups.get_mut(group_id).expect("caller checked");
        let member = group
            .remove_member_entry(member_id)
            .expect("caller checked");
        if let Some(waiting) = member.awaiting_join {
            effects.push(join_error(
                waiting,
                error_code::UNKNOWN_MEMBER_ID,
                member_id,
            ));
        }
        if let Some(waiting) = member.awaiting_sync {
            effects.push(sync_error(waiting, error_code::UNKNOWN_MEMBER_ID));
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => unreachable!("such groups have no members"),
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, effects);
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join(now_ms, group_id, effects);
            }
        }
    }

    /// Starts a rebalance: waiting SyncGroups learn REBALANCE_IN_PROGRESS and the group waits
    /// for its members to rejoin (Kafka's `prepareRebalance`).
    pub(super) fn prepare_rebalance(
        &mut self,
        now_ms: u64,
        group_id: &str,
        effects: &mut Vec<GroupEffect>,
    ) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("caller checked");
        assert!(group.state != GroupState::PreparingRebalance && group.state != GroupState::Dead);
        for member in group.members.values_mut() {
            if let Some(waiting) = member.awaiting_sync.take() {
                // Answering a waiting SyncGroup restarts the member's session, as Kafka's
                // `propagateAssignment` does: it did not count while the member waited, so it
                // may be long past (seed 17751: the tick expiring the leader then found the
                // follower's deadline already due and the coordinator's check stopped the
                // broker).
                member.heartbeat_last_ms = now_ms;
                effects.push(sync_error(waiting, error_code::REBALANCE_IN_PROGRESS));
            }
        }
        let rebalance_timeout_ms = group
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        group.rebalance_deadline_ms = now_ms.saturating_add(rebalance_timeout_ms);
        group.initial_delay_end_ms =
            (group.state == GroupState::Empty && delay_ms > 0).then(|| {
                now_ms
                    .saturating_add(delay_ms)
                    .min(group.rebalance_deadline_ms)
            });
        group.state = GroupState::PreparingRebalance;
        buggify::probe!("group.rebalance_prepared");
        if let Some(at_ms) = group.next_deadline_ms() {
            effects.push(GroupEffect::SetTimer { at_ms });
        }
        self.maybe_complete_join(now_ms, group_id, effects);
    }

    /// Completes the join phase if every member rejoined (and no initial delay holds it) or
    /// the deadline passed (Kafka's `onCompleteJoin`).
    pub(super) fn maybe_complete_join(
        &mut self,
        now_ms: u64,
        group_id: &str,
        effects: &mut Vec<GroupEffect>,
    ) {
        let group = self.groups.get_mut(group_id).expect("caller checked");
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let ready = match group.initial_delay_end_ms {
            Some(end_ms) => now_ms >= end_ms,
            None => group.all_members_joined() || now_ms >= group.rebalance_deadline_ms,
        };
        if !ready {
            return;
        }
        let stragglers: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in stragglers {
            group.remove_member_entry(&member_id);
        }
        group.initial_delay_end_ms = None;
        group.generation_id = group.generation_id.wrapping_add(1).max(1);
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol_name = None;
            // Kafka keeps the protocol type of an Empty group ("consumer"); the next first
            // member sets it again.
            group.leader_id = None;
            group.check_invariants();
            return;
        }
        let protocol = group
            .candidate_protocols(None)
            .into_iter()
            .next()
            .expect("joins only admit members sharing a protocol");
        group.protocol_name = Some(protocol);
        if group.leader_id.is_none() {
            group.leader_id = group.members.keys().next().cloned();
        }
        group.state = GroupState::CompletingRebalance;
        let member_ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in member_ids {
            let group = &self.groups[group_id];
            let response = join_success_for(group, &member_id);
            let member = self
                .groups
                .get_mut(group_id)
                .and_then(|g| g.members.get_mut(&member_id))
                .expect("listed above");
            let waiting = member
                .awaiting_join
                .take()
                .expect("stragglers were removed");
            member.heartbeat_last_ms = now_ms;
            effects.push(GroupEffect::Respond {
                ticket: waiting.ticket,
                response: ResponseKind::JoinGroup(versioned_join(response, waiting.api_version)),
            });
        }
        let group = &self.groups[group_id];
        group.check_invariants();
        if let Some(at_ms) = group.next_deadline_ms() {
            effects.push(GroupEffect::SetTimer { at_ms });
        }
    }

    /// A fresh, never repeated member id for `client_id`.
    pub(super) fn generate_member_id(&mut self, client_id: &str) -> String {
        self.member_counter += 1;
        // Bounded: Kafka limits client ids to an int16 length; cut ours much shorter.
        let prefix: String = client_id.chars().take(64).collect();
        let member_id = format!(
            "{prefix}-{:x}-{}",
            self.config.member_id_salt, self.member_counter
        );
        assert!(!member_id.is_empty());
        member_id
    }

    /// Checks every group's invariants and the coordinator's bookkeeping.
    pub fn check_invariants(&self) {
        assert!(self.loaded.is_disjoint(&self.loading));
        assert!(self.groups.len() <= self.config.groups_max);
        for (group_id, group) in &self.groups {
            assert_eq!(group_id, &group.group_id);
            assert!(self.loaded.contains(&self.partition_for(group_id)));
            assert!(group.members.len() <= self.config.members_per_group_max);
            group.check_invariants();
        }
    }
}

/// A JoinGroup success for `member_id` (the leader also gets every member's metadata).
pub(super) fn join_success_for(group: &Group, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol_name.clone().expect("a formed generation");
    let leader = group.leader_id.clone().expect("a formed generation");
    let members = if leader == member_id {
        group
            .members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_metadata(m.metadata_for(&protocol).cloned().unwrap_or_default())
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_generation_id(group.generation_id)
        .with_protocol_type(group.protocol_type.clone().map(StrBytes::from_string))
        .with_protocol_name(Some(StrBytes::from_string(protocol)))
        .with_leader(StrBytes::from_string(leader))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_members(members)
}

/// Adjusts a JoinGroup response to what `api_version` can carry.
pub(super) fn versioned_join(response: JoinGroupResponse, api_version: i16) -> JoinGroupResponse {
    if api_version >= 7 {
        return response;
    }
    // Before v7 the protocol name is a non-nullable string and there is no protocol type.
    let protocol_name = response.protocol_name.clone().unwrap_or_default();
    response
        .with_protocol_type(None)
        .with_protocol_name(Some(protocol_name))
}

/// A JoinGroup refusal as an effect.
pub(super) fn join_error(waiting: Waiting, error_code: i16, member_id: &str) -> GroupEffect {
    assert!(error_code != error_code::NONE);
    let response = JoinGroupResponse::default()
        .with_error_code(error_code)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()));
    GroupEffect::Respond {
        ticket: waiting.ticket,
        response: ResponseKind::JoinGroup(versioned_join(response, waiting.api_version)),
    }
}

/// A SyncGroup answer (assignment or refusal) as an effect.
pub(super) fn sync_response(
    waiting: Waiting,
    error_code: i16,
    assignment: Bytes,
    protocol: Option<(&Option<String>, &Option<String>)>,
) -> GroupEffect {
    let mut response = SyncGroupResponse::default()
        .with_error_code(error_code)
        .with_assignment(assignment);
    if let (Some((protocol_type, protocol_name)), true) = (protocol, waiting.api_version >= 5) {
        response = response
            .with_protocol_type(protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(protocol_name.clone().map(StrBytes::from_string));
    }
    GroupEffect::Respond {
        ticket: waiting.ticket,
        response: ResponseKind::SyncGroup(response),
    }
}

/// A SyncGroup refusal as an effect.
pub(super) fn sync_error(waiting: Waiting, error_code: i16) -> GroupEffect {
    assert!(error_code != error_code::NONE);
    sync_response(waiting, error_code, Bytes::new(), None)
}

/// One OffsetCommit response topic with every partition carrying `error_code`.
pub fn commit_topic(
    name: &kafka_protocol::messages::TopicName,
    partitions: impl Iterator<Item = (i32, i16)>,
) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic::default()
        .with_name(name.clone())
        .with_partitions(
            partitions
                .map(|(index, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect(),
        )
}
