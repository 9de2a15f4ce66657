//! The producer: partitioning, per-partition batching with linger, retries with leader
//! discovery, idempotence (InitProducerId + per-partition sequences), and precise outcomes.
//!
//! Each partition has one worker task owning its queue and its sequence state. The worker
//! gathers the records that arrive within `linger_ms` (up to `batch_records_max`) into one
//! batch and sends it; with idempotence up to `max_in_flight` batches (5, Kafka's default and
//! the most its brokers deduplicate) are in flight at once, pipelined on the worker's own
//! connection to the leader, each retried with *its* sequence until it is acknowledged, a
//! definite refusal arrives, or retries/delivery time run out. Batches are answered in the
//! order they were sealed, and the broker appends a producer's sequences in order, so a single
//! producer's records keep their order. Without idempotence one batch is in flight at a time
//! (a retry could otherwise overtake a later batch).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};

use crate::admin::backoff;
use crate::clock::wall_clock_ms;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::metadata::MetadataCache;
use crate::partitioner::Partitioner;
use crate::pool::ConnectionPool;
use crate::records::{encode_batch, OutgoingRecord, BATCH_RECORDS_MAX};
use crate::sequence::{increment_sequence, BatchStamp, PartitionSequence, ProducerIdentity};
pub use kafka_protocol::records::Compression;

/// Records (and flush markers) a partition queue holds before `send` waits for room.
pub const PARTITION_QUEUE_CAPACITY: usize = 10_000;

/// Most batches in flight per partition with idempotence: Kafka brokers remember a producer's
/// last five batches, so a retry of any of them is recognised (Kafka's producers refuse
/// `max.in.flight.requests.per.connection` above 5 with idempotence).
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// Producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// 0 (no reply), 1 (leader appended) or -1 (all in-sync replicas have it).
    pub acks: i16,
    /// InitProducerId + sequence numbers, so retries never duplicate. Requires acks = -1.
    pub idempotence: bool,
    /// How long a partition's first queued record waits for company before its batch leaves.
    pub linger_ms: u64,
    /// Most records per batch.
    pub batch_records_max: usize,
    /// Most resends of one batch after a retriable failure.
    pub retries_max: u32,
    /// Most batches of one partition in flight at once with idempotence (Kafka's
    /// `max.in.flight.requests.per.connection`, 1..=5); without idempotence it is 1.
    pub max_in_flight: usize,
    /// Bound on one batch's whole delivery (all attempts and backoffs).
    pub delivery_timeout_ms: u64,
    /// Send batches whose header max timestamp is -1, as sarama before 1.45.1 and librdkafka's
    /// C++ API do: a client behaviour the simulator draws (Kafka recomputes the field).
    pub header_max_timestamp_unset: bool,
    /// Send records whose timestamp is -1 (no create time), as clients before Kafka 0.10's
    /// timestamps and some bridges do: another behaviour the simulator draws.
    pub record_timestamps_unset: bool,
    /// The codec batches are written with (`compression.type`): none, gzip, snappy, lz4, zstd.
    pub compression: Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            idempotence: true,
            linger_ms: 5,
            batch_records_max: 500,
            retries_max: 10,
            max_in_flight: MAX_IN_FLIGHT_IDEMPOTENT,
            delivery_timeout_ms: 30_000,
            header_max_timestamp_unset: false,
            record_timestamps_unset: false,
            compression: Compression::None,
        }
    }
}

