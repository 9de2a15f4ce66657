//! `MemDisk`: an in-memory `Disk` that keeps volatile and durable state apart, so a simulated
//! power loss (`crash`) keeps exactly what an fsync'd disk would, and can tear the unsynced tail.
//!
//! # Model
//! - A file is an inode with `volatile` bytes (what reads see) and `durable` bytes (what survives a
//!   crash). `sync(file)` makes durable what volatile is.
//! - The namespace (path -> inode or directory) has a volatile and a durable version.
//!   `sync_dir(dir)` makes the entries directly under `dir` durable (creations, renames, removals).
//! - `crash()` resets the namespace to its durable version and every surviving inode to its durable
//!   bytes, except that when the unsynced change of a file is an append (durable bytes are a prefix
//!   of the volatile ones), a seeded RNG keeps some prefix of the appended bytes cut at a 512-byte
//!   sector boundary of the file, possibly with the last kept sector zero-filled (a torn write).
//! - Faults are seeded and deterministic: error probabilities per operation kind, "fail the next N
//!   operations", a byte capacity (`DiskError::Full`), and silent bit flips.
//! - A failed file `sync` makes nothing durable. By default the unsynced bytes stay dirty, so the
//!   next successful sync persists them. With [`MemDisk::set_sync_failure_drops_unsynced`] a
//!   failed sync drops them instead, as Linux may after a writeback error ("fsyncgate": the
//!   pages are marked clean and their contents are lost once evicted): every byte of the file
//!   not yet durable reads back as the durable content, zeros past its end (the file keeps its
//!   length), and a later sync persists that, never the lost bytes.

use crate::disk::{Disk, DiskError, DiskResult};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The sector size a torn write is cut at: disks write whole sectors atomically (or so we assume).
pub const SECTOR_BYTES: u64 = 512;

/// Upper bound on a single file: catches runaway writes in tests instead of exhausting memory.
const FILE_BYTES_MAX: u64 = 1 << 34;

/// The kinds of operation a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultOp {
    /// `read_at`.
    Read,
    /// `write_at`, `append`, `truncate`.
    Write,
    /// `sync`, `sync_dir`.
    Sync,
}

/// Seeded, deterministic fault injection settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability that a read fails with an injected I/O error.
    pub read_error_probability: f64,
    /// Probability that a write (or truncate) fails with an injected I/O error, applying nothing.
    pub write_error_probability: f64,
    /// Probability that a sync fails with an injected I/O error, making nothing durable.
    pub sync_error_probability: f64,
    /// Probability that a write silently stores one flipped bit in the bytes it wrote.
    pub bit_flip_probability: f64,
    /// Total bytes the disk holds (sum of volatile file lengths); `None` is unlimited.
    pub capacity_bytes: Option<u64>,
    /// Probability that a file `sync` reports success without making anything durable: a disk
    /// (or a virtualisation layer) that lies about fsync. Not a fault rill can survive alone; it
    /// exists so the simulator can prove its checks notice lost flushed data.
    pub sync_lie_probability: f64,
}

/// Operation counters, for tests that assert how much IO an operation does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Successful `read_at` calls.
    pub reads: u64,
    /// Successful `write_at`/`append` calls.
    pub writes: u64,
    /// Bytes written by successful writes.
    pub bytes_written: u64,
    /// Successful `sync` calls.
    pub syncs: u64,
    /// Successful `sync_dir` calls.
    pub dir_syncs: u64,
    /// Successful `rename` calls.
    pub renames: u64,
    /// Successful `create` calls.
    pub creates: u64,
    /// Successful `remove` calls.
    pub removes: u64,
    /// Faults injected (errors returned, bits flipped).
    pub faults_injected: u64,
    /// Calls to `crash`.
    pub crashes: u64,
}

/// A directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// A file, by inode number.
    File(u64),
    /// A directory (its children are the entries whose parent is it).
    Dir,
}

/// One file's contents.
#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads see.
    volatile: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// How many leading bytes of `volatile` are known equal to `durable`'s (at most both
    /// lengths): a sync copies only what lies past them. (Copying the whole file at every
    /// fsync made a long segment's syncs quadratic; they were the simulator's largest memcpy.)
    clean_bytes: usize,
}

