//! The client's one error type, and the classification Jepsen histories need: did the write
//! certainly not happen (definite, `fail`) or may it have happened (indeterminate, `info`)?

use kafka_protocol::error::ResponseError;

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Kafka error codes the client reasons about by name.
pub mod code {
    /// UNKNOWN_SERVER_ERROR: the broker failed in a way it did not describe.
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// OFFSET_OUT_OF_RANGE: a fetch position outside the log; reset by policy.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// UNKNOWN_TOPIC_OR_PARTITION: stale metadata or a deleted topic.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE: an election is under way.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// NOT_LEADER_OR_FOLLOWER: the request went to a broker that does not lead the partition.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// REQUEST_TIMED_OUT: the broker gave up waiting (e.g. for replication) after appending.
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// NETWORK_EXCEPTION: the server disconnected before answering.
    pub const NETWORK_EXCEPTION: i16 = 13;
    /// COORDINATOR_LOAD_IN_PROGRESS: the group coordinator is still loading.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// COORDINATOR_NOT_AVAILABLE: no coordinator for the group right now.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR: the group moved to another coordinator.
    pub const NOT_COORDINATOR: i16 = 16;
    /// NOT_ENOUGH_REPLICAS: refused before appending, the ISR is below min.insync.replicas.
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: appended, then the ISR shrank below the minimum.
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    /// ILLEGAL_GENERATION: the group moved on to a newer generation.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// UNKNOWN_MEMBER_ID: the coordinator forgot this member (session expired).
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// REBALANCE_IN_PROGRESS: the member must rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// UNSUPPORTED_VERSION: the broker does not serve the requested API version.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// TOPIC_ALREADY_EXISTS: CreateTopics for an existing name.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: the broker expected another sequence; the batch was refused.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// DUPLICATE_SEQUENCE_NUMBER: an older duplicate; written before, offset unknown.
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    /// INVALID_PRODUCER_EPOCH: the producer epoch is older than the broker's.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// UNKNOWN_PRODUCER_ID: the broker lost this producer's state.
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    /// The leader's log failed on disk.
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// INVALID_RECORD: the broker refused the records (e.g. several batches for one partition).
    pub const INVALID_RECORD: i16 = 87;
    /// FENCED_LEADER_EPOCH: our leader epoch is older than the broker's.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH: our leader epoch is newer than the broker's.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// MEMBER_ID_REQUIRED: JoinGroup v4+ hands out a member id and asks to join again.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be established; nothing was sent.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Address dialled.
        addr: String,
        /// The OS or timeout reason.
        reason: String,
    },
    /// The connection failed after (part of) the request may have left.
    #[error("i/o error: {0}")]
    Io(String),
    /// No reply within the request timeout; the request may have been applied.
    #[error("request timed out after {timeout_ms} ms")]
    Timeout {
        /// The bound that elapsed.
        timeout_ms: u64,
    },
    /// A reply that could not be understood (bad frame, wrong correlation id, decode failure).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A request that could not be encoded; it never left.
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// The broker answered with a Kafka error code.
    #[error("{api}: kafka error {name} ({code})")]
    Kafka {
        /// The API that answered.
        api: &'static str,
        /// The Kafka error code.
        code: i16,
        /// Its protocol name, for humans.
        name: String,
    },
    /// The metadata names no leader for the partition (an election is under way).
    #[error("no leader for {topic}-{partition}")]
    NoLeader {
        /// Topic.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The topic does not exist in the cluster metadata.
    #[error("unknown topic {topic}")]
    UnknownTopic {
        /// Topic.
        topic: String,
    },
    /// The partition index is outside the topic's partitions.
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// CreateTopics found the topic already there (a typed refusal the workloads expect).
    #[error("topic {topic} already exists")]
    TopicAlreadyExists {
        /// Topic.
        topic: String,
    },
    /// The broker serves no version of an API this client implements.
    #[error("broker supports no usable version of {api}")]
    UnsupportedVersion {
        /// The API.
        api: &'static str,
    },
    /// The connection or client was closed before the request was sent.
    #[error("closed")]
    Closed,
    /// The configuration is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The broker refused our credentials (SASL) or we refused its certificate (TLS); nothing
    /// was sent, and trying again with the same settings fails the same way.
    #[error("authentication with {addr} failed: {reason}")]
    Authentication {
        /// Address dialled.
        addr: String,
        /// The broker's message or the TLS error.
        reason: String,
    },
    /// A consumer operation named a partition it does not own.
    #[error("partition {topic}-{partition} is not assigned")]
    NotAssigned {
        /// Topic.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The delivery deadline passed before any attempt could be made.
    #[error("delivery timed out before the record could be sent")]
    DeliveryTimeout,
    /// A step before the operation's own request (metadata, coordinator lookup, producer id)
    /// failed, so the operation was never sent: definite even when `cause` alone is not.
    #[error("not sent: {cause}")]
    NotSent {
        /// The failure of the preparatory step.
        cause: Box<ClientError>,
    },
    /// A later attempt failed, but an earlier attempt of the same write may have been applied:
    /// the outcome is unknown whatever `last` says.
    #[error("outcome unknown (an earlier attempt may have been applied); last error: {last}")]
    Indeterminate {
        /// The error of the final attempt.
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// Builds the error for a Kafka error code answered by `api`.
    pub fn kafka(api: &'static str, code: i16) -> ClientError {
        assert!(code != 0, "error code 0 is success, not an error");
        let name = match ResponseError::try_from_code(code) {
            Some(ResponseError::Unknown(c)) => format!("UNKNOWN_CODE_{c}"),
            Some(known) => known.to_string(),
            None => "NONE".to_string(),
        };
        ClientError::Kafka { api, code, name }
    }

    /// True when the operation may have taken effect: a Jepsen `info`. False means it certainly
    /// did not: a Jepsen `fail`.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            ClientError::Io(_) | ClientError::Timeout { .. } | ClientError::Protocol(_) => true,
            ClientError::Indeterminate { .. } => true,
            ClientError::Kafka { code, .. } => kafka_code_is_indeterminate(*code),
            ClientError::Connect { .. }
            | ClientError::Encode(_)
            | ClientError::NoLeader { .. }
            | ClientError::UnknownTopic { .. }
            | ClientError::UnknownPartition { .. }
            | ClientError::TopicAlreadyExists { .. }
            | ClientError::UnsupportedVersion { .. }
            | ClientError::Closed
            | ClientError::Config(_)
            | ClientError::Authentication { .. }
            | ClientError::NotAssigned { .. }
            | ClientError::NotSent { .. }
            | ClientError::DeliveryTimeout => false,
        }
    }

    /// True when trying again (after a metadata refresh and backoff) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Io(_)
            | ClientError::Timeout { .. }
            | ClientError::Closed
            | ClientError::NoLeader { .. }
            | ClientError::UnknownPartition { .. } => true,
            ClientError::Kafka { code, .. } => kafka_code_is_retriable(*code),
            ClientError::NotSent { cause } => cause.is_retriable(),
            ClientError::Protocol(_)
            | ClientError::Encode(_)
            | ClientError::UnknownTopic { .. }
            | ClientError::TopicAlreadyExists { .. }
            | ClientError::UnsupportedVersion { .. }
            | ClientError::Config(_)
            | ClientError::Authentication { .. }
            | ClientError::NotAssigned { .. }
            | ClientError::DeliveryTimeout
            | ClientError::Indeterminate { .. } => false,
        }
    }

    /// True when the error means our cluster map is stale: refresh metadata before retrying.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Io(_)
            | ClientError::Timeout { .. }
            | ClientError::Closed
            | ClientError::NoLeader { .. }
            | ClientError::UnknownPartition { .. }
            | ClientError::UnknownTopic { .. } => true,
            ClientError::Kafka { code, .. } => matches!(
                *code,
                code::NOT_LEADER_OR_FOLLOWER
                    | code::UNKNOWN_TOPIC_OR_PARTITION
                    | code::LEADER_NOT_AVAILABLE
                    | code::FENCED_LEADER_EPOCH
                    | code::UNKNOWN_LEADER_EPOCH
            ),
            _ => false,
        }
    }

    /// The Kafka error code, if the broker answered with one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            ClientError::Indeterminate { last } => last.kafka_code(),
            ClientError::NotSent { cause } => cause.kafka_code(),
            _ => None,
        }
    }

    /// Marks a failure of a preparatory step as definite for the operation it prepared. Definite
    /// errors stay as they are.
    pub fn not_sent(self) -> ClientError {
        if self.is_indeterminate() {
            ClientError::NotSent {
                cause: Box::new(self),
            }
        } else {
            self
        }
    }

    /// Wraps `self` as the last error of a write whose earlier attempt may have been applied.
    /// Idempotent: wrapping twice does not nest.
    pub fn after_indeterminate_attempt(self) -> ClientError {
        match self {
            ClientError::Indeterminate { .. } => self,
            other => ClientError::Indeterminate {
                last: Box::new(other),
            },
        }
    }
}

