//! Administration of partitions: ElectLeaders (KIP-460), DescribeLogDirs, DescribeProducers
//! (KIP-664).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeProducersRequest,
    DescribeProducersResponse, ElectLeadersRequest, ElectLeadersResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use wire::TopicPartition;

use super::super::shared::Shared;
use controller::ElectionOutcome;

/// Most partitions one ElectLeaders may name: a controller batch holds as many changes.
pub const ELECT_PARTITIONS_MAX: usize = controller::records::RECORDS_PER_BATCH_MAX;

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's code and message for one partition's outcome.
fn outcome_error(tp: &TopicPartition, outcome: ElectionOutcome) -> (i16, Option<String>) {
    let error = match outcome {
        ElectionOutcome::Elected { .. } => return (0, None),
        ElectionOutcome::NotNeeded => E::ElectionNotNeeded,
        ElectionOutcome::PreferredLeaderNotAvailable => E::PreferredLeaderNotAvailable,
        ElectionOutcome::EligibleLeadersNotAvailable => E::EligibleLeadersNotAvailable,
        ElectionOutcome::UnknownTopicOrPartition => {
            let message = format!("No such partition as {tp}");
            return (E::UnknownTopicOrPartition.code(), Some(message));
        }
    };
    (error.code(), Some(error.to_string()))
}

/// ElectLeaders: the election goes to the active controller like every leadership change; the
/// answer waits (bounded) until this broker's image shows the new leaders, so a Metadata request
/// that follows sees them. v0 has no election type: preferred. An unknown election type is
/// INVALID_REQUEST for the request (Kafka's `ElectionType.valueOf` refusal).
pub async fn elect_leaders(
    shared: &Shared,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election_type = if version >= 1 {
        request.election_type
    } else {
        0
    };
    let named: Option<Vec<(TopicName, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p)))
            .collect()
    });
    let refuse_all = |error: E, message: String| {
        let results = named.iter().flatten().map(|(topic, partition)| {
            let result = PartitionResult::default()
                .with_partition_id(*partition)
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message.clone())));
            (topic.clone(), result)
        });
        let mut response = response_of(results);
        if version >= 1 {
            response = response.with_error_code(error.code());
        }
        response
    };
    if !(0..=1).contains(&election_type) {
        return refuse_all(
            E::InvalidRequest,
            format!("Unknown election type {election_type}"),
        );
    }
    if named
        .as_ref()
        .is_some_and(|n| n.len() > ELECT_PARTITIONS_MAX)
    {
        return refuse_all(
            E::PolicyViolation,
            format!("At most {ELECT_PARTITIONS_MAX} partitions per election request"),
        );
    }
    // Names that cannot be partitions are answered here; the rest go to the controller.
    let mut illegal = Vec::new();
    let partitions = named.as_ref().map(|named| {
        named
            .iter()
            .filter_map(|(topic, partition)| {
                match TopicPartition::try_new(topic.0.as_str(), *partition) {
                    Ok(tp) => Some(tp),
                    Err(_) => {
                        illegal.push((topic.clone(), *partition));
                        None
                    }
                }
            })
            .collect()
    });
    let asked = controller::Request::ElectLeaders {
        unclean: election_type == 1,
        partitions,
    };
    let outcomes = match shared.controller.request(asked).await {
        Ok(controller::Reply::LeadersElected(outcomes)) => outcomes,
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered ElectLeaders with another reply"
            );
            return refuse_all(E::UnknownServerError, "unexpected controller reply".into());
        }
        Err(error) => {
            let refusal = super::metadata::controller_refusal(&error);
            let error = E::try_from_code(refusal.code).unwrap_or(E::UnknownServerError);
            return refuse_all(error, refusal.message);
        }
    };
    let elected: Vec<(TopicPartition, i32)> = outcomes
        .iter()
        .filter_map(|(tp, outcome)| match outcome {
            ElectionOutcome::Elected { leader_epoch } => Some((tp.clone(), leader_epoch.0)),
            _ => None,
        })
        .collect();
    super::metadata::wait_for_image(shared, |image| {
        elected.iter().all(|(tp, epoch)| {
            image
                .partition(tp)
                .is_none_or(|state| state.leader_epoch.0 >= *epoch)
        })
    })
    .await;
    if !elected.is_empty() {
        shared.metrics.count(
            "rill_leader_elections_requested_total",
            elected.len() as u64,
        );
    }
    let answered = outcomes.iter().map(|(tp, outcome)| {
        let (code, message) = outcome_error(tp, *outcome);
        let result = PartitionResult::default()
            .with_partition_id(tp.partition)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        (TopicName(str_bytes(tp.topic.clone())), result)
    });
    let refused = illegal.into_iter().map(|(topic, partition)| {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(E::UnknownTopicOrPartition.code())
            .with_error_message(Some(str_bytes(format!(
                "No such partition as {}-{partition}",
                topic.0
            ))));
        (topic, result)
    });
    response_of(answered.chain(refused))
}

