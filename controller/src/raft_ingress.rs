//! Raft input is validated before raft-rs sees it.
//!
//! raft-rs trusts its peers: a message with term `u64::MAX` overflows its term arithmetic (a
//! panic in `send`, and the term is persisted, so every restart panics again), a heartbeat
//! committing past the log end is a fatal assertion, a local-only message type steps internal
//! state. The transport authenticates who sent a frame; this module decides whether the frame is
//! something an honest voter could have sent, from the message alone and this node's raft state.
//! A refused message is dropped (raft retransmits what matters) and logged by the caller.

use crate::error::ControllerError;
use crate::image::MetadataImage;
use raft::prelude::{Message, MessageType};

/// How far above the local term a message's term may be. With pre-vote and check-quorum, terms
/// grow by one per real election; a voter cut off for a million elections rejoins by a restart
/// of its peers' views (a snapshot), not by a message. The bound keeps the term far from
/// `u64::MAX`, whose `+ 1` overflows inside raft-rs, and bounds what one forged frame can do.
pub const TERM_AHEAD_MAX: u64 = 1 << 20;

/// Highest term a message may carry at all, whatever the local term: `TERM_AHEAD_MAX` steps
/// could otherwise be chained. 2^48 elections at one per millisecond take 8,900 years.
pub const TERM_MAX: u64 = 1 << 48;

/// Most entries one append may carry (raft-rs sends `max_inflight_msgs` × `max_size_per_msg`
/// bytes at most; entries are at least a few bytes): a bound on the work one frame can cause.
pub const APPEND_ENTRIES_MAX: usize = 1 << 16;

/// What a receiving node knows when it judges a message.
#[derive(Clone, Copy, Debug)]
pub struct Receiver<'a> {
    /// This node's raft id (the only valid `to`).
    pub id: u64,
    /// The voters (the only valid senders, and the only valid conf state of a snapshot).
    pub voters: &'a [u64],
    /// raft's current term here.
    pub term: u64,
    /// The last index of this node's log.
    pub last_index: u64,
}

/// Raft message types one voter sends another in rill's configuration (pre-vote on, no leader
/// transfer, no learners; read index only for a rejoining voter's catch-up target).
fn from_network(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::MsgAppend
            | MessageType::MsgAppendResponse
            | MessageType::MsgRequestVote
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVote
            | MessageType::MsgRequestPreVoteResponse
            | MessageType::MsgSnapshot
            | MessageType::MsgHeartbeat
            | MessageType::MsgHeartbeatResponse
            | MessageType::MsgReadIndex
            | MessageType::MsgReadIndexResp
    )
}

/// Longest read-index context a voter sends (rill's are ~40 bytes).
pub const READ_CONTEXT_BYTES_MAX: usize = 128;

/// Accepts `message` if an honest voter could have sent it to `receiver`.
pub fn check(receiver: Receiver<'_>, message: &Message) -> Result<(), ControllerError> {
    let refuse = |why: String| Err(ControllerError::InvalidRaftMessage(why));
    let (from, to) = (message.from, message.to);
    if to != receiver.id || from == receiver.id || !receiver.voters.contains(&from) {
        return refuse(format!(
            "from {from} to {to}: not a peer's message to this node"
        ));
    }
    let kind = message.get_msg_type();
    if !from_network(kind) {
        return refuse(format!("type {kind:?} cannot come from the network"));
    }
    let bound = receiver
        .term
        .saturating_add(TERM_AHEAD_MAX)
        .min(TERM_MAX)
        .max(receiver.term);
    // raft-rs forwards a follower's read index to the leader without a term (as a proposal):
    // it is handled as local input, whatever our term. One with a term is not what an honest
    // voter sends, and a follower forwarding it on to its leader trips raft-rs's assertion that
    // a read index carries none.
    if kind == MessageType::MsgReadIndex {
        if message.term != 0 {
            return refuse(format!("read index with term {}", message.term));
        }
    } else if message.term == 0 || message.term > bound {
        return refuse(format!("term {} outside (0, {bound}]", message.term));
    }
    check_indexes(receiver, message).map_err(ControllerError::InvalidRaftMessage)
}

