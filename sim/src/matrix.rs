//! The delivery-guarantee matrix (`cargo sim matrix`): which anomalies rill shows under which
//! producer and topic settings and which fault family, over many seeds each.
//!
//! Rows are settings (acks x min ISR x unclean election x idempotence, without the combinations
//! Kafka's producer refuses), columns are fault families. Every (row, family, seed) runs the
//! cluster scenario with those settings fixed ([`ClusterScenario::run_checked`]) on a fresh
//! thread; the Jepsen queue checker's whole report is kept, allowed or not. A cell lists every
//! anomaly class seen, in how many seeds, the first seed showing it and the command replaying
//! it. Each row states what the settings promise, and where the result differs the document
//! says so (the "Deviations" section), with the diagnosis this module knows of.
//!
//! Everything but the wall time and the commit is a function of the seeds: outcomes are sorted
//! before aggregation, so the same seeds give the same tables.

use crate::cluster::{ClusterDraw, ClusterScenario, FaultFamily, Overrides};
use crate::runner::{replay_command, Progress};
use jepsen::queue::AnomalyClass;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Seeds per (settings, family) combination unless `--seeds` says otherwise.
pub const SEEDS_PER_CELL_DEFAULT: u64 = 12;
/// Most seeds per combination: 64 combinations of this many runs is already days of wall time.
pub const SEEDS_PER_CELL_MAX: u64 = 10_000;
/// Stack for a seed's thread: simulated clusters nest deep futures (as in the runner).
const SEED_THREAD_STACK_BYTES: usize = 32 * 1024 * 1024;
/// Classes that mean an acknowledged record is gone or moved (the scenario's `LOSS_CLASSES`
/// without `duplicate`: a record written twice is not lost).
pub const LOST_CLASSES: &[AnomalyClass] = &[
    AnomalyClass::LostWrite,
    AnomalyClass::InconsistentOffsets,
    AnomalyClass::Unseen,
];
pub use crate::cluster::DUPLICATE_SHADOWS;
/// Longest example text kept per finding: the document is read by people, not parsed.
const EXAMPLE_CHARS_MAX: usize = 240;

/// One row of the matrix: the producer and topic settings a run fixes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Settings {
    /// Producer acks: -1 (all), 1 (leader only) or 0 (none).
    pub acks: i16,
    /// The topic's `min.insync.replicas`.
    pub min_isr: i32,
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `enable.idempotence`.
    pub idempotence: bool,
}

/// What a row's settings promise about acknowledged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// acks=all, min ISR 2, clean election, idempotence: no anomaly at all.
    Strong,
    /// The same without idempotence: no loss, but a retried send may be written twice.
    StrongDuplicatesAllowed,
    /// acks=1, min ISR 1 or unclean election: acknowledged records may be lost.
    Weak,
    /// acks=0: the producer learns nothing, so "sent" promises nothing.
    NoAck,
}

impl Settings {
    /// Every valid row, strongest first: acks {all, 1, 0} x min ISR {2, 1} x unclean
    /// {off, on} x idempotence {on, off}, without idempotence for acks other than all.
    pub fn rows() -> Vec<Settings> {
        let rows: Vec<Settings> = Settings::every()
            .into_iter()
            .filter(|s| s.overrides(None).validate().is_ok())
            .collect();
        assert_eq!(rows.len(), 16, "8 acks=all rows, 4 each for acks 1 and 0");
        assert!(
            rows[0].promise() == Promise::Strong,
            "the strongest row comes first"
        );
        rows
    }

    /// The combinations Kafka's producer refuses (idempotence without acks=all).
    pub fn not_applicable() -> Vec<Settings> {
        let rows: Vec<Settings> = Settings::every()
            .into_iter()
            .filter(|s| s.overrides(None).validate().is_err())
            .collect();
        assert!(rows.iter().all(|s| s.idempotence && s.acks != -1));
        rows
    }

    fn every() -> Vec<Settings> {
        let mut rows = Vec::new();
        for acks in [-1, 1, 0] {
            for min_isr in [2, 1] {
                for unclean in [false, true] {
                    for idempotence in [true, false] {
                        rows.push(Settings {
                            acks,
                            min_isr,
                            unclean,
                            idempotence,
                        });
                    }
                }
            }
        }
        rows
    }

    /// The overrides that fix these settings (and `family`, if given).
    pub fn overrides(self, family: Option<FaultFamily>) -> Overrides {
        Overrides {
            acks: Some(self.acks),
            min_isr: Some(self.min_isr),
            unclean: Some(self.unclean),
            idempotence: Some(self.idempotence),
            faults: family,
            wipes_ungated: false,
            no_operations: false,
            no_client_shapes: false,
        }
    }

    /// The settings in words, as a row label.
    pub fn label(self) -> String {
        let acks = match self.acks {
            -1 => "all".to_string(),
            other => other.to_string(),
        };
        format!(
            "acks={acks}, min ISR {}, {}, {}",
            self.min_isr,
            if self.unclean { "unclean" } else { "clean" },
            if self.idempotence {
                "idempotent"
            } else {
                "not idempotent"
            }
        )
    }

    /// What the settings promise.
    pub fn promise(self) -> Promise {
        if self.acks == 0 {
            return Promise::NoAck;
        }
        match (
            self.acks == -1 && self.min_isr >= 2 && !self.unclean,
            self.idempotence,
        ) {
            (true, true) => Promise::Strong,
            (true, false) => Promise::StrongDuplicatesAllowed,
            (false, _) => Promise::Weak,
        }
    }

    /// Whether the expectation predicts that acknowledged records are lost under `family`
    /// in some seeds: acks=1 and unclean election under kills, partitions and wiped disks (a
    /// leader acks what only it has, or the only copies left are wiped, then a replica without
    /// it leads); acks=0 under every family that moves leadership. min ISR 1 alone is not predicted to lose: rill's high watermark
    /// counts only flushed data and clean election waits for the last in-sync replica.
    pub fn loss_expected(self, family: FaultFamily) -> bool {
        let moves_leader = matches!(
            family,
            FaultFamily::Kills | FaultFamily::Partitions | FaultFamily::Wipe
        );
        match self.acks {
            // Clock faults move no leader by themselves.
            0 => !matches!(family, FaultFamily::Disk | FaultFamily::Clock),
            1 => moves_leader,
            _ => self.unclean && moves_leader,
        }
    }

    /// The anomaly classes the settings forbid (the cluster scenario's own rule, so the
    /// matrix and `cargo sim` agree on what a violation is).
    pub fn forbidden(self) -> Vec<AnomalyClass> {
        let draw = ClusterDraw::from_seed_with(0, &self.overrides(None));
        assert_eq!((draw.acks, draw.min_isr), (self.acks, self.min_isr));
        draw.forbidden()
            .unwrap_or_else(|| AnomalyClass::ALL.to_vec())
    }

    /// The classes of one seed's findings that these settings forbid. Unlike
    /// [`Settings::forbidden`] alone, an ordering class seen in a seed that also shows a
    /// duplicate is excused when duplicates are allowed: the checker places each value at one
    /// offset, so reading or writing a value twice makes polls and sends look out of order.
    pub fn forbidden_in(self, seen: &[AnomalyClass]) -> Vec<AnomalyClass> {
        ClusterDraw::from_seed_with(0, &self.overrides(None)).forbidden_in(seen)
    }
}

