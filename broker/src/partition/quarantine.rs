//! A replica whose log went bad is set aside and rebuilt from the leader.
//!
//! When a partition fails (an I/O error, a batch whose CRC no longer matches) it stops serving
//! and leaves a marker in its directory. The next time the broker opens it — after a restart —
//! the marker makes it verify the whole log (every batch's CRC; opening checks only the bytes
//! after the recovery point). A log that is sound (the failure was the disk's at that moment: a
//! full disk, a transient I/O error) is kept; a corrupt one, or one that cannot even be opened for
//! corruption, is moved aside to `<dir>.quarantined/` for the operator and the replica starts
//! empty. It is a follower out of the ISR by then (its broker reported it offline), so it fetches
//! everything again from the leader — or starts at the leader's log start — and rejoins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log_core::{Disk, LogConfig, LogError, PartitionLog};

/// The file a failed partition leaves in its directory.
pub const FAILED_MARKER: &str = "failed.marker";

/// Most bytes one verification read covers.
const VERIFY_READ_BYTES: usize = 1 << 20;

/// Leaves the marker (best effort: the disk may be what failed).
pub fn mark_failed(disk: &dyn Disk, dir: &Path) {
    let marker = dir.join(FAILED_MARKER);
    let marked = match disk.create(&marker) {
        Ok(()) | Err(log_core::DiskError::AlreadyExists(_)) => disk.sync_dir(dir),
        Err(error) => Err(error),
    };
    if let Err(error) = marked {
        tracing::warn!(dir = %dir.display(), %error, "cannot mark the failed partition");
    }
}

/// Is this the log's bytes gone bad (as opposed to the disk refusing an operation)?
fn is_corruption(error: &LogError) -> bool {
    matches!(
        error,
        LogError::CorruptBatch { .. }
            | LogError::CorruptBelowRecoveryPoint { .. }
            | LogError::CorruptCheckpoint { .. }
    )
}

/// Opens the log in `dir`, verifying it first when it failed last time; a corrupt log is moved
/// aside and an empty one opened in its place. Returns the log and, when it was set aside, where.
pub fn open_log(
    disk: &Arc<dyn Disk>,
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(PartitionLog, Option<PathBuf>), LogError> {
    let marker = dir.join(FAILED_MARKER);
    let failed_before = disk.exists(&marker)?;
    let corruption = match PartitionLog::open(disk.clone(), dir, config.clone(), now_ms) {
        Ok(log) if !failed_before => return Ok((log, None)),
        Ok(log) => match verify(&log) {
            Ok(()) => {
                disk.remove(&marker)?;
                disk.sync_dir(dir)?;
                tracing::info!(dir = %dir.display(), "the failed partition's log verified sound");
                return Ok((log, None));
            }
            Err(error) if is_corruption(&error) => error,
            Err(error) => return Err(error),
        },
        Err(error) if is_corruption(&error) => error,
        Err(error) => return Err(error),
    };
    let aside = set_aside(disk.as_ref(), dir)?;
    tracing::warn!(dir = %dir.display(), aside = %aside.display(), %corruption,
        "corrupt log set aside; the replica starts empty and is rebuilt from the leader");
    let log = PartitionLog::open(disk.clone(), dir, config.clone(), now_ms)?;
    assert_eq!(log.log_start_offset(), log.log_end_offset(), "an empty log");
    Ok((log, Some(aside)))
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

/// Moves every file of `dir` into `<dir>.quarantined/` (replacing an older quarantine of the same
/// partition), durably, leaving `dir` empty.
fn set_aside(disk: &dyn Disk, dir: &Path) -> Result<PathBuf, LogError> {
    let mut name = dir.as_os_str().to_os_string();
    name.push(".quarantined");
    let aside = PathBuf::from(name);
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
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_core::{BatchBuilder, MemDisk};
    use wire::{LeaderEpoch, Offset};

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
        let (mut log, aside) = open_log(&handle, Path::new("t-0"), &config(), 0).expect("opens");
        assert_eq!(aside, None);
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
        mark_failed(handle.as_ref(), Path::new("t-0"));
        let (log, aside) = open_log(&handle, Path::new("t-0"), &config(), 0).expect("opens");
        assert_eq!((aside, log.log_end_offset()), (None, Offset(10)));
        assert!(!handle
            .exists(&Path::new("t-0").join(FAILED_MARKER))
            .expect("lists"));
    }

    #[test]
    fn a_failed_log_with_a_rotten_sealed_segment_is_set_aside_and_reopened_empty() {
        let disk = MemDisk::new(2);
        let handle = written(&disk);
        disk.flip_bit_at(Path::new("t-0/00000000000000000000.log"), 100, 3)
            .expect("flips");
        // Opening alone does not see it: the segment is sealed below the recovery point.
        let (log, _) = open_log(&handle, Path::new("t-0"), &config(), 0).expect("opens");
        assert_eq!(log.log_end_offset(), Offset(10));
        drop(log);
        mark_failed(handle.as_ref(), Path::new("t-0"));
        let (log, aside) = open_log(&handle, Path::new("t-0"), &config(), 0).expect("opens");
        assert_eq!(aside, Some(PathBuf::from("t-0.quarantined")));
        assert_eq!(log.log_end_offset(), log.log_start_offset(), "starts empty");
        let kept = handle.list(Path::new("t-0.quarantined")).expect("lists");
        assert!(kept.contains(&"00000000000000000000.log".to_string()));
        assert!(kept.contains(&FAILED_MARKER.to_string()));
    }
}
