//! How the client secures its connections, configured as Kafka clients are: `security.protocol`
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), `sasl.mechanism` (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512), `sasl.username` / `sasl.password`, and for TLS `ssl.ca.location` (the CA that
//! signed the brokers' certificates) with, for mutual TLS, `ssl.certificate.location` and
//! `ssl.key.location`.
//!
//! A connection runs, in order: TCP, the TLS handshake (SSL, SASL_SSL; `crate::tls`),
//! ApiVersions, then SaslHandshake v1 and SaslAuthenticate (SASL_*; `Connection::authenticate`).

use std::path::PathBuf;

use crate::error::{ClientError, Result};

/// Kafka's `security.protocol` (a client's) and a listener's protocol (the broker's, which
/// reads it from its config by the same names).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    /// No TLS, no SASL (on a broker: clients are `User:ANONYMOUS`).
    #[default]
    Plaintext,
    /// TLS, no SASL (on a broker: clients are `User:<certificate subject>` with
    /// `tls_client_auth`, else `User:ANONYMOUS`).
    Ssl,
    /// SASL over plain TCP: passwords of PLAIN cross the network in clear.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, for parsing and tests.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol of a name, case-insensitive as librdkafka reads it.
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL after ApiVersions.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Kafka's `sasl.mechanism`: the ones rill's broker serves to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaslMechanism {
    /// RFC 4616: the password itself crosses the wire (use it over TLS or loopback).
    Plain,
    /// RFC 7677.
    #[default]
    ScramSha256,
    /// RFC 5802 with SHA-512, as Kafka names it.
    ScramSha512,
}

impl SaslMechanism {
    /// Every mechanism.
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The SASL name (SaslHandshake's mechanism).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL name (case-insensitive).
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// A password that `Debug` does not print.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SASL settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslConfig {
    /// `sasl.mechanism`.
    pub mechanism: SaslMechanism,
    /// `sasl.username`.
    pub username: String,
    /// `sasl.password`.
    pub password: Password,
}

/// TLS settings: PEM files, or PKCS#12 stores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `ssl.ca.location`: the CA certificates (PEM) brokers' certificates must chain to. TLS
    /// needs it or `ssl.truststore.location`: rill's client has no system trust store (clusters
    /// use their own CA).
    pub ca_file: Option<PathBuf>,
    /// `ssl.certificate.location`: this client's certificate chain, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// `ssl.key.location`: this client's private key (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8
    /// with `ssl.key.password`), for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// `ssl.key.password`: the password of an encrypted PKCS#8 key.
    pub key_password: Option<Password>,
    /// `ssl.keystore.location`: this client's certificate chain and key in one store (instead
    /// of the two PEM files), of `ssl.keystore.type` (PKCS12 unless set), opened with
    /// `ssl.keystore.password`.
    pub keystore: Option<StoreFile>,
    /// `ssl.truststore.location`: the trusted CA certificates in a store (instead of
    /// `ssl.ca.location`), of `ssl.truststore.type` (PKCS12 unless set).
    pub truststore: Option<StoreFile>,
}

/// Kafka's `ssl.keystore.type` and `ssl.truststore.type` (JKS is Java's own: not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StoreType {
    /// PKCS#12 (`.p12`, `.pfx`): what Java's keytool and `openssl pkcs12 -export` write.
    #[default]
    Pkcs12,
    /// PEM: certificates, and for a keystore the private key (encrypted PKCS#8 with
    /// `ssl.key.password`), in one file.
    Pem,
}

impl StoreType {
    /// The type of a Kafka name (case-insensitive).
    pub fn parse(name: &str) -> Option<StoreType> {
        if name.eq_ignore_ascii_case("PKCS12") {
            Some(StoreType::Pkcs12)
        } else if name.eq_ignore_ascii_case("PEM") {
            Some(StoreType::Pem)
        } else {
            None
        }
    }
}

/// A keystore or truststore file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreFile {
    /// Its type.
    pub kind: StoreType,
    /// Its path.
    pub path: PathBuf,
    /// Its password (PKCS#12: required; a PEM keystore's key password is `ssl.key.password`).
    pub password: Option<Password>,
}

