//! A linearizability checker: Wing & Gong's search with Lowe's memoisation, P-compositional.
//!
//! - **Search** (Wing–Gong, as Lowe and Porcupine implement it): walk a linked list of call and
//!   return events; linearize a call if the model accepts it, backtrack when a return is reached
//!   whose call is not yet linearized.
//! - **Memoisation** (Lowe): a configuration is (set of linearized operations, model state); one
//!   already explored is never explored again. The set is a bitset.
//! - **P-compositionality**: a history is linearizable iff each key's sub-history is, so keys are
//!   searched separately, in parallel on std threads.
//! - **Budget**: a deadline and a cap on memoised configurations per key; exceeding either answers
//!   [`Verdict::Unknown`] instead of hanging.
//! - **Minimal witness**: on failure the key's operations are shrunk (chunks, then single
//!   operations) while the rest stays non-linearizable, with a bounded number of re-checks.
//!
//! Indeterminate operations (info, or never completed) have no return event: they may take effect
//! at any point after their call, or never; their output is unknown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::history::{History, KeyId, MicroOp, OpFn, OpType};

/// A sequential specification. `step` returns the next state if `input` may produce `output`
/// in this state; `output` is `None` when it is unknown (an indeterminate operation), in which
/// case the step must succeed whenever the input can take effect at all.
pub trait Model: Clone + Eq + Hash + Send + Sync + Debug {
    /// What an operation asks.
    type Input: Clone + Debug + Send + Sync;
    /// What it answered.
    type Output: Clone + Debug + Send + Sync + PartialEq;
    /// The transition, or `None` if `output` is impossible here.
    fn step(&self, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self>;
}

/// One operation of a single-object history.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<I, O> {
    /// History index of the invocation (what reports cite).
    pub id: u64,
    /// The process that ran it.
    pub process: u64,
    /// When it was invoked (any totally ordered clock: history index or nanoseconds).
    pub call: u64,
    /// When it returned; `None` for an indeterminate operation.
    pub ret: Option<u64>,
    /// What it asked.
    pub input: I,
    /// What it answered; `None` when unknown.
    pub output: Option<O>,
}

/// Limits of one check.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Give up (Unknown) after this instant.
    pub deadline: Option<Instant>,
    /// Give up (Unknown) after memoising this many configurations for one key.
    pub states_max: u64,
    /// Most re-checks spent shrinking a failing key.
    pub shrink_checks_max: u32,
}

impl Budget {
    /// A budget of `seconds` of wall time and `states_max` configurations per key.
    pub fn new(seconds: u64, states_max: u64) -> Budget {
        Budget {
            deadline: Instant::now().checked_add(Duration::from_secs(seconds)),
            states_max,
            shrink_checks_max: 2_000,
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(60, 10_000_000)
    }
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    NotLinearizable,
    /// The budget ran out first.
    Unknown(String),
}

const NIL: usize = usize::MAX;

/// Event list node.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Operation position.
    op: usize,
    /// Call (true) or return event.
    is_call: bool,
    /// For a call: its return node, NIL if indeterminate.
    ret: usize,
    /// Linked-list neighbours.
    prev: usize,
    /// Linked-list neighbours.
    next: usize,
}

/// Fixed-size bitset of linearized operations (the memoisation key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0u64; n.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches for a linearization of `ops` from `init`.
pub fn check_operations<M: Model>(
    init: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: &Budget,
) -> Verdict {
    let mut nodes = build_list(ops);
    let head = nodes.len() - 1;
    let mut returns_left = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut state = init.clone();
    let mut linearized = Bits::new(ops.len());
    let mut cache: HashSet<(Bits, M)> = HashSet::new();
    let mut stack: Vec<(usize, M)> = Vec::new();
    let mut entry = nodes[head].next;
    let mut steps: u64 = 0;
    while returns_left > 0 {
        steps += 1;
        if steps & 4095 == 0 && budget.expired() {
            return Verdict::Unknown("deadline reached".into());
        }
        if entry != NIL && nodes[entry].is_call {
            let op = &ops[nodes[entry].op];
            if let Some(next) = state.step(&op.input, op.output.as_ref()) {
                let mut lin = linearized.clone();
                lin.set(nodes[entry].op);
                if cache.insert((lin.clone(), next.clone())) {
                    if cache.len() as u64 > budget.states_max {
                        return Verdict::Unknown(format!(
                            "more than {} configurations",
                            budget.states_max
                        ));
                    }
                    stack.push((entry, std::mem::replace(&mut state, next)));
                    linearized = lin;
                    if nodes[entry].ret != NIL {
                        returns_left -= 1;
                    }
                    lift(&mut nodes, entry);
                    entry = nodes[head].next;
                    continue;
                }
            }
            entry = nodes[entry].next;
            continue;
        }
        // A return whose call is not linearized (or the end of the list): backtrack.
        let Some((call, previous)) = stack.pop() else {
            return Verdict::NotLinearizable;
        };
        state = previous;
        linearized.clear(nodes[call].op);
        if nodes[call].ret != NIL {
            returns_left += 1;
        }
        unlift(&mut nodes, call);
        entry = nodes[call].next;
    }
    assert!(stack.len() <= ops.len());
    Verdict::Linearizable
}

