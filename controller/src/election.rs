//! Partition decisions of the active controller, as pure functions of the image: which records a
//! fence, an unfence or an AlterPartition turns into. The image validates them again on apply.

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, PartitionState, RecordBatch, TopicConfig};
use wire::{BrokerId, LeaderEpoch, PartitionEpoch, TopicPartition};

/// Switches that reintroduce historic bugs so checkers can prove they catch them. Off in
/// production; only tests and the simulator turn them on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoricBugs {
    /// Before KIP-966: a shrink below min ISR forgets the removed replicas (no ELR), so the
    /// last replica standing cannot be told from a stale one.
    pub no_elr: bool,
}

/// The batch fencing `broker`: first every partition change that moves it out of ISRs and
/// leaderships (electing new leaders), then the fence itself.
pub fn fence_batch(image: &MetadataImage, broker: BrokerId, bugs: HistoricBugs) -> RecordBatch {
    assert!(
        image.is_unfenced(broker),
        "only an unfenced broker is fenced"
    );
    let mut batch = partition_changes(image, |_, config, state| {
        state
            .isr
            .contains(&broker)
            .then(|| shrink_and_elect(image, config, state, broker, bugs))
    });
    batch.push(MetadataRecord::FenceBroker { broker });
    batch
}

/// The batch taking `broker`'s failed copy of `tp` out of service (its log hit a disk error,
/// KIP-112's offline log directory per partition): out of the ISR, electing a successor if it
/// led. Like any ISR shrink it may join the ELR: what it flushed is still on its disk (a failed
/// write or fsync loses only unflushed bytes), and corruption found at restart makes the broker
/// register unclean, which empties its ELR places. Empty when it is not in the ISR.
pub fn replica_offline_batch(
    image: &MetadataImage,
    broker: BrokerId,
    tp: &TopicPartition,
    bugs: HistoricBugs,
) -> RecordBatch {
    let batch = partition_changes(image, |candidate, config, state| {
        (candidate == tp && state.isr.contains(&broker))
            .then(|| shrink_and_elect(image, config, state, broker, bugs))
    });
    assert!(batch.len() <= 1, "one partition changes");
    batch
}

/// The batch unfencing `broker`: the unfence, then leaderless partitions it may now lead
/// (cleanly from the ELR, or uncleanly where the topic allows).
pub fn unfence_batch(image: &MetadataImage, broker: BrokerId) -> RecordBatch {
    assert!(
        image.brokers().get(&broker).is_some_and(|b| b.fenced),
        "only a fenced broker"
    );
    let mut batch = vec![MetadataRecord::UnfenceBroker { broker }];
    batch.extend(partition_changes(image, |_, config, state| {
        let eligible = state.elr.contains(&broker)
            || (config.unclean_leader_election
                && state.elr.is_empty()
                && state.replicas.contains(&broker));
        (state.leader.is_none() && eligible).then(|| lead_alone(state, broker))
    }));
    batch
}

/// The batch re-registering `broker` with a new incarnation: like a fence (the old process's
/// leaderships and ISR memberships end) followed by the registration, which leaves it fenced.
pub fn register_batch(
    image: &MetadataImage,
    registration: MetadataRecord,
    bugs: HistoricBugs,
) -> RecordBatch {
    let MetadataRecord::RegisterBroker {
        broker,
        incarnation,
        clean_shutdown,
        ..
    } = &registration
    else {
        panic!("register_batch takes a RegisterBroker record");
    };
    let (broker, clean) = (*broker, *clean_shutdown);
    let restarted = image
        .brokers()
        .get(&broker)
        .is_some_and(|b| b.incarnation != *incarnation);
    let mut batch = if restarted {
        partition_changes(image, |_, config, state| {
            let in_isr = state.isr.contains(&broker);
            if !in_isr && (clean || !state.elr.contains(&broker)) {
                return None;
            }
            let mut next = if in_isr {
                shrink_and_elect(image, config, state, broker, bugs)
            } else {
                state.clone()
            };
            if !clean {
                next.elr.retain(|b| *b != broker);
                elect_unclean_if_allowed(image, config, &mut next, broker);
            }
            Some(bump_epochs(state, next))
        })
    } else {
        Vec::new()
    };
    batch.push(registration);
    batch
}

