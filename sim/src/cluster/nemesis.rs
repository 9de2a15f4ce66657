//! The nemesis as data: a [`FaultSchedule`] is a list of `(at_ms, Fault)` drawn from the seed
//! (or read from a JSON file), so a failing run can be replayed, printed and shrunk fault by
//! fault. Every fault is meaningful on its own: applying any subset of a schedule is a valid run
//! (a `Resume` of a node nobody paused is a no-op), which is what delta debugging needs.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Nodes of the simulated cluster: broker ids 1..=NODES.
pub const NODES: u8 = 3;
/// Most faults one schedule may hold (a limit, so a hand-written file cannot stall a run).
pub const SCHEDULE_FAULTS_MAX: usize = 512;

/// After a power loss, how long the last node stays down beyond the episode: longer than the
/// longest drawn broker session (8 s), so the controller fences it and its partitions move.
const POWER_LOSS_LAST_RESTART_MS: u64 = 10_000;
/// Longest wait of a power loss for its crash point, ms.
const POWER_LOSS_WAIT_MS_MAX: u64 = 1_000;
/// Longest delay of a power loss after its crash point, ms: an acknowledgement's trip to the
/// client (madsim's latency is 1-10 ms), or a follower's fsync still pending (1-8 ms).
const POWER_LOSS_AFTER_MS_MAX: u64 = 10;
/// How long a rot episode's power loss waits for a repair to set a rotted log aside: past the
/// first repair's backoff (1 s) and a few failed attempts of a disk that keeps failing.
const ROT_SET_ASIDE_WAIT_MS: u64 = 6_000;

/// One fault the nemesis can inject. Nodes are broker ids (1..=3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Kill the node's process; its disk crashes (unsynced bytes lost, appends may tear).
    Kill {
        /// The broker id.
        node: u8,
    },
    /// Start a killed node again on its crashed disk; a live node is crashed and restarted.
    Restart {
        /// The broker id.
        node: u8,
    },
    /// Freeze the node's process (madsim's `pause`): none of its tasks run and no timer of
    /// its fires, as under a stop-the-world GC pause or SIGSTOP; packets wait in its sockets.
    /// Unlike `Isolate`, the node cannot notice time passing until it resumes.
    Pause {
        /// The broker id.
        node: u8,
    },
    /// Let a frozen node run again: its overdue timers fire at once.
    Resume {
        /// The broker id.
        node: u8,
    },
    /// Clog the links between two nodes, both ways.
    Partition {
        /// One side.
        a: u8,
        /// The other side.
        b: u8,
    },
    /// Clog one direction only: `from` can no longer reach `to`, `to` still reaches `from`.
    OneWay {
        /// Sender whose packets are dropped.
        from: u8,
        /// Intended receiver.
        to: u8,
    },
    /// Cut the node off from every other node (brokers and clients).
    Isolate {
        /// The broker id.
        node: u8,
    },
    /// Latency spike: every message takes up to `latency_ms` (madsim's default is 1-10 ms).
    Slow {
        /// Upper bound of a message's delay, ms.
        latency_ms: u32,
    },
    /// Unclog every link and node, latency back to normal: the network is whole again.
    Heal,
    /// Every broker loses power at the same instant: each process is killed and each disk
    /// keeps only what was synced. The `Restart`s that follow bring them back in a drawn
    /// order (or healing does). Acknowledged acks=all records must survive it.
    PowerLoss,
    /// A power loss at a crash point: from its time the nemesis waits (at most `wait_ms_max`)
    /// until some node's code reaches `point`, lets `after_ms` more pass (acknowledgements in
    /// flight reach the client), then every broker loses power as in `PowerLoss`. The instant
    /// is the code's, so a window of a few milliseconds (a follower's append before its fsync)
    /// is hit whenever it opens; a point never reached cuts the power at the end of the wait.
    PowerLossAt {
        /// Where.
        point: CrashPoint,
        /// Longest wait for the point, ms.
        wait_ms_max: u64,
        /// Delay after the point is reached, ms.
        after_ms: u64,
    },
    /// The node's disk starts failing: I/O errors and silent bit flips on writes.
    DiskFaults {
        /// The broker id.
        node: u8,
        /// Per-mille chance that a write or sync fails.
        io_error_permille: u32,
        /// Per-million chance that a write silently flips one bit (the CRC must catch it).
        bit_flip_per_million: u32,
    },
    /// The node's disk stops failing.
    DiskHeal {
        /// The broker id.
        node: u8,
    },
    /// The node's flushed data rots at rest: in every partition directory of the node, one
    /// seeded-random bit of the durable bytes of one segment file flips, as a latent sector
    /// error does (Kafka does not scrub). Whatever reads the batch finds it by its CRC: the
    /// partition fails, and its repair sets the log aside and rebuilds it from the leader.
    Rot {
        /// The broker id.
        node: u8,
    },
    /// The node's process is killed and its data directory wiped, all but the controller's
    /// raft state: a replaced disk, as after a node replacement. It comes back empty at its
    /// `Restart` (or at healing), reports itself unclean and is rebuilt from the leaders.
    Wipe {
        /// The broker id.
        node: u8,
    },
    /// The node's process is killed and its data disk destroyed: every partition log goes,
    /// the controller's raft log (on a disk of its own, as KRaft's `metadata.log.dir` may be)
    /// stays. Never gated: the wipe family's in-sync-copies-lost episode
    /// ([`FaultSchedule::add_isr_loss`]) destroys the last up-to-date copies on purpose. It
    /// comes back empty at its `Restart` (or at healing) and registers unclean.
    LoseDisk {
        /// The broker id.
        node: u8,
    },
    /// The node's wall clock jumps by `delta_ms` (back when negative), as when NTP steps a
    /// clock or a VM resumes: record timestamps, segment ages and retention see it; the
    /// monotonic clock does not jump. Jumps are not undone at healing: skew is lived with.
    ClockJump {
        /// The broker id.
        node: u8,
        /// The jump, ms.
        delta_ms: i64,
    },
    /// An attacker without the cluster secret sends forged frames to the node's controller
    /// and Kafka listeners (issue 15's attacks); every one must be refused.
    Forge {
        /// The broker id (in the split shape, its controller is the one attacked).
        node: u8,
    },
}

/// The places in the broker where a power loss tells the most (`buggify::crash_point`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// A follower appended fetched records and has not flushed them.
    FollowerAppendedUnflushed,
    /// A leader acknowledges a produce.
    LeaderAcknowledged,
    /// An IO round's acknowledgements went out, its state checkpoints are not written yet.
    CheckpointPending,
    /// A state checkpoint's file is written and synced, not yet renamed into place.
    CheckpointWritten,
    /// A journaled IO round is synced (its records durable), its segment files are not, and
    /// its acknowledgements have not gone out.
    JournalSynced,
    /// A repair set a corrupt log aside (the copy lost flushed data) and the controller has
    /// not been told. Drawn by the rot episodes ([`FaultSchedule::add_rot`]) only.
    LogSetAside,
}

