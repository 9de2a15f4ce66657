//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use log_core::{BatchBuilder, BatchView, LogConfig, MemDisk, Offset, PartitionLog};
use std::path::Path;
use std::sync::Arc;

/// A record as tests compare it: (offset, key, value).
pub type Rec = (Offset, Option<Vec<u8>>, Option<Vec<u8>>);

/// A batch of `n` records with values `"{tag}-{i}"`, keys `k{i % keys}` when `keys > 0`.
pub fn batch(tag: &str, n: usize, keys: usize, timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for i in 0..n {
        let key = (keys > 0).then(|| format!("k{}", i % keys));
        let value = format!("{tag}-{i}");
        builder.push(
            key.as_deref().map(str::as_bytes),
            Some(value.as_bytes()),
            timestamp + i as i64,
            &[],
        );
    }
    builder.build()
}

/// Every record in `bytes` as (offset, key, value).
pub fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    for view in log_core::batch::split_batches(bytes) {
        let view: BatchView<'_> = view.unwrap();
        view.validate().unwrap();
        for record in view.decode().unwrap().iter() {
            let record = record.unwrap();
            out.push((
                record.offset,
                record.key.map(<[u8]>::to_vec),
                record.value.map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// Reads the whole log from `from` to its end.
pub fn read_all(log: &PartitionLog, from: Offset) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let result = log.read(next, 64 * 1024).unwrap();
        if result.bytes.is_empty() {
            break;
        }
        out.extend(
            records(&result.bytes)
                .into_iter()
                .filter(|(o, _, _)| *o >= from),
        );
        assert!(result.next_offset > next);
        next = result.next_offset;
    }
    out
}

/// A small-segment configuration so tests exercise rolling.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 256,
        checkpoint_interval_bytes: 0,
        retention_ms: None,
        ..LogConfig::default()
    }
}

pub fn open_mem(disk: &MemDisk, config: LogConfig) -> PartitionLog {
    PartitionLog::open(Arc::new(disk.clone()), Path::new("topic-0"), config, 0).unwrap()
}
