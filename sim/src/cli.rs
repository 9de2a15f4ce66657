//! Argument parsing and the top-level commands of `cargo sim`.

use crate::runner::{self, CampaignOptions, Scenario as _};
use crate::scenarios;
use std::sync::Arc;

/// The usage text.
pub const USAGE: &str = "\
cargo sim [OPTIONS]
cargo sim matrix [--seeds N] [--start N] [--jobs N] [--steps N] [--out DIR]

Runs a fault-injection simulation campaign. With no options: the embedded default campaign.
`matrix` runs the delivery-guarantee matrix (cluster scenario: acks x min ISR x unclean x
idempotence x fault family, --seeds per combination, default 12) and writes
DIR/guarantees.md and DIR/guarantees.html (default DIR: docs).

options:
  --scenario NAME     scenario to run (default: cluster); --list shows them
  --seed N            run one seed (replay); prints its trace tail on failure
  --seeds N           number of seeds in the campaign (default 500)
  --start N           first seed of the campaign (default 1)
  --jobs N            seeds run at once (default: available cores)
  --steps N           operations per seed (scenario default otherwise)
  --bug NAME          switch on a deliberately reintroduced bug (see --list)
  --schedule FILE     cluster: replace the seed's fault schedule with this JSON file
  --acks all|1|0      cluster: producer acks (default all)
  --min-isr N         cluster: the topic's min.insync.replicas (default 2)
  --unclean on|off    cluster: unclean leader election (default off)
  --idempotence on|off  cluster: idempotent producers (default on with acks=all)
  --faults FAMILY     cluster: only partitions, kills, pauses, disk, clock or wipe faults
  --no-operations     cluster: draw no operations (below)
  --shrink            with --seed (cluster): shrink the failing seed's fault schedule and
                      workload, write shrunk-seed-N.json and print the replay command
  --ci                CI mode: every seed runs twice, traces must be equal; with the cluster
                      scenario, every probe listed in sim/probes.txt must fire in some seed
  --check-determinism same as --ci's determinism check
  --verbose           with --seed: print every event of the run
  --report FILE.html  with --seed: write an HTML timeline of the run
  --list              list the scenarios
  --help              this text

cluster behaviours drawn per seed beside the faults (each from a stream of its own; `--seed N`
prints a seed's draw):
  operations          ~40% of seeds: the topic has small segments (segment.bytes 1-16 KiB),
                      retention by size and/or time (retention.bytes, retention.ms) and
                      housekeeping every 100 ms-2 s, so kills, wipes and isolations put
                      followers down across retention; records below the log start consumers
                      saw count as deleted, not lost (never in --faults cells)
  client shapes       each in ~30% of seeds: a LogAppendTime topic; producers sending record
                      timestamps -1; a raw producer sending one Produce request per broker with
                      a batch for each partition it leads and wrong header max timestamps
                      (-1, 0, an hour ahead, a second behind); half the producers send header
                      max timestamp -1 (sarama before 1.45.1, librdkafka's C++ API)
  producer lanes      each producer sends from 1-4 concurrent lanes (Jepsen processes) sharing
                      one client, so a partition has several idempotent batches in flight (up
                      to 5, pipelined, retried with their sequences)
  stale requests      ~30% of idempotent seeds (never in --faults cells): copies of Produce
                      requests the producers had acknowledged are delivered again later, to the
                      leader or any broker, sometimes twice: old sequences, sequences out of
                      the broker's last five, fenced epochs; none may be appended again
";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// List the scenarios.
    List,
    /// Run one seed.
    Replay {
        /// Scenario settings.
        settings: scenarios::Settings,
        /// The seed.
        seed: u64,
        /// Print every event.
        verbose: bool,
        /// Write an HTML timeline here.
        report: Option<String>,
        /// Also check the seed for determinism.
        check_determinism: bool,
    },
    /// Shrink a failing cluster seed.
    Shrink {
        /// Scenario settings.
        settings: scenarios::Settings,
        /// The failing seed.
        seed: u64,
    },
    /// Run the delivery-guarantee matrix and write its documents.
    Matrix {
        /// What to run.
        options: crate::matrix::MatrixOptions,
        /// Where `guarantees.md` and `guarantees.html` go.
        out: String,
    },
    /// Run a campaign.
    Campaign {
        /// Scenario settings.
        settings: scenarios::Settings,
        /// First seed.
        start: u64,
        /// Number of seeds.
        count: u64,
        /// Parallel seeds.
        jobs: usize,
        /// `--ci` on the cluster scenario: every probe of `sim/probes.txt` must fire.
        require_probes: bool,
        /// Run each seed twice.
        check_determinism: bool,
    },
}

/// Seeds in the default campaign: enough to find the shallow bugs in about a minute.
const DEFAULT_SEEDS: u64 = 500;

fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not a valid number"))
}

