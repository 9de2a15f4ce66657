//! `rill check`: exit codes, human and JSON output, bad input.

mod common;

use common::{jsonl, polled, send, sent, POLL};
use jepsen::cli::{run, EXIT_BAD_INPUT, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};

fn file(name: &str, text: &str) -> String {
    let path = format!("{}/{name}", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&path, text).expect("tmpdir is writable");
    path
}

fn check(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8"),
    )
}

fn valid_text() -> String {
    jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
    ])
}

#[test]
fn valid_history_exits_0() {
    let path = file("valid.jsonl", &valid_text());
    let (code, out, _) = check(&["check", &path]);
    assert_eq!(code, EXIT_VALID, "{out}");
    assert!(
        out.contains("anomalies: none") && out.contains("verdict: valid"),
        "{out}"
    );
    let (code, out, _) = check(&[&path, "--linearizable"]);
    assert_eq!(code, EXIT_VALID, "{out}");
    assert!(out.contains("linearizability (log): linearizable"), "{out}");
}

#[test]
fn invalid_history_exits_1_with_json() {
    let text = jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", "[[\"poll\",{}]]"),
    ]);
    let path = file("unseen.jsonl", &text);
    let (code, out, _) = check(&["check", &path, "--json"]);
    assert_eq!(code, EXIT_INVALID);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON document");
    assert_eq!(v["valid"], false);
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["anomalies"]["unseen"]["count"], 1);
    assert_eq!(v["anomalies"]["unseen"]["cases"][0]["ops"][0], 1);
}

#[test]
fn non_linearizable_log_exits_1_with_a_witness() {
    // A poll reads value 3 at offset 1, where the acknowledged send of 2 landed before the poll
    // began: no order of these operations explains it.
    let text = jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "send", &send("t-0", 2)),
        ("ok", 1, "send", &sent("t-0", 1, 2)),
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(0, 1)])),
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(1, 3)])),
    ]);
    let path = file("nonlinear.jsonl", &text);
    let (code, out, _) = check(&[&path, "--linearizable", "--json"]);
    assert_eq!(code, EXIT_INVALID, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["linearizability"][0]["verdict"], "not-linearizable");
    let witness = v["linearizability"][0]["failures"][0]["witness"]
        .as_array()
        .expect("list");
    assert!(!witness.is_empty() && witness.len() <= 2, "{witness:?}");
}

#[test]
fn exhausted_budget_exits_2() {
    let path = file("budget.jsonl", &valid_text());
    let (code, out, _) = check(&[&path, "--linearizable", "--states-max", "1"]);
    assert_eq!(code, EXIT_UNKNOWN, "{out}");
    assert!(out.contains("verdict: unknown"), "{out}");
}

#[test]
fn bad_input_exits_3_naming_the_line() {
    let text = valid_text() + "{\"index\":9,\"type\":\"ok\",\"process\":7,\"time\":99,\"f\":\"poll\",\"value\":[[\"poll\",{}]]}\n";
    let path = file("orphan.jsonl", &text);
    let (code, _, err) = check(&["check", &path]);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(
        err.contains("line 5") && err.contains("without an outstanding invoke"),
        "{err}"
    );
    let (code, _, err) = check(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = check(&["check", "--frobnicate"]);
    assert_eq!(code, EXIT_BAD_INPUT);
    assert!(err.contains("unknown flag"), "{err}");
}
