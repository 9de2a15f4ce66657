//! Duplicate detection: a retry of one of the last five batches is answered with its offsets.
#![allow(clippy::unwrap_used)]

use broker::producer_state::{
    sequence_add, Decision, LoggedBatch, ProducerError, ProducerStateTable, BATCHES_RETAINED_MAX,
};
use wire::Offset;

/// Appends `count` batches of `size` records for producer 7 epoch 0, starting at sequence 0 and
/// offset 0, checking each first as a leader does.
fn append_batches(table: &mut ProducerStateTable, count: i32, size: i32) {
    for i in 0..count {
        let base_sequence = i * size;
        assert_eq!(table.check(7, 0, base_sequence, size), Ok(Decision::Append));
        table.record(LoggedBatch {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence,
            last_sequence: base_sequence + size - 1,
            first_offset: Offset(i64::from(base_sequence)),
            last_offset: Offset(i64::from(base_sequence + size - 1)),
        });
        table.check_invariants();
    }
}

#[test]
fn retry_of_a_retained_batch_is_a_duplicate_with_original_offsets() {
    let mut table = ProducerStateTable::default();
    append_batches(&mut table, 3, 10);
    assert_eq!(
        table.check(7, 0, 10, 10),
        Ok(Decision::Duplicate {
            first_offset: Offset(10),
            last_offset: Offset(19)
        })
    );
    // The next batch in line is still accepted.
    assert_eq!(table.check(7, 0, 30, 10), Ok(Decision::Append));
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut table = ProducerStateTable::default();
    append_batches(&mut table, 8, 2);
    let entry = table.producer(7).unwrap();
    assert_eq!(entry.batches.len(), BATCHES_RETAINED_MAX);
    assert_eq!(entry.batches[0].first_sequence, 6);
    // Batch 3 (sequences 6..=7) is the oldest retained one; batch 2 fell out of the window.
    assert!(matches!(
        table.check(7, 0, 6, 2),
        Ok(Decision::Duplicate { .. })
    ));
    assert_eq!(
        table.check(7, 0, 4, 2),
        Err(ProducerError::OutOfOrderSequence {
            expected: 16,
            received: 4
        })
    );
}

#[test]
fn a_retry_with_a_different_record_count_is_not_a_duplicate() {
    let mut table = ProducerStateTable::default();
    append_batches(&mut table, 2, 10);
    assert!(matches!(
        table.check(7, 0, 10, 5),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn non_idempotent_batches_are_always_appended() {
    let mut table = ProducerStateTable::default();
    assert_eq!(table.check(-1, -1, -1, 3), Ok(Decision::Append));
    table.record(LoggedBatch {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        last_sequence: -1,
        first_offset: Offset(0),
        last_offset: Offset(2),
    });
    assert_eq!(table.producer_count(), 0);
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(sequence_add(i32::MAX, 1), 0);
    assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
    let mut table = ProducerStateTable::default();
    table.record(LoggedBatch {
        producer_id: 1,
        producer_epoch: 0,
        base_sequence: i32::MAX - 1,
        last_sequence: i32::MAX,
        first_offset: Offset(0),
        last_offset: Offset(1),
    });
    assert_eq!(table.check(1, 0, 0, 4), Ok(Decision::Append));
    assert!(matches!(
        table.check(1, 0, i32::MAX - 1, 2),
        Ok(Decision::Duplicate { .. })
    ));
}
