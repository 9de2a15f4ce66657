//! The node's configuration: a TOML file (Kafka's property names, grouped) with CLI overrides.
//!
//! ```toml
//! node_id = 1
//! roles = ["broker", "controller"]        # or one of them
//! data_dir = "/var/lib/rill/1"
//! controller_voters = ["1@127.0.0.1:19093", "2@127.0.0.1:29093", "3@127.0.0.1:39093"]
//!
//! [listeners]
//! kafka = "127.0.0.1:19092"               # where clients connect
//! advertised_kafka = "127.0.0.1:19092"    # what Metadata tells them (default: kafka)
//! controller = "127.0.0.1:19093"          # raft and broker-to-controller traffic
//! metrics = "127.0.0.1:19094"             # Prometheus /metrics (optional)
//!
//! [topics]                                # defaults for created topics
//! replication_factor = 3
//! partitions = 1
//! min_insync_replicas = 2
//! unclean_leader_election = false
//! auto_create = true                      # auto.create.topics.enable
//!
//! [log]
//! segment_bytes = 1073741824
//! retention_ms = 604800000                # -1: keep forever
//! retention_bytes = -1
//! retention_check_interval_ms = 10000     # how often segments roll and retention runs
//! compression_type = "producer"           # compression.type: producer (as sent), uncompressed,
//!                                         # gzip, snappy, lz4 or zstd (batches recompressed)
//!
//! [connections]                           # client connections (defaults shown)
//! connections_max = 4096                  # max.connections
//! connections_max_idle_ms = 600000        # connections.max.idle.ms
//! frame_read_timeout_ms = 30000           # a started request frame must arrive within this
//! request_timeout_ms = 30000              # a handler's and a response write's limit
//! socket_request_max_bytes = 104857600    # socket.request.max.bytes
//! queued_max_request_bytes = 104857600    # queued.max.request.bytes, broker-wide
//! in_flight_requests_max = 5              # requests of one connection worked on at once
//!
//! [security]                              # inter-node authentication (docs/security.md)
//! cluster_secret_file = "/etc/rill/cluster.secret"  # one line, at least 16 bytes, same on
//!                                                   # every node; or `cluster_secret = "..."`
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Most controller voters a quorum may have.
pub const VOTERS_MAX: usize = 9;

/// What a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves Kafka clients and hosts partition replicas.
    Broker,
    /// A voter of the metadata quorum.
    Controller,
}

/// Network endpoints, as `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Kafka clients connect here (brokers).
    #[serde(default)]
    pub kafka: Option<String>,
    /// What Metadata answers advertise; defaults to `kafka`.
    #[serde(default)]
    pub advertised_kafka: Option<String>,
    /// The controller listener (controllers).
    #[serde(default)]
    pub controller: Option<String>,
    /// Prometheus text metrics over HTTP, if set.
    #[serde(default)]
    pub metrics: Option<String>,
}

/// Defaults for topics (created explicitly without settings, or automatically).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    /// `default.replication.factor`.
    pub replication_factor: i32,
    /// `num.partitions`.
    pub partitions: i32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.create.topics.enable`.
    pub auto_create: bool,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            replication_factor: 1,
            partitions: 1,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            auto_create: true,
        }
    }
}

/// Log settings applied to every partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `retention.ms`; -1 keeps segments forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 means no size limit.
    pub retention_bytes: i64,
    /// `message.max.bytes`: the largest batch a produce may carry.
    pub message_max_bytes: u64,
    /// `log.retention.check.interval.ms`: how often housekeeping rolls segments, enforces
    /// retention and compacts.
    pub retention_check_interval_ms: u64,
    /// `compression.type`: `producer` stores batches as the producer compressed them; a codec
    /// name (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`) recompresses batches written with
    /// another. Node-wide until topic configs live in the metadata.
    pub compression_type: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            segment_bytes: 1 << 30,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            message_max_bytes: (1 << 20) + 1024,
            retention_check_interval_ms: 10_000,
            compression_type: COMPRESSION_TYPE_PRODUCER.to_string(),
        }
    }
}

/// The `compression.type` that keeps each batch's own codec (Kafka's default).
pub const COMPRESSION_TYPE_PRODUCER: &str = "producer";

