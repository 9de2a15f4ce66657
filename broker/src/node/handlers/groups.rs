//! The group coordinator service: the async driver of [`crate::group::GroupCoordinator`] (see its
//! runbook), with committed offsets made durable in the replicated, compacted `__consumer_offsets`
//! topic through the same partition code as any produce (acks=all).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, RequestKind, ResponseKind,
};
use log_core::batch::split_batches;
use log_core::BatchBuilder;
use replication::Acks;
use tokio::sync::oneshot;
use wire::TopicPartition;

use super::super::shared::Shared;
use crate::group::{ClientInfo, GroupConfig, GroupCoordinator, GroupEffect, OffsetRecord};
use crate::producer_state::ProducerIdAllocator;
use crate::protocol::connection::Refusal;
use crate::runtime;

pub use crate::group::OFFSETS_TOPIC;

/// Partitions of `__consumer_offsets` (Kafka's `offsets.topic.num.partitions` is 50; a small
/// cluster is better served by few). Fixed for the cluster's life.
pub const OFFSETS_PARTITIONS: i32 = 4;
/// How often the coordinator ticks at the latest, and checks which offsets partitions it leads.
/// Deadlines (session expiry, rebalance completion) are ticked at their own time besides.
const TICK_MS: u64 = 100;
/// Longest a JoinGroup or SyncGroup waits for its rebalance before the broker gives up on it.
const GROUP_WAIT_MS_MAX: u64 = 60_000;
/// Bytes read per step when loading an offsets partition.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Group membership and offsets for the groups this broker coordinates.
pub struct GroupService {
    /// The node.
    shared: Arc<Shared>,
    /// Producer ids for InitProducerId, unique per broker incarnation.
    producer_ids: Mutex<ProducerIdAllocator>,
    /// The sans-IO coordinator.
    coordinator: Mutex<GroupCoordinator>,
    /// Requests waiting for their answer, by ticket.
    waiting: Mutex<BTreeMap<u64, oneshot::Sender<ResponseKind>>>,
    /// The next ticket.
    ticket_next: std::sync::atomic::AtomicU64,
    /// Offsets partitions loaded (led) here.
    loaded: Mutex<BTreeSet<i32>>,
    /// The coordinator's earliest announced deadline, which the tick task sleeps until.
    timer: Arc<GroupTimer>,
}

/// The coordinator's one timer (its runbook: move it to the earliest `SetTimer` seen; tick when
/// it fires). A session expires at its deadline, not up to a tick period after it: librdkafka's
/// 0081_admin deletes a group of static members one session timeout after their last commit,
/// as Kafka's heartbeat purgatory allows, and a 100 ms tick answered NON_EMPTY_GROUP.
#[derive(Debug, Default)]
struct GroupTimer {
    /// The earliest deadline announced since the last tick, in `runtime::monotonic_ms`.
    at_ms: Mutex<Option<u64>>,
    /// Wakes the tick task when an earlier deadline arrives.
    moved: tokio::sync::Notify,
}

impl GroupTimer {
    fn at_ms(&self) -> MutexGuard<'_, Option<u64>> {
        self.at_ms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the timer to `at_ms` if that is earlier.
    fn set(&self, at_ms: u64) {
        let mut current = self.at_ms();
        if current.is_none_or(|current| at_ms < current) {
            *current = Some(at_ms);
            self.moved.notify_one();
        }
    }
}

impl GroupService {
    /// The service of this broker; `incarnation` makes producer and member ids unique across
    /// restarts. Starts the tick task.
    pub fn start(shared: Arc<Shared>, incarnation: u64) -> Arc<GroupService> {
        let producer_ids = ProducerIdAllocator::new(shared.broker_id, incarnation);
        let config = GroupConfig {
            offsets_partitions: OFFSETS_PARTITIONS,
            initial_rebalance_delay_ms: shared.config.timing.group_initial_rebalance_delay_ms,
            member_id_salt: incarnation ^ u64::try_from(shared.broker_id.0).unwrap_or(0),
            ..GroupConfig::default()
        };
        let service = Arc::new(GroupService {
            shared,
            producer_ids: Mutex::new(producer_ids),
            coordinator: Mutex::new(GroupCoordinator::new(config)),
            waiting: Mutex::new(BTreeMap::new()),
            ticket_next: std::sync::atomic::AtomicU64::new(1),
            loaded: Mutex::new(BTreeSet::new()),
            timer: Arc::new(GroupTimer::default()),
        });
        tokio::spawn(tick_loop(
            Arc::downgrade(&service),
            Arc::clone(&service.timer),
        ));
        service
    }

