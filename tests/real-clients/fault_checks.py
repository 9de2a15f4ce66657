"""Fault test: SIGKILL the leader of partition 0 under a continuous acks=all producer, restart it,
and check that every acknowledged record is read back exactly once at its acknowledged offset.

Usage: fault_checks.py BOOTSTRAP CLUSTER_DIR RILL_BINARY

The producer is librdkafka (confluent-kafka) with idempotence on, so retries across the failover
must not duplicate. Records that were never acknowledged (delivery error) may or may not be in the
log, but never twice.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from common import cluster_file, create_topic, finish, log, set_pid, topic_leaders, verdict, wait_for

TOPIC = "rc-fault"
# Phases of the producer's run, in seconds: before the kill, killed, after the restart.
BEFORE_KILL_S = 3.0
DOWN_S = 4.0
AFTER_RESTART_S = 8.0
# Bounds: the producer's per-record deadline and the read-back.
MESSAGE_TIMEOUT_MS = 60000
READ_TIMEOUT_S = 60
# Records per second, roughly: the producer sleeps between records.
PRODUCE_INTERVAL_S = 0.002


class ContinuousProducer(threading.Thread):
    """Produces `fault-i` records, keyed, until told to stop; remembers every delivery report."""

    def __init__(self, bootstrap):
        super().__init__(name="producer", daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "none",
                "linger.ms": 5,
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            }
        )
        self.acked = {}  # value -> (partition, offset)
        self.failed = {}  # value -> error
        self.sent = 0
        self.stop = threading.Event()

    def on_delivery(self, error, message):
        value = message.value().decode()
        if error is None:
            self.acked[value] = (message.partition(), message.offset())
        else:
            self.failed[value] = str(error)

    def run(self):
        while not self.stop.is_set():
            try:
                self.producer.produce(
                    TOPIC, key=f"k{self.sent % 53}", value=f"fault-{self.sent}", on_delivery=self.on_delivery
                )
                self.sent += 1
            except BufferError:
                pass  # queue full while the leader is away: poll and retry
            self.producer.poll(0)
            time.sleep(PRODUCE_INTERVAL_S)
        self.remaining = self.producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 10)


def read_all(bootstrap):
    """Every record of TOPIC up to each partition's high watermark: [(partition, offset, value)]."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "rc-fault-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(3)}
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(3)])
    records, positions = [], {p: 0 for p in range(3)}
    deadline = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline and any(positions[p] < ends[p] for p in range(3)):
        for message in consumer.consume(num_messages=500, timeout=0.5):
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log(f"read error: {message.error()}")
                continue
            records.append((message.partition(), message.offset(), message.value().decode()))
            positions[message.partition()] = message.offset() + 1
    consumer.close()
    return records, ends


def main():
    bootstrap, directory, rill = sys.argv[1], sys.argv[2], sys.argv[3]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    leaders = create_topic(admin, TOPIC)
    if not verdict("fault create topic", leaders is not None, f"{TOPIC} leaders {leaders}"):
        finish()
    victim = leaders[0]
    pid = cluster_file(directory)["pids"][victim - 1]

    producer = ContinuousProducer(bootstrap)
    producer.start()
    time.sleep(BEFORE_KILL_S)
    acked_before = len(producer.acked)
    log(f"SIGKILL node {victim} (pid {pid}), leader of partition 0, after {acked_before} acks")
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def moved():
        current = topic_leaders(admin, TOPIC)
        return current if current and current[0] != victim else None

    new_leaders = wait_for("a new leader of partition 0", moved, 30)
    failover_s = time.monotonic() - killed_at
    time.sleep(max(0.0, DOWN_S - failover_s))
    with open(f"{directory}/node-{victim}.log", "a", encoding="utf-8") as node_log:
        restarted = subprocess.Popen(  # noqa: S603 - our own binary
            [rill, "broker", "--config", f"{directory}/node-{victim}.toml"],
            stdin=subprocess.DEVNULL,
            stdout=node_log,
            stderr=node_log,
            start_new_session=True,
        )
    set_pid(directory, victim, restarted.pid)
    log(f"restarted node {victim} as pid {restarted.pid}")
    acked_at_restart = len(producer.acked)

    def in_isr_again():
        metadata = admin.list_topics(topic=TOPIC, timeout=5).topics[TOPIC]
        return all(victim in p.isrs for p in metadata.partitions.values())

    rejoined = wait_for(f"node {victim} back in every ISR", in_isr_again, 60)
    rejoin_s = time.monotonic() - killed_at
    time.sleep(AFTER_RESTART_S)
    producer.stop.set()
    producer.join(MESSAGE_TIMEOUT_MS / 1000 + 30)

    verdict(
        "fault leader failover",
        new_leaders is not None and len(producer.acked) > acked_at_restart > acked_before,
        f"killed node {victim}; partition 0 led by {new_leaders and new_leaders[0]} after {failover_s:.1f} s; "
        f"acks before kill {acked_before}, at restart {acked_at_restart}, at end {len(producer.acked)}",
    )
    verdict(
        "fault restarted node rejoins the ISR",
        bool(rejoined),
        f"node {victim} in every ISR {rejoin_s:.1f} s after the kill: {bool(rejoined)}",
    )

    records, ends = read_all(bootstrap)
    seen = {}
    for partition, offset, value in records:
        seen.setdefault(value, []).append((partition, offset))
    lost = [v for v in producer.acked if v not in seen]
    duplicated = {v: s for v, s in seen.items() if len(s) > 1}
    moved_offsets = [v for v, at in producer.acked.items() if v in seen and seen[v][0] != at]
    unknown = [v for v in seen if v not in producer.acked and v not in producer.failed]
    verdict(
        "fault every acked record read back exactly once",
        not lost and not duplicated and not moved_offsets and not unknown and producer.remaining == 0,
        f"sent {producer.sent}, acked {len(producer.acked)}, failed {len(producer.failed)} "
        f"({sorted(set(producer.failed.values()))[:2]}), read {len(records)} up to {ends}, "
        f"lost {len(lost)} {lost[:3]}, duplicated {len(duplicated)}, moved {len(moved_offsets)}, "
        f"never sent {len(unknown)}, unflushed {producer.remaining}",
    )
    finish()


if __name__ == "__main__":
    main()