/// The response grouping `results` by topic, topics in name order.
fn response_of(
    results: impl Iterator<Item = (TopicName, PartitionResult)>,
) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<TopicName, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, result) in results {
        by_topic.entry(topic).or_default().push(result);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(topics)
}

/// DescribeLogDirs: the node's one log directory (its `data_dir`) with the size of every hosted
/// partition's log, or of those named that it hosts (Kafka leaves out the others). A failed
/// partition, whose log is closed, is left out too. Offset lag is 0 (no future replicas); the
/// volume's total and usable bytes (v4) are unknown: -1.
pub fn describe_log_dirs(
    shared: &Shared,
    request: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted = |tp: &TopicPartition| {
        request.topics.as_ref().is_none_or(|topics| {
            topics
                .iter()
                .any(|t| t.topic.0.as_str() == tp.topic && t.partitions.contains(&tp.partition))
        })
    };
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for partition in shared.partitions() {
        let tp = partition.topic_partition();
        if !wanted(tp) {
            continue;
        }
        let Some(size) = partition.size_bytes() else {
            continue;
        };
        by_topic.entry(tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics: Vec<DescribeLogDirsTopic> = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    let log_dir = shared.config.data_dir.display().to_string();
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(log_dir))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// DescribeProducers (KIP-664), as Kafka's `KafkaApis.handleDescribeProducersRequest`: per
/// partition the idempotent producers its replica here remembers (leaders and followers answer;
/// the admin client asks the leader unless told a broker). A topic or partition the metadata
/// does not know: UNKNOWN_TOPIC_OR_PARTITION; a partition not hosted here:
/// NOT_LEADER_OR_FOLLOWER; a failed one: KAFKA_STORAGE_ERROR. No transactions: coordinator epoch and transaction start -1.
pub async fn describe_producers(
    shared: &Shared,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = shared.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let known = image.topics().contains_key(&name);
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for index in topic.partition_indexes {
            let base = PartitionResponse::default().with_partition_index(index);
            let tp = TopicPartition::try_new(name.as_str(), index)
                .ok()
                .filter(|_| known);
            let hosted = tp.map(|tp| {
                shared
                    .partition(&tp)
                    .ok_or_else(|| super::data::not_hosted(shared, &tp))
            });
            let response = match hosted {
                None => base
                    .with_error_code(E::UnknownTopicOrPartition.code())
                    .with_error_message(Some(str_bytes(format!(
                        "This server does not host this topic-partition: {name}-{index}"
                    )))),
                Some(Err(code)) => base.with_error_code(code),
                Some(Ok(partition)) => {
                    // Reading the last batches' headers is disk IO: off the async workers.
                    let read =
                        crate::partition::run_blocking(move || partition.active_producers()).await;
                    match read {
                        Ok(producers) => base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect(),
                        ),
                        Err(error) => base
                            .with_error_code(error.error_code())
                            .with_error_message(Some(str_bytes(error.to_string()))),
                    }
                }
            };
            partitions.push(response);
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
