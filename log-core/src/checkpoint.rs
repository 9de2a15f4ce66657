//! Checkpoint files: small state written atomically (tmp file, sync, rename, sync_dir) and
//! guarded by a CRC-32 (IEEE, crc32fast), so a reader sees an old or a new version, never a mix,
//! and bit rot is detected. Byte layout in `FORMAT.md`.

use crate::disk::{Disk, DiskError};
use crate::error::LogError;
use std::path::Path;
use wire::{LeaderEpoch, Offset};

/// The first four bytes of every checkpoint file.
const MAGIC: &[u8; 4] = b"rlck";
/// The format version.
const VERSION: u8 = 1;
/// magic + version + kind + payload length.
const PREFIX_BYTES: usize = 10;
/// A checkpoint larger than this is corruption (the epoch cache is bounded well below it).
const PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// What a checkpoint file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// `LogState`.
    LogState = 1,
    /// The leader epoch cache.
    LeaderEpochs = 2,
}

/// The log-wide offsets that survive restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogState {
    /// Everything below is durable and was validated.
    pub recovery_point: Offset,
    /// The first offset readers may ask for.
    pub log_start_offset: Offset,
    /// The high watermark last checkpointed.
    pub high_watermark: Offset,
    /// Journal records of this log with a lower sequence describe bytes it no longer holds
    /// (written before its last truncation or open, or by an earlier log in the directory):
    /// a replay skips them (`crate::wal`). 0 for a log that never used a journal.
    pub journal_floor: u64,
}

