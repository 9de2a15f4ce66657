//! The nemesis as data: a [`FaultSchedule`] is a list of `(at_ms, Fault)` drawn from the seed
//! (or read from a JSON file), so a failing run can be replayed, printed and shrunk fault by
//! fault. Every fault is meaningful on its own: applying any subset of a schedule is a valid run
//! (a `Resume` of a node nobody paused is a no-op), which is what delta debugging needs.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Nodes of the simulated cluster: broker ids 1..=NODES.
pub const NODES: u8 = 3;
/// Most faults one schedule may hold (a limit, so a hand-written file cannot stall a run).
pub const SCHEDULE_FAULTS_MAX: usize = 512;

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
    /// Clog every link of the node: it runs but hears and says nothing (a long GC pause).
    Pause {
        /// The broker id.
        node: u8,
    },
    /// Unclog the node's links.
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
    /// An attacker without the cluster secret sends forged frames to the node's controller
    /// and Kafka listeners (issue 15's attacks); every one must be refused.
    Forge {
        /// The broker id (in the split shape, its controller is the one attacked).
        node: u8,
    },
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
            | Fault::Forge { node } => vec![*node],
            Fault::Partition { a, b } => vec![*a, *b],
            Fault::OneWay { from, to } => vec![*from, *to],
            Fault::Heal | Fault::Slow { .. } => Vec::new(),
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
            Fault::DiskFaults {
                node,
                io_error_permille,
                bit_flip_per_million,
            } => format!(
                "disk faults n{node} io {io_error_permille}‰ flips {bit_flip_per_million}/M"
            ),
            Fault::DiskHeal { node } => format!("disk heal n{node}"),
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

/// Which fault kinds a seed enables and how often faults strike: the swarm part of the draw.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisDraw {
    /// Process kills (and restarts).
    pub kills: bool,
    /// Node pauses (all links clogged).
    pub pauses: bool,
    /// Partitions between two nodes, one-way drops and isolations.
    pub partitions: bool,
    /// Disk I/O errors and bit flips.
    pub disk: bool,
    /// Mean gap between two fault episodes, simulated ms.
    pub gap_ms_mean: u64,
    /// Whether an episode may begin before the previous one ended (two faults at once: what
    /// it takes to empty an ISR of three).
    pub overlapping: bool,
    /// Forged frames from a host without the cluster secret, at a few moments of the run.
    pub forgery: bool,
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
            // Drawn from a stream of its own by the caller ([`FaultSchedule::add_forgeries`]).
            forgery: false,
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
        self.forgery = false;
    }

    /// The enabled kinds, for `describe`.
    pub fn kinds(&self) -> String {
        let mut kinds: Vec<&str> = [
            (self.kills, "kill"),
            (self.pauses, "pause"),
            (self.partitions, "partition"),
            (self.disk, "disk"),
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
        assert!(!kinds.is_empty(), "the draw enables at least one kind");
        let mut faults = Vec::new();
        let mut at_ms = rng.gen_range(0..=draw.gap_ms_mean * 2);
        while at_ms < duration_ms && faults.len() + 3 <= SCHEDULE_FAULTS_MAX {
            let length_ms = rng.gen_range(300..=draw.gap_ms_mean * 3);
            let end_ms = (at_ms + length_ms).min(duration_ms);
            let n = node(rng);
            let kind = kinds[rng.gen_range(0..kinds.len())];
            if kind == 0 && rng.gen_bool(0.15) {
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
    use rand::SeedableRng;

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
