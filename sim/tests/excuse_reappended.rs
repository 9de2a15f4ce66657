//! The checker's one excuse for a stale copy appended again (seed 140863, session 23): a
//! duplicate or order anomaly of the copy's values is dropped only when every batch its
//! producer had acknowledged on the partition lies below the log start seen by the end of the
//! run (a leader that started over there lost the producer, as Kafka's
//! `truncateFullyAndStartAt` does). The seed itself no longer reaches the case since the
//! journal shifted every run (session 24: none of seeds 185001–205000 did), so this pins the
//! rule directly.
#![allow(clippy::unwrap_used)]

use jepsen::queue::{Anomaly, AnomalyClass, ClassReport, QueueReport};
use sim::cluster::excuse_reappended;
use sim::cluster::record::Reappended;
use std::collections::BTreeMap;

fn report_with_duplicate(values: Vec<i64>) -> QueueReport {
    let mut anomalies = BTreeMap::new();
    anomalies.insert(
        AnomalyClass::Duplicate,
        ClassReport {
            count: 1,
            allowed: false,
            cases: vec![Anomaly {
                key: Some("t-0".into()),
                values,
                ops: vec![1, 2],
                detail: "read twice".into(),
            }],
        },
    );
    QueueReport {
        valid: false,
        anomalies,
        stats: Default::default(),
    }
}

fn copy(producer_last_offset: i64) -> Reappended {
    Reappended {
        key: "t-0".into(),
        producer_last_offset,
        values: vec![7],
    }
}

#[test]
fn a_copy_whose_producer_lies_below_the_log_start_is_excused() {
    let mut report = report_with_duplicate(vec![7]);
    let starts = BTreeMap::from([("t-0".to_string(), 10)]);
    excuse_reappended(&mut report, &[copy(9)], &starts);
    assert!(report.valid, "{report:?}");
    assert!(report.anomalies.is_empty());
}

#[test]
fn a_copy_whose_producer_the_leader_still_holds_is_not() {
    let starts = BTreeMap::from([("t-0".to_string(), 10)]);
    for last in [10, 11, i64::MAX] {
        let mut report = report_with_duplicate(vec![7]);
        excuse_reappended(&mut report, &[copy(last)], &starts);
        assert!(!report.valid, "producer's last batch at {last}");
    }
}

#[test]
fn only_the_copys_own_values_are_excused() {
    let mut report = report_with_duplicate(vec![8]);
    let starts = BTreeMap::from([("t-0".to_string(), 10)]);
    excuse_reappended(&mut report, &[copy(9)], &starts);
    assert!(!report.valid, "another value's duplicate stays");
}
