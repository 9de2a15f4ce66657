//! The group coordinator: membership, generations, committed offsets (Kafka's classic protocol).
//!
//! A sans-IO core like `replication`: [`GroupCoordinator`] is a plain struct, `now_ms` comes in,
//! answers go out as [`GroupEffect`]s, no clock, randomness, IO or hash-order iteration.
//!
//! ## Runbook for a driver
//!
//! 1. **Ownership.** When this broker becomes leader of a `__consumer_offsets` partition, call
//!    [`GroupCoordinator::begin_loading`], read the partition and pass its records to
//!    [`GroupCoordinator::load`]. When it stops being leader, call
//!    [`GroupCoordinator::unload`] and carry out the effects (waiting requests are answered
//!    NOT_COORDINATOR). Requests for groups of other partitions are answered NOT_COORDINATOR,
//!    of partitions still loading COORDINATOR_LOAD_IN_PROGRESS.
//! 2. **Membership.** Feed JoinGroup, SyncGroup, Heartbeat and LeaveGroup with a fresh `ticket`
//!    per client request. The answer to a ticket arrives as [`GroupEffect::Respond`], at once or
//!    from a later call (a JoinGroup waits for the rebalance, a SyncGroup for the leader's
//!    assignment). A request may be answered only once; the core never reuses a ticket.
//! 3. **Timers.** Keep one timer: on every [`GroupEffect::SetTimer`] move it to the earliest
//!    `at_ms` seen; when it fires call [`GroupCoordinator::tick`], which expires sessions,
//!    completes rebalances and announces the next deadline. Early ticks are harmless.
//! 4. **Offsets.** [`GroupCoordinator::commit_offsets`] validates and returns a [`CommitPlan`]:
//!    append its records to the group's offsets partition with acks=all, then call
//!    [`GroupCoordinator::offsets_committed`] and send the plan's response; on failure send
//!    [`CommitPlan::failed`] instead. Fetches read the cache directly.
//! 5. Call [`GroupCoordinator::check_invariants`] after each step in tests and simulation.
//!
//! ## Simplifications (versus Kafka's GroupCoordinator)
//!
//! - Group metadata (members, generation) is not persisted, only offsets: after a coordinator
//!   move groups restart Empty at generation 0 and members rejoin (their member ids are unknown
//!   to the new coordinator, so their commits are refused UNKNOWN_MEMBER_ID until they do).
//! - Static membership (KIP-345, `group.instance.id`, JoinGroup v5+) is kept in memory only, like
//!   the rest of the group metadata. A static member that rejoins with an unknown member id takes
//!   its old member's place under a new member id; in Stable with the selected protocol unchanged
//!   it gets the current generation at once (before JoinGroup v9, which rill does not serve, the
//!   answer names the previous leader, as Kafka's does) and syncs for its stored assignment. A
//!   replaced instance is refused FENCED_INSTANCE_ID. A static member still leaves at its session
//!   timeout (as in Kafka); after a coordinator move the instance ids are forgotten too.
//! - No pending-sync timeout: a leader that never syncs is removed by its session timeout.
//! - Offsets never expire (no retention), and topics are not checked to exist.

mod coordinator;
mod deletion;
mod handlers;
mod offsets;
mod state;

pub use coordinator::{
    commit_topic, ClientInfo, CommitPlan, GroupConfig, GroupCoordinator, GroupEffect,
};
pub use deletion::{DeletionPlan, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, NON_EMPTY_GROUP};
pub use handlers::OFFSET_FETCH_VERSION_MAX;
pub use offsets::{
    java_string_hash, offsets_partition, OffsetKey, OffsetRecord, OffsetValue, OFFSETS_TOPIC,
    OFFSET_KEY_VERSION, OFFSET_VALUE_VERSION,
};
pub use state::{Group, GroupState, Member, Waiting};

use thiserror::Error;

/// The group module's errors. Protocol refusals are Kafka error codes inside responses; this
/// enum covers the bytes the coordinator reads from its own topic.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GroupError {
    /// A `__consumer_offsets` record does not decode.
    #[error("malformed offsets record: {reason}")]
    OffsetRecordMalformed {
        /// What was wrong, for the log line.
        reason: &'static str,
    },
}

/// Kafka error codes the coordinator answers with.
pub mod error_code {
    /// Success.
    pub const NONE: i16 = 0;
    /// The offsets partition is still loading on this broker (retriable).
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// The coordinator cannot serve now (retriable; the client looks it up again).
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// This broker does not lead the group's offsets partition.
    pub const NOT_COORDINATOR: i16 = 16;
    /// The request's generation is not the group's.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// The member's protocol type or protocols do not match the group's.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// The group id is empty.
    pub const INVALID_GROUP_ID: i16 = 24;
    /// The member id is not a member of the group.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// The session timeout is outside the coordinator's bounds.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// The group is rebalancing: rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// The commit's metadata exceeds `offset_metadata_bytes_max`.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// The request did not complete in time (commit append failed to replicate).
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// A v4+ first join: the answer carries the member id to rejoin with (KIP-394).
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// The request's `group.instance.id` is held by another member id now (KIP-345): an
    /// older instance of a static member was replaced.
    pub const FENCED_INSTANCE_ID: i16 = 82;
    /// The group has `members_per_group_max` members already.
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    /// The commit would exceed `offsets_per_group_max`.
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
}
