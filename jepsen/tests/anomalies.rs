//! One hand-made history per anomaly class, each asserting the class and the operations that
//! prove it, plus a valid history asserting none.

mod common;

use common::{hist, polled, send, sent, POLL};
use jepsen::history::History;
use jepsen::queue::{check, AnomalyClass, QueueOptions, QueueReport};

fn run(h: &History) -> QueueReport {
    check(h, &QueueOptions::default())
}

/// The proving ops of the first case of `class`.
fn ops(report: &QueueReport, class: AnomalyClass) -> Vec<u64> {
    let cases = report.cases(class);
    assert!(
        !cases.is_empty(),
        "expected {class}, got {:?}",
        report.anomalies.keys()
    );
    cases[0].ops.clone()
}

fn classes(report: &QueueReport) -> Vec<AnomalyClass> {
    report.anomalies.keys().copied().collect()
}

#[test]
fn valid_history_has_no_anomaly() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 0, "send", &send("t-0", 2)),
        ("invoke", 1, "poll", POLL),
        ("ok", 0, "send", &sent("t-0", 1, 2)),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(1, 2)])),
        // An info send that never shows up is not lost.
        ("invoke", 2, "send", &send("t-0", 3)),
        ("info", 2, "send", "null"),
        // A failed send that never shows up is fine.
        ("invoke", 3, "send", &send("t-0", 4)),
        ("fail", 3, "send", &send("t-0", 4)),
    ]);
    let report = run(&h);
    assert!(report.valid);
    assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
    assert_eq!(report.stats.values_sent_ok, 2);
    assert_eq!(report.stats.values_read, 2);
}

#[test]
fn lost_write() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 0, "send", &send("t-0", 2)),
        ("ok", 0, "send", &sent("t-0", 1, 2)), // 3: writer of the lost value
        ("invoke", 0, "send", &send("t-0", 3)),
        ("ok", 0, "send", &sent("t-0", 2, 3)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(2, 3)])), // 9: read past the lost value
    ]);
    let report = run(&h);
    assert!(!report.valid);
    assert_eq!(ops(&report, AnomalyClass::LostWrite), vec![3, 9]);
    assert_eq!(report.cases(AnomalyClass::LostWrite)[0].values, vec![2, 3]);
    assert_eq!(report.anomalies[&AnomalyClass::LostWrite].count, 1);
}

#[test]
fn info_send_is_never_lost() {
    // The info send of 2 has no known offset and nobody read it: it may never have happened.
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "send", &send("t-0", 2)),
        ("info", 1, "send", &send("t-0", 2)),
        ("invoke", 2, "send", &send("t-0", 3)),
        ("ok", 2, "send", &sent("t-0", 2, 3)),
        ("invoke", 3, "poll", POLL),
        ("ok", 3, "poll", &polled("t-0", &[(0, 1), (2, 3)])),
    ]);
    let report = run(&h);
    // Not lost, not unseen (only ok sends can be), and the poll skipped nothing known.
    assert!(report.valid, "{:?}", report.anomalies);
}

#[test]
fn duplicate() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1), (1, 1)])),
    ]);
    let report = run(&h);
    assert_eq!(ops(&report, AnomalyClass::Duplicate), vec![1, 3]);
    assert_eq!(report.cases(AnomalyClass::Duplicate)[0].values, vec![1]);
    assert!(!report.valid);
}

#[test]
fn inconsistent_offsets() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "send", &send("t-0", 2)),
        ("ok", 1, "send", &sent("t-0", 0, 2)),
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(0, 1)])),
    ]);
    let report = run(&h);
    assert_eq!(ops(&report, AnomalyClass::InconsistentOffsets), vec![1, 3]);
    assert_eq!(
        report.cases(AnomalyClass::InconsistentOffsets)[0].values,
        vec![1, 2]
    );
    assert!(!report.valid);
}