/// Where a TLS identity (a certificate chain and its private key) is read from: what the
/// broker's listeners and this client's mutual TLS share (`crate::tls::read_identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A PEM chain and a PEM key, the key encrypted PKCS#8 when a password is given.
    PemFiles {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
        /// `ssl.key.password`.
        key_password: Option<Password>,
    },
    /// A keystore; `key_password` decrypts a PEM keystore's key.
    Store {
        /// The store.
        store: StoreFile,
        /// `ssl.key.password`.
        key_password: Option<Password>,
    },
}

/// Everything about how a connection is secured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// SASL settings; required by the SASL protocols.
    pub sasl: SaslConfig,
    /// TLS settings; `ca_file` required by the TLS protocols.
    pub tls: TlsConfig,
}

/// Longest user name or password accepted (the broker's bound on names is lower still).
pub const CREDENTIAL_BYTES_MAX: usize = 1024;

impl SecurityConfig {
    /// Sets one Kafka client property. `Ok(false)`: not a security property (the caller may know
    /// it). Unsupported values of a known property are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let bad = |what: &str| ClientError::Config(format!("{key}={value}: {what}"));
        match key {
            "security.protocol" => {
                self.protocol = SecurityProtocol::parse(value)
                    .ok_or_else(|| bad("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))?;
            }
            // librdkafka spells it in the plural; it takes one mechanism all the same.
            "sasl.mechanism" | "sasl.mechanisms" => {
                self.sasl.mechanism = SaslMechanism::parse(value)
                    .ok_or_else(|| bad("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))?;
            }
            "sasl.username" => self.sasl.username = value.to_string(),
            "sasl.password" => self.sasl.password = Password(value.to_string()),
            "ssl.ca.location" => self.tls.ca_file = Some(value.into()),
            "ssl.certificate.location" => self.tls.cert_file = Some(value.into()),
            "ssl.key.location" => self.tls.key_file = Some(value.into()),
            "ssl.key.password" => self.tls.key_password = Some(Password(value.to_string())),
            "ssl.keystore.location" => {
                self.tls
                    .keystore
                    .get_or_insert_with(StoreFile::default)
                    .path = value.into();
            }
            "ssl.keystore.password" => {
                self.tls
                    .keystore
                    .get_or_insert_with(StoreFile::default)
                    .password = Some(Password(value.to_string()));
            }
            "ssl.keystore.type" => {
                self.tls
                    .keystore
                    .get_or_insert_with(StoreFile::default)
                    .kind = StoreType::parse(value).ok_or_else(|| bad("expected PKCS12 or PEM"))?;
            }
            "ssl.truststore.location" => {
                self.tls
                    .truststore
                    .get_or_insert_with(StoreFile::default)
                    .path = value.into();
            }
            "ssl.truststore.password" => {
                self.tls
                    .truststore
                    .get_or_insert_with(StoreFile::default)
                    .password = Some(Password(value.to_string()));
            }
            "ssl.truststore.type" => {
                self.tls
                    .truststore
                    .get_or_insert_with(StoreFile::default)
                    .kind = StoreType::parse(value).ok_or_else(|| bad("expected PKCS12 or PEM"))?;
            }
            "ssl.endpoint.identification.algorithm" => {
                if !value.eq_ignore_ascii_case("https") {
                    return Err(bad(
                        "only https (verify the broker's host name) is supported",
                    ));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the settings fit together: SASL needs a user and password, TLS a CA file, a
    /// client certificate its key.
    pub fn validate(&self) -> Result<()> {
        let config = |what: &str| Err(ClientError::Config(what.to_string()));
        if self.protocol.uses_sasl() {
            let (user, password) = (&self.sasl.username, &self.sasl.password.0);
            if user.is_empty() || password.is_empty() {
                return config("SASL needs sasl.username and sasl.password");
            }
            if user.len() > CREDENTIAL_BYTES_MAX || password.len() > CREDENTIAL_BYTES_MAX {
                return config("sasl.username or sasl.password too long");
            }
        }
        let tls = &self.tls;
        if self.protocol.uses_tls() && tls.ca_file.is_none() && tls.truststore.is_none() {
            return config(
                "SSL needs ssl.ca.location or ssl.truststore.location (the CA of the brokers' \
                 certificates)",
            );
        }
        if tls.ca_file.is_some() && tls.truststore.is_some() {
            return config("set ssl.ca.location or ssl.truststore.location, not both");
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return config("ssl.certificate.location and ssl.key.location go together");
        }
        if tls.cert_file.is_some() && tls.keystore.is_some() {
            return config("set ssl.keystore.location or ssl.certificate.location, not both");
        }
        for (name, store) in [("keystore", &tls.keystore), ("truststore", &tls.truststore)] {
            if let Some(store) = store {
                if store.path.as_os_str().is_empty() {
                    return Err(ClientError::Config(format!(
                        "ssl.{name}.password or type without ssl.{name}.location"
                    )));
                }
                if store.kind == StoreType::Pkcs12 && store.password.is_none() {
                    return Err(ClientError::Config(format!(
                        "a PKCS12 ssl.{name}.location needs ssl.{name}.password"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Where this client's certificate and key come from, if it presents one (mutual TLS).
    pub fn identity_source(&self) -> Option<IdentitySource> {
        let tls = &self.tls;
        if let Some(store) = &tls.keystore {
            return Some(IdentitySource::Store {
                store: store.clone(),
                key_password: tls.key_password.clone(),
            });
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => Some(IdentitySource::PemFiles {
                cert: cert.clone(),
                key: key.clone(),
                key_password: tls.key_password.clone(),
            }),
            _ => None,
        }
    }

    /// The trusted CA certificates' source: `ssl.truststore.location`, else `ssl.ca.location`
    /// as a PEM store.
    pub fn trust_source(&self) -> Option<StoreFile> {
        let tls = &self.tls;
        tls.truststore.clone().or_else(|| {
            tls.ca_file.as_ref().map(|path| StoreFile {
                kind: StoreType::Pem,
                path: path.clone(),
                password: None,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kafka_property_names_set_the_security() {
        let mut security = SecurityConfig::default();
        for (key, value) in [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw"),
            ("ssl.ca.location", "/tmp/ca.pem"),
        ] {
            assert!(security.set(key, value).unwrap(), "{key}");
        }
        assert!(!security.set("acks", "all").unwrap());
        assert_eq!(security.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(security.sasl.mechanism, SaslMechanism::ScramSha512);
        security.validate().unwrap();
        assert!(
            !format!("{security:?}").contains("pw\""),
            "the password is not printed"
        );
        assert!(security.set("sasl.mechanism", "GSSAPI").is_err());
        assert!(security.set("security.protocol", "TLS").is_err());
        security.tls.ca_file = None;
        assert!(security.validate().is_err(), "TLS without a CA");
        security.protocol = SecurityProtocol::SaslPlaintext;
        security.validate().unwrap();
        security.sasl.password = Password(String::new());
        assert!(security.validate().is_err(), "SASL without a password");
    }

    #[test]
    fn stores_and_key_passwords_by_kafkas_names() {
        let mut security = SecurityConfig::default();
        for (key, value) in [
            ("security.protocol", "SSL"),
            ("ssl.keystore.location", "/tmp/client.p12"),
            ("ssl.keystore.password", "ks"),
            ("ssl.truststore.type", "pem"),
            ("ssl.truststore.location", "/tmp/ca.pem"),
            ("ssl.key.password", "kp"),
        ] {
            assert!(security.set(key, value).unwrap(), "{key}");
        }
        security.validate().unwrap();
        assert_eq!(
            security.trust_source().unwrap(),
            StoreFile {
                kind: StoreType::Pem,
                path: "/tmp/ca.pem".into(),
                password: None,
            }
        );
        assert!(matches!(
            security.identity_source(),
            Some(IdentitySource::Store { store, .. }) if store.kind == StoreType::Pkcs12
        ));
        assert!(
            !format!("{security:?}").contains("\"ks\""),
            "passwords are not printed"
        );
        assert!(security.set("ssl.keystore.type", "JKS").is_err());
        // A PKCS12 store needs its password; a truststore and a CA file exclude each other.
        security.tls.keystore.as_mut().unwrap().password = None;
        assert!(security.validate().is_err());
        security.tls.keystore = None;
        security.tls.ca_file = Some("/tmp/ca.pem".into());
        assert!(security.validate().is_err());
        security.tls.truststore = None;
        security.validate().unwrap();
        assert!(security.identity_source().is_none());
    }
}
