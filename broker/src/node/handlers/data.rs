//! The data path: Produce, Fetch (consumers and followers), ListOffsets, OffsetForLeaderEpoch,
//! DeleteRecords.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset as KEpochEnd, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId as KBroker, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use replication::{Acks, OffsetsForLeaderEpochRequest};
use wire::{BrokerId, LeaderEpoch, TopicPartition};

use super::super::config::ReplicaSelector;
use super::super::replica_selector::{self, RackedCandidate};
use super::super::replication_wire as rw;
use super::super::shared::Shared;
use crate::partition::{Partition, PartitionError};
use crate::protocol::request::AppendTurn;

/// Longest a produce waits for replication, whatever the client asks (below the connection's
/// own request timeout, so the client gets REQUEST_TIMED_OUT rather than a closed connection).
const PRODUCE_TIMEOUT_MS_MAX: u64 = 25_000;
/// Longest a fetch may be held waiting for data, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 5_000;

/// The refusal for a partition this broker does not host.
pub(super) fn not_hosted(shared: &Shared, tp: &TopicPartition) -> i16 {
    let image = shared.image();
    let known = image
        .topics()
        .get(&tp.topic)
        .is_some_and(|t| tp.partition >= 0 && (tp.partition as usize) < t.partitions.len());
    if known {
        E::NotLeaderOrFollower.code()
    } else {
        E::UnknownTopicOrPartition.code()
    }
}

/// The partition a client names, or UNKNOWN_TOPIC_OR_PARTITION for an illegal name or a negative
/// index: Kafka answers that (no such partition can be in its metadata) and keeps the connection.
fn client_partition(topic: &str, partition: i32) -> Result<TopicPartition, i16> {
    TopicPartition::try_new(topic, partition).map_err(|why| {
        tracing::debug!(topic, partition, %why, "request names no legal partition");
        E::UnknownTopicOrPartition.code()
    })
}

/// Produce: every partition's batch is appended here, in the request's order, before
/// `append_turn` is released (the connection's next Produce may then append); the waits for
/// replication run concurrently, and the answer waits for all of them.
pub async fn produce(
    shared: &Arc<Shared>,
    request: ProduceRequest,
    append_turn: Option<AppendTurn>,
) -> ProduceResponse {
    let acks = match request.acks {
        0 => Acks::None,
        1 => Acks::Leader,
        -1 => Acks::All,
        _ => return refuse_every_partition(request, E::InvalidRequiredAcks.code()),
    };
    let timeout = Duration::from_millis(
        u64::try_from(request.timeout_ms.max(1))
            .unwrap_or(1)
            .min(PRODUCE_TIMEOUT_MS_MAX),
    );
    let mut pending_topics = Vec::new();
    for topic in request.topic_data {
        let mut pending = Vec::new();
        for data in topic.partition_data {
            let bytes = data.records.map(|b| b.to_vec()).unwrap_or_default();
            shared
                .metrics
                .count("rill_produce_bytes_total", bytes.len() as u64);
            let task = client_partition(&topic.name.0, data.index).and_then(|tp| {
                match shared.partition(&tp) {
                    Some(partition) => {
                        // Started here, in request order (a connection's pipelined produces
                        // reach the log in order); only the wait runs on its own task.
                        let outcome = partition.begin_produce(bytes, acks);
                        Ok(tokio::spawn(async move {
                            // The client's own deadline (`timeout_ms`) bounds the wait for the HW too.
                            match tokio::time::timeout(timeout, outcome).await {
                                Ok(outcome) => outcome,
                                Err(_elapsed) => Err(replication::Error::RequestTimedOut.into()),
                            }
                        }))
                    }
                    None => match not_hosted(shared, &tp) {
                        // Kafka checks the payload's shape before leadership.
                        code if code == E::NotLeaderOrFollower.code()
                            && log_core::ingress::refused_before_leadership(&bytes) =>
                        {
                            Err(E::InvalidRecord.code())
                        }
                        code => Err(code),
                    },
                }
            });
            pending.push((data.index, task));
        }
        pending_topics.push((topic.name, pending));
    }
    // Every batch is in its log (or refused): the connection's next Produce may append.
    drop(append_turn);
    let mut topics = Vec::new();
    for (name, pending) in pending_topics {
        let mut responses = Vec::new();
        for (index, task) in pending {
            let mut record_errors = None;
            let (code, base_offset) = match task {
                Err(code) => (code, -1),
                Ok(handle) => match handle.await {
                    Ok(Ok(offset)) => (0, offset.0),
                    Ok(Err(error)) => {
                        shared.metrics.count("rill_produce_errors_total", 1);
                        record_errors = keyless_record_errors(&error);
                        (error.error_code(), -1)
                    }
                    Err(_panicked) => (E::UnknownServerError.code(), -1),
                },
            };
            let mut response = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(code)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if let Some((errors, message)) = record_errors {
                response = response
                    .with_record_errors(errors)
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            responses.push(response);
        }
        topics.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(responses),
        );
    }
    ProduceResponse::default().with_responses(topics)
}

