"""`cargo xtask jepsen`: Jepsen on the production build. Real `rill broker` processes, each in its
own network namespace on a bridge this harness creates, librdkafka clients in the root namespace,
a seeded nemesis of real faults, then rill's queue checker on the recorded history.

    run.py --rill BIN [--row ROW] [--faults FAMILY[,FAMILY]] [--seed N] [--seeds K]
           [--time-limit S] [--nodes N] [--out DIR] [--expect-clean]

ROW is a guarantee-matrix row, e.g. "acks=all,min-isr=2,idempotence=on" (unclean=off unless
given); FAMILY one of nemesis.FAMILIES (`power` puts every node's data directory on a LazyFS mount,
built by lazyfs.sh, or $RILL_LAZYFS). Each seed is a fresh cluster; the seeds of one invocation
make one cell, printed in the format of `cargo sim matrix`'s cells (docs/guarantees.md). Exit 1
when a seed shows what the row forbids (or fails liveness), 2 on a harness error.
"""

import argparse
import fcntl
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import infra
import nemesis
import report
import workload

# Seconds the cluster may take to come up, and the liveness phase may take after healing (the
# simulator's LIVENESS_MS is 60 s too).
SET_UP_S = 60
LIVENESS_S = 60
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
LOCK_FILE = "/tmp/rjep.lock"
# How long producers may take to finish their last send once told to stop.
DELIVERY_S = workload.DELIVERY_TIMEOUT_MS / 1000 + 10


def parse_row(text):
    row = {"acks": -1, "min_isr": 2, "unclean": False, "idempotence": None}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name == "acks":
            row["acks"] = {"all": -1, "-1": -1, "1": 1, "0": 0}.get(value)
            if row["acks"] is None:
                raise SystemExit(f"--row: acks must be all, 1 or 0, not `{value}`")
        elif name in ("min-isr", "min_isr"):
            row["min_isr"] = int(value)
        elif name in ("unclean", "idempotence"):
            if value not in ("on", "off", "true", "false"):
                raise SystemExit(f"--row: {name} must be on or off")
            row[name] = value in ("on", "true")
        else:
            raise SystemExit(f"--row: unknown setting `{name}` (acks, min-isr, unclean, idempotence)")
    if row["idempotence"] is None:
        row["idempotence"] = row["acks"] == -1
    if row["idempotence"] and row["acks"] != -1:
        raise SystemExit("--row: idempotence needs acks=all (Kafka's producer refuses the rest)")
    if not 1 <= row["min_isr"] <= 3:
        raise SystemExit("--row: min-isr must be 1..3")
    return row


