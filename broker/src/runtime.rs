//! The few things the node needs from its world besides tokio: randomness and clocks. Under
//! `--cfg madsim` both come from the simulator (seeded RNG, virtual time), so a run replays from
//! its seed; in production they are the OS's. Every other module asks here, never the OS directly.

#[cfg(not(madsim))]
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A random `u64`: seeded by the simulator under madsim, from the OS otherwise. Used for
/// incarnation ids, jitter inside the timer ranges the cores hand out, and producer ids.
pub fn random_u64() -> u64 {
    #[cfg(madsim)]
    {
        use rand::RngCore;
        madsim::rand::thread_rng().next_u64()
    }
    #[cfg(not(madsim))]
    {
        rand::random::<u64>()
    }
}

/// A 32-byte key for keyed hashes whose only purpose is secrecy (never behaviour): from the OS
/// in production; a constant under madsim, where secrecy means nothing and a draw from the seeded
/// RNG would shift every later draw, so that adding such a key would change what every seed
/// runs.
pub fn secret_key() -> [u8; 32] {
    #[cfg(madsim)]
    {
        [0x5a; 32]
    }
    #[cfg(not(madsim))]
    {
        rand::random::<[u8; 32]>()
    }
}

/// A uniformly drawn delay in `[min, max]` (both in ms): the driver's jitter for a core's timer
/// range. `min > max` is a core bug, refused loudly.
pub fn jitter_ms(min: u64, max: u64) -> u64 {
    assert!(min <= max, "timer range [{min}, {max}] is empty");
    let span = max - min;
    if span == 0 {
        return min;
    }
    let drawn = min + random_u64() % (span + 1);
    assert!((min..=max).contains(&drawn));
    drawn
}

/// Wall-clock milliseconds since the Unix epoch: record timestamps, segment ages, retention.
/// madsim intercepts the system clock, so this is virtual time in the simulator, where the
/// calling node's [`NodeClock`] (if the run set one) skews it: an offset that jumps when the
/// nemesis says so, and a drift.
pub fn wall_clock_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let true_ms =
        i64::try_from(since_epoch.as_millis()).expect("wall clock within i64 milliseconds");
    #[cfg(madsim)]
    {
        let clock = node_clock();
        let elapsed = i64::try_from(simulated_elapsed_ms()).expect("a run lasts less than i64 ms");
        true_ms + clock.offset_ms + clock.drift(elapsed)
    }
    #[cfg(not(madsim))]
    true_ms
}

/// Monotonic milliseconds: the `now_ms` the cores take. It never goes backwards, unlike the wall
/// clock (which may be skewed or jump). In production it counts from the first call in the
/// process; under madsim from the start of the simulation, read from the simulator itself, so
/// that nothing cached outlives one run (a cached origin made a seed's second run in one process
/// see other times and diverge).
///
/// Under madsim the calling node's [`NodeClock`] drift applies (a node whose crystal runs fast
/// sees its timeouts expire early); the offset does not (a monotonic clock does not jump).
pub fn monotonic_ms() -> u64 {
    #[cfg(madsim)]
    {
        let elapsed = simulated_elapsed_ms();
        let drifted = i64::try_from(elapsed).expect("a run lasts less than i64 ms")
            + node_clock().drift(i64::try_from(elapsed).expect("checked above"));
        u64::try_from(drifted.max(0)).expect("non-negative after max")
    }
    #[cfg(not(madsim))]
    {
        static START: OnceLock<tokio::time::Instant> = OnceLock::new();
        let start = *START.get_or_init(tokio::time::Instant::now);
        let elapsed = tokio::time::Instant::now().saturating_duration_since(start);
        u64::try_from(elapsed.as_millis()).expect("uptime within u64 milliseconds")
    }
}

