//! Settings shared by every client role (admin, producer, consumer).

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
        }
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
        Ok(())
    }
}
