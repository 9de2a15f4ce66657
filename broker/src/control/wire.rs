//! The controller listener's protocol: 4-byte length-prefixed frames (the Kafka framing of
//! [`crate::protocol::frame`]) each carrying one JSON-encoded [`ControlMessage`].
//!
//! Raft traffic and client requests share the listener. Raft messages are one-way: a node sends
//! to a peer on its own outbound connection and never reads from it; replies come back on the
//! peer's outbound connection. Requests carry a correlation id echoed by the answer, because a
//! partitioned link holds data silently and the client gives up on its own timeout.
//!
//! When the cluster has a secret, every connection starts with the handshake of [`crate::auth`]
//! (`AuthHello`, `AuthChallenge`, `AuthProof`, `AuthOk`) and is then bound to the client's node
//! id: a raft message's `from` and a broker request's broker id must be that id.
//!
//! A malformed, unauthenticated or impersonating frame ends the connection it came on (logged),
//! never the process.

use super::ControlError;
use crate::auth::{ClientHandshake, NodeCredentials, Purpose};
use crate::protocol::frame::{write_frame, FrameReader};
use controller::raft_prelude::Message;
use protobuf::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest frame on the controller listener: a snapshot (the whole metadata image, JSON-encoded
/// as a byte array inside JSON) must fit.
pub const CONTROL_FRAME_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Longest a metadata fetch may park on the controller, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// One message on the controller listener.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ControlMessage {
    /// A connection's first message when the cluster has a secret (see [`crate::auth`]).
    AuthHello(crate::auth::Hello),
    /// The listener's answer to [`ControlMessage::AuthHello`].
    AuthChallenge(crate::auth::Challenge),
    /// The client's proof; the listener answers [`ControlMessage::AuthOk`] or closes.
    AuthProof(crate::auth::Proof),
    /// The connection is bound to the client's node id.
    AuthOk,
    /// A raft message between voters: raft-rs `Message` protobuf bytes.
    Raft(Vec<u8>),
    /// A client request for the active controller.
    Request {
        /// The client's correlation id, echoed by the answer.
        id: u64,
        /// What the client asks.
        request: controller::Request,
        /// For `FetchMetadata` only: how long the controller may hold the answer while nothing
        /// newer than `after_index` is applied (a long poll). 0 answers at once.
        #[serde(default)]
        wait_ms: u64,
    },
    /// The answer to request `id`: the controller's reply or typed refusal.
    Reply {
        /// The request's correlation id.
        id: u64,
        /// The outcome.
        result: Result<controller::Reply, controller::ControllerError>,
    },
    /// Request `id` reached a node that is not the active controller.
    NotController {
        /// The request's correlation id.
        id: u64,
        /// The raft leader this node knows of, if any: ask it next.
        leader_hint: Option<u64>,
    },
}

/// Encodes a raft message for [`ControlMessage::Raft`].
pub fn raft_to_bytes(message: &Message) -> Result<Vec<u8>, ControlError> {
    message
        .write_to_bytes()
        .map_err(|e| ControlError::Encode(e.to_string()))
}

/// Decodes the payload of [`ControlMessage::Raft`].
pub fn raft_from_bytes(bytes: &[u8]) -> Result<Message, ControlError> {
    Message::parse_from_bytes(bytes).map_err(|e| ControlError::Malformed(e.to_string()))
}

