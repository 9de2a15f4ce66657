//! The history format: JSON Lines, one event per line, modelled on Jepsen's kafka workload.
//!
//! ```text
//! {"index":0,"type":"invoke","process":0,"time":10,"f":"send","value":[["send","t-0",1]]}
//! {"index":1,"type":"ok","process":0,"time":25,"f":"send","value":[["send","t-0",[0,1]]]}
//! {"index":2,"type":"invoke","process":1,"time":30,"f":"poll","value":[["poll"]]}
//! {"index":3,"type":"ok","process":1,"time":41,"f":"poll","value":[["poll",{"t-0":[[0,1]]}]]}
//! ```
//!
//! A line with `"process": "nemesis"` is a fault or heal (Jepsen's nemesis events), kept apart in
//! [`History::nemesis`]: checkers see only client operations.
//!
//! Keys (topic-partition names) are interned into [`KeyId`]s so that a million-operation history
//! does not hold a million copies of `"t-0"`. Every event passes the same consistency rules whether
//! it is parsed ([`History::parse_jsonl`]) or recorded ([`HistoryRecorder`]), so a checker never
//! sees a completion without its invocation.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::{json, Map, Value};

use crate::error::HistoryError;

/// Most events one history may hold: keeps a runaway recorder or a wrong file from eating memory.
pub const EVENTS_MAX: u64 = 50_000_000;
/// Most micro-ops one operation may hold.
pub const MOPS_PER_OP_MAX: usize = 100_000;
/// Longest key name accepted, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;

/// An interned key (a topic-partition name such as `"t-0"`, or a register name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

/// The kind of event: Jepsen's four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpType {
    /// A client began an operation.
    Invoke,
    /// The operation definitely happened, with the results in `value`.
    Ok,
    /// The operation definitely did not happen.
    Fail,
    /// Indeterminate: the operation may or may not have happened (a timeout, a crash).
    Info,
}

impl OpType {
    /// The name used in the JSON format.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// The function an operation performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpFn {
    /// Produce records: only `send` micro-ops.
    Send,
    /// Consume: only `poll` micro-ops.
    Poll,
    /// A transaction mixing micro-ops (also carries the key-value workload's read/write/cas).
    Txn,
    /// Manually assign the consumer to partitions (value: a list of keys).
    Assign,
    /// Subscribe the consumer to the topics of the keys (value: a list of keys); the group decides
    /// which partitions it actually gets.
    Subscribe,
}

impl OpFn {
    /// The name used in the JSON format.
    pub fn name(self) -> &'static str {
        match self {
            OpFn::Send => "send",
            OpFn::Poll => "poll",
            OpFn::Txn => "txn",
            OpFn::Assign => "assign",
            OpFn::Subscribe => "subscribe",
        }
    }

    fn parse(name: &str) -> Option<OpFn> {
        Some(match name {
            "send" => OpFn::Send,
            "poll" => OpFn::Poll,
            "txn" => OpFn::Txn,
            "assign" => OpFn::Assign,
            "subscribe" => OpFn::Subscribe,
            _ => return None,
        })
    }

    fn carries_mops(self) -> bool {
        matches!(self, OpFn::Send | OpFn::Poll | OpFn::Txn)
    }
}

/// What one key returned in a poll: `(offset, value)` pairs in the order the consumer saw them.
pub type KeyReads = (KeyId, Vec<(u64, i64)>);

/// One micro-operation inside an operation's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroOp {
    /// `["send", key, value]` on invoke, `["send", key, [offset, value]]` on completion (offset may
    /// be `null` on info/fail, when the producer never learnt it).
    Send {
        /// The partition written.
        key: KeyId,
        /// The record value: unique across the history.
        value: i64,
        /// The offset the broker assigned, when known.
        offset: Option<u64>,
    },
    /// `["poll"]` on invoke, `["poll", {key: [[offset, value], ...]}]` on ok.
    Poll {
        /// Per key, what the poll returned; `None` until the poll completed ok.
        reads: Option<Vec<KeyReads>>,
    },
    /// Key-value workload: `["read", key, null]` on invoke, `["read", key, value-or-null]` on ok.
    Read {
        /// The register read.
        key: KeyId,
        /// The value read (`None`: the register was empty, or the read has not completed).
        value: Option<i64>,
    },
    /// Key-value workload: `["write", key, value]`.
    Write {
        /// The register written.
        key: KeyId,
        /// The value written.
        value: i64,
    },
    /// Key-value workload: `["cas", key, [expected, new]]`; a cas whose comparison failed
    /// completes `fail` (Jepsen's convention), so an ok cas always swapped.
    Cas {
        /// The register.
        key: KeyId,
        /// The value the register had to hold.
        expected: i64,
        /// The value it was set to.
        new: i64,
    },
}

