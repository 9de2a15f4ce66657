"""The nemesis of a real-process run: a fault schedule drawn from the seed (so a run's faults can
be replayed), applied to real processes and namespaces, each start and heal written into the
history as a Jepsen nemesis event (`"process": "nemesis"`).

Episodes come one at a time: a fault holds for a few seconds, heals, and the cluster gets a gap
before the next. Which node a `*-leader` fault hits is decided when it strikes (the leader of
partition 0 at that moment), and the history records the node actually hit.
"""

import json
import random
import signal
import threading
import time

import infra
import workload

FAMILIES = {
    "partitions": ["partition", "isolate", "isolate-leader", "one-way", "bridge"],
    "kills": ["kill", "kill-leader"],
    # Every node killed and restarted in turn, the leader last, a moment apart: the operation
    # that found KIP-101 (a restarted follower truncating to its own HW, then elected).
    # And the leader killed with a follower, the follower back at once, the leader only at the
    # heal: the follower restarts as a follower of a dead leader, and may then be elected.
    "restarts": ["rolling-restart", "kill-leader-and-follower"],
    "pauses": ["pause", "pause-leader"],
    "netem": ["netem"],
    "disk": ["disk-full"],
    "clock": ["clock"],
    "wipe": ["wipe"],
    # Power failures (each node's disk a LazyFS mount, see infra.LazyFS): a node, the leader, or
    # every node at once, each disk keeping only what was fsynced. `power-all` restarts the nodes
    # in a drawn order, the last only after every broker session expired, as the simulator's
    # PowerLoss does: partitions it led elect a leader among nodes that restarted before it.
    "power": ["power", "power-leader", "power-all"],
}
# Families whose faults need LazyFS disks.
LAZYFS_KINDS = set(FAMILIES["power"])
# What CI runs: every family whose faults rill promises to survive under the strong row, node
# replacement included (a wiped controller voter rejoins before it votes: docs/design-notes.md,
# "Wiped disks"), with libfaketime left to its own family (see docs/reality-check.md).
FAMILIES["mixed"] = FAMILIES["partitions"] + FAMILIES["kills"] + FAMILIES["restarts"] + \
    FAMILIES["pauses"] + FAMILIES["netem"] + FAMILIES["disk"] + FAMILIES["wipe"]
# (loss probability, delay ms): see infra.degrade for how each is applied.
NETEM_SPECS = [(0.0, 100), (0.1, 0), (0.3, 0), (0.05, 300)]
HOLD_MS = (2_000, 8_000)
GAP_MS = (1_000, 4_000)
# A `power-all` episode lasts long enough for every broker session to expire (the nodes'
# broker_session_timeout_ms is 4 s, infra.Node) before its last node comes back.
POWER_ALL_HOLD_MS_MIN = 6_000


def parse_families(text):
    kinds = []
    for name in text.split(","):
        if name not in FAMILIES:
            raise SystemExit(f"unknown fault family `{name}` (known: {', '.join(FAMILIES)})")
        kinds += [k for k in FAMILIES[name] if k not in kinds]
    return kinds


def draw_schedule(seed, kinds, nodes, duration_ms):
    """[{at_ms, until_ms, fault: {kind, ...}}] covering `duration_ms`, from `seed` alone."""
    rng = random.Random(seed)
    schedule = []
    at = rng.randint(*GAP_MS)
    while at < duration_ms - HOLD_MS[0]:
        kind = rng.choice(kinds)
        hold = min(rng.randint(*HOLD_MS), duration_ms - at)
        if kind == "power-all":
            # No draw of its own: the schedules of the other families stay as they were.
            hold = min(max(hold, POWER_ALL_HOLD_MS_MIN), duration_ms - at)
        node = rng.randint(1, nodes)
        other = rng.choice([n for n in range(1, nodes + 1) if n != node])
        fault = {"kind": kind}
        if kind in ("isolate", "kill", "pause", "disk-full", "wipe", "bridge", "power"):
            fault["node"] = node
        elif kind == "partition":
            fault.update(a=node, b=other)
        elif kind == "one-way":
            fault.update(deaf=node, unheard=other)
        elif kind == "netem":
            loss, delay_ms = rng.choice(NETEM_SPECS)
            fault.update(node=node, loss=loss, delay_ms=delay_ms)
        elif kind == "clock":
            fault.update(node=node, offset_s=rng.choice([-3600, -30, 30, 3600]))
        elif kind == "rolling-restart":
            fault.update(gap_ms=rng.choice([200, 500, 1000, 2000]))
        elif kind == "power-all":
            fault.update(order=rng.sample(range(1, nodes + 1), nodes))
        schedule.append({"at_ms": at, "until_ms": at + hold, "fault": fault})
        at += hold + rng.randint(*GAP_MS)
    return schedule


