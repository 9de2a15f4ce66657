//! One test (or a few) per major operation: truncation and the epoch cache, retention,
//! compaction (and its crash safety), checkpoints, FileDisk end to end.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use log_core::{
    BatchBuilder, FaultConfig, FileDisk, LeaderEpoch, LogConfig, LogError, MemDisk, Offset,
    PartitionLog,
};
use std::path::Path;
use std::sync::Arc;

fn keyed(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    builder.push(Some(key.as_bytes()), value.map(str::as_bytes), ts, &[]);
    builder.build()
}

#[test]
fn truncate_to_drops_the_suffix_the_epochs_and_lowers_the_recovery_point() {
    let disk = MemDisk::new(1);
    let mut log = open_mem(&disk, small_config());
    for epoch in 1..=3 {
        for i in 0..30 {
            log.append_as_leader(
                &batch(&format!("e{epoch}-{i}"), 2, 0, i),
                LeaderEpoch(epoch),
                i,
            )
            .unwrap();
        }
    }
    log.flush().unwrap();
    log.set_high_watermark(Offset(50)).unwrap();
    assert_eq!(
        log.epoch_entries(),
        vec![
            (LeaderEpoch(1), Offset(0)),
            (LeaderEpoch(2), Offset(60)),
            (LeaderEpoch(3), Offset(120))
        ]
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(2)),
        Some((LeaderEpoch(2), Offset(120)))
    );
    for (target, end) in [
        (101, 100),
        (100, 100),
        (99, 98),
        (0, 0),
        (180, 180),
        (500, 180),
    ] {
        assert_eq!(
            log.end_after_truncation(Offset(target)).unwrap(),
            Offset(end),
            "truncating to {target} leaves the log ending at {end}"
        );
    }
    log.truncate_to(Offset(101)).unwrap();
    assert_eq!(
        log.log_end_offset(),
        Offset(100),
        "the batch containing 101 goes whole"
    );
    assert_eq!(log.recovery_point(), Offset(100));
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(2)),
        Some((LeaderEpoch(2), Offset(100)))
    );
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(3)), None);
    // Durable on return: a crash right now keeps the truncation.
    disk.crash();
    let mut log = open_mem(&disk, small_config());
    assert_eq!(log.log_end_offset(), Offset(100));
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
    // A follower continues at the LEO with the leader's batches.
    let mut leader_batch = batch("f", 3, 0, 0);
    log_core::batch::set_base_offset(&mut leader_batch, Offset(100));
    log_core::batch::set_partition_leader_epoch(&mut leader_batch, LeaderEpoch(4));
    log.append_as_follower(&leader_batch, 0).unwrap();
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        Some((LeaderEpoch(2), Offset(100)))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(4)),
        Some((LeaderEpoch(4), Offset(103)))
    );
    // A dense (non-compacted) log refuses a gap between replicated batches.
    let mut first = batch("g1", 1, 0, 0);
    log_core::batch::set_base_offset(&mut first, Offset(103));
    let mut gapped = batch("g2", 1, 0, 0);
    log_core::batch::set_base_offset(&mut gapped, Offset(105));
    first.extend_from_slice(&gapped);
    assert!(matches!(
        log.append_as_follower(&first, 0),
        Err(LogError::NonMonotonicOffset { .. })
    ));
    assert_eq!(
        log.log_end_offset(),
        Offset(103),
        "nothing of a refused append lands"
    );
    let mut wrong = batch("w", 1, 0, 0);
    log_core::batch::set_base_offset(&mut wrong, Offset(200));
    assert!(matches!(
        log.append_as_follower(&wrong, 0),
        Err(LogError::NonMonotonicOffset { .. })
    ));
}

/// Found by the cluster simulation: a leader that started an epoch and wrote nothing in it,
/// then became a follower, must be able to drop that epoch by truncating to its own LEO (the
/// leader's divergence answer), durably, or every later fetch names an epoch the leader lacks.
#[test]
fn truncate_to_the_log_end_drops_an_empty_trailing_epoch_durably() {
    let disk = MemDisk::new(2);
    let mut log = open_mem(&disk, small_config());
    log.append_as_leader(&batch("a", 4, 0, 0), LeaderEpoch(1), 0)
        .unwrap();
    log.assign_epoch_start(LeaderEpoch(2), Offset(4));
    log.flush().unwrap();
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
    log.truncate_to(Offset(4)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(4), "no record goes");
    assert_eq!(log.epoch_entries(), vec![(LeaderEpoch(1), Offset(0))]);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(log.epoch_entries(), vec![(LeaderEpoch(1), Offset(0))]);
}

