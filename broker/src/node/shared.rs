//! The state one broker shares between its connections and background tasks: the partitions it
//! hosts, the metadata image it follows, its controller client and peer connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::watch;
use controller::{ControllerError, MetadataImage};
use log_core::Disk;
use replication::{AlterPartition, BugSwitches, Config, Message};
use wire::{BrokerId, TopicPartition};

use super::config::NodeConfig;
use super::fetcher::Fetchers;
use super::metrics::Metrics;
use crate::auth::ClusterSecret;
use crate::control::{ControlError, ControllerClient};
use crate::partition::quarantine::{self, DirVerdict};
use crate::partition::{IoWorker, Partition, PartitionSettings, ReplicaNet};
use crate::runtime;

/// A replication request's timeout beyond the leader's long poll: the round trip and the leader's
/// reads, generously (a request that times out costs a reconnect and a backoff).
const PEER_REQUEST_SLACK_MS: u64 = 5_000;
/// First pause between two attempts to tell the controller about a failed or repaired copy, ms;
/// doubled after each failed attempt. Attempts go on until heard, refused or the node stops: a
/// copy the controller never hears about would be elected and serve nothing.
const REPORT_BACKOFF_MIN_MS: u64 = 500;
/// Longest pause between two report attempts, ms.
const REPORT_BACKOFF_MAX_MS: u64 = 5_000;
/// First pause before a failed partition's repair is tried, ms; doubled after each try that
/// finds the disk still failing, up to [`REPAIR_BACKOFF_MAX_MS`].
const REPAIR_BACKOFF_MIN_MS: u64 = 1_000;
/// Longest pause between two repair tries, ms.
const REPAIR_BACKOFF_MAX_MS: u64 = 30_000;

/// How one try to repair a failed partition ended.
enum Repair {
    /// Reopened and serving; `intact`: nothing flushed was lost (the log was not set aside).
    Back {
        /// Whether everything the copy had flushed is still there.
        intact: bool,
    },
    /// No longer hosted here (deleted or reassigned): nothing to repair.
    Gone,
    /// The local image shows no offline mark for this copy: not arrived yet, or cleared by an
    /// earlier repair's `ReplicaOnline` that committed after this failure's `ReplicaOffline`.
    Unmarked,
    /// Not yet (the disk still fails): why.
    NotYet(String),
}

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
    /// Partitions whose copy has a report to the controller under way (a failure's
    /// [`partition_down`] task, or a healthy copy saying it is online again), with how many:
    /// `reconcile` leaves a copy marked offline to them.
    reporting: Mutex<BTreeMap<TopicPartition, usize>>,
    /// This process's start found data lost (or a new directory) and its unclean registration
    /// is not in the metadata yet: the directory's unclean mark stays.
    start_loss_unreported: std::sync::atomic::AtomicBool,
    /// Ourselves, weakly, for the replica transport handed to partitions.
    me: Weak<Shared>,
    /// The cluster secret: followers prove it to leaders, leaders serve follower fetches only to
    /// brokers that proved it. `None`: replication is not authenticated.
    pub secret: Option<ClusterSecret>,
    /// The OAUTHBEARER token validator, when the mechanism is enabled (built at start: the
    /// JWKS is read then).
    pub oauthbearer: Option<crate::security::oauthbearer::Validator>,
    /// PLAIN logins already verified (a reconnecting client skips the key derivation).
    pub plain_logins: crate::security::sasl::PlainLogins,
}

