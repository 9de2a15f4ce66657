//! A rill node: broker, controller or both (combined mode), started from a [`NodeConfig`] on a
//! `log_core::Disk`. The same code runs in production (tokio, `FileDisk`) and in the simulator
//! (madsim, `MemDisk`); nothing here reads the OS clock or RNG except through `crate::runtime`.
//!
//! Start-up order: controller (if a voter), then the broker: register with the quorum, follow
//! the metadata image, open the partitions assigned here, serve Kafka clients.

pub mod broker_settings;
pub mod config;
mod fetcher;
pub mod handlers;
pub mod metrics;
pub mod peer;
pub mod replica_selector;
pub mod replication_wire;
pub mod shared;
pub mod storage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use log_core::Disk;
use replication::BugSwitches;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{NodeConfig, Role};
use handlers::groups::GroupService;
use handlers::KafkaHandler;
use shared::Shared;

use crate::control::{
    BrokerLifecycle, ControllerClient, ControllerHandle, ControllerNode, ControllerStatus,
    LifecycleConfig, QuorumConfig,
};
use crate::protocol::connection::serve_connection;
use crate::protocol::limits::{ConnectionSlots, RequestBytesBudget};
use crate::protocol::versions::VersionTable;
use crate::security::{ListenerInfo, SecurityProtocol};

/// The controller's raft state directory inside the data directory (not a partition log).
pub const RAFT_DIR: &str = "__cluster_metadata-0";

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A listener could not be bound.
    #[error("bind {address}: {reason}")]
    Bind {
        /// The address.
        address: String,
        /// The OS's reason.
        reason: String,
    },
    /// The disk failed at start.
    #[error("disk: {0}")]
    Disk(String),
    /// The controller could not start.
    #[error("controller: {0}")]
    Controller(String),
}

/// Options the simulator sets and production leaves at their defaults.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Historic-bug switches of the replica cores.
    pub bugs: BugSwitches,
    /// Historic-bug switches of the controller.
    pub controller_bugs: controller::HistoricBugs,
}

/// A running node; dropping it does not stop it, [`NodeHandle::shutdown`] does.
pub struct NodeHandle {
    /// The controller, when this node is a voter.
    pub controller: Option<ControllerHandle>,
    /// The broker's shared state, when this node is a broker.
    pub broker: Option<Arc<Shared>>,
    /// The broker's registration and metadata follower.
    lifecycle: Option<BrokerLifecycle>,
    /// Background tasks to stop at shutdown.
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops serving, flushes and closes every partition.
    pub fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(lifecycle) = &self.lifecycle {
            lifecycle.shutdown();
        }
        if let Some(shared) = &self.broker {
            for partition in shared.partitions() {
                partition.close();
            }
        }
        if let Some(controller) = &self.controller {
            controller.shutdown();
        }
        tracing::info!("node stopped");
    }
}

/// Starts a node on `disk` (its data directory).
pub async fn start(
    config: NodeConfig,
    disk: Arc<dyn Disk>,
    options: NodeOptions,
) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let voters = config.voters()?;
    // Kafka's "clean shutdown" flag, in rill's sense: the logs hold everything they flushed.
    let storage = storage::open(&disk, &config.log, &[RAFT_DIR])?;
    let node_id = u64::try_from(config.node_id).expect("validated positive");
    let secret = config.security.secret()?;
    if secret.is_none() {
        tracing::warn!(
            node = node_id,
            "no cluster secret (security.cluster_secret_file): anyone who reaches this node's \
             controller or Kafka port can forge raft messages, broker registrations, topic \
             changes and follower fetches; see docs/security.md"
        );
    }
    let mut tasks = Vec::new();
    let controller = if config.has_role(Role::Controller) {
        let mut core = controller::ControllerConfig::new(node_id, voters.keys().copied().collect());
        core.broker_session_timeout_ms = config.timing.broker_session_timeout_ms;
        core.bugs = options.controller_bugs;
        let quorum = QuorumConfig {
            node_id,
            voters: voters.clone(),
            listen: config.listeners.controller.clone().expect("validated"),
            tick_ms: config.timing.controller_tick_ms,
            tick_jitter_ms: config.timing.controller_tick_ms / 2,
            controller: core,
            secret: secret.clone(),
        };
        let handle = ControllerNode::start(quorum, disk.clone(), Path::new(RAFT_DIR))
            .await
            .map_err(|e| NodeError::Controller(e.to_string()))?;
        Some(handle)
    } else {
        None
    };
    let (broker, lifecycle) = if config.has_role(Role::Broker) {
        let status = controller.as_ref().map(ControllerHandle::status_watch);
        let (shared, lifecycle, broker_tasks) = start_broker(
            config,
            disk.clone(),
            voters,
            storage,
            options,
            status,
            secret,
        )
        .await?;
        tasks.extend(broker_tasks);
        (Some(shared), Some(lifecycle))
    } else {
        (None, None)
    };
    Ok(NodeHandle {
        controller,
        broker,
        lifecycle,
        tasks,
    })
}

