//! The durable raft store on a `MemDisk`: conformance with the in-memory `RaftStore` driven by a
//! real controller, crash recovery of exactly the synced state, torn tails, corruption set aside.
#![allow(clippy::unwrap_used)]

use broker::control::store::DurableRaftStore;
use broker::control::ControlError;
use controller::raft_prelude::{Entry, HardState};
use controller::{Controller, ControllerConfig, Effect, PersistBatch, RaftStore, Request};
use log_core::{FaultOp, MemDisk};
use std::path::Path;
use wire::BrokerId;

const DIR: &str = "controller/raft";

/// A single-voter controller whose effects go to both the in-memory store (the model) and the
/// durable one.
struct Rig {
    disk: MemDisk,
    ctl: Controller,
    model: RaftStore,
    durable: DurableRaftStore,
    now_ms: u64,
    request_id: u64,
}

impl Rig {
    fn new(seed: u64, snapshot_interval_entries: u64) -> Rig {
        let disk = MemDisk::new(seed);
        let (durable, state) =
            DurableRaftStore::open(disk.as_disk(), Path::new(DIR), &[1]).unwrap();
        assert_eq!(state, RaftStore::bootstrap(&[1]));
        let mut config = ControllerConfig::new(1, vec![1]);
        config.snapshot_interval_entries = snapshot_interval_entries;
        let ctl = Controller::new(config, state.clone(), 0);
        Rig {
            disk,
            ctl,
            model: state,
            durable,
            now_ms: 0,
            request_id: 0,
        }
    }

    /// Carries out effects; after each persist or snapshot, checks the disk against the model.
    fn drain(&mut self) {
        loop {
            let effects = self.ctl.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                match effect {
                    Effect::Persist(batch) => {
                        self.model.apply_persist(&batch);
                        self.durable.apply(&batch).unwrap();
                        self.ctl.persist_complete(batch.id);
                        self.check_reopen();
                    }
                    Effect::SaveSnapshot(snapshot) => {
                        self.model.compact_to(snapshot.clone());
                        self.durable.compact_to(&snapshot).unwrap();
                        self.check_reopen();
                    }
                    Effect::Rejoined => {
                        self.model.set_rejoining(false);
                        self.durable.mark_caught_up().unwrap();
                        self.check_reopen();
                    }
                    _ => {}
                }
            }
        }
    }

    /// The disk now holds exactly the model, before and after a crash (everything is synced).
    fn check_reopen(&self) {
        assert_eq!(self.durable.state(), &self.model);
        let (_, reopened) =
            DurableRaftStore::open(self.disk.as_disk(), Path::new(DIR), &[1]).unwrap();
        assert_eq!(reopened, self.model, "reopen without a crash");
    }

    fn tick(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.now_ms += 100;
            self.ctl.tick(self.now_ms);
            self.drain();
        }
    }

    fn register(&mut self, broker: i32, incarnation: u64) {
        self.request_id += 1;
        let request = Request::RegisterBroker {
            broker: BrokerId(broker),
            incarnation,
            listeners: Vec::new(),
            rack: None,
            clean_shutdown: true,
        };
        self.ctl.request(self.request_id, request, self.now_ms);
        self.drain();
        self.ctl.check_invariants().unwrap();
    }

    /// Elects the single node and commits `registrations` entries.
    fn run(&mut self, registrations: i32) {
        self.tick(30);
        assert!(self.ctl.is_active(), "a single voter elects itself");
        for i in 0..registrations {
            self.register(i % 5 + 1, u64::try_from(i).unwrap() + 100);
        }
    }
}

#[test]
fn conformance_with_the_in_memory_store_through_compactions() {
    let mut rig = Rig::new(1, 4);
    rig.run(20);
    assert!(rig.model.snapshot_index() >= 16, "compactions happened");
    rig.disk.crash();
    let (_, recovered) = DurableRaftStore::open(rig.disk.as_disk(), Path::new(DIR), &[1]).unwrap();
    assert_eq!(recovered, rig.model, "synced state survives a crash");
    // A controller restarted from it resumes with the same image.
    let restarted = Controller::new(ControllerConfig::new(1, vec![1]), recovered, rig.now_ms);
    assert!(restarted.image().applied_index() <= rig.ctl.image().applied_index());
}

#[test]
fn file_stays_bounded_by_compaction() {
    let mut rig = Rig::new(2, 4);
    rig.run(10);
    let after_ten = rig.durable.file_bytes();
    rig.run_more(40);
    assert!(
        rig.durable.file_bytes() < after_ten * 3,
        "{} bytes after 50 registrations vs {after_ten} after 10",
        rig.durable.file_bytes()
    );
}

