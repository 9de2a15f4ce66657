//! Metadata and topic administration: Metadata, CreateTopics, DeleteTopics, DescribeConfigs.

use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId as KBroker, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::super::shared::Shared;
use controller::TopicConfig;

/// How long a CreateTopics/DeleteTopics waits for the broker's own metadata to show the change.
const TOPIC_PROPAGATION_WAIT_MS: u64 = 5_000;

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Is `name` a legal Kafka topic name (`[a-zA-Z0-9._-]`, at most 249 bytes, not `.`/`..`)?
pub fn topic_name_is_valid(name: &str) -> bool {
    wire::topic_name_check(name).is_ok()
}

/// Answers Metadata from the broker's image, creating missing topics when allowed.
pub async fn metadata(shared: &Shared, request: MetadataRequest, version: i16) -> MetadataResponse {
    let allow_create =
        (version < 4 || request.allow_auto_topic_creation) && shared.config.topics.auto_create;
    let mut image = shared.image();
    let names: Option<Vec<String>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect()
    });
    if let (Some(names), true) = (&names, allow_create) {
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !image.topics().contains_key(*n) && topic_name_is_valid(n))
            .collect();
        for name in missing {
            let _ = create_topic(shared, name, -1, -1, &[]).await;
        }
        image = shared.image();
    }
    let names = names.unwrap_or_else(|| image.topics().keys().cloned().collect());
    let topics = names
        .iter()
        .map(|name| topic_metadata(&image, name))
        .collect();
    let brokers = image
        .brokers()
        .iter()
        .filter(|(_, registration)| !registration.fenced)
        .filter_map(|(id, registration)| {
            let listener = registration.listeners.first()?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(KBroker(id.0))
                    .with_host(str_bytes(listener.host.clone()))
                    .with_port(i32::from(listener.port)),
            )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes("rill")))
        .with_controller_id(KBroker(shared.broker_id.0))
        .with_topics(topics)
}

fn topic_metadata(image: &controller::MetadataImage, name: &str) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_is_internal(name.starts_with("__"));
    let Some(topic) = image.topics().get(name) else {
        let code = if topic_name_is_valid(name) {
            E::UnknownTopicOrPartition.code()
        } else {
            E::InvalidTopicException.code()
        };
        return base.with_error_code(code);
    };
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let offline: Vec<KBroker> = state
                .replicas
                .iter()
                .filter(|b| !image.is_unfenced(**b))
                .map(|b| KBroker(b.0))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if state.leader.is_some() {
                    0
                } else {
                    E::LeaderNotAvailable.code()
                })
                .with_partition_index(i32::try_from(index).expect("bounded"))
                .with_leader_id(KBroker(state.leader.map_or(-1, |b| b.0)))
                .with_leader_epoch(state.leader_epoch.0)
                .with_replica_nodes(state.replicas.iter().map(|b| KBroker(b.0)).collect())
                .with_isr_nodes(state.isr.iter().map(|b| KBroker(b.0)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    base.with_partitions(partitions)
}

/// Asks the controller to create a topic; `-1` picks the configured defaults. Returns Kafka's
/// error code (0 on success).
pub async fn create_topic(
    shared: &Shared,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
) -> i16 {
    if !topic_name_is_valid(name) {
        return E::InvalidTopicException.code();
    }
    let defaults = &shared.config.topics;
    let mut config = TopicConfig {
        unclean_leader_election: defaults.unclean_leader_election,
        min_insync_replicas: defaults.min_insync_replicas,
    };
    for (key, value) in configs {
        match key.as_str() {
            "min.insync.replicas" => match value.parse() {
                Ok(v) if v >= 1 => config.min_insync_replicas = v,
                _ => return E::InvalidConfig.code(),
            },
            "unclean.leader.election.enable" => match value.parse() {
                Ok(v) => config.unclean_leader_election = v,
                Err(_) => return E::InvalidConfig.code(),
            },
            // Accepted and reported, applied node-wide: cleanup.policy, retention, segments.
            _ => {}
        }
    }
    let partitions = if partitions == -1 {
        defaults.partitions
    } else {
        partitions
    };
    let replication_factor = if replication_factor == -1 {
        defaults.replication_factor
    } else {
        replication_factor
    };
    if partitions < 1 {
        return E::InvalidPartitions.code();
    }
    if replication_factor < 1 {
        return E::InvalidReplicationFactor.code();
    }
    let request = controller::Request::CreateTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        config,
    };
    match shared.controller.request(request).await {
        Ok(_) => {
            wait_for_image(shared, |image| image.topics().contains_key(name)).await;
            0
        }
        Err(error) => controller_error_code(&error),
    }
}

