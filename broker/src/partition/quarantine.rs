//! A replica whose log went bad is set aside and rebuilt from the leader.
//!
//! When a partition fails (an I/O error, a batch whose CRC no longer matches) it stops serving
//! and leaves a marker in its directory. At the next start, the broker's storage check
//! (`node::storage`) verifies such a log whole (every batch's CRC; opening checks only the bytes
//! after the recovery point). A log that is sound (the failure was the disk's at that moment: a
//! full disk, a transient I/O error) is kept; a corrupt one, or one that cannot even be opened for
//! corruption, is moved aside to `<dir>.quarantined/` for the operator, the partition starts
//! empty, and the broker registers as not clean (out of every ELR: it lost flushed data). It
//! fetches everything again from the leader — or starts at the leader's log start — and rejoins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log_core::{Disk, LogConfig, LogError, PartitionLog};

/// The file a failed partition leaves in its directory.
pub const FAILED_MARKER: &str = "failed.marker";

/// Most bytes one verification read covers.
const VERIFY_READ_BYTES: usize = 1 << 20;

/// Longest marker content read back (an offset in decimal).
const MARKER_BYTES_MAX: u64 = 32;

/// Leaves the marker, holding the offset below which the copy had flushed everything (best
/// effort: the disk may be what failed). The state checkpoint's recovery point is written only
/// every `checkpoint_interval_bytes` and may lag it, so the check after a restart takes the
/// marker's word for what the log must still hold.
pub fn mark_failed(disk: &dyn Disk, dir: &Path, flushed: wire::Offset) {
    let marker = dir.join(FAILED_MARKER);
    let text = flushed.0.to_string();
    let marked = match disk.create(&marker) {
        Ok(()) | Err(log_core::DiskError::AlreadyExists(_)) => disk
            .truncate(&marker, 0)
            .and_then(|()| disk.write_at(&marker, 0, text.as_bytes()))
            .and_then(|()| disk.sync(&marker))
            .and_then(|()| disk.sync_dir(dir)),
        Err(error) => Err(error),
    };
    if let Err(error) = marked {
        tracing::warn!(dir = %dir.display(), %error, "cannot mark the failed partition");
    }
}

/// The flushed offset a marker holds (zero for an empty, torn or unreadable one: the check then
/// trusts the state checkpoint, as before markers held one).
fn marked_flushed(disk: &dyn Disk, marker: &Path) -> wire::Offset {
    let mut buf = [0u8; MARKER_BYTES_MAX as usize];
    let len = disk.len(marker).unwrap_or(0).min(MARKER_BYTES_MAX) as usize;
    let read = disk.read_at(marker, 0, &mut buf[..len]).unwrap_or(0);
    std::str::from_utf8(&buf[..read])
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|offset| *offset >= 0)
        .map_or(wire::Offset::ZERO, wire::Offset)
}

/// What the start-up check found in one partition directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirVerdict {
    /// The log opens (and, after a failure, verifies): it is kept.
    Sound,
    /// The log is corrupt; it was moved to this directory and the partition starts empty.
    SetAside(PathBuf),
    /// The log is corrupt and the disk refused part of setting it aside (a rename or a sync):
    /// some of its files may already be in the quarantine, so whatever the directory holds now
    /// is not what the copy flushed, and a later check that finds it sound (an emptied
    /// directory is) must not call the copy intact (seed 255251).
    SetAsideFailed(String),
    /// The log cannot be opened for another reason (an I/O error): left as it is; opening the
    /// partition fails again and the broker reports the replica offline.
    Unopenable(String),
}

