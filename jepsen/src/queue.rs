//! The queue checker: the anomaly classes of Jepsen's kafka checker (`jepsen.tests.kafka`), with
//! the same names and meanings.
//!
//! The analysis follows Jepsen's:
//! 1. **Version orders.** Per key, every `(offset, value)` pair seen by an ok (or provably
//!    committed info) send and by any poll. An offset with two values is `inconsistent-offsets`;
//!    a value at two offsets is a `duplicate`. Dropping the holes (transaction markers take
//!    offsets too) gives the dense *index* order the other checks use.
//! 2. **Lost and unseen writes.** Everything at or below the highest index some ok poll read must
//!    have been read by someone (`lost-write`); ok sends nobody polled are `unseen`.
//! 3. **Order checks** per operation (`int-` classes) and per process across operations.
//! 4. **Dependency cycles** between operations (G0, G1c) and aborted reads (G1a).
//!
//! Indeterminate (`info`) sends are never counted lost: they take part only once some ok poll
//! proved them committed. An invoke that never completed counts as `info`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{json, Value};

use crate::history::{History, KeyId, MicroOp, Op, OpFn, OpType, OpValue};

/// Most cases kept per anomaly class (the count still counts them all): a broken run can produce
/// millions, and a report that large helps nobody.
pub const CASES_PER_CLASS_MAX: usize = 64;
/// Most values listed in one case (a skip over a thousand values lists the first ones).
pub const VALUES_PER_CASE_MAX: usize = 16;

/// The anomaly classes, named as Jepsen names them (also in serde: `cargo sim`'s shard files).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "&'static str", try_from = "String")]
pub enum AnomalyClass {
    /// An ok (or provably committed) send at or below the highest index some poll read, which no
    /// ok poll ever read: the log lost it, or consumers skipped it.
    LostWrite,
    /// One value at more than one offset of a key.
    Duplicate,
    /// One offset of a key holding more than one value, as seen by sends and polls.
    InconsistentOffsets,
    /// An ok send that no ok poll ever read.
    Unseen,
    /// A process's consecutive polls of a key skipped over values in the log.
    PollSkip,
    /// One poll operation skipped over values of a key between two of its reads.
    IntPollSkip,
    /// A process's poll started at or before where its previous poll of the key ended.
    NonmonotonicPoll,
    /// One poll operation read a key's values out of log order, or one value twice.
    IntNonmonotonicPoll,
    /// A process's send landed at or before its previous send to the same key.
    NonmonotonicSend,
    /// One operation's sends to a key landed out of order.
    IntNonmonotonicSend,
    /// One operation's consecutive sends to a key are not adjacent in the log (others' records
    /// in between).
    IntSendSkip,
    /// A cycle of write-write dependencies (only with `ww_deps`).
    G0,
    /// Aborted read: an ok poll read a value whose send failed.
    G1a,
    /// A cycle of write-write and write-read dependencies with at least one write-read edge:
    /// circular information flow.
    G1c,
}

impl AnomalyClass {
    /// Every class, in report order.
    pub const ALL: [AnomalyClass; 14] = [
        AnomalyClass::LostWrite,
        AnomalyClass::Duplicate,
        AnomalyClass::InconsistentOffsets,
        AnomalyClass::Unseen,
        AnomalyClass::PollSkip,
        AnomalyClass::IntPollSkip,
        AnomalyClass::NonmonotonicPoll,
        AnomalyClass::IntNonmonotonicPoll,
        AnomalyClass::NonmonotonicSend,
        AnomalyClass::IntNonmonotonicSend,
        AnomalyClass::IntSendSkip,
        AnomalyClass::G0,
        AnomalyClass::G1a,
        AnomalyClass::G1c,
    ];

