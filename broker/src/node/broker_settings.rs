//! A broker's settings as Kafka names them, for DescribeConfigs on BROKER resources: every
//! setting of the node's config file with its value and whether the file set it, plus the
//! dynamic broker configs rill accepts (`controller::broker_configs`), whose values may also come
//! from the metadata log (KIP-226's precedence: the broker's own dynamic value, the cluster
//! default's, the file's, the built-in one).
//!
//! Settings Kafka has no name for carry a `rill.` prefix. Secrets (passwords, the cluster
//! secret) are sensitive: described with a null value.

use std::collections::BTreeMap;

use controller::broker_configs;
use controller::topic_configs::ConfigKind;

use super::config::{
    ConnectionSettings, LogSettings, NodeConfig, Role, SecuritySettings, Timing, TopicDefaults,
};

/// Kafka's `ConfigType` codes (DescribeConfigs v3+).
pub mod config_type {
    /// BOOLEAN.
    pub const BOOLEAN: i8 = 1;
    /// STRING.
    pub const STRING: i8 = 2;
    /// INT.
    pub const INT: i8 = 3;
    /// LONG.
    pub const LONG: i8 = 5;
    /// LIST.
    pub const LIST: i8 = 7;
    /// PASSWORD.
    pub const PASSWORD: i8 = 9;
}

/// Kafka's `ConfigType` of a catalog kind.
pub fn kind_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Bool => config_type::BOOLEAN,
        ConfigKind::Choice { .. } | ConfigKind::Version => config_type::STRING,
        ConfigKind::Int { .. } => config_type::INT,
        ConfigKind::Long { .. } => config_type::LONG,
        ConfigKind::List { .. } => config_type::LIST,
    }
}

/// One broker setting as the node's configuration gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Kafka's name (or `rill.`-prefixed).
    pub name: &'static str,
    /// The value the node runs with before any dynamic config: the file's, else the built-in
    /// one; `None`: no value.
    pub value: Option<String>,
    /// Did the config file set it (to something other than the built-in value)?
    pub in_file: bool,
    /// The built-in value, `None` when there is none (Kafka's DEFAULT_CONFIG synonym).
    pub default: Option<String>,
    /// A secret: described with a null value.
    pub sensitive: bool,
    /// Kafka's `ConfigType`.
    pub config_type: i8,
}

impl Setting {
    /// May AlterConfigs change it (a dynamic broker config rill accepts)?
    pub fn dynamic(&self) -> bool {
        broker_configs::lookup(self.name).is_some()
    }
}

