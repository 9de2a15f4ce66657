//! One segment: a `.log` file of whole record batches starting at `base_offset`, plus its sparse
//! indexes (in memory always; as `.index`/`.timeindex` files once sealed).

use crate::batch::{BatchHeader, BatchView, HEADER_BYTES};
use crate::disk::{Disk, DiskError};
use crate::error::LogError;
use crate::index::{SealedInfo, SegmentIndex};
use std::path::{Path, PathBuf};
use wire::Offset;

/// Most bytes after a batch with an untrustworthy length field searched for a valid batch.
const SEARCH_BYTES_MAX: u64 = 8 << 20;

/// How far above the expected offset a batch found by that search may start (a compacted
/// segment's gaps).
const SEARCH_OFFSET_SLACK: i64 = 1 << 20;

/// The file name of a segment's file: the base offset, 20 digits zero padded, and `ext`.
pub fn file_name(base_offset: Offset, ext: &str) -> String {
    assert!(base_offset.0 >= 0, "segment base offsets are non-negative");
    format!("{:020}.{ext}", base_offset.0)
}

/// Parses a `.log` file name back into its base offset.
pub fn parse_log_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(Offset)
}

/// A segment's in-memory state.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Offset of the first record the segment may hold; names its files.
    pub base_offset: Offset,
    /// `<dir>/<base>.log`.
    pub log_path: PathBuf,
    /// `<dir>/<base>.index`.
    pub index_path: PathBuf,
    /// `<dir>/<base>.timeindex`.
    pub time_path: PathBuf,
    /// Bytes of whole batches in the log file (volatile view).
    pub size_bytes: u64,
    /// Bytes of the log file known durable (synced).
    pub synced_bytes: u64,
    /// Bytes of the log file durable in the broker's journal (a journaled flush), synced in
    /// place at the next state checkpoint; only ever ahead of `synced_bytes` in the active
    /// segment (a roll syncs the segment it seals).
    pub journaled_bytes: u64,
    /// The offset after the last batch (`base_offset` when empty).
    pub next_offset: Offset,
    /// The largest record timestamp (`i64::MIN` when empty).
    pub max_timestamp: i64,
    /// When the segment was created or opened, for age-based rolling.
    pub created_ms: i64,
    /// Wall-clock ms of the last append (creation until then): time retention's clock for a
    /// segment whose records carry no timestamp (-1), as Kafka falls back to the file's mtime.
    pub modified_ms: i64,
    /// Sparse offset and time indexes.
    pub index: SegmentIndex,
    /// Bytes appended since the last offset index entry.
    pub bytes_since_index: u64,
    /// Batches follow each other without offset gaps (every log but a compacted one): reads
    /// check it, so a flipped base offset (outside the CRC) is caught.
    pub dense: bool,
    /// The position and header of the batch `account_batch` saw last: while it is still the
    /// segment's last batch, a read inside it (a follower or consumer at the tail) needs no
    /// header walk. Forgotten by `adopt`; checked against `size_bytes` and `next_offset` on use.
    tail: Option<(u64, BatchHeader)>,
}

/// Where a scan stopped early, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte position of the first bad batch.
    pub position: u64,
    /// The offset the bad batch should have started at or after.
    pub expected_offset: Offset,
    /// What check failed.
    pub reason: String,
    /// A valid batch starts where the bad one claims to end: the damage is corruption of
    /// written data (a bit flip), not a torn tail, which a crash leaves only at a file's end.
    pub valid_batch_follows: bool,
}

/// The outcome of scanning a segment file.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Indexes over the valid prefix.
    pub index: SegmentIndex,
    /// Length of the valid prefix.
    pub valid_bytes: u64,
    /// Offset after the last valid batch.
    pub next_offset: Offset,
    /// Largest timestamp in the valid prefix.
    pub max_timestamp: i64,
    /// The first invalid batch, if the scan stopped before the end of the file.
    pub damage: Option<Damage>,
    /// Bytes that were fully CRC-validated.
    pub validated_bytes: u64,
}

/// Reads exactly `buf.len()` bytes at `position` or fails with a short-read reason.
pub(crate) fn read_exact(
    disk: &dyn Disk,
    path: &Path,
    position: u64,
    buf: &mut [u8],
) -> Result<bool, DiskError> {
    let n = disk.read_at(path, position, buf)?;
    Ok(n == buf.len())
}

