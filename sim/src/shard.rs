//! Sharded campaigns: `cargo sim --shard K/N --json FILE` runs one share of a campaign's seeds
//! (or of a matrix's runs) and writes everything the verdict and the tables need into FILE;
//! `cargo sim merge FILE...` checks that the files belong together and prints what one
//! unsharded run prints, with its exit code.
//!
//! The split is strided: shard K of N takes the items at positions K-1, K-1+N, K-1+2N, ... of
//! the run's work list (the seeds in order; for the matrix, rows x families x seeds). Contiguous
//! blocks would be as easy to check, but the matrix's work list is ordered by row and family,
//! and families cost very different wall time (a kill or wipe seed waits for recovery), so
//! blocks would give some shards all of the slow families; strides give every shard the same
//! mix, and shards of a campaign stopped early each cover the whole seed range thinly.
//!
//! The file (schema [`SCHEMA`]) holds the build's identity, the shard, the settings as the
//! `cargo sim` arguments that reproduce them, each seed's outcome (failures with their
//! description and replay command), the probe and BUGGIFY tallies and the timing. Everything
//! but the timing is a function of the build, the settings and the seeds.

use crate::cluster::FaultFamily;
use crate::matrix::{SeedOutcome, Settings};
use crate::probes::Tally;
use crate::runner::{CampaignReport, SeedResult, SeedRun};
use crate::trace::Divergence;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The schema of a shard file; a reader accepts only this one (bump it on any change).
pub const SCHEMA: &str = "rill-sim-shard/1";
/// Most shards a run may be split into (a Kubernetes Indexed Job allows 100,000 completions).
pub const SHARDS_MAX: u64 = 100_000;
/// Largest shard file `merge` reads: a shard of a million-seed campaign is ~80 bytes a seed.
const FILE_BYTES_MAX: u64 = 1 << 30;

/// One share of a run: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// K, in 1..=count.
    pub index: u64,
    /// N, in 1..=SHARDS_MAX.
    pub count: u64,
}

impl Shard {
    /// The whole run as one shard (`--json` without `--shard`).
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard `{text}`: use K/N with 1 <= K <= N <= {SHARDS_MAX}");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = index.trim().parse().map_err(|_| bad())?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let shard = Shard { index, count };
        if shard.valid() {
            Ok(shard)
        } else {
            Err(bad())
        }
    }

    fn valid(self) -> bool {
        (1..=SHARDS_MAX).contains(&self.count) && (1..=self.count).contains(&self.index)
    }

    /// This shard's items of a run's work list: positions K-1, K-1+N, ... (strided; the module
    /// documentation says why).
    pub fn select<T: Clone>(self, work: &[T]) -> Vec<T> {
        assert!(self.valid(), "shard {self} is valid");
        let first = usize::try_from(self.index - 1).expect("shard indexes fit in usize");
        let step = usize::try_from(self.count).expect("shard counts fit in usize");
        let share: Vec<T> = work.iter().skip(first).step_by(step).cloned().collect();
        assert!(share.len() <= work.len() / step + 1);
        share
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What built the simulator that wrote a file: shards of one run must come from one build,
/// or the same seed may mean a different run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The rill commit (`git rev-parse --short HEAD`, `+dirty` with local changes), if git
    /// could tell.
    pub commit: Option<String>,
    /// With local changes: FNV-1a of `git diff HEAD`, so two different dirty trees differ.
    pub diff_hash: Option<String>,
    /// The sim crate's version.
    pub version: String,
}

impl Build {
    /// The build running now, as git in the current directory sees the checkout (`cargo sim`
    /// runs the simulator in the workspace root).
    pub fn current() -> Build {
        let commit = crate::matrix::commit();
        let diff_hash = commit
            .as_deref()
            .filter(|c| c.ends_with("+dirty"))
            .and_then(|_| {
                std::process::Command::new("git")
                    .args(["diff", "HEAD"])
                    .output()
                    .ok()
            })
            .map(|output| {
                let mut trace = crate::trace::Trace::default();
                trace.record(String::from_utf8_lossy(&output.stdout).into_owned());
                format!("{:016x}", trace.hash())
            });
        Build {
            commit,
            diff_hash,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commit {} (diff {}), sim {}",
            self.commit.as_deref().unwrap_or("unknown"),
            self.diff_hash.as_deref().unwrap_or("none"),
            self.version
        )
    }
}

