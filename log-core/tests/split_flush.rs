//! The split flush the broker's IO worker uses (plan under the owner's lock, sync off it, finish
//! under it): appends made during the sync are not counted durable, a plan older than a
//! truncation finishes as a no-op, a failed sync poisons the log, and what a finished plan
//! reports survives a crash.
#![allow(clippy::unwrap_used)]

mod common;

use common::{batch, open_mem, read_all, small_config};
use log_core::{DiskError, LeaderEpoch, LogError, MemDisk, Offset};

#[test]
fn appends_during_the_sync_wait_for_the_next_round() {
    let disk = MemDisk::new(11);
    let mut log = open_mem(&disk, small_config());
    log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let plan = log.plan_flush().unwrap();
    assert_eq!(plan.up_to(), Offset(3));
    assert!(!plan.is_empty());
    // The owner appends while the IO worker syncs.
    log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let synced = plan.sync(&*log.disk());
    assert_eq!(log.finish_flush(plan, synced).unwrap(), Offset(3));
    assert_eq!(log.recovery_point(), Offset(3), "b is not durable yet");
    disk.crash();
    let log = open_mem(&disk, small_config());
    // The sync ran after b's append, so b may be durable too; only a..3 was promised.
    assert!(
        read_all(&log, Offset::ZERO).len() >= 3,
        "the planned records survive the crash"
    );
}

#[test]
fn a_plan_older_than_a_truncation_finishes_as_a_no_op() {
    let disk = MemDisk::new(12);
    let mut log = open_mem(&disk, small_config());
    log.append_as_leader(&batch("a", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    log.flush().unwrap();
    log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let plan = log.plan_flush().unwrap();
    let synced = plan.sync(&*log.disk());
    // A truncation and a new append at the same offsets before the plan finishes: the plan's
    // offsets now hold new, unsynced bytes.
    log.truncate_to(Offset(2)).unwrap();
    log.append_as_leader(&batch("c", 2, 0, 0), LeaderEpoch(1), 0)
        .unwrap();
    assert_eq!(log.finish_flush(plan, synced).unwrap(), Offset(2));
    assert_eq!(log.recovery_point(), Offset(2));
    log.check_invariants();
}

#[test]
fn a_failed_sync_poisons_the_log() {
    let disk = MemDisk::new(13);
    let mut log = open_mem(&disk, small_config());
    log.append_as_leader(&batch("a", 1, 0, 0), LeaderEpoch(0), 0)
        .unwrap();
    let plan = log.plan_flush().unwrap();
    let failed = Err(DiskError::Io {
        path: "topic-0".into(),
        reason: "injected".into(),
    });
    assert!(matches!(
        log.finish_flush(plan, failed),
        Err(LogError::Disk(_))
    ));
    assert!(log.is_poisoned());
    assert_eq!(log.recovery_point(), Offset::ZERO);
    assert!(log.plan_flush().is_err(), "a poisoned log plans nothing");
}

/// A sync that fails on a disk that then drops the unsynced bytes (Linux after a writeback
/// error): the log is poisoned, and reopened it holds what the last good flush covered, with the
/// dropped tail cut as torn (whether or not the disk crashed in between).
#[test]
fn a_failed_sync_that_drops_the_unsynced_bytes_loses_only_unflushed_records() {
    for crash in [false, true] {
        let disk = MemDisk::new(15);
        disk.set_sync_failure_drops_unsynced(true);
        let mut log = open_mem(&disk, small_config());
        log.append_as_leader(&batch("a", 3, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        let plan = log.plan_flush().unwrap();
        let synced = plan.sync(&*log.disk());
        assert_eq!(log.finish_flush(plan, synced).unwrap(), Offset(3));
        log.append_as_leader(&batch("b", 2, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        let plan = log.plan_flush().unwrap();
        disk.fail_next(log_core::FaultOp::Sync, 1);
        let synced = plan.sync(&*log.disk());
        assert!(synced.is_err());
        assert!(matches!(
            log.finish_flush(plan, synced),
            Err(LogError::Disk(_))
        ));
        assert!(log.is_poisoned());
        assert_eq!(log.recovery_point(), Offset(3), "b was never flushed");
        drop(log);
        if crash {
            disk.crash();
        }
        let log = open_mem(&disk, small_config());
        assert_eq!(log.log_end_offset(), Offset(3), "the dropped batch is cut");
        assert_eq!(read_all(&log, Offset::ZERO).len(), 3);
    }
}

#[test]
fn the_checkpoint_comes_due_by_flushed_bytes() {
    let disk = MemDisk::new(14);
    let config = log_core::LogConfig {
        checkpoint_interval_bytes: 1_000,
        ..small_config()
    };
    let mut log = open_mem(&disk, config);
    assert!(!log.checkpoint_due());
    for round in 0..20 {
        log.append_as_leader(&batch("x", 4, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        let plan = log.plan_flush().unwrap();
        let synced = plan.sync(&*log.disk());
        log.finish_flush(plan, synced).unwrap();
        if log.checkpoint_due() {
            assert!(round > 0, "one small batch is below the interval");
            log.write_state().unwrap();
            assert!(!log.checkpoint_due());
            return;
        }
    }
    panic!("20 flushed batches never made the checkpoint due");
}
