//! A single-value broadcast channel with the subset of `tokio::sync::watch`'s API the node uses,
//! but deterministic. tokio's watch spreads waiting receivers over eight `Notify` shards picked
//! with tokio's thread RNG, which is seeded from a process-wide counter: under madsim the wake-up
//! order of receivers then differs between two runs of one seed in the same process (the cluster
//! simulation's determinism check found it). Here every receiver waits on one `Notify`, woken in
//! registration order.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The value and its version (bumped by every send).
struct State<T> {
    /// The current value.
    value: T,
    /// Grows with every send; receivers remember the last one they saw.
    version: u64,
}

/// What the sender and receivers share.
struct Shared<T> {
    /// The value, behind a mutex never held across an `.await`.
    state: Mutex<State<T>>,
    /// Woken on every send and when the sender goes away.
    changed: Notify,
    /// Set when the sender is dropped.
    closed: AtomicBool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending half; dropping it closes the channel.
pub struct Sender<T> {
    /// The channel.
    shared: Arc<Shared<T>>,
}

/// A receiving half; clones share nothing but the channel.
pub struct Receiver<T> {
    /// The channel.
    shared: Arc<Shared<T>>,
    /// The version this receiver saw last.
    seen: u64,
}

/// The sender is gone and no unseen value is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("watch channel closed")]
pub struct RecvError;

/// A borrowed current value.
pub struct Ref<'a, T> {
    /// The locked state.
    guard: MutexGuard<'a, State<T>>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard.value
    }
}

/// A channel holding `initial`.
pub fn channel<T>(initial: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: initial,
            version: 0,
        }),
        changed: Notify::new(),
        closed: AtomicBool::new(false),
    });
    let receiver = Receiver {
        shared: shared.clone(),
        seen: 0,
    };
    (Sender { shared }, receiver)
}

impl<T> Sender<T> {
    /// Replaces the value, wakes every receiver and returns the old value.
    pub fn send_replace(&self, value: T) -> T {
        let old = {
            let mut state = self.shared.lock();
            state.version += 1;
            std::mem::replace(&mut state.value, value)
        };
        self.shared.changed.notify_waiters();
        old
    }

    /// Modifies the value in place and wakes every receiver.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|value| {
            modify(value);
            true
        });
    }

    /// Modifies the value in place; wakes receivers only if `modify` says it changed something.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let modified = {
            let mut state = self.shared.lock();
            let modified = modify(&mut state.value);
            if modified {
                state.version += 1;
            }
            modified
        };
        if modified {
            self.shared.changed.notify_waiters();
        }
        modified
    }

    /// The current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.lock(),
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        let seen = self.shared.lock().version;
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Receiver<T> {
    /// The current value, without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.lock(),
        }
    }

    /// The current value, marking it seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.lock();
        self.seen = guard.version;
        Ref { guard }
    }

    /// Waits for a value this receiver has not seen, and marks it seen; fails once the sender is
    /// gone and nothing new is left.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a send between the check and the wait wakes it.
            notified.as_mut().enable();
            let version = self.shared.lock().version;
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(RecvError);
            }
            notified.await;
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Sender")
            .field("version", &self.shared.lock().version)
            .finish()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .finish()
    }
}
