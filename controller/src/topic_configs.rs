//! Topic configs: the names rill accepts, Kafka's validators for their values (`LogConfig`'s
//! `ConfigDef` in Kafka), and the one function that turns a change request (CreateTopics'
//! configs, AlterConfigs, IncrementalAlterConfigs) into the topic's next [`TopicConfig`]. The
//! controller validates with it before proposing and the image again on apply, so every node
//! refuses the same records; brokers read the catalog to describe and apply the values.

use crate::error::ControllerError;
use crate::records::TopicConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most dynamic configs one topic may carry: bounds record and image sizes.
pub const OVERRIDES_MAX: usize = 64;
/// Longest config value accepted, in bytes.
pub const VALUE_BYTES_MAX: usize = 1024;

/// A config's type and the values Kafka's validator accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// `true` or `false` (any case, as Java's `ConfigDef` parses them).
    Bool,
    /// A 32-bit integer of at least `min`.
    Int {
        /// The smallest value accepted.
        min: i64,
    },
    /// A 64-bit integer of at least `min`.
    Long {
        /// The smallest value accepted.
        min: i64,
    },
    /// One of `allowed`, exactly.
    Choice {
        /// The accepted values.
        allowed: &'static [&'static str],
    },
    /// A comma-separated list of at least one of `allowed` (APPEND and SUBTRACT apply).
    List {
        /// The accepted items.
        allowed: &'static [&'static str],
        /// Kafka's default, the list APPEND and SUBTRACT start from without an override.
        default: &'static str,
    },
    /// A Kafka version string (`message.format.version`): digits, letters, dots and dashes.
    Version,
}

/// One topic config rill knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// Its type and validator.
    pub kind: ConfigKind,
    /// The broker config supplying the default (Kafka's synonym), as DescribeConfigs names it.
    pub broker_synonym: &'static str,
    /// Does rill act on it? `message.format.version` is accepted and has no effect, as in Kafka
    /// 3.0 and later.
    pub applied: bool,
}

const fn def(
    name: &'static str,
    kind: ConfigKind,
    broker_synonym: &'static str,
    applied: bool,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        broker_synonym,
        applied,
    }
}

/// Kafka's `cleanup.policy` values.
pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
/// Kafka's `compression.type` values for topics.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// Kafka's `message.timestamp.type` values.
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// The smallest `segment.bytes` rill's segments take (Kafka's floor is 14 bytes; a segment
/// holds at least one batch header and rill's format asserts 1 KiB).
pub const SEGMENT_BYTES_MIN: i64 = 1024;

/// Every topic config rill accepts, sorted by name: DescribeConfigs lists them in this order.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        ConfigKind::List {
            allowed: CLEANUP_POLICIES,
            default: "delete",
        },
        "log.cleanup.policy",
        true,
    ),
    def(
        "compression.type",
        ConfigKind::Choice {
            allowed: COMPRESSION_TYPES,
        },
        "compression.type",
        true,
    ),
    def(
        "delete.retention.ms",
        ConfigKind::Long { min: 0 },
        "log.cleaner.delete.retention.ms",
        true,
    ),
    // Kafka flushes a log every `flush.messages` records or `flush.ms` (default: never, the OS
    // decides). rill fsyncs every append before acknowledging it, which is at least as often as
    // any value asks, so both are accepted, shown, and have no further effect.
    def(
        "flush.messages",
        ConfigKind::Long { min: 1 },
        "log.flush.interval.messages",
        false,
    ),
    def(
        "flush.ms",
        ConfigKind::Long { min: 0 },
        "log.flush.interval.ms",
        false,
    ),
    def(
        "max.message.bytes",
        ConfigKind::Int { min: 0 },
        "message.max.bytes",
        true,
    ),
    def(
        "message.format.version",
        ConfigKind::Version,
        "log.message.format.version",
        false,
    ),
    def(
        "message.timestamp.type",
        ConfigKind::Choice {
            allowed: TIMESTAMP_TYPES,
        },
        "log.message.timestamp.type",
        true,
    ),
    def(
        "min.insync.replicas",
        ConfigKind::Int { min: 1 },
        "min.insync.replicas",
        true,
    ),
    def(
        "retention.bytes",
        ConfigKind::Long { min: i64::MIN },
        "log.retention.bytes",
        true,
    ),
    def(
        "retention.ms",
        ConfigKind::Long { min: -1 },
        "log.retention.ms",
        true,
    ),
    def(
        "segment.bytes",
        ConfigKind::Int {
            min: SEGMENT_BYTES_MIN,
        },
        "log.segment.bytes",
        true,
    ),
    def(
        "segment.ms",
        ConfigKind::Long { min: 1 },
        "log.roll.ms",
        true,
    ),
    def(
        "unclean.leader.election.enable",
        ConfigKind::Bool,
        "unclean.leader.election.enable",
        true,
    ),
];

