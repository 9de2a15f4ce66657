//! The controller node driver: one task owns the sans-IO [`Controller`] and carries out its
//! effects; around it, a listener for peers and clients and one sender task per peer.
//!
//! ```text
//!  listener ──accept──▶ connection task ──Event──▶ ┌───────────┐ ──Message──▶ peer sender ──▶ peer
//!       (frames: Raft, Request)        ◀─Reply──── │ core task │ (bounded queue, reconnects,
//!                                                  │ Controller│  drops on overflow)
//!  tick timer (jittered) ────────────────────────▶ │ + durable │
//!                                                  └───────────┘
//! ```
//!
//! The core task is the only owner of the controller, so there is no lock around it. Persists
//! are carried out inline (synced on the [`DurableRaftStore`], then `persist_complete`): the
//! controller's writes are small and rare, and completing them in order is what raft needs.
//! A disk error stops the node (fail-stop): its durable state is only trusted again after a
//! reopen, which recovery makes safe.

use super::store::DurableRaftStore;
use super::wire::{self, ControlMessage, MessageReader, FETCH_WAIT_MS_MAX};
use super::ControlError;
use crate::auth::{self, ClusterSecret, NodeCredentials, Purpose, ServerHandshake};
use crate::runtime;
use crate::watch;
use controller::raft_prelude::{Message, MessageType};
use controller::{Controller, ControllerConfig, ControllerError, Effect, Request};
use log_core::Disk;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Events queued for the core task beyond this are dropped (raft retransmits; clients time out).
const EVENTS_QUEUE_MAX: usize = 4096;
/// Raft messages queued for one peer beyond this are dropped.
const PEER_QUEUE_MAX: usize = 1024;
/// Answers queued for one client connection beyond this are dropped (the client times out).
const CONNECTION_QUEUE_MAX: usize = 256;
/// Metadata fetches parked at once; more are answered at once.
const FETCHES_PARKED_MAX: usize = 4096;
/// Bound on a connect or a frame write to a peer: a partitioned link holds data silently.
const PEER_IO_TIMEOUT_MS: u64 = 1_000;
/// First and largest delay between reconnect attempts to a peer.
const RECONNECT_BACKOFF_MS_MIN: u64 = 50;
/// See [`RECONNECT_BACKOFF_MS_MIN`].
const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;

/// Static configuration of one controller node.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's raft id; a key of `voters`.
    pub node_id: u64,
    /// Every voter's raft id and the `host:port` of its controller listener.
    pub voters: BTreeMap<u64, String>,
    /// Where this node's listener binds (`host:port`).
    pub listen: String,
    /// The raft tick interval in ms (election after `controller.election_tick` ticks).
    pub tick_ms: u64,
    /// Each tick interval is drawn from `[tick_ms, tick_ms + tick_jitter_ms]`: the election
    /// jitter raft-rs would draw from an unseeded RNG.
    pub tick_jitter_ms: u64,
    /// The core's configuration; its `id` and `voters` must match the fields above.
    pub controller: ControllerConfig,
    /// The cluster secret: every connection to the listener must prove it (and is then bound
    /// to the node id it proved), and this node proves it to its peers. `None` runs without
    /// authentication (the node warns at start).
    pub secret: Option<ClusterSecret>,
}

impl QuorumConfig {
    fn validate(&self) -> Result<(), ControlError> {
        let voters: Vec<u64> = self.voters.keys().copied().collect();
        let mut core_voters = self.controller.voters.clone();
        core_voters.sort_unstable();
        if self.controller.id != self.node_id || core_voters != voters {
            return Err(ControlError::Config(format!(
                "node {} voters {voters:?} but the core has {} {core_voters:?}",
                self.node_id, self.controller.id
            )));
        }
        if !self.voters.contains_key(&self.node_id) || self.tick_ms == 0 {
            return Err(ControlError::Config(format!(
                "node {} not a voter, or tick_ms 0",
                self.node_id
            )));
        }
        Ok(())
    }
}

