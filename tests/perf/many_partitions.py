#!/usr/bin/env python3
"""Many partitions on a local 3-node rill cluster (issue 12, item 10): how long until every
partition of TOPICS x PER_TOPIC (RF 3) has a leader, the replication connections between the
brokers, idle CPU and memory, Metadata latency for every topic, and how long a new 100-partition
topic takes to get its leaders. Prints one JSON line per binary; give several binaries to compare
them in the same run (the first is the baseline):

    python3 tests/perf/many_partitions.py BIN [BIN...] [--topics 10] [--per-topic 100]

Bounded: every wait has a timeout; each cluster is torn down when its measurement ends.
"""
import argparse
import json
import os
import statistics
import sys
import time

import re
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import LocalCluster  # noqa: E402

LEADERS_WAIT_S = 240
IDLE_SECONDS = 20
METADATA_CALLS = 100


def leaderless(admin, names):
    """Partitions of `names` without a leader (or not yet in the metadata)."""
    metadata = admin.list_topics(timeout=30)
    missing = 0
    for name, partitions in names.items():
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            missing += partitions
            continue
        missing += partitions - len([p for p in topic.partitions.values() if p.leader >= 0])
    return missing


def wait_for_leaders(admin, names):
    started = time.monotonic()
    while time.monotonic() - started < LEADERS_WAIT_S:
        if leaderless(admin, names) == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def gauge_sum(cluster, name):
    """A gauge from every node's /metrics, summed."""
    total = 0
    for node in range(1, cluster.brokers + 1):
        text = urllib.request.urlopen(cluster.metrics_url(node), timeout=10).read().decode()
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        total += float(match.group(1)) if match else 0
    return int(total)


def first_acks(bootstrap, topic, partitions):
    """Seconds until one acks=all record in each partition of `topic` is acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "message.timeout.ms": LEADERS_WAIT_S * 1000})
    acked = []
    started = time.monotonic()
    for partition in range(partitions):
        producer.produce(topic, value=b"x", partition=partition,
                         on_delivery=lambda error, _m: acked.append(error is None))
    producer.flush(LEADERS_WAIT_S)
    if len(acked) == partitions and all(acked):
        return round(time.monotonic() - started, 2)
    return None


def measure(rill, base_port, topics, per_topic):
    with LocalCluster(rill, base_port) as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        names = {f"many-{i}": per_topic for i in range(topics)}
        started = time.monotonic()
        for name in names:
            cluster.create_topic(name, per_topic)
        created_s = round(time.monotonic() - started, 1)
        leaders_s = wait_for_leaders(admin, names)
        all_acked_s = first_acks(cluster.bootstrap, "many-0", per_topic)
        time.sleep(5)
        before = cluster.cpu_seconds()
        time.sleep(IDLE_SECONDS)
        idle_cores = (cluster.cpu_seconds() - before) / IDLE_SECONDS
        latencies = []
        for _ in range(METADATA_CALLS):
            call = time.monotonic()
            admin.list_topics(timeout=30)
            latencies.append((time.monotonic() - call) * 1000)
        latencies.sort()
        started = time.monotonic()
        cluster.create_topic("many-new", 100)
        new_topic_s = wait_for_leaders(admin, {"many-new": 100})
        new_topic_s = new_topic_s and round(time.monotonic() - started, 1)
        new_topic_acked_s = first_acks(cluster.bootstrap, "many-new", 100)
        new_topic_acked_s = new_topic_acked_s and round(time.monotonic() - started, 1)
        return {
            "binary": rill,
            "partitions": topics * per_topic,
            "create_s": created_s,
            "all_leaders_s": leaders_s,
            "first_topic_acked_s": all_acked_s,
            "peer_connections": cluster.peer_connections(),
            "idle_cores": round(idle_cores, 3),
            "rss_mib": cluster.rss_mib(),
            "metadata_ms_p50": round(statistics.median(latencies), 1),
            "metadata_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "new_100_partition_topic_leaders_s": new_topic_s,
            "new_100_partition_topic_acked_s": new_topic_acked_s,
            "replicas_hosted": gauge_sum(cluster, "rill_partitions"),
            "replicas_leading": gauge_sum(cluster, "rill_partitions_leader"),
            "under_replicated": gauge_sum(cluster, "rill_partitions_under_replicated"),
            "load_average": os.getloadavg()[0],
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--per-topic", type=int, default=100)
    parser.add_argument("--base-port", type=int, default=19400)
    options = parser.parse_args()
    for rill in options.binaries:
        print(json.dumps(measure(rill, options.base_port, options.topics, options.per_topic)),
              flush=True)


if __name__ == "__main__":
    main()
