//! Idempotent producers (KIP-98): per-partition producer id, epoch and sequence bookkeeping.
//!
//! A sans-IO table for one partition. The leader asks [`ProducerStateTable::check`] before it
//! appends a producer's batch: a retry of one of the producer's last [`BATCHES_RETAINED_MAX`]
//! batches is answered with the original offsets ([`Decision::Duplicate`]) instead of being
//! appended twice; a gap in the sequence, a fenced (older) epoch or a forgotten producer are
//! refused with Kafka's error codes. Every replica (leader and follower alike) calls
//! [`ProducerStateTable::record`] after each append, so a new leader already knows the state;
//! [`ProducerStateTable::truncate_to`] follows log truncation and
//! [`ProducerStateTable::rebuild`] replays the log on recovery.
//!
//! ## Semantics chosen (and where they differ from current Kafka)
//!
//! - Sequences wrap from `i32::MAX` to 0, epochs must grow, a new epoch starts at sequence 0.
//! - A producer the table does not know may only start at sequence 0; any other sequence is
//!   `UNKNOWN_PRODUCER_ID` (Kafka before 2.5). Kafka 2.5+ accepts any sequence there, which
//!   would silently accept a gap after the state was lost; rill prefers the refusal, which
//!   makes the client reset its sequence (librdkafka and the Java client both handle it).
//! - The table holds at most `producers_max` producers; when full, the producer whose last
//!   write is oldest in the log is forgotten. Beside that bound, [`ProducerStateTable::expire`]
//!   forgets producers idle for `producer.id.expiration.ms` (Kafka's rule and default, one day),
//!   measured on the replica's own clock at the time it recorded the producer's last batch
//!   (Kafka uses the batch's max timestamp, which clients set and may leave at -1).
//! - Retention does not touch the table: a producer whose batches were all deleted is still
//!   known (KAFKA-7190, KIP-360). The driver snapshots the table (`partition::producer_snapshots`)
//!   so a restart knows it too.

use std::collections::BTreeMap;

use thiserror::Error;
use wire::{BrokerId, Offset};

/// The producer id of a non-idempotent producer (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;

/// Batches remembered per producer: Kafka's limit, matching the client's
/// `max.in.flight.requests.per.connection <= 5` for idempotence.
pub const BATCHES_RETAINED_MAX: usize = 5;

/// Default limit on the producers one partition remembers.
pub const PRODUCERS_MAX_DEFAULT: usize = 10_000;

/// OUT_OF_ORDER_SEQUENCE_NUMBER.
pub const ERROR_CODE_OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// DUPLICATE_SEQUENCE_NUMBER (not produced by this table: retries of the retained batches are
/// answered as duplicates with their offsets, older ones as out of order, like Kafka 2.x+).
pub const ERROR_CODE_DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// INVALID_PRODUCER_EPOCH.
pub const ERROR_CODE_INVALID_PRODUCER_EPOCH: i16 = 47;
/// UNKNOWN_PRODUCER_ID.
pub const ERROR_CODE_UNKNOWN_PRODUCER_ID: i16 = 59;

/// Why a producer's batch is refused; each maps to the Kafka error code of the same name.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ProducerError {
    /// The batch does not follow the producer's last sequence (a gap, or an old retry that
    /// fell out of the retained window), or a new epoch does not start at sequence 0.
    #[error("OUT_OF_ORDER_SEQUENCE_NUMBER (expected {expected}, got {received})")]
    OutOfOrderSequence {
        /// The sequence the table expected next.
        expected: i32,
        /// The batch's base sequence.
        received: i32,
    },
    /// The batch's epoch is older than the producer's: a newer instance fenced this one.
    #[error("INVALID_PRODUCER_EPOCH (current {current}, got {received})")]
    InvalidProducerEpoch {
        /// The producer's epoch in the table.
        current: i16,
        /// The batch's epoch.
        received: i16,
    },
    /// The table does not know the producer and the batch does not start at sequence 0.
    #[error("UNKNOWN_PRODUCER_ID")]
    UnknownProducerId,
    /// The batch header is malformed (negative epoch or sequence, empty batch).
    #[error("invalid batch header: {reason}")]
    InvalidBatch {
        /// What was wrong, for the log line.
        reason: &'static str,
    },
}

impl ProducerError {
    /// The Kafka error code the produce response carries.
    pub fn error_code(&self) -> i16 {
        match self {
            ProducerError::OutOfOrderSequence { .. } => ERROR_CODE_OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::InvalidProducerEpoch { .. } => ERROR_CODE_INVALID_PRODUCER_EPOCH,
            ProducerError::UnknownProducerId => ERROR_CODE_UNKNOWN_PRODUCER_ID,
            // CORRUPT_MESSAGE: Kafka's answer to a batch header that fails validation.
            ProducerError::InvalidBatch { .. } => 2,
        }
    }
}

