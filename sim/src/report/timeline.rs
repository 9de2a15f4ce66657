//! What a report draws, recorded as a run goes: for the cluster scenario, fault spans per node,
//! each partition's leader and ISR, client operations and the findings of the checks over
//! simulated time; for the storage scenario, numeric series and fault marks over steps.
//!
//! Every collection has a limit, so a long soak cannot grow a run's record without bound: what
//! a limit refuses is counted in [`Timeline::dropped`] and the page says so.

/// Most fault spans kept (a schedule holds at most 512 faults; heals and clocks add a few).
pub const SPANS_MAX: usize = 2_048;
/// Most single-moment marks kept (restarts, clock jumps, forgeries, BUGGIFY disk faults).
pub const MOMENTS_MAX: usize = 2_048;
/// Most lanes (nodes) kept.
pub const LANES_MAX: usize = 16;
/// Most characters of a lane's name.
pub const LANE_CHARS_MAX: usize = 40;
/// Most phase marks kept.
pub const PHASES_MAX: usize = 32;
/// Most leader/ISR segments kept per partition (one per observed change; the observer looks
/// every 0.5 s, so a run of 400 simulated seconds observes at most 800 times).
pub const SEGMENTS_PER_PARTITION_MAX: usize = 1_024;
/// Most partitions drawn.
pub const PARTITIONS_MAX: usize = 16;
/// Most client operations kept (a run of the default campaign has a few thousand).
pub const OPS_MAX: usize = 200_000;
/// Most findings kept (the checker keeps at most 64 cases for each of its 14 classes).
pub const FINDINGS_MAX: usize = 1_024;
/// Most operations one finding names.
pub const FINDING_OPS_MAX: usize = 16;
/// Most characters of a label or an operation's text: longer ones are cut.
pub const LABEL_CHARS_MAX: usize = 160;
/// Most characters of a finding's detail.
pub const DETAIL_CHARS_MAX: usize = 600;

/// The row of a node's lane a fault is drawn in: one per thing that can go wrong with a node,
/// so overlapping faults of different kinds stay readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    /// The process: killed, wiped, frozen, restarted.
    Process,
    /// Its links: isolated, partitioned from a peer, one-way drops, slow network.
    Network,
    /// Its disk: I/O errors and bit flips.
    Disk,
    /// Its wall clock: offset and drift, jumps.
    Clock,
}

impl Row {
    /// Every row, top to bottom.
    pub const ALL: [Row; 4] = [Row::Process, Row::Network, Row::Disk, Row::Clock];

    /// The row's name, beside the lane's.
    pub fn name(self) -> &'static str {
        match self {
            Row::Process => "process",
            Row::Network => "network",
            Row::Disk => "disk",
            Row::Clock => "clock",
        }
    }
}

/// What a span shows: its row and colour follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpanKind {
    /// The process is down (killed, or every node lost power).
    Killed,
    /// The process is down and its disk was wiped: it comes back empty.
    Wiped,
    /// The process is frozen (madsim's pause): no task or timer of it runs.
    Frozen,
    /// Cut off from every other node.
    Isolated,
    /// The links to one peer are cut both ways.
    Partitioned,
    /// One direction of a link drops everything.
    OneWay,
    /// Every message is slow (the whole network).
    Slow,
    /// The disk fails writes and syncs, may flip bits.
    DiskFaults,
    /// The wall clock is off (offset and drift).
    ClockSkew,
}

impl SpanKind {
    /// The row the span is drawn in.
    pub fn row(self) -> Row {
        match self {
            SpanKind::Killed | SpanKind::Wiped | SpanKind::Frozen => Row::Process,
            SpanKind::Isolated | SpanKind::Partitioned | SpanKind::OneWay | SpanKind::Slow => {
                Row::Network
            }
            SpanKind::DiskFaults => Row::Disk,
            SpanKind::ClockSkew => Row::Clock,
        }
    }

    /// Its name, as the legend gives it (also its CSS class).
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Killed => "killed",
            SpanKind::Wiped => "wiped",
            SpanKind::Frozen => "frozen",
            SpanKind::Isolated => "isolated",
            SpanKind::Partitioned => "partitioned",
            SpanKind::OneWay => "one-way",
            SpanKind::Slow => "slow",
            SpanKind::DiskFaults => "disk-faults",
            SpanKind::ClockSkew => "clock",
        }
    }

    /// Every kind, in legend order.
    pub const ALL: [SpanKind; 9] = [
        SpanKind::Killed,
        SpanKind::Wiped,
        SpanKind::Frozen,
        SpanKind::Isolated,
        SpanKind::Partitioned,
        SpanKind::OneWay,
        SpanKind::Slow,
        SpanKind::DiskFaults,
        SpanKind::ClockSkew,
    ];
}

