//! The one validator of a producer's batches, with Kafka's rules (`LogValidator`).
//!
//! A client's bytes are checked here exactly once, before the replica core takes the produce, and
//! again by [`crate::PartitionLog::append_as_leader`] with the *same function*: the check is
//! deterministic and idempotent (a normalised payload passes unchanged), so the log accepts every
//! payload the broker's ingress accepted, and a client's bytes can never fail a partition — only a
//! disk error can.
//!
//! Kafka's rules, as this module applies them:
//! - a frame that does not split into whole v2 batches, or a CRC mismatch: `CORRUPT_MESSAGE`;
//! - a batch above `max.message.bytes`: `MESSAGE_TOO_LARGE`;
//! - a compression codec id Kafka does not define (5-7): `UNSUPPORTED_COMPRESSION_TYPE`;
//! - compressed records are decompressed (within [`crate::compression::DECOMPRESSED_BYTES_MAX`]) and checked like
//!   uncompressed ones; bytes their codec cannot decode: `CORRUPT_MESSAGE`; records inflating
//!   past the bound (a decompression bomb): `MESSAGE_TOO_LARGE`;
//! - no records, a record count that disagrees with the offset range, non-dense offset deltas, a
//!   control batch from a client, a keyless record in a compacted topic, an idempotent batch with a
//!   negative epoch or sequence, or an idempotent batch sharing its request with others:
//!   `INVALID_RECORD`;
//! - a header max timestamp that disagrees with the records is *recomputed*, not refused (sarama
//!   before 1.45.1 and librdkafka's C++ API send -1): Kafka's `setMaxTimestamp`. A timestamp of -1
//!   means "none". Under `message.timestamp.type=LogAppendTime` the broker's clock overwrites it.
//!
//! A batch is stored as the producer sent it (compressed or not). It is rewritten only where Kafka
//! rewrites it: the max timestamp and timestamp type in place (a compressed batch too: Kafka's
//! readers take a LogAppendTime batch's timestamp from its header, so nothing is recompressed),
//! and a topic whose `compression.type` names a codec recompresses batches written with another
//! (`producer`, the default, keeps the producer's). A recompressed batch is checked against
//! `max.message.bytes` again, as Kafka does.
//!
//! Every rewrite updates the CRC, so the stored batch verifies like any other.

use crate::batch::{
    encode_batch, split_batches, BatchHeader, BatchView, RecordsSummary, HEADER_BYTES,
};
use crate::compression::{self, Codec};
use crate::error::LogError;

/// Byte position of `attributes` in a batch.
const ATTRIBUTES_AT: usize = 21;
/// Byte position of `maxTimestamp` in a batch.
const MAX_TIMESTAMP_AT: usize = 35;
/// Byte position of the CRC field; the CRC covers everything from `attributes` on.
const CRC_AT: usize = 17;
/// The attributes bit of `LogAppendTime` (bit 3).
const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;

/// Why a producer's payload is refused: each variant is one Kafka error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchRefusal {
    /// Not whole v2 batches, or a CRC mismatch (`CORRUPT_MESSAGE`, 2).
    #[error("CORRUPT_MESSAGE: {0}")]
    Corrupt(String),
    /// Well-formed but against the rules (`INVALID_RECORD`, 87).
    #[error("INVALID_RECORD: {0}")]
    InvalidRecord(String),
    /// Records without a key for a compacted topic (`INVALID_RECORD`, 87), by their index in the
    /// payload (Kafka's `record_errors`, KIP-467: the client fails those records with
    /// INVALID_RECORD and retries nothing of the batch).
    #[error("INVALID_RECORD: a compacted topic needs a key on every record; records {records:?} have none")]
    KeylessInCompacted {
        /// Indexes of the keyless records in the payload, ascending, at least one.
        records: Vec<u32>,
    },
    /// Larger than the topic allows (`MESSAGE_TOO_LARGE`, 10).
    #[error("MESSAGE_TOO_LARGE: batch of {bytes} bytes, limit {bytes_max}")]
    TooLarge {
        /// The batch's size.
        bytes: u64,
        /// The topic's `max.message.bytes`.
        bytes_max: u64,
    },
    /// A codec the broker cannot decode (`UNSUPPORTED_COMPRESSION_TYPE`, 76).
    #[error("UNSUPPORTED_COMPRESSION_TYPE: codec {0}")]
    UnsupportedCompression(u8),
    /// Compressed records inflating past the decompression bound (`MESSAGE_TOO_LARGE`, 10: a
    /// Java producer splits the batch and retries, librdkafka fails the messages).
    #[error("MESSAGE_TOO_LARGE: records decompress to more than {bytes_max} bytes")]
    DecompressedTooLarge {
        /// The bound.
        bytes_max: u64,
    },
}

