//! The journal (`log_core::journal`): records come back in order after a reopen; a crash keeps
//! every record of a round whose write returned, and at most a prefix of the round in flight;
//! damage to synced records is reported, never cut off as a torn tail.
#![allow(clippy::unwrap_used)]

use log_core::journal::{Journal, JournalRecord};
use log_core::mem_disk::SECTOR_BYTES;
use log_core::{Disk, FaultOp, FileDisk, LogError, MemDisk};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

const DIR: &str = "journal";

fn payload(round: usize, i: usize) -> Vec<u8> {
    format!("round {round} record {i} ")
        .repeat(1 + (round * 7 + i * 3) % 40)
        .into_bytes()
}

fn open(disk: &dyn Disk, file_bytes_max: u64) -> (Journal, Vec<JournalRecord>) {
    let (journal, records, _) = Journal::open(disk, Path::new(DIR), file_bytes_max).unwrap();
    (journal, records)
}

fn write(journal: &mut Journal, disk: &dyn Disk, payloads: &[Vec<u8>]) -> std::ops::Range<u64> {
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    journal.write_round(disk, &refs).unwrap()
}

fn files(disk: &dyn Disk) -> Vec<PathBuf> {
    disk.list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .map(|name| Path::new(DIR).join(name))
        .collect()
}

#[test]
fn records_come_back_in_order_across_files_and_reopens() {
    let disk = MemDisk::new(1);
    let (mut journal, records) = open(&disk, 4_096);
    assert!(records.is_empty());
    let mut written = Vec::new();
    for round in 0..30 {
        let payloads: Vec<Vec<u8>> = (0..1 + round % 4).map(|i| payload(round, i)).collect();
        let sequences = write(&mut journal, &disk, &payloads);
        assert_eq!(sequences.start, written.len() as u64);
        written.extend(payloads);
    }
    assert!(
        files(&disk).len() > 3,
        "rolled at 4 KiB: {:?}",
        files(&disk)
    );
    disk.crash();
    let (journal, records) = open(&disk, 4_096);
    assert_eq!(
        records
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<_>>(),
        written
    );
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.sequence == i as u64));
    assert_eq!(journal.next_sequence(), written.len() as u64);
}

#[test]
fn a_record_written_in_parts_is_the_record_of_its_joined_payload() {
    let (joined, parted) = (MemDisk::new(1), MemDisk::new(1));
    let (mut one, _) = open(&joined, 4_096);
    let (mut two, _) = open(&parted, 4_096);
    let (header, body) = (b"header:".as_slice(), payload(3, 1));
    let whole = [header, body.as_slice()].concat();
    let empty: &[u8] = &[];
    write(
        &mut one,
        &joined,
        &[whole.clone(), Vec::new(), b"x".to_vec()],
    );
    two.write_round_of_parts(
        &parted,
        &[[header, body.as_slice()], [empty, empty], [b"x", empty]],
    )
    .unwrap();
    for file in files(&joined) {
        assert_eq!(
            joined.durable_bytes(&file).unwrap(),
            parted.durable_bytes(&file).unwrap(),
            "byte for byte, and synced"
        );
    }
    let (_, records) = open(&parted, 4_096);
    assert_eq!(records[0].payload, whole);
    assert_eq!(records.len(), 3);
}

#[test]
fn released_files_go_and_the_rest_still_continue() {
    let disk = MemDisk::new(2);
    let (mut journal, _) = open(&disk, 2_048);
    for round in 0..20 {
        write(&mut journal, &disk, &[payload(round, 0), payload(round, 1)]);
    }
    let before = files(&disk).len();
    let firsts: Vec<u64> = journal.files().map(|(first, _)| first).collect();
    let keep_from = firsts[firsts.len() / 2];
    let removed = journal.release_below(&disk, keep_from).unwrap();
    assert_eq!(removed, firsts.len() / 2);
    assert_eq!(files(&disk).len(), before - removed);
    // Everything from the first kept file on comes back; a release of everything keeps the
    // file being written.
    let (mut journal, records) = open(&disk, 2_048);
    assert_eq!(records[0].sequence, keep_from);
    assert_eq!(journal.next_sequence(), 40);
    journal.release_below(&disk, u64::MAX).unwrap();
    assert_eq!(files(&disk).len(), 1);
    let next = write(&mut journal, &disk, &[b"after".to_vec()]);
    assert_eq!(next, 40..41);
}

