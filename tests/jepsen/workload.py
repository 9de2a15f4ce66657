"""The client side of a real-process Jepsen run: librdkafka (confluent-kafka) producers sending
unique integers with a guarantee-matrix row's settings, consumers subscribed in a group, a
metadata observer, and the final read; every operation goes into rill's JSONL history format
(jepsen/src/history.rs), modelled on the simulator's workload (sim/src/cluster/workload.rs).

A process has one outstanding operation at a time, as the history requires: a producer sends one
record and waits for its delivery report before the next.
"""

import json
import logging
import random
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "t"
PARTITIONS = 3
# Values of producer p are p * VALUES_PER_PRODUCER + i: unique across the run (as in the sim).
VALUES_PER_PRODUCER = 1_000_000
# Consumer processes take ids from here; a replaced consumer takes the next id.
CONSUMER_PROCESS_BASE = 100
FINAL_READ_PROCESS = 900
POLL_TIMEOUT_S = 0.2
DELIVERY_TIMEOUT_MS = 10_000
# librdkafka's logs (connection refusals during faults, mostly) go to the seed's clients.log,
# not to the run's output: `set_client_log` points them there.
_CLIENT_LOGGER = logging.getLogger("rdkafka")
_CLIENT_LOGGER.propagate = False


def set_client_log(path):
    for handler in list(_CLIENT_LOGGER.handlers):
        _CLIENT_LOGGER.removeHandler(handler)
        handler.close()
    if path:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _CLIENT_LOGGER.addHandler(handler)
        _CLIENT_LOGGER.setLevel(logging.INFO)


def key_name(partition):
    return f"{TOPIC}-{partition}"


class Recorder:
    """Writes the history as it happens: indexes strictly increase, times never go back."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.index = 0
        self.t0 = time.monotonic_ns()
        self.last_time = 0
        self.outstanding = {}
        self.acked = set()  # values sent ok
        self.sent = set()  # values sent ok or info
        self.read = set()
        self.events = []  # (time, kind, text): the timeline the report shows
        self.closed = False

    def now(self):
        return max(time.monotonic_ns() - self.t0, self.last_time)

    def _write(self, event):
        event["index"] = self.index
        event["time"] = self.now()
        self.last_time = event["time"]
        self.index += 1
        if not self.closed:
            self.handle.write(json.dumps(event, separators=(",", ":")) + "\n")
        return event

    def invoke(self, process, f, value):
        with self.lock:
            assert process not in self.outstanding, f"process {process} invokes twice"
            self.outstanding[process] = f
            return self._write({"type": "invoke", "process": process, "f": f, "value": value})

    def complete(self, process, op_type, value, rebalanced=None):
        with self.lock:
            f = self.outstanding.pop(process)
            event = {"type": op_type, "process": process, "f": f, "value": value}
            if rebalanced:
                event["rebalance-log"] = [{"keys": sorted(rebalanced)}]
            if f == "send":
                for mop in value or []:
                    sent_value = mop[2][1]
                    self.sent.add(sent_value)
                    if op_type == "ok":
                        self.acked.add(sent_value)
            if f == "poll" and op_type == "ok":
                for pairs in value[0][1].values():
                    self.read.update(v for _, v in pairs)
            return self._write(event)

    def nemesis(self, f, value):
        """A fault or heal, as Jepsen writes them: process "nemesis", type info."""
        with self.lock:
            event = self._write({"type": "info", "process": "nemesis", "f": f, "value": value})
            self.events.append((event["time"], "nemesis", f"{f} {json.dumps(value)}"))
            return event

    def note(self, kind, text):
        with self.lock:
            self.events.append((self.now(), kind, text))

    def close(self):
        with self.lock:
            self.closed = True
            self.handle.close()


def close_bounded(consumer, timeout_s=10):
    """Closes a consumer on a daemon thread, waiting at most `timeout_s`: leaving a group can
    wait on a coordinator a fault made unreachable, and no wait of the harness may be unbounded."""

    def close():
        try:
            consumer.close()
        except Exception:  # noqa: BLE001, S110 - closing a consumer of a faulted cluster
            pass

    thread = threading.Thread(target=close, daemon=True, name="consumer-close")
    thread.start()
    thread.join(timeout_s)


def client_config(bootstrap):
    return {"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000,
            "topic.metadata.refresh.interval.ms": 2000, "logger": _CLIENT_LOGGER}


def create_topic(bootstrap, deadline):
    admin = AdminClient(client_config(bootstrap))
    while time.monotonic() < deadline:
        futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)], request_timeout=5)
        try:
            futures[TOPIC].result(timeout=10)
            return
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            if "TOPIC_ALREADY_EXISTS" in str(error) or "already exists" in str(error):
                return
            time.sleep(0.5)
    raise RuntimeError("could not create the topic: the cluster did not come up")


def partition_states(bootstrap):
    """{partition: (leader, isr)} from Metadata, or None when the cluster does not answer."""
    admin = AdminClient(client_config(bootstrap))
    try:
        metadata = admin.list_topics(TOPIC, timeout=3)
    except Exception:  # noqa: BLE001 - unreachable cluster: no state
        return None
    topic = metadata.topics.get(TOPIC)
    if topic is None or topic.error is not None:
        return None
    return {p: (s.leader, sorted(s.isrs)) for p, s in topic.partitions.items()}


def wait_healthy(bootstrap, replicas, deadline):
    """Waits until every partition has a leader and a full ISR; returns seconds waited or None."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        states = partition_states(bootstrap)
        if states and len(states) == PARTITIONS and all(
            leader >= 0 and len(isr) == replicas for leader, isr in states.values()
        ):
            return time.monotonic() - started
        time.sleep(0.5)
    return None


