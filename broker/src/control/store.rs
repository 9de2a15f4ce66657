//! Durable raft state on a [`log_core::Disk`]: the copy a controller node restarts from.
//!
//! The core keeps an in-memory [`RaftStore`] and emits [`PersistBatch`]es and snapshots; this
//! store makes the same changes durable, in order, and rebuilds an equal `RaftStore` at open.
//!
//! # Format (byte exact)
//!
//! One file, `<dir>/raft.log`, a sequence of records, each:
//!
//! ```text
//! length: u32 LE   bytes of kind + payload (1 ..= RECORD_BYTES_MAX)
//! crc:    u32 LE   CRC-32C of kind + payload
//! kind:   u8       1 base snapshot, 2 installed snapshot, 3 entry, 4 hard state,
//!                  5 rejoining, 6 caught up
//! payload          protobuf bytes of the raft-rs Snapshot / Snapshot / Entry / HardState;
//!                  empty for 5 and 6
//! ```
//!
//! The first record is always a *base* snapshot (index 0 with the voters at bootstrap, or the
//! latest local snapshot after a compaction); the file never exists without one. Replaying the
//! records onto the base with the same `RaftStore` operations the core used rebuilds the state:
//! installed snapshot → `install_snapshot`, entry → `append` (truncating a conflicting suffix),
//! hard state → `apply_persist` of a hard-state-only batch. A new log (a new quorum or a
//! replaced disk) writes a *rejoining* record after its base, and a *caught up* record once the
//! core says it caught up (`Effect::Rejoined`): the node votes only with other rejoining nodes
//! until then (`controller::Controller::step`). Logs written before these records existed replay
//! as caught up.
//!
//! [`DurableRaftStore::apply`] appends one record per change of a batch, then syncs the file
//! before returning. [`DurableRaftStore::compact_to`] rewrites the file from its mirror: write
//! `raft.log.tmp`, sync it, rename it over `raft.log`, sync the directory. A leftover
//! `raft.log.tmp` at open is an interrupted rewrite and is removed (the old file is intact).
//!
//! # What we assume about the disk
//!
//! - A crash keeps synced bytes and may keep a prefix of unsynced appended bytes, possibly with a
//!   zero-filled or garbled last sector (`MemDisk`'s model). So the only damage a crash does is
//!   at the tail: recovery stops at the first record that is incomplete or fails its CRC *if*
//!   nothing valid follows at its claimed end, and truncates the file there (those bytes were
//!   never synced, so nothing acknowledged is lost).
//! - A bad record followed by a valid one is corruption of synced data (a bit flip): open never
//!   silently drops acknowledged raft state. It moves the file to `raft.log.corrupt` and starts a
//!   new *rejoining* log, as for a replaced disk, so the node catches up from the leader and
//!   votes only with other rejoining nodes until then. A flip in a length field can still pass
//!   as a torn tail; the CRC-32C makes every other flip visible.
//! - `rename` is atomic and durable after `sync_dir` of the parent.

use super::ControlError;
use controller::raft_prelude::{Entry, HardState, Snapshot};
use controller::{PersistBatch, RaftStore};
use log_core::Disk;
use protobuf::Message as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest record (kind + payload): a snapshot carries the whole metadata image, entries carry
/// record batches; both are bounded well below this by the controller's own limits.
pub const RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Bytes of the record header (length + CRC).
const HEADER_BYTES: usize = 8;

/// Name of the log file inside the store's directory.
const FILE_NAME: &str = "raft.log";

/// Name of the temporary file a compaction writes before renaming it over the log.
const FILE_NAME_TMP: &str = "raft.log.tmp";

/// Where a corrupt log is moved for the operator (see [`DurableRaftStore::open`]).
pub const FILE_NAME_CORRUPT: &str = "raft.log.corrupt";

