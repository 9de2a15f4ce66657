//! A group's state: its members, generation, chosen protocol and committed offsets.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::offsets::OffsetValue;

/// The classic group state machine (Kafka's `GroupState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// A rebalance started: members must rejoin before the new generation forms.
    PreparingRebalance,
    /// The generation formed; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group is gone (its offsets partition moved away); kept for describe answers only.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A request waiting for its answer: the driver's ticket and the version to answer at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The driver's id for the client request.
    pub ticket: u64,
    /// The request's API version: the response is built at it.
    pub api_version: i16,
}

/// One member of a group.
#[derive(Clone, Debug)]
pub struct Member {
    /// The coordinator-generated id (`client_id-salt-counter`).
    pub member_id: String,
    /// The client's `group.instance.id` (KIP-345 static membership): a rejoin with it and an
    /// unknown member id takes this member's place instead of joining as a new member.
    pub group_instance_id: Option<String>,
    /// The client id from the request header, shown by DescribeGroups.
    pub client_id: String,
    /// The client's host, shown by DescribeGroups.
    pub client_host: String,
    /// Without a heartbeat for this long, the member is removed.
    pub session_timeout_ms: u64,
    /// How long the member may take to rejoin during a rebalance.
    pub rebalance_timeout_ms: u64,
    /// The protocols the member supports with their metadata, in its order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment the leader gave this member in the current generation.
    pub assignment: Bytes,
    /// Its JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<Waiting>,
    /// Its SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<Waiting>,
    /// When the member last proved alive (heartbeat, join, sync, commit).
    pub heartbeat_last_ms: u64,
}

impl Member {
    /// Whether the session deadline has passed. Members with a request in flight stay: the
    /// rebalance deadline bounds them instead (Kafka's `shouldKeepAlive`).
    pub fn session_expired(&self, now_ms: u64) -> bool {
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            return false;
        }
        now_ms >= self.session_deadline_ms()
    }

    /// When the member expires without a heartbeat.
    pub fn session_deadline_ms(&self) -> u64 {
        self.heartbeat_last_ms
            .saturating_add(self.session_timeout_ms)
    }

    /// The member's metadata for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }
}

/// A consumer group on this coordinator.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    /// Where the group is in the rebalance protocol.
    pub state: GroupState,
    /// Bumped each time a rebalance completes; fences members of older generations.
    pub generation_id: i32,
    /// The members' protocol type (e.g. "consumer"); all members must agree.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    /// The member that computes the assignment (the first to join, kept while it stays).
    pub leader_id: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Static members: `group.instance.id` -> the member id currently holding it.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until their session deadline: the
    /// rebalance waits for them like for members.
    pub pending_members: BTreeMap<String, u64>,
    /// In PreparingRebalance: when the rebalance completes even if members are missing.
    pub rebalance_deadline_ms: u64,
    /// In PreparingRebalance of an Empty group: the initial delay's end; the rebalance does not
    /// complete before it, so a starting fleet of consumers lands in one generation.
    pub initial_delay_end_ms: Option<u64>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// The `__consumer_offsets` offset of the record each key was last applied from (kept
    /// across tombstones): an append that completes late never overwrites a newer one.
    pub offsets_applied_at: BTreeMap<(String, i32), i64>,
}

impl Group {
    /// A new Empty group with no offsets.
    pub fn new(group_id: String) -> Self {
        assert!(!group_id.is_empty(), "group ids are validated before");
        Self {
            group_id,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_end_ms: None,
            offsets: BTreeMap::new(),
            offsets_applied_at: BTreeMap::new(),
        }
    }

    /// The protocols every member supports (`extra` counts as a member too), ordered by the
    /// leader's (or else `extra`'s, or else the first member's) preference.
    pub fn candidate_protocols(&self, extra: Option<&[(String, Bytes)]>) -> Vec<String> {
        let preference: Vec<String> = self
            .leader_id
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .map(|m| &m.protocols[..])
            .or(extra)
            // No leader yet (the first rebalance): any member's order will do; the first is
            // deterministic.
            .or_else(|| self.members.values().next().map(|m| &m.protocols[..]))
            .into_iter()
            .flatten()
            .map(|(name, _)| name.clone())
            .collect();
        let supported_by = |protocols: &[(String, Bytes)], name: &str| {
            protocols.iter().any(|(candidate, _)| candidate == name)
        };
        preference
            .into_iter()
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| supported_by(&m.protocols, name))
            })
            .filter(|name| extra.is_none_or(|protocols| supported_by(protocols, name)))
            .collect()
    }

    /// Removes a member and its static mapping; the caller answers its waiting requests.
    pub fn remove_member_entry(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance_id) = &member.group_instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        Some(member)
    }

    /// The member id holding `group.instance.id` `instance_id`, if any.
    pub fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    /// Whether every member (and every pending member) has rejoined.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The earliest moment `tick` has work for this group.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let mut deadlines: BTreeSet<u64> = self.pending_members.values().copied().collect();
        for member in self.members.values() {
            if member.awaiting_join.is_none() && member.awaiting_sync.is_none() {
                deadlines.insert(member.session_deadline_ms());
            }
        }
        if self.state == GroupState::PreparingRebalance {
            deadlines.insert(
                self.initial_delay_end_ms
                    .unwrap_or(self.rebalance_deadline_ms),
            );
        }
        deadlines.first().copied()
    }

    /// Checks the group's invariants.
    pub fn check_invariants(&self) {
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                assert!(self.members.is_empty(), "an empty group has no members");
                assert!(self.leader_id.is_none());
            }
            GroupState::PreparingRebalance => {}
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(!self.members.is_empty(), "a formed generation has members");
                let leader = self
                    .leader_id
                    .as_ref()
                    .expect("a formed generation has a leader");
                assert!(self.members.contains_key(leader));
                assert!(self.protocol_name.is_some());
                assert!(self.members.values().all(|m| m.awaiting_join.is_none()));
            }
        }
        if self.state != GroupState::CompletingRebalance {
            assert!(self.members.values().all(|m| m.awaiting_sync.is_none()));
        }
        if let Some(leader) = &self.leader_id {
            assert!(self.members.contains_key(leader), "the leader is a member");
        }
        assert!(self.generation_id >= 0);
        for (instance_id, member_id) in &self.static_members {
            let member = self
                .members
                .get(member_id)
                .expect("a static mapping names a member");
            assert_eq!(member.group_instance_id.as_ref(), Some(instance_id));
        }
        for member in self.members.values() {
            if let Some(instance_id) = &member.group_instance_id {
                assert_eq!(
                    self.static_members.get(instance_id),
                    Some(&member.member_id),
                    "a static member is mapped by its instance id"
                );
            }
        }
    }
}