class Producers:
    """Producer threads: each sends unique values to random partitions until told to stop."""

    def __init__(self, recorder, bootstrap, row, count, seed):
        self.recorder, self.bootstrap, self.row = recorder, bootstrap, row
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(p, seed), daemon=True, name=f"producer-{p}")
            for p in range(count)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self, timeout_s):
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def new_producer(self):
        acks = {-1: "all", 1: "1", 0: "0"}[self.row["acks"]]
        return Producer({
            **client_config(self.bootstrap),
            "acks": acks,
            "enable.idempotence": self.row["idempotence"],
            "linger.ms": 2,
            "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
            "request.timeout.ms": 3000,
            "retry.backoff.ms": 100,
        })

    def run(self, process, seed):
        rng = random.Random(seed * 7919 + process)
        producer = self.new_producer()
        base = process * VALUES_PER_PRODUCER
        for i in range(VALUES_PER_PRODUCER):
            if self.stop.is_set():
                break
            value = base + i
            partition = rng.randrange(PARTITIONS)
            key = key_name(partition)
            self.recorder.invoke(process, "send", [["send", key, value]])
            outcome = {}

            def delivered(err, msg, outcome=outcome):
                outcome["err"] = err
                outcome["offset"] = msg.offset() if msg is not None else None

            try:
                producer.produce(TOPIC, value=str(value).encode(), partition=partition,
                                 on_delivery=delivered)
                producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)
            except Exception as error:  # noqa: BLE001 - BufferError, KafkaException: indeterminate
                outcome.setdefault("err", error)
            err, offset = outcome.get("err"), outcome.get("offset")
            if "err" not in outcome:
                # No delivery report within the bound: it may still land.
                self.recorder.complete(process, "info", [["send", key, [None, value]]])
            elif err is None and offset is not None and offset >= 0:
                self.recorder.complete(process, "ok", [["send", key, [offset, value]]])
            else:
                # An error or acks=0 (offset -1): the record may or may not be in the log.
                self.recorder.complete(process, "info", [["send", key, [None, value]]])
                if isinstance(err, KafkaError) and err.fatal():
                    # A fenced idempotent producer stays fenced: start a fresh one.
                    self.recorder.note("client", f"p{process} fatal {err}: new producer")
                    producer = self.new_producer()
            time.sleep(rng.uniform(0, 0.02))