/// The check of one partition directory, at start-up and before a failed partition is reopened:
/// opens the log, verifies every batch when the partition failed (the marker, or `failed` from a
/// running partition whose marker the failing disk may have refused), and sets a corrupt log
/// aside. Errors only when the disk refuses to read or remove the failed marker; a set-aside the
/// disk refused part way is [`DirVerdict::SetAsideFailed`].
pub fn check_dir(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    failed: bool,
    flushed: wire::Offset,
    journal: Option<log_core::journal::JournalClock>,
) -> Result<DirVerdict, LogError> {
    let marker = dir.join(FAILED_MARKER);
    let marked = disk.exists(&marker)?;
    let failed_before = marked || failed;
    let flushed = if marked {
        flushed.max(marked_flushed(disk.as_ref(), &marker))
    } else {
        flushed
    };
    let opened =
        PartitionLog::open_journaled(disk.clone(), dir, config.clone(), 0, flushed, journal);
    let corruption = match opened {
        Ok(_) if !failed_before => return Ok(DirVerdict::Sound),
        Ok(log) => match verify(&log) {
            Ok(()) => {
                if marked {
                    disk.remove(&marker)?;
                    disk.sync_dir(dir)?;
                }
                tracing::info!(dir = %dir.display(), "the failed partition's log verified sound");
                return Ok(DirVerdict::Sound);
            }
            Err(error) if error.is_corruption() => error,
            Err(error) => return Ok(DirVerdict::Unopenable(error.to_string())),
        },
        Err(error) if error.is_corruption() => error,
        Err(error) => return Ok(DirVerdict::Unopenable(error.to_string())),
    };
    let aside = match set_aside(disk.as_ref(), dir) {
        Ok(aside) => aside,
        Err(error) => {
            tracing::error!(dir = %dir.display(), %corruption, %error,
                "flushed data is corrupt and the disk refused part of setting the log aside");
            return Ok(DirVerdict::SetAsideFailed(error.to_string()));
        }
    };
    tracing::error!(dir = %dir.display(), aside = %aside.display(), %corruption,
        "flushed data is corrupt: the log is set aside and rebuilt from the leader");
    Ok(DirVerdict::SetAside(aside))
}

/// Bytes the repair of a failed partition writes and syncs before reopening it: the disk must
/// take at least a few appends' worth again (a full disk whose space came back).
pub const PROBE_BYTES: usize = 1 << 20;

/// The file the probe writes in the partition's directory (removed again).
const PROBE_FILE: &str = "repair.probe";

/// Whether the disk takes writes in `dir` again: writes, syncs and removes [`PROBE_BYTES`].
pub fn probe_writable(disk: &dyn Disk, dir: &Path) -> Result<(), log_core::DiskError> {
    disk.create_dir_all(dir)?;
    let probe = dir.join(PROBE_FILE);
    if disk.exists(&probe)? {
        disk.remove(&probe)?;
    }
    disk.create(&probe)?;
    let written = disk
        .write_at(&probe, 0, &vec![0; PROBE_BYTES])
        .and_then(|()| disk.sync(&probe));
    let removed = disk.remove(&probe).and_then(|()| disk.sync_dir(dir));
    written.and(removed)
}

/// Reads every batch of the log (each read checks CRCs).
fn verify(log: &PartitionLog) -> Result<(), LogError> {
    let mut from = log.log_start_offset();
    let end = log.log_end_offset();
    while from < end {
        let read = log.read(from, VERIFY_READ_BYTES)?;
        if read.next_offset <= from {
            break;
        }
        from = read.next_offset;
    }
    Ok(())
}

/// Where a corrupt log of the partition in `dir` is kept: `<dir>.quarantined`.
pub fn aside_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(".quarantined");
    PathBuf::from(name)
}

/// Moves every file of `dir` into `<dir>.quarantined/` (replacing an older quarantine of the same
/// partition), durably, leaving `dir` empty.
fn set_aside(disk: &dyn Disk, dir: &Path) -> Result<PathBuf, LogError> {
    // The data directory is unclean before any flushed byte moves, durably: a process that
    // dies before the controller learns the copy lost data registers unclean at its next start
    // (seed 206111).
    mark_unclean(disk)?;
    let aside = aside_dir(dir);
    if disk.exists(&aside)? {
        disk.remove_dir(&aside, true)?;
    }
    disk.create_dir_all(&aside)?;
    for file in disk.list(dir)? {
        disk.rename(&dir.join(&file), &aside.join(&file))?;
    }
    disk.sync_dir(&aside)?;
    disk.sync_dir(dir)?;
    let parent = dir.parent().unwrap_or_else(|| Path::new(""));
    disk.sync_dir(parent)?;
    // The copy's flushed data is gone and the controller does not know yet: a power loss now
    // must still find the directory unclean at the next start (mutant 21).
    buggify::crash_point("crash.log_set_aside");
    Ok(aside)
}