    /// Jepsen's name for the class.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyClass::LostWrite => "lost-write",
            AnomalyClass::Duplicate => "duplicate",
            AnomalyClass::InconsistentOffsets => "inconsistent-offsets",
            AnomalyClass::Unseen => "unseen",
            AnomalyClass::PollSkip => "poll-skip",
            AnomalyClass::IntPollSkip => "int-poll-skip",
            AnomalyClass::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyClass::IntNonmonotonicPoll => "int-nonmonotonic-poll",
            AnomalyClass::NonmonotonicSend => "nonmonotonic-send",
            AnomalyClass::IntNonmonotonicSend => "int-nonmonotonic-send",
            AnomalyClass::IntSendSkip => "int-send-skip",
            AnomalyClass::G0 => "G0",
            AnomalyClass::G1a => "G1a",
            AnomalyClass::G1c => "G1c",
        }
    }

    /// What the class means, in one line (the guarantee matrix's legend and the failing-seed
    /// report both use it).
    pub fn meaning(self) -> &'static str {
        match self {
            AnomalyClass::LostWrite => {
                "an acknowledged send below the highest offset some poll read, which no poll ever \
                 read: the log lost it (or a consumer skipped it)"
            }
            AnomalyClass::Duplicate => "one value stored at more than one offset of a partition",
            AnomalyClass::InconsistentOffsets => {
                "one offset of a partition held different values in different sends or polls"
            }
            AnomalyClass::Unseen => "an acknowledged send that no poll ever read",
            AnomalyClass::PollSkip => {
                "a consumer's consecutive polls of a partition skipped values"
            }
            AnomalyClass::IntPollSkip => "one poll skipped values between two of its reads",
            AnomalyClass::NonmonotonicPoll => {
                "a consumer's poll started at or before where its previous poll ended"
            }
            AnomalyClass::IntNonmonotonicPoll => {
                "one poll read a partition's values out of log order, or one value twice"
            }
            AnomalyClass::NonmonotonicSend => {
                "a producer's send landed at or before its previous send to the same partition"
            }
            AnomalyClass::IntNonmonotonicSend => "one operation's sends landed out of order",
            AnomalyClass::IntSendSkip => {
                "one operation's consecutive sends are not adjacent in the log"
            }
            AnomalyClass::G0 => "a cycle of write-write dependencies",
            AnomalyClass::G1a => "aborted read: a poll read a value whose send failed",
            AnomalyClass::G1c => "circular information flow: a write-read dependency cycle",
        }
    }

    /// Looks a class up by its Jepsen name.
    pub fn from_name(name: &str) -> Option<AnomalyClass> {
        AnomalyClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl From<AnomalyClass> for &'static str {
    fn from(class: AnomalyClass) -> &'static str {
        class.name()
    }
}

impl TryFrom<String> for AnomalyClass {
    type Error = String;

    fn try_from(name: String) -> Result<AnomalyClass, String> {
        AnomalyClass::from_name(&name).ok_or_else(|| format!("unknown anomaly class `{name}`"))
    }
}

impl fmt::Display for AnomalyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One instance of an anomaly and the operations that prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The key (topic-partition) involved, if the anomaly is about one key.
    pub key: Option<String>,
    /// The values involved (e.g. the lost value; the two values out of order).
    pub values: Vec<i64>,
    /// History indexes of the operations (completions) that prove it.
    pub ops: Vec<u64>,
    /// What happened, in words.
    pub detail: String,
}

/// All instances of one class.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassReport {
    /// How many instances were found.
    pub count: u64,
    /// True when the class does not invalidate the history under the options (Jepsen's
    /// `allowed-error-types`), e.g. poll-skip in subscribe mode.
    pub allowed: bool,
    /// The first [`CASES_PER_CLASS_MAX`] instances, in history order.
    pub cases: Vec<Anomaly>,
}

/// Counts describing the history, reported with the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events in the history.
    pub events: u64,
    /// Operations (invocations).
    pub operations: u64,
    /// Operations that completed ok.
    pub ok: u64,
    /// Operations that failed.
    pub fail: u64,
    /// Operations that completed info or never completed.
    pub info: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Values sent by ok sends.
    pub values_sent_ok: u64,
    /// Values sent by info sends (indeterminate).
    pub values_sent_info: u64,
    /// Distinct values read by ok polls.
    pub values_read: u64,
}

/// Options of the queue checker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueOptions {
    /// Consumers used `subscribe`: rebalances may move them between partitions at any time, so
    /// poll-skip and nonmonotonic-poll are expected (reported, but allowed), as in Jepsen.
    pub subscribe: bool,
    /// Infer write-write dependencies from log order (Jepsen's `--ww-deps`). Kafka does not
    /// isolate writes, so G0 and G1c are then allowed, as in Jepsen.
    pub ww_deps: bool,
    /// Per key (by name): the log start offset observed at the end of the run. Retention
    /// deletes records below it, so an acknowledged record there that nobody read is not lost,
    /// and a consumer that jumped over such records (an OFFSET_OUT_OF_RANGE reset to the
    /// earliest offset) did not skip anything still in the log. Records at or above it must
    /// have been read as before. Keys not named keep every offset.
    pub log_starts: BTreeMap<String, u64>,
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueReport {
    /// No class that is not allowed has an instance.
    pub valid: bool,
    /// Classes with at least one instance.
    pub anomalies: BTreeMap<AnomalyClass, ClassReport>,
    /// Counts describing the history.
    pub stats: QueueStats,
}

