//! ISR and high-watermark arithmetic, as pure functions so property tests can hammer them.

use std::collections::{BTreeMap, BTreeSet};
use wire::{BrokerId, Offset};

/// Most replicas of one partition: bounds every per-replica map.
pub const REPLICAS_MAX: usize = 64;

/// What a leader knows of one follower, learned from its fetches in the current leader epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FollowerProgress {
    /// The follower's flushed LEO from its last valid fetch; unknown until it fetches in this
    /// epoch, and an unknown ISR member holds the HW back.
    pub log_end_offset: Option<Offset>,
    /// When the follower last fetched up to the leader's LEO: drives ISR shrink.
    pub last_caught_up_ms: u64,
}

/// Kafka's `Partition.effectiveMinIsr`: `min.insync.replicas` capped at the replication factor.
/// Kafka creates topics with fewer replicas than min ISR; without the cap their acks=all produces
/// would always be refused and, under KIP-966, their HW would never move. The one rule for the
/// leader (produce admission, HW) and the controller (ELR bookkeeping).
pub fn min_insync_replicas_effective(
    min_insync_replicas: usize,
    replication_factor: usize,
) -> usize {
    assert!(
        min_insync_replicas >= 1,
        "min.insync.replicas is at least 1"
    );
    assert!(replication_factor >= 1, "a partition has a replica");
    let effective = min_insync_replicas.min(replication_factor);
    assert!(effective >= 1 && effective <= replication_factor);
    effective
}

/// The ISR the HW must respect while a change is in flight (Kafka's "maximal ISR", KIP-497):
/// the committed ISR plus any member a pending expansion adds. A pending shrink does not count
/// until committed, so the HW never outruns a replica the controller may still elect.
pub fn maximal_isr(
    committed: &BTreeSet<BrokerId>,
    pending: Option<&BTreeSet<BrokerId>>,
) -> BTreeSet<BrokerId> {
    assert!(committed.len() <= REPLICAS_MAX);
    let mut isr = committed.clone();
    if let Some(pending) = pending {
        isr.extend(pending.iter().copied());
    }
    assert!(isr.is_superset(committed));
    isr
}

/// The offset every member of `isr` holds durably: the leader's flushed LEO and each follower's
/// last fetch offset. `None` while a follower in the ISR has not fetched in this epoch.
pub fn high_watermark_candidate(
    leader: BrokerId,
    leader_durable_end_offset: Offset,
    isr: &BTreeSet<BrokerId>,
    followers: &BTreeMap<BrokerId, FollowerProgress>,
) -> Option<Offset> {
    assert!(isr.len() <= REPLICAS_MAX);
    let mut candidate = leader_durable_end_offset;
    for member in isr.iter().filter(|&&m| m != leader) {
        let offset = followers.get(member)?.log_end_offset?;
        candidate = candidate.min(offset);
    }
    assert!(candidate <= leader_durable_end_offset);
    Some(candidate)
}

/// The leader's next HW: it only ever grows on a leader.
pub fn next_high_watermark(current: Offset, candidate: Option<Offset>) -> Offset {
    let next = candidate.map_or(current, |c| c.max(current));
    assert!(next >= current);
    next
}

/// ISR followers that have not caught up for longer than `lag_ms_max`.
pub fn lagging_followers(
    leader: BrokerId,
    isr: &BTreeSet<BrokerId>,
    followers: &BTreeMap<BrokerId, FollowerProgress>,
    now_ms: u64,
    lag_ms_max: u64,
) -> BTreeSet<BrokerId> {
    let lagging: BTreeSet<BrokerId> = isr
        .iter()
        .copied()
        .filter(|&m| m != leader)
        .filter(|m| {
            let caught_up =
                |p: &FollowerProgress| now_ms.saturating_sub(p.last_caught_up_ms) <= lag_ms_max;
            !followers.get(m).is_some_and(caught_up)
        })
        .collect();
    assert!(!lagging.contains(&leader), "a leader never lags itself");
    assert!(lagging.is_subset(isr));
    lagging
}

/// Whether a follower may rejoin the ISR (Kafka's `isFollowerInSync`): it holds the HW and
/// everything of the current leader epoch's start, so electing it loses nothing committed.
pub fn may_join_isr(fetch_offset: Offset, high_watermark: Offset, epoch_start: Offset) -> bool {
    fetch_offset >= high_watermark && fetch_offset >= epoch_start
}
