//! The client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677) as Kafka
//! speaks them, sans-IO: [`Connection::authenticate`](crate::connection::Connection) carries the
//! tokens in SaslAuthenticate requests. No channel binding and no extensions, as Kafka.
//!
//! ```text
//! client → server  n,,n=user,r=cnonce
//! server → client  r=cnonce+snonce,s=salt,i=iterations
//! client → server  c=biws,r=cnonce+snonce,p=proof
//! server → client  v=server signature        (checked: the broker knows the password's keys)
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::security::SaslMechanism;

/// Longest SCRAM message accepted from a broker.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Most PBKDF2 iterations a broker may ask for (Kafka allows 4096..=16384; a hostile broker
/// must not make the client spin).
pub const ITERATIONS_MAX: u32 = 1 << 20;

/// The two SCRAM hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// The hash of a SCRAM mechanism; `None` for PLAIN and OAUTHBEARER.
    pub fn of(mechanism: SaslMechanism) -> Option<ScramHash> {
        match mechanism {
            SaslMechanism::Plain | SaslMechanism::OAuthBearer => None,
            SaslMechanism::ScramSha256 => Some(ScramHash::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramHash::Sha512),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key size");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key size");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with the mechanism's HMAC, remembered per (hash, password,
    /// salt, iterations). Thousands of HMAC rounds per connection is the point of PBKDF2 against
    /// a stolen salted password, not against a client that reconnects to brokers that keep the
    /// same salt: the salt changes only when the credential does, so a reconnect re-derives the
    /// same key. (In the simulator this derivation was an eighth of all CPU time.)
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let key = SaltedKey {
            hash: self,
            password: password.to_vec(),
            salt: salt.to_vec(),
            iterations,
        };
        let mut memo = SALTED_PASSWORDS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, salted)) = memo.iter().find(|(known, _)| *known == key) {
            return salted.clone();
        }
        let salted = self.derive_salted_password(password, salt, iterations);
        if memo.len() == SALTED_PASSWORDS_MAX {
            // Oldest first: a client has a handful of credentials; a churn of salts (a broker
            // that salts every exchange anew) only costs the derivation it would cost anyway.
            memo.remove(0);
        }
        memo.push((key, salted.clone()));
        assert!(memo.len() <= SALTED_PASSWORDS_MAX, "the memo is bounded");
        salted
    }

    /// Hi(password, salt, i), computed.
    fn derive_salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out)
                    .expect("HMAC takes keys of any size");
                out
            }
            ScramHash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut out)
                    .expect("HMAC takes keys of any size");
                out
            }
        }
    }
}

/// Most salted passwords remembered (see [`ScramHash::salted_password`]).
const SALTED_PASSWORDS_MAX: usize = 16;

/// What a salted password is derived from.
#[derive(PartialEq, Eq)]
struct SaltedKey {
    hash: ScramHash,
    password: Vec<u8>,
    salt: Vec<u8>,
    iterations: u32,
}

/// Salted passwords derived in this process, oldest first. A pure function's memo: what it
/// answers does not depend on what ran before, so the simulator stays deterministic.
static SALTED_PASSWORDS: std::sync::Mutex<Vec<(SaltedKey, Vec<u8>)>> =
    std::sync::Mutex::new(Vec::new());

/// Why an exchange failed on the client's side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The broker's message did not follow RFC 5802's grammar.
    #[error("malformed SCRAM message from the broker: {0}")]
    Malformed(String),
    /// The broker's signature did not verify: it does not know the password's keys.
    #[error("the broker's SCRAM signature does not verify")]
    ServerSignature,
}

fn malformed(what: impl Into<String>) -> SaslError {
    SaslError::Malformed(what.into())
}

