"""kafka-python (a pure-Python client, its own protocol code) against a running rill cluster.

Usage: kafka_python_checks.py BOOTSTRAP

1. the admin client creates a topic, it shows in the metadata, deletes it, it is gone;
2. a producer (acks=all) writes 300 records, a consumer reads them all back in order per partition.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from common import finish, log, verdict, wait_for

ADMIN_TOPIC = "rc-kafka-python-admin"
TOPIC = "rc-kafka-python"
RECORDS = 300
TIMEOUT_S = 30


def check_admin(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rc-admin", request_timeout_ms=15000)
    started = time.monotonic()
    error = None
    try:
        admin.create_topics([NewTopic(ADMIN_TOPIC, num_partitions=2, replication_factor=3)], timeout_ms=15000)
    except Exception as caught:  # noqa: BLE001 - reported as the failure detail
        error = f"create: {caught!r}"
    created = wait_for("topic listed", lambda: ADMIN_TOPIC in admin.list_topics(), TIMEOUT_S)
    created_s = time.monotonic() - started
    try:
        admin.delete_topics([ADMIN_TOPIC], timeout_ms=15000)
    except Exception as caught:  # noqa: BLE001
        error = (error or "") + f" delete: {caught!r}"
    gone = wait_for("topic gone", lambda: ADMIN_TOPIC not in admin.list_topics(), TIMEOUT_S)
    admin.close()
    verdict(
        "kafka-python admin create/delete topic",
        bool(created) and bool(gone) and error is None,
        f"created and listed in {created_s:.2f} s: {bool(created)}, deleted and gone: {bool(gone)}, "
        f"error {error}",
    )


def check_round_trip(bootstrap):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=None, linger_ms=5)
    started = time.monotonic()
    futures = [producer.send(TOPIC, key=f"k{i % 11}".encode(), value=f"kp-{i}".encode()) for i in range(RECORDS)]
    producer.flush(TIMEOUT_S)
    acked, errors = {}, []
    for i, future in enumerate(futures):
        try:
            metadata = future.get(timeout=TIMEOUT_S)
            acked[f"kp-{i}"] = (metadata.partition, metadata.offset)
        except Exception as caught:  # noqa: BLE001
            errors.append(repr(caught))
    producer.close()
    produce_s = time.monotonic() - started

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    partitions = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    read = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=500).values():
            read.extend((r.partition, r.offset, r.value.decode()) for r in records)
    consumer.close()
    values = [v for _, _, v in read]
    placed = all(acked.get(v) == (p, o) for p, o, v in read)
    verdict(
        "kafka-python produce/consume round trip",
        len(acked) == RECORDS and not errors and sorted(values) == sorted(acked) and placed,
        f"{len(acked)}/{RECORDS} acked in {produce_s:.2f} s over {len(partitions)} partitions, "
        f"read back {len(read)}, each at its acked offset: {placed}, errors {errors[:3]}",
    )


def main():
    bootstrap = sys.argv[1]
    log("kafka-python admin")
    check_admin(bootstrap)
    log("kafka-python round trip")
    check_round_trip(bootstrap)
    finish()


if __name__ == "__main__":
    main()