impl QueueReport {
    /// The instances of one class (empty if none).
    pub fn cases(&self, class: AnomalyClass) -> &[Anomaly] {
        self.anomalies
            .get(&class)
            .map(|c| c.cases.as_slice())
            .unwrap_or(&[])
    }

    /// Classes that invalidate the history.
    pub fn bad_classes(&self) -> Vec<AnomalyClass> {
        self.anomalies
            .iter()
            .filter(|(_, r)| !r.allowed)
            .map(|(c, _)| *c)
            .collect()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let mut anomalies = serde_json::Map::new();
        for (class, report) in &self.anomalies {
            let cases: Vec<Value> = report
                .cases
                .iter()
                .map(
                    |a| json!({"key": a.key, "values": a.values, "ops": a.ops, "detail": a.detail}),
                )
                .collect();
            anomalies.insert(
                class.name().to_string(),
                json!({"count": report.count, "allowed": report.allowed, "cases": cases}),
            );
        }
        let s = &self.stats;
        json!({
            "valid": self.valid,
            "bad-classes": self.bad_classes().iter().map(|c| c.name()).collect::<Vec<_>>(),
            "anomalies": anomalies,
            "stats": {
                "events": s.events, "operations": s.operations, "ok": s.ok, "fail": s.fail,
                "info": s.info, "keys": s.keys, "values-sent-ok": s.values_sent_ok,
                "values-sent-info": s.values_sent_info, "values-read": s.values_read,
            }
        })
    }
}

/// An operation as the checker sees it: its completion (or, for an invoke that never completed,
/// the invoke itself treated as info).
#[derive(Debug, Clone, Copy)]
struct Done<'h> {
    /// The event carrying the results.
    op: &'h Op,
    /// ok, fail or info.
    outcome: OpType,
}

/// The values seen at one offset, each with the first operation that showed it. Almost always
/// one value, kept inline; `more` allocates only when an offset is inconsistent.
#[derive(Debug, Clone)]
struct Slot {
    /// The first value seen.
    first: (i64, u64),
    /// Further, different values.
    more: Vec<(i64, u64)>,
}

impl Slot {
    fn values(&self) -> impl Iterator<Item = &(i64, u64)> {
        std::iter::once(&self.first).chain(self.more.iter())
    }

    fn len(&self) -> usize {
        1 + self.more.len()
    }
}

/// Per-key version order, Jepsen's `version-orders`.
#[derive(Debug, Default)]
struct KeyOrder {
    /// Offset -> the values seen there.
    log: BTreeMap<u64, Slot>,
    /// Dense index -> value (the first value seen at that offset).
    by_index: Vec<i64>,
    /// Dense index -> offset.
    offsets: Vec<u64>,
    /// Value -> dense index of its last appearance (Jepsen's `index-seq`, and `last-index`).
    by_value: HashMap<i64, u32>,
    /// Value -> dense index of its first appearance (Jepsen's `value->first-index`).
    first: HashMap<i64, u32>,
}

/// Per-key facts gathered in one pass over the operations.
#[derive(Debug, Default)]
struct KeyFacts {
    /// Value -> position (in `done`) of the operation that sent it.
    writer: HashMap<i64, u32>,
    /// Value -> position (in `done`) of the first ok operation that read it; its keys are the
    /// values read by ok operations.
    first_reader: HashMap<i64, u32>,
}

/// Anomalies collected so far, capped per class.
#[derive(Debug, Default)]
struct Found {
    /// Class -> (count, first cases).
    by_class: BTreeMap<AnomalyClass, (u64, Vec<Anomaly>)>,
}

impl Found {
    fn add(&mut self, class: AnomalyClass, anomaly: Anomaly) {
        let entry = self.by_class.entry(class).or_default();
        entry.0 += 1;
        if entry.1.len() < CASES_PER_CLASS_MAX {
            entry.1.push(anomaly);
        }
        assert!(entry.1.len() as u64 <= entry.0);
    }
}

