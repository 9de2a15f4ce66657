//! The broker's IO worker: one task per broker carries out every partition's flushes in rounds
//! (group commit across partitions).
//!
//! A partition whose core asks for a flush queues itself here once (until its round starts).
//! A round takes every partition waiting when it starts, and for each:
//! 1. plans the flush under the partition's lock (which files, up to which offset; no IO);
//! 2. syncs all planned files of the round concurrently (one blocking call per partition, at
//!    most [`SYNCS_IN_PARALLEL_MAX`] at once, so a journaling filesystem commits them together),
//!    *without* any partition lock, so appends and fetches go on meanwhile and join the next round;
//! 3. finishes each flush under its lock and steps the core with `FlushCompleted` (acks go out);
//! 4. hands the partitions whose state checkpoint came due to the worker's *checkpointer*, and
//!    the next round may start at once.
//!
//! The checkpointer writes checkpoints off the acknowledgement path and off the rounds' path (a
//! checkpoint is a file sync, a rename and a directory sync: waiting for them made a third of
//! the rounds take about three times as long at 96 busy partitions). It takes every partition
//! queued when it starts a batch, each at most once, and writes the batch's checkpoints
//! concurrently, each planned under its partition's lock, written and synced without it, and
//! renamed into place under it; batches run one after another, so a partition never has two
//! checkpoints in flight.
//!
//! **With a journal** (`log.journal`, the default) step 2 is one append and one sync of the
//! broker's journal instead: each partition's plan carries the bytes appended since its last
//! flush, read under its lock, as records whose sequences were reserved under the same lock
//! (`log_core::journal::JournalClock`); the round writes them all and syncs once. The segment
//! files are synced by the checkpointer, before a state checkpoint's recovery point counts on
//! them. A journal file goes once no partition's replay needs its records (each partition's
//! floor or checkpointed recovery point is past them); while the oldest file is held, the
//! partitions holding it get checkpoints whether or not one is due.
//!
//! In production the blocking call runs on tokio's blocking pool; under madsim `spawn_blocking`
//! is a plain task, so the simulator interleaves rounds with everything else, deterministically.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use log_core::journal::{Journal, JournalClock};
use log_core::Disk;
use tokio::sync::mpsc;
use wire::{Offset, TopicPartition};

use super::driver::{JournalHold, Partition};
use crate::runtime;

/// Most partitions one round flushes: bounds the round's latency and its memory.
pub const ROUND_PARTITIONS_MAX: usize = 4_096;
/// Most fsyncs of one round in flight at once (threads of the blocking pool they may occupy).
const SYNCS_IN_PARALLEL_MAX: usize = 32;

/// Journal files past which the partitions holding the oldest get checkpoints forced.
const JOURNAL_FILES_SOFT_MAX: usize = 3;

/// Journal files past which failed copies no longer pin the oldest: their records are released
/// and the data directory marked unclean first (a failed copy on a disk that stays broken must
/// not grow the journal without bound).
const JOURNAL_FILES_FAILED_PIN_MAX: usize = 8;

/// The handle partitions queue their flushes on; cheap to clone.
#[derive(Clone, Debug)]
pub struct IoWorker {
    /// Partitions waiting for a flush round, each at most once at a time.
    queue: mpsc::UnboundedSender<Weak<Partition>>,
    /// The journal's clock when rounds go to a journal.
    journal: Option<JournalClock>,
}

/// The partitions with records in one journal file: each with its last record's sequence and
/// end offset there.
type Holders = BTreeMap<TopicPartition, (Weak<Partition>, u64, Offset)>;

/// A broker's journal as the IO worker keeps it.
pub struct JournalWriter {
    /// The journal, opened and replayed (`log_core::wal::replay`) before any log opened.
    pub(crate) journal: Journal,
    /// Its clock, shared with the logs.
    clock: JournalClock,
    /// The disk it lives on.
    disk: Arc<dyn Disk>,
    /// Per journal file (by first sequence): the partitions with records in it, each with its
    /// last record's sequence and end offset there.
    holders: BTreeMap<u64, Holders>,
}