impl Inode {
    /// A failed sync that drops the unsynced bytes (fsyncgate): every byte past the clean
    /// prefix reads back as the durable one at its position, or zero past the durable end (the
    /// blocks never written). The file keeps its length; what differs from the durable bytes
    /// stays unsynced. Returns whether any byte changed.
    fn drop_unsynced(&mut self) -> bool {
        let from = self.clean_bytes;
        let mut changed = false;
        for (position, byte) in self.volatile.iter_mut().enumerate().skip(from) {
            let on_disk = self.durable.get(position).copied().unwrap_or(0);
            changed |= *byte != on_disk;
            *byte = on_disk;
        }
        changed
    }
}

impl Inode {
    /// Notes that bytes from `position` on may differ from the durable ones.
    fn dirty_from(&mut self, position: usize) {
        self.clean_bytes = self.clean_bytes.min(position);
    }

    /// Makes the durable bytes what the volatile ones are (an fsync that did not lie).
    fn make_durable(&mut self) {
        assert!(
            self.clean_bytes <= self.durable.len() && self.clean_bytes <= self.volatile.len(),
            "the clean prefix lies within both versions"
        );
        self.durable.truncate(self.clean_bytes);
        self.durable
            .extend_from_slice(&self.volatile[self.clean_bytes..]);
        self.clean_bytes = self.volatile.len();
        assert_eq!(
            self.durable.len(),
            self.volatile.len(),
            "a sync makes both equal"
        );
    }
}

/// Everything behind the lock.
#[derive(Debug)]
struct State {
    /// The namespace reads see, by [`Key`]. The root (the empty key) is implicit and always
    /// exists.
    entries: BTreeMap<Key, Entry>,
    /// The namespace a crash returns to.
    entries_durable: BTreeMap<Key, Entry>,
    /// File contents by inode number.
    inodes: BTreeMap<u64, Inode>,
    /// Next inode number to hand out.
    inode_next: u64,
    /// The seeded RNG for faults and tearing.
    rng: ChaCha8Rng,
    /// Probabilistic faults and capacity.
    faults: FaultConfig,
    /// Remaining forced failures per operation kind.
    fail_next: BTreeMap<FaultOp, u64>,
    /// Forced failures of one kind of operation on one path (`fail_at`): how many pass first,
    /// how many fail then.
    fail_at: BTreeMap<(FaultOp, String), (u64, u64)>,
    /// Counters for tests.
    counts: OpCounts,
    /// A failed file sync drops the unsynced bytes (fsyncgate) instead of leaving them dirty.
    sync_failure_drops_unsynced: bool,
}

/// An in-memory disk with a crash and fault model. Clones share the same disk.
#[derive(Clone, Debug)]
pub struct MemDisk {
    /// Shared state: every clone (every broker's partition) sees the same files.
    state: Arc<Mutex<State>>,
}

/// Normalises a contract path (relative, no `..`, no empty) into a `PathBuf` of normal components.
pub(crate) fn normalize(path: &Path) -> DiskResult<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(DiskError::InvalidPath(path.display().to_string())),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(DiskError::InvalidPath(path.display().to_string()));
    }
    Ok(out)
}

/// A path in MemDisk's namespace: its normal components joined by `/` (the root is empty).
/// A string compares with one `memcmp` where a `PathBuf` parses its components at every
/// comparison (a sixth of the simulator's CPU time went there), and every entry under a
/// directory `d` is in the contiguous key range that starts with `d/`.
type Key = String;

/// The key of a contract path (relative, no `..`, not empty).
fn key(path: &Path) -> DiskResult<Key> {
    if let Some(text) = path.to_str().filter(|t| is_normal_key(t)) {
        // The common case (every path the log builds): already normal, no parse needed.
        return Ok(text.to_string());
    }
    let normal = normalize(path)?;
    let key = normal
        .to_str()
        .ok_or_else(|| DiskError::InvalidPath(path.display().to_string()))?
        .to_string();
    assert!(
        !key.is_empty() && !key.starts_with('/') && !key.ends_with('/'),
        "a normalised path is relative and not empty"
    );
    Ok(key)
}

