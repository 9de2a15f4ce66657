//! The consumer: manual assignment or group subscription, Fetch from partition leaders (v4+,
//! READ_UNCOMMITTED) or, with `client_rack` set and a leader that names one, from a preferred
//! read replica (KIP-392), offset reset through ListOffsets, commits through the group
//! coordinator.
//!
//! Heartbeats are sent from `poll` (no background task): call `poll` more often than
//! `session_timeout_ms`. A rebalance clears positions; they resume from committed offsets, so
//! commit before the group moves on or records are delivered again (at-least-once).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, RequestKind,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::group::{GroupMember, GroupTimeouts, Offsets};
use crate::metadata::MetadataCache;
use crate::pool::ConnectionPool;
use crate::records::decode_fetched;
use wire::BrokerId;

/// Most partitions one consumer owns.
pub const ASSIGNED_PARTITIONS_MAX: usize = 10_000;

/// Where to start when a partition has no committed offset or its position left the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset (only records produced from now on).
    Latest,
}

impl OffsetReset {
    /// ListOffsets' special timestamp for this policy.
    fn timestamp(self) -> i64 {
        match self {
            OffsetReset::Earliest => -2,
            OffsetReset::Latest => -1,
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Group for subscribe/commit; `None` for a consumer that only reads assigned partitions.
    pub group_id: Option<String>,
    /// Coordinator evicts the member after this long without a heartbeat.
    pub session_timeout_ms: u64,
    /// How long the coordinator waits for members to rejoin.
    pub rebalance_timeout_ms: u64,
    /// Interval between heartbeats (sent from `poll`).
    pub heartbeat_interval_ms: u64,
    /// How long a leader may hold a Fetch waiting for data.
    pub fetch_max_wait_ms: u64,
    /// Most bytes one Fetch answer may carry (per partition and in total).
    pub fetch_max_bytes: i32,
    /// Policy for partitions without a usable position.
    pub auto_offset_reset: OffsetReset,
    /// Kafka's `client.rack`, sent in every Fetch (v11+): a leader with a rack-aware replica
    /// selector may name a follower of this rack to read from (KIP-392). `None`: no rack.
    pub client_rack: Option<String>,
}

impl ConsumerConfig {
    /// Defaults scaled for simulation.
    pub fn new(group_id: Option<String>) -> Self {
        ConsumerConfig {
            group_id,
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            fetch_max_wait_ms: 100,
            fetch_max_bytes: 1024 * 1024,
            auto_offset_reset: OffsetReset::Earliest,
            client_rack: None,
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value (`None` for a tombstone).
    pub value: Option<Bytes>,
    /// Timestamp in ms.
    pub timestamp: i64,
}

type PartitionKey = (String, i32);

/// A Kafka consumer. Single-task: methods take `&mut self`.
#[derive(Debug)]
pub struct Consumer {
    /// Connections to leaders and the coordinator.
    pool: ConnectionPool,
    /// Leaders of owned partitions.
    metadata: MetadataCache,
    /// Settings.
    config: ConsumerConfig,
    /// Owned partitions and the next offset to read (`None` until resolved).
    positions: BTreeMap<PartitionKey, Option<i64>>,
    /// Topics subscribed through the group, if `subscribe` was called.
    subscription: Option<Vec<String>>,
    /// Group membership, when `group_id` is set.
    group: Option<GroupMember>,
    /// When the last heartbeat was sent (tokio time).
    heartbeat_last: Option<tokio::time::Instant>,
    /// The highest log start offset each partition's leaders reported (in Fetch answers and
    /// earliest-offset resets): below it, retention may have deleted records.
    log_starts_seen: BTreeMap<PartitionKey, i64>,
    /// Preferred read replicas leaders named (KIP-392), each with the end of its lease.
    read_replicas: BTreeMap<PartitionKey, ReadReplica>,
    /// Positions a broker answered OFFSET_OUT_OF_RANGE for, checked against the leader's log
    /// before the reset policy moves them ([`Refused`]); at most one per owned partition.
    refused: BTreeMap<PartitionKey, Refused>,
    /// The last round read records: the next asks without a long poll, so one idle leader
    /// holding its poll does not delay the records the others have (a round waits for every
    /// answer). A round that reads nothing makes the next one wait again.
    flowing: bool,
}

/// A position a broker refused with OFFSET_OUT_OF_RANGE. Kafka's clients reset it by the
/// policy at once; but the broker that refused may be a deposed leader that does not know it
/// yet, whose own retention passed the position while the new leader still holds the records
/// (each copy deletes by retention on its own schedule). A reset to the earliest offset would
/// then read those records again, a poll going back. So the consumer first asks the current
/// leader (metadata refreshed) for its earliest and latest offsets and keeps the position when
/// it lies between them. A position kept once and refused again is reset: the check runs once
/// per refusal, so a broker that refuses what it lists cannot hold the consumer in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Refused; the check comes with the next resolve.
    Pending(i64),
    /// Kept after the check; cleared by the next answer without an error.
    Kept(i64),
}

/// A follower a leader told this consumer to read a partition from. As in Kafka's Java client
/// the lease lasts `metadata.max.age.ms`; any error from the replica ends it at once and the
/// consumer goes back to the leader (an OFFSET_OUT_OF_RANGE there means a lagging follower, not
/// a position to reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadReplica {
    /// The follower.
    broker: BrokerId,
    /// When the consumer asks the leader again.
    until: tokio::time::Instant,
}

impl Consumer {
    /// A consumer; connects lazily.
    pub fn new(client: ClientConfig, config: ConsumerConfig) -> Result<Consumer> {
        client.validate()?;
        if config.fetch_max_bytes <= 0 || config.heartbeat_interval_ms == 0 {
            return Err(ClientError::Config(
                "fetch_max_bytes and heartbeat_interval_ms must be > 0".into(),
            ));
        }
        let group = config.group_id.clone().map(GroupMember::new);
        Ok(Consumer {
            pool: ConnectionPool::new(client),
            metadata: MetadataCache::new(),
            config,
            positions: BTreeMap::new(),
            subscription: None,
            group,
            heartbeat_last: None,
            log_starts_seen: BTreeMap::new(),
            read_replicas: BTreeMap::new(),
            refused: BTreeMap::new(),
            flowing: false,
        })
    }

    /// The highest log start offset a leader of `topic`/`partition` reported to this consumer,
    /// if any: records below it may have been deleted by retention before anyone read them.
    pub fn log_start_seen(&self, topic: &str, partition: i32) -> Option<i64> {
        self.log_starts_seen
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Notes a log start a leader reported (negative: not reported).
    fn saw_log_start(&mut self, key: PartitionKey, log_start: i64) {
        if log_start >= 0 {
            let seen = self.log_starts_seen.entry(key).or_insert(log_start);
            *seen = (*seen).max(log_start);
            assert!(*seen >= log_start, "the highest start seen only grows");
        }
    }

    /// Owns exactly `partitions` (no group membership); positions resolve on the next poll.
    pub fn assign(&mut self, partitions: Vec<(String, i32)>) {
        assert!(
            partitions.len() <= ASSIGNED_PARTITIONS_MAX,
            "too many partitions"
        );
        self.subscription = None;
        let previous = std::mem::take(&mut self.positions);
        for key in partitions {
            let position = previous.get(&key).copied().flatten();
            self.positions.insert(key, position);
        }
        let positions = &self.positions;
        self.refused.retain(|key, _| positions.contains_key(key));
    }

    /// Joins the group (on the next poll) subscribed to `topics`.
    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        let Some(group) = self.group.as_mut() else {
            return Err(ClientError::Config("subscribe needs a group_id".into()));
        };
        group.mark_rejoin(false);
        self.subscription = Some(topics);
        self.positions.clear();
        self.refused.clear();
        Ok(())
    }

    /// Moves the position of an owned partition.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        assert!(offset >= 0, "offsets are non-negative");
        let key = (topic.to_string(), partition);
        match self.positions.get_mut(&key) {
            Some(position) => {
                *position = Some(offset);
                self.refused.remove(&key);
                Ok(())
            }
            None => Err(ClientError::NotAssigned {
                topic: topic.to_string(),
                partition,
            }),
        }
    }

    /// The owned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset to read from an owned partition, if resolved.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .get(&(topic.to_string(), partition))
            .copied()
            .flatten()
    }

