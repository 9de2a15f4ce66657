//! Request decoding and response encoding with `kafka-protocol`.
//!
//! A request is `api_key: i16, api_version: i16, correlation_id: i32, client_id, [tagged fields]`
//! followed by the body. The header is v1 or v2 (flexible) depending on the API version; the
//! response header is v0 or v1 likewise, except that ApiVersions responses always use header v0 so a
//! client that does not yet know our versions can parse the answer (KIP-511).

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse, OffsetFetchResponse, RequestHeader,
    RequestKind, ResponseHeader, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::legacy;
use super::versions::{VersionTable, ERROR_CODE_UNSUPPORTED_VERSION};
use super::ProtocolError;

/// Bytes of the header prefix every request version shares: api key, api version, correlation id.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// A decoded request at a version this connection serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The API, already known to be in the connection's version table.
    pub api_key: ApiKey,
    /// The full header (version, correlation id, client id, tagged fields).
    pub header: RequestHeader,
    /// The decoded body.
    pub body: RequestKind,
    /// The version the client sent, which the response is encoded at. The header's version
    /// differs only for a version translated by [`super::legacy`]: the handler sees the
    /// version whose struct the body was decoded into.
    pub wire_version: i16,
    /// A Produce's place in its connection's line ([`AppendTurn`]); `None` for other requests
    /// and until the connection hands it over.
    pub append_turn: Option<AppendTurn>,
}

/// Held by a Produce until its batches are in the partitions' logs (appended, not yet
/// replicated): dropping it lets the connection's next Produce start appending. So a
/// connection's produces are appended in request order, and their replication waits overlap
/// (Kafka's clients keep up to 5 in flight per connection). A handler that ignores it releases
/// the turn when it drops the request.
#[derive(Debug, Clone)]
pub struct AppendTurn {
    /// The connection's next Produce waits until this is dropped (with every clone).
    _done: std::sync::Arc<tokio::sync::oneshot::Sender<()>>,
}

impl AppendTurn {
    /// The turn that ends when `done` is dropped.
    pub(crate) fn new(done: tokio::sync::oneshot::Sender<()>) -> Self {
        AppendTurn {
            _done: std::sync::Arc::new(done),
        }
    }
}

impl PartialEq for AppendTurn {
    /// A turn is not data: requests compare by their contents.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Request {
    /// The version the handler works at: the client's, or for a translated legacy version the
    /// version it was decoded as ([`Request::wire_version`] is the client's).
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The id the response must echo so the client can match it.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// What a frame turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A request we serve, fully decoded.
    Request(Box<Request>),
    /// A known API at a version (or an API) this table does not serve. The body is not decoded: its
    /// layout at that version may be unknown to us. Only the fixed header prefix was read.
    VersionUnsupported {
        /// The API asked for.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
        /// The id the error response must echo.
        correlation_id: i32,
    },
}

/// Decodes one frame's payload into a request, checking the version against `table` first.
pub fn decode_request(payload: Bytes, table: &VersionTable) -> Result<Decoded, ProtocolError> {
    if payload.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(ProtocolError::RequestTooShort {
            length: payload.len(),
        });
    }
    let mut fixed = &payload[..REQUEST_HEADER_FIXED_BYTES];
    let api_key_raw = fixed.get_i16();
    let api_version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(ProtocolError::ApiKeyUnknown {
            api_key: api_key_raw,
        });
    };
    if !table.supports(api_key, api_version) {
        return Ok(Decoded::VersionUnsupported {
            api_key,
            api_version,
            correlation_id,
        });
    }
    // The table only holds versions kafka-protocol can decode, or that are translated
    // (checked in VersionTable::new).
    let encodable = api_key.valid_versions();
    assert!(
        (encodable.min <= api_version && api_version <= encodable.max)
            || legacy::handled_as(api_key, api_version).is_some()
    );
    let request = decode_supported(payload, api_key, api_version)?;
    assert_eq!(request.correlation_id(), correlation_id);
    assert_eq!(request.wire_version, api_version);
    Ok(Decoded::Request(Box::new(request)))
}

