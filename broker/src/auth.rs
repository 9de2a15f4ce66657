//! Inter-node authentication: a mutual challenge–response over the cluster secret.
//!
//! Every connection a node opens to another node (raft and controller requests on the
//! controller listener, replication fetches on the Kafka listener) starts with three messages:
//!
//! ```text
//! client → server  Hello     { purpose, client id, client nonce }
//! server → client  Challenge { server id, server nonce, server proof }
//! client → server  Proof     { client proof }
//! ```
//!
//! A proof is HMAC-SHA256 under the cluster secret over a domain tag, the side that computes it,
//! the purpose, both node ids and both nonces. The client checks the server's proof before it
//! answers (so a stranger learns nothing it could replay: a proof covers the stranger's fresh
//! nonce), the server checks the client's with a constant-time compare. Afterwards the
//! connection is bound to the client's node id, and every frame's claimed sender must be that id.
//!
//! The exchange is sans-IO ([`ClientHandshake`], [`ServerHandshake`]); the controller listener
//! carries it in its own frames, the Kafka listener in SaslHandshake/SaslAuthenticate with the
//! mechanism [`MECHANISM`]. The simulator runs the same code over madsim TCP.
//!
//! Not covered: confidentiality (no TLS; the secret itself never crosses the wire), clients of
//! the Kafka protocol (no SASL for them yet), authorisation beyond "is a cluster member".

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The SASL mechanism name brokers use among themselves on the Kafka listener.
pub const MECHANISM: &str = "RILL-CLUSTER-HMAC-SHA256";

/// Bytes of a nonce (256 bits: never repeats in practice, whatever the number of connections).
pub const NONCE_BYTES: usize = 32;
/// Bytes of a proof (an HMAC-SHA256 tag).
pub const PROOF_BYTES: usize = 32;
/// Fewest bytes a cluster secret may have: 128 bits, so it cannot be guessed.
pub const SECRET_BYTES_MIN: usize = 16;
/// Most bytes of a secret file (a secret is a line of text; more is a wrong file).
pub const SECRET_FILE_BYTES_MAX: usize = 4096;

/// Separates rill's proofs from any other use of the same key.
const DOMAIN: &[u8] = b"rill inter-node auth v1";

/// Why a handshake failed. Each variant closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The peer proved nothing, or proved knowledge of another secret.
    #[error("peer failed to prove the cluster secret")]
    BadProof,
    /// The peer is not who this side expected (another node id, another purpose).
    #[error("unexpected peer: {0}")]
    UnexpectedPeer(String),
    /// A handshake message did not decode.
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    /// The secret is missing, too short or unreadable.
    #[error("cluster secret: {0}")]
    Secret(String),
}

/// What a node proves itself with: its id and the cluster secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCredentials {
    /// The node's id (broker id and raft id).
    pub node_id: u64,
    /// The cluster secret.
    pub secret: ClusterSecret,
}

/// What a connection is for: a proof for one purpose is no proof for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Purpose {
    /// Raft messages and controller requests on the controller listener.
    Controller,
    /// Follower fetches on the Kafka listener.
    Replication,
}

impl Purpose {
    fn tag(self) -> u8 {
        match self {
            Purpose::Controller => 1,
            Purpose::Replication => 2,
        }
    }
}

/// The per-cluster secret every node holds. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.0.len())
    }
}

impl ClusterSecret {
    /// A secret from its text (surrounding whitespace ignored), at least [`SECRET_BYTES_MIN`].
    pub fn new(text: &str) -> Result<ClusterSecret, AuthError> {
        let trimmed = text.trim();
        if trimmed.len() < SECRET_BYTES_MIN {
            return Err(AuthError::Secret(format!(
                "{} bytes, at least {SECRET_BYTES_MIN} needed",
                trimmed.len()
            )));
        }
        Ok(ClusterSecret(trimmed.as_bytes().to_vec()))
    }