/// A shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// [`SCHEMA`].
    pub schema: String,
    /// What built the simulator.
    pub build: Build,
    /// Which share this is.
    pub shard: Shard,
    /// Wall time of this shard's run, seconds.
    pub wall_s: f64,
    /// Seeds this shard ran at once.
    pub jobs: usize,
    /// The run: its settings and results.
    pub run: ShardRun,
}

/// What kind of run a shard belongs to, with its settings and results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShardRun {
    /// A campaign (`cargo sim [OPTIONS] --shard K/N`).
    Campaign(CampaignShard),
    /// The guarantee matrix (`cargo sim matrix [OPTIONS] --shard K/N`).
    Matrix(MatrixShard),
}

/// A campaign's share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignShard {
    /// The settings as the `cargo sim` arguments that give them (scenario, its replay
    /// arguments, `--start`, `--seeds`, `--ci` or `--check-determinism`): equal settings give
    /// equal arguments, and `merge` parses them back into the scenario.
    pub args: Vec<String>,
    /// With `--schedule`: the schedule's JSON, so that shards reading different files with
    /// one name do not pass as one run.
    pub schedule: Option<String>,
    /// Every seed this shard ran, in order.
    pub seeds: Vec<SeedRecord>,
    /// Seeds per probe and per BUGGIFY site over this shard's seeds.
    pub coverage: Tally,
}

/// One seed's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// The seed.
    pub seed: u64,
    /// Operations performed.
    pub steps: u64,
    /// Simulated time covered, ms.
    pub simulated_ms: u64,
    /// Wall time (both runs with the determinism check), µs.
    pub wall_us: u64,
    /// The violation, if the seed broke a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// Where the second run differed, with the determinism check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    /// For a failed seed: what the seed draws, as the summary prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe: Option<String>,
    /// For a failed seed: the command that replays it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

impl SeedRecord {
    /// The record of one seed's result; `describe` and `replay` only for a failure.
    pub fn of(scenario: &dyn crate::runner::Scenario, result: &SeedResult) -> SeedRecord {
        let failed = result.failed();
        let record = SeedRecord {
            seed: result.seed,
            steps: result.run.steps,
            simulated_ms: result.run.simulated_ms,
            wall_us: u64::try_from(result.wall.as_micros()).unwrap_or(u64::MAX),
            violation: result.run.violation.clone(),
            divergence: result.divergence.clone(),
            describe: failed.then(|| scenario.describe(result.seed)),
            replay: failed.then(|| crate::runner::replay_command(scenario, result.seed)),
        };
        assert_eq!(record.failed(), failed);
        record
    }

    fn failed(&self) -> bool {
        self.violation.is_some() || self.divergence.is_some()
    }

    /// The seed's result as the runner reports it (without trace, timeline or coverage: the
    /// summary does not read them).
    pub fn result(&self) -> SeedResult {
        SeedResult {
            seed: self.seed,
            run: SeedRun {
                violation: self.violation.clone(),
                steps: self.steps,
                simulated_ms: self.simulated_ms,
                ..SeedRun::default()
            },
            divergence: self.divergence.clone(),
            wall: Duration::from_micros(self.wall_us),
        }
    }
}

/// A matrix's share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixShard {
    /// The settings as `cargo sim matrix` arguments (`--seeds`, `--start`, `--steps`).
    pub args: Vec<String>,
    /// Every run of this shard, in work-list order.
    pub outcomes: Vec<OutcomeRecord>,
}

/// One matrix run: its row and what it showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The row's settings.
    pub row: Settings,
    /// The outcome (seed and family included).
    #[serde(flatten)]
    pub outcome: SeedOutcome,
}

impl OutcomeRecord {
    /// The work item this run was.
    fn work(&self) -> (Settings, FaultFamily, u64) {
        (self.row, self.outcome.family, self.outcome.seed)
    }
}

