//! The producer: partitioning, per-partition batching with linger, retries with leader
//! discovery, idempotence (InitProducerId + per-partition sequences), and precise outcomes.
//!
//! Each partition has one worker task owning its queue and its sequence state. The worker
//! gathers the records that arrive within `linger_ms` (up to `batch_records_max`) into one
//! batch, sends it, and retries *that same batch* (same sequence) until it is acknowledged, a
//! definite refusal arrives, or retries/delivery time run out. One batch per partition is in
//! flight at a time, so a single producer's records keep their order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProduceRequest, RequestKind};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};

use crate::admin::backoff;
use crate::clock::wall_clock_ms;
use crate::config::ClientConfig;
use crate::error::{code, ClientError, Result};
use crate::expect_response;
use crate::metadata::MetadataCache;
use crate::partitioner::Partitioner;
use crate::pool::ConnectionPool;
use crate::records::{encode_batch, OutgoingRecord, BATCH_RECORDS_MAX};
use crate::sequence::{BatchStamp, PartitionSequence, ProducerIdentity};
pub use kafka_protocol::records::Compression;

/// Records (and flush markers) a partition queue holds before `send` waits for room.
pub const PARTITION_QUEUE_CAPACITY: usize = 10_000;

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
        let worker = PartitionWorker {
            shared: self.shared.core.clone(),
            topic: topic.to_string(),
            partition,
            sequence: PartitionSequence::new(self.shared.core.identity),
        };
        tokio::spawn(worker.run(jobs));
        workers.insert(key, queue.clone());
        queue
    }
}

/// Owns one partition's queue and sequence state.
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
}