impl Promise {
    /// The expectation in a sentence.
    pub fn expectation(self) -> &'static str {
        match self {
            Promise::Strong => {
                "no anomaly: nothing acknowledged is lost, duplicated, reordered or moved"
            }
            Promise::StrongDuplicatesAllowed => {
                "no loss; a retried send may be written twice (duplicate) without idempotence"
            }
            Promise::Weak => {
                "acknowledged writes may be lost (acks=1: under kills and partitions; unclean \
                 election: once every in-sync copy is gone, in rill only when their disks are, \
                 as in the wipe family); retries without idempotence may duplicate"
            }
            Promise::NoAck => "no acknowledgement to trust: any send may vanish",
        }
    }

    /// A short name for the promise.
    pub fn name(self) -> &'static str {
        match self {
            Promise::Strong => "strong",
            Promise::StrongDuplicatesAllowed => "strong, duplicates allowed",
            Promise::Weak => "weak: loss allowed",
            Promise::NoAck => "no acknowledgement",
        }
    }
}

/// What one seed of one combination showed (a matrix shard's file holds these).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// The fault family it ran under.
    pub family: FaultFamily,
    /// Every anomaly class the checker reported, with its instance count and the first
    /// instance in words.
    pub anomalies: Vec<(AnomalyClass, u64, String)>,
    /// The classes among `anomalies` the settings forbid ([`Settings::forbidden_in`]).
    pub forbidden: Vec<AnomalyClass>,
    /// Sends that completed ok or indeterminate (acks=0 sends are all indeterminate).
    pub sends: u64,
    /// Of those, how many values no poll ever read (`unseen` covers the ok ones; for acks=0
    /// this is what "no acknowledgement to trust" costs).
    pub unread: u64,
    /// The liveness or set-up failure, if any.
    pub liveness: Option<String>,
    /// The expected unavailability: every partition leaderless to the end because the wipe
    /// family's in-sync-copies-lost episode destroyed every in-sync copy and unclean election
    /// was off ([`crate::cluster::OFFLINE_AFTER_ISR_LOSS`]); kept apart from `liveness`.
    #[serde(default)]
    pub offline: Option<String>,
    /// A panic inside the run (a broken invariant in a node, or the harness), if any.
    pub crash: Option<String>,
    /// Client operations completed.
    pub steps: u64,
    /// Simulated time the run covered, ms.
    pub simulated_ms: u64,
}

/// One kind of finding within a cell, over its seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Seeds that showed it.
    pub seeds: u64,
    /// Instances over those seeds (for anomaly classes; 1 per seed otherwise).
    pub instances: u64,
    /// The first seed showing it (lowest seed, then family order) and its family.
    pub first: (u64, FaultFamily),
    /// The first seed's first instance, in words.
    pub example: String,
}

impl Finding {
    fn new(seed: u64, family: FaultFamily, instances: u64, example: &str) -> Finding {
        let example: String = example.chars().take(EXAMPLE_CHARS_MAX).collect();
        Finding {
            seeds: 1,
            instances,
            first: (seed, family),
            example,
        }
    }

    fn add(&mut self, seed: u64, family: FaultFamily, instances: u64) {
        assert!(
            (seed, family) > self.first,
            "outcomes are aggregated in (seed, family) order"
        );
        self.seeds += 1;
        self.instances += instances;
    }
}

/// How a cell's result compares with its row's promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing seen.
    Clean,
    /// Anomalies seen, all of them allowed by the settings.
    Allowed,
    /// Left offline by design ([`SeedOutcome::offline`]): every in-sync copy destroyed under
    /// clean elections; any forbidden class was seen only in such seeds (acknowledged values
    /// the leaderless partitions could not serve).
    Unavailable,
    /// A forbidden anomaly, a liveness failure or a crash.
    Violated,
}

impl Verdict {
    /// The word for the verdict.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Allowed => "allowed",
            Verdict::Unavailable => "unavailable",
            Verdict::Violated => "VIOLATED",
        }
    }
}

/// The aggregate of one combination (or of a whole row when `family` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The row.
    pub settings: Settings,
    /// The column; `None` for all families together.
    pub family: Option<FaultFamily>,
    /// Seeds run.
    pub seeds_run: u64,
    /// Every anomaly class seen.
    pub anomalies: BTreeMap<AnomalyClass, Finding>,
    /// The classes some seed showed where the settings forbid them.
    pub forbidden: BTreeSet<AnomalyClass>,
    /// Of those, the classes some seed showed without also failing liveness (a class only
    /// ever seen beside a liveness failure may be its consequence: unread, not lost).
    pub forbidden_live: BTreeSet<AnomalyClass>,
    /// The forbidden classes some seed showed that was not left offline by design.
    pub forbidden_not_offline: BTreeSet<AnomalyClass>,
    /// Seeds where some sent (ok or indeterminate) value was never read; instances are values.
    pub unread: Option<Finding>,
    /// Sends (ok or indeterminate) over all seeds.
    pub sends: u64,
    /// Liveness (or set-up) failures.
    pub liveness: Option<Finding>,
    /// Seeds left offline by design ([`SeedOutcome::offline`]).
    pub offline: Option<Finding>,
    /// Panics.
    pub crashes: Option<Finding>,
    /// Client operations over all seeds.
    pub steps: u64,
    /// Simulated time over all seeds, ms.
    pub simulated_ms: u64,
}

impl Cell {
    /// Aggregates `outcomes` (any order) of one row; `family` `None` means they may come from
    /// every family (the row summary), otherwise all must come from `family`.
    pub fn aggregate(
        settings: Settings,
        family: Option<FaultFamily>,
        outcomes: &[SeedOutcome],
    ) -> Cell {
        assert!(
            family.is_none_or(|f| outcomes.iter().all(|o| o.family == f)),
            "a cell aggregates only its own family"
        );
        let mut sorted: Vec<&SeedOutcome> = outcomes.iter().collect();
        sorted.sort_by_key(|o| (o.seed, o.family));
        let mut cell = Cell {
            settings,
            family,
            seeds_run: sorted.len() as u64,
            anomalies: BTreeMap::new(),
            forbidden: BTreeSet::new(),
            forbidden_live: BTreeSet::new(),
            forbidden_not_offline: BTreeSet::new(),
            unread: None,
            sends: 0,
            liveness: None,
            offline: None,
            crashes: None,
            steps: 0,
            simulated_ms: 0,
        };
        for outcome in sorted {
            cell.add(outcome);
        }
        assert!(cell.anomalies.values().all(|f| f.seeds <= cell.seeds_run));
        cell
    }

    fn add(&mut self, o: &SeedOutcome) {
        self.steps += o.steps;
        self.simulated_ms += o.simulated_ms;
        self.forbidden.extend(o.forbidden.iter().copied());
        if o.liveness.is_none() && o.offline.is_none() {
            self.forbidden_live.extend(o.forbidden.iter().copied());
        }
        if o.offline.is_none() {
            self.forbidden_not_offline
                .extend(o.forbidden.iter().copied());
        }
        self.sends += o.sends;
        if o.unread > 0 {
            match &mut self.unread {
                Some(finding) => finding.add(o.seed, o.family, o.unread),
                None => {
                    let example = format!("{} of {} sent values never read", o.unread, o.sends);
                    self.unread = Some(Finding::new(o.seed, o.family, o.unread, &example));
                }
            }
        }
        for (class, count, example) in &o.anomalies {
            self.anomalies
                .entry(*class)
                .and_modify(|f| f.add(o.seed, o.family, *count))
                .or_insert_with(|| Finding::new(o.seed, o.family, *count, example));
        }
        for (slot, text) in [
            (&mut self.liveness, &o.liveness),
            (&mut self.offline, &o.offline),
            (&mut self.crashes, &o.crash),
        ] {
            if let Some(text) = text {
                match slot {
                    Some(finding) => finding.add(o.seed, o.family, 1),
                    None => *slot = Some(Finding::new(o.seed, o.family, 1, text)),
                }
            }
        }
    }

    /// The anomaly classes some seed showed where the settings forbid them.
    pub fn forbidden_seen(&self) -> Vec<AnomalyClass> {
        assert!(self
            .forbidden
            .iter()
            .all(|c| self.anomalies.contains_key(c)));
        self.forbidden.iter().copied().collect()
    }