/// Kafka codes after which the write may have been applied. Everything else a leader answers is a
/// refusal before the append (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, INVALID_RECORD,
/// OUT_OF_ORDER_SEQUENCE_NUMBER, ...).
pub fn kafka_code_is_indeterminate(code: i16) -> bool {
    matches!(
        code,
        code::UNKNOWN_SERVER_ERROR
            | code::REQUEST_TIMED_OUT
            | code::NETWORK_EXCEPTION
            | code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            // A leader that appended and then lost leadership answers its waiting produces with
            // this; the record may still be committed by the next leader (the simulator found
            // it as G1a: a "failed" send that was read).
            | code::NOT_LEADER_OR_FOLLOWER
            // A leader whose disk failed after the append (at the flush) answers with this; the
            // followers may already hold the record.
            | code::KAFKA_STORAGE_ERROR
            // Written earlier, but the broker no longer knows the offset.
            | code::DUPLICATE_SEQUENCE_NUMBER
    )
}

/// Kafka's own retriability table (`Errors.java`), which kafka-protocol mirrors.
pub fn kafka_code_is_retriable(code: i16) -> bool {
    match ResponseError::try_from_code(code) {
        Some(error) => error.is_retriable(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Kafka code the client reasons about, with (indeterminate, retriable).
    const TABLE: &[(i16, bool, bool)] = &[
        (code::UNKNOWN_SERVER_ERROR, true, false),
        (code::OFFSET_OUT_OF_RANGE, false, false),
        (code::UNKNOWN_TOPIC_OR_PARTITION, false, true),
        (code::LEADER_NOT_AVAILABLE, false, true),
        (code::NOT_LEADER_OR_FOLLOWER, true, true),
        (code::KAFKA_STORAGE_ERROR, true, true),
        (code::REQUEST_TIMED_OUT, true, true),
        (code::NETWORK_EXCEPTION, true, true),
        (code::NOT_COORDINATOR, false, true),
        (code::NOT_ENOUGH_REPLICAS, false, true),
        (code::NOT_ENOUGH_REPLICAS_AFTER_APPEND, true, true),
        (code::REBALANCE_IN_PROGRESS, false, false),
        (code::TOPIC_ALREADY_EXISTS, false, false),
        (code::OUT_OF_ORDER_SEQUENCE_NUMBER, false, false),
        (code::DUPLICATE_SEQUENCE_NUMBER, true, false),
        (code::UNKNOWN_PRODUCER_ID, false, false),
        (code::FENCED_LEADER_EPOCH, false, true),
        (87, false, false), // INVALID_RECORD
        (10, false, false), // MESSAGE_TOO_LARGE
        (2, false, true),   // CORRUPT_MESSAGE
    ];

    #[test]
    fn kafka_codes_are_classified() {
        for &(code, indeterminate, retriable) in TABLE {
            let error = ClientError::kafka("Produce", code);
            assert_eq!(
                error.is_indeterminate(),
                indeterminate,
                "indeterminate {error}"
            );
            assert_eq!(error.is_retriable(), retriable, "retriable {error}");
            assert_eq!(error.kafka_code(), Some(code));
        }
        let named = ClientError::kafka("Produce", code::NOT_LEADER_OR_FOLLOWER);
        assert!(named.to_string().contains("NotLeaderOrFollower"), "{named}");
        assert!(ClientError::kafka("Produce", 9999)
            .to_string()
            .contains("UNKNOWN_CODE_9999"));
    }

    #[test]
    fn transport_errors_are_classified() {
        assert!(ClientError::Timeout { timeout_ms: 1 }.is_indeterminate());
        assert!(ClientError::Io("reset".into()).is_indeterminate());
        assert!(ClientError::Protocol("bad".into()).is_indeterminate());
        let connect = ClientError::Connect {
            addr: "a".into(),
            reason: "refused".into(),
        };
        assert!(!connect.is_indeterminate() && connect.is_retriable());
        assert!(!ClientError::Closed.is_indeterminate());
        assert!(!ClientError::Encode("x".into()).is_indeterminate());
        assert!(!ClientError::NoLeader {
            topic: "t".into(),
            partition: 0
        }
        .is_indeterminate());
    }

    #[test]
    fn an_earlier_uncertain_attempt_makes_any_error_indeterminate() {
        let definite = ClientError::kafka("Produce", code::NOT_ENOUGH_REPLICAS);
        assert!(!definite.is_indeterminate());
        let wrapped = definite.clone().after_indeterminate_attempt();
        assert!(wrapped.is_indeterminate());
        assert!(!wrapped.is_retriable());
        assert_eq!(wrapped.kafka_code(), Some(code::NOT_ENOUGH_REPLICAS));
        assert_eq!(
            wrapped.clone().after_indeterminate_attempt(),
            wrapped,
            "no nesting"
        );
        let unsent = ClientError::Timeout { timeout_ms: 5 }.not_sent();
        assert!(!unsent.is_indeterminate() && unsent.is_retriable());
        assert_eq!(
            definite.clone().not_sent(),
            definite,
            "definite errors stay"
        );
    }
}