/// Kafka's per-record errors (KIP-467) for keyless records refused by a compacted topic, with
/// Kafka's messages: librdkafka fails exactly those records with INVALID_RECORD and the rest of
/// the batch with `_INVALID_DIFFERENT_RECORD`, instead of retrying or failing all alike.
fn keyless_record_errors(
    error: &crate::partition::PartitionError,
) -> Option<(Vec<BatchIndexAndErrorMessage>, String)> {
    let crate::partition::PartitionError::Refused(log_core::BatchRefusal::KeylessInCompacted {
        records,
    }) = error
    else {
        return None;
    };
    let errors: Vec<BatchIndexAndErrorMessage> = records
        .iter()
        .map(|index| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i32::try_from(*index).unwrap_or(i32::MAX))
                .with_batch_index_error_message(Some(StrBytes::from_static_str(
                    "Compacted topic cannot accept message without key.",
                )))
        })
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total",
        errors.len()
    );
    assert!(!errors.is_empty(), "a keyless refusal names its records");
    Some((errors, message))
}

/// The answer to a produce refused as a whole (acks outside {-1, 0, 1}): Kafka's code on every
/// partition it named, nothing appended.
fn refuse_every_partition(request: ProduceRequest, code: i16) -> ProduceResponse {
    assert!(code != 0, "a refusal has an error code");
    let topics = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let responses = topic
                .partition_data
                .iter()
                .map(|data| {
                    PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(responses)
        })
        .collect();
    ProduceResponse::default().with_responses(topics)
}

/// Fetch: followers (replica id ≥ 0) through the replica core, consumers below the HW. A long
/// poll waits on every partition of the request at once and wakes on the first that moves.
/// `version` and `listener` (the connection's) decide, as in Kafka, whether a consumer may read
/// from a follower (Fetch v11+, KIP-392) and which preferred read replica a leader names.
pub async fn fetch(
    shared: &Arc<Shared>,
    request: FetchRequest,
    version: i16,
    listener: &str,
) -> FetchResponse {
    let wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.max(0))
            .unwrap_or(0)
            .min(FETCH_WAIT_MS_MAX),
    );
    let deadline = tokio::time::Instant::now() + wait;
    let fetcher = Fetcher::of(&request, version);
    let min_bytes = usize::try_from(request.min_bytes.max(1)).unwrap_or(1);
    if crate::runtime::buggify("fetch.read.slow") {
        // BUGGIFY: a slow read (a cold page cache): the fetch is served late.
        let delay = crate::runtime::jitter_ms(1, 300);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    // A follower reports its log start once per request, not per pass: two requests of one
    // follower (an old connection's and a new one's) reporting different starts each woke the
    // other's long poll on every pass, a livelock until both deadlines (seed 81).
    let mut resolved = resolve(shared, &request);
    if let Fetcher::Follower(replica_id) = &fetcher {
        note_replica_log_starts(&request, &resolved, *replica_id);
    }
    let mut passes = 0_u64;
    loop {
        passes += 1;
        if passes == LONG_POLL_PASSES_ALARM {
            buggify::alarm("fetch.long_poll_spinning");
            tracing::warn!(
                passes,
                ?fetcher,
                "a fetch's long poll was woken this often without answering"
            );
        }
        if passes > 1 {
            resolved = resolve(shared, &request);
        }
        // Armed before reading, so a move during or after the pass wakes the wait below.
        let mut moved: Vec<_> = resolved
            .iter()
            .flatten()
            .map(|partition| Box::pin(partition.progress().notified()))
            .collect();
        for notified in &mut moved {
            notified.as_mut().enable();
        }
        let (response, bytes) = fetch_once(shared, &request, &fetcher, listener, &resolved);
        let now = tokio::time::Instant::now();
        if bytes >= min_bytes || now >= deadline || must_answer_now(&response) {
            return answered(shared, response, bytes, passes);
        }
        if moved.is_empty() {
            tokio::time::sleep(deadline - now).await;
            continue;
        }
        let waited =
            tokio::time::timeout(deadline - now, futures_util::future::select_all(moved)).await;
        if waited.is_err() {
            // Nothing the fetch reads moved until its deadline: this pass's answer still holds.
            // Another pass would find the same at the cost of stepping every partition again,
            // which was half of what an idle broker following 1,000 partitions spent.
            return answered(shared, response, bytes, passes);
        }
    }
}