impl BatchRefusal {
    /// The Kafka error code a Produce response carries for this refusal.
    pub fn error_code(&self) -> i16 {
        match self {
            BatchRefusal::Corrupt(_) => 2,
            BatchRefusal::InvalidRecord(_) | BatchRefusal::KeylessInCompacted { .. } => 87,
            BatchRefusal::TooLarge { .. } | BatchRefusal::DecompressedTooLarge { .. } => 10,
            BatchRefusal::UnsupportedCompression(_) => 76,
        }
    }
}

/// The topic's rules a produce is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceRules {
    /// `max.message.bytes`: the largest batch accepted.
    pub batch_bytes_max: u64,
    /// `cleanup.policy=compact`: every record needs a key.
    pub compacted: bool,
    /// `message.timestamp.type=LogAppendTime`: the broker's clock at append, else `None`
    /// (`CreateTime`, the producer's timestamps are kept).
    pub log_append_time_ms: Option<i64>,
    /// `compression.type`: the codec batches are stored with, `None` for `producer` (stored as
    /// sent).
    pub codec_target: Option<Codec>,
}

/// One accepted batch, as the producer table and the replica core need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducedBatch {
    /// Records in the batch (at least one).
    pub record_count: u32,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Idempotent producer epoch (≥ 0 when `producer_id` is).
    pub producer_epoch: i16,
    /// Sequence of the first record (≥ 0 when `producer_id` is).
    pub base_sequence: i32,
}

/// An accepted payload: its batches in order, at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducedPayload {
    /// The batches, in payload order.
    pub batches: Vec<ProducedBatch>,
    /// Records in all batches together.
    pub record_count: u32,
}

impl ProducedPayload {
    /// The idempotent batch of the payload, if it is one (then it is the only batch).
    pub fn idempotent(&self) -> Option<&ProducedBatch> {
        let first = self.batches.first().filter(|b| b.producer_id >= 0)?;
        assert_eq!(self.batches.len(), 1, "an idempotent payload is one batch");
        Some(first)
    }
}

/// Whether a payload breaks a rule Kafka applies before it looks at leadership
/// (`ProduceRequest.validateRecords` runs once the partition is known to exist, before the
/// append finds the leader): here, several batches one of which is idempotent, which
/// [`validate_produced`] refuses too. A broker that knows the partition but does not lead it
/// answers INVALID_RECORD for it, not NOT_LEADER_OR_FOLLOWER. Reads only batch headers; a
/// payload it cannot frame is left to the leader's full check.
pub fn refused_before_leadership(bytes: &[u8]) -> bool {
    let mut batches = 0usize;
    let mut idempotent = false;
    for view in split_batches(bytes) {
        let Ok(view) = view else {
            return false;
        };
        batches += 1;
        idempotent |= view.header().producer_id >= 0;
    }
    batches > 1 && idempotent
}