def run_seed(args, row, kinds, seed, out):
    """One fresh cluster under one seed's schedule; returns the seed's outcome dict."""
    infra.cleanup()
    workdir = tempfile.mkdtemp(prefix=infra.PREFIX, dir="/tmp")
    state = infra._load_state()
    state["workdir"] = workdir
    infra._save_state(state)
    os.makedirs(out, exist_ok=True)
    outcome = {"seed": seed, "liveness": None, "crash": None}
    schedule = nemesis.draw_schedule(seed, kinds, args.nodes, args.time_limit * 1000)
    with open(os.path.join(out, "schedule.json"), "w", encoding="utf-8") as handle:
        json.dump({"seed": seed, "faults": schedule}, handle, indent=1)
    history_path = os.path.join(out, "history.jsonl")
    recorder = workload.Recorder(history_path)
    workload.set_client_log(os.path.join(out, "clients.log"))
    cluster = []
    phases = {}
    started = time.monotonic()
    try:
        infra.set_up_network(args.nodes)
        faketime = FAKETIME_LIB if "clock" in kinds else None
        for node_id in range(1, args.nodes + 1):
            cluster.append(infra.Node(node_id, args.nodes, workdir, args.rill, row, args.disk_mb,
                                      faketime, args.bug, args.lazyfs))
        for node in cluster:
            node.start()
        bootstrap = ",".join(f"{infra.node_addr(n)}:{infra.KAFKA_PORT}"
                             for n in range(1, args.nodes + 1))
        workload.create_topic(bootstrap, time.monotonic() + SET_UP_S)
        replicas = min(args.nodes, 3)
        if workload.wait_healthy(bootstrap, replicas, time.monotonic() + SET_UP_S) is None:
            raise RuntimeError("the topic's partitions never all had a leader and a full ISR")
        phases["set-up"] = time.monotonic() - started
        infra.log(f"seed {seed}: cluster up in {phases['set-up']:.1f} s; safety phase "
                  f"{args.time_limit} s, {len(schedule)} fault episodes ({','.join(sorted(set(f['fault']['kind'] for f in schedule)))})")
        consumers = workload.Consumers(recorder, bootstrap, args.consumers, f"rjep-{seed}")
        producers = workload.Producers(recorder, bootstrap, row, args.producers, seed)
        chaos = nemesis.Nemesis(recorder, cluster, schedule, bootstrap)
        consumers.start()
        producers.start()
        chaos.start()
        safety_end = time.monotonic() + args.time_limit
        while time.monotonic() < safety_end:
            time.sleep(min(10, max(0.0, safety_end - time.monotonic())))
            with recorder.lock:
                acked, sent = len(recorder.acked), len(recorder.sent)
            for node in cluster:
                node.check_crash()
                node.check_disk()
            infra.log(f"seed {seed}: {time.monotonic() - started - phases['set-up']:.0f} s, "
                      f"{acked} acknowledged of {sent} sent, faults so far {chaos.counts}")
        chaos.join(10)
        chaos.heal_all()
        recorder.nemesis("heal-all", {})
        heal_time = time.monotonic()
        # Liveness: with faults healed, every partition gets a leader and a full ISR, and every
        # acknowledged record is readable, within LIVENESS_S.
        healthy = workload.wait_healthy(bootstrap, replicas, heal_time + LIVENESS_S)
        phases["recover"] = healthy
        # Clients keep working for a moment on the healed cluster: recovery shows in the history.
        time.sleep(3)
        producers.join(DELIVERY_S)
        consumers.join(15)
        if healthy is None:
            outcome["liveness"] = f"partitions without a leader or full ISR {LIVENESS_S} s after healing"
        weak = not report.strong(row)
        missing = workload.final_read(recorder, bootstrap, heal_time + LIVENESS_S + 30,
                                      drained_polls_max=10 if weak else None)
        if missing:
            first = sorted(missing)[:8]
            why = f"{len(missing)} acknowledged values unreadable after healing (first {first})"
            if weak:
                # Weak settings may lose acknowledged records: noted, not a violation (as in the
                # simulator's world.rs); the checker reports the loss as its classes.
                outcome["unreadable_allowed"] = why
            elif outcome["liveness"] is None:
                outcome["liveness"] = why
        outcome["faults"] = chaos.counts
        for node in cluster:
            node.check_crash()
        crashes = [c for node in cluster for c in node.crashes]
        if crashes:
            outcome["crash"] = "; ".join(crashes)
    finally:
        recorder.close()
        workload.set_client_log(None)
        phases["total"] = time.monotonic() - started
        for node in cluster:
            node.kill()
            node.unmount_disk()
            if os.path.exists(node.log_path):
                shutil.copy(node.log_path, os.path.join(out, f"node-{node.id}.log"))
            lazyfs_log = os.path.join(node.dir, "lazyfs.log")
            if os.path.exists(lazyfs_log):
                shutil.copy(lazyfs_log, os.path.join(out, f"node-{node.id}-lazyfs.log"))
        infra.cleanup()
    outcome["phases"] = phases
    return outcome



def release_guard_when_no_client_is_left():
    """Removes the guard route once every client of this process is gone: the seeds' client
    objects are unreferenced (collected, which destroys their librdkafka handles) and no worker
    thread lives. Otherwise the guard stays (until a later run ends normally), and says so."""
    gc.collect()
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        infra.log(f"threads still alive ({', '.join(others)}): the guard route for "
                  f"{infra.SUBNET}.0/24 stays until a later run ends normally")
        return
    infra.release_guard()


def lazyfs_binary():
    """LazyFS for power failures: $RILL_LAZYFS, else built (once, cached) by lazyfs.sh."""
    given = os.environ.get("RILL_LAZYFS")
    if given:
        if not os.access(given, os.X_OK):
            raise SystemExit(f"jepsen: RILL_LAZYFS={given} is not an executable")
        return given
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lazyfs.sh")
    # A cold build takes about a minute on 2 idle cores; a cached one returns at once.
    done = subprocess.run(["bash", script], stdout=subprocess.PIPE, text=True, timeout=1800,
                          check=False)
    binary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.access(binary, os.X_OK):
        raise SystemExit(f"jepsen: building LazyFS failed ({done.returncode}): see above")
    return binary


