//! log-core benchmark: prints figures, compares against plain `std::fs` in the same run.
//!
//! `cargo run --release -p log-core --example bench`
//! Environment: `RILL_BENCH_MIB` log size for append/read/recovery (default 256; use 1024 for the
//! 1 GiB figure), `RILL_BENCH_FSYNC_EVERY` batches between fsyncs (default 16 = every 256 KiB),
//! `RILL_BENCH_DIR` where to put the temporary directory (default the system temp dir),
//! `RILL_BENCH_READ_ROUNDS` how many times the read pass reads the whole log (default 4).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use log_core::{BatchBuilder, FileDisk, LeaderEpoch, LogConfig, Offset, PartitionLog};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn make_batch() -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    let value = vec![b'x'; RECORD_BYTES];
    for i in 0..RECORDS_PER_BATCH {
        let key = format!("key-{i}");
        builder.push(
            Some(key.as_bytes()),
            Some(&value),
            1_700_000_000_000 + i as i64,
            &[],
        );
    }
    builder.build()
}

/// This thread's CPU time in seconds (user + system), from `/proc/thread-self/schedstat`.
fn thread_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let nanos: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    nanos as f64 / 1e9
}

fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / seconds
}

fn config(segment_bytes_max: u64, checkpoint_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        checkpoint_interval_bytes,
        retention_ms: None,
        batch_bytes_max: 1 << 20,
        ..LogConfig::default()
    }
}

/// Appends `batches` batches, fsyncing every `fsync_every`; optionally leaves `unflushed` batches
/// at the end without a flush. Returns the elapsed seconds for the flushed part.
fn fill(
    log: &mut PartitionLog,
    batch: &[u8],
    batches: u64,
    fsync_every: u64,
    unflushed: u64,
) -> f64 {
    let start = Instant::now();
    for i in 0..batches {
        log.append_as_leader(batch, LeaderEpoch(1), 0).unwrap();
        if (i + 1) % fsync_every == 0 && i + unflushed < batches {
            log.flush().unwrap();
        }
    }
    if unflushed == 0 {
        log.flush().unwrap();
    }
    start.elapsed().as_secs_f64()
}

fn plain_fs(dir: &Path, batch: &[u8], batches: u64, fsync_every: u64) -> f64 {
    let path = dir.join("plain.bin");
    let start = Instant::now();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    for i in 0..batches {
        file.write_all(batch).unwrap();
        if (i + 1) % fsync_every == 0 {
            file.sync_data().unwrap();
        }
    }
    file.sync_data().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    elapsed
}

fn recovery(
    root: &Path,
    name: &str,
    batch: &[u8],
    batches: u64,
    segment_bytes_max: u64,
    unflushed: u64,
) {
    let disk: Arc<dyn log_core::Disk> = Arc::new(FileDisk::new(root).unwrap());
    let dir = Path::new(name);
    let mut log =
        PartitionLog::open(Arc::clone(&disk), dir, config(segment_bytes_max, 0), 0).unwrap();
    fill(&mut log, batch, batches, 16, unflushed);
    let leo = log.log_end_offset();
    let unflushed_records = leo.distance_from(log.recovery_point());
    drop(log); // unclean shutdown: no close, the tail after the last flush is unflushed
    let start = Instant::now();
    let log = PartitionLog::open(disk, dir, config(segment_bytes_max, 0), 0).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(log.log_end_offset(), leo);
    let report = log.recovery_report();
    println!(
        "recovery {name:<26} log {:>5} MiB, unflushed tail {:>8.1} MiB: {:>8.1} ms \
         (segments {}, scanned {}, CRC-validated {:.1} MiB)",
        log.size_bytes() >> 20,
        (unflushed_records as f64 * (RECORD_BYTES + 16) as f64) / (1 << 20) as f64,
        elapsed * 1000.0,
        report.segments,
        report.segments_scanned,
        report.bytes_validated as f64 / (1 << 20) as f64,
    );
}

fn main() {
    let mib = env_u64("RILL_BENCH_MIB", 256);
    let fsync_every = env_u64("RILL_BENCH_FSYNC_EVERY", 16).max(1);
    let base = std::env::var("RILL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(base).unwrap();
    let batch = make_batch();
    let batches = (mib << 20) / batch.len() as u64;
    let bytes = batches * batch.len() as u64;
    println!(
        "log-core bench: {mib} MiB, {} B batches of {RECORDS_PER_BATCH} x {RECORD_BYTES} B records, fsync every {fsync_every} batches",
        batch.len()
    );

    // Append: the log on FileDisk vs plain write+fsync of the same bytes, same run.
    // Plain runs before and after the log's, averaged, so neither side gets the warmer disk.
    let plain_before = plain_fs(tmp.path(), &batch, batches, fsync_every);
    let disk: Arc<dyn log_core::Disk> = Arc::new(FileDisk::new(tmp.path()).unwrap());
    let mut log = PartitionLog::open(
        Arc::clone(&disk),
        Path::new("append-0"),
        config(256 << 20, 8 << 20),
        0,
    )
    .unwrap();
    let ours = fill(&mut log, &batch, batches, fsync_every, 0);
    let plain = (plain_before + plain_fs(tmp.path(), &batch, batches, fsync_every)) / 2.0;
    println!(
        "append   std::fs write+fsync {:>8.1} MiB/s | log-core {:>8.1} MiB/s | ratio {:.2}",
        mib_per_s(bytes, plain),
        mib_per_s(bytes, ours),
        plain / ours
    );

    // Read: the whole log sequentially in 1 MiB fetches (page cache warm), CRC-checked, as a
    // leader's replication reads are; wall clock and this thread's CPU time (user + system, which
    // the neighbours' load does not inflate the way it does wall time).
    let rounds = env_u64("RILL_BENCH_READ_ROUNDS", 4).max(1);
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    let (mut read, mut fetches) = (0u64, 0u64);
    for _ in 0..rounds {
        let mut next = Offset::ZERO;
        while next < log.log_end_offset() {
            let result = log.read(next, 1 << 20).unwrap();
            read += result.bytes.len() as u64;
            fetches += 1;
            next = result.next_offset;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds() - cpu_start;
    println!(
        "read     sequential 1 MiB fetches {:>8.1} MiB/s ({} MiB in {rounds} passes) | CPU {:.3} s per GB, {:.1} us per fetch",
        mib_per_s(read, elapsed),
        read >> 20,
        cpu / (read as f64 / 1e9),
        cpu * 1e6 / fetches as f64,
    );
    log.close().unwrap();
    std::fs::remove_dir_all(tmp.path().join("append-0")).unwrap();

    // Recovery after an unclean shutdown: small tail vs large tail, same log size.
    let tail_small = (4u64 << 20) / batch.len() as u64;
    recovery(
        tmp.path(),
        "small-tail-60MiB-segments",
        &batch,
        batches,
        60 << 20,
        tail_small,
    );
    recovery(
        tmp.path(),
        "large-tail-one-segment",
        &batch,
        batches,
        i32::MAX as u64,
        batches,
    );
    recovery(
        tmp.path(),
        "small-tail-one-segment",
        &batch,
        batches,
        i32::MAX as u64,
        tail_small,
    );
}