/// What a controller node reports about itself (for `/metrics` and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerStatus {
    /// Leader and caught up: it answers requests.
    pub is_active: bool,
    /// raft's current term.
    pub term: u64,
    /// The raft leader this node knows of (0: none).
    pub leader_id: u64,
    /// The metadata image's applied raft index.
    pub applied_index: u64,
    /// The core task ended (shutdown or a disk error).
    pub stopped: bool,
}

/// The running node: status and shutdown.
#[derive(Debug)]
pub struct ControllerHandle {
    /// The node's id.
    node_id: u64,
    /// Where the listener is bound (the real port when configured with port 0).
    local_addr: SocketAddr,
    /// Published by the core task after every step.
    status: watch::Receiver<ControllerStatus>,
    /// Set to true to stop every task of the node.
    shutdown: watch::Sender<bool>,
}

impl ControllerHandle {
    /// The node's raft id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest status.
    pub fn status(&self) -> ControllerStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change (for `/metrics`, which outlives no handle).
    pub fn status_watch(&self) -> watch::Receiver<ControllerStatus> {
        self.status.clone()
    }

    /// Stops the node: the core, the listener, every connection and peer sender close (peers
    /// read EOF). Durable state stays on the disk for a restart.
    pub fn shutdown(&self) {
        let _already = self.shutdown.send_replace(true);
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the connection and peer tasks hand the core task.
#[derive(Debug)]
enum Event {
    /// A raft message from a peer.
    Raft(Message),
    /// A client request and where to answer it.
    Request {
        /// The client's correlation id.
        client_id: u64,
        /// The request.
        request: Request,
        /// Long-poll budget for metadata fetches.
        wait_ms: u64,
        /// The connection's outbound queue.
        reply_to: mpsc::Sender<ControlMessage>,
    },
    /// A snapshot message to `to` was (not) written to the peer's connection.
    SnapshotReport {
        /// The peer.
        to: u64,
        /// Whether it left.
        delivered: bool,
    },
}

/// Starts controller nodes.
pub struct ControllerNode;

impl ControllerNode {
    /// Binds `config.listen`, recovers the durable state in `dir` and starts the node.
    pub async fn start(
        config: QuorumConfig,
        disk: Arc<dyn Disk>,
        dir: &Path,
    ) -> Result<ControllerHandle, ControlError> {
        let listener = TcpListener::bind(config.listen.as_str()).await?;
        Self::start_on(config, listener, disk, dir)
    }

    /// Starts the node on an already bound listener (tests bind port 0 first to learn every
    /// voter's address).
    pub fn start_on(
        config: QuorumConfig,
        listener: TcpListener,
        disk: Arc<dyn Disk>,
        dir: &Path,
    ) -> Result<ControllerHandle, ControlError> {
        config.validate()?;
        let node_id = config.node_id;
        let voter_ids: Vec<u64> = config.voters.keys().copied().collect();
        let (store, state) = DurableRaftStore::open(disk, dir, &voter_ids)?;
        let local_addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::channel(EVENTS_QUEUE_MAX);
        let mut peers = BTreeMap::new();
        for (id, addr) in config
            .voters
            .iter()
            .filter(|(id, _)| **id != config.node_id)
        {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            peers.insert(*id, tx);
            let sender = PeerSender {
                peer: *id,
                addr: addr.clone(),
                credentials: config.secret.clone().map(|secret| NodeCredentials {
                    node_id: config.node_id,
                    secret,
                }),
                queue: rx,
                events: events_tx.clone(),
                shutdown: shutdown_rx.clone(),
            };
            tokio::spawn(sender.run());
        }
        let listening = Listening {
            node_id,
            events: events_tx,
            voters: voter_ids,
            secret: config.secret.clone(),
        };
        tokio::spawn(accept_loop(listener, listening, shutdown_rx.clone()));
        let controller = Controller::new(config.controller.clone(), state, runtime::monotonic_ms());
        let (status_tx, status_rx) = watch::channel(ControllerStatus::default());
        let core = Core {
            config,
            controller,
            store,
            peers,
            waiting: BTreeMap::new(),
            parked: Vec::new(),
            request_id_next: 1,
            status: status_tx,
        };
        tokio::spawn(core.run(events_rx, shutdown_rx));
        Ok(ControllerHandle {
            node_id,
            local_addr,
            status: status_rx,
            shutdown: shutdown_tx,
        })
    }
}

/// A client waiting for the reply to a request the core took.
#[derive(Debug)]
struct Waiter {
    /// The client's correlation id.
    client_id: u64,
    /// The connection to answer on.
    reply_to: mpsc::Sender<ControlMessage>,
}

/// A metadata fetch with nothing new to return yet (a long poll).
#[derive(Debug)]
struct ParkedFetch {
    /// Who to answer.
    waiter: Waiter,
    /// The index the broker has applied.
    after_index: u64,
    /// When to answer even with nothing new (monotonic ms).
    deadline_ms: u64,
}

/// The task owning the controller.
struct Core {
    /// Static configuration.
    config: QuorumConfig,
    /// The sans-IO core.
    controller: Controller,
    /// The durable copy of the raft state.
    store: DurableRaftStore,
    /// Each peer's outbound queue.
    peers: BTreeMap<u64, mpsc::Sender<Message>>,
    /// Requests handed to the controller, by the core's request id.
    waiting: BTreeMap<u64, Waiter>,
    /// Long-polling metadata fetches.
    parked: Vec<ParkedFetch>,
    /// The next request id handed to the controller (ids stay unique for the node's life).
    request_id_next: u64,
    /// Where the status is published.
    status: watch::Sender<ControllerStatus>,
}

impl Core {
    async fn run(mut self, mut events: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) {
        let mut tick_at = self.tick_next();
        loop {
            tokio::select! {
                // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
                // makes a simulated seed run differently the second time in one process.
                biased;
                _ = shutdown.changed() => break,
                () = tokio::time::sleep_until(tick_at) => {
                    tick_at = self.tick_next();
                    let now_ms = runtime::monotonic_ms();
                    self.controller.tick(now_ms);
                    self.expire_fetches(now_ms);
                }
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
            }
            if runtime::buggify_rarely("controller.apply.slow") {
                // BUGGIFY: a slow apply (a stalled controller thread or disk): everything the
                // controller does waits, its raft ticks and answers too.
                let delay = runtime::jitter_ms(1, 300);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if let Err(error) = self.carry_out_effects() {
                buggify::probe!("controller.stopped_on_disk_error");
                tracing::error!(node = self.config.node_id, %error, "controller stops: disk error");
                break;
            }
            #[cfg(debug_assertions)]
            if let Err(broken) = self.controller.check_invariants() {
                panic!(
                    "controller {} invariant broken: {broken}",
                    self.config.node_id
                );
            }
            self.publish_status(false);
        }
        // Peers, the listener and connections stop on the same signal (or the handle's drop).
        self.publish_status(true);
    }

    fn tick_next(&self) -> tokio::time::Instant {
        let delay_ms = runtime::jitter_ms(
            self.config.tick_ms,
            self.config.tick_ms + self.config.tick_jitter_ms,
        );
        tokio::time::Instant::now() + Duration::from_millis(delay_ms)
    }

    fn publish_status(&self, stopped: bool) {
        let status = ControllerStatus {
            is_active: !stopped && self.controller.is_active(),
            term: self.controller.term(),
            leader_id: self.controller.leader_id(),
            applied_index: self.controller.image().applied_index(),
            stopped,
        };
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Raft(message) => self.controller.step(message),
            Event::SnapshotReport { to, delivered } => {
                self.controller.report_snapshot(to, delivered);
            }
            Event::Request {
                client_id,
                request,
                wait_ms,
                reply_to,
            } => self.on_request(
                Waiter {
                    client_id,
                    reply_to,
                },
                request,
                wait_ms,
            ),
        }
    }

    fn on_request(&mut self, waiter: Waiter, request: Request, wait_ms: u64) {
        if !self.controller.is_active() {
            self.not_controller(&waiter);
            return;
        }
        let now_ms = runtime::monotonic_ms();
        if let Request::FetchMetadata { after_index } = request {
            let nothing_new = after_index >= self.controller.image().applied_index();
            if nothing_new && wait_ms > 0 && self.parked.len() < FETCHES_PARKED_MAX {
                let deadline_ms = now_ms + wait_ms.min(FETCH_WAIT_MS_MAX);
                self.parked.push(ParkedFetch {
                    waiter,
                    after_index,
                    deadline_ms,
                });
                return;
            }
        }
        let request_id = self.request_id_next;
        self.request_id_next += 1;
        let replaced = self.waiting.insert(request_id, waiter);
        assert!(replaced.is_none(), "request ids are unique");
        self.controller.request(request_id, request, now_ms);
    }

    fn not_controller(&self, waiter: &Waiter) {
        let leader = self.controller.leader_id();
        let answer = ControlMessage::NotController {
            id: waiter.client_id,
            leader_hint: (leader != 0).then_some(leader),
        };
        answer_client(&waiter.reply_to, answer);
    }

    /// Answers parked fetches past their deadline (with nothing new).
    fn expire_fetches(&mut self, now_ms: u64) {
        let (due, parked): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|fetch| fetch.deadline_ms <= now_ms);
        self.parked = parked;
        for fetch in due {
            self.answer_fetch(fetch);
        }
    }

    /// The image moved: answer parked fetches that now have something new.
    fn wake_fetches(&mut self, applied_index: u64) {
        let (due, parked): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|fetch| fetch.after_index < applied_index);
        self.parked = parked;
        for fetch in due {
            self.answer_fetch(fetch);
        }
    }

