#!/usr/bin/env python3
"""librdkafka (confluent-kafka) client side of `cargo run --release -p broker --example bench`.

The Rust example starts the brokers (and stops them); this script only talks Kafka to them and
prints one JSON object on stdout (progress goes to stderr). Three commands:

    rdkafka_bench.py produce --bootstrap B --topic T --partitions 6 --replication 3 \
        --record-bytes 1024 --seconds 10 --warmup 2
        peak: the producer's queue kept full for --seconds (after --warmup), records/s = records
        acknowledged inside that window / its length; then paced: an open loop at half that
        peak for --seconds, latency from each record's *scheduled* time to its delivery report.
    rdkafka_bench.py consume --bootstrap B --topic T --partitions 6 --replication 3 \
        --record-bytes 100 --seconds 10
        fills T for --seconds, then one consumer (assign, no group) reads every partition from
        offset 0 up to the acknowledged ends; the count is checked. records/s counts from the end
        of the first call that returned records (records_per_s_from_assign: from the assign).
    rdkafka_bench.py many --bootstrap B --topics 10 --per-topic 100 --replication 3 --pids 1,2,3
        creates topics x per-topic partitions, waits for leaders, sends one acks=all record to
        each partition of the first topic, then idle CPU of --pids over --idle-seconds and
        Metadata (list_topics() of every topic) latency over --metadata-calls calls.

Producer settings (every command): acks=all, enable.idempotence=true, linger.ms=5,
batch.num.messages=10000, batch.size=1000000, queue.buffering.max.messages=20000,
compression none; records are keyless and spread round-robin over the partitions (explicit
partition), so every partition gets its share (librdkafka's sticky partitioner would send
keyless records to one partition per 10 ms). Every wait is bounded.
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition,
                             libversion)
from confluent_kafka.admin import AdminClient, NewTopic

CREATE_WAIT_S = 120
FIRST_ACK_WAIT_S = 120
FLUSH_WAIT_S = 120
LEADERS_WAIT_S = 240
CONSUME_WAIT_S = 300
# How long the consumer waits to fetch a partition again once its local queue is full.
CONSUME_QUEUE_BACKOFF_MS = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "batch.size": 1000000,
    "queue.buffering.max.messages": 20000,
    "compression.type": "none",
    "message.timeout.ms": 60000,
}


def log(text):
    print(f"rdkafka_bench: {text}", file=sys.stderr, flush=True)


def create_topics(bootstrap, names, partitions, replication):
    """Creates `names`, retrying while the controller is still being elected."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    pending = list(names)
    deadline = time.monotonic() + CREATE_WAIT_S
    last_error = None
    while pending and time.monotonic() < deadline:
        futures = admin.create_topics(
            [NewTopic(name, partitions, replication) for name in pending], request_timeout=30)
        still = []
        for name, future in futures.items():
            try:
                future.result(60)
            except Exception as error:  # noqa: BLE001 - the controller may still be electing
                if "already exists" not in str(error).lower():
                    last_error = error
                    still.append(name)
        pending = still
        if pending:
            time.sleep(1)
    if pending:
        raise RuntimeError(f"could not create {len(pending)} topics: {last_error}")
    return admin


def wait_for_leaders(admin, names, partitions):
    """Seconds until every partition of `names` has a leader."""
    started = time.monotonic()
    while time.monotonic() - started < LEADERS_WAIT_S:
        metadata = admin.list_topics(timeout=30)
        missing = 0
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                missing += partitions
            else:
                missing += partitions - len(
                    [p for p in topic.partitions.values() if p.leader >= 0])
        if missing == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    raise RuntimeError(f"partitions without a leader after {LEADERS_WAIT_S} s")


class Tally:
    """Acknowledged records, failures, and per partition one past the highest acked offset."""

    def __init__(self, partitions):
        self.acked = 0
        self.failed = 0
        self.first_error = None
        self.ends = [0] * partitions

    def report(self, error, message):
        if error is None:
            self.acked += 1
            partition = message.partition()
            self.ends[partition] = max(self.ends[partition], message.offset() + 1)
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(error)


