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
//! journal = true                          # one journal sync per IO round for all partitions
//! journal_file_bytes = 67108864           # journal files roll past this size
//! tail_bytes = 1048576                    # the batches appended last kept in memory, per
//!                                         # partition (followers' fetches, journaled flushes)
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
//! [security]                              # docs/security.md
//! cluster_secret_file = "/etc/rill/cluster.secret"  # one line, at least 16 bytes, same on
//!                                                   # every node; or `cluster_secret = "..."`
//! sasl_mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]   # sasl.enabled.mechanisms;
//!                                         # also OAUTHBEARER, with [security.oauthbearer]
//! super_users = ["User:admin"]            # super.users
//! # authorizer = true                     # default: on when a listener uses SASL
//! allow_everyone_if_no_acl_found = false
//! connections_max_reauth_ms = 0           # KIP-368 session lifetime; 0: unbounded
//! tls_cert_file = "/etc/rill/node.pem"    # SSL and SASL_SSL listeners (PEM)
//! tls_key_file = "/etc/rill/node.key"
//! tls_client_auth = "none"                # ssl.client.auth of SSL listeners: none, requested,
//!                                         # required (principal User:<certificate subject DN>)
//! tls_client_ca_file = "/etc/rill/ca.pem" # CA of client certificates
//! # ssl_key_password = "..."              # an encrypted PKCS#8 tls_key_file's password
//! # ssl_keystore_type = "PKCS12"          # instead of tls_cert_file/tls_key_file: PKCS12 or PEM
//! # ssl_keystore_location = "/etc/rill/node.p12"
//! # ssl_keystore_password = "..."
//! # ssl_truststore_type = "PKCS12"        # instead of tls_client_ca_file: PKCS12 or PEM
//! # ssl_truststore_location = "/etc/rill/truststore.p12"
//! # ssl_truststore_password = "..."
//! ssl_principal_mapping_rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,DEFAULT"  # KIP-371;
//!                                         # default DEFAULT (the whole DN)
//! [[security.scram_users]]                # bootstrap users, salted (rill cluster up --secure)
//! user = "admin"
//! mechanism = "SCRAM-SHA-256"
//! iterations = 4096
//! salt = "base64"
//! stored_key = "base64"
//! server_key = "base64"
//!
//! [security.oauthbearer]                  # OAUTHBEARER's validator (docs/security.md): either
//! jwks_endpoint_url = "file:/etc/rill/jwks.json"  # sasl.oauthbearer.jwks.endpoint.url (read at start)
//! expected_audience = ["kafka"]           # sasl.oauthbearer.expected.audience
//! expected_issuer = "https://idp.example" # sasl.oauthbearer.expected.issuer
//! sub_claim_name = "sub"                  # sasl.oauthbearer.sub.claim.name
//! clock_skew_seconds = 30                 # sasl.oauthbearer.clock.skew.seconds
//! # unsecured = true                      # or: unsigned tokens (Kafka's unsecured validator,
//! #                                       # development only; unsecured_* options)
//!
//! [[listeners.extra]]                     # more client listeners
//! name = "SASL_SSL"
//! address = "0.0.0.0:9093"
//! advertised = "kafka-1.example.com:9093" # default: address
//! protocol = "SASL_SSL"                   # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
//! ```
//!
//! `listeners.kafka_protocol` (PLAINTEXT or SASL_PLAINTEXT) is the `kafka` listener's protocol;
//! brokers replicate over that listener.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::security::SecurityProtocol;
pub use client::security::StoreType;
use client::security::{IdentitySource, Password, StoreFile};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The security protocol of the `kafka` listener, which brokers also replicate over:
    /// PLAINTEXT (the default) or SASL_PLAINTEXT (brokers authenticate with the cluster secret
    /// over SASL; clients with PLAIN or SCRAM). Its listener name is the protocol's name.
    #[serde(default, skip_serializing_if = "is_plaintext")]
    pub kafka_protocol: SecurityProtocol,
    /// More Kafka listeners for clients, each with its own name and protocol (Kafka's
    /// `listeners` + `listener.security.protocol.map`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraListener>,
}

