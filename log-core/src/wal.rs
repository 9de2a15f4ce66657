//! What a broker journals, and the replay that puts it back at start-up.
//!
//! A journaled flush (`PartitionLog::finish_journaled_flush`) makes a partition's appended
//! bytes durable in the broker's journal (`crate::journal`) instead of syncing its segment file:
//! one [`SegmentWrite`] per file, the bytes and where they go. The segment file is synced later,
//! by the next state checkpoint, before that checkpoint's recovery point counts on it.
//!
//! After a crash, [`replay`] runs before any log of the broker opens: each record still needed
//! is written back at its position in its segment file (the same bytes, if the kernel had
//! written them back already) and the files synced, so the logs then open as if every flush had
//! synced them. A record is skipped when its log's state checkpoint says it is not needed:
//! - its sequence is below the log's journal floor (it was planned before the log's last
//!   truncation or open, or by an earlier log in a directory deleted and created again: its
//!   bytes describe a log that no longer exists, and writing them would bring back a truncated
//!   suffix);
//! - it ends at or below the log's recovery point (the segment file was synced past it; the
//!   segment may be sealed and compacted since, so writing it could damage it);
//! - its directory or segment file is gone (deleted: a deleted topic, retention).

use crate::checkpoint::{self, Kind, LogState};
use crate::disk::Disk;
use crate::error::LogError;
use crate::journal::{Journal, JournalClock};
use crate::log::STATE_FILE;
use crate::segment;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wire::Offset;

/// Bytes appended to a segment file, journaled instead of synced in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentWrite {
    /// The partition's directory.
    pub dir: PathBuf,
    /// The segment's base offset (names its file).
    pub segment_base: Offset,
    /// Where in the file the bytes go.
    pub position: u64,
    /// The log end offset once these bytes are in (the flush's end).
    pub end_offset: Offset,
    /// The bytes: whole batches.
    pub bytes: Vec<u8>,
}

/// dir length u16 + base i64 + position u64 + end i64.
const FIXED_BYTES: usize = 2 + 8 + 8 + 8;

impl SegmentWrite {
    /// The record payload: dir length u16 | dir (UTF-8) | segment base i64 | position u64 |
    /// end offset i64 | bytes, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.bytes);
        out
    }

    /// The record payload's fixed part, before the bytes: a journal round writes it and the
    /// bytes as two parts of one record (`Journal::write_round_of_parts`), without joining them
    /// first.
    pub fn header(&self) -> Vec<u8> {
        let dir = self.dir.to_str().expect("partition directories are UTF-8");
        let dir_len = u16::try_from(dir.len()).expect("a partition directory name is short");
        let mut out = Vec::with_capacity(FIXED_BYTES + dir.len());
        out.extend_from_slice(&dir_len.to_be_bytes());
        out.extend_from_slice(dir.as_bytes());
        out.extend_from_slice(&self.segment_base.0.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.end_offset.0.to_be_bytes());
        out
    }

    /// Decodes a record payload; `None` if it is not one (a valid journal record that does not
    /// decode is corruption the journal's CRC did not catch, or another writer's).
    pub fn decode(payload: &[u8]) -> Option<SegmentWrite> {
        let dir_len = usize::from(u16::from_be_bytes(payload.get(0..2)?.try_into().ok()?));
        let dir = std::str::from_utf8(payload.get(2..2 + dir_len)?).ok()?;
        let rest = payload.get(2 + dir_len..)?;
        let word = |i: usize| -> Option<[u8; 8]> { rest.get(i..i + 8)?.try_into().ok() };
        let write = SegmentWrite {
            dir: PathBuf::from(dir),
            segment_base: Offset(i64::from_be_bytes(word(0)?)),
            position: u64::from_be_bytes(word(8)?),
            end_offset: Offset(i64::from_be_bytes(word(16)?)),
            bytes: rest.get(24..)?.to_vec(),
        };
        let sane = !dir.is_empty() && write.segment_base.0 >= 0 && write.end_offset.0 >= 0;
        sane.then_some(write)
    }
}

