//! stateright model of one partition with three replicas, built on the real `Replica`.
//!
//! The model is the driver: it applies the core's effects to per-node logs that keep volatile
//! and durable records apart, carries messages over a lossy, reordering, non-duplicating network
//! (a bounded multiset), and runs a tiny controller (election from the ISR with epochs, ELR per
//! KIP-966, AlterPartition against the partition epoch) with `replication::election`.
// The test measures its own run time for the report; the model itself reads no clock.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use replication::election::{self, ElectionInput, ElectionKind};
use replication::{
    Acks, AlterPartition, Batch, BugSwitches, Config, Effect, Error, Input, Message,
    PartitionState, ProduceRequest, RecoveredLog, Replica, TimerKind,
};
use stateright::{Checker, HasDiscoveries, Model, Property};
use wire::{BrokerId, LeaderEpoch, Offset, PartitionEpoch};

const NODES: usize = 3;
/// What a deleted offset (below a node's log start) holds: no epoch, no record (ids start at 1).
const GONE: (LeaderEpoch, u8) = (LeaderEpoch::NONE, 0);
const LAG_MS_MAX: u64 = 1_000;
/// The tiny controller models no failed copies (the controller's own model does).
static NO_OFFLINE: BTreeSet<BrokerId> = BTreeSet::new();

fn broker(i: usize) -> BrokerId {
    BrokerId(i32::try_from(i).unwrap())
}

fn index(b: BrokerId) -> usize {
    usize::try_from(b.0).unwrap()
}

