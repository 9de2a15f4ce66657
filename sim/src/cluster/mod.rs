//! The `cluster` scenario: three combined broker+controller nodes (10.0.0.1..3, Kafka 9092,
//! controller 9093) and a client node (10.0.0.10) in one madsim world, per seed.
//!
//! A run has three phases:
//! 1. set-up: the cluster elects a controller, the client creates topic `t` (3 partitions, RF 3);
//! 2. safety: producers send unique integers, a consumer polls every partition, a metadata
//!    observer notes leaders, while the nemesis applies the seed's [`FaultSchedule`];
//! 3. liveness: the network heals, disks stop failing, dead (and disk-failed) nodes restart;
//!    within [`LIVENESS_MS`] every partition must have a leader and a full ISR, and a fresh
//!    consumer must read every acknowledged value.
//!
//! The Jepsen queue checker then judges the history. Under the strong settings (acks=all,
//! idempotence, min ISR 2) every anomaly class it reports as bad is a violation; under weak
//! settings (acks=1 or min ISR 1, drawn in a quarter of the seeds) losing acknowledged writes is
//! expected, so only liveness and crashes count (see [`WEAK_FORBIDDEN`]).

pub mod forgery;
pub mod groups;
pub mod nemesis;
pub mod operations;
pub mod raw_produce;
pub mod record;
pub mod replicas;
pub mod shrink;
pub mod stale_requests;
pub mod timeline;
pub mod workload;
pub mod world;

use crate::runner::{Scenario, SeedRun};
use broker::runtime::NodeClock;
use client::Compression;
use jepsen::queue::{self, AnomalyClass, QueueOptions};
use nemesis::{FaultSchedule, NemesisDraw};
use operations::{ClientShapes, Operations};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Simulated time the liveness phase may take before it counts as a violation.
pub const LIVENESS_MS: u64 = 60_000;
/// Simulated time the cluster may take to come up.
pub const SET_UP_MS: u64 = 60_000;
/// Sends per producer unless `--steps` says otherwise (the workload is bounded by time too).
pub const SENDS_PER_PRODUCER_DEFAULT: u64 = 10_000;

/// Classes that are violations even under weak settings. None: once acks=1 or min ISR 1 lets
/// replicas diverge, the checker's version order itself is built from diverged logs, so even the
/// in-operation ordering classes follow from an allowed loss. Weak seeds still fail on liveness
/// and on any panic (a broken invariant inside a node).
pub const WEAK_FORBIDDEN: &[AnomalyClass] = &[];

/// Classes that mean an acknowledged record was lost, duplicated or moved: what the historic
/// replication bugs produce (the bug-switch tests look for these).
pub const LOSS_CLASSES: &[AnomalyClass] = &[
    AnomalyClass::LostWrite,
    AnomalyClass::Duplicate,
    AnomalyClass::InconsistentOffsets,
    AnomalyClass::Unseen,
];

/// Classes a duplicated value makes the checker report too (see [`ClusterDraw::forbidden_in`]).
pub const DUPLICATE_SHADOWS: &[AnomalyClass] = &[
    AnomalyClass::PollSkip,
    AnomalyClass::IntPollSkip,
    AnomalyClass::NonmonotonicPoll,
    AnomalyClass::IntNonmonotonicPoll,
    AnomalyClass::NonmonotonicSend,
    AnomalyClass::IntNonmonotonicSend,
    AnomalyClass::IntSendSkip,
];

/// The replication bugs `--bug` can switch on.
pub const BUGS: &[(&str, &str)] = &[
    (
        "truncate-to-hw",
        "pre-KIP-101: a new follower truncates to its own high watermark",
    ),
    (
        "no-epoch-fencing",
        "pre-KIP-320: fetches carry no leader epoch, stale leaders are not fenced",
    ),
    (
        "last-replica-standing",
        "pre-KIP-966: no ELR, a replica outside the last ISR may be elected",
    ),
];

/// Fault families a run can be limited to (`--faults`, and the matrix's columns); serde uses
/// the `--faults` names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "&'static str", try_from = "String")]
pub enum FaultFamily {
    /// Partitions between two nodes, one-way drops and isolations.
    Partitions,
    /// Process kills and restarts (with disk crashes).
    Kills,
    /// Pauses (a node's process frozen, then resumed).
    Pauses,
    /// Disk I/O errors and bit flips.
    Disk,
    /// Skewed and drifting node clocks, clock jumps forward and back.
    Clock,
    /// Wiped disks: a node comes back empty (node replacement).
    Wipe,
}

impl FaultFamily {
    /// Every family, in display order.
    pub const ALL: [FaultFamily; 6] = [
        FaultFamily::Partitions,
        FaultFamily::Kills,
        FaultFamily::Pauses,
        FaultFamily::Disk,
        FaultFamily::Clock,
        FaultFamily::Wipe,
    ];

