//! `--shrink`: from a failing seed, the smallest fault schedule (and workload) that still fails.
//!
//! Delta debugging (Zeller's ddmin) over the schedule's faults: try dropping chunks of the list,
//! keep any smaller schedule that still fails, halve the chunk size when nothing can go. Then
//! fewer sends per producer, halving while the failure stays. Every candidate is one full run of
//! the seed on a fresh thread, so a shrink is bounded by [`SHRINK_RUNS_MAX`] runs.

use super::nemesis::FaultSchedule;
use super::ClusterScenario;
use crate::runner::{run_seed_isolated, Scenario};
use std::sync::Arc;

/// Most runs one shrink spends.
pub const SHRINK_RUNS_MAX: u32 = 80;

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: FaultSchedule,
    /// The smallest failing sends-per-producer found (`None`: the scenario's default).
    pub steps: Option<u64>,
    /// The violation of the smallest failing run.
    pub violation: String,
    /// Runs spent.
    pub runs: u32,
}

/// What kind of failure a violation is: its first anomaly class, or `liveness`, or `panic`. A
/// candidate counts as failing only with the original's kind, so shrinking does not wander off to
/// a different bug.
pub fn signature(violation: &str) -> String {
    if let Some(classes) = violation.strip_prefix("history anomalies ") {
        let first = classes.split([',', ' ']).next().unwrap_or_default();
        return format!("anomaly {first}");
    }
    violation.split(':').next().unwrap_or_default().to_string()
}

/// Drives candidate runs.
struct Shrinker<'a> {
    /// The failing scenario (bug switch, steps).
    base: &'a ClusterScenario,
    /// The seed.
    seed: u64,
    /// Where candidates' schedules are said to live (for their replay arguments).
    path: String,
    /// Runs spent so far.
    runs: u32,
    /// Completed operations of the last failing run: an upper bound on sends per producer.
    failing_steps: u64,
    /// The original failure's [`signature`], once known.
    wanted: Option<String>,
}

impl Shrinker<'_> {
    /// Runs one candidate; `Some(violation)` if it still fails.
    fn fails(&mut self, schedule: &FaultSchedule, steps: Option<u64>) -> Option<String> {
        assert!(self.runs < SHRINK_RUNS_MAX, "the caller checks the budget");
        self.runs += 1;
        let scenario = self
            .base
            .with_steps(steps)
            .with_schedule(self.path.clone(), schedule.clone());
        let scenario: Arc<dyn Scenario> = Arc::new(scenario);
        let run = run_seed_isolated(scenario, self.seed);
        let outcome = match &run.violation {
            None => "passes",
            Some(v) if self.wanted.as_ref().is_none_or(|w| *w == signature(v)) => "fails",
            Some(_) => "fails differently (counts as passing)",
        };
        eprintln!(
            "  shrink run {:>3}: {} faults, steps {:?}: {outcome}",
            self.runs,
            schedule.faults.len(),
            steps,
        );
        let violation = run.violation.filter(|v| {
            let kind = signature(v);
            self.wanted.get_or_insert_with(|| kind.clone()) == &kind
        });
        if violation.is_some() {
            self.failing_steps = run.steps;
        }
        violation
    }

    fn budget_left(&self) -> bool {
        self.runs < SHRINK_RUNS_MAX
    }
}

/// Shrinks the failing `seed` of `base`; `Err` if the seed does not fail to begin with.
pub fn shrink(base: &ClusterScenario, seed: u64, path: &str) -> Result<Shrunk, String> {
    let mut shrinker = Shrinker {
        base,
        seed,
        path: path.to_string(),
        runs: 0,
        failing_steps: 0,
        wanted: None,
    };
    let mut schedule = base.draw(seed).schedule;
    let mut steps = base.steps();
    let mut violation = shrinker
        .fails(&schedule, steps)
        .ok_or_else(|| format!("seed {seed} does not fail: nothing to shrink"))?;
    let mut chunk = schedule.faults.len().div_ceil(2).max(1);
    while !schedule.faults.is_empty() && shrinker.budget_left() {
        let mut removed_any = false;
        let mut start = 0;
        while start < schedule.faults.len() && shrinker.budget_left() {
            let mut candidate = schedule.clone();
            let end = (start + chunk).min(candidate.faults.len());
            candidate.faults.drain(start..end);
            match shrinker.fails(&candidate, steps) {
                Some(v) => {
                    schedule = candidate;
                    violation = v;
                    removed_any = true;
                }
                None => start += chunk,
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
    }
    let default = steps.unwrap_or(super::SENDS_PER_PRODUCER_DEFAULT);
    let mut sends = default.min(shrinker.failing_steps.max(1));
    while sends > 1 && shrinker.budget_left() {
        let fewer = sends / 2;
        match shrinker.fails(&schedule, Some(fewer)) {
            Some(v) => {
                sends = fewer;
                steps = Some(fewer);
                violation = v;
            }
            None => break,
        }
    }
    assert!(
        shrinker.runs <= SHRINK_RUNS_MAX,
        "the budget bounds the runs"
    );
    Ok(Shrunk {
        schedule,
        steps,
        violation,
        runs: shrinker.runs,
    })
}
