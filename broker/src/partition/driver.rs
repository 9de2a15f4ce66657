//! [`Partition`]: the driver of one replica core over one log. See the module docs of
//! `partition` for the shape.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use log_core::batch::split_batches;
use log_core::{
    CheckpointPlan, Disk, JournalNeed, LogConfig, LogError, LogVersion, PartitionLog, ProduceRules,
    ProducedPayload, ReadResult,
};
use replication::{
    Acks, AlterPartition, BugSwitches, Config, Effect, FetchRequest, FetchResponse, Input, Message,
    OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse, PartitionState, ProduceRequest,
    ReadRange, RecoveredLog, Replica, TimerKind,
};
use tokio::sync::{oneshot, Notify};

use super::io_worker::IoWorker;
use super::producer_snapshots::{self, PRODUCER_ID_EXPIRATION_MS};
use wire::{BrokerId, LeaderEpoch, Offset, TopicPartition};

use super::reads::{
    cut_for_consumer, read_batches, read_batches_with, read_for_consumer, ConsumerRead,
};
use super::PartitionError;
use crate::producer_state::{ProducerStateTable, TruncateOutcome};
use crate::runtime;

/// Most bytes one follower fetch response carries per partition (`replica.fetch.max.bytes`).
/// 8 MiB, not Kafka's 1 MiB: a rill follower fetches again only after its flush, so a cycle
/// costs an fsync, and a producer with 5 batches of 1 MB in flight would otherwise need five
/// cycles to be replicated (measured: +16% acks=all records/s with librdkafka at 6 partitions).
pub const REPLICA_FETCH_BYTES_MAX: usize = 8 << 20;

/// The node's transport for what a replica sends on its own initiative. Implementations must not
/// block and must not call back into the partition synchronously (the partition's lock is held).
pub trait ReplicaNet: Send + Sync + 'static {
    /// Delivers a follower's request (Fetch, OffsetsForLeaderEpoch) to the leader `to`; the
    /// answer comes back through [`Partition::deliver`].
    fn send(&self, tp: &TopicPartition, to: BrokerId, message: Message);
    /// Sends an ISR change to the controller; the answer comes back through
    /// [`Partition::alter_partition_answered`].
    fn alter_partition(&self, tp: &TopicPartition, request: AlterPartition);
    /// The partition's log failed and it stopped serving: tell the controller, which moves the
    /// leadership and the ISR elsewhere (Kafka's offline log directory, KIP-112). Called with
    /// the partition's lock held: must not block. No-op by default (tests without a controller).
    fn partition_failed(&self, tp: &TopicPartition) {
        let _ = tp;
    }
}

/// Everything a partition needs to open, besides its disk and transport.
#[derive(Clone, Debug)]
pub struct PartitionSettings {
    /// The replica core's limits and timeouts (its broker id is this broker's).
    pub replica: Config,
    /// Historic-bug switches (tests and simulator only).
    pub bugs: BugSwitches,
    /// Segment sizes, retention, compaction.
    pub log: LogConfig,
    /// The broker's IO worker, which carries out this partition's flushes (group commit).
    pub io: IoWorker,
}

/// One idempotent producer as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// The sequence of its last appended record.
    pub last_sequence: i32,
    /// The max timestamp of its last batch, -1 when the log no longer holds it.
    pub last_timestamp: i64,
}

/// How a produce ended, as the partition knows it.
pub type ProduceOutcome = Result<Offset, PartitionError>;

/// A snapshot of a partition's state for metrics and Metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Is this broker the partition's leader?
    pub is_leader: bool,
    /// The state the controller committed last, if any arrived.
    pub state: Option<PartitionState>,
    /// The high watermark.
    pub high_watermark: Offset,
    /// The log end offset.
    pub log_end_offset: Offset,
    /// The log start offset.
    pub log_start_offset: Offset,
    /// Set once the log failed: the partition serves nothing.
    pub failed: Option<String>,
    /// Everything below it was flushed (and may have been reported flushed to a leader); kept
    /// after a failure, so a repair knows what the reopened log must still hold.
    pub durable_end_offset: Offset,
}

/// How a produce continues after its synchronous half.
enum Started {
    /// The core took it; its reply arrives here.
    Waiting(oneshot::Receiver<ProduceOutcome>),
    /// A retried batch already in the log at these offsets.
    Duplicate {
        /// Its first offset.
        first: Offset,
        /// Its last offset.
        last: Offset,
    },
}

/// The partition's mutable state, behind one mutex.
struct Inner {
    /// The replication core.
    replica: Replica,
    /// The log on disk; `None` once failed or closed.
    log: Option<PartitionLog>,
    /// Idempotent producers' sequences, fed by every append (leader and follower alike, so a new
    /// leader already knows them), kept across retention and snapshotted to survive restarts.
    producers: ProducerStateTable,
    /// The newest producer snapshot on disk (`producer_snapshots`), if any.
    snapshot_newest: Option<Offset>,
    /// The log's active segment base when snapshots were last considered: a change is a roll.
    snapshot_segment_base: Offset,
    /// Produce requests waiting for the core's `Reply`, by the request id given to the core.
    waiters: BTreeMap<u64, oneshot::Sender<ProduceOutcome>>,
    /// The id the next produce gets.
    request_id_next: u64,
    /// The core's timers, one slot per kind, each served by at most one sleeping task.
    timers: BTreeMap<TimerKind, TimerSlot>,
    /// The newest flush the core asked for and the IO worker has not planned: (seq, up_to).
    flush_wanted: Option<(u64, Offset)>,
    /// Queued on the IO worker and not yet picked up by a round: queue once.
    flush_queued: bool,
    /// Queued on the IO worker's checkpointer and not yet planned there: queue once.
    checkpoint_queued: bool,
    /// The queued checkpoint is wanted even if not due: the journal needs it to release a file.
    checkpoint_forced: bool,
    /// Answers to the inbound replica request being handled (captured instead of sent).
    captured: Vec<Message>,
    /// The broker whose request is being handled, whose answers are captured.
    capture_for: Option<BrokerId>,
    /// Most record bytes the captured fetch answer may carry (the rest of the request's budget).
    capture_bytes_max: usize,
    /// The read the captured fetch answer waits for (its range, its byte budget): made by the
    /// request's task after the step, without the lock.
    captured_read: Option<CapturedRead>,
    /// Why the partition stopped serving, once it did.
    failed: Option<String>,
    /// Set by `close`: timers and the flusher stop, requests are refused.
    closed: bool,
    /// Once failed: the journal records the failed log still needed (its repair writes them
    /// back before it reopens the log), as they were when it failed.
    journal_need_failed: Option<JournalNeed>,
    /// The journal released records this failed copy still needed (it pinned the journal too
    /// long): its repair must not call the copy intact (seed 275316).
    journal_records_lost: bool,
    /// The log starts followers reported in their fetches (Kafka's `Replica.logStartOffset`),
    /// for DeleteRecords' low watermark; driver bookkeeping the core does not decide with.
    replica_log_starts: BTreeMap<BrokerId, Offset>,
    /// The rules the produce being stepped was validated with at ingress (set just before its
    /// core step, taken by its append), so the log need not validate the payload again.
    produce_validated: Option<ProduceRules>,
}

/// Who still needs a journal record ([`Partition::journal_hold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JournalHold {
    /// Nobody: the file may go as far as this partition is concerned.
    None,
    /// A serving log: a checkpoint releases it.
    Live,
    /// A failed copy, until its repair writes the record back: nothing but the repair releases
    /// it.
    Failed,
}

/// One partition replica on this broker.
pub struct Partition {
    /// Which partition.
    tp: TopicPartition,
    /// This broker.
    broker_id: BrokerId,
    /// Everything mutable; never held across an `.await`.
    inner: Mutex<Inner>,
    /// Woken whenever the LEO or HW may have moved: long-polling fetches wait on it.
    progress: Notify,
    /// Carries out flushes in rounds across the broker's partitions.
    io: IoWorker,
    /// The disk and directory of the log (for the failure marker).
    disk: Arc<dyn Disk>,
    /// The log's directory.
    dir: std::path::PathBuf,
    /// Where sends go.
    net: Arc<dyn ReplicaNet>,
    /// This partition's own `Arc`, weakly, for the tasks it spawns.
    me: Weak<Partition>,
    /// How long a duplicate acks=all produce may wait for the HW (the core's produce timeout).
    request_timeout_ms: u64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("tp", &self.tp).finish()
    }
}

