//! rill's controller: the raft-rs metadata quorum and the metadata state machine, sans-IO.
//!
//! # Runbook for a driver
//!
//! 1. Start each node with [`Controller::new`] from its durable [`RaftStore`]
//!    ([`RaftStore::bootstrap`] the first time, the same voters on every node).
//! 2. Feed inputs: [`Controller::tick`] every tick interval with the current time,
//!    [`Controller::step`] for every raft message received, [`Controller::request`] for client
//!    requests, [`Controller::persist_complete`] when a persist batch is durable.
//! 3. After each input, [`Controller::take_effects`] and carry them out in order:
//!    - `Send`: deliver the raft message (best effort);
//!    - `Persist`: apply it to the durable copy with [`RaftStore::apply_persist`] (in order), then
//!      call `persist_complete(id)`; messages that must wait for durability (raft-rs
//!      `persisted_messages`, e.g. votes) are held by the core and come out then;
//!    - `SaveSnapshot`: [`RaftStore::compact_to`] on the durable copy;
//!    - `Reply`, `MetadataChanged`: answer the client, wake metadata fetchers.
//! 4. On restart, build a new `Controller` from the durable copy: unpersisted state is lost,
//!    exactly as on a crash.
//! 5. Call [`Controller::check_invariants`] after every step in tests and simulation.
//!
//! # Election jitter belongs to the driver
//!
//! raft-rs draws the randomized election timeout from `rand`, which no simulator seeds. The core
//! configures `min_election_tick = election_tick` and `max_election_tick = election_tick + 1`, a
//! one-value range, so raft-rs draws nothing random. The driver adds jitter by spacing each
//! node's ticks with its own seeded RNG (the harness in `tests/harness.rs` draws every tick
//! interval from a range).
//!
//! # The metadata state machine
//!
//! [`MetadataImage`] is a pure function of the applied [`MetadataRecord`] batches (one batch per
//! raft entry, applied atomically, validated again on apply so racing proposals are refused
//! identically everywhere). The active controller turns requests and timeouts into batches with
//! the pure functions of [`election`]. Batches are built from the applied image while other
//! proposals may be in flight, so an event's batch can miss an election another in-flight batch
//! makes possible: once nothing it proposed is pending, the active controller sweeps the
//! leaderless partitions on its tick ([`election::leaderless_batch`]). Snapshots of the image
//! compact the log every `snapshot_interval_entries`.

pub mod broker_configs;
pub mod controller;
pub mod election;
pub mod error;
pub mod image;
pub mod placement;
pub mod raft_ingress;
pub mod records;
pub mod security;
pub mod storage;
pub mod topic_configs;

pub use controller::{Controller, ControllerConfig, Effect, MetadataFetch, Reply, Request};
pub use election::{AlterPartitionRequest, ElectionOutcome, HistoricBugs};
pub use error::ControllerError;
pub use image::{BrokerRegistration, MetadataImage, TopicImage, RACK_BYTES_MAX};
pub use records::{Listener, MetadataRecord, PartitionState, RecordBatch, TopicConfig};
pub use security::{AclBinding, ScramCredential, ScramMechanism, SecurityChange};
pub use storage::{PersistBatch, RaftStore};

/// raft-rs types drivers need (messages, entries, snapshots).
pub use raft::prelude as raft_prelude;
