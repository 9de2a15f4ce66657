//! The time chart of a cluster run, one inline SVG over simulated seconds: the phases, a lane
//! per node with its faults, a band per partition and replica (leader, in ISR, out of it), the
//! client operations by latency, and every finding drawn across them all.
//!
//! Each part has a byte budget (`*_BYTES_MAX`) and leaves out what does not fit, saying so in
//! the page's notes, so the chart stays within [`CHART_BYTES_MAX`] whatever the run recorded.

use super::escape;
use super::timeline::{
    Finding, FindingKind, OpMark, OpOutcome, OpShape, Row, Segment, SpanKind, Timeline,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Width of the chart, px (fits a 1400 px window).
pub const WIDTH: f64 = 1_340.0;
/// Where the plot starts: the lane labels are left of it.
const PLOT_X0: f64 = 150.0;
/// Where the plot ends.
const PLOT_X1: f64 = WIDTH - 16.0;
/// Height of the time axis and the phase strip.
const AXIS_H: f64 = 40.0;
/// Height of the findings strip below the axis.
const FINDINGS_H: f64 = 18.0;
/// Height of one row of a node's lane.
const ROW_H: f64 = 15.0;
/// Height of one replica's band of a partition.
const REPLICA_H: f64 = 12.0;
/// Space between two lanes.
const LANE_GAP: f64 = 8.0;
/// Space above a section's title.
const SECTION_GAP: f64 = 22.0;
/// Height of the operations panel.
const OPS_H: f64 = 220.0;
/// Most bytes the nodes' lanes take (spans and moments past it are left out, and said so).
pub const LANES_BYTES_MAX: usize = 512 << 10;
/// Most bytes the partitions' bands take.
pub const PARTITIONS_BYTES_MAX: usize = 512 << 10;
/// Most bytes the operations take, those a finding names included.
pub const OPS_BYTES_MAX: usize = 1 << 20;
/// Of [`OPS_BYTES_MAX`], what is kept for the operations a finding names (drawn last, on top).
const NAMED_OPS_BYTES: usize = 256 << 10;
/// Most bytes the findings' lines and flags take.
pub const FINDING_MARKS_BYTES_MAX: usize = 256 << 10;
/// Most bytes of the axis, phases, labels, grid and other fixed parts of the chart.
const FRAME_BYTES_MAX: usize = 160 << 10;
/// Room for the one element each budget may be overshot by (the largest, a span with two
/// labels, is under 3 KiB).
const OVERSHOOT_BYTES_MAX: usize = 16 << 10;
/// Most bytes of the chart: its parts' budgets, each overshot by one element at most.
pub const CHART_BYTES_MAX: usize = FRAME_BYTES_MAX
    + LANES_BYTES_MAX
    + PARTITIONS_BYTES_MAX
    + OPS_BYTES_MAX
    + FINDING_MARKS_BYTES_MAX
    + OVERSHOOT_BYTES_MAX;
/// Most operations drawn (those a finding names always, then failed and indeterminate ones,
/// then ok ones evenly sampled): beyond a few thousand marks the panel is a blur anyway.
pub const OPS_DRAWN_MAX: usize = 5_000;
/// Most findings drawn across the chart.
pub const FINDINGS_DRAWN_MAX: usize = 64;
/// Most replicas drawn for one partition.
const REPLICAS_DRAWN_MAX: usize = 8;
/// A partition not observed for this long is drawn as unknown from its last observation.
const OBSERVATION_GAP_MS: u64 = 2_500;
/// Latency axis: the fastest operation drawn apart from zero, µs.
const LATENCY_US_MIN: f64 = 1_000.0;

/// Colours of the nodes (leader bands), by broker id - 1, cycling.
pub const NODE_COLORS: [&str; 6] = [
    "#4e79a7", "#499894", "#9d7660", "#b6992d", "#79706e", "#d37295",
];

/// The chart's CSS: one class per span kind, outcome and finding kind (the legend uses them).
pub const STYLE: &str = "\
.killed{fill:#222}.wiped{fill:#6b0000}.frozen{fill:#86bcd9}.isolated{fill:#e15759}\
.partitioned{fill:#ff9da7}.one-way{fill:#f4c6cd}.slow{fill:#edc948}.disk-faults{fill:#c49a00}\
.clock{fill:#d5d0cc}.ok{fill:#59a14f}.failed{fill:#f28e2b}.indeterminate{fill:#8e6bbf}\
.open{fill:none;stroke:#000;stroke-width:1}\
.safety{fill:#d62728;stroke:#d62728}.liveness{fill:#ff7f0e;stroke:#ff7f0e}\
.crash{fill:#8c564b;stroke:#8c564b}.allowed{fill:#999;stroke:#999}\
svg text{font:11px sans-serif}svg .small{font-size:9px}svg .white{fill:#fff}\
svg .named{stroke:#d62728;stroke-width:2}svg :target{stroke:#000;stroke-width:3}\
svg a:hover line{stroke-opacity:1;stroke-width:3}";

/// Chooses a tick step for `end_ms` with at most about 20 ticks.
fn tick_ms(end_ms: u64) -> u64 {
    const STEPS: [u64; 12] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    ];
    // Past the table (runs of hours), whole ten-minute steps.
    let step = STEPS
        .into_iter()
        .find(|step| end_ms / step <= 20)
        .unwrap_or_else(|| (end_ms / 20).div_ceil(600_000) * 600_000);
    assert!(end_ms / step <= 20, "at most 21 ticks");
    assert!(step >= 100, "ticks at least a tenth of a second apart");
    step
}