/// One broker as the driver sees it: the core plus its disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Node {
    replica: Replica,
    /// The log: (epoch, record id) per offset, volatile tail included; [`GONE`] below `start`.
    log: Vec<(LeaderEpoch, u8)>,
    /// The log start: retention deleted everything below it (durably).
    start: usize,
    /// Ghost: this node truncated fully and started over at a leader's log start.
    started_over: bool,
    /// Records below this survive a crash.
    durable: usize,
    /// The latest flush asked for and not completed (a later one subsumes earlier ones).
    flush: Option<(u64, Offset)>,
    timers: BTreeSet<TimerKind>,
    alive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Packet {
    Replica {
        from: usize,
        to: usize,
        message: Message,
    },
    Alter {
        from: usize,
        proposal: AlterPartition,
    },
    AlterResponse {
        to: usize,
        result: Result<PartitionState, Error>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    nodes: Vec<Node>,
    /// In-flight packets, sorted: a multiset, so order of sending is forgotten (reordering).
    net: Vec<Packet>,
    /// The controller's committed partition state and which brokers are unfenced.
    controller: PartitionState,
    live: BTreeSet<BrokerId>,
    now_ms: u64,
    produced: u8,
    leader_changes: u8,
    crashes: u8,
    ticks: u8,
    retentions: u8,
    /// Ghost: acknowledged acks=all records, offset → record id.
    acked: BTreeMap<i64, u8>,
    /// Ghost: an offset was acknowledged twice with different records.
    acked_conflict: bool,
    /// Ghost: which node led each epoch.
    epoch_leaders: BTreeMap<LeaderEpoch, usize>,
    double_leader: bool,
    /// Ghost: each node's HW while leading, by epoch.
    leader_hw: Vec<Option<(LeaderEpoch, Offset)>>,
    hw_decreased: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Produce(usize),
    Deliver(usize),
    Drop(usize),
    Flush(usize),
    FetchTimer(usize),
    Tick,
    Crash(usize),
    Restart(usize),
    Elect(usize),
    Sync(usize),
    /// Retention on a node: its log start moves up to what it holds committed and durable.
    Retention(usize),
}

/// The model's configuration: bounds and bug switches.
#[derive(Clone, Debug)]
struct ReplicationModel {
    bugs: BugSwitches,
    records_max: u8,
    leader_changes_max: u8,
    crashes_max: u8,
    ticks_max: u8,
    /// How many times retention may move a log start.
    retentions_max: u8,
    net_max: usize,
    offsets_for_leader_epoch: bool,
    /// Whether the network may lose packets.
    lossy: bool,
    /// Which nodes may crash.
    crashable: Vec<usize>,
    /// Nodes from this index on stay idle (no partition state, so no fetching) until the
    /// controller names them leader: shrinks the state space where a bug needs only two.
    active: usize,
}

impl ReplicationModel {
    fn clean() -> ReplicationModel {
        ReplicationModel {
            bugs: BugSwitches::default(),
            records_max: 1,
            leader_changes_max: 1,
            crashes_max: 1,
            ticks_max: 0,
            retentions_max: 0,
            net_max: 2,
            offsets_for_leader_epoch: false,
            lossy: false,
            crashable: vec![0, 1, 2],
            active: NODES,
        }
    }

    fn config(&self, i: usize) -> Config {
        let mut config = Config::new(broker(i));
        config.replica_lag_time_max_ms = LAG_MS_MAX;
        config.truncate_via_offsets_for_leader_epoch = self.offsets_for_leader_epoch;
        config
    }

    fn election_input<'a>(&self, s: &'a State) -> ElectionInput<'a> {
        ElectionInput {
            replicas: &s.controller.replicas,
            isr: &s.controller.isr,
            elr: &s.controller.elr,
            live: &s.live,
            offline: &NO_OFFLINE,
            unclean_allowed: false,
            last_replica_standing_bug: self.bugs.last_replica_standing,
        }
    }

    /// Runs one input through node `i`'s core and applies the effects.
    fn step(&self, s: &mut State, i: usize, input: Input) {
        let now_ms = s.now_ms;
        let effects = s.nodes[i].replica.step(now_ms, input);
        s.nodes[i].replica.check_invariants();
        for effect in effects {
            self.apply(s, i, effect);
        }
    }

    fn send(&self, s: &mut State, packet: Packet) {
        if s.net.len() < self.net_max {
            let at = s.net.partition_point(|p| p <= &packet);
            s.net.insert(at, packet);
        }
    }

    fn apply(&self, s: &mut State, i: usize, effect: Effect) {
        match effect {
            Effect::Append(batch) => {
                let node = &mut s.nodes[i];
                assert_eq!(
                    node.log.len(),
                    usize::try_from(batch.base_offset.0).unwrap()
                );
                node.log.push((batch.leader_epoch, batch.payload[0]));
            }
            Effect::TruncateTo(offset) => {
                let node = &mut s.nodes[i];
                let offset = usize::try_from(offset.0).unwrap();
                assert!(offset >= node.start, "truncation below the log start");
                node.log.truncate(offset);
                node.durable = node.durable.min(offset);
            }
            Effect::TruncateFullyAndStartAt(offset) => {
                let node = &mut s.nodes[i];
                let offset = usize::try_from(offset.0).unwrap();
                assert!(
                    offset > node.log.len(),
                    "full truncation only below the start"
                );
                node.log = vec![GONE; offset];
                node.durable = offset;
                node.start = offset;
                node.started_over = true;
            }
            Effect::AssignEpochStart { start, .. } => {
                // The model's log keeps epochs per record; recovery re-derives them.
                assert_eq!(start.0, i64::try_from(s.nodes[i].log.len()).unwrap());
            }
            Effect::Flush { up_to, seq } => s.nodes[i].flush = Some((seq, up_to)),
            Effect::Send { to, message } => {
                self.send(
                    s,
                    Packet::Replica {
                        from: i,
                        to: index(to),
                        message,
                    },
                );
            }
            Effect::SendFetchResponse {
                to,
                mut response,
                read,
            } => {
                let log = &s.nodes[i].log;
                let from = usize::try_from(read.from.0).unwrap();
                let upto = usize::try_from(read.to.0).unwrap();
                assert!(from >= s.nodes[i].start, "a read below the log start");
                let batches = (from..upto).map(|o| Batch {
                    base_offset: Offset(i64::try_from(o).unwrap()),
                    leader_epoch: log[o].0,
                    record_count: 1,
                    payload: vec![log[o].1].into(),
                });
                response.result.as_mut().unwrap().batches = batches.collect();
                let message = Message::FetchResponse(response);
                self.send(
                    s,
                    Packet::Replica {
                        from: i,
                        to: index(to),
                        message,
                    },
                );
            }
            Effect::Reply { request_id, result } => {
                if let Ok(offset) = result {
                    let id = u8::try_from(request_id).unwrap();
                    if let Some(previous) = s.acked.insert(offset.0, id) {
                        s.acked_conflict |= previous != id;
                    }
                }
            }
            Effect::AlterPartition(proposal) => self.send(s, Packet::Alter { from: i, proposal }),
            Effect::SetTimer { timer, .. } => {
                s.nodes[i].timers.insert(timer);
            }
            Effect::CancelTimer(timer) => {
                s.nodes[i].timers.remove(&timer);
            }
        }
    }

    /// Commits a new partition state at the controller (partition epoch + 1).
    fn commit(&self, s: &mut State, mut next: PartitionState) {
        next.partition_epoch = PartitionEpoch(s.controller.partition_epoch.0 + 1);
        s.controller = next;
    }

    /// The controller elects `choice`, one of the live eligible replicas, in a new epoch.
    fn elect(&self, s: &mut State, choice: usize) {
        let (kind, candidates) =
            election::eligible_leaders(&self.election_input(s)).expect("offered only if eligible");
        let leader = broker(choice);
        assert!(candidates.contains(&leader));
        let mut next = s.controller.clone();
        next.leader_epoch = LeaderEpoch(s.controller.leader_epoch.0 + 1);
        let (isr, elr) = election::isr_after_election(kind, leader, &next.isr, &next.elr);
        next.leader = Some(leader);
        next.isr = isr;
        next.elr = elr;
        s.leader_changes += 1;
        self.commit(s, next);
    }

    fn controller_alter(&self, s: &mut State, from: usize, proposal: AlterPartition) {
        let c = &s.controller;
        let valid = c.leader == Some(broker(from))
            && proposal.leader_epoch == c.leader_epoch
            && proposal.partition_epoch == c.partition_epoch
            && proposal.new_isr.is_subset(&s.live);
        let result = if valid {
            let mut next = c.clone();
            next.elr = election::elr_after_isr_change(
                &c.isr,
                &proposal.new_isr,
                &c.elr,
                self.config(0).min_insync_replicas,
                self.bugs.last_replica_standing,
            );
            next.isr = proposal.new_isr;
            self.commit(s, next);
            Ok(s.controller.clone())
        } else {
            Err(Error::InvalidUpdateVersion)
        };
        self.send(s, Packet::AlterResponse { to: from, result });
    }

    fn crash(&self, s: &mut State, i: usize) {
        s.crashes += 1;
        let node = &mut s.nodes[i];
        node.alive = false;
        node.log.truncate(node.durable);
        node.flush = None;
        node.timers.clear();
        // The controller fences the broker: out of the ISR (unless it is the last member).
        s.live.remove(&broker(i));
        if s.controller.isr.contains(&broker(i)) && s.controller.isr.len() > 1 {
            let mut next = s.controller.clone();
            next.isr.remove(&broker(i));
            next.elr = election::elr_after_isr_change(
                &s.controller.isr,
                &next.isr,
                &s.controller.elr,
                self.config(0).min_insync_replicas,
                self.bugs.last_replica_standing,
            );
            self.commit(s, next);
        }
        if s.controller.leader == Some(broker(i)) {
            // Leaderless in a new epoch; `Action::Elect` then picks among the eligible.
            let mut next = s.controller.clone();
            next.leader = None;
            next.leader_epoch = LeaderEpoch(s.controller.leader_epoch.0 + 1);
            self.commit(s, next);
        }
    }

    fn restart(&self, s: &mut State, i: usize) {
        let node = &mut s.nodes[i];
        let mut epochs: Vec<(LeaderEpoch, Offset)> = Vec::new();
        for (o, &(epoch, _)) in node.log.iter().enumerate().skip(node.start) {
            if epochs.last().is_none_or(|&(e, _)| e != epoch) {
                epochs.push((epoch, Offset(i64::try_from(o).unwrap())));
            }
        }
        let end = Offset(i64::try_from(node.log.len()).unwrap());
        let recovered = RecoveredLog {
            log_start_offset: Offset(i64::try_from(node.start).unwrap()),
            log_end_offset: end,
            epochs,
            high_watermark: node.replica.high_watermark().min(end),
        };
        node.replica = Replica::recover(self.config(i), self.bugs, &recovered);
        node.alive = true;
        s.live.insert(broker(i));
    }

    /// Ghost bookkeeping after every action.
    fn observe(&self, s: &mut State) {
        for i in 0..NODES {
            let node = &s.nodes[i];
            if !(node.alive && node.replica.is_leader()) {
                s.leader_hw[i] = None;
                continue;
            }
            let epoch = node.replica.leader_epoch();
            let hw = node.replica.high_watermark();
            if *s.epoch_leaders.entry(epoch).or_insert(i) != i {
                s.double_leader = true;
            }
            if let Some((e, previous)) = s.leader_hw[i] {
                s.hw_decreased |= e == epoch && hw < previous;
            }
            s.leader_hw[i] = Some((epoch, hw));
        }
    }
}

