//! The leader epoch cache: for each leader epoch, the first offset its leader appended. It answers
//! OffsetsForLeaderEpoch (KIP-101/KIP-279), which followers use to truncate divergent suffixes.

use wire::{LeaderEpoch, Offset};

/// Entries bounded: a partition with more leader changes than this has bigger problems, and the
/// oldest entries are dropped by retention anyway.
pub const EPOCH_ENTRIES_MAX: usize = 1 << 16;

/// `(epoch, start offset)` pairs, both strictly increasing in epoch and non-decreasing in offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    /// The entries, oldest first.
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    /// A cache from checkpointed entries (already validated as increasing).
    pub fn from_entries(entries: Vec<(LeaderEpoch, Offset)>) -> Self {
        let cache = EpochCache { entries };
        cache.check();
        cache
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    fn check(&self) {
        assert!(
            self.entries.len() <= EPOCH_ENTRIES_MAX,
            "epoch cache is bounded"
        );
        debug_assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "epochs and start offsets increase: {:?}",
            self.entries
        );
    }

    /// The newest epoch, `None` if no leader ever appended.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start`. Returns whether the cache changed. An epoch not
    /// newer than the latest is ignored unless its start is earlier (a truncated-then-rewritten
    /// history), in which case conflicting newer entries are dropped first, as Kafka does.
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        assert!(epoch.0 >= 0, "only real epochs are assigned: {epoch}");
        if let Some(&(latest, latest_start)) = self.entries.last() {
            if epoch == latest && start >= latest_start {
                return false;
            }
            if epoch < latest && start >= latest_start {
                return false;
            }
        }
        self.entries.retain(|(e, s)| *e < epoch && *s < start);
        if self.entries.len() == EPOCH_ENTRIES_MAX {
            self.entries.remove(0);
        }
        self.entries.push((epoch, start));
        self.check();
        true
    }

    /// Drops entries starting at or after `end` (the log was truncated to `end`).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s < end);
        before != self.entries.len()
    }

    /// Drops entries wholly below `start` (the log start moved); the entry covering `start` is
    /// moved up to begin there.
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let covering = self.entries.iter().rposition(|(_, s)| *s <= start);
        let Some(index) = covering else { return false };
        let changed = index > 0 || self.entries[index].1 != start;
        self.entries.drain(..index);
        self.entries[0].1 = start;
        self.check();
        changed
    }

    /// OffsetsForLeaderEpoch: the largest epoch `<= requested` and the end offset of that epoch
    /// (the start of the next epoch, or `log_end` for the latest). `None` is Kafka's
    /// UNDEFINED_EPOCH/UNDEFINED_OFFSET answer (the requested epoch is newer than any we know).
    pub fn end_offset_for_epoch(
        &self,
        requested: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        if requested.0 < 0 {
            return None;
        }
        let latest = self.latest_epoch()?;
        if requested >= latest {
            // Kafka answers (latest, LEO) for the latest epoch; a newer epoch is unknown.
            return (requested == latest).then_some((latest, log_end));
        }
        let higher = self.entries.iter().position(|(e, _)| *e > requested)?;
        let end = self.entries[higher].1;
        let answer = match higher {
            0 => (requested, end),
            _ => (self.entries[higher - 1].0, end),
        };
        assert!(
            answer.0 <= requested,
            "the answer's epoch is not newer than the request"
        );
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache::from_entries(
            entries
                .iter()
                .map(|&(e, s)| (LeaderEpoch(e), Offset(s)))
                .collect(),
        )
    }

    #[test]
    fn end_offset_for_epoch_follows_kip_279() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        let leo = Offset(30);
        assert_eq!(
            c.end_offset_for_epoch(LeaderEpoch(5), leo),
            Some((LeaderEpoch(5), leo))
        );
        assert_eq!(
            c.end_offset_for_epoch(LeaderEpoch(4), leo),
            Some((LeaderEpoch(3), Offset(20)))
        );
        assert_eq!(
            c.end_offset_for_epoch(LeaderEpoch(3), leo),
            Some((LeaderEpoch(3), Offset(20)))
        );
        assert_eq!(
            c.end_offset_for_epoch(LeaderEpoch(1), leo),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            c.end_offset_for_epoch(LeaderEpoch(0), leo),
            Some((LeaderEpoch(0), Offset(0)))
        );
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(6), leo), None);
        assert_eq!(
            EpochCache::default().end_offset_for_epoch(LeaderEpoch(0), leo),
            None
        );
    }

    #[test]
    fn assign_and_truncate_keep_entries_increasing() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(
            !c.assign(LeaderEpoch(3), Offset(12)),
            "same epoch later start: no change"
        );
        assert!(c.assign(LeaderEpoch(4), Offset(15)));
        assert!(c.truncate_from_end(Offset(15)));
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(3)));
        assert!(c.truncate_from_start(Offset(12)));
        assert_eq!(c.entries(), &[(LeaderEpoch(3), Offset(12))]);
        assert!(
            c.assign(LeaderEpoch(2), Offset(5)),
            "an earlier start rewrites history"
        );
        assert_eq!(c.entries(), &[(LeaderEpoch(2), Offset(5))]);
    }
}
