//! `PartitionLog`: one partition's segmented log.
//!
//! # Runbook
//! - `open` recovers: leftovers of interrupted writes (`*.tmp`, `*.cleaned`) are deleted, sealed
//!   segments below the recovery point are trusted through their index files, and everything from
//!   the recovery point on is validated batch by batch (length, CRC-32C, records); a torn or
//!   corrupt tail is cut off, corruption below the recovery point refuses to open.
//! - Appends are volatile until `flush`, which syncs the data and moves the recovery point.
//! - `truncate_to`, `roll`, retention and compaction make their own changes durable before they
//!   return; they write checkpoints after the data change they describe (see `FORMAT.md`).
//! - After a `Disk` error from a mutating call the in-memory state may be ahead of or behind the
//!   disk: close the log and reopen it (recovery reconciles), as Kafka takes a log dir offline.
//!
//! Time is an input (`now_ms`); the log reads no clock.

use crate::batch::{self, BatchHeader, BatchView};
use crate::checkpoint::{self, Kind, LogState};
use crate::config::LogConfig;
use crate::disk::Disk;
use crate::epoch::EpochCache;
use crate::error::LogError;
use crate::ingress::{self, ProduceRules};
use crate::journal::JournalClock;
use crate::segment::{self, remove_if_exists, Segment};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wire::{LeaderEpoch, Offset};

/// The log state checkpoint (recovery point, log start offset, high watermark).
pub const STATE_FILE: &str = "log-state.checkpoint";
/// The leader epoch cache checkpoint.
pub const EPOCH_FILE: &str = "leader-epoch.checkpoint";
/// Segments one log may hold; beyond it appends still work but this is a configuration bug.
pub const SEGMENTS_MAX: usize = 1 << 20;

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Base offset of the first batch appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// The log end offset after the append.
    pub log_end_offset: Offset,
    /// Batches appended.
    pub batches: usize,
    /// Bytes appended.
    pub bytes: u64,
    /// Largest record timestamp appended.
    pub max_timestamp: i64,
}

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, CRC-verified, the first one containing the requested offset (it may start
    /// before it). Empty when the requested offset is the log end offset. Shared with the
    /// log's tail when the read is one batch of it (no copy).
    pub bytes: bytes::Bytes,
    /// The offset after the last returned batch (the next fetch offset).
    pub next_offset: Offset,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
    /// The log end offset at the time of the read.
    pub log_end_offset: Offset,
    /// The high watermark at the time of the read.
    pub high_watermark: Offset,
}

/// What `enforce_retention` deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Whole segments deleted.
    pub segments_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: Offset,
}

/// What recovery did at `open`, so tests and benchmarks can check its cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: usize,
    /// Segments whose files were scanned (no valid index, or at/after the recovery point).
    pub segments_scanned: usize,
    /// Bytes whose CRC was validated.
    pub bytes_validated: u64,
    /// Bytes cut off as a torn or corrupt tail.
    pub bytes_truncated: u64,
    /// Leftover files of interrupted operations removed.
    pub leftovers_removed: usize,
}

/// The journal records a log's replay still needs ([`PartitionLog::journal_need`]): those at or
/// above the journal floor its state on disk names, ending past the recovery point it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalNeed {
    /// The state on disk's journal floor: records below it are stale.
    floor: u64,
    /// The state on disk's recovery point: records ending at or below it are in the segments.
    persisted_recovery_point: Offset,
}

impl JournalNeed {
    /// Whether a replay needs the record `sequence` ending at `end`.
    pub fn needs(&self, sequence: u64, end: Offset) -> bool {
        sequence >= self.floor && end > self.persisted_recovery_point
    }
}

/// A partition's segmented log. See the module doc for the runbook.
#[derive(Debug)]
pub struct PartitionLog {
    /// Where every file lives; shared with other partitions.
    pub(crate) disk: Arc<dyn Disk>,
    /// The partition's directory on the disk.
    pub(crate) dir: PathBuf,
    /// Limits and policies.
    pub(crate) config: LogConfig,
    /// Segments by base offset; the last one is active. Never empty.
    pub(crate) segments: BTreeMap<Offset, Segment>,
    /// The first offset readers may ask for.
    pub(crate) log_start_offset: Offset,
    /// Everything below is durable in the segment files (synced) and validated.
    pub(crate) recovery_point: Offset,
    /// The broker's journal clock when flushes go to a journal ([`PartitionLog::open_journaled`]):
    /// its reading becomes the journal floor at every open and truncation.
    pub(crate) journal: Option<JournalClock>,
    /// See `LogState::journal_floor`: journal records of this log below it are stale.
    pub(crate) journal_floor: u64,
    /// The log end a journaled flush made durable (in the journal; the segment files catch up
    /// at the next checkpoint): at or above the recovery point only while it is ahead.
    pub(crate) journaled_end: Offset,
    /// The recovery point the state checkpoint on disk holds: journal records ending above it
    /// are still needed by a replay.
    pub(crate) persisted_recovery_point: Offset,
    /// The high watermark, as set by replication.
    pub(crate) high_watermark: Offset,
    /// Flushed bytes since the state checkpoint was last written.
    pub(crate) bytes_since_checkpoint: u64,
    /// The leader epoch cache.
    pub(crate) epochs: EpochCache,
    /// The epoch cache changed since it was last written.
    pub(crate) epochs_dirty: bool,
    /// What `open` found and did.
    pub(crate) recovery: RecoveryReport,
    /// Set by a disk error in a mutating call: memory and disk may disagree until reopen.
    pub(crate) poisoned: Option<String>,
    /// Grows with every truncation: a [`FlushPlan`] made before one no longer describes the log
    /// (its offsets may hold new, unsynced bytes) and finishes as a no-op.
    pub(crate) truncations: u64,
    /// Grows with every write of the state checkpoint and every [`CheckpointPlan`]: a plan is
    /// installed only if the state file was not written (nor another plan made) since.
    pub(crate) state_writes: u64,
    /// This log's identity, carried by its plans: a plan made by a log since closed (the
    /// partition failed and reopened, or was rebuilt) changes nothing in its successor.
    pub(crate) instance: Arc<()>,
    /// Grows whenever bytes already in the log may change or vanish (a truncation, a deleted
    /// segment, a compacted one): a [`ReadPlan`] made before is no longer current.
    pub(crate) rewrites: u64,
    /// The batches appended last, answering reads and journaled flushes of them from memory
    /// (`crate::tail`).
    pub(crate) tail: crate::tail::Tail,
    /// Reads go to the files even when the tail holds their batches (tests compare the two).
    pub(crate) tail_bypassed: bool,
}

/// A read split so no lock is held across its IO: [`PartitionLog::plan_read`] under the
/// owner's lock (where to read; batch headers may be read to find it), [`ReadPlan::run`] anywhere
/// (the batches read and verified), then [`PartitionLog::read_is_current`] under the lock
/// again: a read the log rewrote meanwhile (truncated, deleted, compacted) is made again.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    /// The log and its bytes when planned.
    version: LogVersion,
    /// The answer's offsets, with no bytes yet.
    result: ReadResult,
    /// What to read; `None` when nothing is (only compaction gaps up to the log end) or the
    /// log's tail answered.
    span: Option<Span>,
    /// The batches, when the log's tail held them (`crate::tail`): no file is read.
    tail: Option<crate::tail::TailRead>,
}

/// A log and the bytes it held at some moment ([`PartitionLog::version`]): appends leave it
/// the same; a truncation, a deleted segment or a compacted one change it, and so does another
/// log (the partition reopened).
#[derive(Clone, Debug)]
pub struct LogVersion {
    /// The log.
    instance: Arc<()>,
    /// Its [`PartitionLog::rewrites`] then.
    rewrites: u64,
}

/// Where a read's batches lie in one segment file, and how far it may go.
#[derive(Clone, Debug)]
struct Span {
    /// The segment file.
    file: PathBuf,
    /// The first batch's position and header.
    position: u64,
    first: BatchHeader,
    /// The segment's bytes from `position` on when planned.
    available: u64,
    /// The segment's batches follow each other without offset gaps.
    dense: bool,
    /// The offset after the segment's last batch when planned.
    segment_next_offset: Offset,
    /// About how many bytes to return (at least the first batch).
    bytes_max: usize,
    /// Only batches ending below this offset are returned.
    offset_bound: Offset,
    /// The epoch cache's entries over the span's offsets (the one covering its first batch
    /// first): each batch's leader epoch must be the one covering its base offset. The epoch
    /// is outside the CRC, and a flip there served to a follower made it refuse the batch for
    /// ever (seeds 250801, 277773, 278106).
    epochs: Vec<(LeaderEpoch, Offset)>,
}

impl ReadPlan {
    /// Whether the log's tail answers this read (no file is read). For tests.
    #[doc(hidden)]
    pub fn answered_by_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// Reads and verifies the planned batches (every CRC-32C checked; a bad batch is an error,
    /// never served), or copies them out of the log's tail, which holds only batches verified
    /// before they were appended (`crate::tail`). Runs without the log.
    pub fn run(&self, disk: &dyn Disk) -> Result<ReadResult, LogError> {
        let mut result = self.result.clone();
        let (bytes, next) = match (&self.tail, &self.span) {
            (Some(tail), _) if tail.is_empty() => return Ok(result),
            (Some(tail), _) => (tail.clone().into_bytes(), tail.next),
            (None, None) => return Ok(result),
            (None, Some(span)) => {
                let (bytes, next) = span.read(disk)?;
                (bytes::Bytes::from(bytes), next)
            }
        };
        if bytes.is_empty() {
            return Ok(result); // the batch holding `from` straddles the bound
        }
        assert!(next > result.next_offset, "a read makes progress");
        result.bytes = bytes;
        result.next_offset = next;
        Ok(result)
    }
}

