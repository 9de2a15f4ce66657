//! Kafka's range assignor (`RangeAssignor`), as a pure function: per topic, the members that
//! subscribe to it, sorted by member id, get consecutive partition ranges; the first
//! `partitions % members` get one extra.

use std::collections::{BTreeMap, BTreeSet};

/// Member id → topic → assigned partitions (ascending).
pub type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Most members one assignment handles.
pub const GROUP_MEMBERS_MAX: usize = 10_000;

/// Assigns the partitions of every subscribed topic whose partition count is known.
/// `subscriptions`: member id → subscribed topics. `partitions`: topic → partition count.
/// Every member appears in the result, possibly with nothing assigned.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    assert!(subscriptions.len() <= GROUP_MEMBERS_MAX, "group too large");
    let mut assignment: Assignment = subscriptions
        .keys()
        .map(|member| (member.clone(), BTreeMap::new()))
        .collect();
    let mut members_by_topic: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for topic in topics {
            members_by_topic
                .entry(topic.as_str())
                .or_default()
                .insert(member.as_str());
        }
    }
    for (topic, members) in members_by_topic {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        assert!(count >= 0, "partition counts are non-negative");
        let member_count = i32::try_from(members.len()).expect("bounded by GROUP_MEMBERS_MAX");
        assert!(member_count > 0, "a topic in the map has a subscriber");
        let per_member = count / member_count;
        let extra = count % member_count;
        for (index, member) in members.into_iter().enumerate() {
            let index = i32::try_from(index).expect("bounded");
            let start = per_member * index + index.min(extra);
            let length = per_member + i32::from(index < extra);
            if length == 0 {
                continue;
            }
            let owned = assignment
                .get_mut(member)
                .expect("every member was inserted");
            owned.insert(topic.to_string(), (start..start + length).collect());
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subs(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn kafka_example_two_members_two_topics_three_partitions() {
        // The RangeAssignor javadoc example: C0 gets t0p0,t0p1,t1p0,t1p1; C1 gets t0p2,t1p2.
        let subscriptions = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let partitions = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
        let assignment = range_assign(&subscriptions, &partitions);
        assert_eq!(assignment["C0"]["t0"], vec![0, 1]);
        assert_eq!(assignment["C0"]["t1"], vec![0, 1]);
        assert_eq!(assignment["C1"]["t0"], vec![2]);
        assert_eq!(assignment["C1"]["t1"], vec![2]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let subscriptions = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let partitions = BTreeMap::from([("t".to_string(), 2)]);
        let assignment = range_assign(&subscriptions, &partitions);
        assert_eq!(assignment["a"]["t"], vec![0]);
        assert_eq!(assignment["b"]["t"], vec![1]);
        assert!(assignment["c"].is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn every_partition_once_balanced_deterministic(
            member_count in 1usize..8,
            topic_partitions in proptest::collection::vec(0i32..20, 1..4),
            mask in proptest::collection::vec(any::<bool>(), 32),
        ) {
            let topics: Vec<String> = (0..topic_partitions.len()).map(|i| format!("t{i}")).collect();
            let mut subscriptions = BTreeMap::new();
            for m in 0..member_count {
                let mine: Vec<String> = topics.iter().enumerate()
                    .filter(|(t, _)| mask[(m * 4 + t) % mask.len()] || m == 0)
                    .map(|(_, name)| name.clone()).collect();
                subscriptions.insert(format!("member-{m}"), mine);
            }
            let partitions: BTreeMap<String, i32> =
                topics.iter().cloned().zip(topic_partitions.iter().copied()).collect();
            let assignment = range_assign(&subscriptions, &partitions);
            prop_assert_eq!(&assignment, &range_assign(&subscriptions, &partitions));
            for (topic, &count) in &partitions {
                let mut seen = Vec::new();
                let mut sizes = Vec::new();
                for (member, owned) in &assignment {
                    let subscribed = subscriptions[member].contains(topic);
                    let mine = owned.get(topic).cloned().unwrap_or_default();
                    prop_assert!(subscribed || mine.is_empty(), "only subscribers get partitions");
                    if subscribed { sizes.push(mine.len()); }
                    seen.extend(mine);
                }
                seen.sort_unstable();
                prop_assert_eq!(seen, (0..count).collect::<Vec<_>>(), "each partition exactly once");
                let max = sizes.iter().max().copied().unwrap_or(0);
                let min = sizes.iter().min().copied().unwrap_or(0);
                prop_assert!(max - min <= 1, "balanced within one");
            }
        }
    }
}
