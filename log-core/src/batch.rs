//! Kafka RecordBatch v2 (magic 2): parse, validate, build, and patch in place.
//!
//! ```text
//! offset  field                 type
//!  0      baseOffset            i64   (outside the CRC: assigned by the leader in place)
//!  8      batchLength           i32   bytes after this field (total = batchLength + 12)
//! 12      partitionLeaderEpoch  i32   (outside the CRC: assigned by the leader in place)
//! 16      magic                 i8    = 2
//! 17      crc                   u32   CRC-32C of bytes [21, end)
//! 21      attributes            i16   bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//! 23      lastOffsetDelta       i32
//! 27      baseTimestamp         i64
//! 35      maxTimestamp          i64
//! 43      producerId            i64
//! 51      producerEpoch         i16
//! 53      baseSequence          i32
//! 57      recordsCount          i32
//! 61      records...
//! ```
//! A record: `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint (-1 = null), key, valueLength varint (-1 = null), value, headersCount varint,
//! then per header: keyLength varint, key, valueLength varint (-1 = null), value`. Varints are
//! zig-zag encoded, as in protobuf. All integers are big-endian.

use crate::compression::{self, Codec, CompressionError, DECOMPRESSED_BYTES_MAX};
use crate::error::LogError;
use std::borrow::Cow;
use wire::{LeaderEpoch, Offset};

/// Bytes of the fixed batch header, up to and including `recordsCount`.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only magic value accepted.
pub const MAGIC_V2: i8 = 2;
/// Where the CRC-covered part of a batch starts.
const CRC_START: usize = 21;
/// The attributes bit of the LogAppendTime timestamp type (bit 3).
pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
/// A hard cap on a batch's size, whatever the configuration says: a length field beyond it is
/// corruption, never a real batch.
pub const BATCH_BYTES_LIMIT: usize = 64 << 20;
/// A hard cap on records per batch, for the same reason.
pub const RECORDS_PER_BATCH_MAX: i32 = 1 << 20;

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("slice of 4"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("slice of 4"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("slice of 8"))
}

/// The fixed header of a batch, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the leader).
    pub base_offset: Offset,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// The leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: LeaderEpoch,
    /// Format version; always 2 here.
    pub magic: i8,
    /// CRC-32C of the attributes..end part.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record minus the base offset (kept by compaction).
    pub last_offset_delta: i32,
    /// Timestamp of the first record; records store deltas from it.
    pub base_timestamp: i64,
    /// The largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Idempotent producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when none.
    pub base_sequence: i32,
    /// How many records follow.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes and sanity-checks a header from at least `HEADER_BYTES` bytes. Does not check the
    /// CRC (that needs the whole batch).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, LogError> {
        if bytes.len() < HEADER_BYTES {
            return Err(invalid(format!(
                "{} bytes is shorter than a batch header",
                bytes.len()
            )));
        }
        let header = BatchHeader {
            base_offset: Offset(be_i64(bytes, 0)),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: LeaderEpoch(be_i32(bytes, 12)),
            magic: bytes[16] as i8,
            crc: be_u32(bytes, 17),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, 57),
        };
        header.check()?;
        Ok(header)
    }

    fn check(&self) -> Result<(), LogError> {
        if self.magic != MAGIC_V2 {
            return Err(invalid(format!("magic {} is not 2", self.magic)));
        }
        let total = self.batch_length as i64 + LOG_OVERHEAD_BYTES as i64;
        if total < HEADER_BYTES as i64 || total > BATCH_BYTES_LIMIT as i64 {
            return Err(invalid(format!(
                "batch length {} out of range",
                self.batch_length
            )));
        }
        if self.base_offset.0 < 0 || self.last_offset_delta < 0 {
            return Err(invalid(format!(
                "negative offset: base {} delta {}",
                self.base_offset, self.last_offset_delta
            )));
        }
        if self.records_count < 0 || self.records_count > RECORDS_PER_BATCH_MAX {
            return Err(invalid(format!(
                "record count {} out of range",
                self.records_count
            )));
        }
        if self.records_count as i64 > self.last_offset_delta as i64 + 1 {
            return Err(invalid(format!(
                "{} records cannot fit {} offsets",
                self.records_count,
                self.last_offset_delta as i64 + 1
            )));
        }
        if self
            .base_offset
            .0
            .checked_add(self.last_offset_delta as i64 + 1)
            .is_none()
        {
            return Err(invalid("last offset overflows".into()));
        }
        Ok(())
    }

    /// Total bytes of the batch, header included.
    pub fn total_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }

    /// Offset of the last record the batch covers.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.add(self.last_offset_delta as i64)
    }

    /// The offset right after the batch.
    pub fn next_offset(&self) -> Offset {
        self.base_offset.add(self.last_offset_delta as i64 + 1)
    }

    /// The compression codec (attributes bits 0-2); 0 is none.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

