//! The real sans-IO `replication::Replica` driven over real `log_core::PartitionLog`s on
//! `MemDisk`s: three brokers, a FIFO network, a fake controller and a virtual clock. The driver
//! follows the runbook in `replication/src/lib.rs`; after every step it checks that the core's
//! view of the log (LEO) matches what log-core actually holds, so a disagreement between the two
//! crates fails here rather than in the simulator.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use log_core::batch::split_batches;
use log_core::{BatchBuilder, LogConfig, MemDisk, PartitionLog};
use replication::{
    Acks, AlterPartition, Batch, BugSwitches, Config, Effect, Error, Input, Message,
    PartitionState, ProduceRequest, ReadRange, RecoveredLog, Replica, TimerKind,
};
use wire::{BrokerId, LeaderEpoch, Offset, PartitionEpoch};

const BROKERS: [BrokerId; 3] = [BrokerId(1), BrokerId(2), BrokerId(3)];
/// Bounds every run loop: a livelock fails the test instead of hanging it.
const EVENTS_MAX: usize = 100_000;
/// Bytes per log read when filling a fetch response or comparing logs.
const READ_BYTES_MAX: usize = 1 << 20;

/// Something in flight between brokers, the controller and the disks, delivered in FIFO order.
#[derive(Debug)]
enum Event {
    /// A replica-to-replica message.
    Deliver {
        from: BrokerId,
        to: BrokerId,
        message: Message,
    },
    /// A flush the core asked for: performed on the log when the event is processed, so
    /// other events interleave between the append and its durability.
    Flush {
        broker: BrokerId,
        seq: u64,
        up_to: Offset,
    },
    /// A leader's ISR change travelling to the controller.
    AlterPartition {
        from: BrokerId,
        request: AlterPartition,
    },
    /// The controller's answer to an AlterPartition.
    AlterPartitionResponse {
        to: BrokerId,
        result: Result<PartitionState, Error>,
    },
    /// Committed partition state propagated to a broker.
    PartitionState { to: BrokerId, state: PartitionState },
}

impl Event {
    /// The broker the event acts on (controller-bound events act on none).
    fn target(&self) -> Option<BrokerId> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::Flush { broker, .. } => Some(*broker),
            Event::AlterPartition { .. } => None,
            Event::AlterPartitionResponse { to, .. } => Some(*to),
            Event::PartitionState { to, .. } => Some(*to),
        }
    }
}

/// How long a leader holds an empty fetch answer, virtual ms (Kafka's `replica.fetch.wait.max.ms`).
const LONG_POLL_MS: u64 = 500;

/// An empty fetch answer a leader holds.
struct Parked {
    /// When it leaves anyway.
    due_ms: u64,
    /// The leader's (LEO, HW) when it was held: it leaves once they move.
    leader_at: (Offset, Offset),
    /// The answer.
    event: Event,
}

/// One broker: its disk, its log and the replica core. `None` log/replica while crashed.
struct Node {
    disk: MemDisk,
    dir: PathBuf,
    log: Option<PartitionLog>,
    replica: Option<Replica>,
}