/// The file in the data directory whose presence says the directory lost flushed data the
/// controller has not yet been told of (`node::storage`): the next start registers unclean,
/// which takes the broker out of every ELR, until an unclean registration is in the metadata.
pub const UNCLEAN_MARKER: &str = "rill-storage.unclean";

/// Writes [`UNCLEAN_MARKER`] durably, if it is not there.
pub fn mark_unclean(disk: &dyn Disk) -> Result<(), log_core::DiskError> {
    let unclean = Path::new(UNCLEAN_MARKER);
    if !disk.exists(unclean)? {
        disk.create(unclean)?;
        disk.sync_dir(Path::new(""))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_core::{BatchBuilder, MemDisk};
    use wire::{LeaderEpoch, Offset};

    /// `check_dir` of `t-0` without a journal.
    fn check_t0(
        handle: &Arc<dyn Disk>,
        failed: bool,
        flushed: Offset,
    ) -> Result<DirVerdict, LogError> {
        check_dir(handle, Path::new("t-0"), &config(), failed, flushed, None)
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes_max: 1024,
            checkpoint_interval_bytes: 1,
            ..LogConfig::default()
        }
    }

    /// A log of 10 batches over several segments, flushed and checkpointed (so opening it does
    /// not scan the sealed segments).
    fn written(disk: &MemDisk) -> Arc<dyn Disk> {
        let handle = disk.as_disk();
        let mut log =
            PartitionLog::open(handle.clone(), Path::new("t-0"), config(), 0).expect("opens");
        for i in 0..10_u8 {
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(&[i; 200][..]), 1_000, &[]);
            log.append_as_leader(&builder.build(), LeaderEpoch(0), 0)
                .expect("appends");
        }
        log.flush().expect("flushes");
        assert!(log.segment_count() > 2);
        assert_eq!(log.recovery_point(), Offset(10));
        handle
    }

    #[test]
    fn a_failed_log_that_verifies_sound_is_kept() {
        let disk = MemDisk::new(1);
        let handle = written(&disk);
        mark_failed(handle.as_ref(), Path::new("t-0"), Offset::ZERO);
        let verdict = check_t0(&handle, false, Offset::ZERO).expect("checks");
        assert_eq!(verdict, DirVerdict::Sound);
        assert!(!handle
            .exists(&Path::new("t-0").join(FAILED_MARKER))
            .expect("lists"));
    }

    #[test]
    fn a_failed_log_with_a_rotten_sealed_segment_is_set_aside() {
        let disk = MemDisk::new(2);
        let handle = written(&disk);
        disk.flip_bit_at(Path::new("t-0/00000000000000000000.log"), 100, 3)
            .expect("flips");
        // Without the marker the check does not read sealed segments below the recovery point.
        let verdict = check_t0(&handle, false, Offset::ZERO).expect("checks");
        assert_eq!(verdict, DirVerdict::Sound);
        mark_failed(handle.as_ref(), Path::new("t-0"), Offset::ZERO);
        let verdict = check_t0(&handle, false, Offset::ZERO).expect("checks");
        assert_eq!(
            verdict,
            DirVerdict::SetAside(PathBuf::from("t-0.quarantined"))
        );
        let log = PartitionLog::open(handle.clone(), Path::new("t-0"), config(), 0).expect("opens");
        assert_eq!(log.log_end_offset(), log.log_start_offset(), "starts empty");
        let kept = handle.list(Path::new("t-0.quarantined")).expect("lists");
        assert!(kept.contains(&"00000000000000000000.log".to_string()));
        assert!(kept.contains(&FAILED_MARKER.to_string()));
    }

    /// Seed 255251: the repair's set-aside moved the log's files, then the disk refused a
    /// sync; the next try found the emptied directory sound, the copy reported itself intact,
    /// stayed in the ELR and was elected with an empty log. A set-aside the disk refuses is its
    /// own verdict (here the quarantine's name is taken by a file the disk cannot replace), and
    /// an emptied directory is what a later check calls sound: only that verdict tells.
    #[test]
    fn a_set_aside_the_disk_refuses_is_told_apart_from_a_sound_log() {
        let disk = MemDisk::new(5);
        let handle = written(&disk);
        disk.flip_bit_at(Path::new("t-0/00000000000000000000.log"), 100, 3)
            .expect("flips");
        handle
            .create(Path::new("t-0.quarantined"))
            .expect("creates");
        let verdict = check_t0(&handle, true, Offset::ZERO).expect("checks");
        assert!(
            matches!(verdict, DirVerdict::SetAsideFailed(_)),
            "{verdict:?}"
        );
        handle
            .remove(Path::new("t-0.quarantined"))
            .expect("removes");
        for file in handle.list(Path::new("t-0")).expect("lists") {
            handle
                .remove(&Path::new("t-0").join(file))
                .expect("removes");
        }
        let verdict = check_t0(&handle, true, Offset::ZERO).expect("checks");
        assert_eq!(verdict, DirVerdict::Sound, "an emptied directory verifies");
    }

    #[test]
    fn a_directory_that_is_a_file_is_unopenable_not_fatal() {
        let disk = MemDisk::new(3);
        let handle = disk.as_disk();
        handle.create(Path::new("t-0")).expect("creates");
        let verdict = check_t0(&handle, false, Offset::ZERO).expect("checks");
        assert!(matches!(verdict, DirVerdict::Unopenable(_)), "{verdict:?}");
    }

    /// A running partition whose disk refused even the marker is still verified whole when its
    /// repair asks for it.
    #[test]
    fn a_repair_verifies_the_log_whole_without_the_marker() {
        let disk = MemDisk::new(4);
        let handle = written(&disk);
        disk.flip_bit_at(Path::new("t-0/00000000000000000000.log"), 100, 3)
            .expect("flips");
        let verdict = check_t0(&handle, true, Offset::ZERO).expect("checks");
        assert_eq!(
            verdict,
            DirVerdict::SetAside(PathBuf::from("t-0.quarantined"))
        );
    }

    /// Ten flushed batches of one record each, the sixth with a bit flipped in its base offset
    /// (outside the batch CRC: 5 becomes 5 + 8192), under the production checkpoint interval
    /// (1 MiB): the state checkpoint's recovery point still says 0.
    fn flushed_with_a_flip_above_the_checkpoint(disk: &MemDisk) -> Arc<dyn Disk> {
        flushed_with_a_flip_in_batch(disk, 5)
    }

    /// Like [`flushed_with_a_flip_above_the_checkpoint`], the flip in batch `flipped`.
    fn flushed_with_a_flip_in_batch(disk: &MemDisk, flipped: usize) -> Arc<dyn Disk> {
        flushed_with_a_flip_at(disk, flipped, 6, 5)
    }

    /// Ten flushed batches as above, bit `bit` of byte `byte` of batch `flipped` flipped.
    fn flushed_with_a_flip_at(
        disk: &MemDisk,
        flipped: usize,
        byte: u64,
        bit: u32,
    ) -> Arc<dyn Disk> {
        let handle = disk.as_disk();
        let config = LogConfig::default();
        let mut log =
            PartitionLog::open(handle.clone(), Path::new("t-0"), config, 0).expect("opens");
        let file = Path::new("t-0/00000000000000000000.log");
        let mut positions = Vec::new();
        for i in 0..10_u8 {
            positions.push(handle.len(file).expect("exists"));
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(&[i; 200][..]), 1_000, &[]);
            log.append_as_leader(&builder.build(), LeaderEpoch(0), 0)
                .expect("appends");
        }
        assert_eq!(log.flush().expect("flushes"), Offset(10), "all ten flushed");
        drop(log);
        disk.flip_bit_at(file, positions[flipped] + byte, bit)
            .expect("flips");
        handle
    }

    /// Seed 256896: a record count rotted from 1 to 65 fails the header's parse, which the
    /// start-up scan took for a torn tail without looking at the batch after it: the rotted
    /// batch and every valid one after it were cut, the log called sound, the broker registered
    /// clean, and its copy, elected from the ELR, lacked acknowledged records. With a valid
    /// batch after the damage the log is set aside; the last batch's damage stays a torn tail.
    #[test]
    fn a_rotted_header_field_with_valid_batches_after_it_is_corruption() {
        // Byte 60 is the low byte of the record count (bytes 57..61 of the header).
        let disk = MemDisk::new(10);
        let handle = flushed_with_a_flip_at(&disk, 5, 60, 6);
        assert_eq!(
            check_t0(&handle, false, Offset::ZERO).expect("checks"),
            DirVerdict::SetAside(PathBuf::from("t-0.quarantined")),
            "valid batches follow the rotted header"
        );
        let disk = MemDisk::new(11);
        let handle = flushed_with_a_flip_at(&disk, 9, 60, 6);
        assert_eq!(
            check_t0(&handle, false, Offset::ZERO).expect("checks"),
            DirVerdict::Sound,
            "the last batch's damage above the checkpoint is a torn tail"
        );
    }

    /// Seed 9656: the flip used to pass for a torn tail above the stale checkpoint; the log was
    /// cut at 5 and called sound, and the copy, elected from the ELR, lost acknowledged records.
    /// What the failed copy knew it had flushed now decides: during an in-place repair (the
    /// partition's own word) and after a restart (the marker's).
    #[test]
    fn a_flushed_batch_corrupt_above_a_stale_checkpoint_is_set_aside() {
        let aside = DirVerdict::SetAside(PathBuf::from("t-0.quarantined"));
        let disk = MemDisk::new(6);
        let handle = flushed_with_a_flip_above_the_checkpoint(&disk);
        let repair = check_t0(&handle, true, Offset(10));
        assert_eq!(repair.expect("checks"), aside, "repaired in place");

        let disk = MemDisk::new(7);
        let handle = flushed_with_a_flip_above_the_checkpoint(&disk);
        mark_failed(handle.as_ref(), Path::new("t-0"), Offset(10));
        let restart = check_t0(&handle, false, Offset::ZERO);
        assert_eq!(restart.expect("checks"), aside, "after a restart");

        // Above what was flushed, damage at the file's end is a torn tail; damage with a valid
        // batch after it is corruption all the same (seed 55602: a crash tears only the end).
        let disk = MemDisk::new(8);
        let handle = flushed_with_a_flip_in_batch(&disk, 9);
        mark_failed(handle.as_ref(), Path::new("t-0"), Offset(5));
        let verdict = check_t0(&handle, false, Offset::ZERO);
        assert_eq!(
            verdict.expect("checks"),
            DirVerdict::Sound,
            "only what was flushed must be there: above it, damage at the end is a torn tail"
        );
        let disk = MemDisk::new(9);
        let handle = flushed_with_a_flip_above_the_checkpoint(&disk);
        mark_failed(handle.as_ref(), Path::new("t-0"), Offset(5));
        let verdict = check_t0(&handle, false, Offset::ZERO);
        assert_eq!(
            verdict.expect("checks"),
            aside,
            "valid batches follow the damage"
        );
    }

    #[test]
    fn the_probe_fails_on_a_full_disk_and_passes_once_space_returns() {
        let disk = MemDisk::new(5);
        let handle = written(&disk);
        disk.set_faults(log_core::FaultConfig {
            capacity_bytes: Some(disk.used_bytes() + PROBE_BYTES as u64 / 2),
            ..log_core::FaultConfig::default()
        });
        let refused = probe_writable(handle.as_ref(), Path::new("t-0"));
        assert!(
            matches!(refused, Err(log_core::DiskError::Full(_))),
            "{refused:?}"
        );
        disk.set_faults(log_core::FaultConfig::default());
        probe_writable(handle.as_ref(), Path::new("t-0")).expect("space is back");
        let left: Vec<String> = handle.list(Path::new("t-0")).expect("lists");
        assert!(
            !left.iter().any(|f| f == PROBE_FILE),
            "the probe is removed"
        );
    }
}