impl ProducerConfig {
    /// Refuses combinations Kafka refuses.
    pub fn validate(&self) -> Result<()> {
        if !(-1..=1).contains(&self.acks) {
            return Err(ClientError::Config(format!(
                "acks must be 0, 1 or -1, not {}",
                self.acks
            )));
        }
        if self.idempotence && self.acks != -1 {
            return Err(ClientError::Config(
                "idempotence requires acks = -1 (all)".into(),
            ));
        }
        if self.batch_records_max == 0 || self.batch_records_max > BATCH_RECORDS_MAX {
            return Err(ClientError::Config(format!(
                "batch_records_max must be in 1..={BATCH_RECORDS_MAX}"
            )));
        }
        if !(1..=MAX_IN_FLIGHT_IDEMPOTENT).contains(&self.max_in_flight) {
            return Err(ClientError::Config(format!(
                "max_in_flight must be in 1..={MAX_IN_FLIGHT_IDEMPOTENT}"
            )));
        }
        if self.delivery_timeout_ms == 0 {
            return Err(ClientError::Config(
                "delivery_timeout_ms must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset; -1 with acks = 0 (the broker does not answer).
    pub offset: i64,
}

/// Sees a copy of every acknowledged batch as it was sent: (topic, partition, the base offset it
/// was acknowledged at, encoded batch). The simulator's stale-request nemesis keeps them to
/// deliver again later.
pub type BatchTap = Arc<dyn Fn(&str, i32, i64, Bytes) + Send + Sync>;

/// A broker's OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID answer to an attempt of an
/// idempotent batch, with what the producer knew when it arrived (see [`RefusalTap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceRefusal {
    /// The partition.
    pub partition: i32,
    /// The batch's producer id.
    pub producer_id: i64,
    /// The batch's producer epoch.
    pub producer_epoch: i16,
    /// The batch's base sequence.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
    /// The error code (OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID).
    pub code: i16,
    /// Attempts of the batch so far, this one included (above 1: a retry with the same stamp).
    pub attempt: u32,
    /// Every batch this producer stamped before it in this epoch on this partition was
    /// acknowledged (or it is the epoch's first, sequence 0). Under acks=all with enough
    /// in-sync replicas and clean elections they are then in every log that can lead, so the
    /// leader knows the producer and expects this batch next, or holds it among the producer's
    /// last five batches (at most four were stamped after it: the window) and must answer it
    /// as a duplicate; a sequence refusal then means the leader's producer state is wrong
    /// (or, where retention moves the log start, that a replica which fell below it forgot
    /// the producer, UNKNOWN_PRODUCER_ID, or knows it only from a batch above the start,
    /// OUT_OF_ORDER_SEQUENCE for a retry of one that retention deleted, as in Kafka).
    pub predecessors_acknowledged: bool,
}

/// Sees every sequence refusal of an idempotent batch's attempt, as the broker answered it.
/// The simulator judges them.
pub type RefusalTap = Arc<dyn Fn(&str, &SequenceRefusal) + Send + Sync>;

/// Observers of a producer's traffic (the simulator's).
#[derive(Clone, Default)]
pub struct ProducerTaps {
    /// Copies of acknowledged batches.
    pub acknowledged: Option<BatchTap>,
    /// Sequence refusals.
    pub refused: Option<RefusalTap>,
}

/// A record's outcome: its offset, or the batch's error.
type Reply = oneshot::Sender<Result<i64>>;

/// What a partition queue carries.
enum Job {
    /// A record to batch, and where its outcome goes.
    Record {
        /// The record.
        record: OutgoingRecord,
        /// Receives the record's offset or the batch's error.
        reply: Reply,
    },
    /// Answered once every job queued before it has its outcome.
    Flush(oneshot::Sender<()>),
}

type PartitionKey = (String, i32);

/// What partition workers need. Workers hold only this, not [`Shared`], so dropping the last
/// producer handle drops the queues' senders and the workers finish their queue and exit.
struct Core {
    /// Connections to leaders and to the broker handing out producer ids.
    pool: ConnectionPool,
    /// Leaders of the partitions produced to.
    metadata: MetadataCache,
    /// Validated settings.
    config: ProducerConfig,
    /// Identity from construction; a worker fetches its own after a desynchronisation.
    identity: Option<ProducerIdentity>,
    /// Copies of acknowledged batches and sequence refusals go here, if set.
    taps: ProducerTaps,
}

/// State of the producer handles.
struct Shared {
    /// What workers share with the handles.
    core: Arc<Core>,
    /// Chooses partitions for records without one.
    partitioner: Partitioner,
    /// Queue of each partition's worker, created on first use.
    workers: Mutex<BTreeMap<PartitionKey, mpsc::Sender<Job>>>,
    /// Set by `close`: later sends fail definitely.
    closed: AtomicBool,
}

/// A Kafka producer. Cheap to clone; clones share queues and connections.
#[derive(Clone)]
pub struct Producer {
    /// State shared by clones; dropping the last clone stops the workers once queues drain.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.core.config)
            .finish()
    }
}

impl Producer {
    /// Builds a producer; with idempotence, first obtains a producer id (InitProducerId).
    pub async fn new(client: ClientConfig, config: ProducerConfig) -> Result<Producer> {
        Self::with_tap(client, config, None).await
    }

    /// [`Producer::new`] whose acknowledged batches are also handed to `tap`.
    pub async fn with_tap(
        client: ClientConfig,
        config: ProducerConfig,
        tap: Option<BatchTap>,
    ) -> Result<Producer> {
        let taps = ProducerTaps {
            acknowledged: tap,
            refused: None,
        };
        Self::with_taps(client, config, taps).await
    }

    /// [`Producer::new`] observed by `taps`.
    pub async fn with_taps(
        client: ClientConfig,
        config: ProducerConfig,
        taps: ProducerTaps,
    ) -> Result<Producer> {
        client.validate()?;
        config.validate()?;
        let pool = ConnectionPool::new(client);
        let metadata = MetadataCache::new();
        let identity = if config.idempotence {
            Some(init_producer_id(&pool, &metadata, config.retries_max).await?)
        } else {
            None
        };
        assert_eq!(identity.is_some(), config.idempotence);
        let shared = Shared {
            core: Arc::new(Core {
                pool,
                metadata,
                config,
                identity,
                taps,
            }),
            partitioner: Partitioner::new(),
            workers: Mutex::new(BTreeMap::new()),
            closed: AtomicBool::new(false),
        };
        Ok(Producer {
            shared: Arc::new(shared),
        })
    }

    /// The producer id and epoch of an idempotent producer.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.shared.core.identity
    }

    /// Sends one record and waits for its outcome. `partition: None` picks murmur2(key) for keyed
    /// records, round-robin otherwise.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Bytes,
    ) -> Result<RecordMetadata> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        let partitions = self.partition_count(topic).await?;
        let partition = self
            .shared
            .partitioner
            .choose(partition, key.as_deref(), partitions);
        if !(0..partitions).contains(&partition) {
            return Err(ClientError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        let timestamp = if self.shared.core.config.record_timestamps_unset {
            -1
        } else {
            wall_clock_ms()
        };
        let record = OutgoingRecord {
            key,
            value,
            timestamp,
        };
        let (reply, outcome) = oneshot::channel();
        let queue = self.queue(topic, partition);
        if queue.send(Job::Record { record, reply }).await.is_err() {
            return Err(ClientError::Closed);
        }
        // A worker never drops a reply without answering; if it did, the batch may have left.
        let offset = outcome
            .await
            .map_err(|_| ClientError::Io("partition worker stopped".into()))??;
        assert!(offset >= -1, "offsets are -1 (acks=0) or real");
        Ok(RecordMetadata {
            topic: topic.to_string(),
            partition,
            offset,
        })
    }

    /// The topic's partition count, retrying unreachable clusters within the retry budget. Nothing
    /// was sent yet, so every failure here is definite.
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let core = &self.shared.core;
        let mut attempt = 0;
        loop {
            match core.metadata.partition_count(&core.pool, topic).await {
                Ok(count) => return Ok(count),
                Err(error) if error.is_retriable() && attempt < core.config.retries_max => {
                    attempt += 1;
                    backoff(core.pool.config().retry_backoff_ms).await;
                }
                // Nothing was produced yet, whatever the metadata request's fate.
                Err(error) => return Err(error.not_sent()),
            }
        }
    }

