//! Follower handlers: the fetch loop, truncation to the true divergence point (KIP-101/279,
//! Fetch v12+ diverging epoch), and taking the HW from the leader.

use wire::{BrokerId, LeaderEpoch, Offset};

use crate::replica::{FollowerPhase, FollowerState, Role};
use crate::{
    Effect, EpochEndOffset, Error, FetchData, FetchRequest, FetchResponse, Message,
    OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse, Replica, TimerKind,
};

impl Replica {
    /// Whether truncation goes through OffsetsForLeaderEpoch before fetching (KIP-101 path).
    fn follower_uses_offsets_for_leader_epoch(&self) -> bool {
        self.config.truncate_via_offsets_for_leader_epoch || self.bugs.no_epoch_fencing
    }

    /// Becomes follower of the current epoch's leader (or of nobody while offline).
    pub(crate) fn become_follower(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if self.is_leader() {
            buggify::probe!("replication.leader.demoted_to_follower");
        }
        self.fail_waiting(effects);
        let leader = self
            .partition
            .as_ref()
            .expect("a follower has partition state")
            .leader;
        effects.push(Effect::CancelTimer(TimerKind::IsrCheck));
        effects.push(Effect::CancelTimer(TimerKind::ProduceDeadline));
        self.role = Role::Follower(FollowerState {
            leader,
            phase: FollowerPhase::Fetching,
            inflight: false,
        });
        if self.bugs.truncate_to_high_watermark {
            // The pre-KIP-101 rule: our HW may lag the leader's, so this can drop committed data.
            let high_watermark = self.high_watermark;
            self.truncate_to(high_watermark, effects);
        }
        let truncating = self.follower_uses_offsets_for_leader_epoch()
            && self.epochs.latest_epoch() != LeaderEpoch::NONE;
        if let Role::Follower(follower) = &mut self.role {
            if truncating {
                follower.phase = FollowerPhase::Truncating;
            }
        }
        self.follower_maybe_send(now_ms, effects);
        assert!(self.is_follower());
    }

    /// The last fetched epoch our next fetch names (NONE without KIP-320, where fetches had none).
    fn follower_last_fetched_epoch(&self) -> LeaderEpoch {
        if self.bugs.no_epoch_fencing {
            LeaderEpoch::NONE
        } else {
            self.epochs.latest_epoch()
        }
    }

