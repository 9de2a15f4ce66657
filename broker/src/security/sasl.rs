//! SaslHandshake and SaslAuthenticate on a Kafka listener: one state machine per connection for
//! every mechanism rill serves.
//!
//! - `RILL-CLUSTER-HMAC-SHA256` ([`crate::auth`]): brokers proving the cluster secret, on any
//!   listener of a node that has one; the connection is bound to the broker id it proved.
//! - `OAUTHBEARER` ([`oauthbearer`]): a bearer token, validated by the node's validator
//!   (unsecured or against a JWKS); the session ends when the token expires.
//! - `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (`security.sasl_mechanisms`): clients on a
//!   `SASL_PLAINTEXT` or `SASL_SSL` listener. SCRAM credentials come from the metadata log
//!   (AlterUserScramCredentials) or, for bootstrap users, from the node's config, both salted;
//!   PLAIN passwords are checked against the same SCRAM credentials (rill stores no passwords).
//!
//! A failed step answers SASL_AUTHENTICATION_FAILED (or ILLEGAL_SASL_STATE for an out-of-order
//! request) and marks the connection failed: the connection closes once the answer is written.
//! With `security.connections_max_reauth_ms` set, SaslAuthenticate v1+ tells the client its
//! session lifetime (KIP-368); a request other than SASL after it ends closes the connection,
//! and a re-authentication must prove the same principal.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use controller::ScramMechanism;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::oauthbearer::{self, TokenError, ValidToken, Validator};
use super::scram::{self, ScramServer};
use super::{Identity, ListenerInfo};
use crate::auth::{self, ClusterSecret, Purpose, ServerHandshake};
use crate::node::shared::Shared;

/// The SASL PLAIN mechanism (RFC 4616).
pub const PLAIN: &str = "PLAIN";
/// Longest PLAIN token accepted.
const PLAIN_BYTES_MAX: usize = 4096;

/// Where one connection is in an exchange.
#[derive(Debug, Default)]
enum Stage {
    /// No exchange under way (before the first, or after a completed one).
    #[default]
    Idle,
    /// SaslHandshake chose rill's inter-node mechanism; the hello comes next.
    ClusterMechanism,
    /// The inter-node challenge went out; the proof comes next.
    ClusterChallenged(ServerHandshake),
    /// SaslHandshake chose PLAIN; the token comes next.
    Plain,
    /// SaslHandshake chose SCRAM; the client's first message comes next.
    Scram(ScramMechanism),
    /// The server's first message went out; the client's final message comes next.
    ScramChallenged(Box<ScramServer>),
    /// SaslHandshake chose OAUTHBEARER; the client's first message comes next.
    OAuthBearer,
    /// The token was refused with RFC 7628's error challenge; the client's `^A` comes next,
    /// and the exchange fails with this message.
    OAuthBearerRefused(String),
    /// A step failed: the connection closes.
    Failed,
}

#[derive(Debug, Default)]
struct State {
    stage: Stage,
    /// Who the connection proved to be (kept through a re-authentication).
    identity: Option<Identity>,
    /// When the session ends (KIP-368), if sessions are bounded.
    expires_at: Option<Instant>,
}

/// One connection's SASL state, shared by its concurrent requests (a short lock, no IO under
/// it).
#[derive(Clone, Debug, Default)]
pub struct ConnectionAuth(Arc<Mutex<State>>);

impl ConnectionAuth {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker this connection proved to be, if any.
    pub fn broker(&self) -> Option<i32> {
        match self.lock().identity {
            Some(Identity::Broker(broker)) => Some(broker),
            _ => None,
        }
    }

    /// Who the connection authenticated as, if anyone.
    pub fn identity(&self) -> Option<Identity> {
        self.lock().identity.clone()
    }

    /// Binds the connection to the subject of the client certificate it presented (mutual TLS
    /// on an SSL listener), before any request.
    pub fn set_certificate_subject(&self, subject: String) {
        let mut state = self.lock();
        assert!(
            state.identity.is_none(),
            "set once, at the connection's start"
        );
        state.identity = Some(Identity::User(subject));
    }

    /// Did an exchange fail (the connection must close)?
    pub fn failed(&self) -> bool {
        matches!(self.lock().stage, Stage::Failed)
    }

    /// Has the session's lifetime passed?
    pub fn expired(&self, now: Instant) -> bool {
        self.lock().expires_at.is_some_and(|end| now >= end)
    }
}

/// May this connection fetch as replica `replica_id`? Always without a cluster secret (an
/// insecure cluster, warned about at start); with one, only as the broker it proved to be.
pub fn may_act_as_replica(shared: &Shared, connection: &ConnectionAuth, replica_id: i32) -> bool {
    shared.secret.is_none() || connection.broker() == Some(replica_id)
}

