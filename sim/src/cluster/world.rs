//! One seed's madsim world: the three nodes on their MemDisks (kept outside the simulated
//! processes so they survive kills), the client node, the nemesis applying the schedule, and
//! the three phases. Only builds under `--cfg madsim`; the normal build reports that.

use super::record::{lock, Recorder, Shared};
use super::ClusterDraw;
use crate::report::Timeline;
use crate::trace::Trace;
use broker::node::NodeOptions;
use jepsen::history::History;

/// What a run of the world left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The Jepsen history.
    pub history: History,
    /// The trace.
    pub trace: Trace,
    /// Faults, partitions, phases and the end-of-run checks' findings, for the report.
    pub timeline: Timeline,
    /// A violation found before the checker ran (liveness, set-up), if any.
    pub violation: Option<String>,
    /// Completed client operations.
    pub completions: u64,
    /// Simulated time of the whole run, ms.
    pub simulated_ms: u64,
    /// Per partition key, the highest log start consumers were told of (retention).
    pub log_starts: std::collections::BTreeMap<String, u64>,
    /// Stale copies a leader appended again (the stale-request nemesis).
    pub reappended: Vec<super::record::Reappended>,
    /// The run ended with partitions offline as clean elections promise after an opening
    /// in-sync-copies-lost episode ([`ClusterDraw::isr_loss_opening`]): acknowledged records
    /// they held were never read back, so the checker's `unseen` is expected.
    pub offline_as_expected: bool,
}

fn outcome(shared: Shared, violation: Option<String>, simulated_ms: u64) -> Outcome {
    let recorder = lock(&shared);
    Outcome {
        history: recorder.history.history().clone(),
        trace: recorder.trace.clone(),
        timeline: recorder.timeline_now(),
        violation,
        completions: recorder.completions,
        simulated_ms,
        log_starts: recorder.log_starts.clone(),
        reappended: recorder.reappended.clone(),
        offline_as_expected: false,
    }
}

/// The normal build has no simulator: the scenario says so instead of running.
#[cfg(not(madsim))]
pub fn run(_seed: u64, _draw: &ClusterDraw, _options: NodeOptions, _sends_max: u64) -> Outcome {
    let shared = Recorder::new();
    outcome(
        shared,
        Some("the cluster scenario needs the madsim build: run it through `cargo sim`".into()),
        0,
    )
}

#[cfg(madsim)]
pub use simulated::run;

#[cfg(madsim)]
mod simulated {
    use super::super::nemesis::{CrashPoint, Fault, RestartOrder, NODES};
    use super::super::operations::SimSasl;
    use super::super::replicas;
    use super::super::workload::{self, WorkloadConfig};
    use super::super::{Shape, LIVENESS_MS, SET_UP_MS};
    use super::*;
    use crate::report::{FindingKind, Row};
    use broker::node::config::{
        ExtraListener, Listeners, LogSettings, NodeConfig, Role, SecuritySettings, StaticScramUser,
        Timing, TopicDefaults,
    };
    use broker::runtime::NodeClock;
    use broker::security::SecurityProtocol;
    use controller::ScramMechanism;
    use log_core::{FaultConfig, MemDisk};
    use madsim::net::NetSim;
    use madsim::runtime::{Handle, NodeHandle, Runtime};
    use std::collections::BTreeSet;
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

    /// The client node's address.
    const CLIENT_IP: &str = "10.0.0.10";
    /// The port of the clients' SASL listener on seeds that draw one.
    const CLIENT_SASL_PORT: u16 = 9094;
    /// Every node's cluster secret: inter-node traffic runs the production handshake.
    const CLUSTER_SECRET: &str = "rill-simulated-cluster-secret";
    /// Beyond a replica lag time, how long every node must have run undisturbed before a
    /// disk is wiped: a registration and an ISR change reach the observer.
    const WIPE_QUIET_MARGIN_MS: u64 = 1_000;
    /// The oldest ISR observation a wipe may go by.
    const WIPE_OBSERVATION_AGE_MS: u64 = 1_500;
    /// madsim's default message latency, restored when the network heals.
    const NORMAL_LATENCY: std::ops::Range<Duration> =
        Duration::from_millis(1)..Duration::from_millis(10);
    /// Backstop on a run's simulated time: set-up, safety, liveness and slack.
    const RUN_SIMULATED_S_MAX: u64 = 400;

    fn ip(node: u8) -> IpAddr {
        format!("10.0.0.{node}")
            .parse()
            .expect("a literal address parses")
    }

    /// Node ids of the controller quorum: the brokers themselves, or nodes 4..=6.
    fn controller_ids(draw: &ClusterDraw) -> std::ops::RangeInclusive<u8> {
        match draw.shape {
            Shape::Combined => 1..=NODES,
            Shape::Split => NODES + 1..=2 * NODES,
        }
    }

