//! The replica core's messages as Kafka requests and responses: followers replicate with Fetch v12
//! and OffsetForLeaderEpoch v4 carrying their replica id, exactly as Kafka brokers do, so the
//! leader's side is the same Fetch handler consumers use.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{self, PartitionData};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset as KafkaEpochEnd;
use kafka_protocol::messages::{
    FetchRequest as KafkaFetch, OffsetForLeaderEpochRequest as KafkaOffsetsForEpoch, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication::{
    EpochEndOffset, FetchData, FetchRequest, FetchResponse, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse,
};
use wire::{BrokerId, LeaderEpoch, Offset, TopicPartition};

use crate::partition::{
    batches_from_bytes, replica_error_code, replica_error_from_code, REPLICA_FETCH_BYTES_MAX,
};

/// The Fetch version followers use: the last with topic names (13+ use topic ids).
pub const REPLICA_FETCH_VERSION: i16 = 12;
/// The OffsetForLeaderEpoch version followers use (3+ carry the replica id).
pub const OFFSETS_FOR_EPOCH_VERSION: i16 = 4;

/// Most record bytes one follower fetch response carries across its partitions (Kafka's
/// `replica.fetch.response.max.bytes`); each partition carries at most
/// [`REPLICA_FETCH_BYTES_MAX`], and the first always at least one batch.
pub const REPLICA_FETCH_RESPONSE_BYTES_MAX: usize = 16 << 20;

/// Groups `items` by topic, keeping the order in which topics first appear (a topic appears once
/// in a request, whatever the order its partitions come in).
fn by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut groups: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, item) in items {
        match groups.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, members)) => members.push(item),
            None => groups.push((topic, vec![item])),
        }
    }
    groups
}

fn topic_name(topic: String) -> TopicName {
    TopicName(StrBytes::from_string(topic))
}

/// A follower broker's fetches to one leader as one Kafka Fetch, every partition in it (Kafka's
/// replica fetcher): one request and one long poll per (follower, leader) pair. `log_starts`
/// gives each fetch's log start as the follower reports it (`None`: unknown, -1 on the wire).
pub fn fetches_to_kafka(
    replica_id: BrokerId,
    fetches: &[(TopicPartition, FetchRequest)],
    log_starts: impl IntoIterator<Item = Option<Offset>>,
    max_wait_ms: i32,
) -> KafkaFetch {
    let mut log_starts = log_starts.into_iter();
    let partitions = fetches.iter().map(|(tp, request)| {
        let log_start = log_starts.next().flatten().map_or(-1, |start| start.0);
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(request.current_leader_epoch.0)
            .with_fetch_offset(request.fetch_offset.0)
            .with_last_fetched_epoch(request.last_fetched_epoch.0)
            .with_log_start_offset(log_start)
            .with_partition_max_bytes(i32::try_from(REPLICA_FETCH_BYTES_MAX).expect("fits"));
        (tp.topic.clone(), partition)
    });
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    KafkaFetch::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(replica_id.0))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(i32::try_from(REPLICA_FETCH_RESPONSE_BYTES_MAX).expect("fits"))
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// A leader's Fetch answers by (topic, partition), for looking up each partition once.
pub fn fetch_answers(
    response: &kafka_protocol::messages::FetchResponse,
) -> BTreeMap<(&str, i32), &PartitionData> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.topic.0.as_str(), p.partition_index), p))
        })
        .collect()
}

