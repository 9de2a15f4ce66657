"""confluent-kafka's admin client right after `rill cluster up` returned (issue 13, items 4 and 7).

Usage: admin_checks.py BOOTSTRAP

Run first, before anything else waited for the cluster:
1. ready means ready: CreateTopics with all three bootstrap servers succeeds at once (it used to
   time out "Failed while waiting for controller" for a few seconds after `up`);
2. replication factor 1, below the cluster's min ISR 2, is created as Kafka creates it, and an
   acks=all producer writes to it (Kafka's effective min ISR: min(min.insync.replicas, RF));
3. validate-only creates nothing; an explicit replica assignment is kept as given;
4. refusals carry Kafka's code and a message: RF above the broker count, a manual assignment
   naming an unknown broker, deleting an unknown topic.
"""

import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import finish, log, topic_leaders, verdict, wait_for

TIMEOUT_S = 20


def create(admin, topics, validate_only=False):
    """{name: None or the KafkaError} of one CreateTopics request."""
    futures = admin.create_topics(topics, request_timeout=15, validate_only=validate_only)
    outcome = {}
    for name, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)
            outcome[name] = None
        except KafkaException as error:
            outcome[name] = error.args[0]
    return outcome


def refused(error, code):
    """Whether `error` is a KafkaError with `code` and a message that says more than the code."""
    return (
        isinstance(error, KafkaError)
        and error.code() == code
        and bool(error.str())
        and error.str() != KafkaError(code).str()
    )


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})

    started = time.monotonic()
    outcome = create(admin, [NewTopic("rc-admin-ready", num_partitions=3, replication_factor=3)])
    elapsed = time.monotonic() - started
    verdict(
        "CreateTopics right after cluster up",
        outcome["rc-admin-ready"] is None and elapsed < 10,
        f"{outcome['rc-admin-ready'] or 'created'} in {elapsed:.2f} s",
    )

    outcome = create(admin, [NewTopic("rc-admin-rf1", num_partitions=2, replication_factor=1)])
    leaders = wait_for("leaders of rc-admin-rf1", lambda: topic_leaders(admin, "rc-admin-rf1"), 30)
    errors, delivered = [], []
    if outcome["rc-admin-rf1"] is None and leaders:
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        for i in range(20):
            producer.produce(
                "rc-admin-rf1",
                value=f"v{i}",
                partition=i % 2,
                on_delivery=lambda e, m: errors.append(str(e)) if e else delivered.append(m.offset()),
            )
        producer.flush(TIMEOUT_S)
    verdict(
        "replication factor 1 below min ISR 2: created, acks=all writes",
        outcome["rc-admin-rf1"] is None and len(delivered) == 20 and not errors,
        f"create {outcome['rc-admin-rf1'] or 'ok'}, {len(delivered)} of 20 acknowledged, "
        f"errors {errors[:2]}",
    )

    outcome = create(
        admin, [NewTopic("rc-admin-dry", num_partitions=2, replication_factor=3)], validate_only=True
    )
    listed = admin.list_topics(timeout=5).topics
    verdict(
        "validate-only creates nothing",
        outcome["rc-admin-dry"] is None and "rc-admin-dry" not in listed,
        f"answer {outcome['rc-admin-dry'] or 'ok'}, listed afterwards: {'rc-admin-dry' in listed}",
    )

    brokers = sorted(admin.list_topics(timeout=5).brokers)
    assignment = [[brokers[2], brokers[0]], [brokers[1], brokers[2]]]
    outcome = create(admin, [NewTopic("rc-admin-assigned", num_partitions=2, replica_assignment=assignment)])
    got = None

    def placed():
        topic = admin.list_topics(topic="rc-admin-assigned", timeout=5).topics.get("rc-admin-assigned")
        if topic is None or topic.error is not None or len(topic.partitions) != 2:
            return None
        return [topic.partitions[p].replicas for p in sorted(topic.partitions)]

    if outcome["rc-admin-assigned"] is None:
        got = wait_for("rc-admin-assigned's replicas", placed, 30)
    verdict(
        "explicit replica assignment kept",
        got == assignment,
        f"asked {assignment}, got {got} ({outcome['rc-admin-assigned'] or 'created'})",
    )

    outcome = create(
        admin,
        [
            NewTopic("rc-admin-rf9", num_partitions=1, replication_factor=9),
            NewTopic("rc-admin-bad-broker", num_partitions=1, replica_assignment=[[brokers[0], 99]]),
        ],
    )
    futures = admin.delete_topics(["rc-admin-unknown"], request_timeout=15)
    try:
        futures["rc-admin-unknown"].result(timeout=TIMEOUT_S)
        deleted = None
    except KafkaException as error:
        deleted = error.args[0]
    ok = (
        refused(outcome["rc-admin-rf9"], KafkaError.INVALID_REPLICATION_FACTOR)
        and refused(outcome["rc-admin-bad-broker"], KafkaError.INVALID_REPLICA_ASSIGNMENT)
        and isinstance(deleted, KafkaError)
        and deleted.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    verdict(
        "refusals carry Kafka's code and a message",
        ok,
        f"RF 9: {outcome['rc-admin-rf9']}; broker 99: {outcome['rc-admin-bad-broker']}; "
        f"delete unknown: {deleted}",
    )
    log("admin checks done")
    finish()


if __name__ == "__main__":
    main()
