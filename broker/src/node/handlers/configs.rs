//! Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs. A topic's configs live in
//! the metadata (`controller::topic_configs` is the catalog and the validator). A broker's
//! settings come from its config file (`super::super::broker_settings` names them as Kafka does)
//! and, for the dynamic broker configs rill accepts (`controller::broker_configs`, KIP-226), from
//! the metadata log too: per broker (resource name = its id) or as the cluster default (`""`).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::super::config::{LogSettings, NodeConfig, TopicDefaults};
use super::super::shared::Shared;
use super::metadata::{controller_refusal, TopicRefusal};
use controller::topic_configs::{self, AlterOp, ConfigChange, ElectionDefaults};
use controller::TopicConfig;

/// Kafka's resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes (DescribeConfigs v1+).
pub mod source {
    /// A topic's own config.
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    /// A dynamic config of this broker (KIP-226).
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    /// A dynamic config of the cluster default.
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    /// Set in the broker's config file.
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    /// Nobody set it: the built-in default.
    pub const DEFAULT_CONFIG: i8 = 5;
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A broker-side value of a topic config: the value and whether the node's config file set it
/// (STATIC_BROKER_CONFIG) or it is the built-in default (DEFAULT_CONFIG).
struct BrokerValue {
    /// The value topics without an override get.
    value: String,
    /// Where it comes from.
    source: i8,
}

/// The broker's value of topic config `name`: Kafka's precedence below a topic's own config, a
/// dynamic broker config (this broker's, then the cluster default's) over the node's file.
fn broker_value_dynamic(
    config: &NodeConfig,
    image: &controller::MetadataImage,
    broker: wire::BrokerId,
    def: &topic_configs::ConfigDef,
) -> BrokerValue {
    match image.broker_config(broker, def.broker_synonym) {
        Some((value, per_broker)) => BrokerValue {
            value: value.to_string(),
            source: if per_broker {
                source::DYNAMIC_BROKER_CONFIG
            } else {
                source::DYNAMIC_DEFAULT_BROKER_CONFIG
            },
        },
        None => broker_value(config, def.name),
    }
}

/// The node's value of topic config `name` from its file: Kafka's precedence below a topic's own
/// config.
fn broker_value(config: &NodeConfig, name: &str) -> BrokerValue {
    let (log, log_default) = (&config.log, LogSettings::default());
    let (topics, topics_default) = (&config.topics, TopicDefaults::default());
    let node = |value: String, default: String| BrokerValue {
        source: if value == default {
            source::DEFAULT_CONFIG
        } else {
            source::STATIC_BROKER_CONFIG
        },
        value,
    };
    let built_in = |value: &str| BrokerValue {
        value: value.to_string(),
        source: source::DEFAULT_CONFIG,
    };
    let log_core_default = log_core::LogConfig::default();
    match name {
        "cleanup.policy" => built_in("delete"),
        "compression.type" => node(
            log.compression_type.clone(),
            log_default.compression_type.clone(),
        ),
        "delete.retention.ms" => built_in(&log_core_default.delete_retention_ms.to_string()),
        "max.message.bytes" => node(
            log.message_max_bytes.to_string(),
            log_default.message_max_bytes.to_string(),
        ),
        "flush.messages" | "flush.ms" => built_in(&i64::MAX.to_string()),
        "message.format.version" => built_in("3.0-IV1"),
        "message.timestamp.type" => built_in("CreateTime"),
        "min.insync.replicas" => node(
            topics.min_insync_replicas.to_string(),
            topics_default.min_insync_replicas.to_string(),
        ),
        "retention.bytes" => node(
            log.retention_bytes.to_string(),
            log_default.retention_bytes.to_string(),
        ),
        "retention.ms" => node(
            log.retention_ms.to_string(),
            log_default.retention_ms.to_string(),
        ),
        "segment.bytes" => node(
            log.segment_bytes.to_string(),
            log_default.segment_bytes.to_string(),
        ),
        "segment.ms" => built_in(&log_core_default.segment_age_ms_max.to_string()),
        "unclean.leader.election.enable" => node(
            topics.unclean_leader_election.to_string(),
            topics_default.unclean_leader_election.to_string(),
        ),
        other => unreachable!("{other} is in the topic config catalog but has no broker value"),
    }
}

/// One DescribeConfigs entry of topic `config` for `def`.
fn topic_entry(
    shared: &Shared,
    image: &controller::MetadataImage,
    config: &TopicConfig,
    def: &topic_configs::ConfigDef,
    synonyms: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let broker = broker_value_dynamic(&shared.config, image, shared.broker_id, def);
    let own = config.overrides.get(def.name);
    // min ISR and unclean election were resolved when the topic was created: show what the
    // controller elects with.
    let resolved = match def.name {
        "min.insync.replicas" => Some(config.min_insync_replicas.to_string()),
        "unclean.leader.election.enable" => Some(config.unclean_leader_election.to_string()),
        _ => None,
    };
    let (value, config_source) = match own {
        Some(value) => (value.clone(), source::DYNAMIC_TOPIC_CONFIG),
        None => (resolved.unwrap_or(broker.value.clone()), broker.source),
    };
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(def.name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(false)
        .with_config_source(config_source);
    if version >= 3 {
        entry = entry.with_config_type(super::super::broker_settings::kind_type(def.kind));
    }
    if synonyms {
        let mut list = Vec::new();
        if let Some(value) = own {
            list.push((def.name, value.clone(), source::DYNAMIC_TOPIC_CONFIG));
        }
        list.push((def.broker_synonym, broker.value, broker.source));
        entry = entry.with_synonyms(
            list.into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                        .with_source(source)
                })
                .collect(),
        );
    }
    entry
}