async fn bind(address: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| NodeError::Bind {
            address: address.to_string(),
            reason: e.to_string(),
        })
}

/// The broker role: listener, registration, metadata, partitions, groups, metrics.
async fn start_broker(
    config: NodeConfig,
    disk: Arc<dyn Disk>,
    voters: std::collections::BTreeMap<u64, String>,
    storage: storage::Opened,
    options: NodeOptions,
    controller_status: Option<crate::watch::Receiver<ControllerStatus>>,
    secret: Option<crate::auth::ClusterSecret>,
) -> Result<(Arc<Shared>, BrokerLifecycle, Vec<JoinHandle<()>>), NodeError> {
    let storage::Opened {
        clean_shutdown,
        journal,
    } = storage;
    let mut listeners = Vec::new();
    let mut registered = Vec::new();
    for (name, address, advertised, protocol) in config.listeners.kafka_listeners() {
        let (host, port) = advertised.rsplit_once(':').ok_or_else(|| {
            config::ConfigError::Invalid(format!(
                "advertised address {advertised:?} is not host:port"
            ))
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| config::ConfigError::Invalid(format!("advertised port {port:?}")))?;
        warn_if_exposed(&address, protocol);
        registered.push(controller::Listener {
            name: name.clone(),
            host: host.to_string(),
            port,
        });
        let info = Arc::new(ListenerInfo { name, protocol });
        listeners.push((bind(&address).await?, info));
    }
    // Two acceptors: SASL_SSL listeners never ask for a client certificate, SSL ones as
    // `tls_client_auth` says (Kafka's KIP-684 default).
    let tls = match config.security.identity_source() {
        Some(identity) => {
            let invalid = |e: String| config::ConfigError::Invalid(format!("security: TLS: {e}"));
            let sasl = crate::tls::TlsAcceptor::new(&identity).map_err(invalid)?;
            let trust = config.security.client_trust_source();
            let client_auth = match (config.security.tls_client_auth, &trust) {
                (config::TlsClientAuth::None, _) | (_, None) => None,
                (config::TlsClientAuth::Requested, Some(trust)) => Some((trust, false)),
                (config::TlsClientAuth::Required, Some(trust)) => Some((trust, true)),
            };
            let ssl = match client_auth {
                None => sasl.clone(),
                Some(_) => crate::tls::TlsAcceptor::with_client_auth(&identity, client_auth)
                    .map_err(invalid)?,
            };
            let mapper = Arc::new(config.security.principal_mapper()?);
            Some(Acceptors { ssl, sasl, mapper })
        }
        None => None,
    };
    let credentials = secret.clone().map(|secret| crate::auth::NodeCredentials {
        node_id: u64::try_from(config.node_id).expect("validated positive"),
        secret,
    });
    let client =
        ControllerClient::with_credentials(voters, config.timing.request_timeout_ms, credentials);
    let lifecycle_config = LifecycleConfig {
        heartbeat_interval_ms: config.timing.broker_heartbeat_interval_ms,
        session_timeout_ms: config.timing.broker_session_timeout_ms,
        rack: config.broker_rack.clone(),
        ..LifecycleConfig::default()
    };
    let lifecycle = BrokerLifecycle::start(
        client.clone(),
        wire::BrokerId(config.node_id),
        registered,
        clean_shutdown,
        lifecycle_config,
    );
    let metrics_address = config.listeners.metrics.clone();
    let oauthbearer = config.security.oauthbearer_validator()?;
    let shared = Shared::new(
        config,
        disk,
        lifecycle.image(),
        client,
        options.bugs,
        lifecycle.incarnation(),
        secret,
        oauthbearer,
        crate::partition::IoWorker::start(journal),
    );
    let groups = GroupService::start(shared.clone(), lifecycle.incarnation());
    let kafka_address = shared.config.listeners.kafka.clone().unwrap_or_default();
    let handler = KafkaHandler {
        shared: shared.clone(),
        groups,
        peer: None,
        auth: Default::default(),
        listener: listeners[0].1.clone(),
    };
    let settings = shared.config.connections.clone();
    let mut tasks = vec![
        tokio::spawn(follow_metadata(shared.clone())),
        tokio::spawn(housekeeping(shared.clone())),
        tokio::spawn(accept_once_caught_up(listeners, tls, handler, settings)),
    ];
    if let Some(address) = metrics_address {
        let metrics_listener = bind(&address).await?;
        let scraped = shared.clone();
        tasks.push(tokio::spawn(metrics::serve(metrics_listener, move || {
            let controller = controller_status.as_ref().map(|s| s.borrow().clone());
            render_metrics(&scraped, controller)
        })));
    }
    tracing::info!(node = shared.broker_id.0, %kafka_address, "broker serving");
    Ok((shared, lifecycle, tasks))
}

/// Applies every new metadata image to the hosted partitions, once the image holds this
/// process's own registration. An image from before it still names the previous process as
/// leader in the old epoch; acting on it, a restarted leader appended new records at offsets a
/// follower already held from the old process's unflushed tail — two records at one offset in
/// one epoch, which no epoch check can tell apart (found by the cluster simulation, seed 99:
/// an acknowledged record lost). The registration's own batch bumps those epochs.
///
/// Once an unclean registration is in the metadata, the data directory's unclean mark goes
/// (`Shared::clear_unclean_mark_once_reported`: unless a running repair's loss is still
/// unreported): the controller knows what this disk lost.
async fn follow_metadata(shared: Arc<Shared>) {
    let mut image = shared.image.clone();
    // A clean start left no mark: its first try finds none.
    let mut loss_reported = false;
    loop {
        let current = image.borrow_and_update().clone();
        if registered_here(&current, shared.broker_id, shared.incarnation) {
            if !loss_reported {
                // Not cleared yet (a failed copy's report under way, a disk error): the
                // report's end tries again; the next start registers unclean, which is safe.
                loss_reported = shared.clear_unclean_mark_once_reported(true);
            }
            shared.reconcile(&current);
        } else {
            tracing::debug!(broker = %shared.broker_id, "metadata from before our registration: not applied");
        }
        if image.changed().await.is_err() {
            return;
        }
    }
}

/// Serves Kafka clients only once this broker's image holds its own registration: Kafka's
/// broker, too, enables request processing only after its initial metadata catch-up. Before,
/// a restarted broker answered Metadata with no brokers and UNKNOWN_TOPIC_OR_PARTITION, and
/// librdkafka dropped 1.4k queued messages as "Unknown partition". Meanwhile connections wait
/// in the listen backlog (clients time out and try another bootstrap broker).
async fn accept_once_caught_up(
    listeners: Vec<(TcpListener, Arc<ListenerInfo>)>,
    tls: Option<Acceptors>,
    handler: KafkaHandler,
    settings: config::ConnectionSettings,
) {
    let shared = handler.shared.clone();
    let mut image = shared.image.clone();
    loop {
        let current = image.borrow_and_update().clone();
        if registered_here(&current, shared.broker_id, shared.incarnation) {
            break;
        }
        if image.changed().await.is_err() {
            return;
        }
    }
    tracing::info!(broker = %shared.broker_id, "caught up with the controller: serving Kafka clients");
    let serving = Arc::new(Serving {
        table: VersionTable::implemented(),
        config: settings.connection_config(),
        slots: ConnectionSlots::new(settings.connections_max),
        budget: RequestBytesBudget::new(settings.queued_max_request_bytes),
    });
    let mut accepting = Vec::new();
    for (listener, info) in listeners {
        let tls = if info.protocol.uses_tls() {
            let acceptors = tls
                .as_ref()
                .expect("validated: TLS listeners have a certificate");
            let acceptor = if info.protocol.uses_sasl() {
                acceptors.sasl.clone()
            } else {
                acceptors.ssl.clone()
            };
            Some((acceptor, acceptors.mapper.clone()))
        } else {
            None
        };
        let handler = KafkaHandler {
            listener: info,
            ..handler.clone()
        };
        accepting.push(tokio::spawn(accept(
            listener,
            tls,
            handler,
            serving.clone(),
        )));
    }
    // The tasks end only when aborted with this one (at shutdown).
    let _aborts: Vec<AbortOnDrop> = accepting.into_iter().map(AbortOnDrop).collect();
    std::future::pending::<()>().await;
}

/// Aborts a task when dropped: the per-listener accept loops end with the task that owns them.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every Kafka listener of a broker shares: the version table, the limits, the
/// connection slots and the request bytes budget.
struct Serving {
    table: VersionTable,
    config: crate::protocol::connection::ConnectionConfig,
    slots: ConnectionSlots,
    budget: RequestBytesBudget,
}

/// Warns about a listener any host may reach without TLS or SASL (issue 15: secure by default
/// where it costs nothing).
fn warn_if_exposed(address: &str, protocol: SecurityProtocol) {
    if is_exposed(address, protocol) {
        tracing::warn!(
            %address,
            "a PLAINTEXT Kafka listener on a non-loopback address: any host that reaches it may \
             produce, consume and change topics without credentials; add a SASL_SSL listener \
             (docs/security.md)"
        );
    }
}

/// Is `address` a PLAINTEXT listener other hosts can reach (not loopback)?
pub fn is_exposed(address: &str, protocol: SecurityProtocol) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback && protocol == SecurityProtocol::Plaintext
}

