//! The start-up storage check: does this data directory still hold everything it flushed?
//!
//! The answer goes into the broker's registration (`clean_shutdown` on the wire, Kafka's name).
//! Kafka removes a broker that stopped uncleanly from every ELR (KIP-966), because Kafka
//! acknowledges records that are only in the page cache. rill's high watermark counts only
//! flushed data, so a crash loses nothing acknowledged and the broker stays eligible — unless its
//! storage lost flushed bytes, which this check finds:
//!
//! - a directory without the storage marker is new (or was wiped): nothing it once held is here;
//! - a partition log whose flushed part fails its checksums (a bit flip at rest) cannot be opened,
//!   and one that failed while running (it left `failed.marker`) is verified whole: a corrupt log
//!   is set aside to `<dir>.quarantined/`, so the partition is rebuilt from its leader, and the
//!   broker reports itself unclean, which takes it out of every ELR before it can be elected with
//!   the gap (`partition::quarantine`);
//! - a log that cannot be opened for another reason (an I/O error) is left alone: the partition's
//!   own open fails and the broker reports that replica offline; the broker still starts.

use std::path::Path;
use std::sync::Arc;

use log_core::{Disk, LogConfig};

use crate::partition::quarantine::{self, DirVerdict};
use crate::partition::JournalWriter;
use log_core::journal::JournalClock;

use super::NodeError;

/// The file whose presence says this data directory has been in use (written at first start).
const STORAGE_MARKER: &str = "rill-storage";

/// The file whose presence says this directory's loss has not yet reached the controller
/// ([`quarantine::UNCLEAN_MARKER`]): a check writes it for a new directory and before it sets a
/// log aside or salvages a damaged journal; it stays until an unclean registration of this
/// broker is in the metadata, and so does the mark a running broker's repair writes before it
/// sets a failed log aside (or the journal before it releases a failed copy's records), until
/// that copy's not-intact report is heard ([`clear_unclean_mark_once_reported`]). Without it,
/// a process that died between creating a new directory and registering found the marker at
/// its next start, an "intact" directory with nothing in it, and registered as clean: the controller then elected that empty replica from
/// the ELR it had been in before its disk was wiped (found by the cluster simulation, seed 423,
/// a wipe followed by a restart before the registration: acknowledged records lost).
const UNCLEAN_MARKER: &str = quarantine::UNCLEAN_MARKER;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCheck {
    /// Every flushed byte the directory ever held is still there and valid.
    pub intact: bool,
    /// Partition directories deleted because their flushed data was corrupt.
    pub quarantined: Vec<String>,
}

/// What [`open`] found and opened.
pub struct Opened {
    /// Kafka's "clean shutdown" flag, in rill's sense: the logs hold everything they flushed
    /// ([`StorageCheck::intact`]).
    pub clean_shutdown: bool,
    /// The journal, replayed, when flushes go to one (`log.journal`).
    pub journal: Option<JournalWriter>,
}

/// The data directory at start-up: the journal replayed into the segment files, then the
/// [`check`] of every log (which opens each with the journal's clock), then the journal kept
/// for the IO worker or (`log.journal = false`) removed. `reserved` names directories that
/// are not partition logs.
pub fn open(
    disk: &Arc<dyn Disk>,
    settings: &crate::node::config::LogSettings,
    reserved: &[&str],
) -> Result<Opened, NodeError> {
    let (journal, damaged) = replay_journal(disk, settings.journal_file_bytes)?;
    let clock = settings.journal.then(|| journal.clock());
    let mut reserved = reserved.to_vec();
    reserved.push(JOURNAL_DIR);
    let clean_shutdown = check(disk, &reserved, clock, damaged)?.intact;
    let journal = if settings.journal {
        Some(journal)
    } else {
        remove_journal(disk)?;
        None
    };
    Ok(Opened {
        clean_shutdown,
        journal,
    })
}

/// The journal's directory in the data directory (`log.journal`).
pub const JOURNAL_DIR: &str = "journal";