/// The BROKER resource `name` is this broker (`Ok(true)`) or the cluster default (`Ok(false)`);
/// another broker's id, or a name that is not one, is Kafka's INVALID_REQUEST.
fn broker_resource(shared: &Shared, name: &str) -> Result<bool, TopicRefusal> {
    if name.is_empty() {
        return Ok(false);
    }
    let me = shared.broker_id.0;
    match name.parse::<i32>() {
        Ok(id) if id == me => Ok(true),
        Ok(_) => Err(TopicRefusal::new(
            E::InvalidRequest,
            format!("Unexpected broker id, expected {me} or empty string, but received {name}"),
        )),
        Err(_) => Err(TopicRefusal::new(
            E::InvalidRequest,
            format!("Broker id must be an integer, but it is: {name}"),
        )),
    }
}

/// DescribeConfigs of a BROKER resource, as Kafka's `ConfigHelper` answers it: this broker lists
/// every setting, its value and source by KIP-226's precedence (its own dynamic value, the
/// cluster default's, the file's, the built-in one), the synonyms in that order when asked,
/// `read_only` unless rill accepts it dynamically, secrets with a null value; the cluster
/// default (`""`) lists the dynamic defaults set.
fn describe_broker(
    shared: &Shared,
    image: &controller::MetadataImage,
    name: &str,
    include_synonyms: bool,
    version: i16,
) -> Result<Vec<DescribeConfigsResourceResult>, TopicRefusal> {
    use super::super::broker_settings::{self, kind_type};
    let this_broker = broker_resource(shared, name)?;
    let entry = |name: &str,
                 synonyms: Vec<(Option<String>, i8)>,
                 fallback: Option<String>,
                 read_only: bool,
                 sensitive: bool,
                 kind: i8| {
        let (value, config_source) = match synonyms.first() {
            Some((value, source)) => (value.clone(), *source),
            None => (fallback, source::DEFAULT_CONFIG),
        };
        let hide = |value: Option<String>| if sensitive { None } else { value };
        let mut entry = DescribeConfigsResourceResult::default()
            .with_name(str_bytes(name))
            .with_value(hide(value).map(str_bytes))
            .with_read_only(read_only)
            .with_is_sensitive(sensitive)
            .with_config_source(config_source);
        if version >= 3 {
            entry = entry.with_config_type(kind);
        }
        if include_synonyms {
            entry = entry.with_synonyms(
                synonyms
                    .into_iter()
                    .map(|(value, source)| {
                        DescribeConfigsSynonym::default()
                            .with_name(str_bytes(name))
                            .with_value(hide(value).map(str_bytes))
                            .with_source(source)
                    })
                    .collect(),
            );
        }
        entry
    };
    let defaults = image.broker_configs("");
    if !this_broker {
        let Some(defaults) = defaults else {
            return Ok(Vec::new());
        };
        return Ok(defaults
            .iter()
            .filter_map(|(key, value)| {
                let def = controller::broker_configs::lookup(key)?;
                let synonyms = vec![(Some(value.clone()), source::DYNAMIC_DEFAULT_BROKER_CONFIG)];
                Some(entry(
                    def.name,
                    synonyms,
                    None,
                    false,
                    false,
                    kind_type(def.kind),
                ))
            })
            .collect());
    }
    let own = image.broker_configs(&shared.broker_id.0.to_string());
    Ok(broker_settings::settings(&shared.config)
        .into_iter()
        .map(|setting| {
            let dynamic = |map: Option<&std::collections::BTreeMap<String, String>>| {
                map.and_then(|m| m.get(setting.name)).cloned()
            };
            let mut synonyms = Vec::new();
            if let Some(value) = dynamic(own) {
                synonyms.push((Some(value), source::DYNAMIC_BROKER_CONFIG));
            }
            if let Some(value) = dynamic(defaults) {
                synonyms.push((Some(value), source::DYNAMIC_DEFAULT_BROKER_CONFIG));
            }
            if setting.in_file {
                synonyms.push((setting.value.clone(), source::STATIC_BROKER_CONFIG));
            }
            if setting.default.is_some() {
                synonyms.push((setting.default.clone(), source::DEFAULT_CONFIG));
            }
            entry(
                setting.name,
                synonyms,
                setting.value.clone(),
                !setting.dynamic(),
                setting.sensitive,
                setting.config_type,
            )
        })
        .collect())
}

