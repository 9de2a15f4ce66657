//! jepsen: see the crate description.
