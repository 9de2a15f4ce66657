//! The log's tail (`log_core::tail`): reads and journaled flushes of the batches appended last
//! are answered from memory, and every answer is the one the files give. A leader and a follower
//! fetching from it go through appends of every size, segment rolls, high watermark moves,
//! truncations and retention; after each step, reads from many offsets and sizes and the bytes a
//! journaled flush would write are compared with what the files hold.
#![allow(clippy::unwrap_used)]

mod common;

use common::{batch, small_config};
use log_core::{LeaderEpoch, LogConfig, MemDisk, Offset, PartitionLog};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Step {
    /// The leader appends a batch of this many records; the follower fetches.
    Append(usize),
    /// The leader's high watermark moves up to this share (in 1/8) of its end, and the
    /// follower's with it as far as the follower has the records.
    HighWatermark(u8),
    /// The follower truncates to this share of its end (and fetches again at the next append).
    Truncate(u8),
    /// Retention on the leader (by bytes).
    Retention,
    /// Both logs flush.
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..40).prop_map(Step::Append),
        2 => (0u8..=8).prop_map(Step::HighWatermark),
        1 => (0u8..=8).prop_map(Step::Truncate),
        1 => Just(Step::Retention),
        1 => Just(Step::Flush),
    ]
}

fn open(disk: &MemDisk, dir: &str, config: LogConfig) -> PartitionLog {
    PartitionLog::open(Arc::new(disk.clone()), Path::new(dir), config, 0).unwrap()
}

fn share(log: &PartitionLog, eighths: u8) -> Offset {
    let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
    Offset(start + (end - start) * i64::from(eighths) / 8)
}

/// The follower fetches everything the leader has past its end.
fn fetch(leader: &PartitionLog, follower: &mut PartitionLog) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let read = leader.read(follower.log_end_offset(), 3_000).unwrap();
        follower
            .append_verified_as_follower(&read.bytes, 0)
            .unwrap();
    }
}

/// Every read from the tail is the files' read, and a flush planned now journals the files'
/// bytes. Returns how many reads the tail answered.
fn compare(log: &mut PartitionLog) -> usize {
    let mut answered = 0;
    let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
    for from in (start..=end).rev().take(30) {
        for (bytes_max, bound) in [
            (1, end),
            (200, end),
            (1 << 20, end),
            (1 << 20, (from + end) / 2),
        ] {
            let plan = log
                .plan_read_bounded(Offset(from), bytes_max, Offset(bound))
                .unwrap();
            answered += usize::from(plan.answered_by_tail());
            let from_tail = plan.run(&*log.disk()).unwrap();
            log.bypass_tail(true);
            let from_files = log
                .read_bounded(Offset(from), bytes_max, Offset(bound))
                .unwrap();
            log.bypass_tail(false);
            assert_eq!(
                from_tail, from_files,
                "from {from}, {bytes_max} bytes, below {bound}"
            );
        }
    }
    let plan = log.plan_flush().unwrap();
    assert_eq!(
        log.segment_writes(&plan, Path::new("d")).unwrap(),
        plan.segment_writes(&*log.disk(), Path::new("d")).unwrap(),
        "a journaled flush's bytes"
    );
    answered
}

/// `tail_bytes_max`: the tail's bound; small ones cut batches a pending flush still needs.
fn run(steps: &[Step], tail_bytes_max: usize) -> usize {
    let disk = MemDisk::new(7);
    let config = LogConfig {
        retention_bytes: Some(12_000),
        tail_bytes_max,
        ..small_config()
    };
    let mut leader = open(&disk, "leader-0", config.clone());
    let mut follower = open(&disk, "follower-0", config);
    let mut answered = 0;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Append(records) => {
                leader
                    .append_as_leader(
                        &batch(&format!("b{i}"), *records, 0, 1_000),
                        LeaderEpoch(0),
                        0,
                    )
                    .unwrap();
                fetch(&leader, &mut follower);
            }
            Step::HighWatermark(eighths) => {
                let hw = share(&leader, *eighths).max(leader.high_watermark());
                leader.set_high_watermark(hw).unwrap();
                let known = hw.min(follower.log_end_offset());
                follower
                    .set_high_watermark(known.max(follower.high_watermark()))
                    .unwrap();
            }
            Step::Truncate(eighths) => {
                let to = share(&follower, *eighths).max(follower.high_watermark());
                follower.truncate_to(to).unwrap();
            }
            Step::Retention => {
                leader.enforce_retention(0).unwrap();
            }
            Step::Flush => {
                leader.flush().unwrap();
                follower.flush().unwrap();
            }
        }
        answered += compare(&mut leader) + compare(&mut follower);
    }
    answered
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_tail_answers_what_the_files_hold(
        steps in prop::collection::vec(step(), 1..40),
        tail_bytes_max in prop::sample::select(vec![0usize, 512, 4_096, log_core::TAIL_BYTES_MAX]),
    ) {
        run(&steps, tail_bytes_max);
    }
}

#[test]
fn a_follower_fetching_right_after_an_append_is_answered_by_the_tail() {
    let steps: Vec<Step> = (0..30).map(|i| Step::Append(1 + i % 7)).collect();
    assert!(
        run(&steps, log_core::TAIL_BYTES_MAX) > 100,
        "the tail answers reads at the log's end"
    );
}
