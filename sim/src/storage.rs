//! The `storage` scenario: one partition log on a `MemDisk`, driven by a seeded random mix of
//! appends, reads, flushes, truncations, rolls, retention, compaction, crashes, injected I/O
//! errors and bit flips, and checked against an in-memory model after every step.
//!
//! The rules it checks (issue 2's durability rules):
//! - after a crash every flushed record is there, at its offset, with its bytes;
//! - nothing that was never appended ever appears, and a truncated record never comes back;
//! - offsets stay dense and ordered (compacted logs: ordered, each record at its true offset);
//! - a read never serves corrupt bytes: after a bit flip a read returns the right records or an
//!   error, never a wrong record; the log must refuse corrupt bytes itself (the reader checks
//!   every batch's CRC again, and a batch the log served that fails it is a violation, whether a
//!   bit was flipped or not).

use crate::report::Timeline;
use crate::runner::{Scenario, SeedRun};
use crate::trace::Trace;
use log_core::batch::{split_batches, BatchBuilder};
use log_core::{Codec, Disk, FaultConfig, FaultOp, LogConfig, LogError, MemDisk, PartitionLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wire::{LeaderEpoch, Offset};

/// Operations per seed unless `--steps` says otherwise.
const STEPS_DEFAULT: u64 = 300;
/// Records per appended batch, at most.
const BATCH_RECORDS_MAX: u32 = 8;
/// Bytes a read asks for, at most.
const READ_BYTES_MAX: usize = 64 * 1024;
/// Records a truncation usually removes at most (one in ten may cut anywhere).
const TRUNCATE_SUFFIX_MAX: i64 = 24;
/// Opening a log after an I/O error is retried this many times in all.
const OPEN_ATTEMPTS_MAX: u32 = 4;
/// Distinct keys in a compacted log: few, so compaction has work.
const COMPACTED_KEYS: u64 = 12;
/// The seed stream of the fsyncgate draw ([`StorageDraw::sync_failure_drops_unsynced`]).
const FSYNCGATE_STREAM: u64 = 0xf5c9_6a7e_0000_0021;
/// The seed stream of the flush-path choices (whole or split, appends during the sync): apart
/// from the run's own, so the other draws stay what they were.
const FLUSH_PATH_STREAM: u64 = 0xf105_4a7e_0000_0022;

/// The seed-drawn shape of one storage run: printed beside the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageDraw {
    /// Segment size limit.
    pub segment_bytes_max: u64,
    /// Segment age limit (ms of simulated time).
    pub segment_age_ms_max: i64,
    /// Bytes between offset index entries.
    pub index_interval_bytes: u64,
    /// Compacted topic (keep the latest record per key).
    pub compacted: bool,
    /// Retention by size, if any.
    pub retention_bytes: Option<u64>,
    /// Per-mille chance per step of a crash.
    pub crash_permille: u32,
    /// Per-mille chance per step of an injected write or sync error.
    pub io_error_permille: u32,
    /// Per-mille chance per step of a silent bit flip in a segment.
    pub bit_flip_permille: u32,
    /// The codec batches are written with (compaction recompresses with it).
    pub codec: Codec,
    /// A failed fsync drops the unsynced bytes (Linux after a writeback error, "fsyncgate"),
    /// instead of leaving them for the next fsync to persist.
    pub sync_failure_drops_unsynced: bool,
}

