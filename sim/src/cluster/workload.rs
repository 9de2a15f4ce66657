//! The client side of a cluster run, on the simulated client node: topic creation, idempotent
//! producers sending unique integers, a consumer polling every partition, a metadata observer, and
//! the final read. Every client operation goes into the Jepsen history as it happens.

use super::record::{lock, send_mop, Shared};
use bytes::Bytes;
use client::admin::Admin;
use client::consumer::{Consumer, ConsumerConfig};
use client::error::code;
use client::producer::{Producer, ProducerConfig, ProducerTaps, RefusalTap, SequenceRefusal};
use client::ClientConfig;
use jepsen::history::{KeyId, MicroOp, OpFn, OpType, OpValue};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The topic every run writes.
pub const TOPIC: &str = "t";
/// Its partitions.
pub const PARTITIONS: i32 = 3;
/// Its replication factor.
pub const REPLICATION_FACTOR: i16 = 3;
/// Values of producer `p` are `p * VALUES_PER_PRODUCER + i`: unique across the run.
const VALUES_PER_PRODUCER: i64 = 1_000_000;
/// How long one poll waits for records.
const POLL_MS: u64 = 200;
/// Pause between metadata observations.
const OBSERVE_MS: u64 = 500;
/// Pause between attempts while waiting for the cluster.
const RETRY_MS: u64 = 200;

/// What the workload was drawn to do.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Addresses of the brokers.
    pub bootstrap: Vec<String>,
    /// Producer acks (-1 all, 1 leader, 0 none).
    pub acks: i16,
    /// Idempotent producers.
    pub idempotence: bool,
    /// `min.insync.replicas` of the topic.
    pub min_isr: i32,
    /// Bound on one batch's delivery.
    pub delivery_timeout_ms: u64,
    /// The producers' codec.
    pub compression: client::Compression,
    /// Seed of the workload's own choices (partition, pauses).
    pub seed: u64,
    /// Most sends per producer.
    pub sends_max: u64,
    /// Topic configs beside `min.insync.replicas` (retention, segments, timestamp type).
    pub topic_configs: Vec<(String, String)>,
    /// Producers send records with timestamp -1.
    pub record_timestamps_unset: bool,
    /// Bytes of key on every record (0: no key), to fill segments.
    pub record_padding_bytes: usize,
    /// How the clients secure their connections (SASL on some seeds).
    pub security: client::security::SecurityConfig,
    /// The consumers' `client.rack` (fetch from followers on some seeds).
    pub client_rack: Option<String>,
    /// The settings promise that no acknowledged record is lost (`ClusterDraw::strong`).
    pub strong: bool,
    /// Retention deletes records (the operations draw): a replica that falls below its
    /// leader's log start forgets every producer, which then meets UNKNOWN_PRODUCER_ID.
    pub retention: bool,
}

/// The client settings every workload client uses.
pub fn client_config(config: &WorkloadConfig) -> ClientConfig {
    let mut client = ClientConfig::new(config.bootstrap.clone());
    client.request_timeout_ms = 3_000;
    client.metadata_refresh_ms = 2_000;
    client.security = config.security.clone();
    client
}

/// The key of partition `p`.
pub fn key_name(partition: i32) -> String {
    format!("{TOPIC}-{partition}")
}

/// Waits for three brokers, creates the topic, waits for its leaders. `Err` if the cluster did
/// not come up by `deadline` (a liveness failure: nothing was even faulted yet).
pub async fn set_up(config: &WorkloadConfig, deadline: Instant) -> Result<(), String> {
    let admin = Admin::new(client_config(config)).map_err(|e| e.to_string())?;
    let mut settings = vec![(
        "min.insync.replicas".to_string(),
        config.min_isr.to_string(),
    )];
    settings.extend(config.topic_configs.iter().cloned());
    let mut created = false;
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "the cluster did not come up (topic created: {created})"
            ));
        }
        if !created {
            let brokers = admin.metadata(None).await.map(|m| m.brokers.len());
            if brokers.is_ok_and(|n| n == 3) {
                created = match admin
                    .create_topic(TOPIC, PARTITIONS, REPLICATION_FACTOR, &settings)
                    .await
                {
                    Ok(()) => true,
                    Err(error) => matches!(error, client::ClientError::TopicAlreadyExists { .. }),
                };
            }
        } else if healthy(&admin, false).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
    }
}

