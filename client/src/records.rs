//! Record batches (v2) in and out of Produce and Fetch: written with the producer's codec (none,
//! gzip, snappy, lz4, zstd: kafka-protocol's codecs), read with whichever codec a batch names.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{ClientError, Result};
use crate::sequence::BatchStamp;

/// Bytes before a batch's length field ends: base offset (8) + batch length (4).
const BATCH_LENGTH_PREFIX_BYTES: usize = 12;

/// Most records one produced batch may hold.
pub const BATCH_RECORDS_MAX: usize = 10_000;

/// A record waiting to be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Partitioning key, if any.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
    /// Create time in ms since the epoch.
    pub timestamp: i64,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Key, if any.
    pub key: Option<Bytes>,
    /// Value, if any (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Timestamp in ms.
    pub timestamp: i64,
}

/// Encodes `records` as one v2 batch compressed with `compression`. With a stamp (idempotence)
/// the batch carries the producer id, epoch and base sequence; without, the "no producer" values
/// (-1).
pub fn encode_batch(
    records: &[OutgoingRecord],
    stamp: Option<&BatchStamp>,
    compression: Compression,
) -> Result<Bytes> {
    assert!(!records.is_empty(), "a batch holds records");
    assert!(records.len() <= BATCH_RECORDS_MAX, "batch too large");
    let (producer_id, producer_epoch, base_sequence) = match stamp {
        Some(stamp) => {
            assert_eq!(
                stamp.record_count as usize,
                records.len(),
                "stamp matches the batch"
            );
            (
                stamp.identity.producer_id,
                stamp.identity.producer_epoch,
                stamp.base_sequence,
            )
        }
        None => (-1, -1, -1),
    };
    // The encoder splits a batch where `offset - sequence` changes: keep it constant.
    let kafka_records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let index_i32 = i32::try_from(index).expect("bounded by BATCH_RECORDS_MAX");
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(index_i32),
                sequence: base_sequence.wrapping_add(index_i32),
                timestamp: record.timestamp,
                key: record.key.clone(),
                value: Some(record.value.clone()),
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let encoded = if compression == Compression::Zstd {
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            &kafka_records,
            &options,
            Some(compress_zstd),
        )
    } else {
        RecordBatchEncoder::encode(&mut buf, &kafka_records, &options)
    };
    encoded.map_err(|error| ClientError::Encode(format!("record batch: {error}")))?;
    assert!(
        buf.len() > BATCH_LENGTH_PREFIX_BYTES,
        "a batch has a header"
    );
    Ok(buf.freeze())
}

/// Compresses a zstd batch's encoded records into `out` with log-core's codec, which keeps one
/// zstd context per thread (kafka-protocol's builds a compression context of about a megabyte
/// for every batch). Every other codec is kafka-protocol's own, written in place, so the broker
/// keeps reading another implementation's gzip, raw snappy and lz4 than the one it writes with.
fn compress_zstd(
    records: &mut BytesMut,
    out: &mut BytesMut,
    codec: Compression,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        codec == Compression::Zstd,
        "only zstd is compressed here, not {codec:?}"
    );
    out.extend_from_slice(&log_core::compression::compress(
        log_core::compression::Codec::Zstd,
        records,
    ));
    Ok(())
}

/// Decompresses a fetched batch's records: zstd with log-core's codec (a context per thread, and
/// its bound on the output, [`log_core::compression::DECOMPRESSED_BYTES_MAX`]), every other
/// codec with kafka-protocol's own.
fn decompress_records(records: &mut Bytes, codec: Compression) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy};
    let take = |tmp: &mut Bytes| -> anyhow::Result<Bytes> { Ok(std::mem::take(tmp)) };
    Ok(match codec {
        Compression::None => std::mem::take(records),
        Compression::Gzip => Gzip::decompress(records, take)?,
        Compression::Snappy => Snappy::decompress(records, take)?,
        Compression::Lz4 => Lz4::decompress(records, take)?,
        Compression::Zstd => Bytes::from(log_core::compression::decompress(
            log_core::compression::Codec::Zstd,
            records,
            log_core::compression::DECOMPRESSED_BYTES_MAX,
        )?),
    })
}

/// The batch with its header max timestamp set to -1 and the CRC-32C fixed, as sarama before
/// 1.45.1 and librdkafka's C++ API send it.
pub fn unset_max_timestamp(batch: Bytes) -> Bytes {
    set_max_timestamp(batch, -1)
}

/// The batch with its header max timestamp set to `max_timestamp` (whatever its records say)
/// and the CRC-32C fixed: what clients that do not compute the field send. Kafka recomputes it.
pub fn set_max_timestamp(batch: Bytes, max_timestamp: i64) -> Bytes {
    /// Byte positions in a v2 batch: CRC, attributes (start of the CRC's range), max timestamp.
    const CRC_AT: usize = 17;
    const ATTRIBUTES_AT: usize = 21;
    const MAX_TIMESTAMP_AT: usize = 35;
    assert!(batch.len() > MAX_TIMESTAMP_AT + 8, "a batch has a header");
    let mut bytes = batch.to_vec();
    bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes.len(), batch.len(), "only the header changed");
    Bytes::from(bytes)
}

