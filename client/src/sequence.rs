//! Idempotent-producer bookkeeping for one partition: which producer id/epoch and base sequence
//! a batch carries, and what a batch's outcome does to the next one.
//!
//! Batches are stamped in the order they leave, each with the sequence after the previous one,
//! so up to `max_in_flight` of them can be in flight at once (the broker remembers the last five
//! per producer). A retry resends the *same* batch with the *same* base sequence, so the broker
//! deduplicates it. When a batch is given up (its outcome unknown, or refused for good), or a
//! refusal shows the broker's idea of our sequence differs from ours, the partition starts over:
//! reusing the base could make the broker treat a new batch as a duplicate of the lost one, and
//! advancing it could leave a gap the broker refuses forever. Starting over bumps the epoch of the same producer id locally (the
//! Java producer's idempotent epoch bump, KIP-360) rather than fetching a new id: the broker then
//! fences the abandoned batch if it arrives late, after newer ones. With a new id it would be
//! appended behind them, and the producer's sends would land out of order (the cluster
//! simulation found this: Jepsen's `nonmonotonic-send`).

/// A producer id and epoch handed out by InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The broker-assigned producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
}

/// The sequence state of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSequence {
    /// Identity batches are stamped with; `None` until one is fetched.
    identity: Option<ProducerIdentity>,
    /// Base sequence of the next new batch.
    next: i32,
    /// Set when the identity must be replaced before the next batch.
    reset_needed: bool,
}

/// The base sequence and identity stamped on one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStamp {
    /// Identity.
    pub identity: ProducerIdentity,
    /// Sequence of the batch's first record.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
}

impl PartitionSequence {
    /// State with a known identity, starting at sequence 0.
    pub fn new(identity: Option<ProducerIdentity>) -> Self {
        PartitionSequence {
            identity,
            next: 0,
            reset_needed: identity.is_none(),
        }
    }

    /// True when a new identity must be fetched before stamping a batch.
    pub fn needs_identity(&self) -> bool {
        self.reset_needed || self.identity.is_none()
    }

    /// Installs a fresh identity; sequences restart at 0 (Kafka's rule for a new producer id).
    pub fn install(&mut self, identity: ProducerIdentity) {
        assert!(identity.producer_id >= 0, "a real producer id");
        self.identity = Some(identity);
        self.next = 0;
        self.reset_needed = false;
    }

    /// Stamps the next batch of `record_count` records, in the order batches leave; the stamp
    /// is reused for every retry, and the batch after it starts where it ends (wrapping like
    /// Kafka).
    pub fn stamp(&mut self, record_count: i32) -> BatchStamp {
        assert!(record_count > 0, "a batch holds records");
        assert!(!self.needs_identity(), "stamping needs an identity");
        let stamp = BatchStamp {
            identity: self.identity.expect("checked by needs_identity"),
            base_sequence: self.next,
            record_count,
        };
        self.next = increment_sequence(self.next, record_count);
        stamp
    }

    /// The outcome is unknown, or the broker's sequence state disagrees with ours: start over at
    /// sequence 0 of the next epoch, or with a new identity once the epoch is exhausted.
    pub fn on_desynchronised(&mut self) {
        match &mut self.identity {
            Some(identity) if identity.producer_epoch < i16::MAX => {
                identity.producer_epoch += 1;
                self.next = 0;
                assert!(!self.reset_needed, "an installed identity is usable");
            }
            _ => self.reset_needed = true,
        }
    }

    /// The broker fenced our epoch (a newer one exists): only a new identity helps.
    pub fn on_fenced(&mut self) {
        self.reset_needed = true;
        assert!(self.needs_identity());
    }

    /// Base sequence of the next new batch.
    pub fn next(&self) -> i32 {
        self.next
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: wraps to 0 past `i32::MAX`.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    assert!(
        sequence >= 0 && increment >= 0,
        "sequences are non-negative"
    );
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: ProducerIdentity = ProducerIdentity {
        producer_id: 7,
        producer_epoch: 0,
    };

    #[test]
    fn batches_are_stamped_one_after_another() {
        let mut state = PartitionSequence::new(Some(ID));
        let first = state.stamp(3);
        assert_eq!(first.base_sequence, 0);
        let second = state.stamp(2);
        assert_eq!(
            second.base_sequence, 3,
            "stamped before the first is answered"
        );
        assert_eq!(state.next(), 5);
    }

    #[test]
    fn desynchronised_bumps_the_epoch_and_restarts_at_zero() {
        let mut state = PartitionSequence::new(Some(ID));
        state.stamp(5);
        state.on_desynchronised();
        assert!(!state.needs_identity(), "the same id goes on");
        let next = state.stamp(2);
        assert_eq!(next.identity.producer_id, ID.producer_id);
        assert_eq!(next.identity.producer_epoch, ID.producer_epoch + 1);
        assert_eq!(next.base_sequence, 0);
    }

    #[test]
    fn an_exhausted_epoch_or_a_fencing_needs_a_new_identity() {
        let mut state = PartitionSequence::new(Some(ProducerIdentity {
            producer_id: 7,
            producer_epoch: i16::MAX,
        }));
        state.on_desynchronised();
        assert!(state.needs_identity());
        let mut state = PartitionSequence::new(Some(ID));
        state.on_fenced();
        assert!(state.needs_identity());
        state.install(ProducerIdentity {
            producer_id: 8,
            producer_epoch: 0,
        });
        assert!(!state.needs_identity());
        assert_eq!(state.stamp(1).base_sequence, 0);
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }

    #[test]
    fn no_identity_means_reset_needed() {
        let state = PartitionSequence::new(None);
        assert!(state.needs_identity());
    }
}
