//! The simulator's hooks into code that runs in both worlds, shared by the cores (log-core,
//! replication, controller) and the broker shell, none of which may depend on one another's
//! runtime:
//!
//! - **BUGGIFY** (FoundationDB's name): [`fire`]`("site")` is true only in the simulator, only in
//!   runs that switched BUGGIFY on, only for the sites that run enabled (each site is on in about
//!   half of the runs, chosen from the run's seed), and then with the run's firing probability
//!   ([`fire_rarely`]: a tenth of it, for sites reached on every message).
//!   [`disk_fault`]`("site")` is the same for sites that fail a disk operation: it fires a
//!   thousand times more rarely (a disk error fails a partition, which only a restart repairs)
//!   and remembers which simulated node it failed, so the harness restarts that node at healing
//!   as it does after a disk fault of its own.
//! - **Probes** (FoundationDB's `CODE_PROBE`): [`probe!`]`("name")` marks an interesting state
//!   the simulator should reach (an election from the ELR, a fetch below the log start, ...).
//!   The campaign collects the probes each run hit and fails CI when a listed one never fires.
//!
//! - **Alarms**: [`alarm`]`("name")` marks a state a correct node never reaches but survives (a
//!   long poll woken thousands of times without answering: a livelock that burns CPU), so it is
//!   no panic. The simulator fails the seed that raised one; outside it the caller logs.
//!
//! - **Crash points**: [`crash_point`]`("name")` marks a place where a power loss of every node
//!   tells the most (a follower's append before its fsync, an acknowledgement, the moment before
//!   a checkpoint). The nemesis arms one point ([`arm_crash_point`]) and waits for some node to
//!   reach it ([`crash_point_reached`]), then cuts the power: the instant is the code's, not the
//!   clock's, so a window of a few milliseconds is hit every time it opens.
//!
//! Outside `--cfg madsim` every hook is an empty inline function: production pays nothing.
//! Under madsim the state is thread-local: a simulated run (all of its nodes) lives on one
//! thread, concurrent seeds on other threads, so it is per run, and deterministic.

#[cfg(madsim)]
use std::cell::RefCell;
use std::collections::BTreeMap;

/// How BUGGIFY behaves in one simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Picks the enabled sites.
    pub seed: u64,
    /// Chance, per mille, that an enabled site fires when reached ([`fire_rarely`] sites: per
    /// ten thousand; [`disk_fault`] sites: per million).
    pub fire_permille: u32,
}

