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

pub mod nemesis;
pub mod record;
pub mod shrink;
pub mod workload;
pub mod world;

use crate::runner::{Scenario, SeedRun};
use jepsen::queue::{self, AnomalyClass, QueueOptions};
use nemesis::{FaultSchedule, NemesisDraw};
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

/// The seed-drawn shape of one cluster run: printed beside the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDraw {
    /// Producer acks: -1 (all, with idempotence) or 1 (leader only).
    pub acks: i16,
    /// The topic's `min.insync.replicas`.
    pub min_isr: i32,
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
    /// Which fault kinds are on, and how often.
    pub nemesis: NemesisDraw,
    /// The faults themselves.
    pub schedule: FaultSchedule,
}

impl ClusterDraw {
    /// Draws the shape from the seed (its own stream: the run's choices do not shift it).
    pub fn from_seed(seed: u64) -> ClusterDraw {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc1a5_7e00_0000_0005);
        let weak = rng.gen_bool(0.25);
        let (acks, min_isr) = if weak {
            if rng.gen_bool(0.5) {
                (1, 2)
            } else {
                (-1, 1)
            }
        } else {
            (-1, 2)
        };
        let safety_ms = rng.gen_range(10_000..=25_000);
        let nemesis = NemesisDraw::draw(&mut rng);
        let schedule = FaultSchedule::generate(&mut rng, &nemesis, safety_ms);
        ClusterDraw {
            acks,
            min_isr,
            producers: rng.gen_range(1..=3),
            safety_ms,
            replica_lag_time_max_ms: [2_000, 5_000, 10_000][rng.gen_range(0..3)],
            broker_session_timeout_ms: [2_000, 4_000, 8_000][rng.gen_range(0..3)],
            controller_tick_ms: [50, 100][rng.gen_range(0..2)],
            delivery_timeout_ms: [5_000, 15_000][rng.gen_range(0..2)],
            nemesis,
            schedule,
        }
    }

    /// Whether the settings promise no loss (acks=all, min ISR 2).
    pub fn strong(&self) -> bool {
        self.acks == -1 && self.min_isr >= 2
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
        }
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
        let mut draw = ClusterDraw::from_seed(seed);
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
        let sends_max = self.steps.unwrap_or(SENDS_PER_PRODUCER_DEFAULT);
        let outcome = world::run(seed, draw, self.options(), sends_max);
        let mut run = SeedRun {
            trace: outcome.trace,
            violation: outcome.violation,
            steps: outcome.completions,
            simulated_ms: outcome.simulated_ms,
            timeline: outcome.timeline,
        };
        // Both verdicts: a liveness failure often comes with the anomalies that explain it.
        let checked = judge(&outcome.history, draw.strong());
        run.violation = match (run.violation.take(), checked) {
            (Some(liveness), Some(anomalies)) => Some(format!("{liveness}; {anomalies}")),
            (liveness, anomalies) => liveness.or(anomalies),
        };
        if let Some(violation) = &run.violation {
            run.trace.record(format!("VIOLATION {violation}"));
        }
        run
    }
}

/// Runs the queue checker; returns the violation the settings make of its findings.
pub fn judge(history: &jepsen::history::History, strong: bool) -> Option<String> {
    let report = queue::check(history, &QueueOptions::default());
    let bad: Vec<AnomalyClass> = report
        .bad_classes()
        .into_iter()
        .filter(|class| strong || WEAK_FORBIDDEN.contains(class))
        .collect();
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
            "acks {}, min ISR {} ({}), {} producers, safety {} ms, lag {} ms, session {} ms, \
             tick {} ms, faults {} every ~{} ms: {} faults [{}]",
            if d.acks == -1 { "all" } else { "1" },
            d.min_isr,
            if d.strong() {
                "strong"
            } else {
                "weak: loss allowed"
            },
            d.producers,
            d.safety_ms,
            d.replica_lag_time_max_ms,
            d.broker_session_timeout_ms,
            d.controller_tick_ms,
            d.nemesis.kinds(),
            d.nemesis.gap_ms_mean,
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
        args
    }
}
