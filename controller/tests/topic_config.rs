//! Handlers: AlterTopicConfig (AlterConfigs, IncrementalAlterConfigs) and CreatePartitions.
#![allow(clippy::unwrap_used)]
mod common;

use common::{ids, Solo};
use controller::topic_configs::{AlterOp, ConfigChange, ElectionDefaults};
use controller::{ControllerError, MetadataImage, Reply, Request, TopicConfig};
use std::collections::BTreeMap;
use wire::{LeaderEpoch, PartitionEpoch, TopicPartition};

const DEFAULTS: ElectionDefaults = ElectionDefaults {
    min_insync_replicas: 2,
    unclean_leader_election: false,
};

fn cluster(brokers: i32) -> Solo {
    let mut solo = Solo::new(|_| {});
    for b in 1..=brokers {
        solo.add_broker(b, b as u64);
    }
    solo
}

fn alter(name: &str, changes: Vec<ConfigChange>, replace: bool, validate_only: bool) -> Request {
    Request::AlterTopicConfig {
        name: name.into(),
        changes,
        replace,
        defaults: DEFAULTS,
        validate_only,
    }
}

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn config_of(solo: &Solo, name: &str) -> TopicConfig {
    solo.ctl.image().topics()[name].config.clone()
}

/// A fresh image fed the controller's log from the start reads back the same topic: the
/// records carry everything (brokers apply them, not the controller's memory).
fn replayed(solo: &Solo) -> MetadataImage {
    let fetch = solo.ctl.fetch_metadata(0);
    let mut image = MetadataImage::new();
    fetch.apply_to(&mut image);
    image
}

#[test]
fn alter_config_commits_the_whole_new_config_and_brokers_see_it() {
    let mut solo = cluster(3);
    solo.create_topic(
        "t",
        1,
        3,
        TopicConfig {
            min_insync_replicas: 2,
            ..TopicConfig::default()
        },
    );
    let changes = vec![
        ConfigChange::set("cleanup.policy", "compact"),
        ConfigChange::set("min.insync.replicas", "3"),
        ConfigChange::set("retention.ms", "1000"),
    ];
    let expected = TopicConfig {
        unclean_leader_election: false,
        min_insync_replicas: 3,
        overrides: overrides(&[
            ("cleanup.policy", "compact"),
            ("min.insync.replicas", "3"),
            ("retention.ms", "1000"),
        ]),
    };
    // validate_only answers the config it would commit and changes nothing.
    let before = solo.ctl.image().applied_index();
    assert_eq!(
        solo.request(alter("t", changes.clone(), false, true)),
        Ok(Reply::TopicConfigAltered(expected.clone()))
    );
    assert_eq!(solo.ctl.image().applied_index(), before, "nothing proposed");
    assert_eq!(
        solo.request(alter("t", changes, false, false)),
        Ok(Reply::TopicConfigAltered(expected.clone()))
    );
    assert_eq!(config_of(&solo, "t"), expected);
    assert_eq!(replayed(&solo).topics()["t"].config, expected);
    // Incremental: DELETE falls back to the default given, APPEND adds to the list.
    let incremental = vec![
        ConfigChange {
            name: "min.insync.replicas".into(),
            op: AlterOp::Delete,
            value: None,
        },
        ConfigChange {
            name: "cleanup.policy".into(),
            op: AlterOp::Append,
            value: Some("delete".into()),
        },
    ];
    let expected = TopicConfig {
        unclean_leader_election: false,
        min_insync_replicas: 2,
        overrides: overrides(&[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "1000"),
        ]),
    };
    assert_eq!(
        solo.request(alter("t", incremental, false, false)),
        Ok(Reply::TopicConfigAltered(expected.clone()))
    );
    assert_eq!(config_of(&solo, "t"), expected);
    // AlterConfigs replaces the whole set.
    let replaced = vec![ConfigChange::set("segment.bytes", "4096")];
    let expected = TopicConfig {
        unclean_leader_election: false,
        min_insync_replicas: 2,
        overrides: overrides(&[("segment.bytes", "4096")]),
    };
    assert_eq!(
        solo.request(alter("t", replaced, true, false)),
        Ok(Reply::TopicConfigAltered(expected.clone()))
    );
    assert_eq!(replayed(&solo).topics()["t"].config, expected);
}

#[test]
fn alter_config_refusals_change_nothing() {
    let mut solo = cluster(1);
    solo.create_topic("t", 1, 1, TopicConfig::default());
    let before = (solo.ctl.image().applied_index(), config_of(&solo, "t"));
    assert_eq!(
        solo.request(alter(
            "t",
            vec![ConfigChange::set("dummy.doesntexist", "1")],
            false,
            false
        )),
        Err(ControllerError::InvalidConfig(
            "Unknown topic config name: dummy.doesntexist".into()
        ))
    );
    assert_eq!(
        solo.request(alter(
            "t",
            vec![ConfigChange::set("retention.ms", "-5")],
            false,
            false
        )),
        Err(ControllerError::InvalidConfig(
            "Invalid value -5 for configuration retention.ms: Value must be at least -1".into()
        ))
    );
    assert_eq!(
        solo.request(alter(
            "nope",
            vec![ConfigChange::set("retention.ms", "5")],
            false,
            false
        )),
        Err(ControllerError::UnknownTopicOrPartition("nope".into()))
    );
    assert_eq!(
        (solo.ctl.image().applied_index(), config_of(&solo, "t")),
        before
    );
}

