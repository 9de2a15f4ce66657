//! The cluster map (brokers, topics, partitions, leaders) and a cache that refreshes it from
//! any reachable broker, falling back to the bootstrap list.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestKind};
use kafka_protocol::protocol::StrBytes;
use wire::BrokerId;

use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::pool::ConnectionPool;

/// Most partitions per topic the client tracks; beyond this a metadata answer is corrupt.
pub const TOPIC_PARTITIONS_MAX: usize = 100_000;

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Kafka error for this partition (0 = none; LEADER_NOT_AVAILABLE during elections).
    pub error_code: i16,
    /// The leader, or `None` during an election.
    pub leader: Option<BrokerId>,
    /// The leader's epoch, -1 when unknown.
    pub leader_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
}

/// One topic as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Kafka error for the whole topic (UNKNOWN_TOPIC_OR_PARTITION when absent).
    pub error_code: i16,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionMetadata>,
}

/// A snapshot of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Broker id → "host:port".
    pub brokers: BTreeMap<BrokerId, String>,
    /// The active controller, if reported.
    pub controller: Option<BrokerId>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    /// Builds the map from a Metadata response.
    pub fn from_response(response: &MetadataResponse) -> Result<ClusterMetadata> {
        let mut metadata = ClusterMetadata::default();
        for broker in &response.brokers {
            let addr = format!("{}:{}", broker.host.as_str(), broker.port);
            metadata.brokers.insert(BrokerId(broker.node_id.0), addr);
        }
        if response.controller_id.0 >= 0 {
            metadata.controller = Some(BrokerId(response.controller_id.0));
        }
        for topic in &response.topics {
            let Some(name) = &topic.name else { continue };
            if topic.partitions.len() > TOPIC_PARTITIONS_MAX {
                return Err(ClientError::Protocol(format!(
                    "topic {} too many partitions",
                    name.as_str()
                )));
            }
            let mut partitions = BTreeMap::new();
            for partition in &topic.partitions {
                let leader =
                    (partition.leader_id.0 >= 0).then_some(BrokerId(partition.leader_id.0));
                partitions.insert(
                    partition.partition_index,
                    PartitionMetadata {
                        error_code: partition.error_code,
                        leader,
                        leader_epoch: partition.leader_epoch,
                        replicas: partition
                            .replica_nodes
                            .iter()
                            .map(|b| BrokerId(b.0))
                            .collect(),
                        isr: partition.isr_nodes.iter().map(|b| BrokerId(b.0)).collect(),
                    },
                );
            }
            let entry = TopicMetadata {
                error_code: topic.error_code,
                partitions,
            };
            metadata.topics.insert(name.as_str().to_string(), entry);
        }
        assert!(metadata.brokers.len() == response.brokers.len() || !response.brokers.is_empty());
        Ok(metadata)
    }

    /// Number of partitions of an existing topic.
    pub fn partition_count(&self, topic: &str) -> Result<i32> {
        match self.topics.get(topic) {
            Some(t) if t.error_code == 0 && !t.partitions.is_empty() => {
                Ok(i32::try_from(t.partitions.len()).expect("bounded by TOPIC_PARTITIONS_MAX"))
            }
            _ => Err(ClientError::UnknownTopic {
                topic: topic.to_string(),
            }),
        }
    }

    /// The address of the partition's leader.
    pub fn leader_addr(&self, topic: &str, partition: i32) -> Result<(BrokerId, String)> {
        let topic_metadata = match self.topics.get(topic) {
            Some(t) if t.error_code == 0 => t,
            _ => {
                return Err(ClientError::UnknownTopic {
                    topic: topic.to_string(),
                })
            }
        };
        let no_leader = || ClientError::NoLeader {
            topic: topic.to_string(),
            partition,
        };
        let Some(p) = topic_metadata.partitions.get(&partition) else {
            return Err(ClientError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        };
        let leader = p.leader.ok_or_else(no_leader)?;
        let addr = self.brokers.get(&leader).ok_or_else(no_leader)?;
        Ok((leader, addr.clone()))
    }

    /// Merges a (possibly partial) refresh: brokers are replaced, listed topics overwritten —
    /// except a partition whose fresh leader epoch is older than the one cached, which keeps the
    /// cached leader (KIP-320, as Kafka's clients do): a broker that was cut off answers with the
    /// leadership it last knew, and following it sends fetches to a stale leader whose log may
    /// end below the consumer's position (an OFFSET_OUT_OF_RANGE that resets the consumer).
    /// A topic that disappears from a full refresh is forgotten, so a re-created topic's epochs
    /// start afresh (Kafka tells re-creations apart by topic id).
    pub fn merge(&mut self, fresh: ClusterMetadata, all_topics: bool) {
        if !fresh.brokers.is_empty() {
            self.brokers = fresh.brokers;
        }
        self.controller = fresh.controller.or(self.controller);
        // A full refresh replaces the map (`previous` holds the old one for the epoch check); a
        // partial one updates it in place.
        let previous = if all_topics {
            std::mem::take(&mut self.topics)
        } else {
            BTreeMap::new()
        };
        for (name, mut topic) in fresh.topics {
            if let Some(cached) = previous.get(&name).or_else(|| self.topics.get(&name)) {
                for (index, partition) in &mut topic.partitions {
                    match cached.partitions.get(index) {
                        Some(known) if known.leader_epoch > partition.leader_epoch => {
                            *partition = known.clone();
                        }
                        _ => {}
                    }
                }
            }
            self.topics.insert(name, topic);
        }
    }
}