def new_producer(bootstrap, stats):
    def on_stats(text):
        stats["last"] = text

    config = dict(PRODUCER, **{"bootstrap.servers": bootstrap, "statistics.interval.ms": 1000,
                               "stats_cb": on_stats})
    return Producer(config)


def flush(producer):
    left = producer.flush(FLUSH_WAIT_S)
    if left:
        raise RuntimeError(f"{left} records still unanswered after {FLUSH_WAIT_S} s")


def first_acks(producer, topic, partitions, value, tally):
    """One record to each partition, retried until every partition acknowledged one."""
    started = time.monotonic()
    waiting = set(range(partitions))
    while waiting:
        if time.monotonic() - started > FIRST_ACK_WAIT_S:
            raise RuntimeError(f"partitions {sorted(waiting)[:10]} acknowledged nothing")
        answers = {}
        for partition in waiting:
            producer.produce(topic, value=value, partition=partition,
                             on_delivery=lambda e, m, p=partition: answers.__setitem__(p, e))
        producer.flush(FIRST_ACK_WAIT_S)
        for partition, error in answers.items():
            if error is None:
                waiting.discard(partition)
                tally.acked += 1
                tally.ends[partition] = max(tally.ends[partition], 1)
        if waiting:
            time.sleep(0.5)


def closed_loop(producer, topic, partitions, value, warmup, seconds, tally):
    """Keeps the producer's queue full for warmup + seconds; returns records/s acknowledged
    inside the last `seconds` (the measurement window)."""
    window = {"count": 0}
    started = time.monotonic()
    window_start = started + warmup
    window_end = window_start + seconds

    def on_delivery(error, message):
        tally.report(error, message)
        if error is None and window_start <= time.monotonic() < window_end:
            window["count"] += 1

    index = 0
    while time.monotonic() < window_end:
        try:
            producer.produce(topic, value=value, partition=index % partitions,
                             on_delivery=on_delivery)
            index += 1
            if index % 256 == 0:
                producer.poll(0)
        except BufferError:
            producer.poll(0.001)
    flush(producer)
    return window["count"] / seconds


