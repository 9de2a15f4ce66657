//! The nouns the replica core speaks: configuration, partition state from the controller, the
//! messages replicas exchange, the inputs a driver feeds in and the effects it must carry out.

use bytes::Bytes;
use std::collections::BTreeSet;
use wire::{BrokerId, LeaderEpoch, Offset, PartitionEpoch};

use crate::Error;

/// Static limits and timeouts of one replica. Every field is a limit the core enforces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This replica's broker: decides whether partition state names us leader or follower.
    pub broker_id: BrokerId,
    /// `min.insync.replicas`: acks=all needs at least this many committed ISR members.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// How long a follower waits before fetching again after an empty or failed fetch. The driver
    /// picks the delay inside `[fetch_backoff_ms, 2 * fetch_backoff_ms]`.
    pub fetch_backoff_ms: u64,
    /// How long a follower waits for the answer to its request before it gives it up and sends
    /// again (Kafka's `replica.socket.timeout.ms`). The leader holds a fetch up to its long poll,
    /// so this must exceed the long poll plus a round trip, or followers resend fetches the
    /// leader is still holding. The driver picks the delay inside `[this, this + backoff]`.
    pub fetch_retransmit_ms: u64,
    /// How long an acks=all produce may wait for the HW before it fails with `RequestTimedOut`.
    pub request_timeout_ms: u64,
    /// Most records a leader hands a follower in one fetch response: bounds message size.
    pub fetch_records_max: i64,
    /// Most acks=all produces waiting for the HW at once: bounds leader memory.
    pub produce_waiting_max: usize,
    /// Truncate through OffsetsForLeaderEpoch on becoming follower (KIP-101/279) instead of relying
    /// only on the diverging epoch of Fetch v12+. Forced on by `BugSwitches::no_epoch_fencing`,
    /// because the fetch of that era carried no last fetched epoch.
    pub truncate_via_offsets_for_leader_epoch: bool,
}

impl Config {
    /// Kafka's defaults for a replica on `broker_id`, with `min.insync.replicas = 2`.
    pub fn new(broker_id: BrokerId) -> Config {
        Config {
            broker_id,
            min_insync_replicas: 2,
            replica_lag_time_max_ms: 30_000,
            fetch_backoff_ms: 500,
            fetch_retransmit_ms: 30_000,
            request_timeout_ms: 30_000,
            fetch_records_max: 1_000_000,
            produce_waiting_max: 10_000,
            truncate_via_offsets_for_leader_epoch: false,
        }
    }
}

/// Historic Kafka bugs, reintroducible so the checkers can prove they catch them. All false in
/// production; only tests and the simulator set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BugSwitches {
    /// Before KIP-101: a replica becoming follower truncates its log to its own HW, which may lag
    /// the leader's, and so may drop committed records.
    pub truncate_to_high_watermark: bool,
    /// Before KIP-320: fetches carry no leader epoch to check, and followers accept fetch responses
    /// whatever epoch they were sent in; truncation happens once, on becoming follower.
    pub no_epoch_fencing: bool,
    /// Before KIP-966: when no ISR member is alive, the controller may elect a replica that was not
    /// in the last ISR and keeps no ELR. Read by [`crate::election`], not by the replica.
    pub last_replica_standing: bool,
}

/// How many replicas must have a record before the produce is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Acks {
    /// Fire and forget: appended, never answered.
    None,
    /// Answered once the leader appended (volatile).
    Leader,
    /// Answered once the HW passes the record, with at least `min.insync.replicas` in the ISR.
    All,
}

/// A run of records with one leader epoch. The payload is opaque to the core; only the driver
/// and log-core look inside.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Batch {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Epoch of the leader that appended the batch: drives divergence detection.
    pub leader_epoch: LeaderEpoch,
    /// Number of records, at least one: offsets `[base_offset, base_offset + record_count)`.
    pub record_count: u32,
    /// The encoded records, untouched by the core: a shared slice, so a batch read from the log
    /// reaches the fetch answer, and a fetch answer the follower's log, without a copy.
    pub payload: Bytes,
}

impl Batch {
    /// The offset after the batch's last record.
    pub fn end_offset(&self) -> Offset {
        self.base_offset.add(i64::from(self.record_count))
    }
}

