//! Epochs: a bump restarts the sequence at 0; an older epoch is fenced.
#![allow(clippy::unwrap_used)]

use broker::producer_state::{
    Decision, LoggedBatch, ProducerError, ProducerIdAllocator, ProducerStateTable,
    ERROR_CODE_INVALID_PRODUCER_EPOCH,
};
use wire::{BrokerId, Offset};

fn batch(epoch: i16, base: i32, last: i32, first_offset: i64) -> LoggedBatch {
    LoggedBatch {
        producer_id: 5,
        producer_epoch: epoch,
        base_sequence: base,
        last_sequence: last,
        first_offset: Offset(first_offset),
        last_offset: Offset(first_offset + i64::from(last - base)),
    }
}

#[test]
fn a_new_epoch_starts_at_sequence_zero() {
    let mut table = ProducerStateTable::default();
    table.record(batch(0, 0, 9, 0));
    assert_eq!(
        table.check(5, 1, 10, 1),
        Err(ProducerError::OutOfOrderSequence {
            expected: 0,
            received: 10
        })
    );
    assert_eq!(table.check(5, 1, 0, 1), Ok(Decision::Append));
    table.record(batch(1, 0, 0, 10));
    let entry = table.producer(5).unwrap();
    assert_eq!(entry.epoch, 1);
    assert_eq!(
        entry.batches.len(),
        1,
        "the old epoch's batches are dropped"
    );
    table.check_invariants();
}

#[test]
fn an_older_epoch_is_fenced() {
    let mut table = ProducerStateTable::default();
    table.record(batch(0, 0, 0, 0));
    table.record(batch(2, 0, 0, 1));
    let refusal = table.check(5, 1, 1, 1).unwrap_err();
    assert_eq!(
        refusal,
        ProducerError::InvalidProducerEpoch {
            current: 2,
            received: 1
        }
    );
    assert_eq!(refusal.error_code(), ERROR_CODE_INVALID_PRODUCER_EPOCH);
    // Even an exact retry of the fenced epoch's batch is refused, not answered as a duplicate.
    assert!(table.check(5, 0, 0, 1).is_err());
}

#[test]
fn allocator_ids_carry_broker_and_incarnation() {
    let mut allocator = ProducerIdAllocator::new(BrokerId(3), 0x1_0002);
    assert_eq!(allocator.next(), Ok(((3 << 48) | (2 << 32), 0)));
    assert_eq!(allocator.next(), Ok(((3 << 48) | (2 << 32) | 1, 0)));
    let mut other = ProducerIdAllocator::new(BrokerId(4), 0x1_0002);
    assert_ne!(other.next().unwrap().0, (3 << 48) | (2 << 32));
}

#[test]
fn allocator_ids_stay_positive_at_the_top_of_the_layout() {
    let mut allocator = ProducerIdAllocator::new(BrokerId(0x7fff), 0xffff);
    let mut last = 0;
    for _ in 0..1000 {
        last = allocator.next().unwrap().0;
    }
    assert!(last > 0);
    assert_eq!(last, (0x7fff << 48) | (0xffff << 32) | 999);
}
