//! The `Disk` trait: everything rill stores goes through it, so the simulator can swap real files
//! for a `MemDisk` that models what a crash keeps.
//!
//! # Contract (what every implementation promises, checked by the conformance suite)
//! - Paths are relative to the disk's root, `/`-separated, never absolute, never containing `..`.
//! - `write_at`/`append` change *volatile* bytes only. Bytes become *durable* after `sync(file)`.
//! - Creating, renaming and removing a file changes the directory's volatile entries; they become
//!   durable after `sync_dir(parent)`. A file whose entry is not durable may vanish at a crash.
//! - `rename` is atomic: after a crash the destination holds either its old or its new contents.
//! - `read_at` returns what was last written (volatile view), short only at end of file.
//! - Errors are returned, never panicked; an injected fault leaves the disk usable afterwards.

use std::path::Path;

/// What a disk operation can fail with.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DiskError {
    /// The named file or directory does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// `create` of a file that already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// No space left for the write; nothing of it was applied.
    #[error("disk full writing {0}")]
    Full(String),
    /// An I/O error, real or injected, on the named path.
    #[error("I/O error on {path}: {reason}")]
    Io {
        /// The file or directory the operation touched.
        path: String,
        /// The OS error text, or the injected fault's name.
        reason: String,
    },
    /// A path that breaks the contract (absolute, `..`, empty).
    #[error("invalid path: {0}")]
    InvalidPath(String),
}

/// Result of a disk operation.
pub type DiskResult<T> = Result<T, DiskError>;

/// A minimal file system: the operations a segmented log needs, with explicit durability.
///
/// `&self` everywhere: implementations use interior mutability so one disk can be shared by every
/// partition of a broker (`Arc<dyn Disk>`).
pub trait Disk: Send + Sync + std::fmt::Debug {
    /// Creates an empty file. Fails with `AlreadyExists` if it exists. Parent directories must exist.
    fn create(&self, path: &Path) -> DiskResult<()>;
    /// Creates a directory and its missing parents (volatile until `sync_dir` of each parent).
    fn create_dir_all(&self, path: &Path) -> DiskResult<()>;
    /// Whether a file or directory exists (volatile view).
    fn exists(&self, path: &Path) -> DiskResult<bool>;
    /// The file's length in bytes (volatile view).
    fn len(&self, path: &Path) -> DiskResult<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short only at EOF).
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> DiskResult<usize>;
    /// Reads up to `len` bytes at `offset` into a new vector (short only at EOF). The default
    /// zero-fills a buffer and calls `read_at`; `FileDisk` reads into the vector's fresh capacity
    /// instead, so a large read (a follower's fetch) is not memset first.
    fn read_vec(&self, path: &Path, offset: u64, len: usize) -> DiskResult<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = self.read_at(path, offset, &mut buf)?;
        assert!(n <= len, "a read never overfills");
        buf.truncate(n);
        Ok(buf)
    }
    /// Writes `data` at `offset`, extending the file (zero-filled) if `offset` is past its end.
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()>;
    /// The unit [`Disk::write_direct_at`] wants offsets, lengths and addresses in (1: any).
    fn write_alignment(&self) -> usize {
        1
    }
    /// [`Disk::write_at`] for a caller that keeps `offset`, `data.len()` and `data`'s address
    /// multiples of [`Disk::write_alignment`]: an implementation may then write past the page
    /// cache (`FileDisk` opens the file `O_DIRECT` where the file system allows it). The same
    /// contract otherwise: the bytes are volatile until `sync`, and reads see them.
    fn write_direct_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()> {
        self.write_at(path, offset, data)
    }
    /// Appends `data` at the end of the file; returns the offset it was written at.
    fn append(&self, path: &Path, data: &[u8]) -> DiskResult<u64>;
    /// Makes the file's bytes durable (fsync / fdatasync).
    fn sync(&self, path: &Path) -> DiskResult<()>;
    /// Cuts the file to `len` bytes (extending with zeros if longer).
    fn truncate(&self, path: &Path, len: u64) -> DiskResult<()>;
    /// Atomically replaces `to` with `from` (durable after `sync_dir` of the parent).
    fn rename(&self, from: &Path, to: &Path) -> DiskResult<()>;
    /// Removes a file (durable after `sync_dir` of the parent).
    fn remove(&self, path: &Path) -> DiskResult<()>;
    /// Removes an empty directory, or with `recursive` a directory and everything under it.
    fn remove_dir(&self, path: &Path, recursive: bool) -> DiskResult<()>;
    /// The names (not paths) of the entries of a directory, sorted.
    fn list(&self, dir: &Path) -> DiskResult<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> DiskResult<()>;
}