/// Seconds with as many decimals as a tick step needs.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

/// A duration in words: "850 µs", "12.3 ms", "4.56 s".
pub fn duration(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1_000.0),
        _ => format!("{:.2} s", us as f64 / 1_000_000.0),
    }
}

/// The node colour of a broker id.
fn node_color(id: i32) -> &'static str {
    let index = usize::try_from(id.max(1) - 1).unwrap_or(0) % NODE_COLORS.len();
    NODE_COLORS[index]
}

/// Of the plot's width, what the focus (the run up to [`Timeline::focus_end_ms`]) gets when
/// the time after it is compressed.
const FOCUS_WIDTH_SHARE: f64 = 0.8;

/// Maps simulated time to x: linearly, or with the time after the focus compressed into the
/// last fifth of the plot when it would otherwise take more (a minute of quiet final read
/// after twenty seconds of faults).
struct Scale {
    /// Where the axis ends.
    end_ms: u64,
    /// Where the focus ends (`end_ms` when nothing is compressed).
    knee_ms: u64,
    /// The x of `knee_ms`.
    knee_x: f64,
}

impl Scale {
    fn new(timeline: &Timeline) -> Scale {
        let end_ms = timeline.end_ms.max(1_000);
        let knee_ms = timeline.focus_end_ms.unwrap_or(end_ms).clamp(1, end_ms);
        let compress = (end_ms - knee_ms) as f64 / end_ms as f64 > 1.0 - FOCUS_WIDTH_SHARE;
        let scale = if compress {
            Scale {
                end_ms,
                knee_ms,
                knee_x: PLOT_X0 + FOCUS_WIDTH_SHARE * (PLOT_X1 - PLOT_X0),
            }
        } else {
            Scale {
                end_ms,
                knee_ms: end_ms,
                knee_x: PLOT_X1,
            }
        };
        assert!(scale.knee_ms <= scale.end_ms && scale.knee_x <= PLOT_X1);
        scale
    }

    /// Whether the time after the focus is compressed.
    fn compressed(&self) -> bool {
        self.knee_ms < self.end_ms
    }

    fn x(&self, ms: u64) -> f64 {
        self.x_us(ms.saturating_mul(1_000))
    }

    fn x_us(&self, us: u64) -> f64 {
        let ms = (us as f64 / 1_000.0).min(self.end_ms as f64);
        let knee = self.knee_ms as f64;
        let x = if ms <= knee {
            PLOT_X0 + ms / knee * (self.knee_x - PLOT_X0)
        } else {
            let rest = (self.end_ms as f64 - knee).max(1.0);
            self.knee_x + (ms - knee) / rest * (PLOT_X1 - self.knee_x)
        };
        assert!((PLOT_X0..=PLOT_X1 + 0.001).contains(&x), "inside the plot");
        x
    }
}

/// The first finding that names each operation: its mark links there.
fn named_ops(findings: &[Finding]) -> BTreeMap<u64, usize> {
    let mut named = BTreeMap::new();
    for (number, finding) in findings.iter().enumerate().take(FINDINGS_DRAWN_MAX) {
        for op in &finding.ops {
            named.entry(*op).or_insert(number);
        }
    }
    named
}