impl JournalWriter {
    /// A writer for `journal` (replayed) with its `clock`. Files left from before the replay
    /// hold nothing any log needs (every log opened since synced what it found).
    pub fn new(journal: Journal, clock: JournalClock, disk: Arc<dyn Disk>) -> JournalWriter {
        JournalWriter {
            journal,
            clock,
            disk,
            holders: BTreeMap::new(),
        }
    }

    /// The journal's clock, for the logs opened before the worker starts.
    pub fn clock(&self) -> JournalClock {
        self.clock.clone()
    }
}

/// Partitions whose state checkpoint came due, each at most once at a time.
type Checkpoints = mpsc::UnboundedSender<Weak<Partition>>;

impl IoWorker {
    /// Starts the worker and its checkpointer on the current runtime (the node's, under
    /// madsim). Both end when every handle is dropped.
    /// Without `journal`, every round syncs its partitions' segment files.
    pub fn start(journal: Option<JournalWriter>) -> IoWorker {
        let (queue, waiting) = mpsc::unbounded_channel();
        let (checkpoints, due) = mpsc::unbounded_channel();
        let clock = journal.as_ref().map(|writer| writer.clock.clone());
        tokio::spawn(run(waiting, checkpoints, journal));
        tokio::spawn(checkpointer(due));
        IoWorker {
            queue,
            journal: clock,
        }
    }

    /// The journal's clock, for the logs this worker flushes (`None` without a journal).
    pub fn journal_clock(&self) -> Option<JournalClock> {
        self.journal.clone()
    }

    /// Queues `partition` for the next round. The partition calls this at most once until the
    /// round picks it up, so the queue holds at most one entry per partition.
    pub(crate) fn request_flush(&self, partition: Weak<Partition>) {
        // The worker ends only when every handle (this one included) is gone: cannot fail.
        let _queued = self.queue.send(partition);
    }
}

/// The worker loop: one round per wake-up, every waiting partition in it.
async fn run(
    mut waiting: mpsc::UnboundedReceiver<Weak<Partition>>,
    checkpoints: Checkpoints,
    mut journal: Option<JournalWriter>,
) {
    while let Some(first) = waiting.recv().await {
        // An fsync takes time on a real disk (zero in production here: the real one does).
        let mut delay = runtime::simulated_sync_ms();
        if runtime::buggify("partition.flush.slow") {
            // A slow disk: the round waits, appends pile up behind it and join it.
            delay += runtime::jitter_ms(1, 500);
        }
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let round = with_the_rest_waiting(first, &mut waiting);
        journal = match journal {
            Some(writer) => Some(journal_round(round, writer, &checkpoints).await),
            None => {
                flush_round(round, &checkpoints).await;
                None
            }
        };
    }
}

