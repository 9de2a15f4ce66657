//! Journaled flushes (`PartitionLog::finish_journaled_flush`, `log_core::wal`): bytes a flush
//! put in the journal instead of syncing the segment file survive a crash through the replay;
//! a replay never writes back bytes a truncation removed or an earlier log in the same
//! directory held; a state checkpoint syncs the segment before its recovery point counts on
//! it, after which the journal's records are not needed.
#![allow(clippy::unwrap_used)]

mod common;

use common::{batch, read_all, small_config, Rec};
use log_core::journal::{Journal, JournalClock};
use log_core::wal::{self, SegmentWrite};
use log_core::{Disk, FlushPlan, LeaderEpoch, LogConfig, MemDisk, Offset, PartitionLog};
use std::path::Path;
use std::sync::Arc;

const JOURNAL: &str = "journal";
const DIR: &str = "topic-0";
const FILE_BYTES: u64 = 1 << 20;

/// A broker's side of the journal: replayed at start, one round per flush.
struct Broker {
    disk: MemDisk,
    journal: Journal,
    clock: JournalClock,
}

impl Broker {
    /// Starts on `disk` as a broker does: the journal replayed before any log opens.
    fn start(disk: &MemDisk) -> (Broker, wal::ReplayReport) {
        let (journal, clock, report) = wal::replay(disk, Path::new(JOURNAL), FILE_BYTES).unwrap();
        let broker = Broker {
            disk: disk.clone(),
            journal,
            clock,
        };
        (broker, report)
    }

    fn open(&self, config: LogConfig) -> PartitionLog {
        PartitionLog::open_journaled(
            Arc::new(self.disk.clone()),
            Path::new(DIR),
            config,
            0,
            Offset::ZERO,
            Some(self.clock.clone()),
        )
        .unwrap()
    }

    /// The IO worker's plan step: the plan, and its records with their reserved sequences.
    fn plan(&self, log: &PartitionLog) -> (FlushPlan, Vec<(u64, SegmentWrite)>) {
        let plan = log.plan_flush().unwrap();
        let writes = plan.segment_writes(&self.disk, Path::new(DIR)).unwrap();
        let records = writes
            .into_iter()
            .map(|w| (self.clock.reserve(), w))
            .collect();
        (plan, records)
    }