/// A client's produce, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProduceRequest {
    /// The client's correlation id, echoed in the reply.
    pub request_id: u64,
    /// How long the client waits, in replicas.
    pub acks: Acks,
    /// Number of records in `payload`, at least one.
    pub record_count: u32,
    /// The encoded records.
    pub payload: Vec<u8>,
}

/// The partition's state as the controller committed it (leader, ISR, ELR and their epochs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionState {
    /// The leader, or none while the partition is offline.
    pub leader: Option<BrokerId>,
    /// Grows with every leader change; fences stale leaders and followers.
    pub leader_epoch: LeaderEpoch,
    /// Grows with every change of this state; AlterPartition must name it.
    pub partition_epoch: PartitionEpoch,
    /// The replicas the leader waits for before advancing the HW.
    pub isr: BTreeSet<BrokerId>,
    /// Eligible Leader Replicas (KIP-966): out of the ISR but holding every committed record.
    pub elr: BTreeSet<BrokerId>,
    /// The assignment, in preference order.
    pub replicas: Vec<BrokerId>,
}

/// A leader's proposal to change the ISR, checked by the controller against `partition_epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlterPartition {
    /// The proposing leader.
    pub leader: BrokerId,
    /// The leader's epoch: a stale leader is refused.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the proposal builds on: a proposal on stale state is refused.
    pub partition_epoch: PartitionEpoch,
    /// The proposed ISR, always containing the leader.
    pub new_isr: BTreeSet<BrokerId>,
}

/// Where one leader epoch ends in a log: the answer to OffsetsForLeaderEpoch and the diverging
/// epoch of a fetch response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochEndOffset {
    /// The largest epoch at most the one asked for, or `LeaderEpoch::NONE` if there is none.
    pub leader_epoch: LeaderEpoch,
    /// The offset after that epoch's last record (the next epoch's start, or the LEO).
    pub end_offset: Offset,
}

/// A follower's fetch (Fetch v12+ fields that matter to replication).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchRequest {
    /// The fetching follower.
    pub replica_id: BrokerId,
    /// The follower's LEO, all of it flushed: the leader counts it towards the HW.
    pub fetch_offset: Offset,
    /// The epoch the follower believes the leader has (KIP-320 fencing).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch of the follower's last record, for divergence detection; NONE skips the check.
    pub last_fetched_epoch: LeaderEpoch,
}

/// The leader's answer to a fetch, when it has no error.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchData {
    /// The leader's HW after it counted this fetch.
    pub high_watermark: Offset,
    /// Set when the follower's log diverges: truncate before fetching records.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Records from the fetch offset, filled in by the driver from the leader's log.
    pub batches: Vec<Batch>,
}

/// A fetch response travelling from leader to follower.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchResponse {
    /// The answering leader.
    pub leader_id: BrokerId,
    /// The `current_leader_epoch` of the request: a follower drops answers from another epoch.
    pub leader_epoch: LeaderEpoch,
    /// The request's fetch offset: a follower drops answers to a fetch it no longer waits for.
    pub fetch_offset: Offset,
    /// The request's last fetched epoch. With the fetch offset it names the log the answer is
    /// for: an offset alone recurs after a truncation and a re-append, and a late answer to the
    /// old log would truncate records the leader already counted.
    pub last_fetched_epoch: LeaderEpoch,
    /// Records and HW, or a typed refusal.
    pub result: Result<FetchData, Error>,
}

/// An OffsetsForLeaderEpoch request from a follower (KIP-101/279).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetsForLeaderEpochRequest {
    /// The asking follower.
    pub replica_id: BrokerId,
    /// The epoch the follower believes the leader has (KIP-320 fencing).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch whose end offset the follower wants.
    pub leader_epoch: LeaderEpoch,
}

/// The leader's answer to OffsetsForLeaderEpoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetsForLeaderEpochResponse {
    /// The answering leader.
    pub leader_id: BrokerId,
    /// The request's `current_leader_epoch`.
    pub current_leader_epoch: LeaderEpoch,
    /// The request's `leader_epoch`: a follower drops answers to a question it no longer asks.
    pub requested_epoch: LeaderEpoch,
    /// The end offset, or a typed refusal.
    pub result: Result<EpochEndOffset, Error>,
}