impl LogSettings {
    /// The codec batches are stored with, `None` for `producer`; `Err` for a name Kafka does not
    /// define.
    pub fn codec_target(&self) -> Result<Option<log_core::Codec>, String> {
        if self.compression_type == COMPRESSION_TYPE_PRODUCER {
            return Ok(None);
        }
        log_core::Codec::from_name(&self.compression_type)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "log.compression_type {:?} is not producer, uncompressed, gzip, snappy, lz4 \
                     or zstd",
                    self.compression_type
                )
            })
    }
}

/// Timeouts and intervals (Kafka's names, in ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a leader holds an empty follower fetch.
    pub replica_fetch_wait_max_ms: u64,
    /// `request.timeout.ms` of produce waits and peer requests.
    pub request_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// Controller raft tick (election after 10 ticks, heartbeats every 2).
    pub controller_tick_ms: u64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            replica_lag_time_max_ms: 30_000,
            replica_fetch_backoff_ms: 100,
            replica_fetch_wait_max_ms: 500,
            request_timeout_ms: 30_000,
            broker_heartbeat_interval_ms: 500,
            broker_session_timeout_ms: 9_000,
            controller_tick_ms: 100,
            group_initial_rebalance_delay_ms: 300,
        }
    }
}

/// Limits on client connections (Kafka's names). Every wait a client can cause ends, and the
/// memory clients can make the broker buffer is bounded broker-wide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSettings {
    /// `max.connections`: open client connections; more are closed on accept.
    pub connections_max: usize,
    /// `connections.max.idle.ms`: a connection with nothing in flight closes after this long.
    pub connections_max_idle_ms: u64,
    /// How long a request frame may take to arrive once its first byte came.
    pub frame_read_timeout_ms: u64,
    /// How long a request's handler, and the write of its response, may take.
    pub request_timeout_ms: u64,
    /// `socket.request.max.bytes`: the largest request frame.
    pub socket_request_max_bytes: u32,
    /// `queued.max.request.bytes`: request bytes buffered at once across all connections.
    pub queued_max_request_bytes: u32,
    /// Requests of one connection worked on at once (answers still leave in order).
    pub in_flight_requests_max: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        use crate::protocol::connection as c;
        ConnectionSettings {
            connections_max: 4096,
            connections_max_idle_ms: 600_000,
            frame_read_timeout_ms: 30_000,
            request_timeout_ms: 30_000,
            socket_request_max_bytes: crate::protocol::frame::FRAME_BYTES_MAX_DEFAULT,
            queued_max_request_bytes: 100 * 1024 * 1024,
            in_flight_requests_max: c::IN_FLIGHT_MAX_DEFAULT,
        }
    }
}

impl ConnectionSettings {
    /// The per-connection limits these settings give.
    pub fn connection_config(&self) -> crate::protocol::connection::ConnectionConfig {
        crate::protocol::connection::ConnectionConfig {
            frame_bytes_max: self.socket_request_max_bytes,
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(self.connections_max_idle_ms),
            frame_read_timeout: std::time::Duration::from_millis(self.frame_read_timeout_ms),
            in_flight_max: self.in_flight_requests_max,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(format!("connections: {what}")));
        if self.connections_max == 0 || self.connections_max > 1_000_000 {
            return invalid("connections_max must be within 1..=1000000");
        }
        if self.connections_max_idle_ms == 0
            || self.frame_read_timeout_ms == 0
            || self.request_timeout_ms == 0
        {
            return invalid("timeouts must be positive");
        }
        if self.socket_request_max_bytes == 0 || self.socket_request_max_bytes > i32::MAX as u32 {
            return invalid("socket_request_max_bytes must be within 1..=2^31-1");
        }
        // A frame the budget can never hold would be refused however idle the broker is.
        if self.queued_max_request_bytes < self.socket_request_max_bytes {
            return invalid("queued_max_request_bytes must hold at least one largest frame");
        }
        if self.in_flight_requests_max == 0
            || self.in_flight_requests_max > crate::protocol::in_flight::IN_FLIGHT_LIMIT
        {
            return invalid("in_flight_requests_max must be within 1..=64");
        }
        Ok(())
    }
}

/// Inter-node authentication. Without a secret, the controller listener and follower fetches
/// are open to anyone who can reach the ports (the node warns at start).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// A file holding the cluster secret (one line of text, at least 16 bytes).
    pub cluster_secret_file: Option<PathBuf>,
    /// The cluster secret inline (the simulator and tests; a file keeps it out of configs).
    pub cluster_secret: Option<String>,
}