    /// Whether a class meaning lost, duplicated or moved acknowledged records was seen, or,
    /// with acks=0 (where nothing is acknowledged), a sent value was never read.
    pub fn loss_seen(&self) -> bool {
        let no_ack = self.settings.promise() == Promise::NoAck;
        self.anomalies.keys().any(|c| LOST_CLASSES.contains(c)) || (no_ack && self.unread.is_some())
    }

    /// The cell's verdict against its row's promise.
    pub fn verdict(&self) -> Verdict {
        assert!(self.forbidden_not_offline.is_subset(&self.forbidden));
        if self.liveness.is_some()
            || self.crashes.is_some()
            || !self.forbidden_not_offline.is_empty()
        {
            Verdict::Violated
        } else if self.offline.is_some() {
            Verdict::Unavailable
        } else if self.anomalies.is_empty() && !self.loss_seen() {
            Verdict::Clean
        } else {
            Verdict::Allowed
        }
    }
}

/// How the matrix was run: printed in the documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Seeds per combination.
    pub seeds_per_cell: u64,
    /// First seed; every combination runs `start..start + seeds_per_cell`.
    pub start: u64,
    /// `--steps` (sends per producer), if given.
    pub steps: Option<u64>,
    /// Threads.
    pub jobs: usize,
    /// Wall time of the whole matrix, s.
    pub wall_s: f64,
    /// The rill commit, if git could tell.
    pub commit: Option<String>,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// How it was run.
    pub params: Params,
    /// One cell per (row, family), rows in [`Settings::rows`] order, families in
    /// [`FaultFamily::ALL`] order.
    pub cells: Vec<Cell>,
    /// One cell per row, all families together.
    pub rows: Vec<Cell>,
}

impl Matrix {
    /// Builds the tables from every outcome of `rows` (any order).
    pub fn build(
        params: Params,
        rows: &[Settings],
        outcomes: &[(Settings, SeedOutcome)],
    ) -> Matrix {
        let mut cells = Vec::new();
        let mut summaries = Vec::new();
        for settings in rows {
            let mine: Vec<SeedOutcome> = outcomes
                .iter()
                .filter(|(s, _)| s == settings)
                .map(|(_, o)| o.clone())
                .collect();
            for family in FaultFamily::ALL {
                let of_family: Vec<SeedOutcome> = mine
                    .iter()
                    .filter(|o| o.family == family)
                    .cloned()
                    .collect();
                cells.push(Cell::aggregate(*settings, Some(family), &of_family));
            }
            summaries.push(Cell::aggregate(*settings, None, &mine));
        }
        assert_eq!(cells.len(), rows.len() * FaultFamily::ALL.len());
        assert_eq!(summaries.len(), rows.len());
        Matrix {
            params,
            cells,
            rows: summaries,
        }
    }

    /// The cell of `settings` under `family`.
    pub fn cell(&self, settings: Settings, family: FaultFamily) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.settings == settings && c.family == Some(family))
    }

    /// Seeds run over the whole matrix.
    pub fn seeds_run(&self) -> u64 {
        self.cells.iter().map(|c| c.seeds_run).sum()
    }

    /// Where the result differs from the expectation.
    pub fn deviations(&self) -> Vec<Deviation> {
        let mut out = Vec::new();
        for cell in &self.cells {
            let family = cell.family.expect("per-family cells name their family");
            for class in cell.forbidden_seen() {
                let finding = &cell.anomalies[&class];
                out.push(Deviation::new(
                    cell,
                    DeviationKind::Forbidden(class),
                    finding,
                ));
            }
            if let Some(finding) = &cell.liveness {
                out.push(Deviation::new(cell, DeviationKind::Liveness, finding));
            }
            if let Some(finding) = &cell.crashes {
                out.push(Deviation::new(cell, DeviationKind::Crash, finding));
            }
            if cell.settings.loss_expected(family) && !cell.loss_seen() && cell.seeds_run > 0 {
                out.push(Deviation {
                    settings: cell.settings,
                    family,
                    kind: DeviationKind::NoLossShown,
                    first_seed: None,
                    seeds: cell.seeds_run,
                    example: String::new(),
                    only_with_liveness: false,
                });
            }
        }
        out
    }
}

/// How a cell departs from its row's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviationKind {
    /// A class the settings forbid was seen.
    Forbidden(AnomalyClass),
    /// The cluster did not recover (or come up) in time.
    Liveness,
    /// A run panicked.
    Crash,
    /// Loss was expected under this family but no seed showed it.
    NoLossShown,
}

/// One departure from the expectation, with the diagnosis if one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The row.
    pub settings: Settings,
    /// The column.
    pub family: FaultFamily,
    /// What departed.
    pub kind: DeviationKind,
    /// The first seed showing it (none for loss that never showed).
    pub first_seed: Option<u64>,
    /// Seeds showing it (for [`DeviationKind::NoLossShown`]: seeds run).
    pub seeds: u64,
    /// The first instance in words.
    pub example: String,
    /// For a forbidden class: every seed showing it also failed liveness.
    pub only_with_liveness: bool,
}

impl Deviation {
    fn new(cell: &Cell, kind: DeviationKind, finding: &Finding) -> Deviation {
        Deviation {
            settings: cell.settings,
            family: finding.first.1,
            kind,
            first_seed: Some(finding.first.0),
            seeds: finding.seeds,
            example: finding.example.clone(),
            only_with_liveness: match kind {
                DeviationKind::Forbidden(class) => !cell.forbidden_live.contains(&class),
                _ => false,
            },
        }
    }

    /// The deviation in words.
    pub fn describe(&self) -> String {
        let beside = if self.only_with_liveness {
            ", each beside a liveness failure"
        } else {
            ""
        };
        let what = match self.kind {
            DeviationKind::Forbidden(class) => format!("forbidden `{class}`"),
            DeviationKind::Liveness => "liveness failure".to_string(),
            DeviationKind::Crash => "panic".to_string(),
            DeviationKind::NoLossShown => "expected loss never shown".to_string(),
        };
        format!(
            "{}, {}: {what} ({} seeds{beside})",
            self.settings.label(),
            self.family.as_str(),
            self.seeds
        )
    }

    /// The diagnosis, when the investigation behind this document found one.
    pub fn diagnosis(&self) -> &'static str {
        diagnose(self)
    }
}

