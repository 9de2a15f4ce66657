//! Serving one Kafka connection: read frames, decode, dispatch, answer in order.
//!
//! Requests on one connection are answered strictly one after another, which is what Kafka
//! promises clients (responses in request order) and keeps at most one frame buffered per
//! connection. Any [`ProtocolError`] closes the connection with a `warn!` line; the process and
//! other connections carry on.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::frame::{write_frame, FrameReader, FRAME_BYTES_MAX_DEFAULT};
use super::request::{
    decode_request, encode_response, encode_version_unsupported, Decoded, Request,
};
use super::versions::VersionTable;
use super::ProtocolError;

/// Default per-request timeout, Kafka's `request.timeout.ms` default (30 s).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

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
}

/// Per-connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub frame_bytes_max: u32,
    /// How long a handler may take; across a clogged link a request may otherwise wait forever.
    pub request_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }
}

/// Serves one connection until the peer closes it (`Ok`) or a protocol error closes it (`Err`,
/// already logged with `warn!`). The stream is shut down and dropped either way.
pub async fn serve_connection<S, H>(
    mut stream: S,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: RequestHandler,
{
    assert!(config.frame_bytes_max > 0);
    assert!(
        !config.request_timeout.is_zero(),
        "a zero timeout would refuse every request"
    );
    let result = serve_frames(&mut stream, table, handler, config).await;
    if let Err(error) = &result {
        tracing::warn!(%error, "closing Kafka connection");
    }
    // Best effort: the peer may already be gone, and the stream is dropped right after anyway.
    if let Err(error) = stream.shutdown().await {
        tracing::debug!(%error, "shutdown of a closing Kafka connection failed");
    }
    result
}

async fn serve_frames<S, H>(
    stream: &mut S,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: RequestHandler,
{
    let mut reader = FrameReader::new(config.frame_bytes_max);
    loop {
        let Some(payload) = reader.read_frame(stream).await? else {
            return Ok(());
        };
        assert!(payload.len() <= config.frame_bytes_max as usize);
        // acks=0 produces get no response at all (the client does not read one).
        if let Some(response) = answer(payload, table, handler, config).await? {
            if crate::runtime::buggify("kafka.response.delay") {
                let delay = crate::runtime::jitter_ms(1, 2_000);
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            write_frame(stream, &response).await?;
        }
    }
}

/// Turns one request frame into one encoded response (header + body, not yet framed), or none
/// for a request Kafka never answers (Produce with acks=0).
async fn answer<H: RequestHandler>(
    payload: Bytes,
    table: &VersionTable,
    handler: &H,
    config: &ConnectionConfig,
) -> Result<Option<Bytes>, ProtocolError> {
    let request = match decode_request(payload, table)? {
        Decoded::Request(request) => *request,
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
        request.api_version(),
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