/// Is `text` already a key: relative, `/`-separated, every component a normal name (no empty,
/// `.` or `..` component)? Such a path normalises to itself.
fn is_normal_key(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The key of a directory argument, where the empty path and `.` name the root.
fn dir_key(dir: &Path) -> DiskResult<Key> {
    if dir.as_os_str().is_empty() || dir == Path::new(".") {
        Ok(Key::new())
    } else {
        key(dir)
    }
}

/// The parent of a key; the root's children have the empty key as parent.
fn parent_of(key: &str) -> &str {
    key.rfind('/').map_or("", |slash| &key[..slash])
}

/// Every key strictly under `dir` (children, grandchildren, ...), in order.
fn descendants<'a, V>(
    entries: &'a BTreeMap<Key, V>,
    dir: &'a str,
) -> impl Iterator<Item = &'a Key> + 'a {
    descendant_entries(entries, dir).map(|(key, _)| key)
}

/// Everything under `dir` with its value, in key order.
fn descendant_entries<'a, V>(
    entries: &'a BTreeMap<Key, V>,
    dir: &'a str,
) -> impl Iterator<Item = (&'a Key, &'a V)> + 'a {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    entries
        .range::<str, _>((
            std::ops::Bound::Included(prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(key, _)| key.starts_with(&prefix))
}

/// The keys directly under `dir`, in order.
fn children<'a, V>(
    entries: &'a BTreeMap<Key, V>,
    dir: &'a str,
) -> impl Iterator<Item = &'a Key> + 'a {
    descendants(entries, dir).filter(move |key| parent_of(key) == dir)
}

