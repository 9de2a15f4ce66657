//! `FileDisk`: the production `Disk`, real files under a root directory.
//!
//! Durability maps one to one: `sync` is `File::sync_data` (the log never depends on mtime),
//! `sync_dir` calls `sync_all` on the directory's handle, which is how POSIX makes entries
//! durable. Open file handles are cached (bounded) so appends and reads do not pay an `open` and a
//! `close` each (`create` keeps the new file's handle, and directories' handles are kept for
//! `sync_dir`, so a state checkpoint opens one file instead of three); so use one `FileDisk` per root (shared as `Arc<dyn Disk>`): another instance's
//! renames and removals would not invalidate this one's cached handles. A path's handle is
//! dropped when this disk creates, renames (either side), removes or removes a directory above
//! the path, so a cached handle never serves the bytes of a file that was replaced; `truncate`
//! and writes go through the same handle, so reads see them.

use crate::disk::{Disk, DiskError, DiskResult};
use crate::mem_disk::normalize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many open handles the cache keeps by default; beyond it the lowest path is closed.
pub const OPEN_FILES_MAX_DEFAULT: usize = 256;

/// The unit of `O_DIRECT` writes (offset, length, buffer address): the logical block size of
/// the devices and file systems a broker runs on is at most this.
pub const DIRECT_WRITE_ALIGNMENT: usize = 4096;

