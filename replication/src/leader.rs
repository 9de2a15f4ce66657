//! Leader handlers: produce, follower fetch, OffsetsForLeaderEpoch, the HW, ISR changes.

use bytes::Bytes;
use std::collections::BTreeMap;
use wire::{BrokerId, Offset};

use crate::isr::{self, FollowerProgress};
use crate::replica::{LeaderState, Role, WaitingProduce};
use crate::{
    Acks, AlterPartition, Batch, Effect, Error, FetchData, FetchRequest, FetchResponse, Message,
    OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse, ProduceRequest, ReadRange,
    Replica, TimerKind,
};

impl Replica {
    /// A client produce. Leaders append (volatile) and flush; acks=0 gets no reply, acks=1 a
    /// reply now, acks=all a reply once the HW passes the records.
    pub fn handle_produce(&mut self, now_ms: u64, request: ProduceRequest) -> Vec<Effect> {
        assert!(request.record_count >= 1, "a produce carries records");
        let mut effects = Vec::new();
        let reply = |effects: &mut Vec<Effect>, result| {
            if request.acks != Acks::None {
                effects.push(Effect::Reply {
                    request_id: request.request_id,
                    result,
                });
            }
        };
        let Role::Leader(leader) = &self.role else {
            reply(&mut effects, Err(Error::NotLeaderOrFollower));
            return effects;
        };
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        if request.acks == Acks::All {
            if partition.isr.len()
                < isr::min_insync_replicas_effective(
                    self.config.min_insync_replicas,
                    partition.replicas.len(),
                )
            {
                reply(&mut effects, Err(Error::NotEnoughReplicas));
                return effects;
            }
            if leader.waiting.len() >= self.config.produce_waiting_max {
                reply(&mut effects, Err(Error::RequestTimedOut));
                return effects;
            }
        }
        let batch = Batch {
            base_offset: self.log_end_offset,
            leader_epoch: partition.leader_epoch,
            record_count: request.record_count,
            payload: Bytes::from(request.payload),
        };
        let base_offset = batch.base_offset;
        let end_offset = batch.end_offset();
        self.epochs.assign(batch.leader_epoch, base_offset);
        self.log_end_offset = end_offset;
        effects.push(Effect::Append(batch));
        self.flush(&mut effects);
        match request.acks {
            Acks::None => {}
            Acks::Leader => reply(&mut effects, Ok(base_offset)),
            Acks::All => self.leader_wait(now_ms, request.request_id, base_offset, &mut effects),
        }
        self.check_invariants();
        effects
    }