impl Partition {
    /// Opens (recovering) the log in `dir`. The replica is offline until
    /// [`Partition::apply_state`] names its role.
    pub fn open(
        tp: TopicPartition,
        disk: Arc<dyn Disk>,
        dir: &Path,
        settings: PartitionSettings,
        net: Arc<dyn ReplicaNet>,
    ) -> Result<Arc<Partition>, LogError> {
        let log = PartitionLog::open_journaled(
            disk.clone(),
            dir,
            settings.log.clone(),
            runtime::wall_clock_ms(),
            Offset::ZERO,
            settings.io.journal_clock(),
        )?;
        let recovered = RecoveredLog {
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            epochs: log.epoch_entries(),
            high_watermark: log.high_watermark(),
        };
        let producers = producer_snapshots::load(&*disk, dir, &log, runtime::wall_clock_ms())?;
        let snapshot_newest = producer_snapshots::list(&*disk, dir)?.last().copied();
        let snapshot_segment_base = log.active_segment_base();
        let broker_id = settings.replica.broker_id;
        let request_timeout_ms = settings.replica.request_timeout_ms;
        let replica = Replica::recover(settings.replica, settings.bugs, &recovered);
        tracing::info!(%tp, leo = ?log.log_end_offset(), hw = ?log.high_watermark(), "partition opened");
        let partition = Arc::new_cyclic(|me| Partition {
            tp,
            broker_id,
            inner: Mutex::new(Inner {
                replica,
                log: Some(log),
                producers,
                snapshot_newest,
                snapshot_segment_base,
                waiters: BTreeMap::new(),
                request_id_next: 1,
                timers: BTreeMap::new(),
                flush_wanted: None,
                flush_queued: false,
                checkpoint_queued: false,
                checkpoint_forced: false,
                captured: Vec::new(),
                captured_read: None,
                capture_for: None,
                capture_bytes_max: REPLICA_FETCH_BYTES_MAX,
                replica_log_starts: BTreeMap::new(),
                produce_validated: None,
                failed: None,
                closed: false,
                journal_need_failed: None,
                journal_records_lost: false,
            }),
            progress: Notify::new(),
            io: settings.io.clone(),
            disk,
            dir: dir.to_path_buf(),
            net,
            me: me.clone(),
            request_timeout_ms,
        });
        Ok(partition)
    }

