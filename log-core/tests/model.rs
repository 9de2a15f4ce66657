//! Model-based test (redb style): random operations against `PartitionLog` on a `MemDisk` and
//! against a `BTreeMap` model, including crashes. Properties:
//! - every read returns exactly the model's records (compacted logs: a subset that keeps each
//!   key's latest record, dropping only superseded records);
//! - after a crash every flushed record is there, nothing never appended appears, offsets stay
//!   dense (or gapped only by compaction) and ordered.
#![allow(clippy::unwrap_used)]

mod common;

use common::records;
use log_core::{
    BatchBuilder, FaultOp, LeaderEpoch, LogConfig, LogError, MemDisk, Offset, PartitionLog,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Op {
    Append { keys: Vec<u8>, value: u16 },
    Read { from_permille: u16, bytes_max: u16 },
    Flush,
    Roll,
    SetHw { permille: u16 },
    Truncate { permille: u16 },
    Retention,
    Compact,
    NewEpoch,
    Fault { kind: u8 },
    Crash,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec(0u8..6, 1..6), any::<u16>()).prop_map(|(keys, value)| Op::Append { keys, value }),
        2 => (0u16..=1000, 1u16..3000).prop_map(|(from_permille, bytes_max)| Op::Read { from_permille, bytes_max }),
        2 => Just(Op::Flush),
        1 => Just(Op::Roll),
        2 => (0u16..=1000).prop_map(|permille| Op::SetHw { permille }),
        1 => (0u16..=1000).prop_map(|permille| Op::Truncate { permille }),
        1 => Just(Op::Retention),
        1 => Just(Op::Compact),
        1 => Just(Op::NewEpoch),
        2 => (0u8..3).prop_map(|kind| Op::Fault { kind }),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// A record as the model keeps it: (key, value).
type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

struct Model {
    records: BTreeMap<Offset, Rec>,
    log_end: Offset,
    log_start: Offset,
    flushed: Offset,
    /// Truncation never goes below what was ever committed (replication's promise).
    hw_max: Offset,
    /// Base offsets of the appended batches (truncation cuts whole batches).
    batch_starts: std::collections::BTreeSet<Offset>,
    epoch: LeaderEpoch,
    compacted: bool,
}

impl Model {
    fn between(&self, low: Offset, permille: u16) -> Offset {
        let span = self.log_end.0 - low.0;
        Offset(low.0 + span * permille as i64 / 1000)
    }

    /// Checks records read from the log (offsets >= `from`) against the model.
    fn check(&self, got: &[common::Rec], from: Offset, to: Offset) {
        let got: Vec<_> = got
            .iter()
            .filter(|(o, _, _)| *o >= from && *o < to)
            .collect();
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets ordered");
        for (offset, key, value) in &got {
            let expected = self
                .records
                .get(offset)
                .unwrap_or_else(|| panic!("offset {offset} never appended"));
            assert_eq!(
                &(key.clone(), value.clone()),
                expected,
                "offset {offset} holds another record"
            );
        }
        let present: Vec<Offset> = got.iter().map(|(o, _, _)| *o).collect();
        if !self.compacted {
            let expected: Vec<Offset> = self.records.range(from..to).map(|(o, _)| *o).collect();
            assert_eq!(present, expected, "a plain log is dense");
            return;
        }
        for (offset, (key, _)) in self.records.range(from..to) {
            if present.binary_search(offset).is_ok() {
                continue;
            }
            let superseded = key.is_some()
                && self
                    .records
                    .range(offset.add(1)..)
                    .any(|(_, (k, _))| k == key);
            assert!(
                superseded,
                "compaction dropped {offset}, the latest of its key"
            );
        }
    }
}

fn read_all(log: &PartitionLog) -> Vec<common::Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let result = log.read(next, 4096).unwrap();
        if result.bytes.is_empty() {
            break;
        }
        out.extend(
            records(&result.bytes)
                .into_iter()
                .filter(|(o, _, _)| *o >= next),
        );
        assert!(result.next_offset > next, "reads make progress");
        next = result.next_offset;
    }
    out
}

fn config(compacted: bool) -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024,
        index_interval_bytes: 128,
        retention_bytes: Some(3000),
        retention_ms: None,
        compacted,
        delete_retention_ms: i64::MAX / 4,
        checkpoint_interval_bytes: 300,
        ..LogConfig::default()
    }
}

fn open(disk: &MemDisk, compacted: bool, now: i64) -> PartitionLog {
    PartitionLog::open(
        Arc::new(disk.clone()),
        Path::new("t-0"),
        config(compacted),
        now,
    )
    .unwrap()
}

