//! sim: see the crate description.