    /// The partition this is.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Fail stop: a panic while holding the lock may have left the core and the log half
        // stepped; serving that state could acknowledge what is not there. Production builds
        // abort on the panic itself (`panic = "abort"`); test builds stop here.
        self.inner
            .lock()
            .expect("a panic inside a partition step is fail-stop, never recovered")
    }

    /// Feeds one input to the core and carries out the effects. Returns the captured answers
    /// to `capture_for` (an inbound replica request), in order.
    fn step(&self, input: Input, capture_for: Option<BrokerId>) -> Vec<Message> {
        self.step_with(self.lock(), input, capture_for)
    }

    /// [`Partition::step`] with the lock already held, so a check and the step it guards are
    /// one atomic action.
    fn step_with(
        &self,
        inner: MutexGuard<'_, Inner>,
        input: Input,
        capture_for: Option<BrokerId>,
    ) -> Vec<Message> {
        // Only `replica_fetch` returns a fetch answer; any other caller drops a captured one,
        // and its read with it.
        let (captured, _read) = self.step_capturing(inner, input, capture_for);
        captured
    }

    /// [`Partition::step_with`], also returning the read a captured fetch answer waits for.
    fn step_capturing(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        input: Input,
        capture_for: Option<BrokerId>,
    ) -> (Vec<Message>, Option<CapturedRead>) {
        let this = self.self_weak();
        if inner.closed || inner.failed.is_some() {
            return (Vec::new(), None);
        }
        let (hw_before, leo_before) = (
            inner.replica.high_watermark(),
            inner.replica.log_end_offset(),
        );
        let is_produce = matches!(input, Input::Produce(_));
        let input = match inner.log.as_ref().map(|log| align_truncation(log, input)) {
            Some(Ok(input)) => input,
            Some(Err(error)) => {
                self.fail(&mut inner, format!("{}", storage(error)));
                return (Vec::new(), None);
            }
            None => return (Vec::new(), None),
        };
        let effects = inner.replica.step(runtime::monotonic_ms(), input);
        inner.replica.check_invariants();
        inner.capture_for = capture_for;
        for effect in effects {
            if let Err(error) = self.apply(&mut inner, &this, effect, is_produce) {
                self.fail(&mut inner, format!("{error}"));
                break;
            }
        }
        if inner.failed.is_none() {
            if let Err(error) = sync_log_with_core(&mut inner) {
                self.fail(&mut inner, format!("{error}"));
            }
        }
        check_step_invariants(&inner);
        inner.capture_for = None;
        let captured = std::mem::take(&mut inner.captured);
        let read = inner.captured_read.take();
        let moved = inner.replica.high_watermark() != hw_before
            || inner.replica.log_end_offset() != leo_before;
        drop(inner);
        if moved {
            self.progress.notify_waiters();
        }
        (captured, read)
    }

    /// A weak handle to self for timer tasks: they must not keep a closed partition alive.
    fn self_weak(&self) -> Weak<Partition> {
        self.me.clone()
    }

    /// Carries out one effect with the lock held.
    fn apply(
        &self,
        inner: &mut Inner,
        this: &Weak<Partition>,
        effect: Effect,
        is_produce: bool,
    ) -> Result<(), PartitionError> {
        match effect {
            Effect::Append(mut batch) => {
                append(inner, &mut batch, is_produce)?;
                self.snapshot_if_due(inner)
            }
            Effect::TruncateTo(offset) => {
                let log = inner.log.as_mut().ok_or(PartitionError::Closed)?;
                log.truncate_to(offset).map_err(storage)?;
                // Before anything is appended again: a snapshot above the cut describes batches
                // the log no longer holds.
                producer_snapshots::remove_above(&*self.disk, &self.dir, offset)
                    .map_err(|e| storage(e.into()))?;
                inner.snapshot_newest = inner.snapshot_newest.filter(|s| *s <= offset);
                if inner.producers.truncate_to(offset) == TruncateOutcome::RebuildRequired {
                    let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
                    let end = log.log_end_offset();
                    // An inexact rebuild would name older sequences than the producers reached
                    // (seed 16977). Then the truncated table is kept instead: its producers'
                    // last batches are the log's, only their duplicate windows are shorter. It
                    // is written at once, so a restart does not rebuild the stale state either.
                    let exact = producer_snapshots::load_is_exact(&*self.disk, &self.dir, log)
                        .map_err(|e| storage(e.into()))?;
                    if exact {
                        inner.producers = self.load_producers(log)?;
                    } else {
                        buggify::probe!("partition.producers_kept_after_truncation");
                        producer_snapshots::write(&*self.disk, &self.dir, end, &inner.producers)
                            .map_err(|e| storage(e.into()))?;
                        inner.snapshot_newest = Some(end);
                    }
                }
                inner.snapshot_segment_base = log_active_base(inner)?;
                tracing::info!(tp = %self.tp, ?offset, "truncated");
                Ok(())
            }
            Effect::TruncateFullyAndStartAt(offset) => {
                let log = inner.log.as_mut().ok_or(PartitionError::Closed)?;
                log.truncate_fully_and_start_at(offset).map_err(storage)?;
                assert!(log.log_start_offset() == offset && log.log_end_offset() == offset);
                // The log is empty: no producer has a batch left in it, and Kafka forgets them
                // all here too (`truncateFullyAndStartAt`).
                producer_snapshots::remove_all(&*self.disk, &self.dir)
                    .map_err(|e| storage(e.into()))?;
                inner.snapshot_newest = None;
                let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
                inner.producers = self.load_producers(log)?;
                inner.snapshot_segment_base = log_active_base(inner)?;
                tracing::info!(tp = %self.tp, ?offset, "truncated fully; the log starts over");
                Ok(())
            }
            Effect::AssignEpochStart { epoch, start } => {
                let log = inner.log.as_mut().ok_or(PartitionError::Closed)?;
                assert_eq!(start, log.log_end_offset(), "a new epoch starts at the LEO");
                if let Some(latest) = log.latest_epoch().filter(|&latest| latest > epoch) {
                    // The controller never gave out an epoch above a new leader's: a batch's
                    // leader epoch (outside its CRC) rotted on disk and recovery took it in.
                    // The disk's fault, so the partition fails; before, the log ignored the
                    // older epoch and the next append tripped the fail-stop check (seed 266755).
                    buggify::probe!("partition.log_epoch_above_the_leaders");
                    return Err(PartitionError::Storage(format!(
                        "the log holds leader epoch {latest}, above the new leader epoch {epoch}: \
                         a batch header rotted"
                    )));
                }
                log.assign_epoch_start(epoch, start);
                Ok(())
            }
            Effect::Flush { up_to, seq } => {
                inner.flush_wanted = Some((seq, up_to));
                if !inner.flush_queued {
                    inner.flush_queued = true;
                    self.io.request_flush(this.clone());
                }
                Ok(())
            }
            Effect::Send { to, message } => {
                if let (Message::Fetch(fetch), Some(log), None) =
                    (&message, inner.log.as_ref(), inner.failed.as_ref())
                {
                    // A follower's fetch offset tells the leader what this copy holds durably
                    // (acks=all counts it): never past what the log has flushed. Checked here,
                    // outside the core that decides it, in production too (fail stop).
                    assert!(
                        fetch.fetch_offset <= log.durable_end(),
                        "a follower fetch at {:?} reports records past the flushed end {:?}",
                        fetch.fetch_offset,
                        log.durable_end()
                    );
                }
                if inner.capture_for == Some(to) && is_answer(&message) {
                    inner.captured.push(message);
                } else {
                    self.net.send(&self.tp, to, message);
                }
                Ok(())
            }
            Effect::SendFetchResponse {
                to,
                mut response,
                read,
            } => {
                let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
                let captured = inner.capture_for == Some(to);
                let bytes_max = if captured {
                    inner.capture_bytes_max
                } else {
                    REPLICA_FETCH_BYTES_MAX
                };
                // A spent budget (0) answers without records: the follower fetches again at once.
                if let (Ok(data), true) = (response.result.as_mut(), bytes_max > 0) {
                    if captured {
                        // The request's task reads after the step, without the lock, for the
                        // first answer captured: the one it returns (any later one is dropped).
                        if inner.captured_read.is_none() {
                            inner.captured_read = Some(CapturedRead {
                                read,
                                bytes_max,
                                version: log.version(),
                            });
                        }
                    } else {
                        data.batches = read_batches(log, read, bytes_max).map_err(storage)?;
                    }
                }
                let message = Message::FetchResponse(response);
                if captured {
                    inner.captured.push(message);
                } else {
                    self.net.send(&self.tp, to, message);
                }
                Ok(())
            }
            Effect::Reply { request_id, result } => {
                if result.is_ok() {
                    // An acknowledgement leaves: what it acknowledges must survive a power
                    // loss of every node from here on.
                    buggify::crash_point("crash.leader_acknowledged");
                }
                if let Some(waiter) = inner.waiters.remove(&request_id) {
                    // The client may have gone (timeout): nobody to tell, nothing lost.
                    let _gone = waiter.send(result.map_err(PartitionError::Replica));
                }
                Ok(())
            }
            Effect::AlterPartition(request) => {
                self.net.alter_partition(&self.tp, request);
                Ok(())
            }
            Effect::SetTimer {
                timer,
                delay_ms_min,
                delay_ms_max,
            } => {
                let delay = runtime::jitter_ms(delay_ms_min, delay_ms_max);
                let deadline = runtime::monotonic_ms().saturating_add(delay);
                let slot = inner.timers.entry(timer).or_default();
                slot.deadline = Some(deadline);
                // A timer re-armed later (the retransmit timer, on every fetch) keeps its task,
                // which sleeps on to the new deadline: one task per partition and kind, not one
                // per arming.
                if slot.task_wake.is_none_or(|wake| wake > deadline) {
                    slot.task_id += 1;
                    slot.task_wake = Some(deadline);
                    tokio::spawn(timer_task(this.clone(), timer, slot.task_id, deadline));
                }
                Ok(())
            }
            Effect::CancelTimer(timer) => {
                inner.timers.entry(timer).or_default().deadline = None;
                Ok(())
            }
        }
    }

    /// The producer table of the log as it stands: the newest snapshot, then the log after it.
    fn load_producers(&self, log: &PartitionLog) -> Result<ProducerStateTable, PartitionError> {
        producer_snapshots::load(&*self.disk, &self.dir, log, runtime::wall_clock_ms())
            .map_err(storage)
    }

    /// Writes a producer snapshot at the log end when the log rolled a segment since the last
    /// look, or its start passed the newest snapshot (whose replay would need deleted records),
    /// then deletes the snapshots below the log start. A disk error fails the partition.
    fn snapshot_if_due(&self, inner: &mut Inner) -> Result<(), PartitionError> {
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let (active_base, start, end) = (
            log.active_segment_base(),
            log.log_start_offset(),
            log.log_end_offset(),
        );
        let rolled = active_base != inner.snapshot_segment_base;
        let start_passed = start > inner.snapshot_newest.unwrap_or(Offset::ZERO);
        inner.snapshot_segment_base = active_base;
        if !(rolled || start_passed) || inner.snapshot_newest == Some(end) {
            return Ok(());
        }
        let disk = &*self.disk;
        producer_snapshots::write(disk, &self.dir, end, &inner.producers)
            .and_then(|()| producer_snapshots::remove_below(disk, &self.dir, start))
            .map_err(|e| storage(e.into()))?;
        inner.snapshot_newest = Some(end);
        assert!(inner.snapshot_newest >= Some(start));
        Ok(())
    }

    /// Stops serving after a log failure: every waiting produce learns it, memory is dropped.
    fn fail(&self, inner: &mut Inner, reason: String) {
        tracing::error!(tp = %self.tp, %reason, "partition failed; it stops serving until repaired");
        let first = inner.failed.is_none();
        inner.failed = Some(reason.clone());
        if first {
            buggify::probe!("partition.failed_on_disk_error");
            // The next start-up check verifies the whole log and sets a corrupt one aside.
            let flushed = inner.replica.durable_end_offset();
            super::quarantine::mark_failed(self.disk.as_ref(), &self.dir, flushed);
            self.net.partition_failed(&self.tp);
        }
        if let Some(log) = inner.log.take() {
            inner.journal_need_failed.get_or_insert(log.journal_need());
        }
        for (_, waiter) in std::mem::take(&mut inner.waiters) {
            let _gone = waiter.send(Err(PartitionError::Storage(reason.clone())));
        }
        self.progress.notify_waiters();
    }

    fn refuse_if_unusable(inner: &Inner) -> Result<(), PartitionError> {
        if inner.closed {
            return Err(PartitionError::Closed);
        }
        match &inner.failed {
            Some(reason) => Err(PartitionError::Storage(reason.clone())),
            None => Ok(()),
        }
    }

    /// New partition state from the controller's metadata.
    pub fn apply_state(&self, state: PartitionState) {
        let unchanged = self.lock().replica.partition_state() == Some(&state);
        if !unchanged {
            tracing::info!(tp = %self.tp, leader = ?state.leader, epoch = ?state.leader_epoch,
                isr = ?state.isr, "partition state");
            self.step(Input::PartitionState(state), None);
        }
    }

    /// The controller answered an AlterPartition.
    pub fn alter_partition_answered(&self, result: Result<PartitionState, replication::Error>) {
        self.step(Input::AlterPartitionResponse(result), None);
    }

    /// An answer from the leader (FetchResponse, OffsetsForLeaderEpochResponse) reached this
    /// follower.
    pub fn deliver(&self, from: BrokerId, message: Message) {
        self.step(Input::Message { from, message }, None);
    }

    /// A follower's fetch, answered at once with about `bytes_max` record bytes at most (at
    /// least one batch when there is one and `bytes_max > 0`, none at 0), with the log start
    /// offset the answer names (long polling is the caller's: see
    /// [`Partition::progress`]).
    pub fn replica_fetch(
        &self,
        request: FetchRequest,
        bytes_max: usize,
    ) -> Result<(FetchResponse, Offset), PartitionError> {
        let from = request.replica_id;
        let mut inner = self.lock();
        inner.capture_bytes_max = bytes_max.min(REPLICA_FETCH_BYTES_MAX);
        let input = Input::Message {
            from,
            message: Message::Fetch(request),
        };
        let (answers, read) = self.step_capturing(inner, input, Some(from));
        let mut response = answers
            .into_iter()
            .find_map(|m| match m {
                Message::FetchResponse(response) => Some(response),
                _ => None,
            })
            .ok_or(PartitionError::Replica(
                replication::Error::NotLeaderOrFollower,
            ))?;
        if let (Ok(data), Some(captured)) = (response.result.as_mut(), read) {
            let version = &captured.version;
            let batches =
                read_batches_with(captured.read, captured.bytes_max, |from, bytes_max| {
                    self.read_unlocked(version, from, bytes_max)
                        .map_err(ReadFailed::Partition)
                });
            data.batches = match batches {
                Ok(batches) => batches,
                Err(ReadFailed::Partition(error)) => return Err(error),
                // The framing of batches the log read and verified: a broken log.
                Err(ReadFailed::Log(error)) => {
                    return self.read_or_fail(&mut self.lock(), Err(error));
                }
            };
        }
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        Ok((response, inner.replica.log_start_offset()))
    }

    /// One log read for a follower's fetch answer with the lock held only to plan it and to
    /// confirm it ([`log_core::ReadPlan`]): the batches are read and their CRCs checked without
    /// it. A log rewritten since the core answered (`version`: a truncation, a deleted or
    /// compacted segment) returns nothing, which ends the answer's batches there: they must be
    /// what the log held when the core answered, and the follower fetches again.
    fn read_unlocked(
        &self,
        version: &LogVersion,
        from: Offset,
        bytes_max: usize,
    ) -> Result<ReadResult, PartitionError> {
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let (mut inner, read) = if log.is_version(version) {
            self.read_without_lock(inner, from, bytes_max)?
        } else {
            (inner, None)
        };
        match read {
            Some(read) => self.read_or_fail(&mut inner, read),
            None => {
                buggify::probe!("partition.replica_read_rewritten");
                let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
                Ok(nothing_read(log, from))
            }
        }
    }

    /// A log read with the lock held only to plan it and to confirm it
    /// ([`log_core::ReadPlan`]): planned under `inner`, the batches read and their CRCs checked
    /// without the lock, the lock taken again and returned. The read is `None` when the log was
    /// rewritten meanwhile (a truncation, a deleted or compacted segment, another log).
    fn read_without_lock<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        from: Offset,
        bytes_max: usize,
    ) -> Result<(MutexGuard<'a, Inner>, Option<LogRead>), PartitionError> {
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let planned = log.plan_read(from, bytes_max);
        let disk = log.disk();
        let plan = self.read_or_fail(&mut inner, planned)?;
        drop(inner);
        let read = plan.run(&*disk);
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        // BUGGIFY: the read counts as rewritten (under the simulator nothing can come between
        // the plan and its confirmation, so the stale paths are walked this way).
        let current = log.read_is_current(&plan) && !runtime::buggify("partition.read.rewritten");
        Ok((inner, current.then_some(read)))
    }

    /// A follower's OffsetsForLeaderEpoch, answered at once.
    pub fn offsets_for_leader_epoch(
        &self,
        request: OffsetsForLeaderEpochRequest,
    ) -> Result<OffsetsForLeaderEpochResponse, PartitionError> {
        let from = request.replica_id;
        let answers = self.step(
            Input::Message {
                from,
                message: Message::OffsetsForLeaderEpoch(request),
            },
            Some(from),
        );
        Self::refuse_if_unusable(&self.lock())?;
        answers
            .into_iter()
            .find_map(|m| match m {
                Message::OffsetsForLeaderEpochResponse(response) => Some(response),
                _ => None,
            })
            .ok_or(PartitionError::Replica(
                replication::Error::NotLeaderOrFollower,
            ))
    }

    /// Notified whenever the LEO or HW may have moved. A long-polling fetch creates and
    /// `enable()`s a `notified()` future *before* reading, then waits on it with a timeout, so a
    /// move between the read and the wait still wakes it.
    pub fn progress(&self) -> &Notify {
        &self.progress
    }

    /// Produces `payload` (v2 batches from a client) with `acks`; resolves when the core replies
    /// (at once for acks 0/1, at the HW for acks=all). A retried batch of an idempotent producer
    /// answers with its original offset, for acks=all only once the HW passed it.
    pub async fn produce(self: &Arc<Self>, payload: Vec<u8>, acks: Acks) -> ProduceOutcome {
        self.begin_produce(payload, acks).await
    }

    /// [`Partition::produce`] in two halves: the validation, the idempotence check and the core
    /// step happen *now*, synchronously, and the returned future waits for the outcome. A
    /// connection's pipelined produces to one partition therefore reach the log in request
    /// order, as Kafka's do, so an idempotent producer's batches in flight follow each other
    /// instead of overtaking (OUT_OF_ORDER_SEQUENCE_NUMBER).
    pub fn begin_produce(
        self: &Arc<Self>,
        payload: Vec<u8>,
        acks: Acks,
    ) -> impl std::future::Future<Output = ProduceOutcome> + Send + 'static {
        let started = self.start_produce(payload, acks);
        let this = self.clone();
        async move {
            match started? {
                Started::Waiting(receiver) => match receiver.await {
                    Ok(outcome) => outcome,
                    Err(_dropped) => Err(PartitionError::Closed),
                },
                Started::Duplicate { first, last } => {
                    this.duplicate_acknowledged(first, last, acks).await
                }
            }
        }
    }

    /// The synchronous half of a produce: validation, then the idempotence check and the core
    /// step under one lock. The payload is validated (and normalised) here, once, with Kafka's
    /// rules, outside the lock (decompressing a batch takes time; the rules are the log's
    /// fixed configuration); a refusal answers this request only and the partition serves on.
    fn start_produce(&self, mut payload: Vec<u8>, acks: Acks) -> Result<Started, PartitionError> {
        let rules = {
            let inner = self.lock();
            Self::refuse_if_unusable(&inner)?;
            let config = inner.log.as_ref().ok_or(PartitionError::Closed)?.config();
            ProduceRules {
                batch_bytes_max: config.batch_bytes_max,
                compacted: config.compacted,
                // The log stamps the batch again at its append (the time it lands there).
                log_append_time_ms: config.log_append_time.then(runtime::wall_clock_ms),
                codec_target: config.codec_target,
            }
        };
        let produced = log_core::validate_produced(&mut payload, &rules)?;
        let mut inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        if let Some((first, last)) = check_producer(&inner, &produced)? {
            return Ok(Started::Duplicate { first, last });
        }
        let request_id = inner.request_id_next;
        inner.request_id_next += 1;
        let (sender, receiver) = oneshot::channel();
        if acks == Acks::None {
            // Fire and forget: the core never replies, so nobody waits (Kafka answers nothing).
            let _ = sender.send(Ok(Offset(-1)));
        } else {
            inner.waiters.insert(request_id, sender);
        }
        let produce = ProduceRequest {
            request_id,
            acks,
            record_count: produced.record_count,
            payload,
        };
        inner.produce_validated = Some(rules);
        self.step_with(inner, Input::Produce(produce), None);
        Ok(Started::Waiting(receiver))
    }

    /// A duplicate's answer: its first offset once the HW passed its last (acks=all), waiting at
    /// most the produce timeout; leadership lost meanwhile refuses it like a fresh produce.
    async fn duplicate_acknowledged(
        &self,
        first: Offset,
        last: Offset,
        acks: Acks,
    ) -> ProduceOutcome {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.request_timeout_ms);
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.lock();
                Self::refuse_if_unusable(&inner)?;
                if !inner.replica.is_leader() {
                    return Err(replication::Error::NotLeaderOrFollower.into());
                }
                if acks != Acks::All || inner.replica.high_watermark() > last {
                    return Ok(first);
                }
            }
            if tokio::time::timeout(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                notified,
            )
            .await
            .is_err()
            {
                return Err(replication::Error::RequestTimedOut.into());
            }
        }
    }

    /// A consumer's fetch: bytes below the HW from `fetch_offset`. The lock is held to plan
    /// the read and to confirm it, not across it: the batches are read and their CRCs checked
    /// without it ([`log_core::ReadPlan`]), so appends and other reads of the partition go on
    /// meanwhile. A read the log rewrote meanwhile (a truncation, a deleted or compacted
    /// segment), or one whose HW went back, is made again under the lock.
    pub fn consumer_read(
        &self,
        current_leader_epoch: Option<LeaderEpoch>,
        fetch_offset: Offset,
        bytes_max: usize,
    ) -> Result<ConsumerRead, PartitionError> {
        let mut inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        let range =
            inner
                .replica
                .consumer_read_range(current_leader_epoch, fetch_offset, i64::MAX / 4)?;
        // A spent budget (a fetch's later partitions) reads nothing: the offsets (and any
        // error) still answer.
        if bytes_max > 0 && range.from < range.to {
            let (relocked, read) = self.read_without_lock(inner, range.from, bytes_max)?;
            inner = relocked;
            if let Some(read) = read.filter(|_| range.to <= inner.replica.high_watermark()) {
                let records = read.and_then(|read| cut_for_consumer(read.bytes, range));
                return Ok(ConsumerRead {
                    records: self.read_or_fail(&mut inner, records)?,
                    high_watermark: inner.replica.high_watermark(),
                    log_start_offset: inner.replica.log_start_offset(),
                });
            }
            buggify::probe!("partition.consumer_read_made_again");
        }
        self.consumer_read_locked(&mut inner, current_leader_epoch, fetch_offset, bytes_max)
    }

    /// [`Partition::consumer_read`] with the lock held throughout.
    fn consumer_read_locked(
        &self,
        inner: &mut Inner,
        current_leader_epoch: Option<LeaderEpoch>,
        fetch_offset: Offset,
        bytes_max: usize,
    ) -> Result<ConsumerRead, PartitionError> {
        let range =
            inner
                .replica
                .consumer_read_range(current_leader_epoch, fetch_offset, i64::MAX / 4)?;
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let records = if bytes_max == 0 {
            Bytes::new()
        } else {
            let read = read_for_consumer(log, range, bytes_max);
            self.read_or_fail(inner, read)?
        };
        Ok(ConsumerRead {
            records,
            high_watermark: inner.replica.high_watermark(),
            log_start_offset: inner.replica.log_start_offset(),
        })
    }

    /// Raw batches from `from` up to the log end (not only the HW): the group coordinator loads
    /// its offsets partition this way on becoming leader, since records the previous leader
    /// acknowledged may sit above this replica's HW until the followers fetch again.
    pub fn read_committed_or_appended(
        &self,
        from: Offset,
        bytes_max: usize,
    ) -> Result<Bytes, PartitionError> {
        let mut inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        if from >= log.log_end_offset() {
            return Ok(Bytes::new());
        }
        let read = log.read(from, bytes_max).map(|read| read.bytes);
        self.read_or_fail(&mut inner, read)
    }

    /// A read's result for a client. A log that cannot be read (an I/O error, a batch whose CRC
    /// no longer matches) fails the partition, like a failed append: the broker reports the
    /// replica offline and the controller moves the leadership to a replica that can serve,
    /// instead of answering KAFKA_STORAGE_ERROR to every reader for ever (a librdkafka consumer
    /// sat stuck 90 s on one). A read outside the log's range is that request's error only.
    fn read_or_fail<T>(
        &self,
        inner: &mut Inner,
        read: Result<T, LogError>,
    ) -> Result<T, PartitionError> {
        match read {
            Ok(value) => Ok(value),
            Err(error) if error.is_storage_failure() => {
                let refusal = read_failure(error);
                self.fail(inner, refusal.to_string());
                Err(refusal)
            }
            Err(error) => Err(read_failure(error)),
        }
    }

    /// A client's ListOffsets on the leader (Kafka's `Partition.fetchOffsetForTimestamp` for a
    /// consumer, which reads up to the HW): -2 (and -4) the log start, -1 the HW, -3 the first
    /// record at the largest timestamp (KIP-734), otherwise the first record at or after
    /// `timestamp`. A record at or past the HW, or none at all, answers `None` (Kafka's offset
    /// and timestamp -1). Found records come with their timestamp and the epoch of their batch.
    pub fn list_offset(
        &self,
        current_leader_epoch: Option<LeaderEpoch>,
        timestamp: i64,
    ) -> Result<Option<ListedOffset>, PartitionError> {
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        if !inner.replica.is_leader() {
            return Err(replication::Error::NotLeaderOrFollower.into());
        }
        fence(current_leader_epoch, inner.replica.leader_epoch())?;
        let leader_epoch = inner.replica.leader_epoch();
        let hw = inner.replica.high_watermark();
        let listed = |offset: Offset, timestamp: i64, leader_epoch: LeaderEpoch| ListedOffset {
            offset,
            timestamp,
            leader_epoch,
        };
        match timestamp {
            // -4, earliest local (KIP-1005): without tiered storage, the log start.
            -2 | -4 => {
                return Ok(Some(listed(
                    inner.replica.log_start_offset(),
                    -1,
                    leader_epoch,
                )))
            }
            -1 => return Ok(Some(listed(hw, -1, leader_epoch))),
            _ => {}
        }
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let target = match timestamp {
            -3 => match log.max_timestamp() {
                Some(max) => max,
                None => return Ok(None),
            },
            ts if ts < 0 => return Ok(None),
            ts => ts,
        };
        assert!(target >= 0, "special timestamps are answered above");
        let found = log.offset_for_timestamp(target).map_err(read_failure)?;
        Ok(found
            .filter(|(offset, _)| *offset < hw)
            .map(|(offset, timestamp)| {
                let epoch = inner
                    .replica
                    .epochs()
                    .entries()
                    .take_while(|(_, start)| *start <= offset)
                    .last()
                    .map_or(leader_epoch, |(epoch, _)| epoch);
                listed(offset, timestamp, epoch)
            }))
    }

    /// A client's OffsetForLeaderEpoch (truncation detection, KIP-320): where `epoch` ends in the
    /// leader's log. Followers go through the core instead ([`Partition::offsets_for_leader_epoch`]).
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: Option<LeaderEpoch>,
        epoch: LeaderEpoch,
    ) -> Result<replication::EpochEndOffset, PartitionError> {
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        if !inner.replica.is_leader() {
            return Err(replication::Error::NotLeaderOrFollower.into());
        }
        fence(current_leader_epoch, inner.replica.leader_epoch())?;
        Ok(inner
            .replica
            .epochs()
            .end_offset_for(epoch, inner.replica.log_end_offset()))
    }

    /// The log start offset the core knows ([`Partition::status`]'s, without copying the rest).
    pub fn log_start_offset(&self) -> Offset {
        self.lock().replica.log_start_offset()
    }

    /// Whether the partition failed (it stops serving until repaired).
    pub fn is_failed(&self) -> bool {
        self.lock().failed.is_some()
    }

    /// State for Metadata answers and metrics.
    pub fn status(&self) -> PartitionStatus {
        let inner = self.lock();
        PartitionStatus {
            is_leader: inner.replica.is_leader() && inner.failed.is_none(),
            state: inner.replica.partition_state().cloned(),
            high_watermark: inner.replica.high_watermark(),
            log_end_offset: inner.replica.log_end_offset(),
            log_start_offset: inner.replica.log_start_offset(),
            failed: inner.failed.clone(),
            durable_end_offset: inner.replica.durable_end_offset(),
        }
    }

    /// Applies the topic's current configs to the open log and the core (AlterConfigs): the
    /// next produce, append and housekeeping pass use them. A no-op when nothing changed.
    pub fn reconfigure(&self, log: LogConfig, min_insync_replicas: usize) {
        let mut inner = self.lock();
        if inner.replica.min_insync_replicas() != min_insync_replicas {
            tracing::info!(tp = %self.tp, min_insync_replicas, "min.insync.replicas changed");
            inner.replica.set_min_insync_replicas(min_insync_replicas);
        }
        if let Some(open) = inner.log.as_mut().filter(|open| *open.config() != log) {
            tracing::info!(tp = %self.tp, ?log, "topic configs changed");
            open.set_config(log);
        }
    }

    /// The configuration the log runs with, `None` once failed or closed.
    pub fn log_config(&self) -> Option<LogConfig> {
        self.lock().log.as_ref().map(|log| log.config().clone())
    }

    /// The `min.insync.replicas` the core uses.
    pub fn min_insync_replicas(&self) -> usize {
        self.lock().replica.min_insync_replicas()
    }

    /// The bytes of every segment of the log (DescribeLogDirs' partition size), `None` once
    /// the log failed or closed.
    pub fn size_bytes(&self) -> Option<u64> {
        let inner = self.lock();
        Self::refuse_if_unusable(&inner).ok()?;
        inner.log.as_ref().map(PartitionLog::size_bytes)
    }

    /// The idempotent producers this replica remembers (KIP-664's DescribeProducers, answered
    /// by leaders and followers alike, as Kafka's `Partition.activeProducerState`), by id: the
    /// epoch and last sequence from the producer state, the last timestamp from the header of
    /// the producer's last batch in the log (-1 once retention or DeleteRecords removed it).
    pub fn active_producers(&self) -> Result<Vec<ActiveProducer>, PartitionError> {
        let inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
        let producers: Vec<ActiveProducer> = inner
            .producers
            .producers()
            .filter_map(|(producer_id, entry)| {
                let last = entry.batches.last()?;
                let last_timestamp = log
                    .read(last.last_offset, 1)
                    .ok()
                    .and_then(|read| log_core::batch::BatchHeader::parse(&read.bytes).ok())
                    .filter(|header| header.last_offset() >= last.last_offset)
                    .map_or(-1, |header| header.max_timestamp);
                Some(ActiveProducer {
                    producer_id,
                    producer_epoch: entry.epoch,
                    last_sequence: last.last_sequence,
                    last_timestamp,
                })
            })
            .collect();
        assert!(producers.len() <= inner.producers.producer_count());
        Ok(producers)
    }

    /// Rolls once `segment.ms` is due, enforces retention and compacts; called periodically by
    /// the node (it rolled every active segment on every pass, which with timestamp-less records
    /// let time retention delete what was just produced). A log start
    /// moved by retention reaches the core (which owns it) in the same critical section, so no
    /// fetch or read sees the log and the core disagree on it.
    pub fn housekeeping(&self) {
        let mut inner = self.lock();
        if Self::refuse_if_unusable(&inner).is_err() {
            return;
        }
        let now = runtime::wall_clock_ms();
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        let result = log.roll_if_due(now).and_then(|_| {
            let start = log.enforce_retention(now)?.log_start_offset;
            if log.config().compacted {
                log.compact(now)?;
            }
            Ok(start)
        });
        let expired = {
            inner.producers.advance_clock(now);
            inner.producers.expire(PRODUCER_ID_EXPIRATION_MS)
        };
        if expired > 0 {
            tracing::info!(tp = %self.tp, expired, "idle producers expired");
        }
        let result = result
            .map_err(|error| format!("housekeeping: {error}"))
            .and_then(|start| {
                self.snapshot_if_due(&mut inner)
                    .map(|()| start)
                    .map_err(|error| format!("producer snapshot: {error}"))
            });
        match result {
            Err(reason) => self.fail(&mut inner, reason),
            Ok(start) if start > inner.replica.log_start_offset() => {
                tracing::info!(tp = %self.tp, ?start, "retention moved the log start");
                self.step_with(inner, Input::LogStartAdvanced(start), None);
            }
            Ok(_) => {}
        }
    }

    /// DeleteRecords on the leader (Kafka's `Partition.deleteRecordsOnLeader`): moves the log
    /// start up to `offset` (-1: the HW) and deletes the segments wholly below it, then tells
    /// the core, which owns the log start, in the same critical section, as retention does.
    /// Returns the log start afterwards (Kafka's low watermark on the leader). Beyond the HW,
    /// or negative: OFFSET_OUT_OF_RANGE; not the leader: NOT_LEADER_OR_FOLLOWER. Followers
    /// learn the new start from the leader's fetch answers ([`Partition::follow_log_start`]).
    pub fn delete_records(&self, offset: i64) -> Result<Offset, PartitionError> {
        let mut inner = self.lock();
        Self::refuse_if_unusable(&inner)?;
        if !inner.replica.is_leader() {
            return Err(replication::Error::NotLeaderOrFollower.into());
        }
        let hw = inner.replica.high_watermark();
        let start = inner.replica.log_start_offset();
        let target = if offset == -1 { hw } else { Offset(offset) };
        if target.0 < 0 || target > hw {
            return Err(replication::Error::OffsetOutOfRange {
                log_start_offset: start,
                log_end_offset: hw,
            }
            .into());
        }
        if target <= start {
            return Ok(start);
        }
        let log = inner.log.as_mut().ok_or(PartitionError::Closed)?;
        assert!(log.high_watermark() == hw, "the log holds the core's HW");
        match log.advance_log_start(target) {
            Ok(deleted) => {
                tracing::info!(tp = %self.tp, ?target, deleted, "records deleted: the log start moved");
            }
            Err(error) => {
                let refusal = storage(error);
                self.fail(&mut inner, refusal.to_string());
                return Err(refusal);
            }
        }
        assert!(target > start && target <= hw);
        if let Err(refusal) = self.snapshot_if_due(&mut inner) {
            self.fail(&mut inner, refusal.to_string());
            return Err(refusal);
        }
        self.step_with(inner, Input::LogStartAdvanced(target), None);
        // The core took the start in the step (its input never lowers it); a failure since
        // answers this request with the partition's error.
        Self::refuse_if_unusable(&self.lock())?;
        Ok(target)
    }

    /// A follower's fetch reported its log start (the leader keeps the latest per replica).
    pub fn note_replica_log_start(&self, replica: BrokerId, log_start: Offset) {
        if log_start.0 < 0 {
            return;
        }
        let mut inner = self.lock();
        let previous = inner.replica_log_starts.insert(replica, log_start);
        drop(inner);
        if previous != Some(log_start) {
            // DeleteRecords waits on this for its low watermark.
            self.progress.notify_waiters();
        }
    }

    /// DeleteRecords' low watermark on the leader (Kafka's `Partition.lowWatermarkIfLeader`):
    /// the lowest log start over this replica and the followers `alive` names, a follower that
    /// has not reported one counting as -1. `None` off the leader.
    pub fn low_watermark(&self, alive: impl Fn(BrokerId) -> bool) -> Option<i64> {
        let inner = self.lock();
        if Self::refuse_if_unusable(&inner).is_err() || !inner.replica.is_leader() {
            return None;
        }
        let own = inner.replica.log_start_offset();
        let state = inner.replica.partition_state()?;
        let low = state
            .replicas
            .iter()
            .filter(|b| **b != self.broker_id && alive(**b))
            .map(|b| inner.replica_log_starts.get(b).map_or(-1, |o| o.0))
            .fold(own.0, i64::min);
        assert!(low <= own.0);
        Some(low)
    }

    /// The followers a consumer at `fetch_offset` may be sent to instead of this leader (Kafka's
    /// `findPreferredReadReplica` candidates): in the committed ISR (a lagging replica outside
    /// it could keep a consumer behind for ever), holding `fetch_offset` (log start at or below
    /// it, as far as the follower reported one, and a flushed LEO at or above it). Ascending by
    /// broker id; empty off the leader.
    pub fn read_replica_candidates(&self, fetch_offset: Offset) -> Vec<ReadReplicaCandidate> {
        let inner = self.lock();
        if Self::refuse_if_unusable(&inner).is_err() || !inner.replica.is_leader() {
            return Vec::new();
        }
        let Some(state) = inner.replica.partition_state() else {
            return Vec::new();
        };
        let candidates: Vec<ReadReplicaCandidate> = state
            .isr
            .iter()
            .filter(|b| **b != self.broker_id)
            .filter_map(|b| {
                let progress = inner.replica.follower_progress(*b)?;
                let log_end_offset = progress.log_end_offset?;
                let log_start = inner.replica_log_starts.get(b).copied();
                let holds = log_end_offset >= fetch_offset
                    && log_start.is_none_or(|start| start <= fetch_offset);
                holds.then_some(ReadReplicaCandidate {
                    broker: *b,
                    log_end_offset,
                    last_caught_up_ms: progress.last_caught_up_ms,
                })
            })
            .collect();
        assert!(candidates.len() <= state.isr.len());
        assert!(candidates.windows(2).all(|w| w[0].broker < w[1].broker));
        candidates
    }

    /// A follower learns its leader's log start from a fetch answer (Kafka's follower calls
    /// `maybeIncrementLogStartOffset(leaderLogStartOffset)`): its own start follows, up to its
    /// HW (it deletes only what it knows to be committed), through the core's input, as
    /// retention does. Leaders ignore it; a start at or below ours changes nothing.
    pub fn follow_log_start(&self, leader_log_start: Offset) {
        let mut inner = self.lock();
        if Self::refuse_if_unusable(&inner).is_err() || inner.replica.is_leader() {
            return;
        }
        let target = leader_log_start.min(inner.replica.high_watermark());
        if target <= inner.replica.log_start_offset() {
            return;
        }
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        if let Err(error) = log.advance_log_start(target) {
            let reason = format!("moving the log start: {error}");
            self.fail(&mut inner, reason);
            return;
        }
        tracing::info!(tp = %self.tp, ?target, "the leader's log start moved; ours follows");
        if let Err(error) = self.snapshot_if_due(&mut inner) {
            self.fail(&mut inner, format!("producer snapshot: {error}"));
            return;
        }
        self.step_with(inner, Input::LogStartAdvanced(target), None);
    }

    /// Flushes and closes the log; the partition answers nothing afterwards. `delete` also
    /// removes its files (topic deleted).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for (_, waiter) in std::mem::take(&mut inner.waiters) {
            let _gone = waiter.send(Err(PartitionError::Closed));
        }
        if let Some(log) = inner.log.take() {
            let end = log.log_end_offset();
            match log.close() {
                Err(error) => tracing::warn!(tp = %self.tp, %error, "closing the log failed"),
                // A clean shutdown's snapshot: the next open replays nothing.
                Ok(()) if inner.failed.is_none() && inner.snapshot_newest != Some(end) => {
                    let written =
                        producer_snapshots::write(&*self.disk, &self.dir, end, &inner.producers);
                    if let Err(error) = written {
                        tracing::warn!(tp = %self.tp, %error, "the closing producer snapshot failed; the next open replays the log");
                    }
                }
                Ok(()) => {}
            }
        }
        drop(inner);
        self.progress.notify_waiters();
    }

    /// Runs the core's consistency checks and the log's (tests and simulation call it).
    pub fn check_invariants(&self) {
        let inner = self.lock();
        inner.replica.check_invariants();
        if let Some(log) = inner.log.as_ref() {
            log.check_invariants();
            assert_eq!(
                inner.replica.log_end_offset(),
                log.log_end_offset(),
                "core LEO vs log LEO"
            );
            assert_eq!(
                inner.replica.log_start_offset(),
                log.log_start_offset(),
                "core log start vs log start"
            );
            assert!(
                inner.replica.durable_end_offset() <= log.durable_end(),
                "the core counts more as durable than the log flushed"
            );
        }
    }

    /// This broker's id.
    pub fn broker_id(&self) -> BrokerId {
        self.broker_id
    }

    /// The IO worker's first step of a round: take the wanted flush and plan it (no IO). `None`
    /// when nothing is wanted or the partition stopped serving.
    pub(crate) fn plan_flush(
        &self,
        journal: Option<&log_core::journal::JournalClock>,
    ) -> Option<FlushJob> {
        let mut inner = self.lock();
        inner.flush_queued = false;
        let (seq, up_to) = inner.flush_wanted.take()?;
        if inner.closed || inner.failed.is_some() {
            return None;
        }
        let log = inner.log.as_ref()?;
        let planned = log.plan_flush().and_then(|plan| {
            let Some(clock) = journal else {
                return Ok((plan, Vec::new()));
            };
            // The bytes to journal, read under the lock (they are the plan's only until the
            // lock goes), each record's sequence reserved under it too (see `JournalClock`).
            let writes = log.segment_writes(&plan, &self.dir)?;
            let records = writes
                .into_iter()
                .map(|write| (clock.reserve(), write))
                .collect();
            Ok((plan, records))
        });
        match planned {
            Ok((plan, records)) => Some(FlushJob {
                seq,
                up_to,
                disk: log.disk(),
                plan,
                records,
            }),
            Err(error) => {
                self.fail(&mut inner, format!("flush: {error}"));
                None
            }
        }
    }

    /// Whether a replay would still need this partition's journal record `sequence` ending at
    /// `end`, and for whom: nobody once closed (a closed log synced everything; a failed one
    /// closes once its repair wrote its records back and reopened it); a failed copy until its
    /// repair, or until the journal gave up on it ([`Partition::journal_records_released`]).
    /// Releasing a failed copy's records made an acknowledged record's only durable copy go
    /// (seed 275316).
    pub(crate) fn journal_hold(&self, sequence: u64, end: Offset) -> JournalHold {
        let inner = self.lock();
        if inner.closed {
            return JournalHold::None;
        }
        if inner.failed.is_some() {
            let needs = !inner.journal_records_lost
                && inner
                    .journal_need_failed
                    .is_some_and(|need| need.needs(sequence, end));
            return if needs {
                JournalHold::Failed
            } else {
                JournalHold::None
            };
        }
        let needs = inner
            .log
            .as_ref()
            .is_some_and(|log| log.needs_journal_record(sequence, end));
        if needs {
            JournalHold::Live
        } else {
            JournalHold::None
        }
    }

    /// The journal is about to release records this failed copy still needed, the data
    /// directory already marked unclean: its repair reports it not intact.
    pub(crate) fn journal_records_released(&self) {
        buggify::probe!("partition.journal_records_released_failed");
        tracing::warn!(tp = %self.tp, "the journal released records the failed copy still needed: it is no longer intact");
        self.lock().journal_records_lost = true;
    }

    /// Whether the journal released records this failed copy needed (see above).
    pub fn journal_records_lost(&self) -> bool {
        self.lock().journal_records_lost
    }

    /// Queues a state checkpoint whether or not one is due (the journal needs it to release a
    /// file); whether it was not queued already.
    pub(crate) fn queue_checkpoint_forced(&self) -> bool {
        let mut inner = self.lock();
        inner.checkpoint_forced = true;
        if inner.checkpoint_queued {
            return false;
        }
        inner.checkpoint_queued = true;
        true
    }

    /// The IO worker's last step: record what the sync made durable and tell the core, which
    /// answers the produces and fetches waiting for it.
    pub(crate) fn finish_flush(&self, job: FlushJob, synced: Result<(), log_core::DiskError>) {
        self.finish_with(job, |log, plan| log.finish_flush(plan, synced));
    }

    /// The IO worker's last step of a journaled round: the job's records are in the journal
    /// (or the journal failed): record it and tell the core.
    pub(crate) fn finish_journaled_flush(&self, job: FlushJob, journaled: Result<(), LogError>) {
        self.finish_with(job, |log, plan| log.finish_journaled_flush(plan, journaled));
    }

    /// Finishes `job` on the log with `finish` (which returns the durable end) and steps the
    /// core with what it made durable.
    fn finish_with(
        &self,
        job: FlushJob,
        finish: impl FnOnce(&mut PartitionLog, log_core::FlushPlan) -> Result<Offset, LogError>,
    ) {
        let mut inner = self.lock();
        if inner.closed || inner.failed.is_some() {
            return;
        }
        let Some(log) = inner.log.as_mut() else {
            return;
        };
        let flushed = match finish(log, job.plan) {
            Ok(flushed) => flushed,
            Err(error) => {
                self.fail(&mut inner, format!("flush: {error}"));
                return;
            }
        };
        assert!(flushed >= Offset::ZERO);
        let up_to = job.up_to.min(flushed);
        self.step_with(
            inner,
            Input::FlushCompleted {
                seq: job.seq,
                up_to,
            },
            None,
        );
    }

    /// After a round's flush: whether a state checkpoint came due and is not queued on the
    /// checkpointer yet; if so it counts as queued until [`Partition::plan_checkpoint`].
    pub(crate) fn queue_checkpoint(&self) -> bool {
        let mut inner = self.lock();
        if inner.checkpoint_queued {
            return false;
        }
        let due = inner.log.as_ref().is_some_and(PartitionLog::checkpoint_due);
        inner.checkpoint_queued = due;
        due
    }

    /// After a round's acknowledgements went out: the plan of a state checkpoint, if enough was
    /// flushed since the last one (no IO under the lock: the IO worker writes it, then
    /// [`Partition::install_checkpoint`]).
    pub(crate) fn plan_checkpoint(&self) -> Option<(CheckpointPlan, Arc<dyn Disk>)> {
        let mut inner = self.lock();
        inner.checkpoint_queued = false;
        let forced = std::mem::take(&mut inner.checkpoint_forced);
        if inner.closed || inner.failed.is_some() {
            return None;
        }
        let log = inner
            .log
            .as_mut()
            .filter(|log| forced || log.checkpoint_due())?;
        let disk = log.disk();
        match log.plan_checkpoint() {
            Ok(plan) => Some((plan, disk)),
            Err(error) => {
                self.fail(&mut inner, format!("checkpoint: {error}"));
                None
            }
        }
    }

    /// A written checkpoint plan's rename (the commit point, a metadata change without a sync)
    /// under the lock, unless the plan went stale meanwhile; whether it was installed. A failed
    /// write fails the partition, like any disk error.
    pub(crate) fn install_checkpoint(
        &self,
        plan: &CheckpointPlan,
        written: Result<(), LogError>,
    ) -> bool {
        let mut inner = self.lock();
        if inner.closed || inner.failed.is_some() {
            return false;
        }
        let Some(log) = inner.log.as_mut() else {
            return false;
        };
        match log.install_checkpoint(plan, written) {
            Ok(installed) => installed,
            Err(error) => {
                self.fail(&mut inner, format!("checkpoint: {error}"));
                false
            }
        }
    }

    /// An installed checkpoint whose directory could not be synced: a disk error.
    pub(crate) fn checkpoint_sync_failed(&self, error: &LogError) {
        let mut inner = self.lock();
        if inner.failed.is_none() && !inner.closed {
            self.fail(&mut inner, format!("checkpoint: {error}"));
        }
    }
}

