//! The classic consumer-group protocol as one member sees it: FindCoordinator, JoinGroup
//! (protocol type "consumer", protocol "range"), SyncGroup (the leader computes a range
//! assignment), Heartbeat, OffsetCommit, OffsetFetch and LeaveGroup.

use std::collections::BTreeMap;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, RequestKind, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::assignor::{range_assign, Assignment};
use crate::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::metadata::MetadataCache;
use crate::pool::ConnectionPool;

/// The embedded protocol type every Kafka consumer uses.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The one assignment strategy this client offers.
pub const PROTOCOL_NAME: &str = "range";
/// Most JoinGroup/SyncGroup rounds one join may take (MEMBER_ID_REQUIRED, rebalances).
pub const JOIN_ROUNDS_MAX: u32 = 10;

/// Topic → partition → offset.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Timing of the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTimeouts {
    /// Coordinator evicts the member after this long without a heartbeat.
    pub session_timeout_ms: u64,
    /// How long the coordinator waits for members to rejoin during a rebalance.
    pub rebalance_timeout_ms: u64,
}

/// One member's view of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The group.
    pub group_id: String,
    /// Coordinator "host:port", once found.
    pub coordinator: Option<String>,
    /// Assigned by the coordinator; empty before the first join.
    pub member_id: String,
    /// Generation of the current membership; -1 when not joined.
    pub generation_id: i32,
    /// True between a successful SyncGroup and the next rebalance signal.
    pub joined: bool,
    /// The whole assignment this member computed and sent as the leader of its generation
    /// (`generation_id`); `None` when it did not lead it. For inspection (the simulator checks
    /// that every member of a generation got the leader's entry for it).
    pub led_assignment: Option<Assignment>,
}

/// What a completed join produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Partitions assigned to this member, topic → partitions.
    pub assigned: BTreeMap<String, Vec<i32>>,
    /// True when this member was the group leader and computed the assignment.
    pub leader: bool,
}

impl GroupMember {
    /// A member that has not joined yet.
    pub fn new(group_id: String) -> Self {
        assert!(!group_id.is_empty(), "group ids are not empty");
        GroupMember {
            group_id,
            coordinator: None,
            member_id: String::new(),
            generation_id: -1,
            joined: false,
            led_assignment: None,
        }
    }

    /// Forgets the membership so the next poll rejoins; `forget_id` after UNKNOWN_MEMBER_ID.
    pub fn mark_rejoin(&mut self, forget_id: bool) {
        self.joined = false;
        if forget_id {
            self.member_id.clear();
            self.generation_id = -1;
        }
    }

    /// Reacts to a group error code: rebalance signals mark a rejoin, coordinator moves forget
    /// the coordinator. Returns the error.
    fn absorb(&mut self, api: &'static str, error_code: i16) -> ClientError {
        match error_code {
            code::REBALANCE_IN_PROGRESS | code::ILLEGAL_GENERATION => self.mark_rejoin(false),
            code::UNKNOWN_MEMBER_ID => self.mark_rejoin(true),
            code::NOT_COORDINATOR
            | code::COORDINATOR_NOT_AVAILABLE
            | code::COORDINATOR_LOAD_IN_PROGRESS => {
                self.coordinator = None;
                self.mark_rejoin(false);
            }
            _ => {}
        }
        ClientError::kafka(api, error_code)
    }

