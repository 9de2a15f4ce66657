//! RaftStore against raft-rs's own MemStorage: the same appends give the same answers through
//! the `Storage` trait (a conformance check), and compaction keeps what raft needs.
#![allow(clippy::unwrap_used)]

use controller::raft_prelude::{ConfState, Entry, Snapshot};
use controller::{PersistBatch, RaftStore};
use proptest::prelude::*;
use raft::{GetEntriesContext, Storage};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8].into(),
        ..Entry::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Appends that overwrite suffixes (as after a leader change) answer like MemStorage.
    #[test]
    fn appends_answer_like_mem_storage(ops in proptest::collection::vec((0u64..6, 1usize..4), 1..20)) {
        let ours = &mut RaftStore::bootstrap(&[1, 2, 3]);
        let theirs = raft::storage::MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        for (term, (back, count)) in (2u64..).zip(ops) {
            let last = ours.index_last();
            let first = last.saturating_sub(back).max(1);
            let entries: Vec<Entry> = (first..first + count as u64).map(|i| entry(i, term)).collect();
            ours.append(&entries);
            theirs.wl().append(&entries).unwrap();
            prop_assert_eq!(ours.last_index().unwrap(), theirs.last_index().unwrap());
            prop_assert_eq!(ours.first_index().unwrap(), theirs.first_index().unwrap());
            let last = ours.index_last();
            for i in 0..=last {
                prop_assert_eq!(ours.term(i).unwrap(), theirs.term(i).unwrap());
            }
            prop_assert_eq!(
                ours.entries(1, last + 1, None, ctx()).unwrap(),
                theirs.entries(1, last + 1, None, ctx()).unwrap()
            );
        }
    }
}

#[test]
fn compaction_keeps_the_tail_and_answers_compacted_below() {
    let mut store = RaftStore::bootstrap(&[1]);
    store.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>());
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 6;
    snapshot.mut_metadata().term = 1;
    store.compact_to(snapshot.clone());
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (7, 10)
    );
    assert_eq!(store.term(6).unwrap(), 1, "the snapshot's term stays known");
    assert!(store.term(5).is_err());
    assert!(store.entries(5, 8, None, ctx()).is_err());
    assert_eq!(store.entries(7, 9, None, ctx()).unwrap().len(), 2);
    assert_eq!(store.snapshot(0, 2).unwrap(), snapshot);
    assert!(
        store.hard_state().commit >= 6,
        "a snapshot's entries are committed"
    );
    // A stale persist batch cannot pull the commit index below the snapshot.
    let stale = PersistBatch {
        id: 1,
        hard_state: Some(Default::default()),
        ..Default::default()
    };
    store.apply_persist(&stale);
    assert_eq!(store.hard_state().commit, 6);
}

#[test]
fn an_installed_snapshot_replaces_the_log() {
    let mut store = RaftStore::bootstrap(&[1, 2, 3]);
    store.append(&(1..=3).map(|i| entry(i, 1)).collect::<Vec<_>>());
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 20;
    snapshot.mut_metadata().term = 4;
    let batch = PersistBatch {
        id: 9,
        snapshot: Some(snapshot),
        entries: vec![entry(21, 4)],
        hard_state: None,
    };
    store.apply_persist(&batch);
    assert_eq!((store.index_first(), store.index_last()), (21, 21));
    assert_eq!(
        (store.hard_state().term, store.hard_state().commit),
        (4, 20)
    );
}