/// What [`replay`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records the journal held.
    pub records: usize,
    /// Records written back into their segment files.
    pub replayed: usize,
    /// Bytes written back.
    pub bytes: u64,
    /// Records skipped as stale (below the floor or the recovery point) or whose files are gone.
    pub skipped: usize,
    /// Records whose position lay past their file's end (the bytes before them missing): not
    /// written, the log's own recovery decides (a torn tail).
    pub gaps: usize,
    /// Bytes the journal's own recovery cut off as a torn last round (never acknowledged).
    pub torn_bytes: u64,
}

/// Opens the journal in `journal_dir` and writes every record a log still needs back into its
/// segment file (see the module doc), syncing those files; returns the journal (for appending),
/// its clock, and what it did. Run before any log of the broker opens. A journal record that
/// is not a [`SegmentWrite`] is [`LogError::CorruptJournal`]; a log whose state checkpoint is
/// corrupt is skipped (its own open fails on it); a disk error reading a checkpoint fails the
/// replay.
pub fn replay(
    disk: &dyn Disk,
    journal_dir: &Path,
    file_bytes_max: u64,
) -> Result<(Journal, JournalClock, ReplayReport), LogError> {
    let (journal, records, recovery) = Journal::open(disk, journal_dir, file_bytes_max)?;
    let mut report = apply(disk, journal_dir, records)?;
    report.torn_bytes = recovery.torn_bytes;
    if report.replayed > 0 || report.torn_bytes > 0 {
        tracing::info!(?report, "journal replayed");
    }
    let clock = JournalClock::new(journal.next_sequence());
    Ok((journal, clock, report))
}

/// Writes back every record of `records` a log still needs and syncs the files written.
fn apply(
    disk: &dyn Disk,
    journal_dir: &Path,
    records: Vec<crate::journal::JournalRecord>,
) -> Result<ReplayReport, LogError> {
    let mut report = ReplayReport {
        records: records.len(),
        ..ReplayReport::default()
    };
    let mut states: BTreeMap<PathBuf, Option<LogState>> = BTreeMap::new();
    let mut written = BTreeSet::new();
    for record in records {
        if record.payload.is_empty() {
            // A filler: a sequence reserved for a record a failed round never wrote
            // (`Journal` reopened by its writer).
            report.skipped += 1;
            continue;
        }
        let write =
            SegmentWrite::decode(&record.payload).ok_or_else(|| LogError::CorruptJournal {
                file: journal_dir.display().to_string(),
                position: 0,
                reason: format!("record {} is not a segment write", record.sequence),
            })?;
        let state = match states.entry(write.dir.clone()) {
            std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::btree_map::Entry::Vacant(new) => {
                new.insert(state_of(disk, &write.dir)?)
            }
        };
        let needed = state.is_some_and(|state| {
            record.sequence >= state.journal_floor && write.end_offset > state.recovery_point
        });
        let path = write
            .dir
            .join(segment::file_name(write.segment_base, "log"));
        let len = match disk.len(&path) {
            Ok(len) if needed => len,
            found => {
                tracing::debug!(sequence = record.sequence, file = %path.display(),
                    end = ?write.end_offset, ?state, ?found, "journal record not needed");
                report.skipped += 1;
                continue;
            }
        };
        if len < write.position {
            tracing::warn!(file = %path.display(), position = write.position, len,
                "a journal record starts past its segment's end: not replayed");
            report.gaps += 1;
            continue;
        }
        disk.write_at(&path, write.position, &write.bytes)?;
        report.replayed += 1;
        report.bytes += write.bytes.len() as u64;
        written.insert(path);
    }
    for path in &written {
        disk.sync(path)?;
    }
    Ok(report)
}

