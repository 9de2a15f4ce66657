//! SCRAM (RFC 5802, RFC 7677) as Kafka speaks it: SCRAM-SHA-256 and SCRAM-SHA-512 without
//! channel binding, both sides sans-IO. The server keeps only [`ScramCredential`]s (salt, stored
//! key, server key, iterations), never a password. Nonces are the caller's (the broker draws
//! them from `runtime`, so the simulator stays deterministic).
//!
//! ```text
//! client → server  n,,n=user,r=cnonce
//! server → client  r=cnonce+snonce,s=salt,i=iterations
//! client → server  c=biws,r=cnonce+snonce,p=proof
//! server → client  v=server signature
//! ```
//!
//! An unknown user gets a challenge like a known one (a salt derived from the name) and fails
//! at the proof, so the exchange does not tell which users exist.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use controller::{ScramCredential, ScramMechanism};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Longest SCRAM message accepted (user names are at most `controller::security` bytes).
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Bytes of a generated salt.
pub const SALT_BYTES: usize = 32;

/// Why an exchange failed. Every variant is SASL_AUTHENTICATION_FAILED for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message did not follow RFC 5802's grammar, or used a feature rill does not offer.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// The client's proof did not verify (wrong password or unknown user).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The server's signature did not verify (client side: the server does not know the key).
    #[error("server signature mismatch")]
    ServerSignature,
}

fn malformed(what: impl Into<String>) -> ScramError {
    ScramError::Malformed(what.into())
}

fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key size");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key size");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// Hi(password, salt, i): PBKDF2 with the mechanism's HMAC.
fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.key_bytes()];
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut out)
        }
    }
    .expect("HMAC takes keys of any size");
    out
}

/// The credential a server stores for `password` (what AlterUserScramCredentials' salted
/// password becomes, and what `rill cluster up --secure` writes).
pub fn credential_from_salted(
    mechanism: ScramMechanism,
    salted: &[u8],
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = hmac(mechanism, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted, b"Server Key"),
        iterations,
    }
}

/// The credential for a password, salted with `salt`.
pub fn credential(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let salted = salted_password(mechanism, password.as_bytes(), salt, iterations);
    credential_from_salted(mechanism, &salted, salt, iterations)
}

/// Does `password` match `credential`? (SASL PLAIN against the SCRAM store.) Constant time in
/// the comparison.
pub fn password_matches(
    mechanism: ScramMechanism,
    credential: &ScramCredential,
    password: &str,
) -> bool {
    let derived = self::credential(mechanism, password, &credential.salt, credential.iterations);
    constant_time_eq(&derived.stored_key, &credential.stored_key)
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len(), "keys of one mechanism");
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad escape in a user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `key` (`key=value`), which must be `part`.
fn attribute(part: Option<&str>, key: char) -> Result<&str, ScramError> {
    let part = part.ok_or_else(|| malformed(format!("missing {key}=")))?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(malformed(format!("expected {key}=")));
    }
    Ok(&part[2..])
}

fn text(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(malformed(format!("{} bytes", message.len())));
    }
    std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The server side after the client's first message.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    /// The authenticated user, once the proof verifies.
    user: String,
    /// `None`: an unknown user, who fails at the proof whatever it sends.
    credential: Option<ScramCredential>,
    /// The GS2 header the client sent (`c=` must repeat it).
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client and server nonces joined.
    nonce: String,
}

