//! The one error enum of log-core.

use crate::disk::DiskError;
use wire::{LeaderEpoch, Offset};

/// Everything a log operation can fail with. Refusals (`OffsetOutOfRange`, `NonMonotonicOffset`,
/// `StaleLeaderEpoch`) are typed so the replication core can answer them; corruption names the
/// file and byte position so an operator can find it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LogError {
    /// The disk failed; the log's in-memory state was not advanced past what the disk took.
    #[error("disk: {0}")]
    Disk(#[from] DiskError),
    /// A stored batch failed its length or CRC check where the log may hold a torn tail.
    #[error("corrupt batch in {file} at byte {position}: {reason}")]
    CorruptBatch {
        /// The segment file, relative to the disk root.
        file: String,
        /// Byte position of the batch in the file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A batch below the recovery point (flushed, so it must be intact) failed its checks. The log
    /// refuses to open rather than silently dropping acknowledged data.
    #[error("corrupt data below the recovery point {recovery_point} in {file} at byte {position}: {reason}")]
    CorruptBelowRecoveryPoint {
        /// The segment or index file, relative to the disk root.
        file: String,
        /// Byte position of the damage.
        position: u64,
        /// The recovery point the data was below.
        recovery_point: Offset,
        /// What check failed.
        reason: String,
    },
    /// A batch above the recovery point failed its checks and a valid batch follows it: a bit
    /// flip in written data, not a torn tail (a crash tears only a file's end). The log refuses
    /// to open rather than truncate what may have been flushed and acknowledged.
    #[error("corrupt data before valid batches in {file} at byte {position}: {reason}")]
    CorruptBeforeValidBatches {
        /// The segment file, relative to the disk root.
        file: String,
        /// Byte position of the damage.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A checkpoint file failed its CRC or does not parse.
    #[error("corrupt checkpoint {file}: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint file, relative to the disk root.
        file: String,
        /// What check failed.
        reason: String,
    },
    /// A journal record that had been synced is damaged ([`crate::journal`]): the journal
    /// refuses to open rather than drop records that may have been acknowledged.
    #[error("corrupt journal {file} at byte {position}: {reason}")]
    CorruptJournal {
        /// The journal file, relative to the disk root.
        file: String,
        /// Byte position of the damaged record.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A read or truncation named an offset outside `[log_start, log_end]`.
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: Offset,
        /// The log start offset at the time.
        log_start: Offset,
        /// The log end offset at the time.
        log_end: Offset,
    },
    /// Bytes offered for append are not a valid record batch v2.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A batch names a compression codec Kafka does not define (attributes bits 0-2 of 5-7).
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    /// A compressed batch inflates past the decompression bound (a decompression bomb, or a
    /// batch no producer should send).
    #[error("records decompress to more than {bytes_max} bytes")]
    DecompressedTooLarge {
        /// The bound ([`crate::compression::DECOMPRESSED_BYTES_MAX`]).
        bytes_max: u64,
    },
    /// A batch larger than the configured limit.
    #[error("batch of {bytes} bytes exceeds the limit of {bytes_max}")]
    BatchTooLarge {
        /// The batch's size.
        bytes: u64,
        /// The configured `batch_bytes_max`.
        bytes_max: u64,
    },
    /// A follower append whose first offset is not the log end offset, or batches out of order.
    #[error("non-monotonic offset: expected {expected}, got {got}")]
    NonMonotonicOffset {
        /// The offset the log needed next.
        expected: Offset,
        /// The offset the batch carried.
        got: Offset,
    },
    /// A leader append with an epoch older than the latest the log has seen.
    #[error("stale leader epoch {epoch}, the log has seen {latest}")]
    StaleLeaderEpoch {
        /// The epoch offered.
        epoch: LeaderEpoch,
        /// The latest epoch in the epoch cache.
        latest: LeaderEpoch,
    },
    /// A producer's batch refused by the ingress validator's rules (`crate::ingress`).
    #[error("refused batch: {0}")]
    Refused(#[from] crate::ingress::BatchRefusal),
    /// An earlier disk error left memory and disk possibly apart: drop the log and reopen it.
    #[error("log needs reopening after a disk error: {0}")]
    Poisoned(String),
    /// A high watermark outside `[log_start, log_end]`.
    #[error("high watermark {requested} out of range [{log_start}, {log_end}]")]
    HighWatermarkOutOfRange {
        /// The high watermark asked for.
        requested: Offset,
        /// The log start offset.
        log_start: Offset,
        /// The log end offset.
        log_end: Offset,
    },
}

impl LogError {
    /// Are the log's stored bytes bad (a checksum, a checkpoint), as opposed to the disk refusing
    /// an operation?
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            LogError::CorruptBatch { .. }
                | LogError::CorruptBelowRecoveryPoint { .. }
                | LogError::CorruptBeforeValidBatches { .. }
                | LogError::CorruptCheckpoint { .. }
                | LogError::CorruptJournal { .. }
        )
    }

    /// Is this the storage failing (a disk error, corruption, or a log poisoned by an earlier
    /// disk error)? Only these may fail a partition; every other refusal is about the request.
    pub fn is_storage_failure(&self) -> bool {
        self.is_corruption() || matches!(self, LogError::Disk(_) | LogError::Poisoned(_))
    }
}