impl Model for ReplicationModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let controller = PartitionState {
            leader: Some(broker(0)),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
            // The third replica starts out of the ISR (a new replica catching up): it can rejoin.
            isr: BTreeSet::from([broker(0), broker(1)]),
            elr: BTreeSet::new(),
            replicas: (0..NODES).map(broker).collect(),
        };
        let nodes = (0..NODES)
            .map(|i| Node {
                replica: Replica::new(self.config(i), self.bugs),
                log: Vec::new(),
                start: 0,
                started_over: false,
                durable: 0,
                flush: None,
                timers: BTreeSet::new(),
                alive: true,
            })
            .collect();
        let mut s = State {
            nodes,
            net: Vec::new(),
            controller: controller.clone(),
            live: (0..NODES).map(broker).collect(),
            now_ms: 0,
            produced: 0,
            leader_changes: 0,
            crashes: 0,
            ticks: 0,
            retentions: 0,
            acked: BTreeMap::new(),
            acked_conflict: false,
            epoch_leaders: BTreeMap::new(),
            double_leader: false,
            leader_hw: vec![None; NODES],
            hw_decreased: false,
        };
        for i in 0..self.active {
            self.step(&mut s, i, Input::PartitionState(controller.clone()));
        }
        self.observe(&mut s);
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, node) in s.nodes.iter().enumerate() {
            if !node.alive {
                if s.crashes > 0 {
                    actions.push(Action::Restart(i));
                }
                continue;
            }
            if s.produced < self.records_max && node.replica.is_leader() {
                actions.push(Action::Produce(i));
            }
            if node.flush.is_some() {
                actions.push(Action::Flush(i));
            }
            // Timeouts outlast network delays: a retransmission only fires when nothing of the
            // node's is in flight (a lost packet leaves nothing in flight either).
            let idle = !s.net.iter().any(|p| match p {
                Packet::Replica { from, to, .. } => *from == i || *to == i,
                _ => false,
            });
            if idle && node.timers.contains(&TimerKind::FetchBackoff) {
                actions.push(Action::FetchTimer(i));
            }
            let awake = i < self.active || s.controller.leader == Some(broker(i));
            if awake && node.replica.partition_state() != Some(&s.controller) {
                actions.push(Action::Sync(i));
            }
            if s.crashes < self.crashes_max && self.crashable.contains(&i) {
                actions.push(Action::Crash(i));
            }
            if s.retentions < self.retentions_max && retention_start(node) > node.start {
                actions.push(Action::Retention(i));
            }
        }
        for p in 0..s.net.len() {
            if p > 0 && s.net[p] == s.net[p - 1] {
                continue;
            }
            actions.push(Action::Deliver(p));
            if self.lossy {
                actions.push(Action::Drop(p));
            }
        }
        if s.ticks < self.ticks_max {
            actions.push(Action::Tick);
        }
        let eligible = election::eligible_leaders(&self.election_input(s));
        match (s.controller.leader, eligible) {
            // An offline partition gets a leader as soon as one is eligible.
            (None, Some((_, candidates))) => {
                actions.extend(candidates.into_iter().map(|c| Action::Elect(index(c))));
            }
            // A voluntary, clean leader change (preferred election, controlled shutdown).
            (Some(leader), Some((ElectionKind::Clean, candidates)))
                if s.leader_changes < self.leader_changes_max =>
            {
                let others = candidates.into_iter().filter(|&c| c != leader);
                actions.extend(others.map(|c| Action::Elect(index(c))));
            }
            _ => {}
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Produce(i) => {
                s.produced += 1;
                let id = s.produced;
                let request = ProduceRequest {
                    request_id: u64::from(id),
                    acks: Acks::All,
                    record_count: 1,
                    payload: vec![id],
                };
                self.step(&mut s, i, Input::Produce(request));
            }
            Action::Deliver(p) => {
                let packet = s.net.remove(p);
                match packet {
                    Packet::Replica { from, to, message } => {
                        if s.nodes[to].alive {
                            self.step(
                                &mut s,
                                to,
                                Input::Message {
                                    from: broker(from),
                                    message,
                                },
                            );
                        }
                    }
                    Packet::Alter { from, proposal } => {
                        self.controller_alter(&mut s, from, proposal)
                    }
                    Packet::AlterResponse { to, result } => {
                        if s.nodes[to].alive {
                            self.step(&mut s, to, Input::AlterPartitionResponse(result));
                        }
                    }
                }
            }
            Action::Drop(p) => {
                // The broker shell answers every AlterPartition: a lost request or answer
                // becomes "outcome unknown" (its timeout), after the controller may have
                // applied it. That answer may be lost again, with the same result.
                match s.net.remove(p) {
                    Packet::Alter { from: to, .. } | Packet::AlterResponse { to, .. } => {
                        let result = Err(Error::AlterPartitionOutcomeUnknown);
                        s.net.push(Packet::AlterResponse { to, result });
                    }
                    Packet::Replica { .. } => {}
                }
            }
            Action::Flush(i) => {
                let (seq, up_to) = s.nodes[i].flush.take().unwrap();
                let node = &mut s.nodes[i];
                let upto = usize::try_from(up_to.0).unwrap().min(node.log.len());
                node.durable = node.durable.max(upto);
                self.step(&mut s, i, Input::FlushCompleted { seq, up_to });
            }
            Action::FetchTimer(i) => {
                s.nodes[i].timers.remove(&TimerKind::FetchBackoff);
                self.step(&mut s, i, Input::Timer(TimerKind::FetchBackoff));
            }
            Action::Tick => {
                s.ticks += 1;
                s.now_ms += LAG_MS_MAX + 1;
                for i in 0..NODES {
                    if s.nodes[i].alive && s.nodes[i].timers.remove(&TimerKind::IsrCheck) {
                        self.step(&mut s, i, Input::Timer(TimerKind::IsrCheck));
                    }
                }
            }
            Action::Crash(i) => self.crash(&mut s, i),
            Action::Restart(i) => self.restart(&mut s, i),
            Action::Elect(i) => self.elect(&mut s, i),
            Action::Sync(i) => {
                let state = s.controller.clone();
                self.step(&mut s, i, Input::PartitionState(state));
            }
            Action::Retention(i) => {
                s.retentions += 1;
                let node = &mut s.nodes[i];
                let start = retention_start(node);
                node.log[..start].fill(GONE);
                node.start = start;
                let offset = Offset(i64::try_from(start).unwrap());
                self.step(&mut s, i, Input::LogStartAdvanced(offset));
            }
        }
        self.observe(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("acked records survive", |_, s: &State| {
                !s.acked_conflict
                    && s.nodes
                        .iter()
                        .filter(|n| n.alive && n.replica.is_leader())
                        .all(|n| {
                            // Above the log start: retention deletes committed records on purpose.
                            s.acked.iter().all(|(&o, &id)| {
                                let o = usize::try_from(o).unwrap();
                                o < n.start || n.log.get(o).map(|r| r.1) == Some(id)
                            })
                        })
            }),
            Property::always("replicas agree below the HW", |_, s: &State| {
                let alive: Vec<&Node> = s.nodes.iter().filter(|n| n.alive).collect();
                let hw = |n: &Node| usize::try_from(n.replica.high_watermark().0).unwrap();
                let pairs_agree = alive.iter().all(|a| {
                    alive.iter().all(|b| {
                        let below = hw(a).min(hw(b));
                        let from = a.start.max(b.start).min(below);
                        a.log[from..below] == b.log[from..below]
                    })
                });
                let acked_below_hw = alive.iter().all(|n| {
                    s.acked.iter().all(|(&o, &id)| {
                        let o = usize::try_from(o).unwrap();
                        o < n.start || o >= hw(n) || n.log[o].1 == id
                    })
                });
                pairs_agree && acked_below_hw
            }),
            Property::always("leader HW never decreases", |_, s: &State| !s.hw_decreased),
            Property::always("at most one leader per epoch", |_, s: &State| {
                !s.double_leader
            }),
            Property::sometimes("a record is committed", |_, s: &State| !s.acked.is_empty()),
            Property::sometimes("a leader changes", |_, s: &State| s.leader_changes > 0),
            // Convergence witness: a follower left below a leader's log start truncated fully,
            // started over there, caught up and rejoined the ISR.
            Property::sometimes("a follower starts over and rejoins", |_, s: &State| {
                s.nodes.iter().enumerate().any(|(i, n)| {
                    n.started_over && n.alive && s.controller.isr.contains(&broker(i))
                })
            }),
        ]
    }
}

