//! broker: the rill node. It drives the `replication` and `controller` cores on the tokio API
//! (`madsim-tokio`, so the same source runs under the simulator) and serves the Kafka protocol.
//!
//! - [`protocol`]: the Kafka wire layer (framing, codecs, version table, connection loop).
//! - [`control`]: the controller quorum's driver (raft transport, durable raft state on a
//!   `log_core::Disk`) and the broker's side of it (registration, heartbeats, metadata).
//! - [`group`]: the group coordinator (membership, generations, committed offsets).
//! - [`producer_state`]: idempotent producers (producer id, epoch, sequence per partition).

pub mod auth;
pub mod cli;
pub mod control;
pub mod group;
pub mod node;
pub mod partition;
pub mod producer_state;
pub mod protocol;
pub mod runtime;
pub mod security;
pub mod tls;
pub mod watch;