impl MicroOp {
    fn kind(&self) -> &'static str {
        match self {
            MicroOp::Send { .. } => "send",
            MicroOp::Poll { .. } => "poll",
            MicroOp::Read { .. } => "read",
            MicroOp::Write { .. } => "write",
            MicroOp::Cas { .. } => "cas",
        }
    }
}

/// An operation's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpValue {
    /// send, poll, txn: micro-ops.
    Mops(Vec<MicroOp>),
    /// assign, subscribe: the keys.
    Keys(Vec<KeyId>),
}

/// One event of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Position label, strictly increasing through the history; anomalies cite it.
    pub index: u64,
    /// invoke, ok, fail or info.
    pub op_type: OpType,
    /// The logical client (one outstanding operation at a time).
    pub process: u64,
    /// Nanoseconds (simulated or real), non-decreasing through the history.
    pub time: u64,
    /// What the operation does.
    pub f: OpFn,
    /// Micro-ops or keys.
    pub value: OpValue,
    /// Keys the consumer was rebalanced on during this operation (Jepsen's `:rebalance-log`):
    /// offsets on them may legitimately jump.
    pub rebalance_keys: Vec<KeyId>,
    /// For `assign`: the consumer seeked to the beginning of its partitions, so its next polls
    /// restart from the earliest offset.
    pub seek_to_beginning: bool,
    /// 1-based source line (0 when recorded in memory): error messages cite it.
    pub line: u64,
}

impl Op {
    /// The micro-ops, or an empty slice for assign/subscribe.
    pub fn mops(&self) -> &[MicroOp] {
        match &self.value {
            OpValue::Mops(m) => m,
            OpValue::Keys(_) => &[],
        }
    }
}

/// A validated history: events in order, keys interned, invocations paired with completions.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Key names by [`KeyId`].
    keys: Vec<String>,
    /// Reverse of `keys`, for interning.
    key_ids: HashMap<String, KeyId>,
    /// Events in history order.
    ops: Vec<Op>,
    /// For each event position: the position of its partner (invoke <-> completion), if any.
    partner: Vec<Option<usize>>,
    /// Per process: the position of its outstanding invoke.
    outstanding: HashMap<u64, usize>,
    /// Nemesis events (Jepsen's `"process": "nemesis"` lines: faults and heals), kept apart
    /// from the client operations: checkers ignore them, reports show them beside the operations.
    nemesis: Vec<NemesisEvent>,
}