fn is_plaintext(protocol: &SecurityProtocol) -> bool {
    *protocol == SecurityProtocol::Plaintext
}

/// A client listener beside the `kafka` one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraListener {
    /// The listener's name (what Metadata answers on it advertise): letters, digits, `_`.
    pub name: String,
    /// Where it listens, `host:port`.
    pub address: String,
    /// What Metadata advertises for it; defaults to `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised: Option<String>,
    /// Its security protocol (the listener's entry of `listener.security.protocol.map`).
    pub protocol: SecurityProtocol,
}

impl ExtraListener {
    /// The address Metadata advertises.
    pub fn advertised(&self) -> &str {
        self.advertised.as_deref().unwrap_or(&self.address)
    }
}

impl Listeners {
    /// The Kafka listeners as (name, address, advertised, protocol), the `kafka` one first.
    pub fn kafka_listeners(&self) -> Vec<(String, String, String, SecurityProtocol)> {
        let mut all = Vec::new();
        if let Some(kafka) = &self.kafka {
            let advertised = self
                .advertised_kafka
                .clone()
                .unwrap_or_else(|| kafka.clone());
            let name = self.kafka_protocol.name().to_string();
            all.push((name, kafka.clone(), advertised, self.kafka_protocol));
        }
        for extra in &self.extra {
            let advertised = extra.advertised().to_string();
            all.push((
                extra.name.clone(),
                extra.address.clone(),
                advertised,
                extra.protocol,
            ));
        }
        all
    }

    fn protocols(&self) -> impl Iterator<Item = SecurityProtocol> + '_ {
        std::iter::once(self.kafka_protocol).chain(self.extra.iter().map(|e| e.protocol))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(format!("listeners: {what}")));
        if self.kafka_protocol.uses_tls() {
            return invalid(
                "kafka_protocol must be PLAINTEXT or SASL_PLAINTEXT: brokers replicate over this \
                 listener without TLS; add an `extra` listener for SSL or SASL_SSL clients"
                    .into(),
            );
        }
        let mut names = vec![self.kafka_protocol.name().to_string()];
        for extra in &self.extra {
            let well_formed = !extra.name.is_empty()
                && extra.name.len() <= 64
                && extra
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !well_formed || names.contains(&extra.name) {
                return invalid(format!(
                    "extra listener name {:?} malformed or repeated",
                    extra.name
                ));
            }
            if extra.address.rsplit_once(':').is_none()
                || extra.advertised().rsplit_once(':').is_none()
            {
                return invalid(format!(
                    "extra listener {}: address is not host:port",
                    extra.name
                ));
            }
            names.push(extra.name.clone());
        }
        if names.len() > controller::image::LISTENERS_MAX {
            return invalid(format!("{} listeners", names.len()));
        }
        Ok(())
    }
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
    /// Flushes go to one journal per broker (one sync per IO round for every partition in it)
    /// and the segment files are synced at state checkpoints; `false` syncs every partition's
    /// segment file in each round instead. See `docs/architecture.md` ("The journal").
    pub journal: bool,
    /// The journal rolls to a new file past this size; a file is removed once every log's
    /// checkpoint covers its records.
    pub journal_file_bytes: u64,
    /// Most bytes of the batches a partition appended last kept in memory (`log_core::tail`),
    /// which answer its followers' fetches and its journaled flushes without a file read;
    /// always at least the last batch.
    pub tail_bytes: usize,
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
            journal: true,
            journal_file_bytes: 64 << 20,
            tail_bytes: log_core::TAIL_BYTES_MAX,
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

