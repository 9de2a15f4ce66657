//! OffsetCommit, OffsetFetch, the record format, load and unload.
#![allow(clippy::unwrap_used)]

mod group_support;

use broker::group::{
    error_code, java_string_hash, offsets_partition, OffsetKey, OffsetRecord, OffsetValue,
};
use group_support::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use proptest::prelude::*;

fn commit(
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(s("meta")));
        match topics.iter_mut().find(|t| &*t.name.0 == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(topics)
}

fn codes(response: &kafka_protocol::messages::OffsetCommitResponse) -> Vec<i16> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

fn fetch(group: &str, topic: &str, partitions: Vec<i32>) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions)]))
}

#[test]
fn member_commit_is_planned_then_applied_after_the_append() {
    let (mut c, leader, _follower, generation) = stable_pair("g");
    let plan = c.commit_offsets(
        200,
        &commit("g", &leader, generation, &[("t", 0, 42), ("t", 1, 7)]),
        8,
    );
    assert_eq!(codes(&plan.response), vec![0, 0]);
    assert_eq!(plan.records.len(), 2);
    assert_eq!(plan.offsets_partition, c.partition_for("g"));
    // Not visible before the append is durable.
    let before = c.fetch_offsets(&fetch("g", "t", vec![0]), 7);
    assert_eq!(before.topics[0].partitions[0].committed_offset, -1);
    c.offsets_committed(0, plan.records.clone());
    let after = c.fetch_offsets(&fetch("g", "t", vec![0, 1, 2]), 7);
    let offsets: Vec<i64> = after.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(offsets, vec![42, 7, -1]);
    for version in 1..=7 {
        assert_encodes(&after, version);
    }
    for version in 2..=8 {
        assert_encodes(&plan.response, version);
    }
    let failed = plan.failed(error_code::REQUEST_TIMED_OUT);
    assert_eq!(codes(&failed), vec![error_code::REQUEST_TIMED_OUT; 2]);
}

/// Seed 1681 (session 18, outside the default campaign's 500): two commits of one partition,
/// appended to `__consumer_offsets` at offsets 10 and 11, were made durable by one HW advance,
/// and their waiting tasks ran later-first; the cache kept the earlier record's offset while the
/// log's last word was the later one (a read-back of 266 where only 264 was acknowledged). A
/// record never replaces one that lies later in the log (Kafka's `onOffsetCommitAppend`).
#[test]
fn a_commit_append_completing_late_does_not_overwrite_a_later_one() {
    let (mut c, leader, _follower, generation) = stable_pair("g");
    let early = c.commit_offsets(200, &commit("g", &leader, generation, &[("t", 0, 266)]), 8);
    let late = c.commit_offsets(300, &commit("g", &leader, generation, &[("t", 0, 264)]), 8);
    c.offsets_committed(11, late.records);
    c.offsets_committed(10, early.records);
    let read = c.fetch_offsets(&fetch("g", "t", vec![0]), 7);
    assert_eq!(read.topics[0].partitions[0].committed_offset, 264);
    // A tombstone later in the log removes the offset; a late record before it does not
    // bring it back.
    c.offsets_committed(20, [record("g", "t", 0, None)]);
    let again = c.commit_offsets(400, &commit("g", &leader, generation, &[("t", 0, 100)]), 8);
    c.offsets_committed(15, again.records);
    let read = c.fetch_offsets(&fetch("g", "t", vec![0]), 7);
    assert_eq!(read.topics[0].partitions[0].committed_offset, -1);
    // The same for a key the cache never held: its tombstone (a group deletion's, say) is
    // applied first, the commit of it that lies before the tombstone completes late.
    c.offsets_committed(30, [record("g", "t", 1, None)]);
    let first = c.commit_offsets(500, &commit("g", &leader, generation, &[("t", 1, 5)]), 8);
    c.offsets_committed(25, first.records);
    let read = c.fetch_offsets(&fetch("g", "t", vec![1]), 7);
    assert_eq!(read.topics[0].partitions[0].committed_offset, -1);
}

