//! The conformance suite every `Disk` runs (openraft style): one generic function over `&dyn Disk`,
//! run on `MemDisk` and on `FileDisk` in a temporary directory. MemDisk's crash model has its own
//! tests below.
#![allow(clippy::unwrap_used)]

use log_core::{Disk, DiskError, FaultConfig, FaultOp, FileDisk, MemDisk};
use std::path::Path;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn conformance(disk: &dyn Disk) {
    // Directories and creation.
    disk.create_dir_all(p("a/b")).unwrap();
    assert!(disk.exists(p("a/b")).unwrap());
    assert!(matches!(
        disk.create(p("missing/f")),
        Err(DiskError::NotFound(_))
    ));
    disk.create(p("a/b/f")).unwrap();
    assert!(matches!(
        disk.create(p("a/b/f")),
        Err(DiskError::AlreadyExists(_))
    ));
    assert_eq!(disk.len(p("a/b/f")).unwrap(), 0);

    // Read-your-writes and append offsets.
    assert_eq!(disk.append(p("a/b/f"), b"hello").unwrap(), 0);
    assert_eq!(disk.append(p("a/b/f"), b" world").unwrap(), 5);
    let mut buf = [0u8; 32];
    let n = disk.read_at(p("a/b/f"), 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello world");
    let n = disk.read_at(p("a/b/f"), 6, &mut buf[..3]).unwrap();
    assert_eq!(&buf[..n], b"wor");
    assert_eq!(
        disk.read_at(p("a/b/f"), 100, &mut buf).unwrap(),
        0,
        "short only at EOF"
    );

    // write_at overwrites and extends with zeros.
    disk.write_at(p("a/b/f"), 0, b"J").unwrap();
    disk.write_at(p("a/b/f"), 13, b"!").unwrap();
    let n = disk.read_at(p("a/b/f"), 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"Jello world\0\0!");

    // Truncate shortens and extends.
    disk.truncate(p("a/b/f"), 5).unwrap();
    assert_eq!(disk.len(p("a/b/f")).unwrap(), 5);
    disk.truncate(p("a/b/f"), 7).unwrap();
    let n = disk.read_at(p("a/b/f"), 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"Jello\0\0");
    disk.sync(p("a/b/f")).unwrap();

    // Rename replaces the destination atomically.
    disk.create(p("a/b/g")).unwrap();
    disk.append(p("a/b/g"), b"new").unwrap();
    disk.rename(p("a/b/g"), p("a/b/f")).unwrap();
    assert!(!disk.exists(p("a/b/g")).unwrap());
    let n = disk.read_at(p("a/b/f"), 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"new");
    assert!(matches!(
        disk.rename(p("a/b/nope"), p("a/b/x")),
        Err(DiskError::NotFound(_))
    ));

    // List is sorted names.
    for name in ["c", "a", "b2", "b10"] {
        disk.create(&Path::new("a/b").join(name)).unwrap();
    }
    assert_eq!(
        disk.list(p("a/b")).unwrap(),
        vec!["a", "b10", "b2", "c", "f"]
    );
    assert_eq!(disk.list(p("a")).unwrap(), vec!["b"]);
    disk.sync_dir(p("a/b")).unwrap();
    disk.sync_dir(p("")).unwrap();

    // Removal.
    disk.remove(p("a/b/c")).unwrap();
    assert!(matches!(
        disk.remove(p("a/b/c")),
        Err(DiskError::NotFound(_))
    ));
    assert!(matches!(disk.len(p("a/b/c")), Err(DiskError::NotFound(_))));
    assert!(disk.remove_dir(p("a/b"), false).is_err(), "not empty");
    disk.remove_dir(p("a"), true).unwrap();
    assert!(!disk.exists(p("a")).unwrap());

    // Invalid paths.
    for bad in ["/abs", "../up", "a/../b", ""] {
        assert!(
            matches!(disk.create(p(bad)), Err(DiskError::InvalidPath(_))),
            "{bad}"
        );
        assert!(
            matches!(disk.exists(p(bad)), Err(DiskError::InvalidPath(_))),
            "{bad}"
        );
    }
}

#[test]
fn mem_disk_conforms() {
    conformance(&MemDisk::new(7));
}

#[test]
fn file_disk_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&FileDisk::new(dir.path()).unwrap());
}