/// Opens the broker's journal and replays it into the partition logs' segment files
/// (`log_core::wal::replay`): before [`check`] or any other log open. A journal whose synced
/// records are damaged (a bit flipped at rest) does not stop the broker: every record that
/// can still be read is replayed (`log_core::wal::salvage`), the files go, and the broker
/// starts unclean — a damaged record may have held acknowledged bytes its log lost — marked so
/// before the files go, so a crash in between cannot make it clean. Returns the writer and
/// whether the journal was damaged.
fn replay_journal(
    disk: &Arc<dyn Disk>,
    file_bytes_max: u64,
) -> Result<(JournalWriter, bool), NodeError> {
    let journal_error = |e: log_core::LogError| NodeError::Disk(format!("journal: {e}"));
    let dir = Path::new(JOURNAL_DIR);
    let mut damaged = false;
    let replayed = match log_core::wal::replay(disk.as_ref(), dir, file_bytes_max) {
        Err(corrupt @ log_core::LogError::CorruptJournal { .. }) => {
            buggify::probe!("node.storage.journal_salvaged");
            tracing::error!(error = %corrupt,
                "the journal is damaged: replaying what can be read; this broker starts unclean");
            mark_unclean(disk)?;
            let salvaged = log_core::wal::salvage(disk.as_ref(), dir).map_err(journal_error)?;
            tracing::warn!(?salvaged, "journal salvaged");
            damaged = true;
            log_core::wal::replay(disk.as_ref(), dir, file_bytes_max)
        }
        other => other,
    };
    let (journal, clock, report) = replayed.map_err(journal_error)?;
    if report.replayed > 0 {
        buggify::probe!("node.storage.journal_replayed");
    }
    tracing::info!(
        records = report.records,
        replayed = report.replayed,
        bytes = report.bytes,
        skipped = report.skipped,
        torn_bytes = report.torn_bytes,
        "journal opened"
    );
    Ok((JournalWriter::new(journal, clock, disk.clone()), damaged))
}

/// Writes the unclean mark ([`UNCLEAN_MARKER`]) durably, if it is not there.
fn mark_unclean(disk: &Arc<dyn Disk>) -> Result<(), NodeError> {
    quarantine::mark_unclean(disk.as_ref()).map_err(|e| NodeError::Disk(e.to_string()))
}

/// Removes the journal (`log.journal = false`), after [`check`] opened every log (each synced
/// what the replay wrote): records left behind would be replayed into logs truncated while
/// no journal raised their floors.
fn remove_journal(disk: &Arc<dyn Disk>) -> Result<(), NodeError> {
    let io = |e: log_core::DiskError| NodeError::Disk(e.to_string());
    let dir = Path::new(JOURNAL_DIR);
    if disk.exists(dir).map_err(io)? {
        disk.remove_dir(dir, true).map_err(io)?;
        disk.sync_dir(Path::new("")).map_err(io)?;
    }
    Ok(())
}