/// Checks a producer's payload against `rules` and normalises it in place (recomputed max
/// timestamp, LogAppendTime, CRC; batches recompressed to the topic's codec). Idempotent: a
/// normalised payload passes unchanged.
pub fn validate_produced(
    bytes: &mut Vec<u8>,
    rules: &ProduceRules,
) -> Result<ProducedPayload, BatchRefusal> {
    assert!(rules.batch_bytes_max > 0, "a topic accepts some batch");
    let spans = batch_spans(bytes, rules.batch_bytes_max)?;
    let mut batches = Vec::with_capacity(spans.len());
    let mut recompressed = Vec::new();
    let mut record_count: u32 = 0;
    for &(start, end) in &spans {
        let (batch, rewritten) =
            validate_one(&mut bytes[start..end], rules).map_err(|refusal| match refusal {
                // Indexes count from the payload's first record, not the batch's.
                BatchRefusal::KeylessInCompacted { records } => BatchRefusal::KeylessInCompacted {
                    records: records.iter().map(|r| r + record_count).collect(),
                },
                other => other,
            })?;
        record_count = record_count
            .checked_add(batch.record_count)
            .ok_or_else(|| BatchRefusal::InvalidRecord("too many records".into()))?;
        batches.push(batch);
        if let Some(rewritten) = rewritten {
            recompressed.push((start, end, rewritten));
        }
    }
    if batches.len() > 1 && batches.iter().any(|b| b.producer_id >= 0) {
        // The Java producer and librdkafka send one batch per partition; accepting several would
        // need the sequence check per batch before any is appended.
        return Err(BatchRefusal::InvalidRecord(
            "an idempotent produce carries one batch per partition".into(),
        ));
    }
    if !recompressed.is_empty() {
        splice(bytes, recompressed);
    }
    assert!(!batches.is_empty() && record_count >= 1);
    Ok(ProducedPayload {
        batches,
        record_count,
    })
}

/// Replaces the given spans (ascending, disjoint) of `bytes` by their rewritten batches.
fn splice(bytes: &mut Vec<u8>, rewritten: Vec<(usize, usize, Vec<u8>)>) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut position = 0;
    for (start, end, batch) in rewritten {
        assert!(position <= start && start < end, "spans ascend");
        out.extend_from_slice(&bytes[position..start]);
        out.extend_from_slice(&batch);
        position = end;
    }
    out.extend_from_slice(&bytes[position..]);
    *bytes = out;
}

/// Splits the payload into whole batches within the size limit: byte spans, at least one.
fn batch_spans(bytes: &[u8], batch_bytes_max: u64) -> Result<Vec<(usize, usize)>, BatchRefusal> {
    let mut spans = Vec::new();
    let mut position = 0;
    for view in split_batches(bytes) {
        let view = view.map_err(|e| BatchRefusal::Corrupt(e.to_string()))?;
        let total = view.as_bytes().len();
        if total as u64 > batch_bytes_max {
            return Err(BatchRefusal::TooLarge {
                bytes: total as u64,
                bytes_max: batch_bytes_max,
            });
        }
        spans.push((position, position + total));
        position += total;
    }
    if spans.is_empty() {
        return Err(BatchRefusal::InvalidRecord("no record batch".into()));
    }
    assert_eq!(
        position,
        bytes.len(),
        "split_batches covers the input or fails"
    );
    Ok(spans)
}

/// Checks one batch (exactly its bytes) and normalises its header in place; a batch to store
/// with another codec comes back rewritten.
fn validate_one(
    batch: &mut [u8],
    rules: &ProduceRules,
) -> Result<(ProducedBatch, Option<Vec<u8>>), BatchRefusal> {
    let view = BatchView::new(batch).map_err(|e| BatchRefusal::Corrupt(e.to_string()))?;
    let header = *view.header();
    assert_eq!(header.total_bytes(), batch.len(), "the span is the batch");
    if !view.crc_is_valid() {
        return Err(BatchRefusal::Corrupt(format!(
            "CRC mismatch: stored {:#010x}",
            header.crc
        )));
    }
    check_counts(&header)?;
    let summary = view.summarize_records().map_err(refusal_of_records)?;
    check_records(&header, &summary)?;
    if rules.compacted && summary.keyless {
        return Err(keyless_records(&view));
    }
    if header.producer_id >= 0 && (header.producer_epoch < 0 || header.base_sequence < 0) {
        return Err(BatchRefusal::InvalidRecord(format!(
            "idempotent producer {} with epoch {} and sequence {}",
            header.producer_id, header.producer_epoch, header.base_sequence
        )));
    }
    let codec = view.codec().map_err(refusal_of_records)?;
    let rewritten = match rules.codec_target.filter(|target| *target != codec) {
        Some(target) => {
            let mut rewritten = recompress(&view, target, rules.batch_bytes_max)?;
            normalise_timestamps(
                &mut rewritten,
                summary.max_timestamp,
                rules.log_append_time_ms,
            );
            Some(rewritten)
        }
        None => {
            normalise_timestamps(batch, summary.max_timestamp, rules.log_append_time_ms);
            None
        }
    };
    let record_count = u32::try_from(header.records_count).expect("checked: at least one record");
    let produced = ProducedBatch {
        record_count,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
    };
    Ok((produced, rewritten))
}

