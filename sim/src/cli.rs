//! Argument parsing and the top-level commands of `cargo sim`.

use crate::runner::{self, CampaignOptions, Scenario as _};
use crate::scenarios;
use crate::shard::{Shard, ShardFile, ShardRun};
use std::sync::Arc;

/// The usage text.
pub const USAGE: &str = "\
cargo sim [OPTIONS]
cargo sim matrix [--seeds N] [--start N] [--jobs N] [--steps N] [--out DIR]
cargo sim [matrix] [OPTIONS] --shard K/N --json FILE
cargo sim merge [--out DIR] FILE...

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
  --no-client-shapes  cluster: draw no client shapes (below); with --wipes-ungated, for
                      replaying regressions found before these existed
  --wipes-ungated     cluster: wipe a disk whenever scheduled, even while it may hold the
                      last copy of acknowledged records
  --shrink            with --seed (cluster): shrink the failing seed's fault schedule and
                      workload, write shrunk-seed-N.json and print the replay command
  --ci                CI mode: every seed runs twice, traces must be equal; with the cluster
                      scenario, every probe listed in sim/probes.txt must fire in some seed
  --check-determinism same as --ci's determinism check
  --verbose           with --seed: print every event of the run
  --report FILE.html  with --seed: write an HTML timeline of the run
  --shard K/N         run only shard K of N: the campaign's seeds (the matrix's runs) at
                      positions K-1, K-1+N, K-1+2N, ... of the seed range; with --ci the
                      listed probes are checked by `merge`, across all shards
  --json FILE         write the run's results to FILE (schema rill-sim-shard/1: build,
                      settings, each seed's outcome, failures with replay commands, probe and
                      BUGGIFY tallies, matrix outcomes, timing); without --shard: shard 1/1
  --list              list the scenarios
  --help              this text

merge: `cargo sim merge FILE...` reads the --json files of every shard of one run, checks
they belong together (one build, the same settings, shards 1..N each once; a missing or
doubled shard is named) and prints the verdict and tables one unsharded run prints, with its
exit code (0 pass, 1 fail); a matrix's documents go to --out DIR (default docs). Run a
million seeds on many machines: deploy/sim/k8s-indexed-job.yaml (a Kubernetes Indexed Job)
and .github/workflows/sim-shards.yml (docs/sharded-campaigns.md).