/// Cached cluster metadata shared by one client role.
#[derive(Debug, Default)]
pub struct MetadataCache {
    /// The last merged snapshot and when it was refreshed (tokio time, virtual under madsim).
    state: Mutex<(ClusterMetadata, Option<tokio::time::Instant>)>,
}

impl MetadataCache {
    /// An empty cache; the first use refreshes from the bootstrap list.
    pub fn new() -> Self {
        MetadataCache::default()
    }

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> ClusterMetadata {
        self.state.lock().expect("never poisoned").0.clone()
    }

    /// True when the snapshot is older than `max_age_ms` or was never fetched.
    pub fn is_stale(&self, max_age_ms: u64) -> bool {
        let state = self.state.lock().expect("never poisoned");
        match state.1 {
            None => true,
            Some(at) => at.elapsed() >= std::time::Duration::from_millis(max_age_ms),
        }
    }

    /// Fetches metadata for `topics` (`None` = all) from the first broker that answers: known
    /// brokers first, then the bootstrap list.
    pub async fn refresh(
        &self,
        pool: &ConnectionPool,
        topics: Option<&[String]>,
    ) -> Result<ClusterMetadata> {
        let mut candidates: Vec<String> = self.snapshot().brokers.into_values().collect();
        for addr in &pool.config().bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        assert!(!candidates.is_empty(), "the bootstrap list is never empty");
        let mut last_error = ClientError::Closed;
        for addr in &candidates {
            match fetch_metadata(pool, addr, topics).await {
                Ok(fresh) => {
                    let mut state = self.state.lock().expect("never poisoned");
                    state.0.merge(fresh, topics.is_none());
                    state.1 = Some(tokio::time::Instant::now());
                    return Ok(state.0.clone());
                }
                Err(error) => {
                    tracing::debug!(addr, %error, "metadata refresh failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// The partition count of `topic`, refreshing once if the topic is not cached.
    pub async fn partition_count(&self, pool: &ConnectionPool, topic: &str) -> Result<i32> {
        if let Ok(count) = self.snapshot().partition_count(topic) {
            return Ok(count);
        }
        self.refresh(pool, Some(&[topic.to_string()]))
            .await?
            .partition_count(topic)
    }
}

/// One Metadata request to `addr`.
pub async fn fetch_metadata(
    pool: &ConnectionPool,
    addr: &str,
    topics: Option<&[String]>,
) -> Result<ClusterMetadata> {
    let timeout_ms = pool.config().request_timeout_ms;
    let response = pool
        .call(addr, ApiKey::Metadata, timeout_ms, |version| {
            Ok(metadata_request(version, topics))
        })
        .await?;
    let response = expect_response!(response, Metadata)?;
    if response.error_code != 0 && response.error_code != code::UNKNOWN_TOPIC_OR_PARTITION {
        return Err(ClientError::kafka("Metadata", response.error_code));
    }
    ClusterMetadata::from_response(&response)
}

/// A Metadata request valid at `version` (auto-creation off where the version can say so).
pub fn metadata_request(version: i16, topics: Option<&[String]>) -> RequestKind {
    assert!(version >= 1, "v0 has no way to ask for all topics");
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|name| {
                MetadataRequestTopic::default()
                    .with_name(Some(StrBytes::from_string(name.clone()).into()))
            })
            .collect()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(version < 4);
    RequestKind::Metadata(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn response(leader: i32) -> MetadataResponse {
        let broker = MetadataResponseBroker::default()
            .with_node_id(1.into())
            .with_host(StrBytes::from_static_str("h"))
            .with_port(9092);
        let partition = MetadataResponsePartition::default()
            .with_partition_index(0)
            .with_leader_id(leader.into())
            .with_leader_epoch(4)
            .with_replica_nodes(vec![1.into(), 2.into()])
            .with_isr_nodes(vec![1.into()]);
        let topic = MetadataResponseTopic::default()
            .with_name(Some(StrBytes::from_static_str("t").into()))
            .with_partitions(vec![partition]);
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_controller_id(1.into())
            .with_topics(vec![topic])
    }

    #[test]
    fn leader_lookup_and_typed_absences() {
        let metadata = ClusterMetadata::from_response(&response(1)).expect("valid");
        assert_eq!(
            metadata.leader_addr("t", 0).expect("led"),
            (BrokerId(1), "h:9092".to_string())
        );
        assert_eq!(metadata.partition_count("t").expect("known"), 1);
        assert_eq!(metadata.topics["t"].partitions[&0].leader_epoch, 4);
        assert_eq!(metadata.topics["t"].partitions[&0].isr, vec![BrokerId(1)]);
        assert!(matches!(
            metadata.leader_addr("t", 1),
            Err(ClientError::UnknownPartition { .. })
        ));
        assert!(matches!(
            metadata.leader_addr("x", 0),
            Err(ClientError::UnknownTopic { .. })
        ));
        let electing = ClusterMetadata::from_response(&response(-1)).expect("valid");
        assert!(matches!(
            electing.leader_addr("t", 0),
            Err(ClientError::NoLeader { .. })
        ));
    }

    #[test]
    fn metadata_request_respects_versions() {
        for version in [1, 3, 4, 9, 12] {
            let RequestKind::Metadata(request) = metadata_request(version, None) else {
                unreachable!("metadata_request builds Metadata")
            };
            let mut buf = bytes::BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&request, &mut buf, version)
                .expect("encodable at every negotiated version");
            assert_eq!(request.allow_auto_topic_creation, version < 4);
        }
    }

    #[test]
    fn partial_refresh_keeps_other_topics() {
        let mut cached = ClusterMetadata::from_response(&response(1)).expect("valid");
        let mut other = cached.clone();
        other.topics = BTreeMap::from([("u".to_string(), cached.topics["t"].clone())]);
        cached.merge(other.clone(), false);
        assert!(cached.topics.contains_key("t") && cached.topics.contains_key("u"));
        cached.merge(other, true);
        assert!(!cached.topics.contains_key("t"));
    }

    fn partition_0(metadata: &mut ClusterMetadata) -> &mut PartitionMetadata {
        let topic = metadata.topics.get_mut("t").expect("topic t");
        topic.partitions.get_mut(&0).expect("partition 0")
    }

    #[test]
    fn an_older_leader_epoch_never_replaces_a_newer_one() {
        // Found by the cluster simulation (seed 496): a leader cut off for 6 s came back still
        // claiming leadership at epoch 0; a consumer that took its metadata over the epoch-1
        // leader's fetched there, got OFFSET_OUT_OF_RANGE and reset to the earliest offset.
        let mut cached = ClusterMetadata::from_response(&response(2)).expect("valid");
        partition_0(&mut cached).leader_epoch = 5;
        let mut stale = cached.clone();
        partition_0(&mut stale).leader = Some(BrokerId(1));
        partition_0(&mut stale).leader_epoch = 4;
        for all_topics in [false, true] {
            let mut merged = cached.clone();
            merged.merge(stale.clone(), all_topics);
            assert_eq!(partition_0(&mut merged).leader, Some(BrokerId(2)));
            assert_eq!(partition_0(&mut merged).leader_epoch, 5);
        }
        let mut moved = stale;
        partition_0(&mut moved).leader_epoch = 6;
        cached.merge(moved, false);
        assert_eq!(
            partition_0(&mut cached).leader,
            Some(BrokerId(1)),
            "a newer epoch wins"
        );
    }
}