fn run(seed: u64, compacted: bool, ops: Vec<Op>) {
    let disk = MemDisk::new(seed);
    let mut log = open(&disk, compacted, 0);
    let mut model = Model {
        records: BTreeMap::new(),
        log_end: Offset::ZERO,
        log_start: Offset::ZERO,
        flushed: Offset::ZERO,
        hw_max: Offset::ZERO,
        batch_starts: Default::default(),
        epoch: LeaderEpoch(0),
        compacted,
    };
    let mut failures = 0;
    let trace = std::env::var_os("MODEL_TRACE").is_some();
    for (step, op) in ops.into_iter().enumerate() {
        let now = step as i64 * 10;
        if trace {
            eprintln!(
                "step {step} {op:?}: leo {} rp {} hw {} lso {} segments {:?} model end {} flushed {}",
                log.log_end_offset(),
                log.recovery_point(),
                log.high_watermark(),
                log.log_start_offset(),
                log.segment_bases(),
                model.log_end,
                model.flushed
            );
        }
        let armed = matches!(op, Op::Fault { .. });
        let outcome = if let Op::Reopen = op {
            reopen(&disk, &mut log, &mut model, now, compacted)
        } else {
            apply(&disk, &mut log, &mut model, op, step, compacted)
        };
        if let Err(error) = outcome {
            // The contract after a Disk error: close and reopen; recovery reconciles.
            assert!(
                matches!(error, LogError::Disk(_)),
                "only injected disk faults fail: {error}"
            );
            failures += 1;
            clear_faults(&disk);
            if step % 2 == 0 {
                disk.crash();
            }
            log = open(&disk, compacted, now);
            reconcile(&log, &mut model);
        }
        if armed {
            continue; // the fault is for the next operation, not for these checks
        }
        clear_faults(&disk);
        log.check_invariants();
        assert_eq!(log.log_end_offset(), model.log_end, "step {step}");
        model.check(&read_all(&log), model.log_start, model.log_end);
        if let Some((epoch, end)) = log.end_offset_for_epoch(model.epoch) {
            assert_eq!((epoch, end), (model.epoch, model.log_end));
        }
    }
    assert!(failures < 1000, "bounded");
}

fn clear_faults(disk: &MemDisk) {
    for kind in [FaultOp::Read, FaultOp::Write, FaultOp::Sync] {
        disk.fail_next(kind, 0);
    }
}

/// After a crash or a failed operation and reopen: the log holds a prefix of what the model
/// allows (tentative records of a failed append included), at least what was flushed.
fn reconcile(log: &PartitionLog, model: &mut Model) {
    let end = log.log_end_offset();
    assert!(
        end >= model.flushed,
        "flushed data survives: {end} < {}",
        model.flushed
    );
    assert!(
        end <= model.log_end,
        "nothing beyond the LEO appears: {end} > {}",
        model.log_end
    );
    let start = log.log_start_offset();
    assert!(
        start >= model.log_start && start <= model.hw_max.max(model.log_start),
        "log start {start}"
    );
    model.records = model.records.split_off(&start);
    model.log_start = start;
    model.check(&read_all(log), start, end);
    model.records.split_off(&end);
    model.batch_starts.split_off(&end);
    model.log_end = end;
    model.flushed = end;
    model.hw_max = model.hw_max.min(end).max(start);
}

