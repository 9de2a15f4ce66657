//! The batches a log appended last, kept in memory as they went into the active segment file.
//!
//! A leader's followers fetch exactly these batches, each follower once, right after they are
//! appended, and a journaled flush writes them to the broker's journal right after that. Read
//! from the file, each of those reads is a positioned read (after batch headers read to find
//! the position) and a CRC-32C pass over bytes that were verified before they were appended
//! (at ingress on a leader, when fetched on a follower). The tail answers them from memory:
//! one copy, no system call, no second CRC pass.
//!
//! The tail holds only bytes that are in the file at the positions it records: it is extended
//! by successful appends only, starts again when an append does not continue it (a roll, a
//! write after a failed one), and is stale once the log's `rewrites` moved (a truncation, a
//! deleted, restarted or compacted segment), when every answer falls back to the file. It
//! forgets batches below both the high watermark and the durable end (every in-sync follower
//! has them, and so does the journal or the file), and keeps at most the log's
//! `LogConfig::tail_bytes_max` ([`TAIL_BYTES_MAX`] by default; always the last batch).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::batch::BatchHeader;
use wire::Offset;

/// Most bytes a log's tail keeps by default (past it the oldest batches go, but never the last
/// one): `LogConfig::tail_bytes_max`.
pub const TAIL_BYTES_MAX: usize = 1 << 20;

/// One batch of the tail.
#[derive(Clone, Debug)]
struct TailBatch {
    /// Its position in the segment file.
    position: u64,
    header: BatchHeader,
    bytes: Bytes,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// The log's `rewrites` when its batches were appended.
    rewrites: u64,
    /// The segment they are in (its base offset).
    segment_base: Offset,
    /// In offset order, each starting where the one before ends in the file.
    batches: VecDeque<TailBatch>,
    /// Their bytes in all.
    bytes: usize,
}

/// Batches a read takes from the tail: shared with it, joined by [`TailRead::into_bytes`] off
/// the log's lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct TailRead {
    parts: Vec<Bytes>,
    /// The offset after the last batch.
    pub(crate) next: Offset,
}

impl TailRead {
    /// The batches, joined: one batch (a follower that keeps up fetches each as it comes) is
    /// the tail's own bytes, shared without a copy; more are copied into one buffer.
    pub(crate) fn into_bytes(mut self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts.pop().expect("one part");
        }
        Bytes::from(self.parts.concat())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

impl Tail {
    /// Records a successful append of `bytes` at `position` of the segment `segment_base`:
    /// whole batches with these `headers` at these `spans` of `bytes`, appended while the log's
    /// rewrite count was `rewrites`. [`Tail::keep_at_most`] bounds it after.
    pub(crate) fn appended(
        &mut self,
        rewrites: u64,
        segment_base: Offset,
        position: u64,
        bytes: &[u8],
        headers: &[BatchHeader],
        spans: &[(usize, usize)],
    ) {
        let continues = self.rewrites == rewrites
            && self.segment_base == segment_base
            && self.end_position() == Some(position);
        if !continues {
            self.batches.clear();
            self.bytes = 0;
            self.rewrites = rewrites;
            self.segment_base = segment_base;
        }
        for (header, &(start, end)) in headers.iter().zip(spans) {
            let at = position + start as u64;
            if self.end_position().is_some_and(|tail_end| tail_end != at) {
                // Not contiguous (never for whole batches written in one piece): start again.
                self.batches.clear();
                self.bytes = 0;
            }
            self.batches.push_back(TailBatch {
                position: at,
                header: *header,
                bytes: Bytes::copy_from_slice(&bytes[start..end]),
            });
            self.bytes += end - start;
        }
    }

    /// Forgets the oldest batches while it holds more than `bytes_max` (never the last one).
    pub(crate) fn keep_at_most(&mut self, bytes_max: usize) {
        while self.bytes > bytes_max && self.batches.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(batch) = self.batches.pop_front() {
            self.bytes -= batch.bytes.len();
        }
    }

    fn end_position(&self) -> Option<u64> {
        self.batches
            .back()
            .map(|batch| batch.position + batch.bytes.len() as u64)
    }

    /// Forgets the batches that end below `below`.
    pub(crate) fn release_below(&mut self, below: Offset) {
        while self
            .batches
            .front()
            .is_some_and(|batch| batch.header.next_offset() <= below)
        {
            self.pop_front();
        }
    }

    /// What [`crate::PartitionLog::read_bounded`] reads from `from` (whole batches from the one
    /// holding `from`, at most about `bytes_max` bytes but at least one batch, each ending below
    /// `offset_bound`), if the tail holds that batch and the log's rewrite count is still
    /// `rewrites`; `None` sends the read to the file.
    pub(crate) fn read(
        &self,
        rewrites: u64,
        from: Offset,
        bytes_max: usize,
        offset_bound: Offset,
    ) -> Option<TailRead> {
        if rewrites != self.rewrites {
            return None;
        }
        let first = self
            .batches
            .partition_point(|batch| batch.header.last_offset() < from);
        let holding = self.batches.get(first)?;
        if holding.header.base_offset > from {
            // `from` lies before the tail (or in a gap at its start): the file knows.
            return None;
        }
        let mut read = TailRead {
            parts: Vec::new(),
            next: from,
        };
        let mut len = 0;
        for batch in self.batches.range(first..) {
            if batch.header.last_offset() >= offset_bound {
                break;
            }
            if len > 0 && len + batch.bytes.len() > bytes_max {
                break;
            }
            len += batch.bytes.len();
            read.next = batch.header.next_offset();
            read.parts.push(batch.bytes.clone());
        }
        Some(read)
    }

    /// The bytes from position `from` to `to` of the segment `segment_base`, if the tail holds
    /// exactly them (whole batches) and the log's rewrite count is still `rewrites`.
    pub(crate) fn bytes_between(
        &self,
        rewrites: u64,
        segment_base: Offset,
        from: u64,
        to: u64,
    ) -> Option<Vec<u8>> {
        if rewrites != self.rewrites || segment_base != self.segment_base {
            return None;
        }
        if self.end_position() != Some(to) {
            return None;
        }
        let first = self.batches.partition_point(|batch| batch.position < from);
        if self.batches.get(first)?.position != from {
            return None;
        }
        let parts: Vec<&[u8]> = self
            .batches
            .range(first..)
            .map(|batch| &batch.bytes[..])
            .collect();
        Some(parts.concat())
    }
}
