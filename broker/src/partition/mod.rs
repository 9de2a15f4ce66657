//! One partition on this broker: the sans-IO `replication::Replica` core over a `log_core`
//! `PartitionLog`, driven on the tokio API. This is the runbook of `replication/src/lib.rs` carried
//! out for real:
//!
//! - every input goes through [`Partition::step`], which holds the partition's mutex for the step
//!   and the effects' synchronous part (appends, truncations, log reads), never across an `.await`;
//! - `Flush` effects go to the broker's [`IoWorker`], which flushes every waiting partition in one
//!   round with the fsyncs off every partition lock (group commit), feeds `FlushCompleted` back,
//!   and writes state checkpoints only after the round's acknowledgements went out, holding
//!   the partition's lock only to plan one and to rename its written file into place;
//! - `SetTimer` effects arm one slot per timer kind, served by at most one sleeping task that
//!   follows a deadline re-armed later and ends when the slot is cancelled;
//! - messages to other replicas and AlterPartition go through [`ReplicaNet`], the node's transport;
//! - answers to an inbound replica request (a follower's Fetch or OffsetsForLeaderEpoch) are
//!   captured and returned to the request handler instead of being sent;
//! - a disk error or corruption poisons the log: the partition stops serving
//!   (KAFKA_STORAGE_ERROR) instead of carrying on with memory and disk disagreeing, and leaves a
//!   marker; the next start-up check verifies the whole log and sets a corrupt one aside, so the
//!   replica is rebuilt from the leader (`quarantine`).

mod driver;
mod io_worker;
pub mod producer_snapshots;
pub(crate) mod quarantine;
mod reads;

pub use driver::{
    ActiveProducer, ListedOffset, Partition, PartitionSettings, PartitionStatus, ProduceOutcome,
    ReadReplicaCandidate, ReplicaNet, REPLICA_FETCH_BYTES_MAX,
};
pub(crate) use io_worker::run_blocking;
pub use io_worker::{IoWorker, JournalWriter};
pub use reads::{batches_from_bytes, ConsumerRead};

/// Why a partition refuses a request, beyond the replica core's own refusals.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// A protocol refusal of the replica core (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, ...).
    #[error(transparent)]
    Replica(#[from] replication::Error),
    /// The log hit a disk error or corruption; the partition no longer serves (Kafka's
    /// KAFKA_STORAGE_ERROR) until the broker repairs it: once the disk takes writes again the
    /// log is verified whole and reopened in place (or, corrupt, set aside and rebuilt).
    #[error("KAFKA_STORAGE_ERROR: {0}")]
    Storage(String),
    /// The produced bytes broke Kafka's rules (CORRUPT_MESSAGE, INVALID_RECORD,
    /// MESSAGE_TOO_LARGE, UNSUPPORTED_COMPRESSION_TYPE): refused at ingress, the partition serves on.
    #[error(transparent)]
    Refused(#[from] log_core::BatchRefusal),
    /// An idempotent producer's batch was refused (OUT_OF_ORDER_SEQUENCE_NUMBER, ...).
    #[error("idempotent producer refused (code {code}): {reason}")]
    Producer {
        /// The Kafka error code.
        code: i16,
        /// What was wrong, for the log line.
        reason: String,
    },
    /// The partition is being closed (topic deleted or broker stopping).
    #[error("partition closed")]
    Closed,
}

impl PartitionError {
    /// The Kafka error code a response carries for this refusal.
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            PartitionError::Replica(error) => replica_error_code(error),
            PartitionError::Storage(_) => E::KafkaStorageError.code(),
            PartitionError::Refused(refusal) => refusal.error_code(),
            PartitionError::Producer { code, .. } => *code,
            PartitionError::Closed => E::NotLeaderOrFollower.code(),
        }
    }
}

/// Kafka's code for a replica core refusal (the variants carry Kafka's names).
pub fn replica_error_code(error: &replication::Error) -> i16 {
    use kafka_protocol::error::ResponseError as E;
    use replication::Error as R;
    match error {
        R::NotLeaderOrFollower => E::NotLeaderOrFollower.code(),
        R::FencedLeaderEpoch => E::FencedLeaderEpoch.code(),
        R::UnknownLeaderEpoch => E::UnknownLeaderEpoch.code(),
        R::NotEnoughReplicas => E::NotEnoughReplicas.code(),
        R::NotEnoughReplicasAfterAppend => E::NotEnoughReplicasAfterAppend.code(),
        R::RequestTimedOut => E::RequestTimedOut.code(),
        R::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        R::InvalidUpdateVersion => E::InvalidUpdateVersion.code(),
        R::IneligibleReplica => E::IneligibleReplica.code(),
        R::AlterPartitionOutcomeUnknown => E::OperationNotAttempted.code(),
    }
}

/// The replica core's refusal for a Kafka error code a leader answered a follower with; codes the
/// core has no name for read as NOT_LEADER_OR_FOLLOWER (the follower backs off and retries).
/// `log_start_offset` and `log_end_offset` are the leader's, as its answer carried them.
pub fn replica_error_from_code(
    code: i16,
    log_start_offset: wire::Offset,
    log_end_offset: wire::Offset,
) -> replication::Error {
    use kafka_protocol::error::ResponseError as E;
    use replication::Error as R;
    match code {
        c if c == E::FencedLeaderEpoch.code() => R::FencedLeaderEpoch,
        c if c == E::UnknownLeaderEpoch.code() => R::UnknownLeaderEpoch,
        c if c == E::OffsetOutOfRange.code() => R::OffsetOutOfRange {
            log_start_offset,
            log_end_offset,
        },
        c if c == E::RequestTimedOut.code() => R::RequestTimedOut,
        _ => R::NotLeaderOrFollower,
    }
}