/// A bit flipped at rest in a batch's base offset (outside every CRC) of the segment a
/// truncation keeps: the truncation reports corruption, as any other read of damaged data does,
/// instead of panicking (found by the storage campaign, seed 445); reopening verifies the log.
#[test]
fn a_flip_in_the_kept_prefix_of_a_truncation_is_corruption_not_a_panic() {
    let disk = MemDisk::new(3);
    let mut log = open_mem(&disk, small_config());
    // 20 batches of 2 records in one segment, indexed every 256 bytes: the truncation finds its
    // cut through the index, without reading the first batch.
    for i in 0..20 {
        log.append_as_leader(&batch("a", 2, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.flush().unwrap();
    assert_eq!(log.segment_count(), 1);
    // The first batch's base offset, byte 5 of 8 (big-endian): offset 0 becomes 2^16.
    disk.flip_bit_at(Path::new("topic-0/00000000000000000000.log"), 5, 0)
        .unwrap();
    let refused = log.truncate_to(Offset(31));
    assert!(
        refused.as_ref().is_err_and(LogError::is_corruption),
        "{refused:?}"
    );
}

#[test]
fn truncate_fully_and_start_at_restarts_an_empty_log() {
    let disk = MemDisk::new(2);
    let mut log = open_mem(&disk, small_config());
    for i in 0..50 {
        log.append_as_leader(&batch("x", 2, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.truncate_fully_and_start_at(Offset(1000)).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(1000), Offset(1000))
    );
    assert!(matches!(
        log.read(Offset(5), 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let info = log
        .append_as_leader(&batch("y", 1, 0, 0), LeaderEpoch(2), 0)
        .unwrap();
    assert_eq!(info.first_offset, Offset(1000));
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(log.log_start_offset(), Offset(1000));
    assert!(log.log_end_offset() >= Offset(1000));
}

#[test]
fn retention_deletes_old_segments_never_past_the_high_watermark() {
    let disk = MemDisk::new(3);
    let config = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let mut log = open_mem(&disk, config.clone());
    for i in 0..300 {
        log.append_as_leader(&batch("r", 4, 0, i * 100), LeaderEpoch(1), i * 100)
            .unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    let outcome = log.enforce_retention(100_000_000).unwrap();
    assert_eq!(outcome.segments_deleted, 0, "HW is 0: nothing is deletable");
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let outcome = log.enforce_retention(100_000_000).unwrap();
    assert_eq!(
        outcome.segments_deleted,
        segments - 1,
        "all but the active segment"
    );
    assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
    assert!(matches!(
        log.read(Offset(0), 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    disk.crash();
    let log = open_mem(&disk, config);
    assert_eq!(
        log.log_start_offset(),
        outcome.log_start_offset,
        "the new log start is durable"
    );
}

#[test]
fn advance_log_start_deletes_segments_wholly_below_never_past_the_high_watermark() {
    // DeleteRecords: the start may land inside a segment and a batch; segments wholly below go.
    let disk = MemDisk::new(11);
    let mut log = open_mem(&disk, small_config());
    for i in 0..300 {
        log.append_as_leader(&batch("d", 4, 0, i * 100), LeaderEpoch(1), i * 100)
            .unwrap();
    }
    let bases = log.segment_bases();
    assert!(bases.len() > 3);
    assert!(
        matches!(
            log.advance_log_start(Offset(1)),
            Err(LogError::OffsetOutOfRange { .. })
        ),
        "HW 0: nothing is committed, nothing may go"
    );
    log.set_high_watermark(Offset(1000)).unwrap();
    assert!(matches!(
        log.advance_log_start(Offset(1001)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Inside the third segment, inside a batch of 4.
    let target = Offset(bases[2].0 + 2);
    let deleted = log.advance_log_start(target).unwrap();
    assert_eq!(deleted, 2, "the two segments wholly below");
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_bases()[0], bases[2]);
    assert!(matches!(
        log.read(Offset(target.0 - 1), 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = read_all(&log, target);
    assert!(!first.is_empty(), "records from the new start are readable");
    assert_eq!(log.advance_log_start(Offset(3)).unwrap(), 0, "never back");
    assert_eq!(log.log_start_offset(), target);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert_eq!(
        log.log_start_offset(),
        target,
        "the new log start is durable"
    );
    assert_eq!(log.segment_bases()[0], bases[2]);
}

#[test]
fn records_without_timestamps_are_kept_for_the_retention_time_from_their_append() {
    // librdkafka's C++ API sends timestamp -1; time retention took such a segment for one from
    // 1970 and deleted it at the first check (found by librdkafka's 0053_stats: its consumer
    // found the log start past the records it had just produced).
    let disk = MemDisk::new(9);
    let config = LogConfig {
        retention_ms: Some(60_000),
        segment_age_ms_max: 3_600_000,
        ..small_config()
    };
    let mut log = open_mem(&disk, config);
    let now = 1_000_000;
    log.append_as_leader(&keyed("k", Some("v"), -1), LeaderEpoch(1), now)
        .unwrap();
    assert!(
        !log.roll_if_due(now + 10_000).unwrap(),
        "a young segment stays active"
    );
    assert!(log.roll(now + 10_000).unwrap());
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let kept = log.enforce_retention(now + 30_000).unwrap();
    assert_eq!(
        kept.segments_deleted, 0,
        "appended 30 s ago, retained for 60 s"
    );
    assert_eq!(log.log_start_offset(), Offset(0));
    let deleted = log.enforce_retention(now + 61_000).unwrap();
    assert_eq!(
        deleted.segments_deleted, 1,
        "older than the retention time by its append"
    );
    assert!(log.roll_if_due(now + 61_000 + 3_600_000).is_ok());
}

#[test]
fn retention_by_size_keeps_the_newest_bytes() {
    let disk = MemDisk::new(4);
    let config = LogConfig {
        retention_bytes: Some(10_000),
        ..small_config()
    };
    let mut log = open_mem(&disk, config);
    for i in 0..200 {
        log.append_as_leader(&batch("s", 4, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let before = log.size_bytes();
    let outcome = log.enforce_retention(0).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(
        log.size_bytes() >= 10_000 && log.size_bytes() < 10_000 + 4096,
        "{} of {before}",
        log.size_bytes()
    );
}

fn compacted_config() -> LogConfig {
    LogConfig {
        compacted: true,
        delete_retention_ms: 1000,
        ..small_config()
    }
}

/// Fills a compacted log: 400 updates over 10 keys, a tombstone for k3 at ts 0.
fn fill_compacted(log: &mut PartitionLog) -> Vec<(String, Option<String>)> {
    let mut latest = vec![(String::new(), None); 10];
    for i in 0..400i64 {
        let key = format!("k{}", i % 10);
        let value = if i == 393 {
            None
        } else {
            Some(format!("v{i}"))
        };
        let ts = if i == 393 { 0 } else { 10_000 + i };
        log.append_as_leader(&keyed(&key, value.as_deref(), ts), LeaderEpoch(1), 0)
            .unwrap();
        latest[(i % 10) as usize] = (key, value);
    }
    log.append_as_leader(&keyed("tail", Some("t"), 20_000), LeaderEpoch(1), 0)
        .unwrap();
    log.roll(0).unwrap();
    log.set_high_watermark(log.log_end_offset()).unwrap();
    latest
}

fn check_compacted(log: &PartitionLog, latest: &[(String, Option<String>)], tombstone_gone: bool) {
    let all = read_all(log, log.log_start_offset());
    let mut seen = std::collections::BTreeMap::new();
    let mut last_offset = None;
    for (offset, key, value) in &all {
        assert!(last_offset < Some(*offset), "offsets increase");
        last_offset = Some(*offset);
        let key = String::from_utf8(key.clone().unwrap()).unwrap();
        seen.insert(key, value.clone().map(|v| String::from_utf8(v).unwrap()));
    }
    for (key, value) in latest {
        if value.is_none() && tombstone_gone {
            assert!(
                !seen.contains_key(key),
                "expired tombstone for {key} removed, and its older values"
            );
        } else {
            assert_eq!(seen.get(key), Some(value), "latest value of {key}");
        }
    }
    assert_eq!(
        log.log_end_offset(),
        Offset(401),
        "offsets are never reused"
    );
}

#[test]
fn compaction_keeps_the_latest_per_key_and_preserves_offsets() {
    let disk = MemDisk::new(5);
    let mut log = open_mem(&disk, compacted_config());
    let latest = fill_compacted(&mut log);
    let before = log.size_bytes();
    let outcome = log.compact(50_000).unwrap();
    assert!(
        outcome.segments_cleaned > 0 && outcome.records_removed >= 380,
        "{outcome:?}"
    );
    assert!(
        log.size_bytes() < before / 5,
        "{} of {before}",
        log.size_bytes()
    );
    check_compacted(&log, &latest, true);
    // The offset of a surviving record is its original one.
    let result = log.read(Offset(399), 1000).unwrap();
    let recs = records(&result.bytes);
    assert_eq!(
        recs.iter()
            .find(|(o, _, _)| *o == Offset(399))
            .unwrap()
            .2
            .as_deref(),
        Some(&b"v399"[..])
    );
    // Idempotent, and survives a crash and reopen.
    assert_eq!(log.compact(50_000).unwrap().records_removed, 0);
    disk.crash();
    let log = open_mem(&disk, compacted_config());
    check_compacted(&log, &latest, true);
}

#[test]
fn a_crash_in_the_middle_of_compaction_loses_nothing() {
    let mut failures = 0;
    for seed in 0..40u64 {
        let disk = MemDisk::new(seed);
        let mut log = open_mem(&disk, compacted_config());
        let latest = fill_compacted(&mut log);
        disk.set_faults(FaultConfig {
            sync_error_probability: 0.15,
            write_error_probability: 0.05,
            ..FaultConfig::default()
        });
        if log.compact(50_000).is_err() {
            failures += 1;
        }
        disk.set_faults(FaultConfig::default());
        drop(log);
        disk.crash();
        let log = open_mem(&disk, compacted_config());
        // Whatever was swapped in or not, the latest value of each key is there; the tombstone
        // may or may not have been removed yet.
        let tombstone_gone = read_all(&log, Offset(0))
            .iter()
            .all(|(_, k, _)| k.as_deref() != Some(&b"k3"[..]));
        check_compacted(&log, &latest, tombstone_gone);
        let names = disk_names(&disk);
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".tmp")),
            "leftovers removed: {names:?}"
        );
    }
    assert!(
        failures > 5,
        "the faults hit compaction mid-way: {failures}"
    );
}

fn disk_names(disk: &MemDisk) -> Vec<String> {
    use log_core::Disk;
    disk.list(Path::new("topic-0")).unwrap()
}

#[test]
fn high_watermark_and_log_start_survive_restarts() {
    let disk = MemDisk::new(6);
    let mut log = open_mem(&disk, small_config());
    for i in 0..20 {
        log.append_as_leader(&batch("h", 2, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.set_high_watermark(Offset(33)).unwrap();
    log.flush().unwrap();
    disk.crash();
    let mut log = open_mem(&disk, small_config());
    assert_eq!(
        log.high_watermark(),
        Offset(33),
        "checkpoint_interval_bytes 0: every flush writes it"
    );
    assert!(matches!(
        log.set_high_watermark(Offset(41)),
        Err(LogError::HighWatermarkOutOfRange { .. })
    ));
}

#[test]
fn disk_full_and_io_errors_are_returned_and_the_log_recovers_after_reopen() {
    let disk = MemDisk::new(7);
    let mut log = open_mem(&disk, small_config());
    for i in 0..10 {
        log.append_as_leader(&batch("d", 2, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.flush().unwrap();
    let used: u64 = disk_names(&disk).len() as u64; // any small number: capacity below usage
    disk.set_faults(FaultConfig {
        capacity_bytes: Some(used),
        ..FaultConfig::default()
    });
    let error = log
        .append_as_leader(&batch("full", 2, 0, 0), LeaderEpoch(1), 0)
        .unwrap_err();
    assert!(
        matches!(error, LogError::Disk(log_core::DiskError::Full(_))),
        "{error}"
    );
    assert_eq!(
        log.log_end_offset(),
        Offset(20),
        "a refused append changes nothing"
    );
    disk.set_faults(FaultConfig::default());
    disk.fail_next(log_core::FaultOp::Sync, 1);
    log.append_as_leader(&batch("late", 2, 0, 0), LeaderEpoch(1), 0)
        .unwrap();
    assert!(log.flush().is_err());
    assert_eq!(
        log.recovery_point(),
        Offset(20),
        "a failed flush does not move the recovery point"
    );
    assert!(log.is_poisoned());
    assert!(
        matches!(log.flush(), Err(LogError::Poisoned(_))),
        "a failed fsync is never retried"
    );
    assert!(matches!(
        log.read(Offset(0), 100),
        Err(LogError::Poisoned(_))
    ));
    drop(log);
    disk.crash();
    let log = open_mem(&disk, small_config());
    assert!(log.log_end_offset() >= Offset(20));
}

#[test]
fn file_disk_end_to_end_with_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn log_core::Disk> = Arc::new(FileDisk::new(dir.path()).unwrap());
    let mut log =
        PartitionLog::open(Arc::clone(&disk), Path::new("t/p-0"), small_config(), 0).unwrap();
    for i in 0..100 {
        log.append_as_leader(&batch("f", 3, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.flush().unwrap();
    let before = read_all(&log, Offset(0));
    drop(log); // no close: an unclean shutdown of the process
    let log = PartitionLog::open(disk, Path::new("t/p-0"), small_config(), 0).unwrap();
    assert_eq!(read_all(&log, Offset(0)), before);
    assert!(
        dir.path().join("t/p-0/00000000000000000000.log").exists(),
        "Kafka-style names"
    );
    assert!(
        dir.path().join("t/p-0/00000000000000000000.index").exists(),
        "sealed segments are indexed"
    );
}

#[test]
fn set_config_turns_compaction_on_for_an_open_log_and_its_existing_segments() {
    let disk = MemDisk::new(21);
    let mut log = open_mem(&disk, small_config());
    let unkeyed = batch("plain", 1, 0, 5);
    log.append_as_leader(&unkeyed, LeaderEpoch(1), 0).unwrap();
    // Written under `delete`: dense segments, keyed updates of one key.
    for i in 0..50i64 {
        log.append_as_leader(
            &keyed("k", Some(&format!("v{i}")), 10_000 + i),
            LeaderEpoch(1),
            0,
        )
        .unwrap();
    }
    log.roll(0).unwrap();
    log.set_high_watermark(log.log_end_offset()).unwrap();
    let config = compacted_config();
    log.set_config(config.clone());
    assert_eq!(log.config(), &config);
    // Kafka's rule for compacted topics now holds: a record without a key is refused.
    assert!(matches!(
        log.append_as_leader(&unkeyed, LeaderEpoch(1), 0),
        Err(LogError::Refused(_))
    ));
    let outcome = log.compact(50_000).unwrap();
    assert!(outcome.records_removed >= 49, "{outcome:?}");
    let keys: Vec<_> = read_all(&log, log.log_start_offset())
        .into_iter()
        .filter(|(_, key, _)| key.as_deref() == Some(&b"k"[..]))
        .map(|(offset, _, value)| (offset, value))
        .collect();
    assert_eq!(
        keys,
        vec![(Offset(50), Some(b"v49".to_vec()))],
        "the latest value kept"
    );
    // Reads over the gaps compaction made in segments written dense still work after a reopen.
    log.flush().unwrap();
    drop(log);
    let log = open_mem(&disk, compacted_config());
    assert_eq!(read_all(&log, Offset(0)).len(), 2);
}

#[test]
fn log_append_time_stamps_a_leaders_batches_with_its_clock() {
    let disk = MemDisk::new(22);
    let config = LogConfig {
        log_append_time: true,
        ..small_config()
    };
    let mut log = open_mem(&disk, config);
    log.append_as_leader(&keyed("k", Some("v"), 1_000), LeaderEpoch(1), 77_000)
        .unwrap();
    let bytes = log.read(Offset(0), 1 << 20).unwrap().bytes;
    let header = log_core::batch::BatchHeader::parse(&bytes).unwrap();
    assert_eq!(
        header.max_timestamp, 77_000,
        "the log's clock, not the producer's"
    );
    assert_ne!(header.attributes & 0x08, 0, "the LogAppendTime bit");
}
