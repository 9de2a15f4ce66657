//! Compressed batches through the log: ingress validation by decompressing, storage as sent,
//! reads, ListOffsets by timestamp, compaction recompressing, and mutated input that must never
//! panic or fail the partition.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use log_core::batch::HEADER_BYTES;
use log_core::compression::{compress, DECOMPRESSED_BYTES_MAX};
use log_core::{
    validate_produced, BatchBuilder, BatchRefusal, BatchView, Codec, LeaderEpoch, LogConfig,
    LogError, MemDisk, Offset, ProduceRules,
};
use proptest::prelude::*;

/// Byte positions in a v2 batch.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

fn keyed_batch(codec: Codec, keys: &[&str], tag: &str, timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new().codec(codec);
    for (i, key) in keys.iter().enumerate() {
        let value = format!("{tag}-{key}-{}", "x".repeat(40));
        builder.push(
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            timestamp + i as i64,
            &[],
        );
    }
    builder.build()
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn rules() -> ProduceRules {
    ProduceRules {
        batch_bytes_max: LogConfig::default().batch_bytes_max,
        compacted: false,
        log_append_time_ms: None,
        codec_target: None,
    }
}

/// The error code a log append of `bytes` refuses with, asserting it is no storage failure.
fn refusal_code(log: &mut log_core::PartitionLog, bytes: &[u8]) -> i16 {
    match log.append_as_leader(bytes, LeaderEpoch(1), 0) {
        Err(LogError::Refused(refusal)) => refusal.error_code(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn compressed_batches_are_stored_as_sent_and_read_back() {
    for codec in Codec::ALL {
        let disk = MemDisk::new(1);
        let mut log = open_mem(&disk, small_config());
        let sent = keyed_batch(codec, &["a", "b", "c"], "v", 1_000);
        log.append_as_leader(&sent, LeaderEpoch(1), 0).unwrap();
        let stored = log.read(Offset(0), 1 << 20).unwrap().bytes;
        assert_eq!(stored.len(), sent.len(), "{codec:?}");
        // Only base offset (0..8) and partition leader epoch (12..16) are the leader's.
        assert_eq!(stored[16..], sent[16..], "{codec:?}: the producer's bytes");
        assert_eq!(
            BatchView::new(&stored).unwrap().codec(),
            Ok(codec),
            "{codec:?}"
        );
        let values: Vec<_> = records(&stored)
            .into_iter()
            .map(|(o, k, _)| (o.0, String::from_utf8(k.unwrap()).unwrap()))
            .collect();
        assert_eq!(
            values,
            vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
        );
    }
}

#[test]
fn compressed_refusals_carry_kafka_codes_and_the_log_serves_on() {
    let disk = MemDisk::new(2);
    let mut log = open_mem(&disk, small_config());
    for codec in &Codec::ALL[1..] {
        // Damaged compressed bytes under a valid CRC: CORRUPT_MESSAGE.
        let mut damaged = keyed_batch(*codec, &["a", "b"], "v", 0);
        let middle = HEADER_BYTES + (damaged.len() - HEADER_BYTES) / 2;
        for byte in &mut damaged[middle..] {
            *byte ^= 0x5a;
        }
        fix_crc(&mut damaged);
        assert_eq!(refusal_code(&mut log, &damaged), 2, "{codec:?}");
    }
    // A codec id Kafka does not define: UNSUPPORTED_COMPRESSION_TYPE.
    let mut undefined = keyed_batch(Codec::None, &["a"], "v", 0);
    undefined[ATTRIBUTES_AT + 1] |= 6;
    fix_crc(&mut undefined);
    assert_eq!(refusal_code(&mut log, &undefined), 76);
    // A bomb: a small zstd batch whose one record inflates past the bound.
    let mut bomb = keyed_batch(Codec::None, &["a"], "v", 0);
    let huge_record = vec![0u8; DECOMPRESSED_BYTES_MAX + 1];
    let mut body = bomb[HEADER_BYTES..].to_vec();
    body.extend_from_slice(&huge_record);
    bomb.truncate(HEADER_BYTES);
    bomb[ATTRIBUTES_AT + 1] = Codec::Zstd.id();
    bomb.extend_from_slice(&zstd::bulk::compress(&body, 3).unwrap());
    let length = (bomb.len() - 12) as i32;
    bomb[8..12].copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut bomb);
    assert!(bomb.len() < 64 * 1024, "a bomb is small: {}", bomb.len());
    assert_eq!(refusal_code(&mut log, &bomb), 10);
    // Keyless records in a compressed batch of a compacted topic: INVALID_RECORD.
    let mut keyless = BatchBuilder::new().codec(Codec::Snappy);
    keyless.push(None, Some(b"v"), 0, &[]);
    let compacted = ProduceRules {
        compacted: true,
        ..rules()
    };
    assert_eq!(
        validate_produced(&mut keyless.build(), &compacted).map_err(|e| e.error_code()),
        Err(87)
    );
    // The partition serves on.
    let good = keyed_batch(Codec::Lz4, &["z"], "v", 0);
    assert_eq!(
        log.append_as_leader(&good, LeaderEpoch(1), 0)
            .unwrap()
            .first_offset,
        Offset(0)
    );
}

#[test]
fn non_dense_offsets_inside_a_compressed_batch_are_invalid() {
    // Two records whose offset deltas are 0 and 2 (the header claims 2 records over 3 offsets).
    let mut builder = BatchBuilder::new();
    builder.push(Some(b"a"), Some(b"1"), 0, &[]);
    builder.push(Some(b"b"), Some(b"2"), 0, &[]);
    builder.push(Some(b"c"), Some(b"3"), 0, &[]);
    let plain = builder.build();
    let view = BatchView::new(&plain).unwrap();
    let decoded = view.decode().unwrap();
    let raws: Vec<Vec<u8>> = decoded.iter().map(|r| r.unwrap().raw.to_vec()).collect();
    let mut header = *view.header();
    header.records_count = 2;
    header.attributes = i16::from(Codec::Gzip.id());
    let mut body = raws[0].clone();
    body.extend_from_slice(&raws[2]);
    let mut batch = log_core::batch::encode_batch(&header, &compress(Codec::Gzip, &body));
    assert_eq!(
        validate_produced(&mut batch, &rules()).map_err(|e| e.error_code()),
        Err(87),
        "a count that disagrees with the offset range"
    );
}

#[test]
fn a_topic_codec_recompresses_once_and_the_size_limit_applies_after() {
    for (from, to) in [
        (Codec::None, Codec::Zstd),
        (Codec::Gzip, Codec::Lz4),
        (Codec::Snappy, Codec::None),
    ] {
        let mut payload = keyed_batch(from, &["a", "b", "c"], "v", 5);
        let sent = payload.clone();
        let target = ProduceRules {
            codec_target: Some(to),
            ..rules()
        };
        let accepted = validate_produced(&mut payload, &target).unwrap();
        assert_eq!(accepted.record_count, 3);
        let view = BatchView::new(&payload).unwrap();
        view.validate().unwrap();
        assert_eq!(view.codec(), Ok(to));
        assert_eq!(records(&payload), records(&sent), "{from:?} -> {to:?}");
        let again = payload.clone();
        validate_produced(&mut payload, &target).unwrap();
        assert_eq!(payload, again, "a normalised payload passes unchanged");
    }
    // Stored uncompressed, a batch that compressed well no longer fits: MESSAGE_TOO_LARGE.
    let mut builder = BatchBuilder::new().codec(Codec::Gzip);
    builder.push(Some(b"k"), Some(&vec![7u8; 20_000]), 0, &[]);
    let mut payload = builder.build();
    let tight = ProduceRules {
        batch_bytes_max: 4_096,
        codec_target: Some(Codec::None),
        ..rules()
    };
    assert!(matches!(
        validate_produced(&mut payload, &tight),
        Err(BatchRefusal::TooLarge { .. })
    ));
}

#[test]
fn offsets_for_timestamps_are_found_inside_compressed_batches() {
    let disk = MemDisk::new(3);
    let mut log = open_mem(&disk, small_config());
    let keys = ["a", "b", "c", "d", "e"];
    log.append_as_leader(
        &keyed_batch(Codec::Gzip, &keys, "x", 100),
        LeaderEpoch(1),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &keyed_batch(Codec::Zstd, &keys, "y", 200),
        LeaderEpoch(1),
        0,
    )
    .unwrap();
    assert_eq!(
        log.offset_for_timestamp(102).unwrap(),
        Some((Offset(2), 102))
    );
    assert_eq!(
        log.offset_for_timestamp(105).unwrap(),
        Some((Offset(5), 200))
    );
    assert_eq!(
        log.offset_for_timestamp(203).unwrap(),
        Some((Offset(8), 203))
    );
    assert_eq!(log.offset_for_timestamp(205).unwrap(), None);
}

#[test]
fn compaction_keeps_the_latest_per_key_and_recompresses_with_the_batch_codec() {
    for codec in &Codec::ALL[1..] {
        let disk = MemDisk::new(4);
        let config = LogConfig {
            compacted: true,
            ..small_config()
        };
        let mut log = open_mem(&disk, config.clone());
        let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
        for round in 0..30 {
            // Each batch updates every key; the last round updates only half.
            let keys = if round == 29 { &keys[..4] } else { &keys[..] };
            let batch = keyed_batch(*codec, keys, &format!("r{round}"), 1_000 + round);
            log.append_as_leader(&batch, LeaderEpoch(1), 0).unwrap();
        }
        log.roll(0).unwrap();
        log.set_high_watermark(log.log_end_offset()).unwrap();
        let end = log.log_end_offset();
        let outcome = log.compact(10_000).unwrap();
        assert!(outcome.records_removed > 0, "{codec:?}: {outcome:?}");
        let all = read_all(&log, log.log_start_offset());
        let mut latest = std::collections::BTreeMap::new();
        for (offset, key, value) in &all {
            latest.insert(key.clone().unwrap(), (offset.0, value.clone().unwrap()));
        }
        for (i, key) in keys.iter().enumerate() {
            let round = if i < 4 { 29 } else { 28 };
            let value = &latest[key.as_bytes()].1;
            assert!(
                value.starts_with(format!("r{round}-").as_bytes()),
                "{codec:?}: latest of {key}"
            );
        }
        assert!(all.len() < 30 * 8, "{codec:?}: something was removed");
        assert_eq!(log.log_end_offset(), end, "offsets are never reused");
        // Every stored batch still carries the producer's codec and verifies.
        let mut from = log.log_start_offset();
        while from < end {
            let read = log.read(from, 1 << 20).unwrap();
            for view in log_core::batch::split_batches(&read.bytes) {
                let view = view.unwrap();
                view.validate().unwrap();
                assert_eq!(view.codec(), Ok(*codec));
                view.summarize_records().unwrap();
            }
            from = read.next_offset;
        }
        // And a reopened log reads the same.
        drop(log);
        let log = open_mem(&disk, config);
        assert_eq!(read_all(&log, Offset(0)), all, "{codec:?}");
    }
}

/// A compressed batch, possibly mutated: body bytes flipped, truncated or extended, header fields
/// rewritten; the CRC is fixed afterwards so the decoders see the damage.
fn mutated_batch() -> impl Strategy<Value = Vec<u8>> {
    let codec = prop::sample::select(Codec::ALL.to_vec());
    let records = 1..20usize;
    let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8);
    let field = prop_oneof![
        Just(None),
        (
            prop::sample::select(vec![21usize, 23, 27, 35, 57]),
            any::<u8>()
        )
            .prop_map(Some),
    ];
    (codec, records, flips, field, 0..3u8).prop_map(|(codec, n, flips, field, tail)| {
        let mut builder = BatchBuilder::new().codec(codec);
        for i in 0..n {
            let value = format!("value-{i}-{}", "z".repeat(i * 7));
            builder.push(
                Some(format!("k{i}").as_bytes()),
                Some(value.as_bytes()),
                i as i64,
                &[],
            );
        }
        let mut batch = builder.build();
        let body = batch.len() - HEADER_BYTES;
        for (index, byte) in flips {
            let at = HEADER_BYTES + index.index(body);
            batch[at] ^= byte;
        }
        if let Some((at, byte)) = field {
            batch[at + 1] ^= byte;
        }
        match tail {
            1 => batch.truncate(batch.len() - 1),
            2 => batch.push(0),
            _ => {}
        }
        let length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        fix_crc(&mut batch);
        batch
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever compressed bytes a client sends, the validator answers (accepts or refuses with
    /// a Kafka code), never panics; the log refuses the same and stays usable, never failed.
    #[test]
    fn mutated_compressed_batches_never_panic_or_fail_the_partition(batch in mutated_batch()) {
        let mut payload = batch.clone();
        let verdict = validate_produced(&mut payload, &rules());
        if let Err(refusal) = &verdict {
            prop_assert!([2, 10, 76, 87].contains(&refusal.error_code()), "{refusal}");
        }
        let disk = MemDisk::new(7);
        let mut log = open_mem(&disk, small_config());
        match log.append_as_leader(&batch, LeaderEpoch(1), 0) {
            Ok(_) => prop_assert!(verdict.is_ok(), "the log accepts what ingress accepts"),
            Err(error) => {
                prop_assert!(!error.is_storage_failure(), "{error}");
                prop_assert!(verdict.is_err(), "ingress accepted what the log refused: {error}");
            }
        }
        let good = keyed_batch(Codec::Gzip, &["a"], "v", 0);
        prop_assert!(log.append_as_leader(&good, LeaderEpoch(1), 0).is_ok());
        if verdict.is_ok() {
            // Accepted bytes read back, decode and verify like any stored batch.
            let stored = log.read(Offset(0), 1 << 20).unwrap().bytes;
            for view in log_core::batch::split_batches(&stored) {
                let view = view.unwrap();
                view.validate().unwrap();
                view.summarize_records().unwrap();
            }
        }
    }
}
