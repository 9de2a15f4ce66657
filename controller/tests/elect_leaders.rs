//! Handler: ElectLeaders, an administrator's preferred or unclean election (KIP-460).
#![allow(clippy::unwrap_used)]
mod common;

use common::{three_replicas, Solo};
use controller::{
    AlterPartitionRequest, ElectionOutcome, MetadataImage, PartitionState, Reply, Request,
    TopicConfig,
};
use wire::{BrokerId, LeaderEpoch, TopicPartition};

const SESSION_MS: u64 = 9_000;

fn elect(
    solo: &mut Solo,
    unclean: bool,
    partitions: Option<&[TopicPartition]>,
) -> Vec<(TopicPartition, ElectionOutcome)> {
    let request = Request::ElectLeaders {
        unclean,
        partitions: partitions.map(<[TopicPartition]>::to_vec),
    };
    match solo.request(request) {
        Ok(Reply::LeadersElected(outcomes)) => outcomes,
        other => panic!("ElectLeaders: {other:?}"),
    }
}

fn state(solo: &Solo, tp: &TopicPartition) -> PartitionState {
    solo.ctl.image().partition(tp).unwrap().clone()
}

/// The leader's copy fails and comes back repaired, then rejoins the ISR: the partition is led
/// by another replica while its preferred one is in the ISR again.
fn preferred_in_isr_but_not_leading(solo: &mut Solo, tp: &TopicPartition) -> BrokerId {
    let preferred = state(solo, tp).replicas[0];
    assert_eq!(
        state(solo, tp).leader,
        Some(preferred),
        "placement leads with the first"
    );
    let incarnation = preferred.0 as u64;
    let offline = Request::ReplicaOffline {
        broker: preferred,
        incarnation,
        partition: tp.clone(),
    };
    assert!(solo.request(offline).is_ok());
    let online = Request::ReplicaOnline {
        broker: preferred,
        incarnation,
        partition: tp.clone(),
        intact: true,
    };
    assert!(solo.request(online).is_ok());
    let moved = state(solo, tp);
    let leader = moved.leader.unwrap();
    assert_ne!(leader, preferred);
    let mut isr = moved.isr.clone();
    isr.push(preferred);
    let rejoin = Request::AlterPartition(AlterPartitionRequest {
        partition: tp.clone(),
        broker: leader,
        leader_epoch: moved.leader_epoch,
        partition_epoch: moved.partition_epoch,
        isr,
    });
    assert!(solo.request(rejoin).is_ok());
    assert!(state(solo, tp).isr.contains(&preferred));
    preferred
}

#[test]
fn preferred_election_moves_the_leadership_back_cleanly() {
    let (mut solo, tp) = three_replicas(2);
    assert_eq!(
        elect(&mut solo, false, Some(std::slice::from_ref(&tp))),
        vec![(tp.clone(), ElectionOutcome::NotNeeded)],
        "the preferred replica leads already"
    );
    let preferred = preferred_in_isr_but_not_leading(&mut solo, &tp);
    let before = state(&solo, &tp);
    let outcomes = elect(&mut solo, false, Some(&[tp.clone(), tp.clone()]));
    let after = state(&solo, &tp);
    assert_eq!(
        outcomes,
        vec![(
            tp.clone(),
            ElectionOutcome::Elected {
                leader_epoch: LeaderEpoch(before.leader_epoch.0 + 1)
            }
        )],
        "a partition named twice is elected once"
    );
    assert_eq!(after.leader, Some(preferred));
    assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
    assert_eq!(after.partition_epoch.0, before.partition_epoch.0 + 1);
    assert_eq!(after.isr, before.isr, "a clean election keeps the ISR");
    assert_eq!(after.last_known_leader, before.leader);
    // Brokers replaying the log see the same leader.
    let mut replayed = MetadataImage::new();
    solo.ctl.fetch_metadata(0).apply_to(&mut replayed);
    assert_eq!(replayed.partition(&tp), Some(&after));
    assert_eq!(
        elect(&mut solo, false, Some(std::slice::from_ref(&tp))),
        vec![(tp, ElectionOutcome::NotNeeded)]
    );
}

#[test]
fn preferred_election_refuses_a_preferred_replica_outside_the_isr() {
    let (mut solo, tp) = three_replicas(2);
    let preferred = state(&solo, &tp).replicas[0];
    let offline = Request::ReplicaOffline {
        broker: preferred,
        incarnation: preferred.0 as u64,
        partition: tp.clone(),
    };
    assert!(solo.request(offline).is_ok());
    let before = state(&solo, &tp);
    assert_eq!(
        elect(&mut solo, false, Some(std::slice::from_ref(&tp))),
        vec![(tp.clone(), ElectionOutcome::PreferredLeaderNotAvailable)]
    );
    assert_eq!(state(&solo, &tp), before, "nothing changed");
    // Nor does an unclean election touch a partition that has a leader.
    assert_eq!(
        elect(&mut solo, true, Some(std::slice::from_ref(&tp))),
        vec![(tp.clone(), ElectionOutcome::NotNeeded)]
    );
    assert_eq!(state(&solo, &tp), before);
}