    /// The name `--faults` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultFamily::Partitions => "partitions",
            FaultFamily::Kills => "kills",
            FaultFamily::Pauses => "pauses",
            FaultFamily::Disk => "disk",
            FaultFamily::Clock => "clock",
            FaultFamily::Wipe => "wipe",
        }
    }

    /// Parses a `--faults` value.
    pub fn parse(name: &str) -> Result<FaultFamily, String> {
        FaultFamily::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown fault family `{name}` (known: partitions, kills, pauses, disk, clock, wipe)"
                )
            })
    }
}

impl From<FaultFamily> for &'static str {
    fn from(family: FaultFamily) -> &'static str {
        family.as_str()
    }
}

impl TryFrom<String> for FaultFamily {
    type Error = String;

    fn try_from(name: String) -> Result<FaultFamily, String> {
        FaultFamily::parse(&name)
    }
}

/// Settings fixed on the command line instead of drawn (`--acks`, `--min-isr`, `--unclean`,
/// `--idempotence`, `--faults`): how a user replays one cell of the guarantee matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Producer acks: -1 (all), 0 or 1.
    pub acks: Option<i16>,
    /// The topic's `min.insync.replicas`.
    pub min_isr: Option<i32>,
    /// `unclean.leader.election.enable`.
    pub unclean: Option<bool>,
    /// `enable.idempotence` (Kafka's producer requires acks=all for it).
    pub idempotence: Option<bool>,
    /// Only this fault family.
    pub faults: Option<FaultFamily>,
    /// Wipe disks whenever scheduled, not only while the other replicas hold everything
    /// acknowledged (`ClusterDraw::wipes_gated`): for regressions found before the gate.
    pub wipes_ungated: bool,
    /// Draw no operations (small segments, retention) at all (`--no-operations`).
    pub no_operations: bool,
    /// Draw no client shapes: for regressions whose seeds were found before they existed.
    pub no_client_shapes: bool,
}

impl Overrides {
    /// Checks the combination: acks in {-1, 0, 1}, min ISR in 1..=3, idempotence only with
    /// acks=all (Kafka's producer refuses the rest).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(acks) = self.acks {
            if ![-1, 0, 1].contains(&acks) {
                return Err(format!("--acks {acks}: use all, 0 or 1"));
            }
        }
        if let Some(min_isr) = self.min_isr {
            if !(1..=3).contains(&min_isr) {
                return Err(format!("--min-isr {min_isr}: use 1, 2 or 3"));
            }
        }
        if self.idempotence == Some(true) && self.acks.is_some_and(|a| a != -1) {
            return Err("idempotence needs acks=all (as in Kafka's producer)".into());
        }
        Ok(())
    }

    /// The command-line words that give these overrides (for replay lines).
    pub fn args(&self) -> Vec<String> {
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut args = Vec::new();
        if let Some(acks) = self.acks {
            let acks = if acks == -1 {
                "all".to_string()
            } else {
                acks.to_string()
            };
            args.push(format!("--acks {acks}"));
        }
        if let Some(min_isr) = self.min_isr {
            args.push(format!("--min-isr {min_isr}"));
        }
        if let Some(unclean) = self.unclean {
            args.push(format!("--unclean {}", on_off(unclean)));
        }
        if let Some(idempotence) = self.idempotence {
            args.push(format!("--idempotence {}", on_off(idempotence)));
        }
        if let Some(faults) = self.faults {
            args.push(format!("--faults {}", faults.as_str()));
        }
        if self.no_operations {
            args.push("--no-operations".to_string());
        }
        if self.no_client_shapes {
            args.push("--no-client-shapes".to_string());
        }
        if self.wipes_ungated {
            args.push("--wipes-ungated".to_string());
        }
        args
    }
}

/// How a liveness failure begins when the wipe family's in-sync-copies-lost episode destroyed
/// two data disks while the third replica was fenced (with min ISR 1, one: the other may have
/// left the ISR without joining the ELR), under clean elections: the partitions stay
/// leaderless by design (no ISR or ELR member is left to elect), the unavailability Kafka
/// documents for `unclean.leader.election.enable=false`. The matrix counts it apart.
pub const OFFLINE_AFTER_ISR_LOSS: &str =
    "offline as expected (every in-sync copy destroyed, unclean election off): ";

/// The share of the default campaign's seeds with a rot episode ([`FaultSchedule::add_rot`]):
/// flushed data rotting at rest on a failing disk, half of them with a power loss at the
/// set-aside of a rotted log.
pub const ROT_SHARE: f64 = 0.2;