#[test]
fn a_failed_sync_poisons_the_journal_and_the_round_is_not_counted() {
    let disk = MemDisk::new(3);
    let (mut journal, _) = open(&disk, 1 << 20);
    write(&mut journal, &disk, &[b"one".to_vec()]);
    disk.fail_next(FaultOp::Sync, 1);
    let failed = journal.write_round(&disk, &[b"two".as_slice()]);
    assert!(matches!(failed, Err(LogError::Disk(_))), "{failed:?}");
    let again = journal.write_round(&disk, &[b"three".as_slice()]);
    assert!(matches!(again, Err(LogError::Poisoned(_))), "{again:?}");
    disk.crash();
    let (_, records) = open(&disk, 1 << 20);
    assert_eq!(records[0].payload, b"one");
    assert!(
        records.len() <= 2,
        "at most the failed round's record besides"
    );
}

/// Flips one bit of the journal's only file at `position`.
fn flip(disk: &MemDisk, position: u64) {
    let file = files(disk).pop().unwrap();
    disk.flip_bit_at(&file, position, 3).unwrap();
}

#[test]
fn a_flip_in_a_synced_record_with_later_rounds_after_it_is_corruption() {
    let disk = MemDisk::new(4);
    let (mut journal, _) = open(&disk, 1 << 20);
    for round in 0..5 {
        write(&mut journal, &disk, &[payload(round, 0)]);
    }
    // The second record's length field (the second round starts at the next sector: the first
    // round is one record and a pad): a flipped length hides where the next record starts,
    // and the scan still finds it.
    let second = SECTOR_BYTES;
    flip(&disk, second + 1);
    let error = Journal::open(&disk, Path::new(DIR), 1 << 20).unwrap_err();
    assert!(
        matches!(&error, LogError::CorruptJournal { position, .. } if *position == second),
        "{error:?}"
    );
    assert!(error.is_corruption());
    // And a flip in a payload byte of the same record.
    let disk = MemDisk::new(5);
    let (mut journal, _) = open(&disk, 1 << 20);
    for round in 0..5 {
        write(&mut journal, &disk, &[payload(round, 0)]);
    }
    flip(&disk, second + 30);
    assert!(matches!(
        Journal::open(&disk, Path::new(DIR), 1 << 20),
        Err(LogError::CorruptJournal { .. })
    ));
}

#[test]
fn damage_in_the_last_round_is_a_torn_tail_even_with_its_own_records_after_it() {
    let disk = MemDisk::new(6);
    let (mut journal, _) = open(&disk, 1 << 20);
    write(&mut journal, &disk, &[payload(0, 0)]);
    // The last round: three records; its first one is damaged, the two after it are whole (a
    // crash may keep a round's later sectors and not its earlier ones).
    write(
        &mut journal,
        &disk,
        &[payload(1, 0), payload(1, 1), payload(1, 2)],
    );
    let first_of_round = SECTOR_BYTES;
    flip(&disk, first_of_round + 30);
    let (journal, records, recovery) = Journal::open(&disk, Path::new(DIR), 1 << 20).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(journal.next_sequence(), 1);
    assert!(recovery.torn_bytes > 0);
    let file = files(&disk).pop().unwrap();
    assert_eq!(disk.len(&file).unwrap(), first_of_round, "the tail was cut");
}

#[test]
fn rounds_fill_whole_sectors_with_a_pad_and_a_cut_file_is_not_written_again() {
    let disk = MemDisk::new(8);
    let unit = disk.write_alignment() as u64;
    assert_eq!(unit, SECTOR_BYTES);
    let (mut journal, _) = open(&disk, 1 << 20);
    // Round 0 needs a pad shorter than a header: it pads to the sector after the next.
    let tight = vec![b'x'; SECTOR_BYTES as usize - 24 - 10];
    let rounds: Vec<Vec<Vec<u8>>> = vec![
        vec![tight],
        vec![payload(1, 0), payload(1, 1)],
        vec![payload(2, 0), payload(2, 1), payload(2, 2)],
    ];
    let mut starts = Vec::new();
    for payloads in &rounds {
        starts.push(
            files(&disk)
                .pop()
                .map_or(0, |file| disk.len(&file).unwrap()),
        );
        write(&mut journal, &disk, payloads);
    }
    let file = files(&disk).pop().unwrap();
    let len = disk.len(&file).unwrap();
    assert!(
        starts.iter().chain([&len]).all(|at| at % unit == 0),
        "every round starts and ends on a sector: {starts:?}, {len}"
    );
    assert_eq!(starts[1], 2 * unit, "a pad is at least a header long");
    let written: Vec<Vec<u8>> = rounds.concat();
    let (journal, records) = open(&disk, 1 << 20);
    let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
    assert_eq!(got, written, "pads are stepped over");
    assert_eq!(journal.next_sequence(), written.len() as u64);
    let salvaged = Journal::salvage(&disk, Path::new(DIR)).unwrap();
    assert_eq!(salvaged.len(), written.len(), "and salvage skips them too");
    // A torn tail cut at a record's end (not a sector's): the next round starts a new file,
    // and everything comes back in order.
    let torn_at = starts[2] + 24 + payload(2, 0).len() as u64;
    flip(&disk, torn_at + 30);
    drop(journal);
    let (mut journal, records, recovery) = Journal::open(&disk, Path::new(DIR), 1 << 20).unwrap();
    assert!(recovery.torn_bytes > 0);
    assert_eq!(
        records.len(),
        written.len() - 2,
        "the last round cut after its first record"
    );
    assert_eq!(disk.len(&file).unwrap(), torn_at);
    write(&mut journal, &disk, &[b"after the cut".to_vec()]);
    assert_eq!(
        disk.len(&file).unwrap(),
        torn_at,
        "the cut file is not written again"
    );
    assert_eq!(files(&disk).len(), 2);
    drop(journal);
    let (_, records) = open(&disk, 1 << 20);
    assert_eq!(records.len(), written.len() - 1);
    assert_eq!(records.last().unwrap().payload, b"after the cut");
}

