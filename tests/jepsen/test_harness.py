"""Tests of the harness itself (no cluster, no namespaces): `python3 -m unittest discover -s
tests/jepsen -p 'test_*.py'`, as root for the LazyFS test (which builds LazyFS on first use)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import infra  # noqa: E402
import nemesis  # noqa: E402
import run  # noqa: E402

# The tests' processes and mounts go into a state file of their own: a run's (/tmp/rjep-state.json)
# may be in use by a real run meanwhile.
infra.STATE_FILE = os.path.join(tempfile.mkdtemp(prefix="rjep-test-state-"), "state.json")


class WaitExec(unittest.TestCase):
    def test_a_binary_of_any_name_is_seen_once_executed(self):
        # `cargo xtask jepsen --bug` runs `rill-bug-switches`: its exec must be seen at once, not
        # after the bound (each restart took 5 s longer, which stretched the nemesis' schedule).
        work = tempfile.mkdtemp(prefix="rjep-test-")
        try:
            binary = os.path.join(work, "rill-bug-switches")
            shutil.copy("/bin/sleep", binary)
            child = subprocess.Popen(["sh", "-c", f"sleep 0.2; exec {binary} 30"])
            try:
                started = time.monotonic()
                self.assertTrue(infra.wait_exec(child.pid, binary, 5))
                self.assertLess(time.monotonic() - started, 2)
            finally:
                child.kill()
                child.wait(timeout=10)
        finally:
            shutil.rmtree(work)

    def test_a_process_that_never_executes_the_binary_times_out(self):
        child = subprocess.Popen(["sleep", "30"])
        try:
            started = time.monotonic()
            self.assertFalse(infra.wait_exec(child.pid, "/nonexistent/rill", 0.3))
            self.assertGreaterEqual(time.monotonic() - started, 0.3)
        finally:
            child.kill()
            child.wait(timeout=10)


@unittest.skipUnless(os.geteuid() == 0 and os.path.exists("/dev/fuse"), "needs root and FUSE")
class LazyDisk(unittest.TestCase):
    """The power fault's premise on a LazyFS mount over a plain directory."""

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="rjep-test-")
        self.mount = os.path.join(self.work, "data")
        self.backing = os.path.join(self.work, "disk")
        os.makedirs(self.mount)
        os.makedirs(self.backing)
        self.lazy = infra.LazyFS(run.lazyfs_binary(), self.work, self.mount, self.backing, 16)

    def tearDown(self):
        self.lazy.stop()
        self.assertFalse(infra.mounted(self.mount))
        self.assertEqual(infra._load_state()["mounts"], [])
        shutil.rmtree(self.work)

    def test_a_killed_writer_keeps_what_it_synced_and_loses_the_rest(self):
        self.assertIn("kept its 8192 fsynced bytes and lost 4096 + 4096", self.lazy.self_check())
        self.assertEqual(self.lazy.unsynced_bytes(), 0)

    def test_unsynced_bytes_counts_what_a_clear_drops(self):
        path = os.path.join(self.mount, "log")
        with open(path, "wb") as handle:
            handle.write(b"s" * 5000)
            handle.flush()
            os.fsync(handle.fileno())
            handle.write(b"u" * 3000)
        self.assertEqual(self.lazy.unsynced_bytes(), 3000)
        self.lazy.clear_cache()
        self.assertEqual(self.lazy.unsynced_bytes(), 0)
        with open(path, "rb") as handle:
            self.assertEqual(handle.read(), b"s" * 5000)

    def test_an_aimed_power_failure_strikes_while_bytes_are_unsynced(self):
        # A writer that fsyncs every tenth write, as a log appends then syncs a batch.
        writer = ("import os, sys, time\n"
                  "f = os.open(sys.argv[1] + '/log', os.O_CREAT | os.O_WRONLY, 0o600)\n"
                  "for i in range(1_000_000):\n"
                  "    os.write(f, b'x' * 100)\n"
                  "    if i % 10 == 9: os.fsync(f)\n"
                  "    time.sleep(0.0005)\n")
        node = WriterNode(subprocess.Popen([sys.executable, "-c", writer, self.mount]), self.lazy)
        time.sleep(0.3)
        dropped, tries = infra.power_off_together([node])
        self.assertGreater(dropped[node.id], 0)
        self.assertLess(tries, infra.POWER_AIM_TRIES)
        self.assertFalse(node.alive())
        # What is left is what was fsynced: a whole number of ten-write batches.
        size = os.path.getsize(os.path.join(self.mount, "log"))
        self.assertEqual(size, os.path.getsize(os.path.join(self.backing, "log")))
        self.assertEqual(size % 1000, 0)


class WriterNode:
    """What power_off_together needs of an infra.Node, around a plain writer process."""

    def __init__(self, proc, lazy):
        self.id, self.proc, self.lazy = 1, proc, lazy
        self.stopped = self.killed = False

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def check_crash(self):
        return False


class PowerSchedule(unittest.TestCase):
    def test_power_all_names_every_node_and_outlasts_the_broker_sessions(self):
        kinds = nemesis.parse_families("power")
        episodes = [e for seed in range(1, 30)
                    for e in nemesis.draw_schedule(seed, kinds, 3, 60_000)
                    if e["fault"]["kind"] == "power-all"]
        self.assertTrue(episodes, "29 seeds draw some power-all")
        for episode in episodes:
            self.assertEqual(sorted(episode["fault"]["order"]), [1, 2, 3])
            # Shortened only by the end of the safety phase.
            self.assertTrue(episode["until_ms"] - episode["at_ms"] >= nemesis.POWER_ALL_HOLD_MS_MIN
                            or episode["until_ms"] == 60_000)

    def test_other_families_draw_the_schedules_they_drew_before(self):
        # power-all's rules take no draw of their own: CI's mixed seed keeps its schedule.
        schedule = nemesis.draw_schedule(27, nemesis.parse_families("mixed"), 3, 90_000)
        self.assertEqual([e["fault"]["kind"] for e in schedule], [
            "rolling-restart", "isolate", "kill", "rolling-restart", "netem", "wipe", "pause",
            "wipe", "disk-full", "kill-leader-and-follower", "isolate-leader", "pause-leader",
            "pause"])
        self.assertEqual(schedule[0]["fault"]["gap_ms"], 500)


def tearDownModule():
    shutil.rmtree(os.path.dirname(infra.STATE_FILE), ignore_errors=True)


if __name__ == "__main__":
    unittest.main()


class GuardRoute(unittest.TestCase):
    """Once the bridge is gone, the subnet routes nowhere while the guard stands (Ctrl-C with
    clients still reconnecting), never through the default gateway."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (ip route)")
        if infra.run("ip", "-o", "link", "show", infra.BRIDGE, check=False).strip():
            self.skipTest("a run's bridge exists")

    def tearDown(self):
        infra.release_guard()

    def test_without_the_bridge_the_guard_answers_unreachable(self):
        addr = infra.node_addr(1)
        infra.guard_subnet()
        infra.guard_subnet()  # idempotent
        probe = subprocess.run(["ip", "route", "get", addr], capture_output=True, text=True,
                               check=False)
        self.assertNotEqual(probe.returncode, 0, probe.stdout)
        self.assertIn("No route to host", probe.stderr)
        self.assertNotIn(" via ", probe.stdout)
        infra.check_subnet_free()  # the guard is ours: no refusal
        infra.release_guard()
        routes = infra.run("ip", "-o", "route", "show", "to", "match", f"{infra.SUBNET}.0/24")
        self.assertNotIn("unreachable", routes)