/// The share of the default campaign's seeds (those without a consumer group) whose safety
/// phase opens with the in-sync-copies-lost episode ([`ClusterDraw::isr_loss_opening`]).
pub const ISR_LOSS_OPENING_SHARE: f64 = 0.05;

/// How the nodes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Three nodes, each a broker and a controller (KRaft's combined mode).
    Combined,
    /// Three brokers and, on three more nodes, a controller quorum of their own. The nemesis
    /// strikes the brokers; isolating one also cuts it off from the controllers.
    Split,
}

/// The seed-drawn shape of one cluster run: printed beside the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDraw {
    /// Producer acks: -1 (all), 1 (leader only) or 0 (none).
    pub acks: i16,
    /// The topic's `min.insync.replicas`.
    pub min_isr: i32,
    /// The topic's `unclean.leader.election.enable`.
    pub unclean: bool,
    /// Producers are idempotent.
    pub idempotence: bool,
    /// Producer processes.
    pub producers: u64,
    /// Length of the safety phase, simulated ms.
    pub safety_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// The controller's raft tick.
    pub controller_tick_ms: u64,
    /// Producer delivery timeout.
    pub delivery_timeout_ms: u64,
    /// BUGGIFY (code-level fault points in the broker: slow fsyncs, dropped replication
    /// connections, delayed responses): the per-mille firing chance of the enabled sites, or
    /// off.
    pub buggify_permille: Option<u32>,
    /// With BUGGIFY on, its disk-fault sites (rare EIO, ENOSPC and short writes on the
    /// simulated disks) may fire too: never in the matrix's single-family cells, whose loss and
    /// liveness count their own family's faults only.
    pub buggify_disk_faults: bool,
    /// Combined nodes, or brokers and controllers apart.
    pub shape: Shape,
    /// `log.segment.bytes`: small segments make rolls, index rebuilds and multi-segment
    /// recovery happen within a run.
    pub segment_bytes: u64,
    /// After disk faults, the nodes are left running and their failed partitions repair
    /// themselves once the disk heals (what a user does about a disk that filled up); otherwise
    /// they are restarted at healing, as an operator would. A node whose controller stopped on
    /// a disk error is restarted either way (the controller does not repair itself).
    pub disk_repair_in_place: bool,
    /// Wipe a disk only while the other replicas certainly hold every acknowledged record
    /// (see `world::Cluster::skip_wipe`); never drawn, off only in regressions that replay
    /// what the campaign found before the gate.
    pub wipes_gated: bool,
    /// Which fault kinds are on, and how often.
    pub nemesis: NemesisDraw,
    /// The faults themselves.
    pub schedule: FaultSchedule,
    /// The producers' codec (`compression.type` of the client).
    pub compression: Compression,
    /// The brokers' `compression.type`: `producer` (stored as sent) or a codec batches are
    /// recompressed to.
    pub compression_type: &'static str,
    /// Each broker's clock error from the start (broker id = index + 1): all true unless the
    /// draw enables clock faults.
    pub clocks: [NodeClock; 3],
    /// Housekeeping on the topic (small segments, retention), if drawn; never in the
    /// matrix's single-family cells, whose loss counts retention would blur.
    pub operations: Option<Operations>,
    /// Batch shapes of real clients.
    pub clients: ClientShapes,
    /// A failed fsync drops the unsynced bytes of its file (Linux after a writeback error,
    /// "fsyncgate") instead of leaving them for the next fsync, on every node's disk: injected
    /// sync errors (the disk family's, BUGGIFY's) then lose data a log that ignored the error
    /// would count as flushed.
    pub sync_failure_drops_unsynced: bool,
    /// `log.journal_file_bytes` with flushes through the broker's journal (the default),
    /// small files so they roll and are released within a run; `None`: `log.journal = false`,
    /// every round syncs the segment files.
    pub journal_file_bytes: Option<u64>,
    /// `log.tail_bytes`: in some seeds a tail of the last batch only or of a few, so its bound
    /// cuts batches a pending flush still needs and reads past it go to the files (production's 1 MiB tail
    /// meets that with large batches, which the simulator's clients do not send).
    pub tail_bytes: usize,
    /// The default campaign drew the in-sync-copies-lost episode to open the safety phase
    /// ([`FaultSchedule::open_with_isr_loss`]): with clean elections the partitions it leaves
    /// without an in-sync copy stay offline, as Kafka documents, and that is not a violation
    /// (see [`OFFLINE_AFTER_ISR_LOSS`]); an unclean election there loses acknowledged records.
    pub isr_loss_opening: bool,
    /// The default campaign drew the offline-copy-in-the-ELR episode to open the safety phase
    /// ([`FaultSchedule::open_with_offline_elr`]): an election meets an ELR whose live member's
    /// copy is offline.
    pub offline_elr_opening: bool,
}