cluster behaviours drawn per seed beside the faults (each from a stream of its own; `--seed N`
prints a seed's draw):
  operations          ~40% of seeds: the topic has small segments (segment.bytes 1-16 KiB),
                      retention by size and/or time (retention.bytes, retention.ms) and
                      housekeeping every 100 ms-2 s, so kills, wipes and isolations put
                      followers down across retention; records below the log start consumers
                      saw count as deleted, not lost (never in --faults cells)
  journal             85% of seeds: flushes go to each broker's journal (log.journal, the
                      default) in files of 16 KiB, 256 KiB or 64 MiB, so files roll, are
                      released and force checkpoints within a run; a power loss may come right
                      after a journal's sync (crash.journal_synced); otherwise every round
                      syncs the segment files (log.journal = false)
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
                      the broker's last five, fenced epochs; none may be appended again, and
                      a copy of a fenced epoch must be refused for its epoch, not judged by
                      its sequence (answered as a duplicate or out of order: a violation)
  rot                 ~20% of seeds (never in --faults cells): a node's flushed data rots at
                      rest (one bit of one segment of each of its partitions) while its disk
                      fails writes and syncs, so partitions fail and their repairs read the
                      whole log, find the rot, set the log aside and rebuild it from the
                      leader; in half of them another node is down until fenced first and
                      every node loses power as a repair sets a log aside
                      (crash.log_set_aside), or 6 s after the rot when none does: the copy
                      must come back unclean, never elected as if it still held what it lost
  consumer group      ~30% of seeds: 2-3 members of one group subscribe, poll, commit every
                      few polls and are replaced every 2-8 s (LeaveGroup or an expired
                      session); a member that joined a newer generation sometimes sends its
                      previous generation's commit again. Checked: a generation's
                      assignment is disjoint and every member got the leader's entry; no
                      commit of a generation its member had left is acknowledged; no commit
                      passes what the members could read; after healing fresh members
                      converge (every partition owned by one) and OffsetFetch reads back the
                      last acknowledged commit (or a later one whose answer was lost)
  opening episodes    never in --faults cells; the seed's faults before the episode's end are
                      dropped. ~5% of seeds without a consumer group open with the wipe
                      family's in-sync-copies-lost episode: with clean elections the partitions
                      stay offline (allowed: only `unseen` values then), and no unclean
                      election may happen on a topic that forbids it. A third of the other
                      split-shape seeds open with an offline copy in every ELR at an election:
                      a node killed until fenced, a second one's disk failing (its copies
                      offline, into the ELR), the third killed until fenced
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
        /// Only this share of the runs (`--shard K/N`).
        shard: Option<Shard>,
        /// Write the outcomes here instead of the documents (`--json FILE`).
        json: Option<String>,
    },
    /// Merge the `--json` files of a sharded run.
    Merge {
        /// The shard files.
        files: Vec<String>,
        /// Where a matrix's documents go.
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
        /// Only this share of the seeds (`--shard K/N`).
        shard: Option<Shard>,
        /// Write the results here (`--json FILE`).
        json: Option<String>,
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
    if args.first().is_some_and(|a| a == "merge") {
        return parse_merge(&args[1..]);
    }
    let mut settings = scenarios::Settings::default();
    let (mut seed, mut start, mut count, mut jobs) = (None, 1u64, DEFAULT_SEEDS, None);
    let (mut check, mut verbose, mut report, mut shrink) = (false, false, None, false);
    let (mut ci, mut shard, mut json) = (false, None, None);
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
            "--no-client-shapes" => settings.overrides.no_client_shapes = true,
            "--wipes-ungated" => settings.overrides.wipes_ungated = true,
            "--ci" => (check, ci) = (true, true),
            "--check-determinism" => check = true,
            "--verbose" => verbose = true,
            "--shrink" => shrink = true,
            "--report" => report = Some(iter.next().ok_or("--report needs a file")?.clone()),
            "--shard" => shard = Some(Shard::parse(iter.next().ok_or("--shard needs K/N")?)?),
            "--json" => json = Some(iter.next().ok_or("--json needs a file")?.clone()),
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
                "--acks, --min-isr, --unclean, --idempotence, --faults, --no-operations, \
                 --no-client-shapes and --wipes-ungated go with the cluster scenario"
                    .to_string(),
            );
        }
        settings.overrides.validate()?;
    }
    if count == 0 {
        return Err("--seeds must be at least 1".to_string());
    }
    if (shard.is_some() || json.is_some()) && (seed.is_some() || shrink) {
        return Err("--shard and --json go with a campaign, not --seed".to_string());
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
        shard,
        json,
    })
}

/// Parses the arguments after `matrix`.
fn parse_matrix(args: &[String]) -> Result<Command, String> {
    use crate::matrix::{MatrixOptions, SEEDS_PER_CELL_DEFAULT, SEEDS_PER_CELL_MAX};
    let (mut seeds, mut start, mut jobs) = (SEEDS_PER_CELL_DEFAULT, 1u64, None);
    let (mut steps, mut out) = (None, "docs".to_string());
    let (mut shard, mut json) = (None, None);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seeds" => seeds = number("--seeds", iter.next())?,
            "--start" => start = number("--start", iter.next())?,
            "--jobs" => jobs = Some(number("--jobs", iter.next())?),
            "--steps" => steps = Some(number("--steps", iter.next())?),
            "--out" => out = iter.next().ok_or("--out needs a directory")?.clone(),
            "--shard" => shard = Some(Shard::parse(iter.next().ok_or("--shard needs K/N")?)?),
            "--json" => json = Some(iter.next().ok_or("--json needs a file")?.clone()),
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
        shard,
        json,
    })
}

