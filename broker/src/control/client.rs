//! A client of the controller quorum: finds the active controller (following `NotController`
//! hints, else trying voters round-robin) and retries with backoff within a bounded deadline.
//!
//! One request at a time per client (it holds one connection); clone it for concurrent callers:
//! clones share the leader hint and the correlation counter, not the connection.

use super::wire::{self, ControlMessage, MessageReader};
use super::ControlError;
use crate::auth::NodeCredentials;
use crate::runtime;
use controller::{ControllerError, Reply, Request};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest one attempt waits for an answer (plus the long-poll budget), whatever the deadline:
/// a node that holds data silently is left for another soon.
const ATTEMPT_TIMEOUT_MS_MAX: u64 = 1_000;
/// First delay between attempts.
const BACKOFF_MS_MIN: u64 = 10;
/// Largest delay between attempts.
const BACKOFF_MS_MAX: u64 = 500;
/// Most frames skipped while looking for the answer to our id (stale answers of a reused
/// connection) before giving up on the connection.
const STALE_ANSWERS_MAX: usize = 64;

/// What one client's clones share.
#[derive(Debug)]
struct Shared {
    /// The voters and their controller listeners.
    voters: BTreeMap<u64, String>,
    /// The active controller as last learnt (0: unknown).
    leader: AtomicU64,
    /// The next voter to try when no leader is known (index into `voters`).
    round_robin: AtomicU64,
    /// Correlation ids, unique per client family.
    id_next: AtomicU64,
    /// Proves this node to the listeners of a cluster with a secret (`None`: no handshake).
    credentials: Option<NodeCredentials>,
}

/// An open connection to one voter.
#[derive(Debug)]
struct Connection {
    /// The voter it goes to.
    voter: u64,
    /// The socket.
    stream: TcpStream,
    /// Framing state for answers.
    reader: MessageReader,
}

/// Sends [`Request`]s to the active controller.
#[derive(Debug)]
pub struct ControllerClient {
    /// State shared with clones.
    shared: Arc<Shared>,
    /// Total time budget of one `request` (a long poll adds its wait).
    request_timeout_ms: u64,
    /// This clone's connection; the lock serialises its requests.
    connection: tokio::sync::Mutex<Option<Connection>>,
}

impl Clone for ControllerClient {
    fn clone(&self) -> Self {
        ControllerClient {
            shared: Arc::clone(&self.shared),
            request_timeout_ms: self.request_timeout_ms,
            connection: tokio::sync::Mutex::new(None),
        }
    }
}

/// How one attempt ended, when not with a final answer.
enum Retry {
    /// The node answered `NotController`, maybe naming the leader.
    NotController(Option<u64>),
    /// No answer in time.
    Timeout,
    /// Connect, write or read failed.
    Unreachable,
}

impl ControllerClient {
    /// A client of the quorum `voters` (raft id → `host:port`), giving each request at most
    /// `request_timeout_ms` in total.
    pub fn new(voters: BTreeMap<u64, String>, request_timeout_ms: u64) -> ControllerClient {
        Self::with_credentials(voters, request_timeout_ms, None)
    }

