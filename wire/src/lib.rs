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
    /// The topic-partition `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        let topic = topic.into();
        assert!(!topic.is_empty(), "a topic has a name");
        assert!(partition >= 0, "partition indexes start at 0: {partition}");
        TopicPartition { topic, partition }
    }
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
    fn topic_partition_display_is_the_kafka_directory_name() {
        assert_eq!(TopicPartition::new("orders", 2).to_string(), "orders-2");
    }
}