/// Events sorted by time (a call before a return at the same time: concurrent, the permissive
/// reading), linked, with a head sentinel as the last node.
fn build_list<I, O>(ops: &[Operation<I, O>]) -> Vec<Node> {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i));
        if let Some(r) = op.ret {
            assert!(r >= op.call, "operation {} returns before its call", op.id);
            events.push((r, true, i));
        }
    }
    events.sort_unstable();
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 1);
    let mut call_node = vec![NIL; ops.len()];
    for (pos, &(_, is_return, op)) in events.iter().enumerate() {
        let prev = if pos == 0 { events.len() } else { pos - 1 };
        let next = if pos + 1 == events.len() {
            NIL
        } else {
            pos + 1
        };
        nodes.push(Node {
            op,
            is_call: !is_return,
            ret: NIL,
            prev,
            next,
        });
        if is_return {
            nodes[call_node[op]].ret = pos;
        } else {
            call_node[op] = pos;
        }
    }
    let first = if events.is_empty() { NIL } else { 0 };
    nodes.push(Node {
        op: NIL,
        is_call: false,
        ret: NIL,
        prev: NIL,
        next: first,
    });
    nodes
}

fn unlink(nodes: &mut [Node], n: usize) {
    let (prev, next) = (nodes[n].prev, nodes[n].next);
    nodes[prev].next = next;
    if next != NIL {
        nodes[next].prev = prev;
    }
}

fn relink(nodes: &mut [Node], n: usize) {
    let (prev, next) = (nodes[n].prev, nodes[n].next);
    nodes[prev].next = n;
    if next != NIL {
        nodes[next].prev = n;
    }
}

fn lift(nodes: &mut [Node], call: usize) {
    assert!(nodes[call].is_call);
    unlink(nodes, call);
    if nodes[call].ret != NIL {
        unlink(nodes, nodes[call].ret);
    }
}

fn unlift(nodes: &mut [Node], call: usize) {
    assert!(nodes[call].is_call);
    if nodes[call].ret != NIL {
        relink(nodes, nodes[call].ret);
    }
    relink(nodes, call);
}

/// Shrinks a non-linearizable history to a small sub-history that is still non-linearizable
/// (removing chunks, then single operations; an Unknown answer keeps the operation).
pub fn shrink<M: Model>(
    init: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: &Budget,
) -> Vec<Operation<M::Input, M::Output>> {
    let mut kept: Vec<Operation<M::Input, M::Output>> = ops.to_vec();
    let mut checks = 0u32;
    let mut chunk = (kept.len() / 2).max(1);
    loop {
        let mut i = 0;
        while i < kept.len() && checks < budget.shrink_checks_max && !budget.expired() {
            let end = (i + chunk).min(kept.len());
            let mut candidate = kept[..i].to_vec();
            candidate.extend_from_slice(&kept[end..]);
            checks += 1;
            if check_operations(init, &candidate, budget) == Verdict::NotLinearizable {
                kept = candidate;
            } else {
                i = end;
            }
        }
        if chunk == 1 || checks >= budget.shrink_checks_max {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    assert!(kept.len() <= ops.len());
    kept
}

/// The verdict for one key.
#[derive(Debug, Clone)]
pub struct KeyVerdict<I, O> {
    /// The key's name.
    pub key: String,
    /// Operations checked.
    pub operations: usize,
    /// The outcome.
    pub verdict: Verdict,
    /// For a non-linearizable key: a small sub-history that is still non-linearizable.
    pub witness: Vec<Operation<I, O>>,
}

/// One key's search problem: its name, the model's initial state, its operations.
pub type KeyOps<M> = (
    String,
    M,
    Vec<Operation<<M as Model>::Input, <M as Model>::Output>>,
);

/// Verdict slots filled by the workers.
type Slots<M> = Mutex<Vec<Option<KeyVerdict<<M as Model>::Input, <M as Model>::Output>>>>;

/// Checks many independent keys in parallel (P-compositionality). Returns verdicts in key order.
pub fn check_keys<M: Model>(
    keys: Vec<KeyOps<M>>,
    budget: &Budget,
) -> Vec<KeyVerdict<M::Input, M::Output>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(keys.len());
    let next = AtomicUsize::new(0);
    let results: Slots<M> = Mutex::new((0..keys.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((key, init, ops)) = keys.get(i) else {
                    break;
                };
                let verdict = check_operations(init, ops, budget);
                let witness = if verdict == Verdict::NotLinearizable {
                    shrink(init, ops, budget)
                } else {
                    Vec::new()
                };
                let v = KeyVerdict {
                    key: key.clone(),
                    operations: ops.len(),
                    verdict,
                    witness,
                };
                results
                    .lock()
                    .expect("no worker panics while holding the lock")[i] = Some(v);
            });
        }
    });
    let results = results.into_inner().expect("workers finished");
    let out: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every key was checked"))
        .collect();
    assert_eq!(out.len(), keys.len());
    out
}