/// `read_vec` reads what the path holds now: never the bytes of a file that was removed,
/// replaced by a rename or cut by a truncate, whatever handles an implementation keeps.
fn read_vec_conformance(disk: &dyn Disk) {
    disk.create_dir_all(p("d")).unwrap();
    disk.create(p("d/f")).unwrap();
    disk.append(p("d/f"), b"0123456789").unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 10).unwrap(), b"0123456789");
    assert_eq!(disk.read_vec(p("d/f"), 3, 4).unwrap(), b"3456");
    assert_eq!(
        disk.read_vec(p("d/f"), 8, 100).unwrap(),
        b"89",
        "short at EOF"
    );
    assert_eq!(disk.read_vec(p("d/f"), 100, 5).unwrap(), b"", "past EOF");
    assert_eq!(disk.read_vec(p("d/f"), 0, 0).unwrap(), b"");
    assert!(matches!(
        disk.read_vec(p("d/missing"), 0, 4),
        Err(DiskError::NotFound(_))
    ));
    // Positional: a read_vec and a read_at in turn do not move each other's position.
    let mut buf = [0u8; 3];
    assert_eq!(disk.read_at(p("d/f"), 1, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"123");
    assert_eq!(disk.read_vec(p("d/f"), 5, 2).unwrap(), b"56");
    assert_eq!(disk.read_at(p("d/f"), 1, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"123");

    // Writes and appends after a read are read back.
    disk.append(p("d/f"), b"ab").unwrap();
    disk.write_at(p("d/f"), 0, b"Z").unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"Z123456789ab");

    // Truncate, then read: the cut bytes are gone, an extension reads as zeros.
    disk.truncate(p("d/f"), 4).unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"Z123");
    assert_eq!(disk.read_vec(p("d/f"), 4, 64).unwrap(), b"");
    disk.truncate(p("d/f"), 6).unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"Z123\0\0");

    // Remove, then create the same path again: the new file's bytes, never the old one's.
    disk.remove(p("d/f")).unwrap();
    assert!(matches!(
        disk.read_vec(p("d/f"), 0, 4),
        Err(DiskError::NotFound(_))
    ));
    disk.create(p("d/f")).unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"");
    disk.append(p("d/f"), b"second").unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"second");

    // A rename over a read path serves the renamed file; the old name is gone.
    disk.create(p("d/g")).unwrap();
    disk.append(p("d/g"), b"third").unwrap();
    assert_eq!(disk.read_vec(p("d/g"), 0, 64).unwrap(), b"third");
    disk.rename(p("d/g"), p("d/f")).unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"third");
    assert!(matches!(
        disk.read_vec(p("d/g"), 0, 4),
        Err(DiskError::NotFound(_))
    ));
    // A write through the new name lands in the file that is read.
    disk.append(p("d/f"), b"!").unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"third!");

    // A directory removed and made again: its files are new files, and syncing it syncs the
    // new directory (a sync of a removed one fails: no handle outlives its directory).
    disk.sync_dir(p("d")).unwrap();
    disk.remove_dir(p("d"), true).unwrap();
    assert!(disk.sync_dir(p("d")).is_err(), "the directory is gone");
    assert!(matches!(
        disk.read_vec(p("d/f"), 0, 4),
        Err(DiskError::NotFound(_))
    ));
    disk.create_dir_all(p("d")).unwrap();
    disk.sync_dir(p("d")).unwrap();
    disk.create(p("d/f")).unwrap();
    disk.append(p("d/f"), b"fourth").unwrap();
    assert_eq!(disk.read_vec(p("d/f"), 0, 64).unwrap(), b"fourth");

    // A large read (several of the kernel's read chunks) comes back whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    disk.create(p("d/big")).unwrap();
    disk.append(p("d/big"), &big).unwrap();
    assert_eq!(disk.read_vec(p("d/big"), 0, big.len()).unwrap(), big);
    assert_eq!(
        disk.read_vec(p("d/big"), 1_000_001, 1_500_000).unwrap(),
        &big[1_000_001..2_500_001]
    );
    disk.remove_dir(p("d"), true).unwrap();
}

