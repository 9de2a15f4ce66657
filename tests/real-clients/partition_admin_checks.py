"""ElectLeaders, DescribeLogDirs and DescribeProducers from third-party admin clients (issue 13
item 4), run after fault_checks.py: the node it killed and restarted is back in the ISR of
`rc-fault` but no longer leads the partitions it was preferred for.

Usage: partition_admin_checks.py BOOTSTRAP

1. confluent-kafka (librdkafka 2.16) `elect_leaders` PREFERRED on every partition of rc-fault:
   each partition whose preferred replica did not lead is elected (no error) and Metadata then
   shows every partition led by its first replica; asked again: ELECTION_NOT_NEEDED; UNCLEAN on a
   partition with a leader: ELECTION_NOT_NEEDED; an unknown partition: UNKNOWN_TOPIC_OR_PARTITION;
   a record produced after the election is read back;
2. kafka-python 3.0 `elect_leaders` (ElectLeaders v2) for every partition: nothing left to elect;
3. kafka-python `describe_log_dirs`: every broker reports its data directory and a non-zero size
   for each rc-fault partition it hosts, equal across a partition's in-sync replicas once idle;
4. kafka-python `describe_producers` (DescribeProducers v0): the idempotent producer of
   fault_checks.py is listed on partition 0 by its leader, with a sequence and a timestamp.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition

from common import finish, log, verdict, wait_for

TOPIC = "rc-fault"
TIMEOUT_S = 30


def first_replicas(admin):
    """{partition: (leader, first replica)} of TOPIC."""
    topic = admin.list_topics(topic=TOPIC, timeout=5).topics[TOPIC]
    return {p: (meta.leader, meta.replicas[0]) for p, meta in topic.partitions.items()}


def election_errors(future):
    """{partition: error code or 0} of a confluent-kafka elect_leaders future."""
    outcome = future.result(timeout=TIMEOUT_S)
    return {tp.partition: code_of(error) for tp, error in outcome.items()}


def code_of(error):
    """Kafka's error code of a confluent-kafka per-partition result (None: 0)."""
    if error is None:
        return 0
    if isinstance(error, KafkaException):
        error = error.args[0]
    return error.code()


def check_confluent_elections(bootstrap):
    from confluent_kafka import ElectionType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    before = first_replicas(admin)
    moved = sorted(p for p, (leader, first) in before.items() if leader != first)
    log(f"leaders before the election: {before}")
    started = time.monotonic()
    partitions = [CTopicPartition(TOPIC, p) for p in sorted(before)]
    errors = election_errors(admin.elect_leaders(ElectionType.PREFERRED, partitions))
    took = time.monotonic() - started
    expected = {p: (0 if p in moved else KafkaError.ELECTION_NOT_NEEDED) for p in before}
    after = wait_for(
        "every partition led by its first replica",
        lambda: (lambda now: now if all(l == f for l, f in now.values()) else None)(first_replicas(admin)),
        TIMEOUT_S,
    )
    verdict(
        "confluent-kafka elect_leaders PREFERRED",
        errors == expected and after is not None and moved,
        f"partitions elected {moved} (needs at least one: the fault check's restarted node), "
        f"errors {errors} (want {expected}) in {took * 1000:.0f} ms; leaders after {after}",
    )
    again = election_errors(admin.elect_leaders(ElectionType.PREFERRED, partitions))
    unclean = election_errors(admin.elect_leaders(ElectionType.UNCLEAN, partitions[:1]))
    unknown_error = None
    try:
        admin.elect_leaders(ElectionType.PREFERRED, [CTopicPartition(TOPIC, 99)]).result(timeout=TIMEOUT_S)
    except KafkaException as error:
        unknown_error = code_of(error)
    else:
        unknown = election_errors(admin.elect_leaders(ElectionType.PREFERRED, [CTopicPartition(TOPIC, 99)]))
        unknown_error = unknown.get(99)
    verdict(
        "confluent-kafka elect_leaders refusals",
        set(again.values()) == {KafkaError.ELECTION_NOT_NEEDED}
        and unclean == {0: KafkaError.ELECTION_NOT_NEEDED}
        and unknown_error == KafkaError.UNKNOWN_TOPIC_OR_PART,
        f"preferred again {again}, unclean with a leader {unclean}, partition 99 {unknown_error}",
    )
    # The elected leaders serve: an acks=all record to each partition is read back.
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    reports = []
    for p in sorted(before):
        producer.produce(TOPIC, value=f"after-election-{p}".encode(), partition=p,
                         on_delivery=lambda e, m: reports.append((e, m.partition(), m.offset())))
    producer.flush(TIMEOUT_S)
    delivered = {p: o for e, p, o in reports if e is None}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rc-partition-admin", "enable.auto.commit": False})
    consumer.assign([CTopicPartition(TOPIC, p, o) for p, o in delivered.items()])
    read = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(read) < len(delivered) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            read[message.partition()] = message.value().decode()
    consumer.close()
    verdict(
        "produce and consume after the election",
        len(delivered) == len(before) and all(read.get(p) == f"after-election-{p}" for p in delivered),
        f"delivered {delivered}, read {read}",
    )


def check_kafka_python(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    response = admin.elect_leaders(0, {TOPIC: [0, 1, 2]}, timeout_ms=10000, raise_errors=False)
    codes = sorted((p[0], p[1]) for _topic, results in response.replica_election_results for p in results)
    verdict(
        "kafka-python elect_leaders (ElectLeaders v2)",
        codes == [(0, 84), (1, 84), (2, 84)],
        f"(partition, error) {codes}: nothing left to elect",
    )

    dirs = admin.describe_log_dirs()
    sizes = {}
    log_dirs = []
    for broker in dirs:
        broker_id = broker.get("broker_id", broker.get("node_id"))
        for result in broker.get("results", broker.get("log_dirs", [])):
            log_dirs.append((broker_id, result.get("log_dir")))
            for topic in result.get("topics", []):
                if topic.get("name", topic.get("topic")) != TOPIC:
                    continue
                for partition in topic.get("partitions", []):
                    index = partition.get("partition_index", partition.get("partition"))
                    size = partition.get("partition_size", partition.get("size"))
                    sizes.setdefault(index, []).append(size)
    verdict(
        "kafka-python describe_log_dirs",
        len(log_dirs) == 3
        and all(d for _, d in log_dirs)
        and sorted(sizes) == [0, 1, 2]
        and all(len(s) == 3 and min(s) > 0 for s in sizes.values()),
        f"log dirs {log_dirs}; sizes of {TOPIC} per partition over its replicas {sizes}",
    )
    if not sizes:
        log(f"describe_log_dirs answered {dirs}")

    producers = admin.describe_producers([KTopicPartition(TOPIC, 0)])
    state = producers.get(KTopicPartition(TOPIC, 0))
    active = list(getattr(state, "active_producers", None) or [])
    log(f"describe_producers: {state}")
    first = active[0] if active else None
    verdict(
        "kafka-python describe_producers (DescribeProducers v0)",
        first is not None
        and getattr(first, "producer_id", -1) >= 0
        and getattr(first, "last_sequence", -1) >= 0
        and getattr(first, "last_timestamp", -1) > 0,
        f"{len(active)} active producer(s) on {TOPIC}-0, first {first}",
    )
    admin.close()


def main():
    bootstrap = sys.argv[1]
    check_confluent_elections(bootstrap)
    check_kafka_python(bootstrap)
    finish()


if __name__ == "__main__":
    main()