impl ScramServer {
    /// Answers the client's first message; `lookup` finds a user's credential. `server_nonce` is
    /// fresh and printable.
    pub fn on_client_first(
        mechanism: ScramMechanism,
        message: &[u8],
        lookup: impl Fn(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        assert!(
            printable_nonce(server_nonce),
            "the server's nonce is printable"
        );
        let message = text(message)?;
        let mut parts = message.splitn(3, ',');
        let binding = parts.next().unwrap_or_default();
        let authzid = parts.next().ok_or_else(|| malformed("no GS2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| malformed("no client-first-bare"))?;
        if binding != "n" && binding != "y" {
            return Err(malformed("channel binding is not offered"));
        }
        let mut fields = bare.split(',');
        let first = fields.next();
        if first.is_some_and(|f| f.starts_with("m=")) {
            return Err(malformed("mandatory extension"));
        }
        let user = decode_saslname(attribute(first, 'n')?)?;
        let client_nonce = attribute(fields.next(), 'r')?;
        if !printable_nonce(client_nonce) {
            return Err(malformed("nonce"));
        }
        // Extensions are `key=value`; Kafka's only one is `tokenauth` (delegation tokens),
        // which rill has not.
        for field in fields {
            if !field.contains('=') {
                return Err(malformed("extension without a value"));
            }
            if field.starts_with("tokenauth=") {
                return Err(malformed("delegation tokens are not supported"));
            }
        }
        if !authzid.is_empty() && decode_saslname(attribute(Some(authzid), 'a')?)? != user {
            return Err(malformed("authorization id differs from the user name"));
        }
        if user.is_empty() || user.len() > controller::security::NAME_BYTES_MAX {
            return Err(malformed("user name length"));
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            // The same answer for a user every time, as for a real one.
            None => (
                hash(mechanism, format!("rill unknown user {user}").as_bytes())[..16].to_vec(),
                controller::security::SCRAM_ITERATIONS_MIN,
            ),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        let server = ScramServer {
            mechanism,
            user,
            credential,
            gs2_header: format!("{binding},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((server, server_first.into_bytes()))
    }

    /// Checks the client's final message: the user name and the server's final message.
    pub fn on_client_final(self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let message = text(message)?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = BASE64
            .decode(attribute(fields.next(), 'c')?)
            .map_err(|_| malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(malformed("channel binding differs from the GS2 header"));
        }
        // Kafka's check (`ScramSaslServer`): the nonce must end with the server-first one.
        // librdkafka sends its client nonce in front of the whole server nonce again.
        if !attribute(fields.next(), 'r')?.ends_with(&self.nonce) {
            return Err(malformed("nonce differs"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let Some(credential) = &self.credential else {
            return Err(ScramError::InvalidCredentials);
        };
        if proof.len() != self.mechanism.key_bytes() {
            return Err(ScramError::InvalidCredentials);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
        );
        let client_key = xor(&proof, &signature);
        if !constant_time_eq(&hash(self.mechanism, &client_key), &credential.stored_key) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = hmac(
            self.mechanism,
            &credential.server_key,
            auth_message.as_bytes(),
        );
        let server_final = format!("v={}", BASE64.encode(server_signature));
        Ok((self.user, server_final.into_bytes()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use client::sasl::{ScramClient, ScramHash};

    /// The client side is rill's client's (`client::sasl`).
    fn client_hash(mechanism: ScramMechanism) -> ScramHash {
        match mechanism {
            ScramMechanism::Sha256 => ScramHash::Sha256,
            ScramMechanism::Sha512 => ScramHash::Sha512,
        }
    }

    /// RFC 7677 §3's example: user "user", password "pencil".
    #[test]
    fn rfc_7677_example_verifies_both_ways() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let stored = credential(ScramMechanism::Sha256, "pencil", &salt, 4096);
        let (client, first) = ScramClient::start(
            client_hash(ScramMechanism::Sha256),
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (server, server_first) = ScramServer::on_client_first(
            ScramMechanism::Sha256,
            &first,
            |user| (user == "user").then(|| stored.clone()),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (last, client_final) = client.on_server_first(&server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final.clone()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let (user, server_final) = server.on_client_final(&client_final).unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        last.on_server_final(&server_final).unwrap();
    }

    fn exchange(
        mechanism: ScramMechanism,
        stored: &ScramCredential,
        password: &str,
    ) -> Result<String, ScramError> {
        let (client, first) =
            ScramClient::start(client_hash(mechanism), "alice", password, "cnonce");
        let (server, server_first) =
            ScramServer::on_client_first(mechanism, &first, |_| Some(stored.clone()), "snonce")?;
        let (_, client_final) = client
            .on_server_first(&server_first)
            .expect("the client takes the server's first message");
        server.on_client_final(&client_final).map(|(user, _)| user)
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails_at_the_proof() {
        for mechanism in ScramMechanism::ALL {
            let stored = credential(mechanism, "secret", b"0123456789abcdef", 4096);
            assert_eq!(exchange(mechanism, &stored, "secret"), Ok("alice".into()));
            assert_eq!(
                exchange(mechanism, &stored, "Secret"),
                Err(ScramError::InvalidCredentials)
            );
            assert!(password_matches(mechanism, &stored, "secret"));
            assert!(!password_matches(mechanism, &stored, "secreT"));
        }
        let (client, first) =
            ScramClient::start(client_hash(ScramMechanism::Sha256), "bob", "x", "c");
        let (server, server_first) =
            ScramServer::on_client_first(ScramMechanism::Sha256, &first, |_| None, "s").unwrap();
        let (_, client_final) = client.on_server_first(&server_first).unwrap();
        assert_eq!(
            server.on_client_final(&client_final),
            Err(ScramError::InvalidCredentials)
        );
    }

    #[test]
    fn garbage_and_unsupported_features_are_malformed_not_panics() {
        let inputs: [&[u8]; 9] = [
            b"",
            b"n,,",
            b"p=tls-unique,,n=a,r=b",
            b"n,,m=ext,n=a,r=b",
            b"n,,n=a=,r=b",
            b"n,,n=a,r=b,tokenauth=true",
            b"n,a=other,n=a,r=b",
            b"n,,n=a,r=b,c",
            b"\xff\xfe",
        ];
        for input in inputs {
            let answer = ScramServer::on_client_first(ScramMechanism::Sha256, input, |_| None, "s");
            assert!(
                matches!(answer, Err(ScramError::Malformed(_))),
                "{input:?}: {answer:?}"
            );
        }
        let stored = credential(ScramMechanism::Sha256, "pw", b"salt", 4096);
        let (server, _) = ScramServer::on_client_first(
            ScramMechanism::Sha256,
            b"n,,n=a,r=b",
            |_| Some(stored.clone()),
            "s",
        )
        .unwrap();
        assert!(server.on_client_final(b"c=biws,r=bs,p=!!!").is_err());
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    }
}
