//! What the cluster's report draws, in the report's terms: the nemesis's faults as spans and
//! moments in the nodes' lanes, the history's operations as marks, the checker's anomalies as
//! findings (a forbidden one is a safety violation; one the settings allow is shown as such).

use super::nemesis::{Fault, NODES};
use super::ClusterDraw;
use crate::report::{Finding, FindingKind, OpMark, OpOutcome, OpShape, Row, SpanKind, Timeline};
use broker::runtime::NodeClock;
use jepsen::history::{History, MicroOp, Op, OpFn, OpType};
use jepsen::queue::QueueReport;

/// The lane of faults that strike the whole cluster (a slow network, a power loss).
pub const CLUSTER_LANE: &str = "all nodes";
/// Most cases of one anomaly class shown as findings (the class's count is in each title).
pub const CASES_PER_CLASS_SHOWN: usize = 4;
/// Most sends or reads an operation's text names.
const TEXT_ITEMS_MAX: usize = 3;

/// The lane of broker `node`.
pub fn lane(node: u8) -> String {
    assert!((1..=NODES).contains(&node), "broker ids are 1..=3");
    format!("n{node}")
}

/// A clock's error in words: "clock +56.9 min, -120 ppm".
fn clock_label(clock: NodeClock) -> String {
    let offset = clock.offset_ms;
    let magnitude = offset.unsigned_abs();
    let sign = if offset < 0 { "-" } else { "+" };
    let offset = match magnitude {
        0..=999 => format!("{sign}{magnitude} ms"),
        1_000..=59_999 => format!("{sign}{:.1} s", magnitude as f64 / 1_000.0),
        _ => format!("{sign}{:.1} min", magnitude as f64 / 60_000.0),
    };
    format!("clock {offset}, {:+} ppm", clock.drift_ppm)
}

/// Turns the nemesis's faults into the nodes' lanes. It knows each node's clock, to draw its
/// offset after a jump.
#[derive(Debug, Clone, Default)]
pub struct FaultLanes {
    /// Each broker's clock error, by broker id - 1.
    clocks: Vec<NodeClock>,
}

impl FaultLanes {
    /// The lanes at the start of the workload: one per broker, and each skewed clock.
    pub fn start(timeline: &mut Timeline, at_ms: u64, clocks: &[NodeClock]) -> FaultLanes {
        assert_eq!(clocks.len(), usize::from(NODES), "a clock per broker");
        for node in 1..=NODES {
            timeline.lane(&lane(node));
            let clock = clocks[usize::from(node - 1)];
            if clock != NodeClock::default() {
                timeline.begin(&lane(node), SpanKind::ClockSkew, at_ms, &clock_label(clock));
            }
        }
        assert_eq!(timeline.lanes.len(), usize::from(NODES));
        FaultLanes {
            clocks: clocks.to_vec(),
        }
    }

