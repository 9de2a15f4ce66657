//! One TCP connection to one broker: framing, version negotiation, correlation ids, and a timeout
//! on every request. One request is in flight at a time (`&mut self`), so a reply is always the
//! answer to the last request; a reply carrying another correlation id means the stream is out of
//! step and the connection is closed.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, VersionRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{code, ClientError, Result};
use crate::versions::{api_name, negotiate, BrokerVersions, API_VERSIONS_FIRST};

/// Largest response frame accepted. Fetch answers are bounded by `fetch_max_bytes`; anything
/// larger is a corrupt length prefix, and allocating it would let a broken peer exhaust memory.
pub const FRAME_BYTES_MAX: usize = 128 * 1024 * 1024;

/// A connection with a negotiated version per API.
#[derive(Debug)]
pub struct Connection {
    /// "host:port" dialled, for errors and the pool.
    addr: String,
    /// Sent in every header.
    client_id: StrBytes,
    /// `None` once closed: after a timeout or I/O error a late reply could desynchronise the stream.
    stream: Option<TcpStream>,
    /// Next correlation id; wraps at `i32::MAX` (ids only need to differ from the last one).
    correlation_id_next: i32,
    /// Negotiated version per raw API key: the highest both sides support.
    versions: BTreeMap<i16, i16>,
    /// Default bound on one request's round trip.
    timeout_ms: u64,
}