/// Every partition has a leader (and, with `full_isr`, all three replicas in sync).
async fn healthy(admin: &Admin, full_isr: bool) -> bool {
    let topics = [TOPIC.to_string()];
    let Ok(metadata) = admin.metadata(Some(&topics)).await else {
        return false;
    };
    metadata.topics.get(TOPIC).is_some_and(|topic| {
        topic.partitions.len() == PARTITIONS as usize
            && topic.partitions.values().all(|p| {
                p.leader.is_some() && (!full_isr || p.isr.len() == REPLICATION_FACTOR as usize)
            })
    })
}

/// Waits until every partition has a leader and a full ISR; `Err` names what was missing.
pub async fn wait_healthy(config: &WorkloadConfig, deadline: Instant) -> Result<(), Unhealthy> {
    let admin = Admin::new(client_config(config)).map_err(|e| Unhealthy {
        why: e.to_string(),
        partitions: Vec::new(),
    })?;
    while Instant::now() < deadline {
        if healthy(&admin, true).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
    }
    let topics = [TOPIC.to_string()];
    let (state, partitions) = match admin.metadata(Some(&topics)).await {
        Ok(m) => match m.topics.get(TOPIC) {
            Some(t) => {
                let state = t
                    .partitions
                    .iter()
                    .map(|(p, m)| format!("t-{p}: leader {:?} isr {:?}", m.leader, m.isr))
                    .collect::<Vec<_>>()
                    .join("; ");
                (state, t.partitions.values().cloned().collect())
            }
            None => ("topic missing".into(), Vec::new()),
        },
        Err(error) => (format!("metadata failed: {error}"), Vec::new()),
    };
    Err(Unhealthy {
        why: format!("liveness: after healing, partitions lack a leader or full ISR: {state}"),
        partitions,
    })
}

/// The cluster did not heal in time: why, and the workload topic's partitions as Metadata last
/// showed them (none when it could not tell).
#[derive(Debug)]
pub struct Unhealthy {
    /// The liveness failure, as reported.
    pub why: String,
    /// Each partition's leader and ISR, in partition order.
    pub partitions: Vec<client::metadata::PartitionMetadata>,
}

/// One producer process: sends unique values to random partitions until `stop_at`.
pub async fn produce(
    config: WorkloadConfig,
    shared: Shared,
    process: u64,
    stop_at: Instant,
    tap: Option<client::producer::BatchTap>,
) {
    let rng = ChaCha8Rng::seed_from_u64(config.seed ^ (process + 1).wrapping_mul(0x9e37));
    // Client flavours real deployments send, drawn from their own stream so the other draws of
    // a seed stay as they were: half the producers behave like sarama before 1.45.1 (header max
    // timestamp -1), which once took partitions offline on every replica.
    let header_max_timestamp_unset =
        ChaCha8Rng::seed_from_u64(config.seed ^ 0xf1a5_0000 ^ process).gen_bool(0.5);
    if header_max_timestamp_unset {
        lock(&shared).event(&format!(
            "p{process} client flavour: header max timestamp -1"
        ));
    }
    let producer_config = ProducerConfig {
        acks: config.acks,
        idempotence: config.idempotence,
        linger_ms: 2,
        delivery_timeout_ms: config.delivery_timeout_ms,
        header_max_timestamp_unset,
        record_timestamps_unset: config.record_timestamps_unset,
        compression: config.compression,
        ..ProducerConfig::default()
    };
    let producer = loop {
        if Instant::now() >= stop_at {
            return;
        }
        let taps = ProducerTaps {
            acknowledged: tap.clone(),
            refused: config
                .idempotence
                .then(|| refusal_judge(&config, &shared, process)),
        };
        match Producer::with_taps(client_config(&config), producer_config.clone(), taps).await {
            Ok(producer) => break producer,
            Err(error) => {
                lock(&shared).event(&format!("p{process} producer not ready: {error}"));
                tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
            }
        }
    };
    let keys: Vec<KeyId> = {
        let mut recorder = lock(&shared);
        (0..PARTITIONS)
            .map(|p| recorder.key(&key_name(p)))
            .collect()
    };
    // Lanes: concurrent senders sharing the producer, each a Jepsen process of its own (one
    // operation at a time), so one partition has several batches in flight (issue 14: up to
    // five, pipelined and retried). Drawn from a stream of their own.
    let lanes =
        ChaCha8Rng::seed_from_u64(config.seed ^ 0x1a4e_0000 ^ process).gen_range(1..=LANES_MAX);
    if lanes > 1 {
        lock(&shared).event(&format!("p{process} sends from {lanes} lanes"));
    }
    let mut others = Vec::new();
    for lane in 1..lanes {
        let lane_process = process + LANE_PROCESS_STRIDE * lane;
        let lane_rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ (lane_process + 1).wrapping_mul(0x9e37));
        let (config, shared, producer, keys) = (
            config.clone(),
            shared.clone(),
            producer.clone(),
            keys.clone(),
        );
        others.push(tokio::spawn(async move {
            send_lane(
                &config,
                &shared,
                &producer,
                lane_process,
                &keys,
                lane_rng,
                stop_at,
            )
            .await;
        }));
    }
    send_lane(&config, &shared, &producer, process, &keys, rng, stop_at).await;
    for other in others {
        other.await.ok();
    }
}

