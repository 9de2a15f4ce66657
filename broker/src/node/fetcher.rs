//! Replica fetchers: one per leader broker that this broker follows partitions of (Kafka's
//! `ReplicaFetcherThread`). Every partition's core sends its Fetch or OffsetsForLeaderEpoch as an
//! effect; the transport queues it on the fetcher for that leader, which carries every queued
//! request in one Kafka request on one connection, with one long poll for all of them, and
//! delivers each partition's answer back to its core.
//!
//! A round: wait for queued requests; gather (the partitions that were answered with records in
//! the last round fetch again only after their flush, which the IO worker does for all of them in
//! one group commit: wait for them, boundedly, so they ride this round rather than wait out the
//! next long poll); send the OffsetsForLeaderEpoch requests, then the fetches; deliver. Every
//! queued request is answered — with the leader's answer, or after a backoff with a refusal when
//! the leader is unreachable — so the cores' retransmit timers are a backstop, not the pace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use replication::{FetchRequest, Message, OffsetsForLeaderEpochRequest};
use tokio::sync::Notify;
use wire::{BrokerId, TopicPartition};

use super::peer::{PeerConnection, PeerError};
use super::replication_wire as rw;
use super::shared::Shared;
use crate::partition::Partition;

/// Longest a round waits for the partitions answered with records in the last round (their
/// flush) before it leaves without them.
const GATHER_WAIT_MS_MAX: u64 = 200;
/// How often an idle fetcher checks that its node still exists.
const IDLE_CHECK_MS: u64 = 1_000;

/// The fetchers of one broker, by leader.
#[derive(Default)]
pub struct Fetchers {
    /// One queue per leader; its task runs as long as the node does.
    by_leader: Mutex<BTreeMap<BrokerId, Arc<Queue>>>,
}

/// What the partitions following one leader want sent to it.
#[derive(Default)]
struct Queue {
    /// The requests, behind a lock never held across an `.await` or a core step.
    pending: Mutex<Pending>,
    /// Woken on every queued request.
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    /// The newest fetch of each partition.
    fetches: BTreeMap<TopicPartition, FetchRequest>,
    /// The newest OffsetsForLeaderEpoch of each partition.
    epochs: BTreeMap<TopicPartition, OffsetsForLeaderEpochRequest>,
    /// Answered with records in the last round and not heard from since (flushing).
    awaited: BTreeSet<TopicPartition>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.fetches.is_empty() && self.epochs.is_empty()
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Only plain inserts and removals happen under this lock: a panic there is a bug that the
        // fail-stop build aborts on; tests may go on with what is left.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Fetchers {
    /// Queues a follower's request for `leader`, starting that leader's fetcher on first use.
    /// Never blocks (partitions call this with their lock held).
    pub fn send(&self, node: &Arc<Shared>, leader: BrokerId, tp: TopicPartition, message: Message) {
        let queue = {
            let mut by_leader = self.by_leader.lock().unwrap_or_else(|p| p.into_inner());
            by_leader
                .entry(leader)
                .or_insert_with(|| {
                    let queue = Arc::new(Queue::default());
                    tokio::spawn(run(Arc::downgrade(node), leader, queue.clone()));
                    queue
                })
                .clone()
        };
        {
            let mut pending = queue.lock();
            pending.awaited.remove(&tp);
            match message {
                Message::Fetch(request) => {
                    pending.fetches.insert(tp, request);
                }
                Message::OffsetsForLeaderEpoch(request) => {
                    pending.epochs.insert(tp, request);
                }
                other => {
                    tracing::debug!(?other, "answers travel inside request handlers, not here");
                    return;
                }
            }
        }
        queue.wake.notify_one();
    }
}