/// Counts a fetch's answer in the metrics and hands it back.
fn answered(shared: &Shared, response: FetchResponse, bytes: usize, passes: u64) -> FetchResponse {
    shared.metrics.count("rill_fetch_bytes_total", bytes as u64);
    if passes > 1 {
        shared
            .metrics
            .count("rill_fetch_long_poll_wakeups_total", passes - 1);
    }
    response
}

/// Passes of one fetch's long poll (each woken by a partition's progress) past which it is
/// reported as spinning: progress is bounded by appends, so a correct long poll stays far below.
const LONG_POLL_PASSES_ALARM: u64 = 10_000;

/// The log start a follower's fetch reports for each of its partitions hosted here (the leader
/// keeps the latest per replica, for DeleteRecords' low watermark).
fn note_replica_log_starts(
    request: &FetchRequest,
    resolved: &[Result<Arc<Partition>, i16>],
    replica_id: i32,
) {
    let fetches = request
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter());
    for (fetch, partition) in fetches.zip(resolved) {
        if let Ok(partition) = partition {
            partition
                .note_replica_log_start(BrokerId(replica_id), wire::Offset(fetch.log_start_offset));
        }
    }
}

/// Who sent a fetch, as Kafka's `FetchParams` tells them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fetcher {
    /// A follower broker (replica id ≥ 0), through the replica core.
    Follower(i32),
    /// A consumer. `rack` is Kafka's client metadata, sent from Fetch v11 on (KIP-392): with it
    /// a consumer may read from a follower and be given a preferred read replica; without it
    /// (older versions) only the leader serves it (Kafka's `fetchOnlyLeader`).
    Consumer {
        /// The client's `client.rack` ("" when unset); `None` below v11.
        rack: Option<String>,
    },
}

impl Fetcher {
    fn of(request: &FetchRequest, version: i16) -> Fetcher {
        if request.replica_id.0 >= 0 {
            return Fetcher::Follower(request.replica_id.0);
        }
        let rack = (version >= 11).then(|| request.rack_id.to_string());
        Fetcher::Consumer { rack }
    }
}

/// The fetch's partitions in request order: hosted here, or the error code to answer.
fn resolve(shared: &Shared, request: &FetchRequest) -> Vec<Result<Arc<Partition>, i16>> {
    request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|fetch| {
                client_partition(&topic.topic.0, fetch.partition)
                    .and_then(|tp| shared.partition(&tp).ok_or_else(|| not_hosted(shared, &tp)))
            })
        })
        .collect()
}

/// Any partition with an error, a diverging epoch or a preferred read replica answers at once:
/// the client must act (Kafka's `fetchMessages` answers a preferred replica without waiting).
fn must_answer_now(response: &FetchResponse) -> bool {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .any(|p| {
            p.error_code != 0 || p.diverging_epoch.epoch >= 0 || p.preferred_read_replica.0 >= 0
        })
}