/// Messages between replicas of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Message {
    /// Follower to leader.
    Fetch(FetchRequest),
    /// Leader to follower.
    FetchResponse(FetchResponse),
    /// Follower to leader.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest),
    /// Leader to follower.
    OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse),
}

/// Timers a replica arms. One of each kind at most: setting one again replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Follower: fetch again (after an empty answer, an error, or a lost request).
    FetchBackoff,
    /// Leader: look for followers that lag longer than `replica.lag.time.max.ms`.
    IsrCheck,
    /// Leader: fail acks=all produces whose deadline passed.
    ProduceDeadline,
}

/// Half-open offset range the driver reads from the leader's log into a fetch response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadRange {
    /// First offset to read.
    pub from: Offset,
    /// Offset after the last one to read; may be equal to `from` (nothing to read).
    pub to: Offset,
}

/// What the driver must do after a step, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Append the batch at the LEO, volatile until a later flush completes.
    Append(Batch),
    /// Remove every record at and after `offset`, durably (log-core syncs the truncation).
    TruncateTo(Offset),
    /// Delete the whole log and start it empty at `offset`, durably (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose LEO is below the leader's log start. The
    /// epoch cache empties, the HW and the log start become `offset`.
    TruncateFullyAndStartAt(Offset),
    /// Record in the log's epoch cache that `epoch` starts at `start` (the LEO): a new leader's
    /// epoch begins before any record of it exists, and OffsetsForLeaderEpoch answers must name
    /// it (Kafka's `assign` on becoming leader). Followers' epochs arrive with their batches.
    AssignEpochStart {
        /// The leader epoch that begins.
        epoch: LeaderEpoch,
        /// Its first offset: the log's LEO when the effect is applied.
        start: Offset,
    },
    /// Make everything below `up_to` durable, then report `Input::FlushCompleted` with `seq`.
    Flush {
        /// Offset the flush covers.
        up_to: Offset,
        /// Echoed in the completion; stale completions (from before a truncation) are ignored.
        seq: u64,
    },
    /// Send a message to another replica.
    Send {
        /// Receiving replica.
        to: BrokerId,
        /// The message.
        message: Message,
    },
    /// Read `read` from the log into `response.result.batches`, then send it to `to`.
    SendFetchResponse {
        /// Receiving follower.
        to: BrokerId,
        /// The response with an empty batch list.
        response: FetchResponse,
        /// The records to put in it.
        read: ReadRange,
    },
    /// Answer a produce: the base offset, or a typed refusal.
    Reply {
        /// The produce's request id.
        request_id: u64,
        /// Base offset of the appended records, or why not.
        result: Result<Offset, Error>,
    },
    /// Send an ISR change to the controller.
    AlterPartition(AlterPartition),
    /// Arm a timer; the driver picks the delay in `[delay_ms_min, delay_ms_max]` (jitter is its).
    SetTimer {
        /// Which timer.
        timer: TimerKind,
        /// Shortest delay.
        delay_ms_min: u64,
        /// Longest delay.
        delay_ms_max: u64,
    },
    /// Disarm a timer.
    CancelTimer(TimerKind),
}

/// Everything that can happen to a replica; `Replica::step` takes one with `now_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// A client produce (only leaders accept).
    Produce(ProduceRequest),
    /// A message from another replica.
    Message {
        /// The sender.
        from: BrokerId,
        /// The message.
        message: Message,
    },
    /// New partition state from the controller's metadata.
    PartitionState(PartitionState),
    /// The controller answered our AlterPartition (a success also arrives as partition state).
    AlterPartitionResponse(Result<PartitionState, Error>),
    /// A flush the core asked for finished.
    FlushCompleted {
        /// The flush's `seq`.
        seq: u64,
        /// Everything below this is durable.
        up_to: Offset,
    },
    /// A timer fired.
    Timer(TimerKind),
    /// The log's start moved up to `offset` (retention deleted the segments below it,
    /// DeleteRecords, or a follower followed its leader's start). At most the HW: log-core never
    /// deletes uncommitted records.
    LogStartAdvanced(Offset),
}
