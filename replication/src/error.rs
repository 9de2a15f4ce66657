//! The crate's one error enum: Kafka's protocol refusals as typed values, never panics.

use thiserror::Error;
use wire::Offset;

/// A refusal the replica answers a request with (Kafka error codes of the same names).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Error {
    /// This replica is not the leader (produce, follower fetch) or not a replica at all.
    #[error("NOT_LEADER_OR_FOLLOWER")]
    NotLeaderOrFollower,
    /// The request's leader epoch is older than ours: the sender is stale (KIP-320).
    #[error("FENCED_LEADER_EPOCH")]
    FencedLeaderEpoch,
    /// The request's leader epoch is newer than ours: we have not seen the metadata yet.
    #[error("UNKNOWN_LEADER_EPOCH")]
    UnknownLeaderEpoch,
    /// acks=all refused before the append: the ISR is smaller than `min.insync.replicas`.
    #[error("NOT_ENOUGH_REPLICAS")]
    NotEnoughReplicas,
    /// acks=all appended and replicated, but the ISR shrank below `min.insync.replicas` meanwhile.
    #[error("NOT_ENOUGH_REPLICAS_AFTER_APPEND")]
    NotEnoughReplicasAfterAppend,
    /// acks=all did not complete before its deadline, or the waiting list was full.
    #[error("REQUEST_TIMED_OUT")]
    RequestTimedOut,
    /// The fetch offset lies outside the log `[log_start_offset, log_end_offset]`. A follower
    /// above the leader's LEO truncates to it; one below the leader's log start truncates fully
    /// and starts there (Kafka's `truncateFullyAndStartAt`).
    #[error("OFFSET_OUT_OF_RANGE (log start offset {log_start_offset}, log end offset {log_end_offset})")]
    OffsetOutOfRange {
        /// The answering replica's log start: retention or DeleteRecords removed what lies below.
        log_start_offset: Offset,
        /// The answering replica's LEO.
        log_end_offset: Offset,
    },
    /// The controller refused an AlterPartition built on a stale partition epoch.
    #[error("INVALID_UPDATE_VERSION")]
    InvalidUpdateVersion,
    /// The controller refused an AlterPartition, at the partition epoch it named, because a
    /// proposed member may not be in the ISR (KIP-841): certainly not applied.
    #[error("INELIGIBLE_REPLICA")]
    IneligibleReplica,
    /// An AlterPartition got no answer (the controller moved, the request or answer was lost):
    /// it may or may not have been applied.
    #[error("OPERATION_NOT_ATTEMPTED")]
    AlterPartitionOutcomeUnknown,
}