fn decode_supported(
    mut payload: Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<Request, ProtocolError> {
    let malformed = |reason: String| ProtocolError::RequestMalformed {
        api_key,
        api_version,
        reason,
    };
    // The decoders are pure functions of the bytes; should one panic on hostile input, the panic is
    // confined to this request and becomes a malformed-request error instead of a dead broker.
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let header_version = api_key.request_header_version(api_version);
        let mut header = RequestHeader::decode(&mut payload, header_version)
            .map_err(|error| format!("header v{header_version}: {error:#}"))?;
        let body = match legacy::handled_as(api_key, api_version) {
            Some(handled) => {
                header.request_api_version = handled;
                legacy::decode_body(api_key, api_version, &mut payload)
            }
            None => RequestKind::decode(api_key, &mut payload, api_version)
                .map_err(|error| format!("{error:#}")),
        }
        .map_err(|error| format!("body: {error}"))?;
        Ok::<_, String>((header, body))
    }));
    match decoded {
        Ok(Ok((header, body))) => Ok(Request {
            api_key,
            header,
            body,
            wire_version: api_version,
            append_turn: None,
        }),
        Ok(Err(reason)) => Err(malformed(reason)),
        Err(_) => Err(malformed("decoder panicked".to_owned())),
    }
}

/// Encodes a response (header + body) for `api_key` at `api_version`, echoing `correlation_id`.
/// The caller frames it with [`super::frame::write_frame`].
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let header_version = api_key.response_header_version(api_version);
    // The famous quirk: ApiVersions answers always carry header v0, even at flexible versions.
    assert!(api_key != ApiKey::ApiVersions || header_version == 0);
    assert!(
        (0..=1).contains(&header_version),
        "response headers are v0 or v1"
    );
    // A Fetch answer is sized once (its records are most of it): grown by doubling, the buffer
    // copied every partition's records again at each reallocation.
    let capacity = match body {
        ResponseKind::Fetch(fetch) => fetch.compute_size(api_version).unwrap_or(0) + 8,
        _ => 0,
    };
    let mut out = BytesMut::with_capacity(capacity);
    let encoded = ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|error| format!("{error:#}"))
        .and_then(|()| match legacy::handled_as(api_key, api_version) {
            Some(_) => legacy::encode_body(api_key, api_version, body, &mut out),
            None => body
                .encode(&mut out, api_version)
                .map_err(|error| format!("{error:#}")),
        });
    match encoded {
        Ok(()) => Ok(out.freeze()),
        Err(reason) => Err(ProtocolError::ResponseEncode {
            api_key,
            api_version,
            reason,
        }),
    }
}

/// The answer to a request at an unsupported version, or `Err(VersionUnsupported)` when the API's
/// response cannot carry the error (Kafka then closes the connection). Returns the encoded response.
///
/// ApiVersions follows KIP-511: answer at v0 with error 35 and our supported ranges, so the client
/// can retry at a version we serve. Other APIs get their default response with a top-level
/// `error_code` of 35 at the requested version, if that version has such a field.
pub fn encode_version_unsupported(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    table: &VersionTable,
) -> Result<Bytes, ProtocolError> {
    let refuse = ProtocolError::VersionUnsupported {
        api_key,
        api_version,
    };
    if api_key == ApiKey::ApiVersions {
        let body =
            ResponseKind::ApiVersions(table.api_versions_response(ERROR_CODE_UNSUPPORTED_VERSION));
        return encode_response(api_key, 0, correlation_id, &body);
    }
    let encodable = api_key.valid_versions();
    if api_version < encodable.min || encodable.max < api_version {
        return Err(refuse);
    }
    let Some(body) = error_only_response(api_key, ERROR_CODE_UNSUPPORTED_VERSION) else {
        return Err(refuse);
    };
    // Encoding fails exactly when the version has no top-level error_code to carry the error.
    encode_response(api_key, api_version, correlation_id, &body).map_err(|_| refuse)
}

/// A default response of `api_key` whose top-level `error_code` is `error_code`, for the APIs rill
/// plans that have such a field in at least some versions.
fn error_only_response(api_key: ApiKey, error_code: i16) -> Option<ResponseKind> {
    let body = match api_key {
        ApiKey::Fetch => ResponseKind::Fetch(FetchResponse::default().with_error_code(error_code)),
        ApiKey::FindCoordinator => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default().with_error_code(error_code),
        ),
        ApiKey::JoinGroup => {
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(error_code))
        }
        ApiKey::SyncGroup => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(error_code))
        }
        ApiKey::Heartbeat => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(error_code))
        }
        ApiKey::LeaveGroup => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(error_code))
        }
        ApiKey::InitProducerId => ResponseKind::InitProducerId(
            InitProducerIdResponse::default().with_error_code(error_code),
        ),
        ApiKey::ListGroups => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(error_code))
        }
        ApiKey::OffsetFetch => {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(error_code))
        }
        _ => return None,
    };
    Some(body)
}