impl SecuritySettings {
    /// The cluster secret, read from its file if configured that way; `None` without one.
    pub fn secret(&self) -> Result<Option<crate::auth::ClusterSecret>, ConfigError> {
        let invalid = |e: crate::auth::AuthError| ConfigError::Invalid(format!("security: {e}"));
        match (&self.cluster_secret_file, &self.cluster_secret) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid(
                "security: set cluster_secret_file or cluster_secret, not both".into(),
            )),
            (Some(path), None) => crate::auth::ClusterSecret::from_file(path)
                .map(Some)
                .map_err(invalid),
            (None, Some(text)) => crate::auth::ClusterSecret::new(text)
                .map(Some)
                .map_err(invalid),
            (None, None) => Ok(None),
        }
    }
}

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `node.id`: broker id and raft id (positive).
    pub node_id: i32,
    /// What this process runs; both is Kafka's combined mode.
    pub roles: Vec<Role>,
    /// Where partitions and raft state live.
    pub data_dir: PathBuf,
    /// `controller.quorum.voters`: `id@host:port` of every voter's controller listener.
    pub controller_voters: Vec<String>,
    /// Endpoints.
    pub listeners: Listeners,
    /// Topic defaults.
    #[serde(default)]
    pub topics: TopicDefaults,
    /// Log settings.
    #[serde(default)]
    pub log: LogSettings,
    /// Timeouts.
    #[serde(default)]
    pub timing: Timing,
    /// Client connection limits.
    #[serde(default)]
    pub connections: ConnectionSettings,
    /// Inter-node authentication.
    #[serde(default)]
    pub security: SecuritySettings,
}