/// One fault or heal, as the real-process harness writes it into the history.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    /// Position label, in the same sequence as the operations' indexes.
    pub index: u64,
    /// Nanoseconds, on the same clock as the operations.
    pub time: u64,
    /// What the nemesis did (`kill`, `partition`, `heal`, ...).
    pub f: String,
    /// Its details (nodes, spec), as written.
    pub value: Value,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Interns a key name.
    pub fn key(&mut self, name: &str) -> KeyId {
        if let Some(id) = self.key_ids.get(name) {
            return *id;
        }
        let id = KeyId(u32::try_from(self.keys.len()).expect("fewer than 2^32 keys"));
        self.keys.push(name.to_string());
        self.key_ids.insert(name.to_string(), id);
        assert_eq!(self.keys.len(), self.key_ids.len());
        id
    }

    /// The name of an interned key.
    pub fn key_name(&self, key: KeyId) -> &str {
        &self.keys[key.0 as usize]
    }

    /// Number of distinct keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// All events, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// For a completion at `pos`, the position of its invoke; for an invoke, its completion.
    pub fn partner(&self, pos: usize) -> Option<usize> {
        self.partner[pos]
    }

    /// The type an operation effectively has: its completion's type, or `Info` for an invoke
    /// that never completed (it may or may not have happened).
    pub fn outcome(&self, invoke_pos: usize) -> OpType {
        assert_eq!(self.ops[invoke_pos].op_type, OpType::Invoke);
        match self.partner[invoke_pos] {
            Some(c) => self.ops[c].op_type,
            None => OpType::Info,
        }
    }

    /// [`History::outcome`] for an invoke, `None` for a completion.
    pub fn outcome_if_invoke(&self, pos: usize) -> Option<OpType> {
        (self.ops[pos].op_type == OpType::Invoke).then(|| self.outcome(pos))
    }

    /// Parses JSON Lines. Blank lines are skipped; every other line must be one event.
    pub fn parse_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut history = History::new();
        for (i, line) in reader.lines().enumerate() {
            let line_no = i as u64 + 1;
            let text = line.map_err(|e| HistoryError::MalformedJson {
                line: line_no,
                reason: format!("cannot read line: {e}"),
            })?;
            if text.trim().is_empty() {
                continue;
            }
            if let Some(event) = parse_nemesis(&text, line_no)? {
                history.push_nemesis(event, line_no)?;
                continue;
            }
            let op = parse_line(&mut history, &text, line_no)?;
            history.push(op)?;
        }
        Ok(history)
    }

    /// Parses a whole string of JSON Lines.
    pub fn parse_str(text: &str) -> Result<History, HistoryError> {
        History::parse_jsonl(text.as_bytes())
    }

    /// Nemesis events, in history order.
    pub fn nemesis(&self) -> &[NemesisEvent] {
        &self.nemesis
    }

    /// Appends a nemesis event: its index and time must fit the sequence of every event so far.
    pub fn push_nemesis(&mut self, event: NemesisEvent, line: u64) -> Result<(), HistoryError> {
        let last_op = self.ops.last().map(|op| (op.index, op.time));
        let last_nemesis = self.nemesis.last().map(|e| (e.index, e.time));
        for (index, time) in [last_op, last_nemesis].into_iter().flatten() {
            if event.index <= index || event.time < time {
                return Err(HistoryError::Inconsistent {
                    line,
                    reason: format!(
                        "nemesis event index {} / time {} does not follow index {index} / time {time}",
                        event.index, event.time
                    ),
                });
            }
        }
        self.nemesis.push(event);
        Ok(())
    }

    /// Appends an event after checking it against the history so far.
    pub fn push(&mut self, mut op: Op) -> Result<(), HistoryError> {
        let line = op.line;
        let bad = |reason: String| Err(HistoryError::Inconsistent { line, reason });
        if self.ops.len() as u64 >= EVENTS_MAX {
            return Err(HistoryError::TooLong {
                line,
                limit: EVENTS_MAX,
            });
        }
        if let Some(last) = self.nemesis.last() {
            if op.index <= last.index || op.time < last.time {
                return bad(format!(
                    "index {} / time {} does not follow the nemesis event at index {} / time {}",
                    op.index, op.time, last.index, last.time
                ));
            }
        }
        if let Some(last) = self.ops.last() {
            if op.index <= last.index {
                return bad(format!(
                    "index {} is not greater than the previous event's index {}",
                    op.index, last.index
                ));
            }
            if op.time < last.time {
                return bad(format!(
                    "time {} goes backwards (previous event's time is {})",
                    op.time, last.time
                ));
            }
        }
        let pos = self.ops.len();
        if op.op_type == OpType::Invoke {
            if let Some(&prev) = self.outstanding.get(&op.process) {
                return bad(format!(
                    "process {} invokes again while its invoke at index {} (line {}) is outstanding",
                    op.process, self.ops[prev].index, self.ops[prev].line
                ));
            }
            check_invoke_value(&op)?;
            self.outstanding.insert(op.process, pos);
            self.partner.push(None);
        } else {
            let Some(&inv) = self.outstanding.get(&op.process) else {
                return bad(format!(
                    "{} for process {} without an outstanding invoke",
                    op.op_type.name(),
                    op.process
                ));
            };
            let invoke = &self.ops[inv];
            if invoke.f != op.f {
                return bad(format!(
                    "{} {} completes the invoke at index {} whose f is {}",
                    op.op_type.name(),
                    op.f.name(),
                    invoke.index,
                    invoke.f.name()
                ));
            }
            check_completion_value(invoke, &mut op)?;
            self.outstanding.remove(&op.process);
            self.partner[inv] = Some(pos);
            self.partner.push(Some(inv));
        }
        self.ops.push(op);
        assert_eq!(self.ops.len(), self.partner.len());
        Ok(())
    }

    /// Writes the history as JSON Lines.
    pub fn write_jsonl(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for op in &self.ops {
            let line = serde_json::to_string(&self.op_json(op))?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The JSON form of one event.
    pub fn op_json(&self, op: &Op) -> Value {
        let value = match &op.value {
            OpValue::Keys(keys) => Value::Array(
                keys.iter()
                    .map(|k| Value::String(self.key_name(*k).to_string()))
                    .collect(),
            ),
            OpValue::Mops(mops) => {
                Value::Array(mops.iter().map(|m| self.mop_json(op.op_type, m)).collect())
            }
        };
        let mut obj = Map::new();
        obj.insert("index".into(), json!(op.index));
        obj.insert("type".into(), json!(op.op_type.name()));
        obj.insert("process".into(), json!(op.process));
        obj.insert("time".into(), json!(op.time));
        obj.insert("f".into(), json!(op.f.name()));
        obj.insert("value".into(), value);
        if !op.rebalance_keys.is_empty() {
            let keys: Vec<&str> = op
                .rebalance_keys
                .iter()
                .map(|k| self.key_name(*k))
                .collect();
            obj.insert("rebalance-log".into(), json!([{ "keys": keys }]));
        }
        if op.seek_to_beginning {
            obj.insert("seek-to-beginning".into(), json!(true));
        }
        Value::Object(obj)
    }

    fn mop_json(&self, op_type: OpType, mop: &MicroOp) -> Value {
        match mop {
            MicroOp::Send { key, value, offset } => {
                let k = self.key_name(*key);
                match (op_type, offset) {
                    (OpType::Invoke, _) => json!(["send", k, value]),
                    (_, Some(o)) => json!(["send", k, [o, value]]),
                    (_, None) => json!(["send", k, [null, value]]),
                }
            }
            MicroOp::Poll { reads: None } => json!(["poll"]),
            MicroOp::Poll { reads: Some(reads) } => {
                let mut m = Map::new();
                for (k, pairs) in reads {
                    let pairs: Vec<Value> = pairs.iter().map(|(o, v)| json!([o, v])).collect();
                    m.insert(self.key_name(*k).to_string(), Value::Array(pairs));
                }
                json!(["poll", Value::Object(m)])
            }
            MicroOp::Read { key, value } => json!(["read", self.key_name(*key), value]),
            MicroOp::Write { key, value } => json!(["write", self.key_name(*key), value]),
            MicroOp::Cas { key, expected, new } => {
                json!(["cas", self.key_name(*key), [expected, new]])
            }
        }
    }
}

fn check_invoke_value(op: &Op) -> Result<(), HistoryError> {
    let bad = |reason: String| {
        Err(HistoryError::BadEvent {
            line: op.line,
            reason,
        })
    };
    check_mops_fit_f(op)?;
    for mop in op.mops() {
        match mop {
            MicroOp::Send {
                offset: Some(_), ..
            } => return bad("an invoked send cannot carry an offset yet".into()),
            MicroOp::Poll { reads: Some(_) } => {
                return bad("an invoked poll cannot carry results yet: use [\"poll\"]".into())
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_mops_fit_f(op: &Op) -> Result<(), HistoryError> {
    let bad = |reason: String| {
        Err(HistoryError::BadEvent {
            line: op.line,
            reason,
        })
    };
    match (&op.value, op.f.carries_mops()) {
        (OpValue::Keys(_), true) => return bad(format!("f {} needs micro-ops", op.f.name())),
        (OpValue::Mops(_), false) => return bad(format!("f {} needs a list of keys", op.f.name())),
        _ => {}
    }
    for mop in op.mops() {
        let fits = match op.f {
            OpFn::Send => matches!(mop, MicroOp::Send { .. }),
            OpFn::Poll => matches!(mop, MicroOp::Poll { .. }),
            _ => true,
        };
        if !fits {
            return bad(format!(
                "a {} micro-op inside an f {} operation",
                mop.kind(),
                op.f.name()
            ));
        }
    }
    Ok(())
}

/// Checks a completion against its invoke. A fail/info completion with a `null` value takes the
/// invoke's value; an ok completion must echo every micro-op with its result.
fn check_completion_value(invoke: &Op, op: &mut Op) -> Result<(), HistoryError> {
    let line = op.line;
    let bad = |reason: String| Err(HistoryError::BadEvent { line, reason });
    check_mops_fit_f(op)?;
    if !op.f.carries_mops() {
        return Ok(());
    }
    if op.mops().is_empty() && !invoke.mops().is_empty() && op.op_type != OpType::Ok {
        op.value = invoke.value.clone();
        return Ok(());
    }
    let (inv, done) = (invoke.mops(), op.mops());
    if inv.len() != done.len() {
        return bad(format!(
            "completion has {} micro-ops but its invoke (index {}) has {}",
            done.len(),
            invoke.index,
            inv.len()
        ));
    }
    for (i, (a, b)) in inv.iter().zip(done).enumerate() {
        let same = match (a, b) {
            (
                MicroOp::Send {
                    key: k1, value: v1, ..
                },
                MicroOp::Send {
                    key: k2,
                    value: v2,
                    offset,
                },
            ) => {
                if op.op_type == OpType::Ok && offset.is_none() {
                    return bad(format!("micro-op {i}: an ok send must carry its offset"));
                }
                k1 == k2 && v1 == v2
            }
            (MicroOp::Poll { .. }, MicroOp::Poll { reads }) => {
                if op.op_type == OpType::Ok && reads.is_none() {
                    return bad(format!("micro-op {i}: an ok poll must carry its results"));
                }
                true
            }
            (MicroOp::Read { key: k1, .. }, MicroOp::Read { key: k2, .. }) => k1 == k2,
            (MicroOp::Write { key: k1, value: v1 }, MicroOp::Write { key: k2, value: v2 }) => {
                k1 == k2 && v1 == v2
            }
            (
                MicroOp::Cas {
                    key: k1,
                    expected: e1,
                    new: n1,
                },
                MicroOp::Cas {
                    key: k2,
                    expected: e2,
                    new: n2,
                },
            ) => k1 == k2 && e1 == e2 && n1 == n2,
            _ => false,
        };
        if !same {
            return bad(format!(
                "micro-op {i} ({}) does not match micro-op {i} ({}) of its invoke (index {})",
                b.kind(),
                a.kind(),
                invoke.index
            ));
        }
    }
    Ok(())
}

/// A nemesis line (`"process": "nemesis"`), or `None` for a client operation. Only lines that
/// mention the word are parsed twice.
fn parse_nemesis(text: &str, line: u64) -> Result<Option<NemesisEvent>, HistoryError> {
    if !text.contains("\"nemesis\"") {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| HistoryError::MalformedJson {
        line,
        reason: e.to_string(),
    })?;
    if value.get("process").and_then(Value::as_str) != Some("nemesis") {
        return Ok(None);
    }
    let bad = |reason: &str| HistoryError::BadEvent {
        line,
        reason: format!("nemesis event: {reason}"),
    };
    let uint = |name: &str| value.get(name).and_then(Value::as_u64);
    let index = uint("index").ok_or_else(|| bad("\"index\" must be a non-negative integer"))?;
    let time = uint("time").ok_or_else(|| bad("\"time\" must be a non-negative integer"))?;
    let f = value
        .get("f")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("\"f\" must be a string"))?
        .to_string();
    let details = value.get("value").cloned().unwrap_or(Value::Null);
    Ok(Some(NemesisEvent {
        index,
        time,
        f,
        value: details,
    }))
}

fn parse_line(history: &mut History, text: &str, line: u64) -> Result<Op, HistoryError> {
    let value: Value = serde_json::from_str(text).map_err(|e| HistoryError::MalformedJson {
        line,
        reason: e.to_string(),
    })?;
    let bad = |reason: String| HistoryError::BadEvent { line, reason };
    let Value::Object(obj) = value else {
        return Err(bad("an event must be a JSON object".into()));
    };
    let uint = |name: &str| -> Result<u64, HistoryError> {
        obj.get(name)
            .ok_or_else(|| bad(format!("missing field \"{name}\"")))?
            .as_u64()
            .ok_or_else(|| bad(format!("field \"{name}\" must be a non-negative integer")))
    };
    let string = |name: &str| -> Result<&str, HistoryError> {
        obj.get(name)
            .ok_or_else(|| bad(format!("missing field \"{name}\"")))?
            .as_str()
            .ok_or_else(|| bad(format!("field \"{name}\" must be a string")))
    };
    let index = uint("index")?;
    let process = uint("process")?;
    let time = uint("time")?;
    let op_type = match string("type")? {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        other => {
            return Err(bad(format!(
                "unknown type \"{other}\" (expected invoke, ok, fail or info)"
            )))
        }
    };
    let f_name = string("f")?;
    let f = OpFn::parse(f_name).ok_or_else(|| {
        bad(format!(
            "unknown f \"{f_name}\" (expected send, poll, txn, assign or subscribe)"
        ))
    })?;
    let raw = obj
        .get("value")
        .ok_or_else(|| bad("missing field \"value\"".into()))?;
    let value = if f.carries_mops() {
        match raw {
            Value::Null if op_type != OpType::Invoke && op_type != OpType::Ok => {
                OpValue::Mops(Vec::new())
            }
            Value::Array(items) => {
                if items.len() > MOPS_PER_OP_MAX {
                    return Err(bad(format!("more than {MOPS_PER_OP_MAX} micro-ops")));
                }
                let mut mops = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    mops.push(
                        parse_mop(history, item)
                            .map_err(|reason| bad(format!("micro-op {i}: {reason}")))?,
                    );
                }
                OpValue::Mops(mops)
            }
            _ => return Err(bad("\"value\" must be a list of micro-ops".into())),
        }
    } else {
        OpValue::Keys(parse_keys(history, raw).map_err(|r| bad(format!("\"value\": {r}")))?)
    };
    let mut rebalance_keys = Vec::new();
    if let Some(log) = obj.get("rebalance-log") {
        let entries = log
            .as_array()
            .ok_or_else(|| bad("\"rebalance-log\" must be a list".into()))?;
        for entry in entries {
            let keys = entry
                .get("keys")
                .ok_or_else(|| bad("a rebalance-log entry needs \"keys\"".into()))?;
            let keys = parse_keys(history, keys).map_err(|r| bad(format!("rebalance-log: {r}")))?;
            rebalance_keys.extend(keys);
        }
    }
    let seek_to_beginning = match obj.get("seek-to-beginning") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("\"seek-to-beginning\" must be true or false".into())),
    };
    Ok(Op {
        index,
        op_type,
        process,
        time,
        f,
        value,
        rebalance_keys,
        seek_to_beginning,
        line,
    })
}

fn parse_keys(history: &mut History, raw: &Value) -> Result<Vec<KeyId>, String> {
    let items = raw.as_array().ok_or("expected a list of keys")?;
    items.iter().map(|k| parse_key(history, k)).collect()
}

fn parse_key(history: &mut History, raw: &Value) -> Result<KeyId, String> {
    let name = raw
        .as_str()
        .ok_or_else(|| format!("key {raw} must be a string"))?;
    if name.is_empty() || name.len() > KEY_BYTES_MAX {
        return Err(format!("key must be 1..={KEY_BYTES_MAX} bytes"));
    }
    Ok(history.key(name))
}

fn parse_int(raw: &Value, what: &str) -> Result<i64, String> {
    raw.as_i64()
        .ok_or_else(|| format!("{what} must be an integer, got {raw}"))
}

fn parse_mop(history: &mut History, raw: &Value) -> Result<MicroOp, String> {
    let items = raw.as_array().ok_or("a micro-op must be a list")?;
    let name = items
        .first()
        .and_then(Value::as_str)
        .ok_or("a micro-op starts with its name")?;
    let arity = |n: usize| -> Result<(), String> {
        if items.len() == n {
            Ok(())
        } else {
            Err(format!(
                "\"{name}\" takes {} arguments, got {}",
                n - 1,
                items.len() - 1
            ))
        }
    };
    match name {
        "send" => {
            arity(3)?;
            let key = parse_key(history, &items[1])?;
            match &items[2] {
                Value::Array(pair) if pair.len() == 2 => {
                    let offset = match &pair[0] {
                        Value::Null => None,
                        o => Some(o.as_u64().ok_or_else(|| format!("bad offset {o}"))?),
                    };
                    Ok(MicroOp::Send {
                        key,
                        value: parse_int(&pair[1], "value")?,
                        offset,
                    })
                }
                v => Ok(MicroOp::Send {
                    key,
                    value: parse_int(v, "value")?,
                    offset: None,
                }),
            }
        }
        "poll" => {
            if items.len() == 1 {
                return Ok(MicroOp::Poll { reads: None });
            }
            arity(2)?;
            let obj = items[1]
                .as_object()
                .ok_or("poll results must be an object")?;
            let mut reads = Vec::with_capacity(obj.len());
            for (k, pairs) in obj {
                let key = parse_key(history, &Value::String(k.clone()))?;
                let pairs = pairs
                    .as_array()
                    .ok_or("poll results per key must be a list")?;
                let mut out = Vec::with_capacity(pairs.len());
                for p in pairs {
                    let pair = p.as_array().filter(|a| a.len() == 2);
                    let pair = pair.ok_or_else(|| format!("{p} is not an [offset, value] pair"))?;
                    let offset = pair[0]
                        .as_u64()
                        .ok_or_else(|| format!("bad offset {}", pair[0]))?;
                    out.push((offset, parse_int(&pair[1], "value")?));
                }
                reads.push((key, out));
            }
            Ok(MicroOp::Poll { reads: Some(reads) })
        }
        "read" => {
            arity(3)?;
            let key = parse_key(history, &items[1])?;
            let value = match &items[2] {
                Value::Null => None,
                v => Some(parse_int(v, "value")?),
            };
            Ok(MicroOp::Read { key, value })
        }
        "write" => {
            arity(3)?;
            let key = parse_key(history, &items[1])?;
            Ok(MicroOp::Write {
                key,
                value: parse_int(&items[2], "value")?,
            })
        }
        "cas" => {
            arity(3)?;
            let key = parse_key(history, &items[1])?;
            let pair = items[2].as_array().filter(|a| a.len() == 2);
            let pair = pair.ok_or("cas takes [expected, new]")?;
            let expected = parse_int(&pair[0], "expected")?;
            Ok(MicroOp::Cas {
                key,
                expected,
                new: parse_int(&pair[1], "new")?,
            })
        }
        other => Err(format!(
            "unknown micro-op \"{other}\" (expected send, poll, read, write or cas)"
        )),
    }
}

/// Records a history as it happens (the simulator's and the real-cluster harness's side of the
/// format). It assigns indexes, and refuses events that break the format's rules, so a recorded
/// history always parses back.
#[derive(Debug, Clone, Default)]
pub struct HistoryRecorder {
    /// The history so far.
    history: History,
    /// The next index to assign.
    index_next: u64,
}

impl HistoryRecorder {
    /// An empty recorder.
    pub fn new() -> HistoryRecorder {
        HistoryRecorder::default()
    }

    /// Interns a key name for use in micro-ops.
    pub fn key(&mut self, name: &str) -> KeyId {
        self.history.key(name)
    }

    /// Records an invocation; returns its index.
    pub fn invoke(
        &mut self,
        process: u64,
        time: u64,
        f: OpFn,
        value: OpValue,
    ) -> Result<u64, HistoryError> {
        self.record(process, time, OpType::Invoke, f, value, Vec::new())
    }

    /// Records a completion (`ok`, `fail` or `info`) of `process`'s outstanding operation. For
    /// fail/info, pass the invoke's value (or `OpValue::Mops(vec![])` to reuse it).
    pub fn complete(
        &mut self,
        process: u64,
        time: u64,
        op_type: OpType,
        value: OpValue,
    ) -> Result<u64, HistoryError> {
        self.complete_rebalanced(process, time, op_type, value, Vec::new())
    }

    /// Like [`HistoryRecorder::complete`], also naming keys rebalanced during the operation.
    pub fn complete_rebalanced(
        &mut self,
        process: u64,
        time: u64,
        op_type: OpType,
        value: OpValue,
        rebalance_keys: Vec<KeyId>,
    ) -> Result<u64, HistoryError> {
        assert!(
            op_type != OpType::Invoke,
            "complete() records completions only"
        );
        let f = self
            .history
            .outstanding
            .get(&process)
            .map(|&pos| self.history.ops[pos].f)
            .ok_or_else(|| HistoryError::Inconsistent {
                line: 0,
                reason: format!("process {process} has no outstanding invoke"),
            })?;
        self.record(process, time, op_type, f, value, rebalance_keys)
    }

    fn record(
        &mut self,
        process: u64,
        time: u64,
        op_type: OpType,
        f: OpFn,
        value: OpValue,
        rebalance_keys: Vec<KeyId>,
    ) -> Result<u64, HistoryError> {
        let index = self.index_next;
        let op = Op {
            index,
            op_type,
            process,
            time,
            f,
            value,
            rebalance_keys,
            seek_to_beginning: false,
            line: 0,
        };
        self.history.push(op)?;
        self.index_next += 1;
        assert_eq!(self.history.ops().last().map(|o| o.index), Some(index));
        Ok(index)
    }

    /// The history recorded so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Finishes recording.
    pub fn into_history(self) -> History {
        self.history
    }
}
