//! Metadata records: the entries of the controller's raft log. The metadata image is a pure
//! function of the sequence of records applied, so everything a decision needs is in a record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wire::{BrokerId, LeaderEpoch, PartitionEpoch};

/// A network endpoint a broker serves on, as registered (Kafka's listener).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listener {
    /// The listener's name, e.g. `PLAINTEXT`.
    pub name: String,
    /// Host name clients connect to.
    pub host: String,
    /// TCP port clients connect to.
    pub port: u16,
}

/// Per-topic configuration: the values leader election needs, resolved, and the topic's dynamic
/// configs as set by CreateTopics and AlterConfigs (brokers apply those to the logs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// May a replica outside the ISR and ELR become leader (losing acknowledged data)?
    pub unclean_leader_election: bool,
    /// ISR size below which acks=all writes are refused; ISR shrinks below it keep ELR (KIP-966).
    pub min_insync_replicas: i32,
    /// The topic's own configs (Kafka's DYNAMIC_TOPIC_CONFIG), by name, each validated and
    /// normalised by `topic_configs::validate`; a name absent takes the broker's default.
    /// Omitted from the encoding when empty, so records and snapshots written before the field
    /// existed decode unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            unclean_leader_election: false,
            min_insync_replicas: 1,
            overrides: BTreeMap::new(),
        }
    }
}

/// The full state of one partition after a change. Records carry whole states rather than
/// deltas so that validating and applying are the same comparison on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first. Fixed at topic creation.
    pub replicas: Vec<BrokerId>,
    /// The leader, or `None` while no eligible replica is unfenced.
    pub leader: Option<BrokerId>,
    /// Grows with every leader change (including to and from "no leader").
    pub leader_epoch: LeaderEpoch,
    /// In-sync replicas: they hold every record below the high watermark.
    pub isr: Vec<BrokerId>,
    /// Eligible leader replicas (KIP-966): removed from the ISR while it was below min ISR, so
    /// they still hold every committed record and may lead cleanly.
    pub elr: Vec<BrokerId>,
    /// The leader before the partition became leaderless, for diagnosis and unclean recovery.
    pub last_known_leader: Option<BrokerId>,
    /// Grows with every change of this state; AlterPartition must name the current one.
    pub partition_epoch: PartitionEpoch,
    /// Replicas whose broker reported its copy failed (KIP-112's offline log directory, per
    /// partition), ascending: never elected and never in the ISR until the broker registers a new
    /// incarnation, which clears its mark. They may stay in the ELR: a failed write or fsync
    /// loses only unflushed bytes. Omitted from the encoding when empty, so records and
    /// snapshots written before the field existed decode unchanged and read back the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline: Vec<BrokerId>,
}

/// One metadata record. Applied in log order by every controller and every broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)starts: a new incarnation id replaces the old one; the broker starts fenced.
    RegisterBroker {
        /// The broker's node id.
        broker: BrokerId,
        /// Random per process start (chosen by the broker), so a restart is told from a retry.
        incarnation: u64,
        /// Where the broker serves clients.
        listeners: Vec<Listener>,
        /// The broker's `broker.rack` (KIP-392's rack-aware replica selection), at most
        /// [`crate::image::RACK_BYTES_MAX`] bytes. Omitted from the encoding when unset, so
        /// records written before the field existed decode unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
        /// Does the broker still hold everything its logs flushed? Kafka's name: Kafka sets it
        /// after a clean stop only, since a crash loses page-cache records. rill's brokers count
        /// only flushed data in the HW and set it unless their storage lost flushed bytes (a new
        /// or wiped directory, a corrupt log); when false the broker leaves every ELR (KIP-966).
        clean_shutdown: bool,
    },
    /// The active controller saw no heartbeat within the session timeout.
    FenceBroker {
        /// The broker fenced.
        broker: BrokerId,
    },
    /// The broker heartbeated and may lead and join ISRs again.
    UnfenceBroker {
        /// The broker unfenced.
        broker: BrokerId,
    },
    /// A topic with explicit replica assignments (placement is the proposer's, applying is pure).
    CreateTopic {
        /// Topic name. The topic id is assigned when the record is applied (the image's next id),
        /// so two racing creations of different topics both succeed.
        name: String,
        /// One replica list per partition, preferred leader first.
        assignments: Vec<Vec<BrokerId>>,
        /// The topic's configuration.
        config: TopicConfig,
    },
    /// Removes a topic and its partitions.
    DeleteTopic {
        /// Topic name.
        name: String,
        /// Guards against deleting a recreated topic of the same name.
        topic_id: u64,
    },
    /// A topic's whole new configuration (AlterConfigs, IncrementalAlterConfigs).
    AlterTopicConfig {
        /// Topic name.
        name: String,
        /// Guards against changing a recreated topic of the same name.
        topic_id: u64,
        /// The configuration replacing the current one.
        config: TopicConfig,
    },
    /// Partitions added to a topic (CreatePartitions), numbered after the existing ones.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// Guards against growing a recreated topic of the same name.
        topic_id: u64,
        /// The partition count before: the record applies only to a topic of this size, so two
        /// racing requests cannot both add.
        partitions_before: u32,
        /// One replica list per new partition, preferred leader first.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// A partition's new state (leader election, ISR change, ELR bookkeeping).
    PartitionChange {
        /// Topic name.
        topic: String,
        /// The topic's id at proposal time.
        topic_id: u64,
        /// Partition index.
        partition: i32,
        /// The whole new state; its partition epoch must be the current one plus one.
        state: PartitionState,
    },
    /// A change of the client security metadata: a SCRAM credential or an ACL binding.
    Security(crate::security::SecurityChange),
    /// A BROKER config resource's whole new set of dynamic configs (Kafka's `ConfigRecord`s of
    /// one AlterConfigs or IncrementalAlterConfigs resource, KIP-226); an empty set removes the
    /// resource. Checked on apply with `broker_configs::check`.
    AlterBrokerConfig {
        /// `""` for the cluster-wide default, else the broker id in decimal.
        resource: String,
        /// The configs by name, each validated and in its stored form.
        configs: BTreeMap<String, String>,
    },
}

/// Records applied atomically: one raft entry. A fence comes with the partition changes it
/// forces, so no image ever shows a fenced leader.
pub type RecordBatch = Vec<MetadataRecord>;

/// Most records one raft entry may carry: bounds apply time and entry size.
pub const RECORDS_PER_BATCH_MAX: usize = 4096;

/// Serialises a batch into raft entry data (JSON: simple, debuggable, deterministic key order
/// because every map in a record is a sequence).
pub fn encode_batch(batch: &RecordBatch) -> Vec<u8> {
    assert!(!batch.is_empty(), "an empty batch proposes nothing");
    assert!(
        batch.len() <= RECORDS_PER_BATCH_MAX,
        "batch of {} records",
        batch.len()
    );
    serde_json::to_vec(batch).expect("records serialise: no maps with non-string keys")
}

/// Parses raft entry data written by [`encode_batch`]. `None` for foreign data (a corrupt entry
/// is refused identically on every node, so the images still agree).
pub fn decode_batch(data: &[u8]) -> Option<RecordBatch> {
    let batch: RecordBatch = serde_json::from_slice(data).ok()?;
    if batch.is_empty() || batch.len() > RECORDS_PER_BATCH_MAX {
        return None;
    }
    Some(batch)
}