#[test]
fn commits_from_stale_generations_or_strangers_are_refused() {
    let (mut c, leader, _follower, generation) = stable_pair("g");
    let plan = c.commit_offsets(
        200,
        &commit("g", &leader, generation - 1, &[("t", 0, 1)]),
        8,
    );
    assert_eq!(codes(&plan.response), vec![error_code::ILLEGAL_GENERATION]);
    assert!(plan.records.is_empty());
    let plan = c.commit_offsets(200, &commit("g", "ghost", generation, &[("t", 0, 1)]), 8);
    assert_eq!(codes(&plan.response), vec![error_code::UNKNOWN_MEMBER_ID]);
    // A standalone commit (generation -1) is refused while the group has members.
    let plan = c.commit_offsets(200, &commit("g", "", -1, &[("t", 0, 1)]), 8);
    assert_eq!(codes(&plan.response), vec![error_code::UNKNOWN_MEMBER_ID]);
    // During CompletingRebalance commits wait for the new generation.
    c.join(
        300,
        1,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    let plan = c.commit_offsets(300, &commit("g", &leader, generation, &[("t", 0, 1)]), 8);
    assert_eq!(
        codes(&plan.response),
        vec![0],
        "PreparingRebalance still accepts commits"
    );
    c.tick(200 + 30_000);
    let plan = c.commit_offsets(
        300,
        &commit("g", &leader, generation + 1, &[("t", 0, 1)]),
        8,
    );
    assert_eq!(
        codes(&plan.response),
        vec![error_code::REBALANCE_IN_PROGRESS]
    );
}

#[test]
fn standalone_commit_to_an_unused_group_and_oversized_metadata() {
    let mut c = coordinator();
    let plan = c.commit_offsets(5, &commit("solo", "", -1, &[("t", 0, 9)]), 2);
    assert_eq!(codes(&plan.response), vec![0]);
    c.offsets_committed(0, plan.records);
    let got = c.fetch_offsets(&fetch("solo", "t", vec![0]), 5);
    assert_eq!(got.topics[0].partitions[0].committed_offset, 9);
    let plan = c.commit_offsets(5, &commit("nobody", "m", 3, &[("t", 0, 9)]), 2);
    assert_eq!(codes(&plan.response), vec![error_code::ILLEGAL_GENERATION]);
    let mut big = commit("solo", "", -1, &[("t", 0, 10)]);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5_000)));
    let plan = c.commit_offsets(5, &big, 8);
    assert_eq!(
        codes(&plan.response),
        vec![error_code::OFFSET_METADATA_TOO_LARGE]
    );
}

#[test]
fn fetch_all_and_multi_group_form() {
    let mut c = coordinator();
    let plan = c.commit_offsets(1, &commit("solo", "", -1, &[("b", 1, 5), ("a", 0, 3)]), 8);
    c.offsets_committed(0, plan.records);
    let all = c.fetch_offsets(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("solo")))
            .with_topics(None),
        7,
    );
    let names: Vec<String> = all.topics.iter().map(|t| t.name.0.to_string()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let v8 = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("solo")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s("b")))
                .with_partition_indexes(vec![1])])),
        OffsetFetchRequestGroup::default().with_group_id(GroupId(s(""))),
    ]);
    let r = c.fetch_offsets(&v8, 8);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);
    assert_eq!(r.groups[1].error_code, error_code::INVALID_GROUP_ID);
    assert_encodes(&r, 8);
}

#[test]
fn offsets_partition_matches_kafka() {
    // Java: "test".hashCode() == 3556498, "".hashCode() == 0; a negative hash is masked.
    assert_eq!(java_string_hash("test"), 3_556_498);
    assert_eq!(java_string_hash("console-consumer-12345"), {
        let mut h: i32 = 0;
        for u in "console-consumer-12345".encode_utf16() {
            h = h.wrapping_mul(31).wrapping_add(i32::from(u));
        }
        h
    });
    assert_eq!(offsets_partition("test", 50), 3_556_498 % 50);
    let negative = "polygenelubricants"; // Java hash is i32::MIN
    assert_eq!(java_string_hash(negative), i32::MIN);
    assert_eq!(offsets_partition(negative, 50), 0);
}