def open_loop(producer, topic, partitions, value, rate, seconds, tally):
    """Offers `rate` records/s for `seconds` on a fixed schedule; each latency runs from the
    record's scheduled time to its delivery report (no coordinated omission)."""
    total = int(rate * seconds)
    latencies = []
    lags = []
    saturated = False

    def on_delivery_at(scheduled):
        def on_delivery(error, message):
            tally.report(error, message)
            if error is None:
                latencies.append(time.perf_counter() - scheduled)
        return on_delivery

    started = time.perf_counter()
    index = 0
    while index < total:
        now = time.perf_counter()
        while index < total:
            scheduled = started + index / rate
            if scheduled > now:
                break
            try:
                producer.produce(topic, value=value, partition=index % partitions,
                                 on_delivery=on_delivery_at(scheduled))
                # How late the driver itself handed the record over: if this grows, the
                # client (not the broker) is behind the schedule.
                lags.append(now - scheduled)
            except BufferError:
                saturated = True
                break
            index += 1
        if saturated:
            break
        next_due = started + index / rate
        producer.poll(max(0.0, min(next_due - time.perf_counter(), 0.001)))
    flush(producer)
    latencies.sort()
    lags.sort()

    def percentile(p, values=latencies):
        if not values:
            return None
        rank = min(max(int(-(-p * len(values) // 1)), 1), len(values))
        return round(values[rank - 1] * 1000, 3)

    return {"rate": round(rate, 1), "sent": index, "saturated": saturated,
            "p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
            "p999_ms": percentile(0.999), "max_ms": percentile(1.0),
            "send_lag_p99_ms": percentile(0.99, lags)}


def batch_bytes(stats, topic):
    """librdkafka's average MessageSet (batch) size for `topic` over its last stats window."""
    try:
        return json.loads(stats["last"])["topics"][topic]["batchsize"]["avg"]
    except (KeyError, TypeError, ValueError):
        return None


def command_produce(options):
    create_topics(options.bootstrap, [options.topic], options.partitions, options.replication)
    stats = {}
    producer = new_producer(options.bootstrap, stats)
    value = bytes(i % 251 for i in range(options.record_bytes))
    tally = Tally(options.partitions)
    first_acks(producer, options.topic, options.partitions, value, tally)
    log(f"{options.topic}: peak ({options.warmup} s warm-up, {options.seconds} s window)")
    peak = closed_loop(producer, options.topic, options.partitions, value, options.warmup,
                       options.seconds, tally)
    peak_batch = batch_bytes(stats, options.topic)
    if peak <= 0:
        raise RuntimeError(f"nothing acknowledged at peak: {tally.first_error}")
    log(f"{options.topic}: {peak:.0f} records/s; paced at {peak / 2:.0f} records/s")
    paced = open_loop(producer, options.topic, options.partitions, value, peak / 2,
                      options.seconds, tally)
    return {"records_per_s": round(peak, 1),
            "mb_per_s": round(peak * options.record_bytes / 1e6, 3),
            "batch_bytes_avg": peak_batch, "paced": paced, "acked": tally.acked,
            "failed": tally.failed, "first_error": tally.first_error}


def command_consume(options):
    create_topics(options.bootstrap, [options.topic], options.partitions, options.replication)
    stats = {}
    producer = new_producer(options.bootstrap, stats)
    value = bytes(i % 251 for i in range(options.record_bytes))
    tally = Tally(options.partitions)
    first_acks(producer, options.topic, options.partitions, value, tally)
    log(f"{options.topic}: filling for {options.seconds} s")
    closed_loop(producer, options.topic, options.partitions, value, 0, options.seconds, tally)
    expected = sum(tally.ends)
    log(f"{options.topic}: reading back {expected} records")
    # fetch.queue.backoff.ms: with librdkafka's default (1000 ms) a partition whose local queue
    # passed queued.min.messages (100,000 records: ten 1 MiB fetches of 100-byte records) waits a
    # whole second before it fetches again, while this loop drains the queue in a fraction of
    # that: the figure then measured that second, and how many records one fetch brings, more
    # than the broker. 10 ms lets the consumer fetch again soon after it drained the queue, as
    # the Java consumer does (it fetches a partition once its buffered records are consumed).
    consumer = Consumer({"bootstrap.servers": options.bootstrap, "group.id": "rill-bench",
                         "enable.auto.commit": False, "enable.partition.eof": False,
                         "fetch.queue.backoff.ms": CONSUME_QUEUE_BACKOFF_MS})
    try:
        consumer.assign([TopicPartition(options.topic, p, OFFSET_BEGINNING)
                         for p in range(options.partitions)])
        positions = [0] * options.partitions
        consumed = 0
        started = time.monotonic()
        # The steady rate counts from the end of the first call that returned records, and
        # leaves those records out (as kafka-consumer-perf-test's fetch rate leaves out the
        # time before its first records): what the bootstrap, the metadata round and the first
        # fetches cost is reported on its own (first_records_ms), and it weighs more the fewer
        # records a target filled.
        steady_from, steady_base = None, 0
        while any(position < end for position, end in zip(positions, tally.ends)):
            if time.monotonic() - started > CONSUME_WAIT_S:
                raise RuntimeError(f"consume stuck at {positions} of {tally.ends}")
            if steady_from is None and consumed > 0:
                steady_from, steady_base = time.monotonic(), consumed
            for message in consumer.consume(10000, 0.5):
                if message.error() is not None:
                    if message.error().retriable():
                        continue
                    raise KafkaException(message.error())
                partition, offset = message.partition(), message.offset()
                positions[partition] = max(positions[partition], offset + 1)
                if offset < tally.ends[partition]:
                    if len(message.value()) != options.record_bytes:
                        raise RuntimeError(f"record of {len(message.value())} bytes at "
                                           f"{partition}/{offset}")
                    consumed += 1
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    if consumed != expected or not tally.acked <= consumed <= tally.acked + tally.failed:
        raise RuntimeError(f"consumed {consumed}, expected {expected} (acked {tally.acked}, "
                           f"failed {tally.failed})")
    rate = consumed / elapsed
    if steady_from is not None and consumed > steady_base and started + elapsed > steady_from:
        steady = (consumed - steady_base) / (started + elapsed - steady_from)
        first_records_ms = (steady_from - started) * 1000
    else:
        steady, first_records_ms = rate, None
    return {"records_per_s": round(steady, 1),
            "mb_per_s": round(steady * options.record_bytes / 1e6, 3),
            "records_per_s_from_assign": round(rate, 1),
            "first_records_ms": None if first_records_ms is None else round(first_records_ms, 1),
            "consumed": consumed, "acked": tally.acked, "failed": tally.failed,
            "seconds": round(elapsed, 3)}


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def command_many(options):
    names = [f"many-{i}" for i in range(options.topics)]
    started = time.monotonic()
    admin = create_topics(options.bootstrap, names, options.per_topic, options.replication)
    create_s = round(time.monotonic() - started, 2)
    leaders_s = wait_for_leaders(admin, names, options.per_topic)
    log(f"{options.topics * options.per_topic} partitions led after {create_s + leaders_s:.1f} s")
    producer = new_producer(options.bootstrap, {})
    tally = Tally(options.per_topic)
    first_acks(producer, names[0], options.per_topic, b"x", tally)
    del producer
    time.sleep(options.settle_seconds)
    pids = [int(pid) for pid in options.pids.split(",") if pid]
    log(f"idle CPU over {options.idle_seconds} s")
    before = cpu_seconds(pids)
    time.sleep(options.idle_seconds)
    idle_cores = (cpu_seconds(pids) - before) / options.idle_seconds
    latencies = []
    seen = 0
    for _ in range(options.metadata_calls):
        call = time.perf_counter()
        metadata = admin.list_topics(timeout=30)
        latencies.append((time.perf_counter() - call) * 1000)
        seen = sum(len(metadata.topics[n].partitions) for n in names if n in metadata.topics)
    latencies.sort()
    expected = options.topics * options.per_topic
    if seen != expected:
        raise RuntimeError(f"Metadata listed {seen} of {expected} partitions")
    return {"partitions": expected, "create_s": create_s, "leaders_s": leaders_s,
            "brokers": len(pids), "idle_cores": round(idle_cores, 4),
            "idle_core_per_broker": round(idle_cores / max(len(pids), 1), 4),
            "metadata_p50_ms": round(latencies[len(latencies) // 2], 3),
            "metadata_p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 3),
            "metadata_calls": len(latencies)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume"):
        sub = commands.add_parser(name)
        sub.add_argument("--bootstrap", required=True)
        sub.add_argument("--topic", required=True)
        sub.add_argument("--partitions", type=int, required=True)
        sub.add_argument("--replication", type=int, required=True)
        sub.add_argument("--record-bytes", type=int, required=True)
        sub.add_argument("--seconds", type=float, required=True)
        sub.add_argument("--warmup", type=float, default=2)
    many = commands.add_parser("many")
    many.add_argument("--bootstrap", required=True)
    many.add_argument("--topics", type=int, default=10)
    many.add_argument("--per-topic", type=int, default=100)
    many.add_argument("--replication", type=int, required=True)
    many.add_argument("--pids", required=True)
    many.add_argument("--settle-seconds", type=float, default=5)
    many.add_argument("--idle-seconds", type=float, default=20)
    many.add_argument("--metadata-calls", type=int, default=100)
    options = parser.parse_args()
    run = {"produce": command_produce, "consume": command_consume, "many": command_many}
    result = run[options.command](options)
    result["load_average"] = os.getloadavg()[0]
    result["librdkafka"] = libversion()[0]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