/// What the leader should do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append it (then call [`ProducerStateTable::record`]).
    Append,
    /// A retry of a batch already in the log: do not append, answer with its offsets.
    Duplicate {
        /// Offset of the original batch's first record.
        first_offset: Offset,
        /// Offset of the original batch's last record.
        last_offset: Offset,
    },
}

/// One appended batch of a producer, as remembered for duplicate detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record.
    pub first_sequence: i32,
    /// Sequence of the batch's last record (wrapped past `i32::MAX`).
    pub last_sequence: i32,
    /// Log offset of the batch's first record.
    pub first_offset: Offset,
    /// Log offset of the batch's last record.
    pub last_offset: Offset,
}

/// One appended batch as read back from the log, for [`ProducerStateTable::rebuild`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedBatch {
    /// The batch's producer id (batches with [`NO_PRODUCER_ID`] are skipped).
    pub producer_id: i64,
    /// The batch's producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the batch's first record.
    pub base_sequence: i32,
    /// Sequence of the batch's last record.
    pub last_sequence: i32,
    /// Log offset of the batch's first record.
    pub first_offset: Offset,
    /// Log offset of the batch's last record.
    pub last_offset: Offset,
}

/// What one producer did last on this partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch: batches of older epochs are fenced.
    pub epoch: i16,
    /// The last batches of the current epoch, oldest first, at most [`BATCHES_RETAINED_MAX`].
    pub batches: Vec<BatchMetadata>,
    /// Whether batches of this producer were forgotten (out of the window or of an older
    /// epoch): if truncation then removes retained ones, only the log knows the state.
    pub history_forgotten: bool,
    /// The table's clock when the producer's last batch was recorded, for expiry.
    pub last_write_ms: i64,
}

impl ProducerEntry {
    fn last(&self) -> &BatchMetadata {
        self.batches
            .last()
            .expect("an entry keeps at least one batch")
    }
}

/// Whether [`ProducerStateTable::truncate_to`] left an exact table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncateOutcome {
    /// The table equals what a replay of the remaining log would build.
    Exact,
    /// Some producer lost retained batches and had forgotten older ones: call
    /// [`ProducerStateTable::rebuild`] with the remaining log before the next `check`.
    RebuildRequired,
}

/// Idempotent-producer state of one partition.
#[derive(Clone, Debug)]
pub struct ProducerStateTable {
    /// Producers by id; a BTreeMap so eviction and iteration are deterministic.
    producers: BTreeMap<i64, ProducerEntry>,
    /// Most producers remembered; beyond it the least recently written one is forgotten.
    producers_max: usize,
    /// Producers forgotten because of `producers_max`, for metrics.
    producers_evicted: u64,
    /// The driver's clock (ms), fed by [`Self::advance_clock`]; never moves back. The table
    /// reads no clock itself.
    now_ms: i64,
}

/// The sequence `delta` records after `sequence`, wrapping past `i32::MAX` to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub fn sequence_add(sequence: i32, delta: i32) -> i32 {
    assert!(sequence >= 0, "sequences are non-negative");
    assert!(delta >= 0, "sequences only move forward");
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

impl Default for ProducerStateTable {
    fn default() -> Self {
        Self::new(PRODUCERS_MAX_DEFAULT)
    }
}

impl ProducerStateTable {
    /// An empty table remembering at most `producers_max` producers.
    pub fn new(producers_max: usize) -> Self {
        assert!(producers_max >= 1, "a table must hold a producer");
        Self {
            producers: BTreeMap::new(),
            producers_max,
            producers_evicted: 0,
            now_ms: 0,
        }
    }

