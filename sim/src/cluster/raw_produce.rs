//! A producer that builds its own Produce requests, as librdkafka and sarama do and rill's
//! producer does not: one request per broker carrying a batch for every partition that broker
//! leads (in 30% of the requests every partition, as a client with stale metadata sends them:
//! the others are answered NOT_LEADER_OR_FOLLOWER), each batch's header max timestamp disagreeing with its records (-1, 0, an hour ahead
//! or a second behind). Not idempotent and never retried, so every request is sent once.
//!
//! In a fifth of the rounds (a stream of its own) one partition's data instead holds two or three
//! batches, at least one of them idempotent (a producer id of its own, sequence 0), as no Java or
//! librdkafka producer sends but a client may: Kafka refuses every Produce v3+ whose partition
//! data holds more than one batch (`ProduceRequest.validateRecords`), INVALID_RECORD for that
//! partition alone, and so must rill for idempotent ones (their sequence check covers one
//! batch). Any other answer is a violation (an acknowledgement appended batches whose sequences
//! nobody checked; a broker task panicking at the payload fails the run anyway); the values are
//! sends of the history, failed when refused, so one read later is an aborted read. The
//! request's other partitions are answered and judged as usual.
//!
//! In the history each partition's batch is the send of a process of its own (process
//! `RAW_PROCESS_BASE + partition`), since the batches of one request are concurrent; after an
//! indeterminate outcome that process retires and the next one (`+ 100`) takes over, so that a
//! request still stuck in a clogged link and appended late is not judged against the sends that
//! followed it (a producer without idempotence promises no order across an uncertain attempt).

use super::record::{lock, Shared};
use super::workload::{client_config, key_name, WorkloadConfig, PARTITIONS, TOPIC};
use bytes::Bytes;
use client::error::code;
use client::metadata::MetadataCache;
use client::pool::ConnectionPool;
use client::records::{encode_batch, set_max_timestamp, OutgoingRecord};
use client::sequence::{BatchStamp, ProducerIdentity};
use client::ClientError;
use jepsen::history::{MicroOp, OpFn, OpType, OpValue};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The first process id of the raw producer's partition senders.
pub const RAW_PROCESS_BASE: u64 = 20;
/// Its values are `RAW_VALUES_BASE + n`: apart from the producers' (`p * 1_000_000 + i`).
const RAW_VALUES_BASE: i64 = 50_000_000;
/// Most records in one of its batches.
const RECORDS_PER_BATCH_MAX: usize = 3;
/// How often a request carries every partition, led by its broker or not.
const STALE_LEADER_PROBABILITY: f64 = 0.3;
/// Pause between rounds, ms (at most).
const ROUND_PAUSE_MS_MAX: u64 = 60;
/// How often a round sends several batches for one partition.
const MULTI_BATCH_PROBABILITY: f64 = 0.2;
/// The producer id of the multi-batch payloads' idempotent batches: never one a broker hands
/// out to a client of the run (broker 0x7fff does not exist).
const MULTI_BATCH_PRODUCER_ID: i64 = 0x7fff << 48;

/// One partition's batch in a request: its process, values and encoded bytes.
struct PartBatch {
    partition: i32,
    process: u64,
    values: Vec<i64>,
    bytes: Bytes,
    /// Several batches, at least one idempotent: must be refused INVALID_RECORD.
    multi_batch: bool,
}