fn apply(
    disk: &MemDisk,
    log: &mut PartitionLog,
    model: &mut Model,
    op: Op,
    step: usize,
    compacted: bool,
) -> Result<(), LogError> {
    let now = step as i64 * 10;
    match op {
        Op::Append { keys, value } => {
            let mut builder = BatchBuilder::new();
            let mut recs = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let key = vec![b'k', *key];
                let value = format!("{value}-{step}-{i}").into_bytes();
                builder.push(Some(&key), Some(&value), now, &[]);
                recs.push((Some(key), Some(value)));
            }
            // Tentatively in the model: a failed append may or may not survive a reopen.
            let first = model.log_end;
            model.batch_starts.insert(first);
            for rec in recs {
                model.records.insert(model.log_end, rec);
                model.log_end = model.log_end.add(1);
            }
            let info = log.append_as_leader(&builder.build(), model.epoch, now)?;
            assert_eq!(info.first_offset, first);
        }
        Op::Read {
            from_permille,
            bytes_max,
        } => {
            let from = model.between(model.log_start, from_permille);
            let result = log.read(from, bytes_max as usize)?;
            model.check(&records(&result.bytes), from, result.next_offset);
        }
        Op::Flush => {
            model.flushed = log.flush()?;
            assert_eq!(model.flushed, model.log_end);
        }
        Op::Roll => {
            log.roll(now)?;
            model.flushed = log.recovery_point();
        }
        Op::SetHw { permille } => {
            let hw = model.between(model.hw_max, permille);
            log.set_high_watermark(hw)?;
            model.hw_max = hw;
        }
        Op::Truncate { permille } => {
            let target = model.between(model.hw_max, permille);
            // A failed truncation may have removed anything from the batch holding the target
            // on; in a compacted log, emptied batches may take it lower still.
            let batch_start = model.batch_starts.range(..=target).next_back().copied();
            let floor = if model.compacted {
                model.log_start
            } else {
                batch_start.unwrap_or(target)
            };
            model.flushed = model.flushed.min(floor);
            let predicted = log.end_after_truncation(target)?;
            log.truncate_to(target)?;
            let end = log.log_end_offset();
            assert!(end <= target.max(model.log_end));
            assert_eq!(
                end, predicted,
                "end_after_truncation({target:?}) named where it ends"
            );
            model.records.split_off(&end);
            model.batch_starts.split_off(&end);
            model.log_end = end;
            model.flushed = model.flushed.min(end);
            // Whole batches go: a batch straddling the target takes committed records along.
            model.hw_max = model.hw_max.min(end);
        }
        Op::Retention => {
            let outcome = log.enforce_retention(now)?;
            assert!(outcome.log_start_offset <= log.high_watermark());
            model.log_start = outcome.log_start_offset;
            model.records = model.records.split_off(&model.log_start);
        }
        Op::Compact => {
            log.compact(now)?;
        }
        Op::NewEpoch => {
            model.epoch = LeaderEpoch(model.epoch.0 + 1);
        }
        Op::Fault { kind } => {
            let kind = [FaultOp::Read, FaultOp::Write, FaultOp::Sync][kind as usize % 3];
            disk.fail_next(kind, 1);
        }
        Op::Crash => {
            disk.crash();
            *log = PartitionLog::open(
                Arc::new(disk.clone()),
                Path::new("t-0"),
                config(compacted),
                now,
            )?;
            reconcile(log, model);
            let hw = model
                .hw_max
                .max(log.high_watermark())
                .min(log.log_end_offset());
            model.hw_max = hw;
            log.set_high_watermark(hw)?;
        }
        Op::Reopen => unreachable!("handled by reopen()"),
    }
    Ok(())
}

/// A clean close and reopen keeps everything, the HW included.
fn reopen(
    disk: &MemDisk,
    log: &mut PartitionLog,
    model: &mut Model,
    now: i64,
    compacted: bool,
) -> Result<(), LogError> {
    let hw = log.high_watermark();
    let log_start = log.log_start_offset();
    log.flush()?;
    log.write_state()?;
    *log = PartitionLog::open(
        Arc::new(disk.clone()),
        Path::new("t-0"),
        config(compacted),
        now,
    )?;
    assert_eq!(log.log_end_offset(), model.log_end);
    assert_eq!(log.log_start_offset(), log_start);
    assert_eq!(log.high_watermark(), hw, "a clean close keeps the HW");
    model.flushed = model.log_end;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plain_log_matches_the_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..150)) {
        run(seed, false, ops);
    }

    #[test]
    fn compacted_log_matches_the_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..150)) {
        run(seed, true, ops);
    }
}

/// Regression: a failed sync in `truncate_to` followed by a crash (found by the model).
#[test]
fn regression_failed_truncate_sync_then_crash() {
    let append = |n: usize| Op::Append {
        keys: vec![0; n],
        value: 0,
    };
    let ops = vec![
        append(2),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        Op::Truncate { permille: 0 },
        append(1),
        Op::Retention,
        Op::Fault { kind: 1 },
        append(1),
        append(1),
        Op::Crash,
        Op::Truncate { permille: 0 },
        append(2),
        append(1),
        append(1),
        append(1),
        Op::Retention,
        Op::Crash,
        append(1),
        append(2),
        append(3),
        append(1),
        Op::Fault { kind: 2 },
        Op::Truncate { permille: 84 },
    ];
    run(0, true, ops);
}

/// Regression: a failed sync in `truncate_to`, then later appends and a crash.
#[test]
fn regression_failed_truncate_sync_then_appends_and_crash() {
    let append = |n: usize| Op::Append {
        keys: vec![0; n],
        value: 0,
    };
    let read = |bytes_max| Op::Read {
        from_permille: 0,
        bytes_max,
    };
    let ops = vec![
        append(2),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        append(1),
        Op::Truncate { permille: 0 },
        append(1),
        Op::Retention,
        read(1),
        append(2),
        append(1),
        Op::Crash,
        Op::Truncate { permille: 250 },
        read(1),
        Op::Retention,
        append(1),
        append(1),
        Op::Retention,
        Op::Crash,
        append(1),
        append(1),
        append(1),
        append(1),
        Op::Fault { kind: 2 },
        Op::Truncate { permille: 0 },
        read(1),
        append(1),
        append(1),
        append(1),
        append(1),
        Op::Retention,
        Op::Retention,
        append(1),
        read(9),
        Op::Crash,
    ];
    run(0, false, ops);
}
