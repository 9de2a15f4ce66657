//! The partition driver (`broker::partition::Partition`) on real tokio without a network: three
//! replicas on MemDisks, a transport that hands follower requests straight to the leader's
//! partition, and a hand-played controller. Checks the runbook is carried out: acks=all waits for
//! the followers' flushes, logs end identical, idempotent retries are answered from the log, a
//! failed disk stops the partition, and the leader's epoch reaches the log.
#![cfg(not(madsim))]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use broker::partition::{Partition, PartitionError, PartitionSettings, ReplicaNet};
use log_core::{BatchBuilder, Codec, Disk, DiskResult, FaultConfig, LogConfig, MemDisk};
use replication::{
    Acks, AlterPartition, BugSwitches, Config, FetchRequest, FetchResponse, Message, PartitionState,
};
use wire::{BrokerId, LeaderEpoch, Offset, PartitionEpoch, TopicPartition};

const BROKERS: [BrokerId; 3] = [BrokerId(1), BrokerId(2), BrokerId(3)];

/// Routes follower requests to the leader's partition and answers back, like the node's
/// transport but in-process. AlterPartition requests are recorded, not answered.
#[derive(Default)]
struct LocalNet {
    partitions: Mutex<BTreeMap<BrokerId, Weak<Partition>>>,
    alters: Mutex<Vec<AlterPartition>>,
    /// Brokers whose partition reported itself failed, in order.
    failed: Mutex<Vec<BrokerId>>,
}

struct Endpoint {
    net: Arc<LocalNet>,
    from: BrokerId,
}

impl ReplicaNet for Endpoint {
    fn send(&self, _tp: &TopicPartition, to: BrokerId, message: Message) {
        let (net, from) = (self.net.clone(), self.from);
        tokio::spawn(async move {
            let leader = net
                .partitions
                .lock()
                .unwrap()
                .get(&to)
                .and_then(Weak::upgrade);
            let follower = net
                .partitions
                .lock()
                .unwrap()
                .get(&from)
                .and_then(Weak::upgrade);
            let (Some(leader), Some(follower)) = (leader, follower) else {
                return;
            };
            let answer = match message {
                Message::Fetch(request) => match long_poll(&net, from, &leader, request).await {
                    Some(response) => Message::FetchResponse(response),
                    None => return,
                },
                Message::OffsetsForLeaderEpoch(request) => {
                    match leader.offsets_for_leader_epoch(request) {
                        Ok(response) => Message::OffsetsForLeaderEpochResponse(response),
                        Err(_) => return,
                    }
                }
                _ => return,
            };
            follower.deliver(to, answer);
        });
    }

    fn alter_partition(&self, _tp: &TopicPartition, request: AlterPartition) {
        self.net.alters.lock().unwrap().push(request);
    }

    fn partition_failed(&self, _tp: &TopicPartition) {
        self.net.failed.lock().unwrap().push(self.from);
    }
}

/// A follower fetch held briefly while there is nothing to send, as the node's handler holds it
/// (followers fetch again at once after an empty answer). A follower cut off meanwhile is not
/// heard (its fetch would tell the leader it caught up).
async fn long_poll(
    net: &LocalNet,
    from: BrokerId,
    leader: &Partition,
    request: FetchRequest,
) -> Option<FetchResponse> {
    let bytes_max = broker::partition::REPLICA_FETCH_BYTES_MAX;
    let moved = leader.progress().notified();
    tokio::pin!(moved);
    moved.as_mut().enable();
    let (first, _) = leader.replica_fetch(request.clone(), bytes_max).ok()?;
    if !matches!(&first.result, Ok(data) if data.batches.is_empty()) {
        return Some(first);
    }
    let _moved_or_late = tokio::time::timeout(Duration::from_millis(50), moved).await;
    if !net.partitions.lock().unwrap().contains_key(&from) {
        return None;
    }
    leader
        .replica_fetch(request, bytes_max)
        .ok()
        .map(|(response, _)| response)
}

/// A broker's IO worker on `disk` as a broker starts it: its journal replayed first.
fn io_worker(disk: &Arc<dyn Disk>) -> broker::partition::IoWorker {
    io_worker_of(disk, 1 << 20)
}

/// [`io_worker`] with journal files of `file_bytes`.
fn io_worker_of(disk: &Arc<dyn Disk>, file_bytes: u64) -> broker::partition::IoWorker {
    let (journal, clock, _) =
        log_core::wal::replay(&**disk, Path::new("journal"), file_bytes).unwrap();
    broker::partition::IoWorker::start(Some(broker::partition::JournalWriter::new(
        journal,
        clock,
        disk.clone(),
    )))
}

fn settings_with(broker: BrokerId, log: LogConfig, disk: &Arc<dyn Disk>) -> PartitionSettings {
    settings_on(broker, log, io_worker(disk))
}

/// The settings of a partition flushed by `io` (shared by the broker's partitions).
fn settings_on(
    broker: BrokerId,
    log: LogConfig,
    io: broker::partition::IoWorker,
) -> PartitionSettings {
    let mut replica = Config::new(broker);
    replica.fetch_backoff_ms = 5;
    // The in-process transport drops refused requests instead of answering them.
    replica.fetch_retransmit_ms = 50;
    replica.request_timeout_ms = 5_000;
    PartitionSettings {
        replica,
        bugs: BugSwitches::default(),
        log,
        io,
    }
}