impl Segment {
    /// A segment's state for `base_offset` in `dir`, before its files are looked at.
    pub fn new(dir: &Path, base_offset: Offset, now_ms: i64, dense: bool) -> Segment {
        Segment {
            base_offset,
            log_path: dir.join(file_name(base_offset, "log")),
            index_path: dir.join(file_name(base_offset, "index")),
            time_path: dir.join(file_name(base_offset, "timeindex")),
            size_bytes: 0,
            synced_bytes: 0,
            journaled_bytes: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            created_ms: now_ms,
            modified_ms: now_ms,
            index: SegmentIndex::default(),
            bytes_since_index: 0,
            dense,
            tail: None,
        }
    }

    /// Bytes durable one way or the other: synced in place or in the journal.
    pub fn durable_bytes(&self) -> u64 {
        self.synced_bytes.max(self.journaled_bytes)
    }

    /// The log file's name for error messages.
    pub fn log_name(&self) -> String {
        self.log_path.display().to_string()
    }

    /// The offset relative to the base, for index entries.
    pub fn relative(&self, offset: Offset) -> u32 {
        let delta = offset.distance_from(self.base_offset);
        u32::try_from(delta).expect("segments roll before relative offsets overflow u32")
    }

    /// Whether an append of `records` more offsets still fits the u32 relative offsets.
    pub fn has_offset_room(&self, last_offset: Offset) -> bool {
        last_offset.0 - self.base_offset.0 < u32::MAX as i64 - 1
    }

    /// Accounts a batch appended at `position` (bytes already written).
    pub fn account_batch(
        &mut self,
        header: &BatchHeader,
        position: u64,
        index_interval_bytes: u64,
    ) {
        assert!(
            header.base_offset >= self.next_offset,
            "batches are appended in offset order"
        );
        assert!(position == self.size_bytes, "batches are contiguous");
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        let due = self.index.offsets.is_empty() || self.bytes_since_index >= index_interval_bytes;
        if due {
            let relative = self.relative(header.base_offset);
            let position32 = u32::try_from(position).expect("segments stay below 2 GiB");
            self.index.add(relative, position32, self.max_timestamp);
            self.bytes_since_index = 0;
        }
        let total = header.total_bytes() as u64;
        self.bytes_since_index += total;
        self.size_bytes += total;
        self.next_offset = header.next_offset();
        self.tail = Some((position, *header));
    }