impl Config {
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

/// One run's hook state (madsim only).
#[cfg(madsim)]
#[derive(Default)]
struct RunState {
    /// BUGGIFY's settings; `None` when off (or quiesced).
    config: Option<Config>,
    /// The simulated nodes whose disk operations disk-fault sites may fail (the harness's
    /// choice: nodes it restarts after a disk fault; never its own context).
    disk_fault_nodes: std::collections::BTreeSet<madsim::task::NodeId>,
    /// How often each site fired in this run.
    fired: BTreeMap<&'static str, u64>,
    /// How often each probe was hit in this run.
    probes: BTreeMap<&'static str, u64>,
    /// How often each alarm was raised in this run.
    alarms: BTreeMap<&'static str, u64>,
    /// Simulated nodes a disk-fault site failed an operation on (since the last take).
    disk_faulted: std::collections::BTreeSet<madsim::task::NodeId>,
    /// The crash point the nemesis waits for, if any.
    crash_armed: Option<String>,
    /// The simulated node that reached the armed crash point (until the nemesis takes it).
    crash_reached: Option<madsim::task::NodeId>,
    /// The nemesis task waiting for the crash point.
    crash_waiter: Option<std::task::Waker>,
}

#[cfg(madsim)]
thread_local! {
    static RUN: RefCell<RunState> = RefCell::new(RunState::default());
}

/// Draws whether an enabled site fires: `per` in `out_of`.
#[cfg(madsim)]
fn draw(per: u64, out_of: u64) -> bool {
    use rand::RngCore;
    madsim::rand::thread_rng().next_u64() % out_of < per
}

/// Whether BUGGIFY site `site` fires here (always false outside the simulator).
#[inline(always)]
pub fn fire(site: &'static str) -> bool {
    fire_out_of(site, 1_000)
}

/// Whether BUGGIFY site `site` fires here, ten times more rarely than [`fire`]: for sites reached
/// on every message (a frame written, a raft message received), where [`fire`]'s rate would
/// leave nothing working (always false outside the simulator).
#[inline(always)]
pub fn fire_rarely(site: &'static str) -> bool {
    fire_out_of(site, 10_000)
}

/// Whether an enabled `site` fires: the run's per-mille rate, taken out of `out_of`.
#[inline(always)]
fn fire_out_of(site: &'static str, out_of: u64) -> bool {
    #[cfg(madsim)]
    {
        let Some(config) = RUN.with(|r| r.borrow().config) else {
            return false;
        };
        if !config.site_enabled(site) || !draw(u64::from(config.fire_permille), out_of) {
            return false;
        }
        tracing::debug!(site, "buggify fired");
        RUN.with(|r| *r.borrow_mut().fired.entry(site).or_default() += 1);
        true
    }
    #[cfg(not(madsim))]
    {
        let _ = (site, out_of);
        false
    }
}

/// Whether disk-fault site `site` fails the disk operation it guards (always false outside the
/// simulator, and in runs that do not allow disk faults). Fires per million where [`fire`] fires
/// per mille, and records the simulated node it fired on (see [`take_disk_faulted_nodes`]).
#[inline(always)]
pub fn disk_fault(site: &'static str) -> bool {
    #[cfg(madsim)]
    {
        let Some(config) = RUN.with(|r| r.borrow().config) else {
            return false;
        };
        if !config.site_enabled(site) || madsim::runtime::Handle::try_current().is_err() {
            return false;
        }
        let node = madsim::plugin::node();
        if !RUN.with(|r| r.borrow().disk_fault_nodes.contains(&node))
            || !draw(u64::from(config.fire_permille), 1_000_000)
        {
            return false;
        }
        tracing::info!(site, %node, "buggify: injected disk fault");
        RUN.with(|r| {
            let mut r = r.borrow_mut();
            *r.fired.entry(site).or_default() += 1;
            r.disk_faulted.insert(node);
        });
        true
    }
    #[cfg(not(madsim))]
    {
        let _ = site;
        false
    }
}

/// Records that probe `name` was hit (nothing outside the simulator). Use [`probe!`].
#[inline(always)]
pub fn probe_hit(name: &'static str) {
    #[cfg(madsim)]
    RUN.with(|r| *r.borrow_mut().probes.entry(name).or_default() += 1);
    #[cfg(not(madsim))]
    let _ = name;
}

/// Marks an interesting state the simulator should reach (FoundationDB's `CODE_PROBE`): the
/// campaign counts the seeds that hit each probe and CI fails when a listed probe never fires.
/// A no-op outside `--cfg madsim`. The name is a literal, `area.what_happened`.
#[macro_export]
macro_rules! probe {
    ($name:literal) => {
        $crate::probe_hit($name)
    };
}

/// Raises alarm `name` (a literal, `area.what_went_wrong`): a state a correct node never
/// reaches and survives (a livelock, a bound crossed). The simulator fails the seed; outside it
/// this does nothing and the caller logs.
#[inline(always)]
pub fn alarm(name: &'static str) {
    #[cfg(madsim)]
    RUN.with(|r| *r.borrow_mut().alarms.entry(name).or_default() += 1);
    #[cfg(not(madsim))]
    let _ = name;
}

/// The alarms this thread's run raised, with how often (empty outside the simulator).
pub fn alarms_raised() -> BTreeMap<&'static str, u64> {
    #[cfg(madsim)]
    {
        RUN.with(|r| r.borrow().alarms.clone())
    }
    #[cfg(not(madsim))]
    BTreeMap::new()
}