/// The operations drawn: every one a finding names, then failed and indeterminate ones, then
/// ok ones evenly sampled, up to [`OPS_DRAWN_MAX`] (those a finding names always). Returns
/// them and how many were left out.
fn ops_drawn<'a>(ops: &'a [OpMark], named: &BTreeMap<u64, usize>) -> (Vec<&'a OpMark>, usize) {
    let mut drawn: Vec<&OpMark> = ops
        .iter()
        .filter(|o| named.contains_key(&o.index))
        .collect();
    let not_ok: Vec<&OpMark> = ops
        .iter()
        .filter(|o| o.outcome != OpOutcome::Ok && !named.contains_key(&o.index))
        .collect();
    let room = OPS_DRAWN_MAX.saturating_sub(drawn.len());
    let stride = not_ok.len().div_ceil(room.max(1)).max(1);
    drawn.extend(not_ok.iter().step_by(stride).take(room));
    let ok: Vec<&OpMark> = ops
        .iter()
        .filter(|o| o.outcome == OpOutcome::Ok && !named.contains_key(&o.index))
        .collect();
    let room = OPS_DRAWN_MAX.saturating_sub(drawn.len());
    let stride = ok.len().div_ceil(room.max(1)).max(1);
    drawn.extend(ok.iter().step_by(stride).take(room));
    let left_out = ops.len() - drawn.len();
    assert!(drawn.len() <= OPS_DRAWN_MAX.max(named.len()));
    (drawn, left_out)
}

/// Draws the chart; `notes` collects what the page must say about it (items left out).
pub fn chart(timeline: &Timeline, notes: &mut Vec<String>) -> String {
    assert!(timeline.timed(), "a chart over time needs lanes");
    let scale = Scale::new(timeline);
    let rows: Vec<Row> = Row::ALL
        .into_iter()
        .filter(|row| {
            matches!(row, Row::Process | Row::Network)
                || timeline.spans.iter().any(|s| s.kind.row() == *row)
                || timeline.moments.iter().any(|m| m.row == *row)
        })
        .collect();
    let mut body = String::new();
    let mut y = AXIS_H + FINDINGS_H + 6.0;
    let top = y;
    y = lanes(timeline, &scale, &rows, y, &mut body, notes);
    y = partitions(timeline, &scale, y, &mut body, notes);
    y = operations(timeline, &scale, y, &mut body, notes);
    let height = y + 10.0;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height:.0}' \
         viewBox='0 0 {WIDTH} {height:.0}' role='img'>"
    );
    axis(timeline, &scale, height, &mut svg);
    svg.push_str(&body);
    findings(timeline, &scale, top, y, &mut svg);
    svg.push_str("</svg>");
    assert!(svg.len() <= CHART_BYTES_MAX, "the chart is bounded");
    svg
}

/// The time axis with its grid, and the phases as a strip under it.
fn axis(timeline: &Timeline, scale: &Scale, height: f64, svg: &mut String) {
    // Ticks in the focus, then (at most five, on a step of their own) in the compressed rest.
    let step = tick_ms(scale.knee_ms);
    let focus_ticks = (0..=scale.knee_ms / step).map(|i| i * step);
    let rest_step = tick_ms((scale.end_ms - scale.knee_ms) * 4);
    let rest_first = (scale.knee_ms + rest_step / 2).div_ceil(rest_step) * rest_step;
    let rest_ticks = (0..)
        .map(|i| rest_first + i * rest_step)
        .take_while(|at| scale.compressed() && *at <= scale.end_ms);
    let mut ticks = 0;
    for at in focus_ticks.chain(rest_ticks) {
        ticks += 1;
        let x = scale.x(at);
        let _ = write!(
            svg,
            "<line x1='{x:.1}' x2='{x:.1}' y1='14' y2='{:.0}' stroke='#eee'/>\
             <text x='{x:.1}' y='11' text-anchor='middle'>{}</text>",
            height - 10.0,
            seconds(at)
        );
    }
    assert!(
        (1..=27).contains(&ticks),
        "20 ticks at most in the focus, 5 in the rest"
    );
    if scale.compressed() {
        let x = scale.knee_x;
        let _ = write!(
            svg,
            "<g><title>time after {} is compressed: nothing but the final checks runs there</title>\
             <line x1='{x:.1}' x2='{x:.1}' y1='14' y2='{:.0}' stroke='#888' stroke-dasharray='2,3'/>\
             <text x='{:.1}' y='{:.0}' class='small' fill='#555'>compressed ≫</text></g>",
            seconds_precise(scale.knee_ms),
            height - 10.0,
            x + 3.0,
            height - 12.0
        );
    }
    let _ = write!(
        svg,
        "<text x='4' y='11' font-weight='bold'>simulated time</text>\
         <text x='4' y='30'>phases</text><text x='4' y='{:.0}'>findings</text>",
        AXIS_H + 13.0
    );
    let phase_colors = ["#f3e4e4", "#e4f0e4", "#e8e8f3", "#f3f0e0"];
    for (index, (from_ms, label)) in timeline.phases.iter().enumerate() {
        let to_ms = timeline
            .phases
            .get(index + 1)
            .map_or(scale.end_ms, |(next, _)| *next);
        let (x0, x1) = (scale.x(*from_ms), scale.x(to_ms));
        let _ = write!(
            svg,
            "<rect x='{x0:.1}' y='18' width='{:.1}' height='18' fill='{}'><title>{} from {}</title></rect>\
             <text x='{:.1}' y='31' clip-path='none'>{}</text>",
            (x1 - x0).max(1.0),
            phase_colors[index % phase_colors.len()],
            escape(label),
            seconds(*from_ms),
            x0 + 3.0,
            escape(&fit(label, x1 - x0))
        );
    }
}