fn invalid(reason: String) -> LogError {
    LogError::InvalidBatch(reason)
}

/// What validating a batch's records learned, in the same pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Records found (equals the header's count once validated).
    pub count: i32,
    /// The largest record timestamp (`i64::MIN` for no records).
    pub max_timestamp: i64,
    /// Offset deltas are exactly `0..count` (as a producer must send them).
    pub dense: bool,
    /// Some record has no key (refused in a compacted topic).
    pub keyless: bool,
}

/// A zero-copy view of exactly one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    /// The batch's bytes, exactly `header.total_bytes()` long.
    bytes: &'a [u8],
    /// The decoded header.
    header: BatchHeader,
}

impl<'a> BatchView<'a> {
    /// Views the batch at the start of `bytes` (which may hold more after it). Checks the header
    /// and the length, not the CRC.
    pub fn new(bytes: &'a [u8]) -> Result<BatchView<'a>, LogError> {
        let header = BatchHeader::parse(bytes)?;
        let total = header.total_bytes();
        if bytes.len() < total {
            return Err(invalid(format!(
                "batch of {total} bytes truncated to {}",
                bytes.len()
            )));
        }
        Ok(BatchView {
            bytes: &bytes[..total],
            header,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether the stored CRC matches the CRC-32C of attributes..end.
    pub fn crc_is_valid(&self) -> bool {
        crc32c::crc32c(&self.bytes[CRC_START..]) == self.header.crc
    }

    /// The batch's codec; an id Kafka does not define is [`LogError::UnsupportedCompression`].
    pub fn codec(&self) -> Result<Codec, LogError> {
        let id = self.header.compression();
        Codec::from_id(id).ok_or(LogError::UnsupportedCompression(id))
    }

    /// Checks the CRC, then the body: an uncompressed batch's records parse exactly, in the
    /// declared number, with strictly increasing offset deltas within `last_offset_delta`; a
    /// compressed batch's codec is one Kafka defines. Compressed records are *not* decompressed
    /// here: the leader's ingress ([`crate::ingress`]) decompressed and checked them once, and the
    /// CRC proves the bytes are those (a follower, a replication read and recovery need no more).
    pub fn validate(&self) -> Result<(), LogError> {
        if !self.crc_is_valid() {
            return Err(invalid(format!(
                "CRC mismatch: stored {:#010x}, computed {:#010x}",
                self.header.crc,
                crc32c::crc32c(&self.bytes[CRC_START..])
            )));
        }
        match self.codec()? {
            Codec::None => self.summarize_records().map(|_| ()),
            _compressed => Ok(()),
        }
    }

    /// For callers that checked the CRC already (one CRC pass per byte): decodes the records
    /// (decompressing within [`DECOMPRESSED_BYTES_MAX`]) and checks they parse exactly, in the
    /// declared number, with strictly increasing offset deltas within `last_offset_delta`.
    pub fn summarize_records(&self) -> Result<RecordsSummary, LogError> {
        let decoded = self.decode()?;
        let mut summary = RecordsSummary {
            count: 0,
            max_timestamp: i64::MIN,
            dense: true,
            keyless: false,
        };
        let mut previous_delta: Option<i32> = None;
        for record in decoded.iter() {
            let record = record?;
            if previous_delta.is_some_and(|p| record.offset_delta <= p) {
                return Err(invalid("record offset deltas not increasing".into()));
            }
            if record.offset_delta < 0 || record.offset_delta > self.header.last_offset_delta {
                return Err(invalid(format!(
                    "offset delta {} out of range",
                    record.offset_delta
                )));
            }
            summary.dense &= record.offset_delta == summary.count;
            summary.max_timestamp = summary.max_timestamp.max(record.timestamp);
            summary.keyless |= record.key.is_none();
            previous_delta = Some(record.offset_delta);
            summary.count += 1;
        }
        if summary.count != self.header.records_count {
            return Err(invalid(format!(
                "header says {} records, found {}",
                self.header.records_count, summary.count
            )));
        }
        Ok(summary)
    }

    /// The batch's records, decompressed if the batch is compressed (at most
    /// [`DECOMPRESSED_BYTES_MAX`] bytes; past it, [`LogError::DecompressedTooLarge`]). Every reader
    /// of records goes through here, so a compressed batch reads like any other.
    pub fn decode(&self) -> Result<BatchRecords<'a>, LogError> {
        let codec = self.codec()?;
        let stored = &self.bytes[HEADER_BYTES..];
        let body = match codec {
            Codec::None => Cow::Borrowed(stored),
            _ => match compression::decompress(codec, stored, DECOMPRESSED_BYTES_MAX) {
                Ok(body) => Cow::Owned(body),
                Err(CompressionError::TooLarge { bytes_max, .. }) => {
                    return Err(LogError::DecompressedTooLarge {
                        bytes_max: bytes_max as u64,
                    })
                }
                Err(corrupt @ CompressionError::Corrupt { .. }) => {
                    return Err(invalid(corrupt.to_string()))
                }
            },
        };
        assert!(body.len() <= DECOMPRESSED_BYTES_MAX.max(stored.len()));
        Ok(BatchRecords {
            header: self.header,
            codec,
            body,
        })
    }
}

/// A batch's records in their uncompressed encoding: borrowed from the batch when it is not
/// compressed, decompressed otherwise.
#[derive(Clone, Debug)]
pub struct BatchRecords<'a> {
    /// The batch's header (base offset and timestamps make records absolute).
    header: BatchHeader,
    /// The codec the batch is stored with.
    codec: Codec,
    /// The encoded records, back to back.
    body: Cow<'a, [u8]>,
}

impl BatchRecords<'_> {
    /// Iterates the records.
    pub fn iter(&self) -> RecordIter<'_> {
        let log_append_time = (self.header.attributes & TIMESTAMP_TYPE_LOG_APPEND != 0)
            .then_some(self.header.max_timestamp);
        RecordIter {
            bytes: &self.body,
            remaining: self.header.records_count,
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time,
            failed: false,
        }
    }

