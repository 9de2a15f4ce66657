//! Serving one Kafka connection: read frames, decode, dispatch, answer in order.
//!
//! Up to `in_flight_max` requests of a connection are worked on at once (Kafka's clients pipeline
//! up to `max.in.flight.requests.per.connection`); their responses leave in request order, as
//! Kafka promises. Reading goes on while handlers run, within that bound and the broker-wide
//! byte budget ([`RequestBytesBudget`]). Everything runs on the connection's own task.
//!
//! Every wait has an end: an idle connection closes after `idle_timeout`
//! (`connections.max.idle.ms`), a frame whose first byte came must be complete within
//! `frame_read_timeout`, a handler gets `request_timeout`, a response write too.
//! Any [`ProtocolError`] closes the connection with a log line; the process and other connections
//! carry on.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::frame::{write_frame, FRAME_BYTES_MAX_DEFAULT};
use super::in_flight::{InFlight, IN_FLIGHT_LIMIT};
use super::ingress::{RequestFrame, RequestReader};
use super::limits::{BudgetPermit, RequestBytesBudget};
use super::request::{
    decode_request, encode_response, encode_version_unsupported, AppendTurn, Decoded, Request,
};
use super::versions::VersionTable;
use super::ProtocolError;

/// Default per-request timeout, Kafka's `request.timeout.ms` default (30 s).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default idle timeout, Kafka's `connections.max.idle.ms` default (10 min).
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);
/// Default time a started frame has to arrive in full: the request timeout, since a client
/// gives up on a request after that anyway.
pub const FRAME_READ_TIMEOUT_DEFAULT: Duration = REQUEST_TIMEOUT_DEFAULT;
/// Default in-flight bound, Kafka's `max.in.flight.requests.per.connection` default.
pub const IN_FLIGHT_MAX_DEFAULT: usize = 5;

/// Why a handler declines to answer a request. Kafka has no generic error response, so a refusal
/// closes the connection; handlers put per-partition errors (NOT_LEADER, ...) in their responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The API is in the version table but this handler does not serve it yet.
    NotImplemented,
    /// The request decoded but makes no sense (e.g. contradictory fields); the reason is logged.
    Invalid {
        /// What was wrong, for the log line.
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotImplemented => f.write_str("not implemented"),
            Refusal::Invalid { reason } => write!(f, "invalid request: {reason}"),
        }
    }
}

/// Answers decoded requests. ApiVersions never reaches a handler: the connection answers it from
/// its [`VersionTable`] so the advertised and the accepted versions are the same table.
pub trait RequestHandler {
    /// Answers `request` with a response body of the same API, to be encoded at
    /// `request.api_version()`, or refuses it (the connection then closes).
    fn handle(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<ResponseKind, Refusal>> + Send;

    /// Must the connection close once the response just written is out (a failed SASL
    /// authentication: the client reads why, then the connection ends)?
    fn closes_after_answer(&self) -> bool {
        false
    }
}

/// Per-connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub frame_bytes_max: u32,
    /// How long a handler may take, and a response write; across a clogged link a request may
    /// otherwise wait forever.
    pub request_timeout: Duration,
    /// How long a connection with nothing in flight and no frame started stays open
    /// (`connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// How long a frame may take to arrive once its first byte came (slowloris).
    pub frame_read_timeout: Duration,
    /// Requests of one connection worked on at once.
    pub in_flight_max: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            frame_read_timeout: FRAME_READ_TIMEOUT_DEFAULT,
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
        }
    }
}

impl ConnectionConfig {
    fn check(&self) {
        assert!(self.frame_bytes_max > 0);
        assert!(
            !self.request_timeout.is_zero()
                && !self.idle_timeout.is_zero()
                && !self.frame_read_timeout.is_zero(),
            "a zero timeout would refuse every request"
        );
        assert!(self.in_flight_max > 0 && self.in_flight_max <= IN_FLIGHT_LIMIT);
    }
}