/// Inter-node authentication and client security (docs/security.md). Without a secret, the
/// controller listener and follower fetches are open to anyone who can reach the ports (the
/// node warns at start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// A file holding the cluster secret (one line of text, at least 16 bytes).
    pub cluster_secret_file: Option<PathBuf>,
    /// The cluster secret inline (the simulator and tests; a file keeps it out of configs).
    pub cluster_secret: Option<String>,
    /// `sasl.enabled.mechanisms` of the SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
    /// OAUTHBEARER.
    pub sasl_mechanisms: Vec<String>,
    /// `super.users`: principals (`User:admin`) every ACL check allows.
    pub super_users: Vec<String>,
    /// The ACL authorizer: on or off; unset, on exactly when a listener uses SASL.
    pub authorizer: Option<bool>,
    /// `allow.everyone.if.no.acl.found`: a resource without any binding is open to all.
    pub allow_everyone_if_no_acl_found: bool,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session's lifetime; 0: unbounded.
    pub connections_max_reauth_ms: u64,
    /// The TLS certificate chain (PEM) of SSL and SASL_SSL listeners.
    pub tls_cert_file: Option<PathBuf>,
    /// The TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// `ssl.client.auth` of SSL listeners: `none`, `requested` or `required`. A client's
    /// certificate, verified against `tls_client_ca_file`, makes its principal
    /// `User:<subject DN>` (Kafka's default principal builder). SASL_SSL listeners never ask
    /// for one (Kafka's KIP-684 default): their clients authenticate with SASL.
    pub tls_client_auth: TlsClientAuth,
    /// The CA certificates (PEM) client certificates must chain to (Kafka's truststore).
    pub tls_client_ca_file: Option<PathBuf>,
    /// `ssl.key.password`: the password of an encrypted PKCS#8 `tls_key_file` (or of a PEM
    /// keystore's key).
    pub ssl_key_password: Option<String>,
    /// `ssl.keystore.location`: the listeners' certificate chain and key in one store, instead
    /// of `tls_cert_file` and `tls_key_file`.
    pub ssl_keystore_location: Option<PathBuf>,
    /// `ssl.keystore.type`: PKCS12 (default) or PEM.
    pub ssl_keystore_type: StoreType,
    /// `ssl.keystore.password` (a PKCS12 store's; one password for the store and its key).
    pub ssl_keystore_password: Option<String>,
    /// `ssl.truststore.location`: the CA certificates client certificates must chain to, in a
    /// store, instead of `tls_client_ca_file`.
    pub ssl_truststore_location: Option<PathBuf>,
    /// `ssl.truststore.type`: PKCS12 (default) or PEM.
    pub ssl_truststore_type: StoreType,
    /// `ssl.truststore.password` (a PKCS12 store's).
    pub ssl_truststore_password: Option<String>,
    /// `ssl.principal.mapping.rules` (KIP-371): how a client certificate's subject DN becomes
    /// its principal's name (`RULE:pattern/replacement/[LU]` and `DEFAULT`, separated by
    /// commas; `crate::security::mapping`). Unset: `DEFAULT`, the whole DN.
    pub ssl_principal_mapping_rules: Option<String>,
    /// Bootstrap SCRAM users, salted (Kafka's `kafka-storage format --add-scram`); credentials
    /// in the metadata log (AlterUserScramCredentials) take precedence.
    pub scram_users: Vec<StaticScramUser>,
    /// How OAUTHBEARER tokens are validated (`[security.oauthbearer]`; needed when
    /// `sasl_mechanisms` has OAUTHBEARER).
    pub oauthbearer: crate::security::oauthbearer::OAuthBearerSettings,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            cluster_secret_file: None,
            cluster_secret: None,
            sasl_mechanisms: ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
                .map(String::from)
                .to_vec(),
            super_users: Vec::new(),
            authorizer: None,
            allow_everyone_if_no_acl_found: false,
            connections_max_reauth_ms: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_auth: TlsClientAuth::None,
            tls_client_ca_file: None,
            ssl_key_password: None,
            ssl_keystore_location: None,
            ssl_keystore_type: StoreType::Pkcs12,
            ssl_keystore_password: None,
            ssl_truststore_location: None,
            ssl_truststore_type: StoreType::Pkcs12,
            ssl_truststore_password: None,
            ssl_principal_mapping_rules: None,
            scram_users: Vec::new(),
            oauthbearer: Default::default(),
        }
    }
}

