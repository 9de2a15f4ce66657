//! The controller core: a raft-rs `RawNode` over [`RaftStore`] plus the [`MetadataImage`] it
//! applies, driven by inputs and answering with [`Effect`]s. See the crate docs for the runbook.

use crate::election::{self, AlterPartitionRequest, ElectionOutcome, HistoricBugs};
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::raft_ingress;
use crate::records::{self, Listener, MetadataRecord, PartitionState, RecordBatch, TopicConfig};
use crate::storage::{PersistBatch, RaftStore};
use crate::topic_configs::{self, ConfigChange, ElectionDefaults};
use raft::prelude::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, StateRole};
use std::collections::BTreeMap;
use wire::{BrokerId, TopicPartition};

/// Static configuration of one controller node.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// This node's raft id (positive).
    pub id: u64,
    /// Every voter's raft id, the same list on every node.
    pub voters: Vec<u64>,
    /// Ticks without a leader before campaigning. raft-rs would randomise it in
    /// `[election_tick, 2 * election_tick)` with an RNG no simulator controls, so the core pins a
    /// one-value range and the driver jitters the tick cadence with its seeded RNG instead.
    pub election_tick: usize,
    /// Ticks between leader heartbeats; below `election_tick`.
    pub heartbeat_tick: usize,
    /// A broker without a heartbeat for this long is fenced (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// Take a snapshot and compact the log every this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Most entries one metadata fetch returns.
    pub fetch_entries_max: usize,
    /// Most proposals awaiting their commit; more are refused with `LimitReached`.
    pub proposals_pending_max: usize,
    /// Historic-bug switches (tests and simulator only).
    pub bugs: HistoricBugs,
}

impl ControllerConfig {
    /// Defaults for node `id` of the quorum `voters`.
    pub fn new(id: u64, voters: Vec<u64>) -> Self {
        ControllerConfig {
            id,
            voters,
            election_tick: 10,
            heartbeat_tick: 2,
            broker_session_timeout_ms: 9_000,
            snapshot_interval_entries: 64,
            fetch_entries_max: 256,
            proposals_pending_max: 1024,
            bugs: HistoricBugs::default(),
        }
    }
}

/// A client request: from brokers (registration, heartbeats, AlterPartition, metadata fetches)
/// or admin clients (topics).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// A broker process starts (or retries its registration).
    RegisterBroker {
        /// Node id.
        broker: BrokerId,
        /// Per-process random id, telling a restart from a retry.
        incarnation: u64,
        /// Client endpoints.
        listeners: Vec<Listener>,
        /// The broker's rack, if configured. See `MetadataRecord::RegisterBroker`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
        /// Did the previous incarnation shut down cleanly? See `MetadataRecord::RegisterBroker`.
        clean_shutdown: bool,
    },
    /// A broker is alive; unfences it if fenced.
    BrokerHeartbeat {
        /// Node id.
        broker: BrokerId,
        /// Must match the registered incarnation.
        incarnation: u64,
    },
    /// Creates a topic with replicas placed over unfenced brokers, or as `assignments` say.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count (ignored when `assignments` is not empty).
        partitions: i32,
        /// Replicas per partition (ignored when `assignments` is not empty).
        replication_factor: i32,
        /// Election configuration.
        config: TopicConfig,
        /// Kafka's manual replica assignment: one replica list per partition, in partition
        /// order, preferred leader first. Empty: the controller places the replicas.
        #[serde(default)]
        assignments: Vec<Vec<BrokerId>>,
        /// CreateTopics' `validate_only`: check everything, answer `TopicValid`, change nothing.
        #[serde(default)]
        validate_only: bool,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Changes a topic's configs (AlterConfigs: `replace`, IncrementalAlterConfigs: not),
    /// validated with `topic_configs::altered`; answered with the new config.
    AlterTopicConfig {
        /// Topic name.
        name: String,
        /// The changes, each config named at most once.
        changes: Vec<ConfigChange>,
        /// AlterConfigs' semantics: configs the request does not name lose their override.
        replace: bool,
        /// What min ISR and unclean election fall back to without an override (the asking
        /// broker's settings, as Kafka takes them from its brokers' static config).
        defaults: ElectionDefaults,
        /// Check only, change nothing (answered `TopicConfigValid`).
        validate_only: bool,
    },
    /// Grows a topic to `partitions` partitions (CreatePartitions), placed over unfenced brokers
    /// or as `assignments` (one list per new partition) say.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// The new total partition count.
        partitions: i32,
        /// Replica lists of the new partitions, in order; empty: the controller places them.
        assignments: Vec<Vec<BrokerId>>,
        /// Check only, change nothing (answered `PartitionsValid`).
        validate_only: bool,
    },
    /// An administrator's election (KIP-460's ElectLeaders): the preferred replica, or (when
    /// `unclean`) any live replica of a leaderless partition. Answered with each partition's
    /// outcome once the leadership changes are committed.
    ElectLeaders {
        /// Unclean election (Kafka's ElectionType 1) instead of preferred (0).
        unclean: bool,
        /// The partitions; `None`: every partition, whose answer then omits those that needed
        /// no election (Kafka's rule for a null list).
        partitions: Option<Vec<TopicPartition>>,
    },
    /// A partition leader changes its ISR.
    AlterPartition(AlterPartitionRequest),
    /// A broker's copy of a partition failed (disk error or corruption): it can neither lead
    /// nor follow until it is repaired or the broker restarts. The controller marks it offline
    /// (no election picks it until `ReplicaOnline` or a new incarnation's registration clears
    /// the mark) and moves it out of the ISR (electing
    /// another leader if it led), like any ISR shrink; answered with the partition's state.
    ReplicaOffline {
        /// The broker.
        broker: BrokerId,
        /// Must match the registered incarnation.
        incarnation: u64,
        /// The failed partition.
        partition: TopicPartition,
    },
    /// A broker's failed copy is serving again without a restart: it reopened the log once the
    /// disk answered again (a full disk with space back, a passing I/O error) and verified it.
    /// The offline mark is cleared, so the copy may follow, rejoin the ISR and be elected again;
    /// a leaderless partition may elect it at once. `intact: false` when the repair had to set
    /// the log aside (flushed bytes lost): the copy also leaves every ELR, as an unclean
    /// registration does. Answered with the partition's state.
    ReplicaOnline {
        /// The broker.
        broker: BrokerId,
        /// Must match the registered incarnation.
        incarnation: u64,
        /// The repaired partition.
        partition: TopicPartition,
        /// Whether everything the copy had flushed is still there.
        intact: bool,
    },
    /// Changes the dynamic configs of a BROKER resource (AlterConfigs: `replace`,
    /// IncrementalAlterConfigs: not), validated with `broker_configs::altered`; answered with the
    /// resource's new configs (`BrokerConfigAltered`).
    AlterBrokerConfig {
        /// `""` for the cluster-wide default, else the broker id in decimal.
        resource: String,
        /// The changes, each config named at most once.
        changes: Vec<ConfigChange>,
        /// AlterConfigs' semantics: configs the request does not name are removed.
        replace: bool,
        /// Check only, change nothing.
        validate_only: bool,
    },
    /// Changes SCRAM credentials or ACL bindings, all at once (one raft entry); answered
    /// `SecurityAltered` once applied. Each change is checked first (`SecurityChange::check`).
    AlterSecurity(Vec<crate::security::SecurityChange>),
    /// A broker catches up on metadata after the raft index it has applied.
    FetchMetadata {
        /// The last index the broker applied (0: nothing).
        after_index: u64,
    },
}

