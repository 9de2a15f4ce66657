//! Appends that skip a second validation pass: a leader's payload the broker's ingress validated
//! (`append_validated_as_leader`) and a follower's batches verified as the fetch answer arrived
//! (`append_verified_as_follower`). The log still stores only what `validate_produced` accepts
//! under its own rules at the time of the append.
#![allow(clippy::unwrap_used)]

mod common;

use common::{batch, open_mem, read_all, small_config};
use log_core::{
    validate_produced, BatchHeader, LeaderEpoch, LogConfig, MemDisk, Offset, PartitionLog,
    ProduceRules,
};

fn rules_of(config: &LogConfig, now_ms: i64) -> ProduceRules {
    ProduceRules {
        batch_bytes_max: config.batch_bytes_max,
        compacted: config.compacted,
        log_append_time_ms: config.log_append_time.then_some(now_ms),
        codec_target: config.codec_target,
    }
}

/// A producer's payload as the ingress leaves it: validated and normalised under `rules`.
fn validated(tag: &str, n: usize, rules: &ProduceRules) -> Vec<u8> {
    let mut payload = batch(tag, n, 0, 100);
    validate_produced(&mut payload, rules).unwrap();
    payload
}

#[test]
fn a_validated_payload_is_appended_in_place_with_its_offsets_and_epoch() {
    let disk = MemDisk::new(21);
    let config = small_config();
    let mut log = open_mem(&disk, config.clone());
    let rules = rules_of(&config, 0);
    let mut first = validated("a", 3, &rules);
    let mut second = validated("b", 2, &rules);
    let info = log
        .append_validated_as_leader(&mut first, &rules, LeaderEpoch(4), 0)
        .unwrap();
    assert_eq!(
        (info.first_offset, info.log_end_offset),
        (Offset(0), Offset(3))
    );
    let info = log
        .append_validated_as_leader(&mut second, &rules, LeaderEpoch(4), 0)
        .unwrap();
    assert_eq!(
        (info.first_offset, info.log_end_offset),
        (Offset(3), Offset(5))
    );
    // The caller's buffer is what the log holds: offsets and epoch written in place.
    let header = BatchHeader::parse(&second).unwrap();
    assert_eq!(header.base_offset, Offset(3));
    assert_eq!(header.partition_leader_epoch, LeaderEpoch(4));
    let read = log.read(Offset(3), 1 << 20).unwrap();
    assert_eq!(read.bytes, second);
    let values: Vec<_> = read_all(&log, Offset::ZERO)
        .into_iter()
        .map(|(_, _, v)| String::from_utf8(v.unwrap()).unwrap())
        .collect();
    assert_eq!(values, ["a-0", "a-1", "a-2", "b-0", "b-1"]);
}

#[test]
fn rules_changed_since_the_ingress_validate_the_payload_again() {
    let disk = MemDisk::new(22);
    let config = small_config();
    let ingress_rules = rules_of(&config, 0);
    let mut payload = validated("a", 20, &ingress_rules);
    // The topic's max.message.bytes fell between the ingress and the append.
    let stricter = LogConfig {
        batch_bytes_max: 64,
        ..config
    };
    let mut log = open_mem(&disk, stricter);
    let refused = log.append_validated_as_leader(&mut payload, &ingress_rules, LeaderEpoch(0), 0);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(log.log_end_offset(), Offset::ZERO);
}

#[test]
fn log_append_time_is_stamped_at_the_append() {
    let disk = MemDisk::new(23);
    let config = LogConfig {
        log_append_time: true,
        ..small_config()
    };
    let mut log = open_mem(&disk, config.clone());
    let ingress_rules = rules_of(&config, 5);
    let mut payload = validated("a", 2, &ingress_rules);
    log.append_validated_as_leader(&mut payload, &ingress_rules, LeaderEpoch(0), 1_234)
        .unwrap();
    let read = log.read(Offset::ZERO, 1 << 20).unwrap();
    let header = BatchHeader::parse(&read.bytes).unwrap();
    assert_eq!(
        header.max_timestamp, 1_234,
        "the append's time, not the ingress's"
    );
    assert_eq!(
        read_all(&log, Offset::ZERO).len(),
        2,
        "the batch's CRC holds"
    );
}

#[test]
fn a_follower_appends_verified_batches_as_the_leader_holds_them() {
    let leader_disk = MemDisk::new(24);
    let follower_disk = MemDisk::new(25);
    let config = small_config();
    let mut leader = open_mem(&leader_disk, config.clone());
    let mut follower: PartitionLog = open_mem(&follower_disk, config);
    for (tag, epoch) in [("a", 1), ("b", 1), ("c", 2)] {
        leader
            .append_as_leader(&batch(tag, 3, 0, 0), LeaderEpoch(epoch), 0)
            .unwrap();
    }
    let mut next = Offset::ZERO;
    while next < leader.log_end_offset() {
        let read = leader.read(next, 100).unwrap();
        let info = follower
            .append_verified_as_follower(&read.bytes, 0)
            .unwrap();
        assert_eq!(info.first_offset, next);
        next = read.next_offset;
    }
    assert_eq!(follower.log_end_offset(), Offset(9));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        read_all(&follower, Offset::ZERO),
        read_all(&leader, Offset::ZERO)
    );
    // Framing and order are still checked: the same batches again do not continue the log.
    let again = leader.read(Offset::ZERO, 100).unwrap();
    assert!(follower
        .append_verified_as_follower(&again.bytes, 0)
        .is_err());
}