/// Does `image` hold `broker`'s registration by this process (`incarnation`)?
fn registered_here(
    image: &controller::MetadataImage,
    broker: wire::BrokerId,
    incarnation: u64,
) -> bool {
    image
        .brokers()
        .get(&broker)
        .is_some_and(|registration| registration.incarnation == incarnation)
}

/// Rolls segments and enforces retention every `log.retention_check_interval_ms`.
async fn housekeeping(shared: Arc<Shared>) {
    let interval_ms = shared.config.log.retention_check_interval_ms;
    assert!(interval_ms > 0, "validated with the configuration");
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        for partition in shared.partitions() {
            if crate::runtime::buggify("partition.housekeeping.skip") {
                // BUGGIFY: a housekeeping pass comes late for this partition.
                continue;
            }
            if crate::runtime::buggify("partition.housekeeping.slow") {
                // BUGGIFY: slow segment rolls and retention: the partitions after this one
                // wait.
                let delay = crate::runtime::jitter_ms(1, 500);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            partition.housekeeping();
        }
    }
}

/// The TLS acceptors of a node's listeners.
#[derive(Clone, Debug)]
struct Acceptors {
    /// SSL listeners': asks for client certificates as `tls_client_auth` says.
    ssl: crate::tls::TlsAcceptor,
    /// SASL_SSL listeners': never asks.
    sasl: crate::tls::TlsAcceptor,
    /// `ssl.principal.mapping.rules`: client certificates' subjects to principal names.
    mapper: Arc<crate::security::mapping::PrincipalMapper>,
}

