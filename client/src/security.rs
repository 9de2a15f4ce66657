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
    /// RFC 7628 (KIP-255): a bearer token (a JWT) instead of a password.
    OAuthBearer,
}

impl SaslMechanism {
    /// Every mechanism.
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ];

    /// The mechanisms that prove a user name and password.
    pub const WITH_PASSWORD: [SaslMechanism; 3] = [
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
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
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
    /// OAUTHBEARER: the token to send, or how to make an unsecured one.
    pub oauthbearer: OAuthBearerConfig,
}

/// OAUTHBEARER settings: a token the caller obtained (from an identity provider), or
/// librdkafka's `enable.sasl.oauthbearer.unsecure.jwt` with `sasl.oauthbearer.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBearerConfig {
    /// The token sent as is (a signed JWT); wins over `unsecured_jwt`.
    pub token: Option<Password>,
    /// `enable.sasl.oauthbearer.unsecure.jwt`: make an unsecured (`alg` `none`) JWT at each
    /// connection, for brokers running the unsecured validator (development only).
    pub unsecured_jwt: bool,
    /// `sasl.oauthbearer.config`'s `principal=`: the token's `sub`.
    pub principal: String,
    /// `lifeSeconds=` in ms (default an hour).
    pub lifetime_ms: u64,
    /// `scope=` (comma-separated).
    pub scope: Vec<String>,
    /// KIP-342 extensions (`extension_NAME=value`), sent with every token.
    pub extensions: Vec<(String, String)>,
}

/// An unsecured token's default lifetime (librdkafka's `lifeSeconds` default).
pub const UNSECURED_JWT_LIFETIME_MS: u64 = 3_600_000;