/// Kafka's `ssl.client.auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsClientAuth {
    /// Clients are not asked for a certificate: SSL clients are `User:ANONYMOUS`.
    #[default]
    None,
    /// Asked; a client without one is `User:ANONYMOUS`, one with an unverifiable one refused.
    Requested,
    /// A client without a certificate that chains to `tls_client_ca_file` is refused.
    Required,
}

/// One bootstrap SCRAM credential, as stored (base64 of the salt and keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticScramUser {
    /// The user name.
    pub user: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// PBKDF2 iterations (4096..=16384).
    pub iterations: u32,
    /// Base64 salt.
    pub salt: String,
    /// Base64 H(ClientKey).
    pub stored_key: String,
    /// Base64 server key.
    pub server_key: String,
}

impl StaticScramUser {
    /// The stored form of `password` for `user` (what `rill cluster up --secure` writes).
    pub fn from_password(
        user: &str,
        mechanism: controller::ScramMechanism,
        password: &str,
        salt: &[u8],
    ) -> StaticScramUser {
        use base64::Engine as _;
        let iterations = controller::security::SCRAM_ITERATIONS_MIN;
        let c = crate::security::scram::credential(mechanism, password, salt, iterations);
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        StaticScramUser {
            user: user.to_string(),
            mechanism: mechanism.name().to_string(),
            iterations,
            salt: b64(&c.salt),
            stored_key: b64(&c.stored_key),
            server_key: b64(&c.server_key),
        }
    }

    fn decode(&self) -> Result<(controller::ScramMechanism, controller::ScramCredential), String> {
        use base64::Engine as _;
        let mechanism = controller::ScramMechanism::from_name(&self.mechanism)
            .ok_or_else(|| format!("mechanism {:?}", self.mechanism))?;
        let b64 = |what: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| format!("{what} of {} is not base64", self.user))
        };
        let credential = controller::ScramCredential {
            salt: b64("salt", &self.salt)?,
            stored_key: b64("stored_key", &self.stored_key)?,
            server_key: b64("server_key", &self.server_key)?,
            iterations: self.iterations,
        };
        controller::SecurityChange::UpsertScram {
            user: self.user.clone(),
            mechanism,
            credential: credential.clone(),
        }
        .check()?;
        Ok((mechanism, credential))
    }
}

impl SecuritySettings {
    /// A bootstrap user's credential for `mechanism` (validated at start).
    pub fn static_credential(
        &self,
        user: &str,
        mechanism: controller::ScramMechanism,
    ) -> Option<controller::ScramCredential> {
        self.scram_users
            .iter()
            .filter(|u| u.user == user)
            .filter_map(|u| u.decode().ok())
            .find(|(m, _)| *m == mechanism)
            .map(|(_, credential)| credential)
    }