/// A fault that lasted: from its start to its end (`None`: still on when the run ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The lane (node) it is drawn in.
    pub lane: String,
    /// What it is.
    pub kind: SpanKind,
    /// Simulated ms it began.
    pub from_ms: u64,
    /// Simulated ms it ended, if it did.
    pub to_ms: Option<u64>,
    /// Its words ("cut from n2", "io 12‰").
    pub label: String,
}

/// Something that happened at one moment (a restart, a clock jump, a forged frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// The lane (node) it is drawn in.
    pub lane: String,
    /// Its row.
    pub row: Row,
    /// Simulated ms.
    pub at_ms: u64,
    /// Its words.
    pub label: String,
}

/// One observed state of a partition, lasting from `from_ms` and seen again until `seen_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// When this state was first observed.
    pub from_ms: u64,
    /// When it was last observed.
    pub seen_ms: u64,
    /// The leader's broker id, if the partition had one.
    pub leader: Option<i32>,
    /// The leader epoch.
    pub epoch: i32,
    /// The in-sync replicas' broker ids.
    pub isr: Vec<i32>,
}

/// A partition's observed leaders and ISRs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionLane {
    /// The partition's name (`t-0`).
    pub key: String,
    /// Its states, in time order.
    pub segments: Vec<Segment>,
}

/// How a client operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpOutcome {
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Failed,
    /// It may or may not have happened (a timeout, a lost connection).
    Indeterminate,
    /// It never completed before the run ended (indeterminate too).
    Open,
}

impl OpOutcome {
    /// Its name (also its CSS class).
    pub fn name(self) -> &'static str {
        match self {
            OpOutcome::Ok => "ok",
            OpOutcome::Failed => "failed",
            OpOutcome::Indeterminate => "indeterminate",
            OpOutcome::Open => "never completed",
        }
    }
}

/// What kind of operation a mark is (its shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpShape {
    /// A produce.
    Send,
    /// A consume.
    Poll,
    /// Anything else (assign, subscribe).
    Other,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpMark {
    /// The history index the checker cites it by: its completion's, or its invocation's if it
    /// never completed.
    pub index: u64,
    /// The Jepsen process that ran it.
    pub process: u64,
    /// Its shape.
    pub shape: OpShape,
    /// How it ended.
    pub outcome: OpOutcome,
    /// Simulated µs it was invoked.
    pub invoked_us: u64,
    /// Simulated µs it took, if it completed.
    pub latency_us: Option<u64>,
    /// What it did, in words ("send t-1 7 -> offset 57").
    pub text: String,
}

/// What a finding means for the guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// An acknowledged write was lost, moved, duplicated, or replicas disagree.
    Safety,
    /// The cluster did not recover in time after the faults ended.
    Liveness,
    /// A process panicked (a broken invariant).
    Crash,
    /// Seen, and allowed by the run's settings (acks=1, min ISR 1, unclean elections).
    Allowed,
}

impl FindingKind {
    /// The words the report labels it with.
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::Safety => "safety violation",
            FindingKind::Liveness => "liveness",
            FindingKind::Crash => "crash",
            FindingKind::Allowed => "allowed by the settings",
        }
    }

    /// Its CSS class.
    pub fn class(self) -> &'static str {
        match self {
            FindingKind::Safety => "safety",
            FindingKind::Liveness => "liveness",
            FindingKind::Crash => "crash",
            FindingKind::Allowed => "allowed",
        }
    }
}

/// Something a check found: an anomaly of the history checker, or a failed end-of-run check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it means.
    pub kind: FindingKind,
    /// Its name (the checker's class, or the check's).
    pub title: String,
    /// The partition involved, if one.
    pub key: Option<String>,
    /// The values involved.
    pub values: Vec<i64>,
    /// History indexes of the operations that show it (at most [`FINDING_OPS_MAX`]).
    pub ops: Vec<u64>,
    /// When it was found, for findings of a check rather than of operations.
    pub at_ms: Option<u64>,
    /// What happened, in words.
    pub detail: String,
}

