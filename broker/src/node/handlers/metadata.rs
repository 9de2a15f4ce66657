//! Metadata and topic administration: Metadata, CreateTopics, CreatePartitions, DeleteTopics.

use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId as KBroker, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::super::shared::Shared;
use crate::security::acl::{op, resource, Access, CLUSTER_NAME};
use wire::BrokerId;

/// How long a CreateTopics/DeleteTopics waits for the broker's own metadata to show the change.
const TOPIC_PROPAGATION_WAIT_MS: u64 = 5_000;

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's internal topics (`Topic.INTERNAL_TOPICS`) and its metadata log's name: the broker
/// creates them itself with their own settings (`__consumer_offsets` with the coordinator's
/// partition count), so clients may neither create nor delete them.
pub const INTERNAL_TOPICS: [&str; 4] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
    "__cluster_metadata",
];

/// Is `name` one of [`INTERNAL_TOPICS`]?
pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Is `name` a legal Kafka topic name (`[a-zA-Z0-9._-]`, at most 249 bytes, not `.`/`..`)?
pub fn topic_name_is_valid(name: &str) -> bool {
    wire::topic_name_check(name).is_ok()
}

/// A broker's endpoint on the named listener (Kafka answers each client with the endpoints of
/// the listener it connected to; a broker without that listener is left out).
pub fn endpoint<'a>(
    registration: &'a controller::BrokerRegistration,
    listener: &str,
) -> Option<&'a controller::Listener> {
    registration.listeners.iter().find(|l| l.name == listener)
}

/// Answers Metadata from the broker's image, creating missing topics when allowed.
/// Topics the principal may not DESCRIBE are left out of an every-topic answer and answered
/// TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs CREATE on the cluster or the topic.
pub async fn metadata(
    shared: &Shared,
    request: MetadataRequest,
    version: i16,
    access: &Access,
) -> MetadataResponse {
    let allow_create =
        (version < 4 || request.allow_auto_topic_creation) && shared.config.topics.auto_create;
    let mut image = shared.image();
    // v0 has no null list: an empty one asks for every topic (Kafka's MetadataRequest v0).
    let every_topic = version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty);
    let topics = if every_topic {
        None
    } else {
        request.topics.as_ref()
    };
    let names: Option<Vec<String>> = topics.map(|topics| {
        topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect()
    });
    if let (Some(names), true) = (&names, allow_create) {
        let missing: Vec<&String> = names
            .iter()
            // Internal topics are the broker's to create, with their own settings.
            .filter(|n| {
                !image.topics().contains_key(*n) && topic_name_is_valid(n) && !is_internal_topic(n)
            })
            .filter(|n| access.may_cluster(op::CREATE) || access.may_topic(n, op::CREATE))
            .collect();
        for name in missing {
            if let Err(refusal) = create_topic(shared, name, TopicSpec::sized(-1, -1)).await {
                tracing::debug!(topic = %name, ?refusal, "auto-creation refused");
            }
        }
        image = shared.image();
    }
    let named = names.is_some();
    // KIP-430: asked for, each described topic carries the operations the principal may
    // perform on it (Metadata v8+; the cluster's only in v8 to v10).
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;
    let names = names.unwrap_or_else(|| image.topics().keys().cloned().collect());
    let topics = names
        .iter()
        .filter(|name| named || access.may_topic(name, op::DESCRIBE))
        .map(|name| {
            if access.may_topic(name, op::DESCRIBE) {
                let topic = topic_metadata(&image, name);
                if topic_operations && topic.error_code == 0 {
                    topic.with_topic_authorized_operations(
                        access.authorized_operations(resource::TOPIC, name),
                    )
                } else {
                    topic
                }
            } else {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(str_bytes(name.clone()))))
                    .with_error_code(E::TopicAuthorizationFailed.code())
            }
        })
        .collect();
    let brokers = image
        .brokers()
        .iter()
        .filter(|(_, registration)| !registration.fenced)
        .filter_map(|(id, registration)| {
            let listener = endpoint(registration, &access.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(KBroker(id.0))
                    .with_host(str_bytes(listener.host.clone()))
                    .with_port(i32::from(listener.port))
                    .with_rack(registration.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    let cluster_operations =
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            access.authorized_operations(resource::CLUSTER, CLUSTER_NAME)
        } else {
            i32::MIN
        };
    MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_operations)
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes("rill")))
        .with_controller_id(KBroker(controller_id(shared, &image)))
        .with_topics(topics)
}

