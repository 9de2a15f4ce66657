//! Kafka nouns shared by every rill crate, as newtypes so an offset is never mistaken for an
//! epoch or a broker id.
//!
//! Only glossary terms are abbreviated: ISR (in-sync replicas), HW (high watermark), LEO (log end
//! offset).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Position of a record in a partition log. Dense: every offset between the log start offset and
/// the log end offset names exactly one record.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Offset(pub i64);

impl Offset {
    /// The first offset of a fresh log.
    pub const ZERO: Offset = Offset(0);

    /// The offset `delta` records later.
    ///
    /// Panics on overflow: an offset past `i64::MAX` means a corrupted computation, not a big log.
    /// Not `std::ops::Add`: an offset plus an offset means nothing, only an offset plus a count.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, delta: i64) -> Offset {
        assert!(delta >= 0, "offsets only move forward: delta {delta}");
        Offset(self.0.checked_add(delta).expect("offset overflow"))
    }

    /// The number of records in `[from, self)`.
    pub fn distance_from(self, from: Offset) -> i64 {
        assert!(
            self >= from,
            "distance from a later offset: {from} > {self}"
        );
        self.0 - from.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epoch of a partition's leadership. Grows by one (at least) with every leader change and
/// fences stale leaders (KIP-320). Stored as `partition_leader_epoch` in every record batch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch of a partition that never had a leader. Kafka writes -1 for "no epoch".
    pub const NONE: LeaderEpoch = LeaderEpoch(-1);
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epoch of a partition's state (leader, ISR, ELR) in the controller. Every AlterPartition must
/// name the current one (KIP-497 semantics), so a stale leader cannot change the ISR.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct PartitionEpoch(pub i32);

impl fmt::Display for PartitionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A node's id in the cluster (`node.id`). Brokers and controllers share the id space.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct BrokerId(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A partition of a topic: the unit of ordering, replication and leadership.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic's name, as Kafka clients spell it.
    pub topic: String,
    /// The partition index within the topic, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// The topic-partition `topic`-`partition`, from trusted code (the metadata image, constants).
    ///
    /// Panics on an illegal name or a negative index: from trusted code either is a bug. Names and
    /// indexes a client or a peer sent go through [`TopicPartition::try_new`] instead.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        let topic = topic.into();
        assert!(!topic.is_empty(), "a topic has a name");
        assert!(partition >= 0, "partition indexes start at 0: {partition}");
        TopicPartition { topic, partition }
    }

    /// The topic-partition `topic`-`partition` if the name follows Kafka's rules
    /// ([`topic_name_check`]) and the index is not negative; for names and indexes off the wire.
    pub fn try_new(topic: &str, partition: i32) -> Result<Self, TopicPartitionError> {
        topic_name_check(topic)?;
        if partition < 0 {
            return Err(TopicPartitionError::PartitionNegative { partition });
        }
        let tp = TopicPartition::new(topic, partition);
        assert!(tp.partition >= 0 && !tp.topic.is_empty());
        Ok(tp)
    }
}

/// Kafka's limit on a topic name's length (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Why a name or index off the wire cannot name a partition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicPartitionError {
    /// The topic name is empty.
    #[error("empty topic name")]
    TopicNameEmpty,
    /// The topic name is longer than [`TOPIC_NAME_BYTES_MAX`].
    #[error("topic name of {length} bytes exceeds {TOPIC_NAME_BYTES_MAX}")]
    TopicNameTooLong {
        /// The name's length in bytes.
        length: usize,
    },
    /// The topic name is `.` or `..`, which Kafka refuses (they name directories).
    #[error("topic name {name:?} is reserved")]
    TopicNameReserved {
        /// The name.
        name: String,
    },
    /// The topic name holds a byte outside `[a-zA-Z0-9._-]`.
    #[error("topic name holds the illegal byte {byte:#04x}")]
    TopicNameIllegalByte {
        /// The first illegal byte.
        byte: u8,
    },
    /// The partition index is negative.
    #[error("negative partition index {partition}")]
    PartitionNegative {
        /// The index.
        partition: i32,
    },
}

/// Checks Kafka's topic name rules (`Topic.validate`): 1 to 249 bytes of `[a-zA-Z0-9._-]`, and
/// neither `.` nor `..`. The one validator of topic names: handlers and the controller use it.
pub fn topic_name_check(name: &str) -> Result<(), TopicPartitionError> {
    if name.is_empty() {
        return Err(TopicPartitionError::TopicNameEmpty);
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(TopicPartitionError::TopicNameTooLong { length: name.len() });
    }
    if name == "." || name == ".." {
        return Err(TopicPartitionError::TopicNameReserved {
            name: name.to_string(),
        });
    }
    let legal = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if let Some(byte) = name.bytes().find(|b| !legal(b)) {
        return Err(TopicPartitionError::TopicNameIllegalByte { byte });
    }
    Ok(())
}

impl fmt::Display for TopicPartition {
    /// `topic-partition`, the name Kafka gives a partition's directory and the history format's key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_dense_and_ordered() {
        let start = Offset(10);
        assert_eq!(start.add(5), Offset(15));
        assert_eq!(Offset(15).distance_from(start), 5);
        assert!(Offset(9) < start);
    }

    #[test]
    #[should_panic(expected = "offsets only move forward")]
    fn offsets_never_move_backward() {
        let _ = Offset(3).add(-1);
    }

    #[test]
    fn wire_names_and_indexes_are_checked_not_asserted() {
        assert_eq!(
            TopicPartition::try_new("orders", 0),
            Ok(TopicPartition::new("orders", 0))
        );
        assert_eq!(
            TopicPartition::try_new("orders", -1),
            Err(TopicPartitionError::PartitionNegative { partition: -1 })
        );
        assert_eq!(
            TopicPartition::try_new("", 0),
            Err(TopicPartitionError::TopicNameEmpty)
        );
        for reserved in [".", ".."] {
            assert!(matches!(
                TopicPartition::try_new(reserved, 0),
                Err(TopicPartitionError::TopicNameReserved { .. })
            ));
        }
        assert_eq!(
            TopicPartition::try_new("a/b", 0),
            Err(TopicPartitionError::TopicNameIllegalByte { byte: b'/' })
        );
        assert_eq!(
            TopicPartition::try_new("\u{e9}", 0),
            Err(TopicPartitionError::TopicNameIllegalByte { byte: 0xc3 })
        );
        let longest = "x".repeat(TOPIC_NAME_BYTES_MAX);
        assert!(TopicPartition::try_new(&longest, 0).is_ok());
        assert_eq!(
            TopicPartition::try_new(&format!("{longest}x"), 0),
            Err(TopicPartitionError::TopicNameTooLong { length: 250 })
        );
        assert!(TopicPartition::try_new("a.b_c-D9", i32::MAX).is_ok());
    }

    #[test]
    fn topic_partition_display_is_the_kafka_directory_name() {
        assert_eq!(TopicPartition::new("orders", 2).to_string(), "orders-2");
    }
}
