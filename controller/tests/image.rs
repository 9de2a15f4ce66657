//! The metadata image as a pure function: random record sequences (from the real decision
//! functions and raw, possibly invalid records) keep the invariants, apply deterministically,
//! and survive the snapshot encoding.
#![allow(clippy::unwrap_used)]

use controller::election::{self, AlterPartitionRequest, HistoricBugs};
use controller::{MetadataImage, MetadataRecord, TopicConfig};
use proptest::prelude::*;
use wire::{BrokerId, TopicPartition};

#[derive(Clone, Debug)]
enum Op {
    Register(i32, u64, bool),
    Toggle(i32),
    Create(u8, usize, usize, bool),
    Delete(u8),
    Alter(u8, bool),
    /// Broker reports its copy of topic `t`'s partition 0 failed.
    Offline(i32, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..5i32, 0..3u64, any::<bool>()).prop_map(|(b, i, c)| Op::Register(b, i, c)),
        (1..5i32).prop_map(Op::Toggle),
        (0..3u8, 1..4usize, 1..4usize, any::<bool>())
            .prop_map(|(t, p, rf, u)| Op::Create(t, p, rf, u)),
        (0..3u8).prop_map(Op::Delete),
        (0..3u8, any::<bool>()).prop_map(|(t, s)| Op::Alter(t, s)),
        (1..5i32, 0..3u8).prop_map(|(b, t)| Op::Offline(b, t)),
    ]
}

