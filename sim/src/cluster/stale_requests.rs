//! The stale-request nemesis (issue 14, item 6): copies of old Produce requests delivered again
//! after the producers moved on, as a network that holds a request for seconds, a proxy that
//! replays one, or a client bug would deliver them.
//!
//! The idempotent producers hand every batch they had acknowledged to a [`Captured`] ring (their
//! [`client::producer::BatchTap`]): the exact bytes that were sent, with their producer id, epoch
//! and sequence. In the seeds that draw it, a task of its own picks old batches from the ring at
//! random and sends them again, to the partition's current leader (or, in a fifth of the sends,
//! to any broker), sometimes twice back to back. By then the producer has usually written later
//! batches, or bumped its epoch after a failure, so the copies are retries of old sequences,
//! of sequences that fell out of the last five, and of fenced epochs. Every copy's batch is in
//! the log already: the broker must answer it as a duplicate or refuse it (OUT_OF_ORDER_SEQUENCE,
//! INVALID_PRODUCER_EPOCH), never append it again. The copies are not operations of the history,
//! so a copy appended would show as a value read twice, or out of its producer's order, which
//! the checker reports. Only acknowledged batches are replayed: a batch whose send failed for
//! certain may legitimately be written by a copy (no broker can tell a copy from a late first
//! delivery), and the history would then judge the "failed" send wrongly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use client::error::code;
use client::metadata::MetadataCache;
use client::pool::ConnectionPool;
use client::producer::BatchTap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::record::{lock, Reappended, Shared};
use super::workload::{client_config, WorkloadConfig, TOPIC};

/// Most batches the ring keeps (the oldest are dropped).
pub const CAPTURED_MAX: usize = 256;
/// Pause between two deliveries, ms (drawn up to this).
const PAUSE_MS_MAX: u64 = 400;
/// How often a copy goes to any broker rather than the leader.
const ANY_BROKER_PROBABILITY: f64 = 0.2;
/// How often a copy is sent twice back to back.
const TWICE_PROBABILITY: f64 = 0.3;

/// Acknowledged batches, oldest first: (partition, the offset acknowledged, the bytes sent),
/// and per partition and producer id the highest epoch and the last offset acknowledged there.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Ring>>);

/// What [`Captured`] holds.
#[derive(Default)]
struct Ring {
    /// The last [`CAPTURED_MAX`] acknowledged batches, oldest first.
    batches: VecDeque<(i32, i64, Bytes)>,
    /// (partition, producer id) -> the highest epoch of a batch acknowledged there.
    epochs: BTreeMap<(i32, i64), i16>,
    /// (partition, producer id) -> the last offset of the last batch acknowledged there.
    last_offsets: BTreeMap<(i32, i64), i64>,
}

impl Captured {
    /// The tap a producer hands its acknowledged batches to.
    pub fn tap(&self) -> BatchTap {
        let ring = self.0.clone();
        Arc::new(
            move |topic: &str, partition: i32, offset: i64, batch: Bytes| {
                assert_eq!(topic, TOPIC, "the workload writes one topic");
                let mut ring = ring.lock().expect("never poisoned: no panics inside");
                if let Some((producer_id, epoch, _)) = stamp_of(&batch) {
                    let highest = ring.epochs.entry((partition, producer_id)).or_insert(epoch);
                    *highest = (*highest).max(epoch);
                    let last = offset + last_offset_delta(&batch);
                    let known = ring
                        .last_offsets
                        .entry((partition, producer_id))
                        .or_insert(last);
                    *known = (*known).max(last);
                }
                if ring.batches.len() == CAPTURED_MAX {
                    ring.batches.pop_front();
                }
                ring.batches.push_back((partition, offset, batch));
                assert!(ring.batches.len() <= CAPTURED_MAX);
            },
        )
    }

    /// A batch picked by `rng`, if any was captured.
    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<(i32, i64, Bytes)> {
        let ring = self.0.lock().expect("never poisoned: no panics inside");
        if ring.batches.is_empty() {
            return None;
        }
        ring.batches
            .get(rng.gen_range(0..ring.batches.len()))
            .cloned()
    }

    /// The highest epoch of producer `producer_id` acknowledged on `partition` so far.
    fn highest_epoch(&self, partition: i32, producer_id: i64) -> Option<i16> {
        let ring = self.0.lock().expect("never poisoned: no panics inside");
        ring.epochs.get(&(partition, producer_id)).copied()
    }

    /// The last offset producer `producer_id` had acknowledged on `partition` so far.
    fn last_offset(&self, partition: i32, producer_id: i64) -> Option<i64> {
        let ring = self.0.lock().expect("never poisoned: no panics inside");
        ring.last_offsets.get(&(partition, producer_id)).copied()
    }
}

/// The batch's last offset delta (0 if it does not parse).
fn last_offset_delta(batch: &[u8]) -> i64 {
    log_core::batch::BatchView::new(batch)
        .map_or(0, |view| i64::from(view.header().last_offset_delta))
}

/// The workload values a captured batch carries (its records' values, decimal text).
fn values_of(batch: &[u8]) -> Vec<i64> {
    let Ok(view) = log_core::batch::BatchView::new(batch) else {
        return Vec::new();
    };
    let Ok(records) = view.decode() else {
        return Vec::new();
    };
    records
        .iter()
        .filter_map(|record| {
            let value = record.ok()?.value?;
            std::str::from_utf8(value).ok()?.parse().ok()
        })
        .collect()
}

