//! One TCP connection to one broker: framing, version negotiation, correlation ids, and a timeout
//! on every request. [`Connection::call`] has one request in flight (`&mut self`), so a reply is
//! always the answer to the last request. A producer pipelines instead (Kafka's
//! `max.in.flight.requests.per.connection`): [`Connection::send`] writes requests back to back
//! and [`Connection::receive`] reads their replies in the order they were sent, as Kafka brokers
//! answer. Either way a reply carrying another correlation id means the stream is out of step and
//! the connection is closed.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, VersionRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::ClientConfig;
use crate::error::{code, ClientError, Result};
use crate::sasl::{self, ScramClient, ScramHash};
use crate::security::{SaslConfig, SaslMechanism, SecurityConfig};
use crate::tls::{self, Stream};
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
    stream: Option<Stream>,
    /// Next correlation id; wraps at `i32::MAX` (ids only need to differ from the last one).
    correlation_id_next: i32,
    /// Negotiated version per raw API key: the highest both sides support.
    versions: BTreeMap<i16, i16>,
    /// Default bound on one request's round trip.
    timeout_ms: u64,
    /// Bytes read and not yet parsed into a frame: reading into it is cancel-safe, so a
    /// [`Connection::receive`] dropped half way loses nothing.
    read_buffer: BytesMut,
    /// Requests sent with [`Connection::send`] whose replies were not read yet, oldest first:
    /// (correlation id, API, version).
    pending: VecDeque<(i32, ApiKey, i16)>,
    /// When to stop using an authenticated connection: a little before the SASL session the
    /// broker granted ends (KIP-368's `session_lifetime_ms`), after which the broker closes it.
    /// The pool then dials a new, freshly authenticated connection.
    session_deadline: Option<tokio::time::Instant>,
}

/// Most requests one connection pipelines; more is a caller's bug.
pub const PIPELINED_MAX: usize = 64;

impl Connection {
    /// Dials `addr` in plain text, then negotiates versions with ApiVersions; both bounded by
    /// `timeout_ms`. Failures here are definite: no application request was sent.
    pub async fn connect(addr: &str, client_id: &str, timeout_ms: u64) -> Result<Connection> {
        Connection::connect_with(addr, client_id, timeout_ms, &SecurityConfig::default()).await
    }

    /// Dials `addr` with `config`'s client id, timeout and security.
    pub async fn open(addr: &str, config: &ClientConfig) -> Result<Connection> {
        Connection::connect_with(
            addr,
            &config.client_id,
            config.request_timeout_ms,
            &config.security,
        )
        .await
    }

