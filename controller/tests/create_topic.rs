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
        overrides: Default::default(),
    };
    let request = Request::CreateTopic {
        name: "orders".into(),
        partitions: 3,
        replication_factor: 3,
        config,
        assignments: Vec::new(),
        validate_only: false,
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
            overrides: Default::default(),
            min_insync_replicas: min_isr,
        },
        assignments: Vec::new(),
        validate_only: false,
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
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        solo.request(create("t", 1, 2, 0)),
        Err(ControllerError::InvalidConfig(_))
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

fn create_with(
    name: &str,
    partitions: i32,
    rf: i32,
    min_isr: i32,
    assignments: Vec<Vec<BrokerId>>,
    validate_only: bool,
) -> Request {
    Request::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        config: TopicConfig {
            overrides: Default::default(),
            unclean_leader_election: false,
            min_insync_replicas: min_isr,
        },
        assignments,
        validate_only,
    }
}

/// Kafka creates topics with fewer replicas than min.insync.replicas (librdkafka's tests create
/// replication factor 1 topics on clusters with min ISR 2); the effective min ISR is capped.
#[test]
fn replication_factor_below_min_isr_is_allowed() {
    let mut solo = cluster(3);
    let reply = solo.request(create_with("rf1", 2, 1, 2, Vec::new(), false));
    let Ok(Reply::TopicCreated { assignments, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(assignments.len(), 2);
    assert!(assignments.iter().all(|r| r.len() == 1));
    let topic = solo.ctl.image().topics().get("rf1").unwrap();
    assert_eq!(topic.config.min_insync_replicas, 2, "kept as configured");
    for (p, replicas) in assignments.iter().enumerate() {
        let state = solo
            .ctl
            .image()
            .partition(&TopicPartition::new("rf1", p as i32))
            .unwrap();
        assert_eq!(state.leader, Some(replicas[0]));
        assert_eq!(&state.isr, replicas);
        assert!(state.elr.is_empty());
    }
    solo.ctl.check_invariants().unwrap();
}

/// A manual assignment is used as given: the first live replica leads, fenced ones stay out of
/// the ISR, and validate-only answers without creating anything.
#[test]
fn manual_assignments_are_kept_and_validate_only_changes_nothing() {
    let mut solo = cluster(3);
    let wanted = vec![ids(&[3, 1]), ids(&[2, 3]), ids(&[1, 2])];
    let index_before = solo.ctl.image().applied_index();
    assert_eq!(
        solo.request(create_with("m", -1, -1, 1, wanted.clone(), true)),
        Ok(Reply::TopicValid {
            assignments: wanted.clone()
        })
    );
    assert_eq!(
        solo.request(create_with("auto", 4, 3, 2, Vec::new(), true)),
        Ok(Reply::TopicValid {
            assignments: assign_replicas(&ids(&[1, 2, 3]), 4, 3, 0)
        })
    );
    assert!(solo.ctl.image().topics().is_empty(), "validate-only");
    assert_eq!(
        solo.ctl.image().applied_index(),
        index_before,
        "nothing proposed"
    );
    let Ok(Reply::TopicCreated { assignments, .. }) =
        solo.request(create_with("m", -1, -1, 1, wanted.clone(), false))
    else {
        panic!()
    };
    assert_eq!(assignments, wanted);
    let state = solo
        .ctl
        .image()
        .partition(&TopicPartition::new("m", 0))
        .unwrap();
    assert_eq!(state.leader, Some(BrokerId(3)), "the first replica leads");
    assert_eq!(state.isr, ids(&[3, 1]));
    // Validate-only still refuses what creating would refuse.
    assert_eq!(
        solo.request(create_with("m", -1, -1, 1, wanted, true)),
        Err(ControllerError::TopicAlreadyExists("m".into()))
    );
    solo.ctl.check_invariants().unwrap();
}

#[test]
fn manual_assignment_refusals_are_typed_and_say_why() {
    let mut solo = cluster(2);
    solo.request(common::register(3, 3)).unwrap(); // registered, never heartbeats: fenced
    let refused = |solo: &mut Solo, assignments: Vec<Vec<BrokerId>>| match solo
        .request(create_with("m", -1, -1, 1, assignments.clone(), false))
    {
        Err(ControllerError::InvalidReplicaAssignment(why)) => why,
        other => panic!("{assignments:?}: {other:?}"),
    };
    assert!(refused(&mut solo, vec![ids(&[1]), vec![]]).contains("empty replica list"));
    assert!(refused(&mut solo, vec![ids(&[1, 1])]).contains("more than once"));
    assert!(refused(&mut solo, vec![ids(&[1, 9])]).contains("broker 9 is not registered"));
    assert!(refused(&mut solo, vec![ids(&[1, 2]), ids(&[2])]).contains("has 1 replicas"));
    assert!(refused(&mut solo, vec![ids(&[3])]).contains("fenced"));
    assert!(solo.ctl.image().topics().is_empty());
    // A fenced broker may be named next to a live one: it starts outside the ISR.
    assert!(solo
        .request(create_with("m", -1, -1, 1, vec![ids(&[3, 1])], false))
        .is_ok());
    let state = solo
        .ctl
        .image()
        .partition(&TopicPartition::new("m", 0))
        .unwrap();
    assert_eq!(
        (state.leader, state.isr.clone()),
        (Some(BrokerId(1)), ids(&[1]))
    );
}