    /// Waits until every record queued before this call has its outcome.
    pub async fn flush(&self) {
        let queues: Vec<mpsc::Sender<Job>> = self
            .shared
            .workers
            .lock()
            .expect("never poisoned")
            .values()
            .cloned()
            .collect();
        for queue in queues {
            let (done, wait) = oneshot::channel();
            if queue.send(Job::Flush(done)).await.is_ok() {
                // An error means the worker ended, which it only does once its queue is empty.
                wait.await.ok();
            }
        }
    }

    /// Flushes, then refuses further sends and drops connections.
    pub async fn close(&self) {
        self.flush().await;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.workers.lock().expect("never poisoned").clear();
        self.shared.core.pool.close_all();
    }

    fn queue(&self, topic: &str, partition: i32) -> mpsc::Sender<Job> {
        let mut workers = self.shared.workers.lock().expect("never poisoned");
        let key = (topic.to_string(), partition);
        if let Some(queue) = workers.get(&key) {
            return queue.clone();
        }
        let (queue, jobs) = mpsc::channel(PARTITION_QUEUE_CAPACITY);
        let worker = PartitionWorker::new(self.shared.core.clone(), topic.to_string(), partition);
        tokio::spawn(worker.run(jobs));
        workers.insert(key, queue.clone());
        queue
    }
}

/// A batch in a partition's window: sealed, stamped when it first leaves (again after a
/// restamp), retried with the same stamp, and answered in window order.
struct WindowBatch {
    /// The records, kept to encode the batch again after a restamp.
    records: Vec<OutgoingRecord>,
    /// One per record.
    replies: Vec<Reply>,
    /// Flush markers queued right after this batch's records: answered with it.
    flushes: Vec<oneshot::Sender<()>>,
    /// The idempotence stamp; `None` until the batch first leaves, and after a restamp.
    stamp: Option<BatchStamp>,
    /// The encoded batch, reused by every attempt of the same stamp.
    encoded: Option<Bytes>,
    /// When the batch was sealed: its delivery timeout counts from here.
    sealed_at: tokio::time::Instant,
    /// Attempts so far (Produce requests sent, and preparatory steps that failed).
    attempts: u32,
    /// Some attempt's fate is unknown: the batch may be in the log.
    uncertain: bool,
    /// A Produce request for it is on the wire, unanswered.
    in_flight: bool,
    /// Its last attempt failed in the current round, not yet resolved.
    failed: bool,
    /// The error of its last failed attempt.
    last_error: Option<ClientError>,
    /// Its outcome once settled; batches are answered from the window's front, in order.
    outcome: Option<Result<i64>>,
}

/// Records gathered for the next batch while its linger runs.
struct Gathering {
    /// Records.
    records: Vec<OutgoingRecord>,
    /// One per record.
    replies: Vec<Reply>,
    /// Flush markers: a flush seals the batch at once.
    flushes: Vec<oneshot::Sender<()>>,
    /// When the batch leaves even if not full.
    deadline: tokio::time::Instant,
}

/// The worker's own connection to the partition's leader, on which its Produce requests are
/// pipelined (the broker answers a connection's requests in order).
struct Link {
    /// The leader's address it was dialled to.
    addr: String,
    /// The connection.
    connection: Connection,
    /// Deadlines of the requests on the wire, oldest first.
    deadlines: VecDeque<tokio::time::Instant>,
}

