//! Handler: snapshots (log compaction), metadata fetch (catch-up), restart from durable state.
#![allow(clippy::unwrap_used)]
mod common;

use common::Solo;
use controller::{
    ControllerConfig, Effect, MetadataFetch, MetadataImage, Reply, Request, TopicConfig,
};
use wire::BrokerId;

const INTERVAL: u64 = 8;

fn solo() -> Solo {
    Solo::new(|c| c.snapshot_interval_entries = INTERVAL)
}

fn fetch(solo: &mut Solo, after_index: u64) -> MetadataFetch {
    match solo.request(Request::FetchMetadata { after_index }) {
        Ok(Reply::Metadata(fetch)) => fetch,
        other => panic!("fetch: {other:?}"),
    }
}

#[test]
fn the_log_stays_bounded_by_snapshots() {
    let mut solo = solo();
    for b in 1..=20 {
        solo.add_broker(b, b as u64);
    }
    let store = solo.ctl.store();
    assert!(store.snapshot_index() > 0, "snapshots were taken");
    assert!(
        store.entries_retained().len() as u64 <= INTERVAL + 1,
        "{} entries",
        store.entries_retained().len()
    );
    assert!(solo
        .log
        .iter()
        .any(|e| matches!(e, Effect::SaveSnapshot(_))));
    // The durable copy is compacted too, and its snapshot decodes to an earlier image.
    assert_eq!(solo.durable.snapshot_index(), store.snapshot_index());
    let image = MetadataImage::decode(solo.durable.snapshot_latest().get_data()).unwrap();
    assert_eq!(image.applied_index(), solo.durable.snapshot_index());
}

#[test]
fn a_broker_catches_up_from_records_or_from_the_image() {
    let mut solo = solo();
    for b in 1..=10 {
        solo.add_broker(b, b as u64);
    }
    solo.create_topic("t", 3, 3, TopicConfig::default());
    let applied = solo.ctl.image().applied_index();
    let snapshot_index = solo.ctl.store().snapshot_index();
    // From before the snapshot: the whole image.
    let MetadataFetch::Image(image) = fetch(&mut solo, 0) else {
        panic!("compacted: image")
    };
    assert_eq!(&image, solo.ctl.image());
    // From the snapshot on: records, and applying them to the snapshot's image gives the image.
    let records = fetch(&mut solo, snapshot_index);
    let MetadataFetch::Records {
        batches,
        last_index,
    } = &records
    else {
        panic!("records")
    };
    assert_eq!(*last_index, applied);
    assert!(!batches.is_empty());
    let mut replica = MetadataImage::decode(solo.ctl.store().snapshot_latest().get_data()).unwrap();
    records.apply_to(&mut replica);
    assert_eq!(&replica, solo.ctl.image());
    // A broker starting from nothing catches up through the image.
    let mut fresh = MetadataImage::new();
    fetch(&mut solo, 0).apply_to(&mut fresh);
    assert_eq!(&fresh, solo.ctl.image());
    // Up to date, or ahead of this node: nothing (never an older image).
    for after_index in [applied, applied + 5] {
        let nothing = MetadataFetch::Records {
            batches: vec![],
            last_index: after_index,
        };
        assert_eq!(fetch(&mut solo, after_index), nothing);
    }
}

#[test]
fn a_restart_rebuilds_the_image_from_durable_state() {
    let mut solo = solo();
    for b in 1..=6 {
        solo.add_broker(b, b as u64);
    }
    solo.create_topic("t", 2, 3, TopicConfig::default());
    let image = solo.ctl.image().clone();
    let config = ControllerConfig {
        snapshot_interval_entries: INTERVAL,
        ..ControllerConfig::new(1, vec![1])
    };
    solo.restart(config);
    // After the restart raft commits a new empty entry of the new term: compare the content.
    let mut restarted = solo.ctl.image().clone();
    assert!(restarted.applied_index() > image.applied_index());
    assert_eq!(restarted.brokers(), image.brokers());
    assert_eq!(restarted.topics(), image.topics());
    restarted = MetadataImage::decode(&restarted.encode()).unwrap();
    assert_eq!(
        &restarted,
        solo.ctl.image(),
        "the snapshot encoding round-trips"
    );
    assert!(solo.ctl.image().brokers().contains_key(&BrokerId(6)));
}

/// Offline marks came after the first records and snapshots were written: a partition state
/// without them decodes with none, and one without marks encodes exactly as before.
#[test]
fn states_written_before_offline_marks_decode_and_encode_unchanged() {
    let old = br#"[{"PartitionChange":{"topic":"t","topic_id":0,"partition":0,"state":{"replicas":[1,2,3],"leader":2,"leader_epoch":1,"isr":[2,3],"elr":[],"last_known_leader":1,"partition_epoch":1}}}]"#;
    let batch = controller::records::decode_batch(old).expect("an old record decodes");
    let [controller::MetadataRecord::PartitionChange { state, .. }] = batch.as_slice() else {
        panic!("one partition change: {batch:?}")
    };
    assert!(state.offline.is_empty());
    assert_eq!(controller::records::encode_batch(&batch), old.to_vec());
    let mut marked = batch.clone();
    if let controller::MetadataRecord::PartitionChange { state, .. } = &mut marked[0] {
        state.offline = vec![BrokerId(1)];
    }
    let encoded = controller::records::encode_batch(&marked);
    assert_eq!(controller::records::decode_batch(&encoded), Some(marked));
}