    /// Dials `addr`, runs the TLS handshake if `security` says so, negotiates versions with
    /// ApiVersions and authenticates with SASL if `security` says so; each step bounded by
    /// `timeout_ms`. Failures here are definite: no application request was sent. Refused
    /// credentials or certificates are [`ClientError::Authentication`].
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        timeout_ms: u64,
        security: &SecurityConfig,
    ) -> Result<Connection> {
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
        let stream = if security.protocol.uses_tls() {
            let handshake = tokio::time::timeout(
                std::time::Duration::from_millis(timeout_ms),
                tls::handshake(stream, addr, security),
            );
            match handshake.await {
                Ok(outcome) => outcome?,
                Err(_) => {
                    return Err(connect_error(
                        addr,
                        format!("TLS handshake timed out after {timeout_ms} ms"),
                    ))
                }
            }
        } else {
            Stream::Plain(stream)
        };
        let mut connection = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            stream: Some(stream),
            correlation_id_next: 0,
            versions: BTreeMap::new(),
            timeout_ms,
            read_buffer: BytesMut::new(),
            pending: VecDeque::new(),
            session_deadline: None,
        };
        let broker_versions = connection
            .api_versions()
            .await
            .map_err(|error| connect_error(addr, format!("ApiVersions failed: {error}")))?;
        connection.versions = negotiate(&broker_versions);
        if security.protocol.uses_sasl() {
            connection
                .authenticate(&security.sasl)
                .await
                .map_err(|error| match error {
                    ClientError::Authentication { .. } => error,
                    other => connect_error(addr, format!("SASL: {other}")),
                })?;
        }
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

    /// Open, and not near the end of its SASL session: fit for a new request.
    pub fn is_usable(&self) -> bool {
        !self.is_closed()
            && self
                .session_deadline
                .is_none_or(|deadline| tokio::time::Instant::now() < deadline)
    }

    /// SaslHandshake v1 with the configured mechanism, then its SaslAuthenticate exchange:
    /// PLAIN's one token, OAUTHBEARER's one message (its error challenge answered with `^A`), or
    /// SCRAM's two messages and a check of the broker's signature. A
    /// refusal is [`ClientError::Authentication`] with the broker's message.
    async fn authenticate(&mut self, config: &SaslConfig) -> Result<()> {
        let mechanism = config.mechanism;
        let timeout_ms = self.timeout_ms;
        let reply = self
            .call(ApiKey::SaslHandshake, timeout_ms, |_| {
                Ok(RequestKind::SaslHandshake(
                    SaslHandshakeRequest::default()
                        .with_mechanism(StrBytes::from_static_str(mechanism.name())),
                ))
            })
            .await
            .map_err(|error| match error {
                ClientError::UnsupportedVersion { .. } => self.refused(format!(
                    "the broker serves no SASL (SaslHandshake v1): {error}"
                )),
                other => other,
            })?;
        let handshake = crate::expect_response!(reply, SaslHandshake)?;
        if handshake.error_code != 0 {
            let enabled: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(self.refused(format!(
                "mechanism {} refused ({}); the listener enables {enabled:?}",
                mechanism.name(),
                error_name(handshake.error_code)
            )));
        }
        let (user, password) = (&config.username, &config.password.0);
        let last = match ScramHash::of(mechanism) {
            None if mechanism == SaslMechanism::OAuthBearer => {
                let token = config
                    .oauthbearer
                    .token_at(crate::clock::wall_clock_ms())
                    .ok_or_else(|| ClientError::Config("OAUTHBEARER without a token".into()))?;
                let first = sasl::oauthbearer_first(&token, &config.oauthbearer.extensions);
                let answer = self.sasl_step(first).await?;
                if !answer.auth_bytes.is_empty() {
                    // RFC 7628 §3.2.2: the broker's error JSON; our kvsep makes it fail the
                    // exchange with that error (`sasl_step` returns the refusal).
                    let challenge = String::from_utf8_lossy(&answer.auth_bytes).into_owned();
                    self.sasl_step(sasl::OAUTHBEARER_ERROR_ACK.to_vec()).await?;
                    return Err(self.refused(format!("OAUTHBEARER: {challenge}")));
                }
                answer
            }
            None => {
                assert_eq!(
                    mechanism,
                    SaslMechanism::Plain,
                    "the one non-SCRAM mechanism"
                );
                self.sasl_step(sasl::plain_token(user, password)).await?
            }
            Some(hash) => {
                let (client, first) =
                    ScramClient::start(hash, user, password, &sasl::fresh_nonce());
                let server_first = self.sasl_step(first).await?;
                let (client, client_final) = client
                    .on_server_first(&server_first.auth_bytes)
                    .map_err(|error| self.refused(error.to_string()))?;
                let server_final = self.sasl_step(client_final).await?;
                client
                    .on_server_final(&server_final.auth_bytes)
                    .map_err(|error| self.refused(error.to_string()))?;
                server_final
            }
        };
        if last.session_lifetime_ms > 0 {
            // Stop sending a tenth of the lifetime early: a request in flight when the session
            // ends is refused by closing the connection.
            let lifetime_ms = u64::try_from(last.session_lifetime_ms).unwrap_or(0);
            let margin_ms = lifetime_ms / 10;
            self.session_deadline = Some(
                tokio::time::Instant::now()
                    + std::time::Duration::from_millis(lifetime_ms - margin_ms),
            );
        }
        tracing::debug!(addr = %self.addr, mechanism = mechanism.name(), "authenticated");
        Ok(())
    }

    /// One SaslAuthenticate round trip; an error code is a refusal.
    async fn sasl_step(&mut self, token: Vec<u8>) -> Result<SaslAuthenticateResponse> {
        let timeout_ms = self.timeout_ms;
        let reply = self
            .call(ApiKey::SaslAuthenticate, timeout_ms, |_| {
                Ok(RequestKind::SaslAuthenticate(
                    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                ))
            })
            .await
            .map_err(|error| match error {
                ClientError::UnsupportedVersion { .. } => {
                    self.refused(format!("the broker serves no SaslAuthenticate: {error}"))
                }
                other => other,
            })?;
        let answer = crate::expect_response!(reply, SaslAuthenticate)?;
        if answer.error_code != 0 {
            let message = answer
                .error_message
                .as_ref()
                .map_or_else(String::new, |m| format!(": {m}"));
            return Err(self.refused(format!("{}{message}", error_name(answer.error_code))));
        }
        Ok(answer)
    }

    /// An authentication refusal; the connection is closed (the broker closes it too).
    fn refused(&mut self, reason: String) -> ClientError {
        self.close();
        ClientError::Authentication {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Closes the connection; a late reply can then never be mistaken for a new one's.
    pub fn close(&mut self) {
        self.stream = None;
        self.pending.clear();
        self.read_buffer.clear();
    }

    /// Requests sent with [`Connection::send`] and not yet answered through
    /// [`Connection::receive`].
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes a request at the negotiated version without waiting for its reply: pipelining.
    /// Replies are read in send order by [`Connection::receive`]. Any failure closes the
    /// connection (a partly written frame leaves the stream unusable).
    pub async fn send(
        &mut self,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<()> {
        assert!(self.pending.len() < PIPELINED_MAX, "pipelining is bounded");
        let (version, body) = self.versioned_body(api_key, build)?;
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = correlation_id.checked_add(1).unwrap_or(0);
        let frame = self.encode_frame(api_key, version, correlation_id, &body)?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let timeout_ms = self.timeout_ms;
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let written = tokio::time::timeout(timeout, write_frame(stream, frame)).await;
        self.within(written, timeout_ms)?;
        self.pending.push_back((correlation_id, api_key, version));
        Ok(())
    }

    /// The reply to the oldest request sent with [`Connection::send`], waiting at most
    /// `timeout_ms`. Cancel-safe: dropping the future loses no bytes, and the next call reads
    /// the same reply. A timeout, an I/O error or a malformed reply closes the connection.
    pub async fn receive(&mut self, timeout_ms: u64) -> Result<ResponseKind> {
        let (correlation_id, api_key, version) = *self
            .pending
            .front()
            .ok_or_else(|| ClientError::Protocol("no request awaits a reply".into()))?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let read = tokio::time::timeout(timeout, read_frame(stream, &mut self.read_buffer)).await;
        let frame = self.within(read, timeout_ms)?;
        self.pending.pop_front();
        let mut payload = self.reply_body(frame, api_key, version, correlation_id)?;
        ResponseKind::decode(api_key, &mut payload, version).map_err(|error| {
            self.close();
            ClientError::Protocol(format!("{} v{version} reply: {error}", api_name(api_key)))
        })
    }

    /// The negotiated version of `api_key` and the request body built for it.
    fn versioned_body(
        &self,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Result<RequestKind>,
    ) -> Result<(i16, RequestKind)> {
        let version = self
            .version(api_key)
            .ok_or(ClientError::UnsupportedVersion {
                api: api_name(api_key),
            })?;
        Ok((version, build(version)?))
    }

    /// The result of a stream step bounded by `timeout_ms` (`Err(_)` of the outer result: it
    /// elapsed). An error or a timeout closes the connection: the stream may be mid-frame.
    fn within<T, Elapsed>(
        &mut self,
        outcome: std::result::Result<Result<T>, Elapsed>,
        timeout_ms: u64,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.close();
                Err(error)
            }
            Err(_) => {
                self.close();
                Err(ClientError::Timeout { timeout_ms })
            }
        }
    }

    /// A reply frame's body after its header, checking the header's correlation id.
    fn reply_body(
        &mut self,
        mut payload: Bytes,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes> {
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
        Ok(payload)
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
        let (version, body) = self.versioned_body(api_key, build)?;
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
        let (version, body) = self.versioned_body(api_key, build)?;
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
        assert!(
            self.pending.is_empty(),
            "a round trip never mixes with pipelined requests"
        );
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = correlation_id.checked_add(1).unwrap_or(0);
        let frame = self.encode_frame(api_key, version, correlation_id, body)?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Closed);
        };
        let round_trip = round_trip(stream, &mut self.read_buffer, frame, reply_expected);
        let outcome =
            tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), round_trip).await;
        let payload = self.within(outcome, timeout_ms)?;
        let Some(payload) = payload else {
            return Ok(None);
        };
        self.reply_body(payload, api_key, version, correlation_id)
            .map(Some)
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
    stream: &mut Stream,
    buffer: &mut BytesMut,
    frame: Bytes,
    reply_expected: bool,
) -> Result<Option<Bytes>> {
    write_frame(stream, frame).await?;
    if !reply_expected {
        return Ok(None);
    }
    read_frame(stream, buffer).await.map(Some)
}