/// One partition's part of an IO worker round: the core's flush request and the log's plan.
#[derive(Debug)]
pub(crate) struct FlushJob {
    /// The core's flush sequence number, echoed in `FlushCompleted`.
    seq: u64,
    /// The offset the core asked to make durable.
    up_to: Offset,
    /// The disk the plan's files live on.
    disk: Arc<dyn Disk>,
    /// Which files to sync.
    plan: log_core::FlushPlan,
    /// A journaled round's records of the plan's bytes, each with its reserved sequence.
    pub(crate) records: Vec<(u64, log_core::wal::SegmentWrite)>,
}

impl FlushJob {
    /// Syncs the plan's files; runs on the IO worker's blocking call, off the partition's lock.
    pub(crate) fn sync(&self) -> Result<(), log_core::DiskError> {
        self.plan.sync(&*self.disk)
    }
}

/// The cheap invariants every step keeps, checked in production too (O(1)): the core and the log
/// agree on the log end, and the HW never passes it.
fn check_step_invariants(inner: &Inner) {
    let core_leo = inner.replica.log_end_offset();
    assert!(
        inner.replica.high_watermark() <= core_leo,
        "HW {:?} past the LEO {core_leo:?}",
        inner.replica.high_watermark()
    );
    if let (Some(log), None) = (inner.log.as_ref(), inner.failed.as_ref()) {
        assert_eq!(core_leo, log.log_end_offset(), "core LEO vs log LEO");
        assert!(log.high_watermark() <= log.log_end_offset());
    }
}