/// `len` bytes of `fill` at an address aligned for `write_direct_at`, inside `buffer`.
fn aligned(buffer: &mut Vec<u8>, len: usize, fill: impl Fn(usize) -> u8) -> &[u8] {
    let unit = log_core::file_disk::DIRECT_WRITE_ALIGNMENT;
    buffer.clear();
    buffer.reserve(len + unit);
    let lead = buffer.as_ptr().align_offset(unit);
    assert!(lead < unit, "a byte pointer can be aligned");
    buffer.resize(lead, 0);
    buffer.extend((0..len).map(fill));
    &buffer[lead..]
}

/// `write_direct_at` writes what `write_at` would, seen by reads at once, into the file the
/// path names now (never a removed or renamed-over file's), aligned or not.
fn direct_write_conformance(disk: &dyn Disk) {
    let unit = disk.write_alignment();
    assert_eq!(log_core::file_disk::DIRECT_WRITE_ALIGNMENT % unit, 0);
    let mut buffer = Vec::new();
    disk.create_dir_all(p("d")).unwrap();
    disk.create(p("d/j")).unwrap();
    let first = aligned(&mut buffer, 2 * unit, |i| (i % 251) as u8).to_vec();
    disk.write_direct_at(
        p("d/j"),
        0,
        aligned(&mut buffer, 2 * unit, |i| (i % 251) as u8),
    )
    .unwrap();
    assert_eq!(disk.read_vec(p("d/j"), 0, 3 * unit).unwrap(), first);
    // Over bytes a read just saw: the read after it sees the new ones.
    disk.write_direct_at(p("d/j"), unit as u64, aligned(&mut buffer, unit, |_| 7))
        .unwrap();
    let mut expected = first[..unit].to_vec();
    expected.extend(std::iter::repeat_n(7u8, unit));
    assert_eq!(disk.read_vec(p("d/j"), 0, 3 * unit).unwrap(), expected);
    // Past the end: the gap reads as zeros. Not aligned: written all the same.
    disk.write_direct_at(p("d/j"), 3 * unit as u64, aligned(&mut buffer, unit, |_| 9))
        .unwrap();
    disk.write_direct_at(p("d/j"), 5, b"xyz").unwrap();
    expected[5..8].copy_from_slice(b"xyz");
    expected.extend(std::iter::repeat_n(0u8, unit));
    expected.extend(std::iter::repeat_n(9u8, unit));
    assert_eq!(disk.read_vec(p("d/j"), 0, 5 * unit).unwrap(), expected);
    disk.sync(p("d/j")).unwrap();
    assert_eq!(disk.len(p("d/j")).unwrap(), 4 * unit as u64);
    // Removed and made again: the new file gets the write.
    disk.remove(p("d/j")).unwrap();
    disk.create(p("d/j")).unwrap();
    disk.write_direct_at(p("d/j"), 0, aligned(&mut buffer, unit, |_| 1))
        .unwrap();
    assert_eq!(
        disk.read_vec(p("d/j"), 0, 5 * unit).unwrap(),
        vec![1u8; unit]
    );
    // Renamed over: writes through the name reach the file renamed onto it.
    disk.create(p("d/k")).unwrap();
    disk.write_direct_at(p("d/k"), 0, aligned(&mut buffer, unit, |_| 2))
        .unwrap();
    disk.rename(p("d/k"), p("d/j")).unwrap();
    disk.write_direct_at(p("d/j"), unit as u64, aligned(&mut buffer, unit, |_| 3))
        .unwrap();
    let mut renamed = vec![2u8; unit];
    renamed.extend(std::iter::repeat_n(3u8, unit));
    assert_eq!(disk.read_vec(p("d/j"), 0, 5 * unit).unwrap(), renamed);
    disk.remove_dir(p("d"), true).unwrap();
}