/// How a given-up batch leaves the sequence state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartOver {
    /// Bump the epoch of the same producer id and restart at sequence 0 (KIP-360).
    Desynchronised,
    /// The broker knows a newer epoch: fetch a new identity.
    Fenced,
}

/// Owns one partition's queue, its window of batches in flight and its sequence state.
///
/// With idempotence up to `max_in_flight` batches are in flight at once, pipelined on one
/// connection to the leader with consecutive sequences; without, one (a retry could reorder).
/// A failed attempt ends the round: the worker waits for every reply on the wire, backs off,
/// and resends every unanswered batch in order with its stamp, so the broker deduplicates
/// what already landed and refuses a batch whose predecessor did not (OUT_OF_ORDER_SEQUENCE,
/// retried). Only the oldest unanswered batch (the head) is ever given up; see
/// [`PartitionWorker::resolve_round`] for what that does to the batches behind it.
struct PartitionWorker {
    /// Connections, metadata and settings.
    shared: Arc<Core>,
    /// The topic this worker sends to.
    topic: String,
    /// The partition this worker sends to.
    partition: i32,
    /// Idempotence bookkeeping; only this worker touches it, so batches of one partition are
    /// stamped in order.
    sequence: PartitionSequence,
    /// Sealed batches not yet answered, oldest first.
    window: VecDeque<WindowBatch>,
    /// Most batches in the window.
    window_max: usize,
    /// The next batch's records while its linger runs.
    gathering: Option<Gathering>,
    /// The connection to the leader, once dialled.
    link: Option<Link>,
    /// After a failed round: nothing is sent before this instant (the retry backoff).
    resend_at: Option<tokio::time::Instant>,
    /// A failure named stale metadata: refresh before the next send.
    refresh_wanted: bool,
    /// The identity of the newest acknowledged batch and the sequence after the highest one
    /// acknowledged with it: every batch stamped below it in that epoch is in the log.
    acknowledged_end: Option<(ProducerIdentity, i32)>,
}