    fn validate(&self, listeners: &Listeners) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(format!("security: {what}")));
        for mechanism in &self.sasl_mechanisms {
            let known = mechanism == crate::security::sasl::PLAIN
                || mechanism == crate::security::oauthbearer::MECHANISM
                || controller::ScramMechanism::from_name(mechanism).is_some();
            if !known {
                return invalid(format!(
                    "sasl_mechanisms: {mechanism:?} is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 \
                     or OAUTHBEARER"
                ));
            }
        }
        if self.oauthbearer_enabled() {
            // Reads the JWKS file too: a node that could not validate tokens does not start.
            if let Err(why) = self.oauthbearer.validator() {
                return invalid(format!("oauthbearer: {why}"));
            }
        }
        for user in &self.scram_users {
            if let Err(why) = user.decode() {
                return invalid(format!("scram_users: {why}"));
            }
        }
        for principal in &self.super_users {
            if !principal.contains(':') {
                return invalid(format!("super_users: {principal:?} is not Type:name"));
            }
        }
        let tls = listeners.protocols().any(SecurityProtocol::uses_tls);
        if tls && self.identity_source().is_none() {
            return invalid(
                "an SSL or SASL_SSL listener needs tls_cert_file and tls_key_file, or \
                 ssl_keystore_location"
                    .into(),
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid("tls_cert_file and tls_key_file go together".into());
        }
        if self.ssl_keystore_location.is_some() && self.tls_cert_file.is_some() {
            return invalid("set ssl_keystore_location or tls_cert_file, not both".into());
        }
        if self.ssl_truststore_location.is_some() && self.tls_client_ca_file.is_some() {
            return invalid("set ssl_truststore_location or tls_client_ca_file, not both".into());
        }
        for (name, kind, location, password) in [
            (
                "keystore",
                self.ssl_keystore_type,
                &self.ssl_keystore_location,
                &self.ssl_keystore_password,
            ),
            (
                "truststore",
                self.ssl_truststore_type,
                &self.ssl_truststore_location,
                &self.ssl_truststore_password,
            ),
        ] {
            if location.is_some() && kind == StoreType::Pkcs12 && password.is_none() {
                return invalid(format!(
                    "a PKCS12 ssl_{name}_location needs ssl_{name}_password"
                ));
            }
        }
        if self.tls_client_auth != TlsClientAuth::None && self.client_trust_source().is_none() {
            return invalid(
                "tls_client_auth needs tls_client_ca_file or ssl_truststore_location".into(),
            );
        }
        self.principal_mapper()?;
        Ok(())
    }

    /// Where the listeners' certificate chain and key are read from: the keystore, else the
    /// two PEM files.
    pub fn identity_source(&self) -> Option<IdentitySource> {
        let key_password = self.ssl_key_password.clone().map(Password);
        if let Some(path) = &self.ssl_keystore_location {
            return Some(IdentitySource::Store {
                store: StoreFile {
                    kind: self.ssl_keystore_type,
                    path: path.clone(),
                    password: self.ssl_keystore_password.clone().map(Password),
                },
                key_password,
            });
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(IdentitySource::PemFiles {
                cert: cert.clone(),
                key: key.clone(),
                key_password,
            }),
            _ => None,
        }
    }

    /// The CA certificates client certificates must chain to: the truststore, else
    /// `tls_client_ca_file` as a PEM store.
    pub fn client_trust_source(&self) -> Option<StoreFile> {
        if let Some(path) = &self.ssl_truststore_location {
            return Some(StoreFile {
                kind: self.ssl_truststore_type,
                path: path.clone(),
                password: self.ssl_truststore_password.clone().map(Password),
            });
        }
        self.tls_client_ca_file.as_ref().map(|path| StoreFile {
            kind: StoreType::Pem,
            path: path.clone(),
            password: None,
        })
    }

    /// The mapping of client certificate subjects to principal names
    /// (`ssl_principal_mapping_rules`; unset, `DEFAULT`).
    pub fn principal_mapper(
        &self,
    ) -> Result<crate::security::mapping::PrincipalMapper, ConfigError> {
        match &self.ssl_principal_mapping_rules {
            None => Ok(crate::security::mapping::PrincipalMapper::default()),
            Some(rules) => {
                crate::security::mapping::PrincipalMapper::from_rules(rules).map_err(|e| {
                    ConfigError::Invalid(format!("security: ssl_principal_mapping_rules: {e}"))
                })
            }
        }
    }

    /// Is OAUTHBEARER among `sasl_mechanisms`?
    pub fn oauthbearer_enabled(&self) -> bool {
        self.sasl_mechanisms
            .iter()
            .any(|m| m == crate::security::oauthbearer::MECHANISM)
    }

    /// The OAUTHBEARER validator, when the mechanism is enabled (reads the JWKS file).
    pub fn oauthbearer_validator(
        &self,
    ) -> Result<Option<crate::security::oauthbearer::Validator>, ConfigError> {
        if !self.oauthbearer_enabled() {
            return Ok(None);
        }
        self.oauthbearer
            .validator()
            .map(Some)
            .map_err(|why| ConfigError::Invalid(format!("security: oauthbearer: {why}")))
    }

    /// Is the ACL authorizer on? Unset: exactly when a listener uses SASL.
    pub fn authorizer_enabled(&self, listeners: &Listeners) -> bool {
        self.authorizer
            .unwrap_or_else(|| listeners.protocols().any(SecurityProtocol::uses_sasl))
    }

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