#[test]
fn direct_writes_are_writes_on_both_disks() {
    direct_write_conformance(&MemDisk::new(7));
    let dir = tempfile::tempdir().unwrap();
    direct_write_conformance(&FileDisk::new(dir.path()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    direct_write_conformance(&FileDisk::with_open_files_max(dir.path(), 1).unwrap());
}

#[test]
fn mem_disk_reads_what_the_path_holds() {
    read_vec_conformance(&MemDisk::new(7));
}

#[test]
fn file_disk_reads_what_the_path_holds() {
    let dir = tempfile::tempdir().unwrap();
    read_vec_conformance(&FileDisk::new(dir.path()).unwrap());
    // One handle at most: every open evicts the other path's handle.
    let dir = tempfile::tempdir().unwrap();
    read_vec_conformance(&FileDisk::with_open_files_max(dir.path(), 1).unwrap());
}

#[test]
fn synced_bytes_survive_a_crash_and_unsynced_ones_tear_at_sectors() {
    for seed in 0..64 {
        let disk = MemDisk::new(seed);
        disk.create(p("f")).unwrap();
        disk.sync_dir(p("")).unwrap();
        let synced: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8 + 1).collect();
        disk.append(p("f"), &synced).unwrap();
        disk.sync(p("f")).unwrap();
        let tail: Vec<u8> = (0..2000u32).map(|i| (i % 13) as u8 + 1).collect();
        disk.append(p("f"), &tail).unwrap();
        disk.crash();
        let len = disk.len(p("f")).unwrap() as usize;
        assert!((700..=2700).contains(&len), "seed {seed}: {len}");
        assert!(
            len == 700 || len == 2700 || len.is_multiple_of(512),
            "cut at a sector boundary: {len}"
        );
        let mut buf = vec![0u8; len];
        disk.read_at(p("f"), 0, &mut buf).unwrap();
        assert_eq!(&buf[..700], &synced[..], "synced bytes survive");
        let survived = &buf[700..];
        let intact = survived == &tail[..len - 700];
        let last_sector_zeroed = {
            let zero_from = ((len - 1) / 512 * 512).max(700) - 700;
            survived[..zero_from] == tail[..zero_from]
                && survived[zero_from..].iter().all(|b| *b == 0)
        };
        assert!(
            intact || last_sector_zeroed,
            "seed {seed}: the tail is a prefix, maybe with its last sector lost"
        );
    }
}

#[test]
fn unsynced_directory_entries_vanish_at_a_crash() {
    let disk = MemDisk::new(9);
    disk.create_dir_all(p("d")).unwrap();
    disk.sync_dir(p("")).unwrap();
    disk.create(p("d/kept")).unwrap();
    disk.sync_dir(p("d")).unwrap();
    disk.create(p("d/lost")).unwrap();
    disk.append(p("d/lost"), b"data").unwrap();
    disk.sync(p("d/lost")).unwrap(); // the data is durable, its name is not
    disk.create(p("d/tmp")).unwrap();
    disk.sync_dir(p("d")).unwrap();
    disk.rename(p("d/tmp"), p("d/kept")).unwrap(); // not made durable
    disk.remove(p("d/lost")).unwrap();
    disk.crash();
    assert_eq!(
        disk.list(p("d")).unwrap(),
        vec!["kept", "lost", "tmp"],
        "the durable namespace is back"
    );
    disk.crash();
    assert!(disk.exists(p("d/kept")).unwrap());

    let disk = MemDisk::new(10);
    disk.create_dir_all(p("never/synced")).unwrap();
    disk.create(p("never/synced/f")).unwrap();
    disk.sync_dir(p("never/synced")).unwrap();
    disk.crash();
    assert!(
        !disk.exists(p("never")).unwrap(),
        "a directory whose entry was never synced vanishes"
    );
    assert!(!disk.exists(p("never/synced/f")).unwrap());
}

#[test]
fn rename_is_atomic_across_a_crash() {
    for seed in 0..16 {
        let disk = MemDisk::new(seed);
        disk.create(p("target")).unwrap();
        disk.append(p("target"), b"old").unwrap();
        disk.sync(p("target")).unwrap();
        disk.sync_dir(p("")).unwrap();
        disk.create(p("target.tmp")).unwrap();
        disk.append(p("target.tmp"), b"new!").unwrap();
        disk.sync(p("target.tmp")).unwrap();
        disk.rename(p("target.tmp"), p("target")).unwrap();
        if seed % 2 == 0 {
            disk.sync_dir(p("")).unwrap();
        }
        disk.crash();
        let mut buf = [0u8; 8];
        let n = disk.read_at(p("target"), 0, &mut buf).unwrap();
        let expected: &[u8] = if seed % 2 == 0 { b"new!" } else { b"old" };
        assert_eq!(&buf[..n], expected);
    }
}

/// A file's bytes live while any name, volatile or durable, holds them, and go with the last:
/// a removed or replaced segment still counts until the directory sync makes its loss durable,
/// and then it is freed (the simulator's disks must not grow with retention).
#[test]
fn a_files_bytes_are_freed_with_its_last_name() {
    let disk = MemDisk::new(3);
    disk.create_dir_all(p("d")).unwrap();
    for (name, bytes) in [("d/a", 1_000), ("d/b", 2_000), ("d/c", 4_000)] {
        disk.create(p(name)).unwrap();
        disk.append(p(name), &vec![7; bytes]).unwrap();
        disk.sync(p(name)).unwrap();
    }
    disk.sync_dir(p("d")).unwrap();
    assert_eq!(disk.used_bytes(), 7_000);
    // Replaced by a rename: b's bytes stay while its durable name does.
    disk.rename(p("d/a"), p("d/b")).unwrap();
    assert_eq!(disk.used_bytes(), 7_000);
    disk.sync_dir(p("d")).unwrap();
    assert_eq!(disk.used_bytes(), 5_000);
    // Removed: the same.
    disk.remove(p("d/c")).unwrap();
    assert_eq!(disk.used_bytes(), 5_000);
    disk.sync_dir(p("d")).unwrap();
    assert_eq!(disk.used_bytes(), 1_000);
    // Created and removed before any directory sync: freed at once.
    disk.create(p("d/e")).unwrap();
    disk.append(p("d/e"), &[1; 500]).unwrap();
    assert_eq!(disk.used_bytes(), 1_500);
    disk.remove(p("d/e")).unwrap();
    assert_eq!(disk.used_bytes(), 1_000);
}

#[test]
fn injected_faults_are_deterministic_and_leave_the_disk_usable() {
    let run = |seed| {
        let disk = MemDisk::new(seed);
        disk.create(p("f")).unwrap();
        disk.set_faults(FaultConfig {
            write_error_probability: 0.3,
            ..FaultConfig::default()
        });
        let outcomes: Vec<bool> = (0..50).map(|_| disk.append(p("f"), b"x").is_ok()).collect();
        (outcomes, disk.len(p("f")).unwrap())
    };
    let (a, len) = run(5);
    assert_eq!(run(5), (a.clone(), len), "same seed, same faults");
    assert!(a.iter().any(|ok| !ok) && a.iter().any(|ok| *ok));
    assert_eq!(
        len as usize,
        a.iter().filter(|ok| **ok).count(),
        "a failed write applies nothing"
    );

    let disk = MemDisk::new(6);
    disk.create(p("f")).unwrap();
    disk.fail_next(FaultOp::Sync, 2);
    assert!(disk.sync(p("f")).is_err());
    assert!(disk.sync_dir(p("")).is_err());
    disk.sync(p("f")).unwrap();
    disk.fail_next(FaultOp::Read, 1);
    assert!(disk.read_at(p("f"), 0, &mut [0u8; 1]).is_err());
    assert_eq!(disk.counts().faults_injected, 3);

    disk.set_faults(FaultConfig {
        capacity_bytes: Some(10),
        ..FaultConfig::default()
    });
    disk.append(p("f"), &[1; 8]).unwrap();
    assert!(matches!(
        disk.append(p("f"), &[1; 3]),
        Err(DiskError::Full(_))
    ));
    assert_eq!(
        disk.len(p("f")).unwrap(),
        8,
        "a refused write applies nothing"
    );

    disk.set_faults(FaultConfig::default());
    disk.sync(p("f")).unwrap();
    let before = disk.durable_bytes(p("f")).unwrap();
    let position = disk.flip_random_bit(p("f")).unwrap().unwrap();
    let after = disk.durable_bytes(p("f")).unwrap();
    assert_ne!(before.len(), 0);
    assert_ne!(after[position as usize], 1, "the flipped bit is stored");
}

#[test]
fn crashes_are_deterministic_per_seed() {
    let run = |seed: u64| {
        let disk = MemDisk::new(seed);
        disk.create(p("f")).unwrap();
        disk.sync_dir(p("")).unwrap();
        let mut lengths = Vec::new();
        for round in 0..20u32 {
            disk.append(p("f"), &vec![round as u8 + 1; 3000]).unwrap();
            if round % 3 == 0 {
                disk.sync(p("f")).unwrap();
            }
            disk.crash();
            let len = disk.len(p("f")).unwrap() as usize;
            let mut bytes = vec![0u8; len];
            disk.read_at(p("f"), 0, &mut bytes).unwrap();
            lengths.push((len, crc(&bytes)));
        }
        lengths
    };
    assert_eq!(run(11), run(11), "same seed, same crashes");
    assert_ne!(run(11), run(12), "another seed tears differently");
}

fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |h, b| h.rotate_left(5) ^ *b as u32)
}