/// PLAIN's one token: `authzid NUL user NUL password`, with an empty authorization id.
pub fn plain_token(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// OAUTHBEARER's client first message (RFC 7628, KIP-255): the GS2 header without an
/// authorization id, the token as `auth=Bearer`, KIP-342 extensions as `key=value`, each ended
/// by `^A`, and a last `^A`.
pub fn oauthbearer_first(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut message = format!("n,,\u{1}auth=Bearer {token}\u{1}");
    for (key, value) in extensions {
        message.push_str(&format!("{key}={value}\u{1}"));
    }
    message.push('\u{1}');
    message.into_bytes()
}

/// What an OAUTHBEARER client answers a server's error challenge (RFC 7628 §3.2.3): the
/// server then fails the exchange with that error.
pub const OAUTHBEARER_ERROR_ACK: &[u8] = b"\x01";

/// An unsecured JWS (`alg` `none`, no signature) naming `principal` in `sub`, issued at
/// `now_ms` (`iat`) and expiring `lifetime_ms` later (`exp`), with `scope` if any: what
/// librdkafka's `enable.sasl.oauthbearer.unsecure.jwt` makes, for brokers that run Kafka's
/// unsecured validator (development and tests only: anyone can make one).
pub fn unsecured_jwt(principal: &str, now_ms: i64, lifetime_ms: i64, scope: &[String]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"alg": "none"});
    let mut claims = serde_json::json!({
        "sub": principal,
        "iat": now_ms.div_euclid(1000),
        "exp": now_ms.saturating_add(lifetime_ms).div_euclid(1000),
    });
    // Seconds with the milliseconds kept, as a number: `exp` exactly lifetime_ms after now.
    if now_ms.rem_euclid(1000) != 0 || lifetime_ms.rem_euclid(1000) != 0 {
        claims["iat"] = serde_json::json!(now_ms as f64 / 1000.0);
        claims["exp"] = serde_json::json!(now_ms.saturating_add(lifetime_ms) as f64 / 1000.0);
    }
    if !scope.is_empty() {
        claims["scope"] = serde_json::json!(scope);
    }
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// RFC 5802's saslname: `,` is `=2C` and `=` is `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn text(message: &[u8]) -> Result<&str, SaslError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(malformed(format!("{} bytes", message.len())));
    }
    std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))
}

/// The value of attribute `key` (`key=value`), which must be `part`.
fn attribute(part: Option<&str>, key: char) -> Result<&str, SaslError> {
    let part = part.ok_or_else(|| malformed(format!("missing {key}=")))?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(malformed(format!("expected {key}=")));
    }
    Ok(&part[2..])
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh client nonce: 192 random bits in hex. Under the simulator madsim's seeded RNG draws
/// them, so a seed replays the same exchange.
pub fn fresh_nonce() -> String {
    (0..3).map(|_| format!("{:016x}", random_u64())).collect()
}

fn random_u64() -> u64 {
    #[cfg(madsim)]
    {
        use rand::RngCore;
        madsim::rand::thread_rng().next_u64()
    }
    #[cfg(not(madsim))]
    {
        rand::random::<u64>()
    }
}

/// The client before the server's first message.
#[derive(Debug)]
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    client_nonce: String,
}

/// The client after the server's first message: it holds the server signature to expect.
#[derive(Debug)]
pub struct ScramClientFinal {
    hash: ScramHash,
    server_key: Vec<u8>,
    auth_message: String,
}

impl ScramClient {
    /// The client's first message for `user` with a fresh printable `nonce`.
    pub fn start(
        hash: ScramHash,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        assert!(printable_nonce(nonce), "a printable nonce");
        let bare = format!("n={},r={nonce}", encode_saslname(user));
        let first = format!("n,,{bare}");
        let client = ScramClient {
            hash,
            password: password.to_string(),
            client_first_bare: bare,
            client_nonce: nonce.to_string(),
        };
        (client, first.into_bytes())
    }

    /// The final message with the proof, for the server's first message.
    pub fn on_server_first(self, message: &[u8]) -> Result<(ScramClientFinal, Vec<u8>), SaslError> {
        let server_first = text(message)?;
        let mut fields = server_first.split(',');
        let nonce = attribute(fields.next(), 'r')?;
        let salt = BASE64
            .decode(attribute(fields.next(), 's')?)
            .map_err(|_| malformed("salt is not base64"))?;
        let iterations: u32 = attribute(fields.next(), 'i')?
            .parse()
            .map_err(|_| malformed("iterations"))?;
        if !nonce.starts_with(&self.client_nonce)
            || nonce.len() == self.client_nonce.len()
            || !printable_nonce(nonce)
        {
            return Err(malformed("the server's nonce does not extend ours"));
        }
        if !(1..=ITERATIONS_MAX).contains(&iterations) {
            return Err(malformed("iterations out of range"));
        }
        let hash = self.hash;
        let salted = hash.salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored_key = hash.hash(&client_key);
        let signature = hash.hmac(&stored_key, auth_message.as_bytes());
        assert_eq!(client_key.len(), signature.len(), "keys of one hash");
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let last = ScramClientFinal {
            hash,
            server_key: hash.hmac(&salted, b"Server Key"),
            auth_message,
        };
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((last, message.into_bytes()))
    }
}

