//! Handler: leader election on fencing and unfencing — from the ISR, from the ELR (KIP-966),
//! uncleanly only where the topic allows — and the historic no-ELR switch.
#![allow(clippy::unwrap_used)]

use controller::election::{
    fence_batch, leaderless_batch, register_batch, replica_offline_batch, unfence_batch,
    HistoricBugs,
};
use controller::{MetadataImage, MetadataRecord, PartitionState, TopicConfig};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

/// Three unfenced brokers and topic `t` with one partition on replicas [1, 2, 3].
fn image(unclean: bool, min_isr: i32) -> MetadataImage {
    let mut image = MetadataImage::new();
    let mut index = 0;
    let mut apply = |image: &mut MetadataImage, batch: Vec<MetadataRecord>| {
        index += 1;
        image.apply_batch(index, &batch).unwrap();
    };
    for b in 1..=3 {
        apply(
            &mut image,
            vec![MetadataRecord::RegisterBroker {
                broker: BrokerId(b),
                incarnation: 1,
                listeners: vec![],
                rack: None,
                clean_shutdown: true,
            }],
        );
        apply(
            &mut image,
            vec![MetadataRecord::UnfenceBroker {
                broker: BrokerId(b),
            }],
        );
    }
    let config = TopicConfig {
        unclean_leader_election: unclean,
        min_insync_replicas: min_isr,
        overrides: Default::default(),
    };
    let assignments = vec![vec![BrokerId(1), BrokerId(2), BrokerId(3)]];
    apply(
        &mut image,
        vec![MetadataRecord::CreateTopic {
            name: "t".into(),
            assignments,
            config,
        }],
    );
    image
}

fn fence(image: &mut MetadataImage, broker: i32, bugs: HistoricBugs) {
    let batch = fence_batch(image, BrokerId(broker), bugs);
    image
        .apply_batch(image.applied_index() + 1, &batch)
        .unwrap();
    image.check_invariants().unwrap();
}

fn unfence(image: &mut MetadataImage, broker: i32) {
    let batch = unfence_batch(image, BrokerId(broker));
    image
        .apply_batch(image.applied_index() + 1, &batch)
        .unwrap();
    image.check_invariants().unwrap();
}

fn state(image: &MetadataImage) -> PartitionState {
    image
        .partition(&TopicPartition::new("t", 0))
        .unwrap()
        .clone()
}

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|i| BrokerId(*i)).collect()
}

#[test]
fn fencing_the_leader_elects_the_next_isr_member() {
    let mut image = image(false, 1);
    fence(&mut image, 1, HistoricBugs::default());
    let s = state(&image);
    assert_eq!(
        (s.leader, s.leader_epoch, s.isr.clone()),
        (Some(BrokerId(2)), LeaderEpoch(1), b(&[2, 3]))
    );
    assert_eq!(s.last_known_leader, Some(BrokerId(1)));
    // Fencing a follower shrinks the ISR without a leader change.
    fence(&mut image, 3, HistoricBugs::default());
    let s = state(&image);
    assert_eq!(
        (s.leader, s.leader_epoch, s.isr),
        (Some(BrokerId(2)), LeaderEpoch(1), b(&[2]))
    );
}

#[test]
fn the_last_replica_standing_is_protected_by_the_elr() {
    // min ISR 2: every fence below it moves the removed replica into the ELR.
    let mut image = image(false, 2);
    fence(&mut image, 3, HistoricBugs::default());
    assert!(
        state(&image).elr.is_empty(),
        "ISR still at min ISR: 3 may have missed commits"
    );
    fence(&mut image, 2, HistoricBugs::default());
    assert_eq!(state(&image).elr, b(&[2]));
    fence(&mut image, 1, HistoricBugs::default());
    let s = state(&image);
    assert_eq!((s.leader, s.isr.clone()), (None, vec![]));
    assert_eq!(s.elr, b(&[1, 2]));
    assert_eq!(s.last_known_leader, Some(BrokerId(1)));
    // Broker 2 returns first: it is in the ELR, so it leads cleanly.
    unfence(&mut image, 2);
    let s = state(&image);
    assert_eq!(
        (s.leader, s.isr.clone(), s.elr.clone()),
        (Some(BrokerId(2)), b(&[2]), b(&[1]))
    );
    assert_eq!(s.leader_epoch, LeaderEpoch(2));
}

#[test]
fn without_elr_or_unclean_election_the_partition_stays_leaderless() {
    // min ISR 1: the ELR only fills when the ISR empties.
    let mut image = image(false, 1);
    fence(&mut image, 1, HistoricBugs::default());
    fence(&mut image, 2, HistoricBugs::default());
    fence(&mut image, 3, HistoricBugs::default());
    assert_eq!(
        state(&image).elr,
        b(&[3]),
        "only the last ISR member holds everything committed"
    );
    unfence(&mut image, 1); // stale replica: not eligible
    assert_eq!(state(&image).leader, None);
    unfence(&mut image, 3);
    assert_eq!(state(&image).leader, Some(BrokerId(3)));
}