/// KIP-320 fencing of a client request naming `current` as the leader epoch (none: unchecked).
fn fence(current: Option<LeaderEpoch>, ours: LeaderEpoch) -> Result<(), PartitionError> {
    match current {
        Some(epoch) if epoch < ours => Err(replication::Error::FencedLeaderEpoch.into()),
        Some(epoch) if epoch > ours => Err(replication::Error::UnknownLeaderEpoch.into()),
        _ => Ok(()),
    }
}

/// Maps a log failure on the effect path to the partition's failure. Only the disk may fail a
/// partition: client bytes were validated at ingress by the same function log-core applies, and
/// replicated batches at the fetch answer's ingress, so any other refusal means the core and the
/// log disagree — a broken invariant, and fail stop.
fn storage(error: LogError) -> PartitionError {
    assert!(
        error.is_storage_failure(),
        "the log refused what the replica core ordered: {error}"
    );
    PartitionError::Storage(error.to_string())
}

/// An in-sync follower a leader may name as a consumer's preferred read replica (KIP-392).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReplicaCandidate {
    /// The follower.
    pub broker: BrokerId,
    /// Its flushed log end offset as its last fetch reported it.
    pub log_end_offset: Offset,
    /// When it last fetched up to the leader's LEO (the leader's monotonic clock).
    pub last_caught_up_ms: u64,
}

