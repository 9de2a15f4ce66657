//! Dynamic broker configs (Kafka's KIP-226 in KRaft): the broker settings rill lets
//! AlterConfigs and IncrementalAlterConfigs change at run time, per broker (resource name = the
//! broker id) or as the cluster-wide default (resource name `""`), stored in the metadata log
//! (`MetadataRecord::AlterBrokerConfig`, Kafka's `ConfigRecord`) so every broker applies them and
//! a restart keeps them. The precedence is Kafka's: a broker's own value, then the cluster
//! default, then the node's config file, then the built-in default.
//!
//! The catalog is the subset of Kafka's dynamically updatable broker configs rill accepts. The
//! log defaults (Kafka's `DynamicLogConfig`: the broker synonyms of topic configs) take effect on
//! every partition of a topic without its own value; `log.flush.interval.*` and
//! `sasl.kerberos.min.time.before.relogin` are stored and described and have no further effect
//! (rill fsyncs every append; rill has no GSSAPI). The controller validates with it before
//! proposing and the image again on apply, so every node refuses the same records.

use crate::error::ControllerError;
use crate::topic_configs::{self, AlterOp, ConfigChange, ConfigKind};
use std::collections::BTreeMap;

/// Most dynamic configs one resource may carry: bounds record and image sizes.
pub const CONFIGS_MAX: usize = 64;

/// Where a dynamic config may be set (Kafka's `dynamicConfigUpdateModes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// At the cluster default and per broker.
    ClusterWide,
    /// Per broker only: at the default Kafka answers "Cannot update these configs at default
    /// cluster level, broker id must be specified".
    PerBroker,
}

/// One dynamic broker config rill accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicDef {
    /// Kafka's broker config name.
    pub name: &'static str,
    /// Its type and validator.
    pub kind: ConfigKind,
    /// Where it may be set.
    pub scope: Scope,
    /// The topic config it is the broker default of (Kafka's synonym), if any: topics without
    /// their own value take it.
    pub topic_config: Option<&'static str>,
    /// The value without any setting, as DescribeConfigs shows it (`None`: no value).
    pub default: Option<&'static str>,
    /// Does rill act on it?
    pub applied: bool,
}

/// The type of a log default: its topic config's.
const fn log_default(
    name: &'static str,
    topic_config: &'static str,
    kind: ConfigKind,
    default: Option<&'static str>,
    applied: bool,
) -> DynamicDef {
    DynamicDef {
        name,
        kind,
        scope: Scope::ClusterWide,
        topic_config: Some(topic_config),
        default,
        applied,
    }
}

/// Every dynamic broker config rill accepts, sorted by name. The log defaults are settable here
/// as in Kafka; those whose value lives in the node's config file (`[log]`) also show that value
/// below a dynamic one. Defaults are Kafka's, or rill's where rill's file default differs (the
/// broker describes the file's value).
pub const DYNAMIC_BROKER_CONFIGS: &[DynamicDef] = &[
    log_default(
        "compression.type",
        "compression.type",
        ConfigKind::Choice {
            allowed: topic_configs::COMPRESSION_TYPES,
        },
        Some("producer"),
        true,
    ),
    log_default(
        "log.cleaner.delete.retention.ms",
        "delete.retention.ms",
        ConfigKind::Long { min: 0 },
        Some("86400000"),
        true,
    ),
    log_default(
        "log.cleanup.policy",
        "cleanup.policy",
        ConfigKind::List {
            allowed: topic_configs::CLEANUP_POLICIES,
            default: "delete",
        },
        Some("delete"),
        true,
    ),
    log_default(
        "log.flush.interval.messages",
        "flush.messages",
        ConfigKind::Long { min: 1 },
        Some("9223372036854775807"),
        false,
    ),
    log_default(
        "log.flush.interval.ms",
        "flush.ms",
        ConfigKind::Long { min: 0 },
        Some("9223372036854775807"),
        false,
    ),
    log_default(
        "log.message.timestamp.type",
        "message.timestamp.type",
        ConfigKind::Choice {
            allowed: topic_configs::TIMESTAMP_TYPES,
        },
        Some("CreateTime"),
        true,
    ),
    log_default(
        "log.retention.bytes",
        "retention.bytes",
        ConfigKind::Long { min: i64::MIN },
        Some("-1"),
        true,
    ),
    log_default(
        "log.retention.ms",
        "retention.ms",
        ConfigKind::Long { min: -1 },
        Some("604800000"),
        true,
    ),
    log_default(
        "log.roll.ms",
        "segment.ms",
        ConfigKind::Long { min: 1 },
        Some("604800000"),
        true,
    ),
    log_default(
        "log.segment.bytes",
        "segment.bytes",
        ConfigKind::Int {
            min: topic_configs::SEGMENT_BYTES_MIN,
        },
        Some("1073741824"),
        true,
    ),
    log_default(
        "message.max.bytes",
        "max.message.bytes",
        ConfigKind::Int { min: 0 },
        Some("1049600"),
        true,
    ),
    DynamicDef {
        name: "sasl.kerberos.min.time.before.relogin",
        kind: ConfigKind::Long { min: i64::MIN },
        scope: Scope::PerBroker,
        topic_config: None,
        default: Some("60000"),
        applied: false,
    },
];