    /// Scans the log file from the start: header checks for every batch, and full CRC and record
    /// validation for batches starting at or after `validate_from`. Stops at the first bad batch.
    pub fn scan(
        &self,
        disk: &dyn Disk,
        validate_from: Offset,
        index_interval_bytes: u64,
    ) -> Result<Scan, LogError> {
        let file_len = disk.len(&self.log_path)?;
        let mut shadow = Segment::new(Path::new(""), self.base_offset, self.created_ms, self.dense);
        let mut validated_bytes = 0;
        let mut header_bytes = [0u8; HEADER_BYTES];
        let mut damage = None;
        while shadow.size_bytes < file_len {
            let position = shadow.size_bytes;
            let fail = |reason: String| Damage {
                position,
                expected_offset: shadow.next_offset,
                reason,
                valid_batch_follows: false,
            };
            // Whether the batch here is whole and valid under a length one bit from `length`.
            let rotted_length =
                |length| self.whole_under_a_flipped_length(disk, position, file_len, length);
            if !read_exact(disk, &self.log_path, position, &mut header_bytes)? {
                damage = Some(fail("torn batch header".into()));
                break;
            }
            let header = match BatchHeader::parse(&header_bytes) {
                Ok(h) => h,
                Err(e) => {
                    // A flip in a header field the parse checks (a record count, a magic byte)
                    // is no torn tail when the batch's length field still leads to a valid batch
                    // (seed 256896: a record count rotted from 1 to 65, and recovery cut that
                    // batch and the valid one after it as a torn tail; the copy registered clean
                    // and was elected without them).
                    let length = crate::batch::be_i32(&header_bytes, 8);
                    let total = u64::try_from(length)
                        .ok()
                        .map(|length| length + crate::batch::LOG_OVERHEAD_BYTES as u64);
                    let next = total
                        .filter(|&total| total >= HEADER_BYTES as u64)
                        .map(|total| position.saturating_add(total))
                        .filter(|&next| next < file_len);
                    let valid_batch_follows = match next {
                        Some(next) => self.valid_batch_at(disk, next, shadow.next_offset)?,
                        None => false,
                    } || rotted_length(length)?;
                    damage = Some(Damage {
                        valid_batch_follows,
                        ..fail(e.to_string())
                    });
                    break;
                }
            };
            let gap = header.base_offset != shadow.next_offset;
            let total = header.total_bytes() as u64;
            // A flip in a batch whose length field is intact: is the batch after it valid?
            let followed = |reason: String| -> Result<Damage, LogError> {
                let next = position.saturating_add(total);
                Ok(Damage {
                    valid_batch_follows: self.valid_batch_at(disk, next, shadow.next_offset)?,
                    ..fail(reason)
                })
            };
            if header.base_offset < shadow.next_offset
                || (gap && self.dense)
                || !shadow.has_offset_room(header.last_offset())
            {
                damage = Some(followed(format!(
                    "offset {} out of order",
                    header.base_offset
                ))?);
                break;
            }
            if position + total > file_len {
                // A flip in the length field (outside the CRC) reads like a tear too, unless a
                // valid batch lies after it: then it is corruption (seed 296184: a length rotted
                // by 2^18, and recovery cut that batch and the valid one after it as a torn
                // tail; the copy registered clean and was elected without a committed offset).
                // Nor is it a tear when the batch itself is whole and valid under a length one
                // bit away (seed 327317: the segment's last batch, its length rotted by 2^24,
                // nothing after it to find).
                let after = position.saturating_add(HEADER_BYTES as u64);
                let rotted = self.valid_batch_after(disk, after, file_len, header.next_offset())?
                    || rotted_length(header.batch_length)?;
                damage = Some(Damage {
                    valid_batch_follows: rotted,
                    ..fail(format!("batch of {total} bytes past end of file"))
                });
                break;
            }
            if header.base_offset >= validate_from {
                let mut batch = vec![0u8; total as usize];
                if !read_exact(disk, &self.log_path, position, &mut batch)? {
                    damage = Some(fail("short read".into()));
                    break;
                }
                let verdict = BatchView::new(&batch).and_then(|view| view.validate());
                if let Err(e) = verdict {
                    let mut found = followed(e.to_string())?;
                    // The length is outside the CRC: flipped to a length still inside the file,
                    // the batch fails its CRC and the look-ahead reads the wrong bytes (seed
                    // 324376: two acknowledged batches cut as a tear, the copy elected).
                    found.valid_batch_follows =
                        found.valid_batch_follows || rotted_length(header.batch_length)?;
                    damage = Some(found);
                    break;
                }
                validated_bytes += total;
            }
            shadow.account_batch(&header, position, index_interval_bytes);
        }
        assert!(
            shadow.size_bytes <= file_len,
            "the valid prefix is within the file"
        );
        assert!(
            damage.is_some() || shadow.size_bytes == file_len,
            "a clean scan covers the file"
        );
        Ok(Scan {
            index: shadow.index,
            valid_bytes: shadow.size_bytes,
            next_offset: shadow.next_offset,
            max_timestamp: shadow.max_timestamp,
            damage,
            validated_bytes,
        })
    }