    /// The codec the batch is stored with (compaction writes kept records with it).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The uncompressed record bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Splits concatenated batches into views (header and length checked, CRC not).
pub fn split_batches(bytes: &[u8]) -> impl Iterator<Item = Result<BatchView<'_>, LogError>> {
    let mut rest = bytes;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        match BatchView::new(rest) {
            Ok(view) => {
                rest = &rest[view.as_bytes().len()..];
                Some(Ok(view))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// Writes the base offset into a batch in place (outside the CRC, so the CRC stays valid).
pub fn set_base_offset(batch: &mut [u8], offset: Offset) {
    assert!(batch.len() >= HEADER_BYTES, "a batch has a header");
    assert!(offset.0 >= 0, "offsets are non-negative: {offset}");
    batch[0..8].copy_from_slice(&offset.0.to_be_bytes());
}

/// Writes the partition leader epoch into a batch in place (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    assert!(batch.len() >= HEADER_BYTES, "a batch has a header");
    batch[12..16].copy_from_slice(&epoch.0.to_be_bytes());
}

/// One record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    /// The header's key (a UTF-8 string in Kafka; kept as bytes here).
    pub key: &'a [u8],
    /// The header's value, `None` for null.
    pub value: Option<&'a [u8]>,
}

/// One record, borrowed from its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset (batch base offset + offset delta).
    pub offset: Offset,
    /// The delta stored in the record.
    pub offset_delta: i32,
    /// Absolute timestamp (batch base timestamp + delta).
    pub timestamp: i64,
    /// The key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for null (a tombstone in a compacted topic).
    pub value: Option<&'a [u8]>,
    /// Record headers.
    pub headers: Vec<RecordHeader<'a>>,
    /// The whole encoded record, length prefix included (compaction copies it verbatim).
    pub raw: &'a [u8],
}

