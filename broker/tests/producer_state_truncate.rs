//! Truncation and rebuild from the log.
#![allow(clippy::unwrap_used)]

use broker::producer_state::{
    Decision, LoggedBatch, ProducerError, ProducerStateTable, TruncateOutcome,
};
use wire::Offset;

fn batch(producer_id: i64, base: i32, last: i32, first_offset: i64) -> LoggedBatch {
    LoggedBatch {
        producer_id,
        producer_epoch: 0,
        base_sequence: base,
        last_sequence: last,
        first_offset: Offset(first_offset),
        last_offset: Offset(first_offset + i64::from(last - base)),
    }
}

#[test]
fn truncation_forgets_batches_at_and_after_the_offset() {
    let mut table = ProducerStateTable::default();
    table.record(batch(1, 0, 1, 0)); // offsets 0..=1
    table.record(batch(2, 0, 0, 2)); // offset 2
    table.record(batch(1, 2, 3, 3)); // offsets 3..=4
    assert_eq!(table.truncate_to(Offset(2)), TruncateOutcome::Exact);
    table.check_invariants();
    assert!(
        table.producer(2).is_none(),
        "producer 2 only had truncated batches"
    );
    assert_eq!(table.producer(1).unwrap().batches.len(), 1);
    // Producer 1 resumes after its surviving batch: the truncated retry is appended again.
    assert_eq!(table.check(1, 0, 2, 2), Ok(Decision::Append));
    assert_eq!(table.check(2, 0, 0, 1), Ok(Decision::Append));
}

#[test]
fn truncating_into_a_window_with_forgotten_history_asks_for_a_rebuild() {
    let mut table = ProducerStateTable::default();
    let log: Vec<LoggedBatch> = (0..7).map(|i| batch(1, i, i, i64::from(i))).collect();
    for b in &log {
        table.record(*b);
    }
    // Batches 0 and 1 fell out of the window; cutting at offset 2 leaves only the log knowing.
    assert_eq!(
        table.truncate_to(Offset(2)),
        TruncateOutcome::RebuildRequired
    );
    table.rebuild(log[..2].iter().copied());
    assert_eq!(table.check(1, 0, 2, 1), Ok(Decision::Append));
    assert!(matches!(
        table.check(1, 0, 1, 1),
        Ok(Decision::Duplicate { .. })
    ));
}

#[test]
fn rebuild_reproduces_the_state_of_live_recording() {
    let log = vec![
        batch(1, 0, 4, 0),
        batch(-1, -1, -1, 5),
        batch(2, 0, 0, 6),
        LoggedBatch {
            producer_epoch: 1,
            ..batch(1, 0, 1, 7)
        },
        batch(2, 1, 2, 9),
    ];
    let mut live = ProducerStateTable::default();
    for b in &log {
        live.record(*b);
    }
    let mut rebuilt = ProducerStateTable::default();
    rebuilt.record(batch(9, 0, 0, 100)); // stale state the rebuild must drop
    rebuilt.rebuild(log.iter().copied());
    for producer_id in [1, 2, 9] {
        assert_eq!(live.producer(producer_id), rebuilt.producer(producer_id));
    }
    assert_eq!(
        rebuilt.check(9, 0, 1, 1),
        Err(ProducerError::UnknownProducerId)
    );
    assert_eq!(rebuilt.check(1, 1, 2, 1), Ok(Decision::Append));
}
