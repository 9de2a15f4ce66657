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

/// TLS settings (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `ssl.ca.location`: the CA certificates brokers' certificates must chain to. Required for
    /// TLS: rill's client has no system trust store (clusters use their own CA).
    pub ca_file: Option<PathBuf>,
    /// `ssl.certificate.location`: this client's certificate chain, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// `ssl.key.location`: this client's private key (PKCS#8, PKCS#1 or SEC1), for mutual TLS.
    pub key_file: Option<PathBuf>,
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
        if self.protocol.uses_tls() && self.tls.ca_file.is_none() {
            return config("SSL needs ssl.ca.location (the CA of the brokers' certificates)");
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return config("ssl.certificate.location and ssl.key.location go together");
        }
        Ok(())
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
}