/// The producer id, epoch and base sequence a captured batch carries.
fn stamp_of(batch: &[u8]) -> Option<(i64, i16, i32)> {
    let view = log_core::batch::BatchView::new(batch).ok()?;
    let header = view.header();
    Some((
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
    ))
}

/// Delivers copies of captured batches again until `stop_at`.
pub async fn redeliver(
    config: WorkloadConfig,
    shared: Shared,
    captured: Captured,
    stop_at: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x57a1_e000_0000_0029);
    let client = client_config(&config);
    let timeout_ms = client.request_timeout_ms;
    let pool = ConnectionPool::new(client);
    let metadata = MetadataCache::new();
    let topics = [TOPIC.to_string()];
    lock(&shared).event("stale requests: acknowledged batches delivered again");
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1..=PAUSE_MS_MAX))).await;
        let Some((partition, acknowledged_at, batch)) = captured.pick(&mut rng) else {
            continue;
        };
        let to_any = rng.gen_bool(ANY_BROKER_PROBABILITY);
        let twice = rng.gen_bool(TWICE_PROBABILITY);
        let addr = if to_any {
            config.bootstrap[rng.gen_range(0..config.bootstrap.len())].clone()
        } else {
            let Ok(cluster) = metadata.refresh(&pool, Some(&topics)).await else {
                continue;
            };
            let Ok((_, addr)) = cluster.leader_addr(TOPIC, partition) else {
                continue;
            };
            addr
        };
        let (producer_id, epoch, sequence) = stamp_of(&batch).unwrap_or((-1, -1, -1));
        // A later epoch of this producer was acknowledged on this partition: the copy's epoch is
        // fenced there (every replica that can lead holds the later batch, under strong settings).
        let fenced = captured
            .highest_epoch(partition, producer_id)
            .is_some_and(|highest| highest > epoch);
        for _ in 0..=u8::from(twice) {
            let parts = [(partition, batch.clone())];
            let outcome = super::raw_produce::send(&pool, &addr, -1, timeout_ms, &parts).await;
            let outcome = outcome.into_iter().next();
            let answer = match &outcome {
                Some(Ok(offset)) => format!("duplicate at {offset}"),
                Some(Err(error)) => error.to_string(),
                None => "no answer".to_string(),
            };
            let fenced_text = if fenced { " (fenced epoch)" } else { "" };
            lock(&shared).event(&format!(
                "stale copy t-{partition} producer {producer_id} epoch {epoch} seq {sequence}{fenced_text} to {addr}: {answer}"
            ));
            if let Some(Ok(offset)) = &outcome {
                if *offset != acknowledged_at {
                    // Appended again, not answered as the duplicate at its first offset: the
                    // checker excuses it only if the leader may have lost the producer
                    // ([`Reappended`]).
                    let reappended = Reappended {
                        key: super::workload::key_name(partition),
                        producer_last_offset: captured
                            .last_offset(partition, producer_id)
                            .unwrap_or(i64::MAX),
                        values: values_of(&batch),
                    };
                    let mut recorder = lock(&shared);
                    recorder.event(&format!(
                        "stale copy appended again at {offset} (first at {acknowledged_at}), \
                         values {:?}",
                        reappended.values
                    ));
                    recorder.reappended.push(reappended);
                }
            }
            // A fenced epoch's batch must be refused for its epoch (INVALID_PRODUCER_EPOCH),
            // never judged by its sequence: answered as a duplicate or out of order, the broker
            // compared it with the current epoch's batches (mutant 11).
            let by_sequence = match &outcome {
                Some(Ok(_)) => true,
                Some(Err(error)) => matches!(
                    error.kafka_code(),
                    Some(code::OUT_OF_ORDER_SEQUENCE_NUMBER | code::DUPLICATE_SEQUENCE_NUMBER)
                ),
                None => false,
            };
            // Only an in-sync replica holds the later epoch's batch. A deposed leader that has
            // not heard of its successor (paused, or cut off from the controller) still answers
            // from its own producer state, which never saw the later epoch, as Kafka's would
            // (seeds 572 and 5199 of session 18).
            let in_sync = node_of(&addr).is_none_or(|node| {
                lock(&shared).in_newest_isr(&super::workload::key_name(partition), node)
            });
            if fenced && by_sequence && !in_sync {
                buggify::probe!("sim.stale_copy.fenced_epoch_judged_by_a_deposed_leader");
            }
            if fenced && by_sequence && config.strong && in_sync {
                let why = format!(
                    "stale requests: a copy of producer {producer_id} epoch {epoch} seq \
                     {sequence} on t-{partition}, whose later epoch was acknowledged there, \
                     was answered \"{answer}\" instead of INVALID_PRODUCER_EPOCH"
                );
                lock(&shared).workload_violation(&why);
            }
        }
    }
}

/// The broker id of a simulated node's address (`10.0.0.N:port`, as `World::ip` makes them).
fn node_of(addr: &str) -> Option<i32> {
    let host = addr.split(':').next()?;
    host.strip_prefix("10.0.0.")?.parse().ok()
}