    fn answer_fetch(&mut self, fetch: ParkedFetch) {
        let request_id = self.request_id_next;
        self.request_id_next += 1;
        self.waiting.insert(request_id, fetch.waiter);
        let request = Request::FetchMetadata {
            after_index: fetch.after_index,
        };
        self.controller
            .request(request_id, request, runtime::monotonic_ms());
    }

    /// Carries out every effect, including those the carrying out produces (persist
    /// completions release held messages), in order.
    fn carry_out_effects(&mut self) -> Result<(), ControlError> {
        loop {
            let effects = self.controller.take_effects();
            if effects.is_empty() {
                return Ok(());
            }
            for effect in effects {
                self.carry_out(effect)?;
            }
        }
    }

    fn carry_out(&mut self, effect: Effect) -> Result<(), ControlError> {
        match effect {
            Effect::Send(message) => self.send(message),
            Effect::Persist(batch) => {
                self.store.apply(&batch)?;
                self.controller.persist_complete(batch.id);
            }
            Effect::SaveSnapshot(snapshot) => self.store.compact_to(&snapshot)?,
            Effect::Rejoined => self.store.mark_caught_up()?,
            Effect::Reply { request_id, reply } => self.reply(request_id, reply),
            Effect::MetadataChanged { applied_index } => self.wake_fetches(applied_index),
        }
        Ok(())
    }