impl CrashPoint {
    /// Every crash point the kill episodes draw (the rot episodes draw `LogSetAside`).
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::FollowerAppendedUnflushed,
        CrashPoint::LeaderAcknowledged,
        CrashPoint::CheckpointPending,
        CrashPoint::CheckpointWritten,
        CrashPoint::JournalSynced,
    ];

    /// The name the broker's `buggify::crash_point` call uses.
    pub fn site(self) -> &'static str {
        match self {
            CrashPoint::FollowerAppendedUnflushed => "crash.follower_appended_unflushed",
            CrashPoint::LeaderAcknowledged => "crash.leader_acknowledged",
            CrashPoint::CheckpointPending => "crash.checkpoint_pending",
            CrashPoint::CheckpointWritten => "crash.checkpoint_written",
            CrashPoint::JournalSynced => "crash.journal_synced",
            CrashPoint::LogSetAside => "crash.log_set_aside",
        }
    }
}

impl Fault {
    /// The nodes the fault names, for validation.
    fn nodes(&self) -> Vec<u8> {
        match self {
            Fault::Kill { node }
            | Fault::Restart { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::Isolate { node }
            | Fault::DiskFaults { node, .. }
            | Fault::DiskHeal { node }
            | Fault::Rot { node }
            | Fault::Wipe { node }
            | Fault::LoseDisk { node }
            | Fault::ClockJump { node, .. } => vec![*node],
            Fault::Forge { node } => vec![*node],
            Fault::Partition { a, b } => vec![*a, *b],
            Fault::OneWay { from, to } => vec![*from, *to],
            Fault::Heal | Fault::Slow { .. } | Fault::PowerLoss | Fault::PowerLossAt { .. } => {
                Vec::new()
            }
        }
    }

    /// A short label for traces and reports.
    pub fn label(&self) -> String {
        match self {
            Fault::Kill { node } => format!("kill n{node}"),
            Fault::Restart { node } => format!("restart n{node}"),
            Fault::Pause { node } => format!("pause n{node}"),
            Fault::Resume { node } => format!("resume n{node}"),
            Fault::Partition { a, b } => format!("partition n{a}|n{b}"),
            Fault::OneWay { from, to } => format!("one-way n{from}->n{to} dropped"),
            Fault::Isolate { node } => format!("isolate n{node}"),
            Fault::Slow { latency_ms } => format!("slow network (up to {latency_ms} ms)"),
            Fault::Heal => "heal network".to_string(),
            Fault::PowerLoss => "power loss of every node".to_string(),
            Fault::PowerLossAt {
                point, after_ms, ..
            } => format!(
                "power loss of every node {after_ms} ms after {}",
                point.site()
            ),
            Fault::DiskFaults {
                node,
                io_error_permille,
                bit_flip_per_million,
            } => format!(
                "disk faults n{node} io {io_error_permille}‰ flips {bit_flip_per_million}/M"
            ),
            Fault::DiskHeal { node } => format!("disk heal n{node}"),
            Fault::Rot { node } => format!("flushed data of n{node} rots"),
            Fault::Wipe { node } => format!("wipe n{node}"),
            Fault::LoseDisk { node } => format!("data disk of n{node} destroyed"),
            Fault::ClockJump { node, delta_ms } => format!("clock n{node} jumps {delta_ms:+} ms"),
            Fault::Forge { node } => format!("forged frames to n{node}"),
        }
    }
}

/// A fault and when (simulated ms after the cluster is up) it strikes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// Simulated milliseconds after the workload started.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// The whole nemesis plan of one run, ordered by time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FaultSchedule {
    /// The faults, `at_ms` non-decreasing.
    pub faults: Vec<ScheduledFault>,
}

/// Renames the restarts that end a power loss so that a chosen node comes back last: the node
/// that reached [`CrashPoint::LeaderAcknowledged`] holds the one copy it knew durable, and the
/// worst case for what it acknowledged is that the others elect a leader among themselves first.
/// The schedule keeps its times; only which node restarts at each changes.
#[derive(Debug, Default)]
pub struct RestartOrder {
    /// The two nodes whose restarts trade places.
    swap: Option<(u8, u8)>,
    /// How many more restarts the swap renames.
    left: usize,
}

impl RestartOrder {
    /// `fault` as it is carried out: a restart of the power loss's episode renamed, anything
    /// else as drawn.
    pub fn apply(&mut self, fault: &Fault) -> Fault {
        match (fault, self.swap) {
            (Fault::Restart { node }, Some((a, b))) if self.left > 0 => {
                self.left -= 1;
                if self.left == 0 {
                    self.swap = None;
                }
                let node = match *node {
                    n if n == a => b,
                    n if n == b => a,
                    n => n,
                };
                Fault::Restart { node }
            }
            _ => fault.clone(),
        }
    }

    /// After a power loss: of the next [`NODES`] restarts in `rest` (the schedule after it),
    /// `node`'s becomes the last. Returns a line for the history.
    pub fn put_last(&mut self, node: u8, rest: &[ScheduledFault]) -> String {
        let restarts: Vec<u8> = rest
            .iter()
            .filter_map(|f| match f.fault {
                Fault::Restart { node } => Some(node),
                _ => None,
            })
            .take(usize::from(NODES))
            .collect();
        let Some(&last) = restarts.last() else {
            return format!("n{node} acknowledged; no restart follows");
        };
        self.swap = (last != node).then_some((node, last));
        self.left = if self.swap.is_some() {
            restarts.len()
        } else {
            0
        };
        format!("n{node} acknowledged: it restarts last (drawn: n{last})")
    }
}

/// Which fault kinds a seed enables and how often faults strike: the swarm part of the draw.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisDraw {
    /// Process kills (and restarts).
    pub kills: bool,
    /// Node pauses (the process frozen).
    pub pauses: bool,
    /// Partitions between two nodes, one-way drops and isolations.
    pub partitions: bool,
    /// Disk I/O errors and bit flips.
    pub disk: bool,
    /// Skewed, drifting node clocks and clock jumps (not drawn by [`NemesisDraw::draw`], whose
    /// stream it would shift: [`super::ClusterDraw`] draws it from a stream of its own).
    pub clock: bool,
    /// Wiped disks (drawn like `clock`, from a stream of its own).
    pub wipe: bool,
    /// Flushed data rotting at rest, with a failing disk and a power loss at the set-aside
    /// of a rotted log ([`FaultSchedule::add_rot`]; drawn by the caller from a stream of its
    /// own).
    pub rot: bool,
    /// Mean gap between two fault episodes, simulated ms.
    pub gap_ms_mean: u64,
    /// Whether an episode may begin before the previous one ended (two faults at once: what
    /// it takes to empty an ISR of three).
    pub overlapping: bool,
    /// Forged frames from a host without the cluster secret, at a few moments of the run.
    pub forgery: bool,
    /// Copies of acknowledged Produce requests delivered again after the producers moved on
    /// (`stale_requests`): old sequences, old epochs, duplicates.
    pub stale_requests: bool,
}