fn state(leader: BrokerId, epoch: i32) -> PartitionState {
    PartitionState {
        leader: Some(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: PartitionEpoch(epoch),
        isr: BROKERS.iter().copied().collect::<BTreeSet<_>>(),
        elr: BTreeSet::new(),
        replicas: BROKERS.to_vec(),
    }
}

struct Trio {
    net: Arc<LocalNet>,
    disks: Vec<MemDisk>,
    partitions: Vec<Arc<Partition>>,
}

impl Trio {
    /// Replica `index`'s requests reach the others again, and theirs reach it.
    fn connect(&self, index: usize) {
        let partition = Arc::downgrade(&self.partitions[index]);
        self.net
            .partitions
            .lock()
            .unwrap()
            .insert(BROKERS[index], partition);
    }

    /// Replica `index` is cut off: its requests go nowhere (its timers keep retransmitting).
    fn disconnect(&self, index: usize) {
        self.net.partitions.lock().unwrap().remove(&BROKERS[index]);
    }
}

fn open_trio() -> Trio {
    open_trio_with(LogConfig::default())
}

fn open_trio_with(log: LogConfig) -> Trio {
    open_trio_wrapped(log, |_, disk| disk)
}

/// [`open_trio_with`], each replica's disk seen through `wrap(replica index, disk)`.
fn open_trio_wrapped(log: LogConfig, wrap: impl Fn(usize, Arc<dyn Disk>) -> Arc<dyn Disk>) -> Trio {
    let net = Arc::new(LocalNet::default());
    let tp = TopicPartition::new("t", 0);
    let mut disks = Vec::new();
    let mut partitions = Vec::new();
    for (i, broker) in BROKERS.iter().enumerate() {
        let disk = MemDisk::new(i as u64 + 1);
        let endpoint: Arc<dyn ReplicaNet> = Arc::new(Endpoint {
            net: net.clone(),
            from: *broker,
        });
        let disk_seen = wrap(i, disk.as_disk());
        let partition = Partition::open(
            tp.clone(),
            disk_seen.clone(),
            Path::new("t-0"),
            settings_with(*broker, log.clone(), &disk_seen),
            endpoint,
        )
        .unwrap();
        net.partitions
            .lock()
            .unwrap()
            .insert(*broker, Arc::downgrade(&partition));
        disks.push(disk);
        partitions.push(partition);
    }
    for partition in &partitions {
        partition.apply_state(state(BROKERS[0], 1));
    }
    Trio {
        net,
        disks,
        partitions,
    }
}

fn batch(values: &[&str]) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder.push(None, Some(value.as_bytes()), 1_000, &[]);
    }
    builder.build()
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_every_isr_flush_and_logs_end_identical() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let mut offsets = Vec::new();
    for i in 0..20 {
        let value = format!("v{i}");
        offsets.push(
            leader
                .produce(batch(&[&value, "x"]), Acks::All)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        offsets,
        (0..20).map(|i| Offset(i * 2)).collect::<Vec<_>>(),
        "offsets in order, two per batch"
    );
    let status = leader.status();
    assert_eq!(status.high_watermark, Offset(40));
    wait_until("followers catch up", || {
        trio.partitions
            .iter()
            .all(|p| p.status().log_end_offset == Offset(40))
    })
    .await;
    for partition in &trio.partitions {
        partition.check_invariants();
        let read = partition.read_committed_or_appended(Offset::ZERO, 1 << 20);
        assert_eq!(
            read.unwrap(),
            leader
                .read_committed_or_appended(Offset::ZERO, 1 << 20)
                .unwrap(),
            "identical logs"
        );
    }
    assert!(
        trio.net.alters.lock().unwrap().is_empty(),
        "no ISR change in a healthy run"
    );
    // A crash of every disk now loses nothing acknowledged: the HW counts flushed data only.
    for disk in &trio.disks {
        disk.crash();
    }
}

/// The IO worker's state checkpoints (planned under the partition's lock, written off it,
/// renamed under it) land: after a power loss the leader's log reopens with a checkpointed high
/// watermark, which only an installed checkpoint carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_io_workers_checkpoints_are_installed() {
    let trio = open_trio_with(LogConfig {
        checkpoint_interval_bytes: 1,
        ..LogConfig::default()
    });
    let leader = trio.partitions[0].clone();
    for i in 0..20 {
        let value = format!("v{i}");
        leader.produce(batch(&[&value]), Acks::All).await.unwrap();
    }
    let disk = &trio.disks[0];
    // The file's last 20 bytes: the HW (i64, big-endian), the journal floor, then the CRC.
    let checkpointed_hw = || {
        let bytes = disk
            .durable_bytes(Path::new("t-0/log-state.checkpoint"))
            .unwrap_or_default();
        let hw = bytes.len().checked_sub(20).map(|at| &bytes[at..at + 8]);
        hw.map_or(0, |hw| i64::from_be_bytes(hw.try_into().unwrap()))
    };
    wait_until("a checkpoint with the HW", || checkpointed_hw() > 0).await;
    // Settled: the directory sync after the rename comes last.
    tokio::time::sleep(Duration::from_millis(100)).await;
    disk.crash();
    let log =
        log_core::PartitionLog::open(disk.as_disk(), Path::new("t-0"), LogConfig::default(), 0)
            .unwrap();
    assert!(
        log.high_watermark() > Offset::ZERO,
        "the checkpoint survived the power loss"
    );
}

/// A disk whose file syncs of state checkpoint temporaries (`log-state.checkpoint.N.tmp`) wait,
/// boundedly, until the gate opens: a slow disk under the state checkpoint.
#[derive(Debug)]
struct GatedDisk {
    inner: Arc<dyn Disk>,
    /// Whether the gate is open, and its signal.
    gate: Arc<(Mutex<bool>, Condvar)>,
    /// How many syncs waited at the gate.
    held: Arc<Mutex<u64>>,
}

