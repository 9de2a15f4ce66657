//! The controller's leader election for one partition (clean from the ISR, from the ELR of
//! KIP-966, or unclean), and the ISR/ELR bookkeeping around it. Pure functions over sets.
//!
//! This is the one owner of "which replica may be elected": the controller crate turns its
//! metadata image into an [`ElectionInput`] and calls these functions to build its records, and the
//! model checker's tiny controller (`tests/model.rs`) calls the same ones. Do not mirror the rule
//! elsewhere: a second copy drifted once (unclean election while an ELR member could return).

use std::collections::BTreeSet;
use wire::BrokerId;

use crate::isr::REPLICAS_MAX;

/// How a leader was chosen: decides what the new ISR may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElectionKind {
    /// From the live ISR: nothing committed is lost.
    Clean,
    /// From the live ELR while no ISR member is alive (KIP-966): nothing committed is lost.
    Elr,
    /// Any live replica: committed records may be lost. Only with `unclean.leader.election.enable`
    /// or the `last_replica_standing` bug switch.
    Unclean,
}

/// What the controller knows when it elects.
#[derive(Clone, Debug)]
pub struct ElectionInput<'a> {
    /// The assignment in preference order: the first eligible replica wins.
    pub replicas: &'a [BrokerId],
    /// The committed ISR.
    pub isr: &'a BTreeSet<BrokerId>,
    /// The committed ELR.
    pub elr: &'a BTreeSet<BrokerId>,
    /// Brokers that are registered and unfenced.
    pub live: &'a BTreeSet<BrokerId>,
    /// Replicas whose copy failed (a disk error, KIP-112's offline log directory, reported by the
    /// broker itself) and whose broker has not registered a new incarnation since: never elected,
    /// whichever set they are in, because their process can neither lead nor follow. They may
    /// stay in the ELR (their flushed bytes are intact), where they still block unclean elections.
    pub offline: &'a BTreeSet<BrokerId>,
    /// The topic's `unclean.leader.election.enable`.
    pub unclean_allowed: bool,
    /// The pre-KIP-966 bug: with no live ISR member, any live replica may lead (the last ISR
    /// member standing and the ELR are not respected).
    pub last_replica_standing_bug: bool,
}

/// Every replica the controller may elect, in preference order, with the election's kind; `None`
/// when the partition must stay offline. A candidate is live and not offline; the first non-empty
/// of ISR, ELR and (only while the ELR is empty, KIP-966: an ELR member may still come back, and
/// only where the topic allows) every replica wins.
pub fn eligible_leaders(input: &ElectionInput<'_>) -> Option<(ElectionKind, Vec<BrokerId>)> {
    assert!(input.replicas.len() <= REPLICAS_MAX);
    assert!(
        input.isr.iter().all(|m| input.replicas.contains(m)),
        "ISR outside replicas"
    );
    assert!(input.isr.is_disjoint(input.elr), "ISR and ELR overlap");
    let pick = |set: &BTreeSet<BrokerId>| -> Vec<BrokerId> {
        let replicas = input.replicas.iter().copied();
        replicas
            .filter(|r| set.contains(r) && input.live.contains(r) && !input.offline.contains(r))
            .collect()
    };
    let clean = pick(input.isr);
    if !clean.is_empty() {
        return Some((ElectionKind::Clean, clean));
    }
    if !input.last_replica_standing_bug {
        let from_elr = pick(input.elr);
        if !from_elr.is_empty() {
            return Some((ElectionKind::Elr, from_elr));
        }
    }
    // The bug ignores the ELR altogether; without it an ELR member, even a fenced or offline
    // one, holds every committed record and may return, so nobody is elected uncleanly meanwhile.
    let unclean_ok =
        (input.unclean_allowed && input.elr.is_empty()) || input.last_replica_standing_bug;
    if unclean_ok {
        let all: BTreeSet<BrokerId> = input.replicas.iter().copied().collect();
        let any = pick(&all);
        if !any.is_empty() {
            return Some((ElectionKind::Unclean, any));
        }
    }
    None
}

/// The replica the controller elects: the first eligible in preference order.
pub fn elect_leader(input: &ElectionInput<'_>) -> Option<(ElectionKind, BrokerId)> {
    let (kind, eligible) = eligible_leaders(input)?;
    let leader = *eligible
        .first()
        .expect("eligible_leaders never returns an empty list");
    assert!(input.live.contains(&leader));
    assert!(
        !input.offline.contains(&leader),
        "an offline copy is never elected"
    );
    Some((kind, leader))
}