/// Waits (bounded) until the broker's own image satisfies `done`.
async fn wait_for_image(shared: &Shared, done: impl Fn(&controller::MetadataImage) -> bool) {
    let mut watch = shared.image.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(TOPIC_PROPAGATION_WAIT_MS);
    while !done(&watch.borrow_and_update()) {
        if tokio::time::timeout(
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            watch.changed(),
        )
        .await
        .is_err()
        {
            return;
        }
    }
}

/// Kafka's code for a failed controller request.
pub fn controller_error_code(error: &crate::control::ControlError) -> i16 {
    use controller::ControllerError as C;
    match error {
        crate::control::ControlError::Refused(refusal) => match refusal {
            C::TopicAlreadyExists(_) => E::TopicAlreadyExists.code(),
            C::UnknownTopicOrPartition(_) => E::UnknownTopicOrPartition.code(),
            C::InvalidTopic(_) => E::InvalidTopicException.code(),
            C::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor.code(),
            C::NotController => E::NotController.code(),
            C::LimitReached(_) => E::PolicyViolation.code(),
            other => {
                tracing::info!(%other, "controller refused");
                E::UnknownServerError.code()
            }
        },
        other => {
            tracing::info!(%other, "controller request failed");
            E::RequestTimedOut.code()
        }
    }
}

/// CreateTopics.
pub async fn create_topics(shared: &Shared, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let configs: Vec<(String, String)> = topic
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        let code = if !topic.assignments.is_empty() {
            E::InvalidReplicaAssignment.code()
        } else if request.validate_only {
            if topic_name_is_valid(&name) {
                0
            } else {
                E::InvalidTopicException.code()
            }
        } else {
            create_topic(
                shared,
                &name,
                topic.num_partitions,
                i32::from(topic.replication_factor),
                &configs,
            )
            .await
        };
        results.push(
            CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(code)
                .with_num_partitions(topic.num_partitions)
                .with_replication_factor(topic.replication_factor),
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// DeleteTopics (by name; topic ids are not served).
pub async fn delete_topics(
    shared: &Shared,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<TopicName> = if version >= 6 {
        request
            .topics
            .iter()
            .filter_map(|t| t.name.clone())
            .collect()
    } else {
        request.topic_names.clone()
    };
    let mut responses = Vec::new();
    for name in names {
        let topic = name.0.to_string();
        let code = if !shared.image().topics().contains_key(&topic) {
            E::UnknownTopicOrPartition.code()
        } else {
            match shared
                .controller
                .request(controller::Request::DeleteTopic {
                    name: topic.clone(),
                })
                .await
            {
                Ok(_) => {
                    wait_for_image(shared, |image| !image.topics().contains_key(&topic)).await;
                    0
                }
                Err(error) => controller_error_code(&error),
            }
        };
        responses.push(
            DeletableTopicResult::default()
                .with_name(Some(name))
                .with_error_code(code),
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// DescribeConfigs for topics (2) and brokers (4): the settings rill applies.
pub fn describe_configs(
    shared: &Shared,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = shared.image();
    let log = &shared.config.log;
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let mut entries: Vec<(&str, String)> = vec![
                ("segment.bytes", log.segment_bytes.to_string()),
                ("retention.ms", log.retention_ms.to_string()),
                ("retention.bytes", log.retention_bytes.to_string()),
                ("max.message.bytes", log.message_max_bytes.to_string()),
                ("compression.type", log.compression_type.clone()),
            ];
            match resource.resource_type {
                2 => {
                    let Some(topic) = image.topics().get(&name) else {
                        return base.with_error_code(E::UnknownTopicOrPartition.code());
                    };
                    entries.push((
                        "min.insync.replicas",
                        topic.config.min_insync_replicas.to_string(),
                    ));
                    entries.push((
                        "unclean.leader.election.enable",
                        topic.config.unclean_leader_election.to_string(),
                    ));
                    let policy = if name == super::groups::OFFSETS_TOPIC {
                        "compact"
                    } else {
                        "delete"
                    };
                    entries.push(("cleanup.policy", policy.to_string()));
                }
                4 => {
                    entries.push((
                        "default.replication.factor",
                        shared.config.topics.replication_factor.to_string(),
                    ));
                    entries.push((
                        "num.partitions",
                        shared.config.topics.partitions.to_string(),
                    ));
                    entries.push((
                        "auto.create.topics.enable",
                        shared.config.topics.auto_create.to_string(),
                    ));
                }
                _ => return base.with_error_code(E::InvalidRequest.code()),
            }
            let wanted = resource.configuration_keys.as_ref();
            let configs = entries
                .into_iter()
                .filter(|(key, _)| {
                    wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == *key))
                })
                .map(|(key, value)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(key))
                        .with_value(Some(str_bytes(value)))
                        .with_read_only(true)
                        .with_config_source(5)
                })
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