fn reregister(image: &mut MetadataImage, broker: i32, clean_shutdown: bool) {
    let record = MetadataRecord::RegisterBroker {
        broker: BrokerId(broker),
        incarnation: 2,
        listeners: vec![],
        rack: None,
        clean_shutdown,
    };
    let batch = register_batch(image, record, HistoricBugs::default());
    image
        .apply_batch(image.applied_index() + 1, &batch)
        .unwrap();
    image.check_invariants().unwrap();
}

#[test]
fn a_crashed_elr_member_leaves_the_elr_and_unclean_election_follows_when_allowed() {
    for unclean in [false, true] {
        let mut image = image(unclean, 1);
        fence(&mut image, 1, HistoricBugs::default());
        fence(&mut image, 2, HistoricBugs::default());
        fence(&mut image, 3, HistoricBugs::default());
        unfence(&mut image, 1);
        assert_eq!(
            state(&image).leader,
            None,
            "ELR member 3 may return: no unclean election yet"
        );
        let epoch = state(&image).partition_epoch;
        reregister(&mut image, 3, false); // 3 crashed: it may have lost committed records
        let s = state(&image);
        assert!(s.elr.is_empty());
        assert!(s.partition_epoch > epoch);
        if unclean {
            assert_eq!((s.leader, s.isr), (Some(BrokerId(1)), b(&[1])));
        } else {
            assert_eq!(
                s.leader, None,
                "unclean election off: the partition stays offline"
            );
        }
    }
}

#[test]
fn a_cleanly_restarted_elr_member_stays_eligible() {
    let mut image = image(true, 1);
    fence(&mut image, 1, HistoricBugs::default());
    fence(&mut image, 2, HistoricBugs::default());
    fence(&mut image, 3, HistoricBugs::default());
    let before = state(&image);
    reregister(&mut image, 3, true);
    assert_eq!(
        state(&image),
        before,
        "a clean restart changes no partition"
    );
    unfence(&mut image, 3);
    assert_eq!(state(&image).leader, Some(BrokerId(3)));
}

#[test]
fn the_no_elr_switch_forgets_the_last_replica_standing() {
    let mut image = image(true, 2);
    let bugs = HistoricBugs { no_elr: true };
    fence(&mut image, 1, bugs);
    fence(&mut image, 2, bugs);
    fence(&mut image, 3, bugs);
    assert!(
        state(&image).elr.is_empty(),
        "pre-KIP-966: nothing remembers who was in sync"
    );
    unfence(&mut image, 1); // with unclean on, a stale replica now leads
    assert_eq!(state(&image).leader, Some(BrokerId(1)));
}

#[test]
fn unclean_election_waits_while_the_elr_has_members() {
    let mut image = image(true, 2);
    fence(&mut image, 1, HistoricBugs::default());
    fence(&mut image, 2, HistoricBugs::default());
    fence(&mut image, 3, HistoricBugs::default());
    assert_eq!(state(&image).elr, b(&[2, 3]));
    unfence(&mut image, 1);
    assert_eq!(
        state(&image).leader,
        None,
        "an ELR member may come back: no unclean election"
    );
    unfence(&mut image, 3);
    assert_eq!(state(&image).leader, Some(BrokerId(3)));
}

#[test]
fn leader_epochs_and_partition_epochs_only_grow_through_elections() {
    let mut image = image(true, 2);
    let mut last = state(&image);
    for step in 0..12 {
        let broker = 1 + (step % 3);
        if image.is_unfenced(BrokerId(broker)) {
            fence(&mut image, broker, HistoricBugs::default());
        } else {
            unfence(&mut image, broker);
        }
        let now = state(&image);
        assert!(
            now.leader_epoch >= last.leader_epoch && now.partition_epoch >= last.partition_epoch
        );
        if now.leader != last.leader {
            assert!(
                now.leader_epoch > last.leader_epoch,
                "a new leader gets a new epoch"
            );
        }
        last = now;
    }
}

fn apply(image: &mut MetadataImage, batch: &[MetadataRecord]) {
    image
        .apply_batch(image.applied_index() + 1, &batch.to_vec())
        .unwrap();
    image.check_invariants().unwrap();
}

fn change(state: PartitionState) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic: "t".into(),
        topic_id: 0,
        partition: 0,
        state,
    }
}