/// Accepts Kafka connections of one listener, each served by its own task. The task owns its
/// connection slot, so the slot frees however the task ends, a panic included. A TLS listener's
/// handshake runs on that task too, within the frame read timeout.
async fn accept(
    listener: TcpListener,
    tls: Option<(
        crate::tls::TlsAcceptor,
        Arc<crate::security::mapping::PrincipalMapper>,
    )>,
    handler: KafkaHandler,
    serving: Arc<Serving>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = serving.slots.try_acquire() else {
            tracing::warn!(%peer, open = serving.slots.open(), "connection limit reached; closing");
            continue;
        };
        let _best_effort = stream.set_nodelay(true);
        let mut handler = handler.clone();
        handler.peer = Some(peer);
        handler.auth = Default::default(); // Each connection proves itself.
        let (tls, serving) = (tls.clone(), serving.clone());
        tokio::spawn(async move {
            let _slot = slot;
            tracing::debug!(%peer, listener = %handler.listener.name, "connection opened");
            let Serving {
                table,
                config,
                budget,
                ..
            } = &*serving;
            match tls {
                None => {
                    let _logged = serve_connection(stream, table, &handler, config, budget).await;
                }
                Some((tls, mapper)) => {
                    match tokio::time::timeout(config.frame_read_timeout, tls.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            match crate::tls::TlsAcceptor::peer_subject(&stream) {
                                None => {}
                                Some(Ok(subject)) => match mapper.name(&subject) {
                                    Ok(name) => {
                                        tracing::debug!(%peer, %subject, %name, "client certificate");
                                        handler.auth.set_certificate_subject(name);
                                    }
                                    // Kafka refuses a certificate no mapping rule names.
                                    Err(error) => {
                                        tracing::info!(%peer, %error, "client certificate refused");
                                        return;
                                    }
                                },
                                Some(Err(error)) => {
                                    tracing::info!(%peer, %error, "client certificate refused");
                                    return;
                                }
                            }
                            let _logged =
                                serve_connection(stream, table, &handler, config, budget).await;
                        }
                        Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake failed"),
                        Err(_elapsed) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// The /metrics body: counters and histograms plus gauges from partition state.
fn render_metrics(shared: &Shared, controller: Option<ControllerStatus>) -> String {
    let mut leaders = 0_u64;
    let mut under_replicated = 0_u64;
    let mut offline = 0_u64;
    for partition in shared.partitions() {
        let status = partition.status();
        if status.failed.is_some() {
            offline += 1;
        }
        if let (true, Some(state)) = (status.is_leader, status.state.as_ref()) {
            leaders += 1;
            if state.isr.len() < state.replicas.len() {
                under_replicated += 1;
            }
        }
    }
    let mut gauges = vec![
        (
            "rill_partitions".to_string(),
            shared.partitions().len() as f64,
        ),
        ("rill_partitions_leader".to_string(), leaders as f64),
        (
            "rill_partitions_under_replicated".to_string(),
            under_replicated as f64,
        ),
        ("rill_partitions_offline".to_string(), offline as f64),
        (
            "rill_metadata_applied_index".to_string(),
            shared.image().applied_index() as f64,
        ),
    ];
    if let Some(status) = controller {
        gauges.push((
            "rill_controller_active".to_string(),
            f64::from(u8::from(status.is_active)),
        ));
        // The raft term is the controller epoch: it grows with every controller election.
        gauges.push(("rill_controller_epoch".to_string(), status.term as f64));
        gauges.push((
            "rill_controller_applied_index".to_string(),
            status.applied_index as f64,
        ));
    }
    shared.metrics.render(&gauges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_listeners_beyond_loopback_are_exposed() {
        let plain = SecurityProtocol::Plaintext;
        assert!(is_exposed("0.0.0.0:9092", plain));
        assert!(is_exposed("10.1.2.3:9092", plain));
        assert!(is_exposed("[::]:9092", plain));
        assert!(is_exposed("kafka.example.com:9092", plain));
        assert!(!is_exposed("127.0.0.1:9092", plain));
        assert!(!is_exposed("[::1]:9092", plain));
        assert!(!is_exposed("localhost:9092", plain));
        assert!(!is_exposed("0.0.0.0:9093", SecurityProtocol::SaslSsl));
        assert!(!is_exposed("0.0.0.0:9093", SecurityProtocol::SaslPlaintext));
    }
}