/// One operation on a single file, for the model test below.
#[derive(Clone, Debug)]
enum FileOp {
    WriteAt(u16, Vec<u8>),
    Append(Vec<u8>),
    Truncate(u16),
    Sync,
    Flip(u16, u8),
}

fn file_op() -> impl proptest::strategy::Strategy<Value = FileOp> {
    use proptest::prelude::*;
    let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        (0..300u16, bytes()).prop_map(|(at, data)| FileOp::WriteAt(at, data)),
        bytes().prop_map(FileOp::Append),
        (0..300u16).prop_map(FileOp::Truncate),
        Just(FileOp::Sync),
        (0..300u16, 0..8u8).prop_map(|(at, bit)| FileOp::Flip(at, bit)),
    ]
}

proptest::proptest! {
    /// MemDisk's volatile and durable bytes against a model that copies the whole file at each
    /// sync (MemDisk copies only what changed since the last one).
    #[test]
    fn durable_bytes_are_the_volatile_bytes_of_the_last_sync(
        ops in proptest::collection::vec(file_op(), 1..60)
    ) {
        let disk = MemDisk::new(1);
        disk.create(p("f")).unwrap();
        let (mut volatile, mut durable) = (Vec::<u8>::new(), Vec::<u8>::new());
        for op in ops {
            match op {
                FileOp::WriteAt(at, data) => {
                    let at = usize::from(at);
                    disk.write_at(p("f"), at as u64, &data).unwrap();
                    if volatile.len() < at + data.len() {
                        volatile.resize(at + data.len(), 0);
                    }
                    volatile[at..at + data.len()].copy_from_slice(&data);
                }
                FileOp::Append(data) => {
                    disk.append(p("f"), &data).unwrap();
                    volatile.extend_from_slice(&data);
                }
                FileOp::Truncate(len) => {
                    disk.truncate(p("f"), u64::from(len)).unwrap();
                    volatile.resize(usize::from(len), 0);
                }
                FileOp::Sync => {
                    disk.sync(p("f")).unwrap();
                    durable = volatile.clone();
                }
                FileOp::Flip(at, bit) => {
                    let at = usize::from(at);
                    if at < volatile.len() {
                        disk.flip_bit_at(p("f"), at as u64, u32::from(bit)).unwrap();
                        volatile[at] ^= 1 << bit;
                        if at < durable.len() {
                            durable[at] ^= 1 << bit;
                        }
                    }
                }
            }
            let mut read = vec![0u8; volatile.len()];
            let n = disk.read_at(p("f"), 0, &mut read).unwrap();
            proptest::prop_assert_eq!(n, volatile.len());
            proptest::prop_assert_eq!(&read, &volatile);
            proptest::prop_assert_eq!(&disk.durable_bytes(p("f")).unwrap(), &durable);
        }
    }
}

