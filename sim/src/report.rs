//! The HTML report of one seed's run: what a person reads to understand a failure.
//!
//! One self-contained page (inline SVG and CSS, no script, nothing fetched): the verdict, a
//! line per kind of finding (each anomaly the checker reports and each failed end-of-run check,
//! labelled a safety violation, liveness, a crash, or allowed by the settings), then
//! - for the cluster scenario, a timeline over simulated seconds ([`svg`]): the run's phases, a
//!   lane per node with its fault spans (killed, wiped, frozen, isolated, partitioned from
//!   whom, one-way links, slow network, disk faults, clock offset), each partition's leader and
//!   ISR as bands, the client operations by latency coloured by outcome, and every finding
//!   drawn across them, linked to its entry and to the operations it names;
//! - for the storage scenario, its numeric series over steps with the faults marked;
//!
//! then the findings in detail with the operations each names, and the run's events. Every
//! part is bounded, so a page never exceeds [`REPORT_BYTES_MAX`]
//! however long the run (`docs/sim-report.md` shows one and says how to read it).

pub mod svg;
pub mod timeline;

pub use timeline::{
    Finding, FindingKind, Moment, OpMark, OpOutcome, OpShape, PartitionLane, Row, Segment, Span,
    SpanKind, Timeline,
};

use crate::runner::{Scenario, SeedRun};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The most bytes a report takes, whatever the run: each part has a budget below (a part
/// that reaches its budget leaves the rest out and says so), and one element past a budget at
/// most. The test `a_huge_run_stays_within_the_bound` fills every limit and checks it.
pub const REPORT_BYTES_MAX: usize = 5 << 20;
/// Most bytes of the head: style, title, verdict, the draw, the replay command.
const HEAD_BYTES_MAX: usize = 64 << 10;
/// Most bytes of the findings' summary above the chart.
const SUMMARY_BYTES_MAX: usize = 96 << 10;
/// Most bytes of the legend, the notes and the page's end.
const FIXED_BYTES_MAX: usize = 16 << 10;
/// Most bytes of the findings in detail.
const DETAILS_BYTES_MAX: usize = 512 << 10;
/// Most bytes of the events.
const EVENTS_BYTES_MAX: usize = 512 << 10;
/// Most bytes of the storage scenario's chart.
const STEP_CHART_BYTES_MAX: usize = 512 << 10;
/// Room for one element past each budget (the largest, a finding in detail, is under 24 KiB).
const OVERSHOOT_BYTES_MAX: usize = 256 << 10;
const _: () = assert!(
    HEAD_BYTES_MAX
        + SUMMARY_BYTES_MAX
        + svg::CHART_BYTES_MAX
        + FIXED_BYTES_MAX
        + DETAILS_BYTES_MAX
        + EVENTS_BYTES_MAX
        + STEP_CHART_BYTES_MAX
        + OVERSHOOT_BYTES_MAX
        <= REPORT_BYTES_MAX
);
/// Events listed from the start of the run.
pub const EVENTS_HEAD: usize = 400;
/// Events listed from the end of the run (where a failure shows).
pub const EVENTS_TAIL: usize = 1_600;
/// Most characters of one listed event.
const EVENT_CHARS_MAX: usize = 300;
/// Most findings listed with their operations.
pub const FINDINGS_LISTED_MAX: usize = 64;
/// Most characters of the run's description.
const ABOUT_CHARS_MAX: usize = 4_000;
/// Most characters of the verdict's words and of the replay command.
const VERDICT_CHARS_MAX: usize = 2_000;

/// Most series the step chart draws.
const STEP_SERIES_DRAWN_MAX: usize = 8;
/// Most points drawn of one series (evenly sampled beyond).
const STEP_POINTS_DRAWN_MAX: usize = 2_000;
/// Most fault marks the step chart draws.
const STEP_MARKS_DRAWN_MAX: usize = 1_000;
const STEP_CHART_WIDTH: f64 = 1100.0;
const STEP_CHART_HEIGHT: f64 = 360.0;
const MARGIN: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
];

