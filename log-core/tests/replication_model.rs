//! Two replicas driven like Kafka replication (leader appends, follower truncates by
//! OffsetsForLeaderEpoch then fetches, leader changes, crashes). Property (KIP-101/KIP-279):
//! after a follower's truncate-and-fetch round its log is a prefix of the leader's, record for
//! record, and replicas converge.
#![allow(clippy::unwrap_used)]

mod common;

use common::batch;
use log_core::{LeaderEpoch, MemDisk, Offset, PartitionLog};
use proptest::prelude::*;
use std::path::Path;

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Replicate,
    Flush(bool),
    SwitchLeader,
    Crash(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u8..5).prop_map(Op::Append),
        4 => Just(Op::Replicate),
        2 => any::<bool>().prop_map(Op::Flush),
        1 => Just(Op::SwitchLeader),
        1 => any::<bool>().prop_map(Op::Crash),
    ]
}

struct Replica {
    disk: MemDisk,
    log: PartitionLog,
}

fn open(disk: &MemDisk) -> PartitionLog {
    PartitionLog::open(disk.as_disk(), Path::new("p-0"), common::small_config(), 0).unwrap()
}

fn all(log: &PartitionLog) -> Vec<common::Rec> {
    common::read_all(log, log.log_start_offset())
}

/// One follower round: truncate to the divergence point, then fetch to the leader's end.
fn replicate(leader: &PartitionLog, follower: &mut PartitionLog) {
    let before = format!(
        "leader epochs {:?} leo {}, follower epochs {:?} leo {} rp {}",
        leader.epoch_entries(),
        leader.log_end_offset(),
        follower.epoch_entries(),
        follower.log_end_offset(),
        follower.recovery_point()
    );
    // KIP-279: ask with the follower's latest epoch; while the leader answers with an older
    // epoch the follower does not have, truncate and ask again with the follower's epoch below
    // it (strictly decreasing, so this ends).
    let mut query = follower.latest_epoch();
    while let Some(follower_epoch) = query {
        let leo = follower.log_end_offset();
        match leader.end_offset_for_epoch(follower_epoch) {
            None => {
                follower.truncate_to(Offset::ZERO).unwrap();
                query = None;
            }
            Some((epoch, end)) if epoch == follower_epoch => {
                follower.truncate_to(end.min(leo)).unwrap();
                query = None;
            }
            Some((epoch, end)) => {
                let own = follower.end_offset_for_epoch(epoch);
                let own_end = own.map_or(Offset::ZERO, |(_, e)| e);
                follower.truncate_to(end.min(own_end).min(leo)).unwrap();
                query = own.map(|(e, _)| e).filter(|e| *e < epoch);
                assert!(
                    query.is_none_or(|q| q < follower_epoch),
                    "queries go back in epochs"
                );
            }
        }
    }
    for _ in 0..1000 {
        let from = follower.log_end_offset();
        if from >= leader.log_end_offset() {
            break;
        }
        let fetched = leader.read(from, 700).unwrap();
        follower.append_as_follower(&fetched.bytes, 0).unwrap();
    }
    let follower_records = all(follower);
    let leader_records = all(leader);
    assert_eq!(
        follower_records, leader_records,
        "after a round the follower mirrors the leader; before: {before}"
    );
}

fn run(seed: u64, ops: Vec<Op>) {
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| {
            let disk = MemDisk::new(seed.wrapping_add(i));
            let log = open(&disk);
            Replica { disk, log }
        })
        .collect();
    let mut leader = 0usize;
    let mut epoch = LeaderEpoch(0);
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append(n) => {
                let bytes = batch(&format!("s{step}-e{}", epoch.0), n as usize, 0, step as i64);
                replicas[leader]
                    .log
                    .append_as_leader(&bytes, epoch, 0)
                    .unwrap();
            }
            Op::Replicate => {
                let (a, b) = replicas.split_at_mut(1);
                let (l, f) = if leader == 0 {
                    (&a[0], &mut b[0])
                } else {
                    (&b[0], &mut a[0])
                };
                replicate(&l.log, &mut f.log);
            }
            Op::Flush(on_leader) => {
                let index = if on_leader { leader } else { 1 - leader };
                replicas[index].log.flush().unwrap();
            }
            Op::SwitchLeader => {
                leader = 1 - leader;
                epoch = LeaderEpoch(epoch.0 + 1);
                let log = &mut replicas[leader].log;
                let end = log.log_end_offset();
                log.assign_epoch_start(epoch, end);
            }
            Op::Crash(on_leader) => {
                let index = if on_leader { leader } else { 1 - leader };
                replicas[index].disk.crash();
                replicas[index].log = open(&replicas[index].disk);
                if on_leader {
                    // A restarted leader comes back through an election: a new epoch.
                    epoch = LeaderEpoch(epoch.0 + 1);
                    let log = &mut replicas[leader].log;
                    let end = log.log_end_offset();
                    log.assign_epoch_start(epoch, end);
                }
            }
        }
        for replica in &replicas {
            replica.log.check_invariants();
        }
    }
    let (a, b) = replicas.split_at_mut(1);
    let (l, f) = if leader == 0 {
        (&a[0], &mut b[0])
    } else {
        (&b[0], &mut a[0])
    };
    replicate(&l.log, &mut f.log);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn followers_converge_by_leader_epochs(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..120)) {
        run(seed, ops);
    }
}