class Nemesis:
    """Applies a schedule on a thread; `heal_all()` undoes whatever is in force."""

    def __init__(self, recorder, cluster, schedule, bootstrap):
        self.recorder, self.cluster, self.schedule = recorder, cluster, schedule
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="nemesis")
        self.counts = {}
        self.active = None
        self.lock = threading.Lock()

    def start(self):
        self.started = time.monotonic()
        self.thread.start()

    def join(self, timeout_s):
        self.stop.set()
        self.thread.join(timeout_s)

    def wait_until(self, at_ms):
        """Sleeps until `at_ms` after start; False when told to stop first."""
        delay = self.started + at_ms / 1000 - time.monotonic()
        return not (delay > 0 and self.stop.wait(delay))

    def run(self):
        for episode in self.schedule:
            if not self.wait_until(episode["at_ms"]):
                return
            with self.lock:
                self.active = self.apply(dict(episode["fault"]))
            if not self.wait_until(episode["until_ms"]):
                return
            with self.lock:
                self.heal(self.active)
                self.active = None

    def leader(self):
        states = workload.partition_states(self.bootstrap)
        if states and states.get(0, (-1, []))[0] > 0:
            return states[0][0]
        return None

    def apply(self, fault):
        kind = fault["kind"]
        nodes = len(self.cluster)
        if kind.endswith("-leader"):
            leader = self.leader()
            fault["node"] = leader if leader else random.Random(self.recorder.now()).randint(1, nodes)
            kind = {"isolate-leader": "isolate", "kill-leader": "kill",
                    "pause-leader": "pause", "power-leader": "power"}[kind]
        node = fault.get("node")
        others = [n for n in range(1, nodes + 1) if n != node]
        if kind == "isolate":
            for other in others:
                infra.drop_from(node, other)
                infra.drop_from(other, node)
        elif kind == "partition":
            infra.drop_from(fault["a"], fault["b"])
            infra.drop_from(fault["b"], fault["a"])
        elif kind == "one-way":
            infra.drop_from(fault["deaf"], fault["unheard"])
        elif kind == "bridge":
            # `node` hears and reaches both sides; the others cannot reach each other.
            for a in others:
                for b in others:
                    if a != b:
                        infra.drop_from(a, b)
        elif kind == "netem":
            fault["applied"] = infra.degrade(node, fault["loss"], fault["delay_ms"])
        elif kind == "kill":
            self.cluster[node - 1].kill()
        elif kind == "power":
            fault["unsynced_bytes_dropped"], fault["aim_tries"] = self.cluster[node - 1].power_off()
        elif kind == "power-all":
            self.power_all(fault)
        elif kind == "pause":
            self.cluster[node - 1].pause()
        elif kind == "disk-full":
            self.cluster[node - 1].fill_disk()
        elif kind == "clock":
            self.cluster[node - 1].skew_clock(fault["offset_s"])
        elif kind == "wipe":
            self.cluster[node - 1].wipe()
        elif kind == "kill-leader-and-follower":
            leader = self.leader() or 1
            follower = random.Random(self.recorder.now()).choice(
                [n for n in range(1, nodes + 1) if n != leader])
            fault.update(node=leader, follower=follower)
            self.cluster[leader - 1].kill()
            self.cluster[follower - 1].kill()
            self.cluster[follower - 1].start()
        elif kind == "rolling-restart":
            leader = self.leader()
            order = [n for n in range(1, nodes + 1) if n != leader] + ([leader] if leader else [])
            fault["order"] = order
            for n in order:
                self.cluster[n - 1].kill()
                self.cluster[n - 1].start()
                if self.stop.wait(fault["gap_ms"] / 1000):
                    break
        else:
            raise AssertionError(f"unknown fault kind {kind}")
        if kind != "power-all":
            self.record(fault)
        return fault

    def power_all(self, fault):
        """Every node loses power at one moment; all but the last of the drawn order come back
        spread over the first half of the episode, the last at its heal (POWER_ALL_HOLD_MS_MIN
        after the failure at least, once every broker session expired)."""
        order = fault["order"]
        assert sorted(order) == list(range(1, len(self.cluster) + 1)), "every node, once"
        dropped, fault["aim_tries"] = infra.power_off_together(self.cluster)
        fault["unsynced_bytes_dropped"] = sum(dropped.values())
        # Recorded before the restarts, which get events of their own: the history shows each
        # when it happened (and the fault's value stays as recorded, for its heal to match).
        self.record(fault)
        spread_s = POWER_ALL_HOLD_MS_MIN / 2000 / max(1, len(order) - 1)
        for n in order[:-1]:
            if self.stop.wait(spread_s):
                break
            self.cluster[n - 1].start()
            self.recorder.nemesis("restart", {"kind": "restart", "node": n, "after": "power-all"})
        assert not self.cluster[order[-1] - 1].alive(), "the last node waits for the heal"

    def record(self, fault):
        self.counts[fault["kind"]] = self.counts.get(fault["kind"], 0) + 1
        self.recorder.nemesis(fault["kind"], fault)
        infra.log(f"nemesis: {json.dumps(fault)}")

    def heal(self, fault):
        if fault is None:
            return
        kind, node = fault["kind"], fault.get("node")
        if kind in ("isolate", "isolate-leader", "partition", "one-way", "bridge", "netem"):
            infra.heal_network(len(self.cluster))
        elif kind in ("kill", "kill-leader", "wipe", "kill-leader-and-follower", "power",
                      "power-leader"):
            if not self.cluster[node - 1].alive():
                self.cluster[node - 1].start()
        elif kind == "power-all":
            for n in fault["order"]:
                if not self.cluster[n - 1].alive():
                    self.cluster[n - 1].start()
        elif kind in ("pause", "pause-leader"):
            self.cluster[node - 1].resume()
        elif kind == "disk-full":
            self.cluster[node - 1].free_disk()
        elif kind == "clock":
            self.cluster[node - 1].skew_clock(0)
        self.recorder.nemesis("heal", fault)
        infra.log(f"nemesis: heal {kind}")

    def heal_all(self):
        """Ends every fault: before the liveness phase and on any exit."""
        with self.lock:
            if self.active is not None:
                self.heal(self.active)
                self.active = None
        infra.heal_network(len(self.cluster))
        for node in self.cluster:
            node.free_disk()
            if node.faketime:
                node.skew_clock(0)
            if node.stopped:
                node.signal(signal.SIGCONT)
                node.stopped = False
            if not node.alive():
                node.check_crash()
                node.start()
