//! log-core: rill's storage engine, a crash-safe segmented partition log over a pluggable `Disk`.
//!
//! - `disk`: the `Disk` contract; `FileDisk` (real files) and `MemDisk` (crash and fault model).
//! - `batch`: Kafka RecordBatch v2 codec (`BatchBuilder`, `BatchView`, record iterator).
//! - `log`: `PartitionLog`, the segmented log (append, read, flush, truncate, roll, retention,
//!   compaction, leader epoch cache, checkpoints, recovery). Byte formats are in `FORMAT.md`.

pub mod batch;
pub mod disk;
pub mod error;
pub mod file_disk;
pub mod mem_disk;

pub use batch::{BatchBuilder, BatchHeader, BatchView, Record};
pub use disk::{Disk, DiskError, DiskResult};
pub use error::LogError;
pub use file_disk::FileDisk;
pub use mem_disk::{FaultConfig, FaultOp, MemDisk, OpCounts};
