//! Reading from a partition log into what the replica core and consumers want: whole batches
//! starting exactly at a fetch offset (followers), or record bytes below the HW (consumers).

use log_core::batch::split_batches;
use log_core::{LogError, PartitionLog};
use replication::{Batch, ReadRange};
use wire::Offset;

/// What a consumer fetch returns for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRead {
    /// Whole v2 batches; the first contains the fetch offset (it may start before it, as in Kafka).
    pub records: Vec<u8>,
    /// The high watermark at the time of the read.
    pub high_watermark: Offset,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
}

/// Splits a leader's fetch answer into the core's [`Batch`]es, each verified
/// ([`log_core::BatchView::validate`]: CRC and records): a follower never appends a batch it
/// cannot verify, and the log appends these without computing their CRC again
/// (`PartitionLog::append_verified_as_follower`).
pub fn batches_from_bytes(bytes: &[u8]) -> Result<Vec<Batch>, LogError> {
    split_into_batches(bytes, true)
}

/// Splits bytes into the core's [`Batch`]es; `verify`: check each batch's CRC and records (bytes
/// from the network), else only their framing (bytes a log-core read returned: it checked every
/// batch's CRC as it read them, so a second pass would find nothing new).
fn split_into_batches(bytes: &[u8], verify: bool) -> Result<Vec<Batch>, LogError> {
    let mut batches = Vec::new();
    for view in split_batches(bytes) {
        let view = view?;
        if verify {
            view.validate()?;
        }
        let header = view.header();
        let record_count = u32::try_from(i64::from(header.last_offset_delta) + 1)
            .map_err(|_| LogError::InvalidBatch("negative last offset delta".into()))?;
        batches.push(Batch {
            base_offset: header.base_offset,
            leader_epoch: header.partition_leader_epoch,
            record_count,
            payload: view.as_bytes().to_vec(),
        });
    }
    Ok(batches)
}

/// Reads `read` from the log as whole batches starting at `read.from` (the first may start
/// before it when the log start lies inside it) and ending at or
/// before `read.to`, at most about `bytes_max` bytes (always at least one batch when there is one,
/// so a large batch cannot stall a follower).
pub fn read_batches(
    log: &PartitionLog,
    read: ReadRange,
    bytes_max: usize,
) -> Result<Vec<Batch>, LogError> {
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
    while from < read.to && bytes_total < bytes_max {
        let result = log.read(from, bytes_max - bytes_total)?;
        if result.bytes.is_empty() {
            break;
        }
        // `log.read` checked each batch's CRC-32C as it read it.
        for batch in split_into_batches(&result.bytes, false)? {
            // The batch holding the fetch offset may start before it only when the log start
            // lies inside that batch (DeleteRecords) and a follower starts over there: send it
            // whole, as Kafka does (the follower's empty log starts at the batch's base).
            let holds_start = batches.is_empty() && batch.end_offset() > from;
            if batch.base_offset < from && !holds_start {
                return Ok(batches);
            }
            if batch.end_offset() > read.to {
                return Ok(batches);
            }
            from = batch.end_offset();
            bytes_total += batch.payload.len();
            batches.push(batch);
        }
        if result.next_offset <= read.from {
            break;
        }
    }
    assert!(batches.iter().all(|b| b.end_offset() <= read.to));
    assert!(batches.iter().skip(1).all(|b| b.base_offset >= read.from));
    Ok(batches)
}

/// Reads a consumer's range: whole batches from the one containing `range.from`, cut at the
/// last batch that ends at or below `range.to` (the HW), at most about `bytes_max` bytes.
pub fn read_for_consumer(
    log: &PartitionLog,
    range: ReadRange,
    bytes_max: usize,
) -> Result<Vec<u8>, LogError> {
    assert!(range.from <= range.to);
    if range.from == range.to {
        return Ok(Vec::new());
    }
    let mut bytes = log.read(range.from, bytes_max.max(1))?.bytes;
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
