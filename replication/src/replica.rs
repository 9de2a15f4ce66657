//! The `Replica` struct: one partition on one broker, its view of the log, its role, and the
//! handlers shared by both roles (partition state, flush completion, timers, invariants).

use std::collections::{BTreeMap, BTreeSet};
use wire::{BrokerId, LeaderEpoch, Offset};

use crate::epoch_cache::EpochCache;
use crate::isr::FollowerProgress;
use crate::{BugSwitches, Config, Effect, Error, Input, PartitionState, TimerKind};

/// What the driver recovered from log-core when (re)starting a replica: everything durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecoveredLog {
    /// First offset still in the log.
    pub log_start_offset: Offset,
    /// LEO after recovery: only durable records survive a restart.
    pub log_end_offset: Offset,
    /// The leader-epoch cache rebuilt from the recovered batches, in epoch order.
    pub epochs: Vec<(LeaderEpoch, Offset)>,
    /// The last checkpointed HW (may lag; clamped to the LEO).
    pub high_watermark: Offset,
}

/// An acks=all produce waiting for the HW to pass its records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct WaitingProduce {
    /// Echoed in the reply.
    pub(crate) request_id: u64,
    /// The answer on success.
    pub(crate) base_offset: Offset,
    /// The HW that completes the request.
    pub(crate) end_offset: Offset,
    /// When the request fails with `RequestTimedOut`.
    pub(crate) deadline_ms: u64,
}

/// Leader-only state, dropped on losing leadership.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LeaderState {
    /// Our LEO when we became leader: a follower must reach it to rejoin the ISR.
    pub(crate) epoch_start: Offset,
    /// What each follower reported in this epoch.
    pub(crate) followers: BTreeMap<BrokerId, FollowerProgress>,
    /// The ISR of our in-flight AlterPartition; blocks another (Kafka semantics).
    pub(crate) pending_isr: Option<BTreeSet<BrokerId>>,
    /// That AlterPartition, kept to send again while its outcome is unknown.
    pub(crate) pending_proposal: Option<crate::AlterPartition>,
    /// Its answer said the outcome is unknown: sent again at the next ISR check.
    pub(crate) pending_resend: bool,
    /// acks=all produces in offset order.
    pub(crate) waiting: Vec<WaitingProduce>,
}

/// Where a follower is in its catch-up loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FollowerPhase {
    /// Waiting for an OffsetsForLeaderEpoch answer before fetching (KIP-101 path).
    Truncating,
    /// Fetching records.
    Fetching,
}

/// Follower-only state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FollowerState {
    /// Whom we fetch from; none while the partition has no leader.
    pub(crate) leader: Option<BrokerId>,
    /// Catch-up phase.
    pub(crate) phase: FollowerPhase,
    /// A request is out: do not send another until it is answered or the timer fires.
    pub(crate) inflight: bool,
}

/// The replica's role, decided only by partition state from the controller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// No partition state yet, or not a replica of the partition any more.
    Offline,
    /// Leader of `partition.leader_epoch`.
    Leader(LeaderState),
    /// Follower in `partition.leader_epoch`.
    Follower(FollowerState),
}

/// One partition replica: a sans-IO state machine. See the crate docs for the runbook.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    /// Limits and timeouts.
    pub(crate) config: Config,
    /// Historic bugs to reintroduce (tests and simulator only).
    pub(crate) bugs: BugSwitches,
    /// First offset in the log.
    pub(crate) log_start_offset: Offset,
    /// Offset after the last appended record, volatile or not.
    pub(crate) log_end_offset: Offset,
    /// Offset below which every record is flushed.
    pub(crate) durable_end_offset: Offset,
    /// Offset below which every record is committed, as far as we know.
    pub(crate) high_watermark: Offset,
    /// Epoch → start offset of our log.
    pub(crate) epochs: EpochCache,
    /// The latest partition state the controller gave us.
    pub(crate) partition: Option<PartitionState>,
    /// Leader, follower or offline.
    pub(crate) role: Role,
    /// The `seq` of the next flush.
    pub(crate) flush_seq_next: u64,
    /// Completions of flushes older than this predate a truncation and are ignored.
    pub(crate) flush_seq_valid_from: u64,
}

impl Replica {
    /// A replica with an empty log.
    pub fn new(config: Config, bugs: BugSwitches) -> Replica {
        let empty = RecoveredLog {
            log_start_offset: Offset::ZERO,
            log_end_offset: Offset::ZERO,
            epochs: Vec::new(),
            high_watermark: Offset::ZERO,
        };
        Replica::recover(config, bugs, &empty)
    }