/// The producer codecs a seed draws from, `none` weighted as often as all the others together.
const PRODUCER_CODECS: [Compression; 8] = [
    Compression::None,
    Compression::None,
    Compression::None,
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The brokers' `compression.type` values a seed draws from, `producer` (Kafka's default) most.
const BROKER_COMPRESSION_TYPES: [&str; 9] = [
    "producer",
    "producer",
    "producer",
    "producer",
    "uncompressed",
    "gzip",
    "snappy",
    "lz4",
    "zstd",
];

/// A codec's name, as `compression.type` spells it.
fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

impl ClusterDraw {
    /// Draws the shape from the seed (its own stream: the run's choices do not shift it): the
    /// default campaign's settings (acks=all, idempotence, min ISR 2, clean elections), drawn
    /// timeouts and fault mix.
    pub fn from_seed(seed: u64) -> ClusterDraw {
        ClusterDraw::from_seed_with(seed, &Overrides::default())
    }

    /// Like [`ClusterDraw::from_seed`] with some settings fixed. The rest of the draw does not
    /// depend on the overrides, so a cell of the matrix and the default campaign share timings.
    pub fn from_seed_with(seed: u64, overrides: &Overrides) -> ClusterDraw {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc1a5_7e00_0000_0005);
        let safety_ms = rng.gen_range(10_000..=25_000);
        let mut nemesis = NemesisDraw::draw(&mut rng);
        // Clocks come from a stream of their own, as codecs do below.
        let mut clock_rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc10c_c000_0000_0017);
        nemesis.clock = clock_rng.gen_bool(0.3);
        let mut wipe_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x3195_e000_0000_0019);
        nemesis.wipe = wipe_rng.gen_bool(0.15);
        if let Some(family) = overrides.faults {
            nemesis.only(family);
        }
        let mut schedule = FaultSchedule::generate(&mut rng, &nemesis, safety_ms);
        let mut clocks = [NodeClock::default(); 3];
        if nemesis.clock {
            let skew_ms_max = [1_000, 60_000, 3_600_000][clock_rng.gen_range(0..3)];
            for clock in &mut clocks {
                clock.offset_ms = clock_rng.gen_range(-skew_ms_max..=skew_ms_max);
                clock.drift_ppm =
                    clock_rng.gen_range(-NodeClock::DRIFT_PPM_MAX..=NodeClock::DRIFT_PPM_MAX);
            }
            schedule.add_clock_jumps(&mut clock_rng, nemesis.gap_ms_mean, safety_ms);
        }
        if nemesis.wipe {
            schedule.add_wipes(&mut wipe_rng, nemesis.gap_ms_mean, safety_ms);
        }
        // Forgeries (issue 15) come from a stream of their own too, and stay out of the
        // matrix's single-family cells.
        let mut forger = ChaCha8Rng::seed_from_u64(seed ^ 0xf0a9_e000_0000_0017);
        if overrides.faults.is_none() && forger.gen_bool(0.3) {
            nemesis.forgery = true;
            schedule.add_forgeries(&mut forger, safety_ms);
        }
        let acks = overrides.acks.unwrap_or(-1);
        let idempotence = overrides.idempotence.unwrap_or(acks == -1);
        // Stale requests (issue 14) too: only idempotent producers promise to tell a copy from
        // a new batch, and the matrix's single-family cells stay as they were.
        let mut stale = ChaCha8Rng::seed_from_u64(seed ^ 0x57a1_e000_0000_002b);
        nemesis.stale_requests = overrides.faults.is_none() && idempotence && stale.gen_bool(0.3);
        // Codecs come from a stream of their own: drawing them shifts none of the draws above,
        // so a seed's timings and faults are what they were before codecs were drawn.
        let mut codecs = ChaCha8Rng::seed_from_u64(seed ^ 0xc0de_c000_0000_0013);
        let mut draw = ClusterDraw {
            acks,
            min_isr: overrides.min_isr.unwrap_or(2),
            unclean: overrides.unclean.unwrap_or(false),
            idempotence,
            producers: rng.gen_range(1..=3),
            safety_ms,
            replica_lag_time_max_ms: [2_000, 5_000, 10_000][rng.gen_range(0..3)],
            broker_session_timeout_ms: [2_000, 4_000, 8_000][rng.gen_range(0..3)],
            controller_tick_ms: [50, 100][rng.gen_range(0..2)],
            delivery_timeout_ms: [5_000, 15_000][rng.gen_range(0..2)],
            buggify_permille: rng
                .gen_bool(0.5)
                .then(|| [10, 50, 200][rng.gen_range(0..3)]),
            buggify_disk_faults: overrides.faults.is_none(),
            shape: if rng.gen_bool(0.3) {
                Shape::Split
            } else {
                Shape::Combined
            },
            segment_bytes: [4_096, 65_536, 1 << 30][rng.gen_range(0..3)],
            // Drawn last: the draws above stay what they were before it existed.
            disk_repair_in_place: rng.gen_bool(0.5),
            wipes_gated: !overrides.wipes_ungated,
            nemesis,
            schedule,
            compression: PRODUCER_CODECS[codecs.gen_range(0..PRODUCER_CODECS.len())],
            compression_type: BROKER_COMPRESSION_TYPES
                [codecs.gen_range(0..BROKER_COMPRESSION_TYPES.len())],
            clocks,
            operations: Operations::draw(seed)
                .filter(|_| !overrides.no_operations && overrides.faults.is_none()),
            clients: if overrides.no_client_shapes {
                ClientShapes::default()
            } else {
                ClientShapes::draw(seed)
            },
            // A stream of its own.
            sync_failure_drops_unsynced: ChaCha8Rng::seed_from_u64(seed ^ 0xf5c9_6a7e_0000_002d)
                .gen_bool(0.5),
            isr_loss_opening: false,
            offline_elr_opening: false,
            journal_file_bytes: {
                // A stream of its own.
                let mut journal = ChaCha8Rng::seed_from_u64(seed ^ 0x10a7_7a10_0000_003b);
                journal
                    .gen_bool(0.85)
                    .then(|| [16 << 10, 256 << 10, 64 << 20][journal.gen_range(0..3)])
            },
            tail_bytes: {
                // A stream of its own.
                let mut tail = ChaCha8Rng::seed_from_u64(seed ^ 0x7a11_b17e_0000_0047);
                if tail.gen_bool(0.3) {
                    // The last batch only, or a few.
                    [0, 4 << 10][tail.gen_range(0..2)]
                } else {
                    broker::node::config::LogSettings::default().tail_bytes
                }
            },
        };
        // The wipe family's in-sync-copies-lost episode (the way to an unclean election), from
        // a stream of its own: only where the family is fixed, so the default campaign's draw
        // stays what it was.
        if overrides.faults == Some(FaultFamily::Wipe) {
            let mut isr_loss = ChaCha8Rng::seed_from_u64(seed ^ 0x15a1_0550_0000_0029);
            draw.schedule.add_isr_loss(
                &mut isr_loss,
                draw.safety_ms,
                draw.broker_session_timeout_ms,
            );
        }
        // The same episode opens the safety phase of a few default seeds (a stream of its own:
        // no other draw moves), so the campaign alone reaches the state in which only
        // `unclean.leader.election.enable` keeps a stale or empty replica from leading. Not
        // with a consumer group, whose offsets topic (brokers' defaults: unclean elections)
        // would lose commits the group check holds the strong settings to.
        let mut opening = ChaCha8Rng::seed_from_u64(seed ^ 0x15a1_0550_0000_0037);
        if overrides.faults.is_none()
            && draw.clients.group_members.is_none()
            && opening.gen_bool(ISR_LOSS_OPENING_SHARE)
        {
            draw.schedule.open_with_isr_loss(
                &mut opening,
                draw.safety_ms,
                draw.broker_session_timeout_ms,
            );
            draw.isr_loss_opening = true;
        }
        // In a third of the other default seeds of the split shape, the safety phase opens with
        // an offline copy in the ELR of every partition at an election (a stream of its own).
        let mut offline_elr = ChaCha8Rng::seed_from_u64(seed ^ 0x0ff1_1e1e_0000_0039);
        if overrides.faults.is_none()
            && draw.shape == Shape::Split
            && !draw.isr_loss_opening
            && offline_elr.gen_bool(1.0 / 3.0)
        {
            draw.offline_elr_opening = draw
                .schedule
                .open_with_offline_elr(
                    &mut offline_elr,
                    draw.safety_ms,
                    draw.broker_session_timeout_ms,
                )
                .is_some();
        }
        // Rot at rest (a stream of its own), out of the matrix's single-family cells and of
        // the seeds that open with an episode (which would drop it, or part of it).
        let mut rot = ChaCha8Rng::seed_from_u64(seed ^ 0x0b17_7a70_0000_0053);
        if overrides.faults.is_none()
            && !draw.isr_loss_opening
            && !draw.offline_elr_opening
            && rot.gen_bool(ROT_SHARE)
        {
            draw.nemesis.rot = true;
            let gap_ms_mean = draw.nemesis.gap_ms_mean;
            draw.schedule.add_rot(
                &mut rot,
                gap_ms_mean,
                draw.safety_ms,
                draw.broker_session_timeout_ms,
            );
        }
        draw
    }

    /// The topic configs the run creates its topic with, beside `min.insync.replicas`.
    pub fn topic_configs(&self) -> Vec<(String, String)> {
        let mut configs = self
            .operations
            .map(|o| o.topic_configs())
            .unwrap_or_default();
        configs.extend(self.clients.topic_configs());
        configs
    }

    /// Whether the settings promise that no acknowledged record is lost (acks=all, min ISR 2,
    /// clean elections).
    pub fn strong(&self) -> bool {
        self.acks == -1 && self.min_isr >= 2 && !self.unclean
    }

    /// The anomaly classes that are violations under these settings: all of the checker's bad
    /// classes when strong and idempotent; without idempotence a retried send may be written
    /// twice, so duplicates are allowed; weak settings promise nothing the checker can hold
    /// them to (their runs still fail on liveness and on panics).
    pub fn forbidden(&self) -> Option<Vec<AnomalyClass>> {
        if !self.strong() {
            return Some(WEAK_FORBIDDEN.to_vec());
        }
        if self.idempotence {
            None
        } else {
            Some(
                AnomalyClass::ALL
                    .into_iter()
                    .filter(|c| *c != AnomalyClass::Duplicate)
                    .collect(),
            )
        }
    }

    /// The classes among one run's findings `seen` that these settings forbid. Where duplicates
    /// are allowed (no idempotence), the ordering classes a duplicate drags along are excused in
    /// a run that shows one: the checker places each value at one offset, so a value written or
    /// read twice makes polls and sends look out of order.
    pub fn forbidden_in(&self, seen: &[AnomalyClass]) -> Vec<AnomalyClass> {
        let forbidden = self
            .forbidden()
            .unwrap_or_else(|| AnomalyClass::ALL.to_vec());
        let duplicated = seen.contains(&AnomalyClass::Duplicate)
            && !forbidden.contains(&AnomalyClass::Duplicate);
        let out: Vec<AnomalyClass> = seen
            .iter()
            .filter(|c| forbidden.contains(c) && !(duplicated && DUPLICATE_SHADOWS.contains(c)))
            .copied()
            .collect();
        assert!(out.len() <= seen.len());
        out
    }

    /// The settings in words.
    pub fn settings(&self) -> String {
        format!(
            "acks {}, min ISR {}, unclean {}, idempotence {}",
            match self.acks {
                -1 => "all".to_string(),
                other => other.to_string(),
            },
            self.min_isr,
            if self.unclean { "on" } else { "off" },
            if self.idempotence { "on" } else { "off" },
        )
    }
}