#[test]
fn unseen() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", "[[\"poll\",{}]]"),
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::Unseen]);
    assert_eq!(ops(&report, AnomalyClass::Unseen), vec![1]);
    assert!(!report.valid);
}

/// Three ok sends 1, 2, 3 at offsets 0, 1, 2 (ops 1, 3, 5) and a process 9 that reads them all.
fn three_sends() -> Vec<(&'static str, u64, &'static str, String)> {
    vec![
        ("invoke", 0, "send", send("t-0", 1)),
        ("ok", 0, "send", sent("t-0", 0, 1)),
        ("invoke", 0, "send", send("t-0", 2)),
        ("ok", 0, "send", sent("t-0", 1, 2)),
        ("invoke", 0, "send", send("t-0", 3)),
        ("ok", 0, "send", sent("t-0", 2, 3)),
        ("invoke", 9, "poll", POLL.to_string()),
        ("ok", 9, "poll", polled("t-0", &[(0, 1), (1, 2), (2, 3)])),
    ]
}

fn with(
    mut base: Vec<(&'static str, u64, &'static str, String)>,
    more: &[(&'static str, u64, &'static str, String)],
) -> History {
    base.extend_from_slice(more);
    let events: Vec<(&str, u64, &str, &str)> = base
        .iter()
        .map(|(t, p, f, v)| (*t, *p, *f, v.as_str()))
        .collect();
    hist(&events)
}

#[test]
fn poll_skip() {
    let h = with(
        three_sends(),
        &[
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(0, 1)])), // 9
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(2, 3)])), // 11
        ],
    );
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::PollSkip]);
    assert_eq!(ops(&report, AnomalyClass::PollSkip), vec![9, 11]);
    assert_eq!(
        report.cases(AnomalyClass::PollSkip)[0].values,
        vec![1, 3, 2]
    );
    assert!(!report.valid);
    // Subscribe mode: a rebalance may have moved the consumer; reported but allowed.
    let sub = check(
        &h,
        &QueueOptions {
            subscribe: true,
            ..QueueOptions::default()
        },
    );
    assert!(sub.valid);
    assert!(sub.anomalies[&AnomalyClass::PollSkip].allowed);
}

#[test]
fn poll_skip_forgotten_after_reassign_and_rebalance() {
    // Process 1 drops t-0 by assigning [] then takes it back: positions restart, no skip.
    let h = with(
        three_sends(),
        &[
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(0, 1)])),
            ("invoke", 1, "assign", "[]".into()),
            ("ok", 1, "assign", "[]".into()),
            ("invoke", 1, "assign", "[\"t-0\"]".into()),
            ("ok", 1, "assign", "[\"t-0\"]".into()),
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(2, 3)])),
        ],
    );
    assert!(run(&h).valid, "{:?}", run(&h).anomalies);
    // A rebalance during the poll excuses the jump too.
    let text = common::jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 0, "send", &send("t-0", 2)),
        ("ok", 0, "send", &sent("t-0", 1, 2)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(1, 2)])),
        ("invoke", 1, "poll", POLL),
    ]) + "{\"index\":7,\"type\":\"ok\",\"process\":1,\"time\":70,\"f\":\"poll\",\"value\":[[\"poll\",{\"t-0\":[[0,1]]}]],\"rebalance-log\":[{\"keys\":[\"t-0\"]}]}\n";
    let h = History::parse_str(&text).expect("valid");
    assert!(run(&h).valid, "{:?}", run(&h).anomalies);
}

