//! Log compaction for `compacted` logs: keep the latest record per key, drop old tombstones,
//! never move an offset. Crash-safe by construction: a cleaned segment is written and synced
//! under `.cleaned` names and swapped in by rename + `sync_dir`; open deletes any `.cleaned`
//! leftover, and a stale index is detected by the log length its trailer names.

use crate::batch::{
    encode_batch, BatchHeader, BatchRecords, BatchView, BATCH_BYTES_LIMIT, HEADER_BYTES,
};
use crate::compression::{self, Codec};
use crate::error::LogError;
use crate::log::PartitionLog;
use crate::segment::{read_exact, remove_if_exists, with_suffix, Segment};
use std::collections::BTreeMap;
use wire::Offset;

/// The suffix of files a compaction pass writes before swapping them in.
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// What a compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// Records dropped (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Bytes of the rewritten segments before.
    pub bytes_before: u64,
    /// Bytes of the rewritten segments after.
    pub bytes_after: u64,
}

impl PartitionLog {
    /// One compaction pass over the non-active segments wholly below the high watermark.
    /// A no-op for logs that are not `compacted`.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionOutcome, LogError> {
        self.guarded(|log| log.compact_unguarded(now_ms))
    }

    fn compact_unguarded(&mut self, now_ms: i64) -> Result<CompactionOutcome, LogError> {
        let mut outcome = CompactionOutcome::default();
        if !self.config.compacted {
            return Ok(outcome);
        }
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        let cleanable: Vec<Offset> = bases
            .windows(2)
            .take_while(|pair| pair[1] <= self.high_watermark)
            .map(|pair| pair[0])
            .collect();
        let (latest, included) = self.latest_offsets(&cleanable)?;
        let tombstone_horizon = now_ms.saturating_sub(self.config.delete_retention_ms);
        for base in &cleanable[..included] {
            let segment = self.segments[base].clone();
            let bytes = self.segment_bytes(&segment)?;
            let (cleaned, removed) = clean(&segment, &bytes, &latest, tombstone_horizon)?;
            if removed == 0 {
                continue;
            }
            // Readers of the old file read again (`PartitionLog::read_is_current`).
            self.rewrites += 1;
            let swapped = self.swap_in(&segment, &cleaned)?;
            outcome.segments_cleaned += 1;
            outcome.records_removed += removed;
            outcome.bytes_before += bytes.len() as u64;
            outcome.bytes_after += cleaned.len() as u64;
            self.segments.insert(*base, swapped);
        }
        self.check_invariants();
        Ok(outcome)
    }

    /// The latest offset of every key over a prefix of `bases` whose keys fit the limit, and how
    /// many segments that prefix holds.
    fn latest_offsets(
        &self,
        bases: &[Offset],
    ) -> Result<(BTreeMap<Vec<u8>, Offset>, usize), LogError> {
        let mut latest = BTreeMap::new();
        let mut included = 0;
        for base in bases {
            let segment = &self.segments[base];
            let bytes = self.segment_bytes(segment)?;
            let mut offsets = BTreeMap::new();
            for_each_batch(segment, &bytes, |view, position| {
                let decoded = decode(segment, view, position)?;
                for record in decoded.iter() {
                    let record = record?;
                    if let Some(key) = record.key {
                        offsets.insert(key.to_vec(), record.offset);
                    }
                }
                Ok(())
            })?;
            let new_keys = offsets.keys().filter(|k| !latest.contains_key(*k)).count();
            if included > 0 && latest.len() + new_keys > self.config.compaction_keys_max {
                break;
            }
            latest.extend(offsets);
            included += 1;
        }
        assert!(
            included <= bases.len(),
            "a prefix of the cleanable segments"
        );
        Ok((latest, included))
    }

    /// The whole log file of a segment.
    fn segment_bytes(&self, segment: &Segment) -> Result<Vec<u8>, LogError> {
        let mut bytes = vec![0u8; segment.size_bytes as usize];
        if !read_exact(&*self.disk, &segment.log_path, 0, &mut bytes)? {
            return Err(segment.corrupt(0, "segment shorter than accounted".into()));
        }
        Ok(bytes)
    }

    /// Writes the cleaned log and its indexes under `.cleaned`, syncs them, renames them over the
    /// originals and syncs the directory. Returns the segment's new in-memory state.
    fn swap_in(&self, segment: &Segment, cleaned: &[u8]) -> Result<Segment, LogError> {
        let disk = &*self.disk;
        let mut shadow = Segment::new(
            &self.dir,
            segment.base_offset,
            segment.created_ms,
            segment.dense,
        );
        for_each_batch(segment, cleaned, |view, position| {
            shadow.account_batch(view.header(), position, self.config.index_interval_bytes);
            Ok(())
        })?;
        assert!(
            shadow.size_bytes == cleaned.len() as u64,
            "the shadow accounts every byte"
        );
        let log_cleaned = with_suffix(&segment.log_path, CLEANED_SUFFIX);
        remove_if_exists(disk, &log_cleaned)?;
        disk.create(&log_cleaned)?;
        disk.write_at(&log_cleaned, 0, cleaned)?;
        disk.sync(&log_cleaned)?;
        shadow.write_index_files(disk, CLEANED_SUFFIX)?;
        // The log first: if only it lands, the old indexes name the old length and get rebuilt.
        for path in [&segment.log_path, &segment.index_path, &segment.time_path] {
            disk.rename(&with_suffix(path, CLEANED_SUFFIX), path)?;
        }
        disk.sync_dir(&self.dir)?;
        shadow.synced_bytes = shadow.size_bytes;
        Ok(shadow)
    }
}