/// Parses the arguments after `merge`.
fn parse_merge(args: &[String]) -> Result<Command, String> {
    let (mut files, mut out) = (Vec::new(), "docs".to_string());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--out" => out = iter.next().ok_or("--out needs a directory")?.clone(),
            flag if flag.starts_with("--") => {
                return Err(format!("merge: unknown option `{flag}`"));
            }
            file => files.push(file.to_string()),
        }
    }
    if files.is_empty() {
        return Err("merge needs the shard files (`cargo sim merge FILE...`)".to_string());
    }
    if files.len() as u64 > crate::shard::SHARDS_MAX {
        return Err(format!(
            "merge: {} files, at most {} shards",
            files.len(),
            crate::shard::SHARDS_MAX
        ));
    }
    Ok(Command::Merge { files, out })
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
        Command::Matrix {
            options,
            out,
            shard,
            json,
        } => matrix(&options, &out, shard, json.as_deref()),
        Command::Merge { files, out } => merge(&files, &out),
        Command::Campaign {
            settings,
            start,
            count,
            jobs,
            check_determinism,
            require_probes,
            shard,
            json,
        } => {
            let scenario = scenarios::build(&settings);
            let end = start
                .checked_add(count)
                .ok_or("--start + --seeds overflows")?;
            let all: Vec<u64> = (start..end).collect();
            let seeds = match shard {
                Some(shard) => shard.select(&all),
                None => all,
            };
            if seeds.is_empty() {
                return Err(format!(
                    "shard {} of {count} seeds has no seeds: use at most {count} shards",
                    shard.unwrap_or(Shard::WHOLE)
                ));
            }
            let options = CampaignOptions {
                seeds,
                jobs,
                check_determinism,
                progress: true,
            };
            eprintln!(
                "rill sim: scenario {}, seeds {start}..{end}{}, {jobs} jobs{}",
                scenario.name(),
                shard.map_or(String::new(), |s| format!(
                    ", shard {s} ({} seeds)",
                    options.seeds.len()
                )),
                if check_determinism {
                    ", each seed twice (determinism check)"
                } else {
                    ""
                }
            );
            let report = runner::run_campaign(Arc::clone(&scenario), &options);
            let coverage = crate::probes::Tally::of(&report);
            let cluster = settings.scenario == scenarios::ScenarioName::Cluster;
            // A shard alone need not reach every listed probe: `merge` checks them across all.
            let ok = campaign_verdict(
                scenario.as_ref(),
                &report,
                &coverage,
                cluster,
                require_probes && shard.is_none(),
            );
            if require_probes && shard.is_some() {
                println!("listed probes: checked across all shards by `cargo sim merge`");
            }
            if let Some(path) = json {
                let args = campaign_args(
                    scenario.as_ref(),
                    start,
                    count,
                    check_determinism,
                    require_probes,
                );
                // The settings must come back from the arguments, or merge would judge the
                // shards' seeds as another scenario's.
                let round_trip = match parse(&args) {
                    Ok(Command::Campaign {
                        settings: s,
                        start: a,
                        count: c,
                        check_determinism: d,
                        require_probes: p,
                        ..
                    }) => {
                        s == settings
                            && (a, c, d, p) == (start, count, check_determinism, require_probes)
                    }
                    _ => false,
                };
                if !round_trip {
                    return Err(format!(
                        "--json: these settings do not survive as arguments ({}), so they \
                         cannot be merged",
                        args.join(" ")
                    ));
                }
                let records = report
                    .results
                    .iter()
                    .map(|r| crate::shard::SeedRecord::of(scenario.as_ref(), r))
                    .collect();
                let run = ShardRun::Campaign(crate::shard::CampaignShard {
                    args,
                    schedule: settings.schedule.as_ref().map(|(_, s)| s.to_json()),
                    seeds: records,
                    coverage,
                });
                let shard = shard.unwrap_or(Shard::WHOLE);
                ShardFile::new(shard, report.wall, jobs, run).write(&path)?;
                println!("results written to {path}");
            }
            Ok(ok)
        }
    }
}

