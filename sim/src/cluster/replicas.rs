//! The end-of-run comparison of replicas' bytes: once the cluster is healed, quiet and every
//! partition has its full ISR, every replica of a partition must hold the same batches, byte
//! for byte, and every batch's CRC must hold. A follower that diverged from its leader (kept a
//! suffix it should have truncated, or appended a batch the leader never had) is a safety
//! violation even when no client happened to read the offset where it differs.
//!
//! Reads the brokers' [`MemDisk`]s directly (the harness keeps them outside the simulated
//! processes), so it sees what each process would read, and it runs in the normal build too,
//! where its unit tests live.

use log_core::batch::split_batches;
use log_core::{Disk, MemDisk};
use std::collections::BTreeMap;
use std::path::Path;

/// Most bytes one partition directory may hold for the comparison to read it (a limit: a
/// run writes a few MiB per partition).
const PARTITION_BYTES_MAX: u64 = 256 << 20;

/// One replica's log as a map from each batch's base offset to its last offset and bytes.
#[derive(Debug, Default)]
struct ReplicaLog {
    batches: BTreeMap<i64, (i64, Vec<u8>)>,
    /// The base offset of the newest segment: a replica whose retention deleted every batch
    /// and that rolled keeps an empty segment there, at its log end.
    segment_base_max: Option<i64>,
    /// The log start offset of its state checkpoint: batches below it stay in their segment
    /// until the segment goes whole, unreadable, and need not agree (seed 65148: a deposed
    /// leader's never-committed batch kept below the start it took from the new leader).
    log_start: i64,
}

impl ReplicaLog {
    /// The first offset the replica serves, if it holds any: its first batch or its log start,
    /// whichever is later.
    fn start(&self) -> Option<i64> {
        let first = self.batches.keys().next().copied()?;
        Some(first.max(self.log_start))
    }

    /// The offset after the last batch, or the newest segment's base if that is later (a
    /// rolled, still empty segment), if any.
    fn end(&self) -> Option<i64> {
        let batches = self.batches.values().next_back().map(|(last, _)| last + 1);
        batches.max(self.segment_base_max)
    }
}

/// Reads the segments of `dir` on `disk` in offset order; a batch whose CRC fails is an error.
fn read_replica(disk: &MemDisk, dir: &str) -> Result<ReplicaLog, String> {
    let dir_path = Path::new(dir);
    let names = disk
        .list(dir_path)
        .map_err(|e| format!("cannot list {dir}: {e}"))?;
    let log_start = log_core::PartitionLog::peek_log_start(disk, dir_path)
        .map_err(|e| format!("cannot read {dir}'s log start: {e}"))?;
    let mut log = ReplicaLog {
        log_start: log_start.0,
        ..ReplicaLog::default()
    };
    let mut total = 0u64;
    // Segment names are 20-digit base offsets: sorted names are offset order.
    for name in names.iter().filter(|n| n.ends_with(".log")) {
        let base = name.trim_end_matches(".log").parse::<i64>().ok();
        log.segment_base_max = log.segment_base_max.max(base);
        let path = dir_path.join(name);
        let len = disk
            .len(&path)
            .map_err(|e| format!("cannot stat {dir}/{name}: {e}"))?;
        total += len;
        if total > PARTITION_BYTES_MAX {
            return Err(format!("{dir} holds more than {PARTITION_BYTES_MAX} bytes"));
        }
        let mut bytes = vec![0u8; usize::try_from(len).expect("bounded by PARTITION_BYTES_MAX")];
        let read = disk
            .read_at(&path, 0, &mut bytes)
            .map_err(|e| format!("cannot read {dir}/{name}: {e}"))?;
        bytes.truncate(read);
        let mut position = 0usize;
        for batch in split_batches(&bytes) {
            let batch =
                batch.map_err(|e| format!("{dir}/{name}: bad batch at byte {position}: {e}"))?;
            let header = batch.header();
            if !batch.crc_is_valid() {
                return Err(format!(
                    "{dir}/{name}: batch at offset {} fails its CRC",
                    header.base_offset
                ));
            }
            position += batch.as_bytes().len();
            let (base, last) = (header.base_offset.0, header.last_offset().0);
            if let Some(end) = log.batches.values().next_back().map(|(last, _)| last + 1) {
                if base < end {
                    return Err(format!(
                        "{dir}/{name}: batch at offset {base} overlaps the previous one (ends at {end})"
                    ));
                }
            }
            log.batches.insert(base, (last, batch.as_bytes().to_vec()));
        }
    }
    Ok(log)
}