impl StorageDraw {
    /// Draws the shape from the seed (its own stream, so the run's choices do not shift it).
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_d2a3_0000_0001);
        let compacted = rng.gen_bool(0.3);
        StorageDraw {
            segment_bytes_max: [2 * 1024, 8 * 1024, 64 * 1024][rng.gen_range(0..3)],
            segment_age_ms_max: [500, 5_000, 60_000][rng.gen_range(0..3)],
            index_interval_bytes: [64, 512, 4096][rng.gen_range(0..3)],
            compacted,
            retention_bytes: (!compacted && rng.gen_bool(0.3)).then(|| rng.gen_range(8..64) * 1024),
            crash_permille: rng.gen_range(5..40),
            io_error_permille: if rng.gen_bool(0.5) {
                rng.gen_range(1..20)
            } else {
                0
            },
            bit_flip_permille: if rng.gen_bool(0.25) {
                rng.gen_range(1..6)
            } else {
                0
            },
            // A stream of its own: the draws above stay what they were before codecs.
            codec: {
                let mut codecs = ChaCha8Rng::seed_from_u64(seed ^ 0xc0de_c000_0000_0014);
                if codecs.gen_bool(0.5) {
                    Codec::ALL[codecs.gen_range(1..Codec::ALL.len())]
                } else {
                    Codec::None
                }
            },
            // A stream of its own too.
            sync_failure_drops_unsynced: ChaCha8Rng::seed_from_u64(seed ^ FSYNCGATE_STREAM)
                .gen_bool(0.5),
        }
    }

    fn config(&self) -> LogConfig {
        LogConfig {
            segment_bytes_max: self.segment_bytes_max,
            segment_age_ms_max: self.segment_age_ms_max,
            index_interval_bytes: self.index_interval_bytes,
            retention_ms: if self.compacted { None } else { Some(30_000) },
            retention_bytes: self.retention_bytes,
            compacted: self.compacted,
            delete_retention_ms: 2_000,
            ..LogConfig::default()
        }
    }
}

/// The storage scenario.
#[derive(Debug, Clone)]
pub struct StorageScenario {
    /// Operations per seed.
    steps: u64,
    /// Whether `--steps` was given (so the replay command repeats it).
    steps_given: bool,
    /// `--bug lying-fsync`: the disk acknowledges some fsyncs without making anything durable.
    lying_fsync: bool,
}

/// With `--bug lying-fsync`, the share of fsyncs the disk lies about.
const SYNC_LIE_PROBABILITY: f64 = 0.5;

impl StorageScenario {
    /// The scenario with `steps` operations per seed (default if `None`), optionally on a disk
    /// that lies about fsync (the only storage bug switch).
    pub fn new(steps: Option<u64>, lying_fsync: bool) -> Self {
        let steps_given = steps.is_some();
        StorageScenario {
            steps: steps.unwrap_or(STEPS_DEFAULT),
            steps_given,
            lying_fsync,
        }
    }
}

impl Scenario for StorageScenario {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn describe(&self, seed: u64) -> String {
        let d = StorageDraw::from_seed(seed);
        format!(
            "segment {} B, age {} ms, index every {} B, {}, retention {}, crash {}‰, io-error {}‰, \
             bit-flip {}‰, codec {}{}",
            d.segment_bytes_max,
            d.segment_age_ms_max,
            d.index_interval_bytes,
            if d.compacted { "compacted" } else { "delete" },
            d.retention_bytes.map_or("by time".to_string(), |b| format!("{b} B")),
            d.crash_permille,
            d.io_error_permille,
            d.bit_flip_permille,
            d.codec.name(),
            if d.sync_failure_drops_unsynced {
                ", a failed fsync drops the unsynced bytes"
            } else {
                ""
            }
        )
    }

    fn run(&self, seed: u64) -> SeedRun {
        let mut world = World::new(seed, StorageDraw::from_seed(seed), self.lying_fsync);
        let mut steps = 0;
        while steps < self.steps && world.violation.is_none() && !world.finished {
            world.step();
            steps += 1;
        }
        if world.violation.is_none() && !world.finished {
            world.crash_and_recover("final crash");
        }
        SeedRun {
            trace: world.trace,
            violation: world.violation,
            steps,
            simulated_ms: u64::try_from(world.now_ms).expect("simulated time is positive"),
            timeline: world.timeline,
            ..SeedRun::default()
        }
    }

    fn replay_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.steps_given {
            args.push(format!("--steps {}", self.steps));
        }
        if self.lying_fsync {
            args.push("--bug lying-fsync".to_string());
        }
        args
    }
}

/// A record as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    /// `None` is a tombstone (compacted logs).
    value: Option<Vec<u8>>,
}

/// What the log must hold, tracked beside it.
#[derive(Debug, Default)]
struct Model {
    /// Every record appended and not truncated, by offset. Retention and compaction remove
    /// records from the log but not from here: the model answers "what is at offset N".
    records: BTreeMap<i64, Rec>,
    /// The log end offset.
    leo: i64,
    /// Offsets below this are flushed: they must survive any crash.
    durable: i64,
    /// Records of appends that failed with an I/O error: they may or may not survive a crash.
    uncertain: BTreeMap<i64, Rec>,
    /// First offsets of the appended batches: truncation and recovery cut at these.
    batch_starts: std::collections::BTreeSet<i64>,
}

