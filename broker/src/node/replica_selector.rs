//! The preferred read replica of a consumer fetch (KIP-392): Kafka's `RackAwareReplicaSelector`
//! as a pure function of the leader's view, so the choice is the same on every run.

use crate::partition::ReadReplicaCandidate;
use wire::BrokerId;

/// A follower the leader may send a consumer to, with the rack its registration names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackedCandidate<'a> {
    /// What the leader knows of the follower's log.
    pub candidate: ReadReplicaCandidate,
    /// The follower's `broker.rack`, `None` without one.
    pub rack: Option<&'a str>,
}

/// Kafka's `RackAwareReplicaSelector.select`, minus the answer "the leader" (which Kafka leaves
/// out of the Fetch response too): `None` when the client names no rack, when the leader is in
/// the client's rack, or when no candidate is; otherwise the most caught-up follower of the
/// client's rack — the largest LEO, then the latest caught-up time (Kafka's
/// `ReplicaView.comparator`), then the lowest broker id, where Kafka's pick among equals
/// depends on a hash set's order.
pub fn rack_aware(
    client_rack: &str,
    leader_rack: Option<&str>,
    candidates: &[RackedCandidate<'_>],
) -> Option<BrokerId> {
    if client_rack.is_empty() || leader_rack == Some(client_rack) {
        return None;
    }
    let chosen = candidates
        .iter()
        .filter(|c| c.rack == Some(client_rack))
        .map(|c| c.candidate)
        .max_by(|a, b| {
            (a.log_end_offset, a.last_caught_up_ms)
                .cmp(&(b.log_end_offset, b.last_caught_up_ms))
                .then(b.broker.cmp(&a.broker))
        })?;
    assert!(
        candidates
            .iter()
            .all(|c| c.rack != Some(client_rack)
                || c.candidate.log_end_offset <= chosen.log_end_offset),
        "the chosen follower is the most caught-up of its rack"
    );
    Some(chosen.broker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Offset;

    fn follower(broker: i32, leo: i64, caught_up_ms: u64, rack: &str) -> RackedCandidate<'_> {
        RackedCandidate {
            candidate: ReadReplicaCandidate {
                broker: BrokerId(broker),
                log_end_offset: Offset(leo),
                last_caught_up_ms: caught_up_ms,
            },
            rack: Some(rack),
        }
    }

    #[test]
    fn a_follower_in_the_clients_rack_is_preferred_unless_the_leader_is_there() {
        let followers = [follower(2, 10, 5, "b"), follower(3, 10, 5, "c")];
        assert_eq!(rack_aware("b", Some("a"), &followers), Some(BrokerId(2)));
        assert_eq!(rack_aware("c", None, &followers), Some(BrokerId(3)));
        // The leader's own rack, no client rack, a rack nobody is in: the leader serves.
        assert_eq!(rack_aware("a", Some("a"), &followers), None);
        assert_eq!(rack_aware("", Some("a"), &followers), None);
        assert_eq!(rack_aware("z", Some("a"), &followers), None);
        assert_eq!(rack_aware("b", Some("a"), &[]), None);
    }

    #[test]
    fn the_most_caught_up_follower_wins_and_ties_go_to_the_lowest_id() {
        let followers = [
            follower(4, 9, 50, "b"),
            follower(3, 10, 5, "b"),
            follower(2, 10, 5, "b"),
            follower(5, 10, 4, "b"),
        ];
        assert_eq!(rack_aware("b", Some("a"), &followers), Some(BrokerId(2)));
        let later = [follower(3, 10, 6, "b"), follower(2, 10, 5, "b")];
        assert_eq!(rack_aware("b", Some("a"), &later), Some(BrokerId(3)));
        let unracked = [RackedCandidate {
            rack: None,
            ..follower(2, 10, 5, "b")
        }];
        assert_eq!(rack_aware("b", Some("a"), &unracked), None);
    }
}