/// A successful answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// The registration is committed; the broker starts fenced and must heartbeat.
    Registered,
    /// Heartbeat accepted; `fenced` as of the applied image (an unfence may be in flight).
    Heartbeat {
        /// Whether the broker is still fenced.
        fenced: bool,
    },
    /// The topic exists, with these assignments.
    TopicCreated {
        /// Its id.
        topic_id: u64,
        /// Replicas per partition.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// A validate-only creation would succeed with these assignments; nothing changed.
    TopicValid {
        /// Replicas per partition, as the creation would place them.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// The topic is gone.
    TopicDeleted,
    /// The topic's configuration now (or, validate-only, as it would be).
    TopicConfigAltered(TopicConfig),
    /// The new partitions' replicas, in partition order (validate-only: as they would be).
    PartitionsCreated {
        /// Replicas per new partition.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// The partition's new state.
    PartitionAltered(PartitionState),
    /// What an ElectLeaders did to each partition, in partition order.
    LeadersElected(Vec<(TopicPartition, ElectionOutcome)>),
    /// Metadata after the requested index.
    Metadata(MetadataFetch),
    /// The security changes are applied.
    SecurityAltered,
    /// A BROKER resource's dynamic configs now (or, validate-only, as they would be).
    BrokerConfigAltered(BTreeMap<String, String>),
}

/// The answer to a metadata fetch: the records themselves while the log still has them, else
/// the whole image (the snapshot-equivalent).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataFetch {
    /// Record batches by raft index, in order, then the index they bring the broker to (raft's
    /// own entries carry no records but still count).
    Records {
        /// `(raft index, batch)` pairs, ascending.
        batches: Vec<(u64, RecordBatch)>,
        /// The applied index after these batches; equal to the request's when nothing is new.
        last_index: u64,
    },
    /// The requested index is compacted: replace the local image by this one.
    Image(MetadataImage),
}

impl MetadataFetch {
    /// Brings a broker's image up to this answer: applies the batches (refusals included, they
    /// are refused identically everywhere) or replaces the image. Never moves it backwards.
    pub fn apply_to(self, image: &mut MetadataImage) {
        match self {
            MetadataFetch::Image(fetched) => {
                if fetched.applied_index() > image.applied_index() {
                    *image = fetched;
                }
            }
            MetadataFetch::Records {
                batches,
                last_index,
            } => {
                for (index, batch) in batches {
                    if index > image.applied_index() {
                        let _refused_everywhere = image.apply_batch(index, &batch);
                    }
                }
                if last_index > image.applied_index() {
                    image.skip_entry(last_index);
                }
            }
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a raft message to `msg.to` (may be lost or reordered; raft copes).
    Send(Message),
    /// Make this batch durable, in order after earlier ones, then call `persist_complete(id)`.
    /// Messages that may only leave after it are held by the core until then.
    Persist(PersistBatch),
    /// Durably replace the snapshot and drop the log entries it covers. Losing it is harmless.
    SaveSnapshot(Snapshot),
    /// The answer to request `request_id`.
    Reply {
        /// The id the driver gave the request.
        request_id: u64,
        /// The answer or a typed refusal.
        reply: Result<Reply, ControllerError>,
    },
    /// The applied image moved to this index (brokers may fetch).
    MetadataChanged {
        /// The new applied index.
        applied_index: u64,
    },
    /// This node's log has caught up with the quorum (it was rejoining: see
    /// [`RaftStore::rejoining`]): make that durable. Losing it is harmless (the node rejoins
    /// again after a restart).
    Rejoined,
}

/// The context a rejoining node's vote requests carry, so that votes never cross between
/// rejoining and caught-up nodes (raft-rs reads only its own leader-transfer context).
pub const REJOINING_VOTE_CONTEXT: &[u8] = b"rill.rejoining";

/// What an in-flight proposal answers once applied.
#[derive(Clone, Debug)]
enum PendingKind {
    /// Reply `Registered`.
    Register,
    /// Reply `TopicCreated` for this name.
    CreateTopic(String),
    /// Reply `TopicDeleted`.
    DeleteTopic,
    /// Reply with this topic's config.
    AlterTopicConfig(String),
    /// Reply with the replicas of this topic's partitions from this index on.
    CreatePartitions(String, usize),
    /// Reply with this partition's new state.
    AlterPartition(TopicPartition),
    /// Reply `SecurityAltered`.
    AlterSecurity,
    /// Reply with this BROKER resource's configs.
    AlterBrokerConfig(String),
    /// Reply with these outcomes of an ElectLeaders.
    ElectLeaders(Vec<(TopicPartition, ElectionOutcome)>),
    /// A fence or unfence of this broker decided by the active controller itself.
    BrokerChange(BrokerId),
    /// Elections of leaderless partitions decided by the active controller itself.
    Elections,
}

/// Where a new topic's replicas go: `partitions` x `replication_factor` placed by the
/// controller, or Kafka's manual `assignments` when not empty.
#[derive(Clone, Debug)]
struct Placement {
    /// Partition count for a placed topic.
    partitions: i32,
    /// Replicas per partition for a placed topic.
    replication_factor: i32,
    /// The manual assignment, one replica list per partition (empty: placed).
    assignments: Vec<Vec<BrokerId>>,
}

/// A proposal awaiting its commit.
#[derive(Clone, Debug)]
struct Pending {
    /// The term it was proposed in: an entry at its index from another term means it was lost.
    term: u64,
    /// The request to answer, if a client asked.
    request_id: Option<u64>,
    /// What to answer.
    kind: PendingKind,
}

/// One controller node. See the crate docs for how to drive it.
pub struct Controller {
    /// Static configuration.
    config: ControllerConfig,
    /// raft-rs, owning the in-memory mirror of the raft state.
    raw: RawNode<RaftStore>,
    /// The metadata applied so far.
    image: MetadataImage,
    /// Effects produced since the driver last took them.
    effects: Vec<Effect>,
    /// Messages raft-rs may only send once the Ready with this number is durable.
    messages_held: Vec<(u64, Vec<Message>)>,
    /// Persist batches emitted and not yet completed (their ids).
    persists_outstanding: Vec<u64>,
    /// Proposals by log index.
    pending: BTreeMap<u64, Pending>,
    /// The last heartbeat per broker (ms), kept by the active controller only.
    heartbeats: BTreeMap<BrokerId, u64>,
    /// The index of this leader's first entry: it acts as controller once that is applied, so
    /// its decisions see every record earlier leaders committed.
    leader_first_index: Option<u64>,
    /// The latest time the driver passed in.
    now_ms: u64,
    /// This node's log started empty and has not yet caught up with the quorum (a new quorum,
    /// or a replaced disk). See [`Controller::step`].
    rejoining: bool,
    /// While rejoining: the commit index a leader answered our read-index request with (a
    /// raft-rs leader answers only once it has committed in its own term, with its commit
    /// index at the time it got the request, which we sent after our log started empty).
    rejoin_target: Option<u64>,
    /// While rejoining: our read-index request in flight (its context) and the ticks it has
    /// waited; asked again after an election timeout (the leader drops requests it cannot
    /// answer yet, and the network may lose them).
    rejoin_read: Option<(Vec<u8>, usize)>,
    /// Read-index requests sent since start, so every context is new.
    rejoin_reads_sent: u64,
    /// When this incarnation started (part of the read-index context).
    started_ms: u64,
}

/// Is `message` a request for a vote or a pre-vote?
fn is_vote_request(message: &Message) -> bool {
    matches!(
        message.get_msg_type(),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
    )
}

impl Controller {
    /// Starts a node from durable raft state (`RaftStore::bootstrap` for a new quorum). The image
    /// is rebuilt from the snapshot; raft-rs then replays committed entries after it.
    pub fn new(config: ControllerConfig, store: RaftStore, now_ms: u64) -> Controller {
        assert!(
            config.voters.contains(&config.id),
            "node {} not a voter",
            config.id
        );
        assert!(
            config.heartbeat_tick < config.election_tick,
            "heartbeats within elections"
        );
        let image = match store.snapshot_index() {
            0 => MetadataImage::new(),
            _ => MetadataImage::decode(store.snapshot_latest().get_data())
                .expect("our own durable snapshot decodes"),
        };
        assert_eq!(
            image.applied_index(),
            store.snapshot_index(),
            "snapshot index is the image's"
        );
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            // A one-value range [election_tick, election_tick + 1): raft-rs draws no jitter.
            min_election_tick: config.election_tick,
            max_election_tick: config.election_tick + 1,
            applied: image.applied_index(),
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        // slog-async (raft::default_logger) spawns threads: a discarding logger keeps the core
        // single-threaded and deterministic.
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let rejoining = store.rejoining();
        let raw = RawNode::new(&raft_config, store, &logger).expect("valid raft config and store");
        if rejoining {
            tracing::info!(
                node = config.id,
                "raft log new or replaced: rejoining (votes only with other rejoining nodes \
                 until it holds what the quorum committed)"
            );
        }
        Controller {
            config,
            raw,
            image,
            effects: Vec::new(),
            messages_held: Vec::new(),
            persists_outstanding: Vec::new(),
            pending: BTreeMap::new(),
            heartbeats: BTreeMap::new(),
            leader_first_index: None,
            now_ms,
            rejoining,
            rejoin_target: None,
            rejoin_read: None,
            rejoin_reads_sent: 0,
            started_ms: now_ms,
        }
    }

    /// Is this node still rejoining (see [`Controller::step`])?
    pub fn is_rejoining(&self) -> bool {
        self.rejoining
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The applied metadata.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The in-memory raft state (durable or not).
    pub fn store(&self) -> &RaftStore {
        self.raw.store()
    }

    /// raft's current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Is this node the raft leader?
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The raft leader this node knows of (0: none).
    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// raft's commit index.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// Is this node the active controller: leader and caught up with earlier terms?
    pub fn is_active(&self) -> bool {
        self.is_leader()
            && self
                .leader_first_index
                .is_some_and(|first| self.image.applied_index() >= first)
    }

    /// Takes the effects produced so far, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Input: one raft tick at time `now_ms`. The driver calls it every tick interval, jittered
    /// with its own seeded RNG. The active controller also fences brokers whose session expired.
    pub fn tick(&mut self, now_ms: u64) {
        assert!(
            now_ms >= self.now_ms,
            "time goes forward: {now_ms} < {}",
            self.now_ms
        );
        self.now_ms = now_ms;
        self.raw.tick();
        if let Some((_, ticks)) = &mut self.rejoin_read {
            *ticks += 1;
            if *ticks >= self.config.election_tick {
                self.rejoin_read = None; // Lost or dropped: ask again.
            }
        }
        self.ask_rejoin_target();
        self.drain_ready();
        // BUGGIFY: expired sessions are fenced a tick late.
        if self.is_active() && !buggify::fire("controller.fence.late") {
            self.fence_expired();
        }
        if self.is_active() && self.pending.is_empty() {
            self.elect_leaderless();
        }
        self.drain_ready();
    }

    /// Elects a leader for every leaderless partition that has an eligible replica, when the
    /// image holds everything this controller proposed ([`election::leaderless_batch`]).
    fn elect_leaderless(&mut self) {
        assert!(self.is_active() && self.pending.is_empty());
        let batch = election::leaderless_batch(&self.image);
        if batch.is_empty() {
            return;
        }
        buggify::probe!("controller.election.leaderless_sweep");
        // Nothing is pending, so the limit cannot be reached; a lost leadership (raft refused
        // the proposal) is retried by the next active controller's tick.
        let _refused = self.propose(batch, None, PendingKind::Elections);
    }

    /// Input: a raft message from a peer. Messages no honest voter could send (see
    /// [`crate::raft_ingress`]) are dropped with a warning before raft-rs sees them; stale ones
    /// are dropped by raft-rs (raft copes). The driver has already checked that `from` is the
    /// authenticated sender of the frame.
    pub fn step(&mut self, mut message: Message) {
        let mut lost_our_log = false;
        // A replaced disk (issue 16): the leader still counts this node as holding what it
        // acknowledged before, so its heartbeat commits past our (now empty) log's end, which
        // raft-rs asserts on. Take the heartbeat (its term and leader) but commit nothing from
        // it: the leader learns from our rejected append that we lost our log, and sends it
        // again. Committing up to our own end instead would be unsafe: our entries there may
        // not be the leader's.
        if message.get_msg_type() == MessageType::MsgHeartbeat
            && message.commit > self.raw.raft.raft_log.last_index()
        {
            tracing::warn!(
                node = self.config.id,
                leader = message.from,
                commit = message.commit,
                last_index = self.raw.raft.raft_log.last_index(),
                "the leader commits past our log's end: this node lost its raft log (a replaced \
                 disk?) and catches up from the leader"
            );
            message.commit = self.raw.raft.raft_log.committed;
            lost_our_log = true;
            buggify::probe!("controller.raft.rejoined_without_log");
        }
        let receiver = raft_ingress::Receiver {
            id: self.config.id,
            voters: &self.config.voters,
            term: self.term(),
            last_index: self.raw.raft.raft_log.last_index(),
        };
        if let Err(refusal) = raft_ingress::check(receiver, &message) {
            tracing::warn!(node = self.config.id, %refusal, "raft message refused");
            return;
        }
        // A replaced disk, part two (KIP-853's problem): a voter whose log was wiped forgot the
        // entries it helped commit. Voting as before, it could elect a candidate that lacks them
        // (with the one node that also lacks them), and they would be lost. So a node whose log
        // started empty is *rejoining* until it holds what a leader had committed in its own
        // term, and votes never cross between rejoining and caught-up nodes: every quorum that
        // elects a leader is either all caught up (the usual case: the leader then holds every
        // committed entry) or all rejoining (a new quorum, whose logs all started empty).
        if is_vote_request(&message) {
            let candidate_rejoining = message.context[..] == *REJOINING_VOTE_CONTEXT;
            if candidate_rejoining != self.rejoining {
                tracing::info!(
                    node = self.config.id,
                    candidate = message.from,
                    candidate_rejoining,
                    rejoining = self.rejoining,
                    "vote request ignored: votes do not cross between rejoining and caught-up \
                     nodes"
                );
                return;
            }
        }
        if message.get_msg_type() != MessageType::MsgSnapshot
            && !lost_our_log
            && buggify::fire_rarely("controller.raft.drop_incoming")
        {
            // BUGGIFY: a raft message lost on arrival (raft retransmits what matters; a
            // snapshot is reported delivered by the transport, so it is never dropped here).
            return;
        }
        let term_before = self.term();
        let from = message.from;
        let lost_log = self.follower_lost_its_log(&message);
        if let Some(from) = lost_log {
            // raft-rs drops a rejection at or below what it believes the follower matched as
            // stale, so that follower would never be sent its log again.
            let hint = message.reject_hint;
            buggify::probe!("controller.raft.follower_lost_log");
            if let Some(progress) = self.raw.raft.mut_prs().get_mut(from) {
                tracing::warn!(
                    node = self.config.id,
                    follower = from,
                    matched = progress.matched,
                    follower_last_index = hint,
                    "a follower lost entries it had acknowledged (a replaced disk?): sending \
                     its log again"
                );
                progress.matched = hint;
                progress.become_probe();
            }
        }
        if self.raw.step(message).is_err() {
            tracing::debug!(node = self.config.id, "raft refused a message");
        }
        self.ask_rejoin_target();
        if let Some(from) = lost_log {
            if self.is_leader() {
                self.raw.raft.send_append(from);
            }
        }
        if lost_our_log && self.leader_id() == from && !self.is_leader() {
            // Tell the leader where our log ends, as a rejected append would (raft-rs sends
            // no append while it believes we hold everything). Sent after the term we just
            // took is persisted, like raft-rs's own answers.
            let last_index = self.raw.raft.raft_log.last_index();
            let mut reject = Message {
                to: from,
                from: self.config.id,
                term: self.term(),
                index: last_index,
                reject: true,
                reject_hint: last_index,
                ..Message::default()
            };
            reject.set_msg_type(MessageType::MsgAppendResponse);
            self.raw.raft.msgs.push(reject);
        }
        assert!(
            self.term() <= term_before.saturating_add(raft_ingress::TERM_AHEAD_MAX),
            "a message moved the term past the ingress bound"
        );
        self.drain_ready();
    }

    /// The sender of `message` if it is a follower's rejected append showing that it no longer
    /// holds entries it acknowledged to this leader (its log ends below its matched index).
    fn follower_lost_its_log(&self, message: &Message) -> Option<u64> {
        if !self.is_leader()
            || message.get_msg_type() != MessageType::MsgAppendResponse
            || !message.reject
            || message.term != self.term()
        {
            return None;
        }
        let matched = self.raw.raft.prs().get(message.from)?.matched;
        (message.reject_hint < matched).then_some(message.from)
    }

    /// Input: the transport's verdict on a snapshot message sent to `to`. raft-rs pauses
    /// replication to a follower while its snapshot is in flight; a lost snapshot must be
    /// reported (`delivered = false`) or that follower never catches up.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        assert!(
            self.config.voters.contains(&to),
            "snapshot sent to a non-voter {to}"
        );
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
        self.drain_ready();
    }

    /// Input: persist batch `id` (and every earlier one) is durable. Releases held messages.
    pub fn persist_complete(&mut self, id: u64) {
        assert!(
            self.persists_outstanding.contains(&id),
            "unknown or repeated persist {id}"
        );
        self.persists_outstanding
            .retain(|outstanding| *outstanding > id);
        self.raw.on_persist_ready(id);
        let (ready, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.messages_held)
            .into_iter()
            .partition(|(n, _)| *n <= id);
        self.messages_held = held;
        for (_, messages) in ready {
            self.effects.extend(messages.into_iter().map(Effect::Send));
        }
        self.sync_applied();
        self.drain_ready();
    }

    /// Input: a client request with the driver's `request_id`. The reply comes as an effect, at
    /// once or when the proposal is applied.
    pub fn request(&mut self, request_id: u64, request: Request, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Request::FetchMetadata { after_index } = request {
            let reply = Ok(Reply::Metadata(self.fetch_metadata(after_index)));
            self.effects.push(Effect::Reply { request_id, reply });
            return;
        }
        if let Err(refusal) = self.handle_request(request_id, request) {
            self.effects.push(Effect::Reply {
                request_id,
                reply: Err(refusal),
            });
        }
        self.drain_ready();
    }

    fn handle_request(&mut self, request_id: u64, request: Request) -> Result<(), ControllerError> {
        if !self.is_active() {
            return Err(ControllerError::NotController);
        }
        match request {
            Request::RegisterBroker {
                broker,
                incarnation,
                listeners,
                rack,
                clean_shutdown,
            } => {
                let record = MetadataRecord::RegisterBroker {
                    broker,
                    incarnation,
                    listeners,
                    rack,
                    clean_shutdown,
                };
                let batch = election::register_batch(&self.image, record, self.config.bugs);
                self.heartbeats.insert(broker, self.now_ms);
                self.propose(batch, Some(request_id), PendingKind::Register)
            }
            Request::BrokerHeartbeat {
                broker,
                incarnation,
            } => self.heartbeat(request_id, broker, incarnation),
            Request::CreateTopic {
                name,
                partitions,
                replication_factor,
                config,
                assignments,
                validate_only,
            } => {
                let placement = Placement {
                    partitions,
                    replication_factor,
                    assignments,
                };
                let batch = self.create_topic_batch(&name, placement, config)?;
                if validate_only {
                    let Some(MetadataRecord::CreateTopic { assignments, .. }) = batch.first()
                    else {
                        unreachable!("a creation batch starts with its CreateTopic record");
                    };
                    let reply = Ok(Reply::TopicValid {
                        assignments: assignments.clone(),
                    });
                    self.effects.push(Effect::Reply { request_id, reply });
                    return Ok(());
                }
                self.propose(batch, Some(request_id), PendingKind::CreateTopic(name))
            }
            Request::DeleteTopic { name } => {
                let topic = self.image.topics().get(&name);
                let topic_id = topic
                    .ok_or_else(|| ControllerError::UnknownTopicOrPartition(name.clone()))?
                    .topic_id;
                let batch = vec![MetadataRecord::DeleteTopic { name, topic_id }];
                self.propose(batch, Some(request_id), PendingKind::DeleteTopic)
            }
            Request::AlterTopicConfig {
                name,
                changes,
                replace,
                defaults,
                validate_only,
            } => {
                let topic = self
                    .image
                    .topics()
                    .get(&name)
                    .ok_or_else(|| ControllerError::UnknownTopicOrPartition(name.clone()))?;
                let config = topic_configs::altered(&topic.config, &changes, replace, defaults)?;
                if validate_only {
                    let reply = Ok(Reply::TopicConfigAltered(config));
                    self.effects.push(Effect::Reply { request_id, reply });
                    return Ok(());
                }
                let record = MetadataRecord::AlterTopicConfig {
                    name: name.clone(),
                    topic_id: topic.topic_id,
                    config,
                };
                self.propose(
                    vec![record],
                    Some(request_id),
                    PendingKind::AlterTopicConfig(name),
                )
            }
            Request::CreatePartitions {
                name,
                partitions,
                assignments,
                validate_only,
            } => {
                let record = self.create_partitions_record(&name, partitions, assignments)?;
                let MetadataRecord::CreatePartitions {
                    partitions_before,
                    assignments,
                    ..
                } = &record
                else {
                    unreachable!("create_partitions_record makes a CreatePartitions record");
                };
                if validate_only {
                    let reply = Ok(Reply::PartitionsCreated {
                        assignments: assignments.clone(),
                    });
                    self.effects.push(Effect::Reply { request_id, reply });
                    return Ok(());
                }
                let before = usize::try_from(*partitions_before).expect("a partition count");
                self.propose(
                    vec![record],
                    Some(request_id),
                    PendingKind::CreatePartitions(name, before),
                )
            }
            Request::AlterBrokerConfig {
                resource,
                changes,
                replace,
                validate_only,
            } => {
                let empty = BTreeMap::new();
                let current = self.image.broker_configs(&resource).unwrap_or(&empty);
                let configs =
                    crate::broker_configs::altered(&resource, current, &changes, replace)?;
                if validate_only {
                    let reply = Ok(Reply::BrokerConfigAltered(configs));
                    self.effects.push(Effect::Reply { request_id, reply });
                    return Ok(());
                }
                let record = MetadataRecord::AlterBrokerConfig {
                    resource: resource.clone(),
                    configs,
                };
                self.propose(
                    vec![record],
                    Some(request_id),
                    PendingKind::AlterBrokerConfig(resource),
                )
            }
            Request::AlterSecurity(changes) => {
                if changes.is_empty() || changes.len() > crate::records::RECORDS_PER_BATCH_MAX {
                    return Err(ControllerError::InvalidRequest(format!(
                        "{} security changes",
                        changes.len()
                    )));
                }
                for change in &changes {
                    change.check().map_err(ControllerError::InvalidRequest)?;
                }
                let batch = changes.into_iter().map(MetadataRecord::Security).collect();
                self.propose(batch, Some(request_id), PendingKind::AlterSecurity)
            }
            Request::AlterPartition(alter) => {
                let record = election::alter_partition(&self.image, &alter)?;
                self.propose(
                    vec![record],
                    Some(request_id),
                    PendingKind::AlterPartition(alter.partition),
                )
            }
            Request::ElectLeaders {
                unclean,
                partitions,
            } => self.elect_leaders(request_id, unclean, partitions),
            Request::ReplicaOffline {
                broker,
                incarnation,
                partition,
            } => self.replica_offline(request_id, broker, incarnation, partition),
            Request::ReplicaOnline {
                broker,
                incarnation,
                partition,
                intact,
            } => {
                self.registration(broker, incarnation)?;
                let batch = election::replica_online_batch(&self.image, broker, &partition, intact);
                self.propose_partition_change(request_id, partition, batch)
            }
            Request::FetchMetadata { .. } => unreachable!("answered before the controller check"),
        }
    }

    /// The registration of `broker` if `incarnation` is its current one: a request from an
    /// older process of the broker is refused.
    fn registration(
        &self,
        broker: BrokerId,
        incarnation: u64,
    ) -> Result<&crate::image::BrokerRegistration, ControllerError> {
        let registration = self
            .image
            .brokers()
            .get(&broker)
            .ok_or(ControllerError::UnknownBroker(broker))?;
        if registration.incarnation != incarnation {
            return Err(ControllerError::StaleBrokerIncarnation(broker));
        }
        Ok(registration)
    }

    fn replica_offline(
        &mut self,
        request_id: u64,
        broker: BrokerId,
        incarnation: u64,
        partition: TopicPartition,
    ) -> Result<(), ControllerError> {
        self.registration(broker, incarnation)?;
        let batch =
            election::replica_offline_batch(&self.image, broker, &partition, self.config.bugs);
        self.propose_partition_change(request_id, partition, batch)
    }

    /// An administrator's election (Kafka's `ReplicationControlManager.electLeaders`): one
    /// batch with a leadership change per partition that gets one, answered with every
    /// partition's outcome once committed (at once when nothing changes). A partition named
    /// twice is elected once. More changes than a batch holds: `LimitReached`.
    fn elect_leaders(
        &mut self,
        request_id: u64,
        unclean: bool,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<(), ControllerError> {
        let requested = if unclean {
            replication::election::RequestedElection::Unclean
        } else {
            replication::election::RequestedElection::Preferred
        };
        let every = partitions.is_none();
        let named: std::collections::BTreeSet<TopicPartition> = match partitions {
            Some(named) => named.into_iter().collect(),
            None => self
                .image
                .topics()
                .iter()
                .flat_map(|(name, topic)| {
                    (0..topic.partitions.len()).map(move |index| TopicPartition {
                        topic: name.clone(),
                        partition: i32::try_from(index).expect("partitions per topic are bounded"),
                    })
                })
                .collect(),
        };
        let mut batch = Vec::new();
        let mut outcomes = Vec::with_capacity(named.len());
        for tp in named {
            match election::requested_election(&self.image, &tp, requested) {
                Ok(record) => {
                    let MetadataRecord::PartitionChange { state, .. } = &record else {
                        unreachable!("an election is a partition change");
                    };
                    let leader_epoch = state.leader_epoch;
                    batch.push(record);
                    outcomes.push((tp, ElectionOutcome::Elected { leader_epoch }));
                }
                Err(ElectionOutcome::NotNeeded) if every => {}
                Err(outcome) => outcomes.push((tp, outcome)),
            }
        }
        if batch.len() > records::RECORDS_PER_BATCH_MAX {
            return Err(ControllerError::LimitReached(format!(
                "{} leader elections in one request, at most {}",
                batch.len(),
                records::RECORDS_PER_BATCH_MAX
            )));
        }
        assert!(batch.len() <= outcomes.len());
        if batch.is_empty() {
            let reply = Ok(Reply::LeadersElected(outcomes));
            self.effects.push(Effect::Reply { request_id, reply });
            return Ok(());
        }
        self.propose(batch, Some(request_id), PendingKind::ElectLeaders(outcomes))
    }

    /// Proposes `batch`, the change of one partition, answered with the partition's state; an
    /// empty batch (nothing to change) is answered at once with the state as it is.
    fn propose_partition_change(
        &mut self,
        request_id: u64,
        partition: TopicPartition,
        batch: RecordBatch,
    ) -> Result<(), ControllerError> {
        let state = self
            .image
            .partition(&partition)
            .ok_or_else(|| ControllerError::UnknownTopicOrPartition(partition.to_string()))?
            .clone();
        if batch.is_empty() {
            self.effects.push(Effect::Reply {
                request_id,
                reply: Ok(Reply::PartitionAltered(state)),
            });
            return Ok(());
        }
        self.propose(
            batch,
            Some(request_id),
            PendingKind::AlterPartition(partition),
        )
    }

    fn heartbeat(
        &mut self,
        request_id: u64,
        broker: BrokerId,
        incarnation: u64,
    ) -> Result<(), ControllerError> {
        let fenced = self.registration(broker, incarnation)?.fenced;
        self.heartbeats.insert(broker, self.now_ms);
        if fenced && !self.broker_change_pending(broker) {
            let batch = election::unfence_batch(&self.image, broker);
            self.propose(batch, None, PendingKind::BrokerChange(broker))?;
        }
        self.effects.push(Effect::Reply {
            request_id,
            reply: Ok(Reply::Heartbeat { fenced }),
        });
        Ok(())
    }

    /// Kafka's placement of `partitions` x `replication_factor` replicas over unfenced brokers.
    fn place_replicas(
        &self,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
        let partition_count = usize::try_from(partitions).unwrap_or(0);
        if partition_count == 0 || partition_count > crate::image::PARTITIONS_PER_TOPIC_MAX {
            return Err(ControllerError::InvalidPartitions(format!(
                "{partitions} partitions: a topic has 1 to {}",
                crate::image::PARTITIONS_PER_TOPIC_MAX
            )));
        }
        let brokers = self.image.brokers_unfenced();
        let rf = usize::try_from(replication_factor).unwrap_or(0);
        if rf == 0 || rf > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor {
                replication_factor,
                brokers_unfenced: brokers.len(),
            });
        }
        let assignments = crate::placement::assign_replicas(
            &brokers,
            partition_count,
            rf,
            self.image.topic_id_next(),
        );
        assert_eq!(assignments.len(), partition_count);
        Ok(assignments)
    }

    /// Kafka's checks of a manual replica assignment (`validateManualPartitionAssignment`):
    /// replica lists not empty, of one length, of registered brokers named once each, and each
    /// with an unfenced broker to lead.
    fn validate_assignments(
        &self,
        assignments: Vec<Vec<BrokerId>>,
    ) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
        let invalid = |why: String| Err(ControllerError::InvalidReplicaAssignment(why));
        if assignments.len() > crate::image::PARTITIONS_PER_TOPIC_MAX {
            return Err(ControllerError::InvalidPartitions(format!(
                "{} partitions: a topic has 1 to {}",
                assignments.len(),
                crate::image::PARTITIONS_PER_TOPIC_MAX
            )));
        }
        let replication_factor = assignments.first().map_or(0, Vec::len);
        for (partition, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() {
                return invalid(format!("partition {partition}: an empty replica list"));
            }
            if replicas.len() > replication::isr::REPLICAS_MAX {
                return invalid(format!(
                    "partition {partition}: {} replicas, at most {}",
                    replicas.len(),
                    replication::isr::REPLICAS_MAX
                ));
            }
            let mut sorted = replicas.clone();
            sorted.sort();
            if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                return invalid(format!(
                    "partition {partition}: broker {} named more than once",
                    pair[0]
                ));
            }
            if let Some(unknown) = sorted
                .iter()
                .find(|b| !self.image.brokers().contains_key(b))
            {
                return invalid(format!(
                    "partition {partition}: broker {unknown} is not registered"
                ));
            }
            if replicas.len() != replication_factor {
                return invalid(format!(
                    "partition {partition} has {} replicas, partition 0 has {replication_factor}",
                    replicas.len()
                ));
            }
            if !replicas.iter().any(|b| self.image.is_unfenced(*b)) {
                return invalid(format!(
                    "partition {partition}: every broker of {replicas:?} is fenced"
                ));
            }
        }
        assert!(assignments.iter().all(|r| r.len() == replication_factor));
        Ok(assignments)
    }

    /// The record creating topic `name`, checked in Kafka's order: the name, then the configs,
    /// then the replicas (placed, or the manual assignment validated).
    fn create_topic_batch(
        &self,
        name: &str,
        placement: Placement,
        config: TopicConfig,
    ) -> Result<RecordBatch, ControllerError> {
        crate::image::validate_topic_name(name)?;
        if self.image.topics().contains_key(name) {
            return Err(ControllerError::TopicAlreadyExists(name.to_string()));
        }
        // Kafka accepts min.insync.replicas above the replication factor: the effective min ISR
        // is capped at it (`replication::isr::min_insync_replicas_effective`).
        if config.min_insync_replicas < 1 {
            return Err(ControllerError::InvalidConfig(format!(
                "min.insync.replicas {}: at least 1",
                config.min_insync_replicas
            )));
        }
        topic_configs::check_overrides(&config.overrides)?;
        let assignments = if placement.assignments.is_empty() {
            self.place_replicas(placement.partitions, placement.replication_factor)?
        } else {
            self.validate_assignments(placement.assignments)?
        };
        assert!(!assignments.is_empty() && assignments.iter().all(|r| !r.is_empty()));
        Ok(vec![MetadataRecord::CreateTopic {
            name: name.to_string(),
            assignments,
            config,
        }])
    }

    /// The record growing topic `name` to `partitions`, with Kafka's checks and messages
    /// (`ReplicationControlManager.createPartitions`): the count must grow, a manual assignment
    /// names exactly the new partitions with the topic's replication factor; placed partitions
    /// continue the topic's round-robin over today's unfenced brokers.
    fn create_partitions_record(
        &self,
        name: &str,
        partitions: i32,
        assignments: Vec<Vec<BrokerId>>,
    ) -> Result<MetadataRecord, ControllerError> {
        let topic = self
            .image
            .topics()
            .get(name)
            .ok_or_else(|| ControllerError::UnknownTopicOrPartition(name.to_string()))?;
        let before = topic.partitions.len();
        let total = usize::try_from(partitions).unwrap_or(0);
        if total < before {
            return Err(ControllerError::InvalidPartitions(format!(
                "The topic {name} currently has {before} partition(s); {partitions} would not be \
                 an increase."
            )));
        }
        if total == before {
            return Err(ControllerError::InvalidPartitions(format!(
                "Topic already has {before} partition(s)."
            )));
        }
        if total > crate::image::PARTITIONS_PER_TOPIC_MAX {
            return Err(ControllerError::InvalidPartitions(format!(
                "{partitions} partitions: a topic has 1 to {}",
                crate::image::PARTITIONS_PER_TOPIC_MAX
            )));
        }
        let added = total - before;
        let replication_factor = topic.partitions[0].replicas.len();
        let assignments = if assignments.is_empty() {
            let brokers = self.image.brokers_unfenced();
            if replication_factor > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor {
                    replication_factor: i32::try_from(replication_factor).expect("bounded"),
                    brokers_unfenced: brokers.len(),
                });
            }
            let mut placed = crate::placement::assign_replicas(
                &brokers,
                total,
                replication_factor,
                topic.topic_id,
            );
            placed.split_off(before)
        } else {
            if assignments.len() != added {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) \
                     were specified.",
                    assignments.len()
                )));
            }
            let validated = self.validate_assignments(assignments)?;
            if validated[0].len() != replication_factor {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "The manual partition assignment includes a partition with {} replica(s), \
                     but this is not consistent with previous partitions, which have \
                     {replication_factor} replica(s).",
                    validated[0].len()
                )));
            }
            validated
        };
        assert_eq!(assignments.len(), added);
        Ok(MetadataRecord::CreatePartitions {
            name: name.to_string(),
            topic_id: topic.topic_id,
            partitions_before: u32::try_from(before).expect("bounded by PARTITIONS_PER_TOPIC_MAX"),
            assignments,
        })
    }

    /// Fences every unfenced broker whose last heartbeat is older than the session timeout.
    fn fence_expired(&mut self) {
        assert!(self.is_active(), "only the active controller fences");
        let expired: Vec<BrokerId> = self
            .image
            .brokers_unfenced()
            .into_iter()
            .filter(|broker| {
                let last = *self.heartbeats.entry(*broker).or_insert(self.now_ms);
                self.now_ms.saturating_sub(last) > self.config.broker_session_timeout_ms
            })
            .collect();
        for broker in expired {
            if self.broker_change_pending(broker) {
                continue;
            }
            buggify::probe!("controller.session.expired_fenced");
            let batch = election::fence_batch(&self.image, broker, self.config.bugs);
            if self
                .propose(batch, None, PendingKind::BrokerChange(broker))
                .is_err()
            {
                return; // Limits reached: the next tick retries.
            }
        }
    }

    fn broker_change_pending(&self, broker: BrokerId) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p.kind, PendingKind::BrokerChange(b) if b == broker))
    }

    fn propose(
        &mut self,
        batch: RecordBatch,
        request_id: Option<u64>,
        kind: PendingKind,
    ) -> Result<(), ControllerError> {
        assert!(self.is_leader(), "only the leader proposes");
        if self.pending.len() >= self.config.proposals_pending_max {
            return Err(ControllerError::LimitReached("proposals pending".into()));
        }
        let index_before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose(Vec::new(), records::encode_batch(&batch))
            .map_err(|_| ControllerError::NotController)?;
        let index = self.raw.raft.raft_log.last_index();
        assert_eq!(index, index_before + 1, "one proposal, one entry");
        self.pending.insert(
            index,
            Pending {
                term: self.raw.raft.term,
                request_id,
                kind,
            },
        );
        Ok(())
    }

    /// The Ready loop: hand raft's output to the driver as effects, mirror it in the store, apply
    /// committed entries. Persistence is asynchronous: `persist_complete` finishes each Ready.
    fn drain_ready(&mut self) {
        while self.raw.has_ready() {
            let mut ready = self.raw.ready();
            if ready.ss().is_some() {
                self.on_role_change();
            }
            let mut messages = ready.take_messages();
            self.mark_vote_requests(&mut messages);
            self.effects.extend(messages.into_iter().map(Effect::Send));
            let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
            if let Some(snapshot) = &snapshot {
                self.restore(snapshot);
            }
            self.apply_entries(ready.take_committed_entries());
            for read in ready.take_read_states() {
                if self
                    .rejoin_read
                    .as_ref()
                    .is_some_and(|(context, _)| *context == read.request_ctx)
                {
                    self.rejoin_target = Some(read.index);
                    self.rejoin_read = None;
                }
            }
            let batch = PersistBatch {
                id: ready.number(),
                snapshot,
                entries: ready.take_entries(),
                hard_state: ready.hs().cloned(),
            };
            self.raw.mut_store().apply_persist(&batch);
            let mut held = ready.take_persisted_messages();
            self.mark_vote_requests(&mut held);
            let nothing_to_persist =
                batch.snapshot.is_none() && batch.entries.is_empty() && batch.hard_state.is_none();
            self.raw.advance_append_async(ready);
            if nothing_to_persist && held.is_empty() && self.persists_outstanding.is_empty() {
                self.raw.on_persist_ready(batch.id); // Nothing to wait for, nothing before it.
            } else {
                self.persists_outstanding.push(batch.id);
                self.messages_held.push((batch.id, held));
                self.effects.push(Effect::Persist(batch));
            }
            self.sync_applied();
            self.maybe_snapshot();
        }
        self.check_rejoined();
    }

    /// A rejoining node's vote requests say so (see [`Controller::step`]).
    fn mark_vote_requests(&self, messages: &mut [Message]) {
        if !self.rejoining {
            return;
        }
        for message in messages.iter_mut().filter(|m| is_vote_request(m)) {
            if message.context.is_empty() {
                message.context = REJOINING_VOTE_CONTEXT.into();
            }
        }
    }

    /// While rejoining, a follower that knows a leader asks it for its commit index (raft's
    /// read index), once at a time.
    fn ask_rejoin_target(&mut self) {
        if !self.rejoining
            || self.is_leader()
            || self.leader_id() == 0
            || self.rejoin_target.is_some()
            || self.rejoin_read.is_some()
        {
            return;
        }
        self.rejoin_reads_sent += 1;
        let context = format!(
            "rill.rejoin.{}.{}.{}",
            self.config.id, self.started_ms, self.rejoin_reads_sent
        )
        .into_bytes();
        self.raw.read_index(context.clone());
        self.rejoin_read = Some((context, 0));
    }

    /// Ends rejoining once this node's log durably holds a commit index at which a leader had
    /// committed an entry of its own term, learned after our log started empty: every entry
    /// committed before (in earlier terms, or earlier in that term by that leader) is then at
    /// or below it. A follower learns it with a read index (see `rejoin_target`); a rejoining
    /// leader (a new quorum: only rejoining nodes vote for it) once it commits in its term.
    fn check_rejoined(&mut self) {
        if !self.rejoining {
            return;
        }
        let term = self.term();
        let log = &self.raw.raft.raft_log;
        let commit = if self.is_leader() {
            if log.term(log.committed).ok() != Some(term) {
                return;
            }
            log.committed
        } else {
            let Some(target) = self.rejoin_target else {
                return;
            };
            target
        };
        if log.committed < commit || log.persisted < commit {
            return;
        }
        tracing::info!(
            node = self.config.id,
            commit,
            "raft log caught up: this node votes with the quorum again"
        );
        self.rejoining = false;
        self.rejoin_target = None;
        self.rejoin_read = None;
        self.raw.mut_store().set_rejoining(false);
        self.effects.push(Effect::Rejoined);
    }

    /// Tells raft what is applied, within what it allows (a restored snapshot counts once durable).
    fn sync_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let target = self
            .image
            .applied_index()
            .min(log.committed)
            .min(log.persisted);
        if target > log.applied {
            self.raw.advance_apply_to(target);
        }
    }

    fn on_role_change(&mut self) {
        if self.is_leader() {
            if self.leader_first_index.is_none() {
                self.leader_first_index = Some(self.raw.raft.raft_log.last_index());
                self.heartbeats.clear(); // Every broker gets a full session from now.
            }
            return;
        }
        self.leader_first_index = None;
        self.heartbeats.clear();
        for (_, pending) in std::mem::take(&mut self.pending) {
            if let Some(request_id) = pending.request_id {
                let reply = Err(ControllerError::ProposalDropped);
                self.effects.push(Effect::Reply { request_id, reply });
            }
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        let image = MetadataImage::decode(snapshot.get_data()).expect("leaders send our encoding");
        assert_eq!(
            image.applied_index(),
            snapshot.get_metadata().index,
            "snapshot index"
        );
        assert!(
            image.applied_index() > self.image.applied_index(),
            "snapshots move forward"
        );
        self.image = image;
        self.effects.push(Effect::MetadataChanged {
            applied_index: self.image.applied_index(),
        });
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        for entry in entries {
            if entry.index <= self.image.applied_index() {
                continue; // Covered by a snapshot restored earlier.
            }
            let decoded = match entry.get_entry_type() {
                EntryType::EntryNormal if !entry.data.is_empty() => {
                    records::decode_batch(&entry.data)
                }
                _ => None,
            };
            let result = match &decoded {
                Some(batch) => self.image.apply_batch(entry.index, batch),
                None => {
                    self.image.skip_entry(entry.index);
                    Ok(())
                }
            };
            self.answer(entry.index, entry.term, result);
        }
        assert!(
            self.image.applied_index() >= last,
            "every committed entry applied"
        );
        self.effects.push(Effect::MetadataChanged {
            applied_index: self.image.applied_index(),
        });
    }

    fn answer(&mut self, index: u64, term: u64, result: Result<(), ControllerError>) {
        let Some(pending) = self.pending.remove(&index) else {
            return;
        };
        let Some(request_id) = pending.request_id else {
            return;
        };
        let reply = if pending.term != term {
            Err(ControllerError::ProposalDropped)
        } else {
            result.map(|()| self.reply_for(&pending.kind))
        };
        self.effects.push(Effect::Reply { request_id, reply });
    }

    fn reply_for(&self, kind: &PendingKind) -> Reply {
        match kind {
            PendingKind::Register => Reply::Registered,
            PendingKind::AlterSecurity => Reply::SecurityAltered,
            PendingKind::AlterBrokerConfig(resource) => Reply::BrokerConfigAltered(
                self.image
                    .broker_configs(resource)
                    .cloned()
                    .unwrap_or_default(),
            ),
            PendingKind::DeleteTopic => Reply::TopicDeleted,
            PendingKind::CreateTopic(name) => {
                let topic = self.image.topics().get(name).expect("just created");
                let assignments = topic
                    .partitions
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect();
                Reply::TopicCreated {
                    topic_id: topic.topic_id,
                    assignments,
                }
            }
            PendingKind::AlterTopicConfig(name) => {
                let topic = self.image.topics().get(name).expect("just altered");
                Reply::TopicConfigAltered(topic.config.clone())
            }
            PendingKind::CreatePartitions(name, before) => {
                let topic = self.image.topics().get(name).expect("just grown");
                let assignments = topic.partitions[*before..]
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect();
                Reply::PartitionsCreated { assignments }
            }
            PendingKind::AlterPartition(tp) => {
                Reply::PartitionAltered(self.image.partition(tp).expect("just changed").clone())
            }
            PendingKind::ElectLeaders(outcomes) => Reply::LeadersElected(outcomes.clone()),
            PendingKind::BrokerChange(_) | PendingKind::Elections => {
                unreachable!("internal proposals have no request")
            }
        }
    }

    /// Every `snapshot_interval_entries` applied entries, snapshot the image and compact the log.
    fn maybe_snapshot(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let store = self.raw.store();
        if applied < store.snapshot_index() + self.config.snapshot_interval_entries {
            return;
        }
        assert_eq!(
            applied,
            self.image.applied_index(),
            "raft applied what the image applied"
        );
        let term = raft::Storage::term(store, applied).expect("applied entries are retained");
        let mut snapshot = Snapshot {
            data: self.image.encode().into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = applied;
        snapshot.mut_metadata().term = term;
        snapshot
            .mut_metadata()
            .set_conf_state(store.conf_state().clone());
        self.raw.mut_store().compact_to(snapshot.clone());
        self.effects.push(Effect::SaveSnapshot(snapshot));
    }

    /// Metadata after `after_index`: records from the retained log, or the image if compacted.
    pub fn fetch_metadata(&self, after_index: u64) -> MetadataFetch {
        let applied = self.image.applied_index();
        let store = self.raw.store();
        if after_index >= applied {
            // Up to date, or ahead of this (lagging) node: nothing to give. An image would move
            // the broker backwards.
            return MetadataFetch::Records {
                batches: Vec::new(),
                last_index: after_index,
            };
        }
        if after_index < store.snapshot_index() {
            return MetadataFetch::Image(self.image.clone());
        }
        let limit = self.config.fetch_entries_max as u64;
        let last_index = applied.min(after_index + limit);
        let batches = (after_index + 1..=last_index)
            .filter_map(|index| {
                let entry = store
                    .entry(index)
                    .expect("applied entries after the snapshot are retained");
                let batch = match entry.get_entry_type() {
                    EntryType::EntryNormal => records::decode_batch(&entry.data),
                    _ => None,
                };
                batch.map(|b| (index, b))
            })
            .collect();
        assert!(last_index > after_index, "something new was found");
        MetadataFetch::Records {
            batches,
            last_index,
        }
    }

    /// Checks the image and the agreement between raft and the image.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.image.check_invariants()?;
        let log = &self.raw.raft.raft_log;
        if log.applied > self.image.applied_index() || self.image.applied_index() > log.committed {
            return Err(format!(
                "applied: raft {} image {} commit {}",
                log.applied,
                self.image.applied_index(),
                log.committed
            ));
        }
        if self.store().snapshot_index() > self.image.applied_index() {
            return Err("snapshot past the image".into());
        }
        Ok(())
    }
}