/// Record kinds (the byte after the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The state every later record applies to: the bootstrap or latest local snapshot.
    Base = 1,
    /// A snapshot received from the leader, replacing the log.
    Install = 2,
    /// One log entry, truncating any conflicting suffix.
    Entry = 3,
    /// The hard state (term, vote, commit).
    HardState = 4,
    /// The log started empty and has not caught up yet (only right after a base record).
    Rejoining = 5,
    /// The log caught up with the quorum.
    CaughtUp = 6,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Base),
            2 => Some(Kind::Install),
            3 => Some(Kind::Entry),
            4 => Some(Kind::HardState),
            5 => Some(Kind::Rejoining),
            6 => Some(Kind::CaughtUp),
            _ => None,
        }
    }
}

/// The durable copy of one controller node's raft state.
#[derive(Debug)]
pub struct DurableRaftStore {
    /// Where the bytes live (FileDisk in production, MemDisk in the simulator).
    disk: Arc<dyn Disk>,
    /// The store's directory, relative to the disk root.
    dir: PathBuf,
    /// `dir/raft.log`.
    path: PathBuf,
    /// The state the file holds, kept to rewrite the file on compaction without reading it.
    mirror: RaftStore,
    /// Bytes in the file: every record written so far, synced after each `apply`.
    file_bytes: u64,
}

