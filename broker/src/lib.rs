//! broker: the rill node. It drives the `replication` and `controller` cores on the tokio API
//! (`madsim-tokio`, so the same source runs under the simulator) and serves the Kafka protocol.
//!
//! The Kafka protocol server arrives with the broker issue; today the crate holds no behaviour.
