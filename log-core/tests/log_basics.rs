//! Append, read, flush, roll and reopen on a healthy disk.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use log_core::{LeaderEpoch, LogError, MemDisk, Offset};

#[test]
fn append_assigns_dense_offsets_and_reads_back() {
    let disk = MemDisk::new(1);
    let mut log = open_mem(&disk, small_config());
    let info = log
        .append_as_leader(&batch("a", 3, 0, 100), LeaderEpoch(0), 0)
        .unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.log_end_offset),
        (Offset(0), Offset(2), Offset(3))
    );
    let info = log
        .append_as_leader(&batch("b", 2, 0, 200), LeaderEpoch(0), 0)
        .unwrap();
    assert_eq!(info.first_offset, Offset(3));
    let all = read_all(&log, Offset(0));
    let values: Vec<_> = all
        .iter()
        .map(|(o, _, v)| (o.0, String::from_utf8(v.clone().unwrap()).unwrap()))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, "a-0".into()),
            (1, "a-1".into()),
            (2, "a-2".into()),
            (3, "b-0".into()),
            (4, "b-1".into())
        ]
    );
    let from_middle = log.read(Offset(4), 1).unwrap();
    assert_eq!(
        records(&from_middle.bytes)[0].0,
        Offset(3),
        "whole batches: the one containing 4 starts at 3"
    );
    assert_eq!(from_middle.next_offset, Offset(5));
    assert!(
        log.read(Offset(5), 100).unwrap().bytes.is_empty(),
        "reading at the LEO is empty"
    );
    assert!(matches!(
        log.read(Offset(6), 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn many_appends_roll_segments_and_survive_reopen() {
    let disk = MemDisk::new(2);
    let mut log = open_mem(&disk, small_config());
    for i in 0..200 {
        log.append_as_leader(
            &batch(&format!("r{i}"), 2, 0, i * 10),
            LeaderEpoch(1),
            i * 10,
        )
        .unwrap();
    }
    assert!(
        log.segment_count() >= 4,
        "4 KiB segments roll: {}",
        log.segment_count()
    );
    assert_eq!(log.flush().unwrap(), Offset(400));
    let before = read_all(&log, Offset(0));
    assert_eq!(before.len(), 400);
    log.close().unwrap();
    let log = open_mem(&disk, small_config());
    assert_eq!(log.log_end_offset(), Offset(400));
    assert_eq!(read_all(&log, Offset(0)), before);
    let report = log.recovery_report();
    assert_eq!(
        report.segments_scanned, 1,
        "only the active segment is scanned: {report:?}"
    );
    assert_eq!(
        report.bytes_validated, 0,
        "a clean close leaves nothing to validate"
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        Some((LeaderEpoch(1), Offset(400)))
    );
    // Random access through the sparse index lands on the right batch.
    for target in [0, 1, 57, 123, 398, 399] {
        let result = log.read(Offset(target), 10).unwrap();
        let recs = records(&result.bytes);
        assert!(
            recs.iter().any(|(o, _, _)| *o == Offset(target)),
            "offset {target}"
        );
    }
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let disk = MemDisk::new(3);
    let mut log = open_mem(&disk, small_config());
    assert_eq!(log.max_timestamp(), None, "no record yet");
    for i in 0..100 {
        log.append_as_leader(&batch("t", 2, 0, 1000 + i * 10), LeaderEpoch(0), 0)
            .unwrap();
    }
    // Batch i holds timestamps 1000+10i and 1001+10i at offsets 2i, 2i+1.
    assert_eq!(
        log.offset_for_timestamp(0).unwrap(),
        Some((Offset(0), 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(1001).unwrap(),
        Some((Offset(1), 1001))
    );
    assert_eq!(
        log.offset_for_timestamp(1002).unwrap(),
        Some((Offset(2), 1010))
    );
    assert_eq!(
        log.offset_for_timestamp(1500).unwrap(),
        Some((Offset(100), 1500))
    );
    assert_eq!(
        log.offset_for_timestamp(1991).unwrap(),
        Some((Offset(199), 1991))
    );
    assert_eq!(log.offset_for_timestamp(1992).unwrap(), None);
    assert_eq!(
        log.offset_for_timestamp(-1).unwrap(),
        Some((Offset(200), -1))
    );
    assert_eq!(log.offset_for_timestamp(-2).unwrap(), Some((Offset(0), -1)));
    // ListOffsets' max-timestamp (-3) is the first record at the largest timestamp.
    assert_eq!(log.max_timestamp(), Some(1991));
}

#[test]
fn invalid_input_is_refused_without_changing_the_log() {
    let disk = MemDisk::new(4);
    let mut log = open_mem(&disk, small_config());
    let mut damaged = batch("x", 2, 0, 0);
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    assert!(matches!(
        log.append_as_leader(&damaged, LeaderEpoch(0), 0),
        Err(LogError::Refused(log_core::BatchRefusal::Corrupt(_)))
    ));
    assert!(log.append_as_leader(&[], LeaderEpoch(0), 0).is_err());
    log.append_as_leader(&batch("ok", 1, 0, 0), LeaderEpoch(5), 0)
        .unwrap();
    assert!(matches!(
        log.append_as_leader(&batch("old", 1, 0, 0), LeaderEpoch(4), 0),
        Err(LogError::StaleLeaderEpoch { .. })
    ));
    assert_eq!(log.log_end_offset(), Offset(1));
}

#[test]
fn bounded_reads_stop_at_the_high_watermark() {
    let disk = MemDisk::new(5);
    let mut log = open_mem(&disk, small_config());
    for i in 0..10 {
        log.append_as_leader(&batch("h", 3, 0, i), LeaderEpoch(0), 0)
            .unwrap();
    }
    log.set_high_watermark(Offset(12)).unwrap();
    let hw = log.high_watermark();
    let result = log.read_bounded(Offset(0), 1 << 20, hw).unwrap();
    let recs = records(&result.bytes);
    assert_eq!(recs.last().unwrap().0, Offset(11), "batches [0,12) only");
    assert_eq!(result.next_offset, Offset(12));
    let at_hw = log.read_bounded(Offset(12), 1 << 20, hw).unwrap();
    assert!(at_hw.bytes.is_empty());
    assert_eq!(at_hw.next_offset, Offset(12));
    log.set_high_watermark(Offset(13)).unwrap();
    let straddling = log.read_bounded(Offset(12), 1 << 20, Offset(13)).unwrap();
    assert!(
        straddling.bytes.is_empty(),
        "the batch [12,15) straddles the bound"
    );
}
