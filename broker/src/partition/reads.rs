//! Reading from a partition log into what the replica core and consumers want: whole batches
//! starting exactly at a fetch offset (followers), or record bytes below the HW (consumers).

use bytes::Bytes;
use log_core::batch::{split_batches, BatchHeader};
use log_core::{LogError, PartitionLog};
use replication::{Batch, ReadRange};
use wire::Offset;

/// What a consumer fetch returns for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRead {
    /// Whole v2 batches; the first contains the fetch offset (it may start before it, as in Kafka).
    pub records: Bytes,
    /// The high watermark at the time of the read.
    pub high_watermark: Offset,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
}

/// Splits a leader's fetch answer into the core's [`Batch`]es, each verified
/// ([`log_core::BatchView::validate`]: CRC and records): a follower never appends a batch it
/// cannot verify, and the log appends these without computing their CRC again
/// (`PartitionLog::append_verified_as_follower`). Each payload is a slice of `bytes` (no copy).
pub fn batches_from_bytes(bytes: &Bytes) -> Result<Vec<Batch>, LogError> {
    let mut batches = Vec::new();
    let mut at = 0;
    for view in split_batches(bytes) {
        let view = view?;
        view.validate()?;
        let len = view.as_bytes().len();
        batches.push(Batch {
            base_offset: view.header().base_offset,
            leader_epoch: view.header().partition_leader_epoch,
            record_count: record_count(view.header())?,
            payload: bytes.slice(at..at + len),
        });
        at += len;
    }
    Ok(batches)
}

/// The offsets a batch spans (`last_offset_delta + 1`).
fn record_count(header: &BatchHeader) -> Result<u32, LogError> {
    u32::try_from(i64::from(header.last_offset_delta) + 1)
        .map_err(|_| LogError::InvalidBatch("negative last offset delta".into()))
}

/// Reads `read` from the log as whole batches starting at `read.from` (the first may start
/// before it when the log start lies inside it) and ending at or
/// before `read.to`, at most about `bytes_max` bytes (always at least one batch when there is one,
/// so a large batch cannot stall a follower).
///
/// The batches of one log read are not copied out of it: consecutive batches of one leader epoch
/// become one core [`Batch`] (the core's batch is a run of records with one epoch) whose payload
/// is a slice of the read, so the fetch answer usually carries one slice per partition and the
/// encoder takes it as it is. `log.read` checked each batch's CRC-32C as it read it from the
/// files, or took it from the log's tail, verified before it was appended; only the framing is
/// looked at here.
pub fn read_batches(
    log: &PartitionLog,
    read: ReadRange,
    bytes_max: usize,
) -> Result<Vec<Batch>, LogError> {
    read_batches_with(read, bytes_max, |from, bytes_max| log.read(from, bytes_max))
}

/// [`read_batches`] through `log_read`, which reads like [`PartitionLog::read`] (and may answer
/// nothing, which ends the batches there).
pub fn read_batches_with<E: From<LogError>>(
    read: ReadRange,
    bytes_max: usize,
    mut log_read: impl FnMut(Offset, usize) -> Result<log_core::ReadResult, E>,
) -> Result<Vec<Batch>, E> {
    assert!(read.from <= read.to, "read range inverted");
    assert!(bytes_max > 0);
    // BUGGIFY: a short read: one batch only (a follower must keep fetching).
    let bytes_max = if crate::runtime::buggify("fetch.read.short") {
        1
    } else {
        bytes_max
    };
    let mut batches: Vec<Batch> = Vec::new();
    let mut from = read.from;
    let mut bytes_total = 0_usize;
    let mut done = false;
    while !done && from < read.to && bytes_total < bytes_max {
        let result = log_read(from, bytes_max - bytes_total)?;
        if result.bytes.is_empty() {
            break;
        }
        let chunk = result.bytes;
        // The batches taken are a prefix of the read; `run` is the current same-epoch run in it:
        // (its start in the chunk, its batch so far).
        let mut at = 0;
        let mut run: Option<(usize, Batch)> = None;
        for view in split_batches(&chunk) {
            let view = view?;
            let header = view.header();
            let len = view.as_bytes().len();
            let base_offset = header.base_offset;
            let end_offset = header.next_offset();
            // The batch holding the fetch offset may start before it only when the log start
            // lies inside that batch (DeleteRecords) and a follower starts over there: send it
            // whole, as Kafka does (the follower's empty log starts at the batch's base).
            let holds_start = batches.is_empty() && run.is_none() && end_offset > from;
            if (base_offset < from && !holds_start) || end_offset > read.to {
                done = true;
                break;
            }
            let count = record_count(header)?;
            let epoch = header.partition_leader_epoch;
            run = match run {
                // Extends the run: same epoch, no offset gap, and the span still fits a u32.
                Some((start, mut batch))
                    if batch.leader_epoch == epoch && batch.end_offset() == base_offset =>
                {
                    match batch.record_count.checked_add(count) {
                        Some(total) => {
                            batch.record_count = total;
                            batch.payload = chunk.slice(start..at + len);
                            Some((start, batch))
                        }
                        None => {
                            batches.push(batch);
                            Some((at, slice_batch(&chunk, at, len, base_offset, epoch, count)))
                        }
                    }
                }
                previous => {
                    batches.extend(previous.map(|(_, batch)| batch));
                    Some((at, slice_batch(&chunk, at, len, base_offset, epoch, count)))
                }
            };
            from = end_offset;
            bytes_total += len;
            at += len;
        }
        batches.extend(run.map(|(_, batch)| batch));
        if result.next_offset <= read.from {
            break;
        }
    }
    assert!(batches.iter().all(|b| b.end_offset() <= read.to));
    assert!(batches.iter().skip(1).all(|b| b.base_offset >= read.from));
    Ok(batches)
}