fn record(group: &str, topic: &str, partition: i32, value: Option<OffsetValue>) -> OffsetRecord {
    OffsetRecord {
        key: OffsetKey {
            group: group.into(),
            topic: topic.into(),
            partition,
        },
        value,
    }
}

#[test]
fn record_layout_is_kafkas_key_v1_value_v3() {
    let r = record(
        "g",
        "t",
        2,
        Some(OffsetValue {
            offset: 5,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 9,
        }),
    );
    let (key, value) = r.encode();
    assert_eq!(key, vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
    let value = value.unwrap();
    assert_eq!(
        value,
        vec![0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 9]
    );
    assert_eq!(OffsetRecord::decode(&key, Some(&value)).unwrap(), Some(r));
    // Group metadata records (key version 2) are skipped; garbage is an error, not a panic.
    assert_eq!(OffsetRecord::decode(&[0, 2, 0, 0], None).unwrap(), None);
    assert!(OffsetRecord::decode(&[0, 1, 0], None).is_err());
    assert!(OffsetRecord::decode(&key, Some(&[0, 3, 1])).is_err());
    assert!(OffsetRecord::decode(&[0, 1, 0xff, 0xff], None).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn encode_decode_round_trip(
        group in "[a-z\u{e9}]{1,20}", topic in "[a-z._-]{1,30}", partition in any::<i32>(),
        value in proptest::option::of((any::<i64>(), any::<i32>(), ".{0,40}", any::<i64>())),
    ) {
        let r = record(&group, &topic, partition, value.map(|(offset, leader_epoch, metadata, commit_timestamp_ms)| {
            OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms }
        }));
        let (key, value) = r.encode();
        prop_assert_eq!(OffsetRecord::decode(&key, value.as_deref()).unwrap(), Some(r));
    }

    #[test]
    fn decode_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40), value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))) {
        let _ = OffsetRecord::decode(&key, value.as_deref());
    }
}

#[test]
fn load_rebuilds_offsets_and_unload_drops_groups() {
    let config = config();
    let mut c = broker::group::GroupCoordinator::new(config);
    let partition = offsets_partition("g", PARTITIONS);
    let v = |offset| {
        Some(OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        })
    };
    let foreign = (0..100)
        .map(|i| format!("other{i}"))
        .find(|g| offsets_partition(g, PARTITIONS) != partition)
        .unwrap();
    c.begin_loading(partition);
    let e = c.fetch_offsets(&fetch("g", "t", vec![0]), 7);
    assert_eq!(e.error_code, error_code::COORDINATOR_LOAD_IN_PROGRESS);
    c.load(
        partition,
        vec![
            record("g", "t", 0, v(1)),
            record("g", "t", 1, v(2)),
            record("g", "t", 0, v(3)),
            record("g", "t", 1, None),
            record(&foreign, "t", 0, v(4)),
        ],
    );
    c.check_invariants();
    let got = c.fetch_offsets(&fetch("g", "t", vec![0, 1]), 7);
    let offsets: Vec<i64> = got.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(offsets, vec![3, -1], "later records win, tombstones delete");
    assert!(
        c.group(&foreign).is_none(),
        "records of other partitions are ignored"
    );
    assert_eq!(c.is_coordinator_for(&foreign), error_code::NOT_COORDINATOR);
    let (mut c2, leader, _, _) = stable_pair("g");
    let waiting = c2.join(
        200,
        77,
        &client("a"),
        &join_request("g", &leader, &[("range", "m")]),
        3,
    );
    assert!(!answered(&waiting, 77));
    let e = c2.unload(c2.partition_for("g"));
    assert_eq!(
        join_response(&e, 77).error_code,
        error_code::NOT_COORDINATOR
    );
    assert!(c2.group("g").is_none());
    assert_eq!(c2.is_coordinator_for("g"), error_code::NOT_COORDINATOR);
    let v1 = c2.fetch_offsets(&fetch("g", "t", vec![0]), 1);
    assert_eq!(
        v1.topics[0].partitions[0].error_code,
        error_code::NOT_COORDINATOR
    );
    c2.check_invariants();
}
