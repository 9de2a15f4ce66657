//! The state checkpoint the broker's IO worker writes without holding the partition's lock:
//! planned under the lock, its file written and synced off it, renamed into place under it,
//! the directory synced off it. A plan is installed only while it is the newest word on the
//! state (never over a later state write, a truncation, a lower high watermark or another log),
//! a stale plan leaves no file behind, and a crash at any step leaves a log that opens with the
//! old checkpoint or the new one.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{batch, open_mem, small_config};
use log_core::{Disk, DiskError, LeaderEpoch, LogError, MemDisk, Offset, PartitionLog};

/// A log of 6 flushed records with its HW at `hw` and a checkpoint due.
fn flushed_log(disk: &MemDisk, hw: i64) -> PartitionLog {
    let mut log = open_mem(disk, small_config());
    log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    log.append_as_leader(&batch("b", 3, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let plan = log.plan_flush().unwrap();
    let synced = plan.sync(&*log.disk());
    log.finish_flush(plan, synced).unwrap();
    log.set_high_watermark(Offset(hw)).unwrap();
    assert!(log.checkpoint_due());
    log
}

/// The partition directory's leftover `.tmp` files.
fn tmp_files(disk: &MemDisk) -> Vec<String> {
    disk.list(Path::new("topic-0"))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_plan_is_written_off_the_log_and_installed_under_it() {
    let disk = MemDisk::new(21);
    let mut log = flushed_log(&disk, 4);
    let plan = log.plan_checkpoint().unwrap();
    // The owner goes on while the IO worker writes: the HW moves up, which the plan (written
    // as planned) does not hold but does not contradict either.
    let written = plan.write(&*log.disk());
    log.set_high_watermark(Offset(5)).unwrap();
    assert!(log.install_checkpoint(&plan, written).unwrap());
    plan.sync_dir(&*log.disk()).unwrap();
    assert!(!log.checkpoint_due(), "the flushed bytes are accounted for");
    assert!(tmp_files(&disk).is_empty(), "the plan's file was renamed");
    drop(log);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(
        log.high_watermark(),
        Offset(4),
        "the planned HW is the checkpoint's"
    );
}

#[test]
fn a_plan_older_than_a_state_write_is_dropped_and_the_newer_state_stays() {
    let disk = MemDisk::new(22);
    let mut log = flushed_log(&disk, 6);
    let plan = log.plan_checkpoint().unwrap();
    let written = plan.write(&*log.disk());
    // DeleteRecords moves the log start and writes the state itself, inside the active segment.
    log.advance_log_start(Offset(2)).unwrap();
    assert!(!log.install_checkpoint(&plan, written).unwrap());
    assert!(
        tmp_files(&disk).is_empty(),
        "the stale plan's file is removed"
    );
    drop(log);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(
        log.log_start_offset(),
        Offset(2),
        "the deleted records stay deleted: the older state never replaced the newer"
    );
}

#[test]
fn a_newer_plan_makes_an_older_one_stale() {
    let disk = MemDisk::new(23);
    let mut log = flushed_log(&disk, 6);
    let older = log.plan_checkpoint().unwrap();
    let newer = log.plan_checkpoint().unwrap();
    let older_written = older.write(&*log.disk());
    let newer_written = newer.write(&*log.disk());
    assert!(log.install_checkpoint(&newer, newer_written).unwrap());
    assert!(!log.install_checkpoint(&older, older_written).unwrap());
    assert!(tmp_files(&disk).is_empty());
}

#[test]
fn a_plan_older_than_a_truncation_or_a_lower_hw_is_dropped() {
    let disk = MemDisk::new(24);
    let mut log = flushed_log(&disk, 2);
    let plan = log.plan_checkpoint().unwrap();
    let written = plan.write(&*log.disk());
    log.truncate_to(Offset(3)).unwrap();
    assert!(!log.install_checkpoint(&plan, written).unwrap());
    log.check_invariants();

    let disk = MemDisk::new(25);
    let mut log = flushed_log(&disk, 5);
    let plan = log.plan_checkpoint().unwrap();
    let written = plan.write(&*log.disk());
    log.set_high_watermark(Offset(3)).unwrap();
    assert!(
        !log.install_checkpoint(&plan, written).unwrap(),
        "the file would hold a HW above the log's"
    );
    assert!(log.checkpoint_due(), "the next round plans again");
    assert!(tmp_files(&disk).is_empty());
}

#[test]
fn a_crash_between_the_write_and_the_rename_leaves_the_old_checkpoint() {
    let disk = MemDisk::new(26);
    let mut log = flushed_log(&disk, 4);
    log.write_state().unwrap();
    log.set_high_watermark(Offset(6)).unwrap();
    log.append_as_leader(&batch("c", 1, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    // The IO worker's split flush (a whole `flush` would write the checkpoint itself).
    let flush = log.plan_flush().unwrap();
    let synced = flush.sync(&*log.disk());
    log.finish_flush(flush, synced).unwrap();
    let plan = log.plan_checkpoint().unwrap();
    plan.write(&*log.disk()).unwrap();
    assert_eq!(tmp_files(&disk).len(), 1);
    drop(log);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(log.high_watermark(), Offset(4), "the old checkpoint");
    // The file's creation was not durable (its directory was not synced): the crash may have
    // taken it already; if not, `open` removed it.
    assert!(log.recovery_report().leftovers_removed <= 1);
    assert!(tmp_files(&disk).is_empty());
    assert_eq!(
        log.log_end_offset(),
        Offset(7),
        "every flushed record recovered"
    );
}

#[test]
fn another_logs_plan_changes_nothing() {
    let disk = MemDisk::new(27);
    let mut log = flushed_log(&disk, 4);
    log.write_state().unwrap();
    log.set_high_watermark(Offset(6)).unwrap();
    let plan = log.plan_checkpoint().unwrap();
    let written = plan.write(&*log.disk());
    // The partition is closed and opened again (a failed replica repaired) meanwhile.
    drop(log);
    let mut successor = open_mem(&disk, small_config());
    assert!(!successor.install_checkpoint(&plan, written).unwrap());
    drop(successor);
    disk.crash();
    assert_eq!(
        open_mem(&disk, small_config()).high_watermark(),
        Offset(4),
        "the successor's checkpoint stays"
    );
}

#[test]
fn a_failed_write_poisons_the_log() {
    let disk = MemDisk::new(28);
    let mut log = flushed_log(&disk, 4);
    let plan = log.plan_checkpoint().unwrap();
    let failed = Err(LogError::Disk(DiskError::Io {
        path: "topic-0".into(),
        reason: "injected".into(),
    }));
    assert!(matches!(
        log.install_checkpoint(&plan, failed),
        Err(LogError::Disk(_))
    ));
    assert!(log.is_poisoned());
    assert!(
        log.plan_checkpoint().is_err(),
        "a poisoned log plans nothing"
    );
}