/// Calls `visit` on every batch of `bytes` (a segment's log) with its position, CRC-checked.
fn for_each_batch(
    segment: &Segment,
    bytes: &[u8],
    mut visit: impl FnMut(&BatchView<'_>, u64) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut position = 0usize;
    while position < bytes.len() {
        let view = BatchView::new(&bytes[position..])
            .map_err(|e| segment.corrupt(position as u64, e.to_string()))?;
        if !view.crc_is_valid() {
            return Err(segment.corrupt(position as u64, "CRC-32C mismatch".into()));
        }
        visit(&view, position as u64)?;
        position += view.as_bytes().len();
    }
    assert!(position == bytes.len(), "batches tile the segment");
    Ok(())
}

/// A stored batch's records; a batch that does not decode is corruption of the segment.
fn decode<'a>(
    segment: &Segment,
    view: &BatchView<'a>,
    position: u64,
) -> Result<BatchRecords<'a>, LogError> {
    view.decode()
        .map_err(|e| segment.corrupt(position, e.to_string()))
}

/// The cleaned bytes of one segment and how many records were dropped. A record survives if it
/// has no key or is its key's latest, unless it is a tombstone older than the horizon. Batches
/// keep their base offset, epoch, last offset delta and codec (a compressed batch's kept records
/// are compressed again with it); emptied batches are dropped.
fn clean(
    segment: &Segment,
    bytes: &[u8],
    latest: &BTreeMap<Vec<u8>, Offset>,
    tombstone_horizon: i64,
) -> Result<(Vec<u8>, u64), LogError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut removed = 0u64;
    for_each_batch(segment, bytes, |view, position| {
        let decoded = decode(segment, view, position)?;
        let mut kept = Vec::new();
        let mut kept_count = 0i32;
        let mut dropped = 0u64;
        for record in decoded.iter() {
            let record = record?;
            let is_latest = record
                .key
                .is_none_or(|k| latest.get(k) == Some(&record.offset));
            let expired_tombstone = record.value.is_none() && record.timestamp < tombstone_horizon;
            if is_latest && !(expired_tombstone && record.key.is_some()) {
                kept.extend_from_slice(record.raw);
                kept_count += 1;
            } else {
                dropped += 1;
            }
        }
        let header = *view.header();
        assert_eq!(
            i64::from(kept_count) + dropped as i64,
            i64::from(header.records_count),
            "every record is kept or dropped"
        );
        let rewritten = (kept_count > 0 && dropped > 0)
            .then(|| rewrite(&header, decoded.codec(), &kept, kept_count))
            .flatten();
        match rewritten {
            Some(batch) => out.extend_from_slice(&batch),
            None if kept_count == 0 => {}
            // Nothing dropped, or the kept records would not fit a batch again (an edge of
            // recompression): the batch stays as it is, superseded records and all, which
            // compaction allows (it keeps at least the latest record of each key).
            None => {
                out.extend_from_slice(view.as_bytes());
                dropped = 0;
            }
        }
        removed += dropped;
        Ok(())
    })?;
    Ok((out, removed))
}

/// A batch of the kept records (encoded back to back) with the original's header fields and
/// codec; `None` if it would pass the hard batch limit.
fn rewrite(header: &BatchHeader, codec: Codec, kept: &[u8], kept_count: i32) -> Option<Vec<u8>> {
    assert!(kept_count > 0 && kept_count < header.records_count);
    let records = compression::compress(codec, kept);
    if HEADER_BYTES + records.len() > BATCH_BYTES_LIMIT {
        return None;
    }
    let mut header = *header;
    header.records_count = kept_count;
    let batch = encode_batch(&header, &records);
    assert!(
        codec != Codec::None || batch.len() < header.total_bytes(),
        "dropping records never grows an uncompressed batch"
    );
    Some(batch)
}
