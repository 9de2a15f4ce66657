//! Partition decisions of the active controller, as pure functions of the image: which records a
//! fence, an unfence, a registration, an offline report or an AlterPartition turns into. The image
//! validates them again on apply. Which replica may be elected is not decided here but by
//! `replication::election`, the one election rule, which these functions feed from the image.

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, PartitionState, RecordBatch, TopicConfig};
use replication::election::{self, ElectionInput, RequestedElection};
use std::collections::BTreeSet;
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
/// KIP-112's offline log directory per partition): marked offline, so no election picks it until
/// its repair is reported (`replica_online_batch`) or the broker registers a new incarnation, and
/// out of the ISR, electing a successor if it led.
/// Like any ISR shrink it may join the ELR: what it flushed is still on its disk (a failed write
/// or fsync loses only unflushed bytes), and corruption found at restart makes the broker
/// register unclean, which empties its ELR places. Empty when already marked or not a replica.
pub fn replica_offline_batch(
    image: &MetadataImage,
    broker: BrokerId,
    tp: &TopicPartition,
    bugs: HistoricBugs,
) -> RecordBatch {
    let batch = partition_changes(image, |candidate, config, state| {
        if candidate != tp || !state.replicas.contains(&broker) || state.offline.contains(&broker) {
            return None;
        }
        let mut marked = state.clone();
        marked.offline.push(broker);
        marked.offline.sort();
        let next = if state.isr.contains(&broker) {
            shrink_and_elect(image, config, &marked, broker, bugs)
        } else {
            bump_epochs(state, marked)
        };
        assert!(next.offline.contains(&broker) && !next.isr.contains(&broker));
        Some(next)
    });
    assert!(batch.len() <= 1, "one partition changes");
    batch
}

