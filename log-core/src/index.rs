//! Sparse offset and time indexes of one segment, and their files for sealed segments.
//!
//! In memory an index is a sorted `Vec`. A segment's index files are written once, when the
//! segment is sealed (rolled), with a trailer naming the log file length they describe and a
//! CRC-32: on open, a trailer that does not match the log file means "rebuild by scanning".
//! Byte layout in `FORMAT.md`.

use wire::Offset;

/// One offset index entry: a batch starting at `position` has base offset `base + relative`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// One time index entry: every batch before `relative_offset`'s batch (exclusive) has records no
/// newer than the previous entry's timestamp; `timestamp` is the largest timestamp up to and
/// including the batch at `relative_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// The largest record timestamp in the segment up to and including this batch.
    pub timestamp: i64,
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
}

/// What the index trailer records about its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedInfo {
    /// Length of the log file the index describes.
    pub log_bytes: u64,
    /// The offset after the segment's last batch.
    pub next_offset: Offset,
    /// The largest record timestamp in the segment (`i64::MIN` if empty).
    pub max_timestamp: i64,
}

/// The in-memory indexes of a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// Offset entries, increasing in both fields.
    pub offsets: Vec<OffsetEntry>,
    /// Time entries, increasing in both fields.
    pub times: Vec<TimeEntry>,
}

/// Bytes of one offset index entry on disk.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry on disk.
pub const TIME_ENTRY_BYTES: usize = 12;
/// Offset index trailer: log_bytes u64, next_offset i64, max_timestamp i64, count u32, magic, crc.
pub const OFFSET_TRAILER_BYTES: usize = 36;
/// Time index trailer: log_bytes u64, count u32, magic, crc.
pub const TIME_TRAILER_BYTES: usize = 20;
const OFFSET_MAGIC: &[u8; 4] = b"rlix";
const TIME_MAGIC: &[u8; 4] = b"rltx";

impl SegmentIndex {
    /// Records the batch at `position`; `max_timestamp_so_far` is the segment's largest record
    /// timestamp including this batch. The caller decides when an entry is due (the interval).
    pub fn add(&mut self, relative_offset: u32, position: u32, max_timestamp_so_far: i64) {
        if let Some(last) = self.offsets.last() {
            assert!(
                last.relative_offset < relative_offset,
                "offset entries increase"
            );
            assert!(last.position < position, "positions increase");
        }
        self.offsets.push(OffsetEntry {
            relative_offset,
            position,
        });
        if self
            .times
            .last()
            .is_none_or(|t| max_timestamp_so_far > t.timestamp)
        {
            self.times.push(TimeEntry {
                timestamp: max_timestamp_so_far,
                relative_offset,
            });
        }
        debug_assert!(self.is_sorted(), "index entries increase");
    }

    fn is_sorted(&self) -> bool {
        self.offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self.times.windows(2).all(|w| {
                w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset
            })
    }