struct World {
    rng: ChaCha8Rng,
    /// Chooses each flush's path (see [`FLUSH_PATH_STREAM`]).
    flush_rng: ChaCha8Rng,
    /// Crashes and restarts so far (a split flush's plan belongs to the log it was made by).
    restarts: u64,
    draw: StorageDraw,
    disk: Arc<MemDisk>,
    dir: PathBuf,
    log: Option<PartitionLog>,
    model: Model,
    epoch: i32,
    now_ms: i64,
    next_value: u64,
    /// A bit was flipped in stored bytes: errors naming corruption are now expected, and records
    /// at or after the flip may be lost, but a wrong record must still never be served.
    corrupted: bool,
    /// The faults the disk carries between crashes (the bug switch's lie, or none).
    disk_faults: FaultConfig,
    /// The log cannot be recovered (corruption below the recovery point was reported): the run
    /// ends there, as the broker would take that log offline and re-replicate it.
    finished: bool,
    violation: Option<String>,
    trace: Trace,
    timeline: Timeline,
}

impl World {
    fn new(seed: u64, draw: StorageDraw, lying_fsync: bool) -> Self {
        let disk = Arc::new(MemDisk::new(seed));
        disk.set_sync_failure_drops_unsynced(draw.sync_failure_drops_unsynced);
        let lie = if lying_fsync {
            SYNC_LIE_PROBABILITY
        } else {
            0.0
        };
        let disk_faults = FaultConfig {
            sync_lie_probability: lie,
            ..FaultConfig::default()
        };
        disk.set_faults(disk_faults.clone());
        let dir = PathBuf::from("data/t-0");
        let mut world = World {
            rng: ChaCha8Rng::seed_from_u64(seed),
            flush_rng: ChaCha8Rng::seed_from_u64(seed ^ FLUSH_PATH_STREAM),
            restarts: 0,
            draw,
            disk,
            dir,
            log: None,
            model: Model::default(),
            epoch: 0,
            now_ms: 1_000,
            next_value: 0,
            corrupted: false,
            disk_faults,
            finished: false,
            violation: None,
            trace: Trace::default(),
            timeline: Timeline::default(),
        };
        world.open("open");
        world
    }

    fn event(&mut self, event: String) {
        self.trace.record(event);
    }