/// One leader's fetcher: rounds until the node is gone.
async fn run(node: Weak<Shared>, leader: BrokerId, queue: Arc<Queue>) {
    let mut connection: Option<PeerConnection> = None;
    loop {
        while queue.lock().is_empty() {
            let idle = Duration::from_millis(IDLE_CHECK_MS);
            let _woken_or_idle = tokio::time::timeout(idle, queue.wake.notified()).await;
            if node.strong_count() == 0 {
                return;
            }
        }
        let late = gather(&queue).await;
        let (epochs, fetches) = {
            let mut pending = queue.lock();
            let epochs: Vec<_> = std::mem::take(&mut pending.epochs).into_iter().collect();
            let fetches: Vec<_> = std::mem::take(&mut pending.fetches).into_iter().collect();
            (epochs, fetches)
        };
        let Some(node) = node.upgrade() else {
            return;
        };
        if late > 0 {
            // Each is a round that waited GATHER_WAIT_MS_MAX for a partition that had not
            // fetched again: a replication latency of that much for whatever it waited with.
            node.metrics
                .count("rill_replica_fetch_gather_timeouts_total", 1);
            node.metrics.count(
                "rill_replica_fetch_gather_late_partitions_total",
                late as u64,
            );
        }
        if !epochs.is_empty() {
            epochs_round(&node, leader, &mut connection, epochs).await;
        }
        if !fetches.is_empty() {
            fetch_round(&node, leader, &mut connection, &queue, fetches).await;
        }
    }
}

/// Waits, at most [`GATHER_WAIT_MS_MAX`], until every partition answered with records in the
/// last round has queued its next request.
/// Returns how many partitions it left without.
async fn gather(queue: &Queue) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(GATHER_WAIT_MS_MAX);
    loop {
        if queue.lock().awaited.is_empty() {
            return 0;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let mut pending = queue.lock();
            let late = pending.awaited.len();
            pending.awaited.clear();
            return late;
        }
        let _woken_or_late = tokio::time::timeout(deadline - now, queue.wake.notified()).await;
    }
}

/// One Fetch carrying every queued partition; each answer goes to its partition's core.
async fn fetch_round(
    node: &Shared,
    leader: BrokerId,
    connection: &mut Option<PeerConnection>,
    queue: &Queue,
    fetches: Vec<(TopicPartition, FetchRequest)>,
) {
    let wait = i32::try_from(node.config.timing.replica_fetch_wait_max_ms).unwrap_or(500);
    // Each partition looked up once per round (an idle round of a broker following 1,000
    // partitions is mostly this bookkeeping).
    let hosted: Vec<Option<Arc<Partition>>> =
        fetches.iter().map(|(tp, _)| node.partition(tp)).collect();
    // Each partition's log start, as Kafka's follower reports it: the leader's DeleteRecords
    // answers once every replica's start reached the deleted offset.
    let starts = hosted
        .iter()
        .map(|partition| partition.as_ref().map(|p| p.log_start_offset()));
    let request = rw::fetches_to_kafka(node.broker_id, &fetches, starts, wait);
    let response: Option<kafka_protocol::messages::FetchResponse> = exchange(
        node,
        leader,
        connection,
        ApiKey::Fetch,
        rw::REPLICA_FETCH_VERSION,
        &request,
    )
    .await;
    node.metrics.count("rill_replica_fetch_rounds_total", 1);
    let answers = response.as_ref().map(rw::fetch_answers).unwrap_or_default();
    let answer = |tp: &TopicPartition| answers.get(&(tp.topic.as_str(), tp.partition)).copied();
    // Marked before any delivery: a partition's flush may finish, and its next fetch arrive, on
    // another worker while this loop still runs.
    {
        let mut pending = queue.lock();
        for (tp, _) in &fetches {
            let has_records = answer(tp).is_some_and(|data| {
                data.error_code == 0 && data.records.as_ref().is_some_and(|r| !r.is_empty())
            });
            if has_records {
                pending.awaited.insert(tp.clone());
            }
        }
    }
    for ((tp, request), partition) in fetches.iter().zip(hosted) {
        let Some(partition) = partition else {
            queue.lock().awaited.remove(tp);
            continue;
        };
        let core_answer = rw::fetch_response_from_kafka(leader, request, answer(tp));
        let accepted = core_answer.result.is_ok();
        partition.deliver(leader, Message::FetchResponse(core_answer));
        // The leader's log start (moved by DeleteRecords or its retention): ours follows up to
        // our HW, which the answer just delivered may have moved.
        let leader_start = answer(tp).map_or(-1, |data| data.log_start_offset);
        if accepted && leader_start > 0 {
            partition.follow_log_start(wire::Offset(leader_start));
        }
    }
}