/// A read for a client: storage failures are KAFKA_STORAGE_ERROR; a read outside the log's range
/// (a race with retention) is OFFSET_OUT_OF_RANGE for that request only.
fn read_failure(error: LogError) -> PartitionError {
    match error {
        LogError::OffsetOutOfRange {
            log_start, log_end, ..
        } => replication::Error::OffsetOutOfRange {
            log_start_offset: log_start,
            log_end_offset: log_end,
        }
        .into(),
        other => PartitionError::Storage(other.to_string()),
    }
}

/// The read a captured follower fetch answer waits for, made after the step without the lock.
#[derive(Debug)]
struct CapturedRead {
    /// What the core answered with.
    read: ReadRange,
    /// The request's byte budget left for it.
    bytes_max: usize,
    /// The log as the core answered: the read must find the same bytes.
    version: LogVersion,
}

/// What a log read gave: its batches, or the log's refusal.
type LogRead = Result<ReadResult, LogError>;

/// An empty read at `from` (the batches of an answer end there).
fn nothing_read(log: &PartitionLog, from: Offset) -> ReadResult {
    ReadResult {
        bytes: Bytes::new(),
        next_offset: from,
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        high_watermark: log.high_watermark(),
    }
}

/// Why a follower's fetch answer could not be read: the partition's refusal, or the log's.
enum ReadFailed {
    Partition(PartitionError),
    Log(LogError),
}