/// Marks crash point `name` (a literal, `area.moment`): if the nemesis armed it, the point is
/// reached (once per arming) and the waiting nemesis wakes. A no-op outside the simulator.
#[inline(always)]
pub fn crash_point(name: &'static str) {
    #[cfg(madsim)]
    {
        let waiter = RUN.with(|r| {
            let mut run = r.borrow_mut();
            if run.crash_armed.as_deref() != Some(name) {
                return None;
            }
            run.crash_armed = None;
            run.crash_reached = Some(madsim::plugin::node());
            *run.probes.entry(name).or_default() += 1;
            run.crash_waiter.take()
        });
        // Woken outside the borrow: a waker may poll on the spot.
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
    #[cfg(not(madsim))]
    let _ = name;
}

/// Arms crash point `name` for this run (replacing any armed one); [`crash_point_reached`]
/// resolves once some node reaches it.
#[cfg(madsim)]
pub fn arm_crash_point(name: &str) {
    assert!(!name.is_empty(), "a crash point has a name");
    RUN.with(|r| {
        let mut run = r.borrow_mut();
        run.crash_armed = Some(name.to_string());
        run.crash_reached = None;
        run.crash_waiter = None;
    });
}

/// Disarms the crash point (the nemesis stopped waiting for it).
#[cfg(madsim)]
pub fn disarm_crash_point() {
    RUN.with(|r| {
        let mut run = r.borrow_mut();
        run.crash_armed = None;
        run.crash_reached = None;
        run.crash_waiter = None;
    });
}

/// Resolves when the armed crash point is reached (at once if it already was), takes it, and
/// names the simulated node that reached it.
#[cfg(madsim)]
pub async fn crash_point_reached() -> madsim::task::NodeId {
    std::future::poll_fn(|cx| {
        RUN.with(|r| {
            let mut run = r.borrow_mut();
            if let Some(node) = run.crash_reached.take() {
                run.crash_waiter = None;
                return std::task::Poll::Ready(node);
            }
            assert!(
                run.crash_armed.is_some(),
                "waiting for a crash point that is armed"
            );
            run.crash_waiter = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
    })
    .await
}

/// Starts a run on this thread: BUGGIFY off, disk faults on no node, no probe hit, no site
/// fired (nothing leaks from an earlier run on the thread).
#[cfg(madsim)]
pub fn start_run() {
    RUN.with(|r| *r.borrow_mut() = RunState::default());
}

/// Switches BUGGIFY on as `config` says (or off) for the rest of the run on this thread.
#[cfg(madsim)]
pub fn set_config(config: Option<Config>) {
    if let Some(config) = &config {
        assert!(config.fire_permille <= 1_000, "a per-mille probability");
    }
    RUN.with(|r| r.borrow_mut().config = config);
}

/// Lets disk-fault sites fail disk operations made on simulated node `node` (by its tasks).
#[cfg(madsim)]
pub fn allow_disk_faults_on(node: madsim::task::NodeId) {
    RUN.with(|r| r.borrow_mut().disk_fault_nodes.insert(node));
}

/// Switches every BUGGIFY site off for the rest of the run (the harness's healing: the
/// quiescent phase checks liveness, which an injected fault after healing would fail unfairly).
/// Probes keep counting.
#[cfg(madsim)]
pub fn quiesce() {
    RUN.with(|r| r.borrow_mut().config = None);
}

/// The simulated nodes (madsim node ids) a disk-fault site failed an operation on since the
/// last call, forgotten by this call.
#[cfg(madsim)]
pub fn take_disk_faulted_nodes() -> std::collections::BTreeSet<madsim::task::NodeId> {
    RUN.with(|r| std::mem::take(&mut r.borrow_mut().disk_faulted))
}

/// The probes this thread's run hit, with how often (empty outside the simulator).
pub fn probes_hit() -> BTreeMap<&'static str, u64> {
    #[cfg(madsim)]
    {
        RUN.with(|r| r.borrow().probes.clone())
    }
    #[cfg(not(madsim))]
    BTreeMap::new()
}

/// The BUGGIFY sites this thread's run fired, with how often (empty outside the simulator).
pub fn sites_fired() -> BTreeMap<&'static str, u64> {
    #[cfg(madsim)]
    {
        RUN.with(|r| r.borrow().fired.clone())
    }
    #[cfg(not(madsim))]
    BTreeMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_stable_and_about_half_are_on() {
        let sites = [
            "a",
            "partition.flush.slow",
            "replica.connection.drop",
            "x.y",
        ];
        let mut on = 0;
        for seed in 0..400 {
            for site in sites {
                let config = Config {
                    seed,
                    fire_permille: 100,
                };
                assert_eq!(config.site_enabled(site), config.site_enabled(site));
                on += u32::from(config.site_enabled(site));
            }
        }
        assert!((600..1000).contains(&on), "{on} of 1600 site draws on");
    }

    #[test]
    fn outside_a_run_nothing_fires_and_probes_count_only_in_the_simulator() {
        assert!(!fire("partition.flush.slow"));
        assert!(!fire_rarely("frame.write.reset_mid_frame"));
        assert!(!disk_fault("memdisk.sync.eio"));
        probe!("test.probe");
        probe!("test.probe");
        let hit = probes_hit();
        if cfg!(madsim) {
            assert_eq!(hit.get("test.probe"), Some(&2));
        } else {
            assert!(hit.is_empty());
        }
    }
}