    /// Finds (and caches) the coordinator through any reachable broker.
    pub async fn coordinator(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
    ) -> Result<String> {
        if let Some(addr) = &self.coordinator {
            return Ok(addr.clone());
        }
        let cluster = metadata.refresh(pool, Some(&[])).await?;
        let addr = cluster
            .brokers
            .values()
            .next()
            .cloned()
            .unwrap_or_else(|| pool.config().bootstrap[0].clone());
        let group_id = self.group_id.clone();
        let timeout_ms = pool.config().request_timeout_ms;
        let build = move |_version: i16| {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group_id))
                .with_key_type(0);
            Ok(RequestKind::FindCoordinator(request))
        };
        let response = pool
            .call(&addr, ApiKey::FindCoordinator, timeout_ms, build)
            .await?;
        let response = expect_response!(response, FindCoordinator)?;
        if response.error_code != 0 {
            return Err(ClientError::kafka("FindCoordinator", response.error_code));
        }
        let coordinator = format!("{}:{}", response.host.as_str(), response.port);
        assert!(response.port >= 0, "a port is non-negative");
        self.coordinator = Some(coordinator.clone());
        Ok(coordinator)
    }

    /// Joins (or rejoins) the group subscribed to `topics` and returns this member's assignment.
    pub async fn join(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
        topics: &[String],
        timeouts: GroupTimeouts,
    ) -> Result<JoinOutcome> {
        let mut last_error = ClientError::Closed;
        for _round in 0..JOIN_ROUNDS_MAX {
            match self.join_round(pool, metadata, topics, timeouts).await {
                Ok(Some(outcome)) => {
                    self.joined = true;
                    assert!(self.generation_id >= 0, "a joined member has a generation");
                    return Ok(outcome);
                }
                Ok(None) => continue,
                Err(error) if error.is_retriable() || is_group_retry(&error) => {
                    last_error = error;
                    crate::admin::backoff(pool.config().retry_backoff_ms).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// One JoinGroup + SyncGroup; `Ok(None)` asks for another round (e.g. MEMBER_ID_REQUIRED).
    async fn join_round(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
        topics: &[String],
        timeouts: GroupTimeouts,
    ) -> Result<Option<JoinOutcome>> {
        let addr = self.coordinator(pool, metadata).await?;
        let subscription = encode_subscription(topics)?;
        let (group_id, member_id) = (self.group_id.clone(), self.member_id.clone());
        let build = move |version: i16| {
            let protocol = JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(PROTOCOL_NAME))
                .with_metadata(subscription);
            let mut request = JoinGroupRequest::default()
                .with_group_id(StrBytes::from_string(group_id).into())
                .with_session_timeout_ms(clamp_i32(timeouts.session_timeout_ms))
                .with_member_id(StrBytes::from_string(member_id))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![protocol]);
            if version >= 1 {
                request =
                    request.with_rebalance_timeout_ms(clamp_i32(timeouts.rebalance_timeout_ms));
            }
            Ok(RequestKind::JoinGroup(request))
        };
        // The coordinator holds JoinGroup until the rebalance completes.
        let timeout_ms = timeouts.rebalance_timeout_ms + pool.config().request_timeout_ms;
        let response = pool
            .call(&addr, ApiKey::JoinGroup, timeout_ms, build)
            .await?;
        let response = expect_response!(response, JoinGroup)?;
        match response.error_code {
            0 => {}
            code::MEMBER_ID_REQUIRED => {
                self.member_id = response.member_id.as_str().to_string();
                return Ok(None);
            }
            other => return Err(self.absorb("JoinGroup", other)),
        }
        self.member_id = response.member_id.as_str().to_string();
        self.generation_id = response.generation_id;
        let leader = response.leader.as_str() == self.member_id;
        self.led_assignment = None;
        let assignments = if leader {
            let (assignment, requests) = self.assign(pool, metadata, &response).await?;
            self.led_assignment = Some(assignment);
            requests
        } else {
            Vec::new()
        };
        let assigned = self.sync(pool, &addr, assignments).await?;
        Ok(Some(JoinOutcome { assigned, leader }))
    }

    /// As leader: decode every member's subscription and range-assign.
    async fn assign(
        &self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
        response: &JoinGroupResponse,
    ) -> Result<(Assignment, Vec<SyncGroupRequestAssignment>)> {
        let mut subscriptions = BTreeMap::new();
        for member in &response.members {
            let topics = decode_subscription(&member.metadata)?;
            subscriptions.insert(member.member_id.as_str().to_string(), topics);
        }
        let mut all_topics: Vec<String> = subscriptions.values().flatten().cloned().collect();
        all_topics.sort();
        all_topics.dedup();
        let cluster = metadata.refresh(pool, Some(&all_topics)).await?;
        let partitions: BTreeMap<String, i32> = all_topics
            .iter()
            .filter_map(|topic| {
                cluster
                    .partition_count(topic)
                    .ok()
                    .map(|count| (topic.clone(), count))
            })
            .collect();
        let assignment = range_assign(&subscriptions, &partitions);
        assert_eq!(
            assignment.len(),
            subscriptions.len(),
            "every member gets an entry"
        );
        let requests = assignment
            .iter()
            .map(|(member_id, owned)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member_id.clone()))
                    .with_assignment(encode_assignment(owned)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((assignment, requests))
    }

    async fn sync(
        &mut self,
        pool: &ConnectionPool,
        addr: &str,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> Result<BTreeMap<String, Vec<i32>>> {
        let (group_id, member_id, generation_id) = (
            self.group_id.clone(),
            self.member_id.clone(),
            self.generation_id,
        );
        let build = move |version: i16| {
            let mut request = SyncGroupRequest::default()
                .with_group_id(StrBytes::from_string(group_id).into())
                .with_generation_id(generation_id)
                .with_member_id(StrBytes::from_string(member_id))
                .with_assignments(assignments);
            if version >= 5 {
                request = request
                    .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                    .with_protocol_name(Some(StrBytes::from_static_str(PROTOCOL_NAME)));
            }
            Ok(RequestKind::SyncGroup(request))
        };
        let timeout_ms = pool.config().request_timeout_ms;
        let response = pool
            .call(addr, ApiKey::SyncGroup, timeout_ms, build)
            .await?;
        let response = expect_response!(response, SyncGroup)?;
        if response.error_code != 0 {
            return Err(self.absorb("SyncGroup", response.error_code));
        }
        decode_assignment(&response.assignment)
    }

    /// One heartbeat; a rebalance signal marks a rejoin and is returned as the error.
    pub async fn heartbeat(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
    ) -> Result<()> {
        assert!(self.joined, "only joined members heartbeat");
        let addr = self.coordinator(pool, metadata).await?;
        let (group_id, member_id, generation_id) = (
            self.group_id.clone(),
            self.member_id.clone(),
            self.generation_id,
        );
        let build = move |_version: i16| {
            let request = HeartbeatRequest::default()
                .with_group_id(StrBytes::from_string(group_id).into())
                .with_generation_id(generation_id)
                .with_member_id(StrBytes::from_string(member_id));
            Ok(RequestKind::Heartbeat(request))
        };
        let timeout_ms = pool.config().request_timeout_ms;
        let response = pool.call(&addr, ApiKey::Heartbeat, timeout_ms, build).await;
        let response = match response {
            Ok(response) => expect_response!(response, Heartbeat)?,
            Err(error) => {
                self.coordinator = None;
                return Err(error);
            }
        };
        if response.error_code != 0 {
            return Err(self.absorb("Heartbeat", response.error_code));
        }
        Ok(())
    }

    /// Commits `offsets` (the next offset to read, per partition). With `joined` false the commit
    /// is a "simple" one (generation -1, no member), as for manually assigned consumers.
    pub async fn commit(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
        offsets: &Offsets,
    ) -> Result<()> {
        let addr = self
            .coordinator(pool, metadata)
            .await
            .map_err(ClientError::not_sent)?;
        let (generation_id, member_id) = if self.joined {
            (self.generation_id, self.member_id.clone())
        } else {
            (-1, String::new())
        };
        let topics: Vec<OffsetCommitRequestTopic> = offsets
            .iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(StrBytes::from_string(topic.clone()).into())
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(&partition, &offset)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(offset)
                                    .with_committed_metadata(Some(StrBytes::new()))
                            })
                            .collect(),
                    )
            })
            .collect();
        let group_id = self.group_id.clone();
        let build = move |_version: i16| {
            let request = OffsetCommitRequest::default()
                .with_group_id(StrBytes::from_string(group_id).into())
                .with_generation_id_or_member_epoch(generation_id)
                .with_member_id(StrBytes::from_string(member_id))
                .with_topics(topics);
            Ok(RequestKind::OffsetCommit(request))
        };
        let timeout_ms = pool.config().request_timeout_ms;
        let response = pool
            .call(&addr, ApiKey::OffsetCommit, timeout_ms, build)
            .await?;
        let response = expect_response!(response, OffsetCommit)?;
        let first_error = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.error_code)
            .find(|&c| c != 0);
        match first_error {
            None => Ok(()),
            Some(error_code) => Err(self.absorb("OffsetCommit", error_code)),
        }
    }

    /// Committed offsets of `partitions` (topic → partitions); absent entries were never committed.
    pub async fn fetch_committed(
        &mut self,
        pool: &ConnectionPool,
        metadata: &MetadataCache,
        partitions: &BTreeMap<String, Vec<i32>>,
    ) -> Result<Offsets> {
        let addr = self.coordinator(pool, metadata).await?;
        let topics: Vec<OffsetFetchRequestTopic> = partitions
            .iter()
            .map(|(topic, indexes)| {
                OffsetFetchRequestTopic::default()
                    .with_name(StrBytes::from_string(topic.clone()).into())
                    .with_partition_indexes(indexes.clone())
            })
            .collect();
        let group_id = self.group_id.clone();
        let build = move |_version: i16| {
            let request = OffsetFetchRequest::default()
                .with_group_id(StrBytes::from_string(group_id).into())
                .with_topics(Some(topics));
            Ok(RequestKind::OffsetFetch(request))
        };
        let timeout_ms = pool.config().request_timeout_ms;
        let response = pool
            .call(&addr, ApiKey::OffsetFetch, timeout_ms, build)
            .await?;
        let response = expect_response!(response, OffsetFetch)?;
        if response.error_code != 0 {
            return Err(self.absorb("OffsetFetch", response.error_code));
        }
        let mut committed = Offsets::new();
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(self.absorb("OffsetFetch", partition.error_code));
                }
                if partition.committed_offset >= 0 {
                    committed
                        .entry(topic.name.as_str().to_string())
                        .or_default()
                        .insert(partition.partition_index, partition.committed_offset);
                }
            }
        }
        Ok(committed)
    }

    /// Leaves the group (best effort: the session timeout evicts us anyway).
    pub async fn leave(&mut self, pool: &ConnectionPool, metadata: &MetadataCache) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let addr = self.coordinator(pool, metadata).await?;
        let (group_id, member_id) = (self.group_id.clone(), self.member_id.clone());
        let build = move |version: i16| {
            let mut request =
                LeaveGroupRequest::default().with_group_id(StrBytes::from_string(group_id).into());
            if version >= 3 {
                request =
                    request
                        .with_members(vec![MemberIdentity::default()
                            .with_member_id(StrBytes::from_string(member_id))]);
            } else {
                request = request.with_member_id(StrBytes::from_string(member_id));
            }
            Ok(RequestKind::LeaveGroup(request))
        };
        let timeout_ms = pool.config().request_timeout_ms;
        let response = pool
            .call(&addr, ApiKey::LeaveGroup, timeout_ms, build)
            .await?;
        let response = expect_response!(response, LeaveGroup)?;
        self.mark_rejoin(true);
        assert!(
            self.member_id.is_empty(),
            "a departed member forgets its id"
        );
        if response.error_code != 0 {
            return Err(ClientError::kafka("LeaveGroup", response.error_code));
        }
        Ok(())
    }
}

fn is_group_retry(error: &ClientError) -> bool {
    matches!(
        error.kafka_code(),
        Some(
            code::REBALANCE_IN_PROGRESS
                | code::ILLEGAL_GENERATION
                | code::UNKNOWN_MEMBER_ID
                | code::NOT_COORDINATOR
        )
    )
}

fn clamp_i32(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