impl Rig {
    fn run_more(&mut self, registrations: i32) {
        for i in 0..registrations {
            self.register(i % 5 + 1, u64::try_from(i).unwrap() + 1000);
        }
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![u8::try_from(index % 251).unwrap(); 300].into(),
        ..Entry::default()
    }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 1,
        commit,
        ..HardState::default()
    }
}

/// States a crash during `batch` may leave: the state before, any prefix of its entries, or all
/// of it (an unsynced append may survive in part, cut at a sector).
fn crash_candidates(before: &RaftStore, batch: &PersistBatch) -> Vec<RaftStore> {
    let mut candidates = Vec::new();
    for keep in 0..=batch.entries.len() {
        let mut state = before.clone();
        state.append(&batch.entries[..keep]);
        candidates.push(state);
    }
    let mut all = before.clone();
    all.apply_persist(batch);
    candidates.push(all);
    candidates
}

#[test]
fn crash_after_each_step_recovers_the_synced_state() {
    for seed in 0..24u64 {
        let disk = MemDisk::new(seed);
        let dir = Path::new(DIR);
        let (mut durable, mut model) =
            DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
        let batches = 6u64;
        let fail_at = seed % batches;
        for n in 0..batches {
            let batch = PersistBatch {
                id: n + 1,
                snapshot: None,
                entries: (n * 3 + 1..=n * 3 + 3).map(|i| entry(i, 1)).collect(),
                hard_state: Some(hard_state(1, n * 3)),
            };
            if n == fail_at {
                // The sync fails: the batch's bytes are written but not durable.
                disk.fail_next(FaultOp::Sync, 1);
                assert!(matches!(durable.apply(&batch), Err(ControlError::Disk(_))));
                disk.crash();
                let (_, recovered) =
                    DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
                let candidates = crash_candidates(&model, &batch);
                assert!(
                    candidates.contains(&recovered),
                    "seed {seed}: recovered {} entries, hard state {:?}",
                    recovered.index_last(),
                    recovered.hard_state()
                );
                break;
            }
            durable.apply(&batch).unwrap();
            model.apply_persist(&batch);
            disk.crash(); // Everything so far was synced: a crash loses nothing.
            let (reopened, recovered) =
                DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
            assert_eq!(recovered, model, "seed {seed} batch {n}");
            durable = reopened;
        }
    }
}

#[test]
fn torn_tail_is_dropped_and_the_log_continues() {
    let disk = MemDisk::new(7);
    let dir = Path::new(DIR);
    let (mut durable, mut model) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    let batch = PersistBatch {
        id: 1,
        snapshot: None,
        entries: vec![entry(1, 1), entry(2, 1)],
        hard_state: Some(hard_state(1, 1)),
    };
    durable.apply(&batch).unwrap();
    model.apply_persist(&batch);
    let path = dir.join("raft.log");
    let synced = disk.as_disk().len(&path).unwrap();
    // Half a record: a header announcing more bytes than follow.
    disk.as_disk()
        .append(&path, &[40, 0, 0, 0, 1, 2, 3, 4, 3, 9])
        .unwrap();
    let (mut reopened, recovered) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    assert_eq!(recovered, model);
    assert_eq!(disk.as_disk().len(&path).unwrap(), synced, "tail cut");
    let next = PersistBatch {
        id: 2,
        snapshot: None,
        entries: vec![entry(3, 1)],
        hard_state: Some(hard_state(1, 3)),
    };
    reopened.apply(&next).unwrap();
    model.apply_persist(&next);
    let (_, again) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    assert_eq!(again, model, "records after a cut tail are read");
}

#[test]
fn zero_filled_tail_is_dropped() {
    let disk = MemDisk::new(8);
    let dir = Path::new(DIR);
    let (mut durable, mut model) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    let batch = PersistBatch {
        id: 1,
        snapshot: None,
        entries: vec![entry(1, 1)],
        hard_state: Some(hard_state(1, 1)),
    };
    durable.apply(&batch).unwrap();
    model.apply_persist(&batch);
    disk.as_disk()
        .append(&dir.join("raft.log"), &[0u8; 700])
        .unwrap();
    let (_, recovered) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    assert_eq!(recovered, model);
}

