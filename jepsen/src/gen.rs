//! Generators of *valid* histories from sequential models, seeded and deterministic: the property
//! tests use them to show the checkers raise no false alarms, the benchmark to produce large
//! inputs. (The simulator records real histories with [`HistoryRecorder`] the same way.)

use crate::history::{History, HistoryRecorder, KeyId, MicroOp, OpFn, OpType, OpValue};

/// A small seeded PRNG (splitmix64): deterministic, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Shape of a generated queue history.
#[derive(Debug, Clone, Copy)]
pub struct QueueShape {
    /// Operations to generate before the final polls.
    pub operations: u64,
    /// Concurrent processes.
    pub processes: u64,
    /// Partitions (keys `t-0`, `t-1`, ...).
    pub keys: u64,
    /// Percent of completions that are info (indeterminate).
    pub info_percent: u64,
    /// Percent of sends that fail.
    pub fail_percent: u64,
    /// Most records one poll returns per key.
    pub poll_batch_max: u64,
}

impl Default for QueueShape {
    fn default() -> QueueShape {
        QueueShape {
            operations: 200,
            processes: 4,
            keys: 3,
            info_percent: 5,
            fail_percent: 5,
            poll_batch_max: 4,
        }
    }
}

/// One process of the queue model.
#[derive(Debug, Clone)]
struct Client {
    /// Process id (a process whose op went info keeps going: the format allows it).
    process: u64,
    /// Keys assigned, each with the consumer's position (next offset to read).
    positions: Vec<(KeyId, u64)>,
    /// The outstanding operation, if any.
    pending: Option<Pending>,
}

/// An invoked, not yet completed operation.
#[derive(Debug, Clone)]
enum Pending {
    /// Sends (key, value), applied at completion.
    Send(Vec<(KeyId, i64)>),
    /// A poll.
    Poll,
    /// An assign to these keys.
    Assign(Vec<KeyId>),
}

/// Generates a valid multi-partition queue history: every send lands at the next offset of its
/// log, every poll continues from its consumer's position, info sends may or may not land, and
/// final polls read every log to its end (so nothing is unseen).
pub fn queue_history(seed: u64, shape: &QueueShape) -> History {
    assert!(shape.processes > 0 && shape.keys > 0);
    let mut rng = Rng::new(seed);
    let mut rec = HistoryRecorder::new();
    let keys: Vec<KeyId> = (0..shape.keys)
        .map(|k| rec.key(&format!("t-{k}")))
        .collect();
    let mut logs: Vec<Vec<i64>> = vec![Vec::new(); keys.len()];
    let mut clients: Vec<Client> = (0..shape.processes)
        .map(|p| Client {
            process: p,
            positions: keys.iter().map(|k| (*k, 0)).collect(),
            pending: None,
        })
        .collect();
    let mut time = 0u64;
    let mut value_next = 0i64;
    let mut invoked = 0u64;
    while invoked < shape.operations || clients.iter().any(|c| c.pending.is_some()) {
        time += 1 + rng.below(1_000);
        let c = rng.below(shape.processes) as usize;
        if clients[c].pending.is_some() {
            complete(&mut rng, &mut rec, &mut clients[c], &mut logs, shape, time);
        } else if invoked < shape.operations {
            invoked += 1;
            let pending = match rng.below(10) {
                0 => {
                    let chosen: Vec<KeyId> =
                        keys.iter().copied().filter(|_| rng.chance(60)).collect();
                    Pending::Assign(chosen)
                }
                1..=4 => {
                    let n = 1 + rng.below(3);
                    let sends: Vec<(KeyId, i64)> = (0..n)
                        .map(|_| {
                            value_next += 1;
                            (keys[rng.below(shape.keys) as usize], value_next)
                        })
                        .collect();
                    Pending::Send(sends)
                }
                _ => Pending::Poll,
            };
            let (f, value) = invoke_value(&pending);
            rec.invoke(clients[c].process, time, f, value)
                .expect("model invokes are valid");
            clients[c].pending = Some(pending);
        }
    }
    final_polls(&mut rec, &mut clients, &keys, &logs, &mut time);
    rec.into_history()
}

