"""Fetch from followers (KIP-392) with confluent-kafka (librdkafka 2.16) against `cluster up
--racks`: node N is in rack RACK<N> with the rack-aware replica selector. A consumer whose
`client.rack` is a follower's rack reads every record, and that follower's metrics count the
consumer fetches it served (`rill_fetch_from_follower_total`); the leader counts none meanwhile.

Usage: follower_fetch_checks.py BOOTSTRAP
"""

import re
import sys
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import finish, log, verdict, wait_for

RECORDS = 200


def served_from_follower(address):
    """`rill_fetch_from_follower_total` of the node whose Kafka listener is `address`."""
    host, port = address.rsplit(":", 1)
    url = f"http://{host}:{int(port) + 2}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^rill_fetch_from_follower_total (\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main():
    bootstrap = sys.argv[1]
    addresses = bootstrap.split(",")
    topic = f"follower-fetch-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(RECORDS):
        producer.produce(topic, value=f"v{i}".encode())
    producer.flush(30)

    def full_isr():
        partition = admin.list_topics(topic, timeout=5).topics[topic].partitions[0]
        return partition if len(partition.isrs) == 3 and partition.leader >= 0 else None

    partition = wait_for("a full ISR", full_isr, 30)
    if not verdict("follower-fetch-isr", partition is not None, "3 replicas in sync"):
        return
    leader = partition.leader
    follower = min(r for r in partition.replicas if r != leader)
    before = served_from_follower(addresses[follower - 1])
    leader_before = served_from_follower(addresses[leader - 1])
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "client.rack": f"RACK{follower}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.monotonic() + 30
    while len(values) < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    in_order = values == [f"v{i}" for i in range(RECORDS)]
    served = served_from_follower(addresses[follower - 1]) - before
    # The leader serves its own partitions as a leader; as a follower of other topics it may
    # serve other clients meanwhile: only what changed during this consume counts.
    leader_served = served_from_follower(addresses[leader - 1]) - leader_before
    log(f"leader {leader}, follower {follower}: follower served {served} fetches")
    verdict(
        "follower-fetch",
        in_order and served > 0 and leader_served == 0,
        f"{len(values)}/{RECORDS} records in order from follower {follower} (leader {leader}): "
        f"{served} consumer fetches served by the follower, {leader_served} by the leader",
    )


if __name__ == "__main__":
    main()
    finish()