/// Names that sort between a directory and its children (`-` and `.` come before `/`): listing,
/// syncing and removing a directory touch exactly what is under it.
#[test]
fn a_directory_is_exactly_what_lies_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let file_disk = FileDisk::new(dir.path()).unwrap();
    for disk in [&MemDisk::new(3) as &dyn Disk, &file_disk] {
        disk.create_dir_all(p("a/x")).unwrap();
        disk.create_dir_all(p("a-b")).unwrap();
        disk.create(p("a.log")).unwrap();
        disk.create(p("a/f")).unwrap();
        disk.create(p("a/x/g")).unwrap();
        disk.create(p("a-b/h")).unwrap();
        assert_eq!(disk.list(p("")).unwrap(), ["a", "a-b", "a.log"]);
        assert_eq!(disk.list(p(".")).unwrap(), ["a", "a-b", "a.log"]);
        assert_eq!(disk.list(p("a")).unwrap(), ["f", "x"]);
        assert_eq!(disk.list(p("a/x")).unwrap(), ["g"]);
        assert!(disk.remove_dir(p("a"), false).is_err(), "not empty");
        disk.remove_dir(p("a"), true).unwrap();
        assert_eq!(disk.list(p("")).unwrap(), ["a-b", "a.log"]);
        assert_eq!(disk.list(p("a-b")).unwrap(), ["h"]);
        assert!(!disk.exists(p("a/x/g")).unwrap());
        disk.remove_dir(p("a-b"), true).unwrap();
        disk.create_dir_all(p("e")).unwrap();
        disk.remove_dir(p("e"), false).unwrap();
        assert_eq!(disk.list(p("")).unwrap(), ["a.log"]);
    }
}

