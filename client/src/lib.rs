//! client: rill's Rust Kafka client (producer, consumer, admin) over the madsim-swappable tokio
//! API, driven by the simulator's workloads and the real-cluster tests.
//!
//! Runbook:
//! - [`connection::Connection`] is one TCP connection with one request in flight, negotiated API
//!   versions (ApiVersions), checked correlation ids and a timeout on every request: across a
//!   partitioned (madsim) link data is held silently, so a reply may never come.
//! - [`metadata::MetadataCache`] keeps the cluster map and refreshes it from any reachable broker.
//! - [`admin::Admin`], [`producer::Producer`] and [`consumer::Consumer`] sit on a shared
//!   [`pool::ConnectionPool`].
//! - Security as Kafka clients configure it ([`security`]): TLS ([`tls`], plain under the
//!   simulator), then SASL PLAIN or SCRAM ([`sasl`]) on every new connection.
//! - Every failure is a [`ClientError`] that says whether the write certainly did not happen
//!   (definite, a Jepsen `fail`) or may have happened (indeterminate, a Jepsen `info`):
//!   [`ClientError::is_indeterminate`].
//!
//! Determinism: no threads, no unseeded randomness; the only wall-clock read is
//! [`clock::wall_clock_ms`] (record timestamps), which madsim virtualises.

pub mod admin;
pub mod assignor;
pub mod clock;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod consumer_protocol;
pub mod error;
pub mod group;
#[cfg(not(madsim))]
pub mod keystore;
pub mod metadata;
pub mod partitioner;
pub mod pool;
pub mod producer;
pub mod records;
pub mod sasl;
pub mod security;
pub mod sequence;
pub mod tls;
pub mod versions;

pub use config::ClientConfig;
pub use error::{ClientError, Result};
pub use producer::Compression;
pub use security::{SaslMechanism, SecurityProtocol};