    fn coordinator(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.coordinator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh producer id and epoch, or none once this incarnation's ids are used up.
    pub fn allocate_producer_id(&self) -> Option<(i64, i16)> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.next().ok()
    }

    /// The broker coordinating `group` (the leader of its offsets partition) as (id, host, port),
    /// creating the offsets topic on first use; or the Kafka error code to answer.
    pub async fn coordinator_of(
        &self,
        group: &str,
        listener: &str,
    ) -> Result<(i32, String, i32), i16> {
        let shared = &self.shared;
        if !shared.image().topics().contains_key(OFFSETS_TOPIC) {
            let brokers = shared.image().brokers_unfenced().len();
            let replication = i32::try_from(brokers.clamp(1, 3)).expect("small");
            // Not below min ISR: topics may be (Kafka allows it), but the offsets topic is
            // created once, so it waits for enough brokers rather than stay under-replicated.
            if replication < shared.config.topics.min_insync_replicas {
                return Err(E::CoordinatorNotAvailable.code());
            }
            let spec = super::metadata::TopicSpec::sized(OFFSETS_PARTITIONS, replication);
            match super::metadata::create_topic(shared, OFFSETS_TOPIC, spec).await {
                Ok(_) => {}
                Err(refusal) if refusal.code == E::TopicAlreadyExists.code() => {}
                Err(_) => return Err(E::CoordinatorNotAvailable.code()),
            }
        }
        let image = shared.image();
        let topic = image
            .topics()
            .get(OFFSETS_TOPIC)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        let partitions = i32::try_from(topic.partitions.len()).expect("bounded");
        let index = crate::group::offsets_partition(group, partitions);
        let state = &topic.partitions[usize::try_from(index).expect("non-negative")];
        let leader = state.leader.ok_or(E::CoordinatorNotAvailable.code())?;
        let registration = image
            .brokers()
            .get(&leader)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        // Kafka answers with the coordinator's endpoint on the listener the request came in on.
        let endpoint = super::metadata::endpoint(registration, listener)
            .ok_or(E::CoordinatorNotAvailable.code())?;
        Ok((leader.0, endpoint.host.clone(), i32::from(endpoint.port)))
    }