/// The arguments that give a campaign's settings (what a shard file records and `merge`
/// parses back): the scenario, its replay arguments, the seed range and the checks.
fn campaign_args(
    scenario: &dyn runner::Scenario,
    start: u64,
    count: u64,
    check_determinism: bool,
    require_probes: bool,
) -> Vec<String> {
    let mut args = vec!["--scenario".to_string(), scenario.name().to_string()];
    // Replay arguments are `--flag value` words: split at the first space only (a schedule's
    // path may hold spaces).
    for word in scenario.replay_args() {
        match word.split_once(' ') {
            Some((flag, value)) => args.extend([flag.to_string(), value.to_string()]),
            None => args.push(word),
        }
    }
    args.extend(["--start".to_string(), start.to_string()]);
    args.extend(["--seeds".to_string(), count.to_string()]);
    if require_probes {
        args.push("--ci".to_string());
    } else if check_determinism {
        args.push("--check-determinism".to_string());
    }
    assert!(args.len() >= 6, "scenario, start and seeds at least");
    args
}

/// Prints a campaign's summary, coverage and verdict (one run or merged shards); whether it
/// passed.
fn campaign_verdict(
    scenario: &dyn runner::Scenario,
    report: &runner::CampaignReport,
    coverage: &crate::probes::Tally,
    cluster: bool,
    require_probes: bool,
) -> bool {
    assert_eq!(coverage.seeds, report.results.len() as u64);
    print!("{}", runner::summarize(scenario, report));
    print!("{}", crate::probes::summarize(coverage, cluster));
    let missing = crate::probes::never_fired(coverage);
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
    ok
}

/// `cargo sim merge`: checks that the shard files belong together and prints the verdict and
/// tables of the whole run; `Ok(false)` when it failed.
fn merge(paths: &[String], out: &str) -> Result<bool, String> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        files.push((path.clone(), ShardFile::read(path)?));
    }
    crate::shard::check_together(&files)?;
    let (first_path, first) = (&files[0].0, &files[0].1);
    eprintln!(
        "rill sim: merging {} shards ({}): {}",
        files.len(),
        first.build,
        first.args().join(" ")
    );
    let current = crate::shard::Build::current();
    if current != first.build {
        eprintln!("rill sim: note: this build ({current}) is not the shards' build");
    }
    let unparsable = || {
        format!(
            "{first_path}: its settings do not parse: {}",
            first.args().join(" ")
        )
    };
    match &first.run {
        ShardRun::Campaign(campaign) => {
            let Ok(Command::Campaign {
                settings,
                start,
                count,
                require_probes,
                ..
            }) = parse(&campaign.args)
            else {
                return Err(unparsable());
            };
            let scenario = scenarios::build(&settings);
            let end = start
                .checked_add(count)
                .ok_or("--start + --seeds overflows")?;
            let seeds: Vec<u64> = (start..end).collect();
            let merged = crate::shard::merge_campaign(&files, scenario.as_ref(), &seeds)?;
            println!(
                "merged {} shards: longest shard {:.1} s; wall time below is the shards' summed",
                files.len(),
                merged.longest_shard.as_secs_f64()
            );
            let cluster = settings.scenario == scenarios::ScenarioName::Cluster;
            Ok(campaign_verdict(
                scenario.as_ref(),
                &merged.report,
                &merged.coverage,
                cluster,
                require_probes,
            ))
        }
        ShardRun::Matrix(shard) => {
            let mut args = vec!["matrix".to_string()];
            args.extend(shard.args.iter().cloned());
            let Ok(Command::Matrix { options, .. }) = parse(&args) else {
                return Err(unparsable());
            };
            let work = crate::matrix::work(&options);
            let (outcomes, wall, jobs) = crate::shard::merge_matrix(&files, &work)?;
            let params = crate::matrix::Params {
                seeds_per_cell: options.seeds_per_cell,
                start: options.start,
                steps: options.steps,
                jobs,
                wall_s: wall.as_secs_f64(),
                commit: first.build.commit.clone(),
            };
            println!(
                "merged {} shards: wall time below is the shards' summed",
                files.len()
            );
            matrix_verdict(&crate::matrix::tables(params, &options, &outcomes), out)
        }
    }
}