def check(args, out):
    """rill's queue checker on the history (subscribe mode: consumers are group members)."""
    done = subprocess.run(
        [args.rill, "check", os.path.join(out, "history.jsonl"), "--subscribe", "--json"],
        capture_output=True, text=True, timeout=600, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"rill check failed ({done.returncode}): {done.stderr.strip()}")
    result = json.loads(done.stdout)
    with open(os.path.join(out, "check.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rill", required=True, help="the release rill binary")
    parser.add_argument("--row", default="acks=all,min-isr=2,idempotence=on")
    parser.add_argument("--faults", default="mixed")
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="seeds (fresh clusters) to run")
    parser.add_argument("--time-limit", type=int, default=60, help="safety phase, seconds")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--disk-mb", type=int, default=256, help="each node's tmpfs size")
    parser.add_argument("--bug", default=None,
                        help="historic bug to switch on in every node (RILL_BUGS; needs a rill built "
                             "with the bug-switches feature, which `cargo xtask jepsen --bug` does)")
    parser.add_argument("--out", default=None, help="results directory (default: a new one in /tmp)")
    parser.add_argument("--recheck", action="store_true",
                        help="run nothing: judge the seeds already in --out again (same --row)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("jepsen: needs root (network namespaces, mounts)")
    if not 3 <= args.nodes <= 9 or not 1 <= args.seeds <= 1000 or args.time_limit < 5:
        raise SystemExit("jepsen: --nodes 3..9, --seeds 1..1000, --time-limit >= 5")
    row = parse_row(args.row)
    kinds = nemesis.parse_families(args.faults)
    # Power failures need every node's data directory on LazyFS (the other faults run on it too).
    args.lazyfs = lazyfs_binary() if nemesis.LAZYFS_KINDS & set(kinds) and not args.recheck else None
    # One run at a time: a run starts by removing whatever the state file names, which would be
    # a concurrent run's cluster. The lock dies with the process, so a crash leaves none behind.
    lock = open(LOCK_FILE, "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"jepsen: another run holds {LOCK_FILE}; wait for it to end") from None
    if args.recheck and not args.out:
        raise SystemExit("jepsen: --recheck needs --out DIR")
    out_root = args.out or tempfile.mkdtemp(prefix="rill-jepsen-")
    os.makedirs(out_root, exist_ok=True)
    args.rill = os.path.abspath(args.rill)

    # Ctrl-C and SIGTERM unwind through the `finally` blocks, which remove what was made.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    outcomes = []
    seeds = range(args.seed, args.seed + args.seeds)
    if args.recheck:
        # Judge existing results again (a newer checker, say) without running anything.
        seeds = sorted(int(d.split("-")[1]) for d in os.listdir(out_root) if d.startswith("seed-"))
    try:
        for seed in seeds:
            out = os.path.join(out_root, f"seed-{seed}")
            if args.recheck:
                with open(os.path.join(out, "outcome.json"), encoding="utf-8") as handle:
                    outcome = json.load(handle)
            else:
                outcome = run_seed(args, row, kinds, seed, out)
                with open(os.path.join(out, "outcome.json"), "w", encoding="utf-8") as handle:
                    json.dump(outcome, handle, indent=1)
            outcome["check"] = check(args, out)
            outcome.update(report.analyse(os.path.join(out, "history.jsonl"), row, outcome))
            report.write_html(os.path.join(out, "report.html"), args, row, outcome,
                              os.path.join(out, "history.jsonl"))
            print(report.seed_summary(outcome), flush=True)
            outcomes.append(outcome)
    except KeyboardInterrupt as stop:
        infra.log(f"interrupted ({stop}): cleaned up; the guard route for {infra.SUBNET}.0/24 "
                  f"stays until a later run ends normally (clients may still be reconnecting)")
        return 130
    except Exception:  # noqa: BLE001 - a harness error, not a finding
        traceback.print_exc()
        infra.cleanup()
        return 2
    finally:
        infra.cleanup()
        # The lock file goes too (nothing of a run stays behind); a run starting meanwhile
        # would have been refused by the lock anyway.
        os.remove(LOCK_FILE)
        lock.close()
    release_guard_when_no_client_is_left()
    cell = report.cell(row, args.faults, outcomes)
    cell["wall_s"] = round(time.monotonic() - started, 1)
    cell["args"] = {"row": args.row, "faults": args.faults, "seed": args.seed,
                    "seeds": args.seeds, "time_limit": args.time_limit, "nodes": args.nodes}
    with open(os.path.join(out_root, "cell.json"), "w", encoding="utf-8") as handle:
        json.dump(cell, handle, indent=1)
    print(report.cell_summary(cell), flush=True)
    failed = cell["verdict"] == "VIOLATED"
    if args.out or failed or os.environ.get("RILL_JEPSEN_KEEP") == "1":
        print(f"jepsen: results in {out_root}", flush=True)
    else:
        # A passing run in a directory of its own (CI's) leaves nothing behind.
        shutil.rmtree(out_root, ignore_errors=True)
        print("jepsen: passed; results removed (--out DIR or RILL_JEPSEN_KEEP=1 keeps them)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