/// A produce the test issued: what it carried, for checking the logs later.
#[derive(Clone, Debug)]
struct Produced {
    acks: Acks,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Cluster {
    now_ms: u64,
    nodes: BTreeMap<BrokerId, Node>,
    queue: VecDeque<Event>,
    /// Armed timers by broker and kind, with their virtual deadline.
    timers: BTreeMap<(BrokerId, TimerKind), u64>,
    /// Empty fetch answers held like a leader's long poll: released when the leader's LEO or HW
    /// moves, or at their deadline (followers fetch again at once after an empty answer).
    parked: Vec<Parked>,
    /// The controller's committed state.
    controller: PartitionState,
    produced: BTreeMap<u64, Produced>,
    /// Successful produce replies: request id to base offset.
    acked: BTreeMap<u64, Offset>,
    /// Failed produce replies.
    failed: BTreeMap<u64, Error>,
    request_id_next: u64,
    /// Truncations carried out, by broker: shows the epoch logic actually cut a log.
    truncations: BTreeMap<BrokerId, u64>,
    /// Replica config switch, kept for restarts.
    offsets_for_leader_epoch: bool,
}

fn config(broker: BrokerId, offsets_for_leader_epoch: bool) -> Config {
    let mut config = Config::new(broker);
    config.truncate_via_offsets_for_leader_epoch = offsets_for_leader_epoch;
    config.replica_lag_time_max_ms = 2_000;
    config.fetch_backoff_ms = 100;
    config
}

fn open_log(disk: &MemDisk, dir: &std::path::Path, now_ms: u64) -> PartitionLog {
    let now = i64::try_from(now_ms).unwrap();
    let log = PartitionLog::open(disk.as_disk(), dir, LogConfig::default(), now).unwrap();
    log.check_invariants();
    log
}

fn recovered(log: &PartitionLog) -> RecoveredLog {
    RecoveredLog {
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        epochs: log.epoch_entries(),
        high_watermark: log.high_watermark(),
    }
}

/// Reads `read` from the leader's log as whole batches starting exactly at `read.from`.
fn read_batches(log: &PartitionLog, read: ReadRange) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut from = read.from;
    while from < read.to {
        let result = log.read(from, READ_BYTES_MAX).unwrap();
        if result.bytes.is_empty() {
            break;
        }
        for view in split_batches(&result.bytes) {
            let view = view.unwrap();
            let header = view.header();
            assert_eq!(header.base_offset, from, "fetch offset on a batch boundary");
            if header.next_offset() > read.to {
                return batches;
            }
            batches.push(Batch {
                base_offset: header.base_offset,
                leader_epoch: header.partition_leader_epoch,
                record_count: u32::try_from(header.last_offset_delta + 1).unwrap(),
                payload: bytes::Bytes::copy_from_slice(view.as_bytes()),
            });
            from = header.next_offset();
        }
    }
    batches
}

/// Every record of the log below `to`: (offset, epoch, key, value).
type Row = (Offset, LeaderEpoch, Vec<u8>, Vec<u8>);