// ---------------------------------------------------------------------------------------------
// Models.

/// A read/write register; `None` is the initial, never-written value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Register(pub Option<i64>);

/// Register operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set to `new` if the value is `expected` (compare-and-set registers only).
    Cas(i64, i64),
}

/// Register answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// What a read saw.
    Read(Option<i64>),
    /// A write or successful cas completed.
    Done,
}

impl Model for Register {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    fn step(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> Option<Register> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(self.clone()),
            (RegisterInput::Read, Some(RegisterOutput::Read(v))) => {
                (*v == self.0).then(|| self.clone())
            }
            (RegisterInput::Write(v), None | Some(RegisterOutput::Done)) => {
                Some(Register(Some(*v)))
            }
            _ => None,
        }
    }
}

/// A compare-and-set register. An ok cas swapped; a cas whose comparison failed completes `fail`
/// and is not part of the history (Jepsen's convention); an indeterminate cas swaps if it can.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CasRegister(pub Option<i64>);

impl Model for CasRegister {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    fn step(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> Option<CasRegister> {
        match (input, output) {
            (RegisterInput::Cas(expected, new), None) => Some(if self.0 == Some(*expected) {
                CasRegister(Some(*new))
            } else {
                self.clone()
            }),
            (RegisterInput::Cas(expected, new), Some(RegisterOutput::Done)) => {
                (self.0 == Some(*expected)).then_some(CasRegister(Some(*new)))
            }
            (RegisterInput::Cas(..), Some(_)) => None,
            _ => Register(self.0)
                .step(input, output)
                .map(|r| CasRegister(r.0)),
        }
    }
}

/// An append-only log (one partition): appends take the next offset, reads see what the
/// appends stored.
///
/// Every append must carry its offset (`Appended(o)`, also for indeterminate appends: the
/// adapter takes it from a poll that read the value): then the log's content is fixed by the
/// history (offset `o` holds the value appended at `o`) and the model state is just the log's
/// length. Memoising a length instead of a copy of the log keeps the search's memory linear in
/// the configurations explored rather than quadratic. An append without a known offset never
/// linearizes.
#[derive(Debug, Clone)]
pub struct AppendLog {
    /// Records appended so far.
    len: u64,
    /// Offset -> value, from the appends' known offsets (shared by every state of one search).
    content: Arc<HashMap<u64, i64>>,
}

impl PartialEq for AppendLog {
    fn eq(&self, other: &AppendLog) -> bool {
        // States of one search share `content`; only the length distinguishes them.
        self.len == other.len
    }
}

impl Eq for AppendLog {}

impl Hash for AppendLog {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len.hash(state);
    }
}

impl AppendLog {
    /// The empty log for a search over `ops`: learns where each append landed.
    pub fn for_operations(ops: &[Operation<LogInput, LogOutput>]) -> AppendLog {
        let mut content = HashMap::new();
        for op in ops {
            if let (LogInput::Append(v), Some(LogOutput::Appended(o))) = (&op.input, &op.output) {
                // Two appends claiming one offset: the first wins here, and the other can then
                // never linearize (its value is not at its offset), as it should not.
                content.entry(*o).or_insert(*v);
            }
        }
        AppendLog {
            len: 0,
            content: Arc::new(content),
        }
    }

    /// Records appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is appended yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn holds(&self, offset: u64, value: i64) -> bool {
        offset < self.len && self.content.get(&offset) == Some(&value)
    }
}

/// Log operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogInput {
    /// Append a value.
    Append(i64),
    /// Read: these (offset, value) pairs, relative to the partition's first offset.
    Read(Vec<(u64, i64)>),
}