/// `text` if it fits in `width` px at about 6 px a character, else as much as fits, or nothing.
fn fit(text: &str, width: f64) -> String {
    let chars = ((width - 6.0) / 6.0).floor();
    if chars < 3.0 {
        return String::new();
    }
    let chars = chars as usize;
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// A lane per node: one row per kind of fault, spans and moments in it.
fn lanes(
    timeline: &Timeline,
    scale: &Scale,
    rows: &[Row],
    mut y: f64,
    svg: &mut String,
    notes: &mut Vec<String>,
) -> f64 {
    y = section(svg, y, "nodes and faults");
    let lanes_top = y;
    let start = svg.len();
    let mut left_out = 0;
    for lane in &timeline.lanes {
        let lane_top = y;
        let _ = write!(
            svg,
            "<text x='4' y='{:.0}' font-weight='bold'>{}</text>",
            lane_top + 11.0,
            escape(lane)
        );
        for row in rows {
            let _ = write!(
                svg,
                "<text x='{:.0}' y='{:.0}' class='small' fill='#555' text-anchor='end'>{}</text>\
                 <rect x='{PLOT_X0}' y='{:.1}' width='{:.1}' height='{:.1}' fill='#f7f7f7'/>",
                PLOT_X0 - 4.0,
                y + 10.0,
                row.name(),
                y + 1.0,
                PLOT_X1 - PLOT_X0,
                ROW_H - 2.0
            );
            for span in timeline
                .spans
                .iter()
                .filter(|s| s.lane == *lane && s.kind.row() == *row)
            {
                if svg.len() - start > LANES_BYTES_MAX {
                    left_out += 1;
                    continue;
                }
                let to_ms = span.to_ms.unwrap_or(scale.end_ms);
                let (x0, x1) = (scale.x(span.from_ms), scale.x(to_ms));
                let width = (x1 - x0).max(2.0);
                let until = span
                    .to_ms
                    .map_or("the end of the run".to_string(), seconds_precise);
                let text_class = if matches!(span.kind, SpanKind::Killed | SpanKind::Wiped) {
                    " class='white'"
                } else {
                    ""
                };
                let _ = write!(
                    svg,
                    "<g><title>{lane} {kind}: {label}, {from} to {until}</title>\
                     <rect class='{kind}' x='{x0:.1}' y='{:.1}' width='{width:.1}' height='{:.1}'/>\
                     <text x='{:.1}' y='{:.1}'{text_class}>{}</text></g>",
                    y + 1.0,
                    ROW_H - 2.0,
                    x0 + 2.0,
                    y + 11.0,
                    escape(&fit(&span.label, width)),
                    lane = escape(lane),
                    kind = span.kind.name(),
                    label = escape(&span.label),
                    from = seconds_precise(span.from_ms),
                );
            }
            for moment in timeline
                .moments
                .iter()
                .filter(|m| m.lane == *lane && m.row == *row)
            {
                if svg.len() - start > LANES_BYTES_MAX {
                    left_out += 1;
                    continue;
                }
                let x = scale.x(moment.at_ms);
                let _ = write!(
                    svg,
                    "<g><title>{} at {}: {}</title><path d='M{x:.1} {:.1}l-4 -6h8z' fill='#000'/>\
                     <line x1='{x:.1}' x2='{x:.1}' y1='{:.1}' y2='{:.1}' stroke='#000'/></g>",
                    escape(lane),
                    seconds_precise(moment.at_ms),
                    escape(&moment.label),
                    y + 7.0,
                    y + 7.0,
                    y + ROW_H - 1.0
                );
            }
            y += ROW_H;
        }
        let _ = write!(
            svg,
            "<line x1='4' x2='{PLOT_X1}' y1='{:.1}' y2='{:.1}' stroke='#ddd'/>",
            y + LANE_GAP / 2.0,
            y + LANE_GAP / 2.0
        );
        y += LANE_GAP;
    }
    let height = timeline.lanes.len() as f64 * (rows.len() as f64 * ROW_H + LANE_GAP);
    assert!(
        (y - lanes_top - height).abs() < 0.01,
        "every lane drawn, its rows in it"
    );
    if left_out > 0 {
        notes.push(format!(
            "{left_out} fault spans and moments not drawn (the lanes take at most {} KiB)",
            LANES_BYTES_MAX >> 10
        ));
    }
    y
}

/// A section's title at `y`; returns where its content begins.
fn section(svg: &mut String, y: f64, title: &str) -> f64 {
    let _ = write!(
        svg,
        "<text x='4' y='{:.0}' font-weight='bold'>{}</text>",
        y + 10.0,
        escape(title)
    );
    y + 16.0
}

/// Milliseconds as seconds with three decimals.
fn seconds_precise(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1_000, ms % 1_000)
}