    fn send(&mut self, message: Message) {
        let to = message.to;
        let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
        let Some(queue) = self.peers.get(&to) else {
            tracing::warn!(
                node = self.config.node_id,
                to,
                "raft message to a non-peer dropped"
            );
            return;
        };
        if queue.try_send(message).is_err() && is_snapshot {
            // Dropped on overflow: raft-rs must hear of it or replication to `to` stays paused.
            self.controller.report_snapshot(to, false);
        }
    }

    fn reply(&mut self, request_id: u64, reply: Result<controller::Reply, ControllerError>) {
        let Some(waiter) = self.waiting.remove(&request_id) else {
            return; // Internal proposals have no waiter.
        };
        if reply == Err(ControllerError::NotController) {
            self.not_controller(&waiter);
            return;
        }
        let answer = ControlMessage::Reply {
            id: waiter.client_id,
            result: reply,
        };
        answer_client(&waiter.reply_to, answer);
    }
}

/// Queues an answer on a client's connection; a full or closed queue drops it (the client's
/// own timeout covers that).
fn answer_client(reply_to: &mpsc::Sender<ControlMessage>, answer: ControlMessage) {
    if reply_to.try_send(answer).is_err() {
        tracing::debug!("answer dropped: client connection full or gone");
    }
}

/// What every inbound connection of a node shares.
#[derive(Clone)]
struct Listening {
    /// This node's id (the server side of handshakes).
    node_id: u64,
    /// The core task's queue.
    events: mpsc::Sender<Event>,
    /// Raft messages from anyone else are dropped.
    voters: Vec<u64>,
    /// The cluster secret; `None`: connections are not authenticated.
    secret: Option<ClusterSecret>,
}