/// With the ELR emptied and no leader, the topic's unclean election setting decides: elect the
/// first unfenced replica (other than `excluded`) or stay offline.
fn elect_unclean_if_allowed(
    image: &MetadataImage,
    config: &TopicConfig,
    next: &mut PartitionState,
    excluded: BrokerId,
) {
    if next.leader.is_some() || !next.elr.is_empty() || !config.unclean_leader_election {
        return;
    }
    let candidate = next
        .replicas
        .iter()
        .copied()
        .find(|b| *b != excluded && image.is_unfenced(*b));
    if let Some(leader) = candidate {
        next.leader = Some(leader);
        next.isr = vec![leader];
    }
}

/// An AlterPartition request from a partition leader.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    /// The partition.
    pub partition: TopicPartition,
    /// The requesting broker: must be the current leader.
    pub broker: BrokerId,
    /// The leader epoch the requester leads in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the requester last saw; a stale one is refused.
    pub partition_epoch: PartitionEpoch,
    /// The ISR the leader wants.
    pub isr: Vec<BrokerId>,
}

/// Validates an AlterPartition against the image and returns the change record to propose.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
) -> Result<MetadataRecord, ControllerError> {
    let tp = &request.partition;
    let unknown = || ControllerError::UnknownTopicOrPartition(tp.to_string());
    let topic = image.topics().get(&tp.topic).ok_or_else(unknown)?;
    let current = image.partition(tp).ok_or_else(unknown)?;
    if current.leader != Some(request.broker) || current.leader_epoch != request.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            partition: tp.clone(),
            broker: request.broker,
            requested: request.leader_epoch.0,
        });
    }
    if current.partition_epoch != request.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            partition: tp.clone(),
            requested: request.partition_epoch.0,
            current: current.partition_epoch.0,
        });
    }
    let eligible = |b: &BrokerId| current.replicas.contains(b) && image.is_unfenced(*b);
    if let Some(broker) = request.isr.iter().find(|b| !eligible(b)) {
        return Err(ControllerError::IneligibleReplica {
            partition: tp.clone(),
            broker: *broker,
        });
    }
    if !request.isr.contains(&request.broker) {
        return Err(ControllerError::IneligibleReplica {
            partition: tp.clone(),
            broker: request.broker,
        });
    }
    let mut isr = request.isr.clone();
    isr.sort();
    isr.dedup();
    let mut state = current.clone();
    state.elr = elr_after(&topic.config, current, &isr, false);
    state.isr = isr;
    state.partition_epoch = PartitionEpoch(current.partition_epoch.0 + 1);
    assert!(state.leader == current.leader && state.leader_epoch == current.leader_epoch);
    Ok(MetadataRecord::PartitionChange {
        topic: tp.topic.clone(),
        topic_id: topic.topic_id,
        partition: tp.partition,
        state,
    })
}

/// KIP-966 bookkeeping: while the ISR is at least min ISR no ELR is needed; below it, replicas
/// that leave the ISR join the ELR (they hold everything committed so far).
fn elr_after(
    config: &TopicConfig,
    current: &PartitionState,
    isr: &[BrokerId],
    no_elr: bool,
) -> Vec<BrokerId> {
    let min_isr = usize::try_from(config.min_insync_replicas).expect("validated positive");
    if isr.len() >= min_isr || no_elr {
        return Vec::new();
    }
    let mut elr: Vec<BrokerId> = current
        .elr
        .iter()
        .chain(current.isr.iter())
        .copied()
        .filter(|b| !isr.contains(b))
        .collect();
    elr.sort();
    elr.dedup();
    elr
}

