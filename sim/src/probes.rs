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

/// Seeds per probe and per BUGGIFY site over a set of seeds: everything the coverage table and
/// the `--ci` check read. Counts add up over disjoint sets of seeds, so the shards of a campaign
/// (`cargo sim --shard K/N --json FILE`) each keep one and `cargo sim merge` sums them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Seeds counted.
    pub seeds: u64,
    /// For each probe any seed hit: how many seeds hit it.
    pub probes: BTreeMap<String, u64>,
    /// For each BUGGIFY site any seed fired: how many seeds fired it.
    pub sites: BTreeMap<String, u64>,
}

impl Tally {
    /// The tally of a campaign's seeds.
    pub fn of(report: &CampaignReport) -> Tally {
        let mut tally = Tally::default();
        for result in &report.results {
            let coverage = &result.run.coverage;
            tally.seeds += 1;
            for (names, seeds) in [
                (&coverage.probes, &mut tally.probes),
                (&coverage.sites, &mut tally.sites),
            ] {
                for name in names.keys() {
                    *seeds.entry((*name).to_string()).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(tally.seeds, report.results.len() as u64);
        assert!(tally.probes.values().all(|&n| n <= tally.seeds));
        tally
    }

    /// Adds the tally of other, disjoint seeds.
    pub fn add(&mut self, other: &Tally) {
        self.seeds += other.seeds;
        for (mine, theirs) in [
            (&mut self.probes, &other.probes),
            (&mut self.sites, &other.sites),
        ] {
            for (name, seeds) in theirs {
                *mine.entry(name.clone()).or_insert(0) += seeds;
            }
        }
        assert!(self.probes.values().all(|&n| n <= self.seeds));
        assert!(self.sites.values().all(|&n| n <= self.seeds));
    }
}

/// The listed probes no seed of the tally hit.
pub fn never_fired(tally: &Tally) -> Vec<&'static str> {
    listed()
        .into_iter()
        .filter(|name| !tally.probes.contains_key(*name))
        .collect()
}

/// The coverage table: seeds per probe (listed ones marked), seeds per BUGGIFY site, and (with
/// `listed_apply`: the cluster scenario, whose list it is) the listed probes that never fired.
pub fn summarize(tally: &Tally, listed_apply: bool) -> String {
    use std::fmt::Write as _;
    let seeds = tally.seeds;
    let listed = listed();
    let (probes, sites) = (&tally.probes, &tally.sites);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "probes hit ({} distinct; seeds of {seeds}; * = listed in sim/probes.txt)",
        probes.len()
    );
    for (name, count) in probes {
        let mark = if listed.contains(&name.as_str()) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(out, "  {mark} {name:<52} {count:>6}");
    }
    let _ = writeln!(
        out,
        "BUGGIFY sites fired ({} distinct; seeds of {seeds})",
        sites.len()
    );
    for (name, count) in sites {
        let _ = writeln!(out, "    {name:<52} {count:>6}");
    }
    let missing = never_fired(tally);
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
        let campaign = Tally::of(&report(vec![Coverage::default(), hit.clone(), hit]));
        let missing = never_fired(&campaign);
        assert!(!missing.contains(&first));
        assert_eq!(missing.len(), listed().len() - 1);
        let table = summarize(&campaign, true);
        assert!(table.contains(first) && table.contains("a.site"), "{table}");
        assert!(table.contains("never fired"), "{table}");
        assert!(!summarize(&campaign, false).contains("never fired"));
        assert_eq!(
            never_fired(&Tally::of(&report(vec![Coverage::default()]))).len(),
            listed().len()
        );
    }

    #[test]
    fn tallies_of_disjoint_seeds_add_up_to_the_tally_of_all() {
        let first = listed()[0];
        let hit = Coverage {
            probes: BTreeMap::from([(first, 2), ("unlisted.probe", 1)]),
            sites: BTreeMap::from([("a.site", 1)]),
        };
        let all = vec![hit.clone(), Coverage::default(), hit.clone(), hit];
        let mut sum = Tally::of(&report(all[..1].to_vec()));
        sum.add(&Tally::of(&report(all[1..].to_vec())));
        assert_eq!(sum, Tally::of(&report(all)));
        assert_eq!(
            (sum.seeds, sum.probes[first], sum.sites["a.site"]),
            (4, 3, 3)
        );
    }
}