/// A run's record for its report.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Storage: named series of (event index, value), in event order.
    pub series: Vec<(String, Vec<(u64, i64)>)>,
    /// Storage: (event index, label) of faults and other notable moments.
    pub marks: Vec<(u64, String)>,
    /// Cluster: the lanes (nodes), in display order.
    pub lanes: Vec<String>,
    /// Cluster: faults that lasted.
    pub spans: Vec<Span>,
    /// Cluster: faults and events of one moment.
    pub moments: Vec<Moment>,
    /// Cluster: (simulated ms, label) where a phase of the run begins.
    pub phases: Vec<(u64, String)>,
    /// Cluster: each partition's leaders and ISRs.
    pub partitions: Vec<PartitionLane>,
    /// Cluster: client operations, in invocation order.
    pub ops: Vec<OpMark>,
    /// What the checks found.
    pub findings: Vec<Finding>,
    /// Simulated ms of the last thing recorded: where the time axis ends.
    pub end_ms: u64,
    /// Where the part of the run worth reading in detail ends (the cluster: a little after the
    /// faults healed); the chart compresses the time after it when that is long.
    pub focus_end_ms: Option<u64>,
    /// Items a limit refused.
    pub dropped: u64,
}

/// Cuts `text` to [`LABEL_CHARS_MAX`] characters.
pub fn cut(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

impl Timeline {
    /// Appends a point to the named series (created on first use).
    pub fn point(&mut self, name: &str, step: u64, value: i64) {
        match self.series.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => points.push((step, value)),
            None => self.series.push((name.to_string(), vec![(step, value)])),
        }
    }

    /// Marks a notable moment of a step-indexed run.
    pub fn mark(&mut self, step: u64, label: impl Into<String>) {
        self.marks.push((step, label.into()));
    }

    /// Whether this is a run over simulated time (the cluster's), not over steps.
    pub fn timed(&self) -> bool {
        !self.lanes.is_empty()
    }

    fn reach(&mut self, at_ms: u64) {
        self.end_ms = self.end_ms.max(at_ms);
    }

    /// Adds a lane (once); `None` if a limit refused it, else its name as kept.
    pub fn lane(&mut self, name: &str) -> Option<String> {
        let name = cut(name, LANE_CHARS_MAX);
        if self.lanes.contains(&name) {
            return Some(name);
        }
        if self.lanes.len() >= LANES_MAX {
            self.dropped += 1;
            return None;
        }
        self.lanes.push(name.clone());
        assert!(self.lanes.len() <= LANES_MAX);
        Some(name)
    }

    /// Whether a span of `kind` is on in `lane`.
    pub fn is_on(&self, lane: &str, kind: SpanKind) -> bool {
        self.spans
            .iter()
            .any(|s| s.to_ms.is_none() && s.kind == kind && s.lane == lane)
    }

    /// Begins a span, unless the same one (lane, kind and label) is on already.
    pub fn begin(&mut self, lane: &str, kind: SpanKind, at_ms: u64, label: &str) {
        let label = cut(label, LABEL_CHARS_MAX);
        let on = self
            .spans
            .iter()
            .any(|s| s.to_ms.is_none() && s.kind == kind && s.lane == lane && s.label == label);
        if on {
            return;
        }
        if self.spans.len() >= SPANS_MAX {
            self.dropped += 1;
            return;
        }
        let Some(lane) = self.lane(lane) else {
            return;
        };
        self.reach(at_ms);
        self.spans.push(Span {
            lane,
            kind,
            from_ms: at_ms,
            to_ms: None,
            label,
        });
        assert!(self.spans.len() <= SPANS_MAX);
    }

    /// Ends every span of `kind` on in `lane`.
    pub fn end(&mut self, lane: &str, kind: SpanKind, at_ms: u64) {
        self.reach(at_ms);
        for span in &mut self.spans {
            if span.to_ms.is_none() && span.kind == kind && span.lane == lane {
                span.to_ms = Some(at_ms.max(span.from_ms));
            }
        }
        assert!(!self.is_on(lane, kind), "every such span ended");
    }

    /// Ends every span on, of any lane, whose kind `ends` accepts.
    pub fn end_where(&mut self, at_ms: u64, ends: impl Fn(SpanKind) -> bool) {
        self.reach(at_ms);
        for span in &mut self.spans {
            if span.to_ms.is_none() && ends(span.kind) {
                span.to_ms = Some(at_ms.max(span.from_ms));
            }
        }
    }

    /// Records a moment.
    pub fn moment(&mut self, lane: &str, row: Row, at_ms: u64, label: &str) {
        if self.moments.len() >= MOMENTS_MAX {
            self.dropped += 1;
            return;
        }
        let Some(lane) = self.lane(lane) else {
            return;
        };
        self.reach(at_ms);
        self.moments.push(Moment {
            lane,
            row,
            at_ms,
            label: cut(label, LABEL_CHARS_MAX),
        });
    }

    /// Marks where a phase of the run begins.
    pub fn phase(&mut self, at_ms: u64, label: &str) {
        if self.phases.len() >= PHASES_MAX {
            self.dropped += 1;
            return;
        }
        self.reach(at_ms);
        self.phases.push((at_ms, cut(label, LABEL_CHARS_MAX)));
    }

    /// Records an observation of partition `key`: it extends the current segment if nothing
    /// changed, or starts a new one.
    pub fn observe(&mut self, key: &str, at_ms: u64, leader: Option<i32>, epoch: i32, isr: &[i32]) {
        self.reach(at_ms);
        let index = match self.partitions.iter().position(|p| p.key == key) {
            Some(index) => index,
            None if self.partitions.len() < PARTITIONS_MAX => {
                self.partitions.push(PartitionLane {
                    key: key.to_string(),
                    segments: Vec::new(),
                });
                self.partitions.len() - 1
            }
            None => {
                self.dropped += 1;
                return;
            }
        };
        let lane = &mut self.partitions[index];
        if let Some(last) = lane.segments.last_mut() {
            assert!(last.seen_ms <= at_ms, "observations come in time order");
            if last.leader == leader && last.epoch == epoch && last.isr == isr {
                last.seen_ms = at_ms;
                return;
            }
        }
        if lane.segments.len() >= SEGMENTS_PER_PARTITION_MAX {
            self.dropped += 1;
            return;
        }
        lane.segments.push(Segment {
            from_ms: at_ms,
            seen_ms: at_ms,
            leader,
            epoch,
            isr: isr.to_vec(),
        });
    }

    /// Records a client operation.
    pub fn op(&mut self, mut op: OpMark) {
        if self.ops.len() >= OPS_MAX {
            self.dropped += 1;
            return;
        }
        op.text = cut(&op.text, LABEL_CHARS_MAX);
        let done_ms = (op.invoked_us + op.latency_us.unwrap_or(0)) / 1_000;
        self.reach(done_ms);
        self.ops.push(op);
    }

    /// Records a finding.
    pub fn finding(&mut self, mut finding: Finding) {
        if self.findings.len() >= FINDINGS_MAX {
            self.dropped += 1;
            return;
        }
        finding.ops.truncate(FINDING_OPS_MAX);
        finding.values.truncate(FINDING_OPS_MAX);
        finding.title = cut(&finding.title, LABEL_CHARS_MAX);
        finding.detail = cut(&finding.detail, DETAIL_CHARS_MAX);
        if let Some(at_ms) = finding.at_ms {
            self.reach(at_ms);
        }
        self.findings.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_begin_once_and_end_by_kind() {
        let mut timeline = Timeline::default();
        timeline.begin("n1", SpanKind::Partitioned, 100, "cut from n2");
        timeline.begin("n1", SpanKind::Partitioned, 150, "cut from n2");
        timeline.begin("n1", SpanKind::Partitioned, 200, "cut from n3");
        timeline.begin("n2", SpanKind::Killed, 300, "killed");
        assert_eq!(timeline.spans.len(), 3, "the same span twice is one span");
        timeline.end("n1", SpanKind::Partitioned, 400);
        assert!(!timeline.is_on("n1", SpanKind::Partitioned));
        assert!(timeline.is_on("n2", SpanKind::Killed));
        assert_eq!(timeline.spans[0].to_ms, Some(400));
        assert_eq!(timeline.lanes, ["n1", "n2"]);
        assert_eq!(timeline.end_ms, 400);
    }

    #[test]
    fn observations_extend_a_segment_until_something_changes() {
        let mut timeline = Timeline::default();
        timeline.observe("t-0", 0, Some(1), 0, &[1, 2, 3]);
        timeline.observe("t-0", 500, Some(1), 0, &[1, 2, 3]);
        timeline.observe("t-0", 1_000, Some(1), 0, &[1, 2]);
        timeline.observe("t-0", 1_500, None, 0, &[1, 2]);
        let segments = &timeline.partitions[0].segments;
        assert_eq!(segments.len(), 3);
        assert_eq!((segments[0].from_ms, segments[0].seen_ms), (0, 500));
        assert_eq!(segments[1].isr, [1, 2]);
        assert_eq!(segments[2].leader, None);
    }

    #[test]
    fn limits_count_what_they_refuse() {
        let mut timeline = Timeline::default();
        for at_ms in 0..(MOMENTS_MAX as u64 + 5) {
            timeline.moment("n1", Row::Process, at_ms, "restart");
        }
        assert_eq!(timeline.moments.len(), MOMENTS_MAX);
        assert_eq!(timeline.dropped, 5);
        let long = "x".repeat(LABEL_CHARS_MAX * 2);
        timeline.phase(0, &long);
        assert_eq!(timeline.phases[0].1.chars().count(), LABEL_CHARS_MAX + 1);
    }
}