impl PartitionWorker {
    fn new(shared: Arc<Core>, topic: String, partition: i32) -> Self {
        let config = &shared.config;
        let window_max = if config.idempotence {
            config.max_in_flight
        } else {
            1
        };
        assert!((1..=MAX_IN_FLIGHT_IDEMPOTENT).contains(&window_max) || !config.idempotence);
        let sequence = PartitionSequence::new(shared.identity);
        PartitionWorker {
            shared,
            topic,
            partition,
            sequence,
            window: VecDeque::new(),
            window_max,
            gathering: None,
            link: None,
            resend_at: None,
            refresh_wanted: false,
            acknowledged_end: None,
        }
    }

    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut input_open = true;
        loop {
            self.answer_settled();
            if !input_open && self.window.is_empty() && self.gathering.is_none() {
                return;
            }
            if self.outstanding() == 0 && self.window.iter().any(|b| b.failed) {
                self.resolve_round();
                self.answer_settled();
            }
            self.send_ready().await;
            self.answer_settled();
            let outstanding = self.outstanding();
            if outstanding == 0 && self.window.iter().any(|b| b.failed) {
                // A send failed with nothing on the wire: resolve the round now.
                continue;
            }
            let room = self.window.len() < self.window_max
                && self
                    .gathering
                    .as_ref()
                    .is_none_or(|g| g.records.len() < self.shared.config.batch_records_max);
            let now = tokio::time::Instant::now();
            let linger_left = self
                .gathering
                .as_ref()
                .map(|g| g.deadline.saturating_duration_since(now));
            let backoff_left = self.resend_at.map(|at| at.saturating_duration_since(now));
            let reply_left = self
                .link
                .as_ref()
                .and_then(|l| l.deadlines.front())
                .map(|d| d.saturating_duration_since(now));
            let timeout_ms = reply_left.map_or(1, |left| left.as_millis().max(1) as u64);
            tokio::select! {
                biased;
                reply = receive(&mut self.link, timeout_ms), if outstanding > 0 => {
                    let reply = reply.and_then(|r| produce_answer(r, &self.topic, self.partition));
                    self.on_reply(reply);
                }
                job = jobs.recv(), if input_open && room => match job {
                    Some(job) => self.gather(job),
                    None => {
                        input_open = false;
                        self.seal();
                    }
                },
                () = tokio::time::sleep(linger_left.unwrap_or_default()), if linger_left.is_some() => {
                    self.seal();
                }
                () = tokio::time::sleep(backoff_left.unwrap_or_default()), if backoff_left.is_some() && outstanding == 0 => {
                    self.resend_at = None;
                }
                else => {
                    // Nothing to wait for but a window that cannot move (never expected):
                    // back off rather than spin.
                    backoff(self.shared.pool.config().retry_backoff_ms).await;
                }
            }
        }
    }

    /// Requests on the wire.
    fn outstanding(&self) -> usize {
        let on_wire = self.window.iter().filter(|b| b.in_flight).count();
        assert_eq!(
            on_wire,
            self.link.as_ref().map_or(0, |l| l.deadlines.len()),
            "one deadline per request on the wire"
        );
        on_wire
    }

    /// Adds a job to the batch being gathered (starting one, and its linger, if none is).
    fn gather(&mut self, job: Job) {
        let linger = Duration::from_millis(self.shared.config.linger_ms);
        let gathering = self.gathering.get_or_insert_with(|| Gathering {
            records: Vec::new(),
            replies: Vec::new(),
            flushes: Vec::new(),
            deadline: tokio::time::Instant::now() + linger,
        });
        accept(
            job,
            &mut gathering.records,
            &mut gathering.replies,
            &mut gathering.flushes,
        );
        let full = gathering.records.len() >= self.shared.config.batch_records_max;
        if full || !gathering.flushes.is_empty() || self.shared.config.linger_ms == 0 {
            self.seal();
        }
    }

    /// Moves the gathered records into the window as a batch. A flush with no records waits
    /// for the newest batch (or is answered at once when nothing is pending).
    fn seal(&mut self) {
        let Some(gathering) = self.gathering.take() else {
            return;
        };
        assert_eq!(gathering.records.len(), gathering.replies.len());
        if gathering.records.is_empty() {
            match self.window.back_mut() {
                Some(newest) => newest.flushes.extend(gathering.flushes),
                None => gathering.flushes.into_iter().for_each(|f| {
                    f.send(()).ok();
                }),
            }
            return;
        }
        assert!(self.window.len() < self.window_max, "sealed only with room");
        self.window.push_back(WindowBatch {
            records: gathering.records,
            replies: gathering.replies,
            flushes: gathering.flushes,
            stamp: None,
            encoded: None,
            sealed_at: tokio::time::Instant::now(),
            attempts: 0,
            uncertain: false,
            in_flight: false,
            failed: false,
            last_error: None,
            outcome: None,
        });
    }

    /// Answers the settled batches at the window's front, in order.
    fn answer_settled(&mut self) {
        while self.window.front().is_some_and(|b| b.outcome.is_some()) {
            let batch = self.window.pop_front().expect("checked");
            assert!(!batch.in_flight, "a settled batch has nothing on the wire");
            let outcome = batch.outcome.expect("checked");
            let tap = &self.shared.taps.acknowledged;
            if let (Some(tap), Ok(offset), Some(encoded)) = (tap, &outcome, batch.encoded) {
                tap(&self.topic, self.partition, *offset, encoded);
            }
            answer(batch.replies, outcome, self.shared.config.acks);
            for flush in batch.flushes {
                flush.send(()).ok();
            }
        }
    }

    /// Sends, in window order, every batch that is not on the wire while all before it are,
    /// unless a failed round is being resolved or backed off.
    async fn send_ready(&mut self) {
        if self.resend_at.is_some() || self.window.iter().any(|b| b.failed) {
            return;
        }
        for index in 0..self.window.len() {
            let batch = &self.window[index];
            if batch.outcome.is_some() || batch.in_flight {
                continue;
            }
            if self
                .window
                .iter()
                .take(index)
                .any(|b| b.outcome.is_none() && !b.in_flight)
            {
                return;
            }
            if !self.send_one(index).await {
                return;
            }
        }
    }

    /// One attempt of batch `index`: stamp, encode, reach the leader, write the request.
    /// Returns false when the attempt failed (the round is then resolved).
    async fn send_one(&mut self, index: usize) -> bool {
        let config = self.shared.config.clone();
        self.window[index].attempts += 1;
        if config.idempotence && self.window[index].stamp.is_none() {
            if self.sequence.needs_identity() {
                match init_producer_id(&self.shared.pool, &self.shared.metadata, 0).await {
                    Ok(identity) => self.sequence.install(identity),
                    Err(error) => return self.attempt_failed(index, error.not_sent()),
                }
            }
            let count = i32::try_from(self.window[index].records.len())
                .expect("bounded by BATCH_RECORDS_MAX");
            self.window[index].stamp = Some(self.sequence.stamp(count));
            self.window[index].encoded = None;
        }
        if self.window[index].encoded.is_none() {
            let batch = &self.window[index];
            match encode_batch(&batch.records, batch.stamp.as_ref(), config.compression) {
                Ok(encoded) => {
                    self.window[index].encoded = Some(if config.header_max_timestamp_unset {
                        crate::records::unset_max_timestamp(encoded)
                    } else {
                        encoded
                    });
                }
                Err(error) => return self.attempt_failed(index, error.not_sent()),
            }
        }
        let encoded = self.window[index].encoded.clone().expect("encoded above");
        if config.acks == 0 {
            // Nothing answers: the batch is done once written.
            let sent = send_unanswered(&self.shared, &self.topic, self.partition, encoded).await;
            let batch = &mut self.window[index];
            batch.outcome = Some(sent.map(|()| -1));
            return true;
        }
        if let Err(error) = self.ensure_link().await {
            return self.attempt_failed(index, error.not_sent());
        }
        let link = self.link.as_mut().expect("ensured");
        let build = produce_request(
            &self.topic,
            self.partition,
            config.acks,
            self.shared.pool.config().request_timeout_ms,
            encoded,
        );
        match link.connection.send(ApiKey::Produce, build).await {
            Ok(()) => {
                let timeout = Duration::from_millis(self.shared.pool.config().request_timeout_ms);
                link.deadlines
                    .push_back(tokio::time::Instant::now() + timeout);
                self.window[index].in_flight = true;
                true
            }
            Err(error) => {
                // Part of the frame may have left: its fate is unknown, like everything on
                // the wire of the connection the failure closed.
                self.window[index].uncertain = true;
                self.link_lost(error.clone());
                self.attempt_failed(index, error)
            }
        }
    }

    /// Marks an attempt of batch `index` failed; the round is resolved once the wire is quiet.
    fn attempt_failed(&mut self, index: usize, error: ClientError) -> bool {
        tracing::debug!(topic = %self.topic, partition = self.partition, %error, "produce attempt failed");
        let batch = &mut self.window[index];
        batch.uncertain |= error.is_indeterminate();
        batch.in_flight = false;
        batch.failed = true;
        self.refresh_wanted |= error.needs_metadata_refresh();
        batch.last_error = Some(error);
        false
    }

    /// The connection closed with requests on the wire: each one's fate is unknown.
    fn link_lost(&mut self, error: ClientError) {
        self.link = None;
        for batch in self.window.iter_mut().filter(|b| b.in_flight) {
            batch.in_flight = false;
            batch.uncertain = true;
            batch.failed = true;
            batch.last_error = Some(error.clone());
        }
        self.refresh_wanted = true;
    }

    /// The leader's connection, dialled (again) when missing, closed or pointing elsewhere.
    async fn ensure_link(&mut self) -> Result<()> {
        let shared = &self.shared;
        if self.refresh_wanted
            || shared
                .metadata
                .is_stale(shared.pool.config().metadata_refresh_ms)
        {
            let topics = [self.topic.clone()];
            shared
                .metadata
                .refresh(&shared.pool, Some(&topics))
                .await
                .ok();
            self.refresh_wanted = false;
        }
        let (_, addr) = shared
            .metadata
            .snapshot()
            .leader_addr(&self.topic, self.partition)?;
        let usable = self
            .link
            .as_ref()
            .is_some_and(|l| l.addr == addr && l.connection.is_usable());
        if usable {
            return Ok(());
        }
        if self.link.as_ref().is_some_and(|l| !l.deadlines.is_empty()) {
            // The leader moved, or the SASL session nears its end, with requests on the
            // wire: let them answer first.
            return Err(ClientError::NoLeader {
                topic: self.topic.clone(),
                partition: self.partition,
            });
        }
        let config = shared.pool.config();
        let connection = Connection::open(&addr, config).await?;
        self.link = Some(Link {
            addr,
            connection,
            deadlines: VecDeque::new(),
        });
        Ok(())
    }

    /// The reply to the oldest request on the wire.
    fn on_reply(&mut self, reply: Result<i64>) {
        let index = self
            .window
            .iter()
            .position(|b| b.in_flight)
            .expect("a reply answers a request on the wire");
        let link = self
            .link
            .as_mut()
            .expect("requests on the wire have a link");
        link.deadlines.pop_front();
        match reply {
            Ok(base_offset) => {
                let batch = &mut self.window[index];
                batch.in_flight = false;
                batch.outcome = Some(Ok(base_offset));
                if let Some(stamp) = batch.stamp {
                    let end = increment_sequence(stamp.base_sequence, stamp.record_count);
                    self.acknowledged_end = match self.acknowledged_end {
                        Some((identity, known)) if identity == stamp.identity => {
                            Some((identity, known.max(end)))
                        }
                        _ => Some((stamp.identity, end)),
                    };
                }
            }
            Err(error) => {
                self.note_refusal(index, &error);
                let closed = self.link.as_ref().is_some_and(|l| l.connection.is_closed());
                self.window[index].in_flight = false;
                self.attempt_failed(index, error.clone());
                if closed {
                    self.link_lost(error);
                }
            }
        }
    }

    /// Hands a sequence refusal of batch `index` to the refusal tap, if there is one.
    fn note_refusal(&self, index: usize, error: &ClientError) {
        let (Some(tap), Some(stamp)) = (&self.shared.taps.refused, self.window[index].stamp) else {
            return;
        };
        let Some(code) = error.kafka_code().filter(|c| {
            matches!(
                *c,
                code::OUT_OF_ORDER_SEQUENCE_NUMBER | code::UNKNOWN_PRODUCER_ID
            )
        }) else {
            return;
        };
        // The acknowledged end lies at or past the base by at most the window's records
        // (sequences wrap at i32::MAX, as Kafka's do).
        let window_records = i64::try_from(self.window_max * BATCH_RECORDS_MAX).unwrap_or(i64::MAX);
        let predecessors_acknowledged = stamp.base_sequence == 0
            || self.acknowledged_end.is_some_and(|(identity, end)| {
                let ahead = (i64::from(end) - i64::from(stamp.base_sequence))
                    .rem_euclid(i64::from(i32::MAX) + 1);
                identity == stamp.identity && ahead <= window_records
            });
        let refusal = SequenceRefusal {
            partition: self.partition,
            producer_id: stamp.identity.producer_id,
            producer_epoch: stamp.identity.producer_epoch,
            base_sequence: stamp.base_sequence,
            record_count: stamp.record_count,
            code,
            attempt: self.window[index].attempts,
            predecessors_acknowledged,
        };
        tap(&self.topic, &refusal);
    }

    /// A failed round, with nothing on the wire any more: decides the head's fate, then backs
    /// off before everything unanswered is resent in order.
    ///
    /// - A retriable error within the retry and delivery budget: resend with the same stamp.
    /// - OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID on the head, whose every attempt
    ///   was refused: the broker's sequence state differs from ours, and the head is certainly
    ///   not in the log. The epoch is bumped (KIP-360) and the head and every batch behind it
    ///   restamped from sequence 0. If an attempt of the head may have landed, restamping could
    ///   write it twice: it is given up as indeterminate instead.
    /// - Anything else (not retriable, retries or delivery time spent, INVALID_PRODUCER_EPOCH):
    ///   the head is given up. Behind it, a batch that may have landed is given up too
    ///   (indeterminate) unless the head certainly did not land (then nothing behind it could:
    ///   the broker appends a producer's sequences contiguously); the others are restamped in
    ///   the new epoch (or identity, when fenced).
    fn resolve_round(&mut self) {
        let config = self.shared.config.clone();
        self.resend_at = Some(
            tokio::time::Instant::now()
                + Duration::from_millis(self.shared.pool.config().retry_backoff_ms),
        );
        let head = self
            .window
            .front()
            .expect("a failed batch is in the window");
        assert!(head.outcome.is_none() && !head.in_flight);
        if !head.failed {
            // Batches behind a head still unanswered failed (OUT_OF_ORDER behind a lost
            // predecessor, NOT_LEADER, ...): they are resent after it.
            self.window.iter_mut().for_each(|b| b.failed = false);
            return;
        }
        let error = head
            .last_error
            .clone()
            .expect("a failed batch has its error");
        let code = error.kafka_code();
        let spent = head.attempts > config.retries_max
            || head.sealed_at.elapsed() >= Duration::from_millis(config.delivery_timeout_ms);
        let sequence_refused = matches!(
            code,
            Some(code::OUT_OF_ORDER_SEQUENCE_NUMBER | code::UNKNOWN_PRODUCER_ID)
        );
        let restart = sequence_refused && !head.uncertain && !spent && head.stamp.is_some();
        let start_over = if code == Some(code::INVALID_PRODUCER_EPOCH) {
            Some(StartOver::Fenced)
        } else if restart {
            self.sequence.on_desynchronised();
            for batch in self.window.iter_mut().filter(|b| b.outcome.is_none()) {
                restamp(batch);
            }
            None
        } else if !error.is_retriable() || spent {
            Some(StartOver::Desynchronised)
        } else {
            None
        };
        if let Some(start_over) = start_over {
            self.give_up_head(start_over);
        }
        self.window.iter_mut().for_each(|b| b.failed = false);
    }

    /// Settles the head with its last error, and starts the partition's sequence over.
    fn give_up_head(&mut self, start_over: StartOver) {
        let head = self.window.front_mut().expect("a head to give up");
        let error = head
            .last_error
            .clone()
            .unwrap_or(ClientError::DeliveryTimeout);
        let head_uncertain = head.uncertain;
        let stamped = head.stamp.is_some();
        head.outcome = Some(Err(if head_uncertain {
            error.clone().after_indeterminate_attempt()
        } else {
            error.clone().not_sent()
        }));
        if !stamped && start_over == StartOver::Desynchronised {
            // Never stamped (no identity, no leader): nothing of it reached a broker, and the
            // sequence has not moved.
            return;
        }
        match start_over {
            StartOver::Desynchronised => self.sequence.on_desynchronised(),
            StartOver::Fenced => self.sequence.on_fenced(),
        }
        // Behind the head, a batch already answered (acknowledged: the head had landed after
        // all) keeps its outcome.
        for batch in self
            .window
            .iter_mut()
            .skip(1)
            .filter(|b| b.outcome.is_none())
        {
            assert!(
                !batch.in_flight,
                "a round is resolved with nothing on the wire"
            );
            if head_uncertain && batch.uncertain {
                let error = batch.last_error.clone().unwrap_or_else(|| error.clone());
                batch.outcome = Some(Err(error.after_indeterminate_attempt()));
            } else {
                restamp(batch);
            }
        }
    }
}

