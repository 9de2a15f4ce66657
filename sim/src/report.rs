//! An HTML timeline of one seed's run: what a person reads to understand a failure.
//!
//! One SVG chart of the run's numeric series over steps (for storage: log start offset, durable
//! offset, high watermark, log end offset) with vertical marks for faults (crashes, injected
//! errors, bit flips), then the violation, then the event list.

use crate::runner::{Scenario, SeedRun};
use std::fmt::Write as _;

const CHART_WIDTH: f64 = 1100.0;
const CHART_HEIGHT: f64 = 360.0;
const MARGIN: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
];

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the run as a self-contained HTML page.
pub fn render(scenario: &dyn Scenario, seed: u64, run: &SeedRun) -> String {
    let mut html = String::new();
    let verdict = match &run.violation {
        Some(v) => format!("<p class=bad>VIOLATION: {}</p>", escape(v)),
        None => "<p class=good>no violation</p>".to_string(),
    };
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=utf-8><title>rill sim seed {seed}</title>\
         <style>body{{font-family:sans-serif;margin:20px}}.bad{{color:#b00;font-weight:bold}}\
         .good{{color:#080}}pre{{font-size:12px;background:#f6f6f6;padding:8px}}\
         .fault{{color:#b00}}</style></head><body>\
         <h1>rill simulation: scenario {name}, seed {seed}</h1><p>{about}</p>{verdict}\
         <p>{steps} steps, {sim:.1} s simulated, trace hash {hash:016x}. Replay: \
         <code>{replay}</code></p>",
        name = escape(scenario.name()),
        about = escape(&scenario.describe(seed)),
        steps = run.steps,
        sim = run.simulated_ms as f64 / 1000.0,
        hash = run.trace.hash(),
        replay = escape(&crate::runner::replay_command(scenario, seed)),
    );
    html.push_str(&chart(&run.timeline));
    html.push_str("<h2>Events</h2><pre>");
    for (index, event) in run.trace.events().iter().enumerate() {
        let class = if run
            .timeline
            .marks
            .iter()
            .any(|(step, _)| *step == index as u64)
        {
            " class=fault"
        } else {
            ""
        };
        let _ = writeln!(html, "<span{class}>#{index:<6} {}</span>", escape(event));
    }
    html.push_str("</pre></body></html>\n");
    html
}

/// Numeric series over the run's steps plus labelled marks (faults), for the chart.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Named series of (event index, value), in event order.
    pub series: Vec<(String, Vec<(u64, i64)>)>,
    /// (event index, label) of faults and other notable moments.
    pub marks: Vec<(u64, String)>,
}

impl Timeline {
    /// Appends a point to the named series (created on first use).
    pub fn point(&mut self, name: &str, step: u64, value: i64) {
        match self.series.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => points.push((step, value)),
            None => self.series.push((name.to_string(), vec![(step, value)])),
        }
    }

    /// Marks a notable moment.
    pub fn mark(&mut self, step: u64, label: impl Into<String>) {
        self.marks.push((step, label.into()));
    }
}

fn chart(timeline: &Timeline) -> String {
    let points = timeline.series.iter().flat_map(|(_, p)| p.iter());
    let step_max = points.clone().map(|(s, _)| *s).max().unwrap_or(1).max(1) as f64;
    let value_max = points.clone().map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
    let value_min = points.map(|(_, v)| *v).min().unwrap_or(0).min(0) as f64;
    let x = |step: u64| MARGIN + step as f64 / step_max * (CHART_WIDTH - 2.0 * MARGIN);
    let y = |value: i64| {
        let span = (value_max - value_min).max(1.0);
        CHART_HEIGHT - MARGIN - (value as f64 - value_min) / span * (CHART_HEIGHT - 2.0 * MARGIN)
    };
    let mut svg = format!(
        "<svg width='{CHART_WIDTH}' height='{CHART_HEIGHT}' xmlns='http://www.w3.org/2000/svg' \
         style='border:1px solid #ccc'>"
    );
    for (step, label) in &timeline.marks {
        let _ = write!(
            svg,
            "<line x1='{0:.1}' x2='{0:.1}' y1='{1}' y2='{2}' stroke='#d62728' stroke-dasharray='3,3'>\
             <title>{3}</title></line>",
            x(*step),
            MARGIN,
            CHART_HEIGHT - MARGIN,
            escape(label)
        );
    }
    for (index, (name, points)) in timeline.series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(s, v)| format!("{:.1},{:.1}", x(*s), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{}'/>\
             <text x='{}' y='{}' fill='{color}' font-size='12'>{}</text>",
            path.join(" "),
            MARGIN + 10.0 + 160.0 * index as f64,
            MARGIN - 20.0,
            escape(name)
        );
    }
    let _ = write!(
        svg,
        "<text x='{MARGIN}' y='{}' font-size='11'>event 0</text>\
         <text x='{}' y='{}' font-size='11' text-anchor='end'>event {step_max}</text>\
         <text x='5' y='{}' font-size='11'>{value_max}</text><text x='5' y='{}' font-size='11'>{value_min}</text>\
         <text x='{}' y='{}' font-size='11' fill='#d62728' text-anchor='end'>dashed: faults</text></svg>",
        CHART_HEIGHT - 25.0,
        CHART_WIDTH - MARGIN,
        CHART_HEIGHT - 25.0,
        MARGIN,
        CHART_HEIGHT - MARGIN,
        CHART_WIDTH - MARGIN,
        MARGIN - 20.0,
    );
    svg
}