impl Span {
    /// The span of `segment` from its batch at `position` (with header `first`).
    fn of(
        segment: &Segment,
        position: u64,
        first: BatchHeader,
        bytes_max: usize,
        offset_bound: Offset,
        epochs: Vec<(LeaderEpoch, Offset)>,
    ) -> Span {
        Span {
            file: segment.log_path.clone(),
            position,
            first,
            available: segment.size_bytes - position,
            dense: segment.dense,
            segment_next_offset: segment.next_offset,
            bytes_max,
            offset_bound,
            epochs,
        }
    }

    /// The leader epoch the span's epoch entries name for a batch at `base` (`None`: none
    /// covers it, nothing to check).
    fn epoch_at(&self, base: Offset) -> Option<LeaderEpoch> {
        self.epochs
            .iter()
            .rev()
            .find(|(_, start)| *start <= base)
            .map(|(epoch, _)| *epoch)
    }

    fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::CorruptBatch {
            file: self.file.display().to_string(),
            position,
            reason,
        }
    }

    /// The span's whole batches, cut at `bytes_max` (never before the first) and before the
    /// first batch reaching `offset_bound`; and the offset after them.
    fn read(&self, disk: &dyn Disk) -> Result<(Vec<u8>, Offset), LogError> {
        let (position, first) = (self.position, &self.first);
        let len = (self.bytes_max as u64)
            .max(first.total_bytes() as u64)
            .min(self.available);
        // Filled by the read, not zeroed first (`Disk::read_vec`).
        let len = usize::try_from(len).expect("a read fits in memory");
        let mut chunk = disk.read_vec(&self.file, position, len)?;
        if chunk.len() != len {
            return Err(self.corrupt(position, "short read".into()));
        }
        let mut end = 0usize;
        let mut next = first.base_offset;
        while end < chunk.len() {
            let at = position + end as u64;
            let view = match BatchView::new(&chunk[end..]) {
                Ok(view) => view,
                // The last batch did not fit the chunk: stop before it (never before the first).
                Err(_) if end > 0 && BatchHeader::parse(&chunk[end..]).is_ok() => break,
                Err(_) if end > 0 && chunk.len() - end < batch::HEADER_BYTES => break,
                Err(e) => return Err(self.corrupt(at, e.to_string())),
            };
            if !view.crc_is_valid() {
                return Err(self.corrupt(at, "CRC-32C mismatch".into()));
            }
            let base = view.header().base_offset;
            if base < next || (self.dense && base != next) {
                return Err(
                    self.corrupt(at, format!("expected offset {next}, the batch says {base}"))
                );
            }
            let epoch = view.header().partition_leader_epoch;
            if let Some(known) = self
                .epoch_at(base)
                .filter(|known| epoch.0 >= 0 && *known != epoch)
            {
                let reason =
                    format!("leader epoch {epoch} at offset {base}, the epoch cache says {known}");
                return Err(self.corrupt(at, reason));
            }
            // Checked after the CRC, so a damaged header never hides behind the bound.
            if view.header().last_offset() >= self.offset_bound {
                break;
            }
            if end > 0 && end + view.as_bytes().len() > self.bytes_max {
                break;
            }
            next = view.header().next_offset();
            end += view.as_bytes().len();
        }
        assert!(
            end > 0 || first.last_offset() >= self.offset_bound,
            "a read returns at least one batch unless the first straddles the bound"
        );
        if next > self.segment_next_offset
            || (self.dense && end as u64 == self.available && next != self.segment_next_offset)
        {
            let reason = format!(
                "batches end at {next}, the segment at {}",
                self.segment_next_offset
            );
            return Err(self.corrupt(position + end as u64, reason));
        }
        chunk.truncate(end);
        Ok((chunk, next))
    }
}

/// A state checkpoint split in three, so no lock is held across its IO:
/// [`PartitionLog::plan_checkpoint`] under the owner's lock (no IO), [`CheckpointPlan::write`]
/// anywhere (a file of its own written and synced), [`PartitionLog::install_checkpoint`] under
/// the lock again (the rename, the commit point, only if nothing wrote the state since the
/// plan), then [`CheckpointPlan::sync_dir`] anywhere (the rename made durable). A crash anywhere
/// leaves the old checkpoint or the new one; recovery needs neither to be recent.
#[derive(Debug)]
pub struct CheckpointPlan {
    /// The log that made it.
    instance: Arc<()>,
    /// The log's [`PartitionLog::state_writes`] once planned.
    state_writes: u64,
    /// The log's truncation count when planned.
    truncations: u64,
    /// What the file will hold.
    state: LogState,
    /// The flushed bytes the checkpoint accounts for.
    flushed: u64,
    /// Segments whose journaled bytes the recovery point counts on: synced before the state is
    /// written (base offset, file, bytes).
    syncs: Vec<(Offset, PathBuf, u64)>,
    /// The partition's directory.
    dir: PathBuf,
    /// The plan's own file until installed (a `.tmp` name: a leftover `open` removes).
    tmp: String,
}

impl CheckpointPlan {
    /// Syncs the segments the plan's recovery point counts on (a journaled log's), then writes
    /// and syncs the plan's file. Runs without the log (on an IO worker).
    pub fn write(&self, disk: &dyn Disk) -> Result<(), LogError> {
        for (_, path, _) in &self.syncs {
            disk.sync(path)?;
        }
        checkpoint::write_synced(
            disk,
            &self.dir,
            &self.tmp,
            Kind::LogState,
            &self.state.encode(),
        )
    }

    /// Makes an installed plan's rename durable. Runs without the log.
    pub fn sync_dir(&self, disk: &dyn Disk) -> Result<(), LogError> {
        disk.sync_dir(&self.dir)?;
        Ok(())
    }
}

/// A flush split in three so the fsyncs run while the log's owner goes on appending (group
/// commit): [`PartitionLog::plan_flush`] under the owner's lock, [`FlushPlan::sync`] anywhere,
/// [`PartitionLog::finish_flush`] under the lock again. Appends made while the plan syncs join
/// the next round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushPlan {
    /// The log that made it.
    instance: Arc<()>,
    /// The log's truncation count when planned.
    truncations: u64,
    /// Segments with bytes not yet durable: (base offset, file, size to be durable).
    files: Vec<(Offset, PathBuf, u64)>,
    /// Where each file's bytes not yet durable start (its synced or journaled size), in the
    /// order of `files`.
    from: Vec<u64>,
    /// The LEO when planned: durable once every file synced.
    up_to: Offset,
}

impl FlushPlan {
    /// Makes the planned files durable. Runs without the log (on an IO worker).
    pub fn sync(&self, disk: &dyn Disk) -> Result<(), crate::disk::DiskError> {
        for (_, path, _) in &self.files {
            disk.sync(path)?;
        }
        Ok(())
    }

    /// The offset below which the log is durable once the plan finished.
    pub fn up_to(&self) -> Offset {
        self.up_to
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// What a journal record must hold for the plan to be durable without syncing its files:
    /// each file's bytes not yet durable, read back (from the page cache, on real files). Runs
    /// under the log's owner's lock (the bytes must be the plan's), as
    /// [`crate::wal::SegmentWrite`]s of the log in `dir`.
    pub fn segment_writes(
        &self,
        disk: &dyn Disk,
        dir: &Path,
    ) -> Result<Vec<crate::wal::SegmentWrite>, crate::disk::DiskError> {
        self.files
            .iter()
            .zip(&self.from)
            .map(|((base, path, size), from)| {
                self.segment_write(disk, dir, *base, path, *size, *from)
            })
            .collect()
    }

    /// One file's bytes of [`FlushPlan::segment_writes`], read back.
    fn segment_write(
        &self,
        disk: &dyn Disk,
        dir: &Path,
        base: Offset,
        path: &Path,
        size: u64,
        from: u64,
    ) -> Result<crate::wal::SegmentWrite, crate::disk::DiskError> {
        let len = usize::try_from(size - from).expect("a segment fits in memory");
        let bytes = disk.read_vec(path, from, len)?;
        if bytes.len() != len {
            return Err(crate::disk::DiskError::Io {
                path: path.display().to_string(),
                reason: format!("read {} of {len} appended bytes", bytes.len()),
            });
        }
        Ok(crate::wal::SegmentWrite {
            dir: dir.to_path_buf(),
            segment_base: base,
            position: from,
            end_offset: self.up_to,
            bytes,
        })
    }
}

/// The state checkpoint in `dir` (all zero without one).
fn read_state(disk: &dyn Disk, dir: &Path) -> Result<LogState, LogError> {
    let name = dir.join(STATE_FILE).display().to_string();
    Ok(
        match checkpoint::read(disk, dir, STATE_FILE, Kind::LogState)? {
            Some(payload) => LogState::decode(&name, &payload)?,
            None => LogState {
                recovery_point: Offset::ZERO,
                log_start_offset: Offset::ZERO,
                high_watermark: Offset::ZERO,
                journal_floor: 0,
            },
        },
    )
}

impl PartitionLog {
    /// Opens (creating if missing) the log in `dir` and runs recovery.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        Self::open_flushed(disk, dir, config, now_ms, Offset::ZERO)
    }

