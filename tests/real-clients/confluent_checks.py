"""confluent-kafka (librdkafka 2.x) against a running rill cluster.

Usage: confluent_checks.py BOOTSTRAP

1. idempotent keyed produce, acks=all, 1,000 records: every one delivered, offsets dense;
2. a consumer group of two members reads everything exactly once, in per-partition order, and
   commits its offsets;
3. a restarted member of the same group resumes from the committed offsets: it reads no old
   record, then exactly the records produced after it joined.
"""

import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from common import create_topic, finish, log, verdict, wait_for

RECORDS = 1000
RECORDS_AFTER_RESTART = 100
TOPIC = "rc-confluent"
GROUP = "rc-confluent-group"
# Bound on every phase: a healthy cluster needs a few seconds.
PHASE_TIMEOUT_S = 60


def producer_config(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "none",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    }


def produce(bootstrap, prefix, count):
    """Produces `count` keyed records `prefix-i`; returns {value: (partition, offset)} of delivered
    records and the list of delivery errors."""
    producer = Producer(producer_config(bootstrap))
    delivered, errors = {}, []

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            delivered[message.value().decode()] = (message.partition(), message.offset())

    for i in range(count):
        producer.produce(TOPIC, key=f"key-{i % 37}", value=f"{prefix}-{i}", on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(PHASE_TIMEOUT_S)
    if remaining:
        errors.append(f"{remaining} records still queued after {PHASE_TIMEOUT_S} s")
    return delivered, errors


def check_produce(bootstrap):
    started = time.monotonic()
    delivered, errors = produce(bootstrap, "old", RECORDS)
    seconds = time.monotonic() - started
    per_partition = {}
    for partition, offset in delivered.values():
        per_partition.setdefault(partition, []).append(offset)
    dense = all(sorted(o) == list(range(len(o))) for o in per_partition.values())
    counts = {p: len(o) for p, o in sorted(per_partition.items())}
    verdict(
        "confluent idempotent produce",
        len(delivered) == RECORDS and not errors and dense,
        f"{len(delivered)}/{RECORDS} delivered in {seconds:.2f} s, per partition {counts}, "
        f"offsets dense from 0: {dense}, errors {errors[:3]}",
    )
    return delivered


def consumer_config(bootstrap, member):
    return {
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "client.id": member,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
    }


class Member(threading.Thread):
    """One group member: waits for its assignment (paused, so nothing is read before the group is
    stable), then reads and commits synchronously after every batch until told to stop."""

    def __init__(self, bootstrap, name, go):
        super().__init__(name=name, daemon=True)
        self.consumer = Consumer(consumer_config(bootstrap, name))
        self.go = go
        self.assignment = set()
        self.records = []  # (partition, offset, value) in delivery order
        self.errors = []
        self.commit_failures = 0
        self.stop = threading.Event()

    def on_assign(self, consumer, partitions):
        self.assignment = {p.partition for p in partitions}
        consumer.assign(partitions)
        if not self.go.is_set():
            consumer.pause(partitions)

    def on_revoke(self, consumer, partitions):
        self.assignment = set()

    def run(self):
        self.consumer.subscribe([TOPIC], on_assign=self.on_assign, on_revoke=self.on_revoke)
        resumed = False
        while not self.stop.is_set():
            if self.go.is_set() and not resumed:
                self.consumer.resume(self.consumer.assignment())
                resumed = True
            batch = self.consumer.consume(num_messages=200, timeout=0.2)
            for message in batch:
                if message.error() is not None:
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        self.errors.append(str(message.error()))
                    continue
                self.records.append((message.partition(), message.offset(), message.value().decode()))
            if batch:
                try:
                    self.consumer.commit(asynchronous=False)
                except Exception as error:  # noqa: BLE001 - counted and reported
                    self.commit_failures += 1
                    self.errors.append(f"commit: {error}")
        self.consumer.close()


def check_group(bootstrap, delivered):
    go = threading.Event()
    members = [Member(bootstrap, f"member-{i}", go) for i in range(2)]
    for member in members:
        member.start()

    def stable():
        sets = [m.assignment for m in members]
        return all(sets) and not (sets[0] & sets[1]) and len(sets[0] | sets[1]) == 3

    started = time.monotonic()
    assigned = wait_for("both members assigned", stable, PHASE_TIMEOUT_S)
    join_s = time.monotonic() - started
    assignments = [sorted(m.assignment) for m in members]
    go.set()
    wait_for("all records consumed", lambda: sum(len(m.records) for m in members) >= RECORDS, PHASE_TIMEOUT_S)
    time.sleep(1.0)  # a little longer: anything read twice shows up now
    for member in members:
        member.stop.set()
    for member in members:
        member.join(PHASE_TIMEOUT_S)
    read_s = time.monotonic() - started - join_s

    seen = {}
    for member in members:
        for partition, offset, value in member.records:
            seen.setdefault(value, []).append((partition, offset, member.name))
    duplicates = {v: s for v, s in seen.items() if len(s) > 1}
    missing = sorted(set(delivered) - set(seen))
    misplaced = [v for v, s in seen.items() if v in delivered and (s[0][0], s[0][1]) != delivered[v]]
    in_order = all(
        [o for p, o, _ in m.records if p == partition] == sorted(o for p, o, _ in m.records if p == partition)
        for m in members
        for partition in range(3)
    )
    errors = [e for m in members for e in m.errors]
    verdict(
        "confluent group of two reads everything exactly once",
        bool(assigned) and not duplicates and not missing and not misplaced and in_order and not errors,
        f"assignments {assignments} after {join_s:.2f} s, read {[len(m.records) for m in members]} "
        f"in {read_s:.2f} s, missing {len(missing)}, duplicated {len(duplicates)}, "
        f"at the wrong offset {len(misplaced)}, per-partition order kept {in_order}, errors {errors[:3]}",
    )
    return members


def check_committed(bootstrap):
    """The group's committed offsets equal the partitions' end offsets."""
    consumer = Consumer(consumer_config(bootstrap, "offset-reader"))
    from confluent_kafka import TopicPartition

    partitions = [TopicPartition(TOPIC, p) for p in range(3)]
    committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(3)}
    consumer.close()
    verdict(
        "confluent offsets committed",
        committed == ends and sum(ends.values()) == RECORDS,
        f"committed {committed}, end offsets {ends}",
    )