/// Even an unclean election never takes a failed copy: with every other replica offline the
/// partition stays leaderless, and the first of them to re-register leads once unfenced.
#[test]
fn offline_copies_are_passed_over_even_by_unclean_elections() {
    let mut image = image(true, 1);
    let tp = TopicPartition::new("t", 0);
    for broker in [2, 3] {
        let batch = replica_offline_batch(&image, BrokerId(broker), &tp, HistoricBugs::default());
        apply(&mut image, &batch);
    }
    let before = state(&image);
    assert_eq!(
        (before.isr.clone(), before.offline.clone()),
        (b(&[1]), b(&[2, 3]))
    );
    let batch = fence_batch(&image, BrokerId(1), HistoricBugs::default());
    let fenced = PartitionState {
        leader: None,
        leader_epoch: LeaderEpoch(1),
        isr: vec![],
        elr: b(&[1]),
        last_known_leader: Some(BrokerId(1)),
        partition_epoch: PartitionEpoch(before.partition_epoch.0 + 1),
        ..before.clone()
    };
    assert_eq!(
        batch,
        vec![
            change(fenced.clone()),
            MetadataRecord::FenceBroker {
                broker: BrokerId(1)
            }
        ],
        "1 is the last replica standing: in the ELR, it holds back unclean elections"
    );
    apply(&mut image, &batch);
    // 1 comes back with its storage lost: out of the ELR, so an unclean election may run, but
    // 2 and 3 are unfenced replicas whose copies failed.
    let register = MetadataRecord::RegisterBroker {
        broker: BrokerId(1),
        incarnation: 2,
        listeners: vec![],
        rack: None,
        clean_shutdown: false,
    };
    let batch = register_batch(&image, register.clone(), HistoricBugs::default());
    let leaderless = PartitionState {
        elr: vec![],
        partition_epoch: PartitionEpoch(fenced.partition_epoch.0 + 1),
        ..fenced
    };
    assert_eq!(batch, vec![change(leaderless.clone()), register]);
    apply(&mut image, &batch);
    let register = MetadataRecord::RegisterBroker {
        broker: BrokerId(3),
        incarnation: 2,
        listeners: vec![],
        rack: None,
        clean_shutdown: true,
    };
    let batch = register_batch(&image, register.clone(), HistoricBugs::default());
    let cleared = PartitionState {
        offline: b(&[2]),
        partition_epoch: PartitionEpoch(leaderless.partition_epoch.0 + 1),
        ..leaderless
    };
    assert_eq!(batch, vec![change(cleared.clone()), register]);
    apply(&mut image, &batch);
    let batch = unfence_batch(&image, BrokerId(3));
    let elected = PartitionState {
        leader: Some(BrokerId(3)),
        leader_epoch: LeaderEpoch(2),
        isr: b(&[3]),
        partition_epoch: PartitionEpoch(cleared.partition_epoch.0 + 1),
        ..cleared
    };
    assert_eq!(
        batch,
        vec![
            MetadataRecord::UnfenceBroker {
                broker: BrokerId(3)
            },
            change(elected)
        ],
        "unclean, as the topic allows: 3 was outside the ISR"
    );
    apply(&mut image, &batch);
}

/// Seed 164246 (session 23): batches built from the same applied image while others are in
/// flight each missed the one election that would have picked an ELR member: n3's unfence was
/// built while n2 still led (so it elects nobody), n2's unclean re-registration while n3 was
/// still fenced (nobody eligible; in the seed n2's own unfence, built before n3's applied,
/// missed too). Applied, they leave the partition leaderless with n3 live and in the ELR; the
/// sweep the active controller proposes once nothing is pending elects it.
#[test]
fn batches_built_from_a_stale_image_leave_an_elr_member_to_the_leaderless_sweep() {
    let mut image = image(false, 2);
    fence(&mut image, 1, HistoricBugs::default());
    fence(&mut image, 3, HistoricBugs::default());
    let before = state(&image);
    assert_eq!(before.leader, Some(BrokerId(2)));
    assert_eq!(before.elr, b(&[3]), "below min ISR, n3 stays eligible");
    // Built from this image, before any of them is applied.
    let unfence_3 = unfence_batch(&image, BrokerId(3));
    let register_2 = register_batch(
        &image,
        MetadataRecord::RegisterBroker {
            broker: BrokerId(2),
            incarnation: 2,
            listeners: vec![],
            rack: None,
            clean_shutdown: false,
        },
        HistoricBugs::default(),
    );
    assert_eq!(unfence_3.len(), 1, "n2 leads: the unfence elects nobody");
    for batch in [register_2, unfence_3] {
        image
            .apply_batch(image.applied_index() + 1, &batch)
            .unwrap();
        image.check_invariants().unwrap();
    }
    // Leaderless, with n3 live and in the ELR: no event-driven batch is left to elect it.
    let stuck = state(&image);
    assert_eq!(stuck.leader, None);
    assert_eq!(stuck.elr, b(&[3]));
    assert!(stuck.isr.is_empty());
    let sweep = leaderless_batch(&image);
    image
        .apply_batch(image.applied_index() + 1, &sweep)
        .unwrap();
    image.check_invariants().unwrap();
    let after = state(&image);
    assert_eq!(after.leader, Some(BrokerId(3)), "the ELR member leads");
    assert!(after.leader_epoch > stuck.leader_epoch);
    assert!(leaderless_batch(&image).is_empty(), "nothing left to elect");
}