impl NemesisDraw {
    /// Draws the enabled kinds (at least one) and the rate.
    pub fn draw(rng: &mut ChaCha8Rng) -> NemesisDraw {
        let mut draw = NemesisDraw {
            kills: rng.gen_bool(0.6),
            pauses: rng.gen_bool(0.4),
            partitions: rng.gen_bool(0.6),
            disk: rng.gen_bool(0.3),
            gap_ms_mean: [1_000, 2_500, 5_000][rng.gen_range(0..3)],
            overlapping: rng.gen_bool(0.5),
            clock: false,
            wipe: false,
            rot: false,
            // Drawn from a stream of its own by the caller ([`FaultSchedule::add_forgeries`]).
            forgery: false,
            // Drawn from a stream of its own by the caller, with idempotence only.
            stale_requests: false,
        };
        if !(draw.kills || draw.pauses || draw.partitions || draw.disk) {
            draw.kills = true;
        }
        draw
    }

    /// Limits the draw to one family (the rate stays as drawn).
    pub fn only(&mut self, family: super::FaultFamily) {
        use super::FaultFamily;
        self.kills = family == FaultFamily::Kills;
        self.pauses = family == FaultFamily::Pauses;
        self.partitions = family == FaultFamily::Partitions;
        self.disk = family == FaultFamily::Disk;
        self.clock = family == FaultFamily::Clock;
        self.wipe = family == FaultFamily::Wipe;
        self.rot = false;
        self.forgery = false;
        self.stale_requests = false;
    }