/// Log answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogOutput {
    /// The offset an append got (relative to the partition's first offset).
    Appended(u64),
    /// A read matched what it read (the content is in the input).
    Read,
}

impl Model for AppendLog {
    type Input = LogInput;
    type Output = LogOutput;
    fn step(&self, input: &LogInput, output: Option<&LogOutput>) -> Option<AppendLog> {
        match (input, output) {
            (LogInput::Append(v), Some(LogOutput::Appended(o))) => {
                let next = AppendLog {
                    len: self.len + 1,
                    content: Arc::clone(&self.content),
                };
                (*o == self.len && next.holds(*o, *v)).then_some(next)
            }
            (LogInput::Read(pairs), None | Some(LogOutput::Read)) => pairs
                .iter()
                .all(|(o, v)| self.holds(*o, *v))
                .then(|| self.clone()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adapters from rill histories.

/// Register operations per key, from the key-value workload's `read`/`write`/`cas` micro-ops
/// (a compacted topic read as one register per key). Failed operations did not happen and are
/// dropped; so are indeterminate reads, which constrain nothing.
pub fn register_operations(
    history: &History,
) -> BTreeMap<KeyId, Vec<Operation<RegisterInput, RegisterOutput>>> {
    let mut out: BTreeMap<KeyId, Vec<Operation<RegisterInput, RegisterOutput>>> = BTreeMap::new();
    for (pos, invoke) in history.ops().iter().enumerate() {
        if invoke.op_type != OpType::Invoke || invoke.f != OpFn::Txn {
            continue;
        }
        let outcome = history.outcome(pos);
        if outcome == OpType::Fail {
            continue;
        }
        let done = history.partner(pos).map(|c| &history.ops()[c]);
        let ret = done.filter(|_| outcome == OpType::Ok).map(|c| c.index);
        let results = done.map_or(invoke.mops(), |c| c.mops());
        for (i, mop) in invoke.mops().iter().enumerate() {
            let known = outcome == OpType::Ok;
            let (key, input, output) = match (mop, results.get(i)) {
                (MicroOp::Read { key, .. }, Some(MicroOp::Read { value, .. })) if known => (
                    *key,
                    RegisterInput::Read,
                    Some(RegisterOutput::Read(*value)),
                ),
                (MicroOp::Write { key, value }, _) => (
                    *key,
                    RegisterInput::Write(*value),
                    known.then_some(RegisterOutput::Done),
                ),
                (MicroOp::Cas { key, expected, new }, _) => (
                    *key,
                    RegisterInput::Cas(*expected, *new),
                    known.then_some(RegisterOutput::Done),
                ),
                _ => continue,
            };
            out.entry(key).or_default().push(Operation {
                id: invoke.index,
                process: invoke.process,
                call: invoke.index,
                ret,
                input,
                output,
            });
        }
    }
    out
}

/// Log operations per partition from the queue workload: an ok/info send is an append (ok with
/// its offset), an ok poll of a key reads the (offset, value) pairs it returned. Offsets are
/// made relative to the smallest offset seen on the key, and must then be dense: this check is
/// for non-transactional histories (transaction markers take offsets no one reads).
///
/// An indeterminate send takes the offset an ok poll read it at; one that no poll read is
/// assumed never to have landed and is left out. (Searching every place an unread record could
/// have landed is exponential; if it did land below acknowledged offsets, the gap it leaves
/// makes the key non-linearizable, which names the spot to look at.)
pub fn log_operations(history: &History) -> BTreeMap<KeyId, Vec<Operation<LogInput, LogOutput>>> {
    let mut base: BTreeMap<KeyId, u64> = BTreeMap::new();
    let mut see = |k: KeyId, o: u64| {
        let b = base.entry(k).or_insert(o);
        *b = (*b).min(o);
    };
    for op in history.ops() {
        for mop in op.mops() {
            match mop {
                MicroOp::Send {
                    key,
                    offset: Some(o),
                    ..
                } => see(*key, *o),
                MicroOp::Poll { reads: Some(reads) } => {
                    reads
                        .iter()
                        .flat_map(|(k, ps)| ps.iter().map(|(o, _)| (*k, *o)))
                        .for_each(|(k, o)| see(k, o));
                }
                _ => {}
            }
        }
    }
    // Where ok polls saw each value: pins down indeterminate sends.
    let mut read_at: HashMap<(KeyId, i64), u64> = HashMap::new();
    for op in history.ops().iter().filter(|o| o.op_type == OpType::Ok) {
        for mop in op.mops() {
            if let MicroOp::Poll { reads: Some(reads) } = mop {
                for (k, pairs) in reads {
                    for (o, v) in pairs {
                        read_at.entry((*k, *v)).or_insert(*o);
                    }
                }
            }
        }
    }
    let mut out: BTreeMap<KeyId, Vec<Operation<LogInput, LogOutput>>> = BTreeMap::new();
    for (pos, invoke) in history.ops().iter().enumerate() {
        let outcome = history.outcome_if_invoke(pos);
        if matches!(outcome, None | Some(OpType::Fail)) {
            continue;
        }
        let done = history.partner(pos).map(|c| &history.ops()[c]);
        let ok = outcome == Some(OpType::Ok);
        let ret = done.filter(|_| ok).map(|c| c.index);
        let mops = done.map_or(invoke.mops(), |c| c.mops());
        for mop in mops {
            let mut push = |key: KeyId, input, output| {
                out.entry(key).or_default().push(Operation {
                    id: invoke.index,
                    process: invoke.process,
                    call: invoke.index,
                    ret,
                    input,
                    output,
                })
            };
            match mop {
                MicroOp::Send { key, value, offset } => {
                    let b = base.get(key).copied().unwrap_or(0);
                    let offset = match (ok, offset) {
                        (true, Some(o)) => *o,
                        // Indeterminate: a poll that read it tells where it landed; if none
                        // did, assume it never landed (see the doc comment).
                        _ => match read_at.get(&(*key, *value)) {
                            Some(o) => *o,
                            None => continue,
                        },
                    };
                    push(
                        *key,
                        LogInput::Append(*value),
                        Some(LogOutput::Appended(offset - b)),
                    );
                }
                MicroOp::Poll { reads: Some(reads) } if ok => {
                    for (k, pairs) in reads.iter().filter(|(_, ps)| !ps.is_empty()) {
                        let b = base.get(k).copied().unwrap_or(0);
                        let rel = pairs.iter().map(|(o, v)| (o - b, *v)).collect();
                        push(*k, LogInput::Read(rel), Some(LogOutput::Read));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// One linearizability verdict for a whole history, JSON-ready.
#[derive(Debug, Clone)]
pub struct LinearReport {
    /// Which adapter/model: "log" or "register".
    pub model: &'static str,
    /// Keys checked.
    pub keys: usize,
    /// Operations checked, over all keys.
    pub operations: usize,
    /// Overall: NotLinearizable if any key is; else Unknown if any key is; else Linearizable.
    pub verdict: Verdict,
    /// Keys that are not linearizable or unknown, with their witnesses.
    pub failures: Vec<Value>,
}

fn summarize<I: Debug, O: Debug>(
    model: &'static str,
    verdicts: &[KeyVerdict<I, O>],
) -> LinearReport {
    let mut verdict = Verdict::Linearizable;
    let mut failures = Vec::new();
    for v in verdicts {
        match &v.verdict {
            Verdict::Linearizable => continue,
            Verdict::NotLinearizable => verdict = Verdict::NotLinearizable,
            Verdict::Unknown(reason) => {
                if verdict == Verdict::Linearizable {
                    verdict = Verdict::Unknown(format!("key {}: {reason}", v.key));
                }
            }
        }
        let witness: Vec<Value> = v
            .witness
            .iter()
            .map(|o| {
                json!({"op": o.id, "process": o.process, "call": o.call, "ret": o.ret,
                       "input": format!("{:?}", o.input), "output": format!("{:?}", o.output)})
            })
            .collect();
        failures.push(json!({"key": v.key, "operations": v.operations,
                             "verdict": verdict_name(&v.verdict), "witness": witness}));
    }
    LinearReport {
        model,
        keys: verdicts.len(),
        operations: verdicts.iter().map(|v| v.operations).sum(),
        verdict,
        failures,
    }
}

/// "linearizable", "not-linearizable" or "unknown".
pub fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Linearizable => "linearizable",
        Verdict::NotLinearizable => "not-linearizable",
        Verdict::Unknown(_) => "unknown",
    }
}

/// Checks every partition of a queue history as an append-only log.
pub fn check_logs(history: &History, budget: &Budget) -> LinearReport {
    let keys = log_operations(history)
        .into_iter()
        .map(|(k, ops)| {
            let init = AppendLog::for_operations(&ops);
            (history.key_name(k).to_string(), init, ops)
        })
        .collect();
    summarize("log", &check_keys(keys, budget))
}

/// Checks every register of a key-value history as a compare-and-set register.
pub fn check_registers(history: &History, budget: &Budget) -> LinearReport {
    let keys = register_operations(history)
        .into_iter()
        .map(|(k, ops)| (history.key_name(k).to_string(), CasRegister::default(), ops))
        .collect();
    summarize("register", &check_keys(keys, budget))
}