impl DurableRaftStore {
    /// Opens (or bootstraps, when `dir` holds no log) the store in `dir` for the quorum `voters`.
    /// Returns the store and the recovered state to start the core from.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        voters: &[u64],
    ) -> Result<(DurableRaftStore, RaftStore), ControlError> {
        assert!(!voters.is_empty(), "a quorum has voters");
        disk.create_dir_all(dir)?;
        sync_dir_chain(disk.as_ref(), dir)?;
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(FILE_NAME_TMP);
        if disk.exists(&tmp)? {
            disk.remove(&tmp)?; // An interrupted rewrite: the old log is intact.
            disk.sync_dir(dir)?;
        }
        let mut store = DurableRaftStore {
            disk,
            dir: dir.to_path_buf(),
            path,
            mirror: RaftStore::bootstrap(voters),
            file_bytes: 0,
        };
        if store.disk.exists(&store.path)? {
            match store.recover() {
                Err(ControlError::Corrupt(why)) => store.set_aside(voters, &why)?,
                recovered => recovered?,
            }
            let mut recovered = store.mirror.conf_state().voters.clone();
            let mut wanted = voters.to_vec();
            recovered.sort_unstable();
            wanted.sort_unstable();
            if recovered != wanted {
                return Err(ControlError::Config(format!(
                    "voters {wanted:?} but the durable state has {recovered:?}"
                )));
            }
        } else {
            store.rewrite()?;
        }
        assert!(store.file_bytes >= HEADER_BYTES as u64, "a base record");
        let state = store.mirror.clone();
        Ok((store, state))
    }

    /// Moves a corrupt log to `raft.log.corrupt` (replacing an older one) and starts a new,
    /// rejoining log in its place: the node then catches up from the leader as a node whose disk
    /// was replaced does, and votes only with other rejoining nodes until it has. Keeping the
    /// valid records before the damage instead would let the node vote as caught up without
    /// entries it had acknowledged (seed 9656 after the consumer change: a flip in n1's raft log
    /// kept n1 from starting for the rest of the run).
    fn set_aside(&mut self, voters: &[u64], why: &str) -> Result<(), ControlError> {
        let aside = self.dir.join(FILE_NAME_CORRUPT);
        self.disk.rename(&self.path, &aside)?; // Replaces an older one.
        self.disk.sync_dir(&self.dir)?;
        tracing::error!(
            path = %self.path.display(),
            aside = %aside.display(),
            %why,
            "raft log corrupt: set aside; this node rejoins with an empty log and catches up \
             from the leader"
        );
        buggify::probe!("controller.raft.corrupt_log_set_aside");
        self.mirror = RaftStore::bootstrap(voters);
        self.rewrite()
    }

    /// The state the disk holds (after the last `apply`/`compact_to` returned).
    pub fn state(&self) -> &RaftStore {
        &self.mirror
    }

    /// Bytes in the log file (for metrics and tests).
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Makes a persist batch durable: appends its records and syncs before returning. On an
    /// error the file may hold part of the batch; the caller must stop using this store and
    /// reopen it (recovery keeps what was synced).
    pub fn apply(&mut self, batch: &PersistBatch) -> Result<(), ControlError> {
        let mut out = Vec::new();
        if let Some(snapshot) = &batch.snapshot {
            encode_record(Kind::Install, &to_bytes(snapshot)?, &mut out)?;
        }
        for entry in &batch.entries {
            encode_record(Kind::Entry, &to_bytes(entry)?, &mut out)?;
        }
        if let Some(hard_state) = &batch.hard_state {
            encode_record(Kind::HardState, &to_bytes(hard_state)?, &mut out)?;
        }
        if !out.is_empty() {
            self.append_synced(&out)?;
        }
        self.mirror.apply_persist(batch);
        assert!(self.mirror.hard_state().commit >= self.mirror.snapshot_index());
        Ok(())
    }

    /// Makes durable that this node's log caught up with the quorum (`Effect::Rejoined`).
    pub fn mark_caught_up(&mut self) -> Result<(), ControlError> {
        if !self.mirror.rejoining() {
            return Ok(());
        }
        let mut out = Vec::new();
        encode_record(Kind::CaughtUp, &[], &mut out)?;
        self.append_synced(&out)?;
        self.mirror.set_rejoining(false);
        Ok(())
    }

    /// Appends encoded records at the end of the file and syncs it.
    fn append_synced(&mut self, out: &[u8]) -> Result<(), ControlError> {
        let at = self.disk.append(&self.path, out)?;
        assert_eq!(at, self.file_bytes, "appends at the end of what we wrote");
        self.disk.sync(&self.path)?;
        self.file_bytes += out.len() as u64;
        Ok(())
    }

    /// Replaces the snapshot by a newer local one, dropping the entries it covers, and rewrites
    /// the file so it stays bounded. A snapshot not newer than ours is ignored.
    pub fn compact_to(&mut self, snapshot: &Snapshot) -> Result<(), ControlError> {
        let index = snapshot.get_metadata().index;
        if index <= self.mirror.snapshot_index() {
            return Ok(());
        }
        self.mirror.compact_to(snapshot.clone());
        assert_eq!(self.mirror.snapshot_index(), index, "compacted");
        self.rewrite()
    }

    /// Writes the mirror as a fresh file: temp file, sync, rename, sync the directory.
    fn rewrite(&mut self) -> Result<(), ControlError> {
        let mut out = Vec::new();
        encode_record(
            Kind::Base,
            &to_bytes(self.mirror.snapshot_latest())?,
            &mut out,
        )?;
        if self.mirror.rejoining() {
            encode_record(Kind::Rejoining, &[], &mut out)?;
        }
        encode_record(
            Kind::HardState,
            &to_bytes(self.mirror.hard_state())?,
            &mut out,
        )?;
        for entry in self.mirror.entries_retained() {
            encode_record(Kind::Entry, &to_bytes(entry)?, &mut out)?;
        }
        let tmp = self.dir.join(FILE_NAME_TMP);
        if self.disk.exists(&tmp)? {
            self.disk.remove(&tmp)?;
        }
        self.disk.create(&tmp)?;
        self.disk.write_at(&tmp, 0, &out)?;
        self.disk.sync(&tmp)?;
        self.disk.rename(&tmp, &self.path)?;
        self.disk.sync_dir(&self.dir)?;
        self.file_bytes = out.len() as u64;
        assert!(!self.disk.exists(&tmp)?, "renamed away");
        Ok(())
    }

    /// Replays the file into the mirror; cuts a torn tail, refuses corruption before it.
    /// The state the log in `dir` holds, read without changing anything on the disk (a torn
    /// tail is left in place): for a checker looking at a running node's store, as the
    /// simulator does after healing.
    pub fn peek(
        disk: Arc<dyn Disk>,
        dir: &Path,
        voters: &[u64],
    ) -> Result<RaftStore, ControlError> {
        let mut store = DurableRaftStore {
            disk,
            dir: dir.to_path_buf(),
            path: dir.join(FILE_NAME),
            mirror: RaftStore::bootstrap(voters),
            file_bytes: 0,
        };
        store.replay_file()?;
        Ok(store.mirror)
    }

    fn recover(&mut self) -> Result<(), ControlError> {
        let (position, len) = self.replay_file()?;
        if position < len {
            self.disk.truncate(&self.path, position as u64)?;
            self.disk.sync(&self.path)?;
        }
        self.file_bytes = position as u64;
        Ok(())
    }

    /// Replays the file's records into the mirror; returns where the valid records end and the
    /// file's length.
    fn replay_file(&mut self) -> Result<(usize, usize), ControlError> {
        let bytes = read_all(self.disk.as_ref(), &self.path)?;
        let mut position = 0usize;
        let mut base_seen = false;
        while position < bytes.len() {
            let Some((kind, payload, next)) = decode_record(&bytes, position) else {
                if next_record_is_valid(&bytes, position) {
                    return Err(ControlError::Corrupt(format!(
                        "{}: bad record at byte {position} before valid ones",
                        self.path.display()
                    )));
                }
                tracing::warn!(
                    path = %self.path.display(),
                    position,
                    dropped = bytes.len() - position,
                    "raft log: torn tail dropped"
                );
                break;
            };
            self.replay(kind, payload, base_seen, position)?;
            base_seen = true;
            position = next;
        }
        if !base_seen {
            return Err(ControlError::Corrupt(format!(
                "{}: no base record",
                self.path.display()
            )));
        }
        assert!(position <= bytes.len());
        Ok((position, bytes.len()))
    }

    /// Applies one recovered record to the mirror, refusing records that cannot follow the
    /// state so far (they would trip the store's assertions).
    fn replay(
        &mut self,
        kind: Kind,
        payload: &[u8],
        base_seen: bool,
        position: usize,
    ) -> Result<(), ControlError> {
        let corrupt =
            |what: &str| ControlError::Corrupt(format!("record at byte {position}: {what}"));
        if base_seen == (kind == Kind::Base) {
            return Err(corrupt("the base record must come first, and only first"));
        }
        match kind {
            Kind::Base => {
                let snapshot = Snapshot::parse_from_bytes(payload).map_err(|_| corrupt("base"))?;
                let voters = snapshot.get_metadata().get_conf_state().voters.clone();
                if voters.is_empty() || voters.contains(&0) {
                    return Err(corrupt("base without voters"));
                }
                let mut store = RaftStore::bootstrap(&voters);
                store.install_snapshot(snapshot);
                // Rejoining only if a rejoining record follows.
                store.set_rejoining(false);
                self.mirror = store;
            }
            Kind::Install => {
                let snapshot =
                    Snapshot::parse_from_bytes(payload).map_err(|_| corrupt("snapshot"))?;
                if snapshot.get_metadata().index < self.mirror.snapshot_index() {
                    return Err(corrupt("snapshot behind the base"));
                }
                self.mirror.install_snapshot(snapshot);
            }
            Kind::Entry => {
                let entry = Entry::parse_from_bytes(payload).map_err(|_| corrupt("entry"))?;
                if entry.index > self.mirror.index_last() + 1 {
                    return Err(corrupt("entry leaves a gap"));
                }
                self.mirror.append(&[entry]);
            }
            Kind::HardState => {
                let hard_state =
                    HardState::parse_from_bytes(payload).map_err(|_| corrupt("hard state"))?;
                self.mirror.apply_persist(&PersistBatch {
                    hard_state: Some(hard_state),
                    ..PersistBatch::default()
                });
            }
            Kind::Rejoining | Kind::CaughtUp if !payload.is_empty() => {
                return Err(corrupt("a marker record with a payload"));
            }
            Kind::Rejoining => self.mirror.set_rejoining(true),
            Kind::CaughtUp => self.mirror.set_rejoining(false),
        }
        Ok(())
    }
}