    /// A replica restarting on a recovered log. It is offline until partition state arrives.
    pub fn recover(config: Config, bugs: BugSwitches, log: &RecoveredLog) -> Replica {
        assert!(
            config.min_insync_replicas >= 1,
            "min.insync.replicas is at least 1"
        );
        assert!(config.fetch_records_max >= 1 && config.produce_waiting_max >= 1);
        assert!(
            log.log_start_offset <= log.log_end_offset,
            "log start past its end"
        );
        let replica = Replica {
            config,
            bugs,
            log_start_offset: log.log_start_offset,
            log_end_offset: log.log_end_offset,
            durable_end_offset: log.log_end_offset,
            high_watermark: log
                .high_watermark
                .clamp(log.log_start_offset, log.log_end_offset),
            epochs: EpochCache::from_entries(&log.epochs),
            partition: None,
            role: Role::Offline,
            flush_seq_next: 0,
            flush_seq_valid_from: 0,
        };
        replica.check_invariants();
        replica
    }

    /// Feeds one input; returns the effects to carry out, in order.
    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        match input {
            Input::Produce(request) => self.handle_produce(now_ms, request),
            Input::Message { from, message } => self.handle_message(now_ms, from, message),
            Input::PartitionState(state) => self.handle_partition_state(now_ms, state),
            Input::AlterPartitionResponse(result) => {
                self.handle_alter_partition_response(now_ms, result)
            }
            Input::FlushCompleted { seq, up_to } => self.handle_flush_completed(now_ms, seq, up_to),
            Input::Timer(timer) => self.handle_timer(now_ms, timer),
            Input::LogStartAdvanced(offset) => self.handle_log_start_advanced(offset),
        }
    }

    /// Routes a message from another replica to its handler.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: BrokerId,
        message: crate::Message,
    ) -> Vec<Effect> {
        use crate::Message;
        match message {
            Message::Fetch(request) => {
                assert_eq!(request.replica_id, from, "a fetch names its sender");
                self.handle_fetch(now_ms, request)
            }
            Message::FetchResponse(response) => self.handle_fetch_response(now_ms, from, response),
            Message::OffsetsForLeaderEpoch(request) => {
                assert_eq!(request.replica_id, from, "a request names its sender");
                self.handle_offsets_for_leader_epoch(request)
            }
            Message::OffsetsForLeaderEpochResponse(response) => {
                self.handle_offsets_for_leader_epoch_response(now_ms, from, response)
            }
        }
    }

    /// New partition state from the controller: the only way roles change. Stale states (older
    /// leader epoch, or same leader epoch and no newer partition epoch) are ignored.
    pub fn handle_partition_state(&mut self, now_ms: u64, state: PartitionState) -> Vec<Effect> {
        let mut effects = Vec::new();
        let me = self.config.broker_id;
        if let Some(current) = &self.partition {
            let stale = state.leader_epoch < current.leader_epoch
                || (state.leader_epoch == current.leader_epoch
                    && state.partition_epoch <= current.partition_epoch);
            if stale {
                return effects;
            }
            assert!(
                state.partition_epoch > current.partition_epoch,
                "partition epoch grows"
            );
        }
        let new_epoch = is_new_leader_epoch(self.partition.as_ref(), &state);
        assert!(leader_is_replica(&state), "leader outside the replicas");
        self.partition = Some(state.clone());
        if !state.replicas.contains(&me) {
            self.become_offline(&mut effects);
        } else if state.leader == Some(me) {
            if new_epoch || !self.is_leader() {
                self.become_leader(now_ms, &mut effects);
            } else {
                self.leader_isr_committed(now_ms, &mut effects);
            }
        } else if new_epoch || !self.is_follower() {
            self.become_follower(now_ms, &mut effects);
        } else {
            assert!(
                !self.is_leader(),
                "one leader per epoch: we lead epoch {}",
                state.leader_epoch
            );
        }
        self.check_invariants();
        effects
    }

    /// A flush finished: everything below `up_to` is durable, unless a truncation came since.
    pub fn handle_flush_completed(&mut self, now_ms: u64, seq: u64, up_to: Offset) -> Vec<Effect> {
        let mut effects = Vec::new();
        assert!(
            seq < self.flush_seq_next,
            "completion of a flush never asked for"
        );
        if seq < self.flush_seq_valid_from {
            return effects;
        }
        let durable = up_to.min(self.log_end_offset);
        if durable > self.durable_end_offset {
            self.durable_end_offset = durable;
            if self.is_leader() {
                self.leader_advance_high_watermark(&mut effects);
            } else {
                self.follower_maybe_send(now_ms, &mut effects);
            }
        }
        assert!(self.durable_end_offset <= self.log_end_offset);
        self.check_invariants();
        effects
    }

    /// A timer fired.
    pub fn handle_timer(&mut self, now_ms: u64, timer: TimerKind) -> Vec<Effect> {
        let mut effects = Vec::new();
        match timer {
            TimerKind::FetchBackoff => self.follower_on_backoff(now_ms, &mut effects),
            TimerKind::IsrCheck => self.leader_on_isr_check(now_ms, &mut effects),
            TimerKind::ProduceDeadline => self.leader_on_produce_deadline(now_ms, &mut effects),
        }
        self.check_invariants();
        effects
    }

    /// The log's start moved up to `offset` (retention, DeleteRecords, a follower following its
    /// leader): records below it are gone, so fetches and reads below it are out of range and the
    /// epoch cache forgets the epochs wholly below it (Kafka's `maybeIncrementLogStartOffset` + `truncateFromStart`).
    /// Nothing to send: a follower below the new start learns it from its next fetch. A start at
    /// or below ours changes nothing (the driver may report the same start twice).
    pub fn handle_log_start_advanced(&mut self, offset: Offset) -> Vec<Effect> {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} past the HW {}: only committed records are deleted",
            self.high_watermark
        );
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.epochs.truncate_from_start(offset);
        }
        assert!(self.log_start_offset >= offset);
        self.check_invariants();
        Vec::new()
    }

    /// The controller answered our AlterPartition. Success carries the new state. The pending
    /// change (the maximal ISR the HW respects) is dropped only when the answer proves it was
    /// not applied (Kafka's `handleAlterPartitionError`): an ineligible member, refused at the
    /// partition epoch it named. A stale epoch or a fenced leader epoch means the metadata moved
    /// on — perhaps by this very change, whose first answer was lost — so the change stays
    /// pending until the newer partition state arrives. An unknown outcome stays pending too.
    /// Both go again, the same proposal, at the next ISR check (applied already, it is refused
    /// as stale; the epochs it names keep it from applying to a newer state): a stale refusal
    /// may come from a deposed controller that answered from its old image after a freeze,
    /// and then no newer state ever comes, and the pending change blocked every later ISR
    /// change for good (cluster simulation seed 284071: an ISR of one below min ISR 2).
    /// Dropping the change on any error let the HW pass a follower the controller had just put
    /// in the ISR, which could then be elected without acknowledged records (cluster
    /// simulation seed 154: an expansion answered with an error after it committed).
    pub fn handle_alter_partition_response(
        &mut self,
        now_ms: u64,
        result: Result<PartitionState, Error>,
    ) -> Vec<Effect> {
        match result {
            Ok(state) => self.handle_partition_state(now_ms, state),
            Err(error) => {
                if let Role::Leader(leader) = &mut self.role {
                    match error {
                        Error::IneligibleReplica => {
                            leader.pending_isr = None;
                            leader.pending_proposal = None;
                            leader.pending_resend = false;
                        }
                        Error::AlterPartitionOutcomeUnknown | Error::InvalidUpdateVersion => {
                            leader.pending_resend = leader.pending_isr.is_some();
                        }
                        _ => leader.pending_resend = false,
                    }
                }
                self.check_invariants();
                Vec::new()
            }
        }
    }

    fn become_offline(&mut self, effects: &mut Vec<Effect>) {
        self.fail_waiting(effects);
        self.role = Role::Offline;
        effects.push(Effect::CancelTimer(TimerKind::FetchBackoff));
        effects.push(Effect::CancelTimer(TimerKind::IsrCheck));
        effects.push(Effect::CancelTimer(TimerKind::ProduceDeadline));
    }

    /// Answers every waiting acks=all produce with NOT_LEADER_OR_FOLLOWER: we lost leadership.
    pub(crate) fn fail_waiting(&mut self, effects: &mut Vec<Effect>) {
        if let Role::Leader(leader) = &mut self.role {
            for waiting in leader.waiting.drain(..) {
                let result = Err(Error::NotLeaderOrFollower);
                effects.push(Effect::Reply {
                    request_id: waiting.request_id,
                    result,
                });
            }
        }
    }

    /// Removes every record at and after `offset` (followers only; leaders never truncate).
    pub(crate) fn truncate_to(&mut self, offset: Offset, effects: &mut Vec<Effect>) {
        assert!(!self.is_leader(), "a leader never truncates");
        assert!(
            offset >= self.log_start_offset,
            "truncation below the log start"
        );
        if offset >= self.log_end_offset {
            // Nothing to cut, but an epoch this replica started as leader and never wrote in
            // starts at the LEO and must go, or every fetch names it and the leader answers
            // "diverging" forever (Kafka's truncateTo does the same since KAFKA-9105).
            let end = self.log_end_offset;
            if self.epochs.truncate_from_end(end) {
                effects.push(Effect::TruncateTo(end));
            }
            return;
        }
        effects.push(Effect::TruncateTo(offset));
        self.log_end_offset = offset;
        self.durable_end_offset = self.durable_end_offset.min(offset);
        self.high_watermark = self.high_watermark.min(offset);
        self.epochs.truncate_from_end(offset);
        self.flush_seq_valid_from = self.flush_seq_next;
        assert!(self.log_end_offset == offset && self.durable_end_offset <= offset);
    }

    /// Deletes the whole log and starts it empty at `offset` (followers only): our LEO is below
    /// the leader's log start, so nothing we hold can be continued (Kafka's
    /// `truncateFullyAndStartAt`); or our log is empty and the leader's first batch starts
    /// below it (its log start lies inside that batch). Every flush asked before is stale.
    pub(crate) fn truncate_fully_and_start_at(
        &mut self,
        offset: Offset,
        effects: &mut Vec<Effect>,
    ) {
        assert!(!self.is_leader(), "a leader never truncates");
        assert!(
            offset > self.log_end_offset || self.log_start_offset == self.log_end_offset,
            "full truncation only when the log ends below {offset}, or is empty"
        );
        effects.push(Effect::TruncateFullyAndStartAt(offset));
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.durable_end_offset = offset;
        self.high_watermark = offset;
        self.epochs = EpochCache::default();
        self.flush_seq_valid_from = self.flush_seq_next;
        assert!(self.epochs.latest_epoch() == LeaderEpoch::NONE);
    }

    /// Asks the driver to flush everything appended so far.
    pub(crate) fn flush(&mut self, effects: &mut Vec<Effect>) {
        let seq = self.flush_seq_next;
        self.flush_seq_next += 1;
        effects.push(Effect::Flush {
            up_to: self.log_end_offset,
            seq,
        });
    }

    /// The current leader epoch, NONE before any partition state.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.partition
            .as_ref()
            .map_or(LeaderEpoch::NONE, |p| p.leader_epoch)
    }

    /// The `min.insync.replicas` in force.
    pub fn min_insync_replicas(&self) -> usize {
        self.config.min_insync_replicas
    }

    /// The topic's `min.insync.replicas` changed: acks=all produces and the HW use the new
    /// value from the next input on (a lowered one lets the HW move at the next fetch).
    pub fn set_min_insync_replicas(&mut self, min_insync_replicas: usize) {
        assert!(min_insync_replicas >= 1, "min ISR is at least 1");
        self.config.min_insync_replicas = min_insync_replicas;
        assert_eq!(self.config.min_insync_replicas, min_insync_replicas);
    }

    /// The latest partition state, if any.
    pub fn partition_state(&self) -> Option<&PartitionState> {
        self.partition.as_ref()
    }

    /// Whether we lead the current epoch.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Whether we follow in the current epoch.
    pub fn is_follower(&self) -> bool {
        matches!(self.role, Role::Follower(_))
    }

    /// Offset after the last appended record (volatile included).
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// Offset below which everything is flushed.
    pub fn durable_end_offset(&self) -> Offset {
        self.durable_end_offset
    }

    /// Offset below which records are committed, as far as this replica knows.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// The leader-epoch cache.
    pub fn epochs(&self) -> &EpochCache {
        &self.epochs
    }

    /// The ISR the leader waits for (committed plus pending expansion); empty on followers.
    pub fn maximal_isr(&self) -> BTreeSet<BrokerId> {
        match (&self.role, &self.partition) {
            (Role::Leader(leader), Some(p)) => {
                crate::isr::maximal_isr(&p.isr, leader.pending_isr.as_ref())
            }
            _ => BTreeSet::new(),
        }
    }

    /// Whether an AlterPartition of ours is in flight.
    pub fn alter_partition_pending(&self) -> bool {
        matches!(&self.role, Role::Leader(l) if l.pending_isr.is_some())
    }

    /// Number of acks=all produces waiting for the HW.
    pub fn produce_waiting_count(&self) -> usize {
        match &self.role {
            Role::Leader(leader) => leader.waiting.len(),
            _ => 0,
        }
    }

    /// What the leader knows of `follower`; `None` on followers or for unknown replicas.
    pub fn follower_progress(&self, follower: BrokerId) -> Option<FollowerProgress> {
        match &self.role {
            Role::Leader(leader) => leader.followers.get(&follower).copied(),
            _ => None,
        }
    }

    /// A consumer fetch (also on followers, KIP-392): the range it may read, never past the HW.
    pub fn consumer_read_range(
        &self,
        current_leader_epoch: Option<LeaderEpoch>,
        fetch_offset: Offset,
        records_max: i64,
    ) -> Result<crate::ReadRange, Error> {
        assert!(records_max >= 1, "a fetch asks for at least one record");
        if matches!(self.role, Role::Offline) {
            return Err(Error::NotLeaderOrFollower);
        }
        if let Some(epoch) = current_leader_epoch {
            self.check_epoch(epoch)?;
        }
        // Kafka refuses only offsets outside the log; between the HW and the LEO the answer is
        // empty. A new leader's HW lags the old one's, so refusing there sent consumers back to
        // the earliest offset (the cluster simulation found it as nonmonotonic-poll).
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return Err(self.offset_out_of_range());
        }
        let to = self
            .high_watermark
            .min(fetch_offset.add(records_max))
            .max(fetch_offset);
        assert!(to >= fetch_offset && (to <= self.high_watermark || to == fetch_offset));
        Ok(crate::ReadRange {
            from: fetch_offset,
            to,
        })
    }

    /// The refusal of an offset outside `[log start, LEO]`, naming both ends.
    pub(crate) fn offset_out_of_range(&self) -> Error {
        Error::OffsetOutOfRange {
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        }
    }

    /// KIP-320 fencing of a request that names `epoch` as the current leader epoch.
    pub(crate) fn check_epoch(&self, epoch: LeaderEpoch) -> Result<(), Error> {
        let ours = self.leader_epoch();
        if self.bugs.no_epoch_fencing || epoch == ours {
            Ok(())
        } else if epoch < ours {
            Err(Error::FencedLeaderEpoch)
        } else {
            Err(Error::UnknownLeaderEpoch)
        }
    }

    /// Asserts internal consistency; drivers call it after every step in tests and simulation.
    pub fn check_invariants(&self) {
        assert!(
            self.log_start_offset <= self.high_watermark,
            "HW below log start"
        );
        assert!(self.high_watermark <= self.log_end_offset, "HW past LEO");
        assert!(
            self.durable_end_offset <= self.log_end_offset,
            "durable past LEO"
        );
        assert!(self.flush_seq_valid_from <= self.flush_seq_next);
        self.epochs.check_invariants(self.log_end_offset);
        assert!(
            self.epochs
                .first_start()
                .is_none_or(|start| start >= self.log_start_offset),
            "an epoch starts below the log start"
        );
        match &self.role {
            Role::Offline => {}
            Role::Leader(leader) => self.check_leader_invariants(leader),
            Role::Follower(follower) => {
                let p = self
                    .partition
                    .as_ref()
                    .expect("a follower has partition state");
                assert_eq!(
                    follower.leader, p.leader,
                    "following the controller's leader"
                );
                assert!(p.leader != Some(self.config.broker_id));
            }
        }
    }

    fn check_leader_invariants(&self, leader: &LeaderState) {
        let p = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        assert_eq!(
            p.leader,
            Some(self.config.broker_id),
            "leading without the controller"
        );
        assert!(
            self.epochs.latest_epoch() == p.leader_epoch,
            "leader epoch not in the cache"
        );
        assert!(leader.epoch_start <= self.log_end_offset);
        assert!(leader.waiting.len() <= self.config.produce_waiting_max);
        assert!(leader.followers.len() < crate::isr::REPLICAS_MAX);
        for progress in leader.followers.values() {
            if let Some(offset) = progress.log_end_offset {
                assert!(
                    offset <= self.log_end_offset,
                    "follower ahead of its leader"
                );
            }
        }
        let mut previous = Offset::ZERO;
        for waiting in &leader.waiting {
            assert!(
                waiting.end_offset > self.high_watermark,
                "committed but still waiting"
            );
            assert!(waiting.end_offset <= self.log_end_offset && waiting.end_offset > previous);
            previous = waiting.end_offset;
        }
    }
}

/// Whether `state` starts a leader epoch newer than the one we know.
fn is_new_leader_epoch(current: Option<&PartitionState>, state: &PartitionState) -> bool {
    match current {
        None => true,
        Some(p) => p.leader_epoch < state.leader_epoch,
    }
}

/// Whether the named leader (if any) is one of the replicas.
fn leader_is_replica(state: &PartitionState) -> bool {
    match state.leader {
        None => true,
        Some(b) => state.replicas.contains(&b),
    }
}