/// One OffsetForLeaderEpoch request carrying every queued partition.
async fn epochs_round(
    node: &Shared,
    leader: BrokerId,
    connection: &mut Option<PeerConnection>,
    requests: Vec<(TopicPartition, OffsetsForLeaderEpochRequest)>,
) {
    let request = rw::offsets_for_epochs_to_kafka(node.broker_id, &requests);
    let response: Option<kafka_protocol::messages::OffsetForLeaderEpochResponse> = exchange(
        node,
        leader,
        connection,
        ApiKey::OffsetForLeaderEpoch,
        rw::OFFSETS_FOR_EPOCH_VERSION,
        &request,
    )
    .await;
    let answers = response
        .as_ref()
        .map(rw::offsets_for_epoch_answers)
        .unwrap_or_default();
    for (tp, request) in &requests {
        let Some(partition) = node.partition(tp) else {
            continue;
        };
        let end = answers.get(&(tp.topic.as_str(), tp.partition)).copied();
        let core_answer = rw::offsets_for_epoch_from_kafka(leader, request, end);
        partition.deliver(leader, Message::OffsetsForLeaderEpochResponse(core_answer));
    }
}

/// One request to `leader` on the fetcher's connection (opened on demand, dropped on any error).
/// `None` when the leader is unreachable or silent, after the fetch backoff: the caller answers
/// the cores with a refusal, so they back off and retry instead of spinning.
async fn exchange<Req, Resp>(
    node: &Shared,
    leader: BrokerId,
    connection: &mut Option<PeerConnection>,
    api_key: ApiKey,
    version: i16,
    body: &Req,
) -> Option<Resp>
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    // BUGGIFY: the replication connection drops (the request may or may not have been sent).
    let dropped = crate::runtime::buggify("replica.connection.drop");
    if crate::runtime::buggify("replica.fetch.delay") {
        // BUGGIFY: a slow follower (its request leaves late).
        let delay = crate::runtime::jitter_ms(1, 500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if dropped {
        *connection = None;
    } else {
        if connection.is_none() {
            *connection = connect(node, leader).await;
        }
        if let Some(open) = connection.as_mut() {
            match open
                .request(api_key, version, body, node.peer_request_timeout())
                .await
            {
                Ok(_lost) if crate::runtime::buggify_rarely("replica.fetch.response.drop") => {
                    // BUGGIFY: the leader answered (and may have moved its follower state)
                    // but the answer is lost with the connection.
                    *connection = None;
                }
                Ok(response) => return Some(response),
                Err(error) => {
                    tracing::debug!(?leader, ?api_key, %error, "replication request failed");
                    *connection = None;
                }
            }
        }
    }
    let backoff = node.config.timing.replica_fetch_backoff_ms;
    tokio::time::sleep(Duration::from_millis(backoff)).await;
    None
}

async fn connect(node: &Shared, leader: BrokerId) -> Option<PeerConnection> {
    let address = node.broker_address(leader)?;
    let client_id = format!("rill-replica-{}", node.broker_id.0);
    let timeout = node.peer_request_timeout();
    let credentials = node
        .secret
        .clone()
        .map(|secret| crate::auth::NodeCredentials {
            node_id: u64::try_from(node.broker_id.0).expect("node ids are positive"),
            secret,
        });
    let leader_node = u64::try_from(leader.0).unwrap_or(0);
    let connected = match PeerConnection::connect(&address, &client_id, timeout).await {
        Ok(mut connection) => match &credentials {
            Some(credentials) => connection
                .authenticate(credentials, leader_node, timeout)
                .await
                .map(|()| connection),
            None => Ok(connection),
        },
        Err(error) => Err(error),
    };
    match connected {
        Ok(connection) => Some(connection),
        Err(error @ PeerError::Auth(_)) => {
            tracing::warn!(?leader, %error, "leader refused our cluster credentials");
            None
        }
        Err(error) => {
            tracing::debug!(?leader, %error, "cannot reach leader");
            None
        }
    }
}