#[test]
fn create_topic_refuses_invalid_overrides() {
    let mut solo = cluster(1);
    let request = Request::CreateTopic {
        name: "t".into(),
        partitions: 1,
        replication_factor: 1,
        config: TopicConfig {
            overrides: overrides(&[("cleanup.policy", "sometimes")]),
            ..TopicConfig::default()
        },
        assignments: Vec::new(),
        validate_only: false,
    };
    assert!(matches!(
        solo.request(request),
        Err(ControllerError::InvalidConfig(_))
    ));
    assert!(solo.ctl.image().topics().is_empty());
}

fn grow(name: &str, partitions: i32, assignments: Vec<Vec<i32>>, validate_only: bool) -> Request {
    Request::CreatePartitions {
        name: name.into(),
        partitions,
        assignments: assignments.iter().map(|a| ids(a)).collect(),
        validate_only,
    }
}

#[test]
fn create_partitions_places_new_partitions_after_the_old_ones() {
    let mut solo = cluster(3);
    let first = solo.create_topic("t", 2, 2, TopicConfig::default());
    let topic_id = solo.ctl.image().topics()["t"].topic_id;
    let placed = controller::placement::assign_replicas(&ids(&[1, 2, 3]), 4, 2, topic_id);
    assert_eq!(
        &placed[..2],
        &first[..],
        "growing continues the topic's round-robin"
    );
    assert_eq!(
        solo.request(grow("t", 4, vec![], true)),
        Ok(Reply::PartitionsCreated {
            assignments: placed[2..].to_vec()
        })
    );
    assert_eq!(
        solo.ctl.image().topics()["t"].partitions.len(),
        2,
        "validate_only"
    );
    assert_eq!(
        solo.request(grow("t", 4, vec![], false)),
        Ok(Reply::PartitionsCreated {
            assignments: placed[2..].to_vec()
        })
    );
    let image = replayed(&solo);
    assert_eq!(image.topics()["t"].partitions.len(), 4);
    let state = image.partition(&TopicPartition::new("t", 3)).unwrap();
    assert_eq!(state.replicas, placed[3]);
    assert_eq!(state.isr, placed[3]);
    assert_eq!(state.leader, Some(placed[3][0]));
    assert_eq!(
        (state.leader_epoch, state.partition_epoch),
        (LeaderEpoch(0), PartitionEpoch(0))
    );
    // A manual assignment names exactly the new partitions.
    assert_eq!(
        solo.request(grow("t", 5, vec![vec![3, 1]], false)),
        Ok(Reply::PartitionsCreated {
            assignments: vec![ids(&[3, 1])]
        })
    );
    assert_eq!(
        solo.ctl.image().topics()["t"].partitions[4].replicas,
        ids(&[3, 1])
    );
}

#[test]
fn create_partitions_refusals_are_kafkas() {
    let mut solo = cluster(3);
    solo.create_topic("t", 3, 2, TopicConfig::default());
    let before = solo.ctl.image().applied_index();
    assert_eq!(
        solo.request(grow("t", 2, vec![], false)),
        Err(ControllerError::InvalidPartitions(
            "The topic t currently has 3 partition(s); 2 would not be an increase.".into()
        ))
    );
    assert_eq!(
        solo.request(grow("t", 3, vec![], false)),
        Err(ControllerError::InvalidPartitions(
            "Topic already has 3 partition(s).".into()
        ))
    );
    assert_eq!(
        solo.request(grow("t", 5, vec![vec![1, 2]], false)),
        Err(ControllerError::InvalidReplicaAssignment(
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
                .into()
        ))
    );
    assert!(matches!(
        solo.request(grow("t", 4, vec![vec![1, 2, 3]], false)),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        solo.request(grow("t", 4, vec![vec![1, 9]], false)),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert_eq!(
        solo.request(grow("nope", 4, vec![], false)),
        Err(ControllerError::UnknownTopicOrPartition("nope".into()))
    );
    assert_eq!(solo.ctl.image().applied_index(), before, "nothing proposed");
}

#[test]
fn a_stale_create_partitions_record_is_refused_on_apply() {
    let mut solo = cluster(2);
    solo.create_topic("t", 1, 1, TopicConfig::default());
    let mut image = solo.ctl.image().clone();
    let topic_id = image.topics()["t"].topic_id;
    let record = controller::MetadataRecord::CreatePartitions {
        name: "t".into(),
        topic_id,
        partitions_before: 2,
        assignments: vec![ids(&[1])],
    };
    assert!(matches!(
        image.apply(&record),
        Err(ControllerError::InvalidRecord(_))
    ));
    assert_eq!(image.topics()["t"].partitions.len(), 1);
}