/// Judges the broker's sequence refusals of producer `process`'s batches (issue 14, mutants 12
/// and 13). A batch whose predecessors in its epoch were all acknowledged
/// ([`SequenceRefusal::predecessors_acknowledged`]) is, under strong settings, either the next
/// sequence the leader expects or a duplicate among the producer's last five batches there:
/// refusing it OUT_OF_ORDER_SEQUENCE means the leader's producer state lost or misjudged a
/// batch (a retry of an appended batch not recognised as one), and UNKNOWN_PRODUCER_ID means it
/// forgot the producer, which only a replica that fell below its leader's log start may
/// (retention). Such a replica may also have learnt the producer from a later batch only (it
/// started its log over at the leader's start, above the producer's first batches, which
/// retention deleted): a retry of one of those is then OUT_OF_ORDER_SEQUENCE, as in Kafka,
/// whose table knows no more than its log (seed 43634). That is excused for a batch sent more
/// than once on a partition whose log start has moved. rill's client absorbs both (it gives the
/// batch up as indeterminate, or bumps its epoch), so the history alone cannot tell.
fn refusal_judge(config: &WorkloadConfig, shared: &Shared, process: u64) -> RefusalTap {
    let (strong, retention, shared) = (config.strong, config.retention, shared.clone());
    Arc::new(move |topic: &str, refusal: &SequenceRefusal| {
        let name = if refusal.code == code::OUT_OF_ORDER_SEQUENCE_NUMBER {
            "OUT_OF_ORDER_SEQUENCE_NUMBER"
        } else {
            "UNKNOWN_PRODUCER_ID"
        };
        let what = format!(
            "{topic}-{} producer {} epoch {} seq {} ({} records, attempt {})",
            refusal.partition,
            refusal.producer_id,
            refusal.producer_epoch,
            refusal.base_sequence,
            refusal.record_count,
            refusal.attempt
        );
        let mut recorder = lock(&shared);
        recorder.event(&format!("p{process} {name} for {what}"));
        let forgot_below_the_log_start = refusal.code == code::UNKNOWN_PRODUCER_ID
            || (refusal.attempt > 1 && recorder.log_start_of(&key_name(refusal.partition)) > 0);
        let excused = retention && forgot_below_the_log_start;
        if strong && refusal.predecessors_acknowledged && !excused {
            recorder.workload_violation(&format!(
                "producer state: {name} for {what}, whose every predecessor in its epoch was \
                 acknowledged: the leader should have appended it or answered it as a duplicate"
            ));
        }
    })
}

/// Most lanes of one producer.
const LANES_MAX: u64 = 4;
/// Lane `l` of producer process `p` is process `p + l * LANE_PROCESS_STRIDE`.
const LANE_PROCESS_STRIDE: u64 = 1_000;