impl Connection {
    /// Dials `addr`, then negotiates versions with ApiVersions; both bounded by `timeout_ms`.
    /// Failures here are definite: no application request was sent.
    pub async fn connect(addr: &str, client_id: &str, timeout_ms: u64) -> Result<Connection> {
        assert!(timeout_ms > 0, "a connection needs a timeout");
        let dial = tokio::time::timeout(
            std::time::Duration::from_millis(timeout_ms),
            TcpStream::connect(addr),
        );
        let stream = match dial.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(connect_error(addr, error.to_string())),
            Err(_) => {
                return Err(connect_error(
                    addr,
                    format!("timed out after {timeout_ms} ms"),
                ))
            }
        };
        stream.set_nodelay(true).ok();
        let mut connection = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            stream: Some(stream),
            correlation_id_next: 0,
            versions: BTreeMap::new(),
            timeout_ms,
        };
        let broker_versions = connection
            .api_versions()
            .await
            .map_err(|error| connect_error(addr, format!("ApiVersions failed: {error}")))?;
        connection.versions = negotiate(&broker_versions);
        assert!(
            !connection.is_closed(),
            "negotiation succeeded on an open stream"
        );
        tracing::debug!(addr, versions = ?connection.versions, "connected");
        Ok(connection)
    }

    /// The address this connection dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True once closed; every later request fails with [`ClientError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.stream.is_none()
    }

    /// Closes the connection; a late reply can then never be mistaken for a new one's.
    pub fn close(&mut self) {
        self.stream = None;
    }

    /// The negotiated version of `api_key`, if the broker serves one the client implements.
    pub fn version(&self, api_key: ApiKey) -> Option<i16> {
        self.versions.get(&(api_key as i16)).copied()
    }

    /// Sends `body` at the negotiated version and waits for its reply, bounded by the
    /// connection's timeout.
    pub async fn request(&mut self, body: RequestKind) -> Result<ResponseKind> {
        let api_key = request_api_key(&body)?;
        let timeout_ms = self.timeout_ms;
        self.call(api_key, timeout_ms, move |_| Ok(body)).await
    }

    /// Builds the request for the negotiated version (field layouts differ between versions),
    /// sends it and waits at most `timeout_ms` for the reply.
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        timeout_ms: u64,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<ResponseKind> {
        let version = self
            .version(api_key)
            .ok_or(ClientError::UnsupportedVersion {
                api: api_name(api_key),
            })?;
        let body = build(version)?;
        let reply = self
            .exchange(api_key, version, &body, true, timeout_ms)
            .await?;
        let mut reply = reply.expect("exchange with a reply expected returns one");
        ResponseKind::decode(api_key, &mut reply, version).map_err(|error| {
            self.close();
            ClientError::Protocol(format!("{} v{version} reply: {error}", api_name(api_key)))
        })
    }

    /// Sends a request that gets no reply (Produce with acks=0): done once flushed.
    pub async fn send_only(
        &mut self,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<()> {
        let version = self
            .version(api_key)
            .ok_or(ClientError::UnsupportedVersion {
                api: api_name(api_key),
            })?;
        let body = build(version)?;
        let timeout_ms = self.timeout_ms;
        let reply = self
            .exchange(api_key, version, &body, false, timeout_ms)
            .await?;
        assert!(reply.is_none(), "no reply read for a send-only request");
        Ok(())
    }

    /// ApiVersions at v3, falling back to the v0 body a broker sends with UNSUPPORTED_VERSION.
    async fn api_versions(&mut self) -> Result<BrokerVersions> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("rill-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let body = RequestKind::ApiVersions(request);
        let timeout_ms = self.timeout_ms;
        let reply = self
            .exchange(
                ApiKey::ApiVersions,
                API_VERSIONS_FIRST,
                &body,
                true,
                timeout_ms,
            )
            .await?;
        let mut reply = reply.expect("a reply was asked for");
        if reply.len() < 2 {
            return Err(ClientError::Protocol("ApiVersions reply too short".into()));
        }
        let error_code = (&reply[..2]).get_i16();
        let version = if error_code == code::UNSUPPORTED_VERSION {
            0
        } else {
            API_VERSIONS_FIRST
        };
        let response = ApiVersionsResponse::decode(&mut reply, version)
            .map_err(|error| ClientError::Protocol(format!("ApiVersions reply: {error}")))?;
        if response.error_code != 0 && response.error_code != code::UNSUPPORTED_VERSION {
            return Err(ClientError::kafka("ApiVersions", response.error_code));
        }
        let mut broker = BrokerVersions::new();
        for api in &response.api_keys {
            broker.insert(
                api.api_key,
                VersionRange {
                    min: api.min_version,
                    max: api.max_version,
                },
            );
        }
        Ok(broker)
    }

    /// Writes one frame (and flushes: madsim only sends on flush), then reads the reply frame if
    /// one is expected, checking its correlation id. Returns the reply body after its header.
    async fn exchange(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
        reply_expected: bool,
        timeout_ms: u64,
    ) -> Result<Option<Bytes>> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = correlation_id.checked_add(1).unwrap_or(0);
        let frame = self.encode_frame(api_key, version, correlation_id, body)?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let round_trip = round_trip(stream, frame, reply_expected);
        let outcome =
            tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), round_trip);
        let payload = match outcome.await {
            Ok(Ok(payload)) => payload,
            Ok(Err(error)) => {
                self.close();
                return Err(error);
            }
            Err(_) => {
                self.close();
                return Err(ClientError::Timeout { timeout_ms });
            }
        };
        let Some(mut payload) = payload else {
            return Ok(None);
        };
        let header_version = api_key.response_header_version(version);
        let header = ResponseHeader::decode(&mut payload, header_version).map_err(|error| {
            self.close();
            ClientError::Protocol(format!("response header: {error}"))
        })?;
        if header.correlation_id != correlation_id {
            self.close();
            return Err(ClientError::Protocol(format!(
                "correlation id {} answered request {correlation_id}",
                header.correlation_id
            )));
        }
        Ok(Some(payload))
    }

    fn encode_frame(
        &self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &RequestKind,
    ) -> Result<Bytes> {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .map_err(|error| ClientError::Encode(format!("header: {error}")))?;
        body.encode(&mut frame, version).map_err(|error| {
            ClientError::Encode(format!("{} v{version}: {error}", api_name(api_key)))
        })?;
        let length = i32::try_from(frame.len() - 4)
            .map_err(|_| ClientError::Encode("request larger than 2 GiB".into()))?;
        assert!(length > 0, "a frame holds at least a header");
        frame[..4].copy_from_slice(&length.to_be_bytes());
        Ok(frame.freeze())
    }
}

/// Write, flush, and read one length-prefixed reply.
async fn round_trip(
    stream: &mut TcpStream,
    frame: Bytes,
    reply_expected: bool,
) -> Result<Option<Bytes>> {
    let io = |error: std::io::Error| ClientError::Io(error.to_string());
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    if !reply_expected {
        return Ok(None);
    }
    let length = stream.read_i32().await.map_err(io)?;
    let length = usize::try_from(length)
        .map_err(|_| ClientError::Protocol(format!("negative frame length {length}")))?;
    if !(4..=FRAME_BYTES_MAX).contains(&length) {
        return Err(ClientError::Protocol(format!(
            "frame length {length} out of bounds"
        )));
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.map_err(io)?;
    Ok(Some(Bytes::from(payload)))
}

fn connect_error(addr: &str, reason: String) -> ClientError {
    ClientError::Connect {
        addr: addr.to_string(),
        reason,
    }
}

/// The API of a request body, for the kinds this client sends.
pub fn request_api_key(body: &RequestKind) -> Result<ApiKey> {
    let api_key = match body {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
        RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        _ => {
            return Err(ClientError::Encode(
                "request kind not implemented by this client".into(),
            ))
        }
    };
    Ok(api_key)
}