/// One pass over the fetch's partitions (`resolved` in request order). Returns the response and
/// its record bytes. The request's `max_bytes` bounds the records across partitions, followers'
/// as consumers' (the first partition with data always gets one batch).
fn fetch_once(
    shared: &Shared,
    request: &FetchRequest,
    fetcher: &Fetcher,
    listener: &str,
    resolved: &[Result<Arc<Partition>, i16>],
) -> (FetchResponse, usize) {
    let mut bytes_total = 0;
    let bytes_max = usize::try_from(request.max_bytes.max(1)).unwrap_or(1 << 20);
    let mut resolved = resolved.iter();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let mut partitions = Vec::new();
        for fetch in &topic.partitions {
            let partition = match resolved.next().expect("one per requested partition") {
                Ok(partition) => partition,
                Err(code) => {
                    partitions.push(
                        PartitionData::default()
                            .with_partition_index(fetch.partition)
                            .with_error_code(*code)
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_preferred_read_replica(KBroker(-1)),
                    );
                    continue;
                }
            };
            let partition_max =
                usize::try_from(fetch.partition_max_bytes.max(1)).unwrap_or(1 << 20);
            // Nothing left of the request's budget: the partition is still stepped (a follower's
            // fetch offset moves the HW) but answers without records.
            let budget = if bytes_total == 0 {
                partition_max
            } else {
                partition_max.min(bytes_max.saturating_sub(bytes_total))
            };
            let data = match fetcher {
                Fetcher::Follower(replica_id) => {
                    follower_fetch(partition, *replica_id, fetch, budget)
                }
                Fetcher::Consumer { rack } => {
                    consumer_fetch(shared, partition, fetch, budget, rack.as_deref(), listener)
                }
            };
            bytes_total += data.records.as_ref().map_or(0, Bytes::len);
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(topics), bytes_total)
}

fn follower_fetch(
    partition: &Partition,
    replica_id: i32,
    fetch: &kafka_protocol::messages::fetch_request::FetchPartition,
    bytes_max: usize,
) -> PartitionData {
    let request = rw::fetch_from_kafka(replica_id, fetch);
    match partition.replica_fetch(request, bytes_max) {
        Ok((response, log_start)) => {
            rw::fetch_response_to_kafka(fetch.partition, &response, log_start)
        }
        Err(error) => error_data(fetch.partition, &error),
    }
}

/// A consumer's fetch of one partition, as Kafka's `ReplicaManager.readFromLog` serves it: a
/// leader with a rack-aware selector names a follower in the client's rack as the preferred read
/// replica and sends no records; otherwise the replica reads up to the HW it knows. A follower
/// serves only clients that sent a rack field (Fetch v11+); older ones get NOT_LEADER_OR_FOLLOWER.
fn consumer_fetch(
    shared: &Shared,
    partition: &Partition,
    fetch: &kafka_protocol::messages::fetch_request::FetchPartition,
    bytes_max: usize,
    rack: Option<&str>,
    listener: &str,
) -> PartitionData {
    let status = partition.status();
    let is_leader = status.is_leader;
    // A failed replica answers its storage error below, whatever its role.
    if rack.is_none() && !is_leader && status.failed.is_none() {
        return error_data(
            fetch.partition,
            &replication::Error::NotLeaderOrFollower.into(),
        );
    }
    let epoch =
        (fetch.current_leader_epoch >= 0).then_some(LeaderEpoch(fetch.current_leader_epoch));
    let offset = wire::Offset(fetch.fetch_offset);
    let preferred = rack
        .filter(|_| is_leader)
        .and_then(|rack| preferred_read_replica(shared, partition, offset, rack, listener));
    // A consumer sent elsewhere gets the offsets (and any fencing error) but no records.
    let bytes_max = if preferred.is_some() { 0 } else { bytes_max };
    match partition.consumer_read(epoch, offset, bytes_max) {
        Ok(read) => {
            if !is_leader {
                shared.metrics.count("rill_fetch_from_follower_total", 1);
                buggify::probe!("fetch.consumer_read_from_follower");
            }
            PartitionData::default()
                .with_partition_index(fetch.partition)
                .with_high_watermark(read.high_watermark.0)
                .with_last_stable_offset(read.high_watermark.0)
                .with_log_start_offset(read.log_start_offset.0)
                .with_preferred_read_replica(KBroker(preferred.map_or(-1, |b| b.0)))
                .with_records(Some(read.records))
        }
        Err(error) => error_data(fetch.partition, &error),
    }
}