const SAFETY: [&str; 4] = [
    "acked records survive",
    "replicas agree below the HW",
    "leader HW never decreases",
    "at most one leader per epoch",
];

/// Where retention may move a node's log start: up to what it holds committed (the HW) and
/// durable (log-core deletes only sealed, synced segments).
fn retention_start(node: &Node) -> usize {
    let hw = usize::try_from(node.replica.high_watermark().0).unwrap();
    hw.min(node.durable)
}

/// Checks the model exhaustively (or to `depth_max` if non-zero); returns the unique states.
fn check_clean(model: ReplicationModel, depth_max: usize) -> usize {
    let started = Instant::now();
    let mut builder = model.checker();
    if depth_max > 0 {
        builder = builder.target_max_depth(depth_max);
    }
    let checker = builder.spawn_bfs().join();
    let states = checker.unique_state_count();
    println!(
        "clean model: {states} unique states in {:?}",
        started.elapsed()
    );
    for name in SAFETY {
        checker.assert_no_discovery(name);
    }
    checker.assert_any_discovery("a record is committed");
    checker.assert_any_discovery("a leader changes");
    states
}

/// Runs the model with a bug switch until the first safety violation; returns its name.
fn find_bug(model: ReplicationModel) -> &'static str {
    let started = Instant::now();
    let checker = model
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let found = SAFETY
        .iter()
        .copied()
        .find(|name| checker.discovery(name).is_some());
    let name = found.expect("the bug switch must yield a counterexample");
    let path = checker.discovery(name).unwrap();
    println!(
        "bug found: {name} after {} states in {:?}; actions: {:?}",
        checker.unique_state_count(),
        started.elapsed(),
        path.into_actions()
    );
    name
}