impl Shared {
    /// Builds the shared state.
    // One argument per independent piece the node start-up made; a struct for them would only
    // be built here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: NodeConfig,
        disk: Arc<dyn Disk>,
        image: watch::Receiver<Arc<MetadataImage>>,
        controller: ControllerClient,
        bugs: BugSwitches,
        incarnation: u64,
        secret: Option<ClusterSecret>,
        oauthbearer: Option<crate::security::oauthbearer::Validator>,
        io: IoWorker,
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
            io,
            fetchers: Fetchers::default(),
            open_failures: Mutex::new(std::collections::BTreeSet::new()),
            reporting: Mutex::new(BTreeMap::new()),
            start_loss_unreported: std::sync::atomic::AtomicBool::new(true),
            me: me.clone(),
            secret,
            oauthbearer,
            plain_logins: crate::security::sasl::PlainLogins::default(),
        })
    }

    fn partitions_locked(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, Arc<Partition>>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosted partition, if any.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions_locked().get(tp).cloned()
    }

    /// The hosted partitions of `topic`, in order (a range of the map, not a pass over it).
    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        let first = TopicPartition::new(topic, 0);
        self.partitions_locked()
            .range(first..)
            .take_while(|(tp, _)| tp.topic == topic)
            .map(|(_, partition)| partition.clone())
            .collect()
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

    /// This broker's dynamic broker configs in `image` (KIP-226), by name: its own value, else
    /// the cluster default's.
    pub fn dynamic_broker_configs(&self, image: &MetadataImage) -> BTreeMap<String, String> {
        let mut configs = image.broker_configs("").cloned().unwrap_or_default();
        if let Some(own) = image.broker_configs(&self.broker_id.0.to_string()) {
            configs.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        configs
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
            log: self
                .config
                .log_config_with(topic, &self.dynamic_broker_configs(&self.image())),
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
                    let marked_offline = state.offline.contains(&self.broker_id);
                    wanted.insert(
                        tp,
                        (
                            topic.config.clone(),
                            to_replica_state(state),
                            marked_offline,
                        ),
                    );
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
        for (tp, (topic_config, state, marked_offline)) in wanted {
            let Some(partition) = self.open_partition(&tp, &topic_config) else {
                continue;
            };
            // A topic's configs may have changed since the partition opened: applied live.
            let settings = self.settings(&topic_config);
            partition.reconfigure(settings.log, settings.replica.min_insync_replicas);
            partition.apply_state(state);
            if marked_offline && partition.status().failed.is_none() {
                self.say_online_again(&tp);
            }
        }
    }

    /// A serving copy the controller has marked offline, with no report on it under way: an
    /// offline report landed after the repair's `ReplicaOnline` (an earlier try of a retried
    /// `ReplicaOffline`, delivered late: seed 38294, where the copy stayed out of the ISR for
    /// good, every AlterPartition adding it refused). Says it is online again, as not intact:
    /// leaving the ELR is always safe, and this copy cannot show what it held when it was marked.
    fn say_online_again(&self, tp: &TopicPartition) {
        let Some(shared) = self.me.upgrade() else {
            return;
        };
        if self.reporting_locked().contains_key(tp) {
            return;
        }
        let guard = ReportingGuard::new(&shared, tp);
        let tp = tp.clone();
        tokio::spawn(async move {
            let _reporting = guard;
            tracing::warn!(%tp, "the controller marks this serving copy offline: saying it is online");
            buggify::probe!("partition.online_again_after_a_late_offline_mark");
            let online = controller::Request::ReplicaOnline {
                broker: shared.broker_id,
                incarnation: shared.incarnation,
                partition: tp.clone(),
                intact: false,
            };
            let heard = shared
                .report(&tp, online, || shared.copy_failed_or_gone(&tp))
                .await;
            drop(_reporting);
            if heard {
                shared.clear_unclean_mark_once_reported(false);
            }
        });
    }

    /// Whether a loss this directory's unclean mark may stand for has not reached the
    /// controller: the start's (until its registration is in the metadata), a failed copy's
    /// (a report under way, or a failed copy not yet reporting).
    fn losses_unreported(&self) -> bool {
        self.start_loss_unreported
            .load(std::sync::atomic::Ordering::SeqCst)
            || !self.reporting_locked().is_empty()
            || {
                // Not holding the map while each partition's lock is taken.
                let hosted: Vec<Arc<Partition>> =
                    self.partitions_locked().values().cloned().collect();
                hosted.iter().any(|p| p.is_failed())
            }
    }

    /// The directory's unclean mark goes once every loss it stood for is reported
    /// ([`super::storage::clear_unclean_mark_once_reported`]); `start_reported`: this process's
    /// registration is in the metadata. Whether no mark is left.
    pub(super) fn clear_unclean_mark_once_reported(&self, start_reported: bool) -> bool {
        if start_reported {
            self.start_loss_unreported
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        match super::storage::clear_unclean_mark_once_reported(&self.disk, || {
            self.losses_unreported()
        }) {
            Ok(true) => {
                if !start_reported {
                    // The mark outlived the start: a running repair's loss, now reported.
                    buggify::probe!("node.storage.unclean_mark_cleared_after_a_copy_report");
                }
                tracing::info!("every loss of this directory is reported: the unclean mark goes");
                true
            }
            Ok(false) => !self
                .disk
                .exists(std::path::Path::new(quarantine::UNCLEAN_MARKER))
                .unwrap_or(true),
            Err(error) => {
                // Stays unclean: the next start registers unclean, which is safe.
                tracing::warn!(%error, "cannot clear the unclean mark");
                false
            }
        }
    }

    /// This broker's copy of `tp` is failed, or not hosted (a report on it is moot).
    fn copy_failed_or_gone(&self, tp: &TopicPartition) -> bool {
        self.partition(tp)
            .is_none_or(|p| p.status().failed.is_some())
    }

    fn reporting_locked(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, usize>> {
        self.reporting.lock().unwrap_or_else(|p| p.into_inner())
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
        if self.open_failed(tp) {
            return None; // Its repair task reopens it once the disk answers again.
        }
        match self.open_log(tp, topic) {
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
                    tokio::spawn(partition_down(shared, tp.clone()));
                }
                None
            }
        }
    }

    /// Opens (recovering) the log of `tp` as a new partition object, not yet hosted.
    fn open_log(
        &self,
        tp: &TopicPartition,
        topic: &controller::TopicConfig,
    ) -> Result<Arc<Partition>, log_core::LogError> {
        let net: Arc<dyn ReplicaNet> = Arc::new(Transport {
            shared: self.me.clone(),
        });
        Partition::open(
            tp.clone(),
            self.disk.clone(),
            &partition_dir(tp),
            self.settings(topic),
            net,
        )
    }

    /// Whether this process failed to open `tp` and has not repaired it since.
    fn open_failed(&self, tp: &TopicPartition) -> bool {
        self.open_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tp)
    }

    /// One try to bring this broker's failed copy of `tp` back without a restart: once the
    /// controller's offline mark is in the local image (so the state applied below makes it a
    /// follower outside the ISR, never a leader of the epoch it failed in), the disk must take
    /// and sync a probe write; then the log is checked whole as at start-up (a corrupt one set
    /// aside, `lost` remembers it across tries), reopened and hosted in place of the failed one.
    async fn try_repair(&self, tp: &TopicPartition, lost: &mut bool) -> Repair {
        let image = self.image();
        let Some((topic_config, state)) = self.assigned_here(&image, tp) else {
            return Repair::Gone;
        };
        if !state.offline.contains(&self.broker_id) {
            return Repair::Unmarked;
        }
        let settings = self.settings(topic_config);
        // What the failed copy flushed: the state checkpoint's recovery point may lag it by up
        // to checkpoint_interval_bytes, and damage there must not pass for a torn tail.
        let flushed = self
            .partition(tp)
            .map_or(wire::Offset::ZERO, |p| p.status().durable_end_offset);
        let (disk, dir, config) = (self.disk.clone(), partition_dir(tp), settings.log);
        let journal = self.io.journal_clock();
        let checked = crate::partition::run_blocking(move || {
            quarantine::probe_writable(disk.as_ref(), &dir).map_err(|e| e.to_string())?;
            if journal.is_some() {
                // What the journal made durable and the failed copy acknowledged goes back
                // first: a failed segment sync may have dropped it (seed 203425).
                let replayed = log_core::wal::replay_dir(
                    disk.as_ref(),
                    std::path::Path::new(crate::node::storage::JOURNAL_DIR),
                    &dir,
                )
                .map_err(|e| e.to_string())?;
                if replayed.replayed > 0 {
                    buggify::probe!("partition.repair.journal_replayed");
                    tracing::info!(dir = %dir.display(), ?replayed, "the journal's records written back before the repair");
                }
            }
            quarantine::check_dir(&disk, &dir, &config, true, flushed, journal)
                .map_err(|e| e.to_string())
        })
        .await;
        match checked {
            Ok(DirVerdict::Sound) => {}
            Ok(DirVerdict::SetAside(aside)) => {
                buggify::probe!("partition.repair_set_log_aside");
                tracing::warn!(%tp, aside = %aside.display(), "repair set the corrupt log aside");
                *lost = true;
            }
            Ok(DirVerdict::SetAsideFailed(why)) => {
                // Part of the log may already be aside: what the next try finds (an emptied
                // directory verifies sound) is not what this copy flushed (seed 255251).
                buggify::probe!("partition.repair_set_aside_failed");
                *lost = true;
                return Repair::NotYet(why);
            }
            Ok(DirVerdict::Unopenable(why)) | Err(why) => return Repair::NotYet(why),
        }
        // Read after the replay above: records the journal released before it are lost to
        // this copy, and the journal says so before it releases them (seed 275316).
        if self.partition(tp).is_some_and(|p| p.journal_records_lost()) {
            *lost = true;
        }
        let partition = match self.open_log(tp, topic_config) {
            Ok(partition) => partition,
            Err(error) => return Repair::NotYet(error.to_string()),
        };
        if self.assigned_here(&self.image(), tp).is_none() {
            // Deleted or reassigned during the check: the next reconcile removes the files.
            partition.close();
            return Repair::Gone;
        }
        let replaced = self
            .partitions_locked()
            .insert(tp.clone(), partition.clone());
        if let Some(old) = replaced {
            old.close();
        }
        self.open_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tp);
        partition.apply_state(to_replica_state(state));
        buggify::probe!("partition.repaired_in_place");
        Repair::Back { intact: !*lost }
    }

    /// `tp`'s topic config and committed state in `image`, if this broker holds a replica of it.
    fn assigned_here<'a>(
        &self,
        image: &'a MetadataImage,
        tp: &TopicPartition,
    ) -> Option<(&'a controller::TopicConfig, &'a controller::PartitionState)> {
        let topic = image.topics().get(&tp.topic)?;
        let state = image
            .partition(tp)
            .filter(|state| state.replicas.contains(&self.broker_id))?;
        Some((&topic.config, state))
    }

    /// The timeout of one replication request: a long-polled fetch plus slack.
    pub(super) fn peer_request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timing.replica_fetch_wait_max_ms + PEER_REQUEST_SLACK_MS)
    }

    /// Tells the controller about this broker's copy of `tp` until it is heard (true) or moot
    /// (false: a newer process of this broker exists, the partition is gone, or `superseded()`
    /// before a retry); any other refusal is retried.
    async fn report(
        &self,
        tp: &TopicPartition,
        ask: controller::Request,
        superseded: impl Fn() -> bool,
    ) -> bool {
        let mut backoff = REPORT_BACKOFF_MIN_MS;
        let mut retry = false;
        loop {
            if retry && superseded() {
                tracing::info!(%tp, "report on a copy superseded by a newer failure; dropped");
                return false;
            }
            retry = true;
            match self.controller.request(ask.clone()).await {
                Ok(_) => return true,
                Err(crate::control::ControlError::Refused(
                    refusal @ (controller::ControllerError::StaleBrokerIncarnation(_)
                    | controller::ControllerError::UnknownTopicOrPartition(_)),
                )) => {
                    tracing::info!(%tp, %refusal, "report on a failed copy moot");
                    return false;
                }
                Err(crate::control::ControlError::Refused(refusal)) => {
                    // The partition changed between the proposal and its commit (the simulator
                    // found a failed leader kept for good when this ended the reporting): the
                    // controller decides again from its newer image.
                    tracing::info!(%tp, %refusal, "report on a failed copy refused; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    backoff = (backoff * 2).min(REPORT_BACKOFF_MAX_MS);
                }
                Err(error) => {
                    tracing::debug!(%tp, %error, "report on a failed copy not heard; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    backoff = (backoff * 2).min(REPORT_BACKOFF_MAX_MS);
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
                Err(replication::Error::AlterPartitionOutcomeUnknown)
            }
            Err(error) => {
                tracing::info!(%tp, %error, "AlterPartition refused or failed");
                // Only a refusal before the proposal proves it was not applied; the pending
                // change (the HW's maximal ISR) stays otherwise (`handle_alter_partition_response`).
                Err(match error {
                    ControlError::Refused(ControllerError::IneligibleReplica { .. }) => {
                        replication::Error::IneligibleReplica
                    }
                    ControlError::Refused(
                        ControllerError::InvalidUpdateVersion { .. }
                        | ControllerError::FencedLeaderEpoch { .. }
                        | ControllerError::UnknownTopicOrPartition(_),
                    ) => replication::Error::InvalidUpdateVersion,
                    _ => replication::Error::AlterPartitionOutcomeUnknown,
                })
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
        tokio::spawn(partition_down(shared, tp.clone()));
    }
}

/// A failed copy's way back, one task per failure: the controller hears that it failed (it leaves
/// the ISR, another replica leads), then the partition is repaired in place once the disk answers
/// again (a full disk with space back, a passing I/O error), and the controller hears that it is
/// back. Ends with the node (the task holds it weakly while it waits), or when the partition is
/// no longer hosted here.
async fn partition_down(shared: Arc<Shared>, tp: TopicPartition) {
    let reporting = ReportingGuard::new(&shared, &tp);
    shared.metrics.count("rill_partition_failures_total", 1);
    let offline = controller::Request::ReplicaOffline {
        broker: shared.broker_id,
        incarnation: shared.incarnation,
        partition: tp.clone(),
    };
    if !shared.report(&tp, offline.clone(), || false).await {
        return;
    }
    tracing::warn!(%tp, "controller moved the failed replica out of the ISR");
    let node = Arc::downgrade(&shared);
    drop(shared);
    let mut backoff = REPAIR_BACKOFF_MIN_MS;
    let mut lost = false;
    loop {
        let pause = runtime::jitter_ms(backoff / 2, backoff);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let Some(shared) = node.upgrade() else {
            return;
        };
        match shared.try_repair(&tp, &mut lost).await {
            Repair::Back { intact } => {
                tracing::warn!(%tp, intact, "failed partition repaired; serving again");
                shared.metrics.count("rill_partition_repairs_total", 1);
                let online = controller::Request::ReplicaOnline {
                    broker: shared.broker_id,
                    incarnation: shared.incarnation,
                    partition: tp.clone(),
                    intact,
                };
                // Once the copy failed again, a newer task reports it offline: this report,
                // if still being retried, must not clear that task's mark (seed 541). Not
                // watertight (a try in flight may still land late), hence `Repair::Unmarked`.
                let heard = shared
                    .report(&tp, online, || shared.copy_failed_or_gone(&tp))
                    .await;
                drop(reporting);
                if heard {
                    // The controller knows this copy's loss now (it left the ELR), or that
                    // it lost nothing: the mark may have waited for this report only.
                    shared.clear_unclean_mark_once_reported(false);
                }
                return;
            }
            Repair::Gone => return,
            Repair::Unmarked => {
                // An offline report on a marked copy is answered at once, unchanged: if an
                // earlier repair's ReplicaOnline (refused, retried) committed after it, the mark
                // is gone while this copy is still failed, and it would wait for good. Say it
                // again (a no-op while the mark is merely in flight to our image).
                tracing::info!(%tp, backoff, "failed copy not marked offline; reporting it again");
                if !shared.report(&tp, offline.clone(), || false).await {
                    return;
                }
            }
            Repair::NotYet(why) => {
                tracing::info!(%tp, %why, backoff, "failed partition not repaired yet");
            }
        }
        backoff = (backoff * 2).min(REPAIR_BACKOFF_MAX_MS);
    }
}

/// Counts a task reporting on a copy in [`Shared`]'s `reporting` while it lives, however it ends.
struct ReportingGuard {
    /// The node, weakly: a waiting task must not keep it alive.
    node: Weak<Shared>,
    /// The partition reported on.
    tp: TopicPartition,
}

impl ReportingGuard {
    fn new(shared: &Arc<Shared>, tp: &TopicPartition) -> ReportingGuard {
        *shared.reporting_locked().entry(tp.clone()).or_default() += 1;
        ReportingGuard {
            node: Arc::downgrade(shared),
            tp: tp.clone(),
        }
    }
}

impl Drop for ReportingGuard {
    fn drop(&mut self) {
        let Some(shared) = self.node.upgrade() else {
            return;
        };
        let mut reporting = shared.reporting_locked();
        if let Some(count) = reporting.get_mut(&self.tp) {
            *count -= 1;
            if *count == 0 {
                reporting.remove(&self.tp);
            }
        }
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