def check_resume(bootstrap):
    """A new member of the same group starts at the committed offsets: no old record, then every
    record produced after it was assigned."""
    go = threading.Event()
    go.set()
    member = Member(bootstrap, "member-restarted", go)
    member.start()
    assigned = wait_for("restarted member assigned", lambda: len(member.assignment) == 3, PHASE_TIMEOUT_S)
    time.sleep(1.0)  # time to (wrongly) read old records, if it would
    old_read = len(member.records)
    delivered, errors = produce(bootstrap, "new", RECORDS_AFTER_RESTART)
    wait_for("new records consumed", lambda: len(member.records) >= old_read + len(delivered), PHASE_TIMEOUT_S)
    time.sleep(0.5)
    member.stop.set()
    member.join(PHASE_TIMEOUT_S)
    values = [v for _, _, v in member.records]
    old = [v for v in values if v.startswith("old-")]
    new = sorted(v for v in values if v.startswith("new-"))
    verdict(
        "confluent restarted consumer resumes from committed offsets",
        bool(assigned) and not old and new == sorted(delivered) and len(delivered) == RECORDS_AFTER_RESTART
        and not errors and not member.errors,
        f"old records read {len(old)}, new records {len(new)}/{RECORDS_AFTER_RESTART} "
        f"(delivered {len(delivered)}), errors {(errors + member.errors)[:3]}",
    )


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if not verdict("confluent create topic", create_topic(admin, TOPIC) is not None, f"{TOPIC}, 3 partitions, RF 3"):
        finish()
    delivered = check_produce(bootstrap)
    log("consumer group of two")
    check_group(bootstrap, delivered)
    check_committed(bootstrap)
    log("restarted consumer")
    check_resume(bootstrap)
    finish()


if __name__ == "__main__":
    main()
