//! Settings shared by every client role (admin, producer, consumer).

use crate::security::SecurityConfig;

/// Longest bootstrap list accepted; a cluster map, not a phone book.
pub const BOOTSTRAP_SERVERS_MAX: usize = 64;

/// How to reach the cluster and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// "host:port" addresses tried, in order, when no broker from the metadata answers.
    pub bootstrap: Vec<String>,
    /// Sent in every request header so broker logs can tell clients apart.
    pub client_id: String,
    /// Bound on one request's round trip: a silent (partitioned) link must not hang the caller.
    pub request_timeout_ms: u64,
    /// Pause between attempts of a retriable failure, so a leader election can finish.
    pub retry_backoff_ms: u64,
    /// Age after which cached metadata is refreshed even without an error hinting it is stale.
    pub metadata_refresh_ms: u64,
    /// `security.protocol`, SASL and TLS settings ([`crate::security`]).
    pub security: SecurityConfig,
}

impl ClientConfig {
    /// Defaults close to the Java client's, scaled for simulation (short timeouts keep
    /// simulated histories dense).
    pub fn new(bootstrap: Vec<String>) -> Self {
        assert!(
            !bootstrap.is_empty(),
            "a client needs at least one bootstrap address"
        );
        assert!(
            bootstrap.len() <= BOOTSTRAP_SERVERS_MAX,
            "bootstrap list too long"
        );
        ClientConfig {
            bootstrap,
            client_id: "rill-client".to_string(),
            request_timeout_ms: 5_000,
            retry_backoff_ms: 100,
            metadata_refresh_ms: 30_000,
            security: SecurityConfig::default(),
        }
    }

    /// Sets one Kafka client property by its Kafka name: `bootstrap.servers`, `client.id`,
    /// `request.timeout.ms`, `retry.backoff.ms`, `metadata.max.age.ms`, and the security ones
    /// ([`SecurityConfig::set`]). Unknown properties are errors: a misspelt
    /// `security.protocol` must not silently connect in plain text.
    pub fn set(&mut self, key: &str, value: &str) -> crate::Result<()> {
        if self.security.set(key, value)? {
            return Ok(());
        }
        let number = || {
            value.parse::<u64>().map_err(|_| {
                crate::ClientError::Config(format!("{key}={value}: expected a number"))
            })
        };
        match key {
            "bootstrap.servers" => {
                self.bootstrap = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "client.id" => self.client_id = value.to_string(),
            "request.timeout.ms" => self.request_timeout_ms = number()?,
            "retry.backoff.ms" => self.retry_backoff_ms = number()?,
            "metadata.max.age.ms" => self.metadata_refresh_ms = number()?,
            _ => {
                return Err(crate::ClientError::Config(format!(
                    "unknown client property {key}"
                )))
            }
        }
        Ok(())
    }

    /// Applies a Java properties text (`key=value` lines, `#` and `!` comments), as
    /// `rill cluster up --secure` writes `client.properties`. Stops at the first bad line.
    pub fn apply_properties(&mut self, text: &str) -> crate::Result<()> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                crate::ClientError::Config(format!("line {}: expected key=value", number + 1))
            })?;
            self.set(key.trim(), value.trim())?;
        }
        Ok(())
    }

    /// Checks the limits every role relies on.
    pub fn validate(&self) -> crate::Result<()> {
        if self.bootstrap.is_empty() || self.bootstrap.len() > BOOTSTRAP_SERVERS_MAX {
            return Err(crate::ClientError::Config(format!(
                "bootstrap must list 1..={BOOTSTRAP_SERVERS_MAX} addresses"
            )));
        }
        if self.request_timeout_ms == 0 {
            return Err(crate::ClientError::Config(
                "request_timeout_ms must be > 0".into(),
            ));
        }
        self.security.validate()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::security::{SaslMechanism, SecurityProtocol};

    #[test]
    fn a_client_properties_file_configures_the_client() {
        let mut config = ClientConfig::new(vec!["placeholder:1".into()]);
        config
            .apply_properties(
                "# rill cluster up --secure\n\
                 bootstrap.servers=127.0.0.1:19103, 127.0.0.1:19113\n\
                 security.protocol=SASL_SSL\n\
                 sasl.mechanisms=SCRAM-SHA-256\n\
                 sasl.username=admin\n\
                 sasl.password=a=b\n\
                 ssl.ca.location=/tmp/ca.pem\n",
            )
            .unwrap();
        assert_eq!(config.bootstrap, ["127.0.0.1:19103", "127.0.0.1:19113"]);
        assert_eq!(config.security.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(config.security.sasl.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(config.security.sasl.password.0, "a=b");
        config.validate().unwrap();
        assert!(
            config.set("security.protocl", "SSL").is_err(),
            "a typo is an error"
        );
        assert!(config.apply_properties("no equals sign").is_err());
    }
}