    /// Like [`ControllerClient::new`], authenticating every connection with `credentials`
    /// (required by a cluster with a secret).
    pub fn with_credentials(
        voters: BTreeMap<u64, String>,
        request_timeout_ms: u64,
        credentials: Option<NodeCredentials>,
    ) -> ControllerClient {
        assert!(!voters.is_empty(), "a quorum has voters");
        assert!(request_timeout_ms > 0, "requests need time");
        ControllerClient {
            shared: Arc::new(Shared {
                voters,
                leader: AtomicU64::new(0),
                round_robin: AtomicU64::new(runtime::random_u64()),
                id_next: AtomicU64::new(1),
                credentials,
            }),
            request_timeout_ms,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The active controller as last learnt, if any.
    pub fn leader_hint(&self) -> Option<u64> {
        let leader = self.shared.leader.load(Ordering::Relaxed);
        (leader != 0).then_some(leader)
    }

    /// Sends `request` to the active controller and returns its reply; a typed refusal is
    /// `Refused`. Retries other voters until the deadline.
    pub async fn request(&self, request: Request) -> Result<Reply, ControlError> {
        self.request_waiting(request, 0).await
    }

    /// Like [`ControllerClient::request`], letting a `FetchMetadata` wait up to `wait_ms` on the
    /// controller for something newer (a long poll).
    pub async fn request_waiting(
        &self,
        request: Request,
        wait_ms: u64,
    ) -> Result<Reply, ControlError> {
        let wait_ms = wait_ms.min(wire::FETCH_WAIT_MS_MAX);
        let budget = Duration::from_millis(self.request_timeout_ms + wait_ms);
        let deadline = tokio::time::Instant::now() + budget;
        let mut connection = self.connection.lock().await;
        let mut backoff_ms = BACKOFF_MS_MIN;
        let mut timed_out = false;
        for attempt in 0u64.. {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let voter = self.target();
            let attempt_timeout = Duration::from_millis(
                wait_ms + ATTEMPT_TIMEOUT_MS_MAX.min(self.request_timeout_ms),
            )
            .min(deadline - now);
            let outcome = tokio::time::timeout(
                attempt_timeout,
                self.attempt(&mut connection, voter, &request, wait_ms),
            )
            .await;
            let retry = match outcome {
                Ok(Ok(answer)) => return self.finish(voter, answer),
                Ok(Err(retry)) => retry,
                Err(_elapsed) => Retry::Timeout,
            };
            self.after_failure(&mut connection, voter, retry, &mut timed_out);
            let sleep_ms = runtime::jitter_ms(backoff_ms / 2, backoff_ms);
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
            let wake =
                (tokio::time::Instant::now() + Duration::from_millis(sleep_ms)).min(deadline);
            tokio::time::sleep_until(wake).await;
            assert!(attempt < u64::MAX, "bounded by the deadline");
        }
        Err(if timed_out {
            ControlError::Timeout
        } else {
            ControlError::Unavailable
        })
    }

    /// The voter to ask next: the known leader, else the next in round-robin order.
    fn target(&self) -> u64 {
        if let Some(leader) = self.leader_hint() {
            if self.shared.voters.contains_key(&leader) {
                return leader;
            }
        }
        let turn = self.shared.round_robin.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(turn % self.shared.voters.len() as u64).expect("small");
        *self
            .shared
            .voters
            .keys()
            .nth(index)
            .expect("index below the voter count")
    }

    fn finish(
        &self,
        voter: u64,
        answer: Result<Reply, ControllerError>,
    ) -> Result<Reply, ControlError> {
        self.shared.leader.store(voter, Ordering::Relaxed);
        answer.map_err(ControlError::Refused)
    }

    fn after_failure(
        &self,
        connection: &mut Option<Connection>,
        voter: u64,
        retry: Retry,
        timed_out: &mut bool,
    ) {
        let hint = match retry {
            Retry::NotController(hint) => hint.filter(|h| *h != voter),
            Retry::Timeout => {
                *timed_out = true;
                *connection = None; // A late answer would confuse the next request.
                None
            }
            Retry::Unreachable => {
                *connection = None;
                None
            }
        };
        // Adopt a hint (checked against the voters by `target`), else forget a leader that
        // failed us (unless another clone already learnt a newer one).
        match hint {
            Some(hint) => self.shared.leader.store(hint, Ordering::Relaxed),
            None => {
                let _other_clone_moved_on = self.shared.leader.compare_exchange(
                    voter,
                    0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// One request on one voter: the final answer, or why to retry elsewhere.
    async fn attempt(
        &self,
        slot: &mut Option<Connection>,
        voter: u64,
        request: &Request,
        wait_ms: u64,
    ) -> Result<Result<Reply, ControllerError>, Retry> {
        if slot.as_ref().is_some_and(|c| c.voter != voter) {
            *slot = None;
        }
        if slot.is_none() {
            let addr = self.shared.voters.get(&voter).expect("targets are voters");
            let stream = TcpStream::connect(addr.as_str())
                .await
                .map_err(|_| Retry::Unreachable)?;
            let _ = stream.set_nodelay(true);
            let mut connection = Connection {
                voter,
                stream,
                reader: MessageReader::default(),
            };
            if let Some(credentials) = &self.shared.credentials {
                let authenticated = wire::authenticate(
                    &mut connection.stream,
                    &mut connection.reader,
                    credentials,
                    voter,
                )
                .await;
                if let Err(error) = authenticated {
                    tracing::warn!(voter, %error, "controller connection not authenticated");
                    return Err(Retry::Unreachable);
                }
            }
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("connected above");
        if runtime::buggify("controller.client.delay") {
            // BUGGIFY: a broker's request to the controller leaves late.
            let delay = runtime::jitter_ms(1, 500);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let id = self.shared.id_next.fetch_add(1, Ordering::Relaxed);
        let message = ControlMessage::Request {
            id,
            request: request.clone(),
            wait_ms,
        };
        wire::write_message(&mut connection.stream, &message)
            .await
            .map_err(|_| Retry::Unreachable)?;
        for _ in 0..STALE_ANSWERS_MAX {
            let answer = connection.reader.read(&mut connection.stream).await;
            match answer {
                Ok(Some(ControlMessage::Reply { id: got, result })) if got == id => {
                    return Self::classify(result)
                }
                Ok(Some(ControlMessage::NotController {
                    id: got,
                    leader_hint,
                })) if got == id => {
                    return Err(Retry::NotController(leader_hint));
                }
                Ok(Some(_stale)) => continue,
                Ok(None) | Err(_) => return Err(Retry::Unreachable),
            }
        }
        Err(Retry::Unreachable)
    }

    /// A refusal meaning "ask elsewhere" becomes a retry; any other answer is final.
    fn classify(
        result: Result<Reply, ControllerError>,
    ) -> Result<Result<Reply, ControllerError>, Retry> {
        match result {
            Err(ControllerError::NotController) => Err(Retry::NotController(None)),
            other => Ok(other),
        }
    }
}