/// One lane: sends unique values (`process * VALUES_PER_PRODUCER + i`) to random partitions
/// until `stop_at`, one at a time.
async fn send_lane(
    config: &WorkloadConfig,
    shared: &Shared,
    producer: &Producer,
    process: u64,
    keys: &[KeyId],
    mut rng: ChaCha8Rng,
    stop_at: Instant,
) {
    let base = i64::try_from(process).expect("few processes") * VALUES_PER_PRODUCER;
    for i in 0..config.sends_max.min(VALUES_PER_PRODUCER as u64) {
        if Instant::now() >= stop_at {
            break;
        }
        let value = base + i64::try_from(i).expect("bounded above");
        let partition = rng.gen_range(0..PARTITIONS);
        let key = keys[partition as usize];
        let text = format!("send t-{partition} {value}");
        lock(shared).invoke(process, OpFn::Send, send_mop(key, value, None), &text);
        let key_bytes = (config.record_padding_bytes > 0)
            .then(|| Bytes::from(vec![b'k'; config.record_padding_bytes]));
        let outcome = producer
            .send(
                TOPIC,
                Some(partition),
                key_bytes,
                Bytes::from(value.to_string()),
            )
            .await;
        record_send(shared, process, key, partition, value, outcome);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
    }
}

/// Records the completion of one send.
fn record_send(
    shared: &Shared,
    process: u64,
    key: KeyId,
    partition: i32,
    value: i64,
    outcome: client::Result<client::producer::RecordMetadata>,
) {
    let mut recorder = lock(shared);
    match outcome {
        Ok(sent) => match u64::try_from(sent.offset) {
            Ok(offset) => {
                let done = format!("send t-{partition} [{offset}, {value}]");
                recorder.complete(
                    process,
                    OpType::Ok,
                    send_mop(key, value, Some(offset)),
                    &done,
                );
            }
            // acks=0: the broker answers nothing (offset -1), so the client cannot know whether
            // the record landed: indeterminate, like a timeout (the history refuses an ok send
            // without its offset).
            Err(_) => {
                let done = format!("send t-{partition} [?, {value}] (acks=0: unacknowledged)");
                recorder.complete(process, OpType::Info, OpValue::Mops(vec![]), &done);
            }
        },
        Err(error) => {
            let op_type = if error.is_indeterminate() {
                OpType::Info
            } else {
                OpType::Fail
            };
            let done = format!("send t-{partition} {value}: {error}");
            recorder.complete(process, op_type, OpValue::Mops(vec![]), &done);
        }
    }
}

/// A consumer's process and the positions the history knows it reached.
struct Reader {
    /// Jepsen process of the current consumer.
    process: u64,
    /// The consumer.
    consumer: Consumer,
    /// Next offset per partition, as recorded in the history.
    next: BTreeMap<i32, i64>,
}

