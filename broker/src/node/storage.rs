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

use super::NodeError;

/// The file whose presence says this data directory has been in use (written at first start).
const STORAGE_MARKER: &str = "rill-storage";
/// The file whose presence says a start found the directory not intact and the controller has
/// not yet committed that start's unclean registration ([`unclean_registered`] removes it).
/// Without it, a process killed between writing the storage marker of a wiped directory and
/// registering would be followed by one that finds the marker and reports itself clean: an
/// empty replica still in the ISR or ELR, electable, as the cluster campaign found (seed 513
/// with retention: every acknowledged record of a partition lost).
const UNCLEAN_PENDING: &str = "rill-storage.unclean";

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCheck {
    /// Every flushed byte the directory ever held is still there and valid.
    pub intact: bool,
    /// Partition directories deleted because their flushed data was corrupt.
    pub quarantined: Vec<String>,
}

/// Checks the data directory on `disk` (see the module docs). `reserved` names directories
/// that are not partition logs (the raft state). An unclean verdict sticks (across crashes)
/// until [`unclean_registered`] says the controller has heard it.
pub fn check(disk: &Arc<dyn Disk>, reserved: &[&str]) -> Result<StorageCheck, NodeError> {
    let io = |e: log_core::DiskError| NodeError::Disk(e.to_string());
    let root = Path::new("");
    let (marker, pending) = (Path::new(STORAGE_MARKER), Path::new(UNCLEAN_PENDING));
    let pending_before = disk.exists(pending).map_err(io)?;
    let known = disk.exists(marker).map_err(io)?;
    // Durable before anything this check changes (the marker, set-aside logs): a crash in
    // between leaves the next start unclean, never clean.
    if !pending_before {
        disk.create(pending).map_err(io)?;
        disk.sync_dir(root).map_err(io)?;
    }
    if !known {
        disk.create(marker).map_err(io)?;
        disk.sync_dir(root).map_err(io)?;
        tracing::info!("new data directory");
    }
    let mut quarantined = Vec::new();
    for name in disk.list(root).map_err(io)? {
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
        match quarantine::check_dir(disk, dir, &config, false)
            .map_err(|e| NodeError::Disk(e.to_string()))?
        {
            DirVerdict::Sound => {}
            DirVerdict::SetAside(_) => quarantined.push(name),
            DirVerdict::Unopenable(error) => {
                // Not this check's to decide: the partition's own open fails again and the broker
                // reports that replica offline, instead of the whole broker refusing to start.
                tracing::error!(dir = %name, %error, "partition log cannot be opened");
            }
        }
    }
    let intact = known && !pending_before && quarantined.is_empty();
    if intact {
        disk.remove(pending).map_err(io)?;
        disk.sync_dir(root).map_err(io)?;
    } else if pending_before {
        tracing::info!("an earlier unclean start was never registered: unclean again");
    }
    assert!(
        intact || disk.exists(pending).map_err(io)?,
        "unclean sticks"
    );
    Ok(StorageCheck {
        intact,
        quarantined,
    })
}

/// The controller committed this process's unclean registration: its replicas are out of every
/// ELR, so later starts may judge the directory afresh.
pub fn unclean_registered(disk: &Arc<dyn Disk>) -> Result<(), NodeError> {
    let io = |e: log_core::DiskError| NodeError::Disk(e.to_string());
    let pending = Path::new(UNCLEAN_PENDING);
    if disk.exists(pending).map_err(io)? {
        disk.remove(pending).map_err(io)?;
        disk.sync_dir(Path::new("")).map_err(io)?;
    }
    assert!(!disk.exists(pending).map_err(io)?);
    Ok(())
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

    #[test]
    fn a_new_directory_is_not_intact_and_a_known_one_is() {
        let (_mem, disk) = disk_with_log(1);
        let first = check(&disk, &[]).unwrap();
        assert!(!first.intact, "no marker: a new (or wiped) directory");
        unclean_registered(&disk).unwrap();
        let second = check(&disk, &[]).unwrap();
        assert!(second.intact);
        assert!(second.quarantined.is_empty());
        assert!(disk.exists(Path::new("t-0")).unwrap());
    }

    #[test]
    fn a_log_with_corrupt_flushed_data_is_set_aside_and_the_directory_reported_unclean() {
        let (mem, disk) = disk_with_log(2);
        check(&disk, &[]).unwrap(); // writes the marker
        unclean_registered(&disk).unwrap();
        // Flip a bit of the first batch's magic byte: below the recovery point the open checks
        // batch headers (record CRCs are checked when the records are read).
        let segment = Path::new("t-0/00000000000000000000.log");
        let mut byte = [0u8; 1];
        disk.read_at(segment, 16, &mut byte).unwrap();
        disk.write_at(segment, 16, &[byte[0] ^ 0x10]).unwrap();
        disk.sync(segment).unwrap();
        mem.crash();
        let found = check(&disk, &[]).unwrap();
        assert!(!found.intact);
        assert_eq!(found.quarantined, vec!["t-0".to_string()]);
        assert!(disk.list(Path::new("t-0")).unwrap().is_empty(), "set aside");
        assert!(disk
            .exists(Path::new("t-0.quarantined/00000000000000000000.log"))
            .unwrap());
        // Unclean until the controller has heard it, then clean again.
        assert!(!check(&disk, &[]).unwrap().intact, "not registered yet");
        unclean_registered(&disk).unwrap();
        assert!(check(&disk, &[]).unwrap().intact, "clean once registered");
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

    /// Regression (cluster campaign seed 513, with retention): a wiped node's process was killed
    /// after its storage check wrote the marker and before the controller heard its unclean
    /// registration; the next process found the marker and reported itself clean, stayed in the
    /// ELR with an empty log, was elected and every acknowledged record of the partition was
    /// lost. An unclean verdict must stick until it is registered.
    #[test]
    fn an_unclean_start_that_never_registered_leaves_the_next_start_unclean() {
        let (mem, disk) = disk_with_log(3);
        assert!(!check(&disk, &[]).unwrap().intact, "new (or wiped)");
        mem.crash(); // killed before registering
        assert!(!check(&disk, &[]).unwrap().intact, "still unclean");
        mem.crash();
        assert!(!check(&disk, &[]).unwrap().intact, "and again");
        unclean_registered(&disk).unwrap();
        mem.crash();
        assert!(
            check(&disk, &[]).unwrap().intact,
            "registered: clean from now on"
        );
        assert!(check(&disk, &[]).unwrap().intact);
    }
}
