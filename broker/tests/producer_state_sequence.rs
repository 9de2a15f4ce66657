//! Out-of-order sequences and unknown producers.
#![allow(clippy::unwrap_used)]

use broker::producer_state::{
    Decision, LoggedBatch, ProducerError, ProducerStateTable,
    ERROR_CODE_OUT_OF_ORDER_SEQUENCE_NUMBER, ERROR_CODE_UNKNOWN_PRODUCER_ID,
};
use wire::Offset;

fn batch(producer_id: i64, epoch: i16, base: i32, last: i32, first_offset: i64) -> LoggedBatch {
    LoggedBatch {
        producer_id,
        producer_epoch: epoch,
        base_sequence: base,
        last_sequence: last,
        first_offset: Offset(first_offset),
        last_offset: Offset(first_offset + i64::from(last - base)),
    }
}

#[test]
fn a_gap_in_the_sequence_is_refused() {
    let mut table = ProducerStateTable::default();
    table.record(batch(3, 0, 0, 4, 0));
    let refusal = table.check(3, 0, 6, 1).unwrap_err();
    assert_eq!(
        refusal,
        ProducerError::OutOfOrderSequence {
            expected: 5,
            received: 6
        }
    );
    assert_eq!(
        refusal.error_code(),
        ERROR_CODE_OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(table.check(3, 0, 5, 1), Ok(Decision::Append));
}

#[test]
fn an_unknown_producer_must_start_at_sequence_zero() {
    let table = ProducerStateTable::default();
    assert_eq!(table.check(9, 0, 0, 2), Ok(Decision::Append));
    let refusal = table.check(9, 0, 4, 2).unwrap_err();
    assert_eq!(refusal, ProducerError::UnknownProducerId);
    assert_eq!(refusal.error_code(), ERROR_CODE_UNKNOWN_PRODUCER_ID);
}

#[test]
fn malformed_headers_are_refused_not_panicked_on() {
    let table = ProducerStateTable::default();
    assert!(matches!(
        table.check(9, -1, 0, 1),
        Err(ProducerError::InvalidBatch { .. })
    ));
    assert!(matches!(
        table.check(9, 0, -5, 1),
        Err(ProducerError::InvalidBatch { .. })
    ));
    assert!(matches!(
        table.check(9, 0, 0, 0),
        Err(ProducerError::InvalidBatch { .. })
    ));
}

#[test]
fn a_full_table_forgets_the_least_recently_written_producer() {
    let mut table = ProducerStateTable::new(2);
    table.record(batch(1, 0, 0, 0, 0));
    table.record(batch(2, 0, 0, 0, 1));
    table.record(batch(1, 0, 1, 1, 2));
    table.record(batch(3, 0, 0, 0, 3));
    table.check_invariants();
    assert_eq!(table.producer_count(), 2);
    assert_eq!(table.producers_evicted(), 1);
    assert!(table.producer(2).is_none());
    assert_eq!(
        table.check(2, 0, 1, 1),
        Err(ProducerError::UnknownProducerId)
    );
    assert_eq!(table.check(1, 0, 2, 1), Ok(Decision::Append));
}

#[test]
fn idle_producers_expire_and_a_clock_stepping_back_changes_nothing() {
    let mut table = ProducerStateTable::default();
    table.advance_clock(1_000);
    table.record(batch(7, 0, 0, 0, 0));
    table.advance_clock(50_000);
    table.record(batch(8, 0, 0, 0, 1));
    table.advance_clock(10_000);
    assert_eq!(table.expire(49_001), 0, "the clock never steps back");
    assert_eq!(table.expire(40_000), 1, "idle 49 s");
    assert!(table.producer(7).is_none() && table.producer(8).is_some());
    table.advance_clock(50_000 + 86_400_000);
    assert_eq!(table.expire(86_400_000), 1);
    assert_eq!(table.producer_count(), 0);
}