/// DescribeConfigs for topics and brokers. Topic entries are every config of the catalog,
/// alterable, with the topic's own value (DYNAMIC_TOPIC_CONFIG) or the broker's; broker entries
/// are read-only.
pub fn describe_configs(
    shared: &Shared,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = shared.image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let configs: Vec<DescribeConfigsResourceResult> = match resource.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = image.topics().get(&name) else {
                        return base
                            .with_error_code(E::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Topic {name} does not exist"
                            ))));
                    };
                    topic_configs::TOPIC_CONFIGS
                        .iter()
                        .filter(|def| wanted(def.name))
                        .map(|def| {
                            topic_entry(
                                shared,
                                &image,
                                &topic.config,
                                def,
                                request.include_synonyms,
                                version,
                            )
                        })
                        .collect()
                }
                RESOURCE_BROKER => {
                    match describe_broker(shared, &image, &name, request.include_synonyms, version)
                    {
                        Ok(entries) => entries
                            .into_iter()
                            .filter(|entry| wanted(entry.name.as_str()))
                            .collect(),
                        Err(refusal) => {
                            return base
                                .with_error_code(refusal.code)
                                .with_error_message(Some(str_bytes(refusal.message)))
                        }
                    }
                }
                other => {
                    return base
                        .with_error_code(E::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Unsupported resource type {other}"
                        ))))
                }
            };
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource of an AlterConfigs or IncrementalAlterConfigs request, in rill's terms.
pub struct ConfigAlteration {
    /// Kafka's resource type.
    pub resource_type: i8,
    /// The topic name or broker id.
    pub resource_name: String,
    /// The changes; AlterConfigs' entries are SETs.
    pub changes: Vec<ConfigChange>,
}

