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
