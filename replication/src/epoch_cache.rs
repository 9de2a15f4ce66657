//! The leader-epoch cache: which epoch starts at which offset (Kafka's `LeaderEpochFileCache`).
//! It answers OffsetsForLeaderEpoch and drives truncation to the true divergence point (KIP-101).

use std::collections::BTreeMap;
use wire::{LeaderEpoch, Offset};

use crate::EpochEndOffset;

/// Most epochs kept: a partition has at most one entry per leader change that appended.
pub const EPOCHS_MAX: usize = 1 << 16;

/// Epoch → start offset, epochs strictly increasing and start offsets non-decreasing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EpochCache {
    /// The entries; why a map: lookups by "largest epoch at most e" are range queries.
    entries: BTreeMap<LeaderEpoch, Offset>,
}

impl EpochCache {
    /// A cache from `(epoch, start offset)` pairs as recovered from the log.
    pub fn from_entries(entries: &[(LeaderEpoch, Offset)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(epoch, start) in entries {
            cache.assign(epoch, start);
        }
        cache
    }

    /// Records that `epoch` starts at `start` (Kafka's `assign`). The latest epoch again changes
    /// nothing. Otherwise entries that would break monotonicity (an epoch at least as new, or a
    /// start at least as late) are dropped first: an epoch that appended nothing is replaced, and
    /// a follower fed an older epoch (only possible with epoch fencing switched off) rewrites.
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) {
        assert!(
            epoch >= LeaderEpoch(0),
            "records carry a real epoch: {epoch}"
        );
        if let Some((&latest, &latest_start)) = self.entries.last_key_value() {
            if epoch == latest {
                assert!(start >= latest_start, "epoch {epoch} reassigned earlier");
                return;
            }
        }
        self.entries.retain(|&e, s| e < epoch && *s < start);
        assert!(self.entries.len() < EPOCHS_MAX, "epoch cache full");
        self.entries.insert(epoch, start);
        assert_eq!(self.latest_epoch(), epoch);
    }

    /// The epoch of the last record (or last assigned epoch), NONE for an empty cache.
    pub fn latest_epoch(&self) -> LeaderEpoch {
        self.entries
            .last_key_value()
            .map_or(LeaderEpoch::NONE, |(&e, _)| e)
    }

    /// Start offset of `epoch`, if the cache knows it.
    pub fn start_offset(&self, epoch: LeaderEpoch) -> Option<Offset> {
        self.entries.get(&epoch).copied()
    }

    /// End of the largest epoch at most `epoch` in a log ending at `log_end_offset`: the next
    /// epoch's start, or the LEO for the latest epoch. NONE asked, NONE answered.
    pub fn end_offset_for(&self, epoch: LeaderEpoch, log_end_offset: Offset) -> EpochEndOffset {
        if epoch == LeaderEpoch::NONE {
            return EpochEndOffset {
                leader_epoch: LeaderEpoch::NONE,
                end_offset: log_end_offset,
            };
        }
        let Some((&found, _)) = self.entries.range(..=epoch).next_back() else {
            // Older than every epoch we know: like Kafka, the asked epoch ends where our first
            // epoch starts, so the asker drops everything from there.
            let end_offset = self.first_start().unwrap_or(log_end_offset);
            return EpochEndOffset {
                leader_epoch: epoch,
                end_offset,
            };
        };
        let next_start = self.entries.range(found..).nth(1).map(|(_, &start)| start);
        let end_offset = next_start.unwrap_or(log_end_offset);
        assert!(end_offset <= log_end_offset, "epoch ends past the log end");
        EpochEndOffset {
            leader_epoch: found,
            end_offset,
        }
    }

    /// Start offset of the oldest epoch, if any.
    pub fn first_start(&self) -> Option<Offset> {
        self.entries.first_key_value().map(|(_, &start)| start)
    }

    /// Forgets epochs that start at or after `offset`: the log was truncated there. Returns
    /// whether any entry went.
    pub fn truncate_from_end(&mut self, offset: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, start| *start < offset);
        assert!(self.entries.values().all(|&start| start < offset));
        before != self.entries.len()
    }

    /// Forgets epochs wholly below `start`: the log's start moved there (Kafka's
    /// `truncateFromStart`). The newest epoch starting at or below `start` is kept, clamped to
    /// start at `start`, so the records from `start` on keep their epoch. Returns whether the
    /// cache changed.
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let Some((&covering, &covering_start)) = self
            .entries
            .iter()
            .rev()
            .find(|&(_, &entry_start)| entry_start <= start)
        else {
            return false;
        };
        let before = self.entries.len();
        self.entries.retain(|&epoch, _| epoch >= covering);
        self.entries.insert(covering, start);
        assert!(
            self.first_start() == Some(start),
            "the covering epoch starts at the new start"
        );
        before != self.entries.len() || covering_start != start
    }

    /// The entries in epoch order.
    pub fn entries(&self) -> impl Iterator<Item = (LeaderEpoch, Offset)> + '_ {
        self.entries.iter().map(|(&e, &s)| (e, s))
    }

    /// Asserts the cache's ordering invariant (epochs and starts strictly increase, all within
    /// the log).
    pub fn check_invariants(&self, log_end: Offset) {
        let mut previous: Option<(LeaderEpoch, Offset)> = None;
        for (epoch, start) in self.entries() {
            assert!(
                start <= log_end,
                "epoch {epoch} starts at {start} past LEO {log_end}"
            );
            if let Some((pe, ps)) = previous {
                assert!(
                    epoch > pe && start > ps,
                    "epoch cache not monotone at {epoch}"
                );
            }
            previous = Some((epoch, start));
        }
    }
}