/// The controller id Metadata reports: admin clients send CreateTopics/DeleteTopics there. Any
/// broker forwards them to the active controller (as KRaft brokers do, which report an alive
/// broker), so a broker names itself while it is unfenced, else the lowest unfenced broker, and
/// -1 (none) while no active controller is known or no broker is listed: a client then waits
/// and asks again instead of sending to a broker it cannot find in the same answer.
fn controller_id(shared: &Shared, image: &controller::MetadataImage) -> i32 {
    if shared.controller.leader_hint().is_none() {
        return -1;
    }
    let listed = |b: &BrokerId| {
        image
            .brokers()
            .get(b)
            .is_some_and(|r| !r.fenced && !r.listeners.is_empty())
    };
    let id = if listed(&shared.broker_id) {
        shared.broker_id.0
    } else {
        image
            .brokers()
            .keys()
            .find(|b| listed(b))
            .map_or(-1, |b| b.0)
    };
    assert!(
        id == -1 || listed(&BrokerId(id)),
        "a reported controller is listed"
    );
    id
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

/// Why a topic was not created or deleted: Kafka's error code and the message it carries
/// (CreateTopics v1+, DeleteTopics v5+), never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRefusal {
    /// Kafka's error code.
    pub code: i16,
    /// What was wrong, for the client's error message.
    pub message: String,
}

impl TopicRefusal {
    /// A refusal with `error`'s code and `message`.
    pub fn new(error: E, message: impl Into<String>) -> TopicRefusal {
        let message = message.into();
        assert!(error.code() != 0, "a refusal has an error code");
        assert!(!message.is_empty(), "a refusal says why");
        TopicRefusal {
            code: error.code(),
            message,
        }
    }
}

/// A topic as CreateTopics (or auto-creation) asks for it; `-1` picks the configured defaults.
#[derive(Clone, Debug, Default)]
pub struct TopicSpec {
    /// Partition count, or -1.
    pub partitions: i32,
    /// Replicas per partition, or -1.
    pub replication_factor: i32,
    /// `(name, value)` topic configs; `None` values are refused as Kafka does.
    pub configs: Vec<(String, Option<String>)>,
    /// Manual replica assignment by partition index (empty: placed by the controller).
    pub assignments: Vec<(i32, Vec<BrokerId>)>,
    /// Check only, create nothing.
    pub validate_only: bool,
}

impl TopicSpec {
    /// `partitions` x `replication_factor` (or -1 for the defaults), no configs.
    pub fn sized(partitions: i32, replication_factor: i32) -> TopicSpec {
        TopicSpec {
            partitions,
            replication_factor,
            ..TopicSpec::default()
        }
    }
}

/// Kafka's broker-side checks of a manual assignment: no partition twice, indices `0..n`.
fn assignments_in_order(
    assignments: &[(i32, Vec<BrokerId>)],
) -> Result<Vec<Vec<BrokerId>>, TopicRefusal> {
    let mut by_index = std::collections::BTreeMap::new();
    for (index, replicas) in assignments {
        if by_index.insert(*index, replicas.clone()).is_some() {
            return Err(TopicRefusal::new(
                E::InvalidReplicaAssignment,
                format!("Found multiple manual partition assignments for partition {index}"),
            ));
        }
    }
    let consecutive = by_index
        .keys()
        .enumerate()
        .all(|(position, index)| usize::try_from(*index).is_ok_and(|i| i == position));
    if !consecutive {
        return Err(TopicRefusal::new(
            E::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence",
        ));
    }
    let ordered: Vec<Vec<BrokerId>> = by_index.into_values().collect();
    assert_eq!(ordered.len(), assignments.len());
    Ok(ordered)
}

