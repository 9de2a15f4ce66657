//! What a cluster run records as it goes: the Jepsen history of client operations, the trace
//! (ops, faults, leadership changes, each stamped with simulated time) and the report's
//! timeline (fault spans, each partition's leader and ISR, phases, findings of the checks).
//! One [`Recorder`] per run, shared by the workload tasks and the nemesis; madsim runs every task
//! on one thread, so a plain mutex is never contended.

use super::nemesis::Fault;
use super::timeline::{lane, FaultLanes};
use crate::report::{Finding, FindingKind, Row, Timeline};
use crate::trace::Trace;
use broker::runtime::NodeClock;
use jepsen::history::{HistoryRecorder, KeyId, MicroOp, OpFn, OpType, OpValue};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// The run's records.
#[derive(Debug)]
pub struct Recorder {
    /// When the workload started: history and trace times are relative to it.
    start: Instant,
    /// The Jepsen history of client operations.
    pub history: HistoryRecorder,
    /// Ops, faults and observations, for the determinism check and for reading a failure.
    pub trace: Trace,
    /// Faults, partitions, phases and findings for the HTML report (the operations join it
    /// from the history once the run is checked).
    pub timeline: Timeline,
    /// Turns faults into the timeline's spans.
    lanes: FaultLanes,
    /// Each partition's leader at the last observation (0: none), to trace changes only.
    leaders: BTreeMap<String, i64>,
    /// Completed client operations.
    pub completions: u64,
    /// The ISR size of each partition at the last observation.
    isr_sizes: BTreeMap<String, usize>,
    /// Per partition: the ISR observed with the highest leader epoch (the latest of equals).
    /// A broker cut off from the controller answers metadata from its own, older image; a
    /// higher leader epoch is always the newer word.
    newest_isr: BTreeMap<String, (i32, Vec<i32>)>,
    /// When the last observation was made (ms on this recorder's clock).
    observed_ms: u64,
    /// Per key (partition): the highest log start offset a consumer was told of. Below it,
    /// retention may have deleted records before anyone read them.
    pub log_starts: BTreeMap<String, u64>,
    /// Violations the workload's own checks found during the run (the stale-request
    /// nemesis's answers), first first.
    pub workload_violations: Vec<String>,
    /// Stale copies a leader appended again: (key, the last offset its producer had
    /// acknowledged on that partition, the copy's values). See [`Reappended`].
    pub reappended: Vec<Reappended>,
}

/// How long after healing the report still draws time in full (recovery shows there; the
/// rest of a long liveness phase is compressed).
const FOCUS_AFTER_HEALING_MS: u64 = 5_000;

/// The recorder shared by the run's tasks.
pub type Shared = Arc<Mutex<Recorder>>;