const PAGE_STYLE: &str = "\
body{font-family:sans-serif;margin:20px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:24px}\
.verdict{font-size:18px;font-weight:bold;padding:8px 12px;border-radius:4px;color:#fff}\
.verdict.safety{background:#d62728}.verdict.liveness{background:#ff7f0e}\
.verdict.crash{background:#8c564b}.verdict.passed{background:#59a14f}\
pre{font-size:12px;background:#f6f6f6;padding:8px;overflow-x:auto}.fault{color:#b00}\
.finding{border-left:6px solid #999;padding:4px 10px;margin:8px 0;background:#fafafa}\
.finding.safety{border-color:#d62728}.finding.liveness{border-color:#ff7f0e}\
.finding.crash{border-color:#8c564b}.finding:target{background:#ffe9a8}\
.tag{font-weight:bold;color:#fff;padding:1px 6px;border-radius:3px;background:#999}\
.tag.safety{background:#d62728}.tag.liveness{background:#ff7f0e}.tag.crash{background:#8c564b}\
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{padding:2px 8px;text-align:left}\
tr:nth-child(even){background:#f0f0f0}.legend span{display:inline-block;margin-right:14px}\
.swatch{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}\
.notes{color:#555;font-size:12px}";

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The findings a page lists: the run's own, or, when a check failed without leaving one (a
/// panic loses the run's record), one made from the violation's words.
fn findings_of(run: &SeedRun) -> Vec<Finding> {
    let mut findings = run.timeline.findings.clone();
    let explained = findings.iter().any(|f| f.kind != FindingKind::Allowed);
    if let (Some(violation), false) = (&run.violation, explained) {
        let kind = if violation.starts_with("panic") {
            FindingKind::Crash
        } else if violation.starts_with("liveness") {
            FindingKind::Liveness
        } else {
            FindingKind::Safety
        };
        findings.insert(
            0,
            Finding {
                kind,
                title: timeline::cut(violation, 80),
                key: None,
                values: Vec::new(),
                ops: Vec::new(),
                at_ms: None,
                detail: timeline::cut(violation, timeline::DETAIL_CHARS_MAX),
            },
        );
    }
    // Violations first: the safety ones, then liveness, then crashes, then what was allowed.
    findings.sort_by_key(|f| f.kind);
    findings
}

/// Renders the run as a self-contained HTML page.
pub fn render(scenario: &dyn Scenario, seed: u64, run: &SeedRun) -> String {
    let findings = findings_of(run);
    let mut timeline = run.timeline.clone();
    timeline.findings = findings.clone();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=utf-8><title>rill sim seed {seed}</title>\
         <style>{PAGE_STYLE}{}</style></head><body>\
         <h1>rill simulation: scenario {name}, seed {seed}</h1>{verdict}<p>{about}</p>\
         <p>{steps} operations, {sim:.1} s simulated, trace hash {hash:016x}. Replay: \
         <code>{replay}</code></p>",
        svg::STYLE,
        name = escape(scenario.name()),
        verdict = verdict(run, &findings),
        about = escape(&timeline::cut(&scenario.describe(seed), ABOUT_CHARS_MAX)),
        steps = run.steps,
        sim = run.simulated_ms as f64 / 1000.0,
        hash = run.trace.hash(),
        replay = escape(&timeline::cut(
            &crate::runner::replay_command(scenario, seed),
            VERDICT_CHARS_MAX
        )),
    );
    assert!(html.len() <= HEAD_BYTES_MAX, "the head is bounded");
    let mut notes = Vec::new();
    if !findings.is_empty() {
        html.push_str(&findings_summary(&findings));
    }
    if timeline.timed() {
        html.push_str("<h2>Timeline</h2>");
        html.push_str(&svg::chart(&timeline, &mut notes));
        html.push_str(&legend());
    }
    if !timeline.series.is_empty() {
        html.push_str(&step_chart(&timeline));
    }
    if !findings.is_empty() {
        html.push_str(&findings_section(&timeline, &mut notes));
    }
    if timeline.dropped > 0 {
        notes.push(format!(
            "{} items were not recorded (the run reached a limit of its record)",
            timeline.dropped
        ));
    }
    if !notes.is_empty() {
        html.push_str("<p class=notes>Left out to keep the page small: ");
        html.push_str(&escape(&notes.join("; ")));
        html.push_str(".</p>");
    }
    html.push_str(&events(run));
    html.push_str("</body></html>\n");
    assert!(
        html.len() <= REPORT_BYTES_MAX,
        "a report is bounded: {} bytes",
        html.len()
    );
    html
}

