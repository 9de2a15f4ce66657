#!/usr/bin/env python3
"""CPU-seconds per GB produced on a local 3-node rill cluster (issue 12: the produce path's cost).

Starts `rill cluster up` with RILL_BIN, creates a topic (PARTITIONS partitions, RF 3, min ISR 2),
produces RECORDS records of 1 KiB with librdkafka (confluent-kafka; acks=all, idempotence,
linger 5 ms, batch.num.messages 10000, batch.size 1000000, no compression: the bench's producer)
and reads user + system CPU of every node from /proc/PID/stat before and after. Two phases on the
same cluster:

- `all`: records spread round-robin over every partition (each node leads about a third of them
  and follows the rest): CPU-seconds of the three nodes per GB of record values.
- `leader-only`: records sent only to the partitions node 1 leads, so node 1's CPU is a leader's
  cost and the other two nodes' CPU is the followers' cost.

Wall-clock throughput is left out on purpose: on a shared machine it measures the neighbours.
Prints one JSON object, with the load average before and after each phase.

    RILL_BIN=target/release/rill python3 tests/perf/cpu_probe.py [RECORDS] [PARTITIONS]

`RILL_PROBE_PHASES=all` or `leader-only` runs one phase; `RILL_PROBE_PAUSE=S` sleeps S seconds
after printing the node pids (to attach `perf record -p PID`) before each phase.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import CLOCK_TICKS, LocalCluster  # noqa: E402
from rdkafka_bench import PRODUCER as BENCH_PRODUCER  # noqa: E402

BASE_PORT = int(os.environ.get("RILL_PROBE_PORT", "19500"))
# The bench's producer, with a longer delivery timeout for the bigger runs here.
PRODUCER = {**BENCH_PRODUCER, "message.timeout.ms": 120000}


def log(text):
    print(f"cpu_probe: {text}", file=sys.stderr, flush=True)


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def loadavg():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def leaders(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _ in range(120):
        meta = admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and len(meta.partitions) == partitions and all(
                p.leader >= 0 for p in meta.partitions.values()):
            return {p.id: p.leader for p in meta.partitions.values()}
        time.sleep(0.5)
    raise RuntimeError("partitions without a leader")


def produce(bootstrap, topic, targets, records):
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    value = b"x" * 1024
    done = [0, 0]

    def on_delivery(error, _message):
        done[0 if error is None else 1] += 1

    # One record per target partition first, so every connection and fetcher is up.
    for partition in targets:
        producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
    if producer.flush(120) != 0:
        raise RuntimeError("first records not acknowledged")
    done[0] = done[1] = 0
    return producer, value, done, on_delivery


def run_phase(cluster, name, topic, targets, records, node_ids):
    producer, value, done, on_delivery = produce(cluster.bootstrap, topic, targets, records)
    pause = float(os.environ.get("RILL_PROBE_PAUSE", "0"))
    if pause:
        log(f"phase {name}: pids {dict(zip(node_ids, cluster.pids))}, sleeping {pause} s")
        time.sleep(pause)
    time.sleep(1)
    load_before = loadavg()
    before = [cpu_of(pid) for pid in cluster.pids]
    started = time.monotonic()
    sent = 0
    while sent < records:
        try:
            producer.produce(topic, value=value, partition=targets[sent % len(targets)],
                             on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.001)
            continue
        if sent % 1000 == 0:
            producer.poll(0)
    if producer.flush(300) != 0:
        raise RuntimeError("records not acknowledged in time")
    elapsed = time.monotonic() - started
    after = [cpu_of(pid) for pid in cluster.pids]
    load_after = loadavg()
    if done[0] != records or done[1] != 0:
        raise RuntimeError(f"acknowledged {done[0]}, failed {done[1]} of {records}")
    gigabytes = records * len(value) / 1e9
    per_node = {str(node): round((a - b) / gigabytes, 2)
                for node, a, b in zip(node_ids, after, before)}
    return {
        "phase": name,
        "records": records,
        "partitions": len(targets),
        "cpu_s_per_gb": per_node,
        "cpu_s_per_gb_total": round(sum((a - b) for a, b in zip(after, before)) / gigabytes, 2),
        "seconds": round(elapsed, 1),
        "load_before": load_before,
        "load_after": load_after,
    }


def main():
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    phases = os.environ.get("RILL_PROBE_PHASES", "all,leader-only").split(",")
    rill = os.environ.get("RILL_BIN", "target/release/rill")
    results = []
    with LocalCluster(rill, BASE_PORT) as cluster:
        node_ids = list(range(1, cluster.brokers + 1))
        for phase in phases:
            topic = f"cpu-{phase}"
            cluster.create_topic(topic, partitions)
            led = leaders(cluster.bootstrap, topic, partitions)
            if phase == "all":
                targets = sorted(led)
            else:
                targets = sorted(p for p, leader in led.items() if leader == node_ids[0])
                if not targets:
                    raise RuntimeError(f"node {node_ids[0]} leads no partition of {topic}")
            result = run_phase(cluster, phase, topic, targets, records, node_ids)
            log(json.dumps(result))
            results.append(result)
    print(json.dumps({"rill": rill, "results": results}))


if __name__ == "__main__":
    main()