/// The leader's Kafka answer for one partition, as the core's message. Errors in the bytes (a bad
/// CRC on the wire) read as a refused fetch: the follower backs off and fetches again.
pub fn fetch_response_from_kafka(
    leader: BrokerId,
    request: &FetchRequest,
    data: Option<&PartitionData>,
) -> FetchResponse {
    let result = match data {
        None => Err(replication::Error::NotLeaderOrFollower),
        Some(data) if data.error_code != 0 => Err(replica_error_from_code(
            data.error_code,
            Offset(data.log_start_offset.max(0)),
            Offset(data.high_watermark.max(0)),
        )),
        Some(data) => {
            // Slices of the response frame: the follower's batches are not copied out of it.
            let bytes = data.records.clone().unwrap_or_default();
            match batches_from_bytes(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|batches| {
                    check_replicated_batches(request, &batches)?;
                    Ok(batches)
                }) {
                Ok(batches) => Ok(FetchData {
                    high_watermark: Offset(data.high_watermark),
                    diverging_epoch: (data.diverging_epoch.epoch >= 0).then_some(EpochEndOffset {
                        leader_epoch: LeaderEpoch(data.diverging_epoch.epoch),
                        end_offset: Offset(data.diverging_epoch.end_offset),
                    }),
                    batches,
                }),
                Err(error) => {
                    tracing::warn!(%error, "fetch response with invalid batches");
                    Err(replication::Error::NotLeaderOrFollower)
                }
            }
        }
    };
    fetch_failed_or(leader, request, result)
}

/// Peer input is validated before the core sees it: the batches of a fetch answer continue the
/// follower's log exactly (from the fetch offset, each starting where the last ended, each with at
/// least one record) and their epochs never go back, from the follower's last fetched epoch up to
/// the epoch it fetched in. A forged or garbled answer is dropped like a lost one (the follower
/// backs off and fetches again) instead of reaching the core's assertions.
fn check_replicated_batches(
    request: &FetchRequest,
    batches: &[replication::Batch],
) -> Result<(), String> {
    let mut next = request.fetch_offset;
    let mut epoch = request.last_fetched_epoch;
    for (index, batch) in batches.iter().enumerate() {
        // The first batch may start before the fetch offset when it holds it: the leader's log
        // start lies inside that batch (DeleteRecords) and this follower starts over there.
        let holds_fetch_offset = index == 0
            && batch.base_offset < next
            && batch.end_offset() > next
            && batch.record_count > 0;
        if (batch.base_offset != next && !holds_fetch_offset) || batch.record_count == 0 {
            return Err(format!(
                "batch at {:?} with {} records, expected one at {next:?}",
                batch.base_offset, batch.record_count
            ));
        }
        // A fetch naming no last epoch (an empty log, or the pre-KIP-320 bug switch, whose
        // leaders answer across epochs) bounds the epochs from below only.
        let above = request.last_fetched_epoch != LeaderEpoch::NONE
            && batch.leader_epoch > request.current_leader_epoch;
        if batch.leader_epoch < epoch || above {
            return Err(format!(
                "batch epoch {:?} outside [{epoch:?}, {:?}]",
                batch.leader_epoch, request.current_leader_epoch
            ));
        }
        next = batch.end_offset();
        epoch = batch.leader_epoch;
    }
    Ok(())
}

/// A fetch answer the follower core accepts as "for this request".
pub fn fetch_failed_or(
    leader: BrokerId,
    request: &FetchRequest,
    result: Result<FetchData, replication::Error>,
) -> FetchResponse {
    FetchResponse {
        leader_id: leader,
        leader_epoch: request.current_leader_epoch,
        fetch_offset: request.fetch_offset,
        last_fetched_epoch: request.last_fetched_epoch,
        result,
    }
}

/// A Kafka Fetch partition from a follower as the core's request.
pub fn fetch_from_kafka(replica_id: i32, partition: &FetchPartition) -> FetchRequest {
    FetchRequest {
        replica_id: BrokerId(replica_id),
        fetch_offset: Offset(partition.fetch_offset),
        current_leader_epoch: LeaderEpoch(partition.current_leader_epoch),
        last_fetched_epoch: LeaderEpoch(partition.last_fetched_epoch),
    }
}