    /// The enabled kinds, for `describe`.
    pub fn kinds(&self) -> String {
        let mut kinds: Vec<&str> = [
            (self.kills, "kill"),
            (self.pauses, "pause"),
            (self.partitions, "partition"),
            (self.disk, "disk"),
            (self.clock, "clock"),
            (self.wipe, "wipe"),
            (self.rot, "rot"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if self.overlapping {
            kinds.push("overlapping");
        }
        if self.forgery {
            kinds.push("forgery");
        }
        if self.stale_requests {
            kinds.push("stale-requests");
        }
        kinds.join("+")
    }
}

fn node(rng: &mut ChaCha8Rng) -> u8 {
    rng.gen_range(1..=NODES)
}

fn other(rng: &mut ChaCha8Rng, not: u8) -> u8 {
    let step = rng.gen_range(1..NODES);
    (not - 1 + step) % NODES + 1
}

impl FaultSchedule {
    /// Draws episodes (a fault and, later, its undoing) over `duration_ms`. Without
    /// `overlapping` each episode ends before the next begins, so a schedule reads as a story;
    /// with it, an episode may begin while the previous one lasts (two nodes down at once).
    pub fn generate(rng: &mut ChaCha8Rng, draw: &NemesisDraw, duration_ms: u64) -> FaultSchedule {
        assert!(duration_ms > 0, "a safety phase has a duration");
        let mut kinds = Vec::new();
        for (on, kind) in [
            (draw.kills, 0u8),
            (draw.pauses, 1),
            (draw.partitions, 2),
            (draw.disk, 3),
        ] {
            if on {
                kinds.push(kind);
            }
        }
        assert!(
            !kinds.is_empty() || draw.clock || draw.wipe,
            "the draw enables at least one kind"
        );
        let mut faults = Vec::new();
        if kinds.is_empty() {
            // Clock or wipe faults only: `add_clock_jumps` and `add_wipes` draw them.
            return FaultSchedule { faults };
        }
        let mut at_ms = rng.gen_range(0..=draw.gap_ms_mean * 2);
        while at_ms < duration_ms && faults.len() + 3 <= SCHEDULE_FAULTS_MAX {
            let length_ms = rng.gen_range(300..=draw.gap_ms_mean * 3);
            let end_ms = (at_ms + length_ms).min(duration_ms);
            let n = node(rng);
            let kind = kinds[rng.gen_range(0..kinds.len())];
            if kind == 0 && rng.gen_bool(0.15) {
                // Drawn from its own stream so the schedules of other seeds stay as they were.
                if ChaCha8Rng::seed_from_u64(at_ms ^ 0x90e7_1055).gen_bool(0.5) {
                    // Power loss of every node, then restarts one by one in a drawn order;
                    // the last one only after every broker session expired, so partitions it
                    // led elect a new leader among the others: what a follower that reported
                    // unflushed data as flushed would lose.
                    // Three in four at a crash point (a stream of its own again), half of
                    // those at an acknowledgement: where an acknowledged record can be lost.
                    let mut point_rng = ChaCha8Rng::seed_from_u64(at_ms ^ 0xc4a5_4011);
                    let fault = if point_rng.gen_bool(0.75) {
                        // Three eighths at an acknowledgement, a quarter after a follower's
                        // append, an eighth each before and inside a state checkpoint and
                        // after a journal's sync (segment files unsynced).
                        let points = [
                            CrashPoint::LeaderAcknowledged,
                            CrashPoint::LeaderAcknowledged,
                            CrashPoint::FollowerAppendedUnflushed,
                            CrashPoint::CheckpointPending,
                            CrashPoint::LeaderAcknowledged,
                            CrashPoint::JournalSynced,
                            CrashPoint::FollowerAppendedUnflushed,
                            CrashPoint::CheckpointWritten,
                        ];
                        Fault::PowerLossAt {
                            point: points[point_rng.gen_range(0..points.len())],
                            // Before the first restart (a third of the episode).
                            wait_ms_max: ((end_ms - at_ms) / u64::from(NODES) / 2)
                                .clamp(1, POWER_LOSS_WAIT_MS_MAX),
                            after_ms: point_rng.gen_range(0..=POWER_LOSS_AFTER_MS_MAX),
                        }
                    } else {
                        Fault::PowerLoss
                    };
                    faults.push(ScheduledFault { at_ms, fault });
                    let mut order: Vec<u8> = (1..=NODES).collect();
                    order.shuffle(rng);
                    let last = order.len() - 1;
                    let mut restart_ms = at_ms;
                    for (i, node) in order.into_iter().enumerate() {
                        restart_ms = if i == last {
                            end_ms + POWER_LOSS_LAST_RESTART_MS
                        } else {
                            at_ms + (end_ms - at_ms) * (i as u64 + 1) / u64::from(NODES)
                        };
                        faults.push(ScheduledFault {
                            at_ms: restart_ms,
                            fault: Fault::Restart { node },
                        });
                    }
                    at_ms = restart_ms + rng.gen_range(1..=draw.gap_ms_mean * 2);
                    continue;
                }
                // A rolling restart: every node in turn, as an operator upgrading the cluster.
                for (i, node) in (1..=NODES).enumerate() {
                    let step_ms = (end_ms - at_ms) * i as u64 / u64::from(NODES - 1);
                    faults.push(ScheduledFault {
                        at_ms: at_ms + step_ms,
                        fault: Fault::Restart { node },
                    });
                }
                at_ms = end_ms + rng.gen_range(1..=draw.gap_ms_mean * 2);
                continue;
            }
            let (start, end) = match kind {
                0 => (Fault::Kill { node: n }, Fault::Restart { node: n }),
                1 => (Fault::Pause { node: n }, Fault::Resume { node: n }),
                2 => match rng.gen_range(0..4) {
                    3 => (
                        Fault::Slow {
                            latency_ms: [100, 500, 2_000][rng.gen_range(0..3)],
                        },
                        Fault::Heal,
                    ),
                    0 => (
                        Fault::Partition {
                            a: n,
                            b: other(rng, n),
                        },
                        Fault::Heal,
                    ),
                    1 => (
                        Fault::OneWay {
                            from: n,
                            to: other(rng, n),
                        },
                        Fault::Heal,
                    ),
                    _ => (Fault::Isolate { node: n }, Fault::Heal),
                },
                _ => (
                    Fault::DiskFaults {
                        node: n,
                        io_error_permille: rng.gen_range(1..=50),
                        bit_flip_per_million: if rng.gen_bool(0.3) {
                            rng.gen_range(1..=200)
                        } else {
                            0
                        },
                    },
                    Fault::DiskHeal { node: n },
                ),
            };
            faults.push(ScheduledFault {
                at_ms,
                fault: start,
            });
            faults.push(ScheduledFault {
                at_ms: end_ms,
                fault: end,
            });
            at_ms = if draw.overlapping && rng.gen_bool(0.5) && end_ms > at_ms + 1 {
                rng.gen_range(at_ms + 1..end_ms)
            } else {
                end_ms + rng.gen_range(1..=draw.gap_ms_mean * 2)
            };
        }
        // Overlapping episodes interleave: order by time (stable, so a fault at the same
        // millisecond as another keeps its drawing order).
        faults.sort_by_key(|f| f.at_ms);
        let schedule = FaultSchedule { faults };
        schedule.validate().expect("generated schedules are valid");
        schedule
    }

    /// Adds clock jumps drawn from `rng` (a stream of their own) over `duration_ms`: forward
    /// and back, from half a second to ten minutes, about every `gap_ms_mean`.
    pub fn add_clock_jumps(&mut self, rng: &mut ChaCha8Rng, gap_ms_mean: u64, duration_ms: u64) {
        assert!(gap_ms_mean > 0, "a rate");
        let mut at_ms = rng.gen_range(0..=gap_ms_mean * 2);
        while at_ms < duration_ms && self.faults.len() < SCHEDULE_FAULTS_MAX {
            let size = [500, 5_000, 60_000, 600_000][rng.gen_range(0..4)];
            let delta_ms = if rng.gen_bool(0.5) { size } else { -size };
            self.faults.push(ScheduledFault {
                at_ms,
                fault: Fault::ClockJump {
                    node: node(rng),
                    delta_ms,
                },
            });
            at_ms += rng.gen_range(1..=gap_ms_mean * 2);
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self.validate()
            .expect("drawn clock jumps keep the schedule valid");
    }

    /// Adds wiped disks drawn from `rng` (a stream of their own) over `duration_ms`: a node is
    /// wiped and restarted empty after 0.3 s to three gaps, about every two gaps.
    pub fn add_wipes(&mut self, rng: &mut ChaCha8Rng, gap_ms_mean: u64, duration_ms: u64) {
        assert!(gap_ms_mean > 0, "a rate");
        let mut at_ms = rng.gen_range(0..=gap_ms_mean * 2);
        while at_ms < duration_ms && self.faults.len() + 2 <= SCHEDULE_FAULTS_MAX {
            let n = node(rng);
            let end_ms = (at_ms + rng.gen_range(300..=gap_ms_mean * 3)).min(duration_ms);
            self.faults.push(ScheduledFault {
                at_ms,
                fault: Fault::Wipe { node: n },
            });
            self.faults.push(ScheduledFault {
                at_ms: end_ms,
                fault: Fault::Restart { node: n },
            });
            at_ms = end_ms + rng.gen_range(gap_ms_mean..=gap_ms_mean * 4);
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self.validate()
            .expect("drawn wipes keep the schedule valid");
    }

    /// Adds the wipe family's in-sync-copies-lost episode, drawn from `rng` (a stream of its
    /// own): the one way rill (KIP-966) reaches an unclean election. A node `s` is killed and
    /// stays down past the broker session timeout, so the controller fences it and it leaves
    /// every ISR while the other two stay in sync (min ISR 2 or 1: no ELR is kept); records
    /// acknowledged from then on are on the other two only. Then, at one instant, `s` restarts
    /// on its intact, stale disk and the other two lose their data disks (`LoseDisk`; their raft
    /// logs stay, so a combined node's controller quorum survives) and come back empty a moment
    /// later, registering unclean: out of every ISR and ELR. With
    /// `unclean.leader.election.enable` a stale or empty replica is elected and the records only
    /// the destroyed disks held are lost; without it every partition stays leaderless for good.
    /// In a quarter of the episodes one of the two is only killed (its disk intact): it stays in
    /// the ELR and leads again when it returns, under either setting, with nothing lost.
    /// Wipes drawn before (`add_wipes`) whose span meets the episode's, widened by a second
    /// each way, are dropped: the episode is the only fault while it lasts. Returns when the
    /// episode's last restart is.
    pub fn add_isr_loss(
        &mut self,
        rng: &mut ChaCha8Rng,
        safety_ms: u64,
        session_timeout_ms: u64,
    ) -> u64 {
        // Fenced and out of every ISR by then (the controller ticks every 50-100 ms).
        let fenced_ms = session_timeout_ms + 1_000;
        let writes_ms = rng.gen_range(500..=2_000);
        let latest_ms = safety_ms.saturating_sub(300);
        let killed_ms = rng
            .gen_range(300..=3_000)
            .min(latest_ms.saturating_sub(fenced_ms + writes_ms))
            .max(100);
        let lost_ms = (killed_ms + fenced_ms + writes_ms).min(latest_ms);
        assert!(
            lost_ms >= killed_ms + fenced_ms,
            "a safety phase of 10 s fits a session of 8 s"
        );
        let stale = node(rng);
        let first = other(rng, stale);
        let second = (1..=NODES)
            .find(|&n| n != stale && n != first)
            .expect("three nodes");
        let both_destroyed = rng.gen_bool(0.75);
        let back_first_ms = lost_ms + rng.gen_range(200..=1_000);
        let back_second_ms = back_first_ms + rng.gen_range(200..=2_000);
        let second_fault = if both_destroyed {
            Fault::LoseDisk { node: second }
        } else {
            Fault::Kill { node: second }
        };
        self.drop_wipes_within(killed_ms.saturating_sub(1_000), back_second_ms + 1_000);
        for (at_ms, fault) in [
            (killed_ms, Fault::Kill { node: stale }),
            (lost_ms, Fault::LoseDisk { node: first }),
            (lost_ms, second_fault),
            (lost_ms, Fault::Restart { node: stale }),
            (back_first_ms, Fault::Restart { node: first }),
            (back_second_ms, Fault::Restart { node: second }),
        ] {
            if self.faults.len() < SCHEDULE_FAULTS_MAX {
                self.faults.push(ScheduledFault { at_ms, fault });
            }
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self.validate()
            .expect("an in-sync-copies-lost episode keeps the schedule valid");
        back_second_ms
    }

    /// Opens the schedule with the in-sync-copies-lost episode ([`FaultSchedule::add_isr_loss`],
    /// drawn from `rng`, a stream of its own): every fault drawn before that would strike
    /// before the episode's last restart (and a second after it) is dropped, so the episode
    /// meets a cluster whose ISRs are full and nothing else happens while it lasts; the faults
    /// drawn for later stay. What the default campaign draws in a few seeds: the one state in
    /// which `unclean.leader.election.enable` decides, without the wipe family.
    pub fn open_with_isr_loss(
        &mut self,
        rng: &mut ChaCha8Rng,
        safety_ms: u64,
        session_timeout_ms: u64,
    ) {
        let mut episode = FaultSchedule::default();
        let end_ms = episode.add_isr_loss(rng, safety_ms, session_timeout_ms);
        self.open_with(episode, end_ms);
    }

    /// Puts `episode` (its faults at or before `end_ms`) first: every fault of this schedule
    /// before `end_ms` and a second after it is dropped, the later ones stay.
    fn open_with(&mut self, episode: FaultSchedule, end_ms: u64) {
        assert!(episode.faults.iter().all(|f| f.at_ms <= end_ms));
        self.faults.retain(|f| f.at_ms > end_ms + 1_000);
        let later = std::mem::take(&mut self.faults);
        self.faults = episode.faults;
        self.faults.extend(
            later
                .into_iter()
                .take(SCHEDULE_FAULTS_MAX - self.faults.len()),
        );
        self.validate()
            .expect("an opening episode keeps the schedule valid");
    }

    /// Opens the schedule (as [`FaultSchedule::open_with_isr_loss`] does) with the
    /// offline-copy-in-the-ELR episode, drawn from `rng` (a stream of its own): node `z` is
    /// killed and stays down until it is fenced, so every ISR is the other two, `x` and `y`;
    /// then `x`'s disk starts failing (a fifth to a third of its writes and syncs), so its copies
    /// fail and the controller marks them offline, out of an ISR that falls below min ISR 2:
    /// they join the ELR (what they flushed is still on the disk); then `y` is killed and stays
    /// down until it is fenced too, leaving every partition with an empty ISR and, in its ELR,
    /// `x` (live, offline) and `y` (fenced). Nobody may be elected until `y` returns (killed,
    /// not wiped: it registers clean and leads from the ELR), `x`'s disk heals and `z` comes
    /// back. For the split shape, whose controller quorum lives on nodes of its own: in the
    /// combined one the two kills and `x`'s failing raft log would stop the quorum. `None`
    /// (nothing changed) when the episode does not fit in the safety phase.
    pub fn open_with_offline_elr(
        &mut self,
        rng: &mut ChaCha8Rng,
        safety_ms: u64,
        session_timeout_ms: u64,
    ) -> Option<()> {
        let fenced_ms = session_timeout_ms + 1_000;
        let z = node(rng);
        let x = other(rng, z);
        let y = (1..=NODES)
            .find(|&n| n != z && n != x)
            .expect("three nodes");
        let z_killed_ms = rng.gen_range(300..=2_000);
        let x_failing_ms = z_killed_ms + fenced_ms;
        let y_killed_ms = x_failing_ms + rng.gen_range(300..=1_000);
        let y_back_ms = y_killed_ms + fenced_ms + rng.gen_range(500..=2_000);
        let x_healed_ms = y_back_ms + rng.gen_range(500..=2_000);
        let z_back_ms = x_healed_ms + rng.gen_range(200..=1_000);
        let io_error_permille = rng.gen_range(200..=300);
        if z_back_ms + 300 > safety_ms {
            return None;
        }
        let mut episode = FaultSchedule::default();
        for (at_ms, fault) in [
            (z_killed_ms, Fault::Kill { node: z }),
            (
                x_failing_ms,
                Fault::DiskFaults {
                    node: x,
                    io_error_permille,
                    bit_flip_per_million: 0,
                },
            ),
            (y_killed_ms, Fault::Kill { node: y }),
            (y_back_ms, Fault::Restart { node: y }),
            (x_healed_ms, Fault::DiskHeal { node: x }),
            (z_back_ms, Fault::Restart { node: z }),
        ] {
            episode.faults.push(ScheduledFault { at_ms, fault });
        }
        self.open_with(episode, z_back_ms);
        Some(())
    }

    /// Drops every wipe (and the restart that ends it) whose span meets `[from_ms, to_ms]`.
    pub fn drop_wipes_within(&mut self, from_ms: u64, to_ms: u64) {
        let mut dropped = Vec::new();
        let mut wiped_at: Vec<Option<usize>> = vec![None; usize::from(NODES)];
        let mut keep = vec![true; self.faults.len()];
        for (i, scheduled) in self.faults.iter().enumerate() {
            match scheduled.fault {
                Fault::Wipe { node } => wiped_at[usize::from(node - 1)] = Some(i),
                Fault::Restart { node } => {
                    if let Some(w) = wiped_at[usize::from(node - 1)].take() {
                        let begins = self.faults[w].at_ms;
                        if begins <= to_ms && scheduled.at_ms >= from_ms {
                            dropped.push(w);
                            dropped.push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        for i in dropped {
            keep[i] = false;
        }
        let mut index = 0;
        self.faults.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }

    /// Adds one to three one-shot forgeries at times drawn from `rng` (a stream of its own, so
    /// the episodes drawn before stay what they were).
    pub fn add_forgeries(&mut self, rng: &mut ChaCha8Rng, duration_ms: u64) {
        assert!(duration_ms > 0, "a safety phase has a duration");
        for _ in 0..rng.gen_range(1..=3) {
            if self.faults.len() < SCHEDULE_FAULTS_MAX {
                self.faults.push(ScheduledFault {
                    at_ms: rng.gen_range(0..duration_ms),
                    fault: Fault::Forge { node: node(rng) },
                });
            }
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self.validate().expect("forgeries keep a schedule valid");
    }

    /// Adds one rot episode drawn from `rng` (a stream of its own) in the first half of
    /// `duration_ms`: a node's flushed data rots and its disk fails writes and syncs (so
    /// partitions fail and their repairs read the whole log, finding the rot).
    ///
    /// In half of the episodes it is the worst case for a copy that lost data: another node
    /// `m` is killed first and stays down until the controller fenced it (`session_ms`), so
    /// the ISR is down to the rotted node `n` and a third `o`, and `n`'s failing copies move
    /// into the ELR. Every node then loses power at the moment a repair has set a rotted log
    /// aside, before the controller heard of the loss (or after [`ROT_SET_ASIDE_WAIT_MS`]
    /// without one). `n` and `m` come back first, `o` only after every broker session expired:
    /// an election from the ELR must not take `n`'s empty copy as if it held what it lost
    /// (mutant 21: the set-aside without the data directory's unclean mark).
    pub fn add_rot(
        &mut self,
        rng: &mut ChaCha8Rng,
        gap_ms_mean: u64,
        duration_ms: u64,
        session_ms: u64,
    ) {
        assert!(
            duration_ms > 1 && gap_ms_mean > 0,
            "a safety phase and a rate"
        );
        if self.faults.len() + 4 + usize::from(NODES) > SCHEDULE_FAULTS_MAX {
            return;
        }
        let mut at_ms = rng.gen_range(0..duration_ms / 2);
        let n = node(rng);
        let power_loss = rng.gen_bool(0.5);
        let io_error_permille = rng.gen_range(5..=50);
        let mut push = |at_ms: u64, fault: Fault| self.faults.push(ScheduledFault { at_ms, fault });
        let mut stale = None;
        if power_loss {
            let m = other(rng, n);
            push(at_ms, Fault::Kill { node: m });
            stale = Some(m);
            at_ms += session_ms + 1_000;
        }
        push(at_ms, Fault::Rot { node: n });
        push(
            at_ms,
            Fault::DiskFaults {
                node: n,
                io_error_permille,
                bit_flip_per_million: 0,
            },
        );
        match stale {
            None => {
                let heal_ms = (at_ms + rng.gen_range(300..=gap_ms_mean * 3)).min(duration_ms);
                push(heal_ms, Fault::DiskHeal { node: n });
            }
            Some(m) => {
                push(
                    at_ms + 1,
                    Fault::PowerLossAt {
                        point: CrashPoint::LogSetAside,
                        wait_ms_max: ROT_SET_ASIDE_WAIT_MS,
                        after_ms: rng.gen_range(0..=POWER_LOSS_AFTER_MS_MAX),
                    },
                );
                // The power goes at the latest here; the disk is sound again when the nodes
                // come back.
                let down_ms = at_ms + 1 + ROT_SET_ASIDE_WAIT_MS + POWER_LOSS_AFTER_MS_MAX + 1;
                push(down_ms, Fault::DiskHeal { node: n });
                let o = (1..=NODES)
                    .find(|&x| x != n && x != m)
                    .expect("three nodes");
                push(
                    down_ms + rng.gen_range(1..=gap_ms_mean / 2),
                    Fault::Restart { node: n },
                );
                push(
                    down_ms + rng.gen_range(1..=gap_ms_mean),
                    Fault::Restart { node: m },
                );
                push(
                    down_ms + POWER_LOSS_LAST_RESTART_MS,
                    Fault::Restart { node: o },
                );
            }
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self.validate()
            .expect("a rot episode keeps the schedule valid");
    }

    /// Checks node ids, ordering and size: what a hand-edited JSON file could get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.faults.len() > SCHEDULE_FAULTS_MAX {
            return Err(format!(
                "a schedule holds at most {SCHEDULE_FAULTS_MAX} faults"
            ));
        }
        for pair in self.faults.windows(2) {
            if pair[1].at_ms < pair[0].at_ms {
                return Err(format!(
                    "faults out of order: {} ms after {} ms",
                    pair[1].at_ms, pair[0].at_ms
                ));
            }
        }
        for scheduled in &self.faults {
            let nodes = scheduled.fault.nodes();
            if nodes.iter().any(|n| !(1..=NODES).contains(n)) {
                return Err(format!(
                    "{}: nodes are 1..={NODES}",
                    scheduled.fault.label()
                ));
            }
            if nodes.len() == 2 && nodes[0] == nodes[1] {
                return Err(format!(
                    "{}: a link needs two nodes",
                    scheduled.fault.label()
                ));
            }
        }
        Ok(())
    }

    /// Parses a schedule from JSON (`--schedule FILE.json`).
    pub fn from_json(text: &str) -> Result<FaultSchedule, String> {
        let schedule: FaultSchedule =
            serde_json::from_str(text).map_err(|e| format!("schedule: {e}"))?;
        schedule.validate()?;
        Ok(schedule)
    }

    /// The schedule as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule always serialises")
    }

    /// One line per fault, for `describe` and the shrinker's output.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .faults
            .iter()
            .map(|s| format!("{}ms {}", s.at_ms, s.fault.label()))
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_acknowledging_node_restarts_last_and_only_in_its_episode() {
        let at = |at_ms, fault| ScheduledFault { at_ms, fault };
        let rest = [
            at(10, Fault::Restart { node: 2 }),
            at(15, Fault::Heal),
            at(20, Fault::Restart { node: 3 }),
            at(30, Fault::Restart { node: 1 }),
            at(40, Fault::Restart { node: 2 }),
        ];
        let mut order = RestartOrder::default();
        let note = order.put_last(2, &rest);
        assert_eq!(note, "n2 acknowledged: it restarts last (drawn: n1)");
        let carried: Vec<Fault> = rest.iter().map(|f| order.apply(&f.fault)).collect();
        assert_eq!(
            carried,
            [
                Fault::Restart { node: 1 },
                Fault::Heal,
                Fault::Restart { node: 3 },
                Fault::Restart { node: 2 },
                // The next episode's restart is as drawn.
                Fault::Restart { node: 2 },
            ]
        );
        // Already last: nothing renamed.
        let mut order = RestartOrder::default();
        order.put_last(1, &rest);
        let carried: Vec<Fault> = rest.iter().map(|f| order.apply(&f.fault)).collect();
        let drawn: Vec<Fault> = rest.iter().map(|f| f.fault.clone()).collect();
        assert_eq!(carried, drawn);
    }

    #[test]
    fn generated_schedules_are_valid_and_round_trip() {
        for seed in 0..64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let draw = NemesisDraw::draw(&mut rng);
            let schedule = FaultSchedule::generate(&mut rng, &draw, 20_000);
            assert!(!schedule.faults.is_empty() || draw.gap_ms_mean * 2 >= 20_000);
            let again = FaultSchedule::from_json(&schedule.to_json()).unwrap();
            assert_eq!(again, schedule);
        }
    }

    #[test]
    fn the_clock_family_draws_skewed_clocks_and_only_clock_jumps() {
        let overrides = crate::cluster::Overrides {
            faults: Some(crate::cluster::FaultFamily::Clock),
            ..crate::cluster::Overrides::default()
        };
        for seed in 0..32 {
            let draw = crate::cluster::ClusterDraw::from_seed_with(seed, &overrides);
            assert!(draw.nemesis.clock);
            assert!(draw
                .schedule
                .faults
                .iter()
                .all(|f| matches!(f.fault, Fault::ClockJump { .. })));
            assert!(draw
                .clocks
                .iter()
                .any(|c| c.offset_ms != 0 || c.drift_ppm != 0));
            draw.schedule.validate().unwrap();
        }
        // Without the clock family, clocks stay true in the seeds that do not draw it.
        let kills = crate::cluster::Overrides {
            faults: Some(crate::cluster::FaultFamily::Kills),
            ..crate::cluster::Overrides::default()
        };
        let draw = crate::cluster::ClusterDraw::from_seed_with(1, &kills);
        assert!(!draw.nemesis.clock);
        assert_eq!(draw.clocks, [broker::runtime::NodeClock::default(); 3]);
    }

    #[test]
    fn a_power_loss_restarts_every_node_and_the_last_after_the_sessions_expired() {
        let mut found = false;
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut draw = NemesisDraw::draw(&mut rng);
            draw.only(crate::cluster::FaultFamily::Kills);
            // One episode at a time: the three restarts after the power loss are its own.
            draw.overlapping = false;
            let schedule = FaultSchedule::generate(&mut rng, &draw, 20_000);
            let Some(at) = schedule
                .faults
                .iter()
                .position(|f| matches!(f.fault, Fault::PowerLoss | Fault::PowerLossAt { .. }))
            else {
                continue;
            };
            found = true;
            let restarts: Vec<&ScheduledFault> = schedule.faults[at + 1..]
                .iter()
                .filter(|f| matches!(f.fault, Fault::Restart { .. }))
                .take(3)
                .collect();
            assert_eq!(restarts.len(), 3, "seed {seed}: every node restarts");
            let gap = restarts[2].at_ms - schedule.faults[at].at_ms;
            assert!(
                gap >= POWER_LOSS_LAST_RESTART_MS,
                "seed {seed}: last restart after {gap} ms"
            );
        }
        assert!(found, "some seed of 0..200 draws a power loss");
    }

    #[test]
    fn some_power_losses_wait_for_each_crash_point_and_end_before_the_first_restart() {
        let mut points = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut draw = NemesisDraw::draw(&mut rng);
            draw.only(crate::cluster::FaultFamily::Kills);
            draw.overlapping = false;
            let schedule = FaultSchedule::generate(&mut rng, &draw, 20_000);
            for (i, scheduled) in schedule.faults.iter().enumerate() {
                let Fault::PowerLossAt {
                    point,
                    wait_ms_max,
                    after_ms,
                } = scheduled.fault
                else {
                    continue;
                };
                points.insert(point.site());
                assert!((1..=POWER_LOSS_WAIT_MS_MAX).contains(&wait_ms_max));
                assert!(after_ms <= POWER_LOSS_AFTER_MS_MAX);
                let first_restart = schedule.faults[i + 1..]
                    .iter()
                    .find(|f| matches!(f.fault, Fault::Restart { .. }))
                    .expect("every power loss is followed by restarts");
                assert!(
                    scheduled.at_ms + wait_ms_max + after_ms <= first_restart.at_ms,
                    "seed {seed}: the power goes before the first node comes back"
                );
            }
        }
        let all: std::collections::BTreeSet<&str> =
            CrashPoint::ALL.iter().map(|p| p.site()).collect();
        assert_eq!(points, all, "every crash point is drawn in some seed");
    }

    #[test]
    fn rot_episodes_fail_the_rotted_disk_and_half_lose_power_at_a_set_aside() {
        let (mut rotted, mut with_power_loss) = (0, 0);
        for seed in 0..200 {
            let draw = crate::cluster::ClusterDraw::from_seed(seed);
            let faults = &draw.schedule.faults;
            let Some(rot) = faults
                .iter()
                .position(|f| matches!(f.fault, Fault::Rot { .. }))
            else {
                assert!(
                    !draw.nemesis.rot,
                    "seed {seed}: a drawn rot episode is scheduled"
                );
                continue;
            };
            assert!(
                draw.nemesis.rot,
                "seed {seed}: only drawn rot episodes are scheduled"
            );
            rotted += 1;
            let Fault::Rot { node } = faults[rot].fault else {
                unreachable!("found above")
            };
            let at_ms = faults[rot].at_ms;
            assert!(
                at_ms < draw.safety_ms / 2 + draw.broker_session_timeout_ms + 1_000,
                "seed {seed}: in the first half, or once a killed node was fenced"
            );
            assert!(
                faults.iter().any(|f| f.at_ms == at_ms
                    && matches!(f.fault, Fault::DiskFaults { node: n, .. } if n == node)),
                "seed {seed}: the rotted disk fails too, so repairs read the whole log"
            );
            let later = &faults[rot..];
            let heals: Vec<u64> = later
                .iter()
                .filter(|f| f.fault == Fault::DiskHeal { node })
                .map(|f| f.at_ms)
                .collect();
            assert!(!heals.is_empty(), "seed {seed}: the disk heals");
            let Some(loss) = later.iter().find(|f| {
                matches!(
                    f.fault,
                    Fault::PowerLossAt {
                        point: CrashPoint::LogSetAside,
                        ..
                    }
                )
            }) else {
                continue;
            };
            with_power_loss += 1;
            let fenced_ms = at_ms - draw.broker_session_timeout_ms - 1_000;
            assert!(
                faults.iter().any(|f| f.at_ms == fenced_ms
                    && matches!(f.fault, Fault::Kill { node: m } if m != node)),
                "seed {seed}: another node is down until fenced before the rot"
            );
            let Fault::PowerLossAt {
                wait_ms_max,
                after_ms,
                ..
            } = loss.fault
            else {
                unreachable!("matched above")
            };
            let gone_ms = loss.at_ms + wait_ms_max + after_ms;
            assert!(
                heals.iter().any(|&heal_ms| heal_ms > gone_ms),
                "seed {seed}: the episode's disk heals once the power is gone"
            );
            let restarted: std::collections::BTreeSet<u8> = later
                .iter()
                .filter_map(|f| match f.fault {
                    Fault::Restart { node } if f.at_ms > gone_ms => Some(node),
                    _ => None,
                })
                .collect();
            assert_eq!(
                restarted.len(),
                usize::from(NODES),
                "seed {seed}: every node comes back after the power loss"
            );
        }
        assert!(
            (20..=60).contains(&rotted) && with_power_loss > 0 && with_power_loss < rotted,
            "a fifth of the seeds rot ({rotted} of 200), some with a power loss ({with_power_loss})"
        );
    }

    #[test]
    fn the_wipe_family_wipes_and_loses_the_in_sync_copies_once() {
        let overrides = crate::cluster::Overrides {
            faults: Some(crate::cluster::FaultFamily::Wipe),
            ..crate::cluster::Overrides::default()
        };
        let mut both_destroyed = 0;
        for seed in 0..32 {
            let draw = crate::cluster::ClusterDraw::from_seed_with(seed, &overrides);
            let faults = &draw.schedule.faults;
            let kills: Vec<u8> = faults
                .iter()
                .filter_map(|f| match f.fault {
                    Fault::Kill { node } => Some(node),
                    _ => None,
                })
                .collect();
            let destroyed: Vec<(u64, u8)> = faults
                .iter()
                .filter_map(|f| match f.fault {
                    Fault::LoseDisk { node } => Some((f.at_ms, node)),
                    _ => None,
                })
                .collect();
            assert!(
                (1..=2).contains(&kills.len()) && kills.len() + destroyed.len() == 3,
                "seed {seed}: one stale node and two in-sync ones lost: {faults:?}"
            );
            let stale = kills[0];
            let killed_ms = faults
                .iter()
                .find(|f| f.fault == Fault::Kill { node: stale })
                .map(|f| f.at_ms)
                .expect("the stale node is killed");
            let (lost_ms, _) = destroyed[0];
            assert!(
                lost_ms >= killed_ms + draw.broker_session_timeout_ms + 1_000
                    && lost_ms < draw.safety_ms,
                "seed {seed}: the in-sync copies go once the stale node is fenced, in the safety phase"
            );
            assert!(
                destroyed.iter().all(|&(_, n)| n != stale),
                "seed {seed}: the stale node keeps its disk"
            );
            if destroyed.len() == 2 {
                both_destroyed += 1;
            }
            // Every other fault is a wipe and the restart that ends it, or a restart of the
            // episode; wipes stay out of the episode's window.
            for f in faults {
                assert!(
                    matches!(
                        f.fault,
                        Fault::Wipe { .. }
                            | Fault::Restart { .. }
                            | Fault::Kill { .. }
                            | Fault::LoseDisk { .. }
                    ),
                    "seed {seed}: {f:?}"
                );
                if let Fault::Wipe { .. } = f.fault {
                    assert!(
                        f.at_ms + 1_000 < killed_ms || f.at_ms > lost_ms + 1_000,
                        "seed {seed}: a wipe during the episode"
                    );
                }
            }
        }
        assert!(
            (16..32).contains(&both_destroyed),
            "about three in four episodes destroy both in-sync copies: {both_destroyed}"
        );
    }

    #[test]
    fn a_few_default_seeds_open_with_an_isr_loss_or_an_offline_elr_member() {
        let (mut isr_loss, mut offline_elr) = (0, 0);
        for seed in 0..400 {
            let draw = crate::cluster::ClusterDraw::from_seed(seed);
            let faults = &draw.schedule.faults;
            assert!(!(draw.isr_loss_opening && draw.offline_elr_opening));
            if draw.isr_loss_opening {
                isr_loss += 1;
                assert!(draw.clients.group_members.is_none(), "seed {seed}");
                assert!(matches!(faults[0].fault, Fault::Kill { .. }), "seed {seed}");
                assert!(faults
                    .iter()
                    .any(|f| matches!(f.fault, Fault::LoseDisk { .. })));
            }
            if draw.offline_elr_opening {
                offline_elr += 1;
                assert_eq!(draw.shape, crate::cluster::Shape::Split, "seed {seed}");
                let kinds: Vec<&Fault> = faults.iter().take(6).map(|f| &f.fault).collect();
                let [Fault::Kill { node: z }, Fault::DiskFaults { node: x, .. }, Fault::Kill { node: y }, Fault::Restart { node: y2 }, Fault::DiskHeal { node: x2 }, Fault::Restart { node: z2 }] =
                    kinds[..]
                else {
                    panic!("seed {seed}: {kinds:?}");
                };
                assert!(z != x && x != y && y != z && y == y2 && x == x2 && z == z2);
                let fenced = draw.broker_session_timeout_ms + 1_000;
                assert!(faults[1].at_ms >= faults[0].at_ms + fenced);
                assert!(faults[3].at_ms >= faults[2].at_ms + fenced);
                assert!(faults[5].at_ms < draw.safety_ms);
                // Nothing else strikes until a second after the episode.
                assert!(faults[6..]
                    .iter()
                    .all(|f| f.at_ms > faults[5].at_ms + 1_000));
            }
            draw.schedule.validate().unwrap();
        }
        assert!(
            (5..=40).contains(&isr_loss),
            "isr loss openings: {isr_loss}"
        );
        assert!(
            (5..=60).contains(&offline_elr),
            "offline ELR openings: {offline_elr}"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        let bad = r#"{"faults":[{"at_ms":5,"fault":{"kind":"kill","node":4}}]}"#;
        assert!(FaultSchedule::from_json(bad).unwrap_err().contains("nodes"));
        let unordered = r#"{"faults":[{"at_ms":5,"fault":{"kind":"heal"}},{"at_ms":1,"fault":{"kind":"heal"}}]}"#;
        assert!(FaultSchedule::from_json(unordered)
            .unwrap_err()
            .contains("order"));
        let self_link = r#"{"faults":[{"at_ms":5,"fault":{"kind":"partition","a":2,"b":2}}]}"#;
        assert!(FaultSchedule::from_json(self_link)
            .unwrap_err()
            .contains("two nodes"));
    }
}
