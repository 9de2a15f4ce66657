//! Handler: CreateTopic (placement and validation).
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, Solo};
use controller::placement::assign_replicas;
use controller::{ControllerError, Reply, Request, TopicConfig};
use proptest::prelude::*;
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

fn cluster(brokers: i32) -> Solo {
    let mut solo = Solo::new(|_| {});
    for b in 1..=brokers {
        solo.add_broker(b, b as u64);
    }
    solo
}

#[test]
fn placement_is_kafkas_round_robin_with_a_start_per_topic() {
    let brokers = ids(&[1, 2, 3, 4]);
    // Topic id 0 starts at broker 1; the follower shift moves every 4 partitions.
    let first = assign_replicas(&brokers, 5, 3, 0);
    assert_eq!(
        first,
        vec![
            ids(&[1, 2, 3]),
            ids(&[2, 3, 4]),
            ids(&[3, 4, 1]),
            ids(&[4, 1, 2]),
            ids(&[1, 3, 4])
        ]
    );
    // Topic id 1 starts one broker later.
    assert_eq!(assign_replicas(&brokers, 1, 2, 1), vec![ids(&[2, 4])]);
}

#[test]
fn create_topic_commits_assignments_and_initial_states() {
    let mut solo = cluster(3);
    let config = TopicConfig {
        unclean_leader_election: false,
        min_insync_replicas: 2,
    };
    let request = Request::CreateTopic {
        name: "orders".into(),
        partitions: 3,
        replication_factor: 3,
        config,
    };
    let Ok(Reply::TopicCreated {
        topic_id,
        assignments,
    }) = solo.request(request)
    else {
        panic!()
    };
    assert_eq!(topic_id, 0);
    assert_eq!(assignments, assign_replicas(&ids(&[1, 2, 3]), 3, 3, 0));
    for (p, replicas) in assignments.iter().enumerate() {
        let state = solo
            .ctl
            .image()
            .partition(&TopicPartition::new("orders", p as i32))
            .unwrap();
        assert_eq!(&state.replicas, replicas);
        assert_eq!(
            state.leader,
            Some(replicas[0]),
            "the preferred replica leads"
        );
        assert_eq!(&state.isr, replicas);
        assert_eq!(
            (state.leader_epoch, state.partition_epoch),
            (LeaderEpoch(0), PartitionEpoch(0))
        );
    }
    // Leadership spreads: each broker leads one partition.
    let mut leaders: Vec<_> = assignments.iter().map(|r| r[0]).collect();
    leaders.sort();
    assert_eq!(leaders, ids(&[1, 2, 3]));
}

#[test]
fn create_topic_refusals_are_typed() {
    let mut solo = cluster(2);
    let create = |name: &str, partitions, rf, min_isr| Request::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        config: TopicConfig {
            unclean_leader_election: false,
            min_insync_replicas: min_isr,
        },
    };
    assert_eq!(
        solo.request(create("t", 1, 3, 1)),
        Err(ControllerError::InvalidReplicationFactor {
            replication_factor: 3,
            brokers_unfenced: 2
        })
    );
    assert!(matches!(
        solo.request(create("t", 0, 1, 1)),
        Err(ControllerError::InvalidTopic(_))
    ));
    assert!(matches!(
        solo.request(create("t", 1, 2, 3)),
        Err(ControllerError::InvalidTopic(_))
    ));
    assert!(matches!(
        solo.request(create("bad name", 1, 1, 1)),
        Err(ControllerError::InvalidTopic(_))
    ));
    assert!(solo.ctl.image().topics().is_empty());
    assert!(solo.request(create("t", 1, 2, 1)).is_ok());
    assert_eq!(
        solo.request(create("t", 1, 2, 1)),
        Err(ControllerError::TopicAlreadyExists("t".into()))
    );
}

#[test]
fn fenced_brokers_get_no_replicas() {
    let mut solo = Solo::new(|_| {});
    solo.add_broker(1, 1);
    solo.add_broker(3, 3);
    solo.request(common::register(2, 2)).unwrap(); // registered, never heartbeats: fenced
    let assignments = solo.create_topic("t", 4, 2, TopicConfig::default());
    assert!(assignments.iter().flatten().all(|b| *b != BrokerId(2)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn placement_is_distinct_and_balanced(n in 1usize..8, partitions in 1usize..40, topic_id in 0u64..100, rf_seed in 0usize..8) {
        let brokers: Vec<BrokerId> = (1..=n as i32).map(BrokerId).collect();
        let rf = 1 + rf_seed % n;
        let assignments = assign_replicas(&brokers, partitions, rf, topic_id);
        prop_assert_eq!(assignments.len(), partitions);
        let mut led = vec![0usize; n];
        for replicas in &assignments {
            let mut sorted = replicas.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), rf);
            led[(replicas[0].0 - 1) as usize] += 1;
        }
        // Preferred leaders differ by at most one partition across brokers.
        prop_assert!(led.iter().max().unwrap() - led.iter().min().unwrap() <= 1);
    }
}