/// Accepts connections until shutdown; each gets its own task.
async fn accept_loop(
    listener: TcpListener,
    listening: Listening,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
            // makes a simulated seed run differently the second time in one process.
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = Connection {
                        listening: listening.clone(),
                        shutdown: shutdown.clone(),
                        peer,
                        authenticated: None,
                        handshake: None,
                    };
                    tokio::spawn(connection.serve(stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "controller listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS_MIN)).await;
                }
            },
        }
    }
}

/// One inbound connection: raft messages from a peer, or requests from a client.
struct Connection {
    /// What the node's connections share.
    listening: Listening,
    /// Stops the connection with the node.
    shutdown: watch::Receiver<bool>,
    /// The remote address, for logs.
    peer: SocketAddr,
    /// The node id the peer proved (with a secret configured, nothing else is served before).
    authenticated: Option<u64>,
    /// A handshake between its hello and its proof.
    handshake: Option<ServerHandshake>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let (mut read_half, write_half) = tokio::io::split(stream);
        let (out_tx, out_rx) = mpsc::channel(CONNECTION_QUEUE_MAX);
        let mut writer = tokio::spawn(write_answers(write_half, out_rx, self.shutdown.clone()));
        let mut reader = MessageReader::default();
        loop {
            let message = tokio::select! {
                // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
                // makes a simulated seed run differently the second time in one process.
                biased;
                _ = self.shutdown.changed() => break,
                // A write failed (half a frame may be out): the connection ends here too, so the
                // peer sees it close instead of waiting out its whole request timeout for an
                // answer that never comes (seed 284071: a broker without metadata for 6 s).
                _ = &mut writer => {
                    buggify::probe!("controller.connection.closed_after_a_failed_write");
                    break;
                }
                read = reader.read(&mut read_half) => read,
            };
            match message {
                Ok(Some(message)) => {
                    if let Err(error) = self.dispatch(message, &out_tx) {
                        tracing::warn!(peer = %self.peer, %error, "controller connection closed");
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(peer = %self.peer, %error, "controller connection closed");
                    break;
                }
            }
        }
        drop(out_tx);
        if *self.shutdown.borrow() {
            writer.abort();
        }
    }

    /// Runs the server side of the handshake; `Ok(true)` when `message` was part of it.
    fn handshake_step(
        &mut self,
        message: &ControlMessage,
        out_tx: &mpsc::Sender<ControlMessage>,
    ) -> Result<bool, ControlError> {
        let auth_error = |e: auth::AuthError| ControlError::Auth(e.to_string());
        let answer = match message {
            ControlMessage::AuthHello(hello) => {
                let Some(secret) = &self.listening.secret else {
                    return Err(ControlError::Auth(
                        "a peer authenticates but this node has no cluster secret".into(),
                    ));
                };
                if self.authenticated.is_some() || self.handshake.is_some() {
                    return Err(ControlError::Auth("a second handshake".into()));
                }
                let is_member = |id: u64| id > 0 && i32::try_from(id).is_ok();
                let (handshake, challenge) = ServerHandshake::on_hello(
                    secret,
                    Purpose::Controller,
                    self.listening.node_id,
                    hello,
                    is_member,
                )
                .map_err(auth_error)?;
                self.handshake = Some(handshake);
                ControlMessage::AuthChallenge(challenge)
            }
            ControlMessage::AuthProof(proof) => {
                let handshake = self
                    .handshake
                    .take()
                    .ok_or_else(|| ControlError::Auth("a proof without a hello".into()))?;
                let node = handshake.on_proof(proof).map_err(auth_error)?;
                tracing::debug!(peer = %self.peer, node, "controller connection authenticated");
                self.authenticated = Some(node);
                ControlMessage::AuthOk
            }
            _ => return Ok(false),
        };
        answer_client(out_tx, answer);
        Ok(true)
    }

