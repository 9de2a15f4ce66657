//! replication: see the crate description.