/// Asks the controller to create (or, validate-only, to check) a topic. Returns the replica
/// assignments it got, or Kafka's error code and message.
pub async fn create_topic(
    shared: &Shared,
    name: &str,
    spec: TopicSpec,
) -> Result<Vec<Vec<BrokerId>>, TopicRefusal> {
    if let Err(why) = wire::topic_name_check(name) {
        return Err(TopicRefusal::new(
            E::InvalidTopicException,
            format!("Topic name {name:?} is illegal: {why}"),
        ));
    }
    let defaults = &shared.config.topics;
    let (partitions, replication_factor, assignments) = if spec.assignments.is_empty() {
        if spec.replication_factor < -1 || spec.replication_factor == 0 {
            return Err(TopicRefusal::new(
                E::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        if spec.partitions < -1 || spec.partitions == 0 {
            return Err(TopicRefusal::new(
                E::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.",
            ));
        }
        let partitions = if spec.partitions == -1 {
            defaults.partitions
        } else {
            spec.partitions
        };
        let replication_factor = if spec.replication_factor == -1 {
            defaults.replication_factor
        } else {
            spec.replication_factor
        };
        (partitions, replication_factor, Vec::new())
    } else {
        if spec.replication_factor != -1 {
            return Err(TopicRefusal::new(
                E::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1.",
            ));
        }
        if spec.partitions != -1 {
            return Err(TopicRefusal::new(
                E::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1.",
            ));
        }
        (-1, -1, assignments_in_order(&spec.assignments)?)
    };
    let config = super::configs::topic_config_for_create(shared, &spec.configs)?;
    let request = controller::Request::CreateTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        config,
        assignments,
        validate_only: spec.validate_only,
    };
    match shared.controller.request(request).await {
        Ok(controller::Reply::TopicCreated { assignments, .. }) => {
            wait_for_image(shared, |image| image.topics().contains_key(name)).await;
            Ok(assignments)
        }
        Ok(controller::Reply::TopicValid { assignments }) => Ok(assignments),
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered CreateTopic with another reply"
            );
            Err(TopicRefusal::new(
                E::UnknownServerError,
                "unexpected controller reply",
            ))
        }
        Err(error) => Err(controller_refusal(&error)),
    }
}

/// Waits (bounded) until the broker's own image satisfies `done`.
pub(super) async fn wait_for_image(
    shared: &Shared,
    done: impl Fn(&controller::MetadataImage) -> bool,
) {
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
    controller_refusal(error).code
}

/// Kafka's code and a message for a failed controller request.
pub fn controller_refusal(error: &crate::control::ControlError) -> TopicRefusal {
    use controller::ControllerError as C;
    let message = match error {
        // Kafka's own wording, without rill's prefix.
        crate::control::ControlError::Refused(
            C::InvalidConfig(why) | C::InvalidRequest(why) | C::InvalidPartitions(why),
        ) => why.clone(),
        crate::control::ControlError::Refused(refusal) => refusal.to_string(),
        other => other.to_string(),
    };
    let code = match error {
        crate::control::ControlError::Refused(refusal) => match refusal {
            C::TopicAlreadyExists(_) => E::TopicAlreadyExists,
            C::UnknownTopicOrPartition(_) => E::UnknownTopicOrPartition,
            C::InvalidTopic(_) => E::InvalidTopicException,
            C::InvalidPartitions(_) => E::InvalidPartitions,
            C::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment,
            C::InvalidConfig(_) => E::InvalidConfig,
            C::InvalidRequest(_) => E::InvalidRequest,
            C::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor,
            C::NotController => E::NotController,
            C::LimitReached(_) => E::PolicyViolation,
            other => {
                tracing::info!(%other, "controller refused");
                E::UnknownServerError
            }
        },
        other => {
            tracing::info!(%other, "controller request failed");
            E::RequestTimedOut
        }
    };
    TopicRefusal::new(code, message)
}

