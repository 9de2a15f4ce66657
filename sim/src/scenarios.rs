//! The scenarios `cargo sim` can run, and the settings that select one.

use crate::cluster::nemesis::FaultSchedule;
use crate::runner::Scenario;
use std::sync::Arc;

/// The scenarios, with a line about each, for `--list`.
pub const LIST: &[(&str, &str)] = &[
    (
        "storage",
        "one partition log on a MemDisk under crashes, torn writes, I/O errors and bit flips",
    ),
    (
        "cluster",
        "three rill nodes under kills, pauses, partitions and disk faults; Jepsen queue checks",
    ),
];

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScenarioName {
    /// `storage`: the log-core durability campaign.
    Storage,
    /// `cluster`: three simulated nodes, producers and a consumer, a nemesis. The default.
    #[default]
    Cluster,
}

impl ScenarioName {
    /// The name `--scenario` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::Storage => "storage",
            ScenarioName::Cluster => "cluster",
        }
    }
}

/// The bugs `--bug` can switch on, per scenario, with what each breaks.
pub const BUGS: &[(&str, &str, &str)] = &[
    (
        "storage",
        "lying-fsync",
        "the disk acknowledges half of all fsyncs without making anything durable",
    ),
    (
        "cluster",
        "truncate-to-hw",
        "pre-KIP-101: a new follower truncates to its own high watermark",
    ),
    (
        "cluster",
        "no-epoch-fencing",
        "pre-KIP-320: fetches carry no leader epoch, stale leaders are not fenced",
    ),
    (
        "cluster",
        "last-replica-standing",
        "pre-KIP-966: no ELR, a replica outside the last ISR may be elected",
    ),
];

/// Checks a `--bug` value against the scenario.
pub fn check_bug(scenario: ScenarioName, bug: &str) -> Result<(), String> {
    let name = scenario.as_str();
    if BUGS.iter().any(|(s, b, _)| *s == name && *b == bug) {
        return Ok(());
    }
    let known: Vec<&str> = BUGS
        .iter()
        .filter(|(s, _, _)| *s == name)
        .map(|(_, b, _)| *b)
        .collect();
    Err(format!(
        "scenario {name} has no bug `{bug}` (known: {})",
        known.join(", ")
    ))
}

/// Parses a `--scenario` value.
pub fn parse_name(name: &str) -> Result<ScenarioName, String> {
    match name {
        "storage" => Ok(ScenarioName::Storage),
        "cluster" => Ok(ScenarioName::Cluster),
        other => {
            let known: Vec<&str> = LIST.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "unknown scenario `{other}` (known: {})",
                known.join(", ")
            ))
        }
    }
}

/// What the command line chose, scenario-independent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// The scenario.
    pub scenario: ScenarioName,
    /// Operations per seed, if not the scenario's default.
    pub steps: Option<u64>,
    /// A deliberately reintroduced bug (`--bug NAME`), to prove the checks catch it.
    pub bug: Option<String>,
    /// `--schedule FILE.json` (cluster only): the file and the fault schedule it holds.
    pub schedule: Option<(String, FaultSchedule)>,
    /// `--acks`, `--min-isr`, `--unclean`, `--idempotence`, `--faults` (cluster only).
    pub overrides: crate::cluster::Overrides,
}

/// Builds the scenario the settings name.
pub fn build(settings: &Settings) -> Arc<dyn Scenario> {
    match settings.scenario {
        ScenarioName::Storage => Arc::new(crate::storage::StorageScenario::new(
            settings.steps,
            settings.bug.is_some(),
        )),
        ScenarioName::Cluster => Arc::new(cluster(settings)),
    }
}

/// The cluster scenario the settings describe (also what the shrinker drives).
pub fn cluster(settings: &Settings) -> crate::cluster::ClusterScenario {
    let scenario = crate::cluster::ClusterScenario::new(settings.steps, settings.bug.clone())
        .with_overrides(settings.overrides);
    match &settings.schedule {
        Some((path, schedule)) => scenario.with_schedule(path.clone(), schedule.clone()),
        None => scenario,
    }
}
