"""kafka-python's admin APIs and old request versions against a running rill cluster (issue 13
items 4 and 6).

Usage: admin_api_checks.py BOOTSTRAP

1. DeleteRecords: the low watermark answered, and a consumer resetting to earliest starts there;
2. OffsetDelete and DeleteGroups of a group's committed offsets, GROUP_ID_NOT_FOUND for another;
3. DescribeCluster: three brokers, a controller among them;
4. a client configured for old brokers: DescribeConfigs v0 (api_version 0.11), OffsetCommit v1
   (0.8.2) and v2 (0.10), ListOffsets v0 and Metadata v0 (0.10).
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import OffsetAndMetadata

from common import finish, log, verdict, wait_for

TOPIC = "rc-admin-apis"
RECORDS = 50
TIMEOUT_S = 30


def setup(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    admin.create_topics(
        [NewTopic(TOPIC, num_partitions=1, replication_factor=3, topic_configs={"retention.ms": "7200000"})],
        timeout_ms=15000,
    )
    wait_for("topic listed", lambda: TOPIC in admin.list_topics(), TIMEOUT_S)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(RECORDS):
        producer.send(TOPIC, value=f"ad-{i}".encode(), partition=0)
    producer.flush(TIMEOUT_S)
    producer.close()
    return admin


def position(bootstrap, reset, api_version=None):
    extra = {"api_version": api_version} if api_version else {}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset=reset, enable_auto_commit=False, **extra)
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    offset = consumer.position(tp)
    consumer.close()
    return offset


def check_delete_records(admin, bootstrap):
    tp = TopicPartition(TOPIC, 0)
    answer = admin.delete_records({tp: 20})[tp]
    earliest = position(bootstrap, "earliest")
    verdict(
        "kafka-python DeleteRecords",
        answer.get("error_code") == 0 and answer.get("low_watermark") == 20 and earliest == 20,
        f"answer {answer}, a consumer from the earliest starts at {earliest}",
    )


def check_groups(admin, bootstrap):
    tp = TopicPartition(TOPIC, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="rc-admin-group", enable_auto_commit=False)
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(30, "", -1)})
    consumer.close()
    listed = admin.list_group_offsets("rc-admin-group").get("rc-admin-group", {})
    deleted_offsets = admin.delete_group_offsets("rc-admin-group", [tp])
    after = admin.list_group_offsets("rc-admin-group").get("rc-admin-group", {})
    deleted = admin.delete_groups(["rc-admin-group", "rc-admin-never"])
    verdict(
        "kafka-python OffsetDelete and DeleteGroups",
        tp in listed and tp not in after and deleted.get("rc-admin-group") == "OK"
        and deleted.get("rc-admin-never") == "GroupIdNotFoundError",
        f"committed {listed.get(tp)}, OffsetDelete {deleted_offsets}, then {after}, DeleteGroups {deleted}",
    )


def check_describe_cluster(admin):
    cluster = admin.describe_cluster()
    brokers = sorted(b["broker_id"] for b in cluster.get("brokers", []))
    verdict(
        "kafka-python DescribeCluster",
        brokers == [1, 2, 3] and cluster.get("controller_id") in brokers,
        f"{cluster}",
    )


def check_old_versions(bootstrap):
    old_admin = KafkaAdminClient(bootstrap_servers=bootstrap, api_version=(0, 11, 0))
    described = old_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
    old_admin.close()
    retention = described.get("topic", {}).get(TOPIC, {}).get("retention.ms", {}) if isinstance(described, dict) else {}
    tp = TopicPartition(TOPIC, 0)
    committed = {}
    for api in [(0, 8, 2), (0, 10, 0)]:
        group = "rc-old-" + "-".join(map(str, api))
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, api_version=api, enable_auto_commit=False)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(25, "old", -1)})
        committed[api] = consumer.committed(tp)
        consumer.close()
    earliest = position(bootstrap, "earliest", (0, 10, 0))
    latest = position(bootstrap, "latest", (0, 10, 0))
    verdict(
        "kafka-python with old api_version (DescribeConfigs v0, OffsetCommit v1/v2, ListOffsets v0)",
        retention.get("value") == "7200000" and retention.get("is_default") is False
        and all(v == 25 for v in committed.values()) and earliest == 20 and latest == RECORDS,
        f"retention.ms {retention}, committed {committed}, earliest {earliest}, latest {latest}",
    )


def main():
    bootstrap = sys.argv[1]
    started = time.monotonic()
    log("kafka-python admin APIs")
    admin = setup(bootstrap)
    check_delete_records(admin, bootstrap)
    check_groups(admin, bootstrap)
    check_describe_cluster(admin)
    admin.close()
    log("kafka-python old versions")
    check_old_versions(bootstrap)
    log(f"admin API checks took {time.monotonic() - started:.1f} s")
    finish()


if __name__ == "__main__":
    main()