impl ScramClientFinal {
    /// Checks the server's signature.
    pub fn on_server_final(self, message: &[u8]) -> Result<(), SaslError> {
        let message = text(message)?;
        let signature = BASE64
            .decode(attribute(Some(message), 'v')?)
            .map_err(|_| malformed("signature is not base64"))?;
        let expected = self
            .hash
            .hmac(&self.server_key, self.auth_message.as_bytes());
        if constant_time_eq(&signature, &expected) {
            Ok(())
        } else {
            Err(SaslError::ServerSignature)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example: user "user", password "pencil".
    #[test]
    fn rfc_7677_example() {
        let (client, first) =
            ScramClient::start(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (last, client_final) = client.on_server_first(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        last.on_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn a_hostile_broker_gets_errors_not_panics() {
        let start = || ScramClient::start(ScramHash::Sha512, "a,b=c", "pw", "abc").0;
        let inputs: [&[u8]; 8] = [
            b"",
            b"\xff",
            b"r=xyz,s=c2FsdA==,i=4096",
            b"r=abc,s=c2FsdA==,i=4096",
            b"r=abcd,s=!!,i=4096",
            b"r=abcd,s=c2FsdA==,i=0",
            b"r=abcd,s=c2FsdA==,i=4294967295",
            b"r=abcd,s=c2FsdA==",
        ];
        for input in inputs {
            assert!(start().on_server_first(input).is_err(), "{input:?}");
        }
        let (last, _) = start()
            .on_server_first(b"r=abcd,s=c2FsdA==,i=4096")
            .unwrap();
        assert_eq!(
            last.on_server_final(b"v=AAAA"),
            Err(SaslError::ServerSignature)
        );
        let (first_client, first) = ScramClient::start(ScramHash::Sha256, "a,b=c", "pw", "n");
        drop(first_client);
        assert_eq!(first, b"n,,n=a=2Cb=3Dc,r=n");
        assert_eq!(plain_token("u", "p"), b"\0u\0p");
    }

    #[test]
    fn oauthbearer_messages_and_unsecured_tokens() {
        assert_eq!(
            oauthbearer_first("a.b.", &[("traceId".into(), "1".into())]),
            b"n,,\x01auth=Bearer a.b.\x01traceId=1\x01\x01"
        );
        let token = unsecured_jwt("a\"lice", 1_700_000_000_000, 60_000, &["s".into()]);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "no signature");
        let decode = |part: &str| -> serde_json::Value {
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        assert_eq!(decode(parts[0]), serde_json::json!({"alg": "none"}));
        assert_eq!(
            decode(parts[1]),
            serde_json::json!({"sub": "a\"lice", "iat": 1_700_000_000i64,
                               "exp": 1_700_000_060i64, "scope": ["s"]})
        );
        // Milliseconds are kept.
        let token = unsecured_jwt("b", 1_700_000_000_500, 1_000, &[]);
        let claims = decode(token.split('.').nth(1).unwrap());
        assert_eq!(claims["exp"], serde_json::json!(1_700_000_001.5));
    }

    #[test]
    fn the_salted_password_memo_answers_what_the_derivation_does() {
        let derived = |hash: ScramHash, password: &[u8], salt: &[u8], iterations| {
            hash.derive_salted_password(password, salt, iterations)
        };
        // More distinct inputs than the memo holds, each asked twice: every answer (remembered,
        // evicted, derived again) equals the derivation's.
        for round in 0..2 {
            for i in 0..(SALTED_PASSWORDS_MAX as u32 + 4) {
                for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                    let salt = i.to_be_bytes();
                    let password = format!("pw{}", i % 3);
                    assert_eq!(
                        hash.salted_password(password.as_bytes(), &salt, 1 + i),
                        derived(hash, password.as_bytes(), &salt, 1 + i),
                        "round {round}, input {i}"
                    );
                }
            }
        }
        let memo = SALTED_PASSWORDS.lock().unwrap();
        assert!(memo.len() <= SALTED_PASSWORDS_MAX);
    }

    /// Outside a madsim runtime only: under it the nonce comes from the simulation's RNG.
    #[cfg(not(madsim))]
    #[test]
    fn nonces_are_fresh_and_printable() {
        let nonce = fresh_nonce();
        assert_eq!(nonce.len(), 48);
        assert!(printable_nonce(&nonce));
        assert_ne!(nonce, fresh_nonce());
    }
}