/// The mechanisms a listener offers, in the order Kafka lists `sasl.enabled.mechanisms`.
pub fn mechanisms(shared: &Shared, listener: &ListenerInfo) -> Vec<String> {
    let mut offered = Vec::new();
    if listener.protocol.uses_sasl() {
        offered.extend(shared.config.security.sasl_mechanisms.iter().cloned());
    }
    if shared.secret.is_some() {
        offered.push(auth::MECHANISM.to_string());
    }
    offered
}

/// SaslHandshake: chooses the mechanism of the exchange that follows.
pub fn sasl_handshake(
    shared: &Shared,
    listener: &ListenerInfo,
    connection: &ConnectionAuth,
    request: &SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let offered = mechanisms(shared, listener);
    let response = SaslHandshakeResponse::default().with_mechanisms(
        offered
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect(),
    );
    let mut state = connection.lock();
    if !matches!(state.stage, Stage::Idle) {
        state.stage = Stage::Failed;
        return response.with_error_code(E::IllegalSaslState.code());
    }
    let chosen = request.mechanism.as_str();
    if version == 0 {
        // v0's raw tokens after the handshake are not served (librdkafka needs v0 advertised
        // to use SASL at all, and then speaks v1).
        tracing::info!(
            mechanism = chosen,
            "SaslHandshake v0 (raw SASL tokens) refused"
        );
        return response.with_error_code(E::UnsupportedSaslMechanism.code());
    }
    if !offered.iter().any(|m| m == chosen) {
        tracing::info!(mechanism = chosen, listener = %listener.name, "SASL mechanism not offered");
        return response.with_error_code(E::UnsupportedSaslMechanism.code());
    }
    state.stage = if chosen == auth::MECHANISM {
        Stage::ClusterMechanism
    } else if chosen == PLAIN {
        Stage::Plain
    } else if chosen == oauthbearer::MECHANISM {
        Stage::OAuthBearer
    } else {
        Stage::Scram(ScramMechanism::from_name(chosen).expect("offered names are known"))
    };
    response
}

/// SaslAuthenticate: one step of the chosen mechanism.
pub fn sasl_authenticate(
    shared: &Shared,
    connection: &ConnectionAuth,
    request: &SaslAuthenticateRequest,
    version: i16,
) -> SaslAuthenticateResponse {
    let mut state = connection.lock();
    let outcome = step(shared, &mut state, &request.auth_bytes);
    match outcome {
        Ok(Step::Continue(token)) => {
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token))
        }
        Ok(Step::Done(identity, token, credential_expires_ms)) => {
            if state
                .identity
                .as_ref()
                .is_some_and(|previous| previous != &identity)
            {
                // KIP-368: a re-authentication may not change who the connection is.
                tracing::warn!(previous = ?state.identity, ?identity, "re-authentication as another principal");
                state.stage = Stage::Failed;
                return failed(
                    E::SaslAuthenticationFailed,
                    "re-authentication as another principal",
                );
            }
            tracing::debug!(
                principal = identity.principal(),
                "SASL authentication succeeded"
            );
            let mut response =
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token));
            let max_reauth_ms = shared.config.security.connections_max_reauth_ms;
            // Brokers' replication connections are bound to the cluster secret, not to a
            // user's credential that may be revoked: their sessions do not end.
            let max_reauth_ms = (max_reauth_ms > 0 && !matches!(identity, Identity::Broker(_)))
                .then_some(max_reauth_ms);
            // A token's session ends with it (Kafka's SaslServerAuthenticator): the lifetime
            // is min(token remaining, connections.max.reauth.ms).
            let credential_ms = credential_expires_ms.map(|expires| {
                u64::try_from(expires.saturating_sub(crate::runtime::wall_clock_ms())).unwrap_or(0)
            });
            let lifetime_ms = match (credential_ms, max_reauth_ms) {
                (None, None) => None,
                (Some(ms), None) | (None, Some(ms)) => Some(ms),
                (Some(credential), Some(max)) => Some(credential.min(max)),
            };
            if let Some(lifetime_ms) = lifetime_ms {
                state.expires_at = Some(Instant::now() + Duration::from_millis(lifetime_ms));
                if version >= 1 {
                    response.session_lifetime_ms = i64::try_from(lifetime_ms).unwrap_or(i64::MAX);
                }
            }
            state.identity = Some(identity);
            response
        }
        Err((code, error)) => {
            state.stage = Stage::Failed;
            tracing::warn!(%error, "SASL authentication failed");
            failed(code, &error)
        }
    }
}

