//! The event trace of one simulated run: what the determinism check compares.
//!
//! Every scenario records each step it takes and what it observed. Two runs of one seed must
//! produce the same sequence; the hash makes the comparison cheap, the kept events make a mismatch
//! explainable ("first diverging event").

use std::fmt::Write as _;

/// How many events a trace keeps in full. Past this only the hash grows, so a long soak run does
/// not hold its whole history in memory.
pub const TRACE_EVENTS_KEPT_MAX: usize = 200_000;

/// A run's ordered events and their running hash (FNV-1a 64: stable across builds and platforms,
/// unlike `std`'s randomly keyed hasher).
#[derive(Debug, Clone)]
pub struct Trace {
    /// The events in order, up to `TRACE_EVENTS_KEPT_MAX`.
    events: Vec<String>,
    /// How many events were recorded in all (kept or not).
    count: u64,
    /// FNV-1a over every event's bytes and a separator.
    hash: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            events: Vec::new(),
            count: 0,
            hash: FNV_OFFSET,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    /// Records one event.
    pub fn record(&mut self, event: impl Into<String>) {
        let event = event.into();
        for byte in event.bytes().chain(std::iter::once(0xff)) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.count += 1;
        if self.events.len() < TRACE_EVENTS_KEPT_MAX {
            self.events.push(event);
        }
    }

    /// The hash of every event recorded so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kept events.
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// The last `n` kept events, oldest first, one per line, numbered.
    pub fn tail(&self, n: usize) -> String {
        let start = self.events.len().saturating_sub(n);
        let mut out = String::new();
        for (index, event) in self.events.iter().enumerate().skip(start) {
            let _ = writeln!(out, "  #{index:<6} {event}");
        }
        out
    }

    /// Where two traces of the same seed first differ, or `None` if they are equal.
    pub fn first_divergence(&self, other: &Trace) -> Option<Divergence> {
        if self.hash == other.hash && self.count == other.count {
            return None;
        }
        let common = self.events.len().min(other.events.len());
        let index = (0..common)
            .find(|&i| self.events[i] != other.events[i])
            .unwrap_or(common);
        Some(Divergence {
            index,
            first: self.events.get(index).cloned(),
            second: other.events.get(index).cloned(),
        })
    }
}

/// The first event at which two runs of one seed disagree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Divergence {
    /// The index of the first differing event.
    pub index: usize,
    /// That event in the first run (`None`: the first run ended there).
    pub first: Option<String>,
    /// That event in the second run (`None`: the second run ended there).
    pub second: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |e: &Option<String>| e.clone().unwrap_or_else(|| "<end of run>".to_string());
        write!(
            f,
            "first diverging event #{}:\n  run 1: {}\n  run 2: {}",
            self.index,
            show(&self.first),
            show(&self.second)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_traces_do_not_diverge() {
        let mut a = Trace::default();
        let mut b = Trace::default();
        for event in ["append 0..3", "flush 3", "crash"] {
            a.record(event);
            b.record(event);
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.first_divergence(&b), None);
    }

    #[test]
    fn divergence_names_the_first_differing_event() {
        let mut a = Trace::default();
        let mut b = Trace::default();
        a.record("append 0..3");
        b.record("append 0..3");
        a.record("flush 3");
        b.record("flush 2");
        let divergence = a.first_divergence(&b).expect("traces differ");
        assert_eq!(divergence.index, 1);
        assert_eq!(divergence.first.as_deref(), Some("flush 3"));
        assert_eq!(divergence.second.as_deref(), Some("flush 2"));
    }

    #[test]
    fn a_shorter_run_diverges_at_its_end() {
        let mut a = Trace::default();
        let b = Trace::default();
        a.record("append 0..1");
        let divergence = a.first_divergence(&b).expect("traces differ");
        assert_eq!(divergence.index, 0);
        assert_eq!(divergence.second, None);
    }
}