/// The banner: the worst finding's kind, or passed.
fn verdict(run: &SeedRun, findings: &[Finding]) -> String {
    let worst = findings
        .iter()
        .map(|f| f.kind)
        .find(|k| *k != FindingKind::Allowed);
    let (class, words) = match (worst, &run.violation) {
        (Some(FindingKind::Safety), _) => ("safety", "SAFETY VIOLATION"),
        (Some(FindingKind::Liveness), _) => ("liveness", "LIVENESS FAILURE"),
        (Some(FindingKind::Crash), _) => ("crash", "CRASH"),
        (_, Some(_)) => ("safety", "VIOLATION"),
        (_, None) => ("passed", "passed: no violation"),
    };
    let detail = run.violation.as_deref().map_or(String::new(), |v| {
        let words = escape(&timeline::cut(v, VERDICT_CHARS_MAX));
        format!("<p><b>The run's verdict:</b> {words}</p>")
    });
    format!("<div class='verdict {class}'>{words}</div>{detail}")
}

/// One line per kind and title of finding, each case a link to its entry: what went wrong at
/// a glance, above the chart.
fn findings_summary(findings: &[Finding]) -> String {
    let mut lines: Vec<(FindingKind, String, Vec<usize>)> = Vec::new();
    for (number, finding) in findings.iter().enumerate().take(FINDINGS_LISTED_MAX) {
        // The checker's cases are titled "class (case i of n)": one line per class.
        let name = finding
            .title
            .split(" (case ")
            .next()
            .unwrap_or(&finding.title)
            .to_string();
        match lines
            .iter_mut()
            .find(|(kind, title, _)| *kind == finding.kind && *title == name)
        {
            Some((_, _, numbers)) => numbers.push(number + 1),
            None => lines.push((finding.kind, name, vec![number + 1])),
        }
    }
    let mut html = String::from("<h2>Findings</h2><ul>");
    for (kind, title, numbers) in &lines {
        if html.len() > SUMMARY_BYTES_MAX {
            html.push_str("<li>…</li>");
            break;
        }
        let links: Vec<String> = numbers
            .iter()
            .map(|n| format!("<a href='#finding-{n}'>{n}</a>"))
            .collect();
        let _ = write!(
            html,
            "<li><span class='tag {}'>{}</span> {}: {}</li>",
            kind.class(),
            kind.label(),
            escape(title),
            links.join(", ")
        );
    }
    html.push_str("</ul>");
    assert!(lines.len() <= findings.len());
    html
}

/// Every finding with its operations, each linked to its mark on the chart.
fn findings_section(timeline: &Timeline, notes: &mut Vec<String>) -> String {
    let ops: BTreeMap<u64, &OpMark> = timeline.ops.iter().map(|o| (o.index, o)).collect();
    let mut html = String::from("<h2>Findings in detail</h2>");
    for (number, finding) in timeline
        .findings
        .iter()
        .enumerate()
        .take(FINDINGS_LISTED_MAX)
    {
        let n = number + 1;
        if html.len() > DETAILS_BYTES_MAX {
            notes.push(format!(
                "findings from {n} on not listed (the list takes at most {} KiB)",
                DETAILS_BYTES_MAX >> 10
            ));
            break;
        }
        let key = finding
            .key
            .as_deref()
            .map_or(String::new(), |k| format!(" on {}", escape(k)));
        let values = if finding.values.is_empty() {
            String::new()
        } else {
            format!(", values {:?}", finding.values)
        };
        let at = finding.at_ms.map_or(String::new(), |ms| {
            format!(", at {}.{:03} s", ms / 1_000, ms % 1_000)
        });
        let _ = write!(
            html,
            "<div class='finding {class}' id='finding-{n}'><span class='tag {class}'>{n}. {label}</span> \
             <b>{title}</b>{key}{values}{at}<br>{detail}",
            class = finding.kind.class(),
            label = finding.kind.label(),
            title = escape(&finding.title),
            detail = escape(&finding.detail),
        );
        if !finding.ops.is_empty() {
            html.push_str(
                "<table><tr><th>operation</th><th>process</th><th>what</th><th>outcome</th>\
                 <th>invoked</th><th>latency</th></tr>",
            );
            for index in &finding.ops {
                match ops.get(index) {
                    Some(op) => {
                        let _ = write!(
                            html,
                            "<tr><td><a href='#op-{index}'>op {index}</a></td><td>p{}</td><td>{}</td>\
                             <td>{}</td><td>{}.{:03} s</td><td>{}</td></tr>",
                            op.process,
                            escape(&op.text),
                            op.outcome.name(),
                            op.invoked_us / 1_000_000,
                            op.invoked_us / 1_000 % 1_000,
                            op.latency_us.map_or("-".to_string(), svg::duration),
                        );
                    }
                    None => {
                        let _ = write!(
                            html,
                            "<tr><td>op {index}</td><td colspan=5>(not recorded)</td></tr>"
                        );
                    }
                }
            }
            html.push_str("</table>");
        }
        html.push_str("</div>");
    }
    if timeline.findings.len() > FINDINGS_LISTED_MAX {
        notes.push(format!(
            "{} findings not listed (at most {FINDINGS_LISTED_MAX})",
            timeline.findings.len() - FINDINGS_LISTED_MAX
        ));
    }
    html
}