/// The batch an operation turns into, as the active controller would propose it.
fn batch(image: &MetadataImage, op: &Op) -> Option<Vec<MetadataRecord>> {
    match *op {
        Op::Register(b, incarnation, clean_shutdown) => {
            let record = MetadataRecord::RegisterBroker {
                broker: BrokerId(b),
                incarnation,
                listeners: vec![],
                // Racks on even brokers: the snapshot round trip covers both encodings.
                rack: (b % 2 == 0).then(|| format!("rack-{b}")),
                clean_shutdown,
            };
            Some(election::register_batch(
                image,
                record,
                HistoricBugs::default(),
            ))
        }
        Op::Toggle(b) => match image.brokers().get(&BrokerId(b)) {
            Some(r) if r.fenced => Some(election::unfence_batch(image, BrokerId(b))),
            Some(_) => Some(election::fence_batch(
                image,
                BrokerId(b),
                HistoricBugs::default(),
            )),
            None => None,
        },
        Op::Create(t, partitions, rf, unclean) => {
            let brokers = image.brokers_unfenced();
            if rf > brokers.len() || image.topics().contains_key(&format!("t{t}")) {
                return None;
            }
            let assignments = controller::placement::assign_replicas(
                &brokers,
                partitions,
                rf,
                image.topic_id_next(),
            );
            let config = TopicConfig {
                unclean_leader_election: unclean,
                min_insync_replicas: rf.min(2) as i32,
                overrides: Default::default(),
            };
            Some(vec![MetadataRecord::CreateTopic {
                name: format!("t{t}"),
                assignments,
                config,
            }])
        }
        Op::Delete(t) => {
            let topic_id = image
                .topics()
                .get(&format!("t{t}"))
                .map_or(99, |t| t.topic_id);
            Some(vec![MetadataRecord::DeleteTopic {
                name: format!("t{t}"),
                topic_id,
            }])
        }
        Op::Alter(t, shrink) => {
            let tp = TopicPartition::new(format!("t{t}"), 0);
            let state = image.partition(&tp)?;
            let leader = state.leader?;
            let isr = if shrink {
                vec![leader]
            } else {
                state
                    .replicas
                    .iter()
                    .copied()
                    .filter(|b| image.is_unfenced(*b))
                    .collect()
            };
            let request = AlterPartitionRequest {
                partition: tp,
                broker: leader,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                isr,
            };
            election::alter_partition(image, &request)
                .ok()
                .map(|r| vec![r])
        }
        Op::Offline(b, t) => {
            let tp = TopicPartition::new(format!("t{t}"), 0);
            image.partition(&tp)?;
            let batch =
                election::replica_offline_batch(image, BrokerId(b), &tp, HistoricBugs::default());
            (!batch.is_empty()).then_some(batch)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn decisions_always_apply_and_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut image = MetadataImage::new();
        let mut replay = MetadataImage::new();
        let mut index = 0;
        for op in &ops {
            let Some(batch) = batch(&image, op) else { continue };
            index += 1;
            let outcome = image.apply_batch(index, &batch);
            // The controller's own decisions are valid (a delete of an unknown topic excepted).
            prop_assert!(outcome.is_ok() || matches!(op, Op::Delete(_)), "{op:?}: {outcome:?}");
            prop_assert!(image.check_invariants().is_ok(), "{:?}", image.check_invariants());
            // Applying is a pure function: a second image given the same entries agrees.
            let replayed = replay.apply_batch(index, &batch);
            prop_assert_eq!(&outcome, &replayed);
            prop_assert_eq!(image.digest(), replay.digest());
        }
        prop_assert_eq!(&MetadataImage::decode(&image.encode()).unwrap(), &image);
    }

    #[test]
    fn stale_records_are_refused_without_a_trace(ops in proptest::collection::vec(op(), 1..40), stale_at in 0usize..40) {
        // Take a batch decided on an old image and apply it after later changes: either it still
        // fits (epochs unchanged) or it is refused and changes nothing but the applied index.
        let mut image = MetadataImage::new();
        let mut stale = None;
        let mut index = 0;
        for (i, op) in ops.iter().enumerate() {
            let Some(batch) = batch(&image, op) else { continue };
            if i == stale_at {
                stale = Some(batch.clone());
            }
            index += 1;
            let _ = image.apply_batch(index, &batch);
        }
        if let Some(batch) = stale {
            let before = image.clone();
            index += 1;
            if image.apply_batch(index, &batch).is_err() {
                prop_assert_eq!(image.brokers(), before.brokers());
                prop_assert_eq!(image.topics(), before.topics());
            }
            prop_assert!(image.check_invariants().is_ok());
        }
    }
}

/// KIP-392: a broker's rack reaches the image, records without the field (written before it
/// existed) decode as rackless, and a rack outside 1..=255 bytes is refused.
#[test]
fn a_registered_rack_is_kept_and_bounded() {
    let register = |broker: i32, rack: Option<String>| MetadataRecord::RegisterBroker {
        broker: BrokerId(broker),
        incarnation: 1,
        listeners: vec![],
        rack,
        clean_shutdown: true,
    };
    let mut image = MetadataImage::new();
    image
        .apply_batch(1, &vec![register(1, Some("us-east-1a".into()))])
        .unwrap();
    assert_eq!(
        image.brokers()[&BrokerId(1)].rack.as_deref(),
        Some("us-east-1a")
    );
    let old = br#"[{"RegisterBroker":{"broker":2,"incarnation":1,"listeners":[],"clean_shutdown":true}}]"#;
    let batch = controller::records::decode_batch(old).unwrap();
    assert_eq!(batch, vec![register(2, None)]);
    assert!(
        !String::from_utf8(controller::records::encode_batch(&batch))
            .unwrap()
            .contains("rack")
    );
    image.apply_batch(2, &batch).unwrap();
    assert_eq!(image.brokers()[&BrokerId(2)].rack, None);
    for (index, bad) in [
        (3, String::new()),
        (4, "r".repeat(controller::RACK_BYTES_MAX + 1)),
    ] {
        assert!(image
            .apply_batch(index, &vec![register(3, Some(bad))])
            .is_err());
        assert!(!image.brokers().contains_key(&BrokerId(3)));
    }
    assert_eq!(MetadataImage::decode(&image.encode()).unwrap(), image);
}