fn records_below(log: &PartitionLog, to: Offset) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut from = log.log_start_offset();
    while from < to.min(log.log_end_offset()) {
        let result = log.read(from, READ_BYTES_MAX).unwrap();
        for view in split_batches(&result.bytes) {
            let view = view.unwrap();
            let epoch = view.header().partition_leader_epoch;
            for record in view.decode().unwrap().iter() {
                let record = record.unwrap();
                if record.offset < to {
                    let key = record.key.unwrap().to_vec();
                    let value = record.value.unwrap().to_vec();
                    rows.push((record.offset, epoch, key, value));
                }
            }
        }
        assert!(result.next_offset > from, "reads make progress");
        from = result.next_offset;
    }
    rows
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        Cluster::with(seed, false)
    }

    /// `offsets_for_leader_epoch`: followers truncate through OffsetsForLeaderEpoch (KIP-101)
    /// instead of the fetch's diverging epoch.
    fn with(seed: u64, offsets_for_leader_epoch: bool) -> Cluster {
        let mut nodes = BTreeMap::new();
        for (i, &broker) in BROKERS.iter().enumerate() {
            let disk = MemDisk::new(seed + i as u64);
            let dir = PathBuf::from("topic-0");
            let log = open_log(&disk, &dir, 0);
            let replica = Replica::recover(
                config(broker, offsets_for_leader_epoch),
                BugSwitches::default(),
                &recovered(&log),
            );
            let node = Node {
                disk,
                dir,
                log: Some(log),
                replica: Some(replica),
            };
            nodes.insert(broker, node);
        }
        let controller = PartitionState {
            leader: Some(BROKERS[0]),
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(1),
            isr: BROKERS.iter().copied().collect(),
            elr: BTreeSet::new(),
            replicas: BROKERS.to_vec(),
        };
        let mut cluster = Cluster {
            now_ms: 0,
            nodes,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            parked: Vec::new(),
            controller,
            produced: BTreeMap::new(),
            acked: BTreeMap::new(),
            failed: BTreeMap::new(),
            request_id_next: 1,
            truncations: BTreeMap::new(),
            offsets_for_leader_epoch,
        };
        cluster.publish_state();
        cluster
    }

    fn node(&self, broker: BrokerId) -> &Node {
        &self.nodes[&broker]
    }

    fn log(&self, broker: BrokerId) -> &PartitionLog {
        self.node(broker).log.as_ref().expect("broker is up")
    }

    fn replica(&self, broker: BrokerId) -> &Replica {
        self.node(broker).replica.as_ref().expect("broker is up")
    }

    fn is_up(&self, broker: BrokerId) -> bool {
        self.node(broker).replica.is_some()
    }

    fn leader(&self) -> BrokerId {
        self.controller.leader.expect("partition online")
    }

    /// Feeds the controller's state to every live broker, now.
    fn publish_state(&mut self) {
        let state = self.controller.clone();
        for broker in BROKERS {
            if self.is_up(broker) {
                self.step(broker, Input::PartitionState(state.clone()));
            }
        }
    }

    /// Steps one replica and carries out its effects; a crashed broker ignores the input.
    fn step(&mut self, broker: BrokerId, input: Input) {
        let now_ms = self.now_ms;
        let from_produce = matches!(input, Input::Produce(_));
        let Some(replica) = self.nodes.get_mut(&broker).unwrap().replica.as_mut() else {
            return;
        };
        let effects = replica.step(now_ms, input);
        replica.check_invariants();
        for effect in effects {
            self.apply(broker, from_produce, effect);
        }
        self.check_node(broker);
    }

    /// The core's view of the log must be the log's.
    fn check_node(&self, broker: BrokerId) {
        let node = self.node(broker);
        let (Some(log), Some(replica)) = (&node.log, &node.replica) else {
            return;
        };
        log.check_invariants();
        assert_eq!(
            replica.log_end_offset(),
            log.log_end_offset(),
            "broker {broker:?}: core LEO vs log LEO"
        );
        assert_eq!(replica.log_start_offset(), log.log_start_offset());
        // The epoch caches agree: a leader's epoch start reaches log-core as an effect.
        let core: Vec<(LeaderEpoch, Offset)> = replica.epochs().entries().collect();
        let stored = log.epoch_entries();
        assert_eq!(
            core, stored,
            "broker {broker:?}: core vs log-core epoch cache"
        );
        assert!(
            replica.durable_end_offset() <= log.recovery_point(),
            "broker {broker:?}: core thinks more is durable than the log flushed"
        );
    }

    fn apply(&mut self, broker: BrokerId, from_produce: bool, effect: Effect) {
        let now = i64::try_from(self.now_ms).unwrap();
        match effect {
            Effect::Append(batch) => {
                let log = self.nodes.get_mut(&broker).unwrap().log.as_mut().unwrap();
                let info = if from_produce {
                    log.append_as_leader(&batch.payload, batch.leader_epoch, now)
                } else {
                    log.append_as_follower(&batch.payload, now)
                }
                .unwrap();
                assert_eq!(info.first_offset, batch.base_offset, "append placement");
                assert_eq!(info.log_end_offset, batch.end_offset(), "append length");
            }
            Effect::TruncateTo(offset) => {
                let log = self.nodes.get_mut(&broker).unwrap().log.as_mut().unwrap();
                log.truncate_to(offset).unwrap();
                assert_eq!(
                    log.log_end_offset(),
                    offset,
                    "truncation on a batch boundary"
                );
                *self.truncations.entry(broker).or_default() += 1;
            }
            Effect::TruncateFullyAndStartAt(offset) => {
                let log = self.nodes.get_mut(&broker).unwrap().log.as_mut().unwrap();
                log.truncate_fully_and_start_at(offset).unwrap();
                assert_eq!(log.log_start_offset(), offset);
                *self.truncations.entry(broker).or_default() += 1;
            }
            Effect::AssignEpochStart { epoch, start } => {
                let log = self.nodes.get_mut(&broker).unwrap().log.as_mut().unwrap();
                assert_eq!(start, log.log_end_offset(), "an epoch starts at the LEO");
                log.assign_epoch_start(epoch, start);
            }
            Effect::Flush { up_to, seq } => {
                self.queue.push_back(Event::Flush { broker, seq, up_to })
            }
            Effect::Send { to, message } => self.queue.push_back(Event::Deliver {
                from: broker,
                to,
                message,
            }),
            Effect::SendFetchResponse {
                to,
                mut response,
                read,
            } => {
                let batches = read_batches(self.log(broker), read);
                let empty = batches.is_empty();
                let mut hold = false;
                if let Ok(data) = response.result.as_mut() {
                    data.batches = batches;
                    hold = empty && data.diverging_epoch.is_none();
                }
                let message = Message::FetchResponse(response);
                let event = Event::Deliver {
                    from: broker,
                    to,
                    message,
                };
                if hold {
                    let replica = self.replica(broker);
                    let leader_at = (replica.log_end_offset(), replica.high_watermark());
                    self.parked.push(Parked {
                        due_ms: self.now_ms + LONG_POLL_MS,
                        leader_at,
                        event,
                    });
                } else {
                    self.queue.push_back(event);
                }
            }
            Effect::Reply { request_id, result } => self.on_reply(broker, request_id, result),
            Effect::AlterPartition(request) => self.queue.push_back(Event::AlterPartition {
                from: broker,
                request,
            }),
            Effect::SetTimer {
                timer,
                delay_ms_min,
                delay_ms_max,
            } => {
                assert!(delay_ms_min <= delay_ms_max);
                self.timers
                    .insert((broker, timer), self.now_ms + delay_ms_min);
            }
            Effect::CancelTimer(timer) => {
                self.timers.remove(&(broker, timer));
            }
        }
        if let (Some(log), Some(replica)) = (
            self.nodes[&broker].log.as_ref(),
            self.nodes[&broker].replica.as_ref(),
        ) {
            let hw = replica.high_watermark().min(log.log_end_offset());
            let log = self.nodes.get_mut(&broker).unwrap().log.as_mut().unwrap();
            log.set_high_watermark(hw).unwrap();
        }
    }

    /// A produce answer. An acks=all success must already be durable on every ISR member.
    fn on_reply(&mut self, broker: BrokerId, request_id: u64, result: Result<Offset, Error>) {
        match result {
            Ok(base) => {
                let produced = &self.produced[&request_id];
                let end = base.add(i64::try_from(produced.records.len()).unwrap());
                if produced.acks == Acks::All {
                    assert!(
                        self.replica(broker).high_watermark() >= end,
                        "acked below HW"
                    );
                    let isr = self.replica(broker).partition_state().unwrap().isr.clone();
                    assert!(isr.len() >= 2, "min.insync.replicas");
                    for member in isr {
                        if self.is_up(member) {
                            assert!(
                                self.log(member).recovery_point() >= end,
                                "acked {request_id} before broker {member:?} flushed it"
                            );
                        }
                    }
                }
                assert!(self.acked.insert(request_id, base).is_none(), "one reply");
            }
            Err(error) => {
                assert!(self.failed.insert(request_id, error).is_none(), "one reply");
            }
        }
    }

    /// Sends a produce of `count` records to the current leader; returns its request id.
    fn produce(&mut self, acks: Acks, count: usize) -> u64 {
        let request_id = self.request_id_next;
        self.request_id_next += 1;
        let mut builder = BatchBuilder::new();
        let mut records = Vec::new();
        for i in 0..count {
            let key = format!("key-{request_id}-{i}").into_bytes();
            let value = format!("value-{request_id}-{i}-{}", "x".repeat(i % 7)).into_bytes();
            let now = i64::try_from(self.now_ms).unwrap();
            builder.push(Some(&key), Some(&value), now, &[]);
            records.push((key, value));
        }
        let request = ProduceRequest {
            request_id,
            acks,
            record_count: u32::try_from(count).unwrap(),
            payload: builder.build(),
        };
        self.produced.insert(request_id, Produced { acks, records });
        self.step(self.leader(), Input::Produce(request));
        request_id
    }

    /// Processes one queued event, or fires the earliest timer. False when nothing is left.
    fn tick(&mut self) -> bool {
        self.release_parked();
        if let Some(event) = self.queue.pop_front() {
            self.handle(event);
            return true;
        }
        let next_timer = self
            .timers
            .iter()
            .min_by_key(|(key, deadline)| (**deadline, **key))
            .map(|(&key, &deadline)| (key, deadline));
        let next_parked = self.parked.iter().map(|p| p.due_ms).min();
        if let Some(due_ms) = next_parked {
            if next_timer.is_none_or(|(_, deadline)| due_ms < deadline) {
                assert!(due_ms >= self.now_ms, "time never goes back");
                self.now_ms = due_ms;
                self.release_parked();
                return true;
            }
        }
        let Some(((broker, timer), deadline)) = next_timer else {
            return false;
        };
        self.timers.remove(&(broker, timer));
        assert!(deadline >= self.now_ms, "time never goes back");
        self.now_ms = deadline;
        self.step(broker, Input::Timer(timer));
        true
    }

    /// Moves held fetch answers whose deadline passed, or whose leader's LEO or HW moved (or
    /// which crashed), to the queue.
    fn release_parked(&mut self) {
        let now_ms = self.now_ms;
        let mut kept = Vec::new();
        for parked in std::mem::take(&mut self.parked) {
            let Event::Deliver { from, .. } = &parked.event else {
                unreachable!("only fetch answers are held");
            };
            let moved = match self.node(*from).replica.as_ref() {
                Some(replica) => {
                    (replica.log_end_offset(), replica.high_watermark()) != parked.leader_at
                }
                None => true,
            };
            if moved || parked.due_ms <= now_ms {
                self.queue.push_back(parked.event);
            } else {
                kept.push(parked);
            }
        }
        self.parked = kept;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, message } => {
                self.step(to, Input::Message { from, message });
            }
            Event::Flush { broker, seq, up_to } => {
                let Some(log) = self.nodes.get_mut(&broker).unwrap().log.as_mut() else {
                    return;
                };
                let durable = log.flush().unwrap();
                assert!(
                    durable >= up_to.min(log.log_end_offset()),
                    "flush covers up_to"
                );
                self.step(broker, Input::FlushCompleted { seq, up_to });
            }
            Event::AlterPartition { from, request } => self.controller_alter(from, request),
            Event::AlterPartitionResponse { to, result } => {
                self.step(to, Input::AlterPartitionResponse(result));
            }
            Event::PartitionState { to, state } => self.step(to, Input::PartitionState(state)),
        }
    }

    /// The controller checks the proposal against its state (KIP-497) and commits it.
    fn controller_alter(&mut self, from: BrokerId, request: AlterPartition) {
        let current = &self.controller;
        let valid = current.leader == Some(request.leader)
            && request.leader == from
            && current.leader_epoch == request.leader_epoch
            && current.partition_epoch == request.partition_epoch;
        if !valid {
            let result = Err(Error::InvalidUpdateVersion);
            self.queue
                .push_back(Event::AlterPartitionResponse { to: from, result });
            return;
        }
        assert!(request.new_isr.contains(&from), "the ISR holds its leader");
        self.controller.partition_epoch = PartitionEpoch(request.partition_epoch.0 + 1);
        self.controller.isr = request.new_isr;
        let state = self.controller.clone();
        self.queue.push_back(Event::AlterPartitionResponse {
            to: from,
            result: Ok(state.clone()),
        });
        for broker in BROKERS.into_iter().filter(|&b| b != from) {
            let state = state.clone();
            self.queue
                .push_back(Event::PartitionState { to: broker, state });
        }
    }

    /// Runs until `done` holds; panics after `ms_max` virtual ms or `EVENTS_MAX` events.
    fn run_until(&mut self, ms_max: u64, mut done: impl FnMut(&Cluster) -> bool) {
        let deadline_ms = self.now_ms + ms_max;
        for _ in 0..EVENTS_MAX {
            if done(self) {
                return;
            }
            assert!(self.now_ms <= deadline_ms, "not done by {deadline_ms} ms");
            assert!(self.tick(), "nothing left to do and not done");
        }
        panic!("not done after {EVENTS_MAX} events");
    }

    /// Runs for `ms` of virtual time.
    fn run_for(&mut self, ms: u64) {
        let until_ms = self.now_ms + ms;
        for _ in 0..EVENTS_MAX {
            let next_timer = self.timers.values().min().copied();
            let next_parked = self.parked.iter().map(|p| p.due_ms).min();
            let next = next_timer.into_iter().chain(next_parked).min();
            if self.queue.is_empty() && !matches!(next, Some(t) if t <= until_ms) {
                self.now_ms = until_ms;
                return;
            }
            assert!(self.tick());
        }
        panic!("run_for livelocked");
    }

    /// Power loss on `broker`: volatile bytes are gone, in-flight work to it is lost.
    fn crash(&mut self, broker: BrokerId) {
        let node = self.nodes.get_mut(&broker).unwrap();
        node.log = None;
        node.replica = None;
        node.disk.crash();
        self.queue.retain(|event| event.target() != Some(broker));
        self.parked
            .retain(|parked| parked.event.target() != Some(broker));
        self.timers.retain(|(b, _), _| *b != broker);
    }

    /// Reopens the log (recovery), rebuilds the replica from it and feeds it current state.
    fn restart(&mut self, broker: BrokerId) {
        let now_ms = self.now_ms;
        let node = self.nodes.get_mut(&broker).unwrap();
        let log = open_log(&node.disk, &node.dir, now_ms);
        let config = config(broker, self.offsets_for_leader_epoch);
        let replica = Replica::recover(config, BugSwitches::default(), &recovered(&log));
        node.log = Some(log);
        node.replica = Some(replica);
        self.check_node(broker);
        let state = self.controller.clone();
        self.step(broker, Input::PartitionState(state));
    }

    /// Whether every produce got an answer.
    fn all_answered(&self) -> bool {
        self.produced.iter().all(|(id, p)| {
            p.acks == Acks::None || self.acked.contains_key(id) || self.failed.contains_key(id)
        })
    }

    /// Whether every live replica has the leader's LEO and HW.
    fn converged(&self) -> bool {
        let leader = self.replica(self.leader());
        let (leo, hw) = (leader.log_end_offset(), leader.high_watermark());
        hw == leo
            && BROKERS.iter().all(|&b| {
                self.is_up(b)
                    && self.replica(b).log_end_offset() == leo
                    && self.replica(b).high_watermark() == hw
                    && self.log(b).recovery_point() == leo
            })
    }

    /// Every acked record sits at its acked offset on every log, with the produced key/value.
    fn check_acked_everywhere(&self) {
        for broker in BROKERS {
            let rows = records_below(self.log(broker), self.log(broker).log_end_offset());
            let by_offset: BTreeMap<Offset, &Row> = rows.iter().map(|r| (r.0, r)).collect();
            for (id, base) in &self.acked {
                for (i, (key, value)) in self.produced[id].records.iter().enumerate() {
                    let offset = base.add(i64::try_from(i).unwrap());
                    let row = by_offset
                        .get(&offset)
                        .unwrap_or_else(|| panic!("broker {broker:?} lost acked {offset:?}"));
                    assert_eq!(
                        (&row.2, &row.3),
                        (key, value),
                        "broker {broker:?} @ {offset:?}"
                    );
                }
            }
        }
    }

    /// All logs hold identical records (offset, epoch, key, value) below `to`, and identical
    /// bytes.
    fn check_logs_agree_below(&self, to: Offset) {
        let reference = records_below(self.log(BROKERS[0]), to);
        assert_eq!(reference.len(), usize::try_from(to.0).unwrap(), "dense log");
        for broker in &BROKERS[1..] {
            assert_eq!(
                records_below(self.log(*broker), to),
                reference,
                "{broker:?}"
            );
        }
        let bytes = |b: BrokerId| {
            self.log(b)
                .read(Offset::ZERO, usize::MAX >> 1)
                .unwrap()
                .bytes
        };
        if self.log(BROKERS[0]).log_end_offset() == to {
            for broker in &BROKERS[1..] {
                assert_eq!(bytes(*broker), bytes(BROKERS[0]), "{broker:?} bytes");
            }
        }
    }
}