    /// Moves the table's clock to `now_ms` (a clock stepping back leaves it where it was, so
    /// expiry never resurrects or shortens a producer's life). Batches recorded afterwards carry
    /// this time.
    pub fn advance_clock(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Forgets producers whose last batch was recorded `expiration_ms` or more before the
    /// table's clock (Kafka's `producer.id.expiration.ms`). Returns how many were forgotten.
    pub fn expire(&mut self, expiration_ms: i64) -> usize {
        assert!(expiration_ms > 0, "an expiry is a positive duration");
        let before = self.producers.len();
        let now_ms = self.now_ms;
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_write_ms) < expiration_ms);
        assert!(self.producers.len() <= before);
        before - self.producers.len()
    }

    /// The producers the table remembers, by id (for snapshots and DescribeProducers).
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// The most producers the table holds.
    pub fn producers_max(&self) -> usize {
        self.producers_max
    }

    /// A table holding `entries` (read back from a snapshot), refused when they break the
    /// table's invariants: a snapshot is checked, never trusted into a panic later.
    pub fn from_entries(
        producers_max: usize,
        entries: Vec<(i64, ProducerEntry)>,
    ) -> Result<Self, &'static str> {
        let mut table = Self::new(producers_max);
        if entries.len() > producers_max {
            return Err("more producers than the table holds");
        }
        for (id, entry) in entries {
            if id < 0 || entry.epoch < 0 {
                return Err("a negative producer id or epoch");
            }
            if entry.batches.is_empty() || entry.batches.len() > BATCHES_RETAINED_MAX {
                return Err("an entry holds 1 to 5 batches");
            }
            let ordered = entry.batches.iter().all(|b| {
                b.first_offset.0 >= 0
                    && b.first_offset <= b.last_offset
                    && b.first_sequence >= 0
                    && b.last_sequence >= 0
            }) && entry
                .batches
                .windows(2)
                .all(|pair| pair[0].last_offset < pair[1].first_offset);
            if !ordered {
                return Err("batches out of order");
            }
            table.now_ms = table.now_ms.max(entry.last_write_ms);
            if table.producers.insert(id, entry).is_some() {
                return Err("a producer listed twice");
            }
        }
        table.check_invariants();
        Ok(table)
    }

    /// Decides whether a batch of `record_count` records starting at `base_sequence` may be
    /// appended. Pure: the table changes only in [`Self::record`].
    pub fn check(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        record_count: i32,
    ) -> Result<Decision, ProducerError> {
        if producer_id < 0 {
            return Ok(Decision::Append);
        }
        if producer_epoch < 0 || base_sequence < 0 {
            return Err(ProducerError::InvalidBatch {
                reason: "negative epoch or sequence on an idempotent batch",
            });
        }
        if record_count < 1 {
            return Err(ProducerError::InvalidBatch {
                reason: "empty batch",
            });
        }
        let last_sequence = sequence_add(base_sequence, record_count - 1);
        let Some(entry) = self.producers.get(&producer_id) else {
            if base_sequence == 0 {
                return Ok(Decision::Append);
            }
            return Err(ProducerError::UnknownProducerId);
        };
        assert!(
            !entry.batches.is_empty(),
            "an entry keeps at least one batch"
        );
        if producer_epoch < entry.epoch {
            buggify::probe!("producer.stale_epoch_fenced");
            return Err(ProducerError::InvalidProducerEpoch {
                current: entry.epoch,
                received: producer_epoch,
            });
        }
        if producer_epoch > entry.epoch {
            if base_sequence != 0 {
                return Err(ProducerError::OutOfOrderSequence {
                    expected: 0,
                    received: base_sequence,
                });
            }
            return Ok(Decision::Append);
        }
        let duplicate = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == base_sequence && b.last_sequence == last_sequence);
        if let Some(batch) = duplicate {
            buggify::probe!("producer.duplicate_batch_answered");
            return Ok(Decision::Duplicate {
                first_offset: batch.first_offset,
                last_offset: batch.last_offset,
            });
        }
        let expected = sequence_add(entry.last().last_sequence, 1);
        if base_sequence != expected {
            return Err(ProducerError::OutOfOrderSequence {
                expected,
                received: base_sequence,
            });
        }
        Ok(Decision::Append)
    }

    /// Records a batch just appended to the log (leader after `check`, follower after
    /// replicating, recovery while replaying). Not validated: the log is the truth.
    pub fn record(&mut self, batch: LoggedBatch) {
        if batch.producer_id < 0 {
            return;
        }
        assert!(
            batch.first_offset <= batch.last_offset,
            "a batch spans offsets forward"
        );
        assert!(
            batch.producer_epoch >= 0,
            "idempotent batches carry an epoch"
        );
        if !self.producers.contains_key(&batch.producer_id)
            && self.producers.len() >= self.producers_max
        {
            self.evict_least_recent();
        }
        let metadata = BatchMetadata {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence,
            first_offset: batch.first_offset,
            last_offset: batch.last_offset,
        };
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: Vec::new(),
                history_forgotten: false,
                last_write_ms: self.now_ms,
            });
        entry.last_write_ms = self.now_ms;
        if entry.epoch != batch.producer_epoch {
            // Kafka's replication path takes the log's epoch as it comes, even a lower one.
            entry.history_forgotten |= !entry.batches.is_empty();
            entry.batches.clear();
            entry.epoch = batch.producer_epoch;
        }
        if entry.batches.len() == BATCHES_RETAINED_MAX {
            entry.batches.remove(0);
            entry.history_forgotten = true;
        }
        entry.batches.push(metadata);
        assert!(entry.batches.len() <= BATCHES_RETAINED_MAX);
        assert!(self.producers.len() <= self.producers_max);
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(id, entry)| (entry.last().last_offset, **id))
            .map(|(id, _)| *id)
            .expect("eviction only when the table is full");
        self.producers.remove(&oldest);
        self.producers_evicted += 1;
    }

    /// Follows a log truncation: forgets every batch whose records reach `offset` or beyond.
    pub fn truncate_to(&mut self, offset: Offset) -> TruncateOutcome {
        let mut outcome = TruncateOutcome::Exact;
        self.producers.retain(|_, entry| {
            let retained_before = entry.batches.len();
            entry.batches.retain(|b| b.last_offset < offset);
            // Forgotten batches below the cut would be back in the window (or carry the
            // epoch): only a replay of the log can restore them.
            if entry.batches.len() < retained_before && entry.history_forgotten {
                outcome = TruncateOutcome::RebuildRequired;
            }
            !entry.batches.is_empty()
        });
        debug_assert!(self
            .producers
            .values()
            .all(|e| e.batches.iter().all(|b| b.last_offset < offset)));
        outcome
    }

    /// Replaces the table with the state the log's batches (in log order) describe.
    pub fn rebuild(&mut self, batches: impl IntoIterator<Item = LoggedBatch>) {
        self.producers.clear();
        let mut previous_last: Option<Offset> = None;
        for batch in batches {
            if let Some(previous) = previous_last {
                assert!(batch.first_offset > previous, "the log replays in order");
            }
            previous_last = Some(batch.last_offset);
            self.record(batch);
        }
        self.check_invariants();
    }

    /// The producer's entry, if the table remembers it.
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// How many producers the table remembers.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Every producer the table remembers, by id (DescribeProducers, KIP-664).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// How many producers were forgotten because the table was full.
    pub fn producers_evicted(&self) -> u64 {
        self.producers_evicted
    }

    /// Checks the table's structural invariants; drivers call it after each step in tests.
    pub fn check_invariants(&self) {
        assert!(self.producers.len() <= self.producers_max);
        for (id, entry) in &self.producers {
            assert!(*id >= 0, "only idempotent producers are tracked");
            assert!(entry.epoch >= 0);
            assert!(!entry.batches.is_empty());
            assert!(entry.batches.len() <= BATCHES_RETAINED_MAX);
            for pair in entry.batches.windows(2) {
                assert!(
                    pair[0].last_offset < pair[1].first_offset,
                    "batches in log order"
                );
            }
            for batch in &entry.batches {
                assert!(batch.first_offset <= batch.last_offset);
            }
        }
    }
}

