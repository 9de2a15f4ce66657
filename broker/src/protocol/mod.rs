//! The Kafka wire protocol layer: framing, request/response codecs, the supported-versions table and
//! the per-connection serve loop. Every later handler (Metadata, Produce, Fetch, groups) stands on it.
//!
//! Layering, bottom up:
//! - [`frame`]: 4-byte big-endian length-prefixed frames; a sans-IO [`frame::FrameDecoder`] plus thin
//!   async helpers written against the tokio API (so madsim can swap the runtime).
//! - [`request`]: request header + body decoding and response encoding with `kafka-protocol`.
//! - [`versions`]: which APIs and versions rill plans to serve and which it serves today.
//! - [`limits`]: the broker-wide connection cap and budget of buffered request bytes (RAII permits).
//! - [`ingress`]: client frames read under that budget.
//! - [`in_flight`]: a connection's requests worked on concurrently, finished in request order.
//! - [`connection`]: one connection's loop: read, decode, dispatch to a [`connection::RequestHandler`],
//!   answer in order, close what idles or dawdles.
//!
//! Any [`ProtocolError`] ends the connection it happened on, never the process.

pub mod connection;
pub mod frame;
pub mod in_flight;
pub mod ingress;
pub mod legacy;
pub mod limits;
pub mod request;
pub mod versions;

use kafka_protocol::messages::ApiKey;

/// Why a connection's protocol exchange failed. Each variant ends that connection (Kafka closes the
/// socket on framing errors, unknown APIs and malformed bodies); none of them may end the process.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer announced a frame longer than `frame_bytes_max`; buffering it would let one client
    /// exhaust the broker's memory (Kafka's `socket.request.max.bytes`).
    #[error("frame of {length} bytes exceeds the limit of {frame_bytes_max} bytes")]
    FrameTooLarge {
        /// The announced payload length.
        length: u32,
        /// The configured limit it exceeded.
        frame_bytes_max: u32,
    },
    /// The length prefix was negative; Kafka sizes are signed 32-bit, so this is garbage.
    #[error("negative frame length {length}")]
    FrameLengthNegative {
        /// The announced (negative) length.
        length: i32,
    },
    /// The peer closed the stream in the middle of a frame.
    #[error("stream ended inside a frame with {buffered_bytes} bytes buffered")]
    FrameTruncated {
        /// Bytes of the unfinished frame (prefix included) received before EOF.
        buffered_bytes: usize,
    },
    /// The frame is too short to hold even the fixed part of a request header.
    #[error("request of {length} bytes is shorter than a request header")]
    RequestTooShort {
        /// The frame's payload length.
        length: usize,
    },
    /// The API key is not one Kafka defines; Kafka closes the connection without a response because
    /// it cannot know the response format.
    #[error("unknown API key {api_key}")]
    ApiKeyUnknown {
        /// The raw API key from the header.
        api_key: i16,
    },
    /// A known API at a version rill does not serve, for an API whose response has no top-level error
    /// code to carry UNSUPPORTED_VERSION; Kafka closes the connection in this case too.
    #[error("{api_key:?} v{api_version} is not supported and its response cannot carry the error")]
    VersionUnsupported {
        /// The API the client asked for.
        api_key: ApiKey,
        /// The version it asked for.
        api_version: i16,
    },
    /// The header or body did not decode at the announced version.
    #[error("malformed {api_key:?} v{api_version} request: {reason}")]
    RequestMalformed {
        /// The API the client asked for.
        api_key: ApiKey,
        /// The version it asked for.
        api_version: i16,
        /// The decoder's explanation, for the log line.
        reason: String,
    },
    /// Encoding our own response failed: a handler built a response that does not fit the version.
    #[error("encoding {api_key:?} v{api_version} response failed: {reason}")]
    ResponseEncode {
        /// The API being answered.
        api_key: ApiKey,
        /// The version being answered.
        api_version: i16,
        /// The encoder's explanation.
        reason: String,
    },
    /// The handler refused the request (see [`connection::Refusal`]).
    #[error("{api_key:?} request refused: {refusal}")]
    Refused {
        /// The API that was refused.
        api_key: ApiKey,
        /// The handler's typed reason.
        refusal: connection::Refusal,
    },
    /// The handler did not answer within the per-request timeout.
    #[error(
        "{api_key:?} request (correlation id {correlation_id}) timed out after {timeout_ms} ms"
    )]
    RequestTimedOut {
        /// The API that timed out.
        api_key: ApiKey,
        /// The request's correlation id.
        correlation_id: i32,
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// A frame's first byte came but the rest did not within the frame-read timeout; a slow or
    /// stalled sender must not hold a connection and its buffer forever.
    #[error(
        "frame not complete {timeout_ms} ms after its first byte ({buffered_bytes} bytes came)"
    )]
    FrameReadTimedOut {
        /// Bytes of the unfinished frame received.
        buffered_bytes: usize,
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// Nothing arrived and nothing was in flight for `connections.max.idle.ms`.
    #[error("idle for {idle_ms} ms")]
    IdleTimedOut {
        /// The idle timeout that elapsed.
        idle_ms: u64,
    },
    /// The peer did not take a response within the request timeout (it stopped reading).
    #[error("response of {response_bytes} bytes not written within {timeout_ms} ms")]
    ResponseWriteTimedOut {
        /// The response's size.
        response_bytes: usize,
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// The underlying stream failed.
    #[error("connection IO: {0}")]
    Io(#[from] std::io::Error),
}