impl GatedDisk {
    fn wait_at_gate(&self, path: &Path) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let state_tmp =
            name.is_some_and(|n| n.starts_with(log_core::log::STATE_FILE) && n.ends_with(".tmp"));
        if !state_tmp {
            return;
        }
        *self.held.lock().unwrap() += 1;
        let (open, signal) = &*self.gate;
        let mut open = open.lock().unwrap();
        // Bounded: a test that never opens the gate fails on its own waits, not by hanging here.
        for _ in 0..100 {
            if *open {
                return;
            }
            open = signal
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

impl Disk for GatedDisk {
    fn create(&self, path: &Path) -> DiskResult<()> {
        self.inner.create(path)
    }
    fn create_dir_all(&self, path: &Path) -> DiskResult<()> {
        self.inner.create_dir_all(path)
    }
    fn exists(&self, path: &Path) -> DiskResult<bool> {
        self.inner.exists(path)
    }
    fn len(&self, path: &Path) -> DiskResult<u64> {
        self.inner.len(path)
    }
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> DiskResult<usize> {
        self.inner.read_at(path, offset, buf)
    }
    fn write_at(&self, path: &Path, offset: u64, data: &[u8]) -> DiskResult<()> {
        self.inner.write_at(path, offset, data)
    }
    fn append(&self, path: &Path, data: &[u8]) -> DiskResult<u64> {
        self.inner.append(path, data)
    }
    fn sync(&self, path: &Path) -> DiskResult<()> {
        self.wait_at_gate(path);
        self.inner.sync(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> DiskResult<()> {
        self.inner.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> DiskResult<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> DiskResult<()> {
        self.inner.remove(path)
    }
    fn remove_dir(&self, path: &Path, recursive: bool) -> DiskResult<()> {
        self.inner.remove_dir(path, recursive)
    }
    fn list(&self, dir: &Path) -> DiskResult<Vec<String>> {
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> DiskResult<()> {
        self.inner.sync_dir(dir)
    }
}

/// A state checkpoint stuck in its file sync (a slow disk) holds no acknowledgement back: the
/// IO worker hands checkpoints to its checkpointer and its rounds go on. (Before, a round
/// awaited its checkpoints, so every later flush of the broker waited behind the slow one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_checkpoint_holds_no_acknowledgement_back() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let held = Arc::new(Mutex::new(0));
    let trio = open_trio_wrapped(
        LogConfig {
            checkpoint_interval_bytes: 1,
            ..LogConfig::default()
        },
        |i, inner| {
            if i > 0 {
                return inner;
            }
            Arc::new(GatedDisk {
                inner,
                gate: gate.clone(),
                held: held.clone(),
            })
        },
    );
    let leader = trio.partitions[0].clone();
    leader.produce(batch(&["first"]), Acks::All).await.unwrap();
    wait_until("the leader's first checkpoint to reach its sync", || {
        *held.lock().unwrap() > 0
    })
    .await;
    for i in 0..5 {
        let value = format!("v{i}");
        let acked = tokio::time::timeout(
            Duration::from_secs(5),
            leader.produce(batch(&[&value]), Acks::All),
        )
        .await;
        assert!(
            matches!(acked, Ok(Ok(_))),
            "produce {i} is acknowledged while the checkpoint is stuck: {acked:?}"
        );
    }
    assert_eq!(leader.status().high_watermark, Offset(6));
    let (open, signal) = &*gate;
    *open.lock().unwrap() = true;
    signal.notify_all();
    let disk = &trio.disks[0];
    wait_until("a checkpoint installed once the disk is back", || {
        disk.durable_bytes(Path::new("t-0/log-state.checkpoint"))
            .is_ok_and(|bytes| !bytes.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_gets_its_first_offset_without_a_second_append() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let mut builder = BatchBuilder::new().producer(77, 0, 0);
    builder.push(None, Some(b"a"), 1_000, &[]);
    builder.push(None, Some(b"b"), 1_000, &[]);
    let payload = builder.build();
    let first = leader.produce(payload.clone(), Acks::All).await.unwrap();
    let again = leader.produce(payload, Acks::All).await.unwrap();
    assert_eq!(
        first, again,
        "the retry is acknowledged with the original offset"
    );
    assert_eq!(
        leader.status().log_end_offset,
        Offset(2),
        "and not appended twice"
    );
    let mut gap = BatchBuilder::new().producer(77, 0, 5);
    gap.push(None, Some(b"c"), 1_000, &[]);
    match leader.produce(gap.build(), Acks::All).await {
        Err(PartitionError::Producer { code, .. }) => {
            assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
        }
        other => panic!("a sequence gap must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_stops_the_partition_instead_of_serving() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    leader.produce(batch(&["ok"]), Acks::All).await.unwrap();
    trio.disks[0].set_faults(FaultConfig {
        write_error_probability: 1.0,
        ..FaultConfig::default()
    });
    let refused = leader.produce(batch(&["lost?"]), Acks::All).await;
    assert!(
        matches!(refused, Err(PartitionError::Storage(_))),
        "got {refused:?}"
    );
    assert!(leader.status().failed.is_some());
    let after = leader.produce(batch(&["more"]), Acks::Leader).await;
    assert!(
        matches!(after, Err(PartitionError::Storage(_))),
        "a failed partition refuses everything"
    );
    assert_eq!(
        *trio.net.failed.lock().unwrap(),
        vec![BROKERS[0]],
        "the failure is reported once, so the controller can move the leadership"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_read_its_log_fails_over_instead_of_refusing_readers_for_ever() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    leader
        .produce(batch(&["rotting"]), Acks::All)
        .await
        .unwrap();
    // A bit of the record's value rots on the leader's disk (the batch's last byte).
    let segment = Path::new("t-0/00000000000000000000.log");
    let len = trio.disks[0].as_disk().len(segment).unwrap();
    trio.disks[0].flip_bit_at(segment, len - 1, 0).unwrap();
    let read = leader.consumer_read(None, Offset::ZERO, 1 << 20);
    assert!(
        matches!(read, Err(PartitionError::Storage(_))),
        "got {read:?}"
    );
    assert!(
        leader.status().failed.is_some(),
        "the replica stops serving"
    );
    assert_eq!(
        *trio.net.failed.lock().unwrap(),
        vec![BROKERS[0]],
        "and is reported, so the controller moves the leadership to a replica that can read"
    );
    for follower in &trio.partitions[1..] {
        let copy = follower
            .read_committed_or_appended(Offset::ZERO, 1 << 20)
            .unwrap();
        assert!(!copy.is_empty(), "the followers' copies are intact");
    }
}

/// A bit rots in the acknowledged tail of the leader's active segment, which only the journal
/// holds durably (the segment is synced at the next checkpoint): the replica fails, and at its
/// restart the journal's replay writes the acknowledged bytes back, so it opens whole and serves
/// the record without a rebuild (the cut of a rotten tail and a rebuild from the leader without a
/// journal: `partition::quarantine`'s tests and the simulator's `no journal` seeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotten_acknowledged_tail_is_written_back_from_the_journal_at_restart() {
    let trio = open_trio();
    let old = trio.partitions[0].clone();
    old.produce(batch(&["rotting"]), Acks::All).await.unwrap();
    let segment = Path::new("t-0/00000000000000000000.log");
    let len = trio.disks[0].as_disk().len(segment).unwrap();
    trio.disks[0].flip_bit_at(segment, len - 1, 0).unwrap();
    assert!(old.consumer_read(None, Offset::ZERO, 1 << 20).is_err());
    assert!(old.status().failed.is_some());
    // The controller moves the leadership; the broker restarts and opens the partition again.
    old.close();
    trio.net.partitions.lock().unwrap().remove(&BROKERS[0]);
    for partition in &trio.partitions[1..] {
        partition.apply_state(state(BROKERS[1], 2));
    }
    let endpoint: Arc<dyn ReplicaNet> = Arc::new(Endpoint {
        net: trio.net.clone(),
        from: BROKERS[0],
    });
    let reopened = Partition::open(
        TopicPartition::new("t", 0),
        trio.disks[0].as_disk(),
        Path::new("t-0"),
        settings_with(BROKERS[0], LogConfig::default(), &trio.disks[0].as_disk()),
        endpoint,
    )
    .unwrap();
    assert_eq!(
        reopened.status().log_end_offset,
        Offset(1),
        "the journal's copy of the acknowledged batch is back in the segment"
    );
    trio.net
        .partitions
        .lock()
        .unwrap()
        .insert(BROKERS[0], Arc::downgrade(&reopened));
    reopened.apply_state(state(BROKERS[1], 2));
    let copy = reopened
        .read_committed_or_appended(Offset::ZERO, 1 << 20)
        .unwrap();
    assert!(!copy.is_empty(), "the record is back, read without error");
    assert_eq!(reopened.status().failed, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_records_its_epoch_in_the_log_before_any_record() {
    let trio = open_trio();
    trio.partitions[0]
        .produce(batch(&["e1"]), Acks::All)
        .await
        .unwrap();
    for partition in &trio.partitions {
        partition.apply_state(state(BROKERS[1], 2));
    }
    let new_leader = &trio.partitions[1];
    wait_until("broker 2 leads", || new_leader.status().is_leader).await;
    let end = new_leader
        .end_offset_for_epoch(None, LeaderEpoch(2))
        .unwrap();
    assert_eq!(end.leader_epoch, LeaderEpoch(2));
    let offset = new_leader.produce(batch(&["e2"]), Acks::All).await.unwrap();
    assert_eq!(offset, Offset(1));
    new_leader.check_invariants();
}

/// Regression: an acks=0 produce used to wait forever for a reply the core never sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_returns_at_once_and_appends() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let answered = tokio::time::timeout(
        Duration::from_secs(2),
        leader.produce(batch(&["fire"]), Acks::None),
    )
    .await;
    assert_eq!(answered.expect("acks=0 does not wait").unwrap(), Offset(-1));
    assert_eq!(leader.status().log_end_offset, Offset(1));
}

/// Rewrites `width` bytes at `at` of a batch with `value` (big-endian) and recomputes the CRC, so
/// the batch stays CRC-valid and only the field's meaning changes.
fn set_field(batch: &mut [u8], at: usize, width: usize, value: i64) {
    if batch.len() < at + width {
        return;
    }
    batch[at..at + width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
    if batch.len() >= 61 {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Regression (real processes): librdkafka's C++ API and sarama before 1.45.1 send a CRC-valid
/// batch whose header max timestamp is -1. It used to pass the driver's check, fail log-core's
/// stricter one and take the partition offline on every replica. Kafka recomputes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_max_timestamp_minus_one_is_stored_and_replicated() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let mut payload = batch(&["a", "b"]);
    set_field(&mut payload, 35, 8, -1);
    assert_eq!(leader.produce(payload, Acks::All).await.unwrap(), Offset(0));
    wait_until("followers catch up", || {
        trio.partitions
            .iter()
            .all(|p| p.status().log_end_offset == Offset(2) && p.status().failed.is_none())
    })
    .await;
    let stored = leader
        .read_committed_or_appended(Offset::ZERO, 1 << 20)
        .unwrap();
    let header = *log_core::BatchView::new(&stored).unwrap().header();
    assert_eq!(header.max_timestamp, 1_000, "recomputed from the records");
    assert!(trio.net.failed.lock().unwrap().is_empty());
}

/// Regression (real processes): a second batch with a negative idempotent sequence panicked the
/// append on every replica; 0 records or last offset delta 2^31-1 failed the replica. Each now
/// gets INVALID_RECORD (87) for that request only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_batches_get_invalid_record_and_the_partition_serves_on() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let mut first = BatchBuilder::new().producer(9, 0, 0);
    first.push(None, Some(b"a"), 1_000, &[]);
    let mut second = BatchBuilder::new().producer(9, 0, -7);
    second.push(None, Some(b"b"), 1_000, &[]);
    let mut two = first.build();
    two.extend_from_slice(&second.build());
    let mut zero_records = batch(&["x"]);
    set_field(&mut zero_records, 57, 4, 0);
    let mut huge_delta = batch(&["x"]);
    set_field(&mut huge_delta, 23, 4, i64::from(i32::MAX));
    for payload in [two, zero_records, huge_delta] {
        let refused = leader.produce(payload, Acks::All).await;
        assert!(
            matches!(&refused, Err(e) if e.error_code() == 87),
            "got {refused:?}"
        );
    }
    assert_eq!(
        leader.produce(batch(&["fine"]), Acks::All).await.unwrap(),
        Offset(0)
    );
    for partition in &trio.partitions {
        assert!(partition.status().failed.is_none());
    }
}

/// One hostile change to a valid batch: a field rewritten with its CRC fixed, a raw bit flipped,
/// a cut, or the batch doubled.
#[derive(Clone, Debug)]
enum Mutation {
    /// `(offset, width)` of a header field from the table below, and its new value.
    Field(usize, i64),
    /// A bit flipped anywhere (the CRC usually catches it).
    Flip(usize),
    /// The payload cut to this many bytes.
    Cut(usize),
    /// The batch twice in one payload.
    Double,
    /// A byte of the (possibly compressed) records XORed with a value, the CRC fixed: the
    /// decompressor and record parser see the damage, not the CRC check.
    Body(usize, u8),
}

/// Header fields a mutation may rewrite: (offset, width).
const FIELDS: [(usize, usize); 9] = [
    (8, 4),  // batch length
    (16, 1), // magic
    (21, 2), // attributes (compression, timestamp type, control)
    (23, 4), // last offset delta
    (35, 8), // max timestamp
    (43, 8), // producer id
    (51, 2), // producer epoch
    (53, 4), // base sequence
    (57, 4), // records count
];

fn mutate(mut payload: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    match *mutation {
        Mutation::Field(index, value) => {
            let (at, width) = FIELDS[index % FIELDS.len()];
            set_field(&mut payload, at, width, value);
        }
        Mutation::Flip(bit) => {
            // An earlier cut may have left nothing to flip.
            let len = payload.len();
            if len > 0 {
                payload[(bit / 8) % len] ^= 1 << (bit % 8);
            }
        }
        Mutation::Cut(len) => payload.truncate(len % (payload.len() + 1)),
        Mutation::Double => payload.extend_from_slice(&payload.clone()),
        Mutation::Body(at, value) => {
            if payload.len() > 61 {
                let at = 61 + at % (payload.len() - 61);
                payload[at] ^= value;
                let crc = crc32c::crc32c(&payload[21..]);
                payload[17..21].copy_from_slice(&crc.to_be_bytes());
            }
        }
    }
    payload
}

fn mutation_strategy() -> impl proptest::strategy::Strategy<Value = Mutation> {
    use proptest::prelude::*;
    let small = prop_oneof![
        Just(-1_i64),
        Just(0),
        Just(1),
        Just(i64::from(i32::MAX)),
        -3..3_i64
    ];
    prop_oneof![
        (0..FIELDS.len(), prop_oneof![small, any::<i64>()])
            .prop_map(|(f, v)| Mutation::Field(f, v)),
        any::<usize>().prop_map(Mutation::Flip),
        any::<usize>().prop_map(Mutation::Cut),
        Just(Mutation::Double),
        (any::<usize>(), 1..=255_u8).prop_map(|(at, value)| Mutation::Body(at, value)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]

    /// The validator fuzz test: arbitrary and mutated batches from a client, uncompressed or
    /// compressed with any codec, never fail a partition on any replica, and whatever the ingress validator accepts the log accepts (the
    /// produce succeeds, or an idempotent one is refused by its sequence check only).
    #[test]
    fn hostile_batches_never_fail_a_partition(
        cases in proptest::collection::vec(
            (1..4_usize, proptest::option::of((0..3_i64, 0..2_i16, 0..3_i32)),
             proptest::collection::vec(mutation_strategy(), 0..3),
             proptest::sample::select(Codec::ALL.to_vec())),
            1..6,
        ),
        garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let trio = open_trio();
            let leader = trio.partitions[0].clone();
            let mut payloads = vec![garbage];
            for (records, producer, mutations, codec) in cases {
                let mut builder = match producer {
                    Some((id, epoch, sequence)) => BatchBuilder::new().producer(id, epoch, sequence),
                    None => BatchBuilder::new(),
                }
                .codec(codec);
                for i in 0..records {
                    builder.push(Some(b"k"), Some(format!("v{i}").as_bytes()), 1_000 + i as i64, &[]);
                }
                let payload = mutations.iter().fold(builder.build(), mutate);
                payloads.push(payload);
            }
            for payload in payloads {
                let mut normalised = payload.clone();
                let rules = log_core::ProduceRules {
                    batch_bytes_max: LogConfig::default().batch_bytes_max,
                    compacted: false,
                    log_append_time_ms: None,
                    codec_target: None,
                };
                let accepted = log_core::validate_produced(&mut normalised, &rules);
                let outcome = tokio::time::timeout(
                    Duration::from_secs(10),
                    leader.produce(payload, Acks::All),
                )
                .await
                .expect("a produce is answered");
                match (&accepted, &outcome) {
                    (Ok(_), Ok(_)) | (Err(_), Err(PartitionError::Refused(_))) => {}
                    (Ok(p), Err(PartitionError::Producer { .. })) if p.idempotent().is_some() => {}
                    _ => panic!("validator said {accepted:?}, produce said {outcome:?}"),
                }
                for partition in &trio.partitions {
                    assert!(partition.status().failed.is_none(), "{:?}", partition.status());
                }
            }
            let leo = leader.status().log_end_offset;
            wait_until("followers catch up", || {
                trio.partitions.iter().all(|p| p.status().log_end_offset == leo)
            })
            .await;
            for partition in &trio.partitions {
                partition.check_invariants();
            }
            assert!(trio.net.failed.lock().unwrap().is_empty());
        });
    }
}

/// Retention at the driver: the new log start reaches the core, so ListOffsets earliest answers
/// it, a consumer below it is refused with OFFSET_OUT_OF_RANGE, and a follower cut off while the
/// start passed its LEO truncates fully, starts at the leader's start and catches up (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_moves_the_cores_log_start_and_a_follower_below_it_starts_over() {
    let log = LogConfig {
        segment_bytes_max: 1024,
        retention_bytes: Some(2048),
        ..LogConfig::default()
    };
    let trio = open_trio_with(log);
    let leader = trio.partitions[0].clone();
    let cut_off = trio.partitions[2].clone();
    let value = "v".repeat(200);
    leader.produce(batch(&[&value]), Acks::All).await.unwrap();
    wait_until("the third replica has the first record", || {
        cut_off.status().log_end_offset == Offset(1)
    })
    .await;
    // Its requests go nowhere from now on (its fetch timer keeps retransmitting), and the
    // controller has moved it out of the ISR.
    trio.net.partitions.lock().unwrap().remove(&BROKERS[2]);
    let mut shrunk = state(BROKERS[0], 1);
    shrunk.partition_epoch = PartitionEpoch(2);
    shrunk.isr.remove(&BROKERS[2]);
    for partition in &trio.partitions {
        partition.apply_state(shrunk.clone());
    }
    for _ in 0..40 {
        leader
            .produce(batch(&[&value]), Acks::Leader)
            .await
            .unwrap();
    }
    wait_until("the HW passes the records", || {
        leader.status().high_watermark == Offset(41)
    })
    .await;
    leader.housekeeping();
    let start = leader.status().log_start_offset;
    assert!(start > Offset(1), "retention moved the start: {start:?}");
    leader.check_invariants();
    assert_eq!(leader.list_offset(None, -2).unwrap().unwrap().offset, start);
    assert_eq!(
        leader
            .consumer_read(None, Offset::ZERO, 1 << 20)
            .unwrap_err(),
        PartitionError::Replica(replication::Error::OffsetOutOfRange {
            log_start_offset: start,
            log_end_offset: Offset(41),
        })
    );

    trio.net
        .partitions
        .lock()
        .unwrap()
        .insert(BROKERS[2], Arc::downgrade(&cut_off));
    wait_until(
        "the cut-off replica catches up from the leader's start",
        || cut_off.status().log_end_offset == Offset(41),
    )
    .await;
    let status = cut_off.status();
    assert_eq!(status.failed, None);
    assert_eq!(
        status.log_start_offset, start,
        "truncated fully, started there"
    );
    assert_eq!(leader.status().failed, None);
    assert!(
        trio.net.failed.lock().unwrap().is_empty(),
        "no replica failed"
    );
    for partition in &trio.partitions {
        partition.check_invariants();
    }
}

/// Seed 8845: a deposed leader holds a three-record batch its successor never got; the new
/// leader's log start (DeleteRecords here, retention there) then passes the middle of that
/// batch, so its divergence answer for the old epoch names an offset inside the batch (its
/// first epoch's start, as Kafka answers). The log can only drop the batch whole: the follower
/// used to fetch again above its own log end, claiming records it did not hold (a fail-stop
/// assertion in the driver aborted the broker). It now truncates to the batch's start and,
/// being below the leader's start, starts over there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergence_inside_a_batch_truncates_the_whole_batch_and_catches_up() {
    let trio = open_trio();
    let (old, new) = (trio.partitions[0].clone(), trio.partitions[1].clone());
    old.produce(batch(&["a"]), Acks::All).await.unwrap();
    wait_until("every replica has the first record", || {
        trio.partitions
            .iter()
            .all(|p| p.status().high_watermark == Offset(1))
    })
    .await;
    trio.disconnect(1);
    trio.disconnect(2);
    old.produce(batch(&["x", "y", "z"]), Acks::Leader)
        .await
        .unwrap();
    assert_eq!(
        old.status().log_end_offset,
        Offset(4),
        "only the old leader has it"
    );
    trio.disconnect(0);
    trio.connect(1);
    trio.connect(2);
    let mut moved = state(BROKERS[1], 2);
    moved.isr = BTreeSet::from([BROKERS[1], BROKERS[2]]);
    for partition in &trio.partitions {
        partition.apply_state(moved.clone());
    }
    for value in ["p", "q", "r", "s"] {
        new.produce(batch(&[value]), Acks::Leader).await.unwrap();
    }
    wait_until("the new leader's HW passes its records", || {
        new.status().high_watermark == Offset(5)
    })
    .await;
    assert_eq!(new.delete_records(3).unwrap(), Offset(3));
    trio.connect(0);
    wait_until(
        "the deposed leader catches up from the new leader's start",
        || old.status().log_end_offset == Offset(5),
    )
    .await;
    let status = old.status();
    assert_eq!(status.failed, None);
    assert_eq!(
        status.log_start_offset,
        Offset(3),
        "started over at the leader's start"
    );
    assert!(
        trio.net.failed.lock().unwrap().is_empty(),
        "no replica failed"
    );
    old.check_invariants();
    new.check_invariants();
}

fn batch_at(values: &[&str], timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder.push(None, Some(value.as_bytes()), timestamp, &[]);
    }
    builder.build()
}

/// ListOffsets as Kafka answers a consumer: a timestamp past every record (or the empty log)
/// lists nothing (offset and timestamp -1, librdkafka's 0054_offset_time), found records come
/// with their timestamp and epoch, and -3 finds the record with the largest timestamp (KIP-734).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_answers_nothing_past_the_last_record() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let listed = |timestamp| leader.list_offset(None, timestamp).unwrap();
    assert_eq!(
        listed(1_000),
        None,
        "an empty log has no record at any time"
    );
    assert_eq!(listed(-3), None, "nor a largest timestamp");
    assert_eq!(listed(-1).unwrap().offset, Offset(0));
    leader
        .produce(batch_at(&["a", "b"], 1_000), Acks::All)
        .await
        .unwrap();
    leader
        .produce(batch_at(&["c"], 3_000), Acks::All)
        .await
        .unwrap();
    leader
        .produce(batch_at(&["d"], 2_000), Acks::All)
        .await
        .unwrap();
    let found = |offset: i64, timestamp: i64| {
        Some(broker::partition::ListedOffset {
            offset: Offset(offset),
            timestamp,
            leader_epoch: LeaderEpoch(1),
        })
    };
    assert_eq!(listed(0), found(0, 1_000));
    assert_eq!(listed(1_500), found(2, 3_000));
    assert_eq!(listed(3_000), found(2, 3_000));
    assert_eq!(listed(3_001), None, "past the last record: -1, not the HW");
    assert_eq!(listed(-3), found(2, 3_000), "the largest timestamp");
    assert_eq!(listed(-2), found(0, -1));
    assert_eq!(listed(-1), found(4, -1));
    assert_eq!(listed(-7), None, "an unknown special timestamp");
}

/// An idempotent batch of one record from producer 77 at `sequence` (epoch `epoch`).
fn idempotent_batch(epoch: i16, sequence: i32, value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(77, epoch, sequence);
    builder.push(None, Some(value.as_bytes()), 1_000, &[]);
    builder.build()
}

/// Opens every broker's partition again on its disk and connects it; `before_open(broker,
/// disk)` runs after the journal's replay (in `settings_with`) and before the log opens.
fn reopen(
    net: &Arc<LocalNet>,
    disks: &[MemDisk],
    log: &LogConfig,
    before_open: impl Fn(BrokerId, &MemDisk),
) -> Vec<Arc<Partition>> {
    let mut reopened = Vec::new();
    for (disk, broker) in disks.iter().zip(BROKERS) {
        let endpoint: Arc<dyn ReplicaNet> = Arc::new(Endpoint {
            net: net.clone(),
            from: broker,
        });
        let settings = settings_with(broker, log.clone(), &disk.as_disk());
        before_open(broker, disk);
        let partition = Partition::open(
            TopicPartition::new("t", 0),
            disk.as_disk(),
            Path::new("t-0"),
            settings,
            endpoint,
        )
        .unwrap();
        net.partitions
            .lock()
            .unwrap()
            .insert(broker, Arc::downgrade(&partition));
        reopened.push(partition);
    }
    reopened
}

/// Every broker stops (closing its partition cleanly, or crashing: only durable bytes stay)
/// and starts again; broker `leader` then leads in `epoch`.
async fn restart_trio(
    trio: Trio,
    log: &LogConfig,
    crash: bool,
    leader: BrokerId,
    epoch: i32,
) -> Trio {
    let Trio {
        net,
        disks,
        partitions,
    } = trio;
    net.partitions.lock().unwrap().clear();
    for partition in partitions {
        if !crash {
            partition.close();
        }
    }
    if crash {
        for disk in &disks {
            disk.crash();
        }
    }
    let reopened = reopen(&net, &disks, log, |_, _| {});
    for partition in &reopened {
        partition.apply_state(state(leader, epoch));
    }
    let index = BROKERS.iter().position(|b| *b == leader).unwrap();
    let new_leader = reopened[index].clone();
    wait_until("the new leader leads", || new_leader.status().is_leader).await;
    Trio {
        net,
        disks,
        partitions: reopened,
    }
}

/// Seed 16977: a truncation removed the only producer snapshot at or above the log start
/// (retention had deleted the segments below it), and the table was rebuilt from an older
/// snapshot, replaying from the log start: the producer's sequences in the deleted segments
/// were missing, and its retry of the truncated batch was refused as out of order although
/// every earlier sequence had been acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_below_every_snapshot_above_the_log_start_keeps_the_producers_sequences() {
    let log = LogConfig {
        segment_bytes_max: 1024,
        retention_bytes: Some(1),
        ..LogConfig::default()
    };
    let trio = open_trio_with(log);
    let leader = trio.partitions[0].clone();
    let value = "v".repeat(200);
    for sequence in 0..5 {
        let appended = leader
            .produce(idempotent_batch(0, sequence, "p"), Acks::All)
            .await;
        assert!(appended.is_ok(), "{appended:?}");
        leader.produce(batch(&[&value]), Acks::All).await.unwrap();
    }
    let acknowledged = leader.status().high_watermark;
    assert_eq!(acknowledged, Offset(10));
    // The followers stop fetching; the sixth batch is too big for the active segment, so the
    // log rolls exactly at the HW and snapshots the producer (six batches: its window forgot
    // the first) above it.
    trio.disconnect(1);
    trio.disconnect(2);
    let sixth = idempotent_batch(0, 5, &"s".repeat(900));
    assert_eq!(
        leader.produce(sixth.clone(), Acks::Leader).await,
        Ok(acknowledged)
    );
    leader.housekeeping();
    assert_eq!(
        leader.status().log_start_offset,
        acknowledged,
        "retention deleted every segment below the HW"
    );
    // Another replica leads (it never got the sixth batch); the old leader truncates it.
    trio.connect(1);
    trio.connect(2);
    for partition in &trio.partitions {
        partition.apply_state(state(BROKERS[1], 2));
    }
    wait_until("the old leader truncates the sixth batch", || {
        leader.status().log_end_offset == acknowledged
    })
    .await;
    for partition in &trio.partitions {
        partition.apply_state(state(BROKERS[0], 3));
    }
    wait_until("the old leader leads again", || leader.status().is_leader).await;
    assert_eq!(
        leader.produce(sixth, Acks::Leader).await,
        Ok(acknowledged),
        "the retry follows the acknowledged fifth sequence"
    );
    for partition in &trio.partitions {
        partition.check_invariants();
    }
}

/// KAFKA-7190 (found by the cluster simulation, seed 141 of a build without the wipe gate): a
/// producer whose last batch retention deleted must still be known after every broker restarts,
/// on the old leader and on a follower that takes over, so its retry is answered as a duplicate
/// with the original offset instead of being appended a second time. Kafka keeps producer
/// state across retention in its `.snapshot` files; so does rill (`partition::producer_snapshots`).
async fn retention_then_restart_keeps_the_producer(crash: bool) {
    let log = LogConfig {
        segment_bytes_max: 1024,
        retention_bytes: Some(2048),
        ..LogConfig::default()
    };
    let trio = open_trio_with(log.clone());
    let leader = trio.partitions[0].clone();
    assert_eq!(
        leader.produce(idempotent_batch(0, 0, "a"), Acks::All).await,
        Ok(Offset(0))
    );
    let last = idempotent_batch(0, 1, "b");
    assert_eq!(leader.produce(last.clone(), Acks::All).await, Ok(Offset(1)));
    let value = "v".repeat(200);
    for _ in 0..40 {
        leader.produce(batch(&[&value]), Acks::All).await.unwrap();
    }
    leader.housekeeping();
    let start = leader.status().log_start_offset;
    assert!(
        start > Offset(2),
        "retention deleted the producer's batches: {start:?}"
    );
    for follower in &trio.partitions[1..] {
        wait_until("the followers' HW passes every record", || {
            follower.status().high_watermark == Offset(42)
        })
        .await;
        // What the node's fetcher does with the leader's log start in a fetch answer.
        follower.follow_log_start(start);
        assert_eq!(follower.status().log_start_offset, start);
    }
    drop(leader);

    let trio = restart_trio(trio, &log, crash, BROKERS[0], 2).await;
    let leader = trio.partitions[0].clone();
    assert_eq!(leader.status().log_start_offset, start);
    assert_eq!(
        leader.produce(last.clone(), Acks::All).await,
        Ok(Offset(1)),
        "the retry of the last sequence is a duplicate with its original offset"
    );
    assert_eq!(
        leader.status().log_end_offset,
        Offset(42),
        "not appended again"
    );

    // A follower that takes over built the same state and answers the same.
    for partition in &trio.partitions {
        partition.apply_state(state(BROKERS[1], 3));
    }
    let successor = trio.partitions[1].clone();
    wait_until("the follower leads", || successor.status().is_leader).await;
    assert_eq!(successor.produce(last, Acks::All).await, Ok(Offset(1)));
    assert_eq!(successor.status().log_end_offset, Offset(42));
    match successor
        .produce(idempotent_batch(0, 5, "gap"), Acks::All)
        .await
    {
        Err(PartitionError::Producer { code, .. }) => {
            assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
        }
        other => panic!("a gap after the remembered sequence is refused, got {other:?}"),
    }
    assert_eq!(
        successor
            .produce(idempotent_batch(0, 2, "c"), Acks::All)
            .await,
        Ok(Offset(42)),
        "the next sequence follows"
    );
    for partition in &trio.partitions {
        partition.check_invariants();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_last_batch_retention_deleted_is_remembered_across_a_clean_restart() {
    retention_then_restart_keeps_the_producer(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_last_batch_retention_deleted_is_remembered_across_a_crash() {
    retention_then_restart_keeps_the_producer(true).await;
}

/// Kafka's ProducerStateEntry rules at the driver (issue 14, item 1): a retry of any of a
/// producer's last five batches is answered with its original offset and not appended; an older
/// one, a gap, or a new epoch not starting at 0 is OUT_OF_ORDER_SEQUENCE_NUMBER (45); an older
/// epoch is INVALID_PRODUCER_EPOCH (47).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_the_last_five_batches_are_duplicates_and_the_rest_refused() {
    let trio = open_trio();
    let leader = trio.partitions[0].clone();
    let batches: Vec<Vec<u8>> = (0..7)
        .map(|sequence| idempotent_batch(1, sequence, &format!("v{sequence}")))
        .collect();
    for (offset, batch) in batches.iter().enumerate() {
        assert_eq!(
            leader.produce(batch.clone(), Acks::All).await,
            Ok(Offset(offset as i64))
        );
    }
    for (offset, batch) in batches.iter().enumerate().skip(2) {
        assert_eq!(
            leader.produce(batch.clone(), Acks::All).await,
            Ok(Offset(offset as i64)),
            "a retry of one of the last five"
        );
    }
    let refused = |code: i16| {
        move |outcome: Result<Offset, PartitionError>| match outcome {
            Err(PartitionError::Producer { code: got, .. }) => assert_eq!(got, code),
            other => panic!("expected error code {code}, got {other:?}"),
        }
    };
    refused(45)(leader.produce(batches[1].clone(), Acks::All).await);
    refused(45)(
        leader
            .produce(idempotent_batch(1, 9, "gap"), Acks::All)
            .await,
    );
    refused(47)(
        leader
            .produce(idempotent_batch(0, 7, "old"), Acks::All)
            .await,
    );
    refused(45)(
        leader
            .produce(idempotent_batch(2, 3, "new"), Acks::All)
            .await,
    );
    assert_eq!(
        leader.status().log_end_offset,
        Offset(7),
        "nothing appended twice"
    );
    assert_eq!(
        leader
            .produce(idempotent_batch(2, 0, "new"), Acks::All)
            .await,
        Ok(Offset(7)),
        "a new epoch starts at 0"
    );
    refused(47)(leader.produce(batches[6].clone(), Acks::All).await);
}

/// Seed 266755: a batch's leader epoch (outside its CRC) rotted upwards, recovery took the
/// rotted epoch into the log's epoch cache, and when the copy was elected the log ignored the
/// controller's (lower) epoch; the next append's refusal tripped the driver's fail-stop check, a
/// panic from bytes on disk. The partition fails instead, like any disk fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_epoch_above_the_new_leaders_fails_the_partition_instead_of_panicking() {
    let trio = open_trio();
    for value in ["a", "b", "c"] {
        trio.partitions[0]
            .produce(batch(&[value]), Acks::All)
            .await
            .unwrap();
    }
    let Trio {
        net,
        disks,
        partitions,
    } = trio;
    net.partitions.lock().unwrap().clear();
    drop(partitions);
    for disk in &disks {
        // Only synced bytes stay, and the state checkpoint (every 1 MiB) still says 0: the
        // reopened log rebuilds its epoch cache from the batches.
        disk.crash();
    }
    // The journal's replay writes the acknowledged batches back first; then epoch 1 rots to 9
    // in the last batch of broker 2's copy (bit 3 of the epoch's low byte, outside the CRC). In
    // an earlier batch the epochs after it would drop, and the open refuses the log; in the
    // last run recovery cannot tell it from a new leader's epoch.
    let reopened = reopen(&net, &disks, &LogConfig::default(), |broker, disk| {
        if broker == BROKERS[1] {
            let segment = Path::new("t-0/00000000000000000000.log");
            let handle = disk.as_disk();
            let len = usize::try_from(handle.len(segment).unwrap()).unwrap();
            let bytes = handle.read_vec(segment, 0, len).unwrap();
            let mut last = 0;
            let mut at = 0;
            while at < len {
                last = at;
                let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
                at += 12 + usize::try_from(length).unwrap();
            }
            disk.flip_bit_at(segment, last as u64 + 15, 3).unwrap();
        }
    });
    // The controller elects broker 2 in epoch 2, below the rotted 9.
    for partition in &reopened {
        partition.apply_state(state(BROKERS[1], 2));
    }
    let rotted = reopened[1].clone();
    wait_until("the rotted copy fails", || rotted.status().failed.is_some()).await;
    let refused = rotted.produce(batch(&["d"]), Acks::Leader).await;
    assert!(
        matches!(refused, Err(PartitionError::Storage(_))),
        "got {refused:?}"
    );
    assert!(
        net.failed.lock().unwrap().contains(&BROKERS[1]),
        "the failure is reported, so the controller can move the leadership"
    );
}

/// Two single-replica partitions, `a` and `b`, on one disk and one IO worker whose journal rolls
/// at every round (4 KiB files); `a` acknowledged one record, durable only in the journal (its
/// segment syncs at a checkpoint), then failed on a read of it.
struct FailedBeside {
    disk: MemDisk,
    a: Arc<Partition>,
    b: Arc<Partition>,
}

const JOURNAL_FILE_BYTES_SMALL: u64 = 4096;

fn open_single(
    disk: &Arc<dyn Disk>,
    io: &broker::partition::IoWorker,
    topic: &str,
) -> Arc<Partition> {
    let endpoint: Arc<dyn ReplicaNet> = Arc::new(Endpoint {
        net: Arc::new(LocalNet::default()),
        from: BROKERS[0],
    });
    let partition = Partition::open(
        TopicPartition::new(topic, 0),
        disk.clone(),
        Path::new(&format!("{topic}-0")),
        settings_on(BROKERS[0], LogConfig::default(), io.clone()),
        endpoint,
    )
    .unwrap();
    partition.apply_state(PartitionState {
        isr: BTreeSet::from([BROKERS[0]]),
        replicas: vec![BROKERS[0]],
        ..state(BROKERS[0], 1)
    });
    partition
}

async fn failed_beside_another() -> FailedBeside {
    let disk = MemDisk::new(1);
    let handle = disk.as_disk();
    let io = io_worker_of(&handle, JOURNAL_FILE_BYTES_SMALL);
    let (a, b) = (
        open_single(&handle, &io, "a"),
        open_single(&handle, &io, "b"),
    );
    wait_until("both lead", || a.status().is_leader && b.status().is_leader).await;
    a.produce(batch(&["acknowledged"]), Acks::All)
        .await
        .unwrap();
    let segment = Path::new("a-0/00000000000000000000.log");
    assert!(
        disk.durable_bytes(segment).unwrap().is_empty(),
        "the record is durable in the journal only"
    );
    let len = handle.len(segment).unwrap();
    disk.flip_bit_at(segment, len - 1, 0).unwrap();
    assert!(a.consumer_read(None, Offset::ZERO, 1 << 20).is_err());
    assert!(a.status().failed.is_some());
    FailedBeside { disk, a, b }
}

/// Produces `rounds` batches to `b`, each a journal round of its own in a file of its own
/// (over half a file).
async fn produce_beside(beside: &FailedBeside, rounds: usize) {
    for round in 0..rounds {
        let value = format!("{round:>2500}");
        beside.b.produce(batch(&[&value]), Acks::All).await.unwrap();
    }
}

/// Seed 275316: a copy failed with acknowledged records durable only in the journal; the
/// journal released them as other partitions wrote on (a failed copy needed nothing, it said),
/// the power went, and the copy came back without them and clean. The journal keeps them now:
/// after the power loss its replay writes them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copys_acknowledged_records_stay_in_the_journal_until_its_repair() {
    let beside = failed_beside_another().await;
    // Past three files the journal forces `b`'s checkpoints, so `b` holds nothing back: only
    // `a` could hold the oldest file.
    for _ in 0..6 {
        produce_beside(&beside, 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!beside.a.journal_records_lost());
    beside.disk.crash();
    let handle = beside.disk.as_disk();
    let io = io_worker_of(&handle, JOURNAL_FILE_BYTES_SMALL);
    let reopened = open_single(&handle, &io, "a");
    assert_eq!(
        reopened.status().log_end_offset,
        Offset(1),
        "the journal's replay wrote the acknowledged record back"
    );
}

/// A failed copy pins the journal for a bounded number of files only (a disk that stays broken
/// must not grow it for ever). Past that the journal lets the records go, but the data directory
/// is unclean first (the next start registers unclean, out of every ELR) and the copy knows
/// (its repair reports it not intact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_the_journal_gives_up_on_is_no_longer_intact() {
    let beside = failed_beside_another().await;
    let unclean = Path::new("rill-storage.unclean");
    let handle = beside.disk.as_disk();
    for round in 0..200 {
        if beside.a.journal_records_lost() {
            break;
        }
        assert!(
            handle.list(Path::new("journal")).unwrap().len() <= 10,
            "the journal is bounded (after {round} rounds)"
        );
        produce_beside(&beside, 1).await;
    }
    assert!(
        beside.a.journal_records_lost(),
        "the journal let the records go"
    );
    assert!(
        handle.exists(unclean).unwrap(),
        "after marking the directory unclean"
    );
    beside.disk.crash();
    assert!(handle.exists(unclean).unwrap(), "durably");
}