/// Every setting of `node`, sorted by name.
pub fn settings(node: &NodeConfig) -> Vec<Setting> {
    let mut all: BTreeMap<&'static str, Setting> = BTreeMap::new();
    let mut add = |name: &'static str,
                   config_type: i8,
                   value: Option<String>,
                   default: Option<String>,
                   sensitive: bool| {
        let in_file = value.is_some() && value != default;
        let setting = Setting {
            name,
            value,
            in_file,
            default,
            sensitive,
            config_type,
        };
        let previous = all.insert(name, setting);
        assert!(previous.is_none(), "{name} listed twice");
    };
    use config_type::{BOOLEAN, INT, LIST, LONG, PASSWORD, STRING};
    let some = |value: &dyn ToString| Some(value.to_string());

    // Identity, roles, storage, quorum: always from the file.
    add("node.id", INT, some(&node.node_id), None, false);
    add("broker.id", INT, some(&node.node_id), None, false);
    let roles: Vec<&str> = node
        .roles
        .iter()
        .map(|r| match r {
            Role::Broker => "broker",
            Role::Controller => "controller",
        })
        .collect();
    add("process.roles", LIST, Some(roles.join(",")), None, false);
    add(
        "log.dirs",
        STRING,
        some(&node.data_dir.display()),
        None,
        false,
    );
    add(
        "controller.quorum.voters",
        LIST,
        Some(node.controller_voters.join(",")),
        None,
        false,
    );
    // Listeners, in Kafka's forms.
    let listeners = node.listeners.kafka_listeners();
    let mut bound: Vec<String> = listeners
        .iter()
        .map(|(name, address, _, _)| format!("{name}://{address}"))
        .collect();
    let mut protocols: Vec<String> = listeners
        .iter()
        .map(|(name, _, _, protocol)| format!("{name}:{}", protocol.name()))
        .collect();
    if let Some(controller) = &node.listeners.controller {
        bound.push(format!("CONTROLLER://{controller}"));
        protocols.push("CONTROLLER:PLAINTEXT".into());
        add(
            "controller.listener.names",
            STRING,
            Some("CONTROLLER".into()),
            None,
            false,
        );
    }
    let advertised: Vec<String> = listeners
        .iter()
        .map(|(name, _, advertised, _)| format!("{name}://{advertised}"))
        .collect();
    add("listeners", STRING, Some(bound.join(",")), None, false);
    add(
        "advertised.listeners",
        STRING,
        Some(advertised.join(",")),
        None,
        false,
    );
    add(
        "listener.security.protocol.map",
        STRING,
        Some(protocols.join(",")),
        None,
        false,
    );
    if node.listeners.kafka.is_some() {
        add(
            "inter.broker.listener.name",
            STRING,
            Some(node.listeners.kafka_protocol.name().to_string()),
            None,
            false,
        );
    }
    if let Some(metrics) = &node.listeners.metrics {
        add(
            "rill.metrics.listener",
            STRING,
            Some(metrics.clone()),
            None,
            false,
        );
    }
    // Listed when set (Kafka lists them with a null value otherwise): librdkafka's
    // 0101_fetch_from_follower counts the racks it finds here.
    if let Some(rack) = &node.broker_rack {
        add("broker.rack", STRING, Some(rack.clone()), None, false);
    }
    if let Some(class) = &node.replica_selector_class {
        add(
            "replica.selector.class",
            STRING,
            Some(class.clone()),
            None,
            false,
        );
    }

    // [topics]
    let (t, td) = (&node.topics, TopicDefaults::default());
    add(
        "auto.create.topics.enable",
        BOOLEAN,
        some(&t.auto_create),
        some(&td.auto_create),
        false,
    );
    add(
        "default.replication.factor",
        INT,
        some(&t.replication_factor),
        some(&td.replication_factor),
        false,
    );
    add(
        "min.insync.replicas",
        INT,
        some(&t.min_insync_replicas),
        some(&td.min_insync_replicas),
        false,
    );
    add(
        "num.partitions",
        INT,
        some(&t.partitions),
        some(&td.partitions),
        false,
    );
    add(
        "unclean.leader.election.enable",
        BOOLEAN,
        some(&t.unclean_leader_election),
        some(&td.unclean_leader_election),
        false,
    );

    // [log]
    let (l, ld) = (&node.log, LogSettings::default());
    add(
        "compression.type",
        STRING,
        some(&l.compression_type),
        some(&ld.compression_type),
        false,
    );
    add(
        "log.retention.bytes",
        LONG,
        some(&l.retention_bytes),
        some(&ld.retention_bytes),
        false,
    );
    add(
        "log.retention.check.interval.ms",
        LONG,
        some(&l.retention_check_interval_ms),
        some(&ld.retention_check_interval_ms),
        false,
    );
    add(
        "log.retention.ms",
        LONG,
        some(&l.retention_ms),
        some(&ld.retention_ms),
        false,
    );
    add(
        "log.segment.bytes",
        INT,
        some(&l.segment_bytes),
        some(&ld.segment_bytes),
        false,
    );
    add(
        "message.max.bytes",
        INT,
        some(&l.message_max_bytes),
        some(&ld.message_max_bytes),
        false,
    );
    add(
        "log.message.format.version",
        STRING,
        Some("3.0-IV1".into()),
        Some("3.0-IV1".into()),
        false,
    );

    // [timing]
    let (g, gd) = (&node.timing, Timing::default());
    let timing: [(&'static str, u64, u64); 8] = [
        (
            "replica.lag.time.max.ms",
            g.replica_lag_time_max_ms,
            gd.replica_lag_time_max_ms,
        ),
        (
            "replica.fetch.backoff.ms",
            g.replica_fetch_backoff_ms,
            gd.replica_fetch_backoff_ms,
        ),
        (
            "replica.fetch.wait.max.ms",
            g.replica_fetch_wait_max_ms,
            gd.replica_fetch_wait_max_ms,
        ),
        (
            "rill.request.timeout.ms",
            g.request_timeout_ms,
            gd.request_timeout_ms,
        ),
        (
            "broker.heartbeat.interval.ms",
            g.broker_heartbeat_interval_ms,
            gd.broker_heartbeat_interval_ms,
        ),
        (
            "broker.session.timeout.ms",
            g.broker_session_timeout_ms,
            gd.broker_session_timeout_ms,
        ),
        (
            "rill.controller.tick.ms",
            g.controller_tick_ms,
            gd.controller_tick_ms,
        ),
        (
            "group.initial.rebalance.delay.ms",
            g.group_initial_rebalance_delay_ms,
            gd.group_initial_rebalance_delay_ms,
        ),
    ];
    for (name, value, default) in timing {
        let kind = if name.starts_with("rill.") || name == "replica.lag.time.max.ms" {
            LONG
        } else {
            INT
        };
        add(name, kind, some(&value), some(&default), false);
    }

    // [connections]
    let (c, cd) = (&node.connections, ConnectionSettings::default());
    add(
        "max.connections",
        INT,
        some(&c.connections_max),
        some(&cd.connections_max),
        false,
    );
    add(
        "connections.max.idle.ms",
        LONG,
        some(&c.connections_max_idle_ms),
        some(&cd.connections_max_idle_ms),
        false,
    );
    add(
        "rill.frame.read.timeout.ms",
        LONG,
        some(&c.frame_read_timeout_ms),
        some(&cd.frame_read_timeout_ms),
        false,
    );
    add(
        "rill.connection.request.timeout.ms",
        LONG,
        some(&c.request_timeout_ms),
        some(&cd.request_timeout_ms),
        false,
    );
    add(
        "socket.request.max.bytes",
        INT,
        some(&c.socket_request_max_bytes),
        some(&cd.socket_request_max_bytes),
        false,
    );
    add(
        "queued.max.request.bytes",
        LONG,
        some(&c.queued_max_request_bytes),
        some(&cd.queued_max_request_bytes),
        false,
    );
    add(
        "rill.in.flight.requests.max",
        INT,
        some(&c.in_flight_requests_max),
        some(&cd.in_flight_requests_max),
        false,
    );

    // [security]
    let (s, sd) = (&node.security, SecuritySettings::default());
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let secret = |set: bool| set.then(|| "(secret)".to_string());
    add(
        "rill.cluster.secret",
        PASSWORD,
        secret(s.cluster_secret.is_some() || s.cluster_secret_file.is_some()),
        None,
        true,
    );
    add(
        "rill.cluster.secret.file",
        STRING,
        path(&s.cluster_secret_file),
        None,
        false,
    );
    add(
        "sasl.enabled.mechanisms",
        LIST,
        Some(s.sasl_mechanisms.join(",")),
        Some(sd.sasl_mechanisms.join(",")),
        false,
    );
    add(
        "super.users",
        STRING,
        (!s.super_users.is_empty()).then(|| s.super_users.join(";")),
        None,
        false,
    );
    let authorizer = s
        .authorizer_enabled(&node.listeners)
        .then(|| "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string());
    add(
        "authorizer.class.name",
        STRING,
        Some(authorizer.unwrap_or_default()),
        Some(String::new()),
        false,
    );
    add(
        "allow.everyone.if.no.acl.found",
        BOOLEAN,
        some(&s.allow_everyone_if_no_acl_found),
        some(&sd.allow_everyone_if_no_acl_found),
        false,
    );
    add(
        "connections.max.reauth.ms",
        LONG,
        some(&s.connections_max_reauth_ms),
        some(&sd.connections_max_reauth_ms),
        false,
    );
    add(
        "ssl.client.auth",
        STRING,
        some(&format!("{:?}", s.tls_client_auth).to_lowercase()),
        some(&format!("{:?}", sd.tls_client_auth).to_lowercase()),
        false,
    );
    add(
        "rill.ssl.certificate.file",
        STRING,
        path(&s.tls_cert_file),
        None,
        false,
    );
    add(
        "rill.ssl.key.file",
        STRING,
        path(&s.tls_key_file),
        None,
        false,
    );
    add(
        "rill.ssl.client.ca.file",
        STRING,
        path(&s.tls_client_ca_file),
        None,
        false,
    );
    add(
        "ssl.key.password",
        PASSWORD,
        secret(s.ssl_key_password.is_some()),
        None,
        true,
    );
    add(
        "ssl.keystore.location",
        STRING,
        path(&s.ssl_keystore_location),
        None,
        false,
    );
    add(
        "ssl.keystore.type",
        STRING,
        some(&store_type(s.ssl_keystore_type)),
        some(&store_type(sd.ssl_keystore_type)),
        false,
    );
    add(
        "ssl.keystore.password",
        PASSWORD,
        secret(s.ssl_keystore_password.is_some()),
        None,
        true,
    );
    add(
        "ssl.truststore.location",
        STRING,
        path(&s.ssl_truststore_location),
        None,
        false,
    );
    add(
        "ssl.truststore.type",
        STRING,
        some(&store_type(s.ssl_truststore_type)),
        some(&store_type(sd.ssl_truststore_type)),
        false,
    );
    add(
        "ssl.truststore.password",
        PASSWORD,
        secret(s.ssl_truststore_password.is_some()),
        None,
        true,
    );
    add(
        "ssl.principal.mapping.rules",
        STRING,
        Some(
            s.ssl_principal_mapping_rules
                .clone()
                .unwrap_or_else(|| "DEFAULT".into()),
        ),
        Some("DEFAULT".into()),
        false,
    );

    // The dynamic configs rill accepts that the file has no place for: their built-in values.
    let listed: Vec<&'static str> = broker_configs::DYNAMIC_BROKER_CONFIGS
        .iter()
        .map(|def| def.name)
        .collect();
    for def in broker_configs::DYNAMIC_BROKER_CONFIGS {
        let from_file = [
            "compression.type",
            "log.retention.bytes",
            "log.retention.ms",
            "log.segment.bytes",
            "message.max.bytes",
        ];
        if !from_file.contains(&def.name) {
            let default = def.default.map(String::from);
            add(
                def.name,
                kind_type(def.kind),
                default.clone(),
                default,
                false,
            );
        }
    }
    debug_assert!(listed.iter().all(|name| all.contains_key(name)));
    all.into_values().collect()
}

fn store_type(kind: super::config::StoreType) -> String {
    format!("{kind:?}").to_uppercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::node::handlers::configs::tests::node;

    fn find<'a>(all: &'a [Setting], name: &str) -> &'a Setting {
        all.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn every_dynamic_config_is_listed_with_a_valid_value() {
        let all = settings(&node(""));
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        for def in broker_configs::DYNAMIC_BROKER_CONFIGS {
            let setting = find(&all, def.name);
            let value = setting.value.as_deref().unwrap();
            assert_eq!(
                broker_configs::validate(def.name, value).unwrap(),
                value,
                "{}",
                def.name
            );
            assert!(!setting.in_file, "{}", def.name);
        }
        assert!(!find(&all, "log.dirs").dynamic());
        assert!(find(&all, "log.retention.ms").dynamic());
    }

    #[test]
    fn file_values_secrets_and_kafka_names() {
        let all = settings(&node(
            "[log]\nretention_ms = 1000\n[security]\ncluster_secret = \"0123456789abcdef0\"\n\
             connections_max_reauth_ms = 5000\nssl_key_password = \"hunter2hunter2\"\n",
        ));
        let retention = find(&all, "log.retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert!(retention.in_file);
        let reauth = find(&all, "connections.max.reauth.ms");
        assert_eq!(
            (reauth.value.as_deref(), reauth.in_file),
            (Some("5000"), true)
        );
        for secret in ["rill.cluster.secret", "ssl.key.password"] {
            let s = find(&all, secret);
            assert!(s.sensitive && s.in_file, "{secret}");
            assert_eq!(s.config_type, config_type::PASSWORD);
        }
        assert!(!find(&all, "ssl.keystore.password").in_file);
        assert_eq!(
            find(&all, "listeners").value.as_deref(),
            Some("PLAINTEXT://127.0.0.1:2,CONTROLLER://127.0.0.1:1")
        );
        assert!(!find(&all, "num.partitions").in_file);
    }
}