impl From<LogError> for ReadFailed {
    fn from(error: LogError) -> Self {
        ReadFailed::Log(error)
    }
}

/// Is this message an answer to a replica request (as opposed to a request of our own)?
fn is_answer(message: &Message) -> bool {
    matches!(
        message,
        Message::FetchResponse(_) | Message::OffsetsForLeaderEpochResponse(_)
    )
}

/// Appends the core's batch: as leader (log-core assigns offsets and the epoch) for a produce,
/// as follower otherwise. The log must put it exactly where the core expects.
fn append(
    inner: &mut Inner,
    batch: &mut replication::Batch,
    is_produce: bool,
) -> Result<(), PartitionError> {
    let now = runtime::wall_clock_ms();
    inner.producers.advance_clock(now);
    // Taken whatever the input: a produce's rules serve its own append only.
    let validated = inner.produce_validated.take();
    let log = inner.log.as_mut().ok_or(PartitionError::Closed)?;
    let info = match (is_produce, validated) {
        // The ingress validated the payload (`start_produce`): the log checks its rules are
        // still the ones it applies and appends it in place, without a second pass.
        // The payload is the produce's own buffer (the core moved it here, nothing shares it), so
        // it turns back into a `Vec` without a copy.
        (true, Some(rules)) => {
            let mut payload = Vec::from(std::mem::take(&mut batch.payload));
            let info =
                log.append_validated_as_leader(&mut payload, &rules, batch.leader_epoch, now);
            batch.payload = Bytes::from(payload);
            info
        }
        (true, None) => log.append_as_leader(&batch.payload, batch.leader_epoch, now),
        // Followers' batches were verified as the fetch answer arrived
        // (`replication_wire::fetch_response_from_kafka`, `batches_from_bytes`).
        (false, _) => log.append_verified_as_follower(&batch.payload, now),
    }
    .map_err(storage)?;
    if info.first_offset != batch.base_offset || info.log_end_offset != batch.end_offset() {
        return Err(PartitionError::Storage(format!(
            "log placed the batch at {:?}..{:?}, the core expected {:?}..{:?}",
            info.first_offset,
            info.log_end_offset,
            batch.base_offset,
            batch.end_offset()
        )));
    }
    record_producers(inner, batch.base_offset, &batch.payload);
    if !is_produce {
        // The follower holds records it has not made durable yet: a power loss of every node
        // now must lose nothing the leader acknowledged (it counted only flushed offsets).
        buggify::crash_point("crash.follower_appended_unflushed");
    }
    Ok(())
}