/// Runs the matrix (or one shard of its runs) and writes its documents (a shard: its `--json`
/// file instead); `Ok(false)` when a cell broke its row's promise.
fn matrix(
    options: &crate::matrix::MatrixOptions,
    out: &str,
    shard: Option<Shard>,
    json: Option<&str>,
) -> Result<bool, String> {
    let combinations = options.rows.len() * options.families.len();
    eprintln!(
        "rill sim: matrix, {combinations} combinations x {} seeds from {}, {} jobs{}",
        options.seeds_per_cell,
        options.start,
        options.jobs,
        shard.map_or(String::new(), |s| format!(", shard {s}"))
    );
    let Some(path) = json else {
        if shard.is_some() {
            return Err("matrix: --shard needs --json FILE (merge makes the documents)".into());
        }
        return matrix_verdict(&crate::matrix::run(options), out);
    };
    let shard = shard.unwrap_or(Shard::WHOLE);
    let work = shard.select(&crate::matrix::work(options));
    if work.is_empty() {
        return Err(format!(
            "matrix shard {shard} has no runs: use fewer shards"
        ));
    }
    let started = std::time::Instant::now();
    let outcomes = crate::matrix::run_work(options, &work);
    let failed = outcomes
        .iter()
        .filter(|(_, o)| o.crash.is_some() || o.liveness.is_some())
        .count();
    let mut args = vec![
        "--seeds".to_string(),
        options.seeds_per_cell.to_string(),
        "--start".to_string(),
        options.start.to_string(),
    ];
    if let Some(steps) = options.steps {
        args.extend(["--steps".to_string(), steps.to_string()]);
    }
    let run = ShardRun::Matrix(crate::shard::MatrixShard::new(args, &work, &outcomes));
    ShardFile::new(shard, started.elapsed(), options.jobs, run).write(path)?;
    println!(
        "matrix shard {shard}: {} runs, {failed} liveness failures or crashes; results written \
         to {path} (`cargo sim merge` gives the verdict and the documents)",
        work.len()
    );
    Ok(true)
}

/// Writes the matrix's documents, prints its summary and verdict (one run or merged shards).
fn matrix_verdict(matrix: &crate::matrix::Matrix, out: &str) -> Result<bool, String> {
    let written = crate::matrix::write(matrix, std::path::Path::new(out))?;
    print!("{}", crate::matrix::summarize(matrix));
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
        // too, or it replays a different run; so for the regressions' overrides.
        let Ok(Command::Campaign { settings, .. }) = parse(&args(
            "--no-operations --no-client-shapes --wipes-ungated --seeds 3",
        )) else {
            panic!("a campaign");
        };
        assert!(settings.overrides.no_client_shapes && settings.overrides.wipes_ungated);
        let replay = runner::replay_command(scenarios::build(&settings).as_ref(), 7);
        for flag in ["--no-operations", "--no-client-shapes", "--wipes-ungated"] {
            assert!(replay.contains(flag), "{flag}: {replay}");
        }
        let words: Vec<String> = replay
            .split_whitespace()
            .skip(2)
            .map(String::from)
            .collect();
        match parse(&words) {
            Ok(Command::Replay {
                settings: again, ..
            }) => assert_eq!(again, settings),
            other => panic!("the replay line parses back: {other:?}"),
        }
    }

    #[test]
    fn matrix_takes_its_own_options() {
        match parse(&args(
            "matrix --seeds 3 --start 7 --jobs 2 --steps 40 --out /tmp/m",
        )) {
            Ok(Command::Matrix { options, out, .. }) => {
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
            Ok(Command::Matrix { options, out, .. }) => {
                assert_eq!((options.seeds_per_cell, out.as_str()), (12, "docs"));
            }
            other => panic!("expected the matrix, got {other:?}"),
        }
    }
}