fn failed(code: E, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

/// What one step gives: a token to send and more to come, or who the client is.
enum Step {
    Continue(Vec<u8>),
    /// Who, the last token, and when the credential expires (ms since the epoch), if it does.
    Done(Identity, Vec<u8>, Option<i64>),
}

fn step(shared: &Shared, state: &mut State, token: &[u8]) -> Result<Step, (E, String)> {
    let auth_failed = |e: String| (E::SaslAuthenticationFailed, e);
    match std::mem::take(&mut state.stage) {
        Stage::ClusterMechanism => {
            let secret = shared.secret.as_ref().expect("offered with a secret only");
            let (handshake, challenge) =
                on_hello(shared, secret, token).map_err(|e| auth_failed(e.to_string()))?;
            state.stage = Stage::ClusterChallenged(handshake);
            Ok(Step::Continue(challenge))
        }
        Stage::ClusterChallenged(handshake) => {
            let node = auth::from_bytes(token)
                .and_then(|proof| handshake.on_proof(&proof))
                .map_err(|e| auth_failed(format!("inter-node: {e}")))?;
            let broker =
                i32::try_from(node).map_err(|_| auth_failed(format!("inter-node: node {node}")))?;
            Ok(Step::Done(Identity::Broker(broker), Vec::new(), None))
        }
        Stage::Plain => {
            plain(shared, token).map(|user| Step::Done(Identity::User(user), Vec::new(), None))
        }
        Stage::Scram(mechanism) => {
            let lookup = |user: &str| credential(shared, user, mechanism);
            let (server, first) =
                ScramServer::on_client_first(mechanism, token, lookup, &server_nonce())
                    .map_err(|e| auth_failed(e.to_string()))?;
            state.stage = Stage::ScramChallenged(Box::new(server));
            Ok(Step::Continue(first))
        }
        Stage::ScramChallenged(server) => {
            let (user, last) = server.on_client_final(token).map_err(|e| {
                auth_failed(format!(
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism SCRAM: {e}"
                ))
            })?;
            Ok(Step::Done(Identity::User(user), last, None))
        }
        Stage::OAuthBearer => {
            let validator = shared
                .oauthbearer
                .as_ref()
                .expect("offered with a validator only");
            match oauthbearer_step(validator, token, crate::runtime::wall_clock_ms())? {
                Ok(valid) => Ok(Step::Done(
                    Identity::User(valid.principal),
                    Vec::new(),
                    Some(valid.expires_at_ms),
                )),
                Err(refused) => {
                    tracing::info!(reason = %refused.reason, "OAUTHBEARER token refused");
                    let challenge = refused.json();
                    state.stage = Stage::OAuthBearerRefused(challenge.clone());
                    Ok(Step::Continue(challenge.into_bytes()))
                }
            }
        }
        Stage::OAuthBearerRefused(error) => {
            // Kafka's OAuthBearerSaslServer: the client's kvsep after our error ends the
            // exchange with that error; anything else is a protocol violation, refused too.
            if token != [oauthbearer::KVSEP] {
                return Err(auth_failed(
                    "OAUTHBEARER: expected the client's ^A after the error".to_string(),
                ));
            }
            Err(auth_failed(error))
        }
        Stage::Idle | Stage::Failed => Err((
            E::IllegalSaslState,
            "SaslAuthenticate without a SaslHandshake".to_string(),
        )),
    }
}

/// OAUTHBEARER's one step: the client's first message parsed (a malformed one fails the
/// exchange at once, as Kafka's `SaslException`), its token validated at `now_ms`: the
/// principal and expiry, or the refusal to send as RFC 7628's error challenge.
fn oauthbearer_step(
    validator: &Validator,
    message: &[u8],
    now_ms: i64,
) -> Result<Result<ValidToken, TokenError>, (E, String)> {
    let first =
        oauthbearer::parse_client_first(message).map_err(|e| (E::SaslAuthenticationFailed, e))?;
    let valid = match validator.validate(&first.token, now_ms) {
        Ok(valid) => valid,
        Err(refused) => return Ok(Err(refused)),
    };
    if !first.authzid.is_empty() && first.authzid != valid.principal {
        return Err((
            E::SaslAuthenticationFailed,
            "Authentication failed: Client requested an authorization id that is different \
             from the token's principal name"
                .to_string(),
        ));
    }
    Ok(Ok(valid))
}

/// A user's SCRAM credential: the metadata log's, else the node config's bootstrap users.
pub fn credential(
    shared: &Shared,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<controller::ScramCredential> {
    if let Some(found) = shared.image().scram_credential(user, mechanism) {
        return Some(found.clone());
    }
    shared.config.security.static_credential(user, mechanism)
}

/// PLAIN's token: `authzid NUL user NUL password`, checked against the user's SCRAM credential
/// (SHA-256 if the user has one, else SHA-512).
fn plain(shared: &Shared, token: &[u8]) -> Result<String, (E, String)> {
    let refuse = |why: &str| (E::SaslAuthenticationFailed, why.to_string());
    if token.len() > PLAIN_BYTES_MAX {
        return Err(refuse("PLAIN token too long"));
    }
    let text = std::str::from_utf8(token).map_err(|_| refuse("PLAIN token is not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse("PLAIN token is not authzid NUL user NUL password"));
    };
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err(refuse("PLAIN: empty user or authorization id differs"));
    }
    let matches = ScramMechanism::ALL.into_iter().find_map(|mechanism| {
        credential(shared, user, mechanism).map(|stored| {
            shared
                .plain_logins
                .matches(user, mechanism, &stored, password)
        })
    });
    if matches == Some(true) {
        Ok(user.to_string())
    } else {
        Err(refuse(
            "Authentication failed: Invalid username or password",
        ))
    }
}

/// PLAIN logins already verified against their SCRAM credential, so a client that reconnects
/// (every client does, after any fault) costs one HMAC instead of a PBKDF2 of thousands of
/// iterations: a reconnect storm of many clients is not a storm of key derivations, and a
/// wrong password still costs the full derivation. An entry holds the credential it was
/// verified against, so a changed or deleted credential no longer matches it, and a keyed MAC
/// of the password (the key drawn per process), never the password.
pub struct PlainLogins {
    key: [u8; 32],
    verified: Mutex<std::collections::BTreeMap<String, PlainLogin>>,
}

struct PlainLogin {
    mechanism: ScramMechanism,
    credential: controller::ScramCredential,
    password_mac: [u8; 32],
}

/// Users whose verified PLAIN login is remembered, at most.
const PLAIN_LOGINS_MAX: usize = 1024;

impl Default for PlainLogins {
    fn default() -> Self {
        PlainLogins {
            key: crate::runtime::secret_key(),
            verified: Mutex::new(std::collections::BTreeMap::new()),
        }
    }
}

impl PlainLogins {
    /// Whether `password` is the one `stored` was derived from (with `mechanism`).
    pub fn matches(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        stored: &controller::ScramCredential,
        password: &str,
    ) -> bool {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(password.as_bytes());
        let password_mac: [u8; 32] = mac.finalize().into_bytes().into();
        let remembered = self.lock().get(user).is_some_and(|login| {
            login.mechanism == mechanism
                && login.credential == *stored
                && scram::constant_time_eq(&login.password_mac, &password_mac)
        });
        if remembered {
            return true;
        }
        if !scram::password_matches(mechanism, stored, password) {
            return false;
        }
        let mut verified = self.lock();
        if verified.len() >= PLAIN_LOGINS_MAX && !verified.contains_key(user) {
            verified.pop_first();
        }
        let login = PlainLogin {
            mechanism,
            credential: stored.clone(),
            password_mac,
        };
        verified.insert(user.to_string(), login);
        true
    }

    fn lock(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, PlainLogin>> {
        // Only whole inserts and removals happen under this lock.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fresh printable server nonce (runtime randomness: seeded under the simulator).
fn server_nonce() -> String {
    (0..3)
        .map(|_| format!("{:016x}", crate::runtime::random_u64()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_plain_login_still_refuses_a_wrong_password_and_a_changed_credential() {
        let logins = PlainLogins::default();
        let mechanism = ScramMechanism::Sha256;
        let stored = scram::credential(mechanism, "secret", b"salt-one", 4096);
        assert!(logins.matches("alice", mechanism, &stored, "secret"));
        assert!(
            logins.matches("alice", mechanism, &stored, "secret"),
            "remembered"
        );
        assert!(!logins.matches("alice", mechanism, &stored, "Secret"));
        assert!(!logins.matches("alice", mechanism, &stored, ""));
        assert!(!logins.matches("bob", mechanism, &stored, "wrong"));
        // The password changed: the remembered login was verified against the old credential.
        let changed = scram::credential(mechanism, "new-secret", b"salt-two", 4096);
        assert!(!logins.matches("alice", mechanism, &changed, "secret"));
        assert!(logins.matches("alice", mechanism, &changed, "new-secret"));
        let other = ScramMechanism::Sha512;
        let stored_512 = scram::credential(other, "new-secret", b"salt-two", 4096);
        assert!(!logins.matches("alice", other, &stored_512, "secret"));
    }

    #[test]
    fn remembered_plain_logins_are_bounded() {
        let logins = PlainLogins::default();
        let mechanism = ScramMechanism::Sha256;
        let stored = scram::credential(mechanism, "pw", b"salt", 1);
        for user in 0..PLAIN_LOGINS_MAX + 10 {
            assert!(logins.matches(&format!("user-{user:05}"), mechanism, &stored, "pw"));
        }
        assert_eq!(logins.lock().len(), PLAIN_LOGINS_MAX);
    }
}