/// Feeds the producer ids, epochs and sequences of appended batches to the producer table. The
/// payload was validated before the append, so its batches parse.
fn record_producers(inner: &mut Inner, base_offset: Offset, payload: &[u8]) {
    let mut offset = base_offset;
    assert!(offset >= Offset::ZERO);
    for view in split_batches(payload).flatten() {
        let header = view.header();
        let count = i64::from(header.last_offset_delta) + 1;
        if header.producer_id >= 0 {
            inner
                .producers
                .record(producer_snapshots::logged_batch(header, offset));
        }
        offset = offset.add(count);
    }
}

/// The active segment's base of the open log.
fn log_active_base(inner: &Inner) -> Result<Offset, PartitionError> {
    let log = inner.log.as_ref().ok_or(PartitionError::Closed)?;
    Ok(log.active_segment_base())
}

/// A leader's answer that makes this follower truncate names where the leader's log and ours
/// part, and the core takes that offset as its new log end. The log keeps or drops a batch
/// whole, so an offset inside one of our batches would leave the core's log end above the
/// log's, and the next fetch would report records this copy no longer holds. It happens when
/// the two logs' batches differ there: a leader whose log start (retention) is past the epoch
/// it is asked about answers with that start, which may fall inside a batch only our copy has
/// (seed 8845). The offset is named here as the log will leave it: the start of that batch,
/// which is also where the two logs last agree.
fn align_truncation(log: &PartitionLog, input: Input) -> Result<Input, LogError> {
    let Input::Message { from, mut message } = input else {
        return Ok(input);
    };
    match &mut message {
        Message::FetchResponse(FetchResponse {
            result:
                Ok(replication::FetchData {
                    diverging_epoch: Some(end),
                    ..
                }),
            ..
        })
        | Message::OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse {
            result: Ok(end),
            ..
        }) => {
            end.end_offset = log.end_after_truncation(end.end_offset)?;
        }
        Message::FetchResponse(FetchResponse {
            result: Err(replication::Error::OffsetOutOfRange { log_end_offset, .. }),
            ..
        }) => {
            *log_end_offset = log.end_after_truncation(*log_end_offset)?;
        }
        _ => {}
    }
    Ok(Input::Message { from, message })
}

/// After every step: the log's HW follows the core's. The HW is core state the log only keeps
/// for its checkpoint and as retention's bound, so the driver reads it rather than being told
/// (epoch starts and the log start, which change the log, are effects and inputs).
fn sync_log_with_core(inner: &mut Inner) -> Result<(), LogError> {
    let Some(log) = inner.log.as_mut() else {
        return Ok(());
    };
    let hw = inner.replica.high_watermark().min(log.log_end_offset());
    if hw != log.high_watermark() {
        log.set_high_watermark(hw)?;
    }
    Ok(())
}

/// Idempotence: a retried batch of a known producer answers with its original offset instead of
/// being appended again; a gap or a stale epoch is refused. `Ok(None)`: append. The validator
/// guarantees an idempotent payload is exactly one batch with a real epoch and sequence.
fn check_producer(
    inner: &Inner,
    produced: &ProducedPayload,
) -> Result<Option<(Offset, Offset)>, PartitionError> {
    let Some(batch) = produced.idempotent() else {
        return Ok(None);
    };
    assert!(batch.producer_epoch >= 0 && batch.base_sequence >= 0);
    if !inner.replica.is_leader() {
        // The core refuses it with NOT_LEADER_OR_FOLLOWER; no sequence bookkeeping needed.
        return Ok(None);
    }
    let count = i32::try_from(batch.record_count).expect("at most RECORDS_PER_BATCH_MAX records");
    match inner.producers.check(
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        count,
    ) {
        Ok(crate::producer_state::Decision::Append) => Ok(None),
        Ok(crate::producer_state::Decision::Duplicate {
            first_offset,
            last_offset,
        }) => Ok(Some((first_offset, last_offset))),
        Err(error) => Err(PartitionError::Producer {
            code: error.error_code(),
            reason: error.to_string(),
        }),
    }
}

/// One kind of the core's timers on one partition.
#[derive(Debug, Default)]
struct TimerSlot {
    /// When it fires (monotonic ms), if armed.
    deadline: Option<u64>,
    /// The id of the task serving the slot; a task whose id is stale ends when it wakes.
    task_id: u64,
    /// When that task wakes next, while it lives.
    task_wake: Option<u64>,
}

/// A timer task: sleeps to its slot's deadline (following it when it is re-armed later), then
/// fires into the core; ends when the slot is cancelled, or when an earlier arming replaced it.
async fn timer_task(partition: Weak<Partition>, timer: TimerKind, task_id: u64, wake: u64) {
    let mut wake = wake;
    loop {
        let now = runtime::monotonic_ms();
        tokio::time::sleep(Duration::from_millis(wake.saturating_sub(now))).await;
        let Some(partition) = partition.upgrade() else {
            return;
        };
        let mut inner = partition.lock();
        let now = runtime::monotonic_ms();
        let slot = inner.timers.entry(timer).or_default();
        if slot.task_id != task_id {
            return;
        }
        match slot.deadline {
            Some(deadline) if deadline > now => {
                wake = deadline;
                slot.task_wake = Some(deadline);
            }
            Some(_) => {
                slot.deadline = None;
                slot.task_wake = None;
                partition.step_with(inner, Input::Timer(timer), None);
                return;
            }
            None => {
                slot.task_wake = None;
                return;
            }
        }
    }
}

/// One ListOffsets answer: an offset, the timestamp of its record (-1 for the log start and the
/// HW) and the leader epoch it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset.
    pub offset: Offset,
    /// The record's timestamp, or -1.
    pub timestamp: i64,
    /// The epoch of the batch holding the offset (the current one for the log start and HW).
    pub leader_epoch: LeaderEpoch,
}
