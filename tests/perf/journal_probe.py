#!/usr/bin/env python3
"""What one fsync per partition file costs against one shared journal, on this disk.

Each round appends CHUNK bytes to each of FILES files (the segments of a broker's busy
partitions), then either fdatasyncs every file concurrently (rill's IO round today: a thread
per sync, at most 32 at once) or appends the same bytes once more to one journal file and
fdatasyncs only that (the plan in docs/design-notes.md, "A journal shared by a broker's
partitions"). Prints rounds/s, MB/s of partition data made durable, and the process's CPU per
round, for both, alternated twice. The segment pages the journal leaves dirty are written back
by the kernel later; that writeback is not in the process's CPU.

usage: journal_probe.py [DIR] [--chunk BYTES] [--files N] [--seconds S]
"""
import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def open_files(d, n):
    return [os.open(f"{d}/seg{i}", os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_TRUNC, 0o644)
            for i in range(n)]


def measure(d, chunk, nfiles, seconds, journal, pool):
    data = b"x" * chunk
    fds = open_files(d, nfiles)
    wal = os.open(f"{d}/journal", os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_TRUNC, 0o644)
    rounds = 0
    started = time.perf_counter()
    cpu0 = os.times()
    while time.perf_counter() - started < seconds:
        for fd in fds:
            os.write(fd, data)
        if journal:
            os.write(wal, data * nfiles)
            os.fdatasync(wal)
        else:
            list(pool.map(os.fdatasync, fds))
        rounds += 1
    elapsed = time.perf_counter() - started
    cpu1 = os.times()
    for fd in fds + [wal]:
        os.close(fd)
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / rounds * 1e6
    return rounds / elapsed, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", nargs="?", default=None)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    d = tempfile.mkdtemp(prefix="journal-probe-", dir=args.dir)
    try:
        print(f"load average {os.getloadavg()[0]:.2f}; {args.files} files, {args.chunk} B each per round, in {d}")
        with ThreadPoolExecutor(32) as pool:
            for journal in (False, True, False, True):
                rate, cpu = measure(d, args.chunk, args.files, args.seconds, journal, pool)
                name = "one journal fsync" if journal else "fsync per file"
                print(f"{name:18} {rate:8.1f} rounds/s {rate * args.chunk * args.files / 1e6:8.1f} MB/s "
                      f"{cpu:8.0f} us CPU per round")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