/// How long a simulated disk's fsync takes: a drawn 1–8 ms under madsim (a real disk's
/// fsync is not free, and zero-time fsyncs closed every crash window between a follower's
/// append and its flush, so a follower reporting unflushed data as flushed went unnoticed
/// even by a power loss of every node); 0 in production, where the fsync itself takes the
/// time.
pub fn simulated_sync_ms() -> u64 {
    #[cfg(madsim)]
    {
        jitter_ms(1, 8)
    }
    #[cfg(not(madsim))]
    {
        0
    }
}

/// Simulated milliseconds since the run began.
#[cfg(madsim)]
fn simulated_elapsed_ms() -> u64 {
    let elapsed = madsim::time::TimeHandle::current().elapsed();
    u64::try_from(elapsed.as_millis()).expect("a run lasts less than u64 ms")
}

/// One simulated node's clock error: what skew a real node's clock has (NTP off, a VM resumed,
/// a crystal running fast). Set by the simulator per node; production has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeClock {
    /// Added to the node's wall clock; changed by clock jumps (forward or back).
    pub offset_ms: i64,
    /// Parts per million the node's clocks run fast (positive) or slow, on both the wall clock
    /// and the monotonic one. Bounded by [`NodeClock::DRIFT_PPM_MAX`].
    pub drift_ppm: i64,
}

impl NodeClock {
    /// The largest drift a node may be given: 1 %. Keeps the drifted monotonic clock
    /// monotonic and the node's timeouts within a factor of the configured ones.
    pub const DRIFT_PPM_MAX: i64 = 10_000;

    /// Milliseconds the drift adds after `elapsed_ms` of true time.
    pub fn drift(&self, elapsed_ms: i64) -> i64 {
        assert!(
            self.drift_ppm.abs() <= Self::DRIFT_PPM_MAX,
            "drift {} ppm beyond the limit",
            self.drift_ppm
        );
        elapsed_ms.saturating_mul(self.drift_ppm) / 1_000_000
    }
}

#[cfg(madsim)]
thread_local! {
    /// The current run's clock error of each node (one run per thread, as for BUGGIFY).
    static NODE_CLOCKS: std::cell::RefCell<std::collections::BTreeMap<madsim::task::NodeId, NodeClock>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// The calling node's clock error (none when the run set none for it).
#[cfg(madsim)]
fn node_clock() -> NodeClock {
    let node = madsim::plugin::node();
    NODE_CLOCKS.with(|c| c.borrow().get(&node).copied().unwrap_or_default())
}

/// Sets a simulated node's clock error for the run on this thread (the harness calls it at
/// start and for each clock jump).
#[cfg(madsim)]
pub fn set_node_clock(node: madsim::task::NodeId, clock: NodeClock) {
    assert!(
        clock.drift_ppm.abs() <= NodeClock::DRIFT_PPM_MAX,
        "drift within the limit"
    );
    NODE_CLOCKS.with(|c| c.borrow_mut().insert(node, clock));
}

/// Forgets every node's clock error: a run starts with true clocks.
#[cfg(madsim)]
pub fn clear_node_clocks() {
    NODE_CLOCKS.with(|c| c.borrow_mut().clear());
}

/// BUGGIFY (FoundationDB's name): code-level fault injection points, shared with the cores
/// through the `buggify` crate (see it for the rules). Always false in production, at no cost.
pub fn buggify(site: &'static str) -> bool {
    buggify::fire(site)
}

/// [`buggify`] for sites reached on every message: fires a tenth as often.
pub fn buggify_rarely(site: &'static str) -> bool {
    buggify::fire_rarely(site)
}

pub use buggify::Config as BuggifyConfig;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_clock_drifts_by_its_parts_per_million() {
        let fast = NodeClock {
            offset_ms: -5,
            drift_ppm: 10_000,
        };
        assert_eq!(fast.drift(60_000), 600);
        let slow = NodeClock {
            drift_ppm: -500,
            ..NodeClock::default()
        };
        assert_eq!(slow.drift(60_000), -30);
        assert_eq!(NodeClock::default().drift(i64::MAX), 0);
    }

    #[test]
    fn buggify_is_off_in_production() {
        assert!(!buggify("partition.flush.slow") || cfg!(madsim));
    }
}