/// What the investigation found for each kind of deviation (the "Deviations" section): kept
/// in code so a regenerated document keeps its explanations.
fn diagnose(deviation: &Deviation) -> &'static str {
    let settings = deviation.settings;
    match deviation.kind {
        DeviationKind::NoLossShown
            if settings.acks == -1 && settings.unclean && deviation.family != FaultFamily::Wipe =>
        {
            "the expectation is Kafka's before KIP-966, not rill's. rill elects uncleanly only \
             when a partition has no leader and an empty ELR (`replication::election::\
             eligible_leaders`, fed by controller/src/election.rs: `shrink_and_elect`, \
             `unfence_batch`, `register_batch`). The ELR keeps every replica that left the ISR \
             while it was below min ISR electable across crashes, since rill's high watermark \
             counts only flushed data (and, since commit 7b02192, a replica reported offline \
             joins the ELR like any other); a member leaves it only by registering unclean \
             (its flushed bytes lost: a wiped disk or a quarantined log). Kills and partitions \
             destroy no disk, so under them an unclean election is never the only way out and \
             the setting never gets the chance to lose anything: rill with unclean election on \
             is as safe as with it off. Not a rill bug. The wipe column shows the loss: its \
             in-sync-copies-lost episode destroys the data disks of both in-sync replicas after \
             the third was fenced, which empties the ISR and the ELR"
        }
        DeviationKind::NoLossShown if settings.unclean && deviation.family == FaultFamily::Wipe => {
            "not diagnosed: the wipe family's in-sync-copies-lost episode should leave an \
             unclean election as the only way out in three of four seeds; replay a seed with \
             --verbose and look for `controller.election.unclean`"
        }
        DeviationKind::NoLossShown => {
            "not diagnosed: the faults of these seeds never moved leadership while acknowledged \
             records existed only on the old leader; more seeds may show it"
        }
        DeviationKind::Forbidden(_)
            if deviation.only_with_liveness && deviation.family == FaultFamily::Wipe =>
        {
            "every seed showing it here was left offline by design (`offline`) or failed \
             liveness: the wipe family's in-sync-copies-lost episode destroyed the data disks \
             of both in-sync replicas while the third was fenced (with min ISR 1, sometimes of \
             one: the other, only killed, left an ISR that stayed at min ISR, so it joined no \
             ELR), so the records acknowledged after the fence existed on no eligible replica. \
             With clean election no replica may lead (ISR and ELR empty), the partitions stay \
             leaderless and the values acknowledged but not yet polled before the episode are \
             never read: the unavailability Kafka documents for \
             `unclean.leader.election.enable=false`, after a fault (the in-sync disks destroyed, \
             the third replica stale) beyond what three replicas survive. No replica serves a \
             log without them: nothing is read out of place or lost silently. Not a rill bug"
        }
        DeviationKind::Forbidden(AnomalyClass::Unseen) if deviation.only_with_liveness => {
            "a consequence of the liveness failure in the same cell, not a loss: every seed \
             with `unseen` here also failed liveness, i.e. a partition stayed leaderless to the \
             end, so the final read could not reach the acknowledged values"
        }
        DeviationKind::Liveness if !settings.unclean => {
            "partitions left without a leader after overlapping kills or disk faults, in clean \
             election rows only, was a rill bug before commit 7b02192 (the ELR lost replicas \
             that held every acknowledged record: the same seeds with `--unclean on` recovered \
             with nothing lost). If it shows again, replay the seed with --verbose and compare \
             with `--unclean on`"
        }
        DeviationKind::Forbidden(_) | DeviationKind::Liveness | DeviationKind::Crash => {
            "not diagnosed yet: replay the seed with --verbose and --report FILE.html"
        }
    }
}

/// How to read the results: where the expectation had to be made precise before it could be
/// checked (both documents carry it).
const NOTES_MARKDOWN: &str = "## Notes on the expectation\n\n\
- acks=0: the broker answers nothing, so the client cannot know whether or where a record \
landed. The history records such a send as indeterminate (`info`, like a timeout), which the \
Jepsen checker never counts as lost; what acks=0 costs shows as `never-read` instead (values \
the producer handed over that no poll ever read).\n\
- Without idempotence a retried batch can be written twice. The checker places each value at \
one offset, so a duplicated value also makes polls and sends look out of order \
(`poll-skip`, `nonmonotonic-poll`, `int-nonmonotonic-poll`, `nonmonotonic-send`, ...). The \
matrix excuses those ordering classes in a seed that also shows a `duplicate`, and only under \
settings that allow duplicates; anywhere else they count. (`cargo sim --idempotence off` alone \
still calls them violations: `ClusterDraw::forbidden` forbids everything but `duplicate`.)\n\
- Idempotent rows: each producer sends from 1-4 concurrent lanes, so a partition has up to \
five batches in flight, pipelined and each retried with its own sequence; the brokers answer a \
retry of any of a producer's last five batches with its original offset, and keep producer \
state across retention and restarts (producer snapshots, KAFKA-7190). The stale-request \
nemesis of the default campaign (copies of acknowledged requests delivered again) stays out \
of the matrix's single-family cells.\n\
- min ISR 1 with acks=all and clean election is not predicted to lose data in rill, unlike \
Kafka: rill's high watermark counts only flushed data, and KIP-966's ELR keeps the last \
in-sync replicas electable across crashes, so only lost flushed bytes (disk faults) could \
lose an acknowledged record.\n\
- min ISR only affects acks=all (acks=1 and 0 never wait for followers), so rows that differ \
only in min ISR agree for acks=1 and acks=0 up to the timing of ISR changes.\n\
- Every seed draws its own timeouts, producer count, buggify rate and fault schedule from the \
seed alone, so one seed number means the same faults in every row of its column: rows differ \
only by their settings.\n\
- The wipe family holds, beside gated wipes (a node replaced while the other two hold \
everything acknowledged), one in-sync-copies-lost episode per seed, Kafka's case for unclean \
election: a node is killed and stays down past the broker session timeout (fenced, out of \
every ISR, its disk intact and stale), writes go on to the other two, then at one instant the \
stale node restarts and the other two lose their data disks (their raft logs survive) and come \
back empty a moment later, registering unclean: ISR and ELR are empty. (With min ISR 1 one \
destroyed disk can be enough: the other, only killed, may leave an ISR that stays at min ISR \
first, and KIP-966 keeps no ELR then.) With unclean election \
a stale or empty replica leads and what only the destroyed disks held is lost (`lost-write`, \
`unseen`); without it every partition stays leaderless to the end (`offline`, not counted as \
a liveness failure: no replica may lead, by design). In a quarter of the seeds one of the two \
is only killed, its disk intact: with min ISR 2 it stays in the ELR and leads again when it \
returns, under either setting, with nothing lost.\n\n";

/// How to run the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixOptions {
    /// Seeds per combination.
    pub seeds_per_cell: u64,
    /// First seed.
    pub start: u64,
    /// Seeds run at once.
    pub jobs: usize,
    /// Sends per producer, if not the scenario's default.
    pub steps: Option<u64>,
    /// Show progress on stderr.
    pub progress: bool,
    /// The rows to run (all of [`Settings::rows`] for the real matrix).
    pub rows: Vec<Settings>,
    /// The families to run.
    pub families: Vec<FaultFamily>,
}

impl MatrixOptions {
    /// Every row and family, `seeds_per_cell` seeds each.
    pub fn full(seeds_per_cell: u64, start: u64, jobs: usize, steps: Option<u64>) -> MatrixOptions {
        MatrixOptions {
            seeds_per_cell,
            start,
            jobs,
            steps,
            progress: true,
            rows: Settings::rows(),
            families: FaultFamily::ALL.to_vec(),
        }
    }
}

/// The scenario of one combination.
fn scenario(settings: Settings, family: FaultFamily, steps: Option<u64>) -> ClusterScenario {
    ClusterScenario::new(steps, None).with_overrides(settings.overrides(Some(family)))
}

/// The command that replays `seed` of one combination.
pub fn replay(settings: Settings, family: FaultFamily, steps: Option<u64>, seed: u64) -> String {
    replay_command(&scenario(settings, family, steps), seed)
}