/// CreateTopics.
pub async fn create_topics(shared: &Shared, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.as_str()).or_default() += 1;
    }
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let spec = TopicSpec {
            partitions: topic.num_partitions,
            replication_factor: i32::from(topic.replication_factor),
            configs: topic
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
            assignments: topic
                .assignments
                .iter()
                .map(|a| {
                    let replicas = a.broker_ids.iter().map(|b| BrokerId(b.0)).collect();
                    (a.partition_index, replicas)
                })
                .collect(),
            validate_only: request.validate_only,
        };
        let outcome = if is_internal_topic(&name) {
            // Kafka's answer to creating its metadata topic (KafkaApis.handleCreateTopicsRequest);
            // rill gives it for every internal topic, whose settings are the broker's.
            Err(TopicRefusal::new(
                E::InvalidRequest,
                format!("Creation of internal topic {name} is prohibited."),
            ))
        } else if seen.get(name.as_str()).copied().unwrap_or(0) > 1 {
            Err(TopicRefusal::new(
                E::InvalidRequest,
                format!("Create topics request contains multiple entries for the topic {name}"),
            ))
        } else {
            create_topic(shared, &name, spec).await
        };
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        results.push(match outcome {
            Ok(assignments) => {
                let rf = assignments.first().map_or(0, Vec::len);
                result
                    .with_num_partitions(i32::try_from(assignments.len()).expect("bounded"))
                    .with_replication_factor(i16::try_from(rf).expect("bounded"))
            }
            Err(refusal) => result
                .with_error_code(refusal.code)
                .with_error_message(Some(str_bytes(refusal.message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
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
        let outcome = if is_internal_topic(&topic) {
            // Kafka refuses a deletion the principal lacks DELETE on with this code; rill has
            // no ACLs yet, so no client holds DELETE on an internal topic.
            Err(TopicRefusal::new(
                E::TopicAuthorizationFailed,
                format!("Internal topic {topic} cannot be deleted by a client."),
            ))
        } else if !shared.image().topics().contains_key(&topic) {
            Err(TopicRefusal::new(
                E::UnknownTopicOrPartition,
                format!("This server does not host this topic: {topic}"),
            ))
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
                    Ok(())
                }
                Err(error) => Err(controller_refusal(&error)),
            }
        };
        let result = DeletableTopicResult::default().with_name(Some(name));
        responses.push(match outcome {
            Ok(()) => result,
            Err(refusal) => result
                .with_error_code(refusal.code)
                .with_error_message(Some(str_bytes(refusal.message))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Asks the controller to grow `name` to `count` partitions (or, validate-only, to check).
async fn create_partitions_one(
    shared: &Shared,
    name: &str,
    count: i32,
    assignments: Vec<Vec<BrokerId>>,
    validate_only: bool,
) -> Result<(), TopicRefusal> {
    if !shared.image().topics().contains_key(name) {
        return Err(TopicRefusal::new(
            E::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    }
    let request = controller::Request::CreatePartitions {
        name: name.to_string(),
        partitions: count,
        assignments,
        validate_only,
    };
    match shared.controller.request(request).await {
        Ok(controller::Reply::PartitionsCreated { .. }) => {
            if !validate_only {
                let wanted = usize::try_from(count).expect("the controller took it: positive");
                wait_for_image(shared, |image| {
                    image
                        .topics()
                        .get(name)
                        .is_some_and(|t| t.partitions.len() >= wanted)
                })
                .await;
            }
            Ok(())
        }
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered CreatePartitions with another reply"
            );
            Err(TopicRefusal::new(
                E::UnknownServerError,
                "unexpected controller reply",
            ))
        }
        Err(error) => Err(controller_refusal(&error)),
    }
}

/// CreatePartitions: grows each topic to its requested count (Kafka refuses a decrease or an
/// equal count with INVALID_PARTITIONS); new partitions are placed as CreateTopics places them,
/// or as the request assigns them.
pub async fn create_partitions(
    shared: &Shared,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let assignments: Vec<Vec<BrokerId>> = topic
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
            .collect();
        let outcome = if seen.get(name.as_str()).copied().unwrap_or(0) > 1 {
            Err(TopicRefusal::new(
                E::InvalidRequest,
                "Duplicate topic name.",
            ))
        } else {
            create_partitions_one(
                shared,
                &name,
                topic.count,
                assignments,
                request.validate_only,
            )
            .await
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match outcome {
            Ok(()) => result,
            Err(refusal) => result
                .with_error_code(refusal.code)
                .with_error_message(Some(str_bytes(refusal.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// DescribeCluster (KIP-700; Kafka's admin client's `describeCluster` since 2.8): the brokers
/// and controller id Metadata reports. Endpoint type 2 (controllers, KIP-919) is refused with
/// UNSUPPORTED_ENDPOINT_TYPE, as by a Kafka broker: rill's controllers speak no Kafka protocol.
pub fn describe_cluster(
    shared: &Shared,
    request: &kafka_protocol::messages::DescribeClusterRequest,
    version: i16,
    access: &Access,
) -> kafka_protocol::messages::DescribeClusterResponse {
    let listener = access.listener.as_str();
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::DescribeClusterResponse;
    let endpoint_type = if version >= 1 {
        request.endpoint_type
    } else {
        1
    };
    if endpoint_type != 1 {
        return DescribeClusterResponse::default()
            .with_error_code(E::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "rill brokers answer for the brokers endpoint only",
            )))
            .with_cluster_id(str_bytes("rill"))
            .with_controller_id(KBroker(-1));
    }
    let image = shared.image();
    let brokers: Vec<DescribeClusterBroker> = image
        .brokers()
        .iter()
        .filter(|(_, registration)| !registration.fenced)
        .filter_map(|(id, registration)| {
            let listener = endpoint(registration, listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(KBroker(id.0))
                    .with_host(str_bytes(listener.host.clone()))
                    .with_port(i32::from(listener.port))
                    .with_rack(registration.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    assert!(brokers.len() <= image.brokers().len());
    let cluster_operations = if request.include_cluster_authorized_operations {
        access.authorized_operations(resource::CLUSTER, CLUSTER_NAME)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes("rill"))
        .with_controller_id(KBroker(controller_id(shared, &image)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_operations)
}