class Consumers:
    """Subscribed group members, each polling until told to stop; a member whose poll fails is
    replaced by a fresh process (its position may have moved past records it did not return)."""

    def __init__(self, recorder, bootstrap, count, group):
        self.recorder, self.bootstrap, self.group = recorder, bootstrap, group
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(CONSUMER_PROCESS_BASE + c,), daemon=True,
                             name=f"consumer-{c}")
            for c in range(count)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self, timeout_s):
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def run(self, process):
        step = len(self.threads)
        while not self.stop.is_set():
            member = Member(self.recorder, self.bootstrap, self.group, process)
            try:
                while not self.stop.is_set():
                    if not member.poll():
                        break
            finally:
                member.close()
            process += step * 10  # a fresh process id, never reused
            time.sleep(0.2)


class Member:
    """One subscribe consumer and its recorded operations."""

    def __init__(self, recorder, bootstrap, group, process):
        self.recorder, self.process = recorder, process
        self.rebalanced = set()
        self.consumer = Consumer({
            **client_config(bootstrap),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        })
        keys = [key_name(p) for p in range(PARTITIONS)]
        recorder.invoke(process, "subscribe", keys)
        self.consumer.subscribe([TOPIC], on_assign=self.on_change, on_revoke=self.on_change,
                                on_lost=self.on_change)
        recorder.complete(process, "ok", keys)

    def on_change(self, _consumer, partitions):
        self.rebalanced.update(key_name(tp.partition) for tp in partitions)

    def poll(self):
        self.recorder.invoke(self.process, "poll", [["poll"]])
        try:
            messages = self.consumer.consume(num_messages=200, timeout=POLL_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - the poll's outcome is unknown
            self.recorder.complete(self.process, "info", None)
            self.recorder.note("client", f"c{self.process} poll failed: {error}")
            return False
        reads = {}
        for message in messages:
            if message.error() is not None:
                continue
            reads.setdefault(key_name(message.partition()), []).append(
                [message.offset(), int(message.value())])
        rebalanced, self.rebalanced = self.rebalanced, set()
        self.recorder.complete(self.process, "ok", [["poll", reads]], rebalanced)
        return True

    def close(self):
        close_bounded(self.consumer)


def final_read(recorder, bootstrap, deadline, drained_polls_max=None):
    """Reads every partition from the start as a fresh process until every acknowledged value
    was read and the log seems drained; returns the acknowledged values never read. With
    `drained_polls_max` (weak rows, where acknowledged values may be gone for good) it also stops
    after that many empty polls in a row instead of waiting for the deadline."""
    process = FINAL_READ_PROCESS
    consumer = Consumer({**client_config(bootstrap), "group.id": "rjep-final",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    keys = [key_name(p) for p in range(PARTITIONS)]
    recorder.invoke(process, "assign", keys)
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    recorder.complete(process, "ok", keys)
    with recorder.lock:
        # Every acknowledged value must still be in the log, read before or not.
        missing = set(recorder.acked)
    empty = 0
    try:
        while time.monotonic() < deadline:
            recorder.invoke(process, "poll", [["poll"]])
            try:
                messages = consumer.consume(num_messages=1000, timeout=0.5)
            except Exception:  # noqa: BLE001 - retried until the deadline
                recorder.complete(process, "info", None)
                continue
            reads = {}
            for message in messages:
                if message.error() is None:
                    value = int(message.value())
                    reads.setdefault(key_name(message.partition()), []).append(
                        [message.offset(), value])
                    missing.discard(value)
            recorder.complete(process, "ok", [["poll", reads]])
            empty = 0 if reads else empty + 1
            if not missing and empty >= 3:
                break
            if drained_polls_max is not None and empty >= drained_polls_max:
                break
    finally:
        close_bounded(consumer)
    return missing