/// Iterator over a batch's records.
#[derive(Debug)]
pub struct RecordIter<'a> {
    /// Unparsed record bytes.
    bytes: &'a [u8],
    /// Records still to yield according to the header.
    remaining: i32,
    /// The batch's base offset, to make offsets absolute.
    base_offset: Offset,
    /// The batch's base timestamp, to make timestamps absolute.
    base_timestamp: i64,
    /// The batch's max timestamp when its timestamp type is LogAppendTime: then every record's
    /// timestamp is the broker's, as Kafka's readers take it.
    log_append_time: Option<i64>,
    /// Stop after the first error.
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if !self.bytes.is_empty() {
                self.failed = true;
                return Some(Err(invalid(format!(
                    "{} bytes after the last record",
                    self.bytes.len()
                ))));
            }
            return None;
        }
        let mut cursor = Cursor {
            bytes: self.bytes,
            at: 0,
        };
        match parse_record(&mut cursor, self.base_offset, self.base_timestamp) {
            Ok(mut record) => {
                if let Some(timestamp) = self.log_append_time {
                    record.timestamp = timestamp;
                }
                self.bytes = &self.bytes[cursor.at..];
                self.remaining -= 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A read position over record bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, LogError> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| invalid("varint past end".into()))?;
            self.at += 1;
            if shift == 63 && byte > 1 {
                return Err(invalid("varint overflows 64 bits".into()));
            }
            raw |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(invalid("varint too long".into()))
    }

    fn varint(&mut self) -> Result<i32, LogError> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| invalid(format!("varint {value} overflows 32 bits")))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| invalid(format!("field of {n} bytes past end")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// A length-prefixed byte string where -1 is null.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, LogError> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(invalid(format!("negative length {len}")));
        }
        self.take(len as usize).map(Some)
    }
}

fn parse_record<'a>(
    cursor: &mut Cursor<'a>,
    base_offset: Offset,
    base_timestamp: i64,
) -> Result<Record<'a>, LogError> {
    let start = cursor.at;
    let length = cursor.varint()?;
    if length < 0 {
        return Err(invalid(format!("negative record length {length}")));
    }
    let body_start = cursor.at;
    let body = cursor.take(length as usize)?;
    let mut inner = Cursor { bytes: body, at: 0 };
    let _attributes = inner.take(1)?;
    let timestamp_delta = inner.varlong()?;
    let offset_delta = inner.varint()?;
    let key = inner.nullable_bytes()?;
    let value = inner.nullable_bytes()?;
    let headers_count = inner.varint()?;
    if headers_count < 0 || headers_count as usize > body.len() {
        return Err(invalid(format!(
            "header count {headers_count} out of range"
        )));
    }
    let mut headers = Vec::with_capacity(headers_count as usize);
    for _ in 0..headers_count {
        let key = inner
            .nullable_bytes()?
            .ok_or_else(|| invalid("null header key".into()))?;
        let value = inner.nullable_bytes()?;
        headers.push(RecordHeader { key, value });
    }
    if inner.at != body.len() {
        return Err(invalid(format!(
            "record has {} trailing bytes",
            body.len() - inner.at
        )));
    }
    assert!(
        cursor.at == body_start + length as usize,
        "the cursor moved past exactly one record"
    );
    let offset = Offset(base_offset.0.saturating_add(offset_delta.max(0) as i64));
    Ok(Record {
        offset,
        offset_delta,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
        headers,
        raw: &cursor.bytes[start..cursor.at],
    })
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// A record to build, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// The key, `None` for null.
    pub key: Option<Vec<u8>>,
    /// The value, `None` for null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Create time in milliseconds.
    pub timestamp: i64,
    /// Record headers (key, value).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Builds valid v2 batches (base offset 0, partition leader epoch -1: the leader assigns both at
