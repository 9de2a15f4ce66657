//! The inter-node handshake on the Kafka listener: SaslHandshake and SaslAuthenticate with
//! rill's own mechanism ([`auth::MECHANISM`]), the server side of [`crate::auth`]. A connection
//! that completes it is bound to the broker id it proved; only such a connection's Fetch and
//! OffsetForLeaderEpoch with that replica id are served as a follower's.
//!
//! Kafka clients see a broker that offers no SASL mechanism of theirs
//! (UNSUPPORTED_SASL_MECHANISM, as Kafka answers an unknown mechanism); their requests are
//! served as before.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::auth::{self, ClusterSecret, Purpose, ServerHandshake};
use crate::node::shared::Shared;

/// Where one connection is in the handshake.
#[derive(Debug, Default)]
enum Stage {
    /// Nothing asked yet.
    #[default]
    Start,
    /// SaslHandshake chose rill's mechanism; the hello comes next.
    Mechanism,
    /// The challenge went out; the proof comes next.
    Challenged(ServerHandshake),
    /// The connection is bound to this broker id.
    Authenticated(i32),
    /// A step failed: nothing more is accepted on this connection.
    Failed,
}

/// One connection's handshake state, shared by its concurrent requests (a short lock, no IO
/// under it).
#[derive(Clone, Debug, Default)]
pub struct ConnectionAuth(Arc<Mutex<Stage>>);

impl ConnectionAuth {
    fn lock(&self) -> MutexGuard<'_, Stage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker this connection proved to be, if any.
    pub fn broker(&self) -> Option<i32> {
        match *self.lock() {
            Stage::Authenticated(broker) => Some(broker),
            _ => None,
        }
    }
}

/// May this connection fetch as replica `replica_id`? Always without a cluster secret (an
/// insecure cluster, warned about at start); with one, only as the broker it proved to be.
pub fn may_act_as_replica(shared: &Shared, connection: &ConnectionAuth, replica_id: i32) -> bool {
    shared.secret.is_none() || connection.broker() == Some(replica_id)
}

/// SaslHandshake: rill's inter-node mechanism only, and only with a cluster secret.
pub fn sasl_handshake(
    shared: &Shared,
    connection: &ConnectionAuth,
    request: &SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let offered: Vec<StrBytes> = match shared.secret {
        Some(_) => vec![StrBytes::from_static_str(auth::MECHANISM)],
        None => Vec::new(),
    };
    let mut stage = connection.lock();
    let fits = shared.secret.is_some()
        && request.mechanism.as_str() == auth::MECHANISM
        && matches!(*stage, Stage::Start);
    let code = if fits {
        *stage = Stage::Mechanism;
        0
    } else {
        E::UnsupportedSaslMechanism.code()
    };
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(offered)
}

/// SaslAuthenticate: the hello (answered with the challenge), then the proof.
pub fn sasl_authenticate(
    shared: &Shared,
    connection: &ConnectionAuth,
    request: &SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let mut stage = connection.lock();
    let outcome = match (std::mem::take(&mut *stage), &shared.secret) {
        (Stage::Mechanism, Some(secret)) => {
            on_hello(shared, secret, &request.auth_bytes).map(|(handshake, challenge)| {
                *stage = Stage::Challenged(handshake);
                challenge
            })
        }
        (Stage::Challenged(handshake), Some(_)) => auth::from_bytes(&request.auth_bytes)
            .and_then(|proof| handshake.on_proof(&proof))
            .and_then(|node| {
                let broker = i32::try_from(node)
                    .map_err(|_| auth::AuthError::UnexpectedPeer(format!("node {node}")))?;
                tracing::debug!(broker, "replication connection authenticated");
                *stage = Stage::Authenticated(broker);
                Ok(Vec::new())
            }),
        (previous, _) => {
            *stage = previous;
            Err(auth::AuthError::Malformed(
                "SaslAuthenticate out of order".into(),
            ))
        }
    };
    match outcome {
        Ok(token) => SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token)),
        Err(error) => {
            *stage = Stage::Failed;
            tracing::warn!(%error, "inter-node authentication failed on the Kafka listener");
            SaslAuthenticateResponse::default()
                .with_error_code(E::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(error.to_string())))
        }
    }
}

fn on_hello(
    shared: &Shared,
    secret: &ClusterSecret,
    token: &[u8],
) -> Result<(ServerHandshake, Vec<u8>), auth::AuthError> {
    let hello: auth::Hello = auth::from_bytes(token)?;
    let node_id = u64::try_from(shared.broker_id.0).expect("node ids are positive");
    // Only registered brokers replicate; the secret is the proof, the registration the filter.
    let image = shared.image();
    let is_member = |id: u64| {
        i32::try_from(id).is_ok_and(|id| image.brokers().contains_key(&wire::BrokerId(id)))
    };
    let (handshake, challenge) =
        ServerHandshake::on_hello(secret, Purpose::Replication, node_id, &hello, is_member)?;
    Ok((handshake, auth::to_bytes(&challenge)))
}
