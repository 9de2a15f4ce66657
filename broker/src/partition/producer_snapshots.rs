//! Producer-state snapshots: Kafka's `<offset>.snapshot` files (KAFKA-7190, KIP-360).
//!
//! The idempotent-producer table ([`ProducerStateTable`]) is rebuilt at open from the log, but
//! retention deletes batches while the producers that wrote them live on: a producer whose last
//! batch retention deleted would be forgotten across a restart, and its retry appended twice.
//! So the table is written to `<offset>.snapshot` in the partition's directory (the table as it
//! stands with every batch below `offset` recorded, and none at or above it), and a partition
//! opens from the newest snapshot at or below its log end, replaying only the log after it.
//!
//! When one is written (by the driver, under the partition's lock):
//! - when the log rolls a segment (as Kafka does), at the log end after the append;
//! - when the log start passes the newest snapshot (retention, DeleteRecords, a follower
//!   following its leader's start), so the newest snapshot never describes deleted records
//!   the replay would need;
//! - at a clean close.
//!
//! Snapshots below the log start are deleted once a newer one exists; snapshots above the log
//! end (a crash lost the tail they describe) and above a truncation point are deleted before
//! anything is appended again, durably, so a stale snapshot never meets a log it does not
//! describe.
//!
//! Crash safety: `<name>.tmp` is written, synced, renamed over the name and the directory
//! synced (log-core's open deletes stray `*.tmp`). A snapshot that is corrupt (its CRC-32C or
//! structure), unreadable or missing is skipped: the next older one is tried, and with none the
//! table is rebuilt from the whole log, as before snapshots existed. Only a disk error while
//! writing or deleting fails the partition, like any other disk error.
//!
//! Byte layout (big-endian), version 1:
//! ```text
//! magic "rlps" (4) | version u8 | offset i64 | producers u32
//! per producer: id i64 | epoch i16 | last_write_ms i64 | history_forgotten u8 | batches u8
//!   per batch: first_sequence i32 | last_sequence i32 | first_offset i64 | last_offset i64
//! crc32c u32 of every byte before it
//! ```

use std::path::Path;

use log_core::batch::split_batches;
use log_core::{Disk, DiskError, LogError, PartitionLog};
use wire::Offset;

use crate::producer_state::{
    sequence_add, BatchMetadata, LoggedBatch, ProducerEntry, ProducerStateTable,
    BATCHES_RETAINED_MAX,
};

/// The file name suffix of a snapshot.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// The first bytes of every snapshot.
const MAGIC: &[u8; 4] = b"rlps";
/// The layout version.
const VERSION: u8 = 1;
/// magic + version + offset + producer count.
const HEADER_BYTES: usize = 4 + 1 + 8 + 4;
/// One producer's fixed part.
const PRODUCER_BYTES: usize = 8 + 2 + 8 + 1 + 1;
/// One batch.
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
/// The largest snapshot a full table makes; a file claiming more is corrupt.
const SNAPSHOT_BYTES_MAX: usize = HEADER_BYTES
    + PRODUCERS_PER_PARTITION_MAX * (PRODUCER_BYTES + BATCHES_RETAINED_MAX * BATCH_BYTES)
    + 4;

/// Most idempotent producers one partition remembers (beside expiry).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// Kafka's `producer.id.expiration.ms` default: a producer idle this long is forgotten.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

// A full table's snapshot stays a small file (under 20 MB).
const _: () = assert!(SNAPSHOT_BYTES_MAX < 20 << 20);

/// `<offset, 20 digits>.snapshot`, Kafka's naming.
pub fn snapshot_name(offset: Offset) -> String {
    assert!(offset.0 >= 0, "snapshots sit at real offsets");
    format!("{:020}{SNAPSHOT_SUFFIX}", offset.0)
}

/// The offset a snapshot file name carries, if `name` is one.
pub fn parse_snapshot_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(Offset)
}

