//! The journal: an append-only write-ahead file a broker shares across its partitions, so one
//! `fdatasync` can make a whole IO round durable instead of one per partition file.
//!
//! This module is the file format and its recovery only: records are opaque payloads numbered
//! by a sequence, written a round at a time (one append and one sync per round) and handed back
//! in order by [`Journal::open`]. What a record means (which partition's bytes, up to which
//! offset) and when a file may go (every partition's state checkpoint past its records) is the
//! caller's: the broker's are `crate::wal::SegmentWrite`s; `docs/design-notes.md` ("A journal
//! shared by a broker's partitions") has the design and the measurement that motivates it.
//!
//! # Format (big-endian)
//! Files `<first sequence:020>.wal` in one directory; a file holds records with consecutive
//! sequences starting at its name's, and the next file starts where it ends.
//! ```text
//! record: length u32 (the bytes after this field) | crc u32 = CRC-32C(the rest)
//!         | sequence u64 | round u64 (the sequence of its round's first record) | payload
//! pad:    a record whose sequence and round are both `u64::MAX` ([`PAD`]), its payload zeros
//! ```
//! A round ends with a pad when the disk asks for aligned writes (`Disk::write_alignment`:
//! `FileDisk` 4 KiB, `MemDisk` its 512-byte sector), so the round fills whole units and the
//! next round starts at one: the disk can then write it past the page cache
//! (`Disk::write_direct_at`; `FileDisk` opens the file `O_DIRECT`, and the kernel hands the
//! round's buffer to the device instead of copying it into freshly allocated cache pages). A
//! pad is checked like a record and numbered by nothing; `open` steps over it. A file whose
//! length is not a multiple of the unit (a torn tail cut at a record's end, a file written
//! before pads) is not written again: the next round starts a new file.
//!
//! # What a crash may leave, and what `open` does with it
//! Only the last round can be unsynced: a round is one append and one sync, the next round is
//! written only after that sync succeeded, and a file is created only after its predecessor's
//! records were synced. A crash may keep any part of that round's bytes, in any order of
//! sectors. So a bad record (short, bad length, bad CRC, wrong sequence, zeros):
//! - in the newest file, with no valid record of a *later* round anywhere after it, is a torn
//!   tail: the file is truncated there and synced (valid records after it from its own round
//!   were never acknowledged, and go too);
//! - in an older file, or followed by a valid record of a later round (found by a scan of every
//!   byte position after it, so a flipped length field is caught too), is damage to synced
//!   records: [`LogError::CorruptJournal`], nothing dropped;
//! - files must continue each other's sequences; a gap is corruption too.
//!
//! A failed append or sync poisons the journal (a failed fsync is never retried: the pages it
//! failed to write may be reported clean by the next one); reopen it.

use crate::disk::Disk;
use crate::error::LogError;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The sequence the journal's next *reserved* record gets, shared by the journal's writer and
/// the partition logs of its broker. The writer reserves a record's sequence when it plans the
/// record under its partition's lock (before the round is written); a log reads the clock
/// under the same lock when it opens or truncates and writes it as its journal floor. So a
/// record planned before a truncation has a sequence below the floor the truncation wrote,
/// and a replay skips it, even when it reached the journal after the truncation.
#[derive(Clone, Debug, Default)]
pub struct JournalClock(Arc<AtomicU64>);

impl JournalClock {
    /// A clock whose next reservation is `next` (the journal's next sequence when opened).
    pub fn new(next: u64) -> JournalClock {
        JournalClock(Arc::new(AtomicU64::new(next)))
    }

    /// The sequence the next reservation gets.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Reserves the next sequence.
    pub fn reserve(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// The suffix of journal files.
pub const JOURNAL_SUFFIX: &str = ".wal";
/// The most bytes one record's payload may have.
pub const RECORD_PAYLOAD_MAX: usize = 16 << 20;
/// length + crc + sequence + round.
const HEADER_BYTES: usize = 24;
/// What `length` counts beyond the payload: crc + sequence + round.
const LENGTH_OVERHEAD: usize = 20;
/// The sequence and round of a pad (see the module's format).
pub const PAD: u64 = u64::MAX;
/// A round buffer grown past this is freed after its round instead of kept for the next.
const ROUND_BUFFER_KEPT_MAX: usize = 8 << 20;

/// `n` rounded up to a multiple of `unit`.
fn align_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit) * unit
}

