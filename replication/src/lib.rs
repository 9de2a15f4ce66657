//! # replication: one partition replica as a sans-IO state machine
//!
//! A [`Replica`] is one partition on one broker. It does no IO, reads no clock and draws no
//! randomness: the driver (the broker on tokio or madsim, or the stateright model) feeds it
//! [`Input`]s with `now_ms` and carries out the [`Effect`]s it returns, in order. The shape is
//! raft-rs's `RawNode`/`Ready` and openraft's `Engine`/`Command`.
//!
//! ## Runbook for a driver
//!
//! 1. **Start.** Recover the log with log-core and build the replica with
//!    [`Replica::recover`] (or [`Replica::new`] for an empty log). It is offline until
//!    partition state arrives.
//! 2. **Metadata.** Feed every partition state the controller commits as
//!    [`Input::PartitionState`]. Roles change only here: the replica named leader becomes leader of
//!    that leader epoch (starting the epoch at its LEO, truncating nothing, which is also right
//!    after an ELR or unclean election); the others follow.
//! 3. **Step.** Call [`Replica::step`] (or a `handle_*` method) for every produce, message from
//!    another replica, AlterPartition answer, flush completion and timer. Call
//!    [`Replica::check_invariants`] after each step in tests and simulation.
//! 4. **Apply the effects in order:**
//!    - [`Effect::Append`]: append the batch at the LEO (volatile). [`Effect::TruncateTo`]: cut
//!      the log there, durably. The core cannot see batches, so it must be told only
//!      truncation offsets the log can cut at exactly: before feeding a leader's answer that
//!      names one (a diverging epoch, an OffsetsForLeaderEpoch end, an OffsetOutOfRange log
//!      end), lower an offset inside one of this copy's batches to that batch's start
//!      (log-core's `end_after_truncation`). [`Effect::TruncateFullyAndStartAt`]: delete the whole log and
//!      start it empty at that offset, durably (a follower below the leader's log start).
//!      [`Effect::Flush`]: make everything below `up_to` durable, then feed
//!      [`Input::FlushCompleted`] with the same `seq`. Completions may be late; the replica ignores
//!      those from before a truncation.
//!    - [`Effect::AssignEpochStart`]: record in the log's epoch cache that the epoch starts at
//!      the LEO (a new leader's epoch, before any record of it). Followers' epochs reach the log
//!      with their batches; the driver never copies the core's epoch cache by itself.
//!    - [`Effect::Send`]: deliver to the other replica (may be lost, reordered or late: the core
//!      copes). [`Effect::SendFetchResponse`]: first read the [`ReadRange`] from the log into
//!      `response.result.batches` (batches starting exactly at `read.from`), then send.
//!    - [`Effect::Reply`]: answer the client's produce.
//!    - [`Effect::AlterPartition`]: send to the controller; feed its answer back as
//!      [`Input::AlterPartitionResponse`] (a success may equally arrive as partition state).
//!    - [`Effect::SetTimer`]/[`Effect::CancelTimer`]: one timer per [`TimerKind`]; pick the delay
//!      inside the range with the seeded RNG (the jitter is the driver's).
//! 5. **Log start.** After retention, DeleteRecords on a leader, or a follower following its
//!    leader's start (up to its own HW) moved the log's start, feed [`Input::LogStartAdvanced`]
//!    before any other input: the core owns the log start, refuses fetches and reads below it
//!    with `OFFSET_OUT_OF_RANGE` naming it, and answers ListOffsets earliest from it. None of
//!    them passes the HW the driver last gave the log. A start inside a batch is served as
//!    Kafka serves it: a read from it returns the whole batch, and an empty follower that
//!    receives a batch beginning below its log end starts over at the batch's base.
//! 6. **HW.** The driver copies [`Replica::high_watermark`] to the log after each step, for its
//!    checkpoint and as retention's bound: a read of core state, not a command, so no effect.
//! 7. **Crash.** Throw the replica away; volatile records are gone; go to 1.
//!
//! ## Durability decision (stronger than Kafka)
//!
//! The leader counts its own *flushed* LEO towards the HW, and a follower only fetches (reporting
//! its LEO as fetch offset) once its log is flushed. So an acknowledged acks=all record is on the
//! disk of every ISR member, and survives even a simultaneous crash of all replicas that loses
//! unsynced bytes. The HW never decreases on a leader.
//!
//! ## Protocol references
//!
//! KIP-101/279 (truncation by leader epoch), KIP-320 (epoch fencing), KIP-392 (fetch from
//! followers: [`Replica::consumer_read_range`] never passes the HW), KIP-497 (AlterPartition with
//! the partition epoch, maximal ISR), KIP-966 (ELR, see [`election`]). Historic bugs come back with
//! [`BugSwitches`].

#![warn(missing_docs)]

mod error;
mod follower;
mod leader;
mod replica;
mod types;

pub mod election;
pub mod epoch_cache;
pub mod isr;

pub use error::Error;
pub use replica::{RecoveredLog, Replica};
pub use types::*;