/// The definition of topic config `name`, if rill knows it.
pub fn lookup(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Kafka's INVALID_CONFIG refusal of `value` for `name`, with Kafka's wording.
fn invalid_value(name: &str, value: &str, why: &str) -> ControllerError {
    ControllerError::InvalidConfig(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

/// Checks `value` for topic config `name` with Kafka's validator and returns it in the form
/// stored (lists trimmed, booleans lower case). Unknown names and invalid values are
/// INVALID_CONFIG.
pub fn validate(name: &str, value: &str) -> Result<String, ControllerError> {
    let def = lookup(name).ok_or_else(|| {
        ControllerError::InvalidConfig(format!("Unknown topic config name: {name}"))
    })?;
    validate_kind(name, def.kind, value)
}

/// Checks `value` for a config `name` of type `kind` with Kafka's validator and returns it in the
/// form stored; an invalid value is INVALID_CONFIG with Kafka's message. Shared with the dynamic
/// broker configs (`crate::broker_configs`).
pub fn validate_kind(name: &str, kind: ConfigKind, value: &str) -> Result<String, ControllerError> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(invalid_value(
            name,
            "(too long)",
            &format!("at most {VALUE_BYTES_MAX} bytes"),
        ));
    }
    let trimmed = value.trim();
    let normalised = match kind {
        ConfigKind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => v.to_string(),
            _ => {
                return Err(invalid_value(
                    name,
                    value,
                    "Expected value to be either true or false",
                ))
            }
        },
        ConfigKind::Int { min } => {
            let parsed: i32 = trimmed
                .parse()
                .map_err(|_| invalid_value(name, value, "Not a number of type INT"))?;
            if i64::from(parsed) < min {
                return Err(invalid_value(
                    name,
                    value,
                    &format!("Value must be at least {min}"),
                ));
            }
            parsed.to_string()
        }
        ConfigKind::Long { min } => {
            let parsed: i64 = trimmed
                .parse()
                .map_err(|_| invalid_value(name, value, "Not a number of type LONG"))?;
            if parsed < min {
                return Err(invalid_value(
                    name,
                    value,
                    &format!("Value must be at least {min}"),
                ));
            }
            parsed.to_string()
        }
        ConfigKind::Choice { allowed } => {
            if !allowed.contains(&trimmed) {
                let why = format!("String must be one of: {}", allowed.join(", "));
                return Err(invalid_value(name, value, &why));
            }
            trimmed.to_string()
        }
        ConfigKind::List { allowed, .. } => {
            let items = list_items(trimmed);
            if items.is_empty() || items.iter().any(|item| !allowed.contains(item)) {
                let why = format!("String must be one of: {}", allowed.join(", "));
                return Err(invalid_value(name, value, &why));
            }
            items.join(",")
        }
        ConfigKind::Version => {
            let ok = !trimmed.is_empty()
                && trimmed
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Err(invalid_value(name, value, "not a Kafka version"));
            }
            trimmed.to_string()
        }
    };
    assert!(!normalised.is_empty(), "a stored value is never empty");
    Ok(normalised)
}

/// The items of a list value, trimmed, empty ones dropped, each once in first-seen order.
pub(crate) fn list_items(value: &str) -> Vec<&str> {
    let mut items: Vec<&str> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    items
}

/// A list value after IncrementalAlterConfigs' APPEND (the given items not already in `old`,
/// in their order) or SUBTRACT (`old` without the given items), joined again.
pub(crate) fn edit_list(op: AlterOp, old: &str, value: &str) -> String {
    assert!(
        matches!(op, AlterOp::Append | AlterOp::Subtract),
        "only APPEND and SUBTRACT edit a list"
    );
    let given = list_items(value);
    let mut items = list_items(old);
    if op == AlterOp::Append {
        let added: Vec<&str> = given
            .iter()
            .copied()
            .filter(|g| !items.contains(g))
            .collect();
        items.extend(added);
    } else {
        items.retain(|item| !given.contains(item));
    }
    items.join(",")
}

/// IncrementalAlterConfigs' operations (Kafka's `AlterConfigOp.OpType` codes 0..=3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterOp {
    /// Set the value (0).
    Set,
    /// Remove the override: the default applies again (1).
    Delete,
    /// Add items to a list config (2).
    Append,
    /// Remove items from a list config (3).
    Subtract,
}