fn two_active() -> ReplicationModel {
    let mut model = ReplicationModel::clean();
    model.active = 2;
    model
}

#[test]
fn clean_model_with_crashes_losses_and_two_leader_changes_is_safe() {
    let mut model = two_active();
    model.lossy = true;
    model.leader_changes_max = 2;
    let states = check_clean(model, 0);
    assert_eq!(states, PINNED_CRASH, "pinned state count changed");
}

#[test]
fn clean_model_with_a_lossy_network_and_isr_changes_is_safe() {
    let mut model = two_active();
    model.lossy = true;
    model.crashable = vec![];
    model.records_max = 2;
    model.ticks_max = 1;
    let states = check_clean(model, 0);
    assert_eq!(states, PINNED_LOSSY, "pinned state count changed");
}

/// All three replicas active (the third out of the ISR at first, so it can rejoin), exhaustive;
/// crashes and losses are covered by the two-active models and the full-bounds simulation.
#[test]
fn clean_model_with_three_replicas_is_safe() {
    let mut model = ReplicationModel::clean();
    model.crashable = vec![];
    let states = check_clean(model, 0);
    assert_eq!(states, PINNED_THREE, "pinned state count changed");
}

/// Three replicas over a lossy network, the third rejoining the ISR: its expansion may commit
/// while the answer is lost (the shell then answers "outcome unknown"). A leader that dropped
/// the pending change on that answer let the HW pass the new member, which could then be elected
/// without the record (cluster seed 154).
#[test]
fn clean_model_with_three_replicas_and_lost_isr_answers_is_safe() {
    let mut model = ReplicationModel::clean();
    model.crashable = vec![];
    model.lossy = true;
    let states = check_clean(model, 0);
    assert_eq!(states, PINNED_THREE_LOSSY, "pinned state count changed");
}

