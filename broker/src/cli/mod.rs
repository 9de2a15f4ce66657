//! The `rill` command line: `broker`, `cluster up|down`, `topic`, `produce`, `consume`, `check`.

pub mod cluster;
pub mod quick;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::node::{self, NodeConfig, NodeOptions};

/// rill: a Kafka-compatible replicated commit log.
#[derive(Debug, Parser)]
#[command(name = "rill", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node (broker, controller or both) from a TOML config.
    Broker(BrokerArgs),
    /// Start or stop a local multi-process cluster on 127.0.0.1.
    Cluster {
        /// up or down.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Create, list or delete topics.
    Topic(quick::TopicArgs),
    /// Produce lines of stdin (or `--value`) to a topic.
    Produce(quick::ProduceArgs),
    /// Print records of a topic.
    Consume(quick::ConsumeArgs),
    /// Check a Jepsen-style history: exit 0 valid, 1 invalid, 2 unknown, 3 bad input
    /// (`rill check --help` for every option).
    Check {
        /// FILE.jsonl and the checker's options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `rill cluster` actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Start N combined broker+controller processes; prints the bootstrap servers.
    Up {
        /// Number of nodes (the first three are controller voters).
        #[arg(long, default_value_t = 3)]
        brokers: usize,
        /// Where configs, logs and data go.
        #[arg(long)]
        dir: PathBuf,
        /// First port; node N uses base+10N (Kafka), +1 (controller), +2 (metrics).
        #[arg(long, default_value_t = 19090)]
        base_port: u16,
        /// Partitions of topics created without a count, auto-created ones included
        /// (`num.partitions`).
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Also serve clients on a SASL_SSL listener (base+10N+3) and a mutual-TLS SSL listener
        /// (base+10N+5) with a generated CA, node certificates, a SCRAM user `admin` and a
        /// client certificate for CN=admin (DIR/client.pem, both super users); the authorizer
        /// is on. Prints the client settings and writes them to DIR/client.properties.
        #[arg(long)]
        secure: bool,
        /// With --secure: also a SASL_PLAINTEXT listener (base+10N+4), for clients without TLS
        /// on this machine (PLAIN passwords cross it in clear).
        #[arg(long, requires = "secure")]
        sasl_plaintext: bool,
        /// With --secure: OAUTHBEARER on the SASL listeners too, its tokens validated as this
        /// says: `unsecured` (unsigned tokens, Kafka's unsecured validator: development only) or
        /// a JWKS file (`file:/path/jwks.json`) for signed ones.
        #[arg(long, requires = "secure", value_name = "unsecured|file:JWKS")]
        oauthbearer: Option<String>,
        /// Put node N in rack RACK<N> (broker_rack) with the rack-aware replica selector, so
        /// consumers with a client.rack fetch from followers of their rack (KIP-392).
        #[arg(long)]
        racks: bool,
        /// Run the ACL authorizer on every listener, the plaintext one included, with
        /// `allow.everyone.if.no.acl.found` (a resource without any ACL stays open to all), as
        /// Kafka test clusters with an authorizer run: CreateAcls, DescribeAcls and DeleteAcls
        /// work and ACLs bind, while clients that no ACL names keep working.
        #[arg(long)]
        authorizer: bool,
    },
    /// Stop the cluster started in DIR.
    Down {
        /// The directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `rill broker` options: the config file and overrides.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// The TOML configuration (see `broker/src/node/config.rs` or the README).
    #[arg(long)]
    pub config: PathBuf,
    /// Override `node_id`.
    #[arg(long)]
    pub node_id: Option<i32>,
    /// Override `data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Override `listeners.kafka`.
    #[arg(long)]
    pub listen: Option<String>,
    /// Override `listeners.advertised_kafka`.
    #[arg(long)]
    pub advertise: Option<String>,
    /// Override `listeners.controller`.
    #[arg(long)]
    pub controller_listen: Option<String>,
    /// Override `controller_voters` (comma-separated id@host:port).
    #[arg(long)]
    pub voters: Option<String>,
}

impl BrokerArgs {
    /// The file's configuration with the overrides applied, validated.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(&self.config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.config.display()))?;
        let mut config = NodeConfig::from_toml(&text)?;
        if let Some(id) = self.node_id {
            config.node_id = id;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = &self.listen {
            config.listeners.kafka = Some(listen.clone());
        }
        if let Some(advertise) = &self.advertise {
            config.listeners.advertised_kafka = Some(advertise.clone());
        }
        if let Some(listen) = &self.controller_listen {
            config.listeners.controller = Some(listen.clone());
        }
        if let Some(voters) = &self.voters {
            config.controller_voters = voters.split(',').map(str::to_string).collect();
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs `rill broker` until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run_broker(args: &BrokerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let disk: Arc<dyn log_core::Disk> = Arc::new(log_core::FileDisk::with_open_files_max(
        &config.data_dir,
        open_files_max(),
    )?);
    let handle = node::start(config, disk, node_options()?).await?;
    wait_for_stop_signal().await;
    tracing::info!("stop signal received; shutting down");
    handle.shutdown();
    Ok(())
}

/// The node's options: the defaults, or with the `bug-switches` feature the historic bugs named in
/// `RILL_BUGS` (comma-separated), so that Jepsen on real processes can show it catches them.
fn node_options() -> anyhow::Result<NodeOptions> {
    #[allow(unused_mut)]
    let mut options = NodeOptions::default();
    #[cfg(feature = "bug-switches")]
    for bug in std::env::var("RILL_BUGS").unwrap_or_default().split(',') {
        let bug = bug.trim();
        if bug.is_empty() {
            continue;
        }
        match bug {
            "truncate-to-hw" => options.bugs.truncate_to_high_watermark = true,
            "no-epoch-fencing" => options.bugs.no_epoch_fencing = true,
            "last-replica-standing" => {
                options.bugs.last_replica_standing = true;
                options.controller_bugs.no_elr = true;
            }
            other => anyhow::bail!("RILL_BUGS: unknown bug `{other}`"),
        }
        tracing::warn!(bug, "historic bug switched on (RILL_BUGS)");
    }
    Ok(options)
}

/// How many segment files the broker keeps open: half its file-descriptor limit (the rest is for
/// connections), raised first to the hard limit as Kafka's packaging does, within [64, 65536].
fn open_files_max() -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-files limit");
            return log_core::OPEN_FILES_MAX_DEFAULT;
        }
    };
    let files = usize::try_from(limit / 2).unwrap_or(usize::MAX);
    let files = files.clamp(64, 65_536);
    tracing::info!(limit, files, "open-files limit");
    files
}

#[cfg(not(madsim))]
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
                // makes a simulated seed run differently the second time in one process.
                biased;
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the broker");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(madsim)]
async fn wait_for_stop_signal() {
    // The simulator stops nodes by killing them; a simulated process never sees a signal.
    std::future::pending::<()>().await
}