/// A flip in synced records (a bad record before valid ones) is not a torn tail: the log is
/// set aside whole and the node starts a new, rejoining log, to catch up from the leader as a
/// replaced disk does (seed 9656: refusing to open kept the node down for the rest of the run).
#[test]
fn corruption_before_the_tail_sets_the_log_aside_and_rejoins() {
    let disk = MemDisk::new(9);
    let dir = Path::new(DIR);
    let (mut durable, _) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    for n in 0..3u64 {
        let batch = PersistBatch {
            id: n + 1,
            snapshot: None,
            entries: vec![entry(n + 1, 1)],
            hard_state: Some(hard_state(1, n)),
        };
        durable.apply(&batch).unwrap();
    }
    drop(durable);
    let path = dir.join("raft.log");
    let base_bytes = 8 + 1 + 10; // Base header and kind, then inside its payload.
    disk.flip_bit_at(&path, base_bytes + 60, 3).unwrap();
    let damaged = read_file(&disk, &path);
    let peeked = DurableRaftStore::peek(disk.as_disk(), dir, &[1]);
    assert!(
        matches!(peeked, Err(ControlError::Corrupt(_))),
        "the damage is corruption, not a torn tail: {peeked:?}"
    );
    let (_, reopened) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    assert_eq!(reopened, RaftStore::bootstrap(&[1]), "a new log");
    assert!(reopened.rejoining(), "it votes only with rejoining nodes");
    let aside = dir.join(broker::control::store::FILE_NAME_CORRUPT);
    assert_eq!(read_file(&disk, &aside), damaged, "the damaged log kept");
    let (_, again) = DurableRaftStore::open(disk.as_disk(), dir, &[1]).unwrap();
    assert_eq!(again, reopened, "the new log is sound");
}

fn read_file(disk: &MemDisk, path: &Path) -> Vec<u8> {
    let disk = disk.as_disk();
    let len = disk.len(path).unwrap();
    let mut bytes = vec![0; len as usize];
    disk.read_at(path, 0, &mut bytes).unwrap();
    bytes
}

#[test]
fn interrupted_rewrite_leaves_the_old_log() {
    let mut rig = Rig::new(10, 1_000);
    rig.run(3);
    let tmp = Path::new(DIR).join("raft.log.tmp");
    rig.disk.as_disk().create(&tmp).unwrap();
    rig.disk.as_disk().append(&tmp, b"half a rewrite").unwrap();
    let (_, recovered) = DurableRaftStore::open(rig.disk.as_disk(), Path::new(DIR), &[1]).unwrap();
    assert_eq!(recovered, rig.model);
    assert!(
        !rig.disk.as_disk().exists(&tmp).unwrap(),
        "leftover removed"
    );
}

#[test]
fn other_voters_are_refused() {
    let disk = MemDisk::new(11);
    let dir = Path::new(DIR);
    drop(DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap());
    let refused = DurableRaftStore::open(disk.as_disk(), dir, &[1, 2]);
    assert!(matches!(refused, Err(ControlError::Config(_))));
    let (_, state) = DurableRaftStore::open(disk.as_disk(), dir, &[3, 2, 1]).unwrap();
    assert_eq!(state, RaftStore::bootstrap(&[1, 2, 3]));
}

#[test]
fn bootstrap_survives_a_crash() {
    let disk = MemDisk::new(12);
    let dir = Path::new(DIR);
    drop(DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap());
    disk.crash();
    assert!(disk.as_disk().exists(&dir.join("raft.log")).unwrap());
    let (_, state) = DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
    assert_eq!(state, RaftStore::bootstrap(&[1, 2, 3]));
}

/// A new log is rejoining (its node votes only with other rejoining nodes) until the core says
/// it caught up; both survive a crash, and a compaction's rewrite keeps the flag.
#[test]
fn the_rejoining_mark_is_durable_until_the_node_caught_up() {
    let disk = MemDisk::new(13);
    let dir = Path::new(DIR);
    let (mut durable, state) = DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
    assert!(state.rejoining(), "a new log rejoins");
    disk.crash();
    let (_, state) = DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
    assert!(state.rejoining(), "after a crash too");
    // A single voter catches up at its first commit in its own term; its store says so.
    let mut rig = Rig::new(14, 4);
    assert!(rig.ctl.is_rejoining());
    rig.run(20);
    assert!(!rig.ctl.is_rejoining(), "a single voter caught up");
    assert!(!rig.model.rejoining());
    rig.disk.crash();
    let (_, recovered) = DurableRaftStore::open(rig.disk.as_disk(), Path::new(DIR), &[1]).unwrap();
    assert!(
        !recovered.rejoining(),
        "caught up survives a crash and compactions"
    );
    assert_eq!(recovered, rig.model);
    // Marking a log caught up is durable, and idempotent.
    durable.mark_caught_up().unwrap();
    durable.mark_caught_up().unwrap(); // Idempotent.
    disk.crash();
    let (_, state) = DurableRaftStore::open(disk.as_disk(), dir, &[1, 2, 3]).unwrap();
    assert!(!state.rejoining());
}