/// What the chart's colours and shapes mean.
fn legend() -> String {
    let swatch = |class: &str, words: &str| {
        format!(
            "<span><svg class=swatch width='14' height='10'><rect class='{class}' width='14' height='10'/></svg>{words}</span>"
        )
    };
    let mut html = String::from("<p class=legend><b>Faults:</b> ");
    for kind in SpanKind::ALL {
        html.push_str(&swatch(kind.name(), kind.name()));
    }
    html.push_str(
        "<span>▼ a moment (restart, clock jump, forged frames)</span><br><b>Partitions:</b> ",
    );
    for (index, color) in svg::NODE_COLORS.iter().take(3).enumerate() {
        let _ = write!(
            html,
            "<span><span class=swatch style='background:{color}'></span>n{} leads \
             (lighter: n{} in the ISR)</span>",
            index + 1,
            index + 1
        );
    }
    html.push_str(
        "<span><span class=swatch style='background:#d62728'></span>no leader</span>\
         <span><span class=swatch style='background:repeating-linear-gradient(45deg,#bbb 0 2px,#fff 2px 5px)'></span>\
         not observed</span><span>empty: out of the ISR</span><br><b>Operations</b> (● send, ■ poll; \
         hover for details): ",
    );
    for outcome in [OpOutcome::Ok, OpOutcome::Failed, OpOutcome::Indeterminate] {
        html.push_str(&swatch(outcome.name(), outcome.name()));
    }
    html.push_str(
        "<span>○ never completed</span><span>big, red ring: named by a finding</span><br>\
         <b>Findings:</b> ",
    );
    for kind in [
        FindingKind::Safety,
        FindingKind::Liveness,
        FindingKind::Crash,
        FindingKind::Allowed,
    ] {
        html.push_str(&swatch(kind.class(), kind.label()));
    }
    html.push_str(
        "(dashed lines when the operations it names were invoked, or when a check failed, and a \
         numbered flag; click one for the finding)</p>",
    );
    html
}

/// The run's events: the first [`EVENTS_HEAD`] and the last [`EVENTS_TAIL`], faults in red.
fn events(run: &SeedRun) -> String {
    let events = run.trace.events();
    let mut html = String::from("<h2>Events</h2><pre>");
    let skipped_from = EVENTS_HEAD.min(events.len());
    let skipped_to = events.len().saturating_sub(EVENTS_TAIL).max(skipped_from);
    for (index, event) in events.iter().enumerate() {
        if index == skipped_from && skipped_to > skipped_from {
            let _ = writeln!(
                html,
                "… {} events left out (cargo sim --seed N --verbose lists them all) …",
                skipped_to - skipped_from
            );
        }
        if (skipped_from..skipped_to).contains(&index) {
            continue;
        }
        if html.len() > EVENTS_BYTES_MAX {
            let _ = writeln!(
                html,
                "… events from #{index} on left out (the list takes at most {} KiB) …",
                EVENTS_BYTES_MAX >> 10
            );
            break;
        }
        let step = index as u64;
        let fault = event.contains("FAULT ")
            || event.starts_with("VIOLATION")
            || run.timeline.marks.iter().any(|(at, _)| *at == step);
        let class = if fault { " class=fault" } else { "" };
        let _ = writeln!(
            html,
            "<span{class}>#{index:<6} {}</span>",
            escape(&timeline::cut(event, EVENT_CHARS_MAX))
        );
    }
    if run.trace.len() > events.len() as u64 {
        let _ = writeln!(
            html,
            "… {} more events not kept by the trace …",
            run.trace.len() - events.len() as u64
        );
    }
    html.push_str("</pre>");
    html
}

