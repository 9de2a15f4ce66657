//! controller: see the crate description.