/// The direct children of `dir` with their entries, in key order.
fn child_entries<'a>(
    entries: &'a BTreeMap<Key, Entry>,
    dir: &'a str,
) -> impl Iterator<Item = (&'a Key, Entry)> + 'a {
    descendant_entries(entries, dir)
        .filter(move |(key, _)| parent_of(key) == dir)
        .map(|(key, entry)| (key, *entry))
}

fn name(key: &str) -> String {
    key.to_string()
}

impl MemDisk {
    /// A fresh empty disk whose faults and tearing draw from `seed`.
    pub fn new(seed: u64) -> Self {
        let state = State {
            entries: BTreeMap::new(),
            entries_durable: BTreeMap::new(),
            inodes: BTreeMap::new(),
            inode_next: 1,
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: FaultConfig::default(),
            fail_next: BTreeMap::new(),
            fail_at: BTreeMap::new(),
            counts: OpCounts::default(),
            sync_failure_drops_unsynced: false,
        };
        MemDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// This disk as the shared trait object `PartitionLog::open` takes.
    pub fn as_disk(&self) -> Arc<dyn Disk> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (every mutation is one step).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes the disk holds now (sum of volatile file lengths), as `capacity_bytes` counts them:
    /// a capacity set to this fills the disk.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Replaces the probabilistic fault settings.
    pub fn set_faults(&self, faults: FaultConfig) {
        for p in [
            faults.read_error_probability,
            faults.write_error_probability,
            faults.sync_error_probability,
            faults.bit_flip_probability,
            faults.sync_lie_probability,
        ] {
            assert!((0.0..=1.0).contains(&p), "probability out of range: {p}");
        }
        self.lock().faults = faults;
    }

    /// Whether a failed file sync (an injected error, forced or drawn, or BUGGIFY's) drops the
    /// file's unsynced bytes, as Linux may after a writeback error, instead of leaving them
    /// dirty for the next sync (the default). A property of the disk: [`MemDisk::set_faults`]
    /// leaves it as it is. Draws nothing from the disk's RNG.
    pub fn set_sync_failure_drops_unsynced(&self, drops: bool) {
        self.lock().sync_failure_drops_unsynced = drops;
    }

    /// Makes the next `n` operations of kind `op` fail with an injected I/O error.
    pub fn fail_next(&self, op: FaultOp, n: u64) {
        self.lock().fail_next.insert(op, n);
    }

    /// Lets the next `pass` operations of kind `op` on `path` (a file, or a directory for
    /// `sync_dir`) through, then makes `n` fail with an injected I/O error; other paths are not
    /// touched.
    pub fn fail_at(&self, op: FaultOp, path: &Path, pass: u64, n: u64) -> DiskResult<()> {
        let path = key(path)?;
        self.lock().fail_at.insert((op, path), (pass, n));
        Ok(())
    }

    /// The operation counters so far.
    pub fn counts(&self) -> OpCounts {
        self.lock().counts
    }

    /// Flips one seeded-random bit of the file's stored bytes (volatile and durable alike: the
    /// medium rotted). Returns the flipped byte position, or `None` for an empty file.
    pub fn flip_random_bit(&self, path: &Path) -> DiskResult<Option<u64>> {
        let path = key(path)?;
        let mut state = self.lock();
        let inode_id = state.file_inode(&path)?;
        let len = state.inodes[&inode_id].volatile.len();
        Ok(state.flip_random_bit_below(inode_id, len))
    }

    /// Flips one seeded-random bit among the durable bytes (what a sync made stable, then
    /// rotted at rest: a latent sector error) of one of `paths`, which the disk's seeded RNG
    /// picks too. Returns the file's index in `paths` and the flipped byte position, or `None`
    /// when `paths` is empty or nothing of the picked file is durable.
    pub fn flip_random_durable_bit(&self, paths: &[PathBuf]) -> DiskResult<Option<(usize, u64)>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let mut state = self.lock();
        let pick = state.rng.gen_range(0..paths.len());
        let inode_id = state.file_inode(&key(&paths[pick])?)?;
        let inode = &state.inodes[&inode_id];
        // Both copies hold the byte (an unsynced truncation may have shortened the volatile).
        let len = inode.durable.len().min(inode.volatile.len());
        Ok(state
            .flip_random_bit_below(inode_id, len)
            .map(|position| (pick, position)))
    }

    /// Flips bit `bit` of byte `position` of the file (volatile and durable alike).
    pub fn flip_bit_at(&self, path: &Path, position: u64, bit: u32) -> DiskResult<()> {
        assert!(bit < 8, "a byte has 8 bits: {bit}");
        let path = key(path)?;
        let mut state = self.lock();
        let inode_id = state.file_inode(&path)?;
        let len = state.inodes[&inode_id].volatile.len() as u64;
        if position >= len {
            return Err(DiskError::Io {
                path: name(&path),
                reason: "flip past end".into(),
            });
        }
        state.flip_bit(inode_id, position as usize, bit);
        Ok(())
    }

    /// Simulates a power loss: keeps durable state only, tearing unsynced appends at sector
    /// granularity as the seeded RNG decides. The disk stays usable (it is the rebooted disk).
    pub fn crash(&self) {
        let mut state = self.lock();
        state.counts.crashes += 1;
        // An entry whose directory never became durable vanishes with it.
        let durable = state.entries_durable.clone();
        state.entries_durable.retain(|path, _| {
            path.match_indices('/')
                .all(|(slash, _)| durable.get(&path[..slash]) == Some(&Entry::Dir))
        });
        state.entries = state.entries_durable.clone();
        let mut live: Vec<(&Key, u64)> = state
            .entries
            .iter()
            .filter_map(|(key, e)| match e {
                Entry::File(id) => Some((key, *id)),
                Entry::Dir => None,
            })
            .collect();
        // Files tear in path order (components compared, as when the keys were paths), so a
        // seed draws the same tears as before the keys became strings.
        live.sort_by(|(a, _), (b, _)| Path::new(a.as_str()).cmp(Path::new(b.as_str())));
        let live: Vec<u64> = live.into_iter().map(|(_, id)| id).collect();
        let inodes = std::mem::take(&mut state.inodes);
        let mut kept = BTreeMap::new();
        for id in live {
            let inode = inodes.get(&id).expect("durable entries name live inodes");
            let bytes = tear(&mut state.rng, inode);
            kept.insert(
                id,
                Inode {
                    clean_bytes: bytes.len(),
                    volatile: bytes.clone(),
                    durable: bytes,
                },
            );
        }
        state.inodes = kept;
        assert!(
            state.entries == state.entries_durable,
            "after a crash the namespace is durable"
        );
    }

    /// The file's durable bytes (what a crash now would keep, before tearing), for tests.
    pub fn durable_bytes(&self, path: &Path) -> DiskResult<Vec<u8>> {
        let path = key(path)?;
        let state = self.lock();
        let id = state.file_inode(&path)?;
        Ok(state.inodes[&id].durable.clone())
    }
}

/// What survives of an inode at a crash. An unsynced append keeps a sector-cut prefix of its
/// bytes; any other unsynced change (overwrite, truncate) is lost whole.
fn tear(rng: &mut ChaCha8Rng, inode: &Inode) -> Vec<u8> {
    let durable_len = inode.durable.len() as u64;
    let volatile_len = inode.volatile.len() as u64;
    let is_append = volatile_len > durable_len && inode.volatile.starts_with(&inode.durable);
    if !is_append {
        return inode.durable.clone();
    }
    // Candidate cut points: the durable end, every sector boundary inside the tail, the full end.
    let mut cuts = vec![durable_len];
    let mut boundary = (durable_len / SECTOR_BYTES + 1) * SECTOR_BYTES;
    while boundary < volatile_len {
        cuts.push(boundary);
        boundary += SECTOR_BYTES;
    }
    cuts.push(volatile_len);
    let cut = cuts[rng.gen_range(0..cuts.len())];
    assert!(
        cut >= durable_len && cut <= volatile_len,
        "a tear keeps a prefix of the tail"
    );
    let mut bytes = inode.volatile[..cut as usize].to_vec();
    // Sometimes the file grew but its last sector's data never landed (metadata before data).
    if cut > durable_len && rng.gen_bool(0.25) {
        let sector_start = ((cut - 1) / SECTOR_BYTES * SECTOR_BYTES).max(durable_len);
        bytes[sector_start as usize..].fill(0);
    }
    bytes
}

impl State {
    fn file_inode(&self, path: &str) -> DiskResult<u64> {
        match self.entries.get(path) {
            Some(Entry::File(id)) => Ok(*id),
            Some(Entry::Dir) => Err(DiskError::Io {
                path: name(path),
                reason: "is a directory".into(),
            }),
            None => Err(DiskError::NotFound(name(path))),
        }
    }

    fn dir_exists(&self, dir: &str) -> bool {
        dir.is_empty() || self.entries.get(dir) == Some(&Entry::Dir)
    }

    /// Flips one seeded-random bit of the inode's first `len` bytes; `None` when `len` is 0.
    fn flip_random_bit_below(&mut self, id: u64, len: usize) -> Option<u64> {
        if len == 0 {
            return None;
        }
        let position = self.rng.gen_range(0..len);
        let bit = self.rng.gen_range(0..8u32);
        self.flip_bit(id, position, bit);
        self.counts.faults_injected += 1;
        Some(position as u64)
    }

    fn flip_bit(&mut self, id: u64, position: usize, bit: u32) {
        let inode = self.inodes.get_mut(&id).expect("entries name live inodes");
        inode.volatile[position] ^= 1 << bit;
        if position < inode.durable.len() {
            inode.durable[position] ^= 1 << bit;
        }
    }

    /// Decides whether this operation fails: forced failures first, then the probability.
    fn inject(&mut self, op: FaultOp, path: &str) -> DiskResult<()> {
        let at = if self.fail_at.is_empty() {
            None // the common case: no allocation for the lookup
        } else {
            match self.fail_at.get_mut(&(op, path.to_string())) {
                Some((pass, _)) if *pass > 0 => {
                    *pass -= 1;
                    None
                }
                Some((_, n)) if *n > 0 => Some(n),
                _ => None,
            }
        };
        let forced = at.or_else(|| self.fail_next.get_mut(&op).filter(|n| **n > 0));
        let fail = if let Some(n) = forced {
            *n -= 1;
            true
        } else {
            let p = match op {
                FaultOp::Read => self.faults.read_error_probability,
                FaultOp::Write => self.faults.write_error_probability,
                FaultOp::Sync => self.faults.sync_error_probability,
            };
            p > 0.0 && self.rng.gen_bool(p)
        } || match op {
            // BUGGIFY: the simulator's rare EIO at any read, write or fsync (only the disk may
            // fail a partition; the harness restarts the node at healing).
            FaultOp::Read => buggify::disk_fault("memdisk.read.eio"),
            FaultOp::Write => buggify::disk_fault("memdisk.write.eio"),
            FaultOp::Sync => buggify::disk_fault("memdisk.sync.eio"),
        };
        if fail {
            self.counts.faults_injected += 1;
            return Err(DiskError::Io {
                path: name(path),
                reason: format!("injected {op:?} fault"),
            });
        }
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.volatile.len() as u64).sum()
    }

    /// Fails with `Full` if growing a file from `old_len` to `new_len` exceeds the capacity.
    fn check_capacity(&self, path: &str, old_len: u64, new_len: u64) -> DiskResult<()> {
        if new_len > FILE_BYTES_MAX {
            return Err(DiskError::Full(name(path)));
        }
        if let Some(capacity) = self.faults.capacity_bytes {
            let used = self.used_bytes();
            if new_len > old_len && used + (new_len - old_len) > capacity {
                return Err(DiskError::Full(name(path)));
            }
        }
        Ok(())
    }

    fn write(&mut self, path: &str, offset: Option<u64>, data: &[u8]) -> DiskResult<u64> {
        let id = self.file_inode(path)?;
        self.inject(FaultOp::Write, path)?;
        let old_len = self.inodes[&id].volatile.len() as u64;
        let at = offset.unwrap_or(old_len);
        let new_len = old_len.max(at + data.len() as u64);
        self.check_capacity(path, old_len, new_len)?;
        if buggify::disk_fault("memdisk.write.enospc") {
            self.counts.faults_injected += 1;
            return Err(DiskError::Full(name(path)));
        }
        if data.len() > 1 && buggify::disk_fault("memdisk.write.short") {
            // A short write: the first half reached the file, then the device failed. The
            // caller sees an error and a torn tail it must not trust.
            let torn = &data[..data.len() / 2];
            let inode = self.inodes.get_mut(&id).expect("entries name live inodes");
            inode.dirty_from(at as usize);
            let end = at as usize + torn.len();
            if inode.volatile.len() < end {
                inode.volatile.resize(end, 0);
            }
            inode.volatile[at as usize..end].copy_from_slice(torn);
            self.counts.faults_injected += 1;
            return Err(DiskError::Io {
                path: name(path),
                reason: "injected short write".into(),
            });
        }
        let flip = self.faults.bit_flip_probability > 0.0
            && !data.is_empty()
            && self.rng.gen_bool(self.faults.bit_flip_probability);
        let inode = self.inodes.get_mut(&id).expect("entries name live inodes");
        inode.dirty_from((at as usize).min(inode.volatile.len()));
        if inode.volatile.len() < new_len as usize {
            inode.volatile.resize(new_len as usize, 0);
        }
        inode.volatile[at as usize..at as usize + data.len()].copy_from_slice(data);
        assert!(
            inode.volatile.len() as u64 == new_len,
            "write extends the file exactly"
        );
        if flip {
            let position = self.rng.gen_range(0..data.len()) + at as usize;
            let bit = self.rng.gen_range(0..8u32);
            self.flip_bit(id, position, bit);
            self.counts.faults_injected += 1;
        }
        self.counts.writes += 1;
        self.counts.bytes_written += data.len() as u64;
        Ok(at)
    }

    /// Removes `path` and everything under it from the volatile namespace.
    fn remove_tree(&mut self, path: &str) {
        let doomed: Vec<Key> = descendants(&self.entries, path).cloned().collect();
        let mut released = Vec::new();
        for p in doomed {
            released.extend(self.entries.remove(&p));
        }
        released.extend(self.entries.remove(path));
        self.release(released);
    }

    /// Drops the inodes of `released` (entries some namespace just stopped holding) that no
    /// namespace, volatile or durable, refers to any more. One scan of the names per released
    /// file, no allocation: a directory of many segments loses one at a time.
    fn release(&mut self, released: impl IntoIterator<Item = Entry>) {
        for entry in released {
            let Entry::File(id) = entry else { continue };
            let referred = self
                .entries
                .values()
                .chain(self.entries_durable.values())
                .any(|e| *e == entry);
            if !referred {
                self.inodes.remove(&id);
            }
        }
    }
}