/// An election an administrator asks for (KIP-460's ElectLeaders), beside the controller's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestedElection {
    /// Move the leadership to the first replica of the assignment, only cleanly (from the ISR,
    /// or from the ELR while the ISR is empty).
    Preferred,
    /// Give a leaderless partition a leader even if committed records are lost: the clean
    /// candidates first, then any live replica, whatever the topic's
    /// `unclean.leader.election.enable` and the ELR say (the administrator chose the loss).
    Unclean,
}

/// The replica an administrator's `election` makes leader, with its kind, or `None` when the
/// election cannot happen (KIP-460's PREFERRED_LEADER_NOT_AVAILABLE or
/// ELIGIBLE_LEADERS_NOT_AVAILABLE). Whether it is needed at all (the preferred replica already
/// leads; an unclean election for a partition that has a leader) is the caller's question.
/// Candidates obey the rule of [`eligible_leaders`]: live and not offline. As Kafka's
/// `PartitionChangeBuilder`: a preferred election takes the preferred replica if it may lead
/// cleanly, else, for a leaderless partition, the first clean candidate.
pub fn elect_requested(
    input: &ElectionInput<'_>,
    current_leader: Option<BrokerId>,
    election: RequestedElection,
) -> Option<(ElectionKind, BrokerId)> {
    let clean = ElectionInput {
        unclean_allowed: false,
        last_replica_standing_bug: false,
        ..input.clone()
    };
    let candidates = eligible_leaders(&clean);
    let chosen = match election {
        RequestedElection::Preferred => {
            let preferred = *input.replicas.first()?;
            let (kind, eligible) = candidates?;
            if eligible.contains(&preferred) {
                Some((kind, preferred))
            } else if current_leader.is_none() {
                eligible.first().map(|first| (kind, *first))
            } else {
                None
            }
        }
        RequestedElection::Unclean => candidates
            .and_then(|(kind, eligible)| eligible.first().map(|first| (kind, *first)))
            .or_else(|| {
                let mut live = input
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| input.live.contains(r) && !input.offline.contains(r));
                live.next().map(|first| (ElectionKind::Unclean, first))
            }),
    };
    if let Some((_, leader)) = chosen {
        assert!(input.live.contains(&leader) && !input.offline.contains(&leader));
        assert!(input.replicas.contains(&leader), "leaders are replicas");
    }
    chosen
}

/// The ISR and ELR after electing `leader` with `kind`: a clean election keeps the ISR; an ELR or
/// unclean election restarts the ISR at the leader alone (only it is known to hold the log).
pub fn isr_after_election(
    kind: ElectionKind,
    leader: BrokerId,
    isr: &BTreeSet<BrokerId>,
    elr: &BTreeSet<BrokerId>,
) -> (BTreeSet<BrokerId>, BTreeSet<BrokerId>) {
    let (new_isr, mut new_elr) = match kind {
        ElectionKind::Clean => (isr.clone(), elr.clone()),
        ElectionKind::Elr => (BTreeSet::from([leader]), elr.clone()),
        ElectionKind::Unclean => (BTreeSet::from([leader]), BTreeSet::new()),
    };
    new_elr.remove(&leader);
    assert!(new_isr.contains(&leader), "the leader is in its ISR");
    assert!(new_isr.is_disjoint(&new_elr));
    (new_isr, new_elr)
}

/// The ELR after the ISR changes from `old_isr` to `new_isr` (KIP-966): while the new ISR is at
/// least `min_isr`, the ELR empties (the ISR alone guards committed data); once it falls below,
/// members leaving the ISR join the ELR, because acks=all stops committing at that point so they
/// hold every committed record. Rejoining members leave the ELR. With the `last_replica_standing`
/// bug there is no ELR at all.
pub fn elr_after_isr_change(
    old_isr: &BTreeSet<BrokerId>,
    new_isr: &BTreeSet<BrokerId>,
    elr: &BTreeSet<BrokerId>,
    min_isr: usize,
    last_replica_standing_bug: bool,
) -> BTreeSet<BrokerId> {
    assert!(min_isr >= 1);
    if last_replica_standing_bug || new_isr.len() >= min_isr {
        return BTreeSet::new();
    }
    let mut new_elr: BTreeSet<BrokerId> = elr.difference(new_isr).copied().collect();
    new_elr.extend(old_isr.difference(new_isr).copied());
    assert!(new_elr.is_disjoint(new_isr));
    new_elr
}