/// Checks a history for the queue anomaly classes.
pub fn check(history: &History, options: &QueueOptions) -> QueueReport {
    let done = completions(history);
    let mut cx = Cx::new(history, &done);
    cx.log_starts = (0..history.key_count())
        .map(|k| {
            let name = history.key_name(KeyId(k as u32));
            options.log_starts.get(name).copied().unwrap_or(0)
        })
        .collect();
    assert_eq!(cx.log_starts.len(), history.key_count());
    let mut found = Found::default();
    cx.version_orders(&mut found);
    cx.duplicates(&mut found);
    cx.lost_and_unseen(&mut found);
    cx.internal_orders(&mut found);
    cx.poll_orders(&mut found);
    cx.send_orders(&mut found);
    cx.aborted_reads(&mut found);
    crate::queue_graph::cycles(
        &cx.graph_input(options.ww_deps),
        options.ww_deps,
        &mut found.by_class,
    );

    let mut anomalies = BTreeMap::new();
    for (class, (count, mut cases)) in found.by_class {
        cases.sort_by(|a, b| a.ops.cmp(&b.ops));
        let allowed = allowed(class, options);
        anomalies.insert(
            class,
            ClassReport {
                count,
                allowed,
                cases,
            },
        );
    }
    let valid = anomalies.values().all(|r| r.allowed);
    let stats = cx.stats();
    QueueReport {
        valid,
        anomalies,
        stats,
    }
}

/// Jepsen's `allowed-error-types`: int-send-skip and G0 are normal in Kafka (writes are not
/// isolated); with subscribe, rebalances cause poll-skip and nonmonotonic-poll; with ww-deps,
/// G1c cycles through write-write edges are normal too.
fn allowed(class: AnomalyClass, options: &QueueOptions) -> bool {
    match class {
        AnomalyClass::IntSendSkip | AnomalyClass::G0 => true,
        AnomalyClass::PollSkip | AnomalyClass::NonmonotonicPoll => options.subscribe,
        AnomalyClass::G1c => options.ww_deps,
        _ => false,
    }
}

fn completions(history: &History) -> Vec<Done<'_>> {
    let mut done = Vec::with_capacity(history.len() / 2 + 1);
    for (pos, op) in history.ops().iter().enumerate() {
        match (op.op_type, history.partner(pos)) {
            (OpType::Invoke, Some(_)) => {}
            (OpType::Invoke, None) => done.push(Done {
                op,
                outcome: OpType::Info,
            }),
            (t, _) => done.push(Done { op, outcome: t }),
        }
    }
    done
}

/// Values read per key by one operation, concatenated over its polls in order (Jepsen's
/// `op-reads`).
fn op_reads(op: &Op) -> Vec<(KeyId, Vec<i64>)> {
    let mut out: Vec<(KeyId, Vec<i64>)> = Vec::new();
    for mop in op.mops() {
        if let MicroOp::Poll { reads: Some(reads) } = mop {
            for (k, pairs) in reads {
                let slot = match out.iter().position(|(key, _)| key == k) {
                    Some(i) => i,
                    None => {
                        out.push((*k, Vec::new()));
                        out.len() - 1
                    }
                };
                out[slot].1.extend(pairs.iter().map(|(_, v)| *v));
            }
        }
    }
    out
}

/// Values sent per key by one operation, in order (Jepsen's `op-writes`).
fn op_writes(op: &Op) -> Vec<(KeyId, Vec<i64>)> {
    let mut out: Vec<(KeyId, Vec<i64>)> = Vec::new();
    for mop in op.mops() {
        if let MicroOp::Send { key, value, .. } = mop {
            match out.iter_mut().find(|(k, _)| k == key) {
                Some((_, vs)) => vs.push(*value),
                None => out.push((*key, vec![*value])),
            }
        }
    }
    out
}

fn capped(values: impl IntoIterator<Item = i64>) -> Vec<i64> {
    values.into_iter().take(VALUES_PER_CASE_MAX).collect()
}

/// What the dependency-graph pass needs.
pub(crate) struct GraphInput<'a> {
    /// Operations by position: (history index, can take part in the graph).
    pub nodes: Vec<(u64, bool)>,
    /// Per key: (values in dense log order, value -> writer position).
    pub orders: Vec<(Vec<i64>, &'a HashMap<i64, u32>)>,
    /// Write-read edges: (writer position, reader position, key).
    pub wr: Vec<(u32, u32, u32)>,
    /// Key names.
    pub key_names: Vec<String>,
    /// Some operation both reads and writes (else no wr cycle can exist).
    pub mixed: bool,
}

/// The checker's working state.
struct Cx<'h> {
    /// The history checked.
    history: &'h History,
    /// Operations, in completion order.
    done: &'h [Done<'h>],
    /// Facts per key.
    facts: Vec<KeyFacts>,
    /// Version order per key.
    orders: Vec<KeyOrder>,
    /// Per key: offsets below this were deleted by retention ([`QueueOptions::log_starts`]).
    log_starts: Vec<u64>,
}