/// Where a segment's state is known to last: to the next observation if it came soon enough,
/// else a little past its last sighting.
fn segment_end(segment: &Segment, next: Option<&Segment>, end_ms: u64) -> (u64, bool) {
    let known_ms = segment.seen_ms + OBSERVATION_GAP_MS;
    let (to_ms, gap) = match next {
        Some(next) if next.from_ms <= known_ms => (next.from_ms, false),
        Some(next) => (known_ms.min(next.from_ms), true),
        None => (known_ms.min(end_ms), known_ms < end_ms),
    };
    assert!(
        to_ms >= segment.seen_ms || to_ms == end_ms,
        "a state lasts until seen last"
    );
    assert!(
        !gap || to_ms == known_ms,
        "a gap begins where the state stops being known"
    );
    (to_ms, gap)
}

/// A band per partition and replica: dark where it leads, light where it is in the ISR, empty
/// where it is out, red where the partition has no leader, hatched where nobody looked.
fn partitions(
    timeline: &Timeline,
    scale: &Scale,
    mut y: f64,
    svg: &mut String,
    notes: &mut Vec<String>,
) -> f64 {
    if timeline.partitions.is_empty() {
        return y;
    }
    svg.push_str(
        "<defs><pattern id='unknown' width='6' height='6' patternUnits='userSpaceOnUse' \
         patternTransform='rotate(45)'><rect width='6' height='6' fill='#fff'/>\
         <line x1='0' y1='0' x2='0' y2='6' stroke='#bbb' stroke-width='2'/></pattern></defs>",
    );
    y = section(svg, y + SECTION_GAP - 8.0, "partitions: leader and ISR");
    let start = svg.len();
    let mut left_out = 0;
    for lane in &timeline.partitions {
        let replicas: BTreeSet<i32> = lane
            .segments
            .iter()
            .flat_map(|s| s.isr.iter().copied().chain(s.leader))
            .chain(
                timeline
                    .lanes
                    .iter()
                    .filter_map(|l| l.strip_prefix('n').and_then(|id| id.parse().ok())),
            )
            .take(REPLICAS_DRAWN_MAX)
            .collect();
        let lane_top = y;
        let _ = write!(
            svg,
            "<text x='4' y='{:.0}' font-weight='bold'>{}</text>",
            lane_top + 10.0,
            escape(&lane.key)
        );
        for (row, id) in replicas.iter().enumerate() {
            let _ = write!(
                svg,
                "<text x='{:.0}' y='{:.0}' class='small' fill='#555' text-anchor='end'>n{id}</text>\
                 <rect x='{PLOT_X0}' y='{:.1}' width='{:.1}' height='{:.1}' fill='#fff' stroke='#eee'/>",
                PLOT_X0 - 4.0,
                lane_top + row as f64 * REPLICA_H + 9.0,
                lane_top + row as f64 * REPLICA_H + 1.0,
                PLOT_X1 - PLOT_X0,
                REPLICA_H - 2.0
            );
        }
        assert!(replicas.len() <= REPLICAS_DRAWN_MAX);
        let band_h = replicas.len() as f64 * REPLICA_H;
        for (index, segment) in lane.segments.iter().enumerate() {
            if svg.len() - start > PARTITIONS_BYTES_MAX {
                left_out += 1;
                continue;
            }
            let (to_ms, gap) = segment_end(segment, lane.segments.get(index + 1), scale.end_ms);
            let (x0, x1) = (scale.x(segment.from_ms), scale.x(to_ms));
            let width = (x1 - x0).max(1.0);
            let leader = segment
                .leader
                .map_or("no leader".to_string(), |l| format!("leader n{l}"));
            let isr: Vec<String> = segment.isr.iter().map(|id| format!("n{id}")).collect();
            let _ = write!(
                svg,
                "<g><title>{key} from {from}: {leader}, epoch {epoch}, ISR [{isr}]</title>",
                key = escape(&lane.key),
                from = seconds_precise(segment.from_ms),
                epoch = segment.epoch,
                isr = isr.join(", ")
            );
            if segment.leader.is_none() {
                let _ = write!(
                    svg,
                    "<rect x='{x0:.1}' y='{:.1}' width='{width:.1}' height='{:.1}' fill='#d62728' fill-opacity='.8'/>\
                     <text x='{:.1}' y='{:.1}' class='white'>{}</text>",
                    lane_top + 1.0,
                    band_h - 2.0,
                    x0 + 2.0,
                    lane_top + band_h / 2.0 + 4.0,
                    fit("no leader", width)
                );
            }
            for (row, id) in replicas.iter().enumerate() {
                let row_y = lane_top + row as f64 * REPLICA_H + 1.0;
                let leads = segment.leader == Some(*id);
                if !leads && !segment.isr.contains(id) {
                    continue;
                }
                let opacity = if leads { "1" } else { ".3" };
                let _ = write!(
                    svg,
                    "<rect x='{x0:.1}' y='{row_y:.1}' width='{width:.1}' height='{:.1}' fill='{}' fill-opacity='{opacity}'/>",
                    REPLICA_H - 2.0,
                    node_color(*id)
                );
                if leads {
                    let _ = write!(
                        svg,
                        "<text x='{:.1}' y='{:.1}' class='small white'>{}</text>",
                        x0 + 2.0,
                        row_y + 8.0,
                        fit(&format!("leader, epoch {}", segment.epoch), width)
                    );
                }
            }
            svg.push_str("</g>");
            if gap {
                let next_ms = lane
                    .segments
                    .get(index + 1)
                    .map_or(scale.end_ms, |n| n.from_ms);
                let (g0, g1) = (x1, scale.x(next_ms));
                let _ = write!(
                    svg,
                    "<rect x='{g0:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='url(#unknown)'>\
                     <title>{} not observed from {} (metadata requests failed)</title></rect>",
                    lane_top + 1.0,
                    (g1 - g0).max(0.0),
                    band_h - 2.0,
                    escape(&lane.key),
                    seconds_precise(to_ms)
                );
            }
        }
        y = lane_top + band_h + LANE_GAP;
    }
    if left_out > 0 {
        notes.push(format!(
            "{left_out} partition states not drawn (the partitions take at most {} KiB)",
            PARTITIONS_BYTES_MAX >> 10
        ));
    }
    y
}