impl PartitionWorker {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut records = Vec::new();
            let mut replies = Vec::new();
            let mut flushes = Vec::new();
            accept(first, &mut records, &mut replies, &mut flushes);
            self.gather(&mut jobs, &mut records, &mut replies, &mut flushes)
                .await;
            assert_eq!(records.len(), replies.len(), "one reply per record");
            if !records.is_empty() {
                let outcome = self.deliver(&records).await;
                answer(replies, outcome, self.shared.config.acks);
            }
            for flush in flushes {
                flush.send(()).ok();
            }
        }
    }

    /// Collects records arriving within the linger window, up to the batch limit; a flush
    /// marker closes the batch at once.
    async fn gather(
        &self,
        jobs: &mut mpsc::Receiver<Job>,
        records: &mut Vec<OutgoingRecord>,
        replies: &mut Vec<Reply>,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) {
        let batch_max = self.shared.config.batch_records_max;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.shared.config.linger_ms);
        while records.len() < batch_max && flushes.is_empty() {
            let next = if self.shared.config.linger_ms == 0 {
                jobs.try_recv().ok()
            } else {
                // `timeout_at` does not exist under madsim: time out on what is left.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::timeout(left, jobs.recv()).await.ok().flatten()
            };
            let Some(job) = next else { break };
            accept(job, records, replies, flushes);
        }
        assert!(records.len() <= batch_max, "batch within its limit");
    }

    /// Sends one batch until it is acknowledged or its fate is settled. Returns the base offset.
    async fn deliver(&mut self, records: &[OutgoingRecord]) -> Result<i64> {
        let config = self.shared.config.clone();
        let started = tokio::time::Instant::now();
        let delivery_timeout = Duration::from_millis(config.delivery_timeout_ms);
        let record_count = i32::try_from(records.len()).expect("bounded by BATCH_RECORDS_MAX");
        let mut stamp: Option<BatchStamp> = None;
        let mut encoded: Option<Bytes> = None;
        let mut uncertain = false;
        let mut last_error = ClientError::DeliveryTimeout;
        for attempt in 0..=config.retries_max {
            if attempt > 0 {
                backoff(self.shared.pool.config().retry_backoff_ms).await;
            }
            if started.elapsed() >= delivery_timeout {
                break;
            }
            if config.idempotence && stamp.is_none() {
                if self.sequence.needs_identity() {
                    match init_producer_id(&self.shared.pool, &self.shared.metadata, 0).await {
                        Ok(identity) => self.sequence.install(identity),
                        Err(error) => {
                            last_error = error;
                            continue;
                        }
                    }
                }
                stamp = Some(self.sequence.stamp(record_count));
            }
            if encoded.is_none() {
                let batch = encode_batch(records, stamp.as_ref(), config.compression)?;
                encoded = Some(if config.header_max_timestamp_unset {
                    crate::records::unset_max_timestamp(batch)
                } else {
                    batch
                });
            }
            let batch = encoded.clone().expect("encoded above");
            match self.produce_once(batch).await {
                Ok(base_offset) => {
                    if let Some(stamp) = &stamp {
                        self.sequence.on_acknowledged(stamp);
                    }
                    return Ok(base_offset);
                }
                Err(error) => {
                    tracing::debug!(topic = %self.topic, partition = self.partition, attempt, %error, "produce failed");
                    uncertain |= error.is_indeterminate();
                    if error.needs_metadata_refresh() {
                        let topics = [self.topic.clone()];
                        self.shared
                            .metadata
                            .refresh(&self.shared.pool, Some(&topics))
                            .await
                            .ok();
                    }
                    let retriable = error.is_retriable();
                    last_error = error;
                    if !retriable {
                        break;
                    }
                }
            }
        }
        Err(self.settle_failure(stamp, last_error, uncertain))
    }

    /// Updates the sequence state after a failed batch and classifies the final error.
    fn settle_failure(
        &mut self,
        stamp: Option<BatchStamp>,
        error: ClientError,
        uncertain: bool,
    ) -> ClientError {
        let sequence_refused = matches!(
            error.kafka_code(),
            Some(
                code::OUT_OF_ORDER_SEQUENCE_NUMBER
                    | code::UNKNOWN_PRODUCER_ID
                    | code::INVALID_PRODUCER_EPOCH
            )
        );
        if let Some(stamp) = &stamp {
            if error.kafka_code() == Some(code::INVALID_PRODUCER_EPOCH) {
                self.sequence.on_fenced();
            } else if uncertain || sequence_refused {
                self.sequence.on_desynchronised();
            } else {
                self.sequence.on_refused(stamp);
            }
        }
        if sequence_refused {
            // The broker checked the sequence and refused the batch: it is not in the log,
            // whatever an earlier attempt did (a duplicate would have been acknowledged).
            error
        } else if uncertain {
            error.after_indeterminate_attempt()
        } else {
            // No Produce attempt was uncertain: an indeterminate error came from a step before
            // sending (InitProducerId, metadata), so the batch never left.
            error.not_sent()
        }
    }

    /// One Produce request to the current leader. Returns the base offset (-1 with acks = 0).
    async fn produce_once(&self, batch: Bytes) -> Result<i64> {
        let shared = &self.shared;
        if shared
            .metadata
            .is_stale(shared.pool.config().metadata_refresh_ms)
        {
            let topics = [self.topic.clone()];
            shared
                .metadata
                .refresh(&shared.pool, Some(&topics))
                .await
                .ok();
        }
        let (_, addr) = shared
            .metadata
            .snapshot()
            .leader_addr(&self.topic, self.partition)?;
        let acks = shared.config.acks;
        let request_timeout_ms = shared.pool.config().request_timeout_ms;
        // The broker's own deadline comes first, so a slow replication is a typed answer.
        let broker_timeout_ms = i32::try_from(request_timeout_ms * 2 / 3).unwrap_or(i32::MAX);
        let topic = self.topic.clone();
        let partition = self.partition;
        let build = move |_version: i16| {
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
        };
        if acks == 0 {
            shared.pool.send_only(&addr, ApiKey::Produce, build).await?;
            return Ok(-1);
        }
        let response = shared
            .pool
            .call(&addr, ApiKey::Produce, request_timeout_ms, build)
            .await?;
        let response = expect_response!(response, Produce)?;
        let answer = response
            .responses
            .iter()
            .filter(|t| t.name.as_str() == self.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == self.partition)
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
