#!/usr/bin/env python3
"""Counts fsyncs per acknowledged Produce on a local 3-node rill cluster (issue 12's measure).

Starts `rill cluster up` with RILL_BIN, creates a topic (6 partitions, RF 3, min ISR 2), attaches
`strace -f -c` (fsync, fdatasync, sync_file_range, rename) to every node, produces
MESSAGES records of 1 KiB with librdkafka (confluent-kafka, acks=all, linger 5 ms), and prints
one JSON line: records/s, Produce requests acknowledged (from the nodes' own metrics) and syscalls
per acknowledged Produce. Bounded: every wait has a timeout; the cluster is torn down at the end.

    RILL_BIN=target/release/rill python3 tests/perf/fsync_probe.py [MESSAGES] [PARTITIONS]
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import LocalCluster  # noqa: E402

BASE_PORT = int(os.environ.get("RILL_PROBE_PORT", "19300"))
SYSCALLS = os.environ.get("RILL_PROBE_SYSCALLS", "fsync,fdatasync,sync_file_range,rename")


def produce_requests(cluster):
    total = 0
    for node in range(1, cluster.brokers + 1):
        url = cluster.metrics_url(node)
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for match in re.finditer(r'rill_requests_total\{api="Produce"\} (\d+)', text):
            total += int(match.group(1))
    return total


def strace_counts(output):
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in SYSCALLS.split(","):
            counts[parts[-1]] = int(parts[3])
    return counts


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    rill = os.environ.get("RILL_BIN", "target/release/rill")
    tracers = []
    with LocalCluster(rill, BASE_PORT) as cluster:
        try:
            probe(cluster, rill, messages, partitions, tracers)
        finally:
            for tracer in tracers:
                tracer.kill()


def probe(cluster, rill, messages, partitions, tracers):
    cluster.create_topic("probe", partitions)
    time.sleep(3)
    for pid in cluster.pids:
        tracers.append(subprocess.Popen(
            ["strace", "-f", "-c", "-e", f"trace={SYSCALLS}", "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    time.sleep(1)
    before = produce_requests(cluster)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5,
                         "enable.idempotence": True, "compression.type": "none",
                         "batch.num.messages": int(os.environ.get("RILL_PROBE_BATCH", "100"))})
    value = b"x" * 1024
    delivered = [0]

    def on_delivery(error, _message):
        if error is None:
            delivered[0] += 1

    started = time.monotonic()
    for i in range(messages):
        while True:
            try:
                producer.produce("probe", value=value, key=str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    elapsed = time.monotonic() - started
    requests = produce_requests(cluster) - before
    counts = {}
    for tracer in tracers:
        tracer.send_signal(signal.SIGINT)
        _, err = tracer.communicate(timeout=30)
        for name, count in strace_counts(err).items():
            counts[name] = counts.get(name, 0) + count
    tracers.clear()
    syncs = counts.get("fsync", 0) + counts.get("fdatasync", 0)
    print(json.dumps({
        "binary": rill, "messages": messages, "partitions": partitions,
        "delivered": delivered[0], "seconds": round(elapsed, 2),
        "records_per_s": round(delivered[0] / elapsed),
        "produce_requests": requests, "syscalls": counts,
        "fsyncs_per_produce": round(syncs / max(requests, 1), 2),
        "load_average": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