/// Serves one connection until the peer closes it (`Ok`) or a protocol error closes it (`Err`,
/// already logged). The stream is shut down and dropped either way. `budget` is shared by every
/// connection of the broker.
pub async fn serve_connection<S, H>(
    mut stream: S,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
    budget: &RequestBytesBudget,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: RequestHandler,
{
    config.check();
    let result = serve_frames(&mut stream, table, handler, config, budget).await;
    match &result {
        // Kafka closes idle connections as routine; not worth a warning.
        Err(error @ ProtocolError::IdleTimedOut { .. }) => {
            tracing::debug!(%error, "closing Kafka connection")
        }
        Err(error) => tracing::warn!(%error, "closing Kafka connection"),
        Ok(()) => {}
    }
    // Best effort: the peer may already be gone, and the stream is dropped right after anyway.
    if let Err(error) = stream.shutdown().await {
        tracing::debug!(%error, "shutdown of a closing Kafka connection failed");
    }
    result
}

/// What the connection waits for next.
enum Step {
    /// The oldest request in flight is done: its response to write, or the error that closes.
    Answered(Result<Option<Bytes>, ProtocolError>),
    /// A frame arrived, the stream ended, or reading failed (its timeouts included).
    Read(Result<Option<RequestFrame>, ProtocolError>),
}

async fn serve_frames<S, H>(
    stream: &mut S,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
    budget: &RequestBytesBudget,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: RequestHandler,
{
    let mut reader = RequestReader::new(
        config.frame_bytes_max,
        budget.clone(),
        config.frame_read_timeout,
        config.idle_timeout,
    );
    let mut in_flight = InFlight::new(config.in_flight_max);
    // Why reading stopped for good: the end of the stream (`Ok`) or the error to close with once
    // the requests before it are answered.
    let mut read_end: Option<Result<(), ProtocolError>> = None;
    let mut last_activity = Instant::now();
    let mut was_full = false;
    let mut produce_turns = ProduceTurns::default();
    loop {
        if in_flight.is_empty() {
            if let Some(end) = read_end.take() {
                return end;
            }
        }
        let reading = read_end.is_none() && in_flight.has_room();
        if reading && was_full {
            // The pause was the connection's own (its in-flight bound), not the peer's.
            reader.resume(Instant::now());
        }
        was_full = !in_flight.has_room();
        // Only a connection with nothing in flight can be idle.
        let idle_since = in_flight.is_empty().then_some(last_activity);
        // `biased`: tokio's default random branch order draws from an RNG the simulator does
        // not control. Answers first, so a busy reader cannot starve the writes.
        let step = tokio::select! {
            biased;
            answered = in_flight.next(), if !in_flight.is_empty() => Step::Answered(answered),
            frame = reader.read_frame(stream, idle_since), if reading => Step::Read(frame),
        };
        match step {
            Step::Answered(answered) => {
                if let Some(response) = answered? {
                    write_response(stream, &response, config).await?;
                }
                if handler.closes_after_answer() {
                    tracing::info!("closing Kafka connection after a failed authentication");
                    return Ok(());
                }
                last_activity = Instant::now();
            }
            Step::Read(Ok(Some(frame))) => {
                assert!(frame.payload.len() <= config.frame_bytes_max as usize);
                last_activity = Instant::now();
                let turn = produce_turns.take_turn(&frame.payload);
                in_flight.push(answer(frame, turn, table, handler, config));
            }
            Step::Read(Ok(None)) => read_end = Some(Ok(())),
            Step::Read(Err(error)) => read_end = Some(Err(error)),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Writes one response frame within the request timeout: a client that stops reading must not
/// hold the connection (and the requests behind it) forever.
async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &[u8],
    config: &ConnectionConfig,
) -> Result<(), ProtocolError> {
    if crate::runtime::buggify("kafka.response.delay") {
        let delay = crate::runtime::jitter_ms(1, 2_000);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match tokio::time::timeout(config.request_timeout, write_frame(stream, response)).await {
        Ok(written) => written,
        Err(_elapsed) => Err(ProtocolError::ResponseWriteTimedOut {
            response_bytes: response.len(),
            timeout_ms: millis(config.request_timeout),
        }),
    }
}

/// Produce requests of one connection take turns to append: each starts once the one before it
/// is in the logs (its handler dropped its [`AppendTurn`]), so a later batch never overtakes an
/// earlier one on a partition (clients rely on that order without idempotence, and idempotent
/// sequences must arrive in order), while their waits for replication overlap. Other requests
/// run beside them.
#[derive(Default)]
struct ProduceTurns {
    /// Resolves when the latest Produce in flight is done (or dropped).
    last: Option<oneshot::Receiver<()>>,
}

/// A Produce's place in line: wait for `previous`, hold `done` until appended.
struct ProduceTurn {
    /// The Produce before this one, if any.
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped once this Produce is appended (or answered), which lets the next one start.
    done: oneshot::Sender<()>,
}

impl ProduceTurns {
    /// A turn for a Produce frame (API key 0 in the header's first two bytes), none for others.
    fn take_turn(&mut self, payload: &[u8]) -> Option<ProduceTurn> {
        let api_key = payload.get(..2)?;
        if i16::from_be_bytes([api_key[0], api_key[1]]) != ApiKey::Produce as i16 {
            return None;
        }
        let (done, next) = oneshot::channel();
        let previous = self.last.replace(next);
        Some(ProduceTurn { previous, done })
    }
}

/// Turns one request frame into one encoded response (header + body, not yet framed), or none
/// for a request Kafka never answers (Produce with acks=0). The frame's budget bytes return when
/// this finishes.
async fn answer<H: RequestHandler>(
    frame: RequestFrame,
    turn: Option<ProduceTurn>,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
) -> Result<Option<Bytes>, ProtocolError> {
    let RequestFrame { payload, permit } = frame;
    assert_eq!(payload.len(), permit.bytes() as usize);
    if crate::runtime::buggify("kafka.request.delay") {
        // BUGGIFY: a request waits before it is handled (a busy handler pool).
        let delay = crate::runtime::jitter_ms(1, 500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let done = match turn {
        Some(ProduceTurn { previous, done }) => {
            if let Some(previous) = previous {
                // Resolves with an error when the previous one is dropped: its turn is over too.
                let _over = previous.await;
            }
            Some(AppendTurn::new(done))
        }
        None => None,
    };
    let answered = answer_payload(payload, done, table, handler, config).await;
    drop::<BudgetPermit>(permit);
    answered
}

async fn answer_payload<H: RequestHandler>(
    payload: Bytes,
    append_turn: Option<AppendTurn>,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
) -> Result<Option<Bytes>, ProtocolError> {
    let request = match decode_request(payload, table)? {
        Decoded::Request(request) => Request {
            append_turn,
            ..*request
        },
        Decoded::VersionUnsupported {
            api_key,
            api_version,
            correlation_id,
        } => {
            tracing::debug!(?api_key, api_version, "request at an unsupported version");
            return encode_version_unsupported(api_key, api_version, correlation_id, table)
                .map(Some);
        }
    };
    let unanswered = matches!(&request.body, RequestKind::Produce(produce) if produce.acks == 0);
    let (api_key, api_version, correlation_id) = (
        request.api_key,
        request.wire_version,
        request.correlation_id(),
    );
    assert!(table.supports(api_key, api_version));
    let body = if api_key == ApiKey::ApiVersions {
        ResponseKind::ApiVersions(table.api_versions_response(0))
    } else {
        match tokio::time::timeout(config.request_timeout, handler.handle(request)).await {
            Ok(Ok(body)) => body,
            Ok(Err(refusal)) => return Err(ProtocolError::Refused { api_key, refusal }),
            Err(_elapsed) => {
                let timeout_ms =
                    u64::try_from(config.request_timeout.as_millis()).unwrap_or(u64::MAX);
                return Err(ProtocolError::RequestTimedOut {
                    api_key,
                    correlation_id,
                    timeout_ms,
                });
            }
        }
    };
    if unanswered {
        return Ok(None);
    }
    encode_response(api_key, api_version, correlation_id, &body).map(Some)
}
