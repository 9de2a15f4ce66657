//! A connection's requests in flight: worked on concurrently, finished in arrival order.
//!
//! Kafka promises clients responses in request order on a connection, but nothing makes the
//! broker work on them one at a time: a produce waiting for replication should not hold up the
//! metadata request behind it. The queue is polled on the connection's own task (no spawn, so a
//! connection's work stays on one task and the simulator's schedule stays deterministic).
//! Bounded by its creator (Kafka's `max.in.flight.requests.per.connection`, 5 by default);
//! every poll polls every unfinished entry, which is cheap at that size.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The most requests one connection may have in flight, whatever the configuration says:
/// every wake polls all of them.
pub const IN_FLIGHT_LIMIT: usize = 64;

/// One request's state.
enum Entry<F: Future> {
    /// Still being worked on.
    Running(Pin<Box<F>>),
    /// Finished, waiting for the requests before it.
    Done(F::Output),
}

/// Futures finishing in any order, yielded in push order.
pub struct InFlight<F: Future> {
    /// Oldest first.
    entries: VecDeque<Entry<F>>,
    /// The bound on `entries`.
    in_flight_max: usize,
}

impl<F: Future> InFlight<F> {
    /// An empty queue admitting `in_flight_max` entries.
    pub fn new(in_flight_max: usize) -> Self {
        assert!(in_flight_max > 0, "a connection must admit one request");
        assert!(in_flight_max <= IN_FLIGHT_LIMIT);
        Self {
            entries: VecDeque::with_capacity(in_flight_max),
            in_flight_max,
        }
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room for another request?
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.in_flight_max
    }

    /// Adds a request behind the others. The caller checks [`InFlight::has_room`] first.
    pub fn push(&mut self, future: F) {
        assert!(
            self.has_room(),
            "in-flight bound {} exceeded",
            self.in_flight_max
        );
        self.entries.push_back(Entry::Running(Box::pin(future)));
        assert!(self.entries.len() <= self.in_flight_max);
    }

    /// Polls every unfinished entry; ready with the oldest entry's output once it is done.
    /// Pending when empty (the caller guards the call with [`InFlight::is_empty`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        for entry in self.entries.iter_mut() {
            if let Entry::Running(future) = entry {
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    *entry = Entry::Done(output);
                }
            }
        }
        if !matches!(self.entries.front(), Some(Entry::Done(_))) {
            return Poll::Pending;
        }
        match self.entries.pop_front() {
            Some(Entry::Done(output)) => Poll::Ready(output),
            _ => unreachable!("the front entry was checked to be done"),
        }
    }

    /// The oldest request's output, once it is done (the others keep running meanwhile).
    pub async fn next(&mut self) -> F::Output {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}
