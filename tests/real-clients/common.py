"""Shared helpers of the real-client checks: verdict lines and cluster waits.

Every check prints one `PASS name: figures` or `FAIL name: why` line; the driver (`run.sh`) counts
them. Figures go on the same line so a CI log reads as a table.
"""

import json
import sys
import time

# Checks that failed in this process; `finish()` turns them into the exit status.
_failures = []


def verdict(name, ok, detail):
    """Prints one PASS/FAIL line for check `name` and remembers a failure."""
    # One write per line: stdout and stderr share the CI log, and print() writes the line and its
    # newline separately, which lets the other stream land in between.
    sys.stdout.write(f"{'PASS' if ok else 'FAIL'} {name}: {detail}\n")
    sys.stdout.flush()
    if not ok:
        _failures.append(name)
    return ok


def finish():
    """Exits 1 if any check of this process failed, else 0."""
    sys.exit(1 if _failures else 0)


def log(message):
    """Progress to stderr, kept apart from the verdict lines on stdout."""
    sys.stderr.write(f"  .. {message}\n")
    sys.stderr.flush()


def cluster_file(directory):
    """The `rill cluster up` record: pids and bootstrap addresses, by node (node id = index + 1)."""
    with open(f"{directory}/cluster.json", encoding="utf-8") as handle:
        return json.load(handle)


def set_pid(directory, node_id, pid):
    """Records a restarted node's pid so `rill cluster down` stops it too."""
    record = cluster_file(directory)
    record["pids"][node_id - 1] = pid
    with open(f"{directory}/cluster.json", "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)


def wait_for(what, predicate, timeout_s, interval_s=0.2):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout_s` passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except Exception as error:  # noqa: BLE001 - a cluster still starting raises many kinds
            value = None
            last = error
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            log(f"gave up waiting for {what} after {timeout_s} s (last error: {last})")
            return None
        time.sleep(interval_s)


def topic_leaders(admin, topic):
    """{partition: leader node id} of `topic` from a metadata request, or None if any is leaderless."""
    metadata = admin.list_topics(topic=topic, timeout=5)
    entry = metadata.topics.get(topic)
    if entry is None or entry.error is not None or not entry.partitions:
        return None
    leaders = {p: meta.leader for p, meta in entry.partitions.items()}
    if any(leader < 0 for leader in leaders.values()):
        return None
    return leaders


def leaders_on_every_broker(bootstrap, topic, count):
    """{partition: leader} of `topic` once the metadata of every broker in `bootstrap` has its
    `count` partitions led, else None. A new client asks whichever broker it reaches first, and a
    broker applies a metadata change a little after the controller commits it (as Kafka's do)."""
    from confluent_kafka.admin import AdminClient  # only the confluent-kafka scripts call this

    seen = None
    for address in bootstrap.split(","):
        admin = AdminClient({"bootstrap.servers": address})
        leaders = topic_leaders(admin, topic)
        if leaders is None or len(leaders) != count:
            return None
        seen = leaders
    return seen


def create_topic(admin, topic, partitions=3, replication_factor=3):
    """Creates `topic` with confluent-kafka's admin client and waits until every partition has a
    leader. Returns the leaders, or None on failure (after printing why)."""
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
        request_timeout=15,
    )
    try:
        futures[topic].result(timeout=20)
    except Exception as error:  # noqa: BLE001 - reported as the failure detail
        log(f"create_topics({topic}) failed: {error}")
        return None
    return wait_for(f"leaders of {topic}", lambda: topic_leaders(admin, topic), 30)