#[test]
fn acks_all_waits_for_both_followers_and_logs_are_identical() {
    let mut cluster = Cluster::new(11);
    let mut ids = Vec::new();
    for round in 0..10 {
        let id = cluster.produce(Acks::All, 1 + round % 4);
        // The leader appended, but nothing is flushed on the followers yet: no answer.
        assert!(!cluster.acked.contains_key(&id), "acked before replication");
        ids.push(id);
        if round % 3 == 0 {
            cluster.run_for(150);
        }
    }
    cluster.run_until(60_000, |c| c.all_answered());
    assert!(cluster.failed.is_empty(), "{:?}", cluster.failed);
    assert_eq!(cluster.acked.len(), ids.len());
    cluster.run_until(60_000, |c| c.converged());
    let leader = cluster.replica(BROKERS[0]);
    let leo = leader.log_end_offset();
    assert_eq!(
        leo,
        Offset(
            ids.iter()
                .map(|id| cluster.produced[id].records.len() as i64)
                .sum()
        )
    );
    assert_eq!(leader.high_watermark(), leo, "HW = LEO on the leader");
    assert_eq!(cluster.log(BROKERS[0]).high_watermark(), leo);
    cluster.check_logs_agree_below(leo);
    cluster.check_acked_everywhere();
    // Acks come back in offset order.
    let mut bases: Vec<Offset> = ids.iter().map(|id| cluster.acked[id]).collect();
    let sorted = bases.clone();
    bases.sort();
    assert_eq!(bases, sorted);
}