/// Compares the replicas of partitions `0..partitions` of `topic` on `disks` (broker id =
/// index + 1). Disks marked in `flipped` were told to flip bits silently and are left out: a
/// corrupt batch at rest is then the injected fault itself (Kafka does not scrub either; a
/// read finds it by its CRC). Returns the first difference found.
pub fn compare(
    disks: &[MemDisk],
    flipped: &[bool],
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    assert_eq!(disks.len(), flipped.len(), "one flag per disk");
    assert!(partitions > 0, "a topic has partitions");
    for partition in 0..partitions {
        let dir = format!("{topic}-{partition}");
        let mut replicas = Vec::new();
        for (i, disk) in disks.iter().enumerate() {
            let broker = i + 1;
            if flipped[i] {
                continue;
            }
            let log = read_replica(disk, &dir)
                .map_err(|why| format!("safety: replica n{broker} of {dir}: {why}"))?;
            replicas.push((broker, log));
        }
        compare_partition(&dir, &replicas)?;
    }
    Ok(())
}

/// After healing, every node that holds a controller raft log (the combined shape's nodes) has
/// the same last raft index: a voter left behind — one whose disk was replaced and that the
/// leader never sends its log again (issue 16) — shows here, not only once the quorum needs it.
/// A node whose disk was told to flip bits is left out (`flipped`), as the partition
/// comparison leaves it out: its raft log may hold a flipped bit its controller has not read
/// yet (seeds 197397 and 198474).
pub fn compare_raft_logs(
    disks: &[MemDisk],
    voters: &[u64],
    flipped: &[bool],
) -> Result<(), String> {
    let dir = Path::new(broker::node::RAFT_DIR);
    let mut ends = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        if flipped[i] || !disk.exists(dir).unwrap_or(false) {
            continue;
        }
        let store = broker::control::store::DurableRaftStore::peek(disk.as_disk(), dir, voters)
            .map_err(|e| format!("liveness: n{}'s raft log cannot be read: {e}", i + 1))?;
        ends.push((i + 1, store.index_last()));
    }
    if ends.windows(2).all(|pair| pair[0].1 == pair[1].1) {
        Ok(())
    } else {
        let ends: Vec<String> = ends
            .iter()
            .map(|(n, last)| format!("n{n} {last}"))
            .collect();
        Err(format!(
            "liveness: after healing the controllers' raft logs end at different indexes: {}",
            ends.join(", ")
        ))
    }
}