/// Kafka's `findPreferredReadReplica` on a leader: with `replica.selector.class` rack-aware, the
/// in-sync follower of the client's rack that holds `offset` and is reachable on the client's
/// listener; `None` when the leader should serve.
fn preferred_read_replica(
    shared: &Shared,
    partition: &Partition,
    offset: wire::Offset,
    rack: &str,
    listener: &str,
) -> Option<BrokerId> {
    let selector = shared
        .config
        .replica_selector()
        .expect("validated when the configuration was read");
    if selector != ReplicaSelector::RackAware || rack.is_empty() {
        return None;
    }
    let image = shared.image();
    let registration = |b: BrokerId| {
        image
            .brokers()
            .get(&b)
            .filter(|r| !r.fenced && super::metadata::endpoint(r, listener).is_some())
    };
    let candidates: Vec<RackedCandidate<'_>> = partition
        .read_replica_candidates(offset)
        .into_iter()
        .filter_map(|candidate| {
            let registration = registration(candidate.broker)?;
            Some(RackedCandidate {
                candidate,
                rack: registration.rack.as_deref(),
            })
        })
        .collect();
    let leader_rack = shared.config.broker_rack.as_deref();
    let chosen = replica_selector::rack_aware(rack, leader_rack, &candidates)?;
    assert!(chosen != shared.broker_id, "the leader never names itself");
    tracing::debug!(tp = %partition.topic_partition(), %chosen, rack, "preferred read replica");
    Some(chosen)
}