/// Locks the shared recorder (a panic elsewhere already ended the run, so poisoning is moot).
pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Shared {
        Arc::new(Mutex::new(Recorder {
            start: Instant::now(),
            history: HistoryRecorder::new(),
            trace: Trace::default(),
            timeline: Timeline::default(),
            lanes: FaultLanes::default(),
            leaders: BTreeMap::new(),
            completions: 0,
            isr_sizes: BTreeMap::new(),
            newest_isr: BTreeMap::new(),
            observed_ms: 0,
            log_starts: BTreeMap::new(),
            workload_violations: Vec::new(),
            reappended: Vec::new(),
        }))
    }

    /// Restarts the clock (when the workload begins, after the cluster came up).
    pub fn restart_clock(&mut self) {
        self.start = Instant::now();
    }

    /// Simulated ms since the clock started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records an event in the trace, stamped with simulated time.
    pub fn event(&mut self, text: &str) {
        let ms = self.elapsed_ms();
        self.trace
            .record(format!("{:>4}.{:03}s {text}", ms / 1000, ms % 1000));
    }

    /// The workload begins: the clock restarts, the timeline gets a lane per broker (with its
    /// clock's error, if skewed) and the safety phase begins.
    pub fn workload_begins(&mut self, clocks: &[NodeClock]) {
        self.restart_clock();
        self.lanes = FaultLanes::start(&mut self.timeline, 0, clocks);
        self.timeline
            .phase(0, "workload under faults (safety phase)");
    }

    /// Marks where a phase of the run begins.
    pub fn phase(&mut self, label: &str) {
        let ms = self.elapsed_ms();
        self.timeline.phase(ms, label);
    }

    /// Records a fault of the schedule as it is applied: a trace event and its span or moment
    /// in the nodes' lanes.
    pub fn fault(&mut self, fault: &Fault) {
        self.event(&format!("FAULT {}", fault.label()));
        let ms = self.elapsed_ms();
        self.lanes.apply(&mut self.timeline, ms, fault);
    }

    /// Records something done to broker `node` outside the schedule (a BUGGIFY disk fault, a
    /// restart at healing): a trace event and a moment in its lane.
    pub fn node_fault(&mut self, node: u8, row: Row, label: &str) {
        self.event(&format!("FAULT {label}"));
        let ms = self.elapsed_ms();
        self.timeline.moment(&lane(node), row, ms, label);
    }

    /// The faults end: every span but the clocks' closes and the liveness phase begins.
    pub fn healed(&mut self) {
        self.event("FAULT heal: network whole, disks sound");
        let ms = self.elapsed_ms();
        self.lanes.heal(&mut self.timeline, ms);
        self.timeline.focus_end_ms = Some(ms + FOCUS_AFTER_HEALING_MS);
        self.timeline
            .phase(ms, "faults healed: recovery (liveness phase)");
    }

    /// Records what an end-of-run check found, now.
    pub fn finding(&mut self, kind: FindingKind, title: &str, detail: &str) {
        let at_ms = Some(self.elapsed_ms());
        self.timeline.finding(Finding {
            kind,
            title: title.to_string(),
            key: None,
            values: Vec::new(),
            ops: Vec::new(),
            at_ms,
            detail: detail.to_string(),
        });
    }

    /// Records an observation of a partition's leader (0: none), epoch and ISR on the
    /// timeline, and in the trace when the leader changed.
    pub fn leader(&mut self, key: &str, leader: i64, epoch: i32, isr: &[i32]) {
        let in_sync = if leader == 0 { 0 } else { isr.len() };
        self.isr_sizes.insert(key.to_string(), in_sync);
        self.observed_ms = self.elapsed_ms();
        let leader_id = i32::try_from(leader).ok().filter(|&id| id != 0);
        self.timeline
            .observe(key, self.observed_ms, leader_id, epoch, isr);
        let newer = self
            .newest_isr
            .get(key)
            .is_none_or(|(newest_epoch, _)| epoch >= *newest_epoch);
        if newer && leader_id.is_some() {
            self.newest_isr
                .insert(key.to_string(), (epoch, isr.to_vec()));
        }
        if self.leaders.insert(key.to_string(), leader) == Some(leader) {
            return;
        }
        self.event(&format!("leader {key} n{leader} epoch {epoch} isr {isr:?}"));
    }

    /// Whether broker `node` was in the ISR of partition `key` at the newest leader epoch
    /// observed; true before any observation.
    pub fn in_newest_isr(&self, key: &str, node: i32) -> bool {
        self.newest_isr
            .get(key)
            .is_none_or(|(_, isr)| isr.contains(&node))
    }

    /// The timeline as the run leaves it: up to now.
    pub fn timeline_now(&self) -> Timeline {
        let mut timeline = self.timeline.clone();
        timeline.end_ms = timeline.end_ms.max(self.elapsed_ms());
        timeline
    }

    /// Whether the last observation saw `partitions` partitions, each with `replicas` replicas
    /// in sync: then every replica holds every acknowledged record.
    /// The observation must be at most `max_age_ms` old (metadata requests fail under faults,
    /// and a stale "full" ISR once let a disk be wiped that held the last copy: seed 294).
    pub fn isr_full(&self, partitions: usize, replicas: usize, max_age_ms: u64) -> bool {
        self.elapsed_ms().saturating_sub(self.observed_ms) <= max_age_ms
            && self.isr_sizes.len() == partitions
            && self.isr_sizes.values().all(|&n| n == replicas)
    }

    /// Records an invocation; a history the recorder refuses is a bug in this harness.
    pub fn invoke(&mut self, process: u64, f: OpFn, value: OpValue, text: &str) {
        let time = self.elapsed_ns();
        self.history
            .invoke(process, time, f, value)
            .expect("the workload invokes only on idle processes");
        self.event(&format!("p{process} invoke {text}"));
    }

    /// Records a completion of `process`'s outstanding operation.
    pub fn complete(&mut self, process: u64, op_type: OpType, value: OpValue, text: &str) {
        let time = self.elapsed_ns();
        self.history
            .complete(process, time, op_type, value)
            .expect("the workload completes only what it invoked");
        self.completions += 1;
        self.event(&format!("p{process} {} {text}", op_type.name()));
    }

    /// Notes a violation a workload task found in an answer (checked after the safety phase).
    pub fn workload_violation(&mut self, why: &str) {
        self.event(&format!("VIOLATION {why}"));
        self.workload_violations.push(why.to_string());
    }

    /// Notes that a leader reported log start `start` for `key`; the highest one counts.
    pub fn log_start(&mut self, key: &str, start: u64) {
        let seen = self.log_starts.entry(key.to_string()).or_insert(0);
        if start > *seen {
            *seen = start;
            self.event(&format!("log start {key} {start}"));
        }
    }

    /// The highest log start reported for `key` (0: none).
    pub fn log_start_of(&self, key: &str) -> u64 {
        self.log_starts.get(key).copied().unwrap_or(0)
    }

    /// Interns a key.
    pub fn key(&mut self, name: &str) -> KeyId {
        self.history.key(name)
    }
}

/// A send micro-op.
pub fn send_mop(key: KeyId, value: i64, offset: Option<u64>) -> OpValue {
    OpValue::Mops(vec![MicroOp::Send { key, value, offset }])
}

/// A stale copy a leader appended again instead of answering it as a duplicate. Kafka does the
/// same when the leader lost the producer's state: a follower whose log ended below the leader's
/// log start truncates fully and starts over there, dropping every producer entry
/// (`ProducerStateManager.truncateFullyAndStartAt`), and then takes a first batch (sequence 0)
/// from an unknown producer as new (seed 140863). So the checker excuses the anomalies of these
/// values when every batch the producer had acknowledged on that partition lies below the log
/// start consumers saw by the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reappended {
    /// The partition key (`t-N`).
    pub key: String,
    /// The last offset of the producer's last batch acknowledged on that partition.
    pub producer_last_offset: i64,
    /// The values the copy carried.
    pub values: Vec<i64>,
}
