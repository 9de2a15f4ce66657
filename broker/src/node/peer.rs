//! A broker's own Kafka connection to another broker, for replication (Fetch and
//! OffsetForLeaderEpoch with a replica id). One request in flight per connection; every request
//! has a timeout; a mismatched correlation id or a decode error drops the connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::auth::{self, ClientHandshake, NodeCredentials, Purpose};
use crate::protocol::frame::{write_frame, FrameReader, FRAME_BYTES_MAX_DEFAULT};

/// Why a peer request failed. Every variant means: drop the connection, back off, retry.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Connecting, reading or writing failed (the peer may be down).
    #[error("peer io: {0}")]
    Io(String),
    /// No answer within the timeout (the link may be partitioned).
    #[error("peer request timed out")]
    Timeout,
    /// The answer did not decode or did not match the request.
    #[error("peer protocol: {0}")]
    Protocol(String),
    /// The inter-node handshake failed (another secret, another node, no secret there).
    #[error("peer authentication: {0}")]
    Auth(String),
}

/// The SaslHandshake version of the inter-node handshake (v1: SaslAuthenticate carries tokens).
pub const SASL_HANDSHAKE_VERSION: i16 = 1;
/// The SaslAuthenticate version of the inter-node handshake.
pub const SASL_AUTHENTICATE_VERSION: i16 = 1;

/// One connection to a peer broker's Kafka listener.
pub struct PeerConnection {
    /// The stream, exclusively ours.
    stream: TcpStream,
    /// Frame decoder state.
    reader: FrameReader,
    /// The next correlation id.
    correlation_id_next: i32,
    /// Our client id, so the peer's logs name us.
    client_id: StrBytes,
}

impl PeerConnection {
    /// Connects within `timeout`.
    pub async fn connect(
        address: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<PeerConnection, PeerError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| PeerError::Timeout)?
            .map_err(|e| PeerError::Io(e.to_string()))?;
        // Replication requests are small and latency-bound; Nagle would only delay them.
        let _best_effort = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            reader: FrameReader::new(FRAME_BYTES_MAX_DEFAULT),
            correlation_id_next: 1,
            client_id: StrBytes::from_string(client_id.to_string()),
        })
    }

    /// Proves this broker to the leader `server_id` with the cluster secret (see
    /// [`crate::auth`]), over SaslHandshake and SaslAuthenticate with rill's inter-node
    /// mechanism; afterwards the leader serves this connection's follower fetches.
    pub async fn authenticate(
        &mut self,
        credentials: &NodeCredentials,
        server_id: u64,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(auth::MECHANISM));
        let answer: SaslHandshakeResponse = self
            .request(
                ApiKey::SaslHandshake,
                SASL_HANDSHAKE_VERSION,
                &handshake,
                timeout,
            )
            .await?;
        if answer.error_code != 0 {
            return Err(PeerError::Auth(format!(
                "SaslHandshake error {}: the leader has no cluster secret or another mechanism",
                answer.error_code
            )));
        }
        let (client, hello) = ClientHandshake::start(
            &credentials.secret,
            Purpose::Replication,
            credentials.node_id,
            server_id,
        );
        let challenge_bytes = self.sasl_token(auth::to_bytes(&hello), timeout).await?;
        let challenge: auth::Challenge =
            auth::from_bytes(&challenge_bytes).map_err(|e| PeerError::Auth(e.to_string()))?;
        let proof = client
            .on_challenge(&challenge)
            .map_err(|e| PeerError::Auth(e.to_string()))?;
        self.sasl_token(auth::to_bytes(&proof), timeout).await?;
        Ok(())
    }

    /// One SaslAuthenticate round: our token out, the leader's token back.
    async fn sasl_token(&mut self, token: Vec<u8>, timeout: Duration) -> Result<Bytes, PeerError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let answer: SaslAuthenticateResponse = self
            .request(
                ApiKey::SaslAuthenticate,
                SASL_AUTHENTICATE_VERSION,
                &request,
                timeout,
            )
            .await?;
        if answer.error_code != 0 {
            return Err(PeerError::Auth(format!(
                "SaslAuthenticate error {}: {}",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or("")
            )));
        }
        Ok(answer.auth_bytes)
    }

    /// Sends `body` as `api_key` at `version` and decodes the answer, within `timeout`.
    pub async fn request<Req, Resp>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable,
        Resp: Decodable,
    {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1).max(1);
        let frame = encode_request(api_key, version, correlation_id, &self.client_id, body)?;
        let exchange = async {
            write_frame(&mut self.stream, &frame)
                .await
                .map_err(|e| PeerError::Io(e.to_string()))?;
            self.stream
                .flush()
                .await
                .map_err(|e| PeerError::Io(e.to_string()))?;
            self.reader
                .read_frame(&mut self.stream)
                .await
                .map_err(|e| PeerError::Io(e.to_string()))?
                .ok_or_else(|| PeerError::Io("peer closed the connection".into()))
        };
        let mut payload = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout)??;
        decode_response(api_key, version, correlation_id, &mut payload)
    }
}

fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
    body: &Req,
) -> Result<Bytes, PeerError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api_key.request_header_version(version))
        .and_then(|()| body.encode(&mut out, version))
        .map_err(|e| PeerError::Protocol(format!("encode {api_key:?} v{version}: {e}")))?;
    Ok(out.freeze())
}

fn decode_response<Resp: Decodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    payload: &mut Bytes,
) -> Result<Resp, PeerError> {
    let header = ResponseHeader::decode(payload, api_key.response_header_version(version))
        .map_err(|e| PeerError::Protocol(format!("{api_key:?} response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(PeerError::Protocol(format!(
            "correlation id {} answers request {correlation_id}",
            header.correlation_id
        )));
    }
    Resp::decode(payload, version)
        .map_err(|e| PeerError::Protocol(format!("{api_key:?} v{version} response: {e}")))
}