    /// The group membership, for inspection.
    pub fn group(&self) -> Option<&GroupMember> {
        self.group.as_ref()
    }

    /// Reads the next records, waiting at most about `timeout_ms` for some to arrive.
    pub async fn poll(&mut self, timeout_ms: u64) -> Result<Vec<ConsumerRecord>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            self.maintain_group().await?;
            self.resolve_positions().await?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait_ms = u64::try_from(remaining.as_millis())
                .unwrap_or(u64::MAX)
                .min(self.config.fetch_max_wait_ms);
            let records = if self.positions.is_empty() {
                tokio::time::sleep(Duration::from_millis(wait_ms.max(1))).await;
                Vec::new()
            } else {
                self.fetch_round(wait_ms).await?
            };
            if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// Commits the current positions of owned partitions.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let mut offsets = Offsets::new();
        for ((topic, partition), position) in &self.positions {
            if let Some(offset) = position {
                offsets
                    .entry(topic.clone())
                    .or_default()
                    .insert(*partition, *offset);
            }
        }
        let Some(group) = self.group.as_mut() else {
            return Err(ClientError::Config("commit needs a group_id".into()));
        };
        if offsets.is_empty() {
            return Ok(());
        }
        group.commit(&self.pool, &self.metadata, &offsets).await
    }

    /// The group's committed offset for a partition, if any.
    pub async fn committed(&mut self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let Some(group) = self.group.as_mut() else {
            return Err(ClientError::Config("committed needs a group_id".into()));
        };
        let wanted = BTreeMap::from([(topic.to_string(), vec![partition])]);
        let committed = group
            .fetch_committed(&self.pool, &self.metadata, &wanted)
            .await?;
        Ok(committed
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied())
    }

    /// Leaves the group (if a member) and drops connections.
    pub async fn close(&mut self) -> Result<()> {
        let outcome = match self.group.as_mut() {
            Some(group) if self.subscription.is_some() => {
                group.leave(&self.pool, &self.metadata).await
            }
            _ => Ok(()),
        };
        self.positions.clear();
        self.subscription = None;
        self.pool.close_all();
        outcome
    }

    /// Joins when needed and heartbeats when due.
    async fn maintain_group(&mut self) -> Result<()> {
        let (Some(topics), Some(group)) = (self.subscription.clone(), self.group.as_mut()) else {
            return Ok(());
        };
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        if group.joined
            && self
                .heartbeat_last
                .is_some_and(|at| at.elapsed() >= interval)
        {
            self.heartbeat_last = Some(tokio::time::Instant::now());
            if let Err(error) = group.heartbeat(&self.pool, &self.metadata).await {
                tracing::debug!(%error, "heartbeat failed");
                if group.joined && !error.is_retriable() {
                    return Err(error);
                }
            }
        }
        if group.joined {
            return Ok(());
        }
        self.positions.clear();
        self.refused.clear();
        let timeouts = GroupTimeouts {
            session_timeout_ms: self.config.session_timeout_ms,
            rebalance_timeout_ms: self.config.rebalance_timeout_ms,
        };
        let outcome = group
            .join(&self.pool, &self.metadata, &topics, timeouts)
            .await?;
        self.heartbeat_last = Some(tokio::time::Instant::now());
        for (topic, partitions) in outcome.assigned {
            for partition in partitions {
                self.positions.insert((topic.clone(), partition), None);
            }
        }
        assert!(
            self.positions.len() <= ASSIGNED_PARTITIONS_MAX,
            "assignment bounded"
        );
        Ok(())
    }

    /// Gives every owned partition a position: the committed offset, else the reset policy.
    async fn resolve_positions(&mut self) -> Result<()> {
        let unresolved: Vec<PartitionKey> = self
            .positions
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if unresolved.is_empty() {
            return Ok(());
        }
        if let Some(group) = self.group.as_mut() {
            let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in &unresolved {
                wanted.entry(topic.clone()).or_default().push(*partition);
            }
            let committed = group
                .fetch_committed(&self.pool, &self.metadata, &wanted)
                .await?;
            for (topic, partitions) in committed {
                for (partition, offset) in partitions {
                    if let Some(position) = self.positions.get_mut(&(topic.clone(), partition)) {
                        *position = Some(offset);
                    }
                }
            }
        }
        for key in unresolved {
            if self.positions.get(&key).copied().flatten().is_none() {
                if let Some(Refused::Pending(refused)) = self.refused.get(&key).copied() {
                    if self.leader_still_holds(&key, refused).await? {
                        self.refused.insert(key.clone(), Refused::Kept(refused));
                        self.positions.insert(key, Some(refused));
                        continue;
                    }
                    self.refused.remove(&key);
                }
                let offset = self.reset_offset(&key.0, key.1).await?;
                if self.config.auto_offset_reset == OffsetReset::Earliest {
                    self.saw_log_start(key.clone(), offset);
                }
                self.positions.insert(key, Some(offset));
            }
        }
        Ok(())
    }

    /// Whether the current leader (the topic's metadata refreshed first) lists `refused` between
    /// its earliest and latest offsets: see [`Refused`].
    async fn leader_still_holds(&mut self, key: &PartitionKey, refused: i64) -> Result<bool> {
        let (topic, partition) = (key.0.as_str(), key.1);
        self.metadata
            .refresh(&self.pool, Some(&[topic.to_string()]))
            .await
            .ok();
        let earliest = self
            .list_offset(topic, partition, OffsetReset::Earliest.timestamp())
            .await?;
        let latest = self
            .list_offset(topic, partition, OffsetReset::Latest.timestamp())
            .await?;
        let holds = (earliest..=latest).contains(&refused);
        tracing::debug!(
            topic,
            partition,
            refused,
            earliest,
            latest,
            holds,
            "a refused position checked with the leader"
        );
        Ok(holds)
    }

    /// ListOffsets on the leader for the reset policy's end of the log.
    async fn reset_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let timestamp = self.config.auto_offset_reset.timestamp();
        self.list_offset(topic, partition, timestamp).await
    }

    /// ListOffsets on the leader: the offset for `timestamp` (-2 earliest, -1 latest).
    async fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
        let addr = self.leader_addr(topic, partition).await?;
        let topic_name = topic.to_string();
        let build = move |_version: i16| {
            let request = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(StrBytes::from_string(topic_name).into())
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp)])]);
            Ok(RequestKind::ListOffsets(request))
        };
        let timeout_ms = self.pool.config().request_timeout_ms;
        let response = self
            .pool
            .call(&addr, ApiKey::ListOffsets, timeout_ms, build)
            .await;
        let response = self.refresh_on_error(topic, response).await?;
        let response = expect_response!(response, ListOffsets)?;
        let answer = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                ClientError::Protocol("ListOffsets answer lacks the partition".into())
            })?;
        if answer.error_code != 0 {
            let error = ClientError::kafka("ListOffsets", answer.error_code);
            return self.refresh_on_error::<i64>(topic, Err(error)).await;
        }
        if answer.offset < 0 {
            return Err(ClientError::Protocol(format!(
                "ListOffsets offset {}",
                answer.offset
            )));
        }
        Ok(answer.offset)
    }

    /// One Fetch per leader for every owned partition it leads.
    async fn fetch_round(&mut self, wait_ms: u64) -> Result<Vec<ConsumerRecord>> {
        let mut by_leader: BTreeMap<String, Vec<FetchTarget>> = BTreeMap::new();
        let cluster = if self
            .metadata
            .is_stale(self.pool.config().metadata_refresh_ms)
        {
            self.refresh_owned_topics().await?
        } else {
            self.metadata.snapshot()
        };
        let mut leaderless = false;
        let now = tokio::time::Instant::now();
        self.read_replicas.retain(|_, replica| replica.until > now);
        for ((topic, partition), position) in &self.positions {
            let offset = position.expect("positions are resolved before fetching");
            match cluster.leader_addr(topic, *partition) {
                Ok((_, leader_addr)) => {
                    let leader_epoch = cluster.topics[topic].partitions[partition].leader_epoch;
                    // A leased read replica the metadata still lists, else the leader.
                    let replica = self
                        .read_replicas
                        .get(&(topic.clone(), *partition))
                        .and_then(|r| Some((r.broker, cluster.brokers.get(&r.broker)?.clone())));
                    let addr = replica
                        .as_ref()
                        .map_or(leader_addr, |(_, addr)| addr.clone());
                    by_leader.entry(addr).or_default().push(FetchTarget {
                        topic: topic.clone(),
                        partition: *partition,
                        offset,
                        leader_epoch,
                        read_replica: replica.map(|(broker, _)| broker),
                    })
                }
                Err(_) => leaderless = true,
            }
        }
        if leaderless {
            self.refresh_owned_topics().await.ok();
        }
        // Every leader is asked at once, as Kafka's clients do, and without a long poll while
        // records flow: an idle leader holds its poll for `wait_ms`, and asked one after
        // another, or waited for in every round, it slowed reading the others to a batch per
        // partition per `wait_ms` (seed 25241: with small segments each Fetch brings one batch,
        // and a final read fell 779 values short of the end). The answers are taken in address
        // order, so a round's effect does not depend on which arrives first.
        let requests: Vec<(String, Vec<FetchTarget>)> = by_leader.into_iter().collect();
        let wait_ms = if self.flowing { 0 } else { wait_ms };
        let answers = futures_util::future::join_all(
            requests
                .iter()
                .map(|(addr, partitions)| self.send_fetch(addr, partitions, wait_ms)),
        )
        .await;
        let mut records = Vec::new();
        let mut replica_unknown = false;
        for ((addr, partitions), answer) in requests.into_iter().zip(answers) {
            let fetched = match answer {
                Ok(response) => self.take_fetched(&partitions, response).await,
                Err(error) => Err(error),
            };
            match fetched {
                Ok(fetched) => {
                    replica_unknown |= fetched.replica_unknown;
                    records.extend(fetched.records);
                }
                Err(error) if error.is_retriable() => {
                    tracing::debug!(addr, %error, "fetch failed");
                    // A replica that cannot be reached: back to the leaders.
                    for target in partitions.iter().filter(|t| t.read_replica.is_some()) {
                        self.read_replicas
                            .remove(&(target.topic.clone(), target.partition));
                    }
                    self.refresh_owned_topics().await.ok();
                }
                Err(error) => return Err(error),
            }
        }
        self.flowing = !records.is_empty();
        // A redirect to a replica the metadata does not list yet backs off, as librdkafka's
        // REPLICA_NOT_AVAILABLE does, instead of asking the leader again at once.
        if by_leader_is_empty(&records, leaderless || replica_unknown) {
            tokio::time::sleep(Duration::from_millis(self.pool.config().retry_backoff_ms)).await;
        }
        Ok(records)
    }

    /// Sends one Fetch for `partitions` to `addr` and waits for its answer; the answer changes
    /// nothing until [`Consumer::take_fetched`] reads it.
    async fn send_fetch(
        &self,
        addr: &str,
        partitions: &[FetchTarget],
        wait_ms: u64,
    ) -> Result<FetchResponse> {
        assert!(!partitions.is_empty(), "a fetch names partitions");
        let max_bytes = self.config.fetch_max_bytes;
        let targets = partitions.to_vec();
        let rack = self.config.client_rack.clone().unwrap_or_default();
        let wait_i32 = i32::try_from(wait_ms).unwrap_or(i32::MAX);
        let build = move |version: i16| {
            let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
            for target in targets {
                let mut partition = FetchPartition::default()
                    .with_partition(target.partition)
                    .with_fetch_offset(target.offset)
                    .with_partition_max_bytes(max_bytes);
                // KIP-320: a deposed leader answers FENCED_LEADER_EPOCH instead of serving.
                if version >= 9 {
                    partition = partition.with_current_leader_epoch(target.leader_epoch);
                }
                topics.entry(target.topic).or_default().push(partition);
            }
            let topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(StrBytes::from_string(topic).into())
                        .with_partitions(partitions)
                })
                .collect();
            let mut request = FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(wait_i32)
                .with_min_bytes(1)
                .with_max_bytes(max_bytes)
                .with_isolation_level(0)
                .with_topics(topics);
            // KIP-392: the rack field exists from v11 on; with it a follower may serve us.
            if version >= 11 {
                request = request.with_rack_id(StrBytes::from_string(rack.clone()));
            }
            Ok(RequestKind::Fetch(request))
        };
        let timeout_ms = self.pool.config().request_timeout_ms + wait_ms;
        let response = self
            .pool
            .call(addr, ApiKey::Fetch, timeout_ms, build)
            .await?;
        expect_response!(response, Fetch)
    }

    /// Reads one leader's Fetch answer: records, positions, read-replica leases, resets.
    async fn take_fetched(
        &mut self,
        partitions: &[FetchTarget],
        response: FetchResponse,
    ) -> Result<Fetched> {
        if response.error_code != 0 {
            return Err(ClientError::kafka("Fetch", response.error_code));
        }
        let mut records = Vec::new();
        let mut replica_unknown = false;
        let known_brokers = self.metadata.snapshot().brokers;
        for topic in &response.responses {
            let name = topic.topic.as_str().to_string();
            for answer in &topic.partitions {
                let key = (name.clone(), answer.partition_index);
                let Some(Some(position)) = self.positions.get(&key).copied() else {
                    continue;
                };
                self.saw_log_start(key.clone(), answer.log_start_offset);
                let via_replica = partitions.iter().any(|t| {
                    t.topic == name
                        && t.partition == answer.partition_index
                        && t.read_replica.is_some()
                });
                if answer.error_code != 0 && via_replica {
                    // Back to the leader, which answers for the position (Kafka's clients
                    // clear the preferred replica on every error; OFFSET_OUT_OF_RANGE from a
                    // lagging follower resets nothing).
                    tracing::debug!(topic = %name, partition = answer.partition_index,
                        code = answer.error_code, "read replica refused: back to the leader");
                    self.read_replicas.remove(&key);
                    continue;
                }
                let preferred = BrokerId(answer.preferred_read_replica.0);
                if answer.error_code == 0 && preferred.0 >= 0 {
                    if known_brokers.contains_key(&preferred) {
                        let lease = Duration::from_millis(self.pool.config().metadata_refresh_ms);
                        let until = tokio::time::Instant::now() + lease;
                        self.read_replicas.insert(
                            key,
                            ReadReplica {
                                broker: preferred,
                                until,
                            },
                        );
                    } else {
                        tracing::debug!(topic = %name, %preferred, "preferred read replica unknown");
                        self.metadata.refresh(&self.pool, None).await.ok();
                        replica_unknown = true;
                    }
                    continue;
                }
                match answer.error_code {
                    0 => {
                        // The position serves: a position kept after a refusal is settled.
                        self.refused.remove(&key);
                    }
                    code::OFFSET_OUT_OF_RANGE => {
                        // Checked with the leader before the reset (`Refused`), unless this
                        // position was kept by such a check already.
                        match self.refused.remove(&key) {
                            Some(Refused::Kept(kept)) if kept == position => {}
                            _ => {
                                self.refused.insert(key.clone(), Refused::Pending(position));
                            }
                        }
                        self.positions.insert(key, None);
                        continue;
                    }
                    other => {
                        tracing::debug!(topic = %name, partition = answer.partition_index, other, "fetch partition error");
                        self.metadata
                            .refresh(&self.pool, Some(std::slice::from_ref(&name)))
                            .await
                            .ok();
                        continue;
                    }
                }
                let Some(bytes) = &answer.records else {
                    continue;
                };
                let decoded = decode_fetched(bytes, position)?;
                if let Some(last) = decoded.last() {
                    assert!(last.offset >= position, "never move backwards");
                    self.positions.insert(key, Some(last.offset + 1));
                }
                records.extend(decoded.into_iter().map(|r| ConsumerRecord {
                    topic: name.clone(),
                    partition: answer.partition_index,
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                }));
            }
        }
        Ok(Fetched {
            records,
            replica_unknown,
        })
    }

    async fn leader_addr(&mut self, topic: &str, partition: i32) -> Result<String> {
        if let Ok((_, addr)) = self.metadata.snapshot().leader_addr(topic, partition) {
            return Ok(addr);
        }
        let fresh = self
            .metadata
            .refresh(&self.pool, Some(&[topic.to_string()]))
            .await?;
        Ok(fresh.leader_addr(topic, partition)?.1)
    }

    async fn refresh_owned_topics(&mut self) -> Result<crate::metadata::ClusterMetadata> {
        let mut topics: Vec<String> = self.positions.keys().map(|(t, _)| t.clone()).collect();
        topics.dedup();
        self.metadata.refresh(&self.pool, Some(&topics)).await
    }

    async fn refresh_on_error<T>(&mut self, topic: &str, outcome: Result<T>) -> Result<T> {
        if let Err(error) = &outcome {
            if error.needs_metadata_refresh() {
                self.metadata
                    .refresh(&self.pool, Some(&[topic.to_string()]))
                    .await
                    .ok();
            }
        }
        outcome
    }
}

/// One owned partition to fetch, with the leader epoch the metadata gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FetchTarget {
    /// Topic.
    topic: String,
    /// Partition.
    partition: i32,
    /// Offset to read from.
    offset: i64,
    /// Leader epoch from the metadata (-1 when unknown: no fencing).
    leader_epoch: i32,
    /// The leased preferred read replica this fetch goes to, `None`: the leader.
    read_replica: Option<BrokerId>,
}

/// What one Fetch brought.
#[derive(Debug, Default)]
struct Fetched {
    /// The records, in partition order.
    records: Vec<ConsumerRecord>,
    /// A leader named a preferred read replica the metadata does not list (yet).
    replica_unknown: bool,
}

/// True when a round read nothing because leaders (or named read replicas) were missing: back
/// off before the next.
fn by_leader_is_empty(records: &[ConsumerRecord], missing: bool) -> bool {
    records.is_empty() && missing
}