/// One crash-and-recover run; returns whether the crash actually lost unflushed records (the
/// MemDisk may keep some or all unsynced sectors, as a real disk may).
fn crash_follower_run(seed: u64) -> bool {
    let mut cluster = Cluster::new(seed);
    for _ in 0..5 {
        cluster.produce(Acks::All, 3);
    }
    cluster.run_until(60_000, |c| c.all_answered());
    let victim = BROKERS[2];
    // Records in flight: the victim appends some without flushing before it loses power.
    for _ in 0..3 {
        cluster.produce(Acks::All, 2);
    }
    cluster.run_until(10_000, |c| {
        c.replica(victim).log_end_offset() > c.replica(victim).durable_end_offset()
    });
    let before = cluster.log(victim).log_end_offset();
    let durable = cluster.log(victim).recovery_point();
    cluster.crash(victim);
    // While it is down the leader shrinks the ISR and keeps acknowledging with {1, 2}.
    cluster.run_for(5_000);
    assert!(!cluster.controller.isr.contains(&victim), "ISR shrank");
    for _ in 0..4 {
        cluster.produce(Acks::All, 2);
    }
    cluster.run_until(60_000, |c| c.all_answered());
    assert!(cluster.failed.is_empty(), "{:?}", cluster.failed);
    cluster.restart(victim);
    let after = cluster.log(victim).log_end_offset();
    assert!(
        durable <= after && after <= before,
        "recovery keeps the flushed prefix"
    );
    cluster.run_until(60_000, |c| {
        c.converged()
            && c.controller.isr.len() == 3
            && !c.replica(c.leader()).alter_partition_pending()
    });
    let leo = cluster.replica(cluster.leader()).log_end_offset();
    cluster.check_logs_agree_below(leo);
    cluster.check_acked_everywhere();
    after < before
}

