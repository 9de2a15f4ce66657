//! `rill check FILE.jsonl [--subscribe] [--ww-deps] [--json] [--linearizable] [--time-limit S]`.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown (a linearizability budget ran out), 3 bad input
//! (unreadable file, malformed line, inconsistent events: the message names the line) or bad
//! usage.

use std::fs::File;
use std::io::{BufReader, Write};
use std::time::Instant;

use serde_json::json;

use crate::history::History;
use crate::linear::{self, Budget, LinearReport, Verdict};
use crate::queue::{self, QueueOptions, QueueReport};

/// Exit code: the history is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: the history shows an anomaly.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: no verdict within the budget.
pub const EXIT_UNKNOWN: i32 = 2;
/// Exit code: the input (or the command line) is bad.
pub const EXIT_BAD_INPUT: i32 = 3;

/// Cases printed per class in the human summary.
const CASES_SHOWN_MAX: usize = 3;

const USAGE: &str = "usage: rill check FILE.jsonl [--subscribe] [--ww-deps] [--json] \
[--linearizable] [--time-limit SECONDS] [--states-max N]
  --subscribe      consumers used subscribe: rebalance-caused poll-skip/nonmonotonic-poll allowed
  --ww-deps        infer write-write dependencies from log order (G0; G1c then allowed)
  --json           print the verdict as JSON
  --linearizable   also check each partition as a linearizable append-only log, and each
                   key-value register (read/write/cas micro-ops) as a linearizable register
  --time-limit S   linearizability budget in seconds (default 60)
  --states-max N   linearizability budget: memoised configurations per key (default 10000000)
exit: 0 valid, 1 invalid, 2 unknown, 3 bad input or usage";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    /// The history file.
    path: String,
    /// Checker options.
    options: QueueOptions,
    /// Print JSON.
    json: bool,
    /// Run the linearizability checks.
    linearizable: bool,
    /// Linearizability budget, seconds.
    time_limit: u64,
    /// Linearizability budget, configurations per key.
    states_max: u64,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut out = Args {
        time_limit: 60,
        states_max: 10_000_000,
        ..Args::default()
    };
    let mut rest = args.iter().peekable();
    if rest.peek().map(|a| a.as_str()) == Some("check") {
        rest.next();
    }
    let mut path = None;
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--subscribe" => out.options.subscribe = true,
            "--ww-deps" => out.options.ww_deps = true,
            "--json" => out.json = true,
            "--linearizable" => out.linearizable = true,
            "--time-limit" => {
                let v = rest
                    .next()
                    .ok_or("--time-limit needs a number of seconds")?;
                out.time_limit = v.parse().map_err(|_| format!("bad --time-limit {v}"))?;
            }
            "--states-max" => {
                let v = rest.next().ok_or("--states-max needs a number")?;
                out.states_max = v.parse().map_err(|_| format!("bad --states-max {v}"))?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            file if path.is_none() => path = Some(file.to_string()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    out.path = path.ok_or("missing FILE.jsonl")?;
    Ok(Some(out))
}

/// Runs `rill check`. `args` are the arguments after the program name (a leading `check` is
/// accepted and skipped). Returns the exit code.
pub fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let args = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = writeln!(stdout, "{USAGE}");
            return EXIT_VALID;
        }
        Err(e) => {
            let _ = writeln!(stderr, "rill check: {e}\n{USAGE}");
            return EXIT_BAD_INPUT;
        }
    };
    let history = match File::open(&args.path) {
        Err(e) => Err(format!("cannot read {}: {e}", args.path)),
        Ok(f) => History::parse_jsonl(BufReader::new(f)).map_err(|e| format!("{}: {e}", args.path)),
    };
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(stderr, "rill check: bad input: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let started = Instant::now();
    let report = queue::check(&history, &args.options);
    let mut linear_reports = Vec::new();
    if args.linearizable {
        let budget = Budget::new(args.time_limit, args.states_max);
        linear_reports.push(linear::check_logs(&history, &budget));
        let registers = linear::check_registers(&history, &budget);
        if registers.keys > 0 {
            linear_reports.push(registers);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let code = exit_code(&report, &linear_reports);
    let written = if args.json {
        print_json(stdout, &report, &linear_reports, code, seconds)
    } else {
        print_human(stdout, &args.path, &report, &linear_reports, code, seconds)
    };
    if let Err(e) = written {
        let _ = writeln!(stderr, "rill check: cannot write the report: {e}");
    }
    code
}

fn exit_code(report: &QueueReport, linear: &[LinearReport]) -> i32 {
    if !report.valid || linear.iter().any(|l| l.verdict == Verdict::NotLinearizable) {
        EXIT_INVALID
    } else if linear
        .iter()
        .any(|l| matches!(l.verdict, Verdict::Unknown(_)))
    {
        EXIT_UNKNOWN
    } else {
        EXIT_VALID
    }
}

fn verdict_word(code: i32) -> &'static str {
    match code {
        EXIT_VALID => "valid",
        EXIT_INVALID => "invalid",
        _ => "unknown",
    }
}

fn print_json(
    out: &mut dyn Write,
    report: &QueueReport,
    linear: &[LinearReport],
    code: i32,
    seconds: f64,
) -> std::io::Result<()> {
    let mut value = report.to_json();
    value["verdict"] = json!(verdict_word(code));
    value["check-seconds"] = json!(seconds);
    value["linearizability"] = linear
        .iter()
        .map(|l| {
            json!({"model": l.model, "keys": l.keys, "operations": l.operations,
                   "verdict": linear::verdict_name(&l.verdict), "failures": l.failures})
        })
        .collect();
    writeln!(out, "{value}")
}

fn print_human(
    out: &mut dyn Write,
    path: &str,
    report: &QueueReport,
    linear: &[LinearReport],
    code: i32,
    seconds: f64,
) -> std::io::Result<()> {
    let s = &report.stats;
    writeln!(
        out,
        "{path}: {} events, {} operations ({} ok, {} fail, {} info), {} keys",
        s.events, s.operations, s.ok, s.fail, s.info, s.keys
    )?;
    writeln!(
        out,
        "values: {} sent ok, {} sent info, {} read",
        s.values_sent_ok, s.values_sent_info, s.values_read
    )?;
    if report.anomalies.is_empty() {
        writeln!(out, "anomalies: none")?;
    }
    for (class, r) in &report.anomalies {
        let allowed = if r.allowed {
            " (allowed under these options)"
        } else {
            ""
        };
        writeln!(out, "{class}: {}{allowed}", r.count)?;
        for a in r.cases.iter().take(CASES_SHOWN_MAX) {
            let key = a
                .key
                .as_deref()
                .map(|k| format!("key {k}: "))
                .unwrap_or_default();
            writeln!(out, "  {key}{} [ops {:?}]", a.detail, a.ops)?;
        }
    }
    for l in linear {
        writeln!(
            out,
            "linearizability ({}): {} ({} keys, {} operations)",
            l.model,
            linear::verdict_name(&l.verdict),
            l.keys,
            l.operations
        )?;
        if let Verdict::Unknown(reason) = &l.verdict {
            writeln!(out, "  {reason}")?;
        }
        for f in &l.failures {
            writeln!(out, "  {f}")?;
        }
    }
    writeln!(
        out,
        "checked in {seconds:.3} s\nverdict: {}",
        verdict_word(code)
    )
}