    /// The group APIs. `client_id` is the request header's, `client_host` the connection's peer
    /// as Kafka writes it ("/127.0.0.1").
    pub async fn handle(
        &self,
        body: RequestKind,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Result<ResponseKind, Refusal> {
        let now = runtime::monotonic_ms();
        let client = ClientInfo {
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
        };
        let (ticket, receiver) = self.ticket();
        let effects = match body {
            RequestKind::JoinGroup(r) => self.coordinator().join(now, ticket, &client, &r, version),
            RequestKind::SyncGroup(r) => self.coordinator().sync(now, ticket, &r, version),
            RequestKind::Heartbeat(r) => self.coordinator().heartbeat(now, ticket, &r, version),
            RequestKind::LeaveGroup(r) => self.coordinator().leave(now, ticket, &r, version),
            RequestKind::DescribeGroups(r) => {
                return Ok(ResponseKind::DescribeGroups(
                    self.coordinator().describe(&r, version),
                ))
            }
            RequestKind::ListGroups(r) => {
                return Ok(ResponseKind::ListGroups(
                    self.coordinator().list(&r, version),
                ))
            }
            RequestKind::OffsetFetch(r) => {
                return Ok(ResponseKind::OffsetFetch(
                    self.coordinator().fetch_offsets(&r, version),
                ))
            }
            RequestKind::OffsetCommit(r) => {
                return Ok(ResponseKind::OffsetCommit(
                    self.commit_known(now, r, version).await,
                ))
            }
            RequestKind::DeleteGroups(r) => {
                return Ok(ResponseKind::DeleteGroups(self.delete_groups(r).await))
            }
            RequestKind::OffsetDelete(r) => {
                return Ok(ResponseKind::OffsetDelete(self.delete_offsets(r).await))
            }
            _ => return Err(Refusal::NotImplemented),
        };
        self.apply(effects);
        match tokio::time::timeout(Duration::from_millis(GROUP_WAIT_MS_MAX), receiver).await {
            Ok(Ok(response)) => Ok(response),
            _ => {
                self.waiting_locked().remove(&ticket);
                Err(Refusal::Invalid {
                    reason: "group request not answered in time".into(),
                })
            }
        }
    }

    fn waiting_locked(&self) -> MutexGuard<'_, BTreeMap<u64, oneshot::Sender<ResponseKind>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh ticket and the receiver its answer arrives on.
    fn ticket(&self) -> (u64, oneshot::Receiver<ResponseKind>) {
        let ticket = self
            .ticket_next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiting_locked().insert(ticket, sender);
        (ticket, receiver)
    }

    /// Carries out the coordinator's effects: answers go to their waiting requests; deadlines
    /// move the tick task's timer.
    fn apply(&self, effects: Vec<GroupEffect>) {
        for effect in effects {
            match effect {
                GroupEffect::Respond { ticket, response } => {
                    if let Some(sender) = self.waiting_locked().remove(&ticket) {
                        // The client may have gone; nothing to tell.
                        let _gone = sender.send(response);
                    }
                }
                GroupEffect::SetTimer { at_ms } => self.timer.set(at_ms),
            }
        }
        self.coordinator().check_invariants();
    }

    /// OffsetCommit as Kafka's `handleOffsetCommitRequest`: partitions the metadata does not
    /// know get UNKNOWN_TOPIC_OR_PARTITION and are not stored; the rest are committed.
    async fn commit_known(
        &self,
        now: u64,
        mut request: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let image = self.shared.image();
        let known = |topic: &str, partition: i32| {
            image
                .partition(&TopicPartition::new(topic, partition))
                .is_some()
        };
        let original = request.topics.clone();
        for topic in &mut request.topics {
            let name = topic.name.0.to_string();
            topic.partitions.retain(|p| known(&name, p.partition_index));
        }
        request.topics.retain(|t| !t.partitions.is_empty());
        let unknown = original.iter().map(|t| t.partitions.len()).sum::<usize>()
            - request
                .topics
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>();
        if unknown == 0 {
            return self.commit(now, &request, version).await;
        }
        let committed = if request.topics.is_empty() {
            OffsetCommitResponse::default()
        } else {
            self.commit(now, &request, version).await
        };
        let mut codes = BTreeMap::new();
        for topic in &committed.topics {
            for partition in &topic.partitions {
                let key = (topic.name.0.to_string(), partition.partition_index);
                codes.insert(key, partition.error_code);
            }
        }
        let topics = original
            .iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let partitions = topic.partitions.iter().map(|p| {
                    let code = codes
                        .get(&(name.clone(), p.partition_index))
                        .copied()
                        .unwrap_or(E::UnknownTopicOrPartition.code());
                    (p.partition_index, code)
                });
                crate::group::commit_topic(&topic.name, partitions)
            })
            .collect();
        committed.with_topics(topics)
    }

    /// OffsetCommit: validate, append the records to the group's offsets partition with
    /// acks=all, then apply them and answer.
    async fn commit(
        &self,
        now: u64,
        request: &kafka_protocol::messages::OffsetCommitRequest,
        version: i16,
    ) -> kafka_protocol::messages::OffsetCommitResponse {
        let plan = self.coordinator().commit_offsets(now, request, version);
        if plan.records.is_empty() {
            return plan.response;
        }
        match self
            .append_records(plan.offsets_partition, &plan.records)
            .await
        {
            Ok(base_offset) => {
                self.coordinator()
                    .offsets_committed(base_offset, plan.records.clone());
                plan.response
            }
            Err(code) => plan.failed(code),
        }
    }

    /// Appends offset records (commits or tombstones) to offsets partition `index` with
    /// acks=all. The refusal is the coordinator's code for the client: NOT_COORDINATOR,
    /// REQUEST_TIMED_OUT or COORDINATOR_NOT_AVAILABLE.
    async fn append_records(&self, index: i32, records: &[OffsetRecord]) -> Result<i64, i16> {
        assert!(!records.is_empty(), "nothing to append is answered before");
        let tp = TopicPartition::new(OFFSETS_TOPIC, index);
        let Some(partition) = self.shared.partition(&tp) else {
            return Err(E::NotCoordinator.code());
        };
        let mut builder = BatchBuilder::new();
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            records.iter().map(OffsetRecord::encode).collect();
        for (key, value) in &encoded {
            builder.push(Some(key), value.as_deref(), runtime::wall_clock_ms(), &[]);
        }
        match partition.produce(builder.build(), Acks::All).await {
            Ok(base_offset) => Ok(base_offset.0),
            Err(error) => {
                tracing::info!(%tp, %error, "offset records not durable");
                Err(match error.error_code() {
                    c if c == E::NotLeaderOrFollower.code() => E::NotCoordinator.code(),
                    c if c == E::RequestTimedOut.code() => c,
                    _ => E::CoordinatorNotAvailable.code(),
                })
            }
        }
    }

    /// DeleteGroups: each group Empty and coordinated here loses its offsets (tombstones
    /// appended with acks=all) and is forgotten; Kafka's codes otherwise (GROUP_ID_NOT_FOUND,
    /// NON_EMPTY_GROUP, INVALID_GROUP_ID, NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS).
    async fn delete_groups(
        &self,
        request: kafka_protocol::messages::DeleteGroupsRequest,
    ) -> kafka_protocol::messages::DeleteGroupsResponse {
        use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group_id in &request.groups_names {
            let plan = self.coordinator().plan_group_deletion(&group_id.0);
            let code = match plan {
                Err(code) => code,
                Ok(plan) => {
                    let written = if plan.tombstones.is_empty() {
                        Ok(i64::MIN)
                    } else {
                        self.append_records(plan.offsets_partition, &plan.tombstones)
                            .await
                    };
                    match written {
                        Ok(base_offset) => {
                            self.coordinator()
                                .group_deleted(base_offset, plan, &group_id.0);
                            0
                        }
                        Err(code) => code,
                    }
                }
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(code),
            );
        }
        kafka_protocol::messages::DeleteGroupsResponse::default().with_results(results)
    }

    /// OffsetDelete: a group's offsets of the named partitions go (tombstones, acks=all),
    /// except those of topics its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC) and of
    /// partitions the metadata does not know (UNKNOWN_TOPIC_OR_PARTITION).
    async fn delete_offsets(
        &self,
        request: kafka_protocol::messages::OffsetDeleteRequest,
    ) -> kafka_protocol::messages::OffsetDeleteResponse {
        use kafka_protocol::messages::offset_delete_response::{
            OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
        };
        use kafka_protocol::messages::OffsetDeleteResponse;
        let image = self.shared.image();
        let requested: Vec<(String, i32)> = request
            .topics
            .iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partitions
                    .iter()
                    .map(move |p| (name.clone(), p.partition_index))
            })
            .collect();
        let known: Vec<bool> = requested
            .iter()
            .map(|(topic, partition)| {
                TopicPartition::try_new(topic, *partition)
                    .is_ok_and(|tp| image.partition(&tp).is_some())
            })
            .collect();
        let deletable: Vec<(String, i32)> = requested
            .iter()
            .zip(&known)
            .filter(|(_, known)| **known)
            .map(|(tp, _)| tp.clone())
            .collect();
        let planned = self
            .coordinator()
            .plan_offset_deletion(&request.group_id.0, &deletable);
        let (plan, codes) = match planned {
            Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
            Ok(planned) => planned,
        };
        let mut failure = None;
        if !plan.tombstones.is_empty() {
            match self
                .append_records(plan.offsets_partition, &plan.tombstones)
                .await
            {
                Ok(base_offset) => self
                    .coordinator()
                    .offsets_committed(base_offset, plan.tombstones),
                Err(code) => failure = Some(code),
            }
        }
        if let Some(code) = failure {
            return OffsetDeleteResponse::default().with_error_code(code);
        }
        let mut codes = codes.into_iter();
        let mut known = known.into_iter();
        let topics = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = if known.next().expect("one per partition") {
                            codes.next().expect("one per known partition")
                        } else {
                            E::UnknownTopicOrPartition.code()
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetDeleteResponse::default().with_topics(topics)
    }

    /// Loads offsets partitions this broker now leads and unloads the ones it stopped leading.
    fn follow_leadership(&self) {
        let mut led = BTreeSet::new();
        // Every 100 ms: the offsets topic's partitions only, not every hosted one.
        for partition in self.shared.partitions_of(OFFSETS_TOPIC) {
            if partition.status().is_leader {
                led.insert(partition.topic_partition().partition);
            }
        }
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for gone in loaded.difference(&led) {
            let effects = self.coordinator().unload(*gone);
            self.apply(effects);
            tracing::info!(partition = gone, "offsets partition unloaded");
        }
        for new in led.difference(&loaded) {
            self.load(*new);
        }
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = led;
    }

    /// Reads an offsets partition from its start and hands the records to the coordinator.
    fn load(&self, index: i32) {
        let tp = TopicPartition::new(OFFSETS_TOPIC, index);
        let Some(partition) = self.shared.partition(&tp) else {
            return;
        };
        let effects = self.coordinator().begin_loading(index);
        self.apply(effects);
        let mut records = Vec::new();
        let mut from = partition.status().log_start_offset;
        while let Ok(bytes) = partition.read_committed_or_appended(from, LOAD_READ_BYTES) {
            if bytes.is_empty() {
                break;
            }
            let mut next = from;
            for view in split_batches(&bytes).flatten() {
                next = view.header().next_offset();
                let Ok(decoded) = view.decode() else {
                    tracing::warn!(%tp, "skipping an offsets batch that does not decode");
                    continue;
                };
                for record in decoded.iter().flatten() {
                    if record.offset < from {
                        continue;
                    }
                    match OffsetRecord::decode(record.key.unwrap_or_default(), record.value) {
                        Ok(Some(decoded)) => records.push(decoded),
                        Ok(None) => {}
                        Err(error) => tracing::warn!(%tp, %error, "skipping an offsets record"),
                    }
                }
            }
            if next <= from {
                break;
            }
            from = next;
        }
        tracing::info!(%tp, records = records.len(), "offsets partition loaded");
        self.coordinator().load(index, records);
    }
}

/// Ticks the coordinator at its earliest deadline and at least every [`TICK_MS`], and follows
/// offsets-partition leadership, until the service is gone.
async fn tick_loop(service: std::sync::Weak<GroupService>, timer: Arc<GroupTimer>) {
    loop {
        let now = runtime::monotonic_ms();
        let deadline = timer.at_ms().map_or(TICK_MS, |at| at.saturating_sub(now));
        // At least 1 ms: a drifting simulated clock may wake just short of a deadline.
        let wait = Duration::from_millis(deadline.clamp(1, TICK_MS));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = timer.moved.notified() => continue,
        }
        let Some(service) = service.upgrade() else {
            return;
        };
        service.follow_leadership();
        // The tick announces the next deadline of every group again.
        *timer.at_ms() = None;
        let effects = service.coordinator().tick(runtime::monotonic_ms());
        service.apply(effects);
    }
}