    /// [`PartitionLog::open`] for a log whose owner knows it flushed up to `flushed` (the
    /// checkpoint's recovery point is written lazily and may lag): damage below `flushed` is
    /// corruption, never a torn tail, and a log ending below it lost flushed data.
    pub fn open_flushed(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        flushed: Offset,
    ) -> Result<Self, LogError> {
        Self::open_journaled(disk, dir, config, now_ms, flushed, None)
    }

    /// [`PartitionLog::open_flushed`] for a log whose flushes may go to its broker's journal
    /// (`journal`: the journal's clock): [`PartitionLog::finish_journaled_flush`] then counts
    /// journaled bytes as durable, state checkpoints sync the segment files first, and the
    /// journal floor written at open and at every truncation makes a replay skip records of
    /// bytes the log no longer holds (`crate::wal`). The journal must have been replayed
    /// before any log of the broker opens.
    pub fn open_journaled(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        flushed: Offset,
        journal: Option<JournalClock>,
    ) -> Result<Self, LogError> {
        config.validate();
        if !disk.exists(dir)? {
            disk.create_dir_all(dir)?;
            for ancestor in dir.ancestors().skip(1) {
                disk.sync_dir(ancestor)?;
            }
        }
        let mut log = PartitionLog {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: Offset::ZERO,
            recovery_point: Offset::ZERO,
            journal,
            journal_floor: 0,
            journaled_end: Offset::ZERO,
            persisted_recovery_point: Offset::ZERO,
            high_watermark: Offset::ZERO,
            bytes_since_checkpoint: 0,
            epochs: EpochCache::default(),
            epochs_dirty: false,
            recovery: RecoveryReport::default(),
            poisoned: None,
            truncations: 0,
            state_writes: 0,
            instance: Arc::new(()),
            rewrites: 0,
            tail: crate::tail::Tail::default(),
            tail_bypassed: false,
        };
        log.recover(now_ms, flushed)?;
        log.check_invariants();
        Ok(log)
    }

    /// The log start offset the state checkpoint in `dir` holds (zero without one), read
    /// without opening the log or changing anything: for a checker looking at a running
    /// replica's files, which keep batches below the start until their segment goes whole.
    pub fn peek_log_start(disk: &dyn Disk, dir: &Path) -> Result<Offset, LogError> {
        Ok(read_state(disk, dir)?.log_start_offset)
    }

    fn recover(&mut self, now_ms: i64, flushed: Offset) -> Result<(), LogError> {
        let bases = self.remove_leftovers()?;
        let state = read_state(&*self.disk, &self.dir)?;
        let epoch_name = self.dir.join(EPOCH_FILE).display().to_string();
        if let Some(payload) =
            checkpoint::read(&*self.disk, &self.dir, EPOCH_FILE, Kind::LeaderEpochs)?
        {
            self.epochs =
                EpochCache::from_entries(checkpoint::decode_epochs(&epoch_name, &payload)?);
        }
        if bases.is_empty() {
            self.create_segment(state.log_start_offset, now_ms)?;
        } else {
            self.recover_segments(&bases, state.recovery_point.max(flushed), now_ms)?;
        }
        let log_end = self.log_end_offset();
        if log_end < flushed {
            return Err(LogError::CorruptBelowRecoveryPoint {
                file: self.dir.display().to_string(),
                position: 0,
                recovery_point: flushed,
                reason: format!("the log ends at {log_end:?}, below what was flushed"),
            });
        }
        let first_base = *self
            .segments
            .keys()
            .next()
            .expect("recovery leaves a segment");
        self.log_start_offset = state.log_start_offset.max(first_base).min(log_end);
        self.delete_segments_below_start()?;
        let mut epochs_changed = self.epochs.truncate_from_end(log_end);
        epochs_changed |= self.epochs.truncate_from_start(self.log_start_offset);
        self.epochs_dirty |= epochs_changed;
        self.high_watermark = state.high_watermark.max(self.log_start_offset).min(log_end);
        // Recovery synced what it validated, so the whole log is now durable and validated,
        // and no journal record written before now is needed (nor describes it).
        self.recovery_point = log_end;
        self.journaled_end = log_end;
        // The floor is the clock's reading now, even below the one on disk: a journal opened
        // again continues at its last record's sequence, so sequences a process reserved for
        // records it never wrote come again (seed 178480: a floor kept from such a clock made
        // the next life's records look stale, and acknowledged records were skipped).
        self.journal_floor = match &self.journal {
            Some(clock) => clock.current(),
            None => state.journal_floor,
        };
        self.persist_epochs()?;
        self.write_state()?;
        Ok(())
    }

    /// Removes `*.tmp`, `*.cleaned` and orphan index files; returns the segment base offsets.
    fn remove_leftovers(&mut self) -> Result<Vec<Offset>, LogError> {
        let names = self.disk.list(&self.dir)?;
        let bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| segment::parse_log_name(n))
            .collect();
        let mut removed = 0;
        for name in &names {
            let orphan_index = [".index", ".timeindex"].iter().any(|ext| {
                name.strip_suffix(ext)
                    .and_then(|stem| segment::parse_log_name(&format!("{stem}.log")))
                    .is_some_and(|base| !bases.contains(&base))
            });
            if name.ends_with(".tmp") || name.ends_with(".cleaned") || orphan_index {
                self.disk.remove(&self.dir.join(name))?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.disk.sync_dir(&self.dir)?;
        }
        self.recovery.leftovers_removed = removed;
        self.recovery.segments = bases.len();
        assert!(
            bases.windows(2).all(|w| w[0] < w[1]),
            "list is sorted, names are zero padded"
        );
        Ok(bases)
    }

    fn recover_segments(
        &mut self,
        bases: &[Offset],
        recovery_point: Offset,
        now_ms: i64,
    ) -> Result<(), LogError> {
        for (i, &base) in bases.iter().enumerate() {
            let mut segment = Segment::new(&self.dir, base, now_ms, !self.config.compacted);
            let log_bytes = self.disk.len(&segment.log_path)?;
            let next_base = bases.get(i + 1).copied();
            if next_base.is_some_and(|next| next <= recovery_point) {
                if let Some((index, info)) = segment.load_sealed_index(&*self.disk, log_bytes)? {
                    segment.index = index;
                    segment.size_bytes = log_bytes;
                    segment.synced_bytes = log_bytes;
                    segment.next_offset = info.next_offset;
                    segment.max_timestamp = info.max_timestamp;
                    self.segments.insert(base, segment);
                    continue;
                }
            }
            let scan = segment.scan(
                &*self.disk,
                recovery_point,
                self.config.index_interval_bytes,
            )?;
            self.recovery.segments_scanned += 1;
            self.recovery.bytes_validated += scan.validated_bytes;
            segment.adopt(&scan);
            let damaged = scan.damage.is_some();
            if let Some(damage) = scan.damage {
                if damage.expected_offset < recovery_point {
                    return Err(LogError::CorruptBelowRecoveryPoint {
                        file: segment.log_name(),
                        position: damage.position,
                        recovery_point,
                        reason: damage.reason,
                    });
                }
                // Above the recovery point, which lags what was flushed (checkpoints are lazy),
                // a tear and a flip in flushed data look alike, but a crash tears only a file's
                // end: a bad batch with a valid one after it is corruption, and truncating it
                // as a tail would drop acknowledged records that the broker then calls intact
                // (seed 55602: elected from the ELR with them missing).
                if damage.valid_batch_follows {
                    buggify::probe!("log.recovery.corruption_before_valid_batches");
                    return Err(LogError::CorruptBeforeValidBatches {
                        file: segment.log_name(),
                        position: damage.position,
                        reason: damage.reason,
                    });
                }
                tracing::warn!(file = %segment.log_name(), position = damage.position,
                    reason = %damage.reason, "truncating a torn or corrupt log tail");
                buggify::probe!("log.recovery.torn_tail_truncated");
                self.disk.truncate(&segment.log_path, scan.valid_bytes)?;
                self.recovery.bytes_truncated += log_bytes - scan.valid_bytes;
                for &later in &bases[i + 1..] {
                    let doomed = Segment::new(&self.dir, later, now_ms, !self.config.compacted);
                    self.recovery.bytes_truncated += self.disk.len(&doomed.log_path)?;
                    remove_if_exists(&*self.disk, &doomed.log_path)?;
                    doomed.remove_index_files(&*self.disk)?;
                }
            }
            let is_last = damaged || next_base.is_none();
            if is_last {
                segment.remove_index_files(&*self.disk)?;
            } else {
                segment.write_index_files(&*self.disk, "")?;
            }
            // What recovery found becomes the durable truth: the file may hold unsynced changes
            // (a process restart, or a reopen after a failed sync) that a later power loss
            // would otherwise undo behind the new recovery point.
            self.disk.sync(&segment.log_path)?;
            segment.synced_bytes = segment.size_bytes;
            self.segments.insert(base, segment);
            if damaged {
                break;
            }
        }
        self.disk.sync_dir(&self.dir)?;
        self.rebuild_epochs_from_tail(recovery_point)?;
        Ok(())
    }