impl AlterOp {
    /// The op for Kafka's code, `None` for an unknown one.
    pub fn from_code(code: i8) -> Option<AlterOp> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }
}

/// One requested change of one config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The config's name.
    pub name: String,
    /// What to do.
    pub op: AlterOp,
    /// The value (ignored by DELETE); `None` is refused for the others.
    pub value: Option<String>,
}

impl ConfigChange {
    /// A SET of `name` to `value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op: AlterOp::Set,
            value: Some(value.into()),
        }
    }
}

/// What a topic falls back to without an override: the broker's node-wide settings the election
/// needs (the log settings stay on the brokers, which apply them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionDefaults {
    /// The broker's `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// The broker's `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
}

/// The config after `changes`, starting from `current`'s overrides (or from none when
/// `replace`, AlterConfigs' whole-set semantics). Kafka's rules: a name at most once
/// (INVALID_REQUEST), APPEND and SUBTRACT on list configs only (INVALID_REQUEST), every
/// resulting value valid (INVALID_CONFIG). The election fields follow the overrides, else
/// `defaults`.
pub fn altered(
    current: &TopicConfig,
    changes: &[ConfigChange],
    replace: bool,
    defaults: ElectionDefaults,
) -> Result<TopicConfig, ControllerError> {
    let mut names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ControllerError::InvalidRequest(format!(
            "Error due to duplicate config keys: {}",
            pair[0]
        )));
    }
    let mut overrides = if replace {
        BTreeMap::new()
    } else {
        current.overrides.clone()
    };
    for change in changes {
        let def = lookup(&change.name).ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Unknown topic config name: {}", change.name))
        })?;
        let value = match (change.op, &change.value) {
            (AlterOp::Delete, _) => {
                overrides.remove(def.name);
                continue;
            }
            (_, None) => {
                return Err(ControllerError::InvalidRequest(format!(
                    "Null value not supported for : {}",
                    change.name
                )))
            }
            (_, Some(value)) => value,
        };
        let next = match (change.op, def.kind) {
            (AlterOp::Set, _) => validate(def.name, value)?,
            (AlterOp::Append | AlterOp::Subtract, ConfigKind::List { default, .. }) => {
                let old = overrides.get(def.name).map_or(default, String::as_str);
                validate(def.name, &edit_list(change.op, old, value))?
            }
            (op, _) => {
                let verb = if op == AlterOp::Append {
                    "append"
                } else {
                    "subtract"
                };
                return Err(ControllerError::InvalidRequest(format!(
                    "Config value {verb} is not allowed for config key: {}",
                    def.name
                )));
            }
        };
        overrides.insert(def.name.to_string(), next);
    }
    config_from_overrides(overrides, defaults)
}

/// The config holding `overrides` (each validated again), its election fields taken from them
/// or from `defaults`.
pub fn config_from_overrides(
    overrides: BTreeMap<String, String>,
    defaults: ElectionDefaults,
) -> Result<TopicConfig, ControllerError> {
    check_overrides(&overrides)?;
    let min_insync_replicas = match overrides.get("min.insync.replicas") {
        Some(v) => v.parse().expect("validated: an INT of at least 1"),
        None => defaults.min_insync_replicas,
    };
    let unclean_leader_election = match overrides.get("unclean.leader.election.enable") {
        Some(v) => v == "true",
        None => defaults.unclean_leader_election,
    };
    Ok(TopicConfig {
        unclean_leader_election,
        min_insync_replicas,
        overrides,
    })
}