/// Serialises a message into a frame payload, refusing ones over the frame limit.
pub fn encode(message: &ControlMessage) -> Result<Vec<u8>, ControlError> {
    let payload = serde_json::to_vec(message).map_err(|e| ControlError::Encode(e.to_string()))?;
    if payload.len() > CONTROL_FRAME_BYTES_MAX as usize {
        return Err(ControlError::Encode(format!(
            "message of {} bytes over the frame limit",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Parses a frame payload.
pub fn decode(payload: &[u8]) -> Result<ControlMessage, ControlError> {
    assert!(
        payload.len() <= CONTROL_FRAME_BYTES_MAX as usize,
        "the reader enforces the limit"
    );
    serde_json::from_slice(payload).map_err(|e| ControlError::Malformed(e.to_string()))
}

/// Writes one message as a frame and flushes it.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &ControlMessage,
) -> Result<(), ControlError> {
    let payload = encode(message)?;
    write_frame(writer, &payload)
        .await
        .map_err(|e| ControlError::Io(e.to_string()))
}

/// The client side of the handshake on a fresh connection to node `server_id`: returns once
/// the listener has bound the connection to `credentials.node_id`. The caller bounds it with
/// its own timeout (a partitioned link holds data silently).
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    reader: &mut MessageReader,
    credentials: &NodeCredentials,
    server_id: u64,
) -> Result<(), ControlError> {
    let (handshake, hello) = ClientHandshake::start(
        &credentials.secret,
        Purpose::Controller,
        credentials.node_id,
        server_id,
    );
    write_message(stream, &ControlMessage::AuthHello(hello)).await?;
    let challenge = match reader.read(stream).await? {
        Some(ControlMessage::AuthChallenge(challenge)) => challenge,
        other => {
            return Err(ControlError::Auth(format!(
                "expected a challenge, got {other:?}"
            )))
        }
    };
    let proof = handshake
        .on_challenge(&challenge)
        .map_err(|e| ControlError::Auth(e.to_string()))?;
    write_message(stream, &ControlMessage::AuthProof(proof)).await?;
    match reader.read(stream).await? {
        Some(ControlMessage::AuthOk) => Ok(()),
        other => Err(ControlError::Auth(format!(
            "node {server_id} refused our proof: {other:?}"
        ))),
    }
}

/// A reader of [`ControlMessage`] frames with the controller's frame limit.
#[derive(Debug)]
pub struct MessageReader {
    /// The framing state (partial frames survive between calls).
    frames: FrameReader,
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader {
            frames: FrameReader::new(CONTROL_FRAME_BYTES_MAX),
        }
    }
}

impl MessageReader {
    /// The next message; `Ok(None)` at a clean end of stream (a killed peer reads as EOF).
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<ControlMessage>, ControlError> {
        let frame = self
            .frames
            .read_frame(reader)
            .await
            .map_err(|e| ControlError::Malformed(e.to_string()))?;
        frame.map(|payload| decode(&payload)).transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use controller::raft_prelude::MessageType;

    #[test]
    fn raft_message_round_trip() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgHeartbeat);
        message.from = 1;
        message.to = 2;
        message.term = 7;
        let bytes = raft_to_bytes(&message).unwrap();
        let framed = encode(&ControlMessage::Raft(bytes)).unwrap();
        let ControlMessage::Raft(back) = decode(&framed).unwrap() else {
            panic!("kind changed");
        };
        assert_eq!(raft_from_bytes(&back).unwrap(), message);
    }

    #[test]
    fn request_and_reply_round_trip() {
        let request = ControlMessage::Request {
            id: 9,
            request: controller::Request::FetchMetadata { after_index: 3 },
            wait_ms: 500,
        };
        assert_eq!(decode(&encode(&request).unwrap()).unwrap(), request);
        let reply = ControlMessage::Reply {
            id: 9,
            result: Err(controller::ControllerError::NotController),
        };
        assert_eq!(decode(&encode(&reply).unwrap()).unwrap(), reply);
        let legacy = br#"{"Request":{"id":1,"request":{"DeleteTopic":{"name":"t"}}}}"#;
        assert!(matches!(
            decode(legacy).unwrap(),
            ControlMessage::Request { wait_ms: 0, .. }
        ));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(decode(b"{nope"), Err(ControlError::Malformed(_))));
        assert!(matches!(
            raft_from_bytes(&[0xff, 0xff, 0xff]),
            Err(ControlError::Malformed(_))
        ));
    }
}
