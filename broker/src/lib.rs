//! broker: the rill node. It drives the `replication` and `controller` cores on the tokio API
//! (`madsim-tokio`, so the same source runs under the simulator) and serves the Kafka protocol.
//!
//! [`protocol`] holds the Kafka wire layer (framing, codecs, version table, connection loop); the
//! handlers behind it arrive with the rest of the broker issue.

pub mod protocol;