/// Largest per-incarnation counter: ids use the low 32 bits.
pub const PRODUCER_ID_COUNTER_MAX: u64 = u32::MAX as u64;

/// Largest broker id the id layout can hold while keeping producer ids positive (15 bits).
pub const PRODUCER_ID_BROKER_ID_MAX: i32 = 0x7fff;

/// Hands out producer ids without a controller round trip.
///
/// Layout: `(broker_id << 48) | ((incarnation & 0xffff) << 32) | counter`. Ids from different
/// brokers never collide. Ids from two incarnations of one broker collide only if their
/// incarnations agree in the low 16 bits (65,536 restarts apart, or an incarnation source that
/// repeats, e.g. a counter reset with the disk) and a producer of the old incarnation is still
/// alive: the driver must persist the incarnation and bump it on every start. Kafka allocates
/// blocks of ids through the controller instead (KIP-730).
#[derive(Clone, Debug)]
pub struct ProducerIdAllocator {
    /// The fixed high bits: broker id and incarnation.
    prefix: i64,
    /// The next counter value to hand out.
    counter_next: u64,
}

/// The allocator ran out of ids for this incarnation: restart with a new incarnation.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("producer ids of this broker incarnation are exhausted")]
pub struct ProducerIdsExhausted;

impl ProducerIdAllocator {
    /// An allocator for `broker_id` (0..=0x7fff) in its `incarnation` (low 16 bits used).
    pub fn new(broker_id: BrokerId, incarnation: u64) -> Self {
        assert!(broker_id.0 >= 0, "broker ids are non-negative");
        assert!(
            broker_id.0 <= PRODUCER_ID_BROKER_ID_MAX,
            "broker id must fit 15 bits to keep producer ids positive"
        );
        let prefix = (i64::from(broker_id.0) << 48) | (((incarnation & 0xffff) as i64) << 32);
        assert!(prefix >= 0);
        Self {
            prefix,
            counter_next: 0,
        }
    }

    /// The next fresh `(producer_id, producer_epoch)`: a new id always starts at epoch 0.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<(i64, i16), ProducerIdsExhausted> {
        if self.counter_next > PRODUCER_ID_COUNTER_MAX {
            return Err(ProducerIdsExhausted);
        }
        let id = self.prefix | self.counter_next as i64;
        self.counter_next += 1;
        assert!(id >= 0, "producer ids are non-negative");
        Ok((id, 0))
    }
}