    fn dispatch(
        &mut self,
        message: ControlMessage,
        out_tx: &mpsc::Sender<ControlMessage>,
    ) -> Result<(), ControlError> {
        if self.handshake_step(&message, out_tx)? {
            return Ok(());
        }
        if self.listening.secret.is_some() && self.authenticated.is_none() {
            return Err(ControlError::Auth(format!(
                "unauthenticated {} refused",
                message_kind(&message)
            )));
        }
        let event = match message {
            ControlMessage::Raft(bytes) => {
                let raft = wire::raft_from_bytes(&bytes)?;
                if !self.listening.voters.contains(&raft.from) {
                    return Err(ControlError::Malformed(format!("raft from {}", raft.from)));
                }
                if self.authenticated.is_some_and(|node| node != raft.from) {
                    return Err(ControlError::Auth(format!(
                        "raft message from {} on a connection of node {:?}",
                        raft.from, self.authenticated
                    )));
                }
                Event::Raft(raft)
            }
            ControlMessage::Request {
                id,
                request,
                wait_ms,
            } => {
                if let Some(node) = self.authenticated {
                    check_request_sender(node, &request)?;
                }
                Event::Request {
                    client_id: id,
                    request,
                    wait_ms,
                    reply_to: out_tx.clone(),
                }
            }
            other => {
                return Err(ControlError::Malformed(format!(
                    "unexpected message {other:?}"
                )))
            }
        };
        if self.listening.events.try_send(event).is_err() {
            tracing::debug!(peer = %self.peer, "controller busy: message dropped");
        }
        Ok(())
    }
}

/// The kind of a message, for logs (never its contents).
fn message_kind(message: &ControlMessage) -> &'static str {
    match message {
        ControlMessage::AuthHello(_) => "AuthHello",
        ControlMessage::AuthChallenge(_) => "AuthChallenge",
        ControlMessage::AuthProof(_) => "AuthProof",
        ControlMessage::AuthOk => "AuthOk",
        ControlMessage::Raft(_) => "raft message",
        ControlMessage::Request { .. } => "request",
        ControlMessage::Reply { .. } => "reply",
        ControlMessage::NotController { .. } => "NotController",
    }
}

/// A broker speaks for itself only: its registration, heartbeats, replica reports and ISR
/// changes must name the node it authenticated as. Topic creation, deletion, config changes,
/// partition growth and leader elections are forwarded by any member on behalf of its Kafka clients, and metadata is
/// for every member.
fn check_request_sender(node: u64, request: &Request) -> Result<(), ControlError> {
    let named = match request {
        Request::RegisterBroker { broker, .. }
        | Request::BrokerHeartbeat { broker, .. }
        | Request::ReplicaOffline { broker, .. }
        | Request::ReplicaOnline { broker, .. } => Some(*broker),
        Request::AlterPartition(alter) => Some(alter.broker),
        Request::CreateTopic { .. }
        | Request::DeleteTopic { .. }
        | Request::AlterTopicConfig { .. }
        | Request::AlterBrokerConfig { .. }
        | Request::CreatePartitions { .. }
        | Request::AlterSecurity(_)
        | Request::ElectLeaders { .. }
        | Request::FetchMetadata { .. } => None,
    };
    match named {
        Some(broker) if u64::try_from(broker.0).ok() != Some(node) => Err(ControlError::Auth(
            format!("a request for broker {} from node {node}", broker.0),
        )),
        _ => Ok(()),
    }
}