/// Index and entry checks per message type: what raft-rs would otherwise assert on.
fn check_indexes(receiver: Receiver<'_>, message: &Message) -> Result<(), String> {
    let term_ok = |term: u64| term <= message.term;
    if !term_ok(message.log_term) {
        return Err(format!(
            "log term {} above message term {}",
            message.log_term, message.term
        ));
    }
    match message.get_msg_type() {
        MessageType::MsgAppend => check_append(message),
        // A leader commits in a heartbeat only what this follower has (min(matched, commit));
        // raft-rs asserts on more.
        MessageType::MsgHeartbeat if message.commit > receiver.last_index => Err(format!(
            "heartbeat commits {} past the log end {}",
            message.commit, receiver.last_index
        )),
        // A follower acknowledges only entries its leader sent it.
        MessageType::MsgAppendResponse
            if message.index > receiver.last_index || message.reject_hint > receiver.last_index =>
        {
            Err(format!(
                "append response index {} hint {} past the log end {}",
                message.index, message.reject_hint, receiver.last_index
            ))
        }
        MessageType::MsgSnapshot => check_snapshot(receiver, message),
        // One entry carrying the requester's context, as raft-rs builds it (it indexes
        // `entries[0]`); the answer's index is a commit index.
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp => {
            let context_ok = message.entries.len() == 1
                && message.entries[0].data.len() <= READ_CONTEXT_BYTES_MAX
                && message.snapshot.is_none();
            if !context_ok || message.index >= TERM_MAX {
                Err(format!(
                    "read index with {} entries at index {}",
                    message.entries.len(),
                    message.index
                ))
            } else {
                Ok(())
            }
        }
        _ if !message.entries.is_empty() || message.snapshot.is_some() => {
            Err("entries or a snapshot on a message that carries none".into())
        }
        _ => Ok(()),
    }
}

/// Entries follow `index` one by one, with terms that never go back from `log_term` nor pass
/// the message's term, and the commit index fits in u64 arithmetic.
fn check_append(message: &Message) -> Result<(), String> {
    if message.entries.len() > APPEND_ENTRIES_MAX || message.snapshot.is_some() {
        return Err(format!("append of {} entries", message.entries.len()));
    }
    if message.index >= TERM_MAX || message.commit >= TERM_MAX {
        return Err(format!(
            "append at index {} commit {}",
            message.index, message.commit
        ));
    }
    // Every entry past the dummy at index 0 has a term of at least 1. raft-rs reads the term
    // of an index past its log as 0, so an append "after index 5 of term 0" would match an
    // empty log and commit past its end (a fatal assertion).
    if (message.index == 0) != (message.log_term == 0) {
        return Err(format!(
            "append after index {} of term {}",
            message.index, message.log_term
        ));
    }
    let mut term_previous = message.log_term;
    for (offset, entry) in (1u64..).zip(message.entries.iter()) {
        let expected = message.index + offset;
        if entry.index != expected || entry.term < term_previous || entry.term > message.term {
            return Err(format!(
                "entry index {} term {} where index {expected}, term in [{term_previous}, {}]",
                entry.index, entry.term, message.term
            ));
        }
        term_previous = entry.term;
    }
    Ok(())
}

/// A snapshot is of this quorum (same voters, no learners) and its data is a metadata image at
/// the snapshot's index, as restoring it assumes.
fn check_snapshot(receiver: Receiver<'_>, message: &Message) -> Result<(), String> {
    if !message.entries.is_empty() {
        return Err("entries on a snapshot message".into());
    }
    let snapshot = message.get_snapshot();
    let metadata = snapshot.get_metadata();
    if metadata.index == 0 || metadata.index >= TERM_MAX || metadata.term > message.term {
        return Err(format!(
            "snapshot at index {} term {}",
            metadata.index, metadata.term
        ));
    }
    let conf = metadata.get_conf_state();
    let mut voters = conf.voters.clone();
    voters.sort_unstable();
    let mut ours = receiver.voters.to_vec();
    ours.sort_unstable();
    if voters != ours || !conf.learners.is_empty() || !conf.voters_outgoing.is_empty() {
        return Err(format!("snapshot of voters {:?}", conf.voters));
    }
    let image = MetadataImage::decode(snapshot.get_data()).map_err(|e| e.to_string())?;
    if image.applied_index() != metadata.index {
        return Err(format!(
            "snapshot image at {} for index {}",
            image.applied_index(),
            metadata.index
        ));
    }
    Ok(())
}