/// Sends rounds of multi-partition requests until `stop_at`.
pub async fn produce(config: WorkloadConfig, shared: Shared, stop_at: Instant) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7a30_0000_0000_0021);
    // The multi-batch payloads' choices: a stream of their own, so the draws above stay.
    let mut multi_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7a30_ba7c_0000_002f);
    let client = client_config(&config);
    let timeout_ms = client.request_timeout_ms;
    let pool = ConnectionPool::new(client);
    let metadata = MetadataCache::new();
    let topics = [TOPIC.to_string()];
    // Each partition's current process.
    let mut processes: Vec<u64> = (0..PARTITIONS)
        .map(|p| RAW_PROCESS_BASE + u64::try_from(p).expect("partitions are few"))
        .collect();
    let mut next_value = RAW_VALUES_BASE;
    lock(&shared).event("raw producer: multi-partition requests, wrong header max timestamps");
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=ROUND_PAUSE_MS_MAX))).await;
        let Ok(cluster) = metadata.refresh(&pool, Some(&topics)).await else {
            continue;
        };
        // Partitions by leader address, in partition order.
        let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for partition in 0..PARTITIONS {
            if let Ok((_, addr)) = cluster.leader_addr(TOPIC, partition) {
                by_leader.entry(addr).or_default().push(partition);
            }
        }
        if by_leader.is_empty() {
            continue;
        }
        let pick = rng.gen_range(0..by_leader.len());
        let (addr, mut partitions) = by_leader
            .into_iter()
            .nth(pick)
            .expect("picked within range");
        // Now and then as a client with stale metadata: every partition to this broker, those
        // it does not lead answered NOT_LEADER_OR_FOLLOWER within the same request.
        if rng.gen_bool(STALE_LEADER_PROBABILITY) {
            partitions = (0..PARTITIONS).collect();
        }
        let mut batches = Vec::new();
        let key_bytes = (config.record_padding_bytes > 0)
            .then(|| Bytes::from(vec![b'k'; config.record_padding_bytes]));
        for partition in partitions {
            let count = rng.gen_range(1..=RECORDS_PER_BATCH_MAX);
            let values: Vec<i64> = (0..count)
                .map(|i| next_value + i64::try_from(i).expect("few records"))
                .collect();
            next_value += i64::try_from(count).expect("few records");
            let now = client::clock::wall_clock_ms();
            let timestamp = if config.record_timestamps_unset {
                -1
            } else {
                now
            };
            let records: Vec<OutgoingRecord> = values
                .iter()
                .map(|v| OutgoingRecord {
                    key: key_bytes.clone(),
                    value: Bytes::from(v.to_string()),
                    timestamp,
                })
                .collect();
            let Ok(encoded) = encode_batch(&records, None, client::Compression::None) else {
                continue;
            };
            let header_max = [-1, 0, now + 3_600_000, now - 1_000][rng.gen_range(0..4)];
            batches.push(PartBatch {
                partition,
                process: processes[partition as usize],
                values,
                bytes: set_max_timestamp(encoded, header_max),
                multi_batch: false,
            });
        }
        if batches.is_empty() {
            continue;
        }
        if multi_rng.gen_bool(MULTI_BATCH_PROBABILITY) {
            let index = multi_rng.gen_range(0..batches.len());
            let records = |values: &[i64]| -> Vec<OutgoingRecord> {
                values
                    .iter()
                    .map(|v| OutgoingRecord {
                        key: key_bytes.clone(),
                        value: Bytes::from(v.to_string()),
                        timestamp: client::clock::wall_clock_ms(),
                    })
                    .collect()
            };
            // Two batches (what an off-by-one lets through) or three; the first idempotent, or
            // the first plain and the others idempotent.
            let count = multi_rng.gen_range(2..=3);
            let first_plain = multi_rng.gen_bool(0.5);
            let mut payload = batches[index].bytes.to_vec();
            let mut values = batches[index].values.clone();
            if !first_plain {
                // The batch made above, stamped instead.
                payload = stamped(&records(&values)).to_vec();
            }
            for _ in 1..count {
                let more = vec![next_value];
                next_value += 1;
                payload.extend_from_slice(&stamped(&records(&more)));
                values.extend(more);
            }
            batches[index].bytes = Bytes::from(payload);
            batches[index].values = values;
            batches[index].multi_batch = true;
        }
        invoke(&shared, &batches);
        let parts: Vec<(i32, Bytes)> = batches
            .iter()
            .map(|b| (b.partition, b.bytes.clone()))
            .collect();
        let outcome = send(&pool, &addr, config.acks, timeout_ms, &parts).await;
        for (batch, result) in batches.iter().zip(outcome) {
            // With acks=0 the broker answers nothing, so there is no refusal to judge.
            if batch.multi_batch && config.acks != 0 {
                judge_multi_batch(&shared, batch, &result);
            }
            if complete(&shared, batch, result) {
                processes[batch.partition as usize] += 100;
            }
        }
    }
}

/// `records` as one idempotent batch of [`MULTI_BATCH_PRODUCER_ID`], epoch 0, sequence 0.
fn stamped(records: &[OutgoingRecord]) -> Bytes {
    let stamp = BatchStamp {
        identity: ProducerIdentity {
            producer_id: MULTI_BATCH_PRODUCER_ID,
            producer_epoch: 0,
        },
        base_sequence: 0,
        record_count: i32::try_from(records.len()).expect("few records"),
    };
    encode_batch(records, Some(&stamp), client::Compression::None)
        .expect("a small uncompressed batch encodes")
}