#[test]
fn crashed_follower_recovers_and_catches_up() {
    let lost: Vec<bool> = (0..8).map(|seed| crash_follower_run(100 + seed)).collect();
    // Both branches matter: a crash that lost the unflushed tail, and one that kept some.
    assert!(lost.contains(&true), "no seed lost records: {lost:?}");
}

/// Moves leadership to `leader` in a new leader epoch, as the controller would.
fn elect(cluster: &mut Cluster, leader: BrokerId) {
    cluster.controller.leader = Some(leader);
    cluster.controller.leader_epoch = LeaderEpoch(cluster.controller.leader_epoch.0 + 1);
    cluster.controller.partition_epoch = PartitionEpoch(cluster.controller.partition_epoch.0 + 1);
    cluster.publish_state();
}

#[test]
fn leader_change_truncates_the_old_leader_and_keeps_acked_records() {
    leader_change_run(33, false);
}

#[test]
fn leader_change_truncates_via_offsets_for_leader_epoch() {
    leader_change_run(44, true);
}

#[test]
fn leader_crash_fails_over_and_old_leader_rejoins() {
    let survived: Vec<bool> = (0..8).map(|seed| leader_crash_run(200 + seed)).collect();
    // Both branches matter: the unflushed tail lost, and kept (then cut by the epoch logic).
    assert!(
        survived.contains(&true),
        "no seed kept the tail: {survived:?}"
    );
    assert!(
        survived.contains(&false),
        "every seed kept the tail: {survived:?}"
    );
}

