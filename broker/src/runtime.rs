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

/// BUGGIFY (FoundationDB's name): code-level fault injection points. `buggify("site")` is true
/// only in the simulator, only in runs that switched BUGGIFY on, only for the sites that run
/// enabled (each site is on in about half of the runs, chosen from the run's seed), and then
/// with the run's firing probability. In production it is always false, at no cost.
pub fn buggify(site: &'static str) -> bool {
    #[cfg(madsim)]
    {
        let config = BUGGIFY.with(|b| *b.borrow());
        let Some(config) = config else {
            return false;
        };
        if !config.site_enabled(site) {
            return false;
        }
        let fired = random_u64() % 1_000 < u64::from(config.fire_permille);
        if fired {
            tracing::debug!(site, "buggify fired");
        }
        fired
    }
    #[cfg(not(madsim))]
    {
        let _ = site;
        false
    }
}

/// How BUGGIFY behaves in one simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuggifyConfig {
    /// Picks the enabled sites.
    pub seed: u64,
    /// Chance, per mille, that an enabled site fires when reached.
    pub fire_permille: u32,
}

impl BuggifyConfig {
    /// Whether `site` is on in this run: a stable hash of the site's name and the seed.
    pub fn site_enabled(&self, site: &str) -> bool {
        // FNV-1a: stable across processes and platforms (std's hasher is seeded per process).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for byte in site.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash >> 63 == 1
    }
}

#[cfg(madsim)]
thread_local! {
    /// The current run's BUGGIFY settings. A simulated run (all of its nodes) lives on one
    /// thread, and concurrent seeds on different threads, so this is per run.
    static BUGGIFY: std::cell::RefCell<Option<BuggifyConfig>> = const { std::cell::RefCell::new(None) };
}

/// Switches BUGGIFY on (or off) for the simulated run on this thread.
#[cfg(madsim)]
pub fn set_buggify(config: Option<BuggifyConfig>) {
    if let Some(config) = &config {
        assert!(config.fire_permille <= 1_000, "a per-mille probability");
    }
    BUGGIFY.with(|b| *b.borrow_mut() = config);
}

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
    fn buggify_sites_are_stable_and_about_half_are_on() {
        let sites = [
            "a",
            "partition.flush.slow",
            "replica.connection.drop",
            "x.y",
        ];
        let mut on = 0;
        for seed in 0..400 {
            for site in sites {
                let config = BuggifyConfig {
                    seed,
                    fire_permille: 100,
                };
                assert_eq!(config.site_enabled(site), config.site_enabled(site));
                on += u32::from(config.site_enabled(site));
            }
        }
        assert!((600..1000).contains(&on), "{on} of 1600 site draws on");
        assert!(!buggify("partition.flush.slow") || cfg!(madsim));
    }
}
