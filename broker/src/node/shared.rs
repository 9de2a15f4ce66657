//! The state one broker shares between its connections and background tasks: the partitions it
//! hosts, the metadata image it follows, its controller client and peer connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::watch;
use controller::MetadataImage;
use log_core::Disk;
use replication::{AlterPartition, BugSwitches, Config, Message};
use wire::{BrokerId, TopicPartition};

use super::config::NodeConfig;
use super::fetcher::Fetchers;
use super::metrics::Metrics;
use crate::control::ControllerClient;
use crate::partition::{IoWorker, Partition, PartitionSettings, ReplicaNet};

/// A replication request's timeout beyond the leader's long poll: the round trip and the leader's
/// reads, generously (a request that times out costs a reconnect and a backoff).
const PEER_REQUEST_SLACK_MS: u64 = 5_000;
/// Attempts to tell the controller about a failed partition (one per backoff).
const REPORT_OFFLINE_ATTEMPTS_MAX: u32 = 120;
/// Pause between two attempts, ms.
const REPORT_OFFLINE_BACKOFF_MS: u64 = 500;

/// Everything a broker's tasks share.
pub struct Shared {
    /// The node's configuration.
    pub config: NodeConfig,
    /// This broker.
    pub broker_id: BrokerId,
    /// This process's registration incarnation (offline reports name it).
    pub incarnation: u64,
    /// Where partitions live.
    pub disk: Arc<dyn Disk>,
    /// Hosted partitions.
    partitions: Mutex<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// The metadata image as the broker lifecycle last fetched it.
    pub image: watch::Receiver<Arc<MetadataImage>>,
    /// The way to the active controller.
    pub controller: ControllerClient,
    /// Historic-bug switches for every partition (simulator only).
    pub bugs: BugSwitches,
    /// Counters and histograms for /metrics.
    pub metrics: Metrics,
    /// Carries out every hosted partition's flushes in group-commit rounds.
    io: IoWorker,
    /// One replica fetcher per leader this broker follows partitions of.
    fetchers: Fetchers,
    /// Partitions this process could not open (reported offline once each).
    open_failures: Mutex<std::collections::BTreeSet<TopicPartition>>,
    /// Ourselves, weakly, for the replica transport handed to partitions.
    me: Weak<Shared>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        config: NodeConfig,
        disk: Arc<dyn Disk>,
        image: watch::Receiver<Arc<MetadataImage>>,
        controller: ControllerClient,
        bugs: BugSwitches,
        incarnation: u64,
    ) -> Arc<Shared> {
        let broker_id = BrokerId(config.node_id);
        Arc::new_cyclic(|me| Shared {
            config,
            broker_id,
            incarnation,
            disk,
            partitions: Mutex::new(BTreeMap::new()),
            image,
            controller,
            bugs,
            metrics: Metrics::default(),
            io: IoWorker::start(),
            fetchers: Fetchers::default(),
            open_failures: Mutex::new(std::collections::BTreeSet::new()),
            me: me.clone(),
        })
    }

    fn partitions_locked(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, Arc<Partition>>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosted partition, if any.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions_locked().get(tp).cloned()
    }

    /// Every hosted partition, in order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions_locked().values().cloned().collect()
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// The Kafka address of `broker` as registered, if known.
    pub fn broker_address(&self, broker: BrokerId) -> Option<String> {
        let image = self.image();
        let registration = image.brokers().get(&broker)?;
        let listener = registration.listeners.first()?;
        Some(format!("{}:{}", listener.host, listener.port))
    }

    /// The replica settings for partitions of a topic with this configuration.
    fn settings(&self, topic: &controller::TopicConfig) -> PartitionSettings {
        let timing = &self.config.timing;
        let mut replica = Config::new(self.broker_id);
        replica.min_insync_replicas =
            usize::try_from(topic.min_insync_replicas.max(1)).expect("positive");
        replica.replica_lag_time_max_ms = timing.replica_lag_time_max_ms;
        replica.fetch_backoff_ms = timing.replica_fetch_backoff_ms;
        // The fetcher answers every request it queued within two rounds (one in flight, then
        // its own), each at most a request timeout and a backoff: retransmit only after that.
        let round_ms = u64::try_from(self.peer_request_timeout().as_millis()).unwrap_or(u64::MAX);
        replica.fetch_retransmit_ms = round_ms
            .saturating_add(timing.replica_fetch_backoff_ms)
            .saturating_mul(2);
        replica.request_timeout_ms = timing.request_timeout_ms;
        replica.truncate_via_offsets_for_leader_epoch = self.bugs.no_epoch_fencing;
        PartitionSettings {
            replica,
            bugs: self.bugs,
            log: self.config.log_config(),
            io: self.io.clone(),
        }
    }

    /// Brings hosted partitions in line with `image`: opens the ones assigned here, feeds every
    /// partition its committed state, closes and deletes the ones no longer assigned.
    pub fn reconcile(&self, image: &MetadataImage) {
        let mut wanted = BTreeMap::new();
        for (name, topic) in image.topics() {
            for (index, state) in topic.partitions.iter().enumerate() {
                if state.replicas.contains(&self.broker_id) {
                    let tp =
                        TopicPartition::new(name.clone(), i32::try_from(index).expect("bounded"));
                    wanted.insert(tp, (topic.config.clone(), to_replica_state(state)));
                }
            }
        }
        let removed: Vec<(TopicPartition, Arc<Partition>)> = {
            let hosted = self.partitions_locked();
            hosted
                .iter()
                .filter(|(tp, _)| !wanted.contains_key(*tp))
                .map(|(tp, p)| (tp.clone(), p.clone()))
                .collect()
        };
        for (tp, partition) in removed {
            partition.close();
            self.partitions_locked().remove(&tp);
            if let Err(error) = remove_partition_dir(self.disk.as_ref(), &tp) {
                tracing::warn!(%tp, %error, "deleting the partition's files failed");
            }
            tracing::info!(%tp, "partition removed");
        }
        for (tp, (topic_config, state)) in wanted {
            let Some(partition) = self.open_partition(&tp, &topic_config) else {
                continue;
            };
            partition.apply_state(state);
        }
    }

    /// The hosted partition, opening it on first use.
    fn open_partition(
        &self,
        tp: &TopicPartition,
        topic: &controller::TopicConfig,
    ) -> Option<Arc<Partition>> {
        if let Some(partition) = self.partition(tp) {
            return Some(partition);
        }
        let net: Arc<dyn ReplicaNet> = Arc::new(Transport {
            shared: self.me.clone(),
        });
        let dir = partition_dir(tp);
        match Partition::open(
            tp.clone(),
            self.disk.clone(),
            &dir,
            self.settings(topic),
            net,
        ) {
            Ok(partition) => {
                self.partitions_locked()
                    .insert(tp.clone(), partition.clone());
                Some(partition)
            }
            Err(error) => {
                tracing::error!(%tp, %error, "cannot open partition; it stays offline here");
                self.metrics.count("rill_partition_open_failures_total", 1);
                // Said to the controller once per process, as a failed log is, so elections and
                // the ISR stop counting on this copy instead of it staying a silent member.
                let first = self
                    .open_failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tp.clone());
                if let (true, Some(shared)) = (first, self.me.upgrade()) {
                    let tp = tp.clone();
                    tokio::spawn(async move { shared.report_offline(tp).await });
                }
                None
            }
        }
    }

    /// The timeout of one replication request: a long-polled fetch plus slack.
    pub(super) fn peer_request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timing.replica_fetch_wait_max_ms + PEER_REQUEST_SLACK_MS)
    }

    /// Tells the controller this broker's copy of `tp` failed, until it is heard (bounded: a
    /// broker that cannot reach the controller is fenced by its session timeout anyway).
    async fn report_offline(&self, tp: TopicPartition) {
        self.metrics.count("rill_partition_failures_total", 1);
        for _attempt in 0..REPORT_OFFLINE_ATTEMPTS_MAX {
            let ask = controller::Request::ReplicaOffline {
                broker: self.broker_id,
                incarnation: self.incarnation,
                partition: tp.clone(),
            };
            match self.controller.request(ask).await {
                Ok(_) => {
                    tracing::warn!(%tp, "controller moved the failed replica out of the ISR");
                    return;
                }
                Err(crate::control::ControlError::Refused(refusal)) => {
                    // Stale incarnation (a newer process exists), unknown partition (deleted):
                    // nothing left to report.
                    tracing::info!(%tp, %refusal, "offline report refused");
                    return;
                }
                Err(error) => {
                    tracing::debug!(%tp, %error, "offline report failed; retrying");
                    tokio::time::sleep(Duration::from_millis(REPORT_OFFLINE_BACKOFF_MS)).await;
                }
            }
        }
    }

    /// A leader's ISR change, sent to the controller and answered back into the partition.
    async fn alter_partition(&self, tp: TopicPartition, request: AlterPartition) {
        let Some(partition) = self.partition(&tp) else {
            return;
        };
        // Counted here, not in the transport callback: that runs under the partition's lock.
        let isr_now = partition.status().state.map_or(0, |state| state.isr.len());
        let kind = if request.new_isr.len() < isr_now {
            "rill_isr_shrinks_total"
        } else {
            "rill_isr_expands_total"
        };
        self.metrics.count(kind, 1);
        let ask = controller::Request::AlterPartition(controller::AlterPartitionRequest {
            partition: tp.clone(),
            broker: request.leader,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            isr: request.new_isr.iter().copied().collect(),
        });
        let answer = match self.controller.request(ask).await {
            Ok(controller::Reply::PartitionAltered(state)) => Ok(to_replica_state(&state)),
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to AlterPartition");
                Err(replication::Error::InvalidUpdateVersion)
            }
            Err(error) => {
                tracing::info!(%tp, %error, "AlterPartition refused or failed");
                Err(replication::Error::InvalidUpdateVersion)
            }
        };
        partition.alter_partition_answered(answer);
    }
}