impl Reader {
    fn new(
        config: &WorkloadConfig,
        shared: &Shared,
        process: u64,
        next: BTreeMap<i32, i64>,
    ) -> Reader {
        let consumer_config = ConsumerConfig {
            client_rack: config.client_rack.clone(),
            ..ConsumerConfig::new(None)
        };
        let mut consumer = Consumer::new(client_config(config), consumer_config)
            .expect("a valid consumer configuration");
        let partitions: Vec<(String, i32)> =
            (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
        consumer.assign(partitions);
        for (partition, offset) in &next {
            consumer
                .seek(TOPIC, *partition, *offset)
                .expect("the partition is assigned");
        }
        let mut recorder = lock(shared);
        let keys: Vec<KeyId> = (0..PARTITIONS)
            .map(|p| recorder.key(&key_name(p)))
            .collect();
        recorder.invoke(
            process,
            OpFn::Assign,
            OpValue::Keys(keys.clone()),
            "assign all",
        );
        recorder.complete(process, OpType::Ok, OpValue::Keys(keys), "assign all");
        Reader {
            process,
            consumer,
            next,
        }
    }

    /// One recorded poll. Returns the values read, or `None` after a failed poll: the consumer
    /// may have moved past records it did not return, so the caller replaces it.
    async fn poll(&mut self, shared: &Shared) -> Option<Vec<i64>> {
        let process = self.process;
        let poll = OpValue::Mops(vec![MicroOp::Poll { reads: None }]);
        lock(shared).invoke(process, OpFn::Poll, poll, "poll");
        let outcome = self.consumer.poll(POLL_MS).await;
        let mut recorder = lock(shared);
        for partition in 0..PARTITIONS {
            if let Some(start) = self.consumer.log_start_seen(TOPIC, partition) {
                let start = u64::try_from(start).expect("log starts are offsets");
                recorder.log_start(&key_name(partition), start);
            }
        }
        match outcome {
            Ok(records) => {
                let mut reads: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
                let mut values = Vec::new();
                for record in records {
                    let value: i64 = record
                        .value
                        .as_deref()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(-1);
                    let offset = u64::try_from(record.offset).expect("read offsets are real");
                    reads
                        .entry(record.partition)
                        .or_default()
                        .push((offset, value));
                    self.next.insert(record.partition, record.offset + 1);
                    values.push(value);
                }
                let text = format!("poll {reads:?}");
                let reads = reads
                    .into_iter()
                    .map(|(p, r)| (recorder.key(&key_name(p)), r))
                    .collect();
                let done = OpValue::Mops(vec![MicroOp::Poll { reads: Some(reads) }]);
                recorder.complete(process, OpType::Ok, done, &text);
                Some(values)
            }
            Err(error) => {
                let text = format!("poll: {error}");
                recorder.complete(process, OpType::Info, OpValue::Mops(vec![]), &text);
                None
            }
        }
    }
}

/// The polling consumer: starts as `process`, takes the next process ids (`process + 100 * n`)
/// each time a poll fails, and polls until `stop_at`.
pub async fn consume(config: WorkloadConfig, shared: Shared, process: u64, stop_at: Instant) {
    let mut reader = Reader::new(&config, &shared, process, BTreeMap::new());
    while Instant::now() < stop_at {
        if reader.poll(&shared).await.is_none() {
            let next = std::mem::take(&mut reader.next);
            reader = Reader::new(&config, &shared, reader.process + 100, next);
            tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
        }
    }
}

/// Reads every partition from the start as a fresh process until every value in `acked`
/// (value -> key and offset) was read or lies below the log start a leader reported for its
/// key (deleted by retention); `Err` lists how many acknowledged values stayed unreadable by
/// `deadline`.
pub async fn final_read(
    config: WorkloadConfig,
    shared: Shared,
    process: u64,
    acked: BTreeMap<i64, (String, u64)>,
    deadline: Instant,
) -> Result<(), String> {
    let mut missing = acked;
    let mut reader = Reader::new(&config, &shared, process, BTreeMap::new());
    let mut empty_polls = 0;
    while Instant::now() < deadline {
        match reader.poll(&shared).await {
            Some(values) => {
                empty_polls = if values.is_empty() {
                    empty_polls + 1
                } else {
                    0
                };
                for value in values {
                    missing.remove(&value);
                }
                let recorder = lock(&shared);
                missing.retain(|_, (key, offset)| *offset >= recorder.log_start_of(key));
                drop(recorder);
                // Acked values all read, and the log seems drained: info sends may follow.
                if missing.is_empty() && empty_polls >= 3 {
                    return Ok(());
                }
            }
            None => {
                let next = std::mem::take(&mut reader.next);
                reader = Reader::new(&config, &shared, reader.process + 100, next);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let first: Vec<i64> = missing.keys().take(8).copied().collect();
    Err(format!(
        "liveness: {} acknowledged values unreadable after healing (first {first:?})",
        missing.len()
    ))
}

/// Watches leadership every `OBSERVE_MS` until `stop_at`, recording changes.
pub async fn observe(config: WorkloadConfig, shared: Shared, stop_at: Instant) {
    let Ok(admin) = Admin::new(client_config(&config)) else {
        return;
    };
    let topics = [TOPIC.to_string()];
    while Instant::now() < stop_at {
        if let Ok(metadata) = admin.metadata(Some(&topics)).await {
            if let Some(topic) = metadata.topics.get(TOPIC) {
                let mut recorder = lock(&shared);
                for (partition, state) in &topic.partitions {
                    let leader = state.leader.map_or(0, |b| i64::from(b.0));
                    let isr: Vec<i32> = state.isr.iter().map(|b| b.0).collect();
                    recorder.leader(&key_name(*partition), leader, state.leader_epoch, &isr);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(OBSERVE_MS)).await;
    }
}