/// The batch returning `broker`'s repaired copy of `tp` to service without a restart (its
/// partition reopened and verified the log once the disk answered again): the offline mark is
/// cleared, so it may follow and rejoin the ISR through the leader's AlterPartition. A copy whose
/// repair set the log aside (`intact == false`: flushed bytes lost) also leaves the ELR, as an
/// unclean registration does. A leaderless partition elects with the one rule, which may now
/// pick the returning copy (from the ELR when intact). Empty when the copy is not marked.
pub fn replica_online_batch(
    image: &MetadataImage,
    broker: BrokerId,
    tp: &TopicPartition,
    intact: bool,
) -> RecordBatch {
    let live = live_brokers(image, None);
    let batch = partition_changes(image, |candidate, config, state| {
        if candidate != tp || !state.offline.contains(&broker) {
            return None;
        }
        assert!(
            !state.isr.contains(&broker),
            "an offline copy is never in the ISR"
        );
        let mut next = state.clone();
        next.offline.retain(|b| *b != broker);
        if !intact {
            next.elr.retain(|b| *b != broker);
        }
        let next = elect(config, next, &live);
        assert!(!next.offline.contains(&broker));
        Some(bump_epochs(state, next))
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
    let mut live = live_brokers(image, None);
    live.insert(broker);
    let mut batch = vec![MetadataRecord::UnfenceBroker { broker }];
    batch.extend(partition_changes(image, |_, config, state| {
        if state.leader.is_some() || !state.replicas.contains(&broker) {
            return None;
        }
        let next = elect(config, state.clone(), &live);
        next.leader.map(|_| bump_epochs(state, next))
    }));
    batch
}

/// The batch electing a leader for every leaderless partition that has an eligible live
/// replica now (the one rule: clean from the ISR or ELR, unclean where the topic allows).
/// Elections are otherwise made by the batch of the event that enables them (an unfence, a
/// registration, a shrink, a copy back online), each built from the applied image while other
/// proposals may be in flight: two such batches built from the same not yet updated image can
/// both miss (seed 164246: an ELR member's unfence built before an unclean registration emptied
/// the ISR was applied, and the registration's batch had been built while that member was still
/// fenced). The active controller proposes this sweep when nothing it proposed is pending, so
/// an eligible replica is elected at the latest a tick after the image settles. Fires no
/// probes: most leaderless partitions have nobody eligible, tick after tick.
pub fn leaderless_batch(image: &MetadataImage) -> RecordBatch {
    let live = live_brokers(image, None);
    partition_changes(image, |_, config, state| {
        if state.leader.is_some() {
            return None;
        }
        let next = elect_with(config, state.clone(), &live, election::elect_leader).ok()?;
        assert!(next.leader.is_some(), "an election that picked someone");
        Some(bump_epochs(state, next))
    })
}

/// The batch re-registering `broker` with a new incarnation: like a fence (the old process's
/// leaderships and ISR memberships end) followed by the registration, which leaves it fenced.
/// The new process reopened its logs, so the old one's offline marks are cleared; an unclean
/// registration (flushed bytes lost) also leaves every ELR.
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
    let live = live_brokers(image, Some(broker));
    let mut batch = if restarted {
        partition_changes(image, |_, config, state| {
            let in_isr = state.isr.contains(&broker);
            let leaves_elr = !clean && state.elr.contains(&broker);
            if !clean && (in_isr_or_elr(state, broker)) {
                buggify::probe!("controller.register.unclean_shutdown_replica");
            }
            let offline = state.offline.contains(&broker);
            if !in_isr && !leaves_elr && !offline {
                return None;
            }
            let mut next = if in_isr {
                shrink_and_elect(image, config, state, broker, bugs)
            } else {
                state.clone()
            };
            next.offline.retain(|b| *b != broker);
            if !clean {
                // Also when the shrink above just moved it from the ISR into the ELR.
                next.elr.retain(|b| *b != broker);
                // An emptied ELR may allow an unclean election the ELR was holding back.
                next = elect(config, next, &live);
            }
            assert!(!next.offline.contains(&broker) && !next.isr.contains(&broker));
            Some(bump_epochs(state, next))
        })
    } else {
        Vec::new()
    };
    batch.push(registration);
    batch
}

/// Unfenced brokers, but `excluded` (the broker a batch takes out of service).
fn live_brokers(image: &MetadataImage, excluded: Option<BrokerId>) -> BTreeSet<BrokerId> {
    let mut live: BTreeSet<BrokerId> = image.brokers_unfenced().into_iter().collect();
    if let Some(broker) = excluded {
        live.remove(&broker);
    }
    live
}

/// Whether `broker` is in the partition's ISR or ELR.
fn in_isr_or_elr(state: &PartitionState, broker: BrokerId) -> bool {
    state.isr.contains(&broker) || state.elr.contains(&broker)
}

/// Elects a leader for `next` if it has none, with the one election rule
/// (`replication::election`): clean from the ISR, else from the ELR, else uncleanly where the
/// topic allows and the ELR is empty; never a fenced (`live` lacks it) or offline replica.
/// Leaves `next` leaderless when nobody is eligible. Epochs are the caller's.
fn elect(config: &TopicConfig, next: PartitionState, live: &BTreeSet<BrokerId>) -> PartitionState {
    if next.leader.is_some() {
        return next;
    }
    elect_with(config, next, live, election::elect_leader).unwrap_or_else(|unchanged| {
        // Nobody eligible: the states the simulator must reach for the election rule's
        // offline and unclean limits to matter.
        let live_replica = |b: &BrokerId| live.contains(b) && !unchanged.offline.contains(b);
        if unchanged
            .elr
            .iter()
            .any(|b| live.contains(b) && unchanged.offline.contains(b))
        {
            buggify::probe!("controller.election.offline_elr_member_passed_over");
        }
        if unchanged.elr.is_empty()
            && !config.unclean_leader_election
            && unchanged.replicas.iter().any(live_replica)
        {
            buggify::probe!("controller.election.unclean_refused");
        }
        unchanged
    })
}

/// `next` with the leader `choose` picks from the election rule's input (the controller's own
/// rule, or an administrator's election) and the ISR and ELR that election leaves; `Err` with
/// `next` unchanged when it picks nobody. Epochs are the caller's.
fn elect_with(
    config: &TopicConfig,
    mut next: PartitionState,
    live: &BTreeSet<BrokerId>,
    choose: impl FnOnce(&ElectionInput<'_>) -> Option<(election::ElectionKind, BrokerId)>,
) -> Result<PartitionState, PartitionState> {
    let isr: BTreeSet<BrokerId> = next.isr.iter().copied().collect();
    let elr: BTreeSet<BrokerId> = next.elr.iter().copied().collect();
    let offline: BTreeSet<BrokerId> = next.offline.iter().copied().collect();
    let input = ElectionInput {
        replicas: &next.replicas,
        isr: &isr,
        elr: &elr,
        live,
        offline: &offline,
        unclean_allowed: config.unclean_leader_election,
        // The controller's bug switch only drops the ELR (`HistoricBugs::no_elr`).
        last_replica_standing_bug: false,
    };
    let Some((kind, leader)) = choose(&input) else {
        return Err(next);
    };
    match kind {
        election::ElectionKind::Clean => {}
        election::ElectionKind::Elr => buggify::probe!("controller.election.from_elr"),
        election::ElectionKind::Unclean => buggify::probe!("controller.election.unclean"),
    }
    let (isr_after, elr_after) = election::isr_after_election(kind, leader, &isr, &elr);
    // Records keep the ISR's order (replica order at creation, sorted after AlterPartition).
    next.isr.retain(|b| isr_after.contains(b));
    if next.isr.is_empty() {
        next.isr.push(leader);
    }
    next.elr = elr_after.into_iter().collect();
    next.leader = Some(leader);
    assert!(next.isr.len() == isr_after.len() && next.isr.contains(&leader));
    assert!(!next.offline.contains(&leader) && live.contains(&leader));
    Ok(next)
}

/// What became of one partition of an administrator's election (KIP-460's per-partition
/// error codes; `Elected` is NONE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionOutcome {
    /// The new leader leads in this epoch.
    Elected {
        /// The partition's leader epoch after the election.
        leader_epoch: LeaderEpoch,
    },
    /// ELECTION_NOT_NEEDED: the preferred replica leads already (preferred), or the partition
    /// has a leader (unclean).
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica may not lead (fenced, offline, or
    /// outside the ISR).
    PreferredLeaderNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica may lead.
    EligibleLeadersNotAvailable,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    UnknownTopicOrPartition,
}

/// The election an administrator asks for on `tp` (Kafka's `ReplicationControlManager
/// .electLeader`): the record moving its leadership, or why none is made. The candidate comes
/// from the one election rule (`replication::election::elect_requested`).
pub fn requested_election(
    image: &MetadataImage,
    tp: &TopicPartition,
    requested: RequestedElection,
) -> Result<MetadataRecord, ElectionOutcome> {
    let unknown = ElectionOutcome::UnknownTopicOrPartition;
    let topic = image.topics().get(&tp.topic).ok_or(unknown)?;
    let state = image.partition(tp).ok_or(unknown)?;
    let not_needed = match requested {
        RequestedElection::Preferred => {
            state.leader.is_some() && state.leader == state.replicas.first().copied()
        }
        RequestedElection::Unclean => state.leader.is_some(),
    };
    if not_needed {
        return Err(ElectionOutcome::NotNeeded);
    }
    let refused = match requested {
        RequestedElection::Preferred => ElectionOutcome::PreferredLeaderNotAvailable,
        RequestedElection::Unclean => ElectionOutcome::EligibleLeadersNotAvailable,
    };
    let live = live_brokers(image, None);
    let next = elect_with(&topic.config, state.clone(), &live, |input| {
        election::elect_requested(input, state.leader, requested)
    })
    .map_err(|_| refused)?;
    if next.leader == state.leader {
        return Err(refused);
    }
    let next = bump_epochs(state, next);
    assert!(next.leader_epoch.0 == state.leader_epoch.0 + 1);
    Ok(MetadataRecord::PartitionChange {
        topic: tp.topic.clone(),
        topic_id: topic.topic_id,
        partition: tp.partition,
        state: next,
    })
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
    // KIP-841's ineligible replicas: fenced, or (KIP-112) their copy reported failed.
    let eligible = |b: &BrokerId| {
        current.replicas.contains(b) && image.is_unfenced(*b) && !current.offline.contains(b)
    };
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
    if isr.len() < current.isr.len() {
        buggify::probe!("controller.isr.shrunk");
    } else if isr.len() > current.isr.len() {
        buggify::probe!("controller.isr.expanded");
    }
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

/// KIP-966 bookkeeping through the one election module: while the ISR is at least min ISR no
/// ELR is needed; below it, replicas that leave the ISR join the ELR (they hold everything
/// committed so far). Ascending, as records keep it.
fn elr_after(
    config: &TopicConfig,
    current: &PartitionState,
    isr: &[BrokerId],
    no_elr: bool,
) -> Vec<BrokerId> {
    let min_isr = usize::try_from(config.min_insync_replicas).expect("validated positive");
    // Kafka's effective min ISR: a topic may have fewer replicas than min ISR.
    let min_isr = replication::isr::min_insync_replicas_effective(min_isr, current.replicas.len());
    let old_isr: BTreeSet<BrokerId> = current.isr.iter().copied().collect();
    let new_isr: BTreeSet<BrokerId> = isr.iter().copied().collect();
    let elr: BTreeSet<BrokerId> = current.elr.iter().copied().collect();
    election::elr_after_isr_change(&old_isr, &new_isr, &elr, min_isr, no_elr)
        .into_iter()
        .collect()
}

/// Removes `broker` (being fenced, marked offline or re-registered) from the ISR and, if it led,
/// elects a successor among the other unfenced replicas, or nobody (see [`elect`]).
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
    let mut next = state.clone();
    next.elr = elr_after(config, state, &isr, bugs.no_elr);
    next.isr = isr;
    if next
        .leader
        .is_some_and(|leader| !next.isr.contains(&leader))
    {
        next.leader = None;
        next = elect(config, next, &live_brokers(image, Some(broker)));
    }
    assert!(next.leader != Some(broker));
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