/// Checks the data directory on `disk` (see the module docs). `reserved` names directories
/// that are not partition logs (the raft state); `journal` is the journal's clock when flushes
/// go to one (the logs opened here write their journal floors from it); `journal_damaged`: the
/// journal lost records at rest, so the directory is not intact.
pub fn check(
    disk: &Arc<dyn Disk>,
    reserved: &[&str],
    journal: Option<JournalClock>,
    journal_damaged: bool,
) -> Result<StorageCheck, NodeError> {
    let io = |e: log_core::DiskError| NodeError::Disk(e.to_string());
    let marker = Path::new(STORAGE_MARKER);
    let known = disk.exists(marker).map_err(io)?;
    let unclean = Path::new(UNCLEAN_MARKER);
    let unreported = disk.exists(unclean).map_err(io)?;
    // A new directory is unclean, durably before its storage marker exists: a crash in between
    // leaves the next start unclean, never clean. Whatever loses data later in the check marks
    // the directory itself first (a set-aside log, a salvaged journal). A mark written here for
    // a known directory would outlive a check the disk interrupted: the retry took it for a
    // loss found earlier and registered unclean, out of every ELR, a broker holding whole
    // copies (seed 276841).
    if !known {
        mark_unclean(disk)?;
        disk.create(marker).map_err(io)?;
        disk.sync_dir(Path::new("")).map_err(io)?;
        tracing::info!("new data directory");
    }
    let mut quarantined = Vec::new();
    for name in disk.list(Path::new("")).map_err(io)? {
        if reserved.contains(&name.as_str()) || !is_partition_dir(&name) {
            continue;
        }
        // Lenient on offset gaps (compacted logs have them; the topic's real settings are not
        // known before the metadata arrives), strict on checksums.
        let config = LogConfig {
            compacted: true,
            ..LogConfig::default()
        };
        let dir = Path::new(&name);
        match quarantine::check_dir(
            disk,
            dir,
            &config,
            false,
            wire::Offset::ZERO,
            journal.clone(),
        )
        .map_err(|e| NodeError::Disk(e.to_string()))?
        {
            DirVerdict::Sound => {}
            DirVerdict::SetAside(_) => quarantined.push(name),
            // The unclean marker went first: the next start registers unclean.
            DirVerdict::SetAsideFailed(why) => return Err(NodeError::Disk(why)),
            DirVerdict::Unopenable(error) => {
                // Not this check's to decide: the partition's own open fails again and the broker
                // reports that replica offline, instead of the whole broker refusing to start.
                tracing::error!(dir = %name, %error, "partition log cannot be opened");
            }
        }
    }
    let intact = known && !unreported && quarantined.is_empty() && !journal_damaged;
    if intact {
        assert!(
            !disk.exists(unclean).map_err(io)?,
            "only a loss marks a known directory unclean, and a loss is not intact"
        );
    } else if unreported {
        buggify::probe!("node.storage.restarted_before_its_unclean_registration");
        tracing::info!("an earlier start found data lost and did not register it: unclean again");
    }
    Ok(StorageCheck {
        intact,
        quarantined,
    })
}

/// Removes the unclean mark once every loss it stood for reached the controller: `unreported()`
/// says whether one has not (a start-up loss whose unclean registration is not in the metadata
/// yet, a failed copy whose report is under way). Left in place, a running repair's mark made
/// the next start register unclean although that copy's loss had been reported, which took the
/// broker out of every ELR, also where it held the last whole copy (seed 280958). A loss marks
/// the directory before it loses anything and is visible to `unreported()` before that (its
/// copy failed first), so `unreported()` is asked again after the removal: a loss that marked
/// meanwhile (its mark perhaps the one removed) marks again. Whether the mark went.
pub fn clear_unclean_mark_once_reported(
    disk: &Arc<dyn Disk>,
    unreported: impl Fn() -> bool,
) -> Result<bool, log_core::DiskError> {
    let path = Path::new(UNCLEAN_MARKER);
    if unreported() || !disk.exists(path)? {
        return Ok(false);
    }
    disk.remove(path)?;
    disk.sync_dir(Path::new(""))?;
    if unreported() {
        quarantine::mark_unclean(disk.as_ref())?;
        return Ok(false);
    }
    Ok(true)
}