/// Alters one resource: a topic through the controller; a broker's configs are static in rill.
async fn alter_one(
    shared: &Shared,
    alteration: ConfigAlteration,
    replace: bool,
    validate_only: bool,
) -> Result<(), TopicRefusal> {
    let name = alteration.resource_name;
    match alteration.resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return alter_broker(shared, &name, alteration.changes, replace, validate_only).await
        }
        other => {
            return Err(TopicRefusal::new(
                E::InvalidRequest,
                format!("Unsupported resource type {other}"),
            ))
        }
    }
    if !shared.image().topics().contains_key(&name) {
        return Err(TopicRefusal::new(
            E::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        ));
    }
    let defaults = ElectionDefaults {
        min_insync_replicas: shared.config.topics.min_insync_replicas,
        unclean_leader_election: shared.config.topics.unclean_leader_election,
    };
    let request = controller::Request::AlterTopicConfig {
        name: name.clone(),
        changes: alteration.changes,
        replace,
        defaults,
        validate_only,
    };
    match shared.controller.request(request).await {
        Ok(controller::Reply::TopicConfigAltered(config)) => {
            if !validate_only {
                super::metadata::wait_for_image(shared, |image| {
                    image
                        .topics()
                        .get(&name)
                        .is_some_and(|t| t.config == config)
                })
                .await;
            }
            Ok(())
        }
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered AlterTopicConfig with another reply"
            );
            Err(TopicRefusal::new(
                E::UnknownServerError,
                "unexpected controller reply",
            ))
        }
        Err(error) => Err(controller_refusal(&error)),
    }
}

/// Alters a BROKER resource's dynamic configs through the controller, after the checks Kafka's
/// broker makes before it forwards (`ConfigAdminManager.preprocess`): the resource is this broker
/// or the cluster default (INVALID_REQUEST otherwise), and no change SETs a setting rill reads
/// only from its file (INVALID_REQUEST "Cannot update these configs dynamically"). Values are
/// never logged: some configs are secrets.
async fn alter_broker(
    shared: &Shared,
    name: &str,
    changes: Vec<ConfigChange>,
    replace: bool,
    validate_only: bool,
) -> Result<(), TopicRefusal> {
    broker_resource(shared, name).map_err(|refusal| {
        let message = refusal
            .message
            .replace("Broker id must be", "Node id must be")
            .replace(" or empty string,", ",");
        TopicRefusal::new(E::InvalidRequest, message)
    })?;
    let settings = super::super::broker_settings::settings(&shared.config);
    let read_only: Vec<&str> = changes
        .iter()
        .filter(|c| c.op != AlterOp::Delete)
        .filter(|c| {
            settings
                .iter()
                .any(|s| s.name == c.name.as_str() && !s.dynamic())
        })
        .map(|c| c.name.as_str())
        .collect();
    if !read_only.is_empty() {
        return Err(TopicRefusal::new(
            E::InvalidRequest,
            format!(
                "Cannot update these configs dynamically: Set({})",
                read_only.join(", ")
            ),
        ));
    }
    let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    tracing::info!(resource = %name, configs = ?names, validate_only, replace, "altering broker configs");
    let request = controller::Request::AlterBrokerConfig {
        resource: name.to_string(),
        changes,
        replace,
        validate_only,
    };
    match shared.controller.request(request).await {
        Ok(controller::Reply::BrokerConfigAltered(configs)) => {
            if !validate_only {
                let resource = name.to_string();
                super::metadata::wait_for_image(shared, |image| {
                    image.broker_configs(&resource).cloned().unwrap_or_default() == configs
                })
                .await;
            }
            Ok(())
        }
        Ok(other) => {
            tracing::warn!(
                ?other,
                "the controller answered AlterBrokerConfig with another reply"
            );
            Err(TopicRefusal::new(
                E::UnknownServerError,
                "unexpected controller reply",
            ))
        }
        Err(error) => Err(controller_refusal(&error)),
    }
}