#[test]
fn a_failed_sync_keeps_the_unsynced_bytes_dirty_unless_told_to_drop_them() {
    let write = |disk: &MemDisk| {
        disk.create(p("f")).unwrap();
        disk.append(p("f"), b"durable").unwrap();
        disk.sync(p("f")).unwrap();
        disk.append(p("f"), b"-lost").unwrap();
        disk.write_at(p("f"), 0, b"D").unwrap();
        disk.fail_next(FaultOp::Sync, 1);
        assert!(disk.sync(p("f")).is_err());
    };
    let read = |disk: &MemDisk| {
        let mut buf = [0u8; 32];
        let n = disk.read_at(p("f"), 0, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    // The default: the bytes stay dirty and the next good sync persists them.
    let disk = MemDisk::new(7);
    write(&disk);
    assert_eq!(read(&disk), b"Durable-lost");
    disk.sync(p("f")).unwrap();
    assert_eq!(disk.durable_bytes(p("f")).unwrap(), b"Durable-lost");

    // fsyncgate: the failed sync dropped them. The file keeps its length; the overwritten byte
    // reads as the durable one, the appended ones as zeros (blocks never written), and a later
    // sync persists that, never the lost bytes.
    let disk = MemDisk::new(7);
    disk.set_sync_failure_drops_unsynced(true);
    disk.set_faults(FaultConfig::default());
    write(&disk);
    assert_eq!(read(&disk), b"durable\0\0\0\0\0");
    disk.append(p("f"), b"+new").unwrap();
    disk.sync(p("f")).unwrap();
    assert_eq!(
        disk.durable_bytes(p("f")).unwrap(),
        b"durable\0\0\0\0\0+new"
    );
    // A successful sync drops nothing.
    disk.append(p("f"), b"!").unwrap();
    disk.sync(p("f")).unwrap();
    assert_eq!(read(&disk), b"durable\0\0\0\0\0+new!");
}