/// The client operations: x when invoked, y how long they took (log scale), colour how they
/// ended, circles for sends and squares for polls; never-completed ones along the top.
fn operations(
    timeline: &Timeline,
    scale: &Scale,
    mut y: f64,
    svg: &mut String,
    notes: &mut Vec<String>,
) -> f64 {
    if timeline.ops.is_empty() {
        return y;
    }
    let _ = write!(
        svg,
        "<text x='4' y='{:.0}' class='small' fill='#555'>x: invoked</text>\
         <text x='4' y='{:.0}' class='small' fill='#555'>y: latency (log)</text>",
        y + SECTION_GAP + 14.0,
        y + SECTION_GAP + 24.0
    );
    y = section(svg, y + SECTION_GAP - 8.0, "client operations");
    let latency_us_max = timeline
        .ops
        .iter()
        .filter_map(|o| o.latency_us)
        .max()
        .unwrap_or(1_000_000)
        .max(10_000) as f64;
    let decades_max = latency_us_max.log10().ceil();
    let decades_min = LATENCY_US_MIN.log10();
    assert!(decades_max > decades_min, "at least one decade of latency");
    let open_y = y + 6.0;
    let (plot_top, plot_bottom) = (y + 16.0, y + OPS_H);
    let latency_y = |us: u64| {
        let decades = (us as f64).max(LATENCY_US_MIN).log10();
        plot_bottom
            - (decades - decades_min) / (decades_max - decades_min) * (plot_bottom - plot_top)
    };
    let _ = write!(
        svg,
        "<rect x='{PLOT_X0}' y='{:.1}' width='{:.1}' height='{:.1}' fill='#fcfcfc' stroke='#eee'/>\
         <text x='{:.0}' y='{:.1}' class='small' fill='#555' text-anchor='end'>never done</text>",
        plot_top,
        PLOT_X1 - PLOT_X0,
        plot_bottom - plot_top,
        PLOT_X0 - 4.0,
        open_y + 3.0
    );
    let mut decade = decades_min;
    while decade <= decades_max {
        let us = 10f64.powf(decade) as u64;
        let tick_y = latency_y(us);
        let _ = write!(
            svg,
            "<line x1='{PLOT_X0}' x2='{PLOT_X1}' y1='{tick_y:.1}' y2='{tick_y:.1}' stroke='#eee'/>\
             <text x='{:.0}' y='{:.1}' class='small' fill='#555' text-anchor='end'>{}</text>",
            PLOT_X0 - 4.0,
            tick_y + 3.0,
            duration(us)
        );
        decade += 1.0;
    }
    let named = named_ops(&timeline.findings);
    let (drawn, mut left_out) = ops_drawn(&timeline.ops, &named);
    assert!(
        drawn.len() + left_out == timeline.ops.len(),
        "each drawn or counted"
    );
    // Named operations last, so they lie on top, with bytes kept for them.
    let (plain, marked): (Vec<&OpMark>, Vec<&OpMark>) = drawn
        .into_iter()
        .partition(|o| !named.contains_key(&o.index));
    let start = svg.len();
    for op in plain.iter().chain(&marked) {
        let named_op = named.contains_key(&op.index);
        let budget = if named_op {
            OPS_BYTES_MAX
        } else {
            OPS_BYTES_MAX - NAMED_OPS_BYTES
        };
        if svg.len() - start > budget {
            left_out += 1;
            continue;
        }
        let x = scale.x_us(op.invoked_us);
        let mark_y = op.latency_us.map_or(open_y, latency_y);
        let class = match op.outcome {
            OpOutcome::Open => "open",
            other => other.name(),
        };
        let latency = op
            .latency_us
            .map_or("never completed".to_string(), duration);
        let title = format!(
            "op {} (p{}) {}: {}, {latency}, invoked at {}",
            op.index,
            op.process,
            op.text,
            op.outcome.name(),
            seconds_precise(op.invoked_us / 1_000)
        );
        let finding = named.get(&op.index);
        let (size, extra) = match finding {
            Some(_) => (5.0, " named"),
            None => (2.2, ""),
        };
        if let Some(number) = finding {
            let _ = write!(svg, "<a href='#finding-{}'>", number + 1);
        }
        let shape = match op.shape {
            OpShape::Send => format!(
                "<circle id='op-{}' class='{class}{extra}' cx='{x:.1}' cy='{mark_y:.1}' r='{size}'>",
                op.index
            ),
            OpShape::Poll | OpShape::Other => format!(
                "<rect id='op-{}' class='{class}{extra}' x='{:.1}' y='{:.1}' width='{:.1}' height='{:.1}'>",
                op.index,
                x - size,
                mark_y - size,
                size * 2.0,
                size * 2.0
            ),
        };
        let close = match op.shape {
            OpShape::Send => "</circle>",
            OpShape::Poll | OpShape::Other => "</rect>",
        };
        let _ = write!(svg, "{shape}<title>{}</title>{close}", escape(&title));
        if finding.is_some() {
            svg.push_str("</a>");
        }
    }
    if left_out > 0 {
        notes.push(format!(
            "{left_out} of {} client operations not drawn (at most {OPS_DRAWN_MAX} and {} KiB: \
             every one a finding names, then failed and indeterminate ones, then ok ones evenly \
             sampled)",
            timeline.ops.len(),
            OPS_BYTES_MAX >> 10
        ));
    }
    plot_bottom + 6.0
}

