//! Checker benchmark: time and peak memory of the queue checker on generated 10k, 100k and 1M
//! operation histories, and of the linearizability checker on register and log histories.
//!
//! `cargo run --release -p jepsen --example bench [-- SIZES...]`
//!
//! Each measurement runs in a child process so that its peak resident memory (VmHWM from
//! /proc/self/status; no counting allocator, since unsafe code is forbidden) is its own.

use std::io::{BufReader, BufWriter};
use std::process::Command;
use std::time::Instant;

use jepsen::gen::{queue_history, register_history, QueueShape};
use jepsen::history::History;
use jepsen::linear::{check_logs, check_registers, verdict_name, Budget};
use jepsen::queue::{check, QueueOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("queue") => queue(parse(&args[1])),
        Some("register") => register(parse(&args[1])),
        Some("log") => log(parse(&args[1])),
        _ => parent(&args),
    }
}

fn parse(s: &str) -> u64 {
    s.parse().expect("a number of operations")
}

fn parent(sizes: &[String]) {
    let sizes: Vec<u64> = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes.iter().map(|s| parse(s)).collect()
    };
    let exe = std::env::current_exe().expect("own path");
    let mut runs: Vec<(String, u64)> = sizes.iter().map(|n| ("queue".to_string(), *n)).collect();
    runs.push(("register".into(), 10_000));
    runs.push(("register".into(), 100_000));
    runs.push(("log".into(), 10_000));
    runs.push(("log".into(), 100_000));
    for (kind, n) in runs {
        let status = Command::new(&exe)
            .arg(&kind)
            .arg(n.to_string())
            .status()
            .expect("spawn");
        assert!(status.success(), "{kind} {n} failed");
    }
}

/// (VmHWM, VmRSS) in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn shape(operations: u64) -> QueueShape {
    QueueShape {
        operations,
        processes: 16,
        keys: 8,
        info_percent: 2,
        fail_percent: 2,
        poll_batch_max: 8,
    }
}

/// Generates, writes JSON Lines to a temp file, parses it back, checks it.
fn queue(operations: u64) {
    let path = std::env::temp_dir().join(format!(
        "rill-bench-{}-{operations}.jsonl",
        std::process::id()
    ));
    let t = Instant::now();
    {
        let history = queue_history(1, &shape(operations));
        let mut out = BufWriter::new(std::fs::File::create(&path).expect("temp file"));
        history.write_jsonl(&mut out).expect("write");
    }
    let generate_s = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let file = std::fs::File::open(&path).expect("temp file");
    let history = History::parse_jsonl(BufReader::new(file)).expect("generated history parses");
    let parse_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let (_, rss_parsed) = memory();
    let t = Instant::now();
    let report = check(&history, &QueueOptions::default());
    let check_s = t.elapsed().as_secs_f64();
    let (hwm, _) = memory();
    assert!(
        report.valid,
        "generated histories are valid: {:?}",
        report.anomalies.keys()
    );
    println!(
        "queue    {operations:>9} ops ({} events, {:.0} MiB JSONL): generate+write {generate_s:.2} s, \
         parse {parse_s:.2} s, check {check_s:.2} s; RSS after parse {rss_parsed:.0} MiB, peak {hwm:.0} MiB",
        history.len(),
        bytes as f64 / 1048576.0
    );
}

fn register(operations: u64) {
    let history = register_history(2, operations, 8, 16);
    let t = Instant::now();
    let report = check_registers(&history, &Budget::new(120, 50_000_000));
    let check_s = t.elapsed().as_secs_f64();
    let (hwm, _) = memory();
    println!(
        "register {operations:>9} ops ({} keys, 8 processes, 5% info): {} in {check_s:.2} s; peak {hwm:.0} MiB",
        report.keys,
        verdict_name(&report.verdict)
    );
}

fn log(operations: u64) {
    let history = queue_history(3, &shape(operations));
    let t = Instant::now();
    let report = check_logs(&history, &Budget::new(120, 50_000_000));
    let check_s = t.elapsed().as_secs_f64();
    let (hwm, _) = memory();
    println!(
        "log      {operations:>9} ops ({} partitions, {} log operations): {} in {check_s:.2} s; peak {hwm:.0} MiB",
        report.keys,
        report.operations,
        verdict_name(&report.verdict)
    );
}