/// The definition of dynamic broker config `name`, if rill accepts it.
pub fn lookup(name: &str) -> Option<&'static DynamicDef> {
    DYNAMIC_BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The broker id a BROKER resource name stands for: `None` for `""` (the cluster default).
/// Kafka's controller's rules (`ControllerConfigurationValidator.validateBrokerName`).
pub fn resource_broker(resource: &str) -> Result<Option<i32>, ControllerError> {
    if resource.is_empty() {
        return Ok(None);
    }
    let id: i32 = resource.parse().map_err(|_| {
        ControllerError::InvalidRequest("Unable to parse broker name as a base 10 number.".into())
    })?;
    if id < 0 {
        return Err(ControllerError::InvalidRequest(
            "Invalid negative broker ID.".into(),
        ));
    }
    // Only the canonical spelling: "01" and "1" must not be two resources.
    if id.to_string() != resource {
        return Err(ControllerError::InvalidRequest(format!(
            "Broker id {resource:?} is not in its canonical form"
        )));
    }
    Ok(Some(id))
}

/// Checks `value` for dynamic broker config `name` and returns it in its stored form. An unknown
/// name is INVALID_CONFIG; an invalid value INVALID_REQUEST with Kafka's message (Kafka's broker
/// wraps the `ConfigException` in an `InvalidRequestException`, KAFKA-13609).
pub fn validate(name: &str, value: &str) -> Result<String, ControllerError> {
    let def = lookup(name).ok_or_else(|| unknown(name))?;
    topic_configs::validate_kind(def.name, def.kind, value).map_err(|error| match error {
        ControllerError::InvalidConfig(why) => ControllerError::InvalidRequest(why),
        other => other,
    })
}

fn unknown(name: &str) -> ControllerError {
    ControllerError::InvalidConfig(format!("Unknown broker config name: {name}"))
}

/// Kafka's rendering of a set of names in its messages (`Set(a, b)`).
fn set_of(names: &[&str]) -> String {
    format!("Set({})", names.join(", "))
}