#[test]
fn clean_model_with_offsets_for_leader_epoch_is_safe() {
    let mut model = two_active();
    model.offsets_for_leader_epoch = true;
    let states = check_clean(model, 0);
    assert_eq!(states, PINNED_OFLE, "pinned state count changed");
}

/// The issue's full bounds (3 replicas, lossy network, 2 records, 2 leader changes, 1 crash, an
/// ISR shrink) are too many states to enumerate within the test budget, so a seeded random-walk
/// simulation samples them (deterministic: one thread, fixed seed).
#[test]
fn full_bounds_random_walks_find_no_violation() {
    let mut model = ReplicationModel::clean();
    model.lossy = true;
    model.records_max = 2;
    model.leader_changes_max = 2;
    model.ticks_max = 1;
    model.net_max = 3;
    let started = Instant::now();
    let checker = model
        .checker()
        .target_max_depth(60)
        .target_state_count(SIMULATED_STATES)
        .spawn_simulation(7, stateright::UniformChooser)
        .join();
    println!(
        "full-bounds simulation: {} states in {:?}",
        checker.state_count(),
        started.elapsed()
    );
    for name in SAFETY {
        checker.assert_no_discovery(name);
    }
    checker.assert_any_discovery("a record is committed");
}

/// Three replicas, one retention on any of them: the third starts out of the ISR, and when its
/// fetch from 0 reaches a leader whose log start passed it, it must start over there and rejoin.
/// No acknowledged record above a log start is lost; replicas agree between their starts and HWs.
#[test]
fn clean_model_with_retention_is_safe_and_a_follower_below_the_start_rejoins() {
    let mut model = ReplicationModel::clean();
    model.crashable = vec![];
    model.retentions_max = 1;
    let started = Instant::now();
    let checker = model.checker().spawn_bfs().join();
    println!(
        "retention model: {} unique states in {:?}",
        checker.unique_state_count(),
        started.elapsed()
    );
    for name in SAFETY {
        checker.assert_no_discovery(name);
    }
    checker.assert_any_discovery("a record is committed");
    checker.assert_any_discovery("a follower starts over and rejoins");
    assert_eq!(
        checker.unique_state_count(),
        PINNED_RETENTION,
        "pinned state count changed"
    );
}