    /// Draws `fault`, applied at `at_ms`.
    pub fn apply(&mut self, timeline: &mut Timeline, at_ms: u64, fault: &Fault) {
        match *fault {
            Fault::Kill { node } => timeline.begin(&lane(node), SpanKind::Killed, at_ms, "killed"),
            Fault::Restart { node } => {
                let lane = lane(node);
                let down = timeline.is_on(&lane, SpanKind::Killed)
                    || timeline.is_on(&lane, SpanKind::Wiped);
                if !down {
                    timeline.moment(&lane, Row::Process, at_ms, "crashed and restarted");
                }
                for kind in [SpanKind::Killed, SpanKind::Wiped, SpanKind::Frozen] {
                    timeline.end(&lane, kind, at_ms);
                }
            }
            Fault::Pause { node } => timeline.begin(&lane(node), SpanKind::Frozen, at_ms, "frozen"),
            Fault::Resume { node } => timeline.end(&lane(node), SpanKind::Frozen, at_ms),
            Fault::Partition { a, b } => {
                let cut = |from: u8| format!("cut from n{from}");
                timeline.begin(&lane(a), SpanKind::Partitioned, at_ms, &cut(b));
                timeline.begin(&lane(b), SpanKind::Partitioned, at_ms, &cut(a));
            }
            Fault::OneWay { from, to } => {
                let label = format!("n{from}→n{to} dropped");
                timeline.begin(&lane(from), SpanKind::OneWay, at_ms, &label);
                timeline.begin(&lane(to), SpanKind::OneWay, at_ms, &label);
            }
            Fault::Isolate { node } => {
                timeline.begin(&lane(node), SpanKind::Isolated, at_ms, "isolated")
            }
            Fault::Slow { latency_ms } => {
                let label = format!("slow: messages take up to {latency_ms} ms");
                timeline.begin(CLUSTER_LANE, SpanKind::Slow, at_ms, &label);
            }
            Fault::Heal => timeline.end_where(at_ms, |kind| kind.row() == Row::Network),
            Fault::PowerLoss | Fault::PowerLossAt { .. } => {
                timeline.moment(CLUSTER_LANE, Row::Process, at_ms, &fault.label());
                for node in 1..=NODES {
                    timeline.begin(&lane(node), SpanKind::Killed, at_ms, "power loss");
                }
            }
            Fault::DiskFaults {
                node,
                io_error_permille,
                bit_flip_per_million,
            } => {
                let mut label = format!("I/O errors {io_error_permille}‰");
                if bit_flip_per_million > 0 {
                    label.push_str(&format!(", bit flips {bit_flip_per_million}/M"));
                }
                timeline.end(&lane(node), SpanKind::DiskFaults, at_ms);
                timeline.begin(&lane(node), SpanKind::DiskFaults, at_ms, &label);
            }
            Fault::DiskHeal { node } => timeline.end(&lane(node), SpanKind::DiskFaults, at_ms),
            Fault::Rot { node } => {
                timeline.moment(&lane(node), Row::Disk, at_ms, "flushed data rots at rest")
            }
            Fault::Wipe { node } => {
                timeline.end(&lane(node), SpanKind::Killed, at_ms);
                timeline.begin(
                    &lane(node),
                    SpanKind::Wiped,
                    at_ms,
                    "wiped: down, disk empty",
                );
            }
            Fault::LoseDisk { node } => {
                timeline.end(&lane(node), SpanKind::Killed, at_ms);
                timeline.begin(
                    &lane(node),
                    SpanKind::Wiped,
                    at_ms,
                    "data disk destroyed: down, logs gone",
                );
            }
            Fault::ClockJump { node, delta_ms } => {
                let i = usize::from(node - 1);
                self.clocks[i].offset_ms = self.clocks[i].offset_ms.saturating_add(delta_ms);
                let jump = format!("clock jumps {delta_ms:+} ms");
                timeline.moment(&lane(node), Row::Clock, at_ms, &jump);
                timeline.end(&lane(node), SpanKind::ClockSkew, at_ms);
                let label = clock_label(self.clocks[i]);
                timeline.begin(&lane(node), SpanKind::ClockSkew, at_ms, &label);
            }
            Fault::Forge { node } => {
                timeline.moment(&lane(node), Row::Network, at_ms, "forged frames (refused)")
            }
        }
    }

    /// Ends every fault but the clocks' (skew is lived with): the network heals, disks stop
    /// failing, frozen nodes resume and dead ones restart.
    pub fn heal(&self, timeline: &mut Timeline, at_ms: u64) {
        timeline.end_where(at_ms, |kind| kind != SpanKind::ClockSkew);
        assert!(timeline
            .spans
            .iter()
            .all(|s| s.to_ms.is_some() || s.kind == SpanKind::ClockSkew));
    }
}

/// The text of a send: its first records, with their offsets once acknowledged.
fn sends_text(history: &History, invoke: &Op, done: Option<&Op>) -> String {
    let acknowledged = done.filter(|d| d.op_type == OpType::Ok).unwrap_or(invoke);
    let sends: Vec<String> = acknowledged
        .mops()
        .iter()
        .filter_map(|mop| match mop {
            MicroOp::Send { key, value, offset } => Some(match offset {
                Some(offset) => format!(
                    "{} value {value} at offset {offset}",
                    history.key_name(*key)
                ),
                None => format!("{} value {value}", history.key_name(*key)),
            }),
            _ => None,
        })
        .collect();
    listed("send", &sends)
}

/// `verb` and its first [`TEXT_ITEMS_MAX`] items, saying how many more there were.
fn listed(verb: &str, items: &[String]) -> String {
    let shown = items.len().min(TEXT_ITEMS_MAX);
    let mut text = format!("{verb} {}", items[..shown].join(", "));
    if items.len() > shown {
        text.push_str(&format!(" and {} more", items.len() - shown));
    }
    assert!(text.starts_with(verb));
    text
}

/// The text of a poll: how many records it read, from which partitions.
fn poll_text(history: &History, done: Option<&Op>) -> String {
    let reads: Vec<String> = done
        .filter(|d| d.op_type == OpType::Ok)
        .map(|d| d.mops())
        .unwrap_or(&[])
        .iter()
        .filter_map(|mop| match mop {
            MicroOp::Poll { reads: Some(reads) } => Some(reads),
            _ => None,
        })
        .flatten()
        .filter(|(_, records)| !records.is_empty())
        .map(|(key, records)| {
            let first = records.first().map_or(0, |r| r.0);
            let last = records.last().map_or(0, |r| r.0);
            format!("{} offsets {first}..={last}", history.key_name(*key))
        })
        .collect();
    if reads.is_empty() {
        return "poll".to_string();
    }
    listed("poll", &reads)
}

