//! log-core: rill's storage engine, a crash-safe segmented partition log over a pluggable `Disk`.
//!
//! - `disk`: the `Disk` contract; `FileDisk` (real files) and `MemDisk` (crash and fault model:
//!   volatile vs durable bytes and directory entries, torn sector writes, injected errors, disk
//!   full, bit flips; seeded and deterministic).
//! - `batch`: Kafka RecordBatch v2 codec (`BatchBuilder`, `BatchView`, `BatchRecords` (records
//!   decoded, decompressed if needed), record iterator, in-place base offset / partition leader
//!   epoch).
//! - `compression`: the gzip, snappy, lz4 and zstd codecs of batches, decoded within a bound.
//! - `journal`: a write-ahead file shared by a broker's partitions (one sync per round of
//!   records), with its crash recovery; `wal`: what the broker journals (segment writes) and
//!   their replay at start-up.
//! - `log`: `PartitionLog`, the segmented log: append (leader/follower), read (CRC re-verified),
//!   flush, truncate, roll, retention, compaction (`compact`), leader epoch cache, checkpoints,
//!   recovery at open. Byte formats and disk assumptions are in `FORMAT.md`.
//!
//! # Runbook for a driver (broker or simulator)
//! 1. `PartitionLog::open(disk, dir, config, now_ms)`; it recovers whatever a crash left.
//! 2. Leader: `append_as_leader(bytes, epoch, now_ms)`; follower: `append_as_follower(bytes, now_ms)`.
//!    Appends are volatile. Call `flush()` before acknowledging anything that must survive a
//!    crash; it returns the durable LEO (`recovery_point()`).
//! 3. Replication sets `set_high_watermark`; consumers read with `read_bounded(from, max, hw)`.
//!    The HW is persisted with the state checkpoint (every `checkpoint_interval_bytes` of
//!    flushes, at roll/truncate/retention/close, or on demand with `write_state()`).
//! 4. Divergence: `end_offset_for_epoch` answers OffsetsForLeaderEpoch; `truncate_to` cuts.
//! 5. Housekeeping with `now_ms`: `enforce_retention`, `compact`, `roll`.
//! 6. After any `LogError::Disk` from a mutating call, drop the log and open it again.
//!
//! Time is always an input; nothing here reads a clock, draws unseeded randomness or spawns.

pub mod batch;
mod checkpoint;
pub mod compact;
pub mod compression;
pub mod config;
pub mod disk;
pub mod epoch;
pub mod error;
pub mod file_disk;
pub mod index;
pub mod ingress;
pub mod journal;
pub mod log;
pub mod mem_disk;
mod segment;
mod tail;
pub mod wal;

pub use batch::{BatchBuilder, BatchHeader, BatchRecords, BatchView, Record, RecordsSummary};
pub use compact::CompactionOutcome;
pub use compression::Codec;
pub use config::LogConfig;
pub use disk::{Disk, DiskError, DiskResult};
pub use error::LogError;
pub use file_disk::{FileDisk, OPEN_FILES_MAX_DEFAULT};
pub use ingress::{validate_produced, BatchRefusal, ProduceRules, ProducedBatch, ProducedPayload};
pub use log::{
    AppendInfo, CheckpointPlan, FlushPlan, JournalNeed, LogVersion, PartitionLog, ReadPlan,
    ReadResult, RecoveryReport, RetentionOutcome,
};
pub use mem_disk::{FaultConfig, FaultOp, MemDisk, OpCounts};
pub use tail::TAIL_BYTES_MAX;
pub use wire::{LeaderEpoch, Offset};