    /// The clients' user's stored SCRAM credentials, one per mechanism. The user, password and
    /// salts are constants, so they are derived once per process: PBKDF2's 4,096 rounds for
    /// every node of every seed were 5 % of the simulator's instructions.
    fn sim_scram_users() -> &'static [StaticScramUser] {
        static USERS: std::sync::OnceLock<Vec<StaticScramUser>> = std::sync::OnceLock::new();
        USERS.get_or_init(|| {
            [ScramMechanism::Sha256, ScramMechanism::Sha512]
                .map(|mechanism| {
                    StaticScramUser::from_password(
                        SimSasl::USER,
                        mechanism,
                        SimSasl::PASSWORD,
                        format!("sim-salt-{}", mechanism.name()).as_bytes(),
                    )
                })
                .to_vec()
        })
    }

    fn node_config(node: u8, draw: &ClusterDraw) -> NodeConfig {
        let voters = controller_ids(draw)
            .map(|n| format!("{n}@{}:9093", ip(n)))
            .collect();
        let broker = node <= NODES;
        let controller = controller_ids(draw).contains(&node);
        let mut roles = Vec::new();
        if broker {
            roles.push(Role::Broker);
        }
        if controller {
            roles.push(Role::Controller);
        }
        let mut listeners = Listeners {
            kafka: broker.then(|| "0.0.0.0:9092".into()),
            advertised_kafka: broker.then(|| format!("{}:9092", ip(node))),
            controller: controller.then(|| "0.0.0.0:9093".into()),
            metrics: None,
            ..Listeners::default()
        };
        // The same handshake as production, over madsim TCP.
        let mut security = SecuritySettings {
            cluster_secret: Some(CLUSTER_SECRET.into()),
            ..SecuritySettings::default()
        };
        if let Some(sasl) = draw.clients.sasl.filter(|_| broker) {
            // The clients' own listener requires SASL (and, for SASL_SSL, TLS: plain under
            // madsim); the authorizer is on, as with any SASL listener, and the clients' user a
            // super user. The kafka listener stays PLAINTEXT for replication and the forger.
            listeners.extra = vec![ExtraListener {
                name: "CLIENTS".into(),
                address: format!("0.0.0.0:{CLIENT_SASL_PORT}"),
                advertised: Some(format!("{}:{CLIENT_SASL_PORT}", ip(node))),
                protocol: match sasl.protocol() {
                    client::SecurityProtocol::SaslSsl => SecurityProtocol::SaslSsl,
                    _ => SecurityProtocol::SaslPlaintext,
                },
            }];
            security.super_users = vec![format!("User:{}", SimSasl::USER)];
            if sasl.mechanism == client::SaslMechanism::OAuthBearer {
                security.sasl_mechanisms.push("OAUTHBEARER".into());
                security.oauthbearer.unsecured = true;
                security.oauthbearer.unsecured_allowable_clock_skew_ms =
                    SimSasl::TOKEN_CLOCK_SKEW_MS;
            }
            security.scram_users = sim_scram_users().to_vec();
            if sasl.tls {
                // Never read under madsim (broker/src/tls.rs).
                security.tls_cert_file = Some("/rill/tls/node.pem".into());
                security.tls_key_file = Some("/rill/tls/node.key".into());
            }
        }
        NodeConfig {
            node_id: i32::from(node),
            roles,
            data_dir: format!("/rill/{node}").into(),
            controller_voters: voters,
            broker_rack: draw
                .clients
                .consumer_rack_broker
                .filter(|_| broker)
                .map(|_| crate::cluster::operations::rack_of(node)),
            replica_selector_class: draw
                .clients
                .consumer_rack_broker
                .filter(|_| broker)
                .map(|_| broker::node::config::REPLICA_SELECTOR_RACK_AWARE.to_string()),
            listeners,
            topics: TopicDefaults {
                replication_factor: 3,
                partitions: 3,
                min_insync_replicas: draw.min_isr,
                unclean_leader_election: draw.unclean,
                auto_create: false,
            },
            log: LogSettings {
                segment_bytes: draw.segment_bytes,
                compression_type: draw.compression_type.to_string(),
                retention_check_interval_ms: draw
                    .operations
                    .map_or(LogSettings::default().retention_check_interval_ms, |o| {
                        o.check_interval_ms
                    }),
                journal: draw.journal_file_bytes.is_some(),
                journal_file_bytes: draw
                    .journal_file_bytes
                    .unwrap_or(LogSettings::default().journal_file_bytes),
                tail_bytes: draw.tail_bytes,
                ..LogSettings::default()
            },
            timing: Timing {
                replica_lag_time_max_ms: draw.replica_lag_time_max_ms,
                broker_session_timeout_ms: draw.broker_session_timeout_ms,
                broker_heartbeat_interval_ms: draw.broker_session_timeout_ms / 8,
                controller_tick_ms: draw.controller_tick_ms,
                request_timeout_ms: 5_000,
                group_initial_rebalance_delay_ms: 0,
                ..Timing::default()
            },
            connections: Default::default(),
            security,
        }
    }

    /// The brokers as the nemesis sees them.
    struct Cluster {
        /// The simulator's control handle.
        handle: Handle,
        /// Simulated node of each broker, by broker id - 1.
        nodes: Vec<NodeHandle>,
        /// Disk of each broker, by broker id - 1; survives kills.
        disks: Vec<MemDisk>,
        /// Whether each broker's process is down.
        dead: Vec<bool>,
        /// Whether each broker's process is frozen (`Fault::Pause`).
        paused: Vec<bool>,
        /// When a fault last began or ended (see `skip_wipe`).
        last_disruption: Instant,
        /// Disks with faults switched on (`DiskFaults` until `DiskHeal`).
        faulty_disks: Vec<bool>,
        /// Links cut, one-way or slowed (until `Heal`).
        faulty_network: bool,
        /// `ClusterDraw::wipes_gated`.
        wipes_gated: bool,
        /// Brokers whose data disk a `LoseDisk` destroyed (the in-sync-copies-lost episode).
        disks_destroyed: BTreeSet<u8>,
        /// Each broker's clock error (clock jumps change it).
        clocks: Vec<NodeClock>,
        /// Brokers whose disk was told to flip bits silently at some point: left out of the
        /// end-of-run comparison of replicas' bytes.
        flipped: Vec<bool>,
        /// A wipe was carried out in this run: no rot follows (see `skip_wipe`).
        wiped: bool,
        /// Flushed data rotted in this run: no gated wipe follows (see `skip_wipe`).
        rotted: bool,
        /// Brokers whose disk failed at some point: restarted at healing, as an operator would
        /// after a log directory went offline, unless the draw leaves them to repair in place.
        disk_failed: BTreeSet<u8>,
        /// Brokers a BUGGIFY disk-fault site failed a disk operation on (noted at each
        /// scheduled fault and at healing): their disks count as failed (restarted at healing
        /// like `disk_failed`), and no wipe is carried out after one (see `skip_wipe`).
        buggify_disk_faulted: BTreeSet<u8>,
        /// Leave disk-failed brokers running at healing (`ClusterDraw::disk_repair_in_place`).
        repair_in_place: bool,
        /// Set by a node's process when its controller stopped (a disk error in the raft log):
        /// such a node is restarted at healing either way. Survives kills (a restart clears it).
        controller_stopped: Vec<Arc<AtomicBool>>,
        /// The controller-only nodes (split shape), never faulted themselves (their disks live
        /// in their init closures).
        controllers: Vec<NodeHandle>,
        /// The client node.
        client: NodeHandle,
    }

    impl Cluster {
        /// Ends every simulated node's tasks, so their state (logs, caches, the disks they
        /// hold) is freed now. A task madsim never polls again is leaked when the runtime is
        /// dropped (async-task frees a future only when it runs or is scheduled), which made a
        /// campaign process grow by about 4 MB per seed; a killed node's tasks are woken and
        /// dropped on the next executor pass.
        async fn release(&self) {
            for node in self
                .nodes
                .iter()
                .chain(&self.controllers)
                .chain([&self.client])
            {
                self.handle.kill(node.id());
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        fn start(handle: Handle, draw: &ClusterDraw, options: &NodeOptions, seed: u64) -> Cluster {
            let spawn = |node: u8| {
                let disk = MemDisk::new(seed.wrapping_mul(31).wrapping_add(u64::from(node)));
                disk.set_sync_failure_drops_unsynced(draw.sync_failure_drops_unsynced);
                let stopped = Arc::new(AtomicBool::new(false));
                let (config, options, for_node, flag) = (
                    node_config(node, draw),
                    options.clone(),
                    disk.clone(),
                    stopped.clone(),
                );
                let prefix = if node <= NODES { "n" } else { "c" };
                let sim_node = handle
                    .create_node()
                    .name(format!("{prefix}{node}"))
                    .ip(ip(node))
                    .init(move || {
                        let (config, options, disk, flag) = (
                            config.clone(),
                            options.clone(),
                            for_node.clone(),
                            flag.clone(),
                        );
                        async move { serve(config, options, disk, flag).await }
                    })
                    .build();
                (sim_node, (disk, stopped))
            };
            let (nodes, stores): (Vec<_>, Vec<_>) = (1..=NODES).map(spawn).unzip();
            let (disks, controller_stopped): (Vec<_>, Vec<_>) = stores.into_iter().unzip();
            for (node, clock) in nodes.iter().zip(draw.clocks) {
                broker::runtime::set_node_clock(node.id(), clock);
            }
            let controllers: Vec<NodeHandle> = match draw.shape {
                Shape::Combined => Vec::new(),
                Shape::Split => controller_ids(draw).map(|n| spawn(n).0).collect(),
            };
            let client = handle
                .create_node()
                .name("client")
                .ip(CLIENT_IP.parse().expect("a literal address parses"))
                .build();
            Cluster {
                handle,
                nodes,
                disks,
                dead: vec![false; usize::from(NODES)],
                paused: vec![false; usize::from(NODES)],
                last_disruption: Instant::now(),
                faulty_disks: vec![false; usize::from(NODES)],
                faulty_network: false,
                wipes_gated: draw.wipes_gated,
                disks_destroyed: BTreeSet::new(),
                clocks: draw.clocks.to_vec(),
                flipped: vec![false; usize::from(NODES)],
                wiped: false,
                rotted: false,
                disk_failed: BTreeSet::new(),
                buggify_disk_faulted: BTreeSet::new(),
                repair_in_place: draw.disk_repair_in_place,
                controller_stopped,
                controllers,
                client,
            }
        }

        /// Takes the brokers BUGGIFY's disk-fault sites failed since the last call: their
        /// disks failed, as under a scheduled disk fault.
        fn note_buggify_disk_faults(&mut self, shared: &Shared) {
            for id in buggify::take_disk_faulted_nodes() {
                let Some(i) = self.nodes.iter().position(|n| n.id() == id) else {
                    continue;
                };
                let node = u8::try_from(i + 1).expect("three brokers");
                if self.buggify_disk_faulted.insert(node) {
                    let label = format!("buggify: disk fault on n{node}");
                    lock(shared).node_fault(node, Row::Disk, &label);
                }
                self.disk_failed.insert(node);
            }
        }

        fn index(node: u8) -> usize {
            assert!((1..=NODES).contains(&node), "broker ids are 1..=3");
            usize::from(node - 1)
        }

        fn kill(&mut self, node: u8) {
            let i = Self::index(node);
            if !self.dead[i] {
                self.handle.kill(self.nodes[i].id());
                self.disks[i].crash();
                self.dead[i] = true;
            }
        }

        fn restart(&mut self, node: u8) {
            let i = Self::index(node);
            self.kill(node);
            // A restart starts a fresh process: madsim's new node state is not paused.
            self.handle.restart(self.nodes[i].id());
            self.dead[i] = false;
            self.paused[i] = false;
        }

        /// Kills the node and wipes its disk, the raft state of a combined node too when the
        /// wipe is gated (an empty voter catches up from the raft leader; a voter that forgot
        /// its log while another lags could still help elect a stale leader: KIP-853 makes a
        /// replaced disk a membership change). The node stays down until its `Restart`.
        fn wipe(&mut self, node: u8) {
            if !self.wipes_gated {
                // Nothing checked that others hold what this copy held: it may have been the
                // last in-sync copy, as `LoseDisk`'s are (seed 423 in session 21).
                self.disks_destroyed.insert(node);
            }
            self.destroy_disk(node, !self.wipes_gated);
        }

        /// Flips one durable bit of one segment file in each partition directory of `node`
        /// (the disk's own seeded RNG picks the file and the bit). The controller's raft log is
        /// left alone: its rot is the raft store's own test.
        fn rot(&mut self, node: u8) {
            let memdisk = &self.disks[Self::index(node)];
            let disk = memdisk.as_disk();
            let root = std::path::Path::new("");
            let Ok(names) = disk.list(root) else {
                return; // a failing disk refused the listing: nothing rots this time
            };
            let dirs = names.iter().filter(|name| {
                name.as_str() != broker::node::RAFT_DIR && !name.ends_with(".quarantined")
            });
            for dir in dirs {
                let dir = std::path::Path::new(dir);
                let Ok(files) = disk.list(dir) else {
                    continue; // a file
                };
                let segments: Vec<std::path::PathBuf> = files
                    .iter()
                    .filter(|f| f.ends_with(".log"))
                    .map(|f| dir.join(f))
                    .collect();
                // A failing disk may refuse the lookup: that directory does not rot.
                let _ = memdisk.flip_random_durable_bit(&segments);
            }
        }

        /// Kills the node and empties its disk, all but the controller's raft directory when
        /// `keep_raft`.
        fn destroy_disk(&mut self, node: u8, keep_raft: bool) {
            let i = Self::index(node);
            self.kill(node);
            let disk = self.disks[i].as_disk();
            self.disks[i].set_faults(FaultConfig::default());
            let root = std::path::Path::new("");
            let names = disk.list(root).expect("a sound disk lists its root");
            // Everything, the controller's raft log too: a replaced disk (issue 16; until that
            // fix a wiped voter stayed empty, or on real processes stopped). Ungated wipes (a
            // regression's override) keep the raft log: wiping voters while others are down
            // can lose committed metadata, which raft without KIP-853's membership change does
            // not promise to survive.
            let wiped = names
                .iter()
                .filter(|n| !keep_raft || n.as_str() != broker::node::RAFT_DIR);
            for name in wiped {
                let path = std::path::Path::new(name);
                let removed = if disk.list(path).is_ok() {
                    disk.remove_dir(path, true)
                } else {
                    disk.remove(path)
                };
                removed.expect("a sound disk removes what it listed");
            }
            disk.sync_dir(root).expect("a sound disk syncs its root");
            // A new disk: whatever failed or flipped on the old one is gone with it.
            self.disk_failed.remove(&node);
            self.flipped[i] = false;
        }

        /// Freezes the node's process: none of its tasks run and none of its timers fire
        /// until `resume` (a stop-the-world GC pause or SIGSTOP); packets still reach its
        /// sockets and wait there.
        fn pause(&mut self, node: u8) {
            let i = Self::index(node);
            if !self.paused[i] {
                self.handle.pause(self.nodes[i].id());
                self.paused[i] = true;
            }
        }

        fn resume(&mut self, node: u8) {
            let i = Self::index(node);
            if self.paused[i] {
                self.handle.resume(self.nodes[i].id());
                self.paused[i] = false;
            }
        }

        fn clog_link_both(&self, a: u8, b: u8) {
            let net = NetSim::current();
            let (a, b) = (
                self.nodes[Self::index(a)].id(),
                self.nodes[Self::index(b)].id(),
            );
            net.clog_link(a, b);
            net.clog_link(b, a);
        }

        fn heal_links(&self) {
            let net = NetSim::current();
            net.update_config(|c| c.send_latency = NORMAL_LATENCY);
            let mut all: Vec<_> = self.nodes.iter().map(|n| n.id()).collect();
            all.extend(self.controllers.iter().map(|n| n.id()));
            all.push(self.client.id());
            for &a in &all {
                for &b in &all {
                    if a != b {
                        net.unclog_link(a, b);
                    }
                }
            }
        }

        /// Why a scheduled wipe (or the restart that ends a skipped one) is not carried out. A
        /// disk is replaced only when the other replicas certainly hold every acknowledged
        /// record: every node up, no disk or network fault on, no fault begun or ended for a
        /// replica lag time (so a lagging, failed or empty replica has left the ISR), and every
        /// partition's ISR full at an observation at most 1.5 s old. Otherwise the wiped copy
        /// may be the last one (its peers down or failed, or wiped a moment ago and still
        /// counted in a stale ISR): two destroyed disks out of three, which no setting promises
        /// to survive and no clean election can undo (seeds 64, 128, 253 and 294 of the default
        /// campaign, once wipes met kills and disk faults).
        fn skip_wipe(
            &self,
            shared: &Shared,
            fault: &Fault,
            skipped: &mut BTreeSet<u8>,
            quiet_ms: u64,
        ) -> Option<String> {
            match *fault {
                Fault::Wipe { .. } if !self.wipes_gated => None,
                // One lost copy per run: a rot after a wipe (or a wipe after a rot, whose copy
                // may still pass for sound until a read finds it) can take the only other copy
                // that held everything (seed 247580: n1 wiped and still empty, n2's copies rotted,
                // n3, the intact one, out of the ISR without an ELR place).
                Fault::Rot { .. } => self.wiped.then(|| "a disk was wiped in this run".into()),
                Fault::Wipe { node } if self.rotted => {
                    skipped.insert(node);
                    Some("flushed data rotted in this run".into())
                }
                Fault::Wipe { node } => {
                    let replicas = usize::try_from(workload::REPLICATION_FACTOR).ok()?;
                    let partitions = usize::try_from(workload::PARTITIONS).ok()?;
                    let why = if self.dead.iter().chain(&self.paused).any(|&down| down) {
                        Some("a node is down or frozen")
                    } else if self.faulty_disks.iter().any(|&faulty| faulty) || self.faulty_network
                    {
                        Some("a disk or the network is faulty")
                    } else if !self.buggify_disk_faulted.is_empty() {
                        Some("a BUGGIFY disk fault failed a disk in this run")
                    } else if self.last_disruption.elapsed() < Duration::from_millis(quiet_ms) {
                        Some("a fault began or ended within a replica lag time")
                    } else if !lock(shared).isr_full(partitions, replicas, WIPE_OBSERVATION_AGE_MS)
                    {
                        Some("an ISR was not full at a recent observation")
                    } else {
                        None
                    };
                    if why.is_some() {
                        skipped.insert(node);
                    }
                    why.map(String::from)
                }
                Fault::Restart { node } if skipped.remove(&node) => {
                    Some("its wipe was skipped".into())
                }
                _ => None,
            }
        }

        fn apply(&mut self, fault: &Fault) {
            // Every fault but a clock jump or a forgery can change an ISR (see `skip_wipe`).
            if !matches!(fault, Fault::ClockJump { .. } | Fault::Forge { .. }) {
                self.last_disruption = Instant::now();
            }
            match *fault {
                Fault::Partition { .. }
                | Fault::OneWay { .. }
                | Fault::Isolate { .. }
                | Fault::Slow { .. } => self.faulty_network = true,
                Fault::Heal => self.faulty_network = false,
                Fault::DiskFaults { node, .. } => self.faulty_disks[Self::index(node)] = true,
                Fault::DiskHeal { node } => self.faulty_disks[Self::index(node)] = false,
                _ => {}
            }
            let net = NetSim::current();
            match *fault {
                Fault::Kill { node } => self.kill(node),
                Fault::Restart { node } => self.restart(node),
                Fault::Pause { node } => self.pause(node),
                Fault::Resume { node } => self.resume(node),
                Fault::PowerLoss | Fault::PowerLossAt { .. } => {
                    // Every broker at the same instant: each disk keeps only what was synced.
                    for node in 1..=NODES {
                        self.kill(node);
                    }
                }
                Fault::Partition { a, b } => self.clog_link_both(a, b),
                Fault::OneWay { from, to } => {
                    let (from, to) = (
                        self.nodes[Self::index(from)].id(),
                        self.nodes[Self::index(to)].id(),
                    );
                    net.clog_link(from, to);
                }
                Fault::Isolate { node } => {
                    for other in (1..=NODES).filter(|&o| o != node) {
                        self.clog_link_both(node, other);
                    }
                    let me = self.nodes[Self::index(node)].id();
                    for controller in &self.controllers {
                        net.clog_link(me, controller.id());
                        net.clog_link(controller.id(), me);
                    }
                }
                Fault::Heal => self.heal_links(),
                Fault::Slow { latency_ms } => {
                    let most = Duration::from_millis(u64::from(latency_ms.max(2)));
                    net.update_config(|c| c.send_latency = Duration::from_millis(1)..most);
                }
                Fault::DiskFaults {
                    node,
                    io_error_permille,
                    bit_flip_per_million,
                } => {
                    let p = f64::from(io_error_permille) / 1000.0;
                    self.disks[Self::index(node)].set_faults(FaultConfig {
                        write_error_probability: p,
                        sync_error_probability: p,
                        read_error_probability: p / 4.0,
                        bit_flip_probability: f64::from(bit_flip_per_million) / 1_000_000.0,
                        ..FaultConfig::default()
                    });
                    self.disk_failed.insert(node);
                    if bit_flip_per_million > 0 {
                        self.flipped[Self::index(node)] = true;
                    }
                }
                Fault::DiskHeal { node } => {
                    self.disks[Self::index(node)].set_faults(FaultConfig::default());
                }
                Fault::Rot { node } => {
                    self.rot(node);
                    self.flipped[Self::index(node)] = true;
                    self.rotted = true;
                }
                Fault::Wipe { node } => {
                    self.wipe(node);
                    self.wiped = true;
                }
                // The data disk only: the raft log lives on (see `Fault::LoseDisk`).
                Fault::LoseDisk { node } => {
                    self.disks_destroyed.insert(node);
                    self.destroy_disk(node, true);
                }
                Fault::ClockJump { node, delta_ms } => {
                    let i = Self::index(node);
                    self.clocks[i].offset_ms = self.clocks[i].offset_ms.saturating_add(delta_ms);
                    broker::runtime::set_node_clock(self.nodes[i].id(), self.clocks[i]);
                }
                Fault::Forge { node } => self.forge(node),
            }
        }

        /// Issue 15's attacks from the client host, which has no cluster secret: forged frames
        /// to the controller listener of `node` (or of its controller in the split shape) in
        /// another voter's name, and a forged follower fetch to its Kafka listener.
        fn forge(&self, node: u8) {
            let offset = if self.controllers.is_empty() {
                0
            } else {
                NODES
            };
            let (to, from) = (node + offset, node % NODES + 1 + offset);
            let controller = format!("{}:9093", ip(to));
            let kafka = format!("{}:9092", ip(node));
            let replica = i32::from(node % NODES + 1);
            self.client.spawn(async move {
                super::super::forgery::forge_controller(controller, u64::from(from), u64::from(to))
                    .await;
                super::super::forgery::forge_follower_fetch(kafka, replica).await;
            });
        }

        /// Ends every fault: network whole, disks sound, every node up (disk-failed ones
        /// restarted, unless they repair in place; a stopped controller always is).
        fn heal_all(&mut self, shared: &Shared) {
            // The quiescent phase checks liveness: no injected fault from here on.
            buggify::quiesce();
            self.note_buggify_disk_faults(shared);
            self.heal_links();
            for node in 1..=NODES {
                let i = Self::index(node);
                self.resume(node);
                self.disks[i].set_faults(FaultConfig::default());
                let controller_stopped = self.controller_stopped[i].load(Ordering::SeqCst);
                let disk_failed = self.disk_failed.contains(&node);
                if self.dead[i] || (disk_failed && (!self.repair_in_place || controller_stopped)) {
                    lock(shared).node_fault(node, Row::Process, &format!("heal: restart n{node}"));
                    self.restart(node);
                } else if disk_failed {
                    let label = format!("heal: n{node} repairs in place");
                    lock(shared).node_fault(node, Row::Disk, &label);
                }
            }
            self.disk_failed.clear();
            lock(shared).healed();
        }
    }

    /// A node's process: start the broker (retrying while its disk refuses), then live until
    /// killed. The handle is held, never shut down: a kill is the only way a node stops here.
    async fn serve(
        config: NodeConfig,
        options: NodeOptions,
        disk: MemDisk,
        controller_stopped: Arc<AtomicBool>,
    ) {
        controller_stopped.store(false, Ordering::SeqCst);
        let node = loop {
            match broker::node::start(config.clone(), disk.as_disk(), options.clone()).await {
                Ok(node) => break node,
                Err(error) => {
                    tracing::warn!(%error, "node start failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        if let Some(controller) = &node.controller {
            let mut status = controller.status_watch();
            tokio::spawn(async move {
                while status.changed().await.is_ok() {
                    if status.borrow().stopped {
                        controller_stopped.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
        std::future::pending::<()>().await;
        drop(node);
    }

    /// Runs one seed in its own madsim runtime.
    pub fn run(seed: u64, draw: &ClusterDraw, options: NodeOptions, sends_max: u64) -> Outcome {
        // Debugging aid: madsim's own check runs the seed twice and panics at the first random
        // draw that differs, with a backtrace (RUST_BACKTRACE=1).
        if std::env::var_os("RILL_DEBUG_MADSIM_CHECK").is_some() {
            *lock_check_args() = Some((seed, draw.clone(), options.clone(), sends_max));
            return Runtime::check_determinism(seed, madsim::Config::default(), checked_run);
        }
        let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.set_time_limit(Duration::from_secs(RUN_SIMULATED_S_MAX));
        let draw = draw.clone();
        runtime.block_on(async move { supervise(seed, draw, options, sends_max).await })
    }

    /// The arguments of a run under madsim's determinism check, whose entry point is a plain
    /// `fn` and so cannot capture them.
    type CheckArgs = Option<(u64, ClusterDraw, NodeOptions, u64)>;
    /// Set just before `Runtime::check_determinism` starts.
    static CHECK_ARGS: std::sync::Mutex<CheckArgs> = std::sync::Mutex::new(None);

    fn lock_check_args() -> std::sync::MutexGuard<'static, CheckArgs> {
        CHECK_ARGS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checked_run() -> impl std::future::Future<Output = Outcome> {
        let (seed, draw, options, sends_max) = lock_check_args()
            .clone()
            .expect("run() sets the arguments before the check starts");
        async move { supervise(seed, draw, options, sends_max).await }
    }

    async fn on_client<T: Send + 'static>(
        cluster: &Cluster,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        cluster
            .client
            .spawn(future)
            .await
            .expect("client tasks do not panic")
    }

    /// Waits (at most `wait_ms_max`, never past `stop_at`) until some node reaches crash
    /// point `point`, then `after_ms` more, and notes in the history what happened. Returns the
    /// broker that reached it, if one did.
    async fn wait_for_crash_point(
        cluster: &Cluster,
        shared: &Shared,
        point: CrashPoint,
        wait_ms_max: u64,
        after_ms: u64,
        stop_at: Instant,
    ) -> Option<u8> {
        assert!(wait_ms_max > 0, "a bounded, non-empty wait");
        let deadline = (Instant::now() + Duration::from_millis(wait_ms_max)).min(stop_at);
        buggify::arm_crash_point(point.site());
        let reached = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            buggify::crash_point_reached(),
        )
        .await
        .ok();
        buggify::disarm_crash_point();
        let broker = reached.and_then(|id| {
            let i = cluster.nodes.iter().position(|n| n.id() == id)?;
            u8::try_from(i + 1).ok()
        });
        let note = match (reached, broker) {
            (Some(_), Some(node)) => format!("{} reached by n{node}", point.site()),
            (Some(id), None) => format!("{} reached by simulated node {id}", point.site()),
            (None, _) => format!("{} not reached within {wait_ms_max} ms", point.site()),
        };
        lock(shared).event(&note);
        tokio::time::sleep_until((Instant::now() + Duration::from_millis(after_ms)).min(stop_at))
            .await;
        broker
    }

    async fn supervise(
        seed: u64,
        draw: ClusterDraw,
        options: NodeOptions,
        sends_max: u64,
    ) -> Outcome {
        let begun = Instant::now();
        // Per run, on this run's thread (set every time: nothing leaks from an earlier run).
        broker::runtime::clear_node_clocks();
        // BUGGIFY from the end of set-up on (set-up has a deadline of its own), probes from now.
        buggify::start_run();
        let shared = Recorder::new();
        let mut cluster = Cluster::start(Handle::current(), &draw, &options, seed);
        let config = WorkloadConfig {
            bootstrap: (1..=NODES)
                .map(|n| {
                    let port = draw.clients.sasl.map_or(9092, |_| CLIENT_SASL_PORT);
                    format!("{}:{port}", ip(n))
                })
                .collect(),
            acks: draw.acks,
            idempotence: draw.idempotence,
            min_isr: draw.min_isr,
            delivery_timeout_ms: draw.delivery_timeout_ms,
            compression: draw.compression,
            seed,
            sends_max,
            topic_configs: draw.topic_configs(),
            record_timestamps_unset: draw.clients.record_timestamps_unset,
            record_padding_bytes: draw.operations.map_or(0, |o| o.record_padding_bytes),
            security: draw
                .clients
                .sasl
                .map(|sasl| sasl.client_security())
                .unwrap_or_default(),
            client_rack: draw
                .clients
                .consumer_rack_broker
                .map(crate::cluster::operations::rack_of),
            strong: draw.strong(),
            retention: draw.operations.is_some(),
        };
        let elapsed =
            |begun: Instant| u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
        let set_up = {
            let config = config.clone();
            on_client(&cluster, async move {
                workload::set_up(&config, Instant::now() + Duration::from_millis(SET_UP_MS)).await
            })
            .await
        };
        if let Err(why) = set_up {
            let why = format!("liveness: {why}");
            lock(&shared).finding(FindingKind::Liveness, "the cluster did not come up", &why);
            let simulated_ms = elapsed(begun);
            cluster.release().await;
            return outcome(shared, Some(why), simulated_ms);
        }
        lock(&shared).workload_begins(&draw.clocks);
        lock(&shared).event("cluster up, topic t created");
        // BUGGIFY and its disk faults once the cluster is up: set-up has its own deadline.
        buggify::set_config(draw.buggify_permille.map(|fire_permille| buggify::Config {
            seed,
            fire_permille,
        }));
        if draw.buggify_disk_faults {
            for node in &cluster.nodes {
                buggify::allow_disk_faults_on(node.id());
            }
        }
        let stop_at = Instant::now() + Duration::from_millis(draw.safety_ms);
        let mut tasks = Vec::new();
        let captured = super::super::stale_requests::Captured::default();
        let tap = draw.nemesis.stale_requests.then(|| captured.tap());
        for process in 0..draw.producers {
            let (config, shared, tap) = (config.clone(), shared.clone(), tap.clone());
            tasks.push(
                cluster
                    .client
                    .spawn(workload::produce(config, shared, process, stop_at, tap)),
            );
        }
        if draw.nemesis.stale_requests {
            let (c, s) = (config.clone(), shared.clone());
            tasks.push(
                cluster
                    .client
                    .spawn(super::super::stale_requests::redeliver(
                        c, s, captured, stop_at,
                    )),
            );
        }
        if draw.clients.multi_partition_requests {
            let (c, s) = (config.clone(), shared.clone());
            tasks.push(
                cluster
                    .client
                    .spawn(super::super::raw_produce::produce(c, s, stop_at)),
            );
        }
        let consumer_process = 10;
        let (c, s) = (config.clone(), shared.clone());
        tasks.push(
            cluster
                .client
                .spawn(workload::consume(c, s, consumer_process, stop_at)),
        );
        let group = super::super::groups::SharedGroup::default();
        if let Some(members) = draw.clients.group_members {
            let (c, s, g) = (config.clone(), shared.clone(), group.clone());
            tasks.push(
                cluster
                    .client
                    .spawn(super::super::groups::run(c, s, g, members, stop_at)),
            );
        }
        let (c, s) = (config.clone(), shared.clone());
        tasks.push(cluster.client.spawn(workload::observe(
            c,
            s,
            stop_at + Duration::from_millis(LIVENESS_MS),
        )));
        let start = Instant::now();
        let mut wipes_skipped = BTreeSet::new();
        let mut restarts = RestartOrder::default();
        for (index, scheduled) in draw.schedule.faults.iter().enumerate() {
            let at = start + Duration::from_millis(scheduled.at_ms);
            if at >= stop_at {
                break;
            }
            tokio::time::sleep_until(at).await;
            let fault = restarts.apply(&scheduled.fault);
            let quiet_ms = draw.replica_lag_time_max_ms + WIPE_QUIET_MARGIN_MS;
            cluster.note_buggify_disk_faults(&shared);
            let why = cluster.skip_wipe(&shared, &fault, &mut wipes_skipped, quiet_ms);
            if let Some(why) = why {
                lock(&shared).event(&format!("{} skipped: {why}", fault.label()));
                continue;
            }
            if let Fault::PowerLossAt {
                point,
                wait_ms_max,
                after_ms,
            } = fault
            {
                let reached_by =
                    wait_for_crash_point(&cluster, &shared, point, wait_ms_max, after_ms, stop_at)
                        .await;
                if let (CrashPoint::LeaderAcknowledged, Some(leader)) = (point, reached_by) {
                    // The worst case for what the leader acknowledged: the one copy it knows
                    // durable comes back last, after the others elected a leader among them.
                    let note = restarts.put_last(leader, &draw.schedule.faults[index + 1..]);
                    buggify::probe!("sim.power_loss.acknowledger_restarts_last");
                    lock(&shared).event(&note);
                }
            }
            lock(&shared).fault(&fault);
            cluster.apply(&fault);
        }
        tokio::time::sleep_until(stop_at).await;
        cluster.heal_all(&shared);
        let observer = tasks.pop().expect("the observer was spawned last");
        for task in tasks {
            task.await.expect("workload tasks do not panic");
        }
        let workload_violation = lock(&shared).workload_violations.first().cloned();
        if let Some(why) = &workload_violation {
            let title = "a broker answer the workload checks broke a promise";
            lock(&shared).finding(FindingKind::Safety, title, why);
        }
        let liveness_deadline = Instant::now() + Duration::from_millis(LIVENESS_MS);
        let healthy = {
            let config = config.clone();
            on_client(&cluster, async move {
                workload::wait_healthy(&config, liveness_deadline).await
            })
            .await
        };
        // Two data disks destroyed while the third replica was fenced: no in-sync copy is
        // left, and only an unclean election gives the partitions a leader again. With min ISR
        // 1 one destroyed disk is enough: when the other, only killed, in-sync replica is
        // fenced (or re-registers) first, it leaves an ISR that stays at min ISR, so it joins
        // no ELR (KIP-966: the one left could have committed more alone), and the destroyed one
        // was the last in-sync copy (seeds 6, 9, 20, 24, 39 of the min ISR 1 wipe cells).
        let destroyed_needed = if draw.min_isr <= 1 { 1 } else { 2 };
        let isr_lost = cluster.disks_destroyed.len() >= destroyed_needed && !draw.unclean;
        let (healthy, last_partitions) = match healthy {
            Ok(()) => (Ok(()), Vec::new()),
            Err(unhealthy) => (Err(unhealthy.why), unhealthy.partitions),
        };
        let healthy = healthy.map_err(|why| {
            if isr_lost {
                format!("{}{why}", super::super::OFFLINE_AFTER_ISR_LOSS)
            } else {
                why
            }
        });
        // In a default seed that opened with that episode the offline partitions are the
        // expected outcome, not a violation, as long as every partition lacking health lacks a
        // leader (an offline partition, not a stuck ISR). The run's checks end there: nothing
        // can be read back from an offline partition.
        // So in a run whose wipes were ungated (a regression's override): a wipe there may
        // destroy the last in-sync copy (seed 423's run since session 21).
        let offline_as_expected = (draw.isr_loss_opening || !draw.wipes_gated)
            && healthy.is_err()
            && isr_lost
            && only_leaderless_partitions(&last_partitions);
        let healthy = if offline_as_expected {
            if let Err(why) = &healthy {
                buggify::probe!("sim.isr_loss.offline_as_expected");
                let title = "offline as expected after the in-sync copies were lost";
                lock(&shared).finding(FindingKind::Allowed, title, why);
                lock(&shared).event(&format!("allowed by clean elections: {why}"));
            }
            Ok(())
        } else {
            healthy
        };
        if let Err(why) = &healthy {
            let title = "no leader or no full ISR after healing";
            lock(&shared).finding(FindingKind::Liveness, title, why);
        }
        // The final read runs whenever the cluster healed, even after a workload violation: an
        // acknowledged value the workload's polls missed is otherwise reported unseen although
        // every replica holds it (seeds 16353 and 16977 misled that way); the workload's
        // violation stays the one reported first.
        let read_due = healthy.is_ok() && !offline_as_expected;
        let mut violation = workload_violation.or(healthy.err());
        if read_due {
            lock(&shared).phase("final read of acknowledged records");
            let acked = acked_values(&lock(&shared).history.history().clone());
            lock(&shared).event(&format!(
                "healthy; final read of {} acknowledged values",
                acked.len()
            ));
            let (c, s) = (config.clone(), shared.clone());
            let read = on_client(
                &cluster,
                workload::final_read(c, s, 1_000, acked, liveness_deadline),
            )
            .await;
            if let Err(why) = &read {
                // An acknowledged record that cannot be read is lost: a safety violation,
                // though the words say it was not found in time.
                let kind = if draw.strong() {
                    FindingKind::Safety
                } else {
                    FindingKind::Allowed
                };
                let title = "acknowledged records unreadable after healing";
                lock(&shared).finding(kind, title, why);
            }
            // Weak settings may lose acknowledged records: noted, not a violation.
            let unreadable = match read {
                Err(why) if !draw.strong() => {
                    lock(&shared).event(&format!("allowed by weak settings: {why}"));
                    None
                }
                other => other.err(),
            };
            violation = violation.or(unreadable);
        }
        if let (None, Some(members), false) =
            (&violation, draw.clients.group_members, offline_as_expected)
        {
            // Consumer groups (issue 14 item 1): the history's safety checks, then convergence
            // and the committed offsets read back after healing.
            lock(&shared).phase("consumer group checked");
            let history = group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            lock(&shared).event(&format!(
                "group history: {} joins, {} commits ({} acknowledged)",
                history.joins.len(),
                history.commits.len(),
                history
                    .commits
                    .iter()
                    .filter(|c| c.answer == super::super::groups::CommitAnswer::Ok)
                    .count()
            ));
            let mut checked = super::super::groups::check(&history);
            if let Err(why) = &checked {
                let title = "the consumer group broke a promise";
                lock(&shared).finding(FindingKind::Safety, title, why);
            }
            if checked.is_ok() {
                let deadline =
                    Instant::now() + Duration::from_millis(super::super::groups::CONVERGE_MS);
                let (c, s) = (config.clone(), shared.clone());
                checked = on_client(
                    &cluster,
                    super::super::groups::converge_and_read_back(c, s, group, members, deadline),
                )
                .await;
                let liveness = checked
                    .as_ref()
                    .is_err_and(|why| why.starts_with("liveness"));
                if let Err(why) = &checked {
                    // Weak settings (min ISR 1, unclean elections) are the brokers' defaults,
                    // so the offsets topic has them too: a lost commit is allowed there.
                    let kind = match (liveness, draw.strong()) {
                        (true, _) => FindingKind::Liveness,
                        (false, true) => FindingKind::Safety,
                        (false, false) => FindingKind::Allowed,
                    };
                    lock(&shared).finding(kind, "the consumer group after healing", why);
                }
                if !liveness && !draw.strong() {
                    if let Err(why) = &checked {
                        lock(&shared).event(&format!("allowed by weak settings: {why}"));
                    }
                    checked = Ok(());
                }
            }
            violation = checked.err();
        }
        if violation.is_none() && !offline_as_expected {
            // Healed, quiet, every ISR full: every replica must hold the same bytes.
            // A follower may still be a fetch behind the leader's last (unacknowledged) batch:
            // a difference counts once it lasts 10 simulated seconds.
            lock(&shared).phase("replicas compared");
            let mut compared = Err(String::new());
            for _ in 0..20 {
                compared = replicas::compare(
                    &cluster.disks,
                    &cluster.flipped,
                    workload::TOPIC,
                    workload::PARTITIONS,
                );
                if compared.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            lock(&shared).event(match &compared {
                Ok(()) => "replicas compared: the same batches, byte for byte",
                Err(_) => "replicas compared: they differ",
            });
            if let Err(why) = &compared {
                let title = "replicas differ below the high watermark";
                lock(&shared).finding(FindingKind::Safety, title, why);
            }
            violation = compared.err();
        }
        if violation.is_none() && draw.shape == Shape::Combined && !offline_as_expected {
            // Every voter caught up with the raft leader (metadata may still be settling: a
            // difference counts once it lasts 10 simulated seconds).
            let voters: Vec<u64> = controller_ids(&draw).map(u64::from).collect();
            let mut compared = Err(String::new());
            for _ in 0..20 {
                compared = replicas::compare_raft_logs(&cluster.disks, &voters, &cluster.flipped);
                if compared.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            lock(&shared).event(match &compared {
                Ok(()) => "controllers compared: every raft log ends at the same index",
                Err(_) => "controllers compared: a raft log is behind",
            });
            if let Err(why) = &compared {
                let title = "a controller's raft log stayed behind";
                lock(&shared).finding(FindingKind::Liveness, title, why);
            }
            violation = compared.err();
        }
        if violation.is_none() && !draw.unclean {
            // Every topic forbids unclean elections (the brokers' default follows the draw, so
            // the offsets topic does too) and nobody asks for one (ElectLeaders): the
            // controller electing a replica from outside the ISR and ELR is a violation, lost
            // records or not.
            if let Some(count) = buggify::probes_hit().get("controller.election.unclean") {
                let why = format!(
                    "safety: {count} unclean elections, though no topic has \
                     unclean.leader.election.enable"
                );
                let title = "an unclean election without permission";
                lock(&shared).finding(FindingKind::Safety, title, &why);
                violation = Some(why);
            }
        }
        observer.abort();
        lock(&shared).event("run ends");
        let simulated_ms = elapsed(begun);
        cluster.release().await;
        let mut out = outcome(shared, violation, simulated_ms);
        out.offline_as_expected = offline_as_expected;
        out
    }

    /// Whether the partitions `wait_healthy` last saw unhealthy are all either without a leader
    /// or led with an ISR of every replica (and some without): the unavailability clean
    /// elections promise after the in-sync copies are lost, not an ISR that failed to grow back.
    fn only_leaderless_partitions(partitions: &[client::metadata::PartitionMetadata]) -> bool {
        partitions.len() == workload::PARTITIONS as usize
            && partitions.iter().any(|p| p.leader.is_none())
            && partitions
                .iter()
                .all(|p| p.leader.is_none() || p.isr.len() == usize::from(NODES))
    }

    /// Values of every ok send in the history, each with its key and offset.
    fn acked_values(history: &History) -> std::collections::BTreeMap<i64, (String, u64)> {
        let mut values = std::collections::BTreeMap::new();
        for op in history.ops() {
            if op.op_type != jepsen::history::OpType::Ok {
                continue;
            }
            for mop in op.mops() {
                if let jepsen::history::MicroOp::Send {
                    key,
                    value,
                    offset: Some(offset),
                } = mop
                {
                    values.insert(*value, (history.key_name(*key).to_string(), *offset));
                }
            }
        }
        values
    }
}
