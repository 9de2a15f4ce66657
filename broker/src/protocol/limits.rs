//! Broker-wide limits shared by every Kafka connection: how many connections may be open
//! (`max.connections`) and how many request bytes may be buffered at once
//! (`queued.max.request.bytes`).
//!
//! Both hand out RAII permits: a slot or a byte range is returned when its permit drops, on every
//! exit path of the task that owns it, a panic included. A counter decremented by hand leaked a
//! slot per panicking connection until the cap locked every client out.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap on open connections. Cloning shares the cap.
#[derive(Clone, Debug)]
pub struct ConnectionSlots {
    /// One permit per free slot.
    semaphore: Arc<Semaphore>,
    /// The cap, for [`ConnectionSlots::open`].
    slots_max: usize,
}

/// One open connection's claim on a slot; the slot frees when this drops.
#[derive(Debug)]
pub struct ConnectionSlot {
    /// Returned to the semaphore on drop, also while unwinding.
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlots {
    /// A cap of `slots_max` concurrent connections.
    pub fn new(slots_max: usize) -> Self {
        assert!(slots_max > 0, "a broker must admit some connection");
        assert!(slots_max <= Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(slots_max)),
            slots_max,
        }
    }

    /// A slot for a new connection, or `None` when every slot is taken (the caller refuses it).
    pub fn try_acquire(&self) -> Option<ConnectionSlot> {
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        assert!(self.open() <= self.slots_max);
        Some(ConnectionSlot { _permit: permit })
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        let available = self.semaphore.available_permits();
        assert!(available <= self.slots_max);
        self.slots_max - available
    }
}

/// The broker-wide budget of buffered request bytes. A connection takes a frame's length from it
/// before allocating the frame's buffer and gives it back when the request is answered, so N
/// clients each sending a 100 MiB frame cannot make the broker buffer N × 100 MiB.
#[derive(Clone, Debug)]
pub struct RequestBytesBudget {
    /// One permit per byte not buffered yet.
    semaphore: Arc<Semaphore>,
    /// The whole budget; a frame above it could never be admitted and is refused.
    bytes_total: u32,
}

/// Bytes of the budget held by one request; they return when this drops.
#[derive(Debug)]
pub struct BudgetPermit {
    /// Returned to the semaphore on drop.
    _permit: OwnedSemaphorePermit,
    /// How many bytes it holds, for assertions and logs.
    bytes: u32,
}

impl BudgetPermit {
    /// Bytes this permit holds.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }
}

impl RequestBytesBudget {
    /// A budget of `bytes_total` buffered request bytes across all connections.
    pub fn new(bytes_total: u32) -> Self {
        assert!(bytes_total > 0, "a budget of 0 bytes admits no request");
        Self {
            semaphore: Arc::new(Semaphore::new(bytes_total as usize)),
            bytes_total,
        }
    }

    /// The whole budget.
    pub fn bytes_total(&self) -> u32 {
        self.bytes_total
    }

    /// Bytes held by requests now.
    pub fn bytes_held(&self) -> u32 {
        let available = self.semaphore.available_permits();
        assert!(available <= self.bytes_total as usize);
        self.bytes_total - u32::try_from(available).expect("at most bytes_total")
    }

    /// Waits until `bytes` are free and takes them (first come, first served). Cancel-safe: a
    /// dropped wait takes nothing.
    pub async fn acquire(&self, bytes: u32) -> BudgetPermit {
        assert!(
            bytes <= self.bytes_total,
            "{bytes} bytes can never fit a budget of {}",
            self.bytes_total
        );
        let permit = self
            .semaphore
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the budget's semaphore is never closed");
        assert_eq!(permit.num_permits(), bytes as usize);
        BudgetPermit {
            _permit: permit,
            bytes,
        }
    }
}
