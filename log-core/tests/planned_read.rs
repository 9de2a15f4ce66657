//! The read the broker makes without holding the partition's lock: planned under the lock
//! (`plan_read`), run off it (`ReadPlan::run`), confirmed under it (`read_is_current`). A plan
//! reads exactly what `read` would have read when it was made; appends since leave it current;
//! anything that changes or removes bytes already in the log (a truncation, a segment deleted by
//! retention or DeleteRecords, compaction) makes it stale, so the caller reads again.
#![allow(clippy::unwrap_used)]

mod common;

use common::{batch, open_mem, small_config};
use log_core::{LeaderEpoch, LogConfig, MemDisk, Offset, PartitionLog};

fn log_of(disk: &MemDisk, config: LogConfig, batches: usize) -> PartitionLog {
    let mut log = open_mem(disk, config);
    for i in 0..batches {
        log.append_as_leader(&batch(&format!("b{i}"), 4, 0, 1_000), LeaderEpoch(0), 0)
            .unwrap();
    }
    log.flush().unwrap();
    log
}

#[test]
fn a_plan_reads_what_read_reads_and_stays_current_across_appends() {
    let disk = MemDisk::new(31);
    let mut log = log_of(&disk, small_config(), 40);
    for (from, bytes_max) in [(0, 1), (0, 1 << 20), (6, 300), (37, 1), (80, 10), (160, 1)] {
        let plan = log.plan_read(Offset(from), bytes_max).unwrap();
        let expected = log.read(Offset(from), bytes_max).unwrap();
        // The owner appends while the plan runs: the planned bytes do not change.
        log.append_as_leader(&batch("later", 2, 0, 1_000), LeaderEpoch(0), 0)
            .unwrap();
        let read = plan.run(&*log.disk()).unwrap();
        assert!(log.read_is_current(&plan), "appends leave a plan current");
        assert_eq!(read, expected, "from {from}, at most {bytes_max} bytes");
    }
    let bounded = log
        .plan_read_bounded(Offset(0), 1 << 20, Offset(10))
        .unwrap();
    assert_eq!(
        bounded.run(&*log.disk()).unwrap(),
        log.read_bounded(Offset(0), 1 << 20, Offset(10)).unwrap()
    );
}

#[test]
fn a_truncation_makes_a_plan_stale() {
    let disk = MemDisk::new(32);
    let mut log = log_of(&disk, small_config(), 10);
    let plan = log.plan_read(Offset(20), 1 << 20).unwrap();
    log.truncate_to(Offset(24)).unwrap();
    log.append_as_leader(&batch("new", 4, 0, 1_000), LeaderEpoch(1), 0)
        .unwrap();
    // What the plan read may be the new batch at the old position, or fail: neither is served.
    let _maybe = plan.run(&*log.disk());
    assert!(!log.read_is_current(&plan));
    assert!(log.read_is_current(&log.plan_read(Offset(20), 1 << 20).unwrap()));
}

#[test]
fn retention_and_delete_records_make_a_plan_stale() {
    let disk = MemDisk::new(33);
    let config = LogConfig {
        retention_bytes: Some(4_096),
        ..small_config()
    };
    let mut log = log_of(&disk, config, 200);
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let plan = log.plan_read(Offset(0), 1 << 20).unwrap();
    let outcome = log.enforce_retention(0).unwrap();
    assert!(outcome.segments_deleted > 0, "{outcome:?}");
    assert!(!log.read_is_current(&plan));

    let plan = log.plan_read(log.log_start_offset(), 1 << 20).unwrap();
    let start = log.log_start_offset();
    log.advance_log_start(start.add(200)).unwrap();
    assert!(!log.read_is_current(&plan), "a deleted segment");
}

#[test]
fn compaction_makes_a_plan_stale() {
    let disk = MemDisk::new(34);
    let config = LogConfig {
        compacted: true,
        ..small_config()
    };
    let mut log = open_mem(&disk, config);
    for _ in 0..100 {
        // Two keys, rewritten over and over: compaction removes most records.
        log.append_as_leader(&batch("k", 2, 2, 1_000), LeaderEpoch(0), 0)
            .unwrap();
    }
    log.flush().unwrap();
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let plan = log.plan_read(Offset(0), 1 << 20).unwrap();
    let outcome = log.compact(0).unwrap();
    assert!(outcome.segments_cleaned > 0, "{outcome:?}");
    assert!(!log.read_is_current(&plan));
}

#[test]
fn another_logs_plan_is_not_current() {
    let disk = MemDisk::new(35);
    let log = log_of(&disk, small_config(), 4);
    let plan = log.plan_read(Offset(0), 1 << 20).unwrap();
    drop(log);
    let successor = open_mem(&disk, small_config());
    assert!(!successor.read_is_current(&plan));
}