/// Encodes a checkpoint file: prefix, payload, CRC-32 of everything before it.
fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "checkpoint payload is bounded"
    );
    let mut out = Vec::with_capacity(PREFIX_BYTES + payload.len() + 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode(file: &str, kind: Kind, bytes: &[u8]) -> Result<Vec<u8>, LogError> {
    let corrupt = |reason: String| LogError::CorruptCheckpoint {
        file: file.to_string(),
        reason,
    };
    if bytes.len() < PREFIX_BYTES + 4 {
        return Err(corrupt(format!("{} bytes is too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != stored {
        return Err(corrupt("CRC mismatch".into()));
    }
    if &body[0..4] != MAGIC || body[4] != VERSION || body[5] != kind as u8 {
        return Err(corrupt("bad magic, version or kind".into()));
    }
    let len = u32::from_be_bytes(body[6..10].try_into().expect("4 bytes")) as usize;
    if len != body.len() - PREFIX_BYTES {
        return Err(corrupt(format!(
            "payload length {len} disagrees with file size"
        )));
    }
    Ok(body[PREFIX_BYTES..].to_vec())
}

/// Writes `dir/name` atomically: `name.tmp` is written and synced, renamed over `name`, and the
/// directory synced. A crash leaves the old or the new file; a stray `.tmp` is ignored.
pub(crate) fn write_atomic(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    kind: Kind,
    payload: &[u8],
) -> Result<(), LogError> {
    let tmp = format!("{name}.tmp");
    write_synced(disk, dir, &tmp, kind, payload)?;
    install(disk, dir, &tmp, name)?;
    disk.sync_dir(dir)?;
    Ok(())
}

/// The first half of [`write_atomic`]: `dir/tmp` (a name ending in `.tmp`, which `open` removes
/// as a leftover) written and synced. Needs no lock when `tmp` is the caller's alone.
pub(crate) fn write_synced(
    disk: &dyn Disk,
    dir: &Path,
    tmp: &str,
    kind: Kind,
    payload: &[u8],
) -> Result<(), LogError> {
    debug_assert!(tmp.ends_with(".tmp"), "a leftover open removes");
    let bytes = encode(kind, payload);
    let tmp = dir.join(tmp);
    crate::segment::remove_if_exists(disk, &tmp)?;
    disk.create(&tmp)?;
    disk.write_at(&tmp, 0, &bytes)?;
    disk.sync(&tmp)?;
    Ok(())
}

/// The second half: `dir/tmp` renamed over `dir/name`, the commit point. The rename is durable
/// once `dir` is synced; until then a crash leaves the old file, which recovery accepts.
pub(crate) fn install(disk: &dyn Disk, dir: &Path, tmp: &str, name: &str) -> Result<(), LogError> {
    disk.rename(&dir.join(tmp), &dir.join(name))?;
    Ok(())
}

/// Reads `dir/name`; `None` if it does not exist.
pub(crate) fn read(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    kind: Kind,
) -> Result<Option<Vec<u8>>, LogError> {
    let path = dir.join(name);
    let len = match disk.len(&path) {
        Ok(len) => len as usize,
        Err(DiskError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let shown = path.display().to_string();
    if len > PAYLOAD_BYTES_MAX + PREFIX_BYTES + 4 {
        return Err(LogError::CorruptCheckpoint {
            file: shown,
            reason: format!("{len} bytes"),
        });
    }
    let mut bytes = vec![0; len];
    let n = disk.read_at(&path, 0, &mut bytes)?;
    bytes.truncate(n);
    decode(&shown, kind, &bytes).map(Some)
}

impl LogState {
    /// The payload: recovery point, log start offset, high watermark, each i64 big-endian,
    /// then the journal floor (u64, big-endian; a 24-byte payload written before the journal
    /// existed reads as floor 0).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for offset in [
            self.recovery_point,
            self.log_start_offset,
            self.high_watermark,
        ] {
            out.extend_from_slice(&offset.0.to_be_bytes());
        }
        out.extend_from_slice(&self.journal_floor.to_be_bytes());
        out
    }

    pub(crate) fn decode(file: &str, payload: &[u8]) -> Result<LogState, LogError> {
        if payload.len() != 24 && payload.len() != 32 {
            return Err(LogError::CorruptCheckpoint {
                file: file.to_string(),
                reason: format!("log state payload of {} bytes", payload.len()),
            });
        }
        let at = |i: usize| Offset(i64::from_be_bytes(payload[i..i + 8].try_into().expect("8")));
        let state = LogState {
            recovery_point: at(0),
            log_start_offset: at(8),
            high_watermark: at(16),
            journal_floor: payload
                .get(24..32)
                .map_or(0, |floor| u64::from_be_bytes(floor.try_into().expect("8"))),
        };
        if state.recovery_point.0 < 0 || state.log_start_offset.0 < 0 || state.high_watermark.0 < 0
        {
            return Err(LogError::CorruptCheckpoint {
                file: file.to_string(),
                reason: "negative offset".into(),
            });
        }
        Ok(state)
    }
}

/// The epoch cache payload: count u32, then (epoch i32, start offset i64) per entry.
pub(crate) fn encode_epochs(entries: &[(LeaderEpoch, Offset)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * 12);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (epoch, start) in entries {
        out.extend_from_slice(&epoch.0.to_be_bytes());
        out.extend_from_slice(&start.0.to_be_bytes());
    }
    out
}

pub(crate) fn decode_epochs(
    file: &str,
    payload: &[u8],
) -> Result<Vec<(LeaderEpoch, Offset)>, LogError> {
    let corrupt = |reason: String| LogError::CorruptCheckpoint {
        file: file.to_string(),
        reason,
    };
    if payload.len() < 4 {
        return Err(corrupt("no entry count".into()));
    }
    let count = u32::from_be_bytes(payload[0..4].try_into().expect("4")) as usize;
    if payload.len() != 4 + count * 12 {
        return Err(corrupt(format!(
            "{count} entries disagree with {} bytes",
            payload.len()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 12;
        let epoch = LeaderEpoch(i32::from_be_bytes(
            payload[at..at + 4].try_into().expect("4"),
        ));
        let start = Offset(i64::from_be_bytes(
            payload[at + 4..at + 12].try_into().expect("8"),
        ));
        entries.push((epoch, start));
    }
    let increasing = entries
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    if !increasing || entries.iter().any(|(e, s)| e.0 < 0 || s.0 < 0) {
        return Err(corrupt("entries not increasing".into()));
    }
    Ok(entries)
}