    /// Batches at or after the recovery point may carry epochs the checkpoint never saw (their
    /// flush did not happen); re-derive them as Kafka's recovery does.
    ///
    /// A batch's leader epoch lies outside its CRC, so the tail's epochs are judged first: they
    /// never drop along the log, and never below the epoch the cache names for their offset. A
    /// drop is corruption at the start of the run of higher epochs before it (a flip raised
    /// that run's first batch, or lowered this one): taken in, a raised epoch made the copy
    /// serve batches its followers refuse for ever, or fail on its next append (seed 266755).
    /// A raised epoch in the tail's last run is not told apart from a new leader's.
    fn rebuild_epochs_from_tail(&mut self, recovery_point: Offset) -> Result<(), LogError> {
        let mut found = Vec::new();
        // The current run of one epoch: the epoch, where its first batch lies (none: the
        // cache's epoch before the tail).
        let mut run: Option<(LeaderEpoch, Option<(String, u64)>)> = None;
        for segment in self
            .segments
            .values()
            .filter(|s| s.next_offset > recovery_point)
        {
            let start = segment.find(&*self.disk, recovery_point)?;
            let mut position = start.map_or(segment.size_bytes, |(p, _)| p);
            while let Some(header) = segment.header_at(&*self.disk, position)? {
                let epoch = header.partition_leader_epoch;
                if epoch.0 >= 0 {
                    if run.is_none() {
                        run = self
                            .epochs_over(header.base_offset, header.base_offset)
                            .first()
                            .map(|(known, _)| (*known, None));
                    }
                    match &run {
                        Some((higher, at)) if epoch < *higher => {
                            let (file, position) =
                                at.clone().unwrap_or((segment.log_name(), position));
                            return Err(LogError::CorruptBeforeValidBatches {
                                file,
                                position,
                                reason: format!(
                                    "leader epoch {epoch} at offset {} below the {higher} before it",
                                    header.base_offset
                                ),
                            });
                        }
                        Some((same, _)) if *same == epoch => {}
                        _ => run = Some((epoch, Some((segment.log_name(), position)))),
                    }
                    found.push((epoch, header.base_offset));
                }
                position += header.total_bytes() as u64;
            }
        }
        for (epoch, start) in found {
            if self
                .epochs
                .latest_epoch()
                .is_none_or(|latest| epoch > latest)
            {
                self.epochs_dirty |= self.epochs.assign(epoch, start);
            }
        }
        Ok(())
    }