/// Runs one seed of one combination on a fresh thread (madsim keeps thread-local state); a
/// panic becomes the outcome's `crash`.
pub fn run_seed(
    settings: Settings,
    family: FaultFamily,
    steps: Option<u64>,
    seed: u64,
) -> SeedOutcome {
    let handle = std::thread::Builder::new()
        .name(format!("matrix-seed-{seed}"))
        .stack_size(SEED_THREAD_STACK_BYTES)
        .spawn(move || {
            let checked = scenario(settings, family, steps).run_checked(seed);
            assert_eq!(
                checked.draw.acks, settings.acks,
                "the overrides reached the run"
            );
            let seen: Vec<AnomalyClass> = checked.report.anomalies.keys().copied().collect();
            let stats = &checked.report.stats;
            let sends = stats.values_sent_ok + stats.values_sent_info;
            let anomalies = checked
                .report
                .anomalies
                .iter()
                .map(|(class, report)| {
                    let example = report.cases.first().map_or(String::new(), |c| {
                        format!(
                            "key {}, values {:?}: {}",
                            c.key.as_deref().unwrap_or("-"),
                            c.values,
                            c.detail
                        )
                    });
                    (*class, report.count, example)
                })
                .collect();
            SeedOutcome {
                seed,
                family,
                anomalies,
                forbidden: settings.forbidden_in(&seen),
                sends,
                unread: sends.saturating_sub(stats.values_read),
                offline: checked
                    .liveness
                    .clone()
                    .filter(|l| l.starts_with(crate::cluster::OFFLINE_AFTER_ISR_LOSS)),
                liveness: checked
                    .liveness
                    .filter(|l| !l.starts_with(crate::cluster::OFFLINE_AFTER_ISR_LOSS)),
                crash: None,
                steps: checked.run.steps,
                simulated_ms: checked.run.simulated_ms,
            }
        })
        .expect("the OS can start a thread for a seed");
    handle.join().unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic payload".to_string());
        SeedOutcome {
            seed,
            family,
            anomalies: Vec::new(),
            forbidden: Vec::new(),
            sends: 0,
            unread: 0,
            liveness: None,
            offline: None,
            crash: Some(message),
            steps: 0,
            simulated_ms: 0,
        }
    })
}

/// Runs every combination of `options`, `jobs` seeds at a time.
pub fn run(options: &MatrixOptions) -> Matrix {
    let started = Instant::now();
    let outcomes = run_work(options, &work(options));
    let params = Params {
        seeds_per_cell: options.seeds_per_cell,
        start: options.start,
        steps: options.steps,
        jobs: options.jobs,
        wall_s: started.elapsed().as_secs_f64(),
        commit: commit(),
    };
    tables(params, options, &outcomes)
}

/// The tables of `outcomes`, the runs of `options` (or all of its shards' runs).
pub fn tables(
    params: Params,
    options: &MatrixOptions,
    outcomes: &[(Settings, SeedOutcome)],
) -> Matrix {
    let mut matrix = Matrix::build(params, &options.rows, outcomes);
    matrix
        .cells
        .retain(|c| c.family.is_some_and(|f| options.families.contains(&f)));
    matrix
}

/// Every run of `options`, in order: rows, then families, then seeds (what `--shard` splits).
pub fn work(options: &MatrixOptions) -> Vec<(Settings, FaultFamily, u64)> {
    assert!(
        (1..=SEEDS_PER_CELL_MAX).contains(&options.seeds_per_cell),
        "seeds per cell in 1..={SEEDS_PER_CELL_MAX}"
    );
    let mut work = Vec::new();
    for settings in &options.rows {
        for family in &options.families {
            for seed in options.start..options.start + options.seeds_per_cell {
                work.push((*settings, *family, seed));
            }
        }
    }
    assert_eq!(
        work.len() as u64,
        options.rows.len() as u64 * options.families.len() as u64 * options.seeds_per_cell
    );
    work
}

/// Runs `work` (runs of `options`), `jobs` at a time; the outcomes come in completion order.
pub fn run_work(
    options: &MatrixOptions,
    work: &[(Settings, FaultFamily, u64)],
) -> Vec<(Settings, SeedOutcome)> {
    assert!(options.jobs >= 1, "the matrix needs at least one job");
    let work = Arc::new(work.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, receiver) = mpsc::channel::<(Settings, SeedOutcome)>();
    let mut workers = Vec::new();
    for _ in 0..options.jobs.min(work.len()) {
        let (work, next, sender) = (Arc::clone(&work), Arc::clone(&next), sender.clone());
        let steps = options.steps;
        workers.push(std::thread::spawn(move || loop {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(&(settings, family, seed)) = work.get(index) else {
                break;
            };
            let outcome = run_seed(settings, family, steps, seed);
            if sender.send((settings, outcome)).is_err() {
                break;
            }
        }));
    }
    drop(sender);
    let progress = Progress::new(
        work.len() as u64,
        options.progress,
        "runs",
        "liveness failures or crashes",
    );
    let mut outcomes = Vec::with_capacity(work.len());
    for (settings, outcome) in receiver {
        progress.advance(outcome.crash.is_some() || outcome.liveness.is_some());
        outcomes.push((settings, outcome));
    }
    for worker in workers {
        worker
            .join()
            .expect("matrix workers do not panic: seeds run on their own threads");
    }
    progress.finish();
    assert_eq!(
        outcomes.len(),
        work.len(),
        "every seed reports exactly once"
    );
    outcomes
}

/// The rill commit (`git rev-parse --short HEAD`, `+dirty` with local changes), if git is
/// there to ask.
pub(crate) fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}

/// What each anomaly class means, in a sentence (the legend).
fn family_name(family: Option<FaultFamily>) -> &'static str {
    family.map_or("all families", FaultFamily::as_str)
}

/// The cell's findings in one line of Markdown or plain text.
fn cell_text(cell: &Cell) -> String {
    let mut parts = Vec::new();
    let forbidden = cell.forbidden_seen();
    for (class, f) in &cell.anomalies {
        let mark = if forbidden.contains(class) { "**" } else { "" };
        parts.push(format!(
            "{mark}{class}{mark} {}/{} (seed {})",
            f.seeds, cell.seeds_run, f.first.0
        ));
    }
    if let Some(f) = &cell.unread {
        parts.push(format!(
            "never-read {}/{} (seed {}; {} of {} values)",
            f.seeds, cell.seeds_run, f.first.0, f.instances, cell.sends
        ));
    }
    if let Some(f) = &cell.offline {
        parts.push(format!(
            "offline {}/{} (seed {})",
            f.seeds, cell.seeds_run, f.first.0
        ));
    }
    for (what, finding) in [("liveness", &cell.liveness), ("panic", &cell.crashes)] {
        if let Some(f) = finding {
            parts.push(format!(
                "**{what}** {}/{} (seed {})",
                f.seeds, cell.seeds_run, f.first.0
            ));
        }
    }
    if parts.is_empty() {
        format!("none (0/{})", cell.seeds_run)
    } else {
        parts.join("; ")
    }
}

/// Every finding of a cell with its replay command, as Markdown list items.
fn findings(cell: &Cell, steps: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let items = cell
        .anomalies
        .iter()
        .map(|(class, f)| (class.name().to_string(), f))
        .chain(cell.unread.iter().map(|f| ("never-read".to_string(), f)))
        .chain(cell.liveness.iter().map(|f| ("liveness".to_string(), f)))
        .chain(cell.offline.iter().map(|f| ("offline".to_string(), f)))
        .chain(cell.crashes.iter().map(|f| ("panic".to_string(), f)));
    for (name, f) in items {
        out.push(format!(
            "{name}: {} of {} seeds, {} instances; e.g. {}\n  `{}`",
            f.seeds,
            cell.seeds_run,
            f.instances,
            f.example.replace('`', "'").replace('\n', " "),
            replay(cell.settings, f.first.1, steps, f.first.0)
        ));
    }
    out
}

fn command_line(params: &Params) -> String {
    let mut line = format!(
        "cargo sim matrix --seeds {} --start {} --jobs {}",
        params.seeds_per_cell, params.start, params.jobs
    );
    if let Some(steps) = params.steps {
        let _ = write!(line, " --steps {steps}");
    }
    line
}