    /// The round's write: one append and sync of the journal.
    fn write(&mut self, records: &[(u64, SegmentWrite)]) {
        let payloads: Vec<Vec<u8>> = records.iter().map(|(_, w)| w.encode()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let written = self.journal.write_round(&self.disk, &refs).unwrap();
        if let Some((first, _)) = records.first() {
            assert_eq!(written.start, *first, "the reserved sequences");
        }
    }

    /// A whole journaled flush; returns the durable end.
    fn flush(&mut self, log: &mut PartitionLog) -> Offset {
        let (plan, records) = self.plan(log);
        self.write(&records);
        log.finish_journaled_flush(plan, Ok(())).unwrap()
    }
}

fn config() -> LogConfig {
    LogConfig {
        // Checkpoints only when a test writes one.
        checkpoint_interval_bytes: u64::MAX,
        ..small_config()
    }
}

fn values(records: &[Rec]) -> Vec<String> {
    records
        .iter()
        .map(|(_, _, v)| String::from_utf8(v.clone().unwrap()).unwrap())
        .collect()
}

fn segment_path(base: i64) -> std::path::PathBuf {
    Path::new(DIR).join(format!("{base:020}.log"))
}

#[test]
fn journaled_bytes_survive_a_crash_that_drops_the_unsynced_segment() {
    for seed in 0..24 {
        let disk = MemDisk::new(seed);
        let (mut broker, _) = Broker::start(&disk);
        let mut log = broker.open(config());
        log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        assert_eq!(broker.flush(&mut log), Offset(3));
        log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        assert_eq!(broker.flush(&mut log), Offset(5));
        assert_eq!(log.durable_end(), Offset(5));
        assert!(
            log.recovery_point() < Offset(5),
            "the segment file itself is not synced"
        );
        assert!(
            disk.durable_bytes(&segment_path(0)).unwrap().is_empty(),
            "without the journal a crash could keep none of it"
        );
        disk.crash();
        let (broker, report) = Broker::start(&disk);
        assert_eq!(report.records, 2);
        assert_eq!(report.replayed, 2, "seed {seed}");
        let log = broker.open(config());
        assert_eq!(
            values(&read_all(&log, Offset::ZERO)),
            ["a-0", "a-1", "a-2", "b-0", "b-1"],
            "seed {seed}"
        );
    }
}

#[test]
fn a_replay_never_brings_back_what_a_truncation_removed() {
    for seed in 0..24 {
        let disk = MemDisk::new(100 + seed);
        let (mut broker, _) = Broker::start(&disk);
        let mut log = broker.open(config());
        log.append_as_leader(&batch("a", 2, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        broker.flush(&mut log);
        log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        broker.flush(&mut log);
        log.append_as_leader(&batch("c", 2, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        // c's flush is planned before the truncation and journaled after it (the IO worker
        // plans under the lock, writes without it).
        let (stale_plan, stale_records) = broker.plan(&log);
        log.truncate_to(Offset(2)).unwrap();
        // d takes b's place byte for byte: replayed, b's and c's records would put c back
        // after it, a whole valid log.
        log.append_as_leader(&batch("d", 2, 0, 0), LeaderEpoch(1), 0)
            .unwrap();
        broker.write(&stale_records);
        assert_eq!(
            log.finish_journaled_flush(stale_plan, Ok(())).unwrap(),
            Offset(2),
            "a plan older than the truncation counts nothing"
        );
        assert_eq!(broker.flush(&mut log), Offset(4));
        disk.crash();
        let (broker, report) = Broker::start(&disk);
        assert_eq!(report.records, 4);
        let log = broker.open(config());
        assert_eq!(
            values(&read_all(&log, Offset::ZERO)),
            ["a-0", "a-1", "d-0", "d-1"],
            "seed {seed}: b and c were truncated"
        );
    }
}

#[test]
fn a_directory_created_again_takes_nothing_of_its_predecessor() {
    let disk = MemDisk::new(7);
    let (mut broker, _) = Broker::start(&disk);
    let mut old = broker.open(config());
    old.append_as_leader(&batch("old", 5, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    broker.flush(&mut old);
    drop(old);
    // The topic is deleted and created again under the same name.
    disk.remove_dir(Path::new(DIR), true).unwrap();
    disk.sync_dir(Path::new("")).unwrap();
    let mut new = broker.open(config());
    new.append_as_leader(&batch("new", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    broker.flush(&mut new);
    disk.crash();
    let (broker, report) = Broker::start(&disk);
    assert_eq!((report.records, report.replayed), (2, 1));
    let log = broker.open(config());
    assert_eq!(values(&read_all(&log, Offset::ZERO)), ["new-0", "new-1"]);
}

#[test]
fn a_checkpoint_syncs_the_segment_before_the_journal_lets_go() {
    let disk = MemDisk::new(9);
    let (mut broker, _) = Broker::start(&disk);
    let mut log = broker.open(config());
    log.append_as_leader(&batch("a", 4, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let (plan, records) = broker.plan(&log);
    broker.write(&records);
    log.finish_journaled_flush(plan, Ok(())).unwrap();
    let (sequence, write) = &records[0];
    assert!(log.needs_journal_record(*sequence, write.end_offset));
    let checkpoint = log.plan_checkpoint().unwrap();
    let written = checkpoint.write(&disk);
    assert!(log.install_checkpoint(&checkpoint, written).unwrap());
    checkpoint.sync_dir(&disk).unwrap();
    assert!(!log.needs_journal_record(*sequence, write.end_offset));
    assert_eq!(log.recovery_point(), Offset(4));
    // The journal's files go (as the IO worker releases them) and the power fails.
    disk.remove_dir(Path::new(JOURNAL), true).unwrap();
    disk.sync_dir(Path::new("")).unwrap();
    disk.crash();
    let (broker, report) = Broker::start(&disk);
    assert_eq!(report.records, 0);
    let log = broker.open(config());
    assert_eq!(
        values(&read_all(&log, Offset::ZERO)),
        ["a-0", "a-1", "a-2", "a-3"]
    );
}

#[test]
fn a_roll_syncs_the_journaled_bytes_of_the_segment_it_seals() {
    let disk = MemDisk::new(10);
    let (mut broker, _) = Broker::start(&disk);
    let mut log = broker.open(config());
    log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    broker.flush(&mut log);
    assert!(log.roll(0).unwrap());
    assert_eq!(log.recovery_point(), Offset(3));
    assert_eq!(
        disk.durable_bytes(&segment_path(0)).unwrap().len() as u64,
        disk.len(&segment_path(0)).unwrap(),
        "the sealed segment is synced whole"
    );
}

/// A log opened without a journal flushes as before (its durable end is its recovery point),
/// and opens later under a journal.
#[test]
fn a_log_without_a_journal_opens_and_flushes_as_before() {
    let disk = MemDisk::new(12);
    let mut log = PartitionLog::open(Arc::new(disk.clone()), Path::new(DIR), config(), 0).unwrap();
    log.append_as_leader(&batch("a", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    assert_eq!(log.flush().unwrap(), Offset(2));
    assert_eq!(log.durable_end(), log.recovery_point());
    drop(log);
    let (broker, report) = Broker::start(&disk);
    assert_eq!(report.records, 0);
    let log = broker.open(config());
    assert_eq!(values(&read_all(&log, Offset::ZERO)), ["a-0", "a-1"]);
}

/// Seed 178480: a process reserved sequences for records it never wrote (its journal had
/// failed, every round after that reserved and wrote nothing), and a log it opened wrote the
/// clock's reading as its floor. The next process's journal continues at its last record, below
/// that floor: the log opened there must take the new clock's reading, or its acknowledged
/// records look stale to the replay after the next crash.
#[test]
fn a_floor_from_a_clock_past_the_journal_does_not_outlive_its_process() {
    let disk = MemDisk::new(13);
    let (mut broker, _) = Broker::start(&disk);
    let mut log = broker.open(config());
    log.append_as_leader(&batch("a", 1, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    broker.flush(&mut log);
    // Rounds that failed: sequences reserved, nothing written; then the log reopens in place.
    for _ in 0..5 {
        broker.clock.reserve();
    }
    drop(log);
    let log = broker.open(config());
    drop(log);
    disk.crash();
    let (mut broker, _) = Broker::start(&disk);
    assert!(
        broker.clock.current() < 6,
        "the new journal continues below the old process's clock"
    );
    let mut log = broker.open(config());
    log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    assert_eq!(broker.flush(&mut log), Offset(3));
    disk.crash();
    let (broker, report) = Broker::start(&disk);
    assert_eq!(report.replayed, 1, "b's record is needed");
    let log = broker.open(config());
    assert_eq!(values(&read_all(&log, Offset::ZERO)), ["a-0", "b-0", "b-1"]);
}

/// Seed 203425: a state checkpoint's segment sync failed on a disk that drops a failed file's
/// dirty pages, after the journal had made those bytes durable and the partition had
/// acknowledged them. Before the failed log is opened again in the running broker, the
/// journal's records of that log go back in (`wal::replay_dir`); without it the reopen finds
/// the log shorter than what it flushed and sets it aside.
#[test]
fn a_failed_segment_sync_that_dropped_pages_is_restored_from_the_journal() {
    let disk = MemDisk::new(14);
    disk.set_sync_failure_drops_unsynced(true);
    let (mut broker, _) = Broker::start(&disk);
    let mut log = broker.open(config());
    log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    assert_eq!(broker.flush(&mut log), Offset(3));
    let checkpoint = log.plan_checkpoint().unwrap();
    disk.fail_next(log_core::FaultOp::Sync, 1);
    let written = checkpoint.write(&disk);
    assert!(written.is_err(), "the segment's sync failed");
    assert!(log.install_checkpoint(&checkpoint, written).is_err());
    drop(log);
    let len = disk.len(&segment_path(0)).unwrap();
    let now = disk.read_vec(&segment_path(0), 0, len as usize).unwrap();
    assert!(now.iter().all(|b| *b == 0), "the pages were dropped");
    let report = wal::replay_dir(&disk, Path::new(JOURNAL), Path::new(DIR)).unwrap();
    assert_eq!(report.replayed, 1);
    let log = broker.open(config());
    assert_eq!(values(&read_all(&log, Offset::ZERO)), ["a-0", "a-1", "a-2"]);
}
