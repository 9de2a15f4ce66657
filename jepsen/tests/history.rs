//! The history format: parsing errors name the line and the problem; recorder round trips.

mod common;

use common::{jsonl, send, sent, POLL};
use jepsen::history::{History, HistoryRecorder, MicroOp, OpFn, OpType, OpValue};
use jepsen::HistoryError;

fn error_of(text: &str) -> HistoryError {
    History::parse_str(text).expect_err("history must be refused")
}

#[test]
fn malformed_json_names_the_line() {
    let text = jsonl(&[("invoke", 0, "send", &send("t-0", 1))]) + "{\"index\": 1, oops\n";
    let e = error_of(&text);
    assert_eq!(e.line(), 2);
    assert!(matches!(e, HistoryError::MalformedJson { .. }), "{e}");
    assert!(e.to_string().starts_with("line 2: malformed JSON"), "{e}");
}

#[test]
fn unknown_type_and_f_are_refused() {
    let e = error_of(&jsonl(&[("done", 0, "send", &send("t-0", 1))]));
    assert_eq!(e.line(), 1);
    assert!(e.to_string().contains("unknown type \"done\""), "{e}");
    let e = error_of(&jsonl(&[("invoke", 0, "produce", &send("t-0", 1))]));
    assert!(e.to_string().contains("unknown f \"produce\""), "{e}");
}

#[test]
fn completion_without_invoke_is_refused() {
    let text = jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("ok", 1, "poll", "[[\"poll\",{}]]"),
    ]);
    let e = error_of(&text);
    assert_eq!(e.line(), 3);
    assert!(
        e.to_string().contains("without an outstanding invoke"),
        "{e}"
    );
}

#[test]
fn two_outstanding_invokes_are_refused() {
    let text = jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("invoke", 0, "poll", POLL),
    ]);
    let e = error_of(&text);
    assert_eq!(e.line(), 2);
    assert!(e.to_string().contains("invokes again"), "{e}");
}

#[test]
fn mismatched_completions_are_refused() {
    // Wrong f.
    let e = error_of(&jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "poll", POLL),
    ]));
    assert!(e.to_string().contains("whose f is send"), "{e}");
    // Ok send without an offset.
    let e = error_of(&jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &send("t-0", 1)),
    ]));
    assert!(e.to_string().contains("must carry its offset"), "{e}");
    // Ok send of another value.
    let e = error_of(&jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 2)),
    ]));
    assert!(e.to_string().contains("does not match"), "{e}");
    // Indexes must increase.
    let text = "{\"index\":5,\"type\":\"invoke\",\"process\":0,\"time\":0,\"f\":\"poll\",\"value\":[[\"poll\"]]}\n\
                {\"index\":5,\"type\":\"ok\",\"process\":0,\"time\":0,\"f\":\"poll\",\"value\":[[\"poll\",{}]]}\n";
    assert!(error_of(text)
        .to_string()
        .contains("index 5 is not greater"));
    // Missing fields and bad micro-ops.
    let e = error_of(
        "{\"index\":0,\"type\":\"invoke\",\"time\":0,\"f\":\"poll\",\"value\":[[\"poll\"]]}",
    );
    assert!(e.to_string().contains("missing field \"process\""), "{e}");
    let e = error_of(&jsonl(&[("invoke", 0, "send", "[[\"append\",\"t-0\",1]]")]));
    assert!(
        e.to_string()
            .contains("micro-op 0: unknown micro-op \"append\""),
        "{e}"
    );
}

#[test]
fn blank_lines_are_skipped_and_line_numbers_still_count_them() {
    let text = "\n".to_string() + &jsonl(&[("ok", 0, "send", &sent("t-0", 0, 1))]);
    assert_eq!(error_of(&text).line(), 2);
}

#[test]
fn recorder_round_trips_through_jsonl() {
    let mut rec = HistoryRecorder::new();
    let t0 = rec.key("t-0");
    let send = |offset| {
        OpValue::Mops(vec![MicroOp::Send {
            key: t0,
            value: 7,
            offset,
        }])
    };
    assert_eq!(
        rec.invoke(3, 100, OpFn::Send, send(None)).expect("valid"),
        0
    );
    assert_eq!(
        rec.complete(3, 150, OpType::Ok, send(Some(0)))
            .expect("valid"),
        1
    );
    rec.invoke(
        4,
        160,
        OpFn::Poll,
        OpValue::Mops(vec![MicroOp::Poll { reads: None }]),
    )
    .expect("valid");
    let reads = vec![MicroOp::Poll {
        reads: Some(vec![(t0, vec![(0, 7)])]),
    }];
    rec.complete_rebalanced(4, 170, OpType::Ok, OpValue::Mops(reads), vec![t0])
        .expect("valid");
    rec.invoke(5, 180, OpFn::Subscribe, OpValue::Keys(vec![t0]))
        .expect("valid");
    // A second invoke for process 5 is refused, and nothing is recorded.
    assert!(rec
        .invoke(5, 190, OpFn::Poll, OpValue::Mops(vec![]))
        .is_err());
    assert!(rec
        .complete(6, 190, OpType::Ok, OpValue::Keys(vec![]))
        .is_err());
    let history = rec.into_history();
    assert_eq!(history.len(), 5);
    let mut out = Vec::new();
    history.write_jsonl(&mut out).expect("in memory");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.contains("[\"send\",\"t-0\",[0,7]]"), "{text}");
    let parsed = History::parse_str(&text).expect("a recorded history parses");
    let strip = |h: &History| -> Vec<_> {
        h.ops()
            .iter()
            .map(|o| {
                let mut o = o.clone();
                o.line = 0;
                o
            })
            .collect()
    };
    assert_eq!(strip(&parsed), strip(&history));
    assert_eq!(
        parsed.outcome(4),
        OpType::Info,
        "an invoke that never completed counts as info"
    );
}

#[test]
fn nemesis_events_are_kept_apart_and_ordered() {
    let text = r#"{"index":0,"type":"invoke","process":0,"time":10,"f":"send","value":[["send","t-0",1]]}
{"index":1,"type":"info","process":"nemesis","time":12,"f":"kill","value":{"kind":"kill","node":2}}
{"index":2,"type":"ok","process":0,"time":25,"f":"send","value":[["send","t-0",[0,1]]]}
{"index":3,"type":"info","process":"nemesis","time":30,"f":"heal","value":{"kind":"kill","node":2}}
"#;
    let history = History::parse_str(text).expect("a history with nemesis events parses");
    assert_eq!(history.len(), 2, "the nemesis events are not operations");
    let nemesis = history.nemesis();
    assert_eq!(nemesis.len(), 2);
    assert_eq!(
        (nemesis[0].index, nemesis[0].time, nemesis[0].f.as_str()),
        (1, 12, "kill")
    );
    assert_eq!(nemesis[1].f, "heal");
    assert_eq!(nemesis[1].value["node"], 2);
    // A nemesis event out of sequence is refused like an operation out of sequence.
    let backwards = r#"{"index":5,"type":"invoke","process":0,"time":10,"f":"poll","value":[["poll"]]}
{"index":4,"type":"info","process":"nemesis","time":12,"f":"kill","value":{}}
"#;
    assert!(matches!(
        error_of(backwards),
        HistoryError::Inconsistent { line: 2, .. }
    ));
    let early = r#"{"index":1,"type":"info","process":"nemesis","time":12,"f":"kill","value":{}}
{"index":2,"type":"invoke","process":0,"time":10,"f":"poll","value":[["poll"]]}
"#;
    assert!(matches!(
        error_of(early),
        HistoryError::Inconsistent { line: 2, .. }
    ));
}