    /// Reads a secret file (one line of text).
    pub fn from_file(path: &Path) -> Result<ClusterSecret, AuthError> {
        let bytes = std::fs::read(path)
            .map_err(|e| AuthError::Secret(format!("{}: {e}", path.display())))?;
        if bytes.len() > SECRET_FILE_BYTES_MAX {
            return Err(AuthError::Secret(format!(
                "{}: {} bytes, a secret file holds one line",
                path.display(),
                bytes.len()
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| AuthError::Secret(format!("{}: not text", path.display())))?;
        ClusterSecret::new(&text)
    }

    /// A fresh random secret as text (64 hex digits), for `rill cluster up`.
    pub fn generate_text() -> String {
        (0..4)
            .map(|_| format!("{:016x}", crate::runtime::random_u64()))
            .collect()
    }

    /// The proof `side` computes over a handshake.
    fn proof(&self, side: Side, transcript: &Transcript) -> [u8; PROOF_BYTES] {
        self.mac(side, transcript).finalize().into_bytes().into()
    }

    /// Checks `proof` from `side` in constant time.
    fn verify(&self, side: Side, transcript: &Transcript, proof: &[u8]) -> Result<(), AuthError> {
        self.mac(side, transcript)
            .verify_slice(proof)
            .map_err(|_| AuthError::BadProof)
    }

    fn mac(&self, side: Side, transcript: &Transcript) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(DOMAIN);
        mac.update(&[side as u8, transcript.purpose.tag()]);
        mac.update(&transcript.client_id.to_be_bytes());
        mac.update(&transcript.server_id.to_be_bytes());
        mac.update(&transcript.client_nonce);
        mac.update(&transcript.server_nonce);
        mac
    }
}

/// Which side computed a proof: the two proofs of one handshake differ, so neither can be
/// reflected back as the other.
#[derive(Clone, Copy, Debug)]
enum Side {
    Client = 1,
    Server = 2,
}

/// What both proofs cover.
#[derive(Clone, Debug)]
struct Transcript {
    purpose: Purpose,
    client_id: u64,
    server_id: u64,
    client_nonce: [u8; NONCE_BYTES],
    server_nonce: [u8; NONCE_BYTES],
}

fn nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    for chunk in nonce.chunks_mut(8) {
        chunk.copy_from_slice(&crate::runtime::random_u64().to_be_bytes());
    }
    nonce
}

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// What the connection is for.
    pub purpose: Purpose,
    /// The client's node id.
    pub node_id: u64,
    /// The client's fresh nonce.
    pub nonce: Vec<u8>,
}

/// The server's answer: its id, its nonce and its proof.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// The server's node id.
    pub node_id: u64,
    /// The server's fresh nonce.
    pub nonce: Vec<u8>,
    /// HMAC over the transcript, server side.
    pub proof: Vec<u8>,
}

/// The client's proof.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// HMAC over the transcript, client side.
    pub proof: Vec<u8>,
}

fn nonce_from(bytes: &[u8]) -> Result<[u8; NONCE_BYTES], AuthError> {
    bytes
        .try_into()
        .map_err(|_| AuthError::Malformed(format!("nonce of {} bytes", bytes.len())))
}

/// The connecting side of a handshake.
#[derive(Debug)]
pub struct ClientHandshake {
    secret: ClusterSecret,
    purpose: Purpose,
    node_id: u64,
    /// The node this side means to reach: a server proving another id is refused.
    server_id: u64,
    nonce: [u8; NONCE_BYTES],
}

impl ClientHandshake {
    /// Starts a handshake from `node_id` to `server_id`; send the returned [`Hello`].
    pub fn start(
        secret: &ClusterSecret,
        purpose: Purpose,
        node_id: u64,
        server_id: u64,
    ) -> (ClientHandshake, Hello) {
        let handshake = ClientHandshake {
            secret: secret.clone(),
            purpose,
            node_id,
            server_id,
            nonce: nonce(),
        };
        let hello = Hello {
            purpose,
            node_id,
            nonce: handshake.nonce.to_vec(),
        };
        (handshake, hello)
    }

    /// Checks the server's challenge; on success send the returned [`Proof`], after which the
    /// server knows who this side is.
    pub fn on_challenge(self, challenge: &Challenge) -> Result<Proof, AuthError> {
        if challenge.node_id != self.server_id {
            return Err(AuthError::UnexpectedPeer(format!(
                "node {} answered for node {}",
                challenge.node_id, self.server_id
            )));
        }
        let transcript = Transcript {
            purpose: self.purpose,
            client_id: self.node_id,
            server_id: challenge.node_id,
            client_nonce: self.nonce,
            server_nonce: nonce_from(&challenge.nonce)?,
        };
        self.secret
            .verify(Side::Server, &transcript, &challenge.proof)?;
        Ok(Proof {
            proof: self.secret.proof(Side::Client, &transcript).to_vec(),
        })
    }
}

/// The accepting side of a handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    secret: ClusterSecret,
    transcript: Transcript,
}

impl ServerHandshake {
    /// Answers a client's hello for a connection of `purpose` to node `node_id`; send the
    /// returned [`Challenge`]. `members` are the node ids that may connect.
    pub fn on_hello(
        secret: &ClusterSecret,
        purpose: Purpose,
        node_id: u64,
        hello: &Hello,
        is_member: impl Fn(u64) -> bool,
    ) -> Result<(ServerHandshake, Challenge), AuthError> {
        // A combined node's broker connects to its own controller: the client may share the
        // server's id (the two proofs still differ by side).
        if hello.purpose != purpose || !is_member(hello.node_id) {
            return Err(AuthError::UnexpectedPeer(format!(
                "node {} for {:?}",
                hello.node_id, hello.purpose
            )));
        }
        let transcript = Transcript {
            purpose,
            client_id: hello.node_id,
            server_id: node_id,
            client_nonce: nonce_from(&hello.nonce)?,
            server_nonce: nonce(),
        };
        let challenge = Challenge {
            node_id,
            nonce: transcript.server_nonce.to_vec(),
            proof: secret.proof(Side::Server, &transcript).to_vec(),
        };
        let handshake = ServerHandshake {
            secret: secret.clone(),
            transcript,
        };
        Ok((handshake, challenge))
    }

