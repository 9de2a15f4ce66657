//! Runs a scenario over many seeds: each seed on a fresh thread (madsim and our scenarios keep
//! thread-local state that must not leak from one seed to the next), `jobs` seeds at a time,
//! optionally each seed twice to check determinism, with progress and a summary.

use crate::trace::{Divergence, Trace};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Stack for a seed's thread: simulated clusters nest deep futures.
const SEED_THREAD_STACK_BYTES: usize = 32 * 1024 * 1024;

/// A family of simulated runs, each fully determined by its seed.
pub trait Scenario: Send + Sync {
    /// The name `--scenario` selects it by.
    fn name(&self) -> &'static str;
    /// What the seed draws (configuration, fault mix), printed beside the seed.
    fn describe(&self, seed: u64) -> String;
    /// Runs the seed to completion. A panic inside counts as a violation.
    fn run(&self, seed: u64) -> SeedRun;
    /// The arguments, beyond `--seed`, that reproduce this scenario's configuration.
    fn replay_args(&self) -> Vec<String>;
}

/// What one run of one seed produced.
#[derive(Debug, Clone, Default)]
pub struct SeedRun {
    /// Every step taken and observed, for the determinism check and for reading a failure.
    pub trace: Trace,
    /// The first broken rule, if any, in words a person can act on.
    pub violation: Option<String>,
    /// How many operations the run performed.
    pub steps: u64,
    /// Simulated time the run covered, in milliseconds.
    pub simulated_ms: u64,
    /// Series and fault marks for the HTML report.
    pub timeline: crate::report::Timeline,
    /// The probes the run hit and the BUGGIFY sites it fired (collected by the runner).
    pub coverage: crate::probes::Coverage,
}

/// The verdict on one seed.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The (first) run.
    pub run: SeedRun,
    /// With the determinism check: where the second run differed, if it did.
    pub divergence: Option<Divergence>,
    /// Wall-clock time the seed took (both runs).
    pub wall: Duration,
}

impl SeedResult {
    /// Whether this seed broke a rule or was nondeterministic.
    pub fn failed(&self) -> bool {
        self.run.violation.is_some() || self.divergence.is_some()
    }
}

/// How to run a campaign.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// Seeds run at once (threads).
    pub jobs: usize,
    /// Run every seed twice and require equal traces.
    pub check_determinism: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// The results of a campaign, sorted by seed.
#[derive(Debug, Clone)]
pub struct CampaignReport {
    /// One result per seed.
    pub results: Vec<SeedResult>,
    /// Wall-clock time of the whole campaign.
    pub wall: Duration,
    /// Jobs used.
    pub jobs: usize,
}

impl CampaignReport {
    /// The seeds that failed.
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|r| r.failed())
    }
}

/// Runs one seed on a fresh thread; a panic becomes a violation carrying its message.
pub fn run_seed_isolated(scenario: Arc<dyn Scenario>, seed: u64) -> SeedRun {
    let runner = Arc::clone(&scenario);
    let handle = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(SEED_THREAD_STACK_BYTES)
        .spawn(move || {
            let mut run = runner.run(seed);
            // The hooks' state is this thread's: this run's alone.
            run.coverage = crate::probes::Coverage::of_this_thread();
            run
        })
        .expect("the OS can start a thread for a seed");
    match handle.join() {
        Ok(run) => run,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic payload".to_string());
            SeedRun {
                violation: Some(format!("panic: {message}")),
                ..SeedRun::default()
            }
        }
    }
}

fn run_one(scenario: &Arc<dyn Scenario>, seed: u64, check_determinism: bool) -> SeedResult {
    let started = Instant::now();
    let run = run_seed_isolated(Arc::clone(scenario), seed);
    let divergence = if check_determinism {
        let again = run_seed_isolated(Arc::clone(scenario), seed);
        run.trace.first_divergence(&again.trace)
    } else {
        None
    };
    SeedResult {
        seed,
        run,
        divergence,
        wall: started.elapsed(),
    }
}

/// Runs every seed of `options` and returns the results sorted by seed.
pub fn run_campaign(scenario: Arc<dyn Scenario>, options: &CampaignOptions) -> CampaignReport {
    assert!(options.jobs >= 1, "a campaign needs at least one job");
    assert!(
        !options.seeds.is_empty(),
        "a campaign needs at least one seed"
    );
    let started = Instant::now();
    let seeds = Arc::new(options.seeds.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, receiver) = mpsc::channel::<SeedResult>();
    let mut workers = Vec::new();
    for _ in 0..options.jobs.min(seeds.len()) {
        let (seeds, next, sender) = (Arc::clone(&seeds), Arc::clone(&next), sender.clone());
        let scenario = Arc::clone(&scenario);
        let check = options.check_determinism;
        workers.push(std::thread::spawn(move || loop {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(&seed) = seeds.get(index) else { break };
            if sender.send(run_one(&scenario, seed, check)).is_err() {
                break;
            }
        }));
    }
    drop(sender);
    let progress = Progress::new(seeds.len() as u64, options.progress, "seeds", "failed");
    let mut results = Vec::with_capacity(seeds.len());
    for result in receiver {
        progress.advance(result.failed());
        results.push(result);
    }
    for worker in workers {
        worker
            .join()
            .expect("campaign workers do not panic: seeds run on their own threads");
    }
    progress.finish();
    results.sort_by_key(|r| r.seed);
    assert_eq!(
        results.len(),
        seeds.len(),
        "every seed reports exactly once"
    );
    CampaignReport {
        results,
        wall: started.elapsed(),
        jobs: options.jobs,
    }
}