/// When a finding shows: each operation it names, when it was invoked (a poll that read
/// something wrong, a send whose record was lost), or the moment a check failed.
fn finding_times_ms(finding: &Finding, ops: &BTreeMap<u64, &OpMark>) -> Vec<u64> {
    let mut times: Vec<u64> = finding
        .ops
        .iter()
        .filter_map(|index| ops.get(index))
        .map(|op| op.invoked_us / 1_000)
        .collect();
    if times.is_empty() {
        times.extend(finding.at_ms);
    }
    times.sort_unstable();
    times.dedup();
    assert!(times.len() <= finding.ops.len().max(1));
    times
}

/// Every finding as thin lines across the chart at its times, and a numbered flag in the
/// findings strip (moved right where flags would overlap, with a leader line back to its
/// time), each linking to its entry below the chart.
fn findings(timeline: &Timeline, scale: &Scale, top: f64, bottom: f64, svg: &mut String) {
    const FLAG_W: f64 = 18.0;
    let ops: BTreeMap<u64, &OpMark> = timeline.ops.iter().map(|o| (o.index, o)).collect();
    let start = svg.len();
    let mut flags: Vec<(f64, usize, &Finding)> = Vec::new();
    for (number, finding) in timeline
        .findings
        .iter()
        .enumerate()
        .take(FINDINGS_DRAWN_MAX)
    {
        let times = finding_times_ms(finding, &ops);
        let Some(first) = times.first() else {
            continue;
        };
        // Half the budget for the lines, half for the flags.
        if svg.len() - start > FINDING_MARKS_BYTES_MAX / 2 {
            break;
        }
        let class = finding.kind.class();
        let label = escape(&format!("{}. {}", number + 1, finding_label(finding)));
        let _ = write!(
            svg,
            "<a href='#finding-{}'><title>{label}</title>",
            number + 1
        );
        for at_ms in &times {
            let x = scale.x(*at_ms);
            let _ = write!(
                svg,
                "<line class='{class}' x1='{x:.1}' x2='{x:.1}' y1='{top:.1}' y2='{bottom:.1}'                  stroke-width='1.5' stroke-opacity='.6' stroke-dasharray='4,2'/>"
            );
        }
        svg.push_str("</a>");
        flags.push((scale.x(*first), number, finding));
    }
    assert!(flags.len() <= FINDINGS_DRAWN_MAX);
    flags.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut free_x = 0.0f64;
    for (x, number, finding) in flags {
        if svg.len() - start > FINDING_MARKS_BYTES_MAX {
            break;
        }
        let flag_x = (x - FLAG_W / 2.0).max(free_x);
        assert!(flag_x >= free_x, "flags never overlap");
        free_x = flag_x + FLAG_W + 1.0;
        let (n, class) = (number + 1, finding.kind.class());
        let label = escape(&format!("{n}. {}", finding_label(finding)));
        let _ = write!(
            svg,
            "<a href='#finding-{n}'><title>{label}</title>\
             <line class='{class}' x1='{x:.1}' x2='{:.1}' y1='{:.1}' y2='{:.1}'/>\
             <rect class='{class}' x='{flag_x:.1}' y='{:.1}' width='{FLAG_W}' height='14' rx='3'/>\
             <text x='{:.1}' y='{:.1}' class='white' text-anchor='middle'>{n}</text></a>",
            flag_x + FLAG_W / 2.0,
            top,
            AXIS_H + 16.0,
            AXIS_H + 2.0,
            flag_x + FLAG_W / 2.0,
            AXIS_H + 13.0,
        );
    }
}