/// append), uncompressed unless a codec is set.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    /// Records in order.
    records: Vec<NewRecord>,
    /// Idempotent producer id, -1 when none.
    producer_id: i64,
    /// Idempotent producer epoch, -1 when none.
    producer_epoch: i16,
    /// Sequence of the first record, -1 when none.
    base_sequence: i32,
    /// The codec the records are written with.
    codec: Codec,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder without producer identity.
    pub fn new() -> Self {
        BatchBuilder {
            records: Vec::new(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            codec: Codec::None,
        }
    }

    /// Writes the records with `codec`.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the idempotent producer identity of the batch.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Adds a record.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> &mut Self {
        assert!(
            self.records.len() < RECORDS_PER_BATCH_MAX as usize,
            "batch record limit"
        );
        self.records.push(NewRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
        self
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch. Panics on an empty builder: Kafka has no empty produce batches.
    pub fn build(&self) -> Vec<u8> {
        assert!(
            !self.records.is_empty(),
            "a batch holds at least one record"
        );
        let base_timestamp = self.records[0].timestamp;
        let max_timestamp = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .expect("non-empty");
        let mut body = Vec::new();
        for (delta, record) in self.records.iter().enumerate() {
            encode_record(
                &mut body,
                record,
                delta as i32,
                record.timestamp - base_timestamp,
            );
        }
        let header = BatchHeader {
            base_offset: Offset::ZERO,
            batch_length: 0,
            partition_leader_epoch: LeaderEpoch::NONE,
            magic: MAGIC_V2,
            crc: 0,
            attributes: i16::from(self.codec.id()),
            last_offset_delta: self.records.len() as i32 - 1,
            base_timestamp,
            max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records_count: self.records.len() as i32,
        };
        let batch = encode_batch(&header, &compression::compress(self.codec, &body));
        assert!(
            BatchView::new(&batch).is_ok_and(|v| v.crc_is_valid()),
            "built batches are valid"
        );
        batch
    }
}

fn encode_record(out: &mut Vec<u8>, record: &NewRecord, offset_delta: i32, timestamp_delta: i64) {
    let mut body = vec![0u8]; // attributes: unused in v2
    put_varlong(&mut body, timestamp_delta);
    put_varlong(&mut body, offset_delta as i64);
    put_nullable(&mut body, record.key.as_deref());
    put_nullable(&mut body, record.value.as_deref());
    put_varlong(&mut body, record.headers.len() as i64);
    for (key, value) in &record.headers {
        put_nullable(&mut body, Some(key));
        put_nullable(&mut body, value.as_deref());
    }
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Encodes a batch from a header (its `batch_length` and `crc` are recomputed) and the encoded
/// records. Used by the builder and by compaction, which copies surviving records verbatim.
pub fn encode_batch(header: &BatchHeader, records: &[u8]) -> Vec<u8> {
    let total = HEADER_BYTES + records.len();
    assert!(
        total <= BATCH_BYTES_LIMIT,
        "batch of {total} bytes over the hard limit"
    );
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.base_offset.0.to_be_bytes());
    out.extend_from_slice(&((total - LOG_OVERHEAD_BYTES) as i32).to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.0.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&header.records_count.to_be_bytes());
    assert!(out.len() == HEADER_BYTES, "header is {HEADER_BYTES} bytes");
    out.extend_from_slice(records);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_through_zigzag() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            let mut cursor = Cursor { bytes: &out, at: 0 };
            assert_eq!(cursor.varlong().expect("decodes"), value);
            assert_eq!(cursor.at, out.len());
        }
        // Kafka's documented examples: 0 -> 00, -1 -> 01, 1 -> 02, 300 -> d8 04 (zig-zag 600).
        let mut out = Vec::new();
        put_varlong(&mut out, 300);
        assert_eq!(out, vec![0xd8, 0x04]);
    }

    #[test]
    fn built_batch_parses_back() {
        let mut builder = BatchBuilder::new();
        builder.push(Some(b"k1"), Some(b"v1"), 1000, &[(b"h", Some(b"x"))]);
        builder.push(None, None, 1005, &[]);
        let mut batch = builder.build();
        set_base_offset(&mut batch, Offset(42));
        set_partition_leader_epoch(&mut batch, LeaderEpoch(7));
        let view = BatchView::new(&batch).expect("valid");
        view.validate().expect("CRC survives in-place patches");
        assert_eq!(view.header().base_offset, Offset(42));
        assert_eq!(view.header().partition_leader_epoch, LeaderEpoch(7));
        assert_eq!(view.header().max_timestamp, 1005);
        let decoded = view.decode().expect("decodes");
        let records: Vec<_> = decoded.iter().map(|r| r.expect("parses")).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].offset, Offset(42));
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[0].headers[0].value, Some(&b"x"[..]));
        assert_eq!(records[1].offset, Offset(43));
        assert_eq!(records[1].timestamp, 1005);
        assert_eq!(records[1].value, None);
    }

    #[test]
    fn every_single_bit_flip_in_the_crc_range_is_detected() {
        let mut builder = BatchBuilder::new();
        builder.push(Some(b"key"), Some(b"value"), 5, &[]);
        let batch = builder.build();
        for position in CRC_START..batch.len() {
            for bit in 0..8 {
                let mut damaged = batch.clone();
                damaged[position] ^= 1 << bit;
                let verdict = BatchView::new(&damaged).and_then(|v| v.validate());
                assert!(
                    verdict.is_err(),
                    "flip at {position} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn compressed_batches_read_like_uncompressed_ones() {
        for codec in Codec::ALL {
            let mut builder = BatchBuilder::new().codec(codec);
            builder.push(Some(b"k1"), Some(b"v1"), 1000, &[(b"h", Some(b"x"))]);
            builder.push(None, None, 1005, &[]);
            let batch = builder.build();
            let view = BatchView::new(&batch).expect("valid");
            view.validate().expect("valid");
            assert_eq!(view.codec(), Ok(codec));
            let summary = view.summarize_records().expect("decodes");
            assert_eq!((summary.count, summary.max_timestamp), (2, 1005));
            assert!(summary.dense && summary.keyless);
            let decoded = view.decode().expect("decodes");
            let records: Vec<_> = decoded.iter().map(|r| r.expect("parses")).collect();
            assert_eq!(records[0].key, Some(&b"k1"[..]));
            assert_eq!(records[1].timestamp, 1005);
        }
    }

    #[test]
    fn an_undefined_codec_is_a_typed_error_and_garbage_is_invalid() {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(b"v"), 0, &[]);
        let built = builder.build();
        let mut header = *BatchView::new(&built).expect("valid").header();
        header.attributes = 5;
        let batch = encode_batch(&header, &built[HEADER_BYTES..]);
        let view = BatchView::new(&batch).expect("header is fine");
        assert_eq!(view.validate(), Err(LogError::UnsupportedCompression(5)));
        assert_eq!(
            view.summarize_records(),
            Err(LogError::UnsupportedCompression(5))
        );
        header.attributes = 1; // gzip over records that are not gzip
        let batch = encode_batch(&header, &built[HEADER_BYTES..]);
        let view = BatchView::new(&batch).expect("header is fine");
        assert!(matches!(
            view.summarize_records(),
            Err(LogError::InvalidBatch(_))
        ));
    }

    #[test]
    fn log_append_time_gives_every_record_the_batch_timestamp() {
        let mut builder = BatchBuilder::new().codec(Codec::Lz4);
        builder.push(None, Some(b"a"), 10, &[]);
        builder.push(None, Some(b"b"), 20, &[]);
        let built = builder.build();
        let mut header = *BatchView::new(&built).expect("valid").header();
        header.attributes |= TIMESTAMP_TYPE_LOG_APPEND;
        header.max_timestamp = 777;
        let batch = encode_batch(&header, &built[HEADER_BYTES..]);
        let view = BatchView::new(&batch).expect("valid");
        let decoded = view.decode().expect("decodes");
        assert!(decoded.iter().all(|r| r.expect("parses").timestamp == 777));
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(b"v"), 0, &[]);
        let batch = builder.build();
        assert!(BatchView::new(&batch[..batch.len() - 1]).is_err());
        assert!(BatchView::new(&batch[..10]).is_err());
        assert!(
            BatchView::new(&[0u8; 100]).is_err(),
            "all zeros is not a batch (magic 0)"
        );
    }
}