#[test]
fn unknown_partitions_are_named_and_a_null_list_reports_only_what_needed_an_election() {
    let (mut solo, tp) = three_replicas(2);
    let unknown = [TopicPartition::new("t", 7), TopicPartition::new("nope", 0)];
    let outcomes = elect(&mut solo, false, Some(&unknown));
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes
        .iter()
        .all(|(_, o)| *o == ElectionOutcome::UnknownTopicOrPartition));
    // Every partition: the one led by its preferred replica is left out of the answer.
    assert_eq!(elect(&mut solo, false, None), vec![]);
    preferred_in_isr_but_not_leading(&mut solo, &tp);
    let outcomes = elect(&mut solo, false, None);
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(outcomes[0], (ref p, ElectionOutcome::Elected { .. }) if *p == tp));
}

/// The leader alone in the ISR is fenced: the partition is leaderless with the old leader in the
/// ELR (KIP-966), which holds back the controller's own unclean elections even where the topic
/// allows them. An administrator's unclean election elects a live replica all the same (Kafka's
/// `PartitionChangeBuilder.electAnyLeader` with `Election.UNCLEAN`), restarting the ISR and ELR.
#[test]
fn unclean_election_elects_a_live_replica_of_a_leaderless_partition() {
    let mut solo = Solo::new(|config| config.broker_session_timeout_ms = SESSION_MS);
    for b in 1..=3 {
        solo.add_broker(b, b as u64);
    }
    let config = TopicConfig {
        unclean_leader_election: false,
        min_insync_replicas: 1,
        overrides: Default::default(),
    };
    solo.create_topic("t", 1, 3, config);
    let tp = TopicPartition::new("t", 0);
    let first = state(&solo, &tp);
    let leader = first.leader.unwrap();
    let shrink = Request::AlterPartition(AlterPartitionRequest {
        partition: tp.clone(),
        broker: leader,
        leader_epoch: first.leader_epoch,
        partition_epoch: first.partition_epoch,
        isr: vec![leader],
    });
    assert!(solo.request(shrink).is_ok());
    let others: Vec<(i32, u64)> = (1..=3)
        .filter(|b| BrokerId(*b) != leader)
        .map(|b| (b, b as u64))
        .collect();
    for _ in 0..(2 * SESSION_MS / 500) {
        solo.advance(500);
        solo.heartbeat(&others);
    }
    let leaderless = state(&solo, &tp);
    assert_eq!(leaderless.leader, None);
    assert_eq!(
        leaderless.elr,
        vec![leader],
        "the last ISR member is eligible"
    );
    // A preferred election cannot help: the preferred replica is the fenced one.
    assert_eq!(
        elect(&mut solo, false, Some(std::slice::from_ref(&tp))),
        vec![(tp.clone(), ElectionOutcome::PreferredLeaderNotAvailable)]
    );
    let outcomes = elect(&mut solo, true, Some(std::slice::from_ref(&tp)));
    let after = state(&solo, &tp);
    let elected = after.leader.unwrap();
    assert_eq!(
        outcomes,
        vec![(
            tp.clone(),
            ElectionOutcome::Elected {
                leader_epoch: LeaderEpoch(leaderless.leader_epoch.0 + 1)
            }
        )]
    );
    assert_ne!(elected, leader);
    assert_eq!(
        Some(elected),
        first.replicas.iter().copied().find(|b| *b != leader),
        "the first live replica in assignment order"
    );
    assert_eq!(
        after.isr,
        vec![elected],
        "an unclean election restarts the ISR"
    );
    assert!(after.elr.is_empty(), "and forgets the ELR");
    solo.ctl.check_invariants().unwrap();
}

#[test]
fn unclean_election_without_a_live_replica_is_refused() {
    let mut solo = Solo::new(|config| config.broker_session_timeout_ms = SESSION_MS);
    solo.add_broker(1, 1);
    solo.add_broker(2, 2);
    let assignments = solo.create_topic("one", 1, 1, TopicConfig::default());
    let only = assignments[0][0];
    let other = if only == BrokerId(1) { (2, 2) } else { (1, 1) };
    for _ in 0..(2 * SESSION_MS / 500) {
        solo.advance(500);
        solo.heartbeat(&[other]);
    }
    let tp = TopicPartition::new("one", 0);
    let before = state(&solo, &tp);
    assert_eq!(before.leader, None);
    assert_eq!(
        elect(&mut solo, true, Some(std::slice::from_ref(&tp))),
        vec![(tp.clone(), ElectionOutcome::EligibleLeadersNotAvailable)]
    );
    assert_eq!(state(&solo, &tp), before);
}