    /// Checks the client's proof: the authenticated client node id on success.
    pub fn on_proof(self, proof: &Proof) -> Result<u64, AuthError> {
        self.secret
            .verify(Side::Client, &self.transcript, &proof.proof)?;
        Ok(self.transcript.client_id)
    }
}

/// Encodes a handshake message for a byte-carrying transport (SaslAuthenticate's auth bytes).
pub fn to_bytes<T: serde::Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("handshake messages serialise")
}

/// Decodes a handshake message from bytes.
pub fn from_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(bytes).map_err(|e| AuthError::Malformed(e.to_string()))
}

// Nonces come from `runtime::random_u64`, which needs a madsim runtime in the simulator build;
// the cluster campaign runs the handshake there.
#[cfg(all(test, not(madsim)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(text: &str) -> ClusterSecret {
        ClusterSecret::new(text).unwrap()
    }

    fn run(client_secret: &ClusterSecret, server_secret: &ClusterSecret) -> Result<u64, AuthError> {
        let (client, hello) = ClientHandshake::start(client_secret, Purpose::Controller, 2, 1);
        let (server, challenge) =
            ServerHandshake::on_hello(server_secret, Purpose::Controller, 1, &hello, |id| id <= 3)?;
        let proof = client.on_challenge(&challenge)?;
        server.on_proof(&proof)
    }

    #[test]
    fn members_with_the_secret_authenticate_each_other() {
        let s = secret("0123456789abcdef0123");
        assert_eq!(run(&s, &s), Ok(2));
    }

    #[test]
    fn another_secret_fails_on_both_sides() {
        let ours = secret("0123456789abcdef0123");
        let theirs = secret("0123456789abcdef0124");
        assert_eq!(run(&ours, &theirs), Err(AuthError::BadProof));
        // A server without the secret cannot make the client prove anything.
        let (client, hello) = ClientHandshake::start(&ours, Purpose::Controller, 2, 1);
        let (_server, challenge) =
            ServerHandshake::on_hello(&theirs, Purpose::Controller, 1, &hello, |_| true).unwrap();
        assert_eq!(client.on_challenge(&challenge), Err(AuthError::BadProof));
    }

    #[test]
    fn a_proof_is_bound_to_its_connection() {
        let s = secret("0123456789abcdef0123");
        // A proof recorded on one connection does not open another (fresh server nonce).
        let (client, hello) = ClientHandshake::start(&s, Purpose::Controller, 2, 1);
        let (_first, challenge) =
            ServerHandshake::on_hello(&s, Purpose::Controller, 1, &hello, |_| true).unwrap();
        let recorded = client.on_challenge(&challenge).unwrap();
        let (second, _) =
            ServerHandshake::on_hello(&s, Purpose::Controller, 1, &hello, |_| true).unwrap();
        assert_eq!(second.on_proof(&recorded), Err(AuthError::BadProof));
        // The server's own proof reflected back is not a client proof.
        let (server, challenge) =
            ServerHandshake::on_hello(&s, Purpose::Controller, 1, &hello, |_| true).unwrap();
        let reflected = Proof {
            proof: challenge.proof.clone(),
        };
        assert_eq!(server.on_proof(&reflected), Err(AuthError::BadProof));
    }

    #[test]
    fn strangers_and_wrong_purposes_are_refused_before_any_proof() {
        let s = secret("0123456789abcdef0123");
        let (_, hello) = ClientHandshake::start(&s, Purpose::Replication, 9, 1);
        let member = |id| id <= 3;
        assert!(ServerHandshake::on_hello(&s, Purpose::Replication, 1, &hello, member).is_err());
        let (_, hello) = ClientHandshake::start(&s, Purpose::Replication, 2, 1);
        assert!(ServerHandshake::on_hello(&s, Purpose::Controller, 1, &hello, member).is_err());
        // The client refuses a server that is not the node it dialled.
        let (client, hello) = ClientHandshake::start(&s, Purpose::Replication, 2, 1);
        let (_, challenge) =
            ServerHandshake::on_hello(&s, Purpose::Replication, 3, &hello, member).unwrap();
        assert!(matches!(
            client.on_challenge(&challenge),
            Err(AuthError::UnexpectedPeer(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused_and_debug_hides_the_secret() {
        assert!(ClusterSecret::new("short").is_err());
        let s = secret("  0123456789abcdef0123\n");
        assert_eq!(format!("{s:?}"), "ClusterSecret(20 bytes)");
        assert_eq!(ClusterSecret::generate_text().len(), 64);
    }
}
