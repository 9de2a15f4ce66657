//! Helpers shared by the handler tests: a three-replica partition and effect filters.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use replication::{
    Acks, BugSwitches, Config, Effect, FetchRequest, Input, Message, PartitionState,
    ProduceRequest, Replica,
};
use wire::{BrokerId, LeaderEpoch, Offset, PartitionEpoch};

pub const B0: BrokerId = BrokerId(0);
pub const B1: BrokerId = BrokerId(1);
pub const B2: BrokerId = BrokerId(2);

pub fn state(
    leader: BrokerId,
    epoch: i32,
    partition_epoch: i32,
    isr: &[BrokerId],
) -> PartitionState {
    PartitionState {
        leader: Some(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: PartitionEpoch(partition_epoch),
        isr: isr.iter().copied().collect::<BTreeSet<_>>(),
        elr: BTreeSet::new(),
        replicas: vec![B0, B1, B2],
    }
}

pub fn config(id: BrokerId) -> Config {
    let mut config = Config::new(id);
    config.replica_lag_time_max_ms = 1_000;
    config
}

/// Broker 0 leading epoch 1 with ISR {0, 1, 2}.
pub fn leader() -> Replica {
    let mut replica = Replica::new(config(B0), BugSwitches::default());
    replica.step(0, Input::PartitionState(state(B0, 1, 1, &[B0, B1, B2])));
    replica
}

pub fn produce(replica: &mut Replica, request_id: u64, acks: Acks) -> Vec<Effect> {
    let request = ProduceRequest {
        request_id,
        acks,
        record_count: 1,
        payload: vec![1],
    };
    replica.step(0, Input::Produce(request))
}

/// Flushes whatever the last effects asked to flush.
pub fn complete_flushes(replica: &mut Replica, effects: &[Effect]) -> Vec<Effect> {
    let mut out = Vec::new();
    for effect in effects {
        if let Effect::Flush { up_to, seq } = effect {
            out.extend(replica.step(
                0,
                Input::FlushCompleted {
                    seq: *seq,
                    up_to: *up_to,
                },
            ));
        }
    }
    out
}

pub fn fetch(
    replica: &mut Replica,
    now_ms: u64,
    from: BrokerId,
    offset: i64,
    epoch: i32,
) -> Vec<Effect> {
    let request = FetchRequest {
        replica_id: from,
        fetch_offset: Offset(offset),
        current_leader_epoch: LeaderEpoch(epoch),
        last_fetched_epoch: if offset == 0 {
            LeaderEpoch::NONE
        } else {
            LeaderEpoch(epoch)
        },
    };
    replica.step(
        now_ms,
        Input::Message {
            from,
            message: Message::Fetch(request),
        },
    )
}

pub fn replies(effects: &[Effect]) -> Vec<(u64, Result<Offset, replication::Error>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Reply { request_id, result } => Some((*request_id, *result)),
            _ => None,
        })
        .collect()
}