/// Makes `dir` and each of its ancestors durable entries of their parents.
fn sync_dir_chain(disk: &dyn Disk, dir: &Path) -> Result<(), ControlError> {
    for ancestor in dir.ancestors().skip(1) {
        disk.sync_dir(ancestor)?;
    }
    Ok(())
}

/// The whole file (the raft log stays small: it is rewritten at every snapshot).
fn read_all(disk: &dyn Disk, path: &Path) -> Result<Vec<u8>, ControlError> {
    let len = usize::try_from(disk.len(path)?).expect("file fits memory");
    let mut bytes = vec![0u8; len];
    let read = disk.read_at(path, 0, &mut bytes)?;
    if read != len {
        return Err(ControlError::Corrupt(format!(
            "{}: short read {read} of {len}",
            path.display()
        )));
    }
    Ok(bytes)
}

fn to_bytes(message: &dyn protobuf::Message) -> Result<Vec<u8>, ControlError> {
    message
        .write_to_bytes()
        .map_err(|e| ControlError::Encode(e.to_string()))
}

/// Appends one record (header, kind, payload) to `out`.
fn encode_record(kind: Kind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ControlError> {
    let length = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    if length > RECORD_BYTES_MAX {
        return Err(ControlError::Encode(format!(
            "record of {length} bytes over {RECORD_BYTES_MAX}"
        )));
    }
    let start = out.len();
    let mut crc = crc32c_update(0, &[kind as u8]);
    crc = crc32c_update(crc, payload);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
    assert_eq!(out.len() - start, HEADER_BYTES + length as usize);
    Ok(())
}

/// The record at `position`: kind, payload and the next record's position, or `None` when it
/// is incomplete, oversized, of unknown kind or fails its CRC.
fn decode_record(bytes: &[u8], position: usize) -> Option<(Kind, &[u8], usize)> {
    let header = bytes.get(position..position.checked_add(HEADER_BYTES)?)?;
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if length == 0 || length > RECORD_BYTES_MAX {
        return None;
    }
    let body_start = position + HEADER_BYTES;
    let end = body_start.checked_add(length as usize)?;
    let body = bytes.get(body_start..end)?;
    if crc32c_update(0, body) != crc {
        return None;
    }
    let kind = Kind::from_byte(body[0])?;
    Some((kind, &body[1..], end))
}

/// Whether the bad record at `position` claims a plausible length and a valid record follows
/// it: then the damage is not a torn tail but corruption of synced bytes.
fn next_record_is_valid(bytes: &[u8], position: usize) -> bool {
    let Some(header) = bytes.get(position..position + HEADER_BYTES) else {
        return false;
    };
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    if length == 0 || length > RECORD_BYTES_MAX {
        return false;
    }
    let next = position + HEADER_BYTES + length as usize;
    decode_record(bytes, next).is_some()
}

/// CRC-32C (Castagnoli), the checksum Kafka and rill's log use, bitwise reflected form.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Continues a CRC-32C over `data` (start with 0).
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for byte in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(*byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answer() {
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(crc32c_update(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c_update(0, b"123456789"), 0xE306_9283);
        let split = crc32c_update(crc32c_update(0, b"1234"), b"56789");
        assert_eq!(split, 0xE306_9283);
    }

    #[test]
    fn record_round_trip_and_damage() {
        let mut out = Vec::new();
        encode_record(Kind::Entry, b"hello", &mut out).expect("small");
        encode_record(Kind::HardState, b"hs", &mut out).expect("small");
        let (kind, payload, next) = decode_record(&out, 0).expect("valid");
        assert_eq!((kind, payload), (Kind::Entry, &b"hello"[..]));
        assert!(decode_record(&out, next).is_some());
        let mut flipped = out.clone();
        flipped[HEADER_BYTES + 2] ^= 1;
        assert!(decode_record(&flipped, 0).is_none());
        assert!(
            next_record_is_valid(&flipped, 0),
            "corruption before a valid record"
        );
        assert!(decode_record(&out[..out.len() - 1], next).is_none(), "torn");
    }
}