/// A follower fetch (replica id ≥ 0) from a connection that did not prove to be that broker:
/// TOPIC_AUTHORIZATION_FAILED on every partition, nothing read and no replica state touched.
/// Kafka answers the same to a follower fetch without the ClusterAction permission
/// (`KafkaApis.handleFetchRequest`: "The follower must have ClusterAction on ClusterResource in
/// order to fetch partition data").
pub fn fetch_unauthorized(request: &FetchRequest) -> FetchResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|fetch| {
                    PartitionData::default()
                        .with_partition_index(fetch.partition)
                        .with_error_code(E::TopicAuthorizationFailed.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(KBroker(-1))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(topics)
}

/// OffsetForLeaderEpoch with a replica id from a connection that did not prove to be that
/// broker: CLUSTER_AUTHORIZATION_FAILED on every partition, as Kafka answers a replica's
/// request without ClusterAction (`authorizeClusterOperation(request, CLUSTER_ACTION)`).
pub fn offsets_for_leader_epoch_unauthorized(
    request: &OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    KEpochEnd::default()
                        .with_partition(p.partition)
                        .with_error_code(E::ClusterAuthorizationFailed.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn error_data(partition: i32, error: &PartitionError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error.error_code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(KBroker(-1))
}

/// ListOffsets: earliest, latest (HW) or by timestamp, from the leader.
pub fn list_offsets(shared: &Shared, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1);
                    let hosted =
                        client_partition(&topic.name.0, p.partition_index).and_then(|tp| {
                            shared.partition(&tp).ok_or_else(|| not_hosted(shared, &tp))
                        });
                    let partition = match hosted {
                        Ok(partition) => partition,
                        Err(code) => {
                            return base
                                .with_error_code(code)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        }
                    };
                    let epoch = (p.current_leader_epoch >= 0)
                        .then_some(LeaderEpoch(p.current_leader_epoch));
                    match partition.list_offset(epoch, p.timestamp) {
                        Ok(Some(listed)) => base
                            .with_offset(listed.offset.0)
                            .with_timestamp(listed.timestamp)
                            .with_leader_epoch(listed.leader_epoch.0),
                        // Kafka's "no such offset": offset and timestamp -1, no error.
                        Ok(None) => base.with_offset(-1).with_leader_epoch(-1),
                        Err(error) => base
                            .with_error_code(error.error_code())
                            .with_offset(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch: followers through the replica core, clients from the log.
pub fn offsets_for_leader_epoch(
    shared: &Shared,
    request: OffsetForLeaderEpochRequest,
    version: i16,
) -> OffsetForLeaderEpochResponse {
    let replica_id = if version >= 3 {
        request.replica_id.0
    } else {
        -2
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let hosted = client_partition(&topic.topic.0, p.partition).and_then(|tp| {
                        shared.partition(&tp).ok_or_else(|| not_hosted(shared, &tp))
                    });
                    let partition = match hosted {
                        Ok(partition) => partition,
                        Err(code) => {
                            return KEpochEnd::default()
                                .with_partition(p.partition)
                                .with_error_code(code)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    };
                    let result = if replica_id >= 0 {
                        partition
                            .offsets_for_leader_epoch(OffsetsForLeaderEpochRequest {
                                replica_id: BrokerId(replica_id),
                                current_leader_epoch: LeaderEpoch(p.current_leader_epoch),
                                leader_epoch: LeaderEpoch(p.leader_epoch),
                            })
                            .map_err(|e| match e {
                                PartitionError::Replica(r) => r,
                                _ => replication::Error::NotLeaderOrFollower,
                            })
                            .and_then(|response| response.result)
                    } else {
                        let current = (p.current_leader_epoch >= 0)
                            .then_some(LeaderEpoch(p.current_leader_epoch));
                        partition
                            .end_offset_for_epoch(current, LeaderEpoch(p.leader_epoch))
                            .map_err(|e| match e {
                                PartitionError::Replica(r) => r,
                                _ => replication::Error::NotLeaderOrFollower,
                            })
                    };
                    rw::offsets_for_epoch_response_to_kafka(p.partition, &result)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// DeleteRecords (Kafka's `ReplicaManager.deleteRecords`): each partition's leader moves its
/// log start to the requested offset (-1: the HW) and answers it as the low watermark. Kafka's
/// refusals: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, OFFSET_OUT_OF_RANGE past the
/// HW, INVALID_TOPIC_EXCEPTION for an internal topic, POLICY_VIOLATION for a topic that is
/// compacted only. The answer waits, at most the request's `timeout_ms`, until every live
/// replica's log start reached the offset (Kafka's `DelayedDeleteRecords`), else
/// REQUEST_TIMED_OUT.
pub async fn delete_records(
    shared: &Shared,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(
        u64::try_from(request.timeout_ms.max(0))
            .unwrap_or(0)
            .min(PRODUCE_TIMEOUT_MS_MAX),
    );
    let image = shared.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let compacted_only = image.topics().get(name).is_some_and(|t| {
            t.config
                .overrides
                .get("cleanup.policy")
                .is_some_and(|policy| !policy.split(',').any(|p| p == "delete"))
        });
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let hosted = client_partition(name, p.partition_index).and_then(|tp| {
                let partition = shared
                    .partition(&tp)
                    .ok_or_else(|| not_hosted(shared, &tp))?;
                if super::metadata::is_internal_topic(name) {
                    return Err(E::InvalidTopicException.code());
                }
                if compacted_only {
                    return Err(E::PolicyViolation.code());
                }
                Ok(partition)
            });
            // Deleting segments and syncing the checkpoint is disk IO: off the async workers.
            let offset = p.offset;
            let result = match hosted {
                Ok(partition) => {
                    let moved = crate::partition::run_blocking({
                        let partition = partition.clone();
                        move || partition.delete_records(offset)
                    })
                    .await;
                    match moved {
                        Ok(start) => followers_caught_up(shared, &partition, start, timeout).await,
                        Err(error) => Err(error.error_code()),
                    }
                }
                Err(code) => Err(code),
            };
            let (low_watermark, error_code) = match result {
                Ok(start) => (start.0, 0),
                Err(code) => (-1, code),
            };
            assert!(error_code != 0 || low_watermark >= 0);
            if error_code == 0 {
                shared.metrics.count("rill_delete_records_total", 1);
            }
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(error_code),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// DelayedDeleteRecords: waits until the low watermark over the live replicas reaches `start`
/// (followers move their start on the leader's next fetch answer and report it in their next
/// fetch), at most `timeout`; answers the low watermark, or REQUEST_TIMED_OUT (Kafka's answer
/// for an expired DeleteRecords) or the partition's refusal if leadership moved.
async fn followers_caught_up(
    shared: &Shared,
    partition: &Partition,
    start: wire::Offset,
    timeout: Duration,
) -> Result<wire::Offset, i16> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = partition.progress().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let image = shared.image();
        let low = partition
            .low_watermark(|b| image.is_unfenced(b))
            .ok_or(E::NotLeaderOrFollower.code())?;
        if low >= start.0 {
            return Ok(wire::Offset(low));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(E::RequestTimedOut.code());
        }
        // Woken by a follower's report; the bound also covers a broker fenced meanwhile.
        let wait = (deadline - now).min(Duration::from_millis(100));
        let _reported_or_late = tokio::time::timeout(wait, notified).await;
    }
}