impl MatrixShard {
    /// The shard of the runs `share`, whose `outcomes` came in any order: recorded in the
    /// share's order, so that `merge` can check the shard ran exactly its share.
    pub fn new(
        args: Vec<String>,
        share: &[(Settings, FaultFamily, u64)],
        outcomes: &[(Settings, SeedOutcome)],
    ) -> MatrixShard {
        assert_eq!(share.len(), outcomes.len(), "one outcome per run");
        let by_run: BTreeMap<_, &SeedOutcome> = outcomes
            .iter()
            .map(|(row, o)| ((*row, o.family, o.seed), o))
            .collect();
        let outcomes: Vec<OutcomeRecord> = share
            .iter()
            .map(|run| OutcomeRecord {
                row: run.0,
                outcome: (*by_run
                    .get(run)
                    .expect("every run of the share has its outcome"))
                .clone(),
            })
            .collect();
        assert_eq!(outcomes.len(), share.len());
        MatrixShard { args, outcomes }
    }
}

impl ShardFile {
    /// A new file for this build.
    pub fn new(shard: Shard, wall: Duration, jobs: usize, run: ShardRun) -> ShardFile {
        assert!(shard.valid() && jobs >= 1);
        ShardFile {
            schema: SCHEMA.to_string(),
            build: Build::current(),
            shard,
            wall_s: wall.as_secs_f64(),
            jobs,
            run,
        }
    }

    /// The run's settings as arguments (what must be equal across shards).
    pub fn args(&self) -> &[String] {
        match &self.run {
            ShardRun::Campaign(c) => &c.args,
            ShardRun::Matrix(m) => &m.args,
        }
    }

