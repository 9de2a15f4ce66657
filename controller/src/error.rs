//! The controller's one error enum: protocol refusals are typed values a broker can act on.

use wire::{BrokerId, TopicPartition};

/// Why the controller refused a request or a metadata record. Every variant is a refusal the
/// caller can act on (retry elsewhere, refresh metadata, give up); none is a crash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ControllerError {
    /// This node is not the active controller (the raft leader); ask another one.
    #[error("not the active controller")]
    NotController,
    /// The proposal left this node's hands but its outcome is unknown (leadership moved).
    #[error("proposal outcome unknown: leadership changed before it was applied")]
    ProposalDropped,
    /// The broker is not registered, or registered with another incarnation.
    #[error("broker {0} is not registered with that incarnation")]
    StaleBrokerIncarnation(BrokerId),
    /// The broker id is not registered at all.
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    /// A topic with this name already exists.
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    /// No such topic or partition.
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    /// The topic name, partition count or configs are outside the limits.
    #[error("invalid topic request: {0}")]
    InvalidTopic(String),
    /// The partition count is outside the limits (Kafka's INVALID_PARTITIONS).
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A manual replica assignment names unknown or repeated brokers, lists of different
    /// lengths, or only fenced brokers (Kafka's INVALID_REPLICA_ASSIGNMENT).
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// A well-formed request Kafka refuses as such (Kafka's INVALID_REQUEST): a config named
    /// twice, APPEND on a config that is not a list.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A topic config value is invalid (Kafka's INVALID_CONFIG).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Fewer unfenced brokers than the replication factor asks for.
    #[error("unable to replicate the partition {replication_factor} time(s): {brokers_unfenced} unfenced broker(s)")]
    InvalidReplicationFactor {
        /// The requested replication factor.
        replication_factor: i32,
        /// Unfenced brokers available for placement.
        brokers_unfenced: usize,
    },
    /// AlterPartition named a stale partition epoch (Kafka's INVALID_UPDATE_VERSION): someone else
    /// changed the partition since the requester last saw it.
    #[error("{partition}: partition epoch {requested} is not the current {current}")]
    InvalidUpdateVersion {
        /// The partition whose state moved on.
        partition: TopicPartition,
        /// The epoch the requester named.
        requested: i32,
        /// The controller's epoch.
        current: i32,
    },
    /// AlterPartition came from a broker that is not the leader at the current leader epoch.
    #[error("{partition}: broker {broker} at leader epoch {requested} is not the current leader")]
    FencedLeaderEpoch {
        /// The partition.
        partition: TopicPartition,
        /// The requesting broker.
        broker: BrokerId,
        /// The leader epoch it named.
        requested: i32,
    },
    /// AlterPartition proposed an ISR member that is fenced, unknown, or not a replica.
    #[error("{partition}: broker {broker} cannot join the ISR")]
    IneligibleReplica {
        /// The partition.
        partition: TopicPartition,
        /// The broker that may not be in the ISR.
        broker: BrokerId,
    },
    /// A metadata record broke a rule of the image (applied records are validated again, so a
    /// conflicting proposal that raced another is refused identically on every node).
    #[error("invalid metadata record: {0}")]
    InvalidRecord(String),
    /// A raft message no honest voter could send (absurd term, local-only type, indexes
    /// raft-rs would assert on): dropped before raft-rs sees it.
    #[error("raft message refused: {0}")]
    InvalidRaftMessage(String),
    /// A limit on the controller's queues or the metadata size was reached.
    #[error("limit reached: {0}")]
    LimitReached(String),
}