/// A Produce with acks=0 through the shared pool (a free function: the worker, which holds its
/// connection, is not `Sync` under madsim, so `&PartitionWorker` cannot cross an await).
async fn send_unanswered(shared: &Core, topic: &str, partition: i32, encoded: Bytes) -> Result<()> {
    let (_, addr) = shared.metadata.snapshot().leader_addr(topic, partition)?;
    let build = produce_request(
        topic,
        partition,
        0,
        shared.pool.config().request_timeout_ms,
        encoded,
    );
    shared.pool.send_only(&addr, ApiKey::Produce, build).await
}

/// Clears a batch's stamp: it is stamped again (in order) when it next leaves.
fn restamp(batch: &mut WindowBatch) {
    assert!(batch.outcome.is_none() && !batch.in_flight);
    batch.stamp = None;
    batch.encoded = None;
}

/// Reads the reply to the oldest request on `link`, within `timeout_ms`. Cancel-safe.
async fn receive(link: &mut Option<Link>, timeout_ms: u64) -> Result<ResponseKind> {
    let link = link.as_mut().ok_or(ClientError::Closed)?;
    link.connection.receive(timeout_ms).await
}

/// The Produce request for one partition's batch, built at the negotiated version.
fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    request_timeout_ms: u64,
    batch: Bytes,
) -> impl FnOnce(i16) -> Result<RequestKind> {
    // The broker's own deadline comes first, so a slow replication is a typed answer.
    let broker_timeout_ms = i32::try_from(request_timeout_ms * 2 / 3).unwrap_or(i32::MAX);
    let topic = topic.to_string();
    move |_version: i16| {
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(batch));
        let topic_data = TopicProduceData::default()
            .with_name(StrBytes::from_string(topic).into())
            .with_partition_data(vec![data]);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(broker_timeout_ms)
            .with_topic_data(vec![topic_data]);
        Ok(RequestKind::Produce(request))
    }
}