const SIMULATED_STATES: usize = 1_000_000;
// Pinned so a change in the explored space is noticed. Session 3: a follower that truncates to
// its own LEO now drops an empty trailing epoch of its own (was 205,158 and 35,462), and the HW
// stands while the ISR is below min ISR (KIP-966; was 220,515, 168,482 and 35,390).
// Session 5: an empty fetch answer sends the next fetch at once instead of arming the backoff
// (the leader long-polls), so the "waiting out a backoff after an empty answer" states are gone
// (were 215,107, 167,531, 124,707, 33,708 and 206,297); every `sometimes` is still discovered.
// Session 10: a lost AlterPartition or answer becomes the shell's "outcome unknown" answer,
// and a pending ISR change survives every answer but one proving it was not applied (were
// 213,094, 154,204, 82,041, 32,557 and 128,937).
// Session 28: a stale refusal (`InvalidUpdateVersion`) sends the pending change again at the
// next ISR check, as an unknown outcome does (seed 284071; were 240,820, 257,644 and 203,685).
const PINNED_CRASH: usize = 237_940;
const PINNED_LOSSY: usize = 254_158;
const PINNED_THREE: usize = 83_219;
const PINNED_OFLE: usize = 33_097;
/// With the pending change dropped on any error answer (before session 10), this model finds
/// an acknowledged record lost after 272,965 states.
const PINNED_THREE_LOSSY: usize = 196_007;
const PINNED_RETENTION: usize = 128_138;

#[test]
fn bug_truncate_to_high_watermark_loses_an_acked_record() {
    let mut model = ReplicationModel::clean();
    model.bugs.truncate_to_high_watermark = true;
    model.crashable = vec![1];
    model.active = 2;
    assert_eq!(find_bug(model), "acked records survive");
}

#[test]
fn bug_no_epoch_fencing_breaks_agreement() {
    let mut model = ReplicationModel::clean();
    model.bugs.no_epoch_fencing = true;
    model.crashable = vec![];
    model.records_max = 2;
    model.leader_changes_max = 2;
    model.active = 2;
    let found = find_bug(model);
    assert!(SAFETY.contains(&found));
}

#[test]
fn bug_last_replica_standing_loses_an_acked_record() {
    let mut model = ReplicationModel::clean();
    model.bugs.last_replica_standing = true;
    model.crashable = vec![0];
    model.ticks_max = 1;
    model.leader_changes_max = 0;
    model.active = 2;
    assert_eq!(find_bug(model), "acked records survive");
}

/// The issue's bounds (2 records, 2 leader changes, 1 crash, lossy network) exhaustively, with
/// the third replica idle: 1.74 M states, about a minute, so it runs on demand
/// (`cargo test -p replication --test model -- --ignored`).
#[test]
#[ignore]
fn clean_model_at_the_issue_bounds_with_two_active_replicas_is_safe() {
    let mut model = two_active();
    model.lossy = true;
    model.leader_changes_max = 2;
    model.records_max = 2;
    let states = check_clean(model, 0);
    assert_eq!(states, 1_735_316, "pinned state count changed");
}