impl Default for OAuthBearerConfig {
    fn default() -> Self {
        OAuthBearerConfig {
            token: None,
            unsecured_jwt: false,
            principal: String::new(),
            lifetime_ms: UNSECURED_JWT_LIFETIME_MS,
            scope: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

impl OAuthBearerConfig {
    /// The token for a connection made at `now_ms` (ms since the epoch); `None` if neither a
    /// token nor an unsecured principal is configured.
    pub fn token_at(&self, now_ms: i64) -> Option<String> {
        if let Some(token) = &self.token {
            return Some(token.0.clone());
        }
        (self.unsecured_jwt && !self.principal.is_empty()).then(|| {
            let lifetime = i64::try_from(self.lifetime_ms).unwrap_or(i64::MAX);
            crate::sasl::unsecured_jwt(&self.principal, now_ms, lifetime, &self.scope)
        })
    }

    /// Parses librdkafka's `sasl.oauthbearer.config` for unsecured tokens:
    /// `principal=NAME [lifeSeconds=N] [scope=a,b] [scopeClaimName=..] [extension_K=V]...`,
    /// separated by spaces.
    fn parse(&mut self, value: &str) -> std::result::Result<(), String> {
        let mut principal = None;
        let mut lifetime_ms = UNSECURED_JWT_LIFETIME_MS;
        let mut scope = Vec::new();
        let mut extensions = Vec::new();
        for pair in value.split_whitespace() {
            let (key, val) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            match key {
                "principal" => principal = Some(val.to_string()),
                "principalClaimName" if val == "sub" => {}
                "scopeClaimName" if val == "scope" => {}
                "lifeSeconds" => {
                    let seconds: u64 = val
                        .parse()
                        .map_err(|_| format!("lifeSeconds={val:?} is not a number"))?;
                    lifetime_ms = seconds
                        .checked_mul(1000)
                        .filter(|ms| *ms > 0)
                        .ok_or_else(|| format!("lifeSeconds={val:?} out of range"))?;
                }
                "scope" => {
                    scope = val
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                }
                _ => match key.strip_prefix("extension_") {
                    Some(name)
                        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()) =>
                    {
                        extensions.push((name.to_string(), val.to_string()));
                    }
                    _ => return Err(format!("{key} is not supported")),
                },
            }
        }
        self.principal = principal.ok_or("principal= is required")?;
        self.lifetime_ms = lifetime_ms;
        self.scope = scope;
        self.extensions = extensions;
        Ok(())
    }
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
/// Longest OAUTHBEARER token accepted (rill's broker takes first messages up to 64 KiB).
pub const OAUTHBEARER_TOKEN_BYTES_MAX: usize = 60 * 1024;

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
                self.sasl.mechanism = SaslMechanism::parse(value).ok_or_else(|| {
                    bad("expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
                })?;
            }
            "enable.sasl.oauthbearer.unsecure.jwt" => {
                self.sasl.oauthbearer.unsecured_jwt = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("expected true or false")),
                };
            }
            "sasl.oauthbearer.config" => {
                self.sasl.oauthbearer.parse(value).map_err(|e| bad(&e))?;
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
        if self.protocol.uses_sasl() && self.sasl.mechanism == SaslMechanism::OAuthBearer {
            let oauth = &self.sasl.oauthbearer;
            let token_bytes = oauth.token.as_ref().map_or(0, |t| t.0.len());
            let makes_tokens = oauth.unsecured_jwt && !oauth.principal.is_empty();
            if token_bytes == 0 && !makes_tokens {
                return config(
                    "OAUTHBEARER needs a token, or enable.sasl.oauthbearer.unsecure.jwt=true with \
                     sasl.oauthbearer.config=principal=NAME",
                );
            }
            if token_bytes > OAUTHBEARER_TOKEN_BYTES_MAX
                || oauth.principal.len() > CREDENTIAL_BYTES_MAX
            {
                return config("the OAUTHBEARER token or principal is too long");
            }
        } else if self.protocol.uses_sasl() {
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
    fn oauthbearer_takes_librdkafkas_unsecured_jwt_settings_or_a_token() {
        let mut security = SecurityConfig::default();
        security.set("security.protocol", "SASL_PLAINTEXT").unwrap();
        security.set("sasl.mechanism", "oauthbearer").unwrap();
        assert_eq!(security.sasl.mechanism, SaslMechanism::OAuthBearer);
        assert!(security.validate().is_err(), "no token, no unsecured JWT");
        security
            .set(
                "sasl.oauthbearer.config",
                "principal=alice lifeSeconds=60 scope=a,b extension_traceId=x1",
            )
            .unwrap();
        assert!(security.validate().is_err(), "unsecured JWTs not enabled");
        security
            .set("enable.sasl.oauthbearer.unsecure.jwt", "true")
            .unwrap();
        security.validate().unwrap();
        let oauth = &security.sasl.oauthbearer;
        assert_eq!(oauth.principal, "alice");
        assert_eq!(oauth.lifetime_ms, 60_000);
        assert_eq!(oauth.scope, ["a", "b"]);
        assert_eq!(
            oauth.extensions,
            [("traceId".to_string(), "x1".to_string())]
        );
        let token = oauth.token_at(1_700_000_000_000).unwrap();
        assert!(token.ends_with('.'), "unsigned: {token}");
        for bad in [
            "lifeSeconds=60",
            "principal=a lifeSeconds=x",
            "principal=a lifeSeconds=0",
            "principal=a extension_=v",
            "principal=a extension_a1=v",
            "principal=a colour=blue",
            "principal",
        ] {
            assert!(
                security.set("sasl.oauthbearer.config", bad).is_err(),
                "{bad}"
            );
        }
        assert!(security
            .set("enable.sasl.oauthbearer.unsecure.jwt", "yes")
            .is_err());
        // A caller's token wins, and is not printed.
        security.sasl.oauthbearer.token = Some(Password("secret.token.sig".into()));
        assert_eq!(
            security.sasl.oauthbearer.token_at(0).unwrap(),
            "secret.token.sig"
        );
        assert!(!format!("{security:?}").contains("secret.token"));
        security.sasl.oauthbearer.token = Some(Password("x".repeat(70_000)));
        assert!(security.validate().is_err(), "a token too long");
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