/// The base offset a Produce reply gives the partition, or its error.
fn produce_answer(response: ResponseKind, topic: &str, partition: i32) -> Result<i64> {
    let response = expect_response!(response, Produce)?;
    let answer = response
        .responses
        .iter()
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| ClientError::Protocol("Produce answer lacks the partition".into()))?;
    if answer.error_code != 0 {
        return Err(ClientError::kafka("Produce", answer.error_code));
    }
    if answer.base_offset < 0 {
        return Err(ClientError::Protocol(format!(
            "base offset {}",
            answer.base_offset
        )));
    }
    Ok(answer.base_offset)
}

fn accept(
    job: Job,
    records: &mut Vec<OutgoingRecord>,
    replies: &mut Vec<Reply>,
    flushes: &mut Vec<oneshot::Sender<()>>,
) {
    match job {
        Job::Record { record, reply } => {
            records.push(record);
            replies.push(reply);
        }
        Job::Flush(done) => flushes.push(done),
    }
}

/// Hands each record of a batch its offset (base + index), or the batch's error.
fn answer(replies: Vec<Reply>, outcome: Result<i64>, acks: i16) {
    for (index, reply) in replies.into_iter().enumerate() {
        let result = match &outcome {
            Ok(_) if acks == 0 => Ok(-1),
            Ok(base) => Ok(base + i64::try_from(index).expect("bounded by BATCH_RECORDS_MAX")),
            Err(error) => Err(error.clone()),
        };
        // The sender may have given up waiting (its future was dropped); nothing to tell.
        reply.send(result).ok();
    }
}

