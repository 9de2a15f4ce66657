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
/// madsim intercepts the system clock, so this is virtual time in the simulator.
pub fn wall_clock_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).expect("wall clock within i64 milliseconds")
}

/// Monotonic milliseconds: the `now_ms` the cores take. It never goes backwards, unlike the wall
/// clock (which may be skewed or jump). In production it counts from the first call in the
/// process; under madsim from the start of the simulation, read from the simulator itself, so
/// that nothing cached outlives one run (a cached origin made a seed's second run in one process
/// see other times and diverge).
pub fn monotonic_ms() -> u64 {
    #[cfg(madsim)]
    let elapsed = madsim::time::TimeHandle::current().elapsed();
    #[cfg(not(madsim))]
    let elapsed = {
        static START: OnceLock<tokio::time::Instant> = OnceLock::new();
        let start = *START.get_or_init(tokio::time::Instant::now);
        tokio::time::Instant::now().saturating_duration_since(start)
    };
    u64::try_from(elapsed.as_millis()).expect("uptime within u64 milliseconds")
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
