//! sim: rill's deterministic simulator.
//!
//! - `runner`: runs a scenario over many seeds (fresh thread per seed, parallel jobs, progress,
//!   determinism check, summary with replay commands);
//! - `trace`: the event trace two runs of one seed must agree on;
//! - `scenarios`: what `--scenario` selects; `storage` is the log-core durability campaign,
//!   `cluster` a three-node rill cluster under a nemesis, judged by the Jepsen queue checker;
//! - `report`: the HTML timeline of one seed;
//! - `matrix`: the delivery-guarantee matrix (`cargo sim matrix`): settings x fault families,
//!   every anomaly seen, written to `docs/guarantees.md` and `.html`;
//! - `shard`: sharded runs (`--shard K/N --json FILE`) and `cargo sim merge`;
//! - `cli`: the `cargo sim` command line.
//!
//! `cargo sim` builds this crate with `--cfg madsim`; the storage scenario itself is a pure
//! function of its seed (its own ChaCha RNG and virtual clock), so it runs the same in both builds.

pub mod cli;
pub mod cluster;
pub mod matrix;
pub mod probes;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod shard;
pub mod storage;
pub mod trace;