    /// Whether the batch at `position`, which failed a check (its length field, `length`, is
    /// outside the CRC: past the file's end, refused by the parse, or leading to bytes that fail
    /// the CRC), is whole and valid (its CRC checked) under a length one bit away from it. A crash keeps a prefix of what was written and never
    /// changes a written length, so such a batch is rot, never a tear: a torn batch cut short
    /// would need its CRC to match a prefix of itself. At most [`SEARCH_BYTES_MAX`] are read.
    fn whole_under_a_flipped_length(
        &self,
        disk: &dyn Disk,
        position: u64,
        file_len: u64,
        length: i32,
    ) -> Result<bool, LogError> {
        let available = file_len.saturating_sub(position).min(SEARCH_BYTES_MAX);
        let fits = |alternative: i32| {
            u64::try_from(alternative)
                .ok()
                .map(|length| length + crate::batch::LOG_OVERHEAD_BYTES as u64)
                .filter(|&total| total >= HEADER_BYTES as u64 && total <= available)
        };
        let candidates: Vec<(i32, u64)> = (0..32)
            .map(|bit| length ^ (1_i32 << bit))
            .filter_map(|alternative| Some((alternative, fits(alternative)?)))
            .collect();
        let Some(longest) = candidates.iter().map(|&(_, total)| total).max() else {
            return Ok(false);
        };
        let len = usize::try_from(longest).expect("bounded by SEARCH_BYTES_MAX");
        let mut bytes = disk.read_vec(&self.log_path, position, len)?;
        if bytes.len() < len {
            return Ok(false);
        }
        for (alternative, total) in candidates {
            let total = usize::try_from(total).expect("bounded");
            let batch = &mut bytes[..total];
            batch[8..12].copy_from_slice(&alternative.to_be_bytes());
            if BatchView::new(batch)
                .and_then(|view| view.validate())
                .is_ok()
            {
                buggify::probe!("log.recovery.rotted_length_of_a_whole_batch");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a whole, valid batch (its CRC checked) whose base offset is `from`, or a little
    /// above it (compaction leaves gaps), begins anywhere in the file's bytes from `start` (at
    /// most [`SEARCH_BYTES_MAX`] of them): where a batch's length field cannot be trusted, the
    /// next batch's place is not known. A crash keeps a prefix of what was written, so a torn
    /// batch has nothing valid after it; a search that finds something is damage, never a tear.
    fn valid_batch_after(
        &self,
        disk: &dyn Disk,
        start: u64,
        file_len: u64,
        from: Offset,
    ) -> Result<bool, LogError> {
        let len =
            usize::try_from(file_len.saturating_sub(start).min(SEARCH_BYTES_MAX)).expect("bounded");
        if len < HEADER_BYTES {
            return Ok(false);
        }
        let bytes = disk.read_vec(&self.log_path, start, len)?;
        for at in 0..bytes.len().saturating_sub(HEADER_BYTES - 1) {
            let base = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            if !(from.0..from.0.saturating_add(SEARCH_OFFSET_SLACK)).contains(&base) {
                continue;
            }
            if BatchView::new(&bytes[at..])
                .and_then(|view| view.validate())
                .is_ok()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a whole, valid batch (its CRC checked) starting at or after offset `from`
    /// begins at byte `position` of the file.
    fn valid_batch_at(
        &self,
        disk: &dyn Disk,
        position: u64,
        from: Offset,
    ) -> Result<bool, LogError> {
        let mut header_bytes = [0u8; HEADER_BYTES];
        if !read_exact(disk, &self.log_path, position, &mut header_bytes)? {
            return Ok(false);
        }
        let Ok(header) = BatchHeader::parse(&header_bytes) else {
            return Ok(false);
        };
        let end = position.saturating_add(header.total_bytes() as u64);
        if header.base_offset < from || end > disk.len(&self.log_path)? {
            return Ok(false);
        }
        let mut batch = vec![0u8; header.total_bytes()];
        if !read_exact(disk, &self.log_path, position, &mut batch)? {
            return Ok(false);
        }
        Ok(BatchView::new(&batch)
            .and_then(|view| view.validate())
            .is_ok())
    }

    /// Adopts a scan's result as this segment's state.
    pub fn adopt(&mut self, scan: &Scan) {
        assert!(
            scan.next_offset >= self.base_offset,
            "a scan never ends before its base"
        );
        self.index = scan.index.clone();
        self.size_bytes = scan.valid_bytes;
        self.next_offset = scan.next_offset;
        self.max_timestamp = scan.max_timestamp;
        self.tail = None;
        let last_indexed = self.index.offsets.last().map_or(0, |e| e.position as u64);
        // Approximate: the next entry comes after at most one more interval.
        self.bytes_since_index = self.size_bytes.saturating_sub(last_indexed);
    }

    /// Loads sealed index files if present and matching the log's length.
    pub fn load_sealed_index(
        &self,
        disk: &dyn Disk,
        log_bytes: u64,
    ) -> Result<Option<(SegmentIndex, SealedInfo)>, LogError> {
        let read_all = |path: &Path| -> Result<Option<Vec<u8>>, LogError> {
            let len = match disk.len(path) {
                Ok(len) => len,
                Err(DiskError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let mut bytes = vec![0u8; len as usize];
            let ok = read_exact(disk, path, 0, &mut bytes)?;
            Ok(ok.then_some(bytes))
        };
        let (Some(offsets), Some(times)) =
            (read_all(&self.index_path)?, read_all(&self.time_path)?)
        else {
            return Ok(None);
        };
        let decoded = SegmentIndex::decode(&offsets, &times, log_bytes);
        Ok(decoded.filter(|(_, info)| info.next_offset >= self.base_offset))
    }

    /// Writes the index files (for a sealed segment) under `suffix` (e.g. "" or ".cleaned") and
    /// syncs them. The caller makes their directory entries durable.
    pub fn write_index_files(&self, disk: &dyn Disk, suffix: &str) -> Result<(), LogError> {
        let info = SealedInfo {
            log_bytes: self.size_bytes,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
        };
        let files = [
            (
                with_suffix(&self.index_path, suffix),
                self.index.encode_offsets(&info),
            ),
            (
                with_suffix(&self.time_path, suffix),
                self.index.encode_times(self.size_bytes),
            ),
        ];
        for (path, bytes) in files {
            remove_if_exists(disk, &path)?;
            disk.create(&path)?;
            disk.write_at(&path, 0, &bytes)?;
            disk.sync(&path)?;
        }
        Ok(())
    }

    /// Removes the index files (the segment became active again, or is being deleted).
    pub fn remove_index_files(&self, disk: &dyn Disk) -> Result<(), LogError> {
        remove_if_exists(disk, &self.index_path)?;
        remove_if_exists(disk, &self.time_path)?;
        Ok(())
    }

    /// Reads and parses the batch header at `position`, checking it is the batch the index
    /// promised (`expected_base`) when given.
    pub fn header_at(
        &self,
        disk: &dyn Disk,
        position: u64,
    ) -> Result<Option<BatchHeader>, LogError> {
        if position >= self.size_bytes {
            return Ok(None);
        }
        let mut bytes = [0u8; HEADER_BYTES];
        if !read_exact(disk, &self.log_path, position, &mut bytes)? {
            return Err(self.corrupt(position, "short read of a batch header".into()));
        }
        let header =
            BatchHeader::parse(&bytes).map_err(|e| self.corrupt(position, e.to_string()))?;
        if position + header.total_bytes() as u64 > self.size_bytes {
            return Err(self.corrupt(position, "batch extends past the segment".into()));
        }
        Ok(Some(header))
    }

    /// A `CorruptBatch` naming this segment's file.
    pub fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::CorruptBatch {
            file: self.log_name(),
            position,
            reason,
        }
    }

    /// The position of the first batch whose last offset is `>= offset`, and its header, or
    /// `None` if every batch ends before `offset`.
    pub fn find(
        &self,
        disk: &dyn Disk,
        offset: Offset,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            // No batch here ends at or after it: a read at the log end (every caught-up
            // follower's and consumer's fetch) walks no headers.
            return Ok(None);
        }
        if let Some((position, header)) = &self.tail {
            let still_last = position + header.total_bytes() as u64 == self.size_bytes
                && header.next_offset() == self.next_offset;
            if still_last && header.base_offset <= offset {
                return Ok(Some((*position, *header)));
            }
        }
        let relative = if offset <= self.base_offset {
            0
        } else {
            self.relative(offset.min(self.next_offset))
        };
        let entry = self.index.lookup(relative);
        let mut position = entry.map_or(0, |e| e.position as u64);
        let mut expected = entry.map(|e| self.base_offset.add(e.relative_offset as i64));
        if self.dense && expected.is_none() {
            expected = Some(self.base_offset);
        }
        while let Some(header) = self.header_at(disk, position)? {
            if let Some(want) = expected.filter(|e| *e != header.base_offset) {
                if self.dense
                    || header.base_offset < want
                    || position == entry.map_or(0, |e| e.position as u64)
                {
                    let reason = format!(
                        "expected offset {want} here, the batch says {}",
                        header.base_offset
                    );
                    return Err(self.corrupt(position, reason));
                }
            }
            expected = Some(header.next_offset());
            if header.last_offset() >= self.next_offset {
                let reason = format!(
                    "batch ends at {} past the segment end {}",
                    header.last_offset(),
                    self.next_offset
                );
                return Err(self.corrupt(position, reason));
            }
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Where this segment would end if everything at and after `offset` were cut away (what
    /// [`crate::PartitionLog::truncate_to`] leaves): a batch is kept or dropped whole, so inside a
    /// batch the end is that batch's start, below `offset`.
    pub fn end_if_cut_at(&self, disk: &dyn Disk, offset: Offset) -> Result<Offset, LogError> {
        let Some((cut, header)) = self.find(disk, offset)? else {
            return Ok(self.next_offset);
        };
        if cut == 0 {
            return Ok(self.base_offset);
        }
        if self.dense {
            // Batches follow each other without gaps: the kept prefix ends where this one starts.
            return Ok(header.base_offset);
        }
        // A compacted segment may have gaps: the kept prefix ends with its own last batch.
        let mut position = 0;
        let mut end = self.base_offset;
        while position < cut {
            let Some(kept) = self.header_at(disk, position)? else {
                break;
            };
            end = kept.next_offset();
            position += kept.total_bytes() as u64;
        }
        Ok(end)
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        return path.to_path_buf();
    }
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(disk: &dyn Disk, path: &Path) -> Result<(), LogError> {
    match disk.remove(path) {
        Ok(()) | Err(DiskError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