/// One leader crash and failover; returns whether the old leader's unflushed tail survived.
fn leader_crash_run(seed: u64) -> bool {
    let mut cluster = Cluster::new(seed);
    for _ in 0..4 {
        cluster.produce(Acks::All, 2);
    }
    cluster.run_until(60_000, |c| c.all_answered() && c.converged());
    let committed = cluster.replica(BROKERS[0]).high_watermark();
    // An unreplicated, unflushed tail on the leader, then power loss.
    let orphan = cluster.produce(Acks::All, 3);
    cluster.crash(BROKERS[0]);
    cluster.controller.isr.remove(&BROKERS[0]);
    elect(&mut cluster, BROKERS[1]);
    for _ in 0..3 {
        cluster.produce(Acks::All, 2);
    }
    // The orphan's client never hears back: its leader died holding the request.
    cluster.produced.remove(&orphan);
    cluster.run_until(60_000, |c| c.all_answered());
    assert!(!cluster.acked.contains_key(&orphan));
    // The old leader comes back: its log-core epoch cache seeds the core; it follows and rejoins.
    cluster.restart(BROKERS[0]);
    assert!(cluster.replica(BROKERS[0]).is_follower());
    let survived = cluster.log(BROKERS[0]).log_end_offset() > committed;
    cluster.run_until(60_000, |c| {
        c.converged()
            && c.controller.isr.len() == 3
            && !c.replica(c.leader()).alter_partition_pending()
    });
    let hw = cluster.replica(BROKERS[1]).high_watermark();
    assert_eq!(hw, committed.add(6));
    cluster.check_logs_agree_below(hw);
    cluster.check_acked_everywhere();
    assert!(cluster.failed.is_empty(), "{:?}", cluster.failed);
    if survived {
        let truncations = cluster.truncations.get(&BROKERS[0]).copied();
        assert!(truncations >= Some(1), "the recovered tail was cut");
    }
    survived
}

