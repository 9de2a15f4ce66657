//! Handler: DeleteTopic.
#![allow(clippy::unwrap_used)]
mod common;

use common::Solo;
use controller::{ControllerError, Reply, Request, TopicConfig};
use wire::TopicPartition;

#[test]
fn delete_removes_the_topic_and_a_recreation_gets_a_new_id() {
    let mut solo = Solo::new(|_| {});
    solo.add_broker(1, 1);
    solo.create_topic("t", 2, 1, TopicConfig::default());
    let id_before = solo.ctl.image().topics()["t"].topic_id;
    assert_eq!(
        solo.request(Request::DeleteTopic { name: "t".into() }),
        Ok(Reply::TopicDeleted)
    );
    assert!(solo.ctl.image().topics().is_empty());
    assert!(solo
        .ctl
        .image()
        .partition(&TopicPartition::new("t", 0))
        .is_none());
    solo.create_topic("t", 1, 1, TopicConfig::default());
    assert!(
        solo.ctl.image().topics()["t"].topic_id > id_before,
        "topic ids are never reused"
    );
}

#[test]
fn delete_of_an_unknown_topic_is_refused() {
    let mut solo = Solo::new(|_| {});
    assert_eq!(
        solo.request(Request::DeleteTopic {
            name: "nope".into()
        }),
        Err(ControllerError::UnknownTopicOrPartition("nope".into()))
    );
}

#[test]
fn a_stale_delete_record_cannot_remove_a_recreated_topic() {
    let mut image = controller::MetadataImage::new();
    let register = controller::MetadataRecord::RegisterBroker {
        broker: wire::BrokerId(1),
        incarnation: 1,
        listeners: vec![],
        rack: None,
        clean_shutdown: true,
    };
    image.apply_batch(1, &vec![register]).unwrap();
    let create = controller::MetadataRecord::CreateTopic {
        name: "t".into(),
        assignments: vec![vec![wire::BrokerId(1)]],
        config: TopicConfig::default(),
    };
    image.apply_batch(2, &vec![create.clone()]).unwrap();
    let delete_old = controller::MetadataRecord::DeleteTopic {
        name: "t".into(),
        topic_id: 0,
    };
    image.apply_batch(3, &vec![delete_old.clone()]).unwrap();
    image.apply_batch(4, &vec![create]).unwrap();
    // A delete of the first incarnation, replayed, is refused: the topic stays.
    assert!(image.apply_batch(5, &vec![delete_old]).is_err());
    assert_eq!(image.topics()["t"].topic_id, 1);
    assert_eq!(
        image.applied_index(),
        5,
        "a refused entry still counts as applied"
    );
}