/// Every pair of replicas agrees on the offsets both hold: the same batch boundaries and the
/// same bytes, and the same end (a full ISR of a quiet partition has every replica at the
/// leader's log end).
fn compare_partition(dir: &str, replicas: &[(usize, ReplicaLog)]) -> Result<(), String> {
    let Some((first_broker, first)) = replicas.first() else {
        return Ok(());
    };
    for (broker, log) in &replicas[1..] {
        if log.end() != first.end() {
            return Err(format!(
                "safety: replicas of {dir} end at different offsets: n{first_broker} at {:?}, n{broker} at {:?}",
                first.end(),
                log.end()
            ));
        }
        // Retention may have moved one replica's start further than another's.
        let from = first.start().max(log.start()).unwrap_or(0);
        let ours = first.batches.range(from..);
        let theirs = log.batches.range(from..);
        for ((base_a, (last_a, bytes_a)), (base_b, (last_b, bytes_b))) in ours.zip(theirs) {
            if base_a != base_b || last_a != last_b {
                return Err(format!(
                    "safety: replicas of {dir} split batches differently: n{first_broker} has {base_a}..={last_a}, n{broker} has {base_b}..={last_b}"
                ));
            }
            if bytes_a != bytes_b {
                return Err(format!(
                    "safety: replicas of {dir} differ in the batch at offset {base_a} (n{first_broker} vs n{broker})"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use log_core::batch::set_base_offset;
    use log_core::{BatchBuilder, LeaderEpoch, Offset};

    fn batch(base: i64, value: &[u8]) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(value), 0, &[]);
        let mut bytes = builder.build();
        set_base_offset(&mut bytes, Offset(base));
        bytes
    }

    fn disk_with(batches: &[Vec<u8>]) -> MemDisk {
        let disk = MemDisk::new(1);
        disk.create_dir_all(Path::new("t-0")).unwrap();
        let path = Path::new("t-0/00000000000000000000.log");
        disk.create(path).unwrap();
        for b in batches {
            disk.append(path, b).unwrap();
        }
        disk
    }

    #[test]
    fn equal_replicas_agree() {
        let logs = [batch(0, b"a"), batch(1, b"b")];
        let disks = [disk_with(&logs), disk_with(&logs), disk_with(&logs)];
        assert_eq!(compare(&disks, &[false; 3], "t", 1), Ok(()));
    }

    /// A replica whose batches 0..=2 went through a `PartitionLog` (so it has a state
    /// checkpoint), batch 1 stamped with `epoch`, its log start moved to `start`.
    fn replica_with_start(epoch: i32, start: i64) -> MemDisk {
        let disk = MemDisk::new(2);
        let mut log = log_core::PartitionLog::open(
            disk.as_disk(),
            Path::new("t-0"),
            log_core::LogConfig::default(),
            0,
        )
        .unwrap();
        for (base, value) in [(0, b"a"), (1, b"b"), (2, b"c")] {
            let mut bytes = batch(base, value);
            if base == 1 {
                log_core::batch::set_partition_leader_epoch(&mut bytes, LeaderEpoch(epoch));
            }
            log.append_as_follower(&bytes, 0).unwrap();
        }
        log.set_high_watermark(Offset(3)).unwrap();
        log.advance_log_start(Offset(start)).unwrap();
        log.close().unwrap();
        disk
    }

    #[test]
    fn batches_below_a_replicas_log_start_are_not_compared() {
        // Seed 65148: a deposed leader kept its never-committed copy of a batch (its epoch)
        // below the log start it took from the new leader; the batch stays in the segment
        // but no replica serves it.
        let disks = [replica_with_start(1, 2), replica_with_start(0, 2)];
        assert_eq!(compare(&disks, &[false; 2], "t", 1), Ok(()));
        let disks = [replica_with_start(1, 0), replica_with_start(0, 0)];
        let why = compare(&disks, &[false; 2], "t", 1).unwrap_err();
        assert!(why.contains("differ in the batch at offset 1"), "{why}");
        // One replica's start is enough: the other's bytes there are not served either once
        // it follows, and the leader's start is the one that counts.
        let disks = [replica_with_start(1, 2), replica_with_start(0, 0)];
        assert_eq!(compare(&disks, &[false; 2], "t", 1), Ok(()));
    }

    #[test]
    fn a_replica_with_other_bytes_at_an_offset_is_a_safety_violation() {
        let good = [batch(0, b"a"), batch(1, b"b")];
        let bad = [batch(0, b"a"), batch(1, b"x")];
        let disks = [disk_with(&good), disk_with(&bad), disk_with(&good)];
        let why = compare(&disks, &[false; 3], "t", 1).unwrap_err();
        assert!(why.contains("differ in the batch at offset 1"), "{why}");
        assert!(why.starts_with("safety:"), "{why}");
    }

    #[test]
    fn a_replica_with_a_suffix_the_others_lack_is_a_safety_violation() {
        let short = [batch(0, b"a")];
        let long = [batch(0, b"a"), batch(1, b"b")];
        let disks = [disk_with(&short), disk_with(&long), disk_with(&short)];
        let why = compare(&disks, &[false; 3], "t", 1).unwrap_err();
        assert!(why.contains("end at different offsets"), "{why}");
    }

    #[test]
    fn a_failed_crc_is_a_violation_unless_the_disk_was_told_to_flip_bits() {
        let good = [batch(0, b"a")];
        let mut flipped = batch(0, b"a");
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let disks = [disk_with(&good), disk_with(&[flipped]), disk_with(&good)];
        let why = compare(&disks, &[false; 3], "t", 1).unwrap_err();
        assert!(why.contains("fails its CRC"), "{why}");
        // Told to flip bits, the disk's corruption is the fault itself.
        assert_eq!(compare(&disks, &[false, true, false], "t", 1), Ok(()));
    }
}