/// The Markdown document.
pub fn render_markdown(matrix: &Matrix) -> String {
    let p = &matrix.params;
    let mut md = String::new();
    let _ = writeln!(md, "# rill's delivery guarantees under faults\n");
    let _ = writeln!(
        md,
        "Generated by `{}` (rill commit {}). Each cell runs the three-node cluster scenario of \
         the deterministic simulator with the row's settings fixed and only the column's fault \
         family; the Jepsen queue checker judges each history. A cell lists every anomaly class \
         seen as `class seeds-showing/seeds-run (first seed)`; **bold** marks what the row's \
         promise forbids. `docs/guarantees.html` shows the same as a colour-coded grid.\n",
        command_line(p),
        p.commit.as_deref().unwrap_or("unknown")
    );
    md.push_str(&params_markdown(matrix));
    md.push_str(&expectations_markdown(matrix));
    md.push_str(&grid_markdown(matrix));
    md.push_str(NOTES_MARKDOWN);
    md.push_str(&deviations_markdown(matrix));
    md.push_str(&findings_markdown(matrix));
    md.push_str(&legend_markdown());
    md
}

fn params_markdown(matrix: &Matrix) -> String {
    let p = &matrix.params;
    let simulated_ms: u64 = matrix.cells.iter().map(|c| c.simulated_ms).sum();
    let steps: u64 = matrix.cells.iter().map(|c| c.steps).sum();
    let mut md = String::from("## Run\n\n");
    let _ = writeln!(
        md,
        "- combinations: {} settings rows x {} fault families = {}",
        matrix.rows.len(),
        matrix.cells.len() / matrix.rows.len().max(1),
        matrix.cells.len()
    );
    let _ = writeln!(
        md,
        "- seeds per combination: {} (seeds {}..={}); runs: {}",
        p.seeds_per_cell,
        p.start,
        p.start + p.seeds_per_cell.saturating_sub(1),
        matrix.seeds_run()
    );
    let _ = writeln!(
        md,
        "- sends per producer: {}",
        p.steps.map_or(
            "scenario default (bounded by the safety phase)".to_string(),
            |s| s.to_string()
        )
    );
    let _ = writeln!(md, "- client operations completed: {steps}");
    let _ = writeln!(
        md,
        "- simulated time: {:.1} h ({:.1} s per run)",
        simulated_ms as f64 / 3_600_000.0,
        simulated_ms as f64 / 1000.0 / matrix.seeds_run().max(1) as f64
    );
    let _ = writeln!(
        md,
        "- wall time: {:.0} s with {} jobs on this machine\n",
        p.wall_s, p.jobs
    );
    let not_applicable: Vec<String> = Settings::not_applicable()
        .into_iter()
        .map(Settings::label)
        .collect();
    let _ = writeln!(
        md,
        "Not applicable (Kafka's producer refuses idempotence without acks=all, and so does \
         `cargo sim`): {}.\n",
        not_applicable.join("; ")
    );
    md
}

fn expectations_markdown(matrix: &Matrix) -> String {
    let mut md = String::from("## Expectation and result per settings row\n\n");
    md.push_str("| settings | promise | expectation | result, all families |\n|---|---|---|---|\n");
    for row in &matrix.rows {
        let promise = row.settings.promise();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}: {} |",
            row.settings.label(),
            promise.name(),
            promise.expectation(),
            row.verdict().name(),
            cell_text(row)
        );
    }
    md.push('\n');
    md
}