/// A payload of several batches, one idempotent, must be refused INVALID_RECORD (Kafka's
/// answer); a failed partition's KAFKA_STORAGE_ERROR and answers that say nothing of the
/// records (the request lost or timed out) pass too. Anything else is a violation.
fn judge_multi_batch(shared: &Shared, batch: &PartBatch, result: &Result<i64, ClientError>) {
    let answer = match result {
        Ok(offset) => format!("acknowledged at {offset}"),
        Err(error) => error.to_string(),
    };
    let mut recorder = lock(shared);
    recorder.event(&format!(
        "raw send t-{}: several batches, one idempotent {:?}: {answer}",
        batch.partition, batch.values
    ));
    let kafkas = match result {
        Ok(_) => false,
        Err(error) => match error.kafka_code() {
            Some(code) => [code::INVALID_RECORD, code::KAFKA_STORAGE_ERROR].contains(&code),
            None => true,
        },
    };
    if !kafkas {
        recorder.workload_violation(&format!(
            "validator: t-{} data of several batches, one idempotent, was answered \"{answer}\" \
             instead of INVALID_RECORD",
            batch.partition
        ));
    }
}

/// Records the invocation of every batch's send, each by its partition's process.
fn invoke(shared: &Shared, batches: &[PartBatch]) {
    let mut recorder = lock(shared);
    for batch in batches {
        let key = recorder.key(&key_name(batch.partition));
        let mops = batch
            .values
            .iter()
            .map(|v| MicroOp::Send {
                key,
                value: *v,
                offset: None,
            })
            .collect();
        let text = format!("raw send t-{} {:?}", batch.partition, batch.values);
        recorder.invoke(batch.process, OpFn::Send, OpValue::Mops(mops), &text);
    }
}

/// Records one batch's outcome; true when it was indeterminate (the process retires).
fn complete(shared: &Shared, batch: &PartBatch, result: Result<i64, ClientError>) -> bool {
    let mut recorder = lock(shared);
    let key = recorder.key(&key_name(batch.partition));
    match result {
        Ok(base) if base >= 0 => {
            let base = u64::try_from(base).expect("non-negative");
            let mops = batch
                .values
                .iter()
                .zip(base..)
                .map(|(v, offset)| MicroOp::Send {
                    key,
                    value: *v,
                    offset: Some(offset),
                })
                .collect();
            let text = format!(
                "raw send t-{} [{base}.., {:?}]",
                batch.partition, batch.values
            );
            recorder.complete(batch.process, OpType::Ok, OpValue::Mops(mops), &text);
            false
        }
        // acks=0: nothing is known.
        Ok(_) => {
            let text = format!("raw send t-{} (acks=0: unacknowledged)", batch.partition);
            recorder.complete(batch.process, OpType::Info, OpValue::Mops(vec![]), &text);
            true
        }
        Err(error) => {
            let indeterminate = error.is_indeterminate();
            let op_type = if indeterminate {
                OpType::Info
            } else {
                OpType::Fail
            };
            let text = format!("raw send t-{}: {error}", batch.partition);
            recorder.complete(batch.process, op_type, OpValue::Mops(vec![]), &text);
            indeterminate
        }
    }
}

/// Sends one Produce request carrying every (partition, batch); returns each batch's base
/// offset or error.
pub(crate) async fn send(
    pool: &ConnectionPool,
    addr: &str,
    acks: i16,
    timeout_ms: u64,
    batches: &[(i32, Bytes)],
) -> Vec<Result<i64, ClientError>> {
    let data: Vec<PartitionProduceData> = batches
        .iter()
        .map(|(partition, bytes)| {
            PartitionProduceData::default()
                .with_index(*partition)
                .with_records(Some(bytes.clone()))
        })
        .collect();
    let broker_timeout_ms = i32::try_from(timeout_ms * 2 / 3).unwrap_or(i32::MAX);
    let build = move |_version: i16| {
        let topic_data = TopicProduceData::default()
            .with_name(StrBytes::from_string(TOPIC.to_string()).into())
            .with_partition_data(data);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(broker_timeout_ms)
            .with_topic_data(vec![topic_data]);
        Ok(RequestKind::Produce(request))
    };
    if acks == 0 {
        let sent = pool.send_only(addr, ApiKey::Produce, build).await;
        return batches
            .iter()
            .map(|_| match &sent {
                Ok(()) => Ok(-1),
                Err(error) => Err(error.clone()),
            })
            .collect();
    }
    let response = match pool.call(addr, ApiKey::Produce, timeout_ms, build).await {
        Ok(ResponseKind::Produce(response)) => response,
        Ok(_) => {
            let error = ClientError::Protocol("expected a Produce response".into());
            return batches.iter().map(|_| Err(error.clone())).collect();
        }
        Err(error) => return batches.iter().map(|_| Err(error.clone())).collect(),
    };
    batches
        .iter()
        .map(|(partition, _)| {
            let answer = response
                .responses
                .iter()
                .filter(|t| t.name.as_str() == TOPIC)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == *partition)
                .ok_or_else(|| {
                    ClientError::Protocol("Produce answer lacks the partition".into())
                })?;
            if answer.error_code != 0 {
                return Err(ClientError::kafka("Produce", answer.error_code));
            }
            Ok(answer.base_offset)
        })
        .collect()
}