    fn fail(&mut self, message: String) {
        self.event(format!("VIOLATION {message}"));
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    fn chart(&mut self) {
        let step = self.trace.len();
        let (start, hw) = match &self.log {
            Some(log) => (log.log_start_offset().0, log.high_watermark().0),
            None => (0, 0),
        };
        self.timeline.point("log start", step, start);
        self.timeline.point("high watermark", step, hw);
        self.timeline.point("durable", step, self.model.durable);
        self.timeline.point("log end", step, self.model.leo);
    }

    fn step(&mut self) {
        self.now_ms += self.rng.gen_range(0..200);
        let roll = self.rng.gen_range(0..1000u32);
        let (crash, io, flip) = (
            self.draw.crash_permille,
            self.draw.io_error_permille,
            self.draw.bit_flip_permille,
        );
        if roll < crash {
            self.crash_and_recover("crash");
        } else if roll < crash + io {
            self.inject_io_error();
        } else if roll < crash + io + flip {
            self.flip_bit();
        } else {
            match self.rng.gen_range(0..100u32) {
                0..=44 => self.append(),
                45..=59 => self.flush(),
                60..=79 => self.read(),
                80..=84 => self.truncate(),
                85..=89 => self.roll(),
                90..=94 => self.advance_high_watermark(),
                _ => self.clean(),
            }
        }
        self.chart();
    }

    /// Opens (recovers) the log. An I/O error during recovery is retried, as a broker restarting
    /// a log directory would; the injected faults are one-shot, so a retry gets through.
    fn open(&mut self, why: &str) {
        for attempt in 1..=OPEN_ATTEMPTS_MAX {
            let opened = PartitionLog::open(
                Arc::clone(&self.disk) as Arc<dyn Disk>,
                &self.dir,
                self.draw.config(),
                self.now_ms,
            );
            match opened {
                Ok(log) => {
                    let (start, leo) = (log.log_start_offset().0, log.log_end_offset().0);
                    self.event(format!("{why}: opened, log start {start}, log end {leo}"));
                    self.log = Some(log);
                    self.verify_recovered();
                    return;
                }
                Err(error) if is_io(&error) && attempt < OPEN_ATTEMPTS_MAX => {
                    self.event(format!(
                        "{why}: open attempt {attempt} failed (retrying): {error}"
                    ));
                }
                Err(error) if self.corrupted && is_corruption(&error) => {
                    self.event(format!(
                        "{why}: corruption detected on open (expected): {error}"
                    ));
                    self.finished = true;
                    return;
                }
                Err(error) => {
                    self.fail(format!("{why}: open failed: {error}"));
                    return;
                }
            }
        }
    }

    /// Reads the whole recovered log and checks it against the model, then adopts what survived.
    fn verify_recovered(&mut self) {
        let Some(log) = self.log.as_ref() else { return };
        let (start, leo) = (log.log_start_offset().0, log.log_end_offset().0);
        let mut next = start;
        let mut seen: Vec<(i64, Rec)> = Vec::new();
        while next < leo {
            match read_records(log, Offset(next), READ_BYTES_MAX) {
                Ok((records, next_offset)) => {
                    if next_offset.0 <= next {
                        let at = next_offset.0;
                        self.fail(format!(
                            "read at {next} made no progress (next offset {at})"
                        ));
                        return;
                    }
                    next = next_offset.0;
                    seen.extend(records.into_iter().filter(|(o, _)| *o >= start));
                }
                Err(ReadFailure::Refused(error)) if self.corrupted && is_corruption(&error) => {
                    self.event(format!("recovered read hit corruption (expected): {error}"));
                    self.finished = true;
                    return;
                }
                Err(ReadFailure::Refused(error)) => {
                    self.fail(format!("reading the recovered log at {next}: {error}"));
                    return;
                }
                Err(ReadFailure::Served(error)) => {
                    self.fail(format!(
                        "the recovered log served corrupt bytes at {next} as good: {error}"
                    ));
                    return;
                }
            }
        }
        if leo < self.model.durable && !self.corrupted {
            self.fail(format!(
                "flushed records lost: log end {leo} after recovery, but {} were flushed",
                self.model.durable
            ));
            return;
        }
        for (offset, record) in &seen {
            let expected = self
                .model
                .records
                .get(offset)
                .or(self.model.uncertain.get(offset));
            if expected != Some(record) {
                self.fail(format!(
                    "recovered offset {offset} holds {} but the model has {}",
                    show(Some(record)),
                    show(expected)
                ));
                return;
            }
        }
        if !self.draw.compacted {
            self.check_dense(&seen, start);
        }
        self.adopt_recovered(leo);
    }

    fn check_dense(&mut self, seen: &[(i64, Rec)], start: i64) {
        for (index, (offset, _)) in seen.iter().enumerate() {
            let expected = start + index as i64;
            if *offset != expected {
                self.fail(format!(
                    "offsets not dense: found {offset} where {expected} belongs"
                ));
                return;
            }
        }
    }

    fn adopt_recovered(&mut self, leo: i64) {
        let uncertain = std::mem::take(&mut self.model.uncertain);
        for (offset, record) in uncertain.into_iter().filter(|(o, _)| *o < leo) {
            self.model.records.insert(offset, record);
        }
        self.model.records.retain(|offset, _| *offset < leo);
        self.model.batch_starts.retain(|offset| *offset < leo);
        self.model.leo = leo;
        // What a crash left on the disk is, by definition, durable.
        self.model.durable = leo;
    }

    fn crash_and_recover(&mut self, why: &str) {
        // The process dies with the disk: the open log's memory is simply lost.
        self.log = None;
        self.restarts += 1;
        self.disk.crash();
        self.disk.set_faults(self.disk_faults.clone());
        self.timeline.mark(self.trace.len(), why.to_string());
        self.event(format!(
            "{why}: power loss, durable log end {}",
            self.model.durable
        ));
        self.open(why);
    }

    fn inject_io_error(&mut self) {
        let op = if self.rng.gen_bool(0.5) {
            FaultOp::Write
        } else {
            FaultOp::Sync
        };
        self.disk.fail_next(op, 1);
        self.timeline
            .mark(self.trace.len(), format!("{op:?} error"));
        self.event(format!("inject: next {op:?} fails"));
    }

    fn flip_bit(&mut self) {
        let segments: Vec<String> = match self.disk.list(&self.dir) {
            Ok(names) => names.into_iter().filter(|n| n.ends_with(".log")).collect(),
            Err(_) => return,
        };
        if segments.is_empty() {
            return;
        }
        let name = segments[self.rng.gen_range(0..segments.len())].clone();
        let path = self.dir.join(&name);
        if let Ok(Some(position)) = self.disk.flip_random_bit(&path) {
            self.corrupted = true;
            self.timeline
                .mark(self.trace.len(), format!("bit flip {name}@{position}"));
            self.event(format!("inject: bit flip in {name} at byte {position}"));
        }
    }

    /// An operation failed: an injected fault or detected corruption is expected (the broker
    /// would take the log offline and restart it: here, a crash and recovery); anything else is a
    /// violation.
    fn on_error(&mut self, what: &str, error: LogError) {
        let expected = is_io(&error) || (self.corrupted && is_corruption(&error));
        if expected {
            self.event(format!("{what} failed (expected): {error}"));
            self.crash_and_recover("restart after error");
        } else {
            self.fail(format!("{what} failed unexpectedly: {error}"));
        }
    }

    fn append(&mut self) {
        let count = self.rng.gen_range(1..=BATCH_RECORDS_MAX);
        let records: Vec<Rec> = (0..count).map(|_| self.new_record()).collect();
        let mut builder = BatchBuilder::new().codec(self.draw.codec);
        for record in &records {
            builder.push(Some(&record.key), record.value.as_deref(), self.now_ms, &[]);
        }
        let bytes = builder.build();
        if self.rng.gen_ratio(1, 20) {
            self.epoch += 1;
        }
        let epoch = LeaderEpoch(self.epoch);
        let now = self.now_ms;
        let Some(log) = self.log.as_mut() else { return };
        let first = self.model.leo;
        match log.append_as_leader(&bytes, epoch, now) {
            Ok(info) => {
                if info.first_offset.0 != first || info.last_offset.0 != first + count as i64 - 1 {
                    let got = format!("{}..={}", info.first_offset, info.last_offset);
                    self.fail(format!(
                        "append of {count} at {first} was given offsets {got}"
                    ));
                    return;
                }
                for (i, record) in records.into_iter().enumerate() {
                    self.model.records.insert(first + i as i64, record);
                }
                self.model.batch_starts.insert(first);
                self.model.leo = first + count as i64;
                self.event(format!("append {count} at {first} epoch {epoch}"));
            }
            Err(error) => {
                for (i, record) in records.into_iter().enumerate() {
                    self.model.uncertain.insert(first + i as i64, record);
                }
                self.model.batch_starts.insert(first);
                self.on_error("append", error);
            }
        }
    }

    fn new_record(&mut self) -> Rec {
        self.next_value += 1;
        let key = if self.draw.compacted {
            format!("key-{}", self.rng.gen_range(0..COMPACTED_KEYS))
        } else {
            format!("key-{}", self.next_value)
        };
        let tombstone = self.draw.compacted && self.rng.gen_ratio(1, 10);
        let padding = "x".repeat(self.rng.gen_range(0..400));
        let value = (!tombstone).then(|| format!("value-{}-{padding}", self.next_value));
        Rec {
            key: key.into_bytes(),
            value: value.map(String::into_bytes),
        }
    }

    fn flush(&mut self) {
        if self.flush_rng.gen_bool(0.5) {
            self.split_flush();
            return;
        }
        let Some(log) = self.log.as_mut() else { return };
        match log.flush() {
            Ok(durable) => {
                if durable.0 != self.model.leo {
                    let leo = self.model.leo;
                    self.fail(format!("flush returned {durable}, log end is {leo}"));
                    return;
                }
                self.model.durable = durable.0;
                self.event(format!("flush to {durable}"));
            }
            Err(error) => self.on_error("flush", error),
        }
    }

    /// The broker's IO worker's flush: plan (no IO), sync the planned files (in the broker off
    /// the partition's lock, so appends may land meanwhile: sometimes one does here), finish,
    /// then the state checkpoint if it came due. Only what the plan covered counts durable.
    fn split_flush(&mut self) {
        let Some(log) = self.log.as_ref() else { return };
        let plan = match log.plan_flush() {
            Ok(plan) => plan,
            Err(error) => return self.on_error("plan flush", error),
        };
        let up_to = plan.up_to().0;
        if self.flush_rng.gen_ratio(1, 3) {
            let restarts = self.restarts;
            self.append();
            // A failed append restarted the log: the plan belonged to the one before.
            if self.restarts != restarts || self.violation.is_some() {
                return;
            }
        }
        let Some(log) = self.log.as_mut() else { return };
        let synced = plan.sync(&*log.disk());
        match log.finish_flush(plan, synced) {
            Ok(durable) => {
                if durable.0 < up_to || durable.0 > self.model.leo {
                    let leo = self.model.leo;
                    self.fail(format!(
                        "split flush planned to {up_to} finished at {durable}, log end {leo}"
                    ));
                    return;
                }
                self.model.durable = self.model.durable.max(durable.0);
                self.event(format!("split flush to {durable}"));
            }
            Err(error) => return self.on_error("split flush", error),
        }
        let Some(log) = self.log.as_mut() else { return };
        if log.checkpoint_due() {
            if let Err(error) = log.write_state() {
                self.on_error("checkpoint", error);
            }
        }
    }

    fn read(&mut self) {
        let Some(log) = self.log.as_ref() else { return };
        let (start, leo) = (log.log_start_offset().0, log.log_end_offset().0);
        if start >= leo {
            return;
        }
        let from = self.rng.gen_range(start..leo);
        let bytes_max = self.rng.gen_range(1..READ_BYTES_MAX);
        match read_records(log, Offset(from), bytes_max) {
            Ok((records, _)) => self.check_read(from, &records),
            Err(ReadFailure::Refused(error)) => self.on_error(&format!("read at {from}"), error),
            Err(ReadFailure::Served(error)) => {
                self.fail(format!(
                    "read at {from} served corrupt bytes as good: {error}"
                ));
            }
        }
    }

    fn check_read(&mut self, from: i64, records: &[(i64, Rec)]) {
        let served: Vec<&(i64, Rec)> = records.iter().filter(|(o, _)| *o >= from).collect();
        if served.is_empty() && !self.draw.compacted {
            self.fail(format!("read at {from} below log end returned no record"));
            return;
        }
        for (index, (offset, record)) in served.iter().enumerate() {
            if self.model.records.get(offset) != Some(record) {
                let model = show(self.model.records.get(offset));
                self.fail(format!(
                    "read served {} at {offset}, model {model}",
                    show(Some(record))
                ));
                return;
            }
            if !self.draw.compacted && *offset != from + index as i64 {
                self.fail(format!("read at {from}: offset {offset} out of sequence"));
                return;
            }
        }
        self.event(format!("read at {from}: {} records ok", served.len()));
    }

    fn truncate(&mut self) {
        let Some(log) = self.log.as_mut() else { return };
        let floor = log.log_start_offset().0;
        if floor >= self.model.leo {
            return;
        }
        // Followers truncate a divergent suffix, rarely much of the log: mostly near the end.
        let near = floor.max(self.model.leo - TRUNCATE_SUFFIX_MAX);
        let low = if self.rng.gen_ratio(1, 10) {
            floor
        } else {
            near
        };
        let to = self.rng.gen_range(low..=self.model.leo);
        match log.truncate_to(Offset(to)) {
            Ok(()) => {
                // The log cuts whole batches: the end lands on the start of the batch holding
                // `to` (compaction may have emptied that batch and earlier ones: then lower).
                let leo = log.log_end_offset().0;
                let batch_start = self.model.batch_starts.range(..=to).next_back().copied();
                let lowest = if self.draw.compacted {
                    0
                } else {
                    batch_start.unwrap_or(0)
                };
                if leo > to || leo < lowest {
                    self.fail(format!("truncate to {to} left the log end at {leo}"));
                    return;
                }
                self.model.records.retain(|offset, _| *offset < leo);
                self.model.batch_starts.retain(|offset| *offset < leo);
                self.model.leo = leo;
                self.model.durable = self.model.durable.min(leo);
                self.event(format!("truncate to {to}: log end {leo}"));
            }
            Err(error) => self.on_error("truncate", error),
        }
    }

    fn roll(&mut self) {
        let now = self.now_ms;
        let Some(log) = self.log.as_mut() else { return };
        match log.roll(now) {
            Ok(rolled) => self.event(format!("roll: {rolled}")),
            Err(error) => self.on_error("roll", error),
        }
    }

    fn advance_high_watermark(&mut self) {
        let Some(log) = self.log.as_mut() else { return };
        let floor = log.high_watermark().0.max(log.log_start_offset().0);
        if floor > self.model.durable {
            return;
        }
        let hw = self.rng.gen_range(floor..=self.model.durable);
        match log.set_high_watermark(Offset(hw)) {
            Ok(()) => self.event(format!("high watermark {hw}")),
            Err(error) => self.on_error("set high watermark", error),
        }
    }

    /// Retention on delete logs, compaction on compacted ones.
    fn clean(&mut self) {
        let now = self.now_ms;
        let compacted = self.draw.compacted;
        let Some(log) = self.log.as_mut() else { return };
        let before = log.log_start_offset().0;
        let result = if compacted {
            log.compact(now).map(|_| "compact".to_string())
        } else {
            log.enforce_retention(now).map(|_| "retention".to_string())
        };
        match result {
            Ok(what) => {
                let after = log.log_start_offset().0;
                if after < before {
                    self.fail(format!(
                        "{what} moved the log start back from {before} to {after}"
                    ));
                    return;
                }
                self.event(format!("{what}: log start {before} -> {after}"));
            }
            Err(error) => self.on_error("clean", error),
        }
    }
}

/// Why [`read_records`] returned no records.
#[derive(Debug)]
enum ReadFailure {
    /// The log refused the read with an error (expected after an injected fault or bit flip).
    Refused(LogError),
    /// The log returned the bytes as good, but the reader found them corrupt: the log served
    /// corrupt bytes instead of refusing them. Always a violation, bit flip or not.
    Served(LogError),
}

/// Reads batches at `from` and flattens them into (offset, record), with the next fetch offset.
/// The log must check what it serves; the reader checks every batch again (CRC, body), and a
/// failure there is [`ReadFailure::Served`].
fn read_records(
    log: &PartitionLog,
    from: Offset,
    bytes_max: usize,
) -> Result<(Vec<(i64, Rec)>, Offset), ReadFailure> {
    let read = log.read(from, bytes_max).map_err(ReadFailure::Refused)?;
    let mut out = Vec::new();
    for view in split_batches(&read.bytes) {
        let view = view.map_err(ReadFailure::Served)?;
        view.validate().map_err(ReadFailure::Served)?;
        for record in view.decode().map_err(ReadFailure::Served)?.iter() {
            let record = record.map_err(ReadFailure::Served)?;
            let key = record.key.unwrap_or_default().to_vec();
            let rec = Rec {
                key,
                value: record.value.map(<[u8]>::to_vec),
            };
            out.push((record.offset.0, rec));
        }
    }
    Ok((out, read.next_offset))
}

fn is_io(error: &LogError) -> bool {
    matches!(error, LogError::Disk(_))
}

fn is_corruption(error: &LogError) -> bool {
    error.is_corruption() || matches!(error, LogError::InvalidBatch(_))
}

fn show(record: Option<&Rec>) -> String {
    match record {
        None => "nothing".to_string(),
        Some(rec) => {
            let value = rec.value.as_ref().map_or("<tombstone>".to_string(), |v| {
                String::from_utf8_lossy(&v[..v.len().min(24)]).into_owned()
            });
            format!("{}={value}", String::from_utf8_lossy(&rec.key))
        }
    }
}