/// Every override known, valid and stored normalised, and not too many: the image's rule.
pub fn check_overrides(overrides: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    if overrides.len() > OVERRIDES_MAX {
        return Err(ControllerError::InvalidConfig(format!(
            "{} configs: a topic has at most {OVERRIDES_MAX}",
            overrides.len()
        )));
    }
    for (name, value) in overrides {
        let normalised = validate(name, value)?;
        if &normalised != value {
            return Err(invalid_value(name, value, "not in its stored form"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEFAULTS: ElectionDefaults = ElectionDefaults {
        min_insync_replicas: 2,
        unclean_leader_election: false,
    };

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_catalog_is_sorted_and_unique() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn values_are_validated_with_kafkas_rules_and_messages() {
        assert_eq!(
            validate("cleanup.policy", " compact , delete").unwrap(),
            "compact,delete"
        );
        assert_eq!(
            validate("unclean.leader.election.enable", "TRUE").unwrap(),
            "true"
        );
        assert_eq!(validate("retention.ms", "-1").unwrap(), "-1");
        assert_eq!(
            validate("dummy.doesntexist", "1"),
            Err(ControllerError::InvalidConfig(
                "Unknown topic config name: dummy.doesntexist".into()
            ))
        );
        assert_eq!(
            validate("retention.ms", "-2"),
            Err(ControllerError::InvalidConfig(
                "Invalid value -2 for configuration retention.ms: Value must be at least -1".into()
            ))
        );
        assert_eq!(
            validate("cleanup.policy", "sometimes"),
            Err(ControllerError::InvalidConfig(
                "Invalid value sometimes for configuration cleanup.policy: String must be one \
                 of: compact, delete"
                    .into()
            ))
        );
        assert_eq!(
            validate("min.insync.replicas", "x"),
            Err(ControllerError::InvalidConfig(
                "Invalid value x for configuration min.insync.replicas: Not a number of type INT"
                    .into()
            ))
        );
        assert!(validate("segment.bytes", "1023").is_err());
        assert!(
            validate("segment.bytes", "2147483648").is_err(),
            "beyond an INT"
        );
        assert!(validate("message.timestamp.type", "logappendtime").is_err());
        assert_eq!(
            validate("message.format.version", "0.10.0.0").unwrap(),
            "0.10.0.0"
        );
    }

    #[test]
    fn incremental_changes_follow_kafka() {
        let current = config_from_overrides(map(&[("retention.ms", "1000")]), DEFAULTS).unwrap();
        let appended = altered(
            &current,
            &[
                ConfigChange {
                    name: "cleanup.policy".into(),
                    op: AlterOp::Append,
                    value: Some("compact".into()),
                },
                ConfigChange::set("min.insync.replicas", "3"),
            ],
            false,
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(
            appended,
            TopicConfig {
                unclean_leader_election: false,
                min_insync_replicas: 3,
                overrides: map(&[
                    ("cleanup.policy", "delete,compact"),
                    ("min.insync.replicas", "3"),
                    ("retention.ms", "1000")
                ]),
            }
        );
        let subtracted = altered(
            &appended,
            &[
                ConfigChange {
                    name: "cleanup.policy".into(),
                    op: AlterOp::Subtract,
                    value: Some("delete".into()),
                },
                ConfigChange {
                    name: "min.insync.replicas".into(),
                    op: AlterOp::Delete,
                    value: None,
                },
            ],
            false,
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(
            subtracted,
            TopicConfig {
                unclean_leader_election: false,
                min_insync_replicas: 2,
                overrides: map(&[("cleanup.policy", "compact"), ("retention.ms", "1000")]),
            }
        );
        // Subtracting every item leaves no valid policy.
        let emptied = altered(
            &subtracted,
            &[ConfigChange {
                name: "cleanup.policy".into(),
                op: AlterOp::Subtract,
                value: Some("compact".into()),
            }],
            false,
            DEFAULTS,
        );
        assert!(matches!(emptied, Err(ControllerError::InvalidConfig(_))));
        // Replace drops what the request does not name.
        let replaced = altered(
            &subtracted,
            &[ConfigChange::set("unclean.leader.election.enable", "true")],
            true,
            DEFAULTS,
        )
        .unwrap();
        assert_eq!(
            replaced,
            TopicConfig {
                unclean_leader_election: true,
                min_insync_replicas: 2,
                overrides: map(&[("unclean.leader.election.enable", "true")]),
            }
        );
    }

    #[test]
    fn refusals_name_kafkas_error() {
        let current = TopicConfig::default();
        let append_scalar = ConfigChange {
            name: "retention.ms".into(),
            op: AlterOp::Append,
            value: Some("5".into()),
        };
        assert_eq!(
            altered(&current, &[append_scalar], false, DEFAULTS),
            Err(ControllerError::InvalidRequest(
                "Config value append is not allowed for config key: retention.ms".into()
            ))
        );
        let twice = [
            ConfigChange::set("retention.ms", "5"),
            ConfigChange::set("retention.ms", "6"),
        ];
        assert_eq!(
            altered(&current, &twice, false, DEFAULTS),
            Err(ControllerError::InvalidRequest(
                "Error due to duplicate config keys: retention.ms".into()
            ))
        );
        assert!(matches!(
            altered(&current, &[ConfigChange::set("nope", "1")], false, DEFAULTS),
            Err(ControllerError::InvalidConfig(_))
        ));
        assert!(check_overrides(&map(&[("cleanup.policy", "compact, delete")])).is_err());
    }
}
