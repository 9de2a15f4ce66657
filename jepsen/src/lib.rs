//! jepsen: rill's history format and Jepsen-style checkers.
//!
//! A *history* is what clients saw: every operation's invocation and completion, recorded by the
//! simulator or by the real-cluster harness ([`history::HistoryRecorder`]) and stored as JSON
//! Lines ([`history::History::parse_jsonl`]). Checkers turn a history into a verdict:
//!
//! - [`queue::check`]: the anomaly classes of Jepsen's kafka checker (`jepsen.tests.kafka`),
//!   same names, same meanings: lost-write, duplicate, inconsistent-offsets, unseen, poll-skip,
//!   nonmonotonic-poll, the `int-` variants, G0, G1a, G1c.
//! - [`linear`]: a Wing–Gong–Lowe linearizability checker, P-compositional (one search per key,
//!   keys checked in parallel), with a budget that answers `Unknown` rather than hanging.
//! - [`cli::run`]: `rill check FILE.jsonl`, wired into the `rill` binary and `rill-check`.
//! - [`gen`]: seeded generators of valid histories (property tests, benchmark).
//!
//! The format and every anomaly are documented in `jepsen/README.md`.

pub mod cli;
pub mod error;
pub mod gen;
pub mod history;
pub mod linear;
pub mod queue;
mod queue_graph;

pub use error::{HistoryError, JepsenError};