/// A progress bar on a terminal; on a pipe (CI) a line every tenth of the work. Shared by the
/// campaign (seeds) and the guarantee matrix (runs).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::cell::Cell<u64>,
    failed: std::cell::Cell<u64>,
    enabled: bool,
    /// What is counted ("seeds", "runs").
    unit: &'static str,
    /// What a failure is called ("failed", "liveness failures or crashes").
    failures: &'static str,
}

impl Progress {
    pub(crate) fn new(
        total: u64,
        enabled: bool,
        unit: &'static str,
        failures: &'static str,
    ) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!(
                "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}} (eta {{eta}})"
            );
            let style = ProgressStyle::with_template(&template)
                .expect("the progress template is valid")
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            total,
            done: 0.into(),
            failed: 0.into(),
            enabled,
            unit,
            failures,
        }
    }

    pub(crate) fn advance(&self, failed: bool) {
        self.done.set(self.done.get() + 1);
        self.failed.set(self.failed.get() + u64::from(failed));
        let done = self.done.get();
        assert!(done <= self.total, "no more work than announced");
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} {}", self.failed.get(), self.failures));
                bar.inc(1);
            }
            None if self.enabled => {
                let step = (self.total / 10).max(1);
                if done.is_multiple_of(step) || done == self.total {
                    eprintln!(
                        "  {done}/{} {}, {} {}",
                        self.total,
                        self.unit,
                        self.failed.get(),
                        self.failures
                    );
                }
            }
            None => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The one-line command that replays `seed` of `scenario`.
pub fn replay_command(scenario: &dyn Scenario, seed: u64) -> String {
    let mut parts = vec![
        "cargo sim".to_string(),
        format!("--scenario {}", scenario.name()),
    ];
    parts.extend(scenario.replay_args());
    parts.push(format!("--seed {seed}"));
    parts.join(" ")
}

/// The human summary of a campaign: a table, then each failure with its replay command.
pub fn summarize(scenario: &dyn Scenario, report: &CampaignReport) -> String {
    use std::fmt::Write as _;
    let seeds = report.results.len() as u64;
    let failed = report.failures().count();
    let violations = report
        .results
        .iter()
        .filter(|r| r.run.violation.is_some())
        .count();
    let nondeterministic = report
        .results
        .iter()
        .filter(|r| r.divergence.is_some())
        .count();
    let steps: u64 = report.results.iter().map(|r| r.run.steps).sum();
    let simulated_ms: u64 = report.results.iter().map(|r| r.run.simulated_ms).sum();
    let wall = report.wall.as_secs_f64().max(1e-9);
    let mut out = String::new();
    let _ = writeln!(out, "scenario {:<24} jobs {}", scenario.name(), report.jobs);
    let _ = writeln!(out, "  seeds run           {seeds}");
    let _ = writeln!(out, "  seeds passed        {}", seeds - failed as u64);
    let _ = writeln!(out, "  violations          {violations}");
    let _ = writeln!(out, "  nondeterministic    {nondeterministic}");
    let _ = writeln!(out, "  operations          {steps}");
    let _ = writeln!(
        out,
        "  simulated time      {:.1} s",
        simulated_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "  wall time           {wall:.1} s");
    let _ = writeln!(
        out,
        "  simulated/wall      {:.0}x",
        simulated_ms as f64 / 1000.0 / wall
    );
    let _ = writeln!(
        out,
        "  seeds per hour      {:.0}",
        seeds as f64 * 3600.0 / wall
    );
    for result in report.failures() {
        let _ = writeln!(
            out,
            "\nFAILED seed {} ({})",
            result.seed,
            scenario.describe(result.seed)
        );
        if let Some(violation) = &result.run.violation {
            let _ = writeln!(out, "  violation: {violation}");
        }
        if let Some(divergence) = &result.divergence {
            let _ = writeln!(out, "  nondeterminism: {divergence}");
        }
        let _ = writeln!(out, "  replay: {}", replay_command(scenario, result.seed));
    }
    out
}
