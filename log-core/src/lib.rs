//! log-core: rill's storage engine. See `disk` for the `Disk` contract.

pub mod disk;

pub use disk::{Disk, DiskError, DiskResult};
