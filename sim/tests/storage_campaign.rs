//! The storage scenario as tests: a batch of seeds passes, every seed is deterministic, and a
//! replayed seed reproduces its trace exactly. Runs in both builds (normal and `--cfg madsim`).

use sim::runner::{run_campaign, run_seed_isolated, CampaignOptions, Scenario};
use sim::storage::{StorageDraw, StorageScenario};
use std::sync::Arc;

fn scenario() -> Arc<dyn Scenario> {
    Arc::new(StorageScenario::new(Some(200), false))
}

#[test]
fn a_batch_of_seeds_passes_and_is_deterministic() {
    let options = CampaignOptions {
        seeds: (1..=24).collect(),
        jobs: 2,
        check_determinism: true,
        progress: false,
    };
    let scenario = scenario();
    let report = run_campaign(Arc::clone(&scenario), &options);
    let summary = sim::runner::summarize(scenario.as_ref(), &report);
    assert_eq!(report.results.len(), 24, "{summary}");
    assert!(report.failures().next().is_none(), "{summary}");
    assert!(
        report.results.iter().all(|r| r.run.steps > 0),
        "every seed did work"
    );
}

#[test]
fn a_replayed_seed_reproduces_its_trace() {
    let first = run_seed_isolated(scenario(), 7);
    let second = run_seed_isolated(scenario(), 7);
    assert!(first.trace.len() > 10, "the run recorded its steps");
    assert_eq!(first.trace.hash(), second.trace.hash());
    assert_eq!(first.trace.first_divergence(&second.trace), None);
}

#[test]
fn different_seeds_draw_different_runs() {
    let a = run_seed_isolated(scenario(), 1);
    let b = run_seed_isolated(scenario(), 2);
    assert_ne!(a.trace.hash(), b.trace.hash(), "seeds must matter");
}

#[test]
fn seeds_draw_every_kind_of_configuration() {
    let draws: Vec<StorageDraw> = (0..200).map(StorageDraw::from_seed).collect();
    assert!(draws.iter().any(|d| d.compacted) && draws.iter().any(|d| !d.compacted));
    assert!(draws.iter().any(|d| d.bit_flip_permille > 0));
    assert!(draws.iter().any(|d| d.io_error_permille > 0));
    assert!(draws.iter().any(|d| d.retention_bytes.is_some()));
}

#[test]
fn the_report_is_a_page_with_a_chart() {
    let scenario = scenario();
    let run = run_seed_isolated(Arc::clone(&scenario), 3);
    let html = sim::report::render(scenario.as_ref(), 3, &run);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<svg") && html.contains("polyline"));
    assert!(html.contains("cargo sim --scenario storage"));
}

/// The negative control: a disk that lies about fsync loses flushed records at a crash, and the
/// campaign must say so. If this stops failing, the checks have gone blind.
#[test]
fn a_disk_that_lies_about_fsync_is_caught() {
    let lying: Arc<dyn Scenario> = Arc::new(StorageScenario::new(Some(200), true));
    let options = CampaignOptions {
        seeds: (1..=16).collect(),
        jobs: 2,
        check_determinism: false,
        progress: false,
    };
    let report = run_campaign(Arc::clone(&lying), &options);
    let caught: Vec<u64> = report.failures().map(|r| r.seed).collect();
    assert!(!caught.is_empty(), "16 seeds on a lying disk found nothing");
    let first = report.failures().next().expect("at least one failure");
    assert!(
        first.run.violation.is_some(),
        "a lying disk is a violation, not nondeterminism"
    );
    let replay = sim::runner::replay_command(lying.as_ref(), first.seed);
    assert!(
        replay.contains("--bug lying-fsync"),
        "the replay repeats the bug: {replay}"
    );
}