/// Whether `error` is a file system refusing `O_DIRECT` (`EINVAL`), at the open or the write.
fn refuses_direct(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// Real files under `root`.
#[derive(Debug)]
pub struct FileDisk {
    /// Every contract path is resolved under this directory.
    root: PathBuf,
    /// Open handles by normalised relative path, used by reads and writes alike; dropped on
    /// create, rename and remove of the path or of a directory above it (never on truncate: the
    /// file stays the same).
    handles: Mutex<BTreeMap<PathBuf, Arc<File>>>,
    /// Open directory handles by normalised relative path (the root is the empty path), for
    /// `sync_dir`; dropped like file handles, bounded by the same `open_files_max`.
    directories: Mutex<BTreeMap<PathBuf, Arc<File>>>,
    /// Handles opened `O_DIRECT` for [`Disk::write_direct_at`] (the journal's files), by the
    /// same key, dropped and bounded like the others.
    direct: Mutex<BTreeMap<PathBuf, Arc<File>>>,
    /// Set once the file system refused `O_DIRECT` (tmpfs, say): direct writes are buffered
    /// from then on.
    direct_refused: AtomicBool,
    /// Most handles kept open: a broker sizes it to its file-descriptor limit, so that every
    /// partition's active segment stays open instead of being reopened per append.
    open_files_max: usize,
}

fn io_error(path: &Path, error: std::io::Error) -> DiskError {
    let shown = path.display().to_string();
    match error.kind() {
        ErrorKind::NotFound => DiskError::NotFound(shown),
        ErrorKind::AlreadyExists => DiskError::AlreadyExists(shown),
        ErrorKind::StorageFull => DiskError::Full(shown),
        _ => DiskError::Io {
            path: shown,
            reason: error.to_string(),
        },
    }
}

impl FileDisk {
    /// A disk rooted at `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> DiskResult<Self> {
        Self::with_open_files_max(root, OPEN_FILES_MAX_DEFAULT)
    }

    /// [`FileDisk::new`] keeping at most `open_files_max` (at least 1) handles open.
    pub fn with_open_files_max(
        root: impl Into<PathBuf>,
        open_files_max: usize,
    ) -> DiskResult<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
        Ok(FileDisk {
            root,
            handles: Mutex::new(BTreeMap::new()),
            directories: Mutex::new(BTreeMap::new()),
            direct: Mutex::new(BTreeMap::new()),
            direct_refused: AtomicBool::new(false),
            open_files_max: open_files_max.max(1),
        })
    }

    /// The directory every path is relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn handles(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Arc<File>>> {
        self.handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Resolves a contract path to (relative key, absolute path).
    fn resolve(&self, path: &Path) -> DiskResult<(PathBuf, PathBuf)> {
        let relative = normalize(path)?;
        let absolute = self.root.join(&relative);
        Ok((relative, absolute))
    }

    /// Resolves a directory path, where the empty path means the root.
    fn resolve_dir(&self, dir: &Path) -> DiskResult<PathBuf> {
        if dir.as_os_str().is_empty() || dir == Path::new(".") {
            return Ok(self.root.clone());
        }
        Ok(self.resolve(dir)?.1)
    }

    fn open(&self, path: &Path) -> DiskResult<(PathBuf, Arc<File>)> {
        let (relative, absolute) = self.resolve(path)?;
        let mut handles = self.handles();
        if let Some(file) = handles.get(&relative) {
            return Ok((absolute, Arc::clone(file)));
        }
        if absolute.is_dir() {
            return Err(DiskError::Io {
                path: relative.display().to_string(),
                reason: "is a directory".into(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&absolute)
            .map_err(|e| io_error(&relative, e))?;
        let file = Arc::new(file);
        Self::cache(
            &mut handles,
            self.open_files_max,
            relative,
            Arc::clone(&file),
        );
        Ok((absolute, file))
    }

    /// Keeps `file` as `relative`'s handle, closing the lowest path's beyond `open_files_max`.
    fn cache(
        handles: &mut BTreeMap<PathBuf, Arc<File>>,
        open_files_max: usize,
        relative: PathBuf,
        file: Arc<File>,
    ) {
        if !handles.contains_key(&relative) && handles.len() >= open_files_max {
            let evicted = handles
                .keys()
                .next()
                .cloned()
                .expect("a full cache has a first key");
            handles.remove(&evicted);
        }
        handles.insert(relative, file);
        assert!(
            handles.len() <= open_files_max,
            "the handle cache is bounded"
        );
    }

    fn forget(&self, relative: &Path) {
        self.handles().retain(|p, _| !p.starts_with(relative));
        self.directories().retain(|p, _| !p.starts_with(relative));
        self.direct_handles()
            .retain(|p, _| !p.starts_with(relative));
    }

    fn direct_handles(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Arc<File>>> {
        self.direct
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The path's `O_DIRECT` handle, opened on first use; `None` when the file system refuses
    /// `O_DIRECT` (remembered: every later direct write is then buffered).
    fn open_direct(&self, path: &Path) -> DiskResult<Option<Arc<File>>> {
        let (relative, absolute) = self.resolve(path)?;
        let mut direct = self.direct_handles();
        if let Some(file) = direct.get(&relative) {
            return Ok(Some(Arc::clone(file)));
        }
        let flags = i32::try_from(rustix::fs::OFlags::DIRECT.bits()).expect("a small flag");
        match OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(&absolute)
        {
            Ok(file) => {
                let file = Arc::new(file);
                Self::cache(
                    &mut direct,
                    self.open_files_max,
                    relative,
                    Arc::clone(&file),
                );
                Ok(Some(file))
            }
            Err(error) if refuses_direct(&error) => {
                self.direct_refused.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(error) => Err(io_error(&relative, error)),
        }
    }

    fn directories(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Arc<File>>> {
        self.directories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Disk for FileDisk {
    fn create(&self, path: &Path) -> DiskResult<()> {
        let (relative, absolute) = self.resolve(path)?;
        // The new file's own handle replaces any cached one (of a file that was removed behind
        // this disk's back), and serves the writes and the sync that follow a create (a
        // checkpoint's temporary file, a new segment) without another open.
        let mut handles = self.handles();
        handles.remove(&relative);
        self.direct_handles().remove(&relative);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&absolute)
            .map_err(|e| io_error(&relative, e))?;
        Self::cache(&mut handles, self.open_files_max, relative, Arc::new(file));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> DiskResult<()> {
        let (relative, absolute) = self.resolve(path)?;
        std::fs::create_dir_all(&absolute).map_err(|e| io_error(&relative, e))
    }

    fn exists(&self, path: &Path) -> DiskResult<bool> {
        let (_, absolute) = self.resolve(path)?;
        Ok(absolute.exists())
    }

    fn len(&self, path: &Path) -> DiskResult<u64> {
        let (relative, absolute) = self.resolve(path)?;
        let metadata = std::fs::metadata(&absolute).map_err(|e| io_error(&relative, e))?;
        Ok(metadata.len())
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> DiskResult<usize> {
        let (_, file) = self.open(path)?;
        let mut filled = 0;
        while filled < buf.len() {
            let n = file
                .read_at(&mut buf[filled..], offset + filled as u64)
                .map_err(|e| io_error(path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        assert!(filled <= buf.len(), "a read never overfills");
        Ok(filled)
    }

    fn read_vec(&self, path: &Path, offset: u64, len: usize) -> DiskResult<Vec<u8>> {
        // The cached handle, read positionally (`pread`): no open and close per read (a
        // follower's or consumer's fetch), and the handle's cursor, which every user of the cached
        // handle shares, is never moved. `spare_capacity` lets the kernel fill the vector's fresh
        // capacity without zeroing it first, in safe code.
        let (_, file) = self.open(path)?;
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            match rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(io_error(path, errno.into())),
            }
        }
        // The allocator may have given more capacity than asked for, and the last read filled it.
        buf.truncate(len);
        assert!(buf.len() <= len, "a read never overfills");
        Ok(buf)
    }

    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()> {
        let (_, file) = self.open(path)?;
        file.write_all_at(data, offset)
            .map_err(|e| io_error(path, e))
    }

    fn write_alignment(&self) -> usize {
        DIRECT_WRITE_ALIGNMENT
    }

    fn write_direct_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()> {
        let unit = DIRECT_WRITE_ALIGNMENT;
        let aligned = offset.is_multiple_of(unit as u64)
            && data.len().is_multiple_of(unit)
            && data.as_ptr().addr().is_multiple_of(unit);
        if !aligned || self.direct_refused.load(Ordering::Relaxed) {
            return self.write_at(path, offset, data);
        }
        let Some(file) = self.open_direct(path)? else {
            return self.write_at(path, offset, data);
        };
        match file.write_all_at(data, offset) {
            Ok(()) => Ok(()),
            // A file system that opens O_DIRECT but refuses these writes (an alignment it
            // needs larger than ours): buffered from now on, this round included.
            Err(error) if refuses_direct(&error) => {
                self.direct_refused.store(true, Ordering::Relaxed);
                self.direct_handles().clear();
                self.write_at(path, offset, data)
            }
            Err(error) => Err(io_error(path, error)),
        }
    }

    fn append(&self, path: &Path, data: &[u8]) -> DiskResult<u64> {
        let (_, file) = self.open(path)?;
        let at = file.metadata().map_err(|e| io_error(path, e))?.len();
        file.write_all_at(data, at).map_err(|e| io_error(path, e))?;
        Ok(at)
    }

    fn sync(&self, path: &Path) -> DiskResult<()> {
        let (_, file) = self.open(path)?;
        file.sync_data().map_err(|e| io_error(path, e))
    }

    fn truncate(&self, path: &Path, len: u64) -> DiskResult<()> {
        let (_, file) = self.open(path)?;
        file.set_len(len).map_err(|e| io_error(path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> DiskResult<()> {
        let (from_relative, from_absolute) = self.resolve(from)?;
        let (to_relative, to_absolute) = self.resolve(to)?;
        if to_absolute.is_dir() {
            return Err(DiskError::AlreadyExists(to_relative.display().to_string()));
        }
        self.forget(&from_relative);
        self.forget(&to_relative);
        std::fs::rename(&from_absolute, &to_absolute).map_err(|e| io_error(&from_relative, e))
    }

    fn remove(&self, path: &Path) -> DiskResult<()> {
        let (relative, absolute) = self.resolve(path)?;
        if absolute.is_dir() {
            return Err(DiskError::Io {
                path: relative.display().to_string(),
                reason: "is a directory".into(),
            });
        }
        self.forget(&relative);
        std::fs::remove_file(&absolute).map_err(|e| io_error(&relative, e))
    }

    fn remove_dir(&self, path: &Path, recursive: bool) -> DiskResult<()> {
        let (relative, absolute) = self.resolve(path)?;
        self.forget(&relative);
        let result = if recursive {
            std::fs::remove_dir_all(&absolute)
        } else {
            std::fs::remove_dir(&absolute)
        };
        result.map_err(|e| io_error(&relative, e))
    }

    fn list(&self, dir: &Path) -> DiskResult<Vec<String>> {
        let absolute = self.resolve_dir(dir)?;
        let entries = std::fs::read_dir(&absolute).map_err(|e| io_error(dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> DiskResult<()> {
        let absolute = self.resolve_dir(dir)?;
        let relative = absolute
            .strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        // A directory's handle is kept too (a state checkpoint syncs its partition's directory
        // each time): dropped when this disk removes or renames the directory or one above it.
        let cached = self.directories().get(&relative).cloned();
        let handle = match cached {
            Some(handle) => handle,
            None => {
                let handle = Arc::new(File::open(&absolute).map_err(|e| io_error(dir, e))?);
                let mut directories = self.directories();
                Self::cache(
                    &mut directories,
                    self.open_files_max,
                    relative,
                    Arc::clone(&handle),
                );
                handle
            }
        };
        handle.sync_all().map_err(|e| io_error(dir, e))
    }
}