    /// Deletes segments wholly below the log start offset (a crash between the checkpoint that
    /// moved the start and the deletion leaves them behind).
    fn delete_segments_below_start(&mut self) -> Result<(), LogError> {
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        let mut removed = false;
        for pair in bases.windows(2) {
            if pair[1] <= self.log_start_offset {
                self.rewrites += 1;
                let segment = self.segments.remove(&pair[0]).expect("listed key");
                remove_if_exists(&*self.disk, &segment.log_path)?;
                segment.remove_index_files(&*self.disk)?;
                removed = true;
            }
        }
        if removed {
            self.disk.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Creates an empty segment file at `base` and makes its entry durable.
    pub(crate) fn create_segment(&mut self, base: Offset, now_ms: i64) -> Result<(), LogError> {
        assert!(self.segments.len() < SEGMENTS_MAX, "segment count limit");
        assert!(
            self.segments
                .keys()
                .next_back()
                .is_none_or(|last| *last < base),
            "bases grow"
        );
        let segment = Segment::new(&self.dir, base, now_ms, !self.config.compacted);
        remove_if_exists(&*self.disk, &segment.log_path)?;
        self.disk.create(&segment.log_path)?;
        self.disk.sync_dir(&self.dir)?;
        self.segments.insert(base, segment);
        Ok(())
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// The first offset readers may ask for.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// Everything below is flushed: it survives a crash.
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }

    /// The high watermark (persisted lazily with the state checkpoint).
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration of the open log (a topic's configs changed): retention, segment
    /// size and age, compaction, batch limit and codec apply from the next append or
    /// housekeeping pass on. Turning compaction on makes every existing segment tolerate offset
    /// gaps, since the cleaner is about to make them.
    pub fn set_config(&mut self, config: LogConfig) {
        config.validate();
        if config.compacted && !self.config.compacted {
            for segment in self.segments.values_mut() {
                segment.dense = false;
            }
        }
        self.config = config;
        assert!(
            !self.config.compacted || self.segments.values().all(|s| !s.dense),
            "a compacted log's segments allow gaps"
        );
    }

    /// What recovery found and did when the log was opened.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// The number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offset of the active (newest) segment: it changes when the log rolls.
    pub fn active_segment_base(&self) -> Offset {
        self.active().base_offset
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.segments.keys().copied().collect()
    }

    /// Sets the high watermark (in memory; durable with the next state checkpoint).
    pub fn set_high_watermark(&mut self, offset: Offset) -> Result<(), LogError> {
        if offset > self.log_end_offset() || offset.0 < 0 {
            return Err(LogError::HighWatermarkOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        self.high_watermark = offset;
        assert!(
            self.high_watermark <= self.log_end_offset(),
            "HW never passes LEO"
        );
        // Every in-sync follower has the batches below the HW, and the journal or the file
        // keeps what is durable: the tail need not answer for them.
        self.tail
            .release_below(self.high_watermark.min(self.durable_end()));
        Ok(())
    }

    /// The newest leader epoch in the epoch cache.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest_epoch()
    }

    /// The leader epoch cache entries `(epoch, start offset)`, oldest first.
    pub fn epoch_entries(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.epochs.entries().to_vec()
    }

    /// Records that `epoch` starts at `start` (a new leader's first offset). Durable at the next
    /// flush; recovery re-derives it from the batches otherwise.
    pub fn assign_epoch_start(&mut self, epoch: LeaderEpoch, start: Offset) {
        assert!(
            start <= self.log_end_offset(),
            "an epoch starts at or before the LEO"
        );
        self.epochs_dirty |= self.epochs.assign(epoch, start);
    }

    /// OffsetsForLeaderEpoch (KIP-101/279): the largest epoch `<= epoch` and its end offset.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let answer = self
            .epochs
            .end_offset_for_epoch(epoch, self.log_end_offset());
        if let Some((_, end)) = answer {
            assert!(
                end <= self.log_end_offset(),
                "an epoch never ends past the LEO"
            );
        }
        answer
    }

    /// Writes the epoch cache if it changed.
    pub(crate) fn persist_epochs(&mut self) -> Result<(), LogError> {
        if self.epochs_dirty {
            let payload = checkpoint::encode_epochs(self.epochs.entries());
            checkpoint::write_atomic(
                &*self.disk,
                &self.dir,
                EPOCH_FILE,
                Kind::LeaderEpochs,
                &payload,
            )?;
            self.epochs_dirty = false;
        }
        Ok(())
    }

    /// Journal records written from now on are the ones a replay may apply: the next state
    /// write records it (at open and truncations, which write the state before they return).
    fn raise_journal_floor(&mut self) {
        if let Some(clock) = &self.journal {
            self.journal_floor = self.journal_floor.max(clock.current());
        }
    }

    /// What the state checkpoint holds, as of now.
    fn state_now(&self) -> LogState {
        let state = LogState {
            recovery_point: self.recovery_point,
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            journal_floor: self.journal_floor,
        };
        assert!(
            state.recovery_point <= self.log_end_offset(),
            "recovery point within the log"
        );
        state
    }

    /// Writes the state checkpoint (recovery point, log start offset, high watermark) now.
    fn write_state_unguarded(&mut self) -> Result<(), LogError> {
        let state = self.state_now();
        // Before the write: a plan made earlier must not be installed over this (even if this
        // write fails half way).
        self.state_writes += 1;
        checkpoint::write_atomic(
            &*self.disk,
            &self.dir,
            STATE_FILE,
            Kind::LogState,
            &state.encode(),
        )?;
        self.bytes_since_checkpoint = 0;
        self.persisted_recovery_point = state.recovery_point;
        Ok(())
    }

    /// Appends batches from a producer as the leader of `epoch`: validates and normalises them
    /// with the broker's ingress validator ([`crate::ingress::validate_produced`], the same
    /// function, so whatever the ingress accepted is accepted here), assigns base offsets from
    /// the LEO and the partition leader epoch, and appends them (volatile until `flush`).
    pub fn append_as_leader(
        &mut self,
        batch_bytes: &[u8],
        epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_leader_append(epoch)?;
        let mut bytes = batch_bytes.to_vec();
        ingress::validate_produced(&mut bytes, &self.produce_rules(now_ms))?;
        self.append_normalised_as_leader(&mut bytes, epoch, now_ms)
    }

    /// [`PartitionLog::append_as_leader`] for a payload the caller already passed through
    /// [`crate::ingress::validate_produced`] with `validated_with` (the broker's ingress, outside
    /// the partition's lock). When those are exactly the rules this log applies now (its
    /// configuration unchanged since, and no `LogAppendTime` stamp, which must carry the time of
    /// this append), the batches are appended as they are, their offsets and epoch written in
    /// place: no copy, no second CRC pass, no second walk over the records. Otherwise they are
    /// validated (and normalised, in place) again with the log's rules, as `append_as_leader`
    /// does. Either way the log stores only what `validate_produced` accepts under its rules.
    pub fn append_validated_as_leader(
        &mut self,
        payload: &mut Vec<u8>,
        validated_with: &ProduceRules,
        epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_leader_append(epoch)?;
        let rules = self.produce_rules(now_ms);
        if rules.log_append_time_ms.is_some() || *validated_with != rules {
            ingress::validate_produced(payload, &rules)?;
        }
        self.append_normalised_as_leader(payload, epoch, now_ms)
    }

    /// The rules a producer's payload is validated against here, stamping `now_ms` when the
    /// topic uses `LogAppendTime`.
    fn produce_rules(&self, now_ms: i64) -> ProduceRules {
        ProduceRules {
            batch_bytes_max: self.config.batch_bytes_max,
            compacted: self.config.compacted,
            log_append_time_ms: self.config.log_append_time.then_some(now_ms),
            codec_target: self.config.codec_target,
        }
    }

    /// A leader's append is refused on an unusable log and from an epoch older than the log's.
    fn check_leader_append(&self, epoch: LeaderEpoch) -> Result<(), LogError> {
        assert!(epoch.0 >= 0, "a leader has a real epoch: {epoch}");
        self.check_usable()?;
        if let Some(latest) = self.epochs.latest_epoch().filter(|latest| epoch < *latest) {
            return Err(LogError::StaleLeaderEpoch { epoch, latest });
        }
        Ok(())
    }

    /// Appends a validated, normalised producer payload as the leader of `epoch`: base offsets
    /// from the LEO and the epoch written into each batch (fields the CRC does not cover).
    fn append_normalised_as_leader(
        &mut self,
        bytes: &mut [u8],
        epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let spans = batch_spans(bytes);
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        for &(start, end) in &spans {
            batch::set_base_offset(&mut bytes[start..end], next);
            batch::set_partition_leader_epoch(&mut bytes[start..end], epoch);
            let header = BatchHeader::parse(&bytes[start..end])?;
            next = header.next_offset();
        }
        let info = self.write_batches(bytes, &spans, now_ms)?;
        self.epochs_dirty |= self.epochs.assign(epoch, first_offset);
        assert!(
            info.first_offset == first_offset,
            "the leader's batch starts at the old LEO"
        );
        Ok(info)
    }

    /// Appends batches replicated from the leader: offsets and epochs are the leader's. The first
    /// batch must start exactly at the LEO and batches must be contiguous (a compacted log
    /// allows gaps: the leader may have cleaned batches away).
    pub fn append_as_follower(
        &mut self,
        batch_bytes: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_replicated(batch_bytes, true, now_ms)
    }

    /// [`PartitionLog::append_as_follower`] for batches the caller verified already, each with
    /// [`BatchView::validate`] (the broker checks a leader's fetch answer as it arrives, before
    /// the follower core sees it), so their CRC is not computed a second time here. Their framing,
    /// offsets and order are still checked.
    pub fn append_verified_as_follower(
        &mut self,
        batch_bytes: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_replicated(batch_bytes, false, now_ms)
    }

    /// A follower's append; `verify`: check each batch's CRC and records first.
    fn append_replicated(
        &mut self,
        batch_bytes: &[u8],
        verify: bool,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_usable()?;
        let spans = self.validate_batches(batch_bytes, verify)?;
        let mut expected = self.log_end_offset();
        let mut epochs = Vec::new();
        for &(start, end) in &spans {
            let header = BatchHeader::parse(&batch_bytes[start..end])?;
            let gap_allowed = self.config.compacted;
            let in_order =
                header.base_offset == expected || (gap_allowed && header.base_offset > expected);
            if !in_order {
                return Err(LogError::NonMonotonicOffset {
                    expected,
                    got: header.base_offset,
                });
            }
            if header.partition_leader_epoch.0 >= 0 {
                epochs.push((header.partition_leader_epoch, header.base_offset));
            }
            expected = header.next_offset();
        }
        let info = self.write_batches(batch_bytes, &spans, now_ms)?;
        for (epoch, start) in epochs {
            if self
                .epochs
                .latest_epoch()
                .is_none_or(|latest| epoch > latest)
            {
                self.epochs_dirty |= self.epochs.assign(epoch, start);
            }
        }
        Ok(info)
    }

    /// Splits and validates concatenated replicated batches (CRC, uncompressed records; a
    /// compressed batch's records were decompressed and checked by the leader's ingress, its CRC
    /// covers them: [`BatchView::validate`]); returns their byte spans. The topic's `max.message.bytes` is not applied: the leader accepted them, and a
    /// follower refusing what its leader holds could never catch up (Kafka does the same).
    /// With `verify` false the caller validated each batch already: only the framing is split.
    fn validate_batches(
        &self,
        bytes: &[u8],
        verify: bool,
    ) -> Result<Vec<(usize, usize)>, LogError> {
        let mut spans = Vec::new();
        let mut position = 0;
        for view in batch::split_batches(bytes) {
            let view = view?;
            let total = view.as_bytes().len();
            if verify {
                view.validate()?;
            }
            spans.push((position, position + total));
            position += total;
        }
        if spans.is_empty() {
            return Err(LogError::InvalidBatch("no batch to append".into()));
        }
        assert!(
            position == bytes.len(),
            "split_batches covers the input or fails"
        );
        Ok(spans)
    }

    /// Rolls if needed, writes the batches to the active segment in one append, indexes them.
    fn write_batches(
        &mut self,
        bytes: &[u8],
        spans: &[(usize, usize)],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let headers: Vec<BatchHeader> = spans
            .iter()
            .map(|&(start, end)| BatchHeader::parse(&bytes[start..end]))
            .collect::<Result<_, _>>()?;
        let first = headers.first().expect("validated non-empty");
        let last = headers.last().expect("validated non-empty");
        assert!(
            first.base_offset >= self.log_end_offset(),
            "appends never go backwards"
        );
        let rolled = self.maybe_roll(
            bytes.len() as u64,
            first.base_offset,
            last.last_offset(),
            now_ms,
        );
        if let Err(LogError::Disk(error)) = &rolled {
            self.poisoned = Some(error.to_string());
        }
        rolled?;
        let interval = self.config.index_interval_bytes;
        let disk = Arc::clone(&self.disk);
        let active = self.active_mut();
        if !active.has_offset_room(last.last_offset()) {
            return Err(LogError::InvalidBatch(
                "offsets too far past the segment base".into(),
            ));
        }
        // The segment's length is known (`size_bytes`): a positioned write, not an append that
        // asks the file system for the length first (an fstat per append on real files).
        let at = active.size_bytes;
        match disk.write_at(&active.log_path, at, bytes) {
            Ok(()) => {}
            Err(e) => {
                // Take back a partial write so the file stays whole batches; if even that
                // fails, the file and memory disagree until reopen.
                buggify::probe!("log.append.write_failed");
                let undone = disk.truncate(&active.log_path, active.size_bytes);
                if let Err(undo) = undone {
                    self.poisoned = Some(undo.to_string());
                }
                return Err(e.into());
            }
        }
        for (header, &(start, _)) in headers.iter().zip(spans) {
            active.account_batch(header, at + start as u64, interval);
        }
        active.modified_ms = active.modified_ms.max(now_ms);
        let (segment_base, log_end_offset) = (active.base_offset, active.next_offset);
        self.tail
            .appended(self.rewrites, segment_base, at, bytes, &headers, spans);
        self.tail.keep_at_most(self.config.tail_bytes_max);
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_end_offset,
            batches: headers.len(),
            bytes: bytes.len() as u64,
            max_timestamp: headers
                .iter()
                .map(|h| h.max_timestamp)
                .max()
                .expect("non-empty"),
        })
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        first: Offset,
        last: Offset,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = self.active();
        if active.size_bytes == 0 {
            if active.base_offset < first && !active.has_offset_room(last) {
                // An empty segment far below a (compacted) follower's jump: restart it there.
                let base = active.base_offset;
                self.rewrites += 1;
                let segment = self.segments.remove(&base).expect("active exists");
                remove_if_exists(&*self.disk, &segment.log_path)?;
                self.create_segment(first, now_ms)?;
            }
            return Ok(());
        }
        let too_big = active.size_bytes + incoming_bytes > self.config.segment_bytes_max;
        let too_old = now_ms - active.created_ms >= self.config.segment_age_ms_max;
        // BUGGIFY: an early roll (small segments: rolls, index files and multi-segment reads).
        let early = buggify::fire("log.segment.roll.early");
        if too_big || too_old || early || !active.has_offset_room(last) {
            self.roll_at(first, now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment (if it holds data) and starts a new one at the LEO. Syncs the
    /// sealed segment and writes its index files and the state checkpoint.
    fn roll_unguarded(&mut self, now_ms: i64) -> Result<bool, LogError> {
        if self.active().size_bytes == 0 {
            return Ok(false);
        }
        self.roll_at(self.log_end_offset(), now_ms)?;
        Ok(true)
    }

    fn roll_at(&mut self, base: Offset, now_ms: i64) -> Result<(), LogError> {
        assert!(
            base >= self.log_end_offset(),
            "a new segment starts at or after the LEO"
        );
        self.flush_files()?;
        self.active().write_index_files(&*self.disk, "")?;
        self.create_segment(base, now_ms)?;
        self.recovery_point = self.log_end_offset().min(base);
        self.write_state()
    }

    /// Syncs unsynced segment data and the epoch cache; returns bytes synced. The split flush's
    /// three steps run back to back, so there is one flush mechanism.
    fn flush_files(&mut self) -> Result<u64, LogError> {
        // Journaled bytes too: whoever calls this (a roll, `flush`, `close`) writes a recovery
        // point that counts on the segment files alone.
        let plan = self.plan_sync(true)?;
        plan.sync(&*self.disk)?;
        self.record_flush(&plan)
    }

    /// Records what a synced plan made durable (no truncation since it was made): segments'
    /// synced bytes, the epoch cache, the recovery point, the bytes towards the next checkpoint.
    /// Returns the bytes newly counted durable.
    fn record_flush(&mut self, plan: &FlushPlan) -> Result<u64, LogError> {
        self.record_plan(plan, false)
    }

    /// [`PartitionLog::record_flush`] for a plan made durable either in place or, with
    /// `journaled`, in the broker's journal (then the journaled sizes and end move instead of
    /// the synced ones and the recovery point).
    fn record_plan(&mut self, plan: &FlushPlan, journaled: bool) -> Result<u64, LogError> {
        assert_eq!(
            plan.truncations, self.truncations,
            "no truncation since the plan"
        );
        let mut flushed = 0;
        for (base, path, size) in &plan.files {
            // A segment rolled since is synced by the roll; one compacted since was sealed
            // (synced) before: `max` keeps what they know.
            if let Some(segment) = self.segments.get_mut(base).filter(|s| &s.log_path == path) {
                let before = if journaled {
                    segment.durable_bytes()
                } else {
                    segment.synced_bytes
                };
                let durable = (*size).min(segment.size_bytes).max(before);
                flushed += durable - before;
                if journaled {
                    segment.journaled_bytes = durable;
                } else {
                    segment.synced_bytes = durable;
                }
            }
        }
        self.persist_epochs()?;
        assert!(
            plan.up_to <= self.log_end_offset(),
            "the plan is within the log"
        );
        if journaled {
            self.journaled_end = self.journaled_end.max(plan.up_to);
        } else {
            self.recovery_point = self.recovery_point.max(plan.up_to);
        }
        self.bytes_since_checkpoint += flushed;
        Ok(flushed)
    }

    /// Makes everything appended durable; returns the new recovery point (the durable LEO). The
    /// state checkpoint is rewritten once `checkpoint_interval_bytes` were flushed since the last.
    fn flush_unguarded(&mut self) -> Result<Offset, LogError> {
        let flushed = self.flush_files()?;
        if flushed > 0 && self.checkpoint_due() {
            self.write_state()?;
        }
        assert!(
            self.recovery_point == self.log_end_offset(),
            "flush makes the whole log durable"
        );
        Ok(self.recovery_point)
    }

    /// Flushes, writes every checkpoint and closes the log.
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush()?;
        self.write_state()
    }

    /// Reads whole batches starting with the one containing `from`, up to `bytes_max` bytes but
    /// at least one batch. CRC-32C is re-verified for batches read from the files (a bad batch
    /// is an error, never served); the log's tail answers for its batches without a file read.
    pub fn read(&self, from: Offset, bytes_max: usize) -> Result<ReadResult, LogError> {
        self.read_bounded(from, bytes_max, self.log_end_offset())
    }

    /// `read`, returning only whole batches that end below `offset_bound` (e.g. the high
    /// watermark, for consumers). A batch straddling the bound is not returned: the result is then
    /// empty with `next_offset == from`.
    pub fn read_bounded(
        &self,
        from: Offset,
        bytes_max: usize,
        offset_bound: Offset,
    ) -> Result<ReadResult, LogError> {
        self.plan_read_bounded(from, bytes_max, offset_bound)?
            .run(&*self.disk)
    }

    /// The first step of a [`ReadPlan`]: [`PartitionLog::read`] up to finding where to read
    /// (the segment and the position of the batch holding `from`, which may read batch headers
    /// from the segment file), without reading the batches themselves.
    pub fn plan_read(&self, from: Offset, bytes_max: usize) -> Result<ReadPlan, LogError> {
        self.plan_read_bounded(from, bytes_max, self.log_end_offset())
    }

    /// [`PartitionLog::plan_read`] for [`PartitionLog::read_bounded`].
    pub fn plan_read_bounded(
        &self,
        from: Offset,
        bytes_max: usize,
        offset_bound: Offset,
    ) -> Result<ReadPlan, LogError> {
        self.check_usable()?;
        let log_end = self.log_end_offset();
        if from < self.log_start_offset || from > log_end {
            if from < self.log_start_offset {
                buggify::probe!("log.read.below_log_start");
            }
            return Err(LogError::OffsetOutOfRange {
                requested: from,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let mut plan = ReadPlan {
            version: self.version(),
            result: ReadResult {
                bytes: bytes::Bytes::new(),
                next_offset: from,
                log_start_offset: self.log_start_offset,
                log_end_offset: log_end,
                high_watermark: self.high_watermark,
            },
            span: None,
            tail: None,
        };
        if let Some(read) = self
            .tail
            .read(self.rewrites, from, bytes_max, offset_bound)
            .filter(|_| !self.tail_bypassed)
        {
            plan.tail = Some(read);
            return Ok(plan);
        }
        let first_base = *self
            .segments
            .range(..=from)
            .next_back()
            .expect("from >= first base")
            .0;
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            if let Some((position, header)) = segment.find(&*self.disk, from)? {
                let epochs = self.epochs_over(header.base_offset, segment.next_offset);
                plan.span = Some(Span::of(
                    segment,
                    position,
                    header,
                    bytes_max,
                    offset_bound,
                    epochs,
                ));
                return Ok(plan);
            }
        }
        // Only compaction gaps lie between `from` and the end of the log.
        plan.result.next_offset = log_end.min(offset_bound).max(from);
        Ok(plan)
    }

    /// The epoch cache's entries over offsets `from..to`: the one covering `from` and those
    /// starting before `to`.
    fn epochs_over(&self, from: Offset, to: Offset) -> Vec<(LeaderEpoch, Offset)> {
        let entries = self.epochs.entries();
        let first = entries
            .partition_point(|(_, start)| *start <= from)
            .saturating_sub(1);
        entries[first..]
            .iter()
            .take_while(|(_, start)| *start < to)
            .copied()
            .collect()
    }

    /// Whether a [`ReadPlan`]'s bytes are still this log's: no truncation, deleted segment or
    /// compacted segment since it was planned (appends change no byte it reads), and made by
    /// this log. A plan that is not current may have read bytes replaced meanwhile, or failed on
    /// a file deleted under it: its read is to be made again.
    pub fn read_is_current(&self, plan: &ReadPlan) -> bool {
        self.is_version(&plan.version)
    }

    /// This log and its bytes now, to tell later whether anything read since still is what
    /// was there ([`PartitionLog::is_version`]).
    pub fn version(&self) -> LogVersion {
        LogVersion {
            instance: Arc::clone(&self.instance),
            rewrites: self.rewrites,
        }
    }

    /// Whether this is the log of `version` and no byte it held then changed or vanished.
    pub fn is_version(&self, version: &LogVersion) -> bool {
        version.rewrites == self.rewrites && Arc::ptr_eq(&version.instance, &self.instance)
    }

    /// The largest record timestamp in the log (ListOffsets' max-timestamp, KIP-734), `None`
    /// while no record carries one. Segments keep it, so this reads no file.
    pub fn max_timestamp(&self) -> Option<i64> {
        let max = self.segments.values().map(|s| s.max_timestamp).max()?;
        (max >= 0).then_some(max)
    }

    /// The first offset whose record timestamp is `>= timestamp` (ListOffsets) with that
    /// record's timestamp, `None` if every record is older. Kafka's -1 (latest) and -2
    /// (earliest) are answered too, with timestamp -1.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>, LogError> {
        self.check_usable()?;
        match timestamp {
            -1 => return Ok(Some((self.log_end_offset(), -1))),
            -2 => return Ok(Some((self.log_start_offset, -1))),
            _ => {}
        }
        for segment in self
            .segments
            .values()
            .filter(|s| s.max_timestamp >= timestamp)
        {
            let relative = segment.index.lookup_time(timestamp);
            let start = segment
                .base_offset
                .add(relative as i64)
                .max(self.log_start_offset);
            let Some((mut position, _)) = segment.find(&*self.disk, start)? else {
                continue;
            };
            while let Some(header) = segment.header_at(&*self.disk, position)? {
                if header.max_timestamp >= timestamp {
                    let bytes =
                        Span::of(segment, position, header, 0, Offset(i64::MAX), Vec::new())
                            .read(&*self.disk)?
                            .0;
                    let view = BatchView::new(&bytes)?;
                    let decoded = view
                        .decode()
                        .map_err(|e| segment.corrupt(position, e.to_string()))?;
                    for record in decoded.iter() {
                        let record =
                            record.map_err(|e| segment.corrupt(position, e.to_string()))?;
                        if record.timestamp >= timestamp && record.offset >= self.log_start_offset {
                            return Ok(Some((record.offset, record.timestamp)));
                        }
                    }
                }
                position += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// Removes everything at and after `offset` (a follower's divergent suffix). The log ends at
    /// a batch boundary at or below `offset`. Durable on return.
    fn truncate_to_unguarded(&mut self, offset: Offset) -> Result<(), LogError> {
        self.truncations += 1;
        self.rewrites += 1;
        if offset >= self.log_end_offset() {
            // No record goes, but an epoch started at the LEO without records (a leader that
            // never wrote) does: a follower must not keep naming it.
            let log_end = self.log_end_offset();
            self.epochs_dirty |= self.epochs.truncate_from_end(log_end);
            return self.persist_epochs();
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let keep = *self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= first base")
            .0;
        let doomed: Vec<Offset> = self
            .segments
            .range(keep..)
            .skip(1)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            let segment = self.segments.remove(&base).expect("listed key");
            remove_if_exists(&*self.disk, &segment.log_path)?;
            segment.remove_index_files(&*self.disk)?;
        }
        let disk = Arc::clone(&self.disk);
        let interval = self.config.index_interval_bytes;
        let segment = self.segments.get_mut(&keep).expect("kept segment exists");
        let cut = segment
            .find(&*disk, offset)?
            .map_or(segment.size_bytes, |(position, _)| position);
        disk.truncate(&segment.log_path, cut)?;
        disk.sync(&segment.log_path)?;
        segment.remove_index_files(&*disk)?;
        disk.sync_dir(&self.dir)?;
        let scan = segment.scan(&*disk, Offset(i64::MAX), interval)?;
        if let Some(damage) = &scan.damage {
            // A bit flipped at rest where no CRC looks (a batch's base offset) in the kept
            // prefix: the disk's fault, not a broken invariant (the storage campaign's seed 445
            // panicked here). The guard poisons the log; reopening verifies it.
            let reason = format!("kept prefix after truncation: {}", damage.reason);
            return Err(segment.corrupt(damage.position, reason));
        }
        assert_eq!(
            scan.valid_bytes, cut,
            "an undamaged scan reads the whole kept prefix"
        );
        segment.adopt(&scan);
        segment.synced_bytes = segment.size_bytes;
        segment.journaled_bytes = segment.size_bytes;
        let log_end = self.log_end_offset();
        assert!(log_end <= offset, "truncation removes the offset");
        self.epochs_dirty |= self.epochs.truncate_from_end(log_end);
        self.persist_epochs()?;
        self.recovery_point = self.recovery_point.min(log_end);
        self.journaled_end = self.journaled_end.min(log_end);
        self.high_watermark = self.high_watermark.min(log_end);
        self.raise_journal_floor();
        self.write_state()?;
        self.check_invariants();
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower far behind the
    /// leader's log start). Durable on return.
    fn truncate_fully_and_start_at_unguarded(&mut self, offset: Offset) -> Result<(), LogError> {
        assert!(offset.0 >= 0, "offsets are non-negative");
        self.truncations += 1;
        self.rewrites += 1;
        let now_ms = self.active().created_ms;
        for (_, segment) in std::mem::take(&mut self.segments) {
            remove_if_exists(&*self.disk, &segment.log_path)?;
            segment.remove_index_files(&*self.disk)?;
        }
        self.create_segment(offset, now_ms)?;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.journaled_end = offset;
        self.high_watermark = offset;
        self.epochs = EpochCache::default();
        self.epochs_dirty = true;
        self.persist_epochs()?;
        self.raise_journal_floor();
        self.write_state()?;
        assert!(
            self.log_end_offset() == offset,
            "the new log starts empty at offset"
        );
        self.check_invariants();
        Ok(())
    }

    fn advance_log_start_unguarded(&mut self, offset: Offset) -> Result<usize, LogError> {
        if offset > self.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.high_watermark,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(0);
        }
        self.log_start_offset = offset;
        self.epochs_dirty |= self.epochs.truncate_from_start(offset);
        self.persist_epochs()?;
        self.write_state()?;
        let before = self.segments.len();
        self.delete_segments_below_start()?;
        let deleted = before - self.segments.len();
        assert!(self.log_start_offset == offset && offset <= self.high_watermark);
        self.check_invariants();
        Ok(deleted)
    }

    /// Deletes whole non-active segments older than `retention_ms` or beyond `retention_bytes`,
    /// oldest first, never past the high watermark; advances the log start offset.
    fn enforce_retention_unguarded(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        let mut remaining = self.size_bytes();
        let mut doomed = Vec::new();
        for pair in bases.windows(2) {
            let segment = &self.segments[&pair[0]];
            if pair[1] > self.high_watermark {
                break;
            }
            // Records without timestamps (-1, e.g. librdkafka's C++ API) are as old as the
            // segment's last append, not as old as the epoch (which deleted them at once).
            let newest = if segment.max_timestamp >= 0 {
                segment.max_timestamp
            } else {
                segment.modified_ms
            };
            let by_time = self
                .config
                .retention_ms
                .is_some_and(|r| newest < now_ms.saturating_sub(r));
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|r| remaining - segment.size_bytes >= r);
            if !(by_time || by_size) {
                break;
            }
            remaining -= segment.size_bytes;
            doomed.push((pair[0], pair[1]));
        }
        let Some(&(_, new_start)) = doomed.last() else {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset,
                ..Default::default()
            });
        };
        buggify::probe!("log.retention.deleted_segments");
        // The new start is durable first: a crash before the deletions finishes them at open.
        self.log_start_offset = self.log_start_offset.max(new_start);
        self.epochs_dirty |= self.epochs.truncate_from_start(self.log_start_offset);
        self.persist_epochs()?;
        self.write_state()?;
        let mut outcome = RetentionOutcome {
            log_start_offset: self.log_start_offset,
            ..Default::default()
        };
        for (base, _) in doomed {
            self.rewrites += 1;
            let segment = self.segments.remove(&base).expect("listed key");
            remove_if_exists(&*self.disk, &segment.log_path)?;
            segment.remove_index_files(&*self.disk)?;
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += segment.size_bytes;
        }
        self.disk.sync_dir(&self.dir)?;
        self.check_invariants();
        Ok(outcome)
    }

    /// Fails with `Poisoned` once a disk error left memory and disk possibly apart.
    fn check_usable(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(reason) => Err(LogError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Runs a mutating step; a disk error poisons the log until it is reopened (an fsync that
    /// failed once cannot be trusted when retried: "fsyncgate").
    pub(crate) fn guarded<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        self.check_usable()?;
        let result = step(self);
        if let Err(LogError::Disk(error)) = &result {
            tracing::error!(dir = %self.dir.display(), %error, "disk error: the log must be reopened");
            self.poisoned = Some(error.to_string());
        }
        result
    }

    /// Whether a disk error poisoned the log (reopen it to recover).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Seals the active segment (if it holds data) and starts a new one at the LEO. Syncs the
    /// sealed segment and writes its index files and the state checkpoint. Returns whether it
    /// rolled.
    pub fn roll(&mut self, now_ms: i64) -> Result<bool, LogError> {
        self.guarded(|log| log.roll_unguarded(now_ms))
    }

    /// [`PartitionLog::roll`] once the active segment is `segment_age_ms_max` old (Kafka's
    /// `segment.ms`), for periodic housekeeping; size rolls happen on append.
    pub fn roll_if_due(&mut self, now_ms: i64) -> Result<bool, LogError> {
        let due = now_ms - self.active().created_ms >= self.config.segment_age_ms_max;
        if !due {
            return Ok(false);
        }
        self.roll(now_ms)
    }

    /// Makes everything appended durable; returns the new recovery point (the durable LEO). The
    /// state checkpoint is rewritten once `checkpoint_interval_bytes` were flushed since the last.
    pub fn flush(&mut self) -> Result<Offset, LogError> {
        self.guarded(|log| log.flush_unguarded())
    }

    /// The first third of a split flush: which files to sync for everything appended so far.
    /// Cheap (no IO); the syncs happen in [`FlushPlan::sync`], off the owner's lock.
    pub fn plan_flush(&self) -> Result<FlushPlan, LogError> {
        self.plan_sync(false)
    }

    /// A plan of the bytes not yet durable, or (`journaled_too`) not yet synced in place.
    fn plan_sync(&self, journaled_too: bool) -> Result<FlushPlan, LogError> {
        self.check_usable()?;
        let durable = |s: &Segment| {
            if journaled_too {
                s.synced_bytes
            } else {
                s.durable_bytes()
            }
        };
        let (files, from) = self
            .segments
            .iter()
            .filter(|(_, s)| durable(s) < s.size_bytes)
            .map(|(base, s)| ((*base, s.log_path.clone(), s.size_bytes), durable(s)))
            .unzip();
        Ok(FlushPlan {
            instance: Arc::clone(&self.instance),
            truncations: self.truncations,
            files,
            from,
            up_to: self.log_end_offset(),
        })
    }

    /// The disk the log lives on, for a [`FlushPlan::sync`] off the owner's lock.
    pub fn disk(&self) -> Arc<dyn Disk> {
        Arc::clone(&self.disk)
    }

    /// The last third of a split flush: records what `synced` made durable and returns the
    /// recovery point (the durable LEO), which may still be below the current LEO (appends made
    /// during the sync). A plan older than a truncation changes nothing (the truncation was
    /// durable itself, and the plan's offsets may hold new bytes), nor does another log's (one
    /// closed since, whose files a rebuild may have replaced). A failed sync poisons the log.
    /// The state checkpoint is not written here: see [`PartitionLog::checkpoint_due`].
    pub fn finish_flush(
        &mut self,
        plan: FlushPlan,
        synced: Result<(), crate::disk::DiskError>,
    ) -> Result<Offset, LogError> {
        self.guarded(|log| {
            if plan.truncations != log.truncations || !Arc::ptr_eq(&plan.instance, &log.instance) {
                return Ok(log.recovery_point);
            }
            synced?;
            log.record_flush(&plan)?;
            Ok(log.recovery_point)
        })
    }

    /// [`PartitionLog::finish_flush`] for a plan whose bytes went to the broker's journal
    /// ([`FlushPlan::segment_writes`]) instead of being synced in place (`journaled`: the
    /// journal's sync): they count as durable — the returned end, which the replication core
    /// may acknowledge — and the segment files are synced by the next state checkpoint, whose
    /// recovery point counts on them. Only a log opened with a journal may.
    pub fn finish_journaled_flush(
        &mut self,
        plan: FlushPlan,
        journaled: Result<(), LogError>,
    ) -> Result<Offset, LogError> {
        assert!(self.journal.is_some(), "a journaled flush needs a journal");
        self.guarded(|log| {
            if plan.truncations != log.truncations || !Arc::ptr_eq(&plan.instance, &log.instance) {
                return Ok(log.durable_end());
            }
            journaled?;
            log.record_plan(&plan, true)?;
            Ok(log.durable_end())
        })
    }

    /// Everything below is durable: synced in the segment files or in the broker's journal.
    pub fn durable_end(&self) -> Offset {
        self.recovery_point.max(self.journaled_end)
    }

    /// Sends reads to the files even when the tail holds their batches (`bypassed`), so a test
    /// can compare both answers. For tests.
    #[doc(hidden)]
    pub fn bypass_tail(&mut self, bypassed: bool) {
        self.tail_bypassed = bypassed;
    }

    /// [`FlushPlan::segment_writes`] for a plan this log just made (under the same lock): the
    /// bytes come from the log's tail (`crate::tail`) when it holds exactly them, else from the
    /// files.
    pub fn segment_writes(
        &self,
        plan: &FlushPlan,
        dir: &Path,
    ) -> Result<Vec<crate::wal::SegmentWrite>, crate::disk::DiskError> {
        if plan.truncations != self.truncations || !Arc::ptr_eq(&plan.instance, &self.instance) {
            return plan.segment_writes(&*self.disk, dir);
        }
        plan.files
            .iter()
            .zip(&plan.from)
            .map(|((base, path, size), from)| {
                match self.tail.bytes_between(self.rewrites, *base, *from, *size) {
                    Some(bytes) => Ok(crate::wal::SegmentWrite {
                        dir: dir.to_path_buf(),
                        segment_base: *base,
                        position: *from,
                        end_offset: plan.up_to,
                        bytes,
                    }),
                    None => plan.segment_write(&*self.disk, dir, *base, path, *size, *from),
                }
            })
            .collect()
    }

    /// Whether a replay still needs the journal record `sequence` of this log that ends at
    /// `end` (the state on disk neither raised the floor past it nor put its recovery point at
    /// or past its end): the journal's writer keeps the file holding it until it does not.
    pub fn needs_journal_record(&self, sequence: u64, end: Offset) -> bool {
        self.journal_need().needs(sequence, end)
    }

    /// Which journal records a replay still needs, as a value the owner keeps once the log is
    /// gone: a failed log's records are needed until its repair writes them back.
    pub fn journal_need(&self) -> JournalNeed {
        JournalNeed {
            floor: self.journal_floor,
            persisted_recovery_point: self.persisted_recovery_point,
        }
    }

    /// Whether enough was flushed since the state checkpoint to write it again
    /// (`checkpoint_interval_bytes`). The owner writes it after reporting the flush, off the
    /// acknowledgement path.
    pub fn checkpoint_due(&self) -> bool {
        // BUGGIFY: an early checkpoint (the recovery point and HW are written more often).
        self.bytes_since_checkpoint > 0
            && (self.bytes_since_checkpoint >= self.config.checkpoint_interval_bytes
                || buggify::fire("log.checkpoint.early"))
    }

    /// Writes the state checkpoint (recovery point, log start offset, high watermark) now.
    pub fn write_state(&mut self) -> Result<(), LogError> {
        self.guarded(|log| log.write_state_unguarded())
    }

    /// The first step of a [`CheckpointPlan`]: the state as it is now, to be written off the
    /// owner's lock. No IO. Any plan made before this one becomes stale.
    pub fn plan_checkpoint(&mut self) -> Result<CheckpointPlan, LogError> {
        self.check_usable()?;
        self.state_writes += 1;
        let mut state = self.state_now();
        // The journaled bytes become the segments' own before the recovery point counts them.
        let syncs: Vec<(Offset, PathBuf, u64)> = self
            .segments
            .iter()
            .filter(|(_, s)| s.synced_bytes < s.journaled_bytes)
            .map(|(base, s)| (*base, s.log_path.clone(), s.journaled_bytes))
            .collect();
        state.recovery_point = self.durable_end();
        Ok(CheckpointPlan {
            instance: Arc::clone(&self.instance),
            state_writes: self.state_writes,
            truncations: self.truncations,
            state,
            syncs,
            flushed: self.bytes_since_checkpoint,
            dir: self.dir.clone(),
            tmp: format!("{STATE_FILE}.{}.tmp", self.state_writes),
        })
    }

    /// The third step of a [`CheckpointPlan`]: renames its written file over the state
    /// checkpoint if the plan is still the newest word on the state, and returns whether it
    /// did. A plan is stale when the state file was written or another plan made since (an
    /// older state must never replace a newer one: a log start moved by DeleteRecords would move
    /// back), after a truncation, when the high watermark went down since (it is written as
    /// planned), or when it is another log's; a stale plan's file is removed. A failed write
    /// poisons the log, like any disk error. The directory is synced afterwards, off the lock
    /// ([`CheckpointPlan::sync_dir`]).
    pub fn install_checkpoint(
        &mut self,
        plan: &CheckpointPlan,
        written: Result<(), LogError>,
    ) -> Result<bool, LogError> {
        if !Arc::ptr_eq(&plan.instance, &self.instance) {
            // Another log's (the directory may be this one's, its successor's): its file is left
            // to `open`'s leftover sweep rather than removed under a name this log may reuse.
            return Ok(false);
        }
        self.guarded(|log| {
            written?;
            let current = plan.state_writes == log.state_writes
                && plan.truncations == log.truncations
                && plan.state.high_watermark <= log.high_watermark;
            if !current {
                remove_if_exists(&*log.disk, &log.dir.join(&plan.tmp))?;
                return Ok(false);
            }
            assert!(
                plan.state.recovery_point <= log.durable_end()
                    && plan.state.log_start_offset <= log.log_start_offset,
                "without a state write or truncation, neither moved back"
            );
            checkpoint::install(&*log.disk, &log.dir, &plan.tmp, STATE_FILE)?;
            for (base, path, size) in &plan.syncs {
                if let Some(segment) = log.segments.get_mut(base).filter(|s| &s.log_path == path) {
                    segment.synced_bytes =
                        segment.synced_bytes.max((*size).min(segment.size_bytes));
                }
            }
            log.recovery_point = log.recovery_point.max(plan.state.recovery_point);
            log.persisted_recovery_point = plan.state.recovery_point;
            log.bytes_since_checkpoint = log.bytes_since_checkpoint.saturating_sub(plan.flushed);
            Ok(true)
        })
    }

    /// The log end [`PartitionLog::truncate_to`]`(offset)` would leave, without changing
    /// anything: `offset` itself at a batch boundary, the start of the batch holding `offset`
    /// inside one, the log end at or past it. A follower names this to its replication core
    /// before the core truncates, so the core's log end stays the log's.
    pub fn end_after_truncation(&self, offset: Offset) -> Result<Offset, LogError> {
        self.check_usable()?;
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        if offset < self.log_start_offset {
            // The log starts over at `offset`.
            return Ok(offset);
        }
        let (_, segment) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= log start >= first base");
        segment.end_if_cut_at(&*self.disk, offset)
    }

    /// Removes everything at and after `offset` (a follower's divergent suffix). The log ends at
    /// a batch boundary at or below `offset`. Durable on return.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        self.guarded(|log| log.truncate_to_unguarded(offset))
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower far behind the
    /// leader's log start). Durable on return.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<(), LogError> {
        self.guarded(|log| log.truncate_fully_and_start_at_unguarded(offset))
    }

    /// Moves the log start offset up to `offset` (DeleteRecords on a leader, or a follower
    /// following its leader's start) and deletes the segments wholly below it; the active
    /// segment stays, so the start may lie inside a segment or a batch, and reads below it are
    /// out of range. At most the high watermark: only committed records are deleted. The new
    /// start is durable before any segment goes, so a crash in between finishes the deletion at
    /// `open`. Returns the segments deleted; a start at or below the current one changes nothing.
    pub fn advance_log_start(&mut self, offset: Offset) -> Result<usize, LogError> {
        self.guarded(|log| log.advance_log_start_unguarded(offset))
    }

    /// Deletes whole non-active segments older than `retention_ms` or beyond `retention_bytes`,
    /// oldest first, never past the high watermark; advances the log start offset.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.guarded(|log| log.enforce_retention_unguarded(now_ms))
    }

    /// Asserts the log's invariants (cheap ones always, O(segments) ones in debug builds).
    pub fn check_invariants(&self) {
        let log_end = self.log_end_offset();
        assert!(
            !self.segments.is_empty(),
            "a log always has an active segment"
        );
        assert!(
            self.log_start_offset <= log_end,
            "start {} > end {log_end}",
            self.log_start_offset
        );
        assert!(
            self.recovery_point <= log_end,
            "recovery point past the LEO"
        );
        assert!(self.high_watermark <= log_end, "HW past the LEO");
        let first_base = *self.segments.keys().next().expect("non-empty");
        assert!(
            first_base <= self.log_start_offset,
            "the first segment covers the log start"
        );
        debug_assert!(
            self.segments
                .values()
                .zip(self.segments.values().skip(1))
                .all(|(a, b)| a.next_offset <= b.base_offset),
            "segments do not overlap"
        );
    }
}

/// Byte spans of the whole batches in `bytes`, already validated (headers only, no CRC pass).
fn batch_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut position = 0;
    for view in batch::split_batches(bytes) {
        let total = view.expect("validated batches split").as_bytes().len();
        spans.push((position, position + total));
        position += total;
    }
    assert!(!spans.is_empty() && position == bytes.len());
    spans
}
