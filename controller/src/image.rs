//! The metadata image: a pure function of the applied records. Every controller and every
//! broker that applies the same records holds the same image, byte for byte.

use crate::error::ControllerError;
use crate::records::{Listener, MetadataRecord, PartitionState, RecordBatch, TopicConfig};
use crate::security::{self, AclBinding, ScramCredential, ScramMechanism, SecurityChange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

/// Most brokers a cluster may register: bounds placement and fencing scans.
pub const BROKERS_MAX: usize = 1024;
/// Most topics the image holds.
pub const TOPICS_MAX: usize = 10_000;
/// Most partitions one topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: usize = 1024;
/// Most listeners one broker may register.
pub const LISTENERS_MAX: usize = 16;
/// Longest `broker.rack` a broker may register (Kafka sets none; rack ids are short names).
pub const RACK_BYTES_MAX: usize = 255;
/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_BYTES_MAX: usize = wire::TOPIC_NAME_BYTES_MAX;

/// What the image knows about a registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// The process incarnation that registered last; a new one means the broker restarted.
    pub incarnation: u64,
    /// Where the broker serves clients.
    pub listeners: Vec<Listener>,
    /// A fenced broker may not lead or be in an ISR: it missed heartbeats or just restarted.
    pub fenced: bool,
    /// The broker's `broker.rack`, reported in Metadata and used to pick a consumer's preferred
    /// read replica (KIP-392). Omitted from the encoding when unset, so snapshots written before
    /// the field existed decode unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// A topic and its partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Unique over the log's history (a recreated topic gets a new one).
    pub topic_id: u64,
    /// Election-relevant configuration.
    pub config: TopicConfig,
    /// Partition states, indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

/// The cluster metadata after applying a prefix of the metadata log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Registered brokers by id.
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Topics by name.
    topics: BTreeMap<String, TopicImage>,
    /// The id the next created topic gets; only grows.
    topic_id_next: u64,
    /// Raft index of the last entry applied (0: nothing applied). Brokers fetch after it.
    applied_index: u64,
    /// SCRAM credentials by user, then mechanism. Omitted from the encoding when empty, so
    /// snapshots written before the field existed decode unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// ACL bindings, ordered (Kafka's authorizer is a set too).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    acls: BTreeSet<AclBinding>,
    /// Dynamic broker configs (KIP-226) by BROKER resource name: `""` the cluster default, else
    /// a broker id. Omitted from the encoding when empty, so snapshots written before the field
    /// existed decode unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// The empty image, before any record.
    pub fn new() -> Self {
        MetadataImage::default()
    }

    /// Raft index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Registered brokers.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }

    /// Topics by name.
    pub fn topics(&self) -> &BTreeMap<String, TopicImage> {
        &self.topics
    }

    /// The id the next created topic will get.
    pub fn topic_id_next(&self) -> u64 {
        self.topic_id_next
    }

    /// SCRAM credentials by user, then mechanism.
    pub fn scram_credentials(
        &self,
    ) -> &BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
        &self.scram
    }

    /// One user's credential for one mechanism.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(user)?.get(&mechanism)
    }

    /// Every ACL binding.
    pub fn acls(&self) -> &BTreeSet<AclBinding> {
        &self.acls
    }

    /// The dynamic configs of BROKER resource `resource` (`""`: the cluster default).
    pub fn broker_configs(&self, resource: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(resource)
    }

    /// Every BROKER resource's dynamic configs, by resource name.
    pub fn all_broker_configs(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.broker_configs
    }

    /// The dynamic value of broker config `name` for `broker` and where it is set: the broker's
    /// own (`per_broker` true), else the cluster default's.
    pub fn broker_config(&self, broker: BrokerId, name: &str) -> Option<(&str, bool)> {
        let own = self
            .broker_configs
            .get(&broker.0.to_string())
            .and_then(|configs| configs.get(name));
        if let Some(value) = own {
            return Some((value, true));
        }
        let default = self.broker_configs.get("").and_then(|c| c.get(name))?;
        Some((default, false))
    }

    /// One partition's state.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        let topic = self.topics.get(&tp.topic)?;
        topic.partitions.get(usize::try_from(tp.partition).ok()?)
    }

    /// Is `broker` registered and unfenced?
    pub fn is_unfenced(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// Unfenced brokers in id order: the candidates for placement.
    pub fn brokers_unfenced(&self) -> Vec<BrokerId> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Applies the batch of the raft entry at `index`, atomically: either every record applies or
    /// none does. Either way the entry counts as applied, so every node stays at the same index.
    pub fn apply_batch(&mut self, index: u64, batch: &RecordBatch) -> Result<(), ControllerError> {
        assert!(
            index > self.applied_index,
            "entry {index} applied after {}",
            self.applied_index
        );
        assert!(!batch.is_empty(), "an empty batch is never proposed");
        let result = if batch.len() == 1 {
            self.apply(&batch[0])
        } else {
            // Apply to a copy so a refused record leaves no half-applied batch.
            let mut next = self.clone();
            let result = batch.iter().try_for_each(|record| next.apply(record));
            if result.is_ok() {
                *self = next;
            }
            result
        };
        self.applied_index = index;
        debug_assert!(
            self.check_invariants().is_ok(),
            "{:?}",
            self.check_invariants()
        );
        result
    }

    /// Marks the entry at `index` applied without records (raft's empty and config entries).
    pub fn skip_entry(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "entry {index} applied after {}",
            self.applied_index
        );
        self.applied_index = index;
    }

    /// Validates one record against the image and applies it. Refusals change nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ControllerError> {
        match record {
            MetadataRecord::RegisterBroker {
                broker,
                incarnation,
                listeners,
                rack,
                clean_shutdown,
            } => self.apply_register(
                *broker,
                *incarnation,
                listeners,
                rack.as_deref(),
                *clean_shutdown,
            ),
            MetadataRecord::FenceBroker { broker } => self.apply_fence(*broker),
            MetadataRecord::UnfenceBroker { broker } => self.apply_unfence(*broker),
            MetadataRecord::CreateTopic {
                name,
                assignments,
                config,
            } => self.apply_create_topic(name, assignments, config),
            MetadataRecord::DeleteTopic { name, topic_id } => {
                self.apply_delete_topic(name, *topic_id)
            }
            MetadataRecord::AlterTopicConfig {
                name,
                topic_id,
                config,
            } => self.apply_alter_topic_config(name, *topic_id, config),
            MetadataRecord::CreatePartitions {
                name,
                topic_id,
                partitions_before,
                assignments,
            } => self.apply_create_partitions(name, *topic_id, *partitions_before, assignments),
            MetadataRecord::PartitionChange {
                topic,
                topic_id,
                partition,
                state,
            } => self.apply_partition_change(topic, *topic_id, *partition, state),
            MetadataRecord::Security(change) => self.apply_security(change),
            MetadataRecord::AlterBrokerConfig { resource, configs } => {
                self.apply_broker_config(resource, configs)
            }
        }
    }

    fn apply_broker_config(
        &mut self,
        resource: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        crate::broker_configs::check(resource, configs)
            .map_err(|error| invalid(format!("broker config {resource:?}: {error}")))?;
        if configs.is_empty() {
            self.broker_configs.remove(resource);
            return Ok(());
        }
        if !self.broker_configs.contains_key(resource) && self.broker_configs.len() > BROKERS_MAX {
            return Err(ControllerError::LimitReached(format!(
                "{} broker config resources",
                self.broker_configs.len()
            )));
        }
        self.broker_configs
            .insert(resource.to_string(), configs.clone());
        Ok(())
    }

    fn apply_security(&mut self, change: &SecurityChange) -> Result<(), ControllerError> {
        change.check().map_err(ControllerError::InvalidRecord)?;
        match change {
            SecurityChange::UpsertScram {
                user,
                mechanism,
                credential,
            } => {
                let count: usize = self.scram.values().map(BTreeMap::len).sum();
                let replaces = self.scram_credential(user, *mechanism).is_some();
                if !replaces && count >= security::SCRAM_CREDENTIALS_MAX {
                    return Err(ControllerError::LimitReached(format!(
                        "{count} SCRAM credentials"
                    )));
                }
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            SecurityChange::DeleteScram { user, mechanism } => {
                if let Some(credentials) = self.scram.get_mut(user) {
                    credentials.remove(mechanism);
                    if credentials.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
            SecurityChange::CreateAcl(binding) => {
                if !self.acls.contains(binding) && self.acls.len() >= security::ACLS_MAX {
                    return Err(ControllerError::LimitReached(format!(
                        "{} ACL bindings",
                        self.acls.len()
                    )));
                }
                self.acls.insert(binding.clone());
            }
            SecurityChange::DeleteAcl(binding) => {
                self.acls.remove(binding);
            }
        }
        Ok(())
    }

    fn apply_register(
        &mut self,
        broker: BrokerId,
        incarnation: u64,
        listeners: &[Listener],
        rack: Option<&str>,
        clean_shutdown: bool,
    ) -> Result<(), ControllerError> {
        if listeners.len() > LISTENERS_MAX {
            return Err(invalid(format!(
                "broker {broker}: {} listeners",
                listeners.len()
            )));
        }
        if rack.is_some_and(|rack| rack.is_empty() || rack.len() > RACK_BYTES_MAX) {
            return Err(invalid(format!(
                "broker {broker}: a rack of {} bytes (1..={RACK_BYTES_MAX})",
                rack.map_or(0, str::len)
            )));
        }
        if let Some(existing) = self.brokers.get(&broker) {
            if existing.incarnation == incarnation {
                return Ok(()); // A retried registration: nothing changes.
            }
            self.ensure_holds_nothing(broker)?;
            self.ensure_not_offline(broker)?;
            if !clean_shutdown {
                self.ensure_not_eligible(broker)?;
            }
        } else if self.brokers.len() >= BROKERS_MAX {
            return Err(ControllerError::LimitReached(format!(
                "{BROKERS_MAX} brokers"
            )));
        }
        let registration = BrokerRegistration {
            incarnation,
            listeners: listeners.to_vec(),
            fenced: true,
            rack: rack.map(str::to_owned),
        };
        self.brokers.insert(broker, registration);
        assert!(!self.is_unfenced(broker), "a new incarnation starts fenced");
        Ok(())
    }

    fn apply_fence(&mut self, broker: BrokerId) -> Result<(), ControllerError> {
        let registration = self
            .brokers
            .get(&broker)
            .ok_or(ControllerError::UnknownBroker(broker))?;
        if registration.fenced {
            return Err(invalid(format!("broker {broker} is already fenced")));
        }
        self.ensure_holds_nothing(broker)?;
        self.brokers
            .get_mut(&broker)
            .expect("looked up above")
            .fenced = true;
        Ok(())
    }

    fn apply_unfence(&mut self, broker: BrokerId) -> Result<(), ControllerError> {
        let registration = self
            .brokers
            .get_mut(&broker)
            .ok_or(ControllerError::UnknownBroker(broker))?;
        if !registration.fenced {
            return Err(invalid(format!("broker {broker} is not fenced")));
        }
        registration.fenced = false;
        Ok(())
    }

    /// A broker about to be fenced must first have been moved out of every ISR (and so every
    /// leadership): the proposer puts those partition changes earlier in the same batch.
    fn ensure_holds_nothing(&self, broker: BrokerId) -> Result<(), ControllerError> {
        for (name, topic) in &self.topics {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.isr.contains(&broker) {
                    return Err(invalid(format!(
                        "broker {broker} still in the ISR of {name}-{index}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// A broker restarting after a crash must first have left every ELR (same batch, earlier).
    fn ensure_not_eligible(&self, broker: BrokerId) -> Result<(), ControllerError> {
        for (name, topic) in &self.topics {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.elr.contains(&broker) {
                    return Err(invalid(format!(
                        "broker {broker} still in the ELR of {name}-{index}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// A new incarnation reopened its logs: the proposer clears the old process's offline marks
    /// earlier in the same batch, so no mark outlives the process whose copy failed.
    fn ensure_not_offline(&self, broker: BrokerId) -> Result<(), ControllerError> {
        for (name, topic) in &self.topics {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.offline.contains(&broker) {
                    return Err(invalid(format!(
                        "broker {broker} still offline in {name}-{index}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn apply_create_topic(
        &mut self,
        name: &str,
        assignments: &[Vec<BrokerId>],
        config: &TopicConfig,
    ) -> Result<(), ControllerError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(ControllerError::TopicAlreadyExists(name.to_string()));
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(ControllerError::LimitReached(format!(
                "{TOPICS_MAX} topics"
            )));
        }
        if assignments.is_empty() || assignments.len() > PARTITIONS_PER_TOPIC_MAX {
            return Err(invalid(format!("{name}: {} partitions", assignments.len())));
        }
        let replication_factor = assignments[0].len();
        check_config(name, config)?;
        let mut partitions = Vec::with_capacity(assignments.len());
        for replicas in assignments {
            partitions.push(self.new_partition(name, replicas, replication_factor)?);
        }
        let topic = TopicImage {
            topic_id: self.topic_id_next,
            config: config.clone(),
            partitions,
        };
        self.topic_id_next += 1;
        self.topics.insert(name.to_string(), topic);
        Ok(())
    }

    /// A new partition's first state: every unfenced replica in the ISR, the first one leading.
    fn new_partition(
        &self,
        name: &str,
        replicas: &[BrokerId],
        replication_factor: usize,
    ) -> Result<PartitionState, ControllerError> {
        if replicas.len() != replication_factor || !distinct(replicas) {
            return Err(invalid(format!("{name}: replicas {replicas:?}")));
        }
        if let Some(unknown) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
            return Err(ControllerError::UnknownBroker(*unknown));
        }
        let isr: Vec<BrokerId> = replicas
            .iter()
            .copied()
            .filter(|b| self.is_unfenced(*b))
            .collect();
        Ok(PartitionState {
            replicas: replicas.to_vec(),
            leader: isr.first().copied(),
            leader_epoch: LeaderEpoch(0),
            isr,
            elr: Vec::new(),
            last_known_leader: None,
            partition_epoch: PartitionEpoch(0),
            offline: Vec::new(),
        })
    }

    fn apply_alter_topic_config(
        &mut self,
        name: &str,
        topic_id: u64,
        config: &TopicConfig,
    ) -> Result<(), ControllerError> {
        check_config(name, config)?;
        match self.topics.get_mut(name) {
            Some(topic) if topic.topic_id == topic_id => {
                topic.config = config.clone();
                Ok(())
            }
            _ => Err(ControllerError::UnknownTopicOrPartition(name.to_string())),
        }
    }

    fn apply_create_partitions(
        &mut self,
        name: &str,
        topic_id: u64,
        partitions_before: u32,
        assignments: &[Vec<BrokerId>],
    ) -> Result<(), ControllerError> {
        let topic = match self.topics.get(name) {
            Some(topic) if topic.topic_id == topic_id => topic,
            _ => return Err(ControllerError::UnknownTopicOrPartition(name.to_string())),
        };
        let before = topic.partitions.len();
        if u32::try_from(before).ok() != Some(partitions_before) {
            return Err(invalid(format!(
                "{name}: has {before} partitions, the record expects {partitions_before}"
            )));
        }
        let total = before + assignments.len();
        if assignments.is_empty() || total > PARTITIONS_PER_TOPIC_MAX {
            return Err(invalid(format!("{name}: {total} partitions")));
        }
        let replication_factor = topic.partitions[0].replicas.len();
        let added = assignments
            .iter()
            .map(|replicas| self.new_partition(name, replicas, replication_factor))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = self.topics.get_mut(name).expect("found above");
        topic.partitions.extend(added);
        assert_eq!(topic.partitions.len(), total);
        Ok(())
    }

    fn apply_delete_topic(&mut self, name: &str, topic_id: u64) -> Result<(), ControllerError> {
        match self.topics.get(name) {
            Some(topic) if topic.topic_id == topic_id => {
                self.topics.remove(name);
                Ok(())
            }
            _ => Err(ControllerError::UnknownTopicOrPartition(name.to_string())),
        }
    }

    fn apply_partition_change(
        &mut self,
        topic: &str,
        topic_id: u64,
        partition: i32,
        next: &PartitionState,
    ) -> Result<(), ControllerError> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        let current = match self.topics.get(topic) {
            Some(image) if image.topic_id == topic_id => self.partition(&tp),
            _ => None,
        }
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(tp.to_string()))?;
        validate_transition(self, &tp, current, next)?;
        let slot = usize::try_from(partition).expect("partition found above, so non-negative");
        let image = self.topics.get_mut(topic).expect("topic found above");
        image.partitions[slot] = next.clone();
        Ok(())
    }

    /// Checks the rules every image obeys; returns the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (resource, configs) in &self.broker_configs {
            if configs.is_empty() {
                return Err(format!("broker config resource {resource:?} stored empty"));
            }
            crate::broker_configs::check(resource, configs)
                .map_err(|error| format!("broker config {resource:?}: {error}"))?;
        }
        let mut topic_ids = BTreeSet::new();
        for (name, topic) in &self.topics {
            if topic.topic_id >= self.topic_id_next || !topic_ids.insert(topic.topic_id) {
                return Err(format!(
                    "{name}: topic id {} reused or unallocated",
                    topic.topic_id
                ));
            }
            for (index, state) in topic.partitions.iter().enumerate() {
                self.check_partition(state)
                    .map_err(|why| format!("{name}-{index}: {why}: {state:?}"))?;
            }
        }
        Ok(())
    }

    fn check_partition(&self, state: &PartitionState) -> Result<(), String> {
        if state.replicas.is_empty() || !distinct(&state.replicas) {
            return Err("replicas empty or repeated".into());
        }
        let is_replica = |b: &BrokerId| state.replicas.contains(b);
        if !state.isr.iter().all(is_replica) || !state.elr.iter().all(is_replica) {
            return Err("ISR or ELR outside the replicas".into());
        }
        if !distinct(&state.isr) || !distinct(&state.elr) {
            return Err("ISR or ELR repeats a broker".into());
        }
        if state.isr.iter().any(|b| state.elr.contains(b)) {
            return Err("ISR and ELR overlap".into());
        }
        if !state.offline.iter().all(is_replica) || !state.offline.windows(2).all(|w| w[0] < w[1]) {
            return Err("offline replicas unknown, repeated or unsorted".into());
        }
        // The leader is in the ISR (checked below), so this also keeps offline copies from leading.
        if state.isr.iter().any(|b| state.offline.contains(b)) {
            return Err("an offline copy in the ISR".into());
        }
        if !state.isr.iter().all(|b| self.is_unfenced(*b)) {
            return Err("fenced or unknown broker in the ISR".into());
        }
        match state.leader {
            Some(leader) if !state.isr.contains(&leader) => Err("leader outside the ISR".into()),
            None if !state.isr.is_empty() => Err("an ISR without a leader".into()),
            _ => Ok(()),
        }
    }

    /// The snapshot encoding: the whole image, deterministic because every map is a BTreeMap.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the image serialises: map keys are strings or integers")
    }

    /// Parses a snapshot written by [`MetadataImage::encode`] and checks its invariants.
    pub fn decode(data: &[u8]) -> Result<MetadataImage, ControllerError> {
        let image: MetadataImage = serde_json::from_slice(data)
            .map_err(|e| invalid(format!("undecodable snapshot: {e}")))?;
        image.check_invariants().map_err(invalid)?;
        Ok(image)
    }

    /// A 64-bit FNV-1a digest of the encoding: equal images have equal digests, which lets test
    /// harnesses compare images across nodes cheaply.
    pub fn digest(&self) -> u64 {
        self.encode()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
            })
    }
}

/// The rules of a partition change: whole-state records must move the epochs exactly one step,
/// keep the replica set, and only put unfenced replicas in the ISR.
fn validate_transition(
    image: &MetadataImage,
    tp: &TopicPartition,
    current: &PartitionState,
    next: &PartitionState,
) -> Result<(), ControllerError> {
    if next.partition_epoch.0 != current.partition_epoch.0 + 1 {
        return Err(ControllerError::InvalidUpdateVersion {
            partition: tp.clone(),
            requested: next.partition_epoch.0 - 1,
            current: current.partition_epoch.0,
        });
    }
    let leader_epoch_expected = current.leader_epoch.0 + i32::from(next.leader != current.leader);
    if next.leader_epoch.0 != leader_epoch_expected || next.replicas != current.replicas {
        return Err(invalid(format!(
            "{tp}: leader epoch or replicas jump: {next:?}"
        )));
    }
    if let Some(broker) = next.isr.iter().find(|b| !image.is_unfenced(**b)) {
        return Err(ControllerError::IneligibleReplica {
            partition: tp.clone(),
            broker: *broker,
        });
    }
    image
        .check_partition(next)
        .map_err(|why| invalid(format!("{tp}: {why}")))
}

/// A topic config's rules: min ISR at least 1 (above the replication factor is allowed, the
/// effective min ISR is capped at it), overrides known and valid, and the election fields equal
/// to their overrides where set.
fn check_config(name: &str, config: &TopicConfig) -> Result<(), ControllerError> {
    if config.min_insync_replicas < 1 {
        return Err(invalid(format!(
            "{name}: min.insync.replicas {}",
            config.min_insync_replicas
        )));
    }
    crate::topic_configs::check_overrides(&config.overrides)?;
    let min_isr = config.min_insync_replicas.to_string();
    let unclean = config.unclean_leader_election.to_string();
    let agree = |key: &str, value: &str| config.overrides.get(key).is_none_or(|v| v == value);
    if !agree("min.insync.replicas", &min_isr) || !agree("unclean.leader.election.enable", &unclean)
    {
        return Err(invalid(format!(
            "{name}: election fields disagree with overrides"
        )));
    }
    Ok(())
}

/// Kafka's topic name rule (`wire::topic_name_check`, the one validator of names).
pub(crate) fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    wire::topic_name_check(name)
        .map_err(|why| ControllerError::InvalidTopic(format!("illegal topic name {name:?}: {why}")))
}

fn distinct(brokers: &[BrokerId]) -> bool {
    let set: BTreeSet<_> = brokers.iter().collect();
    set.len() == brokers.len()
}

fn invalid(why: impl Into<String>) -> ControllerError {
    ControllerError::InvalidRecord(why.into())
}