/// One record handed back by [`Journal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// Its sequence number.
    pub sequence: u64,
    /// What was written.
    pub payload: Vec<u8>,
}

/// What [`Journal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalRecovery {
    /// Bytes cut off the newest file as a torn tail.
    pub torn_bytes: u64,
    /// Files read.
    pub files: usize,
}

/// A journal directory opened for appending. One owner writes it (the broker's IO worker).
#[derive(Debug)]
pub struct Journal {
    /// The journal's directory.
    dir: PathBuf,
    /// A file is rolled once it holds this many bytes.
    file_bytes_max: u64,
    /// Files oldest first: (first sequence, path, length).
    files: Vec<(u64, PathBuf, u64)>,
    /// The sequence the next record gets.
    next: u64,
    /// The newest file's length as of its last successful sync (or `open`): a failed round's
    /// bytes past it may sit in the page cache without being on disk.
    synced_len: u64,
    /// Set by a failed append, sync or roll.
    poisoned: Option<String>,
    /// The round being written, kept across rounds (up to [`ROUND_BUFFER_KEPT_MAX`]) so a
    /// round does not allocate and fault in fresh pages; its bytes start at an aligned address.
    buffer: Vec<u8>,
}

fn file_name(first: u64) -> String {
    format!("{first:020}{JOURNAL_SUFFIX}")
}