    /// Sends the next request to the leader if none is out and our log is flushed (a fetch
    /// reports the fetch offset as durable, so it waits for the flush).
    pub(crate) fn follower_maybe_send(&mut self, _now_ms: u64, effects: &mut Vec<Effect>) {
        let me = self.config.broker_id;
        let current_leader_epoch = self.leader_epoch();
        let latest_epoch = self.epochs.latest_epoch();
        let last_fetched_epoch = self.follower_last_fetched_epoch();
        let flushed = self.durable_end_offset == self.log_end_offset;
        let fetch_offset = self.log_end_offset;
        let Role::Follower(follower) = &mut self.role else {
            return;
        };
        let Some(leader) = follower.leader else {
            return;
        };
        if follower.inflight {
            return;
        }
        let message = match follower.phase {
            FollowerPhase::Truncating => {
                Message::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
                    replica_id: me,
                    current_leader_epoch,
                    leader_epoch: latest_epoch,
                })
            }
            FollowerPhase::Fetching if flushed => Message::Fetch(FetchRequest {
                replica_id: me,
                fetch_offset,
                current_leader_epoch,
                last_fetched_epoch,
            }),
            FollowerPhase::Fetching => return,
        };
        follower.inflight = true;
        effects.push(Effect::Send {
            to: leader,
            message,
        });
        // Retransmission: a lost request or answer must not stall the follower forever.
        self.follower_arm_retransmit(effects);
    }

    /// The timer that resends a request nobody answered: after the leader's long poll and a
    /// round trip, never while the leader may still be holding it.
    fn follower_arm_retransmit(&self, effects: &mut Vec<Effect>) {
        let delay_ms_min = self.config.fetch_retransmit_ms;
        let delay_ms_max = delay_ms_min.saturating_add(self.config.fetch_backoff_ms);
        effects.push(Effect::SetTimer {
            timer: TimerKind::FetchBackoff,
            delay_ms_min,
            delay_ms_max,
        });
    }

    fn follower_arm_backoff(&self, effects: &mut Vec<Effect>) {
        let delay_ms_min = self.config.fetch_backoff_ms;
        let delay_ms_max = delay_ms_min.saturating_mul(2);
        let timer = TimerKind::FetchBackoff;
        effects.push(Effect::SetTimer {
            timer,
            delay_ms_min,
            delay_ms_max,
        });
    }

    /// The fetch backoff timer: whatever was in flight is given up, send again.
    pub(crate) fn follower_on_backoff(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        if let Role::Follower(follower) = &mut self.role {
            follower.inflight = false;
        }
        self.follower_maybe_send(now_ms, effects);
    }

    /// Whether an answer from `from` sent in `epoch` still concerns us; stale ones are dropped.
    fn follower_accepts(&self, from: BrokerId, epoch: LeaderEpoch, phase: FollowerPhase) -> bool {
        let Role::Follower(follower) = &self.role else {
            return false;
        };
        let epoch_ok = self.bugs.no_epoch_fencing || epoch == self.leader_epoch();
        follower.leader == Some(from) && follower.phase == phase && epoch_ok
    }

    fn follower_answered(&mut self) {
        if let Role::Follower(follower) = &mut self.role {
            follower.inflight = false;
        }
    }

    /// The leader's answer to our fetch: truncate on divergence, else append and take the HW.
    pub fn handle_fetch_response(
        &mut self,
        now_ms: u64,
        from: BrokerId,
        response: FetchResponse,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let expected = response.fetch_offset == self.log_end_offset
            && response.last_fetched_epoch == self.follower_last_fetched_epoch();
        let phase = FollowerPhase::Fetching;
        if !expected || !self.follower_accepts(from, response.leader_epoch, phase) {
            return effects;
        }
        self.follower_answered();
        match response.result {
            Err(Error::OffsetOutOfRange {
                log_start_offset, ..
            }) if log_start_offset > self.log_end_offset => {
                // The leader deleted what we would fetch next (retention while we were away):
                // start over at its log start (Kafka's truncateFullyAndStartAt).
                buggify::probe!("replication.follower.fetch_below_log_start");
                self.truncate_fully_and_start_at(log_start_offset, &mut effects);
                self.follower_maybe_send(now_ms, &mut effects);
            }
            Err(Error::OffsetOutOfRange { log_end_offset, .. })
                if log_end_offset < self.log_end_offset =>
            {
                buggify::probe!("replication.follower.truncated_past_leader_end");
                self.truncate_to(log_end_offset.max(self.log_start_offset), &mut effects);
                self.follower_maybe_send(now_ms, &mut effects);
            }
            Err(_) => self.follower_arm_backoff(&mut effects),
            Ok(FetchData {
                diverging_epoch: Some(diverging),
                high_watermark,
                ..
            }) => {
                buggify::probe!("replication.follower.truncated_diverging_epoch");
                let (offset, _complete) = self.divergence_truncation(diverging);
                self.truncate_to(offset, &mut effects);
                self.high_watermark = high_watermark
                    .min(self.log_end_offset)
                    .max(self.log_start_offset);
                self.follower_maybe_send(now_ms, &mut effects);
            }
            Ok(FetchData {
                diverging_epoch: None,
                high_watermark,
                batches,
            }) => {
                self.follower_append(now_ms, high_watermark, batches, &mut effects);
            }
        }
        self.check_invariants();
        effects
    }

    fn follower_append(
        &mut self,
        now_ms: u64,
        high_watermark: Offset,
        batches: Vec<crate::Batch>,
        effects: &mut Vec<Effect>,
    ) {
        if batches
            .first()
            .is_some_and(|first| first.base_offset < self.log_end_offset)
        {
            // The leader's log start lies inside its first batch (DeleteRecords), so the batch
            // holding our fetch offset starts below it. An empty log starts over at the batch's
            // base, as Kafka's follower does (`Partition.appendRecordsToFollowerOrFutureReplica`
            // on UnexpectedAppendOffsetException); the leader's start reaches us afterwards. A
            // log with records cannot take it: back off.
            let first = &batches[0];
            let empty = self.log_start_offset == self.log_end_offset;
            if !empty || first.end_offset() <= self.log_end_offset {
                self.follower_arm_backoff(effects);
                return;
            }
            self.truncate_fully_and_start_at(first.base_offset, effects);
        }
        let appended = !batches.is_empty();
        for batch in batches {
            assert_eq!(
                batch.base_offset, self.log_end_offset,
                "batches continue the log"
            );
            assert!(batch.record_count >= 1, "a batch holds records");
            let older = batch.leader_epoch < self.epochs.latest_epoch();
            assert!(
                !older || self.bugs.no_epoch_fencing,
                "leader sent an older epoch"
            );
            self.epochs.assign(batch.leader_epoch, batch.base_offset);
            self.log_end_offset = batch.end_offset();
            effects.push(Effect::Append(batch));
        }
        self.high_watermark = high_watermark
            .min(self.log_end_offset)
            .max(self.log_start_offset);
        if appended {
            self.flush(effects);
        } else {
            // An empty answer: the leader held the fetch for its long poll and nothing came, so
            // fetch again at once, as Kafka's fetcher does (backing off here only delays the
            // next record by the backoff).
            self.follower_maybe_send(now_ms, effects);
        }
    }

    /// Where to truncate given the leader's end offset for an epoch (Kafka's
    /// `getOffsetTruncationState`), and whether that is final. Never our HW: the true divergence.
    pub(crate) fn divergence_truncation(&self, leader_end: EpochEndOffset) -> (Offset, bool) {
        let leo = self.log_end_offset;
        if leader_end.leader_epoch == LeaderEpoch::NONE {
            return (leader_end.end_offset.min(leo), true);
        }
        let ours = self.epochs.end_offset_for(leader_end.leader_epoch, leo);
        let (offset, complete) = if ours.leader_epoch == leader_end.leader_epoch {
            (ours.end_offset.min(leader_end.end_offset), true)
        } else {
            // We never saw the leader's epoch: drop our epochs above it and ask again.
            (ours.end_offset, false)
        };
        let offset = offset.min(leo).max(self.log_start_offset);
        assert!(offset <= leo && offset >= self.log_start_offset);
        (offset, complete)
    }

    /// The leader's OffsetsForLeaderEpoch answer: truncate, then ask again or start fetching.
    pub fn handle_offsets_for_leader_epoch_response(
        &mut self,
        now_ms: u64,
        from: BrokerId,
        response: OffsetsForLeaderEpochResponse,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let epoch = response.current_leader_epoch;
        let expected = response.requested_epoch == self.epochs.latest_epoch();
        if !expected || !self.follower_accepts(from, epoch, FollowerPhase::Truncating) {
            return effects;
        }
        self.follower_answered();
        match response.result {
            Err(_) => self.follower_arm_backoff(&mut effects),
            Ok(leader_end) => {
                let (offset, complete) = self.divergence_truncation(leader_end);
                self.truncate_to(offset, &mut effects);
                if complete || self.epochs.latest_epoch() == LeaderEpoch::NONE {
                    if let Role::Follower(follower) = &mut self.role {
                        follower.phase = FollowerPhase::Fetching;
                    }
                }
                self.follower_maybe_send(now_ms, &mut effects);
            }
        }
        self.check_invariants();
        effects
    }
}