#[test]
fn a_rebalance_during_an_empty_poll_forgets_the_position_too() {
    // librdkafka takes an assignment back inside a poll that returns nothing; the next poll reads
    // from the group's committed offset, far ahead. Seen on real processes (issue 16).
    let mut text = common::jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 0, "send", &send("t-0", 2)),
        ("ok", 0, "send", &sent("t-0", 1, 2)),
        ("invoke", 0, "send", &send("t-0", 3)),
        ("ok", 0, "send", &sent("t-0", 2, 3)),
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(1, 2)])),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
        ("invoke", 1, "poll", POLL),
    ]);
    text += "{\"index\":11,\"type\":\"ok\",\"process\":1,\"time\":110,\"f\":\"poll\",\"value\":[[\"poll\",{}]],\"rebalance-log\":[{\"keys\":[\"t-0\"]}]}\n";
    text += "{\"index\":12,\"type\":\"invoke\",\"process\":1,\"time\":120,\"f\":\"poll\",\"value\":[[\"poll\"]]}\n";
    text += "{\"index\":13,\"type\":\"ok\",\"process\":1,\"time\":130,\"f\":\"poll\",\"value\":[[\"poll\",{\"t-0\":[[2,3]]}]]}\n";
    let h = History::parse_str(&text).expect("valid");
    let report = run(&h);
    assert!(report.valid, "{:?}", report.anomalies);
    // Without the rebalance the same jump is a poll-skip.
    let h = History::parse_str(&text.replace(",\"rebalance-log\":[{\"keys\":[\"t-0\"]}]", ""))
        .expect("valid");
    assert!(classes(&run(&h)).contains(&AnomalyClass::PollSkip));
}

#[test]
fn int_poll_skip() {
    let h = with(
        three_sends(),
        &[
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(0, 1), (2, 3)])), // 9
        ],
    );
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::IntPollSkip]);
    assert_eq!(ops(&report, AnomalyClass::IntPollSkip), vec![9]);
    assert!(!report.valid);
}

#[test]
fn nonmonotonic_poll() {
    let h = with(
        three_sends(),
        &[
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(0, 1), (1, 2)])), // 9
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(1, 2), (2, 3)])), // 11
        ],
    );
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::NonmonotonicPoll]);
    assert_eq!(ops(&report, AnomalyClass::NonmonotonicPoll), vec![9, 11]);
    assert_eq!(
        report.cases(AnomalyClass::NonmonotonicPoll)[0].values,
        vec![2, 2]
    );
    assert!(!report.valid);
}

#[test]
fn seek_to_beginning_excuses_a_rewind() {
    let text = common::jsonl(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
        ("invoke", 1, "assign", "[\"t-0\"]"),
    ]) + "{\"index\":5,\"type\":\"ok\",\"process\":1,\"time\":50,\"f\":\"assign\",\"value\":[\"t-0\"],\"seek-to-beginning\":true}\n"
        + "{\"index\":6,\"type\":\"invoke\",\"process\":1,\"time\":60,\"f\":\"poll\",\"value\":[[\"poll\"]]}\n"
        + "{\"index\":7,\"type\":\"ok\",\"process\":1,\"time\":70,\"f\":\"poll\",\"value\":[[\"poll\",{\"t-0\":[[0,1]]}]]}\n";
    let h = History::parse_str(&text).expect("valid");
    assert!(run(&h).valid, "{:?}", run(&h).anomalies);
}

#[test]
fn int_nonmonotonic_poll() {
    let h = with(
        three_sends(),
        &[
            ("invoke", 1, "poll", POLL.into()),
            ("ok", 1, "poll", polled("t-0", &[(1, 2), (0, 1)])), // 9
        ],
    );
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::IntNonmonotonicPoll]);
    assert_eq!(ops(&report, AnomalyClass::IntNonmonotonicPoll), vec![9]);
    assert_eq!(
        report.cases(AnomalyClass::IntNonmonotonicPoll)[0].values,
        vec![2, 1]
    );
}

#[test]
fn nonmonotonic_send() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 1, 1)), // 1
        ("invoke", 0, "send", &send("t-0", 2)),
        ("ok", 0, "send", &sent("t-0", 0, 2)), // 3: lands before the process's earlier send
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 2), (1, 1)])),
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::NonmonotonicSend]);
    assert_eq!(ops(&report, AnomalyClass::NonmonotonicSend), vec![1, 3]);
    assert!(!report.valid);
}