/// A finding in one line: its kind and title.
pub fn finding_label(finding: &Finding) -> String {
    let key = finding
        .key
        .as_deref()
        .map_or(String::new(), |k| format!(" on {k}"));
    format!("{}: {}{key}", finding.kind.label(), finding.title)
}

/// Whether any finding is a violation (not merely allowed by the settings).
pub fn violated(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.kind != FindingKind::Allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_quiet_tail_is_compressed_into_the_last_fifth() {
        let mut timeline = Timeline {
            end_ms: 100_000,
            focus_end_ms: Some(20_000),
            ..Timeline::default()
        };
        let scale = Scale::new(&timeline);
        assert!(scale.compressed());
        let focus_x = PLOT_X0 + FOCUS_WIDTH_SHARE * (PLOT_X1 - PLOT_X0);
        assert!((scale.x(20_000) - focus_x).abs() < 0.01);
        assert!((scale.x(100_000) - PLOT_X1).abs() < 0.01);
        assert!((scale.x(10_000) - (PLOT_X0 + focus_x) / 2.0).abs() < 0.01);
        // A short tail stays linear.
        timeline.focus_end_ms = Some(90_000);
        let scale = Scale::new(&timeline);
        assert!(!scale.compressed());
        assert!((scale.x(50_000) - (PLOT_X0 + PLOT_X1) / 2.0).abs() < 0.01);
    }

    #[test]
    fn a_finding_shows_at_its_operations_or_at_its_check() {
        let op = |index, invoked_us| OpMark {
            index,
            process: 1,
            shape: OpShape::Send,
            outcome: OpOutcome::Ok,
            invoked_us,
            latency_us: Some(1),
            text: String::new(),
        };
        let (a, b) = (op(7, 2_000_000), op(9, 5_000_000));
        let ops: BTreeMap<u64, &OpMark> = [(7, &a), (9, &b)].into_iter().collect();
        let mut finding = Finding {
            kind: FindingKind::Safety,
            title: String::new(),
            key: None,
            values: Vec::new(),
            ops: vec![9, 7, 8],
            at_ms: Some(60_000),
            detail: String::new(),
        };
        assert_eq!(finding_times_ms(&finding, &ops), [2_000, 5_000]);
        finding.ops.clear();
        assert_eq!(finding_times_ms(&finding, &ops), [60_000]);
    }
}