/// The storage scenario's chart: its series over steps, faults as dashed marks.
fn step_chart(timeline: &Timeline) -> String {
    let points = timeline.series.iter().flat_map(|(_, p)| p.iter());
    let step_max = points.clone().map(|(s, _)| *s).max().unwrap_or(1).max(1) as f64;
    let value_max = points.clone().map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
    let value_min = points.map(|(_, v)| *v).min().unwrap_or(0).min(0) as f64;
    let x = |step: u64| MARGIN + step as f64 / step_max * (STEP_CHART_WIDTH - 2.0 * MARGIN);
    let y = |value: i64| {
        let span = (value_max - value_min).max(1.0);
        STEP_CHART_HEIGHT
            - MARGIN
            - (value as f64 - value_min) / span * (STEP_CHART_HEIGHT - 2.0 * MARGIN)
    };
    let mut svg = format!(
        "<svg width='{STEP_CHART_WIDTH}' height='{STEP_CHART_HEIGHT}' xmlns='http://www.w3.org/2000/svg' \
         style='border:1px solid #ccc'>"
    );
    for (step, label) in timeline.marks.iter().take(STEP_MARKS_DRAWN_MAX) {
        if svg.len() > STEP_CHART_BYTES_MAX / 2 {
            break;
        }
        let _ = write!(
            svg,
            "<line x1='{0:.1}' x2='{0:.1}' y1='{1}' y2='{2}' stroke='#d62728' stroke-dasharray='3,3'>\
             <title>{3}</title></line>",
            x(*step),
            MARGIN,
            STEP_CHART_HEIGHT - MARGIN,
            escape(&timeline::cut(label, 80))
        );
    }
    let series = timeline.series.iter().take(STEP_SERIES_DRAWN_MAX);
    for (index, (name, points)) in series.enumerate() {
        let color = COLORS[index % COLORS.len()];
        let stride = points.len().div_ceil(STEP_POINTS_DRAWN_MAX).max(1);
        let path: Vec<String> = points
            .iter()
            .step_by(stride)
            .map(|(s, v)| format!("{:.1},{:.1}", x(*s), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{}'/>\
             <text x='{}' y='{}' fill='{color}' font-size='12'>{}</text>",
            path.join(" "),
            MARGIN + 10.0 + 160.0 * index as f64,
            MARGIN - 20.0,
            escape(&timeline::cut(name, 40))
        );
    }
    let _ = write!(
        svg,
        "<text x='{MARGIN}' y='{}' font-size='11'>event 0</text>\
         <text x='{}' y='{}' font-size='11' text-anchor='end'>event {step_max}</text>\
         <text x='5' y='{}' font-size='11'>{value_max}</text><text x='5' y='{}' font-size='11'>{value_min}</text>\
         <text x='{}' y='{}' font-size='11' fill='#d62728' text-anchor='end'>dashed: faults (hover)</text></svg>",
        STEP_CHART_HEIGHT - 25.0,
        STEP_CHART_WIDTH - MARGIN,
        STEP_CHART_HEIGHT - 25.0,
        MARGIN,
        STEP_CHART_HEIGHT - MARGIN,
        STEP_CHART_WIDTH - MARGIN,
        MARGIN - 20.0,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::{
        FINDINGS_MAX, LANES_MAX, MOMENTS_MAX, OPS_MAX, PARTITIONS_MAX, PHASES_MAX,
        SEGMENTS_PER_PARTITION_MAX, SPANS_MAX,
    };

    /// A scenario that only names itself: the renderer needs no more.
    struct Named(String);

    impl Scenario for Named {
        fn name(&self) -> &'static str {
            "cluster"
        }
        fn describe(&self, _seed: u64) -> String {
            self.0.clone()
        }
        fn run(&self, _seed: u64) -> SeedRun {
            SeedRun::default()
        }
        fn replay_args(&self) -> Vec<String> {
            Vec::new()
        }
    }

    fn op(index: u64, outcome: OpOutcome, invoked_ms: u64, latency_ms: Option<u64>) -> OpMark {
        OpMark {
            index,
            process: 3,
            shape: if index.is_multiple_of(2) {
                OpShape::Send
            } else {
                OpShape::Poll
            },
            outcome,
            invoked_us: invoked_ms * 1_000,
            latency_us: latency_ms.map(|ms| ms * 1_000),
            text: format!("send t-1 value {index}"),
        }
    }

    /// Three nodes, a partition between n1 and n2, n3 killed, t-0 led by n1 then leaderless,
    /// four operations of every outcome, a lost write naming one of them and a stall.
    fn synthetic() -> SeedRun {
        let mut timeline = Timeline::default();
        for lane in ["n1", "n2", "n3"] {
            timeline.lane(lane);
        }
        timeline.phase(0, "workload under faults (safety phase)");
        timeline.begin("n1", SpanKind::Partitioned, 1_000, "cut from n2");
        timeline.begin("n2", SpanKind::Partitioned, 1_000, "cut from n1");
        timeline.begin("n3", SpanKind::Killed, 2_000, "killed");
        timeline.moment("n3", Row::Process, 2_500, "crashed and restarted");
        timeline.end_where(4_000, |kind| kind == SpanKind::Partitioned);
        timeline.phase(6_000, "faults healed: recovery (liveness phase)");
        timeline.observe("t-0", 0, Some(1), 3, &[1, 2, 3]);
        timeline.observe("t-0", 500, Some(1), 3, &[1, 2, 3]);
        timeline.observe("t-0", 1_000, Some(1), 3, &[1, 2]);
        timeline.observe("t-0", 3_000, None, 3, &[1]);
        timeline.op(op(42, OpOutcome::Ok, 1_200, Some(15)));
        timeline.op(op(43, OpOutcome::Failed, 1_300, Some(3)));
        timeline.op(op(44, OpOutcome::Indeterminate, 2_100, Some(5_000)));
        timeline.op(op(45, OpOutcome::Open, 5_000, None));
        timeline.finding(Finding {
            kind: FindingKind::Safety,
            title: "lost-write (case 1 of 1)".into(),
            key: Some("t-1".into()),
            values: vec![42],
            ops: vec![42],
            at_ms: None,
            detail: "an acknowledged record no consumer ever read".into(),
        });
        timeline.finding(Finding {
            kind: FindingKind::Liveness,
            title: "no leader or no full ISR after healing".into(),
            key: None,
            values: Vec::new(),
            ops: Vec::new(),
            at_ms: Some(9_000),
            detail: "liveness: t-0: leader None".into(),
        });
        let mut run = SeedRun {
            violation: Some("history anomalies lost-write".into()),
            steps: 4,
            simulated_ms: 70_000,
            timeline,
            ..SeedRun::default()
        };
        run.trace.record("   1.000s FAULT partition n1|n2");
        run
    }

    #[test]
    fn a_synthetic_run_draws_lanes_bands_marks_and_linked_findings() {
        let html = render(&Named("a draw".into()), 7, &synthetic());
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
        assert!(
            html.contains("SAFETY VIOLATION"),
            "the verdict names the worst"
        );
        // A lane per node, its faults as labelled spans and moments.
        for lane in ["n1", "n2", "n3"] {
            assert!(html.contains(&format!("font-weight='bold'>{lane}</text>")));
        }
        assert!(html.contains("<rect class='partitioned'") && html.contains(">cut from n2</text>"));
        assert!(html.contains("<rect class='killed'"));
        assert!(html.contains("n3 at 2.500 s: crashed and restarted"));
        // The partition's leader and ISR as bands, and the leaderless stretch.
        assert!(html.contains("t-0 from 0.000 s: leader n1, epoch 3, ISR [n1, n2, n3]"));
        assert!(html.contains("t-0 from 1.000 s: leader n1, epoch 3, ISR [n1, n2]"));
        assert!(html.contains("t-0 from 3.000 s: no leader, epoch 3, ISR [n1]"));
        // Operations by outcome, with latency on hover.
        for class in ["'ok named'", "'failed'", "'indeterminate'", "'open'"] {
            assert!(html.contains(&format!("class={class}")), "{class}");
        }
        assert!(html.contains("op 44 (p3) send t-1 value 44: indeterminate, 5.00 s"));
        // Findings labelled, linked to and from the operations they name.
        assert!(html.contains("id='finding-1'") && html.contains("id='finding-2'"));
        assert!(html.contains("1. safety violation</span> <b>lost-write"));
        assert!(html.contains("2. liveness</span>"));
        assert!(html.contains("<a href='#op-42'>op 42</a>"));
        assert!(html.contains("<a href='#finding-1'><circle id='op-42'"));
        assert!(html.contains("<line class='safety' x1='"));
        assert!(html.contains("<line class='liveness' x1='"));
        assert!(html.contains("<span class=fault>#0"));
        assert!(!html.contains("<script"), "no script needed");
    }

    #[test]
    fn names_and_texts_are_escaped() {
        let mut run = synthetic();
        run.timeline.lane("<script>alert(1)</script>");
        run.timeline.ops[0].text = "send 'a' & \"b\" <i>".into();
        run.timeline.findings[0].detail = "<img src=x onerror=alert(1)>".into();
        run.trace.record("<b>event</b>");
        let html = render(&Named("<describe & 'draw'>".into()), 7, &run);
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>event"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("send &#39;a&#39; &amp; &quot;b&quot; &lt;i&gt;"));
        assert!(html.contains("&lt;describe &amp; &#39;draw&#39;&gt;"));
    }

    #[test]
    fn a_run_without_a_record_still_gets_its_verdict() {
        let run = SeedRun {
            violation: Some("panic: broken invariant".into()),
            ..SeedRun::default()
        };
        let html = render(&Named(String::new()), 1, &run);
        assert!(html.contains("CRASH</div><p><b>The run's verdict:</b> panic: broken invariant"));
        assert!(html.contains("1. crash</span>"));
        let passed = render(&Named(String::new()), 1, &SeedRun::default());
        assert!(passed.contains("passed: no violation") && !passed.contains("Findings"));
    }

    /// Every limit of the record filled, with the longest labels: the page stays within
    /// [`REPORT_BYTES_MAX`].
    #[test]
    fn a_huge_run_stays_within_the_bound() {
        let long = "x<&".repeat(1_000);
        let mut timeline = Timeline::default();
        for lane in 0..=LANES_MAX {
            timeline.lane(&format!("{lane}{long}"));
        }
        for phase in 0..=PHASES_MAX as u64 {
            timeline.phase(phase * 1_000, &long);
        }
        for span in 0..SPANS_MAX as u64 + 10 {
            let lane = format!("n{}", span % 3 + 1);
            timeline.begin(&lane, SpanKind::ALL[span as usize % 9], span * 10, &long);
            timeline.end(&lane, SpanKind::ALL[span as usize % 9], span * 10 + 5);
        }
        for moment in 0..MOMENTS_MAX as u64 + 10 {
            timeline.moment("n1", Row::Clock, moment * 10, &long);
        }
        for at_ms in 0..SEGMENTS_PER_PARTITION_MAX as u64 + 10 {
            for partition in 0..PARTITIONS_MAX + 1 {
                let leader = i32::try_from(at_ms % 4).expect("small");
                let isr: Vec<i32> = (1..=leader).collect();
                let key = format!("t-{partition}");
                timeline.observe(&key, at_ms * 500, Some(leader).filter(|&l| l > 0), 1, &isr);
            }
        }
        for index in 0..OPS_MAX as u64 + 10 {
            let outcome = [OpOutcome::Ok, OpOutcome::Indeterminate][index as usize % 2];
            let mut mark = op(index, outcome, index, Some(index % 10_000));
            mark.text = long.clone();
            timeline.op(mark);
        }
        for finding in 0..FINDINGS_MAX as u64 + 10 {
            timeline.finding(Finding {
                kind: FindingKind::Safety,
                title: long.clone(),
                key: Some(long.clone()),
                values: (0..100).collect(),
                ops: (finding * 16..finding * 16 + 100).collect(),
                at_ms: None,
                detail: long.clone(),
            });
        }
        assert!(timeline.dropped > 0, "every limit was reached");
        let segments: usize = timeline.partitions.iter().map(|p| p.segments.len()).sum();
        assert_eq!(segments, PARTITIONS_MAX * SEGMENTS_PER_PARTITION_MAX);
        let mut run = SeedRun {
            violation: Some(long.clone()),
            timeline,
            ..SeedRun::default()
        };
        for _ in 0..EVENTS_HEAD + EVENTS_TAIL + 1_000 {
            run.trace.record(long.clone());
        }
        let html = render(&Named(long.repeat(100)), 1, &run);
        assert!(html.len() <= REPORT_BYTES_MAX, "{} bytes", html.len());
        assert!(html.contains("not drawn") && html.contains("events left out"));
        eprintln!("a report at every limit: {} bytes", html.len());
    }
}