/// Kafka's `topic-partition` directory names.
fn is_partition_dir(name: &str) -> bool {
    name.rsplit_once('-')
        .is_some_and(|(topic, partition)| !topic.is_empty() && partition.parse::<u32>().is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use log_core::{BatchBuilder, LeaderEpoch, MemDisk, Offset, PartitionLog};

    /// This process's unclean registration is in the metadata and nothing else is unreported:
    /// the mark goes, as `Shared::clear_unclean_mark_once_reported` removes it.
    fn registration_committed(disk: &Arc<dyn Disk>) {
        clear_unclean_mark_once_reported(disk, || false).unwrap();
    }

    fn disk_with_log(seed: u64) -> (MemDisk, Arc<dyn Disk>) {
        let mem = MemDisk::new(seed);
        let disk = mem.as_disk();
        // Checkpoint at every flush, so the flushed data is below the recovery point.
        let config = LogConfig {
            checkpoint_interval_bytes: 0,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(disk.clone(), Path::new("t-0"), config, 0).unwrap();
        for i in 0..10 {
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(format!("value-{i}").as_bytes()), i, &[]);
            log.append_as_leader(&builder.build(), LeaderEpoch(0), i)
                .unwrap();
        }
        log.flush().unwrap();
        log.set_high_watermark(Offset(10)).unwrap();
        (mem, disk)
    }

    /// A bit flipped at rest in a synced journal record: the broker still starts, with every
    /// readable record replayed, an empty journal, and the directory unclean until that is
    /// registered (a record lost with the damage may have held acknowledged bytes).
    #[test]
    fn a_damaged_journal_is_salvaged_and_the_directory_reported_unclean() {
        let (mem, disk) = disk_with_log(3);
        let settings = crate::node::config::LogSettings::default();
        let opened = open(&disk, &settings, &[]).unwrap();
        assert!(!opened.clean_shutdown, "a new directory");
        registration_committed(&disk);
        let mut writer = opened.journal.expect("journaled by default");
        writer
            .journal
            .write_round(disk.as_ref(), &[b"not a segment write, but whole"])
            .unwrap();
        writer
            .journal
            .write_round(disk.as_ref(), &[b"later"])
            .unwrap();
        let file = Path::new(JOURNAL_DIR).join(format!("{:020}.wal", 0));
        mem.flip_bit_at(&file, 40, 0).unwrap();
        mem.crash();
        let opened = open(&disk, &settings, &[]).unwrap();
        assert!(!opened.clean_shutdown, "the journal lost a record");
        let writer = opened.journal.expect("journaled");
        assert_eq!(writer.clock().current(), 0, "an empty journal");
        mem.crash();
        assert!(
            !open(&disk, &settings, &[]).unwrap().clean_shutdown,
            "unclean until registered as such"
        );
    }

    #[test]
    fn a_new_directory_is_unclean_until_its_registration_is_committed() {
        let (mem, disk) = disk_with_log(1);
        let first = check(&disk, &[], None, false).unwrap();
        assert!(!first.intact, "no marker: a new (or wiped) directory");
        // A process that dies before its unclean registration is in the metadata is still
        // unclean at its next start, however often it restarts (seed 423).
        mem.crash();
        assert!(!check(&disk, &[], None, false).unwrap().intact);
        assert!(!check(&disk, &[], None, false).unwrap().intact);
        registration_committed(&disk);
        mem.crash();
        let second = check(&disk, &[], None, false).unwrap();
        assert!(second.intact);
        assert!(second.quarantined.is_empty());
        assert!(disk.exists(Path::new("t-0")).unwrap());
    }

    /// A checked directory whose registration is committed, then a bit of `t-0`'s first batch's
    /// magic byte flipped at rest: below the recovery point the open checks batch headers
    /// (record CRCs are checked when the records are read).
    fn registered_with_a_flipped_magic_byte(seed: u64) -> (MemDisk, Arc<dyn Disk>) {
        let (mem, disk) = disk_with_log(seed);
        check(&disk, &[], None, false).unwrap(); // writes the marker
        registration_committed(&disk);
        let segment = Path::new("t-0/00000000000000000000.log");
        let mut byte = [0u8; 1];
        disk.read_at(segment, 16, &mut byte).unwrap();
        disk.write_at(segment, 16, &[byte[0] ^ 0x10]).unwrap();
        disk.sync(segment).unwrap();
        (mem, disk)
    }

    #[test]
    fn a_log_with_corrupt_flushed_data_is_set_aside_and_the_directory_reported_unclean() {
        let (mem, disk) = registered_with_a_flipped_magic_byte(2);
        mem.crash();
        let found = check(&disk, &[], None, false).unwrap();
        assert!(!found.intact);
        assert_eq!(found.quarantined, vec!["t-0".to_string()]);
        assert!(disk.list(Path::new("t-0")).unwrap().is_empty(), "set aside");
        assert!(disk
            .exists(Path::new("t-0.quarantined/00000000000000000000.log"))
            .unwrap());
        mem.crash();
        assert!(
            !check(&disk, &[], None, false).unwrap().intact,
            "unclean until registered as such"
        );
        registration_committed(&disk);
        assert!(
            check(&disk, &[], None, false).unwrap().intact,
            "clean once registered unclean"
        );
    }

    /// A running broker's repair set a failed log aside (its flushed data was corrupt), and the
    /// process died before the controller learned that the copy lost data: the next start must
    /// register unclean, or the controller elects the empty copy from the ELR it was still in
    /// (found by the cluster simulation, seed 206111: a flip at rest failed the leader's log,
    /// the repair set it aside, a restart came before its report, and the empty copy was
    /// elected; every replica truncated to it and acknowledged records were lost).
    #[test]
    fn a_log_set_aside_by_a_running_brokers_repair_makes_the_next_start_unclean() {
        let (mem, disk) = registered_with_a_flipped_magic_byte(4);
        // The repair's check of the failed copy, as `Shared::try_repair` makes it.
        let verdict = quarantine::check_dir(
            &disk,
            Path::new("t-0"),
            &LogConfig::default(),
            true,
            Offset(10),
            None,
        )
        .unwrap();
        assert!(matches!(verdict, DirVerdict::SetAside(_)), "{verdict:?}");
        mem.crash();
        assert!(
            !check(&disk, &[], None, false).unwrap().intact,
            "the set-aside copy lost flushed data"
        );
    }

    /// Seed 276841: a start's check failed on a transient sync fault (removing a verified
    /// partition's failed marker) after it had marked the directory unclean for the time of the
    /// check; the retry found the mark, took it for a loss an earlier start had found and not
    /// registered, and registered unclean: out of every ELR, though it held whole copies, and a
    /// partition whose last in-sync copy it was stayed leaderless.
    #[test]
    fn a_check_the_disk_interrupts_leaves_no_loss_behind() {
        let (mem, disk) = disk_with_log(5);
        check(&disk, &[], None, false).unwrap();
        registration_committed(&disk);
        quarantine::mark_failed(disk.as_ref(), Path::new("t-0"), Offset(10));
        // The log opens (its recovery syncs the directory twice) and verifies; then the sync
        // of the directory the marker was removed from fails.
        mem.fail_at(log_core::FaultOp::Sync, Path::new("t-0"), 2, 1)
            .unwrap();
        assert!(check(&disk, &[], None, false).is_err(), "the disk refuses");
        let retried = check(&disk, &[], None, false).unwrap();
        assert!(retried.intact, "nothing was lost: {retried:?}");
        assert!(!disk
            .exists(&Path::new("t-0").join(quarantine::FAILED_MARKER))
            .unwrap());
    }

    /// Seed 280958: a running repair set a copy's log aside and its not-intact report was heard,
    /// but the directory's mark stayed, so the next start registered unclean and left every ELR.
    /// The mark goes once nothing is unreported, and comes back if a loss marked meanwhile.
    #[test]
    fn the_unclean_mark_goes_once_every_loss_is_reported() {
        let (mem, disk) = registered_with_a_flipped_magic_byte(6);
        quarantine::mark_unclean(disk.as_ref()).unwrap();
        let unclean = Path::new(UNCLEAN_MARKER);
        assert!(!clear_unclean_mark_once_reported(&disk, || true).unwrap());
        assert!(
            disk.exists(unclean).unwrap(),
            "a loss still unreported keeps it"
        );
        // A copy failed (and marked) between the first look and the removal: marked again.
        let looks = std::cell::Cell::new(0);
        let failed_meanwhile = || {
            looks.set(looks.get() + 1);
            looks.get() > 1
        };
        assert!(!clear_unclean_mark_once_reported(&disk, failed_meanwhile).unwrap());
        mem.crash();
        assert!(disk.exists(unclean).unwrap(), "durably");
        assert!(clear_unclean_mark_once_reported(&disk, || false).unwrap());
        mem.crash();
        assert!(!disk.exists(unclean).unwrap());
        assert!(
            !clear_unclean_mark_once_reported(&disk, || false).unwrap(),
            "no mark"
        );
    }

    #[test]
    fn only_topic_partition_names_are_logs() {
        assert!(is_partition_dir("t-0"));
        assert!(is_partition_dir("my-topic-12"));
        assert!(is_partition_dir("__consumer_offsets-3"));
        assert!(!is_partition_dir("rill-storage"));
        assert!(!is_partition_dir("-1"));
        assert!(!is_partition_dir("clean-shutdown"));
    }
}
