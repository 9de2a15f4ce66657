//! Raft state storage: the in-memory mirror raft-rs reads through its `Storage` trait, which is
//! also the shape a driver persists. The core updates the mirror as soon as raft hands it state
//! (raft-rs requires that before `advance_append_async`) and emits persist effects; the driver
//! applies the same effects to its durable copy, in order, and restarts the core from it.

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

/// Raft's durable state: hard state, configuration, the latest snapshot (with the metadata image
/// as data) and the log entries after it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaftStore {
    /// Term, vote and commit index.
    hard_state: HardState,
    /// The voters. Static in rill: set at bootstrap, carried in every snapshot.
    conf_state: ConfState,
    /// The latest snapshot; index 0 and empty data before the first one.
    snapshot: Snapshot,
    /// Entries with indexes snapshot index + 1, + 2, ... (contiguous).
    entries: Vec<Entry>,
    /// This log was started empty (a new quorum, or a replaced disk) and has not yet been shown
    /// to hold everything the quorum committed: the node votes only with other rejoining nodes
    /// until it has (see `Controller` and docs/design-notes.md, "Wiped disks").
    rejoining: bool,
}

/// One persist effect: what raft-rs asked to make durable in one Ready, in this order: a snapshot
/// received from the leader, new log entries, the hard state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PersistBatch {
    /// The Ready number; completing it completes every earlier batch too.
    pub id: u64,
    /// A snapshot from the leader, replacing the log up to its index.
    pub snapshot: Option<Snapshot>,
    /// Entries to append, replacing any conflicting suffix.
    pub entries: Vec<Entry>,
    /// The new hard state.
    pub hard_state: Option<HardState>,
}

impl RaftStore {
    /// A fresh store for a bootstrapping quorum of `voters`: every node starts from the same
    /// configuration and an empty log.
    pub fn bootstrap(voters: &[u64]) -> RaftStore {
        assert!(
            !voters.is_empty() && !voters.contains(&0),
            "raft ids are positive: {voters:?}"
        );
        let conf_state = ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        };
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().set_conf_state(conf_state.clone());
        RaftStore {
            hard_state: HardState::default(),
            conf_state,
            snapshot,
            entries: Vec::new(),
            rejoining: true,
        }
    }

    /// Is this log still rejoining (started empty, not yet caught up with the quorum)?
    pub fn rejoining(&self) -> bool {
        self.rejoining
    }

    /// Marks the log rejoining or caught up (the core when it caught up, a durable store when
    /// it replays its records).
    pub fn set_rejoining(&mut self, rejoining: bool) {
        self.rejoining = rejoining;
    }

    /// The hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot (index 0 if none was taken).
    pub fn snapshot_latest(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Index of the latest snapshot: entries at or below it are compacted.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Entries after the snapshot.
    pub fn entries_retained(&self) -> &[Entry] {
        &self.entries
    }

    /// First index still in the log.
    pub fn index_first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    /// Last index in the log (the snapshot's if the log is empty).
    pub fn index_last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// The entry at `index`, if retained.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.index_first())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Applies a persist batch: the core calls this on its mirror, the driver on its durable copy.
    pub fn apply_persist(&mut self, batch: &PersistBatch) {
        if let Some(snapshot) = &batch.snapshot {
            self.install_snapshot(snapshot.clone());
        }
        self.append(&batch.entries);
        if let Some(hard_state) = &batch.hard_state {
            self.hard_state = hard_state.clone();
            // A batch emitted before a local snapshot carries an older commit index; the
            // snapshot's entries are committed, so the commit never falls below it.
            self.hard_state.commit = self.hard_state.commit.max(self.snapshot_index());
        }
        assert!(
            self.hard_state.commit >= self.snapshot_index(),
            "commit below the snapshot"
        );
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        assert!(
            meta.index >= self.snapshot_index(),
            "snapshot {} behind ours",
            meta.index
        );
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snapshot;
        assert_eq!(self.index_last(), self.snapshot_index());
    }

    /// Replaces the snapshot by a newer local one and drops the entries it covers: the log stays
    /// bounded. The entries after it stay.
    pub fn compact_to(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        if index <= self.snapshot_index() {
            return; // Already covered: a stale or repeated effect.
        }
        assert!(
            index <= self.index_last(),
            "snapshot {index} past the log end"
        );
        // The snapshot covers applied, hence committed, entries; the hard state carrying that
        // commit index may still be in flight, so raise it here or a restart would find its
        // commit index below its first index.
        self.hard_state.commit = self.hard_state.commit.max(index);
        let drop = usize::try_from(index - self.snapshot_index()).expect("bounded by the log");
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        assert!(
            self.entries.first().is_none_or(|e| e.index == index + 1),
            "log stays contiguous"
        );
    }

    /// Appends entries, truncating any conflicting suffix first. Entries the snapshot already
    /// covers are skipped.
    pub fn append(&mut self, entries: &[Entry]) {
        let snapshot_index = self.snapshot_index();
        let fresh: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.index > snapshot_index)
            .collect();
        let Some(first) = fresh.first() else { return };
        assert!(
            first.index <= self.index_last() + 1,
            "gap: {} after {}",
            first.index,
            self.index_last()
        );
        let keep = usize::try_from(first.index - self.index_first()).expect("bounded by the log");
        self.entries.truncate(keep);
        self.entries.extend(fresh.into_iter().cloned());
        assert!(
            self.entries
                .windows(2)
                .all(|w| w[1].index == w[0].index + 1),
            "contiguous log"
        );
    }

    /// Sets the hard state (the core mirrors raft's before persistence completes).
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// The voters.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }
}

impl raft::Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.index_first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.index_last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = usize::try_from(low - self.index_first()).expect("bounded by the log");
        let hi = usize::try_from(high - self.index_first()).expect("bounded by the log");
        let mut entries = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if index < self.index_first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entry(index)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.index_first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.index_last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
