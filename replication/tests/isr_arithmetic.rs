//! Property tests for the ISR, HW and epoch-cache arithmetic (bounded case counts).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use replication::epoch_cache::EpochCache;
use replication::isr::{self, FollowerProgress};
use wire::{BrokerId, LeaderEpoch, Offset};

const LEADER: BrokerId = BrokerId(0);

fn followers_strategy() -> impl Strategy<Value = BTreeMap<BrokerId, FollowerProgress>> {
    prop::collection::btree_map(
        (1i32..6).prop_map(BrokerId),
        (prop::option::of(0i64..50), 0u64..5_000).prop_map(|(leo, caught)| FollowerProgress {
            log_end_offset: leo.map(Offset),
            last_caught_up_ms: caught,
        }),
        0..5,
    )
}

fn isr_strategy() -> impl Strategy<Value = BTreeSet<BrokerId>> {
    prop::collection::btree_set((1i32..6).prop_map(BrokerId), 0..5).prop_map(|mut isr| {
        isr.insert(LEADER);
        isr
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The HW candidate is held by every ISR member, and is the largest such offset.
    #[test]
    fn hw_candidate_is_the_min_over_the_isr(
        durable in 0i64..50,
        isr in isr_strategy(),
        followers in followers_strategy(),
    ) {
        let candidate = isr::high_watermark_candidate(LEADER, Offset(durable), &isr, &followers);
        let known: Option<Vec<Offset>> = isr
            .iter()
            .filter(|&&m| m != LEADER)
            .map(|m| followers.get(m).and_then(|p| p.log_end_offset))
            .collect();
        match known {
            None => prop_assert_eq!(candidate, None),
            Some(offsets) => {
                let expected = offsets.into_iter().fold(Offset(durable), Offset::min);
                prop_assert_eq!(candidate, Some(expected));
            }
        }
    }

    /// A leader's HW never decreases, whatever candidates come.
    #[test]
    fn hw_is_monotone(start in 0i64..50, candidates in prop::collection::vec(prop::option::of(0i64..50), 0..20)) {
        let mut hw = Offset(start);
        for c in candidates {
            let next = isr::next_high_watermark(hw, c.map(Offset));
            prop_assert!(next >= hw);
            if let Some(c) = c { prop_assert_eq!(next, hw.max(Offset(c))); }
            hw = next;
        }
    }

    /// The maximal ISR contains the committed ISR and any pending member, nothing else.
    #[test]
    fn maximal_isr_is_the_union(committed in isr_strategy(), pending in prop::option::of(isr_strategy())) {
        let maximal = isr::maximal_isr(&committed, pending.as_ref());
        prop_assert!(maximal.is_superset(&committed));
        let union: BTreeSet<BrokerId> = committed.iter().chain(pending.iter().flatten()).copied().collect();
        prop_assert_eq!(maximal, union);
    }

    /// Lagging followers are exactly the ISR followers without a recent caught-up fetch.
    #[test]
    fn lagging_followers_respect_the_lag_limit(
        isr in isr_strategy(),
        followers in followers_strategy(),
        now in 0u64..10_000,
        lag in 1u64..3_000,
    ) {
        let lagging = isr::lagging_followers(LEADER, &isr, &followers, now, lag);
        for m in isr.iter().filter(|&&m| m != LEADER) {
            let recent = followers.get(m).is_some_and(|p| now.saturating_sub(p.last_caught_up_ms) <= lag);
            prop_assert_eq!(lagging.contains(m), !recent);
        }
        prop_assert!(!lagging.contains(&LEADER));
    }

    /// The epoch cache stays monotone under assignments and truncations, and answers
    /// end-offset queries consistently with a naive scan.
    #[test]
    fn epoch_cache_matches_a_naive_model(
        ops in prop::collection::vec((0i32..8, 0i64..40, any::<bool>()), 0..30),
    ) {
        let mut cache = EpochCache::default();
        let mut leo = Offset(0);
        for (epoch, offset, truncate) in ops {
            if truncate {
                let to = Offset(offset.min(leo.0));
                cache.truncate_from_end(to);
                leo = to;
            } else if LeaderEpoch(epoch) >= cache.latest_epoch() {
                leo = leo.add(offset % 4);
                cache.assign(LeaderEpoch(epoch), leo);
                leo = leo.add(1);
            }
            cache.check_invariants(leo);
            let entries: Vec<(LeaderEpoch, Offset)> = cache.entries().collect();
            for asked in 0..8 {
                let answer = cache.end_offset_for(LeaderEpoch(asked), leo);
                let floor = entries.iter().rposition(|&(e, _)| e.0 <= asked);
                match floor {
                    Some(i) => {
                        prop_assert_eq!(answer.leader_epoch, entries[i].0);
                        let end = entries.get(i + 1).map_or(leo, |&(_, s)| s);
                        prop_assert_eq!(answer.end_offset, end);
                    }
                    None => {
                        prop_assert_eq!(answer.leader_epoch, LeaderEpoch(asked));
                        prop_assert_eq!(answer.end_offset, entries.first().map_or(leo, |&(_, s)| s));
                    }
                }
            }
        }
    }
}