/// The batch with its records written with `target` (Kafka's broker-side `compression.type`),
/// header fields kept; refused if it grew past `max.message.bytes`.
fn recompress(
    view: &BatchView<'_>,
    target: Codec,
    batch_bytes_max: u64,
) -> Result<Vec<u8>, BatchRefusal> {
    let decoded = view.decode().map_err(refusal_of_records)?;
    assert!(
        decoded.codec() != target,
        "only a change of codec recompresses"
    );
    let records = compression::compress(target, decoded.body());
    let bytes = (HEADER_BYTES + records.len()) as u64;
    if bytes > batch_bytes_max {
        return Err(BatchRefusal::TooLarge {
            bytes,
            bytes_max: batch_bytes_max,
        });
    }
    let mut header = *view.header();
    header.attributes = (header.attributes & !0x07) | i16::from(target.id());
    let rewritten = encode_batch(&header, &records);
    debug_assert!(BatchView::new(&rewritten).is_ok_and(|v| v.codec() == Ok(target)));
    Ok(rewritten)
}

/// Kafka's count rules (`LogValidator.validateBatch`), on the CRC-valid header.
fn check_counts(header: &BatchHeader) -> Result<(), BatchRefusal> {
    if header.records_count <= 0 {
        return Err(BatchRefusal::InvalidRecord(
            "a batch without records".into(),
        ));
    }
    if i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
        return Err(BatchRefusal::InvalidRecord(format!(
            "{} records with last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(())
}

/// Kafka's record rules (`LogValidator.validateRecord`), on records that parsed.
fn check_records(header: &BatchHeader, summary: &RecordsSummary) -> Result<(), BatchRefusal> {
    if !summary.dense {
        return Err(BatchRefusal::InvalidRecord(
            "record offset deltas are not 0..n".into(),
        ));
    }
    if header.is_control() {
        return Err(BatchRefusal::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    Ok(())
}

/// The refusal naming every keyless record of a batch (its records parsed already).
fn keyless_records(view: &BatchView) -> BatchRefusal {
    let mut records = Vec::new();
    if let Ok(decoded) = view.decode() {
        for (index, record) in decoded.iter().enumerate() {
            if record.is_ok_and(|r| r.key.is_none()) {
                records.push(u32::try_from(index).expect("records of one batch fit a u32"));
            }
        }
    }
    assert!(
        !records.is_empty(),
        "called for a batch with a keyless record"
    );
    BatchRefusal::KeylessInCompacted { records }
}

/// Record-level failures: a codec we cannot decode, else malformed bytes.
fn refusal_of_records(error: LogError) -> BatchRefusal {
    match error {
        LogError::UnsupportedCompression(codec) => BatchRefusal::UnsupportedCompression(codec),
        LogError::DecompressedTooLarge { bytes_max } => {
            BatchRefusal::DecompressedTooLarge { bytes_max }
        }
        other => BatchRefusal::Corrupt(other.to_string()),
    }
}

/// Writes the max timestamp Kafka would store (the records' largest under CreateTime, the broker's
/// clock under LogAppendTime) and the matching CRC, when they differ from what is there.
fn normalise_timestamps(batch: &mut [u8], records_max: i64, log_append_time_ms: Option<i64>) {
    assert!(batch.len() >= HEADER_BYTES);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let (attributes_new, max_new) = match log_append_time_ms {
        Some(now) => (attributes | TIMESTAMP_TYPE_LOG_APPEND, now),
        None => (attributes & !TIMESTAMP_TYPE_LOG_APPEND, records_max),
    };
    let max_bytes: [u8; 8] = batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
        .try_into()
        .expect("eight bytes");
    if attributes_new == attributes && i64::from_be_bytes(max_bytes) == max_new {
        return;
    }
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes_new.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_new.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(BatchView::new(batch).is_ok_and(|v| v.crc_is_valid()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn rules() -> ProduceRules {
        ProduceRules {
            batch_bytes_max: 1 << 20,
            compacted: false,
            log_append_time_ms: None,
            codec_target: None,
        }
    }

    fn two_records() -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        builder.push(Some(b"k"), Some(b"a"), 100, &[]);
        builder.push(None, Some(b"b"), 105, &[]);
        builder.build()
    }

    fn set_max_timestamp(batch: &mut [u8], value: i64) {
        batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&value.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn a_wrong_max_timestamp_is_recomputed_with_its_crc() {
        let mut batch = two_records();
        set_max_timestamp(&mut batch, -1);
        let accepted = validate_produced(&mut batch, &rules()).expect("accepted");
        assert_eq!(accepted.record_count, 2);
        let view = BatchView::new(&batch).expect("parses");
        assert_eq!(view.header().max_timestamp, 105);
        assert!(view.crc_is_valid());
        let again = batch.clone();
        validate_produced(&mut batch, &rules()).expect("idempotent");
        assert_eq!(batch, again, "a normalised batch passes unchanged");
    }

    #[test]
    fn log_append_time_overwrites_the_max_timestamp() {
        let mut batch = two_records();
        let rules = ProduceRules {
            log_append_time_ms: Some(7_000),
            ..rules()
        };
        validate_produced(&mut batch, &rules).expect("accepted");
        let header = *BatchView::new(&batch).expect("parses").header();
        assert_eq!(header.max_timestamp, 7_000);
        assert_eq!(header.attributes & TIMESTAMP_TYPE_LOG_APPEND, 8);
    }

    #[test]
    fn refusals_carry_kafka_codes() {
        let mut corrupt = two_records();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let error = validate_produced(&mut corrupt, &rules()).expect_err("CRC");
        assert_eq!(error.error_code(), 2);

        let mut large = two_records();
        let small = ProduceRules {
            batch_bytes_max: 10,
            ..rules()
        };
        assert_eq!(
            validate_produced(&mut large, &small).map_err(|e| e.error_code()),
            Err(10)
        );

        let mut keyless = two_records();
        let compacted = ProduceRules {
            compacted: true,
            ..rules()
        };
        assert_eq!(
            validate_produced(&mut keyless, &compacted).map_err(|e| e.error_code()),
            Err(87)
        );
        assert_eq!(
            validate_produced(&mut Vec::new(), &rules()).map_err(|e| e.error_code()),
            Err(87)
        );
    }

    #[test]
    fn keyless_records_of_a_compacted_topic_are_named_by_their_payload_index() {
        let compacted = ProduceRules {
            compacted: true,
            ..rules()
        };
        let mut keyed = BatchBuilder::new();
        keyed.push(Some(b"k"), Some(b"a"), 100, &[]);
        let mut payload = keyed.build();
        payload.extend(two_records()); // records 1 (keyed) and 2 (keyless)
        let mut last = BatchBuilder::new();
        last.push(None, Some(b"c"), 110, &[]);
        payload.extend(last.build()); // record 3 (keyless), never reached: the first refusal ends it
        assert_eq!(
            validate_produced(&mut payload, &compacted),
            Err(BatchRefusal::KeylessInCompacted { records: vec![2] })
        );
    }

    #[test]
    fn an_idempotent_batch_must_travel_alone_with_real_fields() {
        let mut builder = BatchBuilder::new().producer(7, 0, 0);
        builder.push(None, Some(b"x"), 1, &[]);
        let one = builder.build();
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(
            validate_produced(&mut two, &rules()).map_err(|e| e.error_code()),
            Err(87)
        );
        let mut builder = BatchBuilder::new().producer(7, 0, -5);
        builder.push(None, Some(b"x"), 1, &[]);
        let mut negative = builder.build();
        assert_eq!(
            validate_produced(&mut negative, &rules()).map_err(|e| e.error_code()),
            Err(87)
        );
        let mut alone = one.clone();
        let accepted = validate_produced(&mut alone, &rules()).expect("accepted");
        assert_eq!(accepted.idempotent().map(|b| b.producer_id), Some(7));
    }
}