fn invoke_value(pending: &Pending) -> (OpFn, OpValue) {
    match pending {
        Pending::Send(sends) => (
            OpFn::Send,
            OpValue::Mops(
                sends
                    .iter()
                    .map(|(key, value)| MicroOp::Send {
                        key: *key,
                        value: *value,
                        offset: None,
                    })
                    .collect(),
            ),
        ),
        Pending::Poll => (
            OpFn::Poll,
            OpValue::Mops(vec![MicroOp::Poll { reads: None }]),
        ),
        Pending::Assign(keys) => (OpFn::Assign, OpValue::Keys(keys.clone())),
    }
}

fn complete(
    rng: &mut Rng,
    rec: &mut HistoryRecorder,
    client: &mut Client,
    logs: &mut [Vec<i64>],
    shape: &QueueShape,
    time: u64,
) {
    let pending = client.pending.take().expect("caller checked");
    let info = rng.chance(shape.info_percent);
    let (op_type, value) = match pending {
        Pending::Send(sends) => {
            let fail = !info && rng.chance(shape.fail_percent);
            // An info send lands or not, at random; a failed one never does.
            let lands = !fail && (!info || rng.chance(50));
            let mops = sends
                .iter()
                .map(|(key, value)| {
                    let offset = lands.then(|| {
                        let log = &mut logs[key.0 as usize];
                        log.push(*value);
                        log.len() as u64 - 1
                    });
                    MicroOp::Send {
                        key: *key,
                        value: *value,
                        offset: offset.filter(|_| !info),
                    }
                })
                .collect();
            let t = if fail {
                OpType::Fail
            } else if info {
                OpType::Info
            } else {
                OpType::Ok
            };
            (t, OpValue::Mops(mops))
        }
        Pending::Poll if info => (
            OpType::Info,
            OpValue::Mops(vec![MicroOp::Poll { reads: None }]),
        ),
        Pending::Poll => {
            let mut reads = Vec::new();
            for (key, pos) in client.positions.iter_mut() {
                let log = &logs[key.0 as usize];
                let end = (*pos + rng.below(shape.poll_batch_max + 1)).min(log.len() as u64);
                let pairs: Vec<(u64, i64)> = (*pos..end).map(|o| (o, log[o as usize])).collect();
                *pos = end;
                if !pairs.is_empty() {
                    reads.push((*key, pairs));
                }
            }
            (
                OpType::Ok,
                OpValue::Mops(vec![MicroOp::Poll { reads: Some(reads) }]),
            )
        }
        Pending::Assign(keys) => {
            // Kept keys keep their position; new ones start from the beginning.
            let old = std::mem::take(&mut client.positions);
            client.positions = keys
                .iter()
                .map(|k| (*k, old.iter().find(|(o, _)| o == k).map_or(0, |(_, p)| *p)))
                .collect();
            (OpType::Ok, OpValue::Keys(keys))
        }
    };
    rec.complete(client.process, time, op_type, value)
        .expect("model completions are valid");
}

/// Each process assigns every key (keeping positions) and polls to the end of every log.
fn final_polls(
    rec: &mut HistoryRecorder,
    clients: &mut [Client],
    keys: &[KeyId],
    logs: &[Vec<i64>],
    time: &mut u64,
) {
    for client in clients.iter_mut() {
        let old = std::mem::take(&mut client.positions);
        client.positions = keys
            .iter()
            .map(|k| (*k, old.iter().find(|(o, _)| o == k).map_or(0, |(_, p)| *p)))
            .collect();
        *time += 1;
        let assign = OpValue::Keys(keys.to_vec());
        rec.invoke(client.process, *time, OpFn::Assign, assign.clone())
            .expect("valid");
        rec.complete(client.process, *time, OpType::Ok, assign)
            .expect("valid");
        let mut reads = Vec::new();
        for (key, pos) in client.positions.iter_mut() {
            let log = &logs[key.0 as usize];
            let pairs: Vec<(u64, i64)> = (*pos..log.len() as u64)
                .map(|o| (o, log[o as usize]))
                .collect();
            *pos = log.len() as u64;
            if !pairs.is_empty() {
                reads.push((*key, pairs));
            }
        }
        *time += 1;
        let poll = OpValue::Mops(vec![MicroOp::Poll { reads: None }]);
        rec.invoke(client.process, *time, OpFn::Poll, poll)
            .expect("valid");
        let done = OpValue::Mops(vec![MicroOp::Poll { reads: Some(reads) }]);
        rec.complete(client.process, *time, OpType::Ok, done)
            .expect("valid");
    }
}