/// Every operation of the history as a mark: invoked when, took how long, ended how.
pub fn op_marks(history: &History) -> Vec<OpMark> {
    let ops = history.ops();
    let mut marks = Vec::with_capacity(ops.len() / 2 + 1);
    for (position, invoke) in ops.iter().enumerate() {
        if invoke.op_type != OpType::Invoke {
            continue;
        }
        let done = history.partner(position).map(|c| &ops[c]);
        let outcome = match done.map(|d| d.op_type) {
            Some(OpType::Ok) => OpOutcome::Ok,
            Some(OpType::Fail) => OpOutcome::Failed,
            Some(OpType::Info) => OpOutcome::Indeterminate,
            Some(OpType::Invoke) | None => OpOutcome::Open,
        };
        let (shape, text) = match invoke.f {
            OpFn::Send => (OpShape::Send, sends_text(history, invoke, done)),
            OpFn::Poll => (OpShape::Poll, poll_text(history, done)),
            other => (OpShape::Other, other.name().to_string()),
        };
        marks.push(OpMark {
            index: done.map_or(invoke.index, |d| d.index),
            process: invoke.process,
            shape,
            outcome,
            invoked_us: invoke.time / 1_000,
            latency_us: done.map(|d| d.time.saturating_sub(invoke.time) / 1_000),
            text,
        });
    }
    assert!(marks.len() <= ops.len());
    marks
}