/// The cluster scenario.
#[derive(Debug, Clone, Default)]
pub struct ClusterScenario {
    /// `--steps`: sends per producer, if given.
    steps: Option<u64>,
    /// `--bug NAME`, if given.
    bug: Option<String>,
    /// `--schedule FILE`: a fault schedule replacing the seed's.
    schedule: Option<(String, FaultSchedule)>,
    /// Settings fixed instead of drawn.
    overrides: Overrides,
}

impl ClusterScenario {
    /// The scenario; `bug` must be one of [`BUGS`] (the command line checks).
    pub fn new(steps: Option<u64>, bug: Option<String>) -> ClusterScenario {
        if let Some(bug) = &bug {
            assert!(
                BUGS.iter().any(|(name, _)| name == bug),
                "unknown cluster bug {bug}"
            );
        }
        ClusterScenario {
            steps,
            bug,
            schedule: None,
            overrides: Overrides::default(),
        }
    }

    /// Fixes the settings `overrides` names (validated by the caller).
    pub fn with_overrides(mut self, overrides: Overrides) -> ClusterScenario {
        self.overrides = overrides;
        self
    }

    /// Replaces every seed's drawn fault schedule with `schedule`, read from `path`.
    pub fn with_schedule(mut self, path: String, schedule: FaultSchedule) -> ClusterScenario {
        self.schedule = Some((path, schedule));
        self
    }