/// Writes a connection's answers in order until its queue closes, a write fails or shutdown.
async fn write_answers(
    mut write_half: tokio::io::WriteHalf<TcpStream>,
    mut answers: mpsc::Receiver<ControlMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let answer = tokio::select! {
            // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
            // makes a simulated seed run differently the second time in one process.
            biased;
            _ = shutdown.changed() => return,
            answer = answers.recv() => answer,
        };
        let Some(answer) = answer else { return };
        let write = wire::write_message(&mut write_half, &answer);
        match tokio::time::timeout(Duration::from_millis(PEER_IO_TIMEOUT_MS), write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "controller answer not written");
                return;
            }
            Err(_elapsed) => return,
        }
    }
}

/// Sends raft messages to one peer over its own connection, reconnecting with backoff.
struct PeerSender {
    /// The peer's raft id.
    peer: u64,
    /// The peer's listener.
    addr: String,
    /// What this node proves itself with (`None`: no handshake).
    credentials: Option<NodeCredentials>,
    /// Messages the core wants sent.
    queue: mpsc::Receiver<Message>,
    /// For snapshot delivery reports.
    events: mpsc::Sender<Event>,
    /// Stops the sender with the node.
    shutdown: watch::Receiver<bool>,
}

impl PeerSender {
    async fn run(mut self) {
        let mut stream: Option<TcpStream> = None;
        let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
        let mut retry_at = tokio::time::Instant::now();
        loop {
            let message = tokio::select! {
                // Deterministic branch order: tokio otherwise draws it from a process-wide RNG, which
                // makes a simulated seed run differently the second time in one process.
                biased;
                _ = self.shutdown.changed() => return,
                message = self.queue.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            if stream.is_none() && tokio::time::Instant::now() >= retry_at {
                stream = self.connect().await;
                if stream.is_some() {
                    backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                } else {
                    retry_at = tokio::time::Instant::now()
                        + Duration::from_millis(runtime::jitter_ms(backoff_ms / 2, backoff_ms));
                    backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                }
            }
            if runtime::buggify_rarely("controller.peer.delay") {
                // BUGGIFY: a delayed raft RPC (the ones behind it wait too).
                let delay = runtime::jitter_ms(1, 300);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            // BUGGIFY: a dropped raft RPC (with its connection).
            let dropped = runtime::buggify_rarely("controller.peer.drop");
            let delivered = match stream.as_mut() {
                Some(_) if dropped => false,
                Some(connected) => self.write(connected, &message).await,
                None => false,
            };
            if !delivered {
                stream = None; // Dropped: raft retransmits what matters.
            }
            if message.get_msg_type() == MessageType::MsgSnapshot {
                let report = Event::SnapshotReport {
                    to: self.peer,
                    delivered,
                };
                let _dropped_if_busy = self.events.try_send(report);
            }
        }
    }

    async fn connect(&self) -> Option<TcpStream> {
        let timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
        match tokio::time::timeout(timeout, self.connect_authenticated()).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error @ ControlError::Auth(_))) => {
                tracing::warn!(peer = self.peer, %error, "controller peer not authenticated");
                None
            }
            Ok(Err(error)) => {
                tracing::debug!(peer = self.peer, %error, "controller peer unreachable");
                None
            }
            Err(_elapsed) => None,
        }
    }

    async fn connect_authenticated(&self) -> Result<TcpStream, ControlError> {
        let mut stream = TcpStream::connect(self.addr.as_str()).await?;
        let _ = stream.set_nodelay(true);
        if let Some(credentials) = &self.credentials {
            let mut reader = MessageReader::default();
            wire::authenticate(&mut stream, &mut reader, credentials, self.peer).await?;
        }
        Ok(stream)
    }

    async fn write(&self, stream: &mut TcpStream, message: &Message) -> bool {
        let Ok(bytes) = wire::raft_to_bytes(message) else {
            return false;
        };
        let message = ControlMessage::Raft(bytes);
        let framed = wire::write_message(stream, &message);
        let timeout = Duration::from_millis(PEER_IO_TIMEOUT_MS);
        matches!(tokio::time::timeout(timeout, framed).await, Ok(Ok(())))
    }
}