impl Disk for MemDisk {
    fn create(&self, path: &Path) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        if state.entries.contains_key(&path) {
            return Err(DiskError::AlreadyExists(name(&path)));
        }
        if !state.dir_exists(parent_of(&path)) {
            return Err(DiskError::NotFound(name(parent_of(&path))));
        }
        if buggify::disk_fault("memdisk.create.enospc") {
            state.counts.faults_injected += 1;
            return Err(DiskError::Full(name(&path)));
        }
        let id = state.inode_next;
        state.inode_next += 1;
        state.inodes.insert(id, Inode::default());
        state.entries.insert(path, Entry::File(id));
        state.counts.creates += 1;
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        let ends = path
            .match_indices('/')
            .map(|(slash, _)| slash)
            .chain([path.len()]);
        for end in ends {
            let current = &path[..end];
            match state.entries.get(current) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(DiskError::AlreadyExists(name(current))),
                None => {
                    state.entries.insert(current.to_string(), Entry::Dir);
                }
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> DiskResult<bool> {
        let path = key(path)?;
        Ok(self.lock().entries.contains_key(&path))
    }

    fn len(&self, path: &Path) -> DiskResult<u64> {
        let path = key(path)?;
        let state = self.lock();
        let id = state.file_inode(&path)?;
        Ok(state.inodes[&id].volatile.len() as u64)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> DiskResult<usize> {
        let path = key(path)?;
        let mut state = self.lock();
        let id = state.file_inode(&path)?;
        state.inject(FaultOp::Read, &path)?;
        let bytes = &state.inodes[&id].volatile;
        let start = (offset as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        state.counts.reads += 1;
        Ok(n)
    }

    /// A sector, as a device's logical block: what `O_DIRECT` needs on such a device.
    fn write_alignment(&self) -> usize {
        SECTOR_BYTES as usize
    }

    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()> {
        let path = key(path)?;
        self.lock().write(&path, Some(offset), data).map(|_| ())
    }

    fn append(&self, path: &Path, data: &[u8]) -> DiskResult<u64> {
        let path = key(path)?;
        self.lock().write(&path, None, data)
    }

    fn sync(&self, path: &Path) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        let id = state.file_inode(&path)?;
        if let Err(error) = state.inject(FaultOp::Sync, &path) {
            if state.sync_failure_drops_unsynced {
                let inode = state.inodes.get_mut(&id).expect("entries name live inodes");
                if inode.drop_unsynced() {
                    buggify::probe!("memdisk.sync_failure_dropped_unsynced");
                }
            }
            return Err(error);
        }
        let lie = state.faults.sync_lie_probability;
        if lie > 0.0 && state.rng.gen_bool(lie) {
            state.counts.faults_injected += 1;
            return Ok(());
        }
        let inode = state.inodes.get_mut(&id).expect("entries name live inodes");
        inode.make_durable();
        state.counts.syncs += 1;
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        let id = state.file_inode(&path)?;
        state.inject(FaultOp::Write, &path)?;
        let old_len = state.inodes[&id].volatile.len() as u64;
        state.check_capacity(&path, old_len, len)?;
        let inode = state.inodes.get_mut(&id).expect("entries name live inodes");
        inode.dirty_from((len as usize).min(inode.volatile.len()));
        inode.volatile.resize(len as usize, 0);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> DiskResult<()> {
        let from = key(from)?;
        let to = key(to)?;
        let mut state = self.lock();
        let id = state.file_inode(&from)?;
        if buggify::disk_fault("memdisk.rename.eio") {
            state.counts.faults_injected += 1;
            return Err(DiskError::Io {
                path: name(&from),
                reason: "injected rename fault".into(),
            });
        }
        if !state.dir_exists(parent_of(&to)) {
            return Err(DiskError::NotFound(name(parent_of(&to))));
        }
        if state.entries.get(&to) == Some(&Entry::Dir) {
            return Err(DiskError::AlreadyExists(name(&to)));
        }
        state.entries.remove(&from);
        let replaced = state.entries.insert(to, Entry::File(id));
        state.release(replaced);
        state.counts.renames += 1;
        Ok(())
    }

    fn remove(&self, path: &Path) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        state.file_inode(&path)?;
        let removed = state.entries.remove(&path);
        state.release(removed);
        state.counts.removes += 1;
        Ok(())
    }

    fn remove_dir(&self, path: &Path, recursive: bool) -> DiskResult<()> {
        let path = key(path)?;
        let mut state = self.lock();
        if state.entries.get(&path) != Some(&Entry::Dir) {
            return Err(DiskError::NotFound(name(&path)));
        }
        let has_children = descendants(&state.entries, &path).next().is_some();
        if has_children && !recursive {
            return Err(DiskError::Io {
                path: name(&path),
                reason: "directory not empty".into(),
            });
        }
        state.remove_tree(&path);
        Ok(())
    }

    fn list(&self, dir: &Path) -> DiskResult<Vec<String>> {
        let state = self.lock();
        let dir = dir_key(dir)?;
        if !state.dir_exists(&dir) {
            return Err(DiskError::NotFound(name(&dir)));
        }
        let names: Vec<String> = children(&state.entries, &dir)
            .map(|p| p[p.rfind('/').map_or(0, |slash| slash + 1)..].to_string())
            .collect();
        debug_assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "BTreeMap order is sorted order"
        );
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> DiskResult<()> {
        let dir = dir_key(dir)?;
        let mut state = self.lock();
        if !state.dir_exists(&dir) {
            return Err(DiskError::NotFound(name(&dir)));
        }
        state.inject(FaultOp::Sync, &dir)?;
        // Only what differs is copied (a directory of many segments is synced at every roll),
        // and only the files whose durable name went away may lose their inode.
        // Both listings are sorted: one merge walk, no lookups.
        let mut gone: Vec<Key> = Vec::new();
        let mut changed: Vec<(Key, Entry)> = Vec::new();
        let mut durable = child_entries(&state.entries_durable, &dir).peekable();
        for (child, entry) in child_entries(&state.entries, &dir) {
            while let Some((old, _)) = durable.next_if(|(old, _)| *old < child) {
                gone.push(old.clone());
            }
            match durable.next_if(|(old, _)| *old == child) {
                Some((_, old_entry)) if old_entry == entry => {}
                _ => changed.push((child.clone(), entry)),
            }
        }
        gone.extend(durable.map(|(old, _)| old.clone()));
        let mut released = Vec::new();
        for child in gone {
            released.extend(state.entries_durable.remove(&child));
        }
        for (child, entry) in changed {
            released.extend(state.entries_durable.insert(child, entry));
        }
        state.release(released);
        state.counts.dir_syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_fast_path_agrees_with_normalising() {
        let paths = [
            "a",
            "a/b",
            "t-0/00000000000000000000.log",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "/a",
            "",
            ".",
            "..",
            "a/../b",
            "a/..",
            "...",
            ".a/b.",
        ];
        for text in paths {
            let slow = normalize(Path::new(text))
                .map(|p| p.to_str().expect("test paths are UTF-8").to_string());
            let fast = key(Path::new(text));
            assert_eq!(fast.ok(), slow.ok(), "{text:?}");
        }
    }

    #[test]
    fn rot_flips_one_durable_byte_of_one_of_the_files() {
        let disk = MemDisk::new(7);
        let (a, b) = (PathBuf::from("a"), PathBuf::from("b"));
        for path in [&a, &b] {
            disk.create(path).expect("create");
            disk.write_at(path, 0, &[0u8; 64]).expect("write");
            disk.sync(path).expect("sync");
            // Unsynced bytes past the durable 64 never rot.
            disk.write_at(path, 64, &[0u8; 4096]).expect("write");
        }
        for _ in 0..50 {
            let (pick, position) = disk
                .flip_random_durable_bit(&[a.clone(), b.clone()])
                .expect("the files exist")
                .expect("both files hold durable bytes");
            assert!(pick < 2 && position < 64, "{pick} {position}");
        }
        let flipped: usize = [&a, &b]
            .iter()
            .map(|path| {
                let durable = disk.durable_bytes(path).expect("exists");
                let mut volatile = vec![0u8; 64];
                disk.read_at(path, 0, &mut volatile).expect("read");
                assert_eq!(volatile, durable[..64], "both copies rot alike");
                durable
                    .iter()
                    .map(|byte| byte.count_ones() as usize)
                    .sum::<usize>()
            })
            .sum();
        assert!(
            flipped > 0 && flipped <= 50 && flipped.is_multiple_of(2),
            "{flipped} bits"
        );
        disk.create(Path::new("empty")).expect("create");
        assert_eq!(
            disk.flip_random_durable_bit(&[PathBuf::from("empty")])
                .expect("exists"),
            None
        );
        assert_eq!(
            disk.flip_random_durable_bit(&[]).expect("nothing to flip"),
            None
        );
    }
}