fn on_off(flag: &str, value: Option<&String>) -> Result<bool, String> {
    match value.map(String::as_str) {
        Some("on" | "true") => Ok(true),
        Some("off" | "false") => Ok(false),
        _ => Err(format!("{flag} needs on or off")),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args.first().is_some_and(|a| a == "matrix") {
        return parse_matrix(&args[1..]);
    }
    let mut settings = scenarios::Settings::default();
    let (mut seed, mut start, mut count, mut jobs) = (None, 1u64, DEFAULT_SEEDS, None);
    let (mut check, mut verbose, mut report, mut shrink) = (false, false, None, false);
    let mut ci = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            "--scenario" => {
                let name = iter.next().ok_or("--scenario needs a name")?;
                settings.scenario = scenarios::parse_name(name)?;
            }
            "--seed" => seed = Some(number("--seed", iter.next())?),
            "--seeds" => count = number("--seeds", iter.next())?,
            "--start" => start = number("--start", iter.next())?,
            "--jobs" => jobs = Some(number("--jobs", iter.next())?),
            "--steps" => settings.steps = Some(number("--steps", iter.next())?),
            "--bug" => settings.bug = Some(iter.next().ok_or("--bug needs a name")?.clone()),
            "--schedule" => {
                let path = iter.next().ok_or("--schedule needs a file")?;
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("--schedule {path}: {e}"))?;
                let schedule = crate::cluster::nemesis::FaultSchedule::from_json(&text)
                    .map_err(|e| format!("--schedule {path}: {e}"))?;
                settings.schedule = Some((path.clone(), schedule));
            }
            "--acks" => {
                let value = iter.next().ok_or("--acks needs all, 1 or 0")?;
                settings.overrides.acks = Some(match value.as_str() {
                    "all" | "-1" => -1,
                    other => number("--acks", Some(&other.to_string()))?,
                });
            }
            "--min-isr" => settings.overrides.min_isr = Some(number("--min-isr", iter.next())?),
            "--unclean" => settings.overrides.unclean = Some(on_off("--unclean", iter.next())?),
            "--idempotence" => {
                settings.overrides.idempotence = Some(on_off("--idempotence", iter.next())?);
            }
            "--faults" => {
                let name = iter.next().ok_or("--faults needs a family")?;
                settings.overrides.faults = Some(crate::cluster::FaultFamily::parse(name)?);
            }
            "--no-operations" => settings.overrides.no_operations = true,
            "--ci" => (check, ci) = (true, true),
            "--check-determinism" => check = true,
            "--verbose" => verbose = true,
            "--shrink" => shrink = true,
            "--report" => report = Some(iter.next().ok_or("--report needs a file")?.clone()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if let Some(bug) = &settings.bug {
        scenarios::check_bug(settings.scenario, bug)?;
    }
    if settings.schedule.is_some() && settings.scenario != scenarios::ScenarioName::Cluster {
        return Err("--schedule goes with --scenario cluster".to_string());
    }
    if settings.overrides != crate::cluster::Overrides::default() {
        if settings.scenario != scenarios::ScenarioName::Cluster {
            return Err(
                "--acks, --min-isr, --unclean, --idempotence, --faults and --no-operations go with \
                 the cluster scenario"
                    .to_string(),
            );
        }
        settings.overrides.validate()?;
    }
    if count == 0 {
        return Err("--seeds must be at least 1".to_string());
    }
    if shrink {
        let seed = seed.ok_or("--shrink goes with --seed")?;
        if settings.scenario != scenarios::ScenarioName::Cluster {
            return Err("--shrink goes with --scenario cluster".to_string());
        }
        return Ok(Command::Shrink { settings, seed });
    }
    if let Some(seed) = seed {
        return Ok(Command::Replay {
            settings,
            seed,
            verbose,
            report,
            check_determinism: check,
        });
    }
    if report.is_some() {
        return Err("--report goes with --seed".to_string());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = jobs.unwrap_or(cores).max(1);
    Ok(Command::Campaign {
        require_probes: ci && settings.scenario == scenarios::ScenarioName::Cluster,
        settings,
        start,
        count,
        jobs,
        check_determinism: check,
    })
}

/// Parses the arguments after `matrix`.
fn parse_matrix(args: &[String]) -> Result<Command, String> {
    use crate::matrix::{MatrixOptions, SEEDS_PER_CELL_DEFAULT, SEEDS_PER_CELL_MAX};
    let (mut seeds, mut start, mut jobs) = (SEEDS_PER_CELL_DEFAULT, 1u64, None);
    let (mut steps, mut out) = (None, "docs".to_string());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seeds" => seeds = number("--seeds", iter.next())?,
            "--start" => start = number("--start", iter.next())?,
            "--jobs" => jobs = Some(number("--jobs", iter.next())?),
            "--steps" => steps = Some(number("--steps", iter.next())?),
            "--out" => out = iter.next().ok_or("--out needs a directory")?.clone(),
            other => return Err(format!("matrix: unknown option `{other}`")),
        }
    }
    if !(1..=SEEDS_PER_CELL_MAX).contains(&seeds) {
        return Err(format!(
            "matrix: --seeds must be in 1..={SEEDS_PER_CELL_MAX}"
        ));
    }
    if start.checked_add(seeds).is_none() {
        return Err("matrix: --start + --seeds overflows".to_string());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs: usize = jobs.unwrap_or(cores).max(1);
    Ok(Command::Matrix {
        options: MatrixOptions::full(seeds, start, jobs, steps),
        out,
    })
}

/// Runs a parsed command; `Ok(false)` means the simulation found a violation.
pub fn execute(command: Command) -> Result<bool, String> {
    match command {
        Command::Help => Ok(true),
        Command::List => {
            for (name, about) in scenarios::LIST {
                println!("{name:<12} {about}");
            }
            println!("\nbugs (--bug NAME):");
            for (scenario, bug, about) in scenarios::BUGS {
                println!("{scenario:<12} {bug:<22} {about}");
            }
            Ok(true)
        }
        Command::Replay {
            settings,
            seed,
            verbose,
            report,
            check_determinism,
        } => replay(settings, seed, verbose, report, check_determinism),
        Command::Shrink { settings, seed } => shrink(&settings, seed),
        Command::Matrix { options, out } => matrix(&options, &out),
        Command::Campaign {
            settings,
            start,
            count,
            jobs,
            check_determinism,
            require_probes,
        } => {
            let scenario = scenarios::build(&settings);
            let end = start
                .checked_add(count)
                .ok_or("--start + --seeds overflows")?;
            let options = CampaignOptions {
                seeds: (start..end).collect(),
                jobs,
                check_determinism,
                progress: true,
            };
            eprintln!(
                "rill sim: scenario {}, seeds {start}..{end}, {jobs} jobs{}",
                scenario.name(),
                if check_determinism {
                    ", each seed twice (determinism check)"
                } else {
                    ""
                }
            );
            let report = runner::run_campaign(Arc::clone(&scenario), &options);
            print!("{}", runner::summarize(scenario.as_ref(), &report));
            let cluster = settings.scenario == scenarios::ScenarioName::Cluster;
            print!("{}", crate::probes::summarize(&report, cluster));
            let missing = crate::probes::never_fired(&report);
            let probes_ok = !require_probes || missing.is_empty();
            if !probes_ok {
                println!(
                    "FAILED coverage: listed probes never fired in these seeds: {} (sim/probes.txt; \
                     --ci requires every one)",
                    missing.join(", ")
                );
            }
            let ok = report.failures().next().is_none() && probes_ok;
            println!("verdict: {}", if ok { "PASS" } else { "FAIL" });
            Ok(ok)
        }
    }
}

/// Runs the matrix, writes its documents; `Ok(false)` when a cell broke its row's promise.
fn matrix(options: &crate::matrix::MatrixOptions, out: &str) -> Result<bool, String> {
    let combinations = options.rows.len() * options.families.len();
    eprintln!(
        "rill sim: matrix, {combinations} combinations x {} seeds from {}, {} jobs",
        options.seeds_per_cell, options.start, options.jobs
    );
    let matrix = crate::matrix::run(options);
    let written = crate::matrix::write(&matrix, std::path::Path::new(out))?;
    print!("{}", crate::matrix::summarize(&matrix));
    for path in written {
        println!("written: {}", path.display());
    }
    let ok = matrix
        .cells
        .iter()
        .all(|c| c.verdict() != crate::matrix::Verdict::Violated);
    println!("verdict: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

fn shrink(settings: &scenarios::Settings, seed: u64) -> Result<bool, String> {
    let scenario = scenarios::cluster(settings);
    println!("seed {seed}: {}", scenario.describe(seed));
    let path = format!("shrunk-seed-{seed}.json");
    let shrunk = crate::cluster::shrink::shrink(&scenario, seed, &path)?;
    std::fs::write(&path, shrunk.schedule.to_json()).map_err(|e| format!("writing {path}: {e}"))?;
    let replay = scenario
        .with_steps(shrunk.steps)
        .with_schedule(path.clone(), shrunk.schedule.clone());
    println!(
        "shrunk in {} runs to {} faults{}: [{}]",
        shrunk.runs,
        shrunk.schedule.faults.len(),
        shrunk
            .steps
            .map_or(String::new(), |s| format!(", {s} sends per producer")),
        shrunk.schedule.summary()
    );
    println!("still fails with: {}", shrunk.violation);
    println!("schedule written to {path}");
    println!("replay: {}", runner::replay_command(&replay, seed));
    Ok(false)
}

fn replay(
    settings: scenarios::Settings,
    seed: u64,
    verbose: bool,
    report: Option<String>,
    check_determinism: bool,
) -> Result<bool, String> {
    let scenario = scenarios::build(&settings);
    println!("seed {seed}: {}", scenario.describe(seed));
    let run = runner::run_seed_isolated(Arc::clone(&scenario), seed);
    if verbose {
        print!("{}", run.trace.tail(usize::MAX));
    }
    let mut ok = run.violation.is_none();
    if check_determinism {
        let again = runner::run_seed_isolated(Arc::clone(&scenario), seed);
        if let Some(divergence) = run.trace.first_divergence(&again.trace) {
            println!("NONDETERMINISTIC: {divergence}");
            ok = false;
        }
    }
    if let Some(path) = report {
        let html = crate::report::render(scenario.as_ref(), seed, &run);
        std::fs::write(&path, html).map_err(|e| format!("writing {path}: {e}"))?;
        println!("report written to {path}");
    }
    println!(
        "{} steps, {:.1} s simulated, trace hash {:016x}",
        run.steps,
        run.simulated_ms as f64 / 1000.0,
        run.trace.hash()
    );
    match &run.violation {
        Some(violation) => {
            if !verbose {
                println!("last events:\n{}", run.trace.tail(40));
            }
            println!("VIOLATION: {violation}");
            println!(
                "replay: {}",
                runner::replay_command(scenario.as_ref(), seed)
            );
        }
        None if ok => println!("verdict: PASS"),
        None => {}
    }
    Ok(ok)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn no_arguments_is_the_default_campaign() {
        match parse(&[]).expect("empty arguments parse") {
            Command::Campaign {
                start,
                count,
                check_determinism,
                ..
            } => {
                assert_eq!((start, count, check_determinism), (1, DEFAULT_SEEDS, false));
            }
            other => panic!("expected a campaign, got {other:?}"),
        }
    }

    #[test]
    fn a_seed_means_replay() {
        let command = parse(&args("--seed 42 --verbose")).expect("parses");
        assert!(matches!(
            command,
            Command::Replay {
                seed: 42,
                verbose: true,
                ..
            }
        ));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(parse(&args("--seeds"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&args("--seeds x"))
            .unwrap_err()
            .contains("not a valid number"));
        assert!(parse(&args("--frobnicate"))
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse(&args("--seeds 0")).is_err());
        assert!(parse(&args("--report x.html")).is_err());
        assert!(parse(&args("matrix --seeds 0")).is_err());
        assert!(parse(&args("matrix --acks 1"))
            .unwrap_err()
            .contains("unknown option"));
    }

    #[test]
    fn a_replay_command_keeps_no_operations() {
        // The replay line of a `--no-operations` campaign's failure must draw no operations
        // too, or it replays a different run.
        let Ok(Command::Campaign { settings, .. }) = parse(&args("--no-operations --seeds 3"))
        else {
            panic!("a campaign");
        };
        let replay = runner::replay_command(scenarios::build(&settings).as_ref(), 7);
        assert!(replay.contains("--no-operations"), "{replay}");
        let words: Vec<String> = replay.split_whitespace().skip(2).map(String::from).collect();
        match parse(&words) {
            Ok(Command::Replay { settings: again, .. }) => assert_eq!(again, settings),
            other => panic!("the replay line parses back: {other:?}"),
        }
    }

    #[test]
    fn matrix_takes_its_own_options() {
        match parse(&args(
            "matrix --seeds 3 --start 7 --jobs 2 --steps 40 --out /tmp/m",
        )) {
            Ok(Command::Matrix { options, out }) => {
                assert_eq!(
                    (options.seeds_per_cell, options.start, options.jobs),
                    (3, 7, 2)
                );
                assert_eq!((options.steps, out.as_str()), (Some(40), "/tmp/m"));
                assert_eq!(
                    options.rows.len() * options.families.len(),
                    16 * crate::cluster::FaultFamily::ALL.len()
                );
            }
            other => panic!("expected the matrix, got {other:?}"),
        }
        match parse(&args("matrix")) {
            Ok(Command::Matrix { options, out }) => {
                assert_eq!((options.seeds_per_cell, out.as_str()), (12, "docs"));
            }
            other => panic!("expected the matrix, got {other:?}"),
        }
    }
}