fn grid_markdown(matrix: &Matrix) -> String {
    let families = columns(matrix);
    let mut md = String::from("## The matrix\n\n| settings |");
    for family in &families {
        let _ = write!(md, " {} |", family.as_str());
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(families.len()));
    md.push('\n');
    for row in &matrix.rows {
        let _ = write!(md, "| {} |", row.settings.label());
        for family in &families {
            let text = matrix
                .cell(row.settings, *family)
                .map_or("-".to_string(), |c| {
                    format!("{}: {}", c.verdict().name(), cell_text(c))
                });
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

/// The families the matrix has cells for, in display order.
fn columns(matrix: &Matrix) -> Vec<FaultFamily> {
    let present: BTreeSet<FaultFamily> = matrix.cells.iter().filter_map(|c| c.family).collect();
    FaultFamily::ALL
        .into_iter()
        .filter(|f| present.contains(f))
        .collect()
}

fn deviations_markdown(matrix: &Matrix) -> String {
    let deviations = matrix.deviations();
    let mut md = String::from("## Deviations from the expectation\n\n");
    if deviations.is_empty() {
        md.push_str("None: every cell matches its row's expectation.\n\n");
        return md;
    }
    for d in deviations {
        let _ = writeln!(md, "- {}", d.describe());
        if let Some(seed) = d.first_seed {
            let _ = writeln!(
                md,
                "  - first seed {seed}: {}\n  - replay: `{}`",
                d.example.replace('`', "'").replace('\n', " "),
                replay(d.settings, d.family, matrix.params.steps, seed)
            );
        }
        let _ = writeln!(md, "  - diagnosis: {}", d.diagnosis());
    }
    md.push('\n');
    md
}

fn findings_markdown(matrix: &Matrix) -> String {
    let mut md = String::from("## Findings with replay commands\n\n");
    for cell in &matrix.cells {
        let items = findings(cell, matrix.params.steps);
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "### {}, {}\n",
            cell.settings.label(),
            family_name(cell.family)
        );
        for item in items {
            let _ = writeln!(md, "- {item}");
        }
        md.push('\n');
    }
    md
}

fn legend_markdown() -> String {
    let mut md = String::from("## Legend\n\n");
    for class in AnomalyClass::ALL {
        let _ = writeln!(md, "- `{class}`: {}", class.meaning());
    }
    md.push_str(
        "- `never-read`: sent values (acknowledged or indeterminate) that no poll ever read, \
         counted from the checker's statistics; an indeterminate send may rightly never have \
         landed, so this is only a loss where nothing is acknowledged (acks=0)\n\
         - `liveness`: after the faults stopped, the cluster did not get every partition a \
         leader and a full ISR, or a fresh consumer could not read every acknowledged value \
         (strong settings only), within the liveness deadline\n\
         - `offline`: seeds left with every partition leaderless by design: the wipe family's \
         in-sync-copies-lost episode destroyed every in-sync copy and unclean election was off \
         (an expected unavailability, not a liveness failure)\n\
         - `panic`: a node or the harness panicked (a broken invariant)\n\
         - verdicts: `clean` nothing seen; `allowed` only what the row's promise allows; \
         `unavailable` some seeds left offline by design (`offline`), any forbidden class seen \
         only in them; `VIOLATED` a forbidden class, a liveness failure or a panic\n",
    );
    md
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The background colour of a verdict.
fn colour(cell: &Cell) -> &'static str {
    match cell.verdict() {
        Verdict::Clean => "#c8ecc8",
        Verdict::Allowed if cell.loss_seen() => "#ffd9a0",
        Verdict::Allowed => "#fff3b0",
        Verdict::Violated => "#f4a6a6",
        Verdict::Unavailable => "#cfe0f4",
    }
}

/// One grid cell as HTML: each finding with frequency and a repro seed (the replay command in
/// its tooltip).
fn cell_html(cell: &Cell, steps: Option<u64>) -> String {
    let mut html = format!(
        "<td style=\"background:{}\"><b>{}</b>",
        colour(cell),
        cell.verdict().name()
    );
    let forbidden = cell.forbidden_seen();
    let items = cell
        .anomalies
        .iter()
        .map(|(class, f)| (class.name().to_string(), forbidden.contains(class), f))
        .chain(
            cell.unread
                .iter()
                .map(|f| ("never-read".to_string(), false, f)),
        )
        .chain(
            cell.liveness
                .iter()
                .map(|f| ("liveness".to_string(), true, f)),
        )
        .chain(
            cell.offline
                .iter()
                .map(|f| ("offline".to_string(), false, f)),
        )
        .chain(cell.crashes.iter().map(|f| ("panic".to_string(), true, f)));
    let mut any = false;
    for (name, bad, f) in items {
        any = true;
        let _ = write!(
            html,
            "<br><span class=\"{}\" title=\"{}\">{} {}/{} <small>seed {}</small></span>",
            if bad { "bad" } else { "ok" },
            escape(&replay(cell.settings, f.first.1, steps, f.first.0)),
            escape(&name),
            f.seeds,
            cell.seeds_run,
            f.first.0
        );
    }
    if !any {
        let _ = write!(html, "<br>0/{} seeds", cell.seeds_run);
    }
    html.push_str("</td>");
    html
}

/// The self-contained HTML page: the grid, the expectations, the deviations, the findings
/// with replay commands and the legend.
pub fn render_html(matrix: &Matrix) -> String {
    let p = &matrix.params;
    let mut html = String::new();
    html.push_str(
        "<!doctype html><html><head><meta charset=utf-8><title>rill delivery guarantees</title>\
         <style>body{font-family:sans-serif;margin:20px;max-width:1400px}\
         table{border-collapse:collapse;margin:10px 0}td,th{border:1px solid #999;padding:4px 6px;\
         vertical-align:top;font-size:13px}th{background:#eee}.bad{color:#900;font-weight:bold}\
         code{font-size:12px;background:#f4f4f4}small{color:#555}.key span{padding:2px 8px;\
         margin-right:8px;border:1px solid #999}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>rill's delivery guarantees under faults</h1><p>Generated by <code>{}</code> (rill \
         commit {}): {} combinations x {} seeds = {} runs, {:.0} s wall time with {} jobs. Each \
         cell runs the three-node cluster scenario with the row's settings and only the \
         column's fault family; the Jepsen queue checker judges the history. Hover a finding \
         for its replay command.</p>",
        escape(&command_line(p)),
        escape(p.commit.as_deref().unwrap_or("unknown")),
        matrix.cells.len(),
        p.seeds_per_cell,
        matrix.seeds_run(),
        p.wall_s,
        p.jobs
    );
    html.push_str(
        "<p class=key><span style=\"background:#c8ecc8\">clean: nothing seen</span>\
         <span style=\"background:#fff3b0\">allowed anomalies, no loss</span>\
         <span style=\"background:#ffd9a0\">allowed loss of acknowledged writes</span>\
         <span style=\"background:#cfe0f4\">unavailable by design: every in-sync copy destroyed, clean election</span>\
         <span style=\"background:#f4a6a6\">VIOLATED: forbidden anomaly, liveness or panic</span></p>",
    );
    html.push_str(&grid_html(matrix));
    html.push_str(&markdown_section_html(&expectations_markdown(matrix)));
    html.push_str(&markdown_section_html(NOTES_MARKDOWN));
    html.push_str(&markdown_section_html(&deviations_markdown(matrix)));
    html.push_str(&markdown_section_html(&findings_markdown(matrix)));
    html.push_str(&markdown_section_html(&legend_markdown()));
    html.push_str("</body></html>\n");
    html
}

fn grid_html(matrix: &Matrix) -> String {
    let families = columns(matrix);
    let mut html = String::from("<table><tr><th>settings</th><th>promise</th>");
    for family in &families {
        let _ = write!(html, "<th>{}</th>", family.as_str());
    }
    html.push_str("<th>all families</th></tr>");
    for row in &matrix.rows {
        let promise = row.settings.promise();
        let _ = write!(
            html,
            "<tr><th style=\"text-align:left\">{}</th><td title=\"{}\">{}<br><small>{}</small></td>",
            escape(&row.settings.label()),
            escape(promise.expectation()),
            escape(promise.name()),
            escape(promise.expectation())
        );
        for family in &families {
            match matrix.cell(row.settings, *family) {
                Some(cell) => html.push_str(&cell_html(cell, p_steps(matrix))),
                None => html.push_str("<td>-</td>"),
            }
        }
        html.push_str(&cell_html(row, p_steps(matrix)));
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

fn p_steps(matrix: &Matrix) -> Option<u64> {
    matrix.params.steps
}

/// Renders the simple Markdown this module writes (headings, list items, code spans, bold)
/// as HTML, so both documents share one text.
fn markdown_section_html(markdown: &str) -> String {
    let mut html = String::new();
    let mut in_list = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let is_item = trimmed.starts_with("- ");
        if in_list && !is_item && !line.starts_with("  ") {
            html.push_str("</ul>");
            in_list = false;
        }
        if let Some(title) = line.strip_prefix("### ") {
            let _ = write!(html, "<h3>{}</h3>", inline_html(title));
        } else if let Some(title) = line.strip_prefix("## ") {
            let _ = write!(html, "<h2>{}</h2>", inline_html(title));
        } else if is_item {
            if !in_list {
                html.push_str("<ul>");
                in_list = true;
            }
            let _ = write!(html, "<li>{}", inline_html(&trimmed[2..]));
        } else if line.starts_with("  ") {
            let _ = write!(html, "<br>{}", inline_html(trimmed));
        } else if !line.is_empty() {
            let _ = write!(html, "<p>{}</p>", inline_html(line));
        }
    }
    if in_list {
        html.push_str("</ul>");
    }
    html
}

/// Escapes a line and turns `code` and **bold** spans into tags.
fn inline_html(text: &str) -> String {
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let escaped = escape(text);
    let mut rest = escaped.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("**") && !code {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = &rest[2..];
            continue;
        }
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</b>");
    }
    out
}

/// Writes `guarantees.md` and `guarantees.html` into `dir` (created if missing).
pub fn write(matrix: &Matrix, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in [
        ("guarantees.md", render_markdown(matrix)),
        ("guarantees.html", render_html(matrix)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    assert_eq!(written.len(), 2);
    Ok(written)
}

/// A summary for the terminal: verdict counts and the deviations.
pub fn summarize(matrix: &Matrix) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<Verdict, u64> = BTreeMap::new();
    for cell in &matrix.cells {
        *counts.entry(cell.verdict()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "matrix: {} combinations, {} runs, {:.0} s wall",
        matrix.cells.len(),
        matrix.seeds_run(),
        matrix.params.wall_s
    );
    for (verdict, count) in counts {
        let _ = writeln!(out, "  {:<10} {count}", verdict.name());
    }
    for d in matrix.deviations() {
        let _ = writeln!(out, "deviation: {}", d.describe());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn outcome(seed: u64, family: FaultFamily, classes: &[AnomalyClass]) -> SeedOutcome {
        outcome_of(strong(), seed, family, classes)
    }

    fn outcome_of(
        settings: Settings,
        seed: u64,
        family: FaultFamily,
        classes: &[AnomalyClass],
    ) -> SeedOutcome {
        SeedOutcome {
            forbidden: settings.forbidden_in(classes),
            sends: 10,
            unread: u64::from(classes.contains(&AnomalyClass::Unseen)),
            seed,
            family,
            anomalies: classes
                .iter()
                .map(|c| (*c, 2, format!("{c} example")))
                .collect(),
            liveness: None,
            offline: None,
            crash: None,
            steps: 100,
            simulated_ms: 20_000,
        }
    }

    fn strong() -> Settings {
        Settings::rows()[0]
    }

    fn acks_one() -> Settings {
        Settings {
            acks: 1,
            min_isr: 2,
            unclean: false,
            idempotence: false,
        }
    }

    fn params() -> Params {
        Params {
            seeds_per_cell: 3,
            start: 1,
            steps: Some(50),
            jobs: 2,
            wall_s: 1.5,
            commit: Some("abc1234".into()),
        }
    }

    #[test]
    fn rows_are_the_sixteen_valid_combinations() {
        let rows = Settings::rows();
        assert_eq!(rows.len(), 16);
        assert_eq!(Settings::not_applicable().len(), 8);
        assert_eq!(rows[0].promise(), Promise::Strong);
        assert!(rows.iter().all(|s| !s.idempotence || s.acks == -1));
        assert_eq!(
            rows.iter()
                .filter(|s| s.promise() == Promise::NoAck)
                .count(),
            4
        );
        assert!(acks_one().loss_expected(FaultFamily::Kills));
        assert!(!strong().loss_expected(FaultFamily::Kills));
    }

    #[test]
    fn aggregation_counts_seeds_and_keeps_the_first() {
        use AnomalyClass::*;
        let weak = |seed, classes: &[AnomalyClass]| {
            outcome_of(acks_one(), seed, FaultFamily::Kills, classes)
        };
        let weak_outcomes = vec![
            weak(3, &[LostWrite, Unseen]),
            weak(1, &[]),
            weak(2, &[Unseen]),
        ];
        let cell = Cell::aggregate(acks_one(), Some(FaultFamily::Kills), &weak_outcomes);
        assert_eq!(cell.seeds_run, 3);
        assert_eq!(cell.anomalies[&Unseen].seeds, 2);
        assert_eq!(cell.anomalies[&Unseen].instances, 4);
        assert_eq!(cell.anomalies[&Unseen].first, (2, FaultFamily::Kills));
        assert_eq!(cell.anomalies[&LostWrite].first.0, 3);
        assert_eq!(cell.verdict(), Verdict::Allowed, "acks=1 may lose");
        assert!(cell.loss_seen());
        let outcomes = vec![
            outcome(3, FaultFamily::Kills, &[LostWrite, Unseen]),
            outcome(1, FaultFamily::Kills, &[]),
            outcome(2, FaultFamily::Kills, &[Unseen]),
        ];
        let strong_cell = Cell::aggregate(strong(), Some(FaultFamily::Kills), &outcomes);
        assert_eq!(strong_cell.verdict(), Verdict::Violated);
        assert_eq!(strong_cell.forbidden_seen(), vec![LostWrite, Unseen]);
        let clean = Cell::aggregate(strong(), Some(FaultFamily::Kills), &outcomes[1..2]);
        assert_eq!(clean.verdict(), Verdict::Clean);
    }

    #[test]
    fn a_forbidden_class_only_beside_a_by_design_offline_end_is_unavailable_not_violated() {
        use AnomalyClass::*;
        let mut offline = outcome(1, FaultFamily::Wipe, &[Unseen]);
        offline.offline = Some(format!(
            "{}liveness: no leader",
            crate::cluster::OFFLINE_AFTER_ISR_LOSS
        ));
        let passing = outcome(2, FaultFamily::Wipe, &[]);
        let cell = Cell::aggregate(
            strong(),
            Some(FaultFamily::Wipe),
            &[offline.clone(), passing.clone()],
        );
        assert_eq!(cell.verdict(), Verdict::Unavailable);
        assert!(cell.liveness.is_none());
        assert!(cell_text(&cell).contains("offline 1/2 (seed 1)"));
        let deviations: Vec<Deviation> = Matrix {
            params: params(),
            cells: vec![cell],
            rows: Vec::new(),
        }
        .deviations();
        assert_eq!(deviations.len(), 1, "{deviations:?}");
        assert!(deviations[0].only_with_liveness);
        assert!(deviations[0].diagnosis().contains("in-sync-copies-lost"));
        // The same class in a seed that was not offline still violates the promise.
        let lost = outcome(3, FaultFamily::Wipe, &[Unseen]);
        let cell = Cell::aggregate(strong(), Some(FaultFamily::Wipe), &[offline, passing, lost]);
        assert_eq!(cell.verdict(), Verdict::Violated);
    }

    #[test]
    fn the_same_outcomes_in_any_order_give_the_same_matrix() {
        let mut outcomes = Vec::new();
        for (i, family) in FaultFamily::ALL.into_iter().enumerate() {
            for seed in 1..=3 {
                let classes: &[AnomalyClass] = if seed as usize == i {
                    &[AnomalyClass::Duplicate]
                } else {
                    &[]
                };
                outcomes.push((strong(), outcome(seed, family, classes)));
                outcomes.push((acks_one(), outcome_of(acks_one(), seed, family, classes)));
            }
        }
        let rows = [strong(), acks_one()];
        let a = Matrix::build(params(), &rows, &outcomes);
        outcomes.reverse();
        let b = Matrix::build(params(), &rows, &outcomes);
        assert_eq!(a, b);
        assert_eq!(a.cells.len(), 2 * FaultFamily::ALL.len());
        assert_eq!(a.rows[0].anomalies[&AnomalyClass::Duplicate].seeds, 3);
        assert_eq!(
            a.rows[0].anomalies[&AnomalyClass::Duplicate].first,
            (1, FaultFamily::Kills)
        );
        assert_eq!(render_markdown(&a), render_markdown(&b));
    }

    #[test]
    fn duplicates_excuse_the_ordering_classes_they_imply_only_where_allowed() {
        use AnomalyClass::*;
        let no_idempotence = Settings {
            idempotence: false,
            ..strong()
        };
        assert_eq!(no_idempotence.promise(), Promise::StrongDuplicatesAllowed);
        let seen = [Duplicate, NonmonotonicPoll, IntPollSkip];
        assert!(no_idempotence.forbidden_in(&seen).is_empty());
        assert_eq!(
            no_idempotence.forbidden_in(&[NonmonotonicPoll, Unseen]),
            vec![NonmonotonicPoll, Unseen],
            "without a duplicate an ordering anomaly stays forbidden"
        );
        assert_eq!(strong().forbidden_in(&seen), seen.to_vec());
        assert!(acks_one().forbidden_in(&[LostWrite, Duplicate]).is_empty());
    }

    #[test]
    fn rendering_names_rows_findings_replays_and_deviations() {
        let outcomes = vec![
            (
                strong(),
                outcome(1, FaultFamily::Kills, &[AnomalyClass::LostWrite]),
            ),
            (strong(), outcome(2, FaultFamily::Kills, &[])),
            (acks_one(), outcome(1, FaultFamily::Kills, &[])),
        ];
        let matrix = Matrix::build(params(), &[strong(), acks_one()], &outcomes);
        let md = render_markdown(&matrix);
        for row in [strong(), acks_one()] {
            assert!(md.contains(&row.label()), "{md}");
        }
        assert!(md.contains("**lost-write** 1/2 (seed 1)"), "{md}");
        let replay_line = "cargo sim --scenario cluster --steps 50 --acks all --min-isr 2 \
                           --unclean off --idempotence on --faults kills --seed 1";
        assert!(md.contains(replay_line), "{md}");
        let deviations = matrix.deviations();
        assert_eq!(deviations.len(), 2, "{deviations:?}");
        assert_eq!(
            deviations[0].kind,
            DeviationKind::Forbidden(AnomalyClass::LostWrite)
        );
        assert!(!deviations[0].only_with_liveness);
        assert_eq!(deviations[1].kind, DeviationKind::NoLossShown);
        let mut dead = outcome(3, FaultFamily::Kills, &[AnomalyClass::Unseen]);
        dead.liveness = Some("liveness: no leader".into());
        let beside = Matrix::build(params(), &[strong()], &[(strong(), dead)]).deviations();
        assert!(beside[0].only_with_liveness, "{beside:?}");
        assert!(beside[0].describe().contains("beside a liveness failure"));
        assert_eq!(beside[1].kind, DeviationKind::Liveness);
        assert!(md.contains("## Deviations"));
        let html = render_html(&matrix);
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
        assert!(html.contains(&escape(&strong().label())));
        assert!(html.contains("#f4a6a6"), "the violated cell is red");
        assert!(!html.contains("http"), "no external assets");
        assert_eq!(
            inline_html("a `b<c` **d**"),
            "a <code>b&lt;c</code> <b>d</b>"
        );
    }
}