    fn leader_wait(
        &mut self,
        now_ms: u64,
        request_id: u64,
        base_offset: Offset,
        effects: &mut Vec<Effect>,
    ) {
        let timeout_ms = self.config.request_timeout_ms;
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("checked by the caller");
        };
        if leader.waiting.is_empty() {
            let (delay_ms_min, delay_ms_max) = (timeout_ms, timeout_ms);
            let timer = TimerKind::ProduceDeadline;
            effects.push(Effect::SetTimer {
                timer,
                delay_ms_min,
                delay_ms_max,
            });
        }
        let end_offset = self.log_end_offset;
        let deadline_ms = now_ms.saturating_add(timeout_ms);
        leader.waiting.push(WaitingProduce {
            request_id,
            base_offset,
            end_offset,
            deadline_ms,
        });
    }

    /// A follower's fetch. Fenced by epoch, checked for divergence (Fetch v12+), then counted:
    /// the fetch offset is the follower's flushed LEO, which may advance the HW and the ISR.
    pub fn handle_fetch(&mut self, now_ms: u64, request: FetchRequest) -> Vec<Effect> {
        let mut effects = Vec::new();
        let respond = |effects: &mut Vec<Effect>, leader_id, result| {
            let response = FetchResponse {
                leader_id,
                leader_epoch: request.current_leader_epoch,
                fetch_offset: request.fetch_offset,
                last_fetched_epoch: request.last_fetched_epoch,
                result,
            };
            let message = Message::FetchResponse(response);
            effects.push(Effect::Send {
                to: request.replica_id,
                message,
            });
        };
        let me = self.config.broker_id;
        if let Err(error) =
            self.leader_check_request(request.replica_id, request.current_leader_epoch)
        {
            respond(&mut effects, me, Err(error));
            return effects;
        }
        if let Some(diverging) = self.leader_divergence(&request) {
            let data = FetchData {
                high_watermark: self.high_watermark,
                diverging_epoch: Some(diverging),
                batches: Vec::new(),
            };
            respond(&mut effects, me, Ok(data));
            return effects;
        }
        if request.fetch_offset > self.log_end_offset
            || request.fetch_offset < self.log_start_offset
        {
            // Below our log start the records are gone (retention): the answer names the start,
            // where the follower starts over. Never counted: a follower there is not caught up.
            respond(&mut effects, me, Err(self.offset_out_of_range()));
            return effects;
        }
        self.leader_count_fetch(
            now_ms,
            request.replica_id,
            request.fetch_offset,
            &mut effects,
        );
        let to = self
            .log_end_offset
            .min(request.fetch_offset.add(self.config.fetch_records_max));
        let read = ReadRange {
            from: request.fetch_offset,
            to,
        };
        let data = FetchData {
            high_watermark: self.high_watermark,
            diverging_epoch: None,
            batches: Vec::new(),
        };
        let response = FetchResponse {
            leader_id: me,
            leader_epoch: request.current_leader_epoch,
            fetch_offset: request.fetch_offset,
            last_fetched_epoch: request.last_fetched_epoch,
            result: Ok(data),
        };
        effects.push(Effect::SendFetchResponse {
            to: request.replica_id,
            response,
            read,
        });
        self.check_invariants();
        effects
    }

    /// Checks that we lead, the sender is a replica, and the epoch matches (KIP-320).
    fn leader_check_request(
        &self,
        replica_id: BrokerId,
        epoch: wire::LeaderEpoch,
    ) -> Result<(), Error> {
        let (Role::Leader(_), Some(partition)) = (&self.role, &self.partition) else {
            return Err(Error::NotLeaderOrFollower);
        };
        if !partition.replicas.contains(&replica_id) || replica_id == self.config.broker_id {
            return Err(Error::NotLeaderOrFollower);
        }
        self.check_epoch(epoch)
    }

    /// Kafka's diverging-epoch check: the follower's last fetched epoch must end at or after its
    /// fetch offset in our log, else it must truncate first.
    fn leader_divergence(&self, request: &FetchRequest) -> Option<crate::EpochEndOffset> {
        if request.last_fetched_epoch == wire::LeaderEpoch::NONE {
            return None;
        }
        let end = self
            .epochs
            .end_offset_for(request.last_fetched_epoch, self.log_end_offset);
        let diverged =
            end.leader_epoch < request.last_fetched_epoch || end.end_offset < request.fetch_offset;
        diverged.then_some(end)
    }

    /// Records a valid fetch offset, then advances the HW and proposes an ISR expansion.
    fn leader_count_fetch(
        &mut self,
        now_ms: u64,
        follower: BrokerId,
        fetch_offset: Offset,
        effects: &mut Vec<Effect>,
    ) {
        assert!(
            fetch_offset <= self.log_end_offset,
            "counted fetch past our LEO"
        );
        let log_end_offset = self.log_end_offset;
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("checked by leader_check_request");
        };
        let progress = leader
            .followers
            .entry(follower)
            .or_insert(FollowerProgress {
                log_end_offset: None,
                last_caught_up_ms: now_ms,
            });
        progress.log_end_offset = Some(fetch_offset);
        if fetch_offset >= log_end_offset {
            progress.last_caught_up_ms = now_ms;
        }
        self.leader_advance_high_watermark(effects);
        self.leader_maybe_expand_isr(follower, fetch_offset, effects);
    }

    fn leader_maybe_expand_isr(
        &mut self,
        follower: BrokerId,
        fetch_offset: Offset,
        effects: &mut Vec<Effect>,
    ) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        if leader.pending_isr.is_some() || partition.isr.contains(&follower) {
            return;
        }
        if !isr::may_join_isr(fetch_offset, self.high_watermark, leader.epoch_start) {
            return;
        }
        let mut new_isr = partition.isr.clone();
        new_isr.insert(follower);
        self.leader_propose(new_isr, effects);
    }

    /// Sends an AlterPartition and remembers it as pending.
    fn leader_propose(
        &mut self,
        new_isr: std::collections::BTreeSet<BrokerId>,
        effects: &mut Vec<Effect>,
    ) {
        let me = self.config.broker_id;
        assert!(new_isr.contains(&me), "the leader stays in its ISR");
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        let proposal = AlterPartition {
            leader: me,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            new_isr: new_isr.clone(),
        };
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("only leaders propose");
        };
        assert!(
            leader.pending_isr.is_none(),
            "a pending proposal blocks another"
        );
        leader.pending_isr = Some(new_isr);
        leader.pending_proposal = Some(proposal.clone());
        leader.pending_resend = false;
        effects.push(Effect::AlterPartition(proposal));
    }

    /// Moves the HW to what the maximal ISR holds durably and answers acks=all produces it passed.
    pub(crate) fn leader_advance_high_watermark(&mut self, effects: &mut Vec<Effect>) {
        let me = self.config.broker_id;
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("only leaders advance the HW");
        };
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        let maximal = isr::maximal_isr(&partition.isr, leader.pending_isr.as_ref());
        // KIP-966: the HW moves only while the committed ISR holds min ISR replicas. A replica
        // that left when the ISR fell below min joined the ELR holding everything up to the HW
        // of that moment; a HW moving on without it would let an ELR election lose records
        // (found by the cluster simulation: an acknowledged record lost after such an election).
        // Before KIP-966 (the `last_replica_standing` switch) it moved regardless.
        let kip966 = !self.bugs.last_replica_standing;
        let min_isr = isr::min_insync_replicas_effective(
            self.config.min_insync_replicas,
            partition.replicas.len(),
        );
        let candidate = if kip966 && partition.isr.len() < min_isr {
            None
        } else {
            isr::high_watermark_candidate(me, self.durable_end_offset, &maximal, &leader.followers)
        };
        let next = isr::next_high_watermark(self.high_watermark, candidate);
        assert!(next <= self.durable_end_offset || next == self.high_watermark);
        self.high_watermark = next;
        let enough = partition.isr.len() >= min_isr;
        let done = leader.waiting.partition_point(|w| w.end_offset <= next);
        for waiting in leader.waiting.drain(..done) {
            let result = if enough {
                Ok(waiting.base_offset)
            } else {
                Err(Error::NotEnoughReplicasAfterAppend)
            };
            effects.push(Effect::Reply {
                request_id: waiting.request_id,
                result,
            });
        }
    }

    /// Partition state with our epoch and a newer partition epoch: our ISR change (or the
    /// controller's) is committed.
    pub(crate) fn leader_isr_committed(&mut self, _now_ms: u64, effects: &mut Vec<Effect>) {
        if let Role::Leader(leader) = &mut self.role {
            leader.pending_isr = None;
            leader.pending_proposal = None;
            leader.pending_resend = false;
        }
        self.leader_advance_high_watermark(effects);
    }

    /// Becomes leader of the current epoch: starts the epoch at our LEO and truncates nothing
    /// (also right when elected from the ELR or uncleanly).
    pub(crate) fn become_leader(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        self.fail_waiting(effects);
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        let me = self.config.broker_id;
        assert_eq!(partition.leader, Some(me));
        let (epoch, start) = (partition.leader_epoch, self.log_end_offset);
        self.epochs.assign(epoch, start);
        // The log's epoch cache must name the epoch before any record of it exists, or its
        // OffsetsForLeaderEpoch answers after a restart would differ from ours.
        effects.push(Effect::AssignEpochStart { epoch, start });
        // Followers are unknown until they fetch in this epoch; ISR members get a full lag
        // allowance from now, as in Kafka.
        let progress = FollowerProgress {
            log_end_offset: None,
            last_caught_up_ms: now_ms,
        };
        let followers: BTreeMap<BrokerId, FollowerProgress> = partition
            .replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| (r, progress))
            .collect();
        self.role = Role::Leader(LeaderState {
            epoch_start: self.log_end_offset,
            followers,
            pending_isr: None,
            pending_proposal: None,
            pending_resend: false,
            waiting: Vec::new(),
        });
        effects.push(Effect::CancelTimer(TimerKind::FetchBackoff));
        self.leader_arm_isr_check(effects);
        self.leader_advance_high_watermark(effects);
    }

    fn leader_arm_isr_check(&self, effects: &mut Vec<Effect>) {
        let half = (self.config.replica_lag_time_max_ms / 2).max(1);
        let timer = TimerKind::IsrCheck;
        effects.push(Effect::SetTimer {
            timer,
            delay_ms_min: half,
            delay_ms_max: half,
        });
    }

    /// The ISR check timer: propose dropping followers that lagged too long.
    pub(crate) fn leader_on_isr_check(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let partition = self
            .partition
            .as_ref()
            .expect("a leader has partition state");
        let lag_ms_max = self.config.replica_lag_time_max_ms;
        let me = self.config.broker_id;
        let lagging =
            isr::lagging_followers(me, &partition.isr, &leader.followers, now_ms, lag_ms_max);
        if leader.pending_isr.is_none() && !lagging.is_empty() {
            let new_isr = partition.isr.difference(&lagging).copied().collect();
            self.leader_propose(new_isr, effects);
        } else if leader.pending_resend {
            let proposal = leader
                .pending_proposal
                .clone()
                .expect("a pending change keeps its proposal");
            if let Role::Leader(leader) = &mut self.role {
                leader.pending_resend = false;
            }
            effects.push(Effect::AlterPartition(proposal));
        }
        self.leader_arm_isr_check(effects);
    }

    /// The produce deadline timer: fail acks=all produces past their deadline.
    pub(crate) fn leader_on_produce_deadline(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let before = leader.waiting.len();
        let mut kept = Vec::with_capacity(before);
        for waiting in leader.waiting.drain(..) {
            if waiting.deadline_ms <= now_ms {
                let result = Err(Error::RequestTimedOut);
                effects.push(Effect::Reply {
                    request_id: waiting.request_id,
                    result,
                });
            } else {
                kept.push(waiting);
            }
        }
        leader.waiting = kept;
        if let Some(next) = leader.waiting.first() {
            let delay = next.deadline_ms.saturating_sub(now_ms).max(1);
            let timer = TimerKind::ProduceDeadline;
            effects.push(Effect::SetTimer {
                timer,
                delay_ms_min: delay,
                delay_ms_max: delay,
            });
        }
        assert!(leader.waiting.len() <= before);
    }

    /// OffsetsForLeaderEpoch from a follower: where the asked epoch ends in our log.
    pub fn handle_offsets_for_leader_epoch(
        &mut self,
        request: OffsetsForLeaderEpochRequest,
    ) -> Vec<Effect> {
        let result = self
            .leader_check_request(request.replica_id, request.current_leader_epoch)
            .map(|()| {
                self.epochs
                    .end_offset_for(request.leader_epoch, self.log_end_offset)
            });
        let response = OffsetsForLeaderEpochResponse {
            leader_id: self.config.broker_id,
            current_leader_epoch: request.current_leader_epoch,
            requested_epoch: request.leader_epoch,
            result,
        };
        let message = Message::OffsetsForLeaderEpochResponse(response);
        vec![Effect::Send {
            to: request.replica_id,
            message,
        }]
    }
}
