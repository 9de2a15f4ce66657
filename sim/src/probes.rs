//! Coverage of a campaign: which `probe!` marks (FoundationDB's `CODE_PROBE`) its seeds hit and
//! which BUGGIFY sites fired, merged across seeds. `sim/probes.txt` lists the probes the default
//! campaign must reach: `cargo sim --ci` (CI's sim-cluster step, 300 seeds) fails when a listed
//! probe fired in none of its seeds — the simulator stopped walking somewhere it used to.

use crate::runner::CampaignReport;
use std::collections::BTreeMap;

/// The checked-in list of probes the cluster campaign must hit (`--ci`).
const LISTED: &str = include_str!("../probes.txt");

/// What one run reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Probes hit, with how often.
    pub probes: BTreeMap<&'static str, u64>,
    /// BUGGIFY sites fired, with how often.
    pub sites: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// The coverage of the run that just ended on this thread (one run per thread).
    pub fn of_this_thread() -> Coverage {
        Coverage {
            probes: buggify::probes_hit(),
            sites: buggify::sites_fired(),
        }
    }
}

/// The probes `sim/probes.txt` lists (one a line; `#` starts a comment).
pub fn listed() -> Vec<&'static str> {
    LISTED
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .collect()
}

/// For each probe (or site) any seed reached: how many seeds reached it.
fn seeds_per_name(
    report: &CampaignReport,
    pick: impl Fn(&Coverage) -> &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, usize> {
    let mut seeds = BTreeMap::new();
    for result in &report.results {
        for name in pick(&result.run.coverage).keys() {
            *seeds.entry(*name).or_insert(0) += 1;
        }
    }
    seeds
}

/// The listed probes no seed of the campaign hit.
pub fn never_fired(report: &CampaignReport) -> Vec<&'static str> {
    let hit = seeds_per_name(report, |c| &c.probes);
    listed()
        .into_iter()
        .filter(|name| !hit.contains_key(name))
        .collect()
}

/// The coverage table: seeds per probe (listed ones marked), seeds per BUGGIFY site, and (with
/// `listed_apply`: the cluster scenario, whose list it is) the listed probes that never fired.
pub fn summarize(report: &CampaignReport, listed_apply: bool) -> String {
    use std::fmt::Write as _;
    let seeds = report.results.len();
    let listed = listed();
    let probes = seeds_per_name(report, |c| &c.probes);
    let sites = seeds_per_name(report, |c| &c.sites);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "probes hit ({} distinct; seeds of {seeds}; * = listed in sim/probes.txt)",
        probes.len()
    );
    for (name, count) in &probes {
        let mark = if listed.contains(name) { "*" } else { " " };
        let _ = writeln!(out, "  {mark} {name:<52} {count:>6}");
    }
    let _ = writeln!(
        out,
        "BUGGIFY sites fired ({} distinct; seeds of {seeds})",
        sites.len()
    );
    for (name, count) in &sites {
        let _ = writeln!(out, "    {name:<52} {count:>6}");
    }
    let missing = never_fired(report);
    if !listed_apply {
        return out;
    }
    if missing.is_empty() {
        let _ = writeln!(out, "listed probes: all {} fired", listed.len());
    } else {
        let _ = writeln!(
            out,
            "listed probes that never fired ({} of {}): {}",
            missing.len(),
            listed.len(),
            missing.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{SeedResult, SeedRun};

    fn report(coverages: Vec<Coverage>) -> CampaignReport {
        CampaignReport {
            results: coverages
                .into_iter()
                .enumerate()
                .map(|(seed, coverage)| SeedResult {
                    seed: seed as u64,
                    run: SeedRun {
                        coverage,
                        ..SeedRun::default()
                    },
                    divergence: None,
                    wall: std::time::Duration::ZERO,
                })
                .collect(),
            wall: std::time::Duration::from_secs(1),
            jobs: 1,
        }
    }

    #[test]
    fn the_list_parses_and_has_no_duplicates() {
        let listed = listed();
        assert!(listed.len() >= 15, "{} probes listed", listed.len());
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), listed.len(), "a probe is listed twice");
        assert!(listed.iter().all(|p| !p.contains(' ')));
    }

    #[test]
    fn a_listed_probe_counts_once_any_seed_hit_it() {
        let first = listed()[0];
        let hit = Coverage {
            probes: BTreeMap::from([(first, 3)]),
            sites: BTreeMap::from([("a.site", 1)]),
        };
        let campaign = report(vec![Coverage::default(), hit.clone(), hit]);
        let missing = never_fired(&campaign);
        assert!(!missing.contains(&first));
        assert_eq!(missing.len(), listed().len() - 1);
        let table = summarize(&campaign, true);
        assert!(table.contains(first) && table.contains("a.site"), "{table}");
        assert!(table.contains("never fired"), "{table}");
        assert!(!summarize(&campaign, false).contains("never fired"));
        assert_eq!(
            never_fired(&report(vec![Coverage::default()])).len(),
            listed().len()
        );
    }
}