/// InitProducerId (non-transactional) from any broker, retrying retriable failures.
pub async fn init_producer_id(
    pool: &ConnectionPool,
    metadata: &MetadataCache,
    retries_max: u32,
) -> Result<ProducerIdentity> {
    let mut last_error = ClientError::Closed;
    for attempt in 0..=retries_max {
        if attempt > 0 {
            backoff(pool.config().retry_backoff_ms).await;
        }
        match init_producer_id_once(pool, metadata).await {
            Ok(identity) => return Ok(identity),
            Err(error)
                if error.is_retriable()
                    || error.kafka_code() == Some(code::COORDINATOR_NOT_AVAILABLE) =>
            {
                last_error = error;
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error)
}

async fn init_producer_id_once(
    pool: &ConnectionPool,
    metadata: &MetadataCache,
) -> Result<ProducerIdentity> {
    let cluster = metadata.refresh(pool, Some(&[])).await?;
    let addr = cluster
        .brokers
        .values()
        .next()
        .cloned()
        .unwrap_or_else(|| pool.config().bootstrap[0].clone());
    let timeout_ms = pool.config().request_timeout_ms;
    let build = |_version: i16| {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        Ok(RequestKind::InitProducerId(request))
    };
    let response = pool
        .call(&addr, ApiKey::InitProducerId, timeout_ms, build)
        .await?;
    let response = expect_response!(response, InitProducerId)?;
    if response.error_code != 0 {
        return Err(ClientError::kafka("InitProducerId", response.error_code));
    }
    if response.producer_id.0 < 0 {
        return Err(ClientError::Protocol(
            "InitProducerId returned no producer id".into(),
        ));
    }
    Ok(ProducerIdentity {
        producer_id: response.producer_id.0,
        producer_epoch: response.producer_epoch,
    })
}