/// The checker's anomalies as findings: forbidden by the draw's settings, a safety violation;
/// otherwise allowed. At most [`CASES_PER_CLASS_SHOWN`] cases of each class.
pub fn anomaly_findings(report: &QueueReport, draw: &ClusterDraw) -> Vec<Finding> {
    let forbidden = draw.forbidden_in(&report.bad_classes());
    let mut findings = Vec::new();
    for (class, cases) in &report.anomalies {
        let kind = if forbidden.contains(class) {
            FindingKind::Safety
        } else {
            FindingKind::Allowed
        };
        let shown = cases.cases.len().min(CASES_PER_CLASS_SHOWN);
        for (number, case) in cases.cases.iter().take(shown).enumerate() {
            findings.push(Finding {
                kind,
                title: format!("{} (case {} of {})", class.name(), number + 1, cases.count),
                key: case.key.clone(),
                values: case.values.clone(),
                ops: case.ops.clone(),
                at_ms: None,
                detail: format!("{}: {}", class.meaning(), case.detail),
            });
        }
    }
    assert!(findings.len() <= report.anomalies.len() * CASES_PER_CLASS_SHOWN);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use jepsen::history::{HistoryRecorder, OpValue};
    use jepsen::queue::AnomalyClass;

    #[test]
    fn faults_become_spans_and_moments_in_the_nodes_lanes() {
        let mut timeline = Timeline::default();
        let mut clocks = [NodeClock::default(); 3];
        clocks[2].offset_ms = 90_000;
        let mut lanes = FaultLanes::start(&mut timeline, 0, &clocks);
        lanes.apply(&mut timeline, 100, &Fault::Partition { a: 1, b: 2 });
        lanes.apply(&mut timeline, 200, &Fault::Kill { node: 3 });
        lanes.apply(&mut timeline, 300, &Fault::Restart { node: 1 });
        lanes.apply(&mut timeline, 400, &Fault::Heal);
        lanes.apply(&mut timeline, 500, &Fault::Restart { node: 3 });
        lanes.apply(
            &mut timeline,
            600,
            &Fault::ClockJump {
                node: 3,
                delta_ms: -30_000,
            },
        );
        lanes.apply(&mut timeline, 700, &Fault::Pause { node: 2 });
        lanes.heal(&mut timeline, 800);
        let spans: Vec<(&str, SpanKind, u64, Option<u64>, &str)> = timeline
            .spans
            .iter()
            .map(|s| {
                (
                    s.lane.as_str(),
                    s.kind,
                    s.from_ms,
                    s.to_ms,
                    s.label.as_str(),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                (
                    "n3",
                    SpanKind::ClockSkew,
                    0,
                    Some(600),
                    "clock +1.5 min, +0 ppm"
                ),
                ("n1", SpanKind::Partitioned, 100, Some(400), "cut from n2"),
                ("n2", SpanKind::Partitioned, 100, Some(400), "cut from n1"),
                ("n3", SpanKind::Killed, 200, Some(500), "killed"),
                (
                    "n3",
                    SpanKind::ClockSkew,
                    600,
                    None,
                    "clock +1.0 min, +0 ppm"
                ),
                ("n2", SpanKind::Frozen, 700, Some(800), "frozen"),
            ]
        );
        let moments: Vec<(&str, u64, &str)> = timeline
            .moments
            .iter()
            .map(|m| (m.lane.as_str(), m.at_ms, m.label.as_str()))
            .collect();
        assert_eq!(
            moments,
            [
                ("n1", 300, "crashed and restarted"),
                ("n3", 600, "clock jumps -30000 ms")
            ]
        );
    }

    #[test]
    fn a_power_loss_kills_every_node_until_each_restarts() {
        let mut timeline = Timeline::default();
        let mut lanes = FaultLanes::start(&mut timeline, 0, &[NodeClock::default(); 3]);
        lanes.apply(&mut timeline, 100, &Fault::PowerLoss);
        lanes.apply(&mut timeline, 300, &Fault::Restart { node: 2 });
        assert_eq!(timeline.moments.len(), 1);
        assert_eq!(timeline.moments[0].lane, CLUSTER_LANE);
        assert_eq!(timeline.moments[0].label, "power loss of every node");
        assert!(!timeline.is_on("n2", SpanKind::Killed), "n2 is back");
        assert!(timeline.is_on("n1", SpanKind::Killed) && timeline.is_on("n3", SpanKind::Killed));
        lanes.heal(&mut timeline, 900);
        let ends: Vec<Option<u64>> = timeline.spans.iter().map(|s| s.to_ms).collect();
        assert_eq!(ends, [Some(900), Some(300), Some(900)]);
    }

    #[test]
    fn operations_carry_their_outcome_and_latency() {
        let mut recorder = HistoryRecorder::new();
        let key = recorder.key("t-1");
        let send = |offset| {
            OpValue::Mops(vec![MicroOp::Send {
                key,
                value: 7,
                offset,
            }])
        };
        recorder
            .invoke(1, 1_000_000, OpFn::Send, send(None))
            .expect("idle");
        recorder
            .invoke(2, 2_000_000, OpFn::Send, send(None))
            .expect("idle");
        recorder
            .complete(1, 5_000_000, OpType::Ok, send(Some(57)))
            .expect("invoked");
        recorder
            .complete(2, 9_000_000, OpType::Info, OpValue::Mops(vec![]))
            .expect("invoked");
        recorder
            .invoke(
                3,
                9_500_000,
                OpFn::Poll,
                OpValue::Mops(vec![MicroOp::Poll { reads: None }]),
            )
            .expect("idle");
        let marks = op_marks(recorder.history());
        assert_eq!(marks.len(), 3);
        assert_eq!(marks[0].index, 2, "cited by its completion's index");
        assert_eq!(marks[0].outcome, OpOutcome::Ok);
        assert_eq!(marks[0].latency_us, Some(4_000));
        assert_eq!(marks[0].text, "send t-1 value 7 at offset 57");
        assert_eq!(marks[1].outcome, OpOutcome::Indeterminate);
        assert_eq!(marks[2].outcome, OpOutcome::Open);
        assert_eq!(
            marks[2].index, 4,
            "never completed: cited by its invocation"
        );
        assert_eq!(marks[2].latency_us, None);
    }

    /// A lost acknowledged write is a safety violation under the strong settings, and shown
    /// as allowed where the settings allow losing it (acks=1).
    #[test]
    fn a_lost_acknowledged_write_is_a_safety_violation_unless_the_settings_allow_it() {
        use jepsen::queue::{Anomaly, ClassReport};
        let case = |value: i64| Anomaly {
            key: Some("t-1".into()),
            values: vec![value],
            ops: vec![12, 40],
            detail: format!("value {value} was never read"),
        };
        let mut report = QueueReport::default();
        report.anomalies.insert(
            AnomalyClass::LostWrite,
            ClassReport {
                count: 9,
                allowed: false,
                cases: (0..9).map(case).collect(),
            },
        );
        let strong = ClusterDraw::from_seed(1);
        assert!(strong.strong());
        let findings = anomaly_findings(&report, &strong);
        assert_eq!(
            findings.len(),
            CASES_PER_CLASS_SHOWN,
            "a few cases of a class"
        );
        assert!(findings.iter().all(|f| f.kind == FindingKind::Safety));
        assert_eq!(findings[0].title, "lost-write (case 1 of 9)");
        assert_eq!(findings[0].ops, [12, 40]);
        assert!(findings[0]
            .detail
            .starts_with("an acknowledged send below the highest offset some poll read"));
        let overrides = super::super::Overrides {
            acks: Some(1),
            ..super::super::Overrides::default()
        };
        let weak = ClusterDraw::from_seed_with(1, &overrides);
        let findings = anomaly_findings(&report, &weak);
        assert!(findings.iter().all(|f| f.kind == FindingKind::Allowed));
    }
}