/// Alters every resource in turn; returns each one's outcome in request order.
async fn alter_all(
    shared: &Shared,
    alterations: Vec<ConfigAlteration>,
    replace: bool,
    validate_only: bool,
) -> Vec<(i8, String, Result<(), TopicRefusal>)> {
    let mut outcomes = Vec::with_capacity(alterations.len());
    let mut seen = std::collections::BTreeMap::<(i8, String), usize>::new();
    for a in &alterations {
        *seen
            .entry((a.resource_type, a.resource_name.clone()))
            .or_default() += 1;
    }
    for alteration in alterations {
        let (kind, name) = (alteration.resource_type, alteration.resource_name.clone());
        let outcome = if seen.get(&(kind, name.clone())).copied().unwrap_or(0) > 1 {
            Err(TopicRefusal::new(
                E::InvalidRequest,
                format!("Duplicate resource {name} of type {kind}"),
            ))
        } else {
            alter_one(shared, alteration, replace, validate_only).await
        };
        outcomes.push((kind, name, outcome));
    }
    outcomes
}

/// AlterConfigs: each resource's configs replaced by the request's (those it does not name
/// return to their defaults).
pub async fn alter_configs(shared: &Shared, request: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let alterations = request
        .resources
        .iter()
        .map(|resource| ConfigAlteration {
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.to_string(),
            changes: resource
                .configs
                .iter()
                .map(|c| ConfigChange {
                    name: c.name.to_string(),
                    op: AlterOp::Set,
                    value: c.value.as_ref().map(|v| v.to_string()),
                })
                .collect(),
        })
        .collect();
    let responses = alter_all(shared, alterations, true, request.validate_only)
        .await
        .into_iter()
        .map(|(kind, name, outcome)| {
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(name));
            match outcome {
                Ok(()) => base,
                Err(refusal) => base
                    .with_error_code(refusal.code)
                    .with_error_message(Some(str_bytes(refusal.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on each resource's configs.
pub async fn incremental_alter_configs(
    shared: &Shared,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut refused = Vec::new();
    let mut alterations = Vec::new();
    for resource in &request.resources {
        let mut changes = Vec::with_capacity(resource.configs.len());
        let mut bad_op = None;
        for c in &resource.configs {
            match AlterOp::from_code(c.config_operation) {
                Some(op) => changes.push(ConfigChange {
                    name: c.name.to_string(),
                    op,
                    value: c.value.as_ref().map(|v| v.to_string()),
                }),
                None => bad_op = Some(c.config_operation),
            }
        }
        let name = resource.resource_name.to_string();
        match bad_op {
            Some(op) => refused.push((resource.resource_type, name, op)),
            None => alterations.push(ConfigAlteration {
                resource_type: resource.resource_type,
                resource_name: name,
                changes,
            }),
        }
    }
    let mut outcomes = alter_all(shared, alterations, false, request.validate_only).await;
    for (kind, name, op) in refused {
        let refusal = TopicRefusal::new(E::InvalidRequest, format!("Unknown operation type {op}"));
        outcomes.push((kind, name, Err(refusal)));
    }
    // Answer in request order.
    let position = |kind: i8, name: &str| {
        request
            .resources
            .iter()
            .position(|r| r.resource_type == kind && r.resource_name.as_str() == name)
    };
    outcomes.sort_by_key(|(kind, name, _)| position(*kind, name));
    let responses = outcomes
        .into_iter()
        .map(|(kind, name, outcome)| {
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(name));
            match outcome {
                Ok(()) => base,
                Err(refusal) => base
                    .with_error_code(refusal.code)
                    .with_error_message(Some(str_bytes(refusal.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The topic config CreateTopics asks for: every entry a SET, validated like an alteration
/// (unknown names and invalid values are INVALID_CONFIG, a name twice INVALID_REQUEST).
pub fn topic_config_for_create(
    shared: &Shared,
    configs: &[(String, Option<String>)],
) -> Result<TopicConfig, TopicRefusal> {
    let defaults = ElectionDefaults {
        min_insync_replicas: shared.config.topics.min_insync_replicas,
        unclean_leader_election: shared.config.topics.unclean_leader_election,
    };
    if let Some((key, _)) = configs.iter().find(|(_, value)| value.is_none()) {
        return Err(TopicRefusal::new(
            E::InvalidConfig,
            format!("Null value not supported for topic configs: {key}"),
        ));
    }
    let changes: Vec<ConfigChange> = configs
        .iter()
        .map(|(key, value)| ConfigChange::set(key.clone(), value.clone().unwrap_or_default()))
        .collect();
    let empty = topic_configs::config_from_overrides(Default::default(), defaults)
        .expect("no overrides are valid");
    topic_configs::altered(&empty, &changes, true, defaults).map_err(|error| match error {
        controller::ControllerError::InvalidRequest(why) => {
            TopicRefusal::new(E::InvalidRequest, why)
        }
        controller::ControllerError::InvalidConfig(why) => TopicRefusal::new(E::InvalidConfig, why),
        other => TopicRefusal::new(E::InvalidConfig, other.to_string()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A one-node config for unit tests, with `extra` TOML appended.
    pub(crate) fn node(extra: &str) -> NodeConfig {
        let text = format!(
            "node_id = 1\nroles = [\"broker\", \"controller\"]\ndata_dir = \"/unused\"\n\
             controller_voters = [\"1@127.0.0.1:1\"]\n[listeners]\nkafka = \"127.0.0.1:2\"\n\
             controller = \"127.0.0.1:1\"\n{extra}"
        );
        NodeConfig::from_toml(&text).unwrap()
    }

    #[test]
    fn every_catalog_config_has_a_valid_broker_value() {
        let config = node("");
        for def in topic_configs::TOPIC_CONFIGS {
            let value = broker_value(&config, def.name);
            assert_eq!(value.source, source::DEFAULT_CONFIG, "{}", def.name);
            // AlterConfigs clients (librdkafka's 0092) set every described value back.
            assert_eq!(
                topic_configs::validate(def.name, &value.value).as_ref(),
                Ok(&value.value),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn a_value_set_in_the_config_file_is_a_static_broker_config() {
        let config = node("[log]\nretention_ms = 1000\n[topics]\nmin_insync_replicas = 2\n");
        let retention = broker_value(&config, "retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("1000", source::STATIC_BROKER_CONFIG)
        );
        let min_isr = broker_value(&config, "min.insync.replicas");
        assert_eq!(
            (min_isr.value.as_str(), min_isr.source),
            ("2", source::STATIC_BROKER_CONFIG)
        );
        let segment = broker_value(&config, "segment.bytes");
        assert_eq!(segment.source, source::DEFAULT_CONFIG);
    }

    #[test]
    fn topic_overrides_become_the_partitions_log_config() {
        let config = node("[log]\nretention_ms = 1000\n");
        let topic = |pairs: &[(&str, &str)]| TopicConfig {
            overrides: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..TopicConfig::default()
        };
        let base = config.log_config();
        assert_eq!(config.log_config_for(&topic(&[])), base);
        let compacted = config.log_config_for(&topic(&[("cleanup.policy", "compact")]));
        assert_eq!(
            compacted,
            log_core::LogConfig {
                compacted: true,
                retention_ms: None,
                retention_bytes: None,
                ..base.clone()
            },
            "compaction alone deletes nothing by age or size"
        );
        let all = config.log_config_for(&topic(&[
            ("cleanup.policy", "compact,delete"),
            ("compression.type", "zstd"),
            ("delete.retention.ms", "5"),
            ("max.message.bytes", "0"),
            ("message.timestamp.type", "LogAppendTime"),
            ("retention.bytes", "-1"),
            ("retention.ms", "-1"),
            ("segment.bytes", "4096"),
            ("segment.ms", "60000"),
        ]));
        assert_eq!(
            all,
            log_core::LogConfig {
                compacted: true,
                codec_target: Some(log_core::Codec::Zstd),
                delete_retention_ms: 5,
                batch_bytes_max: log_core::batch::HEADER_BYTES as u64,
                log_append_time: true,
                retention_bytes: None,
                retention_ms: None,
                segment_bytes_max: 4096,
                segment_age_ms_max: 60_000,
                ..base
            }
        );
    }
}