/// A record's encoding, appended to `out`: its payload is `parts` joined (copied once, here).
fn encode_into(out: &mut Vec<u8>, sequence: u64, round: u64, parts: &[&[u8]]) {
    let payload_len: usize = parts.iter().map(|part| part.len()).sum();
    assert!(
        payload_len <= RECORD_PAYLOAD_MAX,
        "a journal record is bounded"
    );
    out.extend_from_slice(&((payload_len + LENGTH_OVERHEAD) as u32).to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let crc = crc32c::crc32c(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A pad's header for `zeros` payload bytes of zeros (the CRC covers them too).
fn encode_pad(zeros: usize) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(
        &u32::try_from(zeros + LENGTH_OVERHEAD)
            .expect("a pad is short")
            .to_be_bytes(),
    );
    header[8..16].copy_from_slice(&PAD.to_be_bytes());
    header[16..24].copy_from_slice(&PAD.to_be_bytes());
    static ZEROS: [u8; 4096] = [0; 4096];
    let mut crc = crc32c::crc32c(&header[8..]);
    let mut left = zeros;
    while left > 0 {
        let chunk = left.min(ZEROS.len());
        crc = crc32c::crc32c_append(crc, &ZEROS[..chunk]);
        left -= chunk;
    }
    header[4..8].copy_from_slice(&crc.to_be_bytes());
    header
}

/// A record read back: where its payload lies, where it ends, its sequence and round.
struct Decoded {
    payload: Range<usize>,
    end: usize,
    sequence: u64,
    round: u64,
}

/// Decodes the record at `at` if it is whole and its CRC holds.
fn decode_at(bytes: &[u8], at: usize) -> Result<Decoded, String> {
    let rest = &bytes[at..];
    if rest.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes left, a header needs {HEADER_BYTES}",
            rest.len()
        ));
    }
    let length = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    if !(LENGTH_OVERHEAD..=LENGTH_OVERHEAD + RECORD_PAYLOAD_MAX).contains(&length) {
        return Err(format!("length {length} out of bounds"));
    }
    let end = at + 4 + length;
    if end > bytes.len() {
        return Err(format!("length {length} runs past the file's end"));
    }
    let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[at + 8..end]) != crc {
        return Err("CRC mismatch".into());
    }
    Ok(Decoded {
        payload: at + HEADER_BYTES..end,
        end,
        sequence: u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes")),
        round: u64::from_be_bytes(rest[16..24].try_into().expect("8 bytes")),
    })
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and returns every record it holds, in
    /// sequence order, after cutting a torn tail off the newest file. Files roll at
    /// `file_bytes_max` bytes.
    pub fn open(
        disk: &dyn Disk,
        dir: &Path,
        file_bytes_max: u64,
    ) -> Result<(Journal, Vec<JournalRecord>, JournalRecovery), LogError> {
        if !disk.exists(dir)? {
            disk.create_dir_all(dir)?;
            if let Some(parent) = dir.parent() {
                disk.sync_dir(parent)?;
            }
        }
        let mut names: Vec<(u64, String)> = disk
            .list(dir)?
            .into_iter()
            .filter_map(|name| {
                let stem = name.strip_suffix(JOURNAL_SUFFIX)?;
                let first = (stem.len() == 20).then(|| stem.parse::<u64>().ok())??;
                Some((first, name))
            })
            .collect();
        names.sort();
        // The files' directory entries durable before any record in them is counted on: a
        // file whose creating roll failed at its directory sync is found here, and appends
        // to it would be synced while a crash could still take the file away (seed 153).
        disk.sync_dir(dir)?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file_bytes_max: file_bytes_max.max(1),
            files: Vec::new(),
            next: names.first().map_or(0, |(first, _)| *first),
            synced_len: 0,
            poisoned: None,
            buffer: Vec::new(),
        };
        let mut records = Vec::new();
        let mut recovery = JournalRecovery {
            files: names.len(),
            ..JournalRecovery::default()
        };
        for (index, (first, name)) in names.iter().enumerate() {
            let path = dir.join(name);
            let shown = path.display().to_string();
            if *first != journal.next {
                return Err(LogError::CorruptJournal {
                    file: shown,
                    position: 0,
                    reason: format!(
                        "starts at sequence {first}, the files before end at {}",
                        journal.next
                    ),
                });
            }
            let len = disk.len(&path)?;
            let bytes = disk.read_vec(&path, 0, usize::try_from(len).expect("a file fits"))?;
            let newest = index + 1 == names.len();
            let mut at = 0;
            while at < bytes.len() {
                let decoded = decode_at(&bytes, at).and_then(|record| {
                    if record.sequence == PAD && record.round == PAD {
                        return Ok(record);
                    }
                    if record.sequence == journal.next && record.round <= record.sequence {
                        Ok(record)
                    } else {
                        Err(format!(
                            "sequence {} of round {}, expected {}",
                            record.sequence, record.round, journal.next
                        ))
                    }
                });
                match decoded {
                    Ok(record) if record.sequence == PAD => at = record.end,
                    Ok(record) => {
                        records.push(JournalRecord {
                            sequence: journal.next,
                            payload: bytes[record.payload].to_vec(),
                        });
                        journal.next += 1;
                        at = record.end;
                    }
                    Err(reason) => {
                        let corrupt = |reason: String| LogError::CorruptJournal {
                            file: shown.clone(),
                            position: at as u64,
                            reason,
                        };
                        if !newest {
                            return Err(corrupt(format!("{reason} in a file before the newest")));
                        }
                        if let Some(after) = later_round_after(&bytes, at, journal.next) {
                            return Err(corrupt(format!(
                                "{reason}, and a valid record of a later round follows at \
                                 byte {after}"
                            )));
                        }
                        buggify::probe!("log.journal.torn_tail");
                        disk.truncate(&path, at as u64)?;
                        disk.sync(&path)?;
                        recovery.torn_bytes = (bytes.len() - at) as u64;
                        break;
                    }
                }
            }
            journal.files.push((*first, path, at as u64));
            journal.synced_len = at as u64;
        }
        Ok((journal, records, recovery))
    }

    /// Appends one record per payload, in order, in one write, and syncs the file: when this
    /// returns `Ok`, every record of the round is durable. Returns their sequences.
    pub fn write_round(
        &mut self,
        disk: &dyn Disk,
        payloads: &[&[u8]],
    ) -> Result<Range<u64>, LogError> {
        let parts: Vec<[&[u8]; 1]> = payloads.iter().map(|payload| [*payload]).collect();
        self.write_round_of_parts(disk, &parts)
    }

    /// [`Journal::write_round`] for payloads each given in parts (a record's header and the
    /// bytes it carries, say): each part is copied once, into the round's one write.
    pub fn write_round_of_parts<'a, P: AsRef<[&'a [u8]]>>(
        &mut self,
        disk: &dyn Disk,
        payloads: &[P],
    ) -> Result<Range<u64>, LogError> {
        if let Some(reason) = &self.poisoned {
            return Err(LogError::Poisoned(reason.clone()));
        }
        let first = self.next;
        if payloads.is_empty() {
            return Ok(first..first);
        }
        let records: usize = payloads
            .iter()
            .map(|p| p.as_ref().iter().map(|part| part.len()).sum::<usize>() + HEADER_BYTES)
            .sum();
        let unit = disk.write_alignment().max(1);
        let mut padded =
            usize::try_from(align_up(records as u64, unit as u64)).expect("a round fits in memory");
        if padded > records && padded - records < HEADER_BYTES {
            padded += unit;
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        buffer.reserve(padded + unit);
        // Zeros up to the first aligned address of the buffer (its allocation does not move
        // while it holds at most its capacity); the round goes from there.
        let lead = match buffer.as_ptr().align_offset(unit) {
            lead if lead < unit => lead,
            _ => 0,
        };
        buffer.resize(lead, 0);
        for (i, payload) in payloads.iter().enumerate() {
            encode_into(&mut buffer, first + i as u64, first, payload.as_ref());
        }
        if padded > records {
            let zeros = padded - records - HEADER_BYTES;
            buffer.resize(buffer.len() + zeros + HEADER_BYTES, 0);
            let pad_at = lead + records;
            let pad = encode_pad(zeros);
            buffer[pad_at..pad_at + HEADER_BYTES].copy_from_slice(&pad);
        }
        assert_eq!(buffer.len(), lead + padded, "the round fills whole units");
        let result = self.append_synced(disk, &buffer[lead..], unit as u64);
        if buffer.capacity() <= ROUND_BUFFER_KEPT_MAX {
            self.buffer = buffer;
        }
        if let Err(error) = &result {
            self.poisoned = Some(error.to_string());
        }
        result?;
        self.next = first + payloads.len() as u64;
        Ok(first..self.next)
    }

    /// Writes one round padded to `unit` at the newest file's end (rolling first when it would
    /// pass the file size or the file's length is not a multiple of `unit`) and syncs it.
    fn append_synced(&mut self, disk: &dyn Disk, bytes: &[u8], unit: u64) -> Result<(), LogError> {
        let roll = match self.files.last() {
            None => true,
            // A file cut back to an unaligned length (a torn tail) or written before pads is
            // not written again: the round starts a new file, at an aligned offset.
            Some((_, _, len)) => {
                *len > 0
                    && (*len + bytes.len() as u64 > self.file_bytes_max
                        || !len.is_multiple_of(unit))
            }
        };
        if roll {
            // The new file's entry is durable before any record in it is counted on.
            let path = self.dir.join(file_name(self.next));
            disk.create(&path)?;
            disk.sync_dir(&self.dir)?;
            self.files.push((self.next, path, 0));
            self.synced_len = 0;
        }
        let (_, path, len) = self.files.last_mut().expect("a file after the roll");
        // The journal's owner is its only writer and knows the file's length: a positioned
        // write, without asking the file system for the length (an fstat per round).
        disk.write_direct_at(path, *len, bytes)?;
        *len += bytes.len() as u64;
        disk.sync(path)?;
        self.synced_len = *len;
        Ok(())
    }

    /// Cuts the newest file back to what its last successful sync made durable and syncs the
    /// cut, before a poisoned journal is opened again: the failed round's bytes may still be in
    /// the page cache (a failed fsync need not drop them) without being on disk, and a reopen
    /// that read them back would number the next records after records a crash then loses.
    pub fn cut_to_synced(&self, disk: &dyn Disk) -> Result<(), LogError> {
        if let Some((_, path, _)) = self.files.last() {
            disk.truncate(path, self.synced_len)?;
            disk.sync(path)?;
        }
        Ok(())
    }

    /// Every whole record (its CRC holds) the files in `dir` hold, by sequence, found by trying
    /// every byte position: for a journal [`Journal::open`] refused as corrupt, so that what
    /// can be read is replayed before the files go ([`Journal::remove_files`]).
    pub fn salvage(disk: &dyn Disk, dir: &Path) -> Result<Vec<JournalRecord>, LogError> {
        let mut found = std::collections::BTreeMap::new();
        for name in disk.list(dir)? {
            if !name.ends_with(JOURNAL_SUFFIX) {
                continue;
            }
            let path = dir.join(&name);
            let len = disk.len(&path)?;
            let bytes = disk.read_vec(&path, 0, usize::try_from(len).expect("a file fits"))?;
            let mut at = 0;
            while at + HEADER_BYTES <= bytes.len() {
                match decode_at(&bytes, at) {
                    Ok(record) if record.sequence == PAD => at = record.end,
                    Ok(record) => {
                        found
                            .entry(record.sequence)
                            .or_insert_with(|| bytes[record.payload].to_vec());
                        at = record.end;
                    }
                    Err(_) => at += 1,
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(sequence, payload)| JournalRecord { sequence, payload })
            .collect())
    }

    /// Removes every journal file in `dir`, durably; the next [`Journal::open`] starts empty at
    /// sequence 0.
    pub fn remove_files(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        for name in disk.list(dir)? {
            if name.ends_with(JOURNAL_SUFFIX) {
                disk.remove(&dir.join(name))?;
            }
        }
        disk.sync_dir(dir)?;
        Ok(())
    }

    /// Removes every file all of whose records have sequences below `sequence` (never the one
    /// being written). Whether a removal is durable does not matter: `open` hands such records
    /// back again, and the caller skips what its checkpoints already cover.
    pub fn release_below(&mut self, disk: &dyn Disk, sequence: u64) -> Result<usize, LogError> {
        let mut removed = 0;
        while self.files.len() > 1 && self.files[1].0 <= sequence {
            let (_, path, _) = self.files.remove(0);
            disk.remove(&path)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The sequence the next record gets.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// Whether a failed append or sync poisoned the journal (open it again).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size past which files roll.
    pub fn file_bytes_max(&self) -> u64 {
        self.file_bytes_max
    }

    /// The journal's files, oldest first: (first sequence, path).
    pub fn files(&self) -> impl Iterator<Item = (u64, &Path)> {
        self.files
            .iter()
            .map(|(first, path, _)| (*first, path.as_path()))
    }
}

/// The position of a valid record after the damage at `at` (where `sequence` was expected)
/// that belongs to a later round than `sequence`'s: proof that the damaged bytes had been
/// synced. Every byte position is tried (a flipped length field hides where the next record
/// starts); a cheap header check comes before the CRC.
fn later_round_after(bytes: &[u8], at: usize, sequence: u64) -> Option<usize> {
    let mut position = at + 1;
    while position + HEADER_BYTES <= bytes.len() {
        let header = &bytes[position..position + HEADER_BYTES];
        let found = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
        let round = u64::from_be_bytes(header[16..24].try_into().expect("8 bytes"));
        let plausible = found > sequence
            && found - sequence <= (bytes.len() / HEADER_BYTES) as u64
            && round > sequence
            && round <= found;
        if plausible {
            if let Ok(record) = decode_at(bytes, position) {
                assert_eq!(record.sequence, found, "the header just read");
                return Some(position);
            }
        }
        position += 1;
    }
    None
}
