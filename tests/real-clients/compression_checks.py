"""Compressed produce and consume with real clients against a running rill cluster.

Usage: compression_checks.py BOOTSTRAP

For each codec librdkafka writes (gzip, snappy, lz4, zstd): confluent-kafka produces 2,000 keyed
records, idempotent with acks=all, into a topic of its own; every record is delivered, a consumer
reads every one back exactly once with its key and value intact. kafka-python (its own codecs:
gzip always, snappy/lz4/zstd when their Python modules are installed) produces and reads back
200 records per codec it has. Figures on each line: records, seconds, what went missing.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from common import create_topic, finish, log, verdict

CODECS = ["gzip", "snappy", "lz4", "zstd"]
RECORDS = 2000
KAFKA_PYTHON_RECORDS = 200
PHASE_TIMEOUT_S = 60


def value_of(codec, i):
    # Compressible but not trivially: a counter and a repeated phrase.
    return f"{codec}-{i}-" + "the quick brown fox " * (1 + i % 5)


def produce(bootstrap, topic, codec):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": codec,
        "linger.ms": 20,
        "message.timeout.ms": 30000,
    })
    delivered, errors = {}, []

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            delivered[message.value().decode()] = (message.partition(), message.offset())

    for i in range(RECORDS):
        producer.produce(topic, key=f"key-{i}", value=value_of(codec, i), on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(PHASE_TIMEOUT_S)
    if remaining:
        errors.append(f"{remaining} records still queued after {PHASE_TIMEOUT_S} s")
    return delivered, errors


def consume(bootstrap, topic, expected):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-reader",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    consumer.subscribe([topic])
    seen, errors = {}, []
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while len(seen) < expected and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=0.5):
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(str(message.error()))
                continue
            value = message.value().decode()
            seen.setdefault(value, []).append((message.partition(), message.offset(), message.key().decode()))
    time.sleep(0.5)
    for message in consumer.consume(num_messages=500, timeout=0.5):
        if message.error() is None:
            value = message.value().decode()
            seen.setdefault(value, []).append((message.partition(), message.offset(), message.key().decode()))
    consumer.close()
    return seen, errors


def check_confluent(bootstrap, admin, codec):
    topic = f"rc-compressed-{codec}"
    if create_topic(admin, topic) is None:
        verdict(f"confluent {codec} produce/consume", False, f"could not create {topic}")
        return
    started = time.monotonic()
    delivered, produce_errors = produce(bootstrap, topic, codec)
    produced_s = time.monotonic() - started
    seen, consume_errors = consume(bootstrap, topic, len(delivered))
    consumed_s = time.monotonic() - started - produced_s
    duplicates = sum(1 for s in seen.values() if len(s) > 1)
    missing = sorted(set(delivered) - set(seen))
    misplaced = [v for v, s in seen.items() if v in delivered and (s[0][0], s[0][1]) != delivered[v]]
    bad_keys = [v for v, s in seen.items() if f"key-{v.split('-')[1]}" != s[0][2]]
    verdict(
        f"confluent {codec} produce/consume",
        len(delivered) == RECORDS and not produce_errors and len(seen) == RECORDS and not duplicates
        and not missing and not misplaced and not bad_keys and not consume_errors,
        f"{len(delivered)}/{RECORDS} delivered in {produced_s:.2f} s, {len(seen)} read back in "
        f"{consumed_s:.2f} s, missing {len(missing)}, duplicated {duplicates}, wrong offset "
        f"{len(misplaced)}, wrong key {len(bad_keys)}, errors {(produce_errors + consume_errors)[:3]}",
    )


def kafka_python_codecs():
    """The codecs kafka-python can write here (it needs a module per codec beyond gzip)."""
    from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

    return [c for c, ok in [("gzip", has_gzip()), ("snappy", has_snappy()), ("lz4", has_lz4()),
                            ("zstd", has_zstd())] if ok]


def check_kafka_python(bootstrap, admin, codec):
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"rc-compressed-kp-{codec}"
    if create_topic(admin, topic) is None:
        verdict(f"kafka-python {codec} produce/consume", False, f"could not create {topic}")
        return
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec, linger_ms=20)
    futures = [producer.send(topic, key=f"key-{i}".encode(), value=value_of(codec, i).encode())
               for i in range(KAFKA_PYTHON_RECORDS)]
    producer.flush(PHASE_TIMEOUT_S)
    errors = []
    for future in futures:
        try:
            future.get(timeout=PHASE_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - reported as the failure detail
            errors.append(str(error))
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    values = [m.value.decode() for m in consumer]
    consumer.close()
    expected = sorted(value_of(codec, i) for i in range(KAFKA_PYTHON_RECORDS))
    verdict(
        f"kafka-python {codec} produce/consume",
        not errors and sorted(values) == expected,
        f"{KAFKA_PYTHON_RECORDS - len(errors)}/{KAFKA_PYTHON_RECORDS} acknowledged, {len(values)} read "
        f"back, errors {errors[:3]}",
    )


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for codec in CODECS:
        log(f"confluent-kafka, compression.type={codec}")
        check_confluent(bootstrap, admin, codec)
    codecs = kafka_python_codecs()
    log(f"kafka-python codecs available: {codecs}")
    for codec in codecs:
        check_kafka_python(bootstrap, admin, codec)
    finish()


if __name__ == "__main__":
    main()