    /// The same scenario with `steps` sends per producer.
    pub fn with_steps(&self, steps: Option<u64>) -> ClusterScenario {
        ClusterScenario {
            steps,
            ..self.clone()
        }
    }

    /// `--steps`, if given.
    pub fn steps(&self) -> Option<u64> {
        self.steps
    }

    /// The draw of `seed`, with the schedule override applied.
    pub fn draw(&self, seed: u64) -> ClusterDraw {
        let mut draw = ClusterDraw::from_seed_with(seed, &self.overrides);
        if let Some((_, schedule)) = &self.schedule {
            draw.schedule = schedule.clone();
        }
        draw
    }

    /// The node options the bug switch implies.
    fn options(&self) -> broker::node::NodeOptions {
        let mut options = broker::node::NodeOptions::default();
        match self.bug.as_deref() {
            Some("truncate-to-hw") => options.bugs.truncate_to_high_watermark = true,
            Some("no-epoch-fencing") => options.bugs.no_epoch_fencing = true,
            Some("last-replica-standing") => {
                options.bugs.last_replica_standing = true;
                options.controller_bugs.no_elr = true;
            }
            _ => {}
        }
        options
    }

    /// Runs `seed` with an explicit draw (the shrinker's entry point).
    pub fn run_draw(&self, seed: u64, draw: &ClusterDraw) -> SeedRun {
        self.run_checked_draw(seed, draw).run
    }