/// A configuration the node refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML did not parse or had unknown fields.
    #[error("config: {0}")]
    Parse(String),
    /// A value out of range or inconsistent with another.
    #[error("config: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as TOML (for `rill cluster up`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a NodeConfig always serialises")
    }

    /// Does this process run `role`?
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The voters as raft id → controller listener address.
    pub fn voters(&self) -> Result<BTreeMap<u64, String>, ConfigError> {
        let mut voters = BTreeMap::new();
        for voter in &self.controller_voters {
            let (id, address) = voter.split_once('@').ok_or_else(|| {
                ConfigError::Invalid(format!("voter {voter:?} is not id@host:port"))
            })?;
            let id: u64 = id
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("voter id {id:?} is not a number")))?;
            if id == 0 || address.rsplit_once(':').is_none() {
                return Err(ConfigError::Invalid(format!(
                    "voter {voter:?}: id must be positive, address host:port"
                )));
            }
            if voters.insert(id, address.to_string()).is_some() {
                return Err(ConfigError::Invalid(format!("voter {id} listed twice")));
            }
        }
        Ok(voters)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(what.to_string()));
        if self.node_id <= 0 {
            return invalid("node_id must be positive");
        }
        if self.roles.is_empty() {
            return invalid("roles must name broker, controller or both");
        }
        let voters = self.voters()?;
        if voters.is_empty() || voters.len() > VOTERS_MAX {
            return invalid("controller_voters must list 1 to 9 voters");
        }
        let id = u64::try_from(self.node_id).expect("positive");
        if self.has_role(Role::Controller) {
            if !voters.contains_key(&id) {
                return invalid("a controller must be one of controller_voters");
            }
            if self.listeners.controller.is_none() {
                return invalid("a controller needs listeners.controller");
            }
        }
        if self.has_role(Role::Broker) && self.listeners.kafka.is_none() {
            return invalid("a broker needs listeners.kafka");
        }
        if self.topics.replication_factor < 1 || self.topics.partitions < 1 {
            return invalid("topics.replication_factor and topics.partitions are at least 1");
        }
        if self.topics.min_insync_replicas < 1 {
            return invalid("topics.min_insync_replicas is at least 1");
        }
        if self.log.segment_bytes < 1024 || self.log.segment_bytes > i32::MAX as u64 {
            return invalid("log.segment_bytes must be within 1 KiB..2 GiB");
        }
        if self.log.retention_check_interval_ms == 0 {
            return invalid("log.retention_check_interval_ms must be positive");
        }
        if let Err(reason) = self.log.codec_target() {
            return invalid(&reason);
        }
        if self.timing.controller_tick_ms == 0 || self.timing.broker_heartbeat_interval_ms == 0 {
            return invalid("timing intervals must be positive");
        }
        if self.timing.broker_heartbeat_interval_ms >= self.timing.broker_session_timeout_ms {
            return invalid("broker heartbeats must come more often than the session timeout");
        }
        self.connections.validate()
    }

    /// The log-core settings for partitions of this node.
    pub fn log_config(&self) -> log_core::LogConfig {
        log_core::LogConfig {
            segment_bytes_max: self.log.segment_bytes,
            retention_ms: (self.log.retention_ms >= 0).then_some(self.log.retention_ms),
            retention_bytes: u64::try_from(self.log.retention_bytes).ok(),
            batch_bytes_max: self.log.message_max_bytes,
            codec_target: self
                .log
                .codec_target()
                .expect("validated when the configuration was read"),
            ..log_core::LogConfig::default()
        }
    }

    /// The log-core settings for partitions of a topic with `topic`'s configs: each dynamic
    /// topic config overrides the node's value (Kafka's precedence), the rest are the node's.
    /// Values were validated by `controller::topic_configs` before they reached the metadata.
    pub fn log_config_for(&self, topic: &controller::TopicConfig) -> log_core::LogConfig {
        let mut config = self.log_config();
        let overrides = &topic.overrides;
        let long = |key: &str| overrides.get(key).and_then(|v| v.parse::<i64>().ok());
        if let Some(ms) = long("retention.ms") {
            config.retention_ms = (ms >= 0).then_some(ms);
        }
        if let Some(bytes) = long("retention.bytes") {
            config.retention_bytes = u64::try_from(bytes).ok();
        }
        if let Some(policy) = overrides.get("cleanup.policy") {
            let has = |name: &str| policy.split(',').any(|p| p == name);
            config.compacted = has("compact");
            if !has("delete") {
                // Compaction only: nothing is deleted by age or size.
                config.retention_ms = None;
                config.retention_bytes = None;
            }
        }
        if let Some(bytes) = long("segment.bytes").and_then(|b| u64::try_from(b).ok()) {
            config.segment_bytes_max = bytes;
        }
        if let Some(ms) = long("segment.ms") {
            config.segment_age_ms_max = ms;
        }
        if let Some(ms) = long("delete.retention.ms") {
            config.delete_retention_ms = ms;
        }
        if let Some(bytes) = long("max.message.bytes").and_then(|b| u64::try_from(b).ok()) {
            // Kafka takes 0 and up; a batch needs its header, and no batch exceeds the format's
            // limit, so the value is held to what the log can enforce.
            config.batch_bytes_max = bytes.clamp(
                log_core::batch::HEADER_BYTES as u64,
                log_core::batch::BATCH_BYTES_LIMIT as u64,
            );
        }
        if let Some(name) = overrides.get("compression.type") {
            config.codec_target = if name == COMPRESSION_TYPE_PRODUCER {
                None
            } else {
                log_core::Codec::from_name(name)
            };
        }
        if let Some(kind) = overrides.get("message.timestamp.type") {
            config.log_append_time = kind == "LogAppendTime";
        }
        config.validate();
        config
    }

    /// The address Metadata advertises for this broker.
    pub fn advertised_kafka(&self) -> Option<&str> {
        self.listeners
            .advertised_kafka
            .as_deref()
            .or(self.listeners.kafka.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_compression(name: &str) -> LogSettings {
        LogSettings {
            compression_type: name.to_string(),
            ..LogSettings::default()
        }
    }

    #[test]
    fn compression_type_is_producer_or_a_kafka_codec_name() {
        assert_eq!(LogSettings::default().codec_target(), Ok(None));
        assert_eq!(
            with_compression("uncompressed").codec_target(),
            Ok(Some(log_core::Codec::None))
        );
        for codec in &log_core::Codec::ALL[1..] {
            assert_eq!(
                with_compression(codec.name()).codec_target(),
                Ok(Some(*codec))
            );
        }
        assert!(with_compression("brotli").codec_target().is_err());
        assert!(with_compression("GZIP").codec_target().is_err());
    }
}