#[test]
fn int_nonmonotonic_send() {
    let h = hist(&[
        (
            "invoke",
            0,
            "send",
            "[[\"send\",\"t-0\",1],[\"send\",\"t-0\",2]]",
        ),
        (
            "ok",
            0,
            "send",
            "[[\"send\",\"t-0\",[1,1]],[\"send\",\"t-0\",[0,2]]]",
        ), // 1
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 2), (1, 1)])),
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::IntNonmonotonicSend]);
    assert_eq!(ops(&report, AnomalyClass::IntNonmonotonicSend), vec![1]);
    assert_eq!(
        report.cases(AnomalyClass::IntNonmonotonicSend)[0].values,
        vec![1, 2]
    );
    assert!(!report.valid);
}

#[test]
fn int_send_skip_is_reported_and_allowed() {
    let h = hist(&[
        (
            "invoke",
            0,
            "send",
            "[[\"send\",\"t-0\",1],[\"send\",\"t-0\",3]]",
        ),
        ("invoke", 1, "send", &send("t-0", 2)),
        ("ok", 1, "send", &sent("t-0", 1, 2)),
        (
            "ok",
            0,
            "send",
            "[[\"send\",\"t-0\",[0,1]],[\"send\",\"t-0\",[2,3]]]",
        ), // 3
        ("invoke", 2, "poll", POLL),
        ("ok", 2, "poll", &polled("t-0", &[(0, 1), (1, 2), (2, 3)])),
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::IntSendSkip]);
    assert_eq!(ops(&report, AnomalyClass::IntSendSkip), vec![3]);
    assert_eq!(
        report.cases(AnomalyClass::IntSendSkip)[0].values,
        vec![1, 3, 2]
    );
    // Jepsen: producers interleave, so this is normal Kafka behaviour.
    assert!(report.anomalies[&AnomalyClass::IntSendSkip].allowed);
    assert!(report.valid);
}

#[test]
fn g0_write_cycle_with_ww_deps() {
    let h = hist(&[
        (
            "invoke",
            0,
            "send",
            "[[\"send\",\"t-0\",1],[\"send\",\"t-1\",4]]",
        ),
        (
            "invoke",
            1,
            "send",
            "[[\"send\",\"t-0\",2],[\"send\",\"t-1\",3]]",
        ),
        (
            "ok",
            0,
            "send",
            "[[\"send\",\"t-0\",[0,1]],[\"send\",\"t-1\",[1,4]]]",
        ), // 2
        (
            "ok",
            1,
            "send",
            "[[\"send\",\"t-0\",[1,2]],[\"send\",\"t-1\",[0,3]]]",
        ), // 3
        ("invoke", 2, "poll", POLL),
        (
            "ok",
            2,
            "poll",
            "[[\"poll\",{\"t-0\":[[0,1],[1,2]],\"t-1\":[[0,3],[1,4]]}]]",
        ),
    ]);
    // Without ww-deps (Jepsen's default) there is no write-write edge, so no cycle.
    assert!(run(&h).anomalies.is_empty(), "{:?}", run(&h).anomalies);
    let report = check(
        &h,
        &QueueOptions {
            ww_deps: true,
            ..QueueOptions::default()
        },
    );
    let mut cycle = ops(&report, AnomalyClass::G0);
    cycle.sort_unstable();
    assert_eq!(cycle, vec![2, 3]);
    assert!(
        report.anomalies[&AnomalyClass::G0].allowed,
        "Kafka does not isolate writes"
    );
    assert!(!report.anomalies.contains_key(&AnomalyClass::G1c));
}

#[test]
fn g1a_aborted_read() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("fail", 0, "send", "[[\"send\",\"t-0\",[null,1]]]"), // 1
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])), // 3
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::G1a]);
    assert_eq!(ops(&report, AnomalyClass::G1a), vec![1, 3]);
    assert!(!report.valid);
}