/// The replica transport partitions get: follower requests go to the fetcher of their leader;
/// ISR changes and offline reports to a task each (bounded by the partition count: a core has
/// at most one of each outstanding).
struct Transport {
    /// The node; partitions must not keep it alive.
    shared: Weak<Shared>,
}

impl ReplicaNet for Transport {
    fn send(&self, tp: &TopicPartition, to: BrokerId, message: Message) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        shared.fetchers.send(&shared, to, tp.clone(), message);
    }

    fn alter_partition(&self, tp: &TopicPartition, request: AlterPartition) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let tp = tp.clone();
        tokio::spawn(async move { shared.alter_partition(tp, request).await });
    }

    fn partition_failed(&self, tp: &TopicPartition) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let tp = tp.clone();
        tokio::spawn(async move { shared.report_offline(tp).await });
    }
}

/// Where a partition's files live, relative to the data directory (Kafka's `topic-partition`).
pub fn partition_dir(tp: &TopicPartition) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}-{}", tp.topic, tp.partition))
}

/// Deletes a removed partition's files (bounded: one directory of segments).
fn remove_partition_dir(disk: &dyn Disk, tp: &TopicPartition) -> Result<(), log_core::DiskError> {
    let dir = partition_dir(tp);
    // A log an earlier failure set aside goes with the partition.
    let aside = crate::partition::quarantine::aside_dir(&dir);
    let mut removed = false;
    for path in [dir, aside] {
        if disk.exists(&path)? {
            disk.remove_dir(&path, true)?;
            removed = true;
        }
    }
    if !removed {
        return Ok(());
    }
    disk.sync_dir(std::path::Path::new(""))
}

/// The controller's committed partition state in the replica core's terms.
pub fn to_replica_state(state: &controller::PartitionState) -> replication::PartitionState {
    replication::PartitionState {
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        isr: state.isr.iter().copied().collect(),
        elr: state.elr.iter().copied().collect(),
        replicas: state.replicas.clone(),
    }
}