/// rill's short name of the rack-aware replica selector (`replica.selector.class`).
pub const REPLICA_SELECTOR_RACK_AWARE: &str = "rack-aware";
/// Kafka's class name of the same selector, accepted so Kafka configs carry over.
pub const REPLICA_SELECTOR_RACK_AWARE_KAFKA: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// How a leader picks the replica a consumer should read from (`replica.selector.class`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// Kafka's default (no selector): consumers read from the leader, or from whichever replica
    /// they fetch from, and are never redirected.
    LeaderOnly,
    /// Kafka's `RackAwareReplicaSelector`: a consumer whose rack holds an in-sync follower but
    /// not the leader is told to read from that follower.
    RackAware,
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
    /// `broker.rack`: the rack (or availability zone) this broker is in, registered with the
    /// controller and reported in Metadata; a rack-aware replica selector sends a consumer of
    /// the same rack to this broker (KIP-392). Unset: no rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rack: Option<String>,
    /// `replica.selector.class`: unset (Kafka's default) serves consumers from the leader only;
    /// [`REPLICA_SELECTOR_RACK_AWARE`] (or Kafka's class name,
    /// [`REPLICA_SELECTOR_RACK_AWARE_KAFKA`]) points a consumer whose `client.rack` matches an
    /// in-sync follower's rack at that follower (`preferred_read_replica`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_selector_class: Option<String>,
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
        if self.log.journal_file_bytes < 4096 {
            return invalid("log.journal_file_bytes must be at least 4 KiB");
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
        if self
            .broker_rack
            .as_ref()
            .is_some_and(|rack| rack.is_empty() || rack.len() > controller::RACK_BYTES_MAX)
        {
            return invalid("broker_rack must be 1 to 255 bytes");
        }
        self.replica_selector()?;
        self.listeners.validate()?;
        self.security.validate(&self.listeners)?;
        self.connections.validate()
    }

    /// The log-core settings for partitions of this node.
    pub fn log_config(&self) -> log_core::LogConfig {
        log_core::LogConfig {
            segment_bytes_max: self.log.segment_bytes,
            retention_ms: (self.log.retention_ms >= 0).then_some(self.log.retention_ms),
            retention_bytes: u64::try_from(self.log.retention_bytes).ok(),
            batch_bytes_max: self.log.message_max_bytes,
            tail_bytes_max: self.log.tail_bytes,
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
        self.log_config_with(topic, &BTreeMap::new())
    }

    /// [`NodeConfig::log_config_for`] with this broker's dynamic broker configs (`broker`: by
    /// broker config name, the broker's own over the cluster default's, as
    /// [`controller::MetadataImage::broker_config`] resolves them) between the node's values and
    /// the topic's own: Kafka's precedence, so a dynamic `log.retention.ms` is the retention of
    /// every topic without its own `retention.ms`.
    pub fn log_config_with(
        &self,
        topic: &controller::TopicConfig,
        broker: &BTreeMap<String, String>,
    ) -> log_core::LogConfig {
        let mut config = self.log_config();
        let mut merged: BTreeMap<String, String> = broker
            .iter()
            .filter_map(|(name, value)| {
                let def = controller::broker_configs::lookup(name)?;
                let topic_name = def.topic_config.filter(|_| def.applied)?;
                Some((topic_name.to_string(), value.clone()))
            })
            .collect();
        merged.extend(
            topic
                .overrides
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        let overrides = &merged;
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

    /// The replica selector `replica_selector_class` names.
    pub fn replica_selector(&self) -> Result<ReplicaSelector, ConfigError> {
        match self.replica_selector_class.as_deref() {
            None => Ok(ReplicaSelector::LeaderOnly),
            Some(REPLICA_SELECTOR_RACK_AWARE | REPLICA_SELECTOR_RACK_AWARE_KAFKA) => {
                Ok(ReplicaSelector::RackAware)
            }
            Some(other) => Err(ConfigError::Invalid(format!(
                "replica_selector_class {other:?}: unset (leader only), \
                 {REPLICA_SELECTOR_RACK_AWARE:?} or {REPLICA_SELECTOR_RACK_AWARE_KAFKA:?}"
            ))),
        }
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