/// The configs of BROKER resource `resource` after `changes`, starting from `current` (or from
/// none when `replace`, AlterConfigs' whole-set semantics). Kafka's rules and codes: a name at
/// most once and a value for every SET, APPEND and SUBTRACT (INVALID_REQUEST), names rill knows
/// (INVALID_CONFIG), per-broker configs not at the default (INVALID_REQUEST), APPEND and
/// SUBTRACT on list configs only (INVALID_CONFIG), every value valid (INVALID_REQUEST).
pub fn altered(
    resource: &str,
    current: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
) -> Result<BTreeMap<String, String>, ControllerError> {
    let broker = resource_broker(resource)?;
    let mut names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(ControllerError::InvalidRequest(
            "Error due to duplicate config keys".into(),
        ));
    }
    let nulls: Vec<&str> = changes
        .iter()
        .filter(|c| c.op != AlterOp::Delete && c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ControllerError::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    if let Some(change) = changes.iter().find(|c| lookup(&c.name).is_none()) {
        return Err(unknown(&change.name));
    }
    if broker.is_none() {
        let per_broker: Vec<&str> = changes
            .iter()
            .filter(|c| c.op != AlterOp::Delete)
            .filter_map(|c| lookup(&c.name))
            .filter(|d| d.scope == Scope::PerBroker)
            .map(|d| d.name)
            .collect();
        if !per_broker.is_empty() {
            return Err(ControllerError::InvalidRequest(format!(
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: {}",
                set_of(&per_broker)
            )));
        }
    }
    let mut configs = if replace {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for change in changes {
        let def = lookup(&change.name).expect("every name was looked up above");
        let value = change.value.as_deref().unwrap_or_default();
        let next = match (change.op, def.kind) {
            (AlterOp::Delete, _) => {
                configs.remove(def.name);
                continue;
            }
            (AlterOp::Set, _) => validate(def.name, value)?,
            (AlterOp::Append | AlterOp::Subtract, ConfigKind::List { default, .. }) => {
                let old = configs.get(def.name).map_or(default, String::as_str);
                validate(def.name, &topic_configs::edit_list(change.op, old, value))?
            }
            (op, _) => {
                let verb = if op == AlterOp::Append {
                    "append"
                } else {
                    "subtract"
                };
                return Err(ControllerError::InvalidConfig(format!(
                    "Config value {verb} is not allowed for config key: {}",
                    def.name
                )));
            }
        };
        configs.insert(def.name.to_string(), next);
    }
    check(resource, &configs)?;
    Ok(configs)
}

/// The image's rule for a resource's stored configs: a valid resource name, at most
/// [`CONFIGS_MAX`] configs, each known, allowed at that level and in its stored form.
pub fn check(resource: &str, configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    let broker = resource_broker(resource)?;
    if configs.len() > CONFIGS_MAX {
        return Err(ControllerError::InvalidConfig(format!(
            "{} configs: a broker resource has at most {CONFIGS_MAX}",
            configs.len()
        )));
    }
    for (name, value) in configs {
        let def = lookup(name).ok_or_else(|| unknown(name))?;
        if broker.is_none() && def.scope == Scope::PerBroker {
            return Err(ControllerError::InvalidRequest(format!(
                "{name} is a per-broker config"
            )));
        }
        if &validate(name, value)? != value {
            return Err(ControllerError::InvalidConfig(format!(
                "{name}: {value:?} is not in its stored form"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn change(name: &str, op: AlterOp, value: Option<&str>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op,
            value: value.map(String::from),
        }
    }

    #[test]
    fn the_catalog_is_sorted_unique_and_its_defaults_valid() {
        assert!(DYNAMIC_BROKER_CONFIGS
            .windows(2)
            .all(|w| w[0].name < w[1].name));
        for def in DYNAMIC_BROKER_CONFIGS {
            if let Some(default) = def.default {
                assert_eq!(
                    validate(def.name, default).unwrap(),
                    default,
                    "{}",
                    def.name
                );
            }
            if let Some(topic) = def.topic_config {
                let topic_def = topic_configs::lookup(topic).unwrap();
                assert_eq!(topic_def.kind, def.kind, "{}", def.name);
                assert_eq!(topic_def.broker_synonym, def.name, "{}", def.name);
            }
        }
    }

    #[test]
    fn resource_names_are_empty_or_a_broker_id() {
        assert_eq!(resource_broker(""), Ok(None));
        assert_eq!(resource_broker("3"), Ok(Some(3)));
        for bad in ["x", "-1", "01", " 1", "99999999999"] {
            assert!(
                matches!(
                    resource_broker(bad),
                    Err(ControllerError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn alterations_follow_kafkas_rules_and_codes() {
        let set = |name, value| change(name, AlterOp::Set, Some(value));
        let next = altered(
            "1",
            &BTreeMap::new(),
            &[
                set("sasl.kerberos.min.time.before.relogin", "58000"),
                set("log.retention.ms", " 1000 "),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[
                ("log.retention.ms", "1000"),
                ("sasl.kerberos.min.time.before.relogin", "58000")
            ])
        );
        // Incremental keeps what it does not name; AlterConfigs replaces the set.
        let more = altered("1", &next, &[set("log.segment.bytes", "4096")], false).unwrap();
        assert_eq!(more.len(), 3);
        let replaced = altered("1", &next, &[set("log.segment.bytes", "4096")], true).unwrap();
        assert_eq!(replaced, map(&[("log.segment.bytes", "4096")]));
        // APPEND and SUBTRACT start from the default list.
        let appended = altered(
            "",
            &BTreeMap::new(),
            &[change(
                "log.cleanup.policy",
                AlterOp::Append,
                Some("compact"),
            )],
            false,
        )
        .unwrap();
        assert_eq!(appended, map(&[("log.cleanup.policy", "delete,compact")]));
        let subtracted = altered(
            "",
            &appended,
            &[change(
                "log.cleanup.policy",
                AlterOp::Subtract,
                Some("delete"),
            )],
            false,
        )
        .unwrap();
        assert_eq!(subtracted, map(&[("log.cleanup.policy", "compact")]));
        let deleted = altered(
            "",
            &subtracted,
            &[change("log.cleanup.policy", AlterOp::Delete, None)],
            false,
        )
        .unwrap();
        assert!(deleted.is_empty());

        let refused = |resource, changes: &[ConfigChange]| {
            altered(resource, &BTreeMap::new(), changes, false).unwrap_err()
        };
        assert_eq!(
            refused("1", &[set("no.such.config", "1")]),
            ControllerError::InvalidConfig("Unknown broker config name: no.such.config".into())
        );
        assert_eq!(
            refused("1", &[set("log.retention.ms", "soon")]),
            ControllerError::InvalidRequest(
                "Invalid value soon for configuration log.retention.ms: Not a number of type LONG"
                    .into()
            )
        );
        assert_eq!(
            refused("", &[set("sasl.kerberos.min.time.before.relogin", "1")]),
            ControllerError::InvalidRequest(
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: Set(sasl.kerberos.min.time.before.relogin)"
                    .into()
            )
        );
        assert_eq!(
            refused(
                "1",
                &[change("log.retention.ms", AlterOp::Append, Some("1"))]
            ),
            ControllerError::InvalidConfig(
                "Config value append is not allowed for config key: log.retention.ms".into()
            )
        );
        assert!(matches!(
            refused(
                "1",
                &[set("log.retention.ms", "1"), set("log.retention.ms", "2")]
            ),
            ControllerError::InvalidRequest(_)
        ));
        assert!(matches!(
            refused("1", &[change("log.retention.ms", AlterOp::Set, None)]),
            ControllerError::InvalidRequest(_)
        ));
        assert!(matches!(
            refused("one", &[set("log.retention.ms", "1")]),
            ControllerError::InvalidRequest(_)
        ));
    }

    #[test]
    fn records_apply_survive_a_snapshot_and_bad_ones_change_nothing() {
        use crate::records::{decode_batch, encode_batch, MetadataRecord};
        use crate::MetadataImage;
        let mut image = MetadataImage::new();
        let record = |resource: &str, configs| MetadataRecord::AlterBrokerConfig {
            resource: resource.into(),
            configs,
        };
        let good = vec![record("2", map(&[("log.retention.ms", "1000")]))];
        let decoded = decode_batch(&encode_batch(&good)).unwrap();
        image.apply_batch(1, &decoded).unwrap();
        assert_eq!(
            image.broker_config(wire::BrokerId(2), "log.retention.ms"),
            Some(("1000", true))
        );
        assert_eq!(
            image.broker_config(wire::BrokerId(1), "log.retention.ms"),
            None
        );
        let restored = MetadataImage::decode(&image.encode()).unwrap();
        assert_eq!(restored, image);
        for bad in [
            record("", map(&[("sasl.kerberos.min.time.before.relogin", "1")])),
            record("2", map(&[("log.retention.ms", "soon")])),
            record("2", map(&[("broker.id", "7")])),
            record("-3", map(&[("log.retention.ms", "1")])),
        ] {
            let before = image.clone();
            assert!(image
                .apply_batch(image.applied_index() + 1, &vec![bad])
                .is_err());
            assert_eq!(image.broker_configs("2"), before.broker_configs("2"));
            assert_eq!(image.all_broker_configs().len(), 1);
        }
        // An empty set removes the resource.
        image
            .apply_batch(
                image.applied_index() + 1,
                &vec![record("2", BTreeMap::new())],
            )
            .unwrap();
        assert!(image.all_broker_configs().is_empty());
        // Foreign or mangled bytes never decode into a record.
        let mangled = br#"[{"AlterBrokerConfig":{"resource":2,"configs":[]}}]"#;
        assert!(decode_batch(mangled).is_none());
        assert!(decode_batch(b"\xff\x00garbage").is_none());
    }

    #[test]
    fn stored_configs_are_checked_again() {
        assert!(check("1", &map(&[("log.retention.ms", "1000")])).is_ok());
        assert!(check("", &map(&[("sasl.kerberos.min.time.before.relogin", "1")])).is_err());
        assert!(check("1", &map(&[("log.retention.ms", " 1000")])).is_err());
        assert!(check("1", &map(&[("broker.id", "2")])).is_err());
        assert!(check("x", &BTreeMap::new()).is_err());
    }
}