/// The core's answer to a follower as Kafka partition data.
pub fn fetch_response_to_kafka(
    partition: i32,
    response: &FetchResponse,
    log_start: Offset,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(partition)
        .with_log_start_offset(log_start.0)
        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
    match &response.result {
        // Out of range names both ends of the leader's log: the start in `log_start_offset`, the
        // LEO where the HW would be (the follower truncates to it or starts over at the start).
        Err(
            error @ replication::Error::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
            },
        ) => base
            .with_error_code(replica_error_code(error))
            .with_log_start_offset(log_start_offset.0)
            .with_high_watermark(log_end_offset.0)
            .with_last_stable_offset(-1),
        Err(error) => base
            .with_error_code(replica_error_code(error))
            .with_high_watermark(-1)
            .with_last_stable_offset(-1),
        Ok(data) => {
            // One batch (the usual case: `read_batches` joins the batches of one read and one
            // epoch) is the log read's own buffer; several are joined, sized once.
            let records = match data.batches.as_slice() {
                [] => Bytes::new(),
                [batch] => batch.payload.clone(),
                batches => {
                    let mut records =
                        Vec::with_capacity(batches.iter().map(|b| b.payload.len()).sum());
                    for batch in batches {
                        records.extend_from_slice(&batch.payload);
                    }
                    Bytes::from(records)
                }
            };
            let diverging = match data.diverging_epoch {
                Some(end) => fetch_response::EpochEndOffset::default()
                    .with_epoch(end.leader_epoch.0)
                    .with_end_offset(end.end_offset.0),
                None => fetch_response::EpochEndOffset::default(),
            };
            base.with_high_watermark(data.high_watermark.0)
                .with_last_stable_offset(data.high_watermark.0)
                .with_diverging_epoch(diverging)
                .with_records(Some(records))
        }
    }
}

/// A follower broker's OffsetsForLeaderEpoch requests to one leader as one Kafka request.
pub fn offsets_for_epochs_to_kafka(
    replica_id: BrokerId,
    requests: &[(TopicPartition, OffsetsForLeaderEpochRequest)],
) -> KafkaOffsetsForEpoch {
    let partitions = requests.iter().map(|(tp, request)| {
        let partition = OffsetForLeaderPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(request.current_leader_epoch.0)
            .with_leader_epoch(request.leader_epoch.0);
        (tp.topic.clone(), partition)
    });
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetForLeaderTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    KafkaOffsetsForEpoch::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(replica_id.0))
        .with_topics(topics)
}

/// A leader's OffsetForLeaderEpoch answers by (topic, partition).
pub fn offsets_for_epoch_answers(
    response: &kafka_protocol::messages::OffsetForLeaderEpochResponse,
) -> BTreeMap<(&str, i32), &KafkaEpochEnd> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.topic.0.as_str(), p.partition), p))
        })
        .collect()
}

/// The leader's Kafka answer as the core's message.
pub fn offsets_for_epoch_from_kafka(
    leader: BrokerId,
    request: &OffsetsForLeaderEpochRequest,
    answer: Option<&KafkaEpochEnd>,
) -> OffsetsForLeaderEpochResponse {
    let result = match answer {
        None => Err(replication::Error::NotLeaderOrFollower),
        Some(end) if end.error_code != 0 => Err(replica_error_from_code(
            end.error_code,
            Offset::ZERO,
            Offset::ZERO,
        )),
        Some(end) => Ok(EpochEndOffset {
            leader_epoch: LeaderEpoch(end.leader_epoch),
            end_offset: Offset(end.end_offset),
        }),
    };
    OffsetsForLeaderEpochResponse {
        leader_id: leader,
        current_leader_epoch: request.current_leader_epoch,
        requested_epoch: request.leader_epoch,
        result,
    }
}

/// The core's answer to OffsetsForLeaderEpoch as Kafka's.
pub fn offsets_for_epoch_response_to_kafka(
    partition: i32,
    result: &Result<EpochEndOffset, replication::Error>,
) -> KafkaEpochEnd {
    match result {
        Ok(end) => KafkaEpochEnd::default()
            .with_partition(partition)
            .with_leader_epoch(end.leader_epoch.0)
            .with_end_offset(end.end_offset.0),
        Err(error) => KafkaEpochEnd::default()
            .with_partition(partition)
            .with_error_code(replica_error_code(error))
            .with_leader_epoch(-1)
            .with_end_offset(-1),
    }
}