/// Decodes the records of a Fetch answer at or after `position`, skipping control records and
/// a trailing partial batch (a broker may cut the last batch at the byte limit).
pub fn decode_fetched(records: &Bytes, position: i64) -> Result<Vec<DecodedRecord>> {
    let mut remaining = records.clone();
    let mut decoded = Vec::new();
    while remaining.len() >= BATCH_LENGTH_PREFIX_BYTES {
        let batch_length = (&remaining[8..12]).get_i32();
        let Ok(batch_length) = usize::try_from(batch_length) else {
            return Err(ClientError::Protocol(format!(
                "negative batch length {batch_length}"
            )));
        };
        let total = BATCH_LENGTH_PREFIX_BYTES + batch_length;
        if remaining.len() < total {
            break;
        }
        let mut batch = remaining.split_to(total);
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut batch,
            Some(decompress_records),
        )
        .map_err(|error| ClientError::Protocol(format!("record batch: {error}")))?;
        for record in set.records {
            if record.control || record.offset < position {
                continue;
            }
            decoded.push(DecodedRecord {
                offset: record.offset,
                key: record.key,
                value: record.value,
                timestamp: record.timestamp,
            });
        }
    }
    debug_assert!(
        decoded.windows(2).all(|w| w[0].offset < w[1].offset),
        "offsets ascend"
    );
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::ProducerIdentity;
    use kafka_protocol::records::RecordBatchDecoder;

    fn outgoing(n: usize) -> Vec<OutgoingRecord> {
        (0..n)
            .map(|i| OutgoingRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Bytes::from(format!("v{i}")),
                timestamp: 1_000 + i as i64,
            })
            .collect()
    }

    #[test]
    fn idempotent_batch_is_one_batch_with_base_sequence() {
        let stamp = BatchStamp {
            identity: ProducerIdentity {
                producer_id: 42,
                producer_epoch: 3,
            },
            base_sequence: 17,
            record_count: 5,
        };
        let bytes = encode_batch(&outgoing(5), Some(&stamp), Compression::None).expect("encodes");
        let infos = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).expect("decodes");
        assert_eq!(infos.len(), 1, "one batch, not split");
        assert_eq!(infos[0].base_sequence, 17);
        assert_eq!(infos[0].producer_id, 42);
        assert_eq!(infos[0].producer_epoch, 3);
        assert_eq!(infos[0].record_count, 5);
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_and_the_broker_validator_accepts_it() {
        let stamp = BatchStamp {
            identity: ProducerIdentity {
                producer_id: 7,
                producer_epoch: 0,
            },
            base_sequence: 0,
            record_count: 200,
        };
        for compression in CODECS {
            let records = outgoing(200);
            let bytes = encode_batch(&records, Some(&stamp), compression).expect("encodes");
            assert_eq!(
                i16::from(bytes[22] & 0x07),
                compression as i16,
                "{compression:?}"
            );
            let decoded = decode_fetched(&bytes, 0).expect("decodes");
            assert_eq!(decoded.len(), 200, "{compression:?}");
            assert_eq!(decoded[199].value.as_deref(), Some(&b"v199"[..]));
            assert_eq!(decoded[198].key.as_deref(), Some(&b"k198"[..]));
            // The broker's one validator takes the batch as this client writes it, unchanged.
            let mut payload = bytes.to_vec();
            let rules = log_core::ProduceRules {
                batch_bytes_max: 1 << 20,
                compacted: false,
                log_append_time_ms: None,
                codec_target: None,
            };
            let accepted = log_core::validate_produced(&mut payload, &rules).expect("valid");
            assert_eq!(accepted.record_count, 200);
            assert_eq!(payload, bytes.to_vec(), "{compression:?}: stored as sent");
        }
    }

    #[test]
    fn batches_the_broker_compresses_decode_here() {
        for codec in log_core::Codec::ALL {
            let mut builder = log_core::BatchBuilder::new().codec(codec);
            for i in 0..50 {
                builder.push(None, Some(format!("v{i}").as_bytes()), i, &[]);
            }
            let decoded = decode_fetched(&Bytes::from(builder.build()), 0).expect("decodes");
            assert_eq!(decoded.len(), 50, "{codec:?}");
            assert_eq!(decoded[49].value.as_deref(), Some(&b"v49"[..]));
        }
    }

    #[test]
    fn plain_batch_has_no_producer_and_round_trips() {
        let bytes = encode_batch(&outgoing(3), None, Compression::None).expect("encodes");
        let infos = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).expect("decodes");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].base_sequence, -1);
        assert_eq!(infos[0].producer_id, -1);
        let records = decode_fetched(&bytes, 1).expect("decodes");
        assert_eq!(records.len(), 2, "offsets below the position are skipped");
        assert_eq!(records[0].offset, 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(records[1].key.as_deref(), Some(&b"k2"[..]));
    }

    #[test]
    fn partial_trailing_batch_is_ignored() {
        let first = encode_batch(&outgoing(2), None, Compression::None).expect("encodes");
        let mut both = BytesMut::from(&first[..]);
        let second = encode_batch(&outgoing(2), None, Compression::None).expect("encodes");
        both.extend_from_slice(&second[..second.len() - 3]);
        let records = decode_fetched(&both.freeze(), 0).expect("decodes");
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn an_unset_max_timestamp_keeps_a_valid_crc_and_the_records() {
        let plain = encode_batch(&outgoing(3), None, Compression::None).expect("encodes");
        let sloppy = unset_max_timestamp(plain.clone());
        assert_eq!(&sloppy[35..43], &(-1_i64).to_be_bytes()[..]);
        assert_ne!(sloppy, plain);
        let records = decode_fetched(&sloppy, 0).expect("the CRC still verifies");
        assert_eq!(records, decode_fetched(&plain, 0).expect("decodes"));
    }
}