    fn kind(&self) -> &'static str {
        match &self.run {
            ShardRun::Campaign(_) => "campaign",
            ShardRun::Matrix(_) => "matrix",
        }
    }

    /// Writes the file (pretty JSON: people read it too).
    pub fn write(&self, path: &str) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("--json {path}: {e}"))?;
        std::fs::write(path, text + "\n").map_err(|e| format!("--json {path}: {e}"))
    }

    /// Reads and checks a file's schema.
    pub fn read(path: &str) -> Result<ShardFile, String> {
        let bytes = std::fs::metadata(path)
            .map_err(|e| format!("{path}: {e}"))?
            .len();
        if bytes > FILE_BYTES_MAX {
            return Err(format!(
                "{path}: {bytes} bytes, more than a shard file holds"
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
        let schema = value.get("schema").and_then(|s| s.as_str());
        if schema != Some(SCHEMA) {
            return Err(format!(
                "{path}: schema {schema:?}, this simulator reads {SCHEMA:?} (merge with the \
                 build that wrote the shards)"
            ));
        }
        let file: ShardFile =
            serde_json::from_value(value).map_err(|e| format!("{path}: not a shard file: {e}"))?;
        if !file.shard.valid() {
            return Err(format!("{path}: shard {} is not K/N", file.shard));
        }
        Ok(file)
    }
}

/// Checks that `files` (path, file) are the shards of one run: one kind, one build, one set of
/// settings, one shard count, every shard 1..=N exactly once. The error names the culprits.
pub fn check_together(files: &[(String, ShardFile)]) -> Result<(), String> {
    let Some((first_path, first)) = files.first() else {
        return Err("merge needs at least one shard file".to_string());
    };
    for (path, file) in &files[1..] {
        let differs = |what: &str, mine: &dyn fmt::Display, theirs: &dyn fmt::Display| {
            format!(
                "{path} and {first_path} are not shards of one run: {what} differ\n  \
                 {path}: {mine}\n  {first_path}: {theirs}"
            )
        };
        if file.kind() != first.kind() {
            return Err(differs("kinds", &file.kind(), &first.kind()));
        }
        if file.build != first.build {
            return Err(differs("builds", &file.build, &first.build));
        }
        if file.args() != first.args() {
            return Err(differs(
                "settings",
                &file.args().join(" "),
                &first.args().join(" "),
            ));
        }
        if let (ShardRun::Campaign(a), ShardRun::Campaign(b)) = (&file.run, &first.run) {
            if a.schedule != b.schedule {
                return Err(differs("--schedule files' contents", &"", &""));
            }
        }
        if file.shard.count != first.shard.count {
            return Err(differs(
                "shard counts",
                &file.shard.count,
                &first.shard.count,
            ));
        }
    }
    let count = first.shard.count;
    let mut by_index: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (path, file) in files {
        by_index.entry(file.shard.index).or_default().push(path);
    }
    let duplicates: Vec<String> = by_index
        .iter()
        .filter(|(_, paths)| paths.len() > 1)
        .map(|(index, paths)| format!("{index}/{count} ({})", paths.join(", ")))
        .collect();
    if !duplicates.is_empty() {
        return Err(format!(
            "shards given more than once (their seeds would count twice): {}",
            duplicates.join("; ")
        ));
    }
    let missing: Vec<String> = (1..=count)
        .filter(|index| !by_index.contains_key(index))
        .map(|index| format!("{index}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of {count} shards missing: {}",
            missing.len(),
            list_bounded(&missing)
        ));
    }
    assert_eq!(by_index.len() as u64, count);
    Ok(())
}

/// Most names an error lists before "and N more".
const LISTED_MAX: usize = 20;

fn list_bounded(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(LISTED_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED_MAX {
        text.push_str(&format!(", and {} more", names.len() - LISTED_MAX));
    }
    text
}

/// Checks that a shard ran exactly its share of `work`.
fn check_share<T: Clone + PartialEq + fmt::Debug>(
    path: &str,
    shard: Shard,
    work: &[T],
    ran: &[T],
) -> Result<(), String> {
    let share = shard.select(work);
    if share.as_slice() == ran {
        return Ok(());
    }
    let at = share
        .iter()
        .zip(ran)
        .position(|(a, b)| a != b)
        .unwrap_or(share.len().min(ran.len()));
    Err(format!(
        "{path}: shard {shard} ran {} items where its share of the settings' work is {} (first \
         difference at item {at}: ran {:?}, share {:?})",
        ran.len(),
        share.len(),
        ran.get(at),
        share.get(at)
    ))
}

/// The merged campaign: the report (sorted by seed) and the probe tally.
pub struct MergedCampaign {
    /// One result per seed of the whole campaign; `wall` is the shards' wall times summed
    /// (machine time, comparable with one unsharded run on one machine).
    pub report: CampaignReport,
    /// Seeds per probe and site over every seed.
    pub coverage: Tally,
    /// The longest shard's wall time (the campaign's elapsed time if all ran at once).
    pub longest_shard: Duration,
}

/// Merges the shards of a campaign whose seeds are `seeds`, after [`check_together`].
pub fn merge_campaign(
    files: &[(String, ShardFile)],
    scenario: &dyn crate::runner::Scenario,
    seeds: &[u64],
) -> Result<MergedCampaign, String> {
    let mut results = Vec::with_capacity(seeds.len());
    let mut coverage = Tally::default();
    let (mut wall, mut longest_shard, mut jobs) = (Duration::ZERO, Duration::ZERO, 1);
    for (path, file) in files {
        let ShardRun::Campaign(campaign) = &file.run else {
            return Err(format!("{path}: not a campaign shard"));
        };
        let ran: Vec<u64> = campaign.seeds.iter().map(|s| s.seed).collect();
        check_share(path, file.shard, seeds, &ran)?;
        for record in &campaign.seeds {
            // The description and replay line come from this build: if they differ from what
            // the shard printed, this is not the build that ran it.
            if let Some(describe) = &record.describe {
                let here = scenario.describe(record.seed);
                if &here != describe {
                    return Err(format!(
                        "{path}: seed {} was described by its shard as `{describe}`, by this \
                         build as `{here}`: merge with the shards' build",
                        record.seed
                    ));
                }
            }
            results.push(record.result());
        }
        coverage.add(&campaign.coverage);
        let shard_wall = Duration::from_secs_f64(file.wall_s.max(0.0));
        wall += shard_wall;
        longest_shard = longest_shard.max(shard_wall);
        jobs = jobs.max(file.jobs);
    }
    results.sort_by_key(|r| r.seed);
    assert_eq!(
        results.len(),
        seeds.len(),
        "the shards cover every seed once"
    );
    assert_eq!(
        coverage.seeds,
        seeds.len() as u64,
        "every seed's coverage counted"
    );
    Ok(MergedCampaign {
        report: CampaignReport {
            results,
            wall,
            jobs,
        },
        coverage,
        longest_shard,
    })
}

/// Merges the shards of a matrix whose work list is `work`, after [`check_together`]: every
/// run's outcome with its row, and the shards' wall times summed.
#[allow(clippy::type_complexity)]
pub fn merge_matrix(
    files: &[(String, ShardFile)],
    work: &[(Settings, FaultFamily, u64)],
) -> Result<(Vec<(Settings, SeedOutcome)>, Duration, usize), String> {
    let mut outcomes = Vec::with_capacity(work.len());
    let (mut wall, mut jobs) = (Duration::ZERO, 1);
    for (path, file) in files {
        let ShardRun::Matrix(matrix) = &file.run else {
            return Err(format!("{path}: not a matrix shard"));
        };
        let ran: Vec<_> = matrix.outcomes.iter().map(OutcomeRecord::work).collect();
        check_share(path, file.shard, work, &ran)?;
        outcomes.extend(matrix.outcomes.iter().map(|r| (r.row, r.outcome.clone())));
        wall += Duration::from_secs_f64(file.wall_s.max(0.0));
        jobs = jobs.max(file.jobs);
    }
    assert_eq!(
        outcomes.len(),
        work.len(),
        "the shards cover every run once"
    );
    Ok((outcomes, wall, jobs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn campaign_file(shard: Shard, args: &[&str], seeds: &[u64]) -> (String, ShardFile) {
        let records = seeds
            .iter()
            .map(|&seed| SeedRecord {
                seed,
                steps: 10,
                simulated_ms: 1000,
                wall_us: 5,
                violation: None,
                divergence: None,
                describe: None,
                replay: None,
            })
            .collect();
        let run = ShardRun::Campaign(CampaignShard {
            args: args.iter().map(|a| a.to_string()).collect(),
            schedule: None,
            seeds: records,
            coverage: Tally {
                seeds: seeds.len() as u64,
                ..Tally::default()
            },
        });
        let file = ShardFile {
            schema: SCHEMA.to_string(),
            build: Build {
                commit: Some("abc1234".to_string()),
                diff_hash: None,
                version: "0.1.0".to_string(),
            },
            shard,
            wall_s: 1.0,
            jobs: 2,
            run,
        };
        (format!("shard-{}.json", shard.index), file)
    }

    const ARGS: &[&str] = &["--scenario", "storage", "--start", "1", "--seeds", "8"];

    /// The four shards of seeds 1..=8.
    fn four() -> Vec<(String, ShardFile)> {
        let seeds: Vec<u64> = (1..=8).collect();
        (1..=4)
            .map(|index| {
                let shard = Shard { index, count: 4 };
                campaign_file(shard, ARGS, &shard.select(&seeds))
            })
            .collect()
    }

    #[test]
    fn shards_parse_and_split_the_work_in_strides() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "4", "a/b", "1/100001", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let work: Vec<u64> = (1..=10).collect();
        assert_eq!(Shard::parse("2/4").unwrap().select(&work), vec![2, 6, 10]);
        let mut all: Vec<u64> = (1..=4)
            .flat_map(|index| Shard { index, count: 4 }.select(&work))
            .collect();
        all.sort_unstable();
        assert_eq!(all, work, "the shards partition the work");
        assert!(Shard { index: 7, count: 8 }.select(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn four_shards_of_one_run_belong_together_in_any_order() {
        let mut files = four();
        files.reverse();
        assert_eq!(check_together(&files), Ok(()));
        let seeds: Vec<u64> = (1..=8).collect();
        for (path, file) in &files {
            let ShardRun::Campaign(c) = &file.run else {
                panic!("campaign")
            };
            let ran: Vec<u64> = c.seeds.iter().map(|s| s.seed).collect();
            assert_eq!(check_share(path, file.shard, &seeds, &ran), Ok(()));
        }
    }

    #[test]
    fn a_missing_shard_is_named() {
        let mut files = four();
        files.remove(2);
        let error = check_together(&files).unwrap_err();
        assert!(error.contains("1 of 4 shards missing: 3/4"), "{error}");
        assert!(check_together(&[]).is_err());
    }

    #[test]
    fn an_overlapping_shard_is_named_with_its_files() {
        let mut files = four();
        let mut again = files[1].clone();
        again.0 = "copy-of-2.json".to_string();
        files.push(again);
        let error = check_together(&files).unwrap_err();
        assert!(
            error.contains("more than once")
                && error.contains("2/4 (shard-2.json, copy-of-2.json)"),
            "{error}"
        );
        // A shard that ran other seeds than its share (another split, or seeds twice).
        let seeds: Vec<u64> = (1..=8).collect();
        let error =
            check_share("x.json", Shard { index: 1, count: 4 }, &seeds, &[1, 2]).unwrap_err();
        assert!(error.contains("first difference at item 1"), "{error}");
    }

    #[test]
    fn mismatched_settings_builds_kinds_and_counts_are_refused() {
        let mut files = four();
        files[3] = campaign_file(Shard { index: 4, count: 4 }, &["--seeds", "9"], &[4, 8]);
        let error = check_together(&files).unwrap_err();
        assert!(
            error.contains("settings differ") && error.contains("shard-4.json"),
            "{error}"
        );

        let mut files = four();
        files[1].1.build.commit = Some("def5678".to_string());
        let error = check_together(&files).unwrap_err();
        assert!(
            error.contains("builds differ") && error.contains("def5678"),
            "{error}"
        );

        let mut files = four();
        files[2].1.shard = Shard { index: 3, count: 5 };
        let error = check_together(&files).unwrap_err();
        assert!(error.contains("shard counts differ"), "{error}");

        let mut files = four();
        files[0].1.run = ShardRun::Matrix(MatrixShard {
            args: Vec::new(),
            outcomes: Vec::new(),
        });
        assert!(check_together(&files).unwrap_err().contains("kinds differ"));
    }

    #[test]
    fn a_file_round_trips_and_a_foreign_schema_is_refused() {
        let dir = std::env::temp_dir().join(format!("rill-shard-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json").to_string_lossy().into_owned();
        let (_, mut file) = four().remove(0);
        if let ShardRun::Campaign(c) = &mut file.run {
            c.seeds[0].violation = Some("lost offset 3".to_string());
            c.seeds[0].divergence = Some(Divergence {
                index: 4,
                first: Some("a".to_string()),
                second: None,
            });
        }
        file.write(&path).unwrap();
        assert_eq!(ShardFile::read(&path).unwrap(), file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(SCHEMA, "rill-sim-shard/0")).unwrap();
        let error = ShardFile::read(&path).unwrap_err();
        assert!(error.contains("rill-sim-shard/0"), "{error}");
        std::fs::write(&path, "{").unwrap();
        assert!(ShardFile::read(&path).unwrap_err().contains("not JSON"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_matrix_outcome_round_trips_by_names() {
        use jepsen::queue::AnomalyClass;
        let record = OutcomeRecord {
            row: Settings::rows()[8],
            outcome: SeedOutcome {
                seed: 3,
                family: FaultFamily::Wipe,
                anomalies: vec![(AnomalyClass::LostWrite, 2, "key k, values [4]".to_string())],
                forbidden: vec![AnomalyClass::LostWrite],
                sends: 40,
                unread: 2,
                liveness: None,
                offline: None,
                crash: Some("panic".to_string()),
                steps: 50,
                simulated_ms: 20_000,
            },
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.contains("\"lost-write\"") && text.contains("\"wipe\""),
            "{text}"
        );
        let back: OutcomeRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
        let error = serde_json::from_str::<OutcomeRecord>(&text.replace("lost-write", "lost"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown anomaly class `lost`"), "{error}");
    }
}