#[test]
fn a_file_that_does_not_continue_the_sequence_is_corruption() {
    let disk = MemDisk::new(7);
    let (mut journal, _) = open(&disk, 256);
    for round in 0..6 {
        write(&mut journal, &disk, &[payload(round, 0)]);
    }
    let all = files(&disk);
    assert!(all.len() >= 3);
    disk.remove(&all[1]).unwrap();
    assert!(matches!(
        Journal::open(&disk, Path::new(DIR), 256),
        Err(LogError::CorruptJournal { .. })
    ));
}

#[test]
fn the_journal_works_on_real_files() {
    let root = tempfile::tempdir().unwrap();
    let disk = FileDisk::new(root.path()).unwrap();
    let (mut journal, _) = open(&disk, 8_192);
    let mut written = Vec::new();
    for round in 0..40 {
        let payloads = vec![payload(round, 0), payload(round, 1)];
        write(&mut journal, &disk, &payloads);
        written.extend(payloads);
    }
    drop(journal);
    let (_, records) = open(&disk, 8_192);
    assert_eq!(
        records.into_iter().map(|r| r.payload).collect::<Vec<_>>(),
        written
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Rounds written, crashes between them and inside them (a round whose sync failed, its
    /// bytes torn by the crash wherever MemDisk draws): after each reopen the journal holds
    /// every record of every round whose write returned, in order, then at most a prefix of
    /// the failed round; writes go on after every recovery.
    #[test]
    fn a_crash_keeps_every_acknowledged_round(
        seed in 0u64..1_000,
        plan in prop::collection::vec((1usize..5, 0u8..4), 1..40),
        file_bytes_max in 64u64..4_096,
    ) {
        let disk = MemDisk::new(seed);
        let (mut journal, _) = open(&disk, file_bytes_max);
        let mut acknowledged: Vec<Vec<u8>> = Vec::new();
        for (round, (count, fate)) in plan.into_iter().enumerate() {
            let payloads: Vec<Vec<u8>> = (0..count).map(|i| payload(round, i)).collect();
            let failed = fate == 0;
            if failed {
                disk.fail_next(FaultOp::Sync, 1);
            }
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            match journal.write_round(&disk, &refs) {
                Ok(sequences) => {
                    prop_assert!(!failed || sequences.is_empty());
                    prop_assert_eq!(sequences.start, acknowledged.len() as u64);
                    acknowledged.extend(payloads.iter().cloned());
                }
                Err(error) => prop_assert!(failed, "{error:?}"),
            }
            if fate <= 1 {
                disk.crash();
                let (reopened, records) = open(&disk, file_bytes_max);
                let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
                prop_assert!(got.len() >= acknowledged.len(), "{} < {}", got.len(), acknowledged.len());
                prop_assert_eq!(&got[..acknowledged.len()], &acknowledged[..]);
                let extra = &got[acknowledged.len()..];
                prop_assert!(failed || extra.is_empty());
                prop_assert_eq!(extra, &payloads[..extra.len()]);
                // What came back is the journal now: kept records count as written.
                acknowledged.extend(extra.iter().cloned());
                journal = reopened;
            } else if failed {
                // A poisoned journal is reopened (without a crash: the failed round's bytes
                // may still be read back whole).
                let (reopened, records) = open(&disk, file_bytes_max);
                let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
                prop_assert_eq!(&got[..acknowledged.len()], &acknowledged[..]);
                acknowledged = got;
                journal = reopened;
            }
        }
    }

    /// A round whose bytes a crash cut anywhere (a torn append): the reopened journal holds
    /// every earlier round and a prefix of that one, never a record out of order.
    #[test]
    fn a_torn_round_leaves_a_prefix(
        seed in 0u64..1_000,
        rounds in 1usize..8,
        cut in 0usize..4_000,
    ) {
        let disk = MemDisk::new(seed);
        let (mut journal, _) = open(&disk, 1 << 20);
        let mut acknowledged: Vec<Vec<u8>> = Vec::new();
        let mut last_start = 0;
        for round in 0..rounds {
            let payloads = vec![payload(round, 0), payload(round, 1)];
            last_start = files(&disk).pop().map_or(0, |file| disk.len(&file).unwrap());
            write(&mut journal, &disk, &payloads);
            acknowledged.extend(payloads);
        }
        // The last round's bytes cut short (its padding included), as a crash tears an unsynced
        // append.
        let file = files(&disk).pop().unwrap();
        let last_round = disk.len(&file).unwrap() - last_start;
        prop_assert_eq!(last_round % SECTOR_BYTES, 0, "a round fills whole sectors");
        let keep = last_start + (cut as u64 % last_round);
        disk.truncate(&file, keep).unwrap();
        let (_, records) = open(&disk, 1 << 20);
        let payloads: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
        prop_assert!(payloads.len() >= acknowledged.len() - 2);
        prop_assert_eq!(&payloads[..], &acknowledged[..payloads.len()]);
    }
}

/// A round whose sync failed on a disk that kept its bytes in the page cache: cut back to the
/// last successful sync, the journal opened again numbers the next record where a crash would
/// leave it (seed 175197: reopened over the failed round's bytes, it wrote a file a crash then
/// left with a gap before it, and the broker could not start).
#[test]
fn a_journal_opened_again_after_a_failed_sync_forgets_the_failed_round() {
    let disk = MemDisk::new(41);
    let (mut journal, _, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    journal.write_round(&disk, &[b"one"]).unwrap();
    disk.fail_next(FaultOp::Sync, 1);
    assert!(journal.write_round(&disk, &[b"two", b"three"]).is_err());
    journal.cut_to_synced(&disk).unwrap();
    let (reopened, records, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    assert_eq!(records.len(), 1, "the failed round is gone");
    assert_eq!(reopened.next_sequence(), 1);
    disk.crash();
    let (after_crash, _, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    assert_eq!(after_crash.next_sequence(), 1, "what a crash leaves");
}

/// A synced record flipped at rest: `open` refuses the journal, `salvage` still reads every
/// other record, and `remove_files` leaves an empty journal.
#[test]
fn a_damaged_journal_is_salvaged_record_by_record() {
    let disk = MemDisk::new(42);
    let (mut journal, _, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    for round in [&[&b"aaaa"[..], b"bbbb"][..], &[b"cccc"], &[b"dddd"]] {
        journal.write_round(&disk, round).unwrap();
    }
    let file = Path::new("j").join(format!("{:020}.wal", 0));
    // Byte 30: the length field of the second record (the first is 24 + 4 bytes).
    disk.flip_bit_at(&file, 30, 1).unwrap();
    assert!(matches!(
        Journal::open(&disk, Path::new("j"), 1 << 20),
        Err(LogError::CorruptJournal { .. })
    ));
    let salvaged = Journal::salvage(&disk, Path::new("j")).unwrap();
    let sequences: Vec<u64> = salvaged.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [0, 2, 3], "all but the damaged second record");
    Journal::remove_files(&disk, Path::new("j")).unwrap();
    let (fresh, records, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    assert!(records.is_empty());
    assert_eq!(fresh.next_sequence(), 0);
}

/// Seed 153: the first round's roll created its file and then failed to sync the directory.
/// Opened again, the journal appends into that file: its entry must be made durable first, or
/// a crash takes the file and every synced record in it.
#[test]
fn a_file_whose_roll_failed_at_the_directory_sync_survives_a_crash_once_reopened() {
    let disk = MemDisk::new(43);
    let (mut journal, _, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    disk.fail_next(FaultOp::Sync, 1);
    assert!(journal.write_round(&disk, &[b"lost"]).is_err());
    let (mut reopened, _, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    reopened.write_round(&disk, &[b"kept"]).unwrap();
    disk.crash();
    let (_, records, _) = Journal::open(&disk, Path::new("j"), 1 << 20).unwrap();
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(payloads, [&b"kept"[..]]);
}
