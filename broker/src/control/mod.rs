//! The controller quorum's driver and the broker's side of it.
//!
//! - [`store`]: durable raft state on a `log_core::Disk` (CRC-checked append-only records,
//!   rewritten at each snapshot).
//! - [`wire`]: the controller listener's protocol (length-prefixed JSON frames).
//! - [`quorum`]: the controller node driver ([`ControllerNode`]): one task owning the
//!   `controller::Controller`, a listener, one raft sender per peer.
//! - [`client`]: [`ControllerClient`], finding the active controller and retrying.
//! - [`lifecycle`]: [`BrokerLifecycle`], the broker's registration, heartbeats and metadata.
//!
//! # Runbook
//!
//! A controller node (`rill` with a controller role):
//! 1. [`ControllerNode::start`] with a [`QuorumConfig`] (the same voter map on every node), the
//!    node's `Disk` and a directory. It opens [`DurableRaftStore`] (bootstrapping an empty
//!    directory), rebuilds the `controller::Controller` from it and binds the listener.
//! 2. The core task then follows the `controller` crate's runbook: ticks drawn from
//!    `[tick_ms, tick_ms + tick_jitter_ms]` with `runtime::jitter_ms` (the election jitter),
//!    `Persist` → [`DurableRaftStore::apply`] (synced) → `persist_complete`, `SaveSnapshot` →
//!    [`DurableRaftStore::compact_to`], `Send` → the peer's bounded queue, `Reply` → the waiting
//!    connection, `MetadataChanged` → wake parked metadata fetches. Only the active controller
//!    answers requests; the others answer `NotController { leader_hint }`.
//! 3. [`ControllerHandle::status`] feeds `/metrics`; [`ControllerHandle::shutdown`] (or dropping
//!    the handle) stops every task; a disk error stops the node (restart reopens the store).
//!
//! A broker:
//! 1. [`ControllerClient::new`] with the voter map; [`BrokerLifecycle::start`] with it.
//! 2. Gate leadership and ISR membership on `!fenced()`; drive partitions from the images
//!    published on [`BrokerLifecycle::image`] (they only move forward).
//! 3. [`BrokerLifecycle::shutdown`] on exit; the next start passes `clean_shutdown` accordingly.

pub mod client;
pub mod lifecycle;
pub mod quorum;
pub mod store;
pub mod wire;

pub use client::ControllerClient;
pub use lifecycle::{BrokerLifecycle, LifecycleConfig, SessionState};
pub use quorum::{ControllerHandle, ControllerNode, ControllerStatus, QuorumConfig};
pub use store::DurableRaftStore;
pub use wire::ControlMessage;

/// Why a control-plane operation failed: disk and format problems of the durable store, protocol
/// problems on the controller listener, and the outcomes a controller client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The disk refused an operation; the store must be reopened.
    #[error("disk: {0}")]
    Disk(#[from] log_core::DiskError),
    /// Synced durable state is damaged (not a torn tail): refusing to start on it.
    #[error("corrupt raft state: {0}")]
    Corrupt(String),
    /// A value could not be encoded (oversized or unserialisable).
    #[error("encode: {0}")]
    Encode(String),
    /// A frame or message from a peer could not be decoded; that connection is closed.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Configuration disagrees with itself or with the durable state.
    #[error("configuration: {0}")]
    Config(String),
    /// The inter-node handshake failed, or a frame claimed another sender than the
    /// authenticated peer; the connection is closed.
    #[error("authentication: {0}")]
    Auth(String),
    /// Socket-level failure (connect, read, write, bind).
    #[error("io: {0}")]
    Io(String),
    /// No active controller answered within the deadline.
    #[error("no active controller reachable")]
    Unavailable,
    /// The request's deadline passed without an answer.
    #[error("request timed out")]
    Timeout,
    /// The active controller refused the request (a typed refusal the caller acts on).
    #[error("refused: {0}")]
    Refused(controller::ControllerError),
    /// The component was shut down.
    #[error("shut down")]
    Shutdown,
}

impl From<std::io::Error> for ControlError {
    fn from(error: std::io::Error) -> Self {
        ControlError::Io(error.to_string())
    }
}