/// `first` and the partitions queued behind it now, at most [`ROUND_PARTITIONS_MAX`] in all.
fn with_the_rest_waiting(
    first: Weak<Partition>,
    queue: &mut mpsc::UnboundedReceiver<Weak<Partition>>,
) -> Vec<Weak<Partition>> {
    let mut batch = vec![first];
    while batch.len() < ROUND_PARTITIONS_MAX {
        match queue.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// The checkpointer loop: one batch per wake-up, every partition queued by then in it.
async fn checkpointer(mut due: mpsc::UnboundedReceiver<Weak<Partition>>) {
    while let Some(first) = due.recv().await {
        let batch = with_the_rest_waiting(first, &mut due);
        if runtime::buggify("io.checkpoint.slow") {
            // BUGGIFY: checkpoints come late (the acknowledgements went out already, and later
            // rounds go on).
            tokio::time::sleep(Duration::from_millis(runtime::jitter_ms(1, 1_000))).await;
        }
        // Concurrently, for the same reason as a round's flushes, each without its partition's
        // lock but for the rename.
        futures_util::stream::iter(batch.iter().filter_map(Weak::upgrade).map(checkpoint))
            .buffered(SYNCS_IN_PARALLEL_MAX)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Plans, syncs (off every lock, in one blocking call) and finishes one round; queues the
/// checkpoints that came due.
async fn flush_round(round: Vec<Weak<Partition>>, checkpoints: &Checkpoints) {
    assert!(!round.is_empty() && round.len() <= ROUND_PARTITIONS_MAX);
    let jobs: Vec<(Arc<Partition>, super::driver::FlushJob)> = round
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|partition| {
            let job = partition.plan_flush(None)?;
            Some((partition, job))
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    let planned = jobs.len();
    // The round's files are synced concurrently, each in its own blocking call: a filesystem
    // with a journal (ext4, xfs) commits concurrent fdatasyncs together, so a round costs about
    // one journal commit instead of one per partition. The jobs travel into the blocking calls
    // and back with their results (nothing is copied), and come back in the round's order, so
    // the cores are stepped in the same order as before (deterministic under madsim).
    let synced: Vec<_> = futures_util::stream::iter(jobs.into_iter().map(|(partition, job)| {
        run_blocking(move || {
            let result = job.sync();
            (partition, job, result)
        })
    }))
    .buffered(SYNCS_IN_PARALLEL_MAX)
    .collect()
    .await;
    assert_eq!(synced.len(), planned, "one result per planned flush");
    let mut synced = synced;
    if runtime::buggify("io.round.reorder") {
        // BUGGIFY: the round's fsyncs complete in another order (each partition's flush is
        // its own; nothing may depend on the order of others').
        synced.reverse();
    }
    let mut due = Vec::new();
    for (partition, job, result) in synced {
        partition.finish_flush(job, result);
        if partition.queue_checkpoint() {
            due.push(partition);
        }
    }
    queue_checkpoints(due, checkpoints);
}

/// A round with a journal: plans (reserving each record's sequence under its partition's
/// lock), one append and sync of every record, then each partition's flush finished; journal
/// files no partition needs any more are released first.
async fn journal_round(
    round: Vec<Weak<Partition>>,
    mut writer: JournalWriter,
    checkpoints: &Checkpoints,
) -> JournalWriter {
    assert!(!round.is_empty() && round.len() <= ROUND_PARTITIONS_MAX);
    let releasable = writer.releasable(checkpoints);
    // Sequences below this were reserved before the round: if the journal must be opened
    // again, fillers take the ones failed rounds never wrote.
    let reserved_before = writer.clock.current();
    let jobs: Vec<(Arc<Partition>, super::driver::FlushJob)> = round
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|partition| {
            let job = partition.plan_flush(Some(&writer.clock))?;
            Some((partition, job))
        })
        .collect();
    if jobs.is_empty() {
        return writer;
    }
    let first = jobs
        .iter()
        .find_map(|(_, job)| job.records.first().map(|r| r.0));
    let (mut writer, mut jobs, written) = run_blocking(move || {
        if writer.journal.is_poisoned() {
            writer.reopen(reserved_before);
        }
        if let Some(release) = releasable {
            if let Err(error) = writer.release(release) {
                // Not a durability problem (a file left behind is replayed and skipped again;
                // failed copies are told only once the directory is marked unclean); the next
                // round tries again.
                tracing::warn!(%error, "a journal file could not be removed");
            }
        }
        // Each record's header and bytes go into the round's one write as they are: the bytes
        // are copied once, there.
        let writes = || jobs.iter().flat_map(|(_, job)| job.records.iter());
        let headers: Vec<Vec<u8>> = writes().map(|(_, write)| write.header()).collect();
        let parts: Vec<[&[u8]; 2]> = writes()
            .zip(&headers)
            .map(|((_, write), header)| [header.as_slice(), write.bytes.as_slice()])
            .collect();
        let written = writer.journal.write_round_of_parts(&*writer.disk, &parts);
        (writer, jobs, written)
    })
    .await;
    let written = match written {
        Ok(sequences) => {
            assert_eq!(
                first.map(|first| first..first + sequences.clone().count() as u64),
                (!sequences.is_empty()).then_some(sequences),
                "the round's records have the sequences their plans reserved"
            );
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, "the journal failed: every partition flushing through it fails");
            Err(error)
        }
    };
    if written.is_ok() {
        writer.hold(&jobs);
        // The round is durable; the segment files are not synced yet.
        buggify::crash_point("crash.journal_synced");
    }
    if runtime::buggify("io.round.reorder") {
        // BUGGIFY: the round's partitions finish in another order.
        jobs.reverse();
    }
    let mut due = Vec::new();
    for (partition, job) in jobs {
        partition.finish_journaled_flush(job, written.clone());
        if partition.queue_checkpoint() {
            due.push(partition);
        }
    }
    queue_checkpoints(due, checkpoints);
    writer
}

impl JournalWriter {
    /// Opens the journal again after a failed round poisoned it (the disk may have healed): its
    /// newest file is cut back to its last successful sync (`Journal::cut_to_synced`), and
    /// filler records take the sequences reserved below `reserved`
    /// that failed rounds never wrote, so the next record gets the sequence its plan reserves.
    /// If the disk still refuses, the journal stays poisoned and the round fails again.
    fn reopen(&mut self, reserved: u64) {
        let (dir, file_bytes_max) = (
            self.journal.dir().to_path_buf(),
            self.journal.file_bytes_max(),
        );
        let reopened = self
            .journal
            .cut_to_synced(&*self.disk)
            .and_then(|()| Journal::open(&*self.disk, &dir, file_bytes_max))
            .and_then(|(mut journal, _, _)| {
                let missing = reserved
                    .checked_sub(journal.next_sequence())
                    .expect("the clock reserved every sequence the journal holds");
                let fillers = vec![&[][..]; usize::try_from(missing).expect("bounded by rounds")];
                journal.write_round(&*self.disk, &fillers)?;
                Ok((journal, missing))
            });
        match reopened {
            Ok((journal, fillers)) => {
                buggify::probe!("io.journal.reopened");
                tracing::warn!(fillers, "the journal is open again after a disk error");
                self.journal = journal;
            }
            Err(error) => tracing::warn!(%error, "the journal cannot be opened again yet"),
        }
    }

    /// Records which partitions the round just written holds records of (in the newest file).
    fn hold(&mut self, jobs: &[(Arc<Partition>, super::driver::FlushJob)]) {
        let (file, _) = self.journal.files().last().expect("a round was written");
        let holders = self.holders.entry(file).or_default();
        for (partition, job) in jobs {
            for (sequence, write) in &job.records {
                holders.insert(
                    partition.topic_partition().clone(),
                    (Arc::downgrade(partition), *sequence, write.end_offset),
                );
            }
        }
    }

    /// What journal files may go now: those below the second file's first sequence, when no
    /// partition needs the oldest file's records, or only failed copies do and the journal
    /// holds more than [`JOURNAL_FILES_FAILED_PIN_MAX`] files (they are told, below). While the
    /// journal holds more than [`JOURNAL_FILES_SOFT_MAX`] files, the serving partitions holding
    /// the oldest get a checkpoint.
    fn releasable(&mut self, checkpoints: &Checkpoints) -> Option<Release> {
        let files: Vec<u64> = self.journal.files().map(|(first, _)| first).collect();
        let (&oldest, &next) = (files.first()?, files.get(1)?);
        let holders = self.holders.entry(oldest).or_default();
        let (mut live, mut failed) = (Vec::new(), Vec::new());
        holders.retain(|_, (partition, sequence, end)| {
            let Some(partition) = partition.upgrade() else {
                return false;
            };
            match partition.journal_hold(*sequence, *end) {
                JournalHold::None => return false,
                JournalHold::Live => live.push(partition),
                JournalHold::Failed => failed.push(partition),
            }
            true
        });
        if holders.is_empty() {
            self.holders.remove(&oldest);
            return Some(Release {
                below: next,
                failed: Vec::new(),
            });
        }
        if !failed.is_empty() {
            buggify::probe!("io.journal.failed_copy_pins");
        }
        if live.is_empty() && files.len() > JOURNAL_FILES_FAILED_PIN_MAX {
            // The holders stay until the failed copies are told (`release`), so a release the
            // disk refuses is tried again with them.
            buggify::probe!("io.journal.failed_copy_released");
            return Some(Release {
                below: next,
                failed,
            });
        }
        if files.len() > JOURNAL_FILES_SOFT_MAX {
            buggify::probe!("io.journal.checkpoints_forced");
            let held: Vec<Arc<Partition>> = live
                .into_iter()
                .filter(|partition| partition.queue_checkpoint_forced())
                .collect();
            queue_checkpoints(held, checkpoints);
        }
        None
    }

    /// Removes the journal files below `release.below`. Records failed copies still need go
    /// only once the data directory is durably unclean (the next start registers so, out of
    /// every ELR) and each copy knows (its repair reports it not intact): the journal was the
    /// only durable home of records those copies acknowledged (seed 275316).
    fn release(&mut self, release: Release) -> Result<usize, log_core::LogError> {
        if !release.failed.is_empty() {
            super::quarantine::mark_unclean(&*self.disk)?;
            for partition in &release.failed {
                partition.journal_records_released();
            }
        }
        let released = self.journal.release_below(&*self.disk, release.below);
        // The files gone from the journal's list (even one whose removal failed) hold nobody.
        let oldest = self.journal.files().next().map(|(first, _)| first);
        self.holders
            .retain(|first, _| oldest.is_some_and(|oldest| *first >= oldest));
        released
    }
}

/// Journal files to remove ([`JournalWriter::releasable`]).
struct Release {
    /// Files whose records all lie below this sequence go.
    below: u64,
    /// Failed copies that still need some of those records.
    failed: Vec<Arc<Partition>>,
}

/// Hands partitions whose checkpoint came due to the checkpointer.
fn queue_checkpoints(due: Vec<Arc<Partition>>, checkpoints: &Checkpoints) {
    if due.is_empty() {
        return;
    }
    // The round's acknowledgements went out; its checkpoints are not written yet. Recovery
    // must not need them.
    buggify::crash_point("crash.checkpoint_pending");
    for partition in &due {
        // The checkpointer ends only after this worker (which holds the sender): cannot fail.
        let _queued = checkpoints.send(Arc::downgrade(partition));
    }
}

/// One partition's state checkpoint, no lock held across its IO: planned under the lock, its
/// file written and synced in a blocking call, renamed into place under the lock (unless the
/// state was written or truncated meanwhile: then the plan is dropped and the next round makes
/// another), the directory synced in a blocking call.
async fn checkpoint(partition: Arc<Partition>) {
    let Some((plan, disk)) = partition.plan_checkpoint() else {
        return;
    };
    let (plan, disk, written) = run_blocking(move || {
        let written = plan.write(&*disk);
        (plan, disk, written)
    })
    .await;
    if runtime::buggify("io.checkpoint.install.slow") {
        // BUGGIFY: the rename comes late, so rolls, truncations and retention's state writes
        // fall between the plan and its install.
        tokio::time::sleep(Duration::from_millis(runtime::jitter_ms(1, 500))).await;
    }
    buggify::crash_point("crash.checkpoint_written");
    if !partition.install_checkpoint(&plan, written) {
        return;
    }
    let synced = run_blocking(move || plan.sync_dir(&*disk)).await;
    if let Err(error) = synced {
        partition.checkpoint_sync_failed(&error);
    }
}

/// Runs blocking IO off the async workers (tokio's blocking pool; a plain task under madsim).
/// madsim marks `spawn_blocking` deprecated ("blocking is not allowed in simulation"): under the
/// simulator the disk is a `MemDisk` that never blocks, and running it as a task is what lets the
/// simulator interleave IO rounds with everything else.
#[cfg_attr(madsim, allow(deprecated))]
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("IO worker calls do not panic (fail stop if they do)")
}