#[test]
fn g1c_circular_information_flow() {
    let h = hist(&[
        ("invoke", 0, "txn", "[[\"send\",\"t-0\",1],[\"poll\"]]"),
        ("invoke", 1, "txn", "[[\"send\",\"t-1\",2],[\"poll\"]]"),
        (
            "ok",
            0,
            "txn",
            "[[\"send\",\"t-0\",[0,1]],[\"poll\",{\"t-1\":[[0,2]]}]]",
        ), // 2
        (
            "ok",
            1,
            "txn",
            "[[\"send\",\"t-1\",[0,2]],[\"poll\",{\"t-0\":[[0,1]]}]]",
        ), // 3
    ]);
    let report = run(&h);
    assert_eq!(classes(&report), vec![AnomalyClass::G1c]);
    let mut cycle = ops(&report, AnomalyClass::G1c);
    cycle.sort_unstable();
    assert_eq!(cycle, vec![2, 3]);
    assert!(!report.valid);
    assert!(report.cases(AnomalyClass::G1c)[0].detail.contains("-wr"));
}

#[test]
fn every_class_has_a_test_above() {
    // Names are Jepsen's, and round-trip.
    for class in AnomalyClass::ALL {
        assert_eq!(AnomalyClass::from_name(class.name()), Some(class));
    }
    assert_eq!(AnomalyClass::ALL.len(), 14);
}

/// Retention: records below the log start observed at the end may be gone before anyone read
/// them. Neither the unread records nor the consumer's jump over them (a reset to the earliest
/// offset) is an anomaly; a record at or above the log start that nobody read still is.
#[test]
fn records_below_the_log_start_are_not_lost_and_jumping_over_them_is_not_a_skip() {
    let h = hist(&[
        ("invoke", 0, "send", &send("t-0", 1)),
        ("ok", 0, "send", &sent("t-0", 0, 1)),
        ("invoke", 0, "send", &send("t-0", 2)),
        ("ok", 0, "send", &sent("t-0", 1, 2)),
        ("invoke", 0, "send", &send("t-0", 3)),
        ("ok", 0, "send", &sent("t-0", 2, 3)),
        ("invoke", 0, "send", &send("t-0", 4)),
        ("ok", 0, "send", &sent("t-0", 3, 4)),
        ("invoke", 0, "send", &send("t-0", 5)),
        ("ok", 0, "send", &sent("t-0", 4, 5)),
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(0, 1)])),
        // Retention moved the log start to 3: the consumer was reset there.
        ("invoke", 1, "poll", POLL),
        ("ok", 1, "poll", &polled("t-0", &[(3, 4), (4, 5)])),
    ]);
    let unaware = run(&h);
    assert!(classes(&unaware).contains(&AnomalyClass::LostWrite));
    assert!(classes(&unaware).contains(&AnomalyClass::PollSkip));
    let options = |start: u64| QueueOptions {
        log_starts: [("t-0".to_string(), start)].into_iter().collect(),
        ..QueueOptions::default()
    };
    let aware = check(&h, &options(3));
    assert!(aware.valid, "{:?}", aware.anomalies);
    assert!(aware.anomalies.is_empty(), "{:?}", aware.anomalies);
    // A log start of 2 leaves offset 2 in the log: never read, it is lost, and the jump over it
    // a skip.
    let partly = check(&h, &options(2));
    assert_eq!(ops(&partly, AnomalyClass::LostWrite), vec![5, 13]);
    assert_eq!(partly.cases(AnomalyClass::LostWrite)[0].values, vec![3, 5]);
    assert!(classes(&partly).contains(&AnomalyClass::PollSkip));
    // Unseen: only the value still in the log (offset 1, below the start, is not).
    let unseen: Vec<Vec<i64>> = partly
        .cases(AnomalyClass::Unseen)
        .iter()
        .map(|c| c.values.clone())
        .collect();
    assert_eq!(unseen, vec![vec![3]]);
}