    /// Runs `seed` and keeps the checker's whole report beside the verdict (what the guarantee
    /// matrix tabulates: every anomaly seen, allowed by the settings or not).
    pub fn run_checked(&self, seed: u64) -> CheckedRun {
        self.run_checked_draw(seed, &self.draw(seed))
    }

    fn run_checked_draw(&self, seed: u64, draw: &ClusterDraw) -> CheckedRun {
        let sends_max = self.steps.unwrap_or(SENDS_PER_PRODUCER_DEFAULT);
        let outcome = world::run(seed, draw, self.options(), sends_max);
        // An alarm (a state a correct node never reaches, such as a spinning long poll) fails
        // the seed like a liveness failure.
        let alarms = buggify::alarms_raised();
        let violation = outcome.violation.or_else(|| {
            let (name, times) = alarms.iter().next()?;
            Some(format!("alarm {name} raised {times} times"))
        });
        let mut run = SeedRun {
            trace: outcome.trace,
            violation,
            steps: outcome.completions,
            simulated_ms: outcome.simulated_ms,
            timeline: outcome.timeline,
            ..SeedRun::default()
        };
        // Retention deletes records below the log start consumers saw: not losses.
        let options = QueueOptions {
            log_starts: outcome.log_starts.clone(),
            ..QueueOptions::default()
        };
        let mut report = queue::check(&outcome.history, &options);
        excuse_reappended(&mut report, &outcome.reappended, &outcome.log_starts);
        // The report's operations and anomalies, beside what the world recorded as it ran.
        for mark in timeline::op_marks(&outcome.history) {
            run.timeline.op(mark);
        }
        for finding in timeline::anomaly_findings(&report, draw) {
            run.timeline.finding(finding);
        }
        // Both verdicts: a liveness failure often comes with the anomalies that explain it.
        // Offline partitions after an opening in-sync-copies-lost episode were never read to
        // their end: their unread acknowledged records are unseen, nothing else.
        let excused: &[AnomalyClass] = if outcome.offline_as_expected {
            &[AnomalyClass::Unseen]
        } else {
            &[]
        };
        let checked = judge_excusing(&report, draw, excused);
        let liveness = run.violation.clone();
        run.violation = match (run.violation.take(), checked) {
            (Some(liveness), Some(anomalies)) => Some(format!("{liveness}; {anomalies}")),
            (liveness, anomalies) => liveness.or(anomalies),
        };
        if let Some(violation) = &run.violation {
            run.trace.record(format!("VIOLATION {violation}"));
        }
        CheckedRun {
            run,
            report,
            liveness,
            draw: draw.clone(),
        }
    }
}

/// One run with everything the checker found.
#[derive(Debug)]
pub struct CheckedRun {
    /// The run and its verdict under the draw's settings.
    pub run: SeedRun,
    /// The queue checker's report: every anomaly class seen, with cases.
    pub report: queue::QueueReport,
    /// The liveness (or set-up) failure, if any, apart from the checker.
    pub liveness: Option<String>,
    /// The settings and faults the run had.
    pub draw: ClusterDraw,
}

/// The violation the draw's settings make of the checker's findings, if any.
pub fn judge(report: &queue::QueueReport, draw: &ClusterDraw) -> Option<String> {
    judge_excusing(report, draw, &[])
}