impl<'h> Cx<'h> {
    fn new(history: &'h History, done: &'h [Done<'h>]) -> Cx<'h> {
        let keys = history.key_count();
        let mut facts: Vec<KeyFacts> = (0..keys).map(|_| KeyFacts::default()).collect();
        for (pos, d) in done.iter().enumerate() {
            let pos = u32::try_from(pos).expect("fewer than 2^32 operations");
            for (k, vs) in op_writes(d.op) {
                for v in vs {
                    facts[k.0 as usize].writer.insert(v, pos);
                }
            }
            if d.outcome == OpType::Ok {
                for (k, vs) in op_reads(d.op) {
                    for v in vs {
                        facts[k.0 as usize].first_reader.entry(v).or_insert(pos);
                    }
                }
            }
        }
        assert_eq!(facts.len(), keys);
        Cx {
            history,
            done,
            facts,
            orders: Vec::new(),
            log_starts: Vec::new(),
        }
    }

    /// Offset `offset` of key `k` lies below the log start observed at the end: retention may
    /// have deleted whatever was there before anyone read it.
    fn gone(&self, k: usize, offset: u64) -> bool {
        self.log_starts.get(k).is_some_and(|start| offset < *start)
    }

    /// The offset of the last appearance of `v` in key `k`, if the version order has it.
    fn offset_of(&self, k: usize, v: i64) -> Option<u64> {
        let order = &self.orders[k];
        order.by_value.get(&v).map(|i| order.offsets[*i as usize])
    }

    /// Jepsen's `must-have-committed?`: ok, or info with one of its sends read by an ok poll.
    fn committed(&self, d: &Done<'_>) -> bool {
        match d.outcome {
            OpType::Ok => true,
            OpType::Info => op_writes(d.op)
                .iter()
                .any(|(k, vs)| vs.iter().any(|v| self.read_ok(*k, *v))),
            _ => false,
        }
    }

    /// Some ok operation read `v` from `k`.
    fn read_ok(&self, k: KeyId, v: i64) -> bool {
        self.facts[k.0 as usize].first_reader.contains_key(&v)
    }

    fn key_name(&self, k: usize) -> Option<String> {
        Some(self.history.key_name(KeyId(k as u32)).to_string())
    }

    fn version_orders(&mut self, found: &mut Found) {
        let mut orders: Vec<KeyOrder> = (0..self.history.key_count())
            .map(|_| KeyOrder::default())
            .collect();
        for d in self.done {
            let committed = self.committed(d);
            for mop in d.op.mops() {
                match mop {
                    MicroOp::Send {
                        key,
                        value,
                        offset: Some(o),
                    } if committed => {
                        observe(&mut orders[key.0 as usize], *o, *value, d.op.index);
                    }
                    MicroOp::Poll { reads: Some(reads) } => {
                        for (k, pairs) in reads {
                            for (o, v) in pairs {
                                observe(&mut orders[k.0 as usize], *o, *v, d.op.index);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for (k, order) in orders.iter_mut().enumerate() {
            for (i, (offset, slot)) in order.log.iter().enumerate() {
                if slot.len() > 1 {
                    found.add(
                        AnomalyClass::InconsistentOffsets,
                        Anomaly {
                            key: self.key_name(k),
                            values: capped(slot.values().map(|(v, _)| *v)),
                            ops: slot.values().map(|(_, op)| *op).collect(),
                            detail: format!("offset {offset} holds {} values", slot.len()),
                        },
                    );
                }
                let i = u32::try_from(i).expect("index fits u32");
                order.by_index.push(slot.first.0);
                order.offsets.push(*offset);
                for (v, _) in slot.values() {
                    order.first.entry(*v).or_insert(i);
                    order.by_value.insert(*v, i);
                }
            }
            assert_eq!(order.by_index.len(), order.log.len());
            assert_eq!(order.first.len(), order.by_value.len());
        }
        self.orders = orders;
    }

    fn duplicates(&self, found: &mut Found) {
        for (k, order) in self.orders.iter().enumerate() {
            // A value seen at two indexes has a first appearance before its last.
            let mut dups: Vec<(u32, u32, i64)> = order
                .first
                .iter()
                .filter_map(|(v, first)| {
                    let last = order.by_value[v];
                    (last != *first).then_some((*first, last, *v))
                })
                .collect();
            dups.sort_unstable();
            for (first, last, v) in dups {
                let at: Vec<(u64, u64)> = (first..=last)
                    .filter_map(|i| {
                        let offset = order.offsets[i as usize];
                        let slot = &order.log[&offset];
                        slot.values()
                            .find(|(value, _)| *value == v)
                            .map(|(_, op)| (offset, *op))
                    })
                    .collect();
                assert!(at.len() >= 2, "a duplicate appears at two offsets");
                let offsets: Vec<String> = at.iter().map(|(o, _)| o.to_string()).collect();
                found.add(
                    AnomalyClass::Duplicate,
                    Anomaly {
                        key: self.key_name(k),
                        values: vec![v],
                        ops: at.iter().map(|(_, op)| *op).collect(),
                        detail: format!("value {v} at offsets {}", offsets.join(", ")),
                    },
                );
            }
        }
    }

    fn lost_and_unseen(&self, found: &mut Found) {
        for (k, order) in self.orders.iter().enumerate() {
            let reads = &self.facts[k].first_reader;
            self.lost(k, order, found);
            let mut unseen: Vec<(u32, i64)> = self.facts[k]
                .writer
                .iter()
                .filter(|(v, w)| {
                    self.done[**w as usize].outcome == OpType::Ok
                        && !reads.contains_key(v)
                        && !self.offset_of(k, **v).is_some_and(|o| self.gone(k, o))
                })
                .map(|(v, w)| (*w, *v))
                .collect();
            unseen.sort_unstable();
            for (w, v) in unseen {
                found.add(
                    AnomalyClass::Unseen,
                    Anomaly {
                        key: self.key_name(k),
                        values: vec![v],
                        ops: vec![self.done[w as usize].op.index],
                        detail: format!("acknowledged value {v} was never polled"),
                    },
                );
            }
        }
    }

    /// Jepsen's `lost-write-cases`: values whose *last* appearance is at or below the highest
    /// *first* appearance of any read value must all have been read.
    fn lost(&self, k: usize, order: &KeyOrder, found: &mut Found) {
        let facts = &self.facts[k];
        let reads = &facts.first_reader;
        let Some((bound, max_value)) = reads
            .keys()
            .filter_map(|v| order.first.get(v).map(|i| (*i, *v)))
            .max()
        else {
            return;
        };
        let max_reader = reads[&max_value];
        assert!(
            (bound as usize) < order.by_index.len(),
            "a read value has an index"
        );
        let mut lost: Vec<(u32, i64)> = order
            .by_value
            .iter()
            .filter(|(v, i)| {
                **i <= bound && !reads.contains_key(v) && !self.gone(k, order.offsets[**i as usize])
            })
            .map(|(v, i)| (*i, *v))
            .collect();
        lost.sort_unstable();
        for (i, v) in lost {
            let Some(&w) = facts.writer.get(&v) else {
                continue;
            };
            if !self.committed(&self.done[w as usize]) {
                continue;
            }
            let (writer, reader) = (self.done[w as usize].op, self.done[max_reader as usize].op);
            found.add(
                AnomalyClass::LostWrite,
                Anomaly {
                    key: self.key_name(k),
                    values: vec![v, max_value],
                    ops: vec![writer.index, reader.index],
                    detail: format!(
                        "value {v} (index {i}) was never read, though op {} read value {max_value} at index {bound}",
                        reader.index
                    ),
                },
            );
        }
    }

    /// delta between two values' dense indexes; 1 (no verdict) when either is unknown.
    fn delta(&self, k: KeyId, v1: i64, v2: i64) -> (i64, Option<(u32, u32)>) {
        let order = &self.orders[k.0 as usize];
        match (order.by_value.get(&v1), order.by_value.get(&v2)) {
            (Some(&i1), Some(&i2)) => (i64::from(i2) - i64::from(i1), Some((i1, i2))),
            _ => (1, None),
        }
    }

    fn skipped(&self, k: KeyId, i1: u32, i2: u32) -> Vec<i64> {
        let order = &self.orders[k.0 as usize];
        capped(
            order.by_index[(i1 as usize + 1)..(i2 as usize)]
                .iter()
                .copied(),
        )
    }

    /// A pair of consecutive values in one key: a skip or a nonmonotonic step, if either.
    #[allow(clippy::too_many_arguments)]
    fn pair(
        &self,
        k: KeyId,
        v1: i64,
        v2: i64,
        ops: Vec<u64>,
        classes: (AnomalyClass, Option<AnomalyClass>),
        found: &mut Found,
    ) {
        let (delta, idx) = self.delta(k, v1, v2);
        let key = self.key_name(k.0 as usize);
        if delta < 1 {
            let detail = format!("{v1} then {v2}: delta {delta} in log order");
            found.add(
                classes.0,
                Anomaly {
                    key,
                    values: vec![v1, v2],
                    ops,
                    detail,
                },
            );
        } else if let (Some(skip), Some((i1, i2))) = (classes.1, idx) {
            // Offsets grow with the index: the last skipped one is the highest.
            let order = &self.orders[k.0 as usize];
            let retained = delta > 1 && !self.gone(k.0 as usize, order.offsets[i2 as usize - 1]);
            if retained {
                let skipped = self.skipped(k, i1, i2);
                let detail = format!("{v1} then {v2} skipped {} values: {skipped:?}", delta - 1);
                let mut values = vec![v1, v2];
                values.extend(skipped);
                found.add(
                    skip,
                    Anomaly {
                        key,
                        values: capped(values),
                        ops,
                        detail,
                    },
                );
            }
        }
    }

    fn internal_orders(&self, found: &mut Found) {
        for d in self.done {
            for (k, vs) in op_reads(d.op) {
                if d.op.rebalance_keys.contains(&k) {
                    continue;
                }
                for w in vs.windows(2) {
                    let classes = (
                        AnomalyClass::IntNonmonotonicPoll,
                        Some(AnomalyClass::IntPollSkip),
                    );
                    self.pair(k, w[0], w[1], vec![d.op.index], classes, found);
                }
            }
            for (k, vs) in op_writes(d.op) {
                for w in vs.windows(2) {
                    let classes = (
                        AnomalyClass::IntNonmonotonicSend,
                        Some(AnomalyClass::IntSendSkip),
                    );
                    self.pair(k, w[0], w[1], vec![d.op.index], classes, found);
                }
            }
        }
    }

    /// Completions grouped by process, processes in ascending order.
    fn by_process(&self) -> Vec<Vec<&Done<'h>>> {
        let mut groups: BTreeMap<u64, Vec<&Done<'h>>> = BTreeMap::new();
        for d in self.done {
            groups.entry(d.op.process).or_default().push(d);
        }
        groups.into_values().collect()
    }

    /// Applies an assign/subscribe to a per-process position map: keep only the keys still
    /// assigned (Jepsen's `select-keys`); a seek to the beginning forgets every position.
    fn reassign(d: &Done<'_>, positions: &mut HashMap<KeyId, (i64, u64)>) {
        if d.outcome == OpType::Fail {
            return;
        }
        if d.op.seek_to_beginning {
            positions.clear();
        } else if let OpValue::Keys(keys) = &d.op.value {
            positions.retain(|k, _| keys.contains(k));
        }
    }

    /// Jepsen's `poll-skip+nonmonotonic-cases`.
    fn poll_orders(&self, found: &mut Found) {
        for ops in self.by_process() {
            // Key -> (last value read, index of the op that read it).
            let mut last: HashMap<KeyId, (i64, u64)> = HashMap::new();
            for d in ops {
                match d.op.f {
                    OpFn::Assign | OpFn::Subscribe => Cx::reassign(d, &mut last),
                    OpFn::Poll | OpFn::Txn => {
                        // A key rebalanced during this operation forgets its position whether or
                        // not the operation read it: a poll that only took the assignment back
                        // (and read nothing) is followed by reads from the group's committed
                        // offset, which may be anywhere.
                        for k in &d.op.rebalance_keys {
                            last.remove(k);
                        }
                        for (k, vs) in op_reads(d.op) {
                            let (Some(first), Some(end)) = (vs.first(), vs.last()) else {
                                continue;
                            };
                            if let Some(&(prev, prev_op)) = last.get(&k) {
                                let classes =
                                    (AnomalyClass::NonmonotonicPoll, Some(AnomalyClass::PollSkip));
                                self.pair(
                                    k,
                                    prev,
                                    *first,
                                    vec![prev_op, d.op.index],
                                    classes,
                                    found,
                                );
                            }
                            if d.outcome == OpType::Ok {
                                last.insert(k, (*end, d.op.index));
                            }
                        }
                    }
                    OpFn::Send => {}
                }
            }
        }
    }

    /// Jepsen's `nonmonotonic-send-cases`: over ok and info operations.
    fn send_orders(&self, found: &mut Found) {
        for ops in self.by_process() {
            let mut last: HashMap<KeyId, (i64, u64)> = HashMap::new();
            for d in ops.into_iter().filter(|d| d.outcome != OpType::Fail) {
                match d.op.f {
                    OpFn::Assign | OpFn::Subscribe => Cx::reassign(d, &mut last),
                    OpFn::Send | OpFn::Txn => {
                        for (k, vs) in op_writes(d.op) {
                            if let Some(&(prev, prev_op)) = last.get(&k) {
                                let classes = (AnomalyClass::NonmonotonicSend, None);
                                self.pair(
                                    k,
                                    prev,
                                    vs[0],
                                    vec![prev_op, d.op.index],
                                    classes,
                                    found,
                                );
                            }
                            last.insert(k, (vs[vs.len() - 1], d.op.index));
                        }
                    }
                    OpFn::Poll => {}
                }
            }
        }
    }

    /// Jepsen's `g1a-cases`: an ok poll read a value whose send failed.
    fn aborted_reads(&self, found: &mut Found) {
        for d in self.done.iter().filter(|d| d.outcome == OpType::Ok) {
            for (k, vs) in op_reads(d.op) {
                let writers = &self.facts[k.0 as usize].writer;
                for v in vs {
                    let Some(&w) = writers.get(&v) else { continue };
                    let writer = &self.done[w as usize];
                    if writer.outcome != OpType::Fail {
                        continue;
                    }
                    let (w, r) = (writer.op.index, d.op.index);
                    found.add(
                        AnomalyClass::G1a,
                        Anomaly {
                            key: self.key_name(k.0 as usize),
                            values: vec![v],
                            ops: vec![w, r],
                            detail: format!("op {r} read value {v}, whose send (op {w}) failed"),
                        },
                    );
                }
            }
        }
    }

    /// Write-read edges, deduplicated: (writer, reader, key).
    fn wr_edges(&self) -> Vec<(u32, u32, u32)> {
        let mut edges = Vec::new();
        for (r, d) in self
            .done
            .iter()
            .enumerate()
            .filter(|(_, d)| d.outcome == OpType::Ok)
        {
            for (k, vs) in op_reads(d.op) {
                let writers = &self.facts[k.0 as usize].writer;
                for v in vs {
                    if let Some(&w) = writers.get(&v) {
                        edges.push((w, r as u32, k.0));
                    }
                }
            }
        }
        edges.sort_unstable();
        edges.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        edges
    }

    fn graph_input(&self, ww_deps: bool) -> GraphInput<'_> {
        let nodes = self
            .done
            .iter()
            .map(|d| {
                let kind = matches!(d.op.f, OpFn::Send | OpFn::Poll | OpFn::Txn);
                (d.op.index, kind && self.committed(d))
            })
            .collect();
        let orders = self
            .orders
            .iter()
            .zip(&self.facts)
            .map(|(o, f)| (o.by_index.clone(), &f.writer))
            .collect();
        let mixed = self.done.iter().any(|d| {
            let mops = d.op.mops();
            mops.iter().any(|m| matches!(m, MicroOp::Send { .. }))
                && mops.iter().any(|m| matches!(m, MicroOp::Poll { .. }))
        });
        // A cycle needs ww edges or an operation that both reads and writes: skip the work
        // (and the memory) of wr edges otherwise.
        let wr = if mixed || ww_deps {
            self.wr_edges()
        } else {
            Vec::new()
        };
        GraphInput {
            nodes,
            orders,
            wr,
            key_names: (0..self.history.key_count())
                .map(|k| self.history.key_name(KeyId(k as u32)).to_string())
                .collect(),
            mixed,
        }
    }

    fn stats(&self) -> QueueStats {
        let mut s = QueueStats {
            events: self.history.len() as u64,
            keys: self.history.key_count() as u64,
            ..QueueStats::default()
        };
        for d in self.done {
            s.operations += 1;
            let sent = op_writes(d.op)
                .iter()
                .map(|(_, vs)| vs.len() as u64)
                .sum::<u64>();
            match d.outcome {
                OpType::Ok => {
                    s.ok += 1;
                    s.values_sent_ok += sent;
                }
                OpType::Fail => s.fail += 1,
                _ => {
                    s.info += 1;
                    s.values_sent_info += sent;
                }
            }
        }
        s.values_read = self.facts.iter().map(|f| f.first_reader.len() as u64).sum();
        s
    }
}

fn observe(order: &mut KeyOrder, offset: u64, value: i64, op_index: u64) {
    let slot = order.log.entry(offset).or_insert_with(|| Slot {
        first: (value, op_index),
        more: Vec::new(),
    });
    if !slot.values().any(|(v, _)| *v == value) {
        slot.more.push((value, op_index));
    }
    assert!(slot.values().any(|(v, _)| *v == value));
}