/// The snapshots in `dir`, oldest first.
pub fn list(disk: &dyn Disk, dir: &Path) -> Result<Vec<Offset>, DiskError> {
    let mut offsets: Vec<Offset> = disk
        .list(dir)?
        .iter()
        .filter_map(|name| parse_snapshot_name(name))
        .collect();
    offsets.sort();
    Ok(offsets)
}

/// The snapshot bytes of `table` at `offset`.
pub fn encode(offset: Offset, table: &ProducerStateTable) -> Vec<u8> {
    assert!(offset.0 >= 0);
    let mut out = Vec::with_capacity(HEADER_BYTES + table.producer_count() * 64 + 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&offset.0.to_be_bytes());
    let count = u32::try_from(table.producer_count()).expect("bounded by producers_max");
    out.extend_from_slice(&count.to_be_bytes());
    for (id, entry) in table.entries() {
        assert!(
            entry.batches.iter().all(|b| b.last_offset < offset),
            "a snapshot describes batches below its offset"
        );
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_write_ms.to_be_bytes());
        out.push(u8::from(entry.history_forgotten));
        out.push(u8::try_from(entry.batches.len()).expect("at most five"));
        for batch in &entry.batches {
            out.extend_from_slice(&batch.first_sequence.to_be_bytes());
            out.extend_from_slice(&batch.last_sequence.to_be_bytes());
            out.extend_from_slice(&batch.first_offset.0.to_be_bytes());
            out.extend_from_slice(&batch.last_offset.0.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    assert!(out.len() <= SNAPSHOT_BYTES_MAX);
    out
}

/// Reads big-endian fields off the front of a slice; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// The table a snapshot holds, checked whole: its CRC, its layout, the table's invariants, and
/// that every batch lies below the snapshot's offset, which must be `offset` (its name).
pub fn decode(
    offset: Offset,
    bytes: &[u8],
    producers_max: usize,
) -> Result<ProducerStateTable, String> {
    if bytes.len() < HEADER_BYTES + 4 || bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(format!("{} bytes is not a snapshot's size", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != stored {
        return Err("CRC mismatch".into());
    }
    let short = || "truncated".to_string();
    let mut reader = Reader(body);
    if reader.take::<4>().as_ref() != Some(MAGIC) || reader.u8() != Some(VERSION) {
        return Err("bad magic or version".into());
    }
    if reader.i64().ok_or_else(short)? != offset.0 {
        return Err("the offset inside disagrees with the name".into());
    }
    let count = reader.u32().ok_or_else(short)? as usize;
    if count > producers_max {
        return Err(format!("{count} producers, more than {producers_max}"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let id = reader.i64().ok_or_else(short)?;
        let epoch = reader.i16().ok_or_else(short)?;
        let last_write_ms = reader.i64().ok_or_else(short)?;
        let history_forgotten = match reader.u8().ok_or_else(short)? {
            0 => false,
            1 => true,
            _ => return Err("a flag that is neither 0 nor 1".into()),
        };
        let batch_count = usize::from(reader.u8().ok_or_else(short)?);
        if batch_count > BATCHES_RETAINED_MAX {
            return Err(format!("{batch_count} batches for one producer"));
        }
        let mut batches = Vec::with_capacity(batch_count);
        for _ in 0..batch_count {
            let batch = BatchMetadata {
                first_sequence: reader.i32().ok_or_else(short)?,
                last_sequence: reader.i32().ok_or_else(short)?,
                first_offset: Offset(reader.i64().ok_or_else(short)?),
                last_offset: Offset(reader.i64().ok_or_else(short)?),
            };
            if batch.last_offset >= offset {
                return Err("a batch at or above the snapshot's offset".into());
            }
            batches.push(batch);
        }
        let entry = ProducerEntry {
            epoch,
            batches,
            history_forgotten,
            last_write_ms,
        };
        entries.push((id, entry));
    }
    if !reader.0.is_empty() {
        return Err("bytes after the last producer".into());
    }
    ProducerStateTable::from_entries(producers_max, entries).map_err(str::to_string)
}

/// Writes the snapshot of `table` at `offset` crash-safely (tmp, sync, rename, directory sync).
pub fn write(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
    table: &ProducerStateTable,
) -> Result<(), DiskError> {
    let bytes = encode(offset, table);
    let name = snapshot_name(offset);
    let tmp = dir.join(format!("{name}.tmp"));
    match disk.remove(&tmp) {
        Ok(()) | Err(DiskError::NotFound(_)) => {}
        Err(error) => return Err(error),
    }
    disk.create(&tmp)?;
    disk.write_at(&tmp, 0, &bytes)?;
    disk.sync(&tmp)?;
    disk.rename(&tmp, &dir.join(&name))?;
    disk.sync_dir(dir)?;
    tracing::debug!(dir = %dir.display(), ?offset, producers = table.producer_count(), "producer snapshot written");
    Ok(())
}

/// Deletes the snapshots `doomed` picks, durably (a directory sync when any went).
fn remove_where(
    disk: &dyn Disk,
    dir: &Path,
    doomed: impl Fn(Offset) -> bool,
) -> Result<usize, DiskError> {
    let mut removed = 0;
    for offset in list(disk, dir)?.into_iter().filter(|o| doomed(*o)) {
        match disk.remove(&dir.join(snapshot_name(offset))) {
            Ok(()) | Err(DiskError::NotFound(_)) => removed += 1,
            Err(error) => return Err(error),
        }
    }
    if removed > 0 {
        disk.sync_dir(dir)?;
    }
    Ok(removed)
}

/// Deletes every snapshot above `offset` (a truncation to `offset`, or a log end a crash cut
/// back): they describe batches the log no longer holds.
pub fn remove_above(disk: &dyn Disk, dir: &Path, offset: Offset) -> Result<usize, DiskError> {
    remove_where(disk, dir, |o| o > offset)
}

/// Deletes every snapshot.
pub fn remove_all(disk: &dyn Disk, dir: &Path) -> Result<usize, DiskError> {
    remove_where(disk, dir, |_| true)
}

/// Deletes the snapshots below `log_start` when a newer one at or above it exists: the newest
/// stays whatever its offset.
pub fn remove_below(disk: &dyn Disk, dir: &Path, log_start: Offset) -> Result<usize, DiskError> {
    let offsets = list(disk, dir)?;
    let newest = offsets.last().copied();
    remove_where(disk, dir, |o| o < log_start && Some(o) != newest)
}

/// Reads and checks one snapshot; any failure is reported as a reason (the caller skips it).
fn read_one(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
    producers_max: usize,
) -> Result<ProducerStateTable, String> {
    let path = dir.join(snapshot_name(offset));
    let len = disk.len(&path).map_err(|e| e.to_string())?;
    let len = usize::try_from(len).map_err(|_| "too large".to_string())?;
    if len > SNAPSHOT_BYTES_MAX {
        return Err(format!("{len} bytes is not a snapshot's size"));
    }
    let mut bytes = vec![0u8; len];
    let read = disk
        .read_at(&path, 0, &mut bytes)
        .map_err(|e| e.to_string())?;
    bytes.truncate(read);
    decode(offset, &bytes, producers_max)
}

/// Whether [`load`] would rebuild the table exactly: it replays the log from the newest snapshot
/// at or below the log end, or from the log start if that is later; from a snapshot below the
/// log start (or, with none, from a start above zero) it would miss the batches retention
/// deleted.
pub fn load_is_exact(disk: &dyn Disk, dir: &Path, log: &PartitionLog) -> Result<bool, DiskError> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let base = list(disk, dir)?
        .into_iter()
        .rfind(|snapshot| *snapshot <= end);
    Ok(base.map_or(start == Offset::ZERO, |snapshot| snapshot >= start))
}

/// The producer table of an opened log: the newest sound snapshot at or below the log end,
/// then the log's batches from there (or from the log start, if later) replayed on top; with no
/// sound snapshot, the whole log replayed. Snapshots above the log end are deleted first, bad
/// ones skipped and deleted. `now_ms` is the table's clock (what replayed batches record).
/// Errors only for a disk error while deleting or a log that cannot be read.
pub fn load(
    disk: &dyn Disk,
    dir: &Path,
    log: &PartitionLog,
    now_ms: i64,
) -> Result<ProducerStateTable, LogError> {
    let log_end = log.log_end_offset();
    remove_above(disk, dir, log_end)?;
    let mut table = None;
    let mut bad = Vec::new();
    for offset in list(disk, dir)?.into_iter().rev() {
        match read_one(disk, dir, offset, PRODUCERS_PER_PARTITION_MAX) {
            Ok(loaded) => {
                table = Some((offset, loaded));
                break;
            }
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), ?offset, %reason, "skipping a bad producer snapshot");
                bad.push(offset);
            }
        }
    }
    remove_where(disk, dir, |o| bad.contains(&o))?;
    let (replay_from, mut table) = match table {
        Some((offset, table)) => (offset.max(log.log_start_offset()), table),
        None => (
            log.log_start_offset(),
            ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX),
        ),
    };
    table.advance_clock(now_ms);
    replay(log, replay_from, &mut table)?;
    table.check_invariants();
    Ok(table)
}

/// Records every idempotent batch of the log from `from` (a batch boundary, or the log start)
/// to its end into `table`.
fn replay(
    log: &PartitionLog,
    from: Offset,
    table: &mut ProducerStateTable,
) -> Result<(), LogError> {
    assert!(from >= log.log_start_offset());
    let mut next = from;
    while next < log.log_end_offset() {
        let result = log.read(next, 1 << 20)?;
        if result.bytes.is_empty() || result.next_offset <= next {
            break;
        }
        for view in split_batches(&result.bytes) {
            let header = *view?.header();
            if header.producer_id >= 0 && header.next_offset() > next {
                table.record(logged_batch(&header, header.base_offset));
            }
        }
        next = result.next_offset;
    }
    Ok(())
}

/// The producer-table view of a batch header placed at `first_offset`.
pub fn logged_batch(header: &log_core::batch::BatchHeader, first_offset: Offset) -> LoggedBatch {
    LoggedBatch {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        last_sequence: sequence_add(header.base_sequence, header.last_offset_delta),
        first_offset,
        last_offset: first_offset.add(i64::from(header.last_offset_delta)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use log_core::{BatchBuilder, LogConfig, MemDisk};
    use std::sync::Arc;
    use wire::LeaderEpoch;

    fn logged(producer_id: i64, base_sequence: i32, first_offset: i64) -> LoggedBatch {
        LoggedBatch {
            producer_id,
            producer_epoch: 2,
            base_sequence,
            last_sequence: base_sequence + 1,
            first_offset: Offset(first_offset),
            last_offset: Offset(first_offset + 1),
        }
    }

    fn table() -> ProducerStateTable {
        let mut table = ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX);
        table.advance_clock(1_000);
        for i in 0..7 {
            table.record(logged(5, i * 2, i64::from(i) * 4));
        }
        table.advance_clock(2_000);
        table.record(logged(9, 0, 40));
        table
    }

    fn entries(table: &ProducerStateTable) -> Vec<(i64, ProducerEntry)> {
        table.entries().map(|(id, e)| (id, e.clone())).collect()
    }

    #[test]
    fn a_snapshot_round_trips_and_any_flipped_byte_is_refused() {
        let table = table();
        let bytes = encode(Offset(42), &table);
        let decoded = decode(Offset(42), &bytes, PRODUCERS_PER_PARTITION_MAX).unwrap();
        assert_eq!(entries(&decoded), entries(&table));
        assert!(
            entries(&decoded)[0].1.history_forgotten,
            "seven batches, five kept"
        );
        assert_eq!(entries(&decoded)[1].1.last_write_ms, 2_000);
        assert!(
            decode(Offset(41), &bytes, PRODUCERS_PER_PARTITION_MAX).is_err(),
            "wrong name"
        );
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(
                decode(Offset(42), &flipped, PRODUCERS_PER_PARTITION_MAX).is_err(),
                "byte {at}"
            );
        }
        assert!(decode(
            Offset(42),
            &bytes[..bytes.len() - 1],
            PRODUCERS_PER_PARTITION_MAX
        )
        .is_err());
        assert!(decode(Offset(42), &[], PRODUCERS_PER_PARTITION_MAX).is_err());
    }

    #[test]
    fn a_snapshot_whose_batches_reach_its_offset_is_refused() {
        let bytes = encode(Offset(42), &table());
        // Re-encode the same table under a lower offset by hand: its last batch ends at 41.
        let mut lowered = bytes[..bytes.len() - 4].to_vec();
        lowered[5..13].copy_from_slice(&41i64.to_be_bytes());
        let crc = crc32c::crc32c(&lowered);
        lowered.extend_from_slice(&crc.to_be_bytes());
        let refused = decode(Offset(41), &lowered, PRODUCERS_PER_PARTITION_MAX).unwrap_err();
        assert!(refused.contains("at or above"), "{refused}");
    }

    /// The log: producer 5's batches at offsets 0 (seq 0-1) and 2 (seq 2-3), then producer 9's
    /// at 4 (seq 0).
    fn log_with_producers(disk: &Arc<dyn Disk>) -> PartitionLog {
        let mut log =
            PartitionLog::open(disk.clone(), Path::new("p"), LogConfig::default(), 0).unwrap();
        for (producer, sequence, records) in [(5, 0, 2), (5, 2, 2), (9, 0, 1)] {
            let mut builder = BatchBuilder::new().producer(producer, 0, sequence);
            for _ in 0..records {
                builder.push(None, Some(b"v"), 1_000, &[]);
            }
            log.append_as_leader(&builder.build(), LeaderEpoch(0), 1_000)
                .unwrap();
        }
        log.flush().unwrap();
        log
    }

    #[test]
    fn load_takes_the_newest_sound_snapshot_and_replays_the_log_after_it() {
        let disk = MemDisk::new(1).as_disk();
        let log = log_with_producers(&disk);
        let dir = Path::new("p");
        // At offset 2 a producer 7 the log no longer holds (retention took its batch) was known.
        let mut at_two = ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX);
        at_two.record(logged(7, 0, 0));
        write(&*disk, dir, Offset(2), &at_two).unwrap();
        // A corrupt snapshot at 4 and one past the log end (a crash lost its tail) are skipped.
        write(&*disk, dir, Offset(4), &at_two).unwrap();
        disk.write_at(&dir.join(snapshot_name(Offset(4))), 20, &[0xff])
            .unwrap();
        write(&*disk, dir, Offset(1_000), &at_two).unwrap();
        let table = load(&*disk, dir, &log, 5_000).unwrap();
        let ids: Vec<i64> = table.entries().map(|(id, _)| id).collect();
        assert_eq!(
            ids,
            [5, 7, 9],
            "the snapshot's producer 7, then the log after offset 2"
        );
        let five = table.producer(5).unwrap();
        assert_eq!(
            five.batches.len(),
            1,
            "only the batch after the snapshot replayed"
        );
        assert_eq!(five.batches[0].first_sequence, 2);
        assert_eq!(
            list(&*disk, dir).unwrap(),
            [Offset(2)],
            "the bad ones are gone"
        );
        // With no snapshot at all, the whole log.
        remove_all(&*disk, dir).unwrap();
        let table = load(&*disk, dir, &log, 5_000).unwrap();
        let ids: Vec<i64> = table.entries().map(|(id, _)| id).collect();
        assert_eq!(ids, [5, 9]);
        assert_eq!(table.producer(5).unwrap().batches.len(), 2);
    }
}