/// The core's batch for the Kafka batch at `at..at + len` of `chunk`.
fn slice_batch(
    chunk: &Bytes,
    at: usize,
    len: usize,
    base_offset: Offset,
    leader_epoch: wire::LeaderEpoch,
    record_count: u32,
) -> Batch {
    Batch {
        base_offset,
        leader_epoch,
        record_count,
        payload: chunk.slice(at..at + len),
    }
}

/// Reads a consumer's range: whole batches from the one containing `range.from`, cut at the
/// last batch that ends at or below `range.to` (the HW), at most about `bytes_max` bytes.
pub fn read_for_consumer(
    log: &PartitionLog,
    range: ReadRange,
    bytes_max: usize,
) -> Result<Bytes, LogError> {
    assert!(range.from <= range.to);
    if range.from == range.to {
        return Ok(Bytes::new());
    }
    cut_for_consumer(log.read(range.from, bytes_max.max(1))?.bytes, range)
}

/// The batches of a consumer's read (from `range.from`) that end at or below `range.to`.
pub fn cut_for_consumer(mut bytes: Bytes, range: ReadRange) -> Result<Bytes, LogError> {
    // The batches served are a prefix of the read: cut the read there instead of copying them.
    let mut end = 0;
    for view in split_batches(&bytes) {
        let view = view?;
        if view.header().next_offset() > range.to {
            break;
        }
        end += view.as_bytes().len();
    }
    assert!(end <= bytes.len());
    bytes.truncate(end);
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use log_core::{BatchBuilder, LogConfig, MemDisk};
    use std::path::Path;
    use wire::LeaderEpoch;

    /// A log of three 2-record batches in epoch 1, then two in epoch 2 (offsets 0..10).
    fn log() -> PartitionLog {
        let disk = MemDisk::new(1).as_disk();
        let mut log = PartitionLog::open(disk, Path::new("p"), LogConfig::default(), 0).unwrap();
        for epoch in [1, 1, 1, 2, 2] {
            let mut builder = BatchBuilder::new();
            builder.push(None, Some(b"v1"), 1_000, &[]);
            builder.push(None, Some(b"v2"), 1_000, &[]);
            log.append_as_leader(&builder.build(), LeaderEpoch(epoch), 1_000)
                .unwrap();
        }
        log
    }

    fn range(from: i64, to: i64) -> ReadRange {
        ReadRange {
            from: Offset(from),
            to: Offset(to),
        }
    }

    #[test]
    fn one_read_of_one_epoch_is_one_slice_of_the_log_bytes() {
        let log = log();
        let whole = log.read(Offset(0), 1 << 20).unwrap().bytes;
        let batches = read_batches(&log, range(0, 10), 1 << 20).unwrap();
        let spans: Vec<_> = batches
            .iter()
            .map(|b| (b.base_offset, b.leader_epoch, b.record_count))
            .collect();
        assert_eq!(
            spans,
            [
                (Offset(0), LeaderEpoch(1), 6),
                (Offset(6), LeaderEpoch(2), 4)
            ],
            "batches of one epoch are joined, an epoch change starts a new one"
        );
        let joined: Vec<u8> = batches.iter().flat_map(|b| b.payload.to_vec()).collect();
        assert_eq!(joined, whole, "the payloads are the log's bytes, in order");
        // Joined payloads are still whole v2 batches, as a follower verifies them.
        for batch in &batches {
            let split = batches_from_bytes(&batch.payload).unwrap();
            assert_eq!(split.first().unwrap().base_offset, batch.base_offset);
            assert_eq!(split.last().unwrap().end_offset(), batch.end_offset());
        }
    }

    #[test]
    fn a_read_stops_at_the_range_end_and_the_byte_budget() {
        let log = log();
        let batches = read_batches(&log, range(2, 7), 1 << 20).unwrap();
        assert_eq!(
            batches.len(),
            1,
            "only epoch 1's batches end within the range"
        );
        assert_eq!(
            (batches[0].base_offset, batches[0].end_offset()),
            (Offset(2), Offset(6))
        );
        let one = read_batches(&log, range(0, 10), 1).unwrap();
        assert_eq!(one.len(), 1, "a tiny budget still returns the first batch");
        assert_eq!(
            (one[0].base_offset, one[0].end_offset()),
            (Offset(0), Offset(2))
        );
    }
}