/// Removes the fenced `broker` from the ISR and, if it led, elects a successor: the first
/// unfenced ISR member in replica order; else an unfenced ELR member; else, only if the ELR is
/// empty (KIP-966: an ELR member may still return) and the topic allows, uncleanly any unfenced
/// replica; else nobody.
fn shrink_and_elect(
    image: &MetadataImage,
    config: &TopicConfig,
    state: &PartitionState,
    broker: BrokerId,
    bugs: HistoricBugs,
) -> PartitionState {
    assert!(
        state.isr.contains(&broker),
        "only ISR members are shrunk away"
    );
    let isr: Vec<BrokerId> = state.isr.iter().copied().filter(|b| *b != broker).collect();
    let elr = elr_after(config, state, &isr, bugs.no_elr);
    let usable = |b: &&BrokerId| **b != broker && image.is_unfenced(**b);
    let in_order = |set: &[BrokerId]| {
        state
            .replicas
            .iter()
            .find(|b| set.contains(b) && usable(b))
            .copied()
    };
    let mut next = state.clone();
    next.isr = isr.clone();
    next.elr = elr.clone();
    if state.leader.is_some_and(|leader| isr.contains(&leader)) {
        // The leader stays; only the ISR shrank.
    } else if let Some(leader) = in_order(&isr) {
        next.leader = Some(leader);
    } else if let Some(leader) = in_order(&elr) {
        next.leader = Some(leader);
        next.isr = vec![leader];
        next.elr = elr.into_iter().filter(|b| *b != leader).collect();
    } else if let Some(leader) =
        in_order(&state.replicas).filter(|_| config.unclean_leader_election && elr.is_empty())
    {
        next.leader = Some(leader);
        next.isr = vec![leader];
        next.elr = Vec::new();
    } else {
        next.leader = None;
    }
    bump_epochs(state, next)
}

/// The state where `broker` leads alone: elected from the ELR or uncleanly.
fn lead_alone(state: &PartitionState, broker: BrokerId) -> PartitionState {
    assert!(
        state.leader.is_none() && state.isr.is_empty(),
        "only leaderless partitions"
    );
    let mut next = state.clone();
    next.leader = Some(broker);
    next.isr = vec![broker];
    next.elr = if state.elr.contains(&broker) {
        state.elr.iter().copied().filter(|b| *b != broker).collect()
    } else {
        Vec::new() // Unclean: the ELR's guarantee no longer holds, its members may have diverged.
    };
    bump_epochs(state, next)
}

/// Sets `next`'s epochs from `current`'s: one partition epoch step per change, one leader epoch
/// step per leader change (so calling it again on the same pair gives the same result).
fn bump_epochs(current: &PartitionState, mut next: PartitionState) -> PartitionState {
    next.leader_epoch = current.leader_epoch;
    next.last_known_leader = current.last_known_leader;
    if next.leader != current.leader {
        next.leader_epoch = LeaderEpoch(current.leader_epoch.0 + 1);
        if current.leader.is_some() {
            next.last_known_leader = current.leader;
        }
    }
    next.partition_epoch = PartitionEpoch(current.partition_epoch.0 + 1);
    assert!(
        next.partition_epoch > current.partition_epoch && next.leader_epoch >= current.leader_epoch
    );
    next
}

fn partition_changes(
    image: &MetadataImage,
    mut decide: impl FnMut(&TopicPartition, &TopicConfig, &PartitionState) -> Option<PartitionState>,
) -> RecordBatch {
    let mut batch = Vec::new();
    for (name, topic) in image.topics() {
        for (index, state) in topic.partitions.iter().enumerate() {
            let partition = i32::try_from(index).expect("partitions per topic are bounded");
            let tp = TopicPartition {
                topic: name.clone(),
                partition,
            };
            if let Some(next) = decide(&tp, &topic.config, state) {
                batch.push(MetadataRecord::PartitionChange {
                    topic: name.clone(),
                    topic_id: topic.topic_id,
                    partition,
                    state: next,
                });
            }
        }
    }
    batch
}