/// What an operation did when it took effect.
#[derive(Debug, Clone)]
enum Effect {
    /// It happened; the completed micro-op (a read carries its value).
    Done(MicroOp),
    /// A cas whose comparison failed: nothing happened, it completes fail.
    CasFailed,
}

/// Generates a linearizable key-value (register) history: each operation takes effect at a
/// random moment between its invoke and its completion; some complete info (and may or may not
/// take effect); a cas whose comparison fails completes fail.
pub fn register_history(seed: u64, operations: u64, processes: u64, keys: u64) -> History {
    assert!(processes > 0 && keys > 0);
    let mut rng = Rng::new(seed);
    let mut rec = HistoryRecorder::new();
    let key_ids: Vec<KeyId> = (0..keys).map(|k| rec.key(&format!("k{k}"))).collect();
    let mut registers: Vec<Option<i64>> = vec![None; key_ids.len()];
    // Per process: the outstanding mop and, once it took effect, what it did.
    let mut pending: Vec<Option<(MicroOp, Option<Effect>)>> = vec![None; processes as usize];
    let (mut time, mut invoked, mut value_next) = (0u64, 0u64, 0i64);
    while invoked < operations || pending.iter().any(Option::is_some) {
        time += 1;
        let p = rng.below(processes) as usize;
        match pending[p].take() {
            None if invoked < operations => {
                invoked += 1;
                let k = rng.below(keys) as usize;
                let key = key_ids[k];
                value_next += 1;
                let mop = match rng.below(3) {
                    0 => MicroOp::Read { key, value: None },
                    1 => MicroOp::Write {
                        key,
                        value: value_next,
                    },
                    // Usually the current value (so it swaps), sometimes a stale guess.
                    _ => MicroOp::Cas {
                        key,
                        expected: registers[k].unwrap_or(0),
                        new: value_next,
                    },
                };
                rec.invoke(p as u64, time, OpFn::Txn, OpValue::Mops(vec![mop.clone()]))
                    .expect("valid");
                pending[p] = Some((mop, None));
            }
            None => {}
            Some((mop, None)) if rng.chance(50) => {
                let effect = apply(&mut registers, &mop);
                pending[p] = Some((mop, Some(effect)));
            }
            Some((mop, effect)) => {
                let info = rng.chance(5);
                let effect = match effect {
                    Some(e) => Some(e),
                    None if info && rng.chance(50) => None,
                    None => Some(apply(&mut registers, &mop)),
                };
                let (op_type, value) = match (info, effect) {
                    (true, _) | (false, None) => (OpType::Info, mop),
                    (false, Some(Effect::CasFailed)) => (OpType::Fail, mop),
                    (false, Some(Effect::Done(result))) => (OpType::Ok, result),
                };
                rec.complete(p as u64, time, op_type, OpValue::Mops(vec![value]))
                    .expect("valid");
            }
        }
    }
    rec.into_history()
}

fn apply(registers: &mut [Option<i64>], mop: &MicroOp) -> Effect {
    match mop {
        MicroOp::Read { key, .. } => Effect::Done(MicroOp::Read {
            key: *key,
            value: registers[key.0 as usize],
        }),
        MicroOp::Write { key, value } => {
            registers[key.0 as usize] = Some(*value);
            Effect::Done(mop.clone())
        }
        MicroOp::Cas { key, expected, new } => {
            let slot = &mut registers[key.0 as usize];
            if *slot == Some(*expected) {
                *slot = Some(*new);
                Effect::Done(mop.clone())
            } else {
                Effect::CasFailed
            }
        }
        other => Effect::Done(other.clone()),
    }
}