/// For a journal [`replay`] refused as corrupt (a synced record damaged at rest): writes back
/// every record that can still be read ([`Journal::salvage`]) under the same rules, syncs those
/// segment files, and removes the journal's files; the next [`replay`] starts an empty journal.
/// What the damaged records held is lost to the replay: the caller reports its storage unclean.
pub fn salvage(disk: &dyn Disk, journal_dir: &Path) -> Result<ReplayReport, LogError> {
    let mut records = Journal::salvage(disk, journal_dir)?;
    // What a scan past damage finds is whole (its CRC holds) but need not be ours to apply.
    records.retain(|r| r.payload.is_empty() || SegmentWrite::decode(&r.payload).is_some());
    let report = apply(disk, journal_dir, records)?;
    Journal::remove_files(disk, journal_dir)?;
    Ok(report)
}

/// Writes back the records of the one log in `dir` that it still needs, read without changing
/// the journal (a scan that reads every whole record: the journal's writer may be appending
/// meanwhile, and its unsynced tail is simply not read whole), and syncs what it wrote: before
/// a failed partition's log is opened again in a running broker. A failed segment sync may
/// have dropped bytes the journal made durable and the partition acknowledged (a failed fsync
/// drops the file's dirty pages on Linux), and the journal still holds them. The log must not
/// be open (its writes would race) and its floor not yet raised by an open.
pub fn replay_dir(
    disk: &dyn Disk,
    journal_dir: &Path,
    dir: &Path,
) -> Result<ReplayReport, LogError> {
    if !disk.exists(journal_dir)? {
        return Ok(ReplayReport::default());
    }
    let mut records = Journal::salvage(disk, journal_dir)?;
    records.retain(|r| SegmentWrite::decode(&r.payload).is_some_and(|w| w.dir == dir));
    apply(disk, journal_dir, records)
}

/// The state checkpoint of the log in `dir`: `None` if it has none or it is corrupt (the log's
/// own open then fails on it, and the copy is set aside and rebuilt). A disk error is an error:
/// the replay fails and the start is tried again. (It was `None`, and a transient read fault
/// dropped every journal record of the log, acknowledged ones too, while the log's own open read
/// the checkpoint fine a moment later: seed 256985.)
fn state_of(disk: &dyn Disk, dir: &Path) -> Result<Option<LogState>, LogError> {
    let payload = match checkpoint::read(disk, dir, STATE_FILE, Kind::LogState) {
        Ok(Some(payload)) => payload,
        Ok(None) => return Ok(None),
        Err(LogError::Disk(error)) => return Err(LogError::Disk(error)),
        Err(_) => return Ok(None),
    };
    let name = dir.join(STATE_FILE).display().to_string();
    Ok(LogState::decode(&name, &payload).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::write_atomic;
    use crate::{FaultOp, MemDisk};
    use wire::Offset;

    /// Seed 256985: a transient read fault on a log's state checkpoint passed for "no state",
    /// and the replay dropped every journal record of that log, acknowledged ones too.
    #[test]
    fn a_state_checkpoint_the_disk_fails_to_read_fails_the_replay() {
        let mem = MemDisk::new(1);
        let disk = mem.as_disk();
        let dir = Path::new("t-0");
        disk.create_dir_all(dir).expect("creates");
        assert_eq!(
            state_of(disk.as_ref(), dir).expect("reads"),
            None,
            "no checkpoint"
        );
        let state = LogState {
            recovery_point: Offset(90),
            log_start_offset: Offset::ZERO,
            high_watermark: Offset(89),
            journal_floor: 72,
        };
        write_atomic(
            disk.as_ref(),
            dir,
            STATE_FILE,
            Kind::LogState,
            &state.encode(),
        )
        .expect("writes");
        mem.fail_next(FaultOp::Read, 1);
        assert!(
            matches!(state_of(disk.as_ref(), dir), Err(LogError::Disk(_))),
            "a read fault is an error, not a missing checkpoint"
        );
        assert_eq!(state_of(disk.as_ref(), dir).expect("reads"), Some(state));
        let len = disk.len(&dir.join(STATE_FILE)).expect("exists");
        mem.flip_bit_at(&dir.join(STATE_FILE), len - 1, 0)
            .expect("flips");
        assert_eq!(
            state_of(disk.as_ref(), dir).expect("reads"),
            None,
            "a corrupt checkpoint: the log's own open fails on it"
        );
    }
}