/// Drops the duplicate and order anomalies that a stale copy appended again explains, when the
/// leader that appended it may have lost the copy's producer as Kafka's would: every batch the
/// producer had acknowledged on the partition lies below the log start seen by the end of the
/// run, so a replica that started over there knew nothing of it ([`record::Reappended`]). A
/// class whose instances were truncated in the report keeps what was not listed.
pub fn excuse_reappended(
    report: &mut queue::QueueReport,
    reappended: &[record::Reappended],
    log_starts: &std::collections::BTreeMap<String, u64>,
) {
    let excused: Vec<&record::Reappended> = reappended
        .iter()
        .filter(|copy| {
            let start = log_starts.get(&copy.key).copied().unwrap_or(0);
            u64::try_from(copy.producer_last_offset).is_ok_and(|last| last < start)
        })
        .collect();
    if excused.is_empty() {
        return;
    }
    let explained = |case: &queue::Anomaly| {
        excused.iter().any(|copy| {
            case.key.as_deref() == Some(copy.key.as_str())
                && case.values.iter().any(|value| copy.values.contains(value))
        })
    };
    for class in [
        AnomalyClass::Duplicate,
        AnomalyClass::NonmonotonicPoll,
        AnomalyClass::NonmonotonicSend,
    ] {
        let Some(found) = report.anomalies.get_mut(&class) else {
            continue;
        };
        let listed = found.cases.len() as u64;
        found.cases.retain(|case| !explained(case));
        let dropped = listed - found.cases.len() as u64;
        if dropped > 0 {
            buggify::probe!("sim.stale_copy.reappended_by_a_leader_that_lost_the_producer");
        }
        found.count -= dropped;
        if found.count == 0 {
            report.anomalies.remove(&class);
        }
    }
    report.valid = report.bad_classes().is_empty();
}

/// Like [`judge`], with the classes `excused` allowed in this run.
pub fn judge_excusing(
    report: &queue::QueueReport,
    draw: &ClusterDraw,
    excused: &[AnomalyClass],
) -> Option<String> {
    let mut bad = draw.forbidden_in(&report.bad_classes());
    bad.retain(|c| !excused.contains(c));
    let first = bad.first()?;
    let case = report
        .cases(*first)
        .first()
        .map(|c| {
            format!(
                " (key {}, values {:?}, ops {:?}: {})",
                c.key.as_deref().unwrap_or("-"),
                c.values,
                c.ops,
                c.detail
            )
        })
        .unwrap_or_default();
    let names: Vec<&str> = bad.iter().map(|c| c.name()).collect();
    Some(format!("history anomalies {}{case}", names.join(", ")))
}

impl Scenario for ClusterScenario {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn describe(&self, seed: u64) -> String {
        let d = self.draw(seed);
        format!(
            "{} ({}), {}, segments {} B, {}, tail {} B, compression {} (brokers: {}), {} producers, \
             safety {} ms, lag {} ms, session {} ms, tick {} ms, buggify {}, \
             faults {} every ~{} ms{}{}{}{}{}: {} faults [{}]",
            d.settings(),
            match (d.strong(), d.idempotence) {
                (true, true) => "strong",
                (true, false) => "strong, duplicates allowed",
                (false, _) => "weak: loss allowed",
            },
            match d.shape {
                Shape::Combined => "3 combined nodes",
                Shape::Split => "3 brokers + 3 controllers",
            },
            d.segment_bytes,
            d.journal_file_bytes
                .map_or("no journal".to_string(), |b| format!("journal files {b} B")),
            d.tail_bytes,
            codec_name(d.compression),
            d.compression_type,
            d.producers,
            d.safety_ms,
            d.replica_lag_time_max_ms,
            d.broker_session_timeout_ms,
            d.controller_tick_ms,
            d.buggify_permille.map_or("off".to_string(), |p| format!(
                "{p}‰{}",
                if d.buggify_disk_faults {
                    " with disk faults"
                } else {
                    ""
                }
            )),
            d.nemesis.kinds(),
            d.nemesis.gap_ms_mean,
            if d.nemesis.disk && d.disk_repair_in_place {
                ", disks repair in place"
            } else {
                ""
            },
            if d.sync_failure_drops_unsynced {
                ", a failed fsync drops the unsynced bytes"
            } else {
                ""
            },
            if d.nemesis.clock {
                let clocks: Vec<String> = d
                    .clocks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("n{} {:+} ms {:+} ppm", i + 1, c.offset_ms, c.drift_ppm))
                    .collect();
                format!(", clocks {}", clocks.join(" / "))
            } else {
                String::new()
            },
            d.operations
                .map_or(String::new(), |o| format!(", operations: {}", o.describe())),
            d.clients
                .describe()
                .map_or(String::new(), |c| format!(", clients: {c}")),
            d.schedule.faults.len(),
            d.schedule.summary()
        )
    }

    fn run(&self, seed: u64) -> SeedRun {
        self.run_draw(seed, &self.draw(seed))
    }

    fn replay_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(steps) = self.steps {
            args.push(format!("--steps {steps}"));
        }
        if let Some(bug) = &self.bug {
            args.push(format!("--bug {bug}"));
        }
        if let Some((path, _)) = &self.schedule {
            args.push(format!("--schedule {path}"));
        }
        args.extend(self.overrides.args());
        args
    }
}