/// Writes one frame and flushes (madsim only sends on flush).
async fn write_frame(stream: &mut Stream, frame: Bytes) -> Result<()> {
    let io = |error: std::io::Error| ClientError::Io(error.to_string());
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)
}

/// The next length-prefixed frame's payload. Cancel-safe: bytes read stay in `buffer`.
async fn read_frame(stream: &mut Stream, buffer: &mut BytesMut) -> Result<Bytes> {
    loop {
        if buffer.len() >= 4 {
            let length = i32::from_be_bytes(buffer[..4].try_into().expect("4 bytes"));
            let length = usize::try_from(length)
                .map_err(|_| ClientError::Protocol(format!("negative frame length {length}")))?;
            if !(4..=FRAME_BYTES_MAX).contains(&length) {
                return Err(ClientError::Protocol(format!(
                    "frame length {length} out of bounds"
                )));
            }
            if buffer.len() >= 4 + length {
                let mut frame = buffer.split_to(4 + length);
                frame.advance(4);
                assert_eq!(frame.len(), length);
                return Ok(frame.freeze());
            }
            buffer.reserve(4 + length - buffer.len());
        } else {
            buffer.reserve(4096);
        }
        let read = stream
            .read_buf(buffer)
            .await
            .map_err(|error| ClientError::Io(error.to_string()))?;
        if read == 0 {
            return Err(ClientError::Io("connection closed by the broker".into()));
        }
    }
}

/// A Kafka error code's protocol name.
fn error_name(code: i16) -> String {
    match ClientError::kafka("SASL", code) {
        ClientError::Kafka { name, .. } => name,
        _ => code.to_string(),
    }
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
        RequestKind::SaslHandshake(_) => ApiKey::SaslHandshake,
        RequestKind::SaslAuthenticate(_) => ApiKey::SaslAuthenticate,
        _ => {
            return Err(ClientError::Encode(
                "request kind not implemented by this client".into(),
            ))
        }
    };
    Ok(api_key)
}