fn leader_change_run(seed: u64, offsets_for_leader_epoch: bool) {
    let mut cluster = Cluster::with(seed, offsets_for_leader_epoch);
    for _ in 0..4 {
        cluster.produce(Acks::All, 2);
    }
    cluster.run_until(60_000, |c| c.all_answered() && c.converged());
    let committed = cluster.replica(BROKERS[0]).high_watermark();
    // The old leader appends records nobody fetched, then loses leadership.
    let orphan = cluster.produce(Acks::All, 3);
    assert_eq!(cluster.log(BROKERS[0]).log_end_offset(), committed.add(3));
    elect(&mut cluster, BROKERS[1]);
    assert!(cluster.replica(BROKERS[1]).is_leader());
    assert!(cluster.replica(BROKERS[0]).is_follower());
    assert_eq!(
        cluster.failed.get(&orphan),
        Some(&Error::NotLeaderOrFollower)
    );
    for _ in 0..4 {
        cluster.produce(Acks::All, 2);
    }
    cluster.run_until(60_000, |c| c.all_answered() && c.converged());
    assert_eq!(cluster.failed.len(), 1, "{:?}", cluster.failed);
    assert!(
        cluster.truncations[&BROKERS[0]] >= 1,
        "the old leader cut its suffix"
    );
    let hw = cluster.replica(BROKERS[1]).high_watermark();
    assert_eq!(hw, committed.add(8));
    cluster.check_logs_agree_below(hw);
    cluster.check_acked_everywhere();
    // The orphan's records are gone from the old leader: its offsets now hold epoch-2 records.
    let rows = records_below(cluster.log(BROKERS[0]), hw);
    assert!(rows[usize::try_from(committed.0).unwrap()..]
        .iter()
        .all(|row| row.1 == cluster.controller.leader_epoch));
    let orphan_keys = &cluster.produced[&orphan].records;
    assert!(rows
        .iter()
        .all(|row| orphan_keys.iter().all(|(k, _)| *k != row.2)));
}
