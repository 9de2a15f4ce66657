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


if __name__ == "__main__":
    unittest.main()
