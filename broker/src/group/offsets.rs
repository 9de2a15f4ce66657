//! Committed offsets as records of the internal topic `__consumer_offsets`.
//!
//! ## Byte layout (Kafka's, so tools that read the topic understand it)
//!
//! All integers big-endian; a `string` is an `int16` byte length followed by UTF-8 bytes.
//!
//! - key, version 1: `int16 version = 1, string group, string topic, int32 partition`.
//!   Kafka's key version 0 is read the same way; version 2 keys hold group metadata, which rill
//!   does not write and skips on load.
//! - value, version 3: `int16 version = 3, int64 offset, int32 leader_epoch, string metadata,
//!   int64 commit_timestamp`. Versions 0..=2 (no leader epoch; v1 with an expire timestamp)
//!   are read too.
//! - a record without a value (a tombstone) deletes the committed offset.
//!
//! The partition of the topic a group lives in is Kafka's: `abs(java_hash(group)) % partitions`
//! ([`offsets_partition`]), so a group's coordinator is the leader of that partition.

use super::GroupError;

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Key version rill writes (offset commit, Kafka's version 1).
pub const OFFSET_KEY_VERSION: i16 = 1;

/// Value version rill writes (Kafka's version 3, with the leader epoch).
pub const OFFSET_VALUE_VERSION: i16 = 3;

/// Key version Kafka uses for group metadata records (skipped on load).
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// Longest string a record may hold: the `int16` length prefix.
pub const RECORD_STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Which offset a record is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetKey {
    /// The consumer group.
    pub group: String,
    /// The topic the offset is in.
    pub topic: String,
    /// The partition the offset is in.
    pub partition: i32,
}

/// A committed offset as the group stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the record before `offset`, as the client sent it (-1 if unknown); clients
    /// use it to detect log truncation (KIP-320).
    pub leader_epoch: i32,
    /// Free-form client metadata, bounded by the coordinator's `offset_metadata_bytes_max`.
    pub metadata: String,
    /// When the coordinator accepted the commit, in the driver's milliseconds.
    pub commit_timestamp_ms: i64,
}

/// One record of `__consumer_offsets`: a commit, or (without value) a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetRecord {
    /// Which group, topic and partition.
    pub key: OffsetKey,
    /// The committed offset, or `None` for a tombstone that deletes it.
    pub value: Option<OffsetValue>,
}

/// Java's `String.hashCode` over the UTF-16 code units, wrapping like Java's `int`.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group_id` (Kafka's `Utils.abs(hashCode) % partitions`).
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions >= 1, "the offsets topic has partitions");
    let partition = (java_string_hash(group_id) & 0x7fff_ffff) % partitions;
    assert!((0..partitions).contains(&partition));
    partition
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    assert!(
        text.len() <= RECORD_STRING_BYTES_MAX,
        "strings are bounded before they reach a record"
    );
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over a record's bytes that refuses to read past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], GroupError> {
        if self.bytes.len() < count {
            return Err(GroupError::OffsetRecordMalformed {
                reason: "record ends early",
            });
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GroupError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, GroupError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, GroupError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, GroupError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, GroupError> {
        let length = self.i16()?;
        let Ok(length) = usize::try_from(length) else {
            return Err(GroupError::OffsetRecordMalformed {
                reason: "negative string length",
            });
        };
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GroupError::OffsetRecordMalformed {
            reason: "string is not UTF-8",
        })
    }

    fn finish(&self) -> Result<(), GroupError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(GroupError::OffsetRecordMalformed {
                reason: "trailing bytes",
            })
        }
    }
}

impl OffsetRecord {
    /// The record's key and value bytes (`None` value: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::with_capacity(10 + self.key.group.len() + self.key.topic.len());
        key.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
        put_string(&mut key, &self.key.group);
        put_string(&mut key, &self.key.topic);
        key.extend_from_slice(&self.key.partition.to_be_bytes());
        let value = self.value.as_ref().map(|value| {
            let mut out = Vec::with_capacity(24 + value.metadata.len());
            out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
            out.extend_from_slice(&value.offset.to_be_bytes());
            out.extend_from_slice(&value.leader_epoch.to_be_bytes());
            put_string(&mut out, &value.metadata);
            out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
            out
        });
        assert!(
            key.len() >= 10,
            "a key holds a version, two strings and a partition"
        );
        (key, value)
    }

    /// Reads a record back. `Ok(None)`: a valid record of another kind (group metadata), which
    /// the offsets cache skips.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<OffsetRecord>, GroupError> {
        let mut reader = Reader { bytes: key };
        let key_version = reader.i16()?;
        if key_version == GROUP_METADATA_KEY_VERSION {
            return Ok(None);
        }
        if !(0..=1).contains(&key_version) {
            return Err(GroupError::OffsetRecordMalformed {
                reason: "unknown key version",
            });
        }
        let key = OffsetKey {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        };
        reader.finish()?;
        let value = match value {
            None => None,
            Some(bytes) => Some(Self::decode_value(bytes)?),
        };
        Ok(Some(OffsetRecord { key, value }))
    }

    fn decode_value(bytes: &[u8]) -> Result<OffsetValue, GroupError> {
        let mut reader = Reader { bytes };
        let version = reader.i16()?;
        if !(0..=3).contains(&version) {
            return Err(GroupError::OffsetRecordMalformed {
                reason: "unknown value version",
            });
        }
        let offset = reader.i64()?;
        let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
        let metadata = reader.string()?;
        let commit_timestamp_ms = reader.i64()?;
        if version == 1 {
            let _expire_timestamp_ms = reader.i64()?;
        }
        reader.finish()?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}