    /// The last entry at or below `relative_offset`; `None` means "scan from position 0".
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|n| self.offsets[n])
    }

    /// The relative offset to start scanning from for the first record with a timestamp at or
    /// after `timestamp`: the last entry whose timestamp is below it (everything before that
    /// entry's batch is older), or the segment start.
    pub fn lookup_time(&self, timestamp: i64) -> u32 {
        let below = self.times.partition_point(|e| e.timestamp < timestamp);
        match below {
            0 => 0,
            n => self.times[n - 1].relative_offset,
        }
    }

    /// Drops entries at or past `position` (the segment was truncated there).
    pub fn truncate_to_position(&mut self, position: u32) {
        self.offsets.retain(|e| e.position < position);
        let last_relative = self.offsets.last().map(|e| e.relative_offset);
        self.times
            .retain(|t| last_relative.is_some_and(|r| t.relative_offset <= r));
    }

    /// The offset index file bytes.
    pub fn encode_offsets(&self, info: &SealedInfo) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_BYTES + 36);
        for e in &self.offsets {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out.extend_from_slice(&info.log_bytes.to_be_bytes());
        out.extend_from_slice(&info.next_offset.0.to_be_bytes());
        out.extend_from_slice(&info.max_timestamp.to_be_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_be_bytes());
        out.extend_from_slice(OFFSET_MAGIC);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        assert!(out.len() == self.offsets.len() * OFFSET_ENTRY_BYTES + OFFSET_TRAILER_BYTES);
        out
    }

    /// The time index file bytes.
    pub fn encode_times(&self, log_bytes: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.times.len() * TIME_ENTRY_BYTES + 20);
        for e in &self.times {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out.extend_from_slice(&log_bytes.to_be_bytes());
        out.extend_from_slice(&(self.times.len() as u32).to_be_bytes());
        out.extend_from_slice(TIME_MAGIC);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        assert!(out.len() == self.times.len() * TIME_ENTRY_BYTES + TIME_TRAILER_BYTES);
        out
    }

    /// Decodes both index files; `None` if either is damaged, inconsistent, or describes a log
    /// of another length (a stale index, e.g. from before a compaction swap).
    pub fn decode(
        offsets: &[u8],
        times: &[u8],
        log_bytes: u64,
    ) -> Option<(SegmentIndex, SealedInfo)> {
        let (offset_body, info) = check_trailer(offsets, OFFSET_TRAILER_BYTES, OFFSET_MAGIC)?;
        let be64 = |b: &[u8], at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8"));
        let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4"));
        let sealed = SealedInfo {
            log_bytes: be64(info, 0) as u64,
            next_offset: Offset(be64(info, 8)),
            max_timestamp: be64(info, 16),
        };
        let count = be32(info, 24) as usize;
        if sealed.log_bytes != log_bytes || count * OFFSET_ENTRY_BYTES != offset_body.len() {
            return None;
        }
        let (time_body, time_info) = check_trailer(times, TIME_TRAILER_BYTES, TIME_MAGIC)?;
        let time_count = be32(time_info, 8) as usize;
        if be64(time_info, 0) as u64 != log_bytes
            || time_count * TIME_ENTRY_BYTES != time_body.len()
        {
            return None;
        }
        let index = SegmentIndex {
            offsets: offset_body
                .chunks_exact(OFFSET_ENTRY_BYTES)
                .map(|c| OffsetEntry {
                    relative_offset: be32(c, 0),
                    position: be32(c, 4),
                })
                .collect(),
            times: time_body
                .chunks_exact(TIME_ENTRY_BYTES)
                .map(|c| TimeEntry {
                    timestamp: be64(c, 0),
                    relative_offset: be32(c, 8),
                })
                .collect(),
        };
        let in_bounds = index
            .offsets
            .iter()
            .all(|e| (e.position as u64) < log_bytes.max(1));
        (index.is_sorted() && in_bounds).then_some((index, sealed))
    }
}

/// Splits a file into (entries, trailer fields before magic) if its magic and CRC hold.
fn check_trailer<'a>(
    bytes: &'a [u8],
    trailer: usize,
    magic: &[u8; 4],
) -> Option<(&'a [u8], &'a [u8])> {
    if bytes.len() < trailer {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().expect("4")) {
        return None;
    }
    let magic_at = body.len() - 4;
    if &body[magic_at..] != magic {
        return None;
    }
    let fields_at = bytes.len() - trailer;
    Some((&bytes[..fields_at], &body[fields_at..magic_at]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_round_trip_and_reject_stale_or_damaged() {
        let mut index = SegmentIndex::default();
        index.add(0, 0, 10);
        index.add(5, 4096, 20);
        index.add(9, 8192, 20);
        let info = SealedInfo {
            log_bytes: 9000,
            next_offset: Offset(112),
            max_timestamp: 20,
        };
        let offsets = index.encode_offsets(&info);
        let times = index.encode_times(9000);
        assert_eq!(
            SegmentIndex::decode(&offsets, &times, 9000),
            Some((index.clone(), info))
        );
        assert_eq!(
            SegmentIndex::decode(&offsets, &times, 8999),
            None,
            "stale: other length"
        );
        let mut damaged = offsets.clone();
        damaged[3] ^= 1;
        assert_eq!(
            SegmentIndex::decode(&damaged, &times, 9000),
            None,
            "CRC catches the flip"
        );
        assert_eq!(
            index.lookup(7),
            Some(OffsetEntry {
                relative_offset: 5,
                position: 4096
            })
        );
        assert_eq!(index.lookup_time(20), 0);
        assert_eq!(index.lookup_time(21), 5);
    }
}
