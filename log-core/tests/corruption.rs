//! Bit flips and torn tails are always detected: recovered away in the unflushed tail or
//! reported as an error naming file and position; a wrong record is never served.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use log_core::{Disk, LeaderEpoch, LogError, MemDisk, Offset, PartitionLog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Recs = BTreeMap<Offset, (Option<Vec<u8>>, Option<Vec<u8>>)>;

fn build(disk: &MemDisk, batches: i64, flush: bool) -> Recs {
    let mut log = open_mem(disk, small_config());
    for i in 0..batches {
        log.append_as_leader(&batch(&format!("v{i}"), 3, 2, i), LeaderEpoch(1), i)
            .unwrap();
    }
    let records = read_all_map(&log);
    if flush {
        log.close().unwrap();
    }
    records
}

fn read_all_map(log: &PartitionLog) -> Recs {
    read_all(log, log.log_start_offset())
        .into_iter()
        .map(|(o, k, v)| (o, (k, v)))
        .collect()
}

fn segment_files(disk: &MemDisk) -> Vec<PathBuf> {
    let dir = Path::new("topic-0");
    disk.list(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .map(|n| dir.join(n))
        .collect()
}

/// Reads every offset individually; each read is either an error or correct records.
fn check_reads(log: &PartitionLog, original: &Recs) -> usize {
    let mut errors = 0;
    for offset in log.log_start_offset().0..log.log_end_offset().0 {
        match log.read(Offset(offset), 200) {
            Ok(result) => {
                for (o, k, v) in records(&result.bytes) {
                    assert_eq!(
                        original.get(&o),
                        Some(&(k, v)),
                        "a wrong record served at {o}"
                    );
                }
            }
            Err(LogError::CorruptBatch { file, .. }) => {
                assert!(
                    file.ends_with(".log"),
                    "errors name the segment file: {file}"
                );
                errors += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    errors
}

#[test]
fn bit_flips_in_flushed_segments_are_detected_never_served() {
    let mut detected = 0;
    for seed in 0..150u64 {
        let disk = MemDisk::new(seed);
        let original = build(&disk, 60, true);
        let files = segment_files(&disk);
        let file = &files[seed as usize % files.len()];
        let position = disk.flip_random_bit(file).unwrap();
        assert!(position.is_some());
        let log = match PartitionLog::open(
            Arc::new(disk.clone()),
            Path::new("topic-0"),
            small_config(),
            0,
        ) {
            Ok(log) => log,
            Err(LogError::CorruptBelowRecoveryPoint {
                file: named,
                position: at,
                ..
            }) => {
                assert_eq!(
                    Path::new(&named),
                    file.as_path(),
                    "the error names the damaged file"
                );
                assert!(
                    at <= position.unwrap(),
                    "the damage is at or after the reported batch"
                );
                detected += 1;
                continue;
            }
            Err(e) => panic!("seed {seed}: unexpected open error {e}"),
        };
        let errors = check_reads(&log, &original);
        let intact = read_all_safe(&log) == Some(original.clone());
        // Flips in the partition leader epoch field are outside the CRC (Kafka's format): the
        // records stay intact. Every other flip must surface as an error.
        if errors > 0 {
            detected += 1;
        } else {
            assert!(
                intact,
                "seed {seed}: an undetected flip at {position:?} in {file:?} changed what is served: {:?} {:?}",
                read_all_safe(&log).map(|r| r.len()),
                log.read(Offset(0), 4096).err()
            );
        }
    }
    assert!(
        detected >= 130,
        "almost every flip is detected: {detected}/150"
    );
}

fn read_all_safe(log: &PartitionLog) -> Option<Recs> {
    let mut out = Recs::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let result = log.read(next, 4096).ok()?;
        for (o, k, v) in records(&result.bytes) {
            out.insert(o, (k, v));
        }
        next = result.next_offset;
    }
    Some(out)
}

#[test]
fn flips_in_the_unflushed_tail_are_truncated_away_or_refused_at_open() {
    let (mut truncated, mut refused) = (0, 0);
    for seed in 0..60u64 {
        let disk = MemDisk::new(seed);
        let mut log = open_mem(&disk, small_config());
        for i in 0..5 {
            log.append_as_leader(&batch(&format!("a{i}"), 2, 0, i), LeaderEpoch(1), 0)
                .unwrap();
        }
        let flushed = log.flush().unwrap();
        for i in 0..5 {
            log.append_as_leader(&batch(&format!("b{i}"), 2, 0, i), LeaderEpoch(1), 0)
                .unwrap();
        }
        let original = read_all_map(&log);
        let active = segment_files(&disk).pop().unwrap();
        let durable_len = disk.durable_bytes(&active).unwrap().len() as u64;
        let len = disk.len(&active).unwrap();
        // Flip a bit in the unflushed part only (the page cache rotted before reboot), spread
        // over its five batches (a stride, not the first 60 bytes: those fall in the first
        // batch, whose only flip cut as a tail was one in its length field, which a crash
        // cannot make and is corruption since seed 327317).
        let position = durable_len + (seed * 7_919) % (len - durable_len);
        disk.flip_bit_at(&active, position, (seed % 8) as u32)
            .unwrap();
        drop(log);
        // Open cannot tell a flip in unflushed bytes from one in flushed bytes above a lagging
        // checkpoint: one with a valid batch after it is refused as corruption (the broker sets
        // such a log aside and rebuilds it from the leader), one in the last batch is a tail.
        let opened = PartitionLog::open(
            Arc::new(disk.clone()),
            Path::new("topic-0"),
            small_config(),
            0,
        );
        let log = match opened {
            Ok(log) => log,
            Err(LogError::CorruptBeforeValidBatches { position: at, .. }) => {
                assert!(
                    at <= position,
                    "seed {seed}: the damage is at or after {at}"
                );
                refused += 1;
                continue;
            }
            Err(other) => panic!("seed {seed}: unexpected open error {other}"),
        };
        truncated += 1;
        assert!(log.log_end_offset() >= flushed, "flushed data stays");
        let report = log.recovery_report();
        assert!(
            report.bytes_validated + report.bytes_truncated > 0,
            "the tail is looked at: {report:?}"
        );
        let served = read_all_map(&log);
        for (offset, record) in &served {
            assert_eq!(
                original.get(offset),
                Some(record),
                "seed {seed}: wrong record at {offset}"
            );
        }
        assert_eq!(
            check_reads(&log, &original),
            0,
            "what recovery kept reads cleanly"
        );
    }
    assert!(
        truncated > 0 && refused > 0,
        "both outcomes seen: {truncated} truncated, {refused} refused"
    );
}

#[test]
fn torn_tails_after_a_crash_recover_to_a_batch_boundary() {
    for seed in 0..100u64 {
        let disk = MemDisk::new(seed);
        let mut log = open_mem(&disk, small_config());
        for i in 0..8 {
            log.append_as_leader(&batch(&format!("a{i}"), 4, 0, i), LeaderEpoch(2), 0)
                .unwrap();
        }
        let flushed = log.flush().unwrap();
        for i in 0..8 {
            log.append_as_leader(&batch(&format!("b{i}"), 40, 0, i), LeaderEpoch(3), 0)
                .unwrap();
        }
        let original = read_all_map(&log);
        disk.crash();
        let log = open_mem(&disk, small_config());
        assert!(log.log_end_offset() >= flushed);
        let served = read_all_map(&log);
        assert_eq!(served.len() as i64, log.log_end_offset().0, "dense from 0");
        for (offset, record) in &served {
            assert_eq!(original.get(offset), Some(record));
        }
        // The epoch cache agrees with what survived.
        let latest = log.latest_epoch().unwrap();
        assert!(latest == LeaderEpoch(2) || latest == LeaderEpoch(3));
        if latest == LeaderEpoch(3) {
            assert!(
                log.log_end_offset() > flushed,
                "epoch 3 only if its data survived"
            );
        }
    }
}

#[test]
fn corruption_below_the_recovery_point_refuses_to_open() {
    let disk = MemDisk::new(1);
    build(&disk, 3, true); // one segment, all flushed: the active segment is below the recovery point
    let file = segment_files(&disk).pop().unwrap();
    disk.flip_bit_at(&file, 16, 0).unwrap(); // the magic byte of the first batch
    let error = PartitionLog::open(
        Arc::new(disk.clone()),
        Path::new("topic-0"),
        small_config(),
        0,
    )
    .unwrap_err();
    match error {
        LogError::CorruptBelowRecoveryPoint {
            file: named,
            position,
            recovery_point,
            ..
        } => {
            assert_eq!(Path::new(&named), file.as_path());
            assert_eq!(position, 0);
            assert_eq!(recovery_point, Offset(9));
        }
        other => panic!("expected CorruptBelowRecoveryPoint, got {other}"),
    }
}

/// A bit flip in flushed data above a lagging checkpoint (checkpoints are lazy: the recovery
/// point trails what was flushed and acknowledged) is corruption, not a torn tail, when a valid
/// batch follows it: a crash tears only a file's end. Truncating it as a tail dropped
/// acknowledged records, and the broker, calling its storage intact, was elected from the ELR
/// with them missing (cluster simulation, seed 55602).
#[test]
fn a_flip_in_flushed_data_past_a_lagging_checkpoint_is_not_a_torn_tail() {
    let config = log_core::LogConfig {
        checkpoint_interval_bytes: 1 << 20, // no checkpoint after the first flushes
        ..small_config()
    };
    let disk = MemDisk::new(7);
    let mut log = open_mem(&disk, config.clone());
    let path = Path::new("topic-0/00000000000000000000.log");
    let mut ends = Vec::new();
    for i in 0..10 {
        log.append_as_leader(&batch(&format!("v{i}"), 3, 2, i), LeaderEpoch(1), i)
            .unwrap();
        ends.push(disk.len(path).unwrap());
    }
    assert_eq!(log.flush().unwrap(), Offset(30), "flushed: acknowledgeable");
    drop(log);
    // Inside the sixth batch's records (covered by its CRC), well before the file's end.
    disk.flip_bit_at(path, ends[5] - 3, 0).unwrap();
    disk.crash();
    match PartitionLog::open(Arc::new(disk.clone()), Path::new("topic-0"), config, 0) {
        Err(error @ LogError::CorruptBeforeValidBatches { position, .. }) => {
            assert!(error.is_corruption(), "{error}");
            assert_eq!(position, ends[4], "names the damaged batch");
        }
        Ok(log) => panic!(
            "a flip recovered as a torn tail: the log ends at {}",
            log.log_end_offset()
        ),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// A tear at a file's end is still a tail, even with a checkpoint lagging: nothing valid
/// follows it.
#[test]
fn a_torn_last_batch_is_still_truncated_as_a_tail() {
    let config = log_core::LogConfig {
        checkpoint_interval_bytes: 1 << 20,
        ..small_config()
    };
    let disk = MemDisk::new(8);
    let mut log = open_mem(&disk, config.clone());
    let path = Path::new("topic-0/00000000000000000000.log");
    for i in 0..10 {
        log.append_as_leader(&batch(&format!("v{i}"), 3, 2, i), LeaderEpoch(1), i)
            .unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let len = disk.len(path).unwrap();
    disk.flip_bit_at(path, len - 3, 0).unwrap();
    let log = PartitionLog::open(Arc::new(disk.clone()), Path::new("topic-0"), config, 0).unwrap();
    assert_eq!(
        log.log_end_offset(),
        Offset(27),
        "the last batch cut as a tail"
    );
}

/// Where batch `index` of `file` starts (batches of one segment, one after the other).
fn batch_position(disk: &MemDisk, file: &Path, index: usize) -> u64 {
    let len = usize::try_from(disk.len(file).unwrap()).unwrap();
    let bytes = disk.read_vec(file, 0, len).unwrap();
    let mut at = 0usize;
    for _ in 0..index {
        let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        at += 12 + usize::try_from(length).unwrap();
    }
    at as u64
}

/// Four one-record batches in the unflushed tail of one segment (the log dropped without a
/// flush, the bytes still on the disk): the segment file.
fn four_unflushed_batches(disk: &MemDisk) -> PathBuf {
    let mut log = open_mem(disk, small_config());
    for i in 0..4 {
        log.append_as_leader(&batch(&format!("v{i}"), 1, 0, i), LeaderEpoch(1), i)
            .unwrap();
    }
    drop(log);
    segment_files(disk).remove(0)
}

/// Opens the log of `disk` again.
fn reopen(disk: &MemDisk) -> Result<PartitionLog, LogError> {
    PartitionLog::open(
        Arc::new(disk.clone()),
        Path::new("topic-0"),
        small_config(),
        0,
    )
}

/// Byte 13 of a batch: inside its partition leader epoch (bytes 12..16), which the CRC does not
/// cover.
const EPOCH_BYTE: u64 = 13;

/// A flip in a flushed batch's leader epoch (outside its CRC), below the recovery point, where
/// the open reads no record: the read that reaches it refuses it as corruption instead of
/// serving it, since the epoch cache names another epoch for its offset. Served, the follower
/// refused the batch for its epoch and never caught up (seeds 250801, 277773, 278106).
#[test]
fn a_flipped_leader_epoch_below_the_recovery_point_is_never_served() {
    let disk = MemDisk::new(7);
    let original = build(&disk, 10, true);
    let file = segment_files(&disk).remove(0);
    let at = batch_position(&disk, &file, 1);
    disk.flip_bit_at(&file, at + EPOCH_BYTE, 7).unwrap();
    let log = open_mem(&disk, small_config());
    let errors = check_reads(&log, &original);
    assert!(errors > 0, "the batch with the flipped epoch is refused");
    match log.read(Offset(0), 1 << 20) {
        Err(LogError::CorruptBatch { reason, .. }) => {
            assert!(reason.contains("leader epoch"), "{reason}");
        }
        Ok(result) => panic!("served up to {}", result.next_offset),
        Err(other) => panic!("another error: {other}"),
    }
}

/// The same flip in the unflushed tail, in a batch with batches of the right epoch after it:
/// recovery rebuilds the epoch cache from the tail's batches, and took the flipped epoch in
/// (seed 266755: the copy, elected, failed on its next append). An epoch that drops along the
/// log is corruption at the open.
#[test]
fn a_flipped_leader_epoch_in_the_tail_is_corruption_at_the_open() {
    let disk = MemDisk::new(8);
    let file = four_unflushed_batches(&disk);
    let at = batch_position(&disk, &file, 1);
    disk.flip_bit_at(&file, at + EPOCH_BYTE, 7).unwrap();
    match reopen(&disk) {
        Err(LogError::CorruptBeforeValidBatches {
            position, reason, ..
        }) => {
            assert_eq!(position, at, "the raised epoch's batch");
            assert!(reason.contains("leader epoch"), "{reason}");
        }
        Ok(_) => panic!("the flipped epoch was taken in"),
        Err(other) => panic!("another error: {other}"),
    }
}

/// Seed 296184: a flip raised a batch's length field (outside the CRC) past the file's end, in
/// bytes above a lagging checkpoint. Recovery took it for a torn tail and cut that batch and the
/// valid one after it; the copy registered clean and was elected without a committed offset.
/// A valid batch after it makes it corruption (the broker sets the log aside, registers unclean).
#[test]
fn a_length_flipped_past_the_end_with_valid_batches_after_it_is_corruption() {
    let disk = MemDisk::new(9);
    let file = four_unflushed_batches(&disk);
    let at = batch_position(&disk, &file, 1);
    // Byte 9 of the batch: bit 2 adds 2^18 to its length.
    disk.flip_bit_at(&file, at + 9, 2).unwrap();
    match reopen(&disk) {
        Err(LogError::CorruptBeforeValidBatches { position, .. }) => assert_eq!(position, at),
        Ok(log) => panic!("cut as a tear: the log ends at {}", log.log_end_offset()),
        Err(other) => panic!("another error: {other}"),
    }
}

/// Seed 327317 (no journal): the length field of a segment's *last* batch rotted past the
/// file's end, with nothing after it to find; recovery cut the batch as a torn tail, the copy
/// registered clean and was elected without an acknowledged record. The batch is whole and
/// valid under a length one bit away, which a crash cannot make: corruption. Both arms: a
/// length past the end (2^18 added) and one the header's parse refuses (the sign bit).
#[test]
fn a_rotted_length_of_a_whole_last_batch_is_corruption() {
    for (seed, byte, bit) in [(11, 9, 2), (12, 8, 7)] {
        let disk = MemDisk::new(seed);
        let file = four_unflushed_batches(&disk);
        let at = batch_position(&disk, &file, 3);
        disk.flip_bit_at(&file, at + byte, bit).unwrap();
        match reopen(&disk) {
            Err(LogError::CorruptBeforeValidBatches { position, .. }) => {
                assert_eq!(position, at, "byte {byte} bit {bit}")
            }
            Ok(log) => panic!(
                "byte {byte} bit {bit}: cut as a tear, the log ends at {}",
                log.log_end_offset()
            ),
            Err(other) => panic!("byte {byte} bit {bit}: another error: {other}"),
        }
    }
}

/// Seed 324376 (no journal): rot flipped a low bit of a batch's length (outside the CRC) to a
/// length still inside the file: the batch failed its CRC, the look-ahead read the wrong
/// bytes, and recovery cut it and the acknowledged batch after it as a tear; the copy
/// registered clean and was elected. A middle batch (4 bytes longer) and the last batch (its
/// lowest set bit cleared: shorter, its end inside the file).
#[test]
fn a_length_flipped_within_the_file_is_corruption_not_a_tear() {
    for (seed, index) in [(13, 1), (14, 3)] {
        let disk = MemDisk::new(seed);
        let file = four_unflushed_batches(&disk);
        let at = batch_position(&disk, &file, index);
        let field = disk.read_vec(&file, at + 8, 4).unwrap();
        let length = u32::from_be_bytes(field[..4].try_into().unwrap());
        let bit = if index == 3 {
            length.trailing_zeros()
        } else {
            2
        };
        disk.flip_bit_at(&file, at + 11 - u64::from(bit / 8), bit % 8)
            .unwrap();
        match reopen(&disk) {
            Err(LogError::CorruptBeforeValidBatches { position, .. }) => {
                assert_eq!(position, at, "batch {index}")
            }
            Ok(log) => panic!(
                "batch {index}: cut as a tear, the log ends at {}",
                log.log_end_offset()
            ),
            Err(other) => panic!("batch {index}: another error: {other}"),
        }
    }
}

/// A torn last batch whose length runs past the file's end is still cut as a tail (nothing
/// valid follows it).
#[test]
fn a_last_batch_cut_short_is_still_a_torn_tail() {
    let disk = MemDisk::new(10);
    let file = four_unflushed_batches(&disk);
    let len = disk.len(&file).unwrap();
    disk.truncate(&file, len - 5).unwrap();
    let log = reopen(&disk).unwrap();
    assert_eq!(
        log.log_end_offset(),
        Offset(3),
        "the torn last batch is cut"
    );
}
