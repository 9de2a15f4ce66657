//! Property test against a model that keeps the whole log: the table must answer exactly as a
//! rule applied to the full history would, and the log it lets through must hold every
//! producer epoch's sequences contiguously from 0, each once.
#![allow(clippy::unwrap_used)]

use broker::producer_state::{
    sequence_add, Decision, LoggedBatch, ProducerError, ProducerStateTable, TruncateOutcome,
    BATCHES_RETAINED_MAX,
};
use proptest::prelude::*;
use wire::Offset;

/// The answer the rule gives for the whole log (the model keeps everything, the table 5 batches).
fn model_check(
    log: &[LoggedBatch],
    pid: i64,
    epoch: i16,
    base: i32,
    count: i32,
) -> Result<Decision, ProducerError> {
    let mine: Vec<&LoggedBatch> = log.iter().filter(|b| b.producer_id == pid).collect();
    let Some(last) = mine.last() else {
        return if base == 0 {
            Ok(Decision::Append)
        } else {
            Err(ProducerError::UnknownProducerId)
        };
    };
    if epoch < last.producer_epoch {
        return Err(ProducerError::InvalidProducerEpoch {
            current: last.producer_epoch,
            received: epoch,
        });
    }
    if epoch > last.producer_epoch {
        return if base == 0 {
            Ok(Decision::Append)
        } else {
            Err(ProducerError::OutOfOrderSequence {
                expected: 0,
                received: base,
            })
        };
    }
    let current: Vec<&&LoggedBatch> = mine.iter().filter(|b| b.producer_epoch == epoch).collect();
    let last_sequence = sequence_add(base, count - 1);
    let window = &current[current.len().saturating_sub(BATCHES_RETAINED_MAX)..];
    if let Some(b) = window
        .iter()
        .find(|b| b.base_sequence == base && b.last_sequence == last_sequence)
    {
        return Ok(Decision::Duplicate {
            first_offset: b.first_offset,
            last_offset: b.last_offset,
        });
    }
    let expected = sequence_add(last.last_sequence, 1);
    if base == expected {
        Ok(Decision::Append)
    } else {
        Err(ProducerError::OutOfOrderSequence {
            expected,
            received: base,
        })
    }
}

/// Every producer epoch's appended sequences run 0, 1, 2, ... without gaps or repeats.
fn assert_log_sequences_contiguous(log: &[LoggedBatch]) {
    let mut next: std::collections::BTreeMap<(i64, i16), i32> = Default::default();
    for b in log {
        let expected = next.entry((b.producer_id, b.producer_epoch)).or_insert(0);
        assert_eq!(
            b.base_sequence, *expected,
            "log holds a gap or a duplicate: {log:?}"
        );
        *expected = sequence_add(b.last_sequence, 1);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Producer sends its next batch of `count` records.
    Next { pid: i64, count: i32 },
    /// Producer retries its `back`-th last batch (as sent, whatever the answer was).
    Retry { pid: i64, back: usize },
    /// Producer bumps its epoch and restarts at sequence 0.
    Bump { pid: i64 },
    /// Producer sends an arbitrary sequence (a confused or fenced client).
    Arbitrary {
        pid: i64,
        epoch_delta: i16,
        base: i32,
        count: i32,
    },
    /// The log is truncated to a fraction of its length.
    Truncate { permille: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..3, 1i32..4).prop_map(|(pid, count)| Op::Next { pid, count }),
        3 => (0i64..3, 0usize..8).prop_map(|(pid, back)| Op::Retry { pid, back }),
        1 => (0i64..3).prop_map(|pid| Op::Bump { pid }),
        1 => (0i64..3, -1i16..2, 0i32..20, 1i32..3)
            .prop_map(|(pid, epoch_delta, base, count)| Op::Arbitrary { pid, epoch_delta, base, count }),
        1 => (0u32..1000).prop_map(|permille| Op::Truncate { permille }),
    ]
}

/// What the simulated client of producer `pid` knows.
#[derive(Clone, Debug, Default)]
struct Client {
    epoch: i16,
    next_sequence: i32,
    sent: Vec<(i16, i32, i32)>,
}

fn step(
    table: &mut ProducerStateTable,
    log: &mut Vec<LoggedBatch>,
    pid: i64,
    epoch: i16,
    base: i32,
    count: i32,
) {
    let decision = table.check(pid, epoch, base, count);
    assert_eq!(
        decision,
        model_check(log, pid, epoch, base, count),
        "log {log:?}"
    );
    if decision == Ok(Decision::Append) {
        let first = log.last().map_or(0, |b| b.last_offset.0 + 1);
        let batch = LoggedBatch {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: base,
            last_sequence: sequence_add(base, count - 1),
            first_offset: Offset(first),
            last_offset: Offset(first + i64::from(count) - 1),
        };
        table.record(batch);
        log.push(batch);
    }
    table.check_invariants();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn table_agrees_with_the_full_history_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut table = ProducerStateTable::default();
        let mut log: Vec<LoggedBatch> = Vec::new();
        let mut clients = vec![Client::default(); 3];
        for op in ops {
            match op {
                Op::Next { pid, count } => {
                    let c = &mut clients[pid as usize];
                    let (epoch, base) = (c.epoch, c.next_sequence);
                    c.sent.push((epoch, base, count));
                    c.next_sequence = sequence_add(base, count);
                    step(&mut table, &mut log, pid, epoch, base, count);
                }
                Op::Retry { pid, back } => {
                    let c = &clients[pid as usize];
                    if let Some(&(epoch, base, count)) = c.sent.iter().rev().nth(back) {
                        step(&mut table, &mut log, pid, epoch, base, count);
                    }
                }
                Op::Bump { pid } => {
                    let c = &mut clients[pid as usize];
                    c.epoch += 1;
                    c.next_sequence = 0;
                }
                Op::Arbitrary { pid, epoch_delta, base, count } => {
                    let epoch = (clients[pid as usize].epoch + epoch_delta).max(0);
                    step(&mut table, &mut log, pid, epoch, base, count);
                }
                Op::Truncate { permille } => {
                    let keep = log.len() * permille as usize / 1000;
                    log.truncate(keep);
                    let offset = Offset(log.last().map_or(0, |b| b.last_offset.0 + 1));
                    if table.truncate_to(offset) == TruncateOutcome::RebuildRequired {
                        table.rebuild(log.iter().copied());
                    }
                    let mut rebuilt = ProducerStateTable::default();
                    rebuilt.rebuild(log.iter().copied());
                    for pid in 0..3 {
                        let live = table.producer(pid).map(|e| (e.epoch, e.batches.clone()));
                        let fresh = rebuilt.producer(pid).map(|e| (e.epoch, e.batches.clone()));
                        prop_assert_eq!(live, fresh);
                    }
                }
            }
            assert_log_sequences_contiguous(&log);
        }
    }
}
