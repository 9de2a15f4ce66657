"""The hosts of a real-process Jepsen run: one network namespace per node on a bridge the harness
creates, one size-limited tmpfs per node as its disk, and the `rill broker` processes. For power
failures (`--faults power`), each node's data directory is a LazyFS mount over its tmpfs: writes
not yet fsynced stay in LazyFS's own cache, which the harness drops after killing the node.

Everything here carries the prefix `rjep-` (namespaces, links) or lives under the run's work
directory (mounts), and is recorded in a state file as it is made, so that `cleanup()` removes
exactly what this harness made, also what an earlier crashed run left behind. No packet may leave
the machine: the subnet is private, the namespaces have no default route, and before the first
packet `check_routes()` requires that the route to every node address leads into our bridge.
While a run lives, a guard route (`unreachable`, same subnet, a worse metric than the bridge's)
catches what the bridge no longer routes: a client still reconnecting after the bridge is gone
(Ctrl-C, a harness error) gets "no route to host" instead of the default gateway. The guard goes
only once no client can be left (`release_guard()`), else when a later run ends normally.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "rjep-"
BRIDGE = "rjep-br0"
SUBNET = "10.77.0"  # /24, private (RFC 1918); the bridge is .1, node i is .(10 + i)
HOST_ADDR = f"{SUBNET}.1"
STATE_FILE = "/tmp/rjep-state.json"
KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
METRICS_PORT = 9094
# Bound on every external command the harness runs (ip, iptables, tc, mount): none should hang.
COMMAND_TIMEOUT_S = 20


def log(message):
    print(f"jepsen: {message}", flush=True)


def run(*args, check=True, timeout=COMMAND_TIMEOUT_S):
    """Runs a command (bounded), returns its stdout; raises on failure when `check`."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def ns_name(node):
    return f"{PREFIX}n{node}"


def node_addr(node):
    return f"{SUBNET}.{10 + node}"


def in_ns(node, *args, check=True):
    return run("ip", "netns", "exec", ns_name(node), *args, check=check)


# --- the state file: what exists, so that a later run can remove it after a crash ------------


def _load_state():
    try:
        with open(STATE_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"pids": [], "mounts": [], "workdir": None}


def _save_state(state):
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    os.replace(tmp, STATE_FILE)


def remember(kind, item):
    state = _load_state()
    if item not in state[kind]:
        state[kind].append(item)
    _save_state(state)


def forget(kind, item):
    state = _load_state()
    state[kind] = [x for x in state[kind] if x != item]
    _save_state(state)


def _is_ours(pid, start_ticks):
    """True when `pid` is still a process we started (same start time, a path of ours in its
    command line: rill's config, LazyFS's mount point)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode(errors="replace")
    except OSError:
        return False
    return int(fields[19]) == start_ticks and "rjep" in cmdline


def wait_exec(pid, binary, timeout_s):
    """Waits until process `pid` runs `binary` (after an `ip netns exec`); False on timeout.
    The whole path is compared: `--bug` runs a binary named `rill-bug-switches`."""
    assert timeout_s > 0, "a bound"
    expected = os.path.realpath(binary)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") == expected:
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def mounted(path):
    """Whether `path` is a mount point, from the mount table (works on a dead FUSE mount)."""
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        return any(line.split(" ")[1] == path for line in handle)


def process_start_ticks(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def cleanup():
    """Removes every process, mount, namespace and link an earlier (or this) run made."""
    state = _load_state()
    for pid, ticks in state["pids"]:
        if _is_ours(pid, ticks):
            # SIGKILL ends a stopped (SIGSTOPped) process too; CONT anyway so that nothing
            # lingers stopped should the kill be refused.
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    for pid, ticks in state["pids"]:
        deadline = time.monotonic() + 10
        while _is_ours(pid, ticks) and time.monotonic() < deadline:
            time.sleep(0.05)
    # Newest first: a LazyFS mount goes before the tmpfs under it. `mounted`, not
    # `os.path.ismount`: a FUSE mount whose daemon died fails every stat, so it would be missed.
    for mount in reversed(state["mounts"]):
        if mounted(mount):
            run("umount", "-l", mount, check=False)
    for name in run("ip", "netns", "list", check=False).split("\n"):
        name = name.split(" ")[0].strip()
        if name.startswith(PREFIX):
            run("ip", "netns", "del", name, check=False)
    links = run("ip", "-o", "link", "show", check=False)
    for match in re.finditer(r"^\d+: (rjep-[\w.-]+?)(@\S+)?:", links, re.M):
        run("ip", "link", "del", match.group(1), check=False)
    workdir = state.get("workdir")
    if workdir and os.path.isdir(workdir) and os.path.basename(workdir).startswith(PREFIX):
        shutil.rmtree(workdir, ignore_errors=True)
    if os.path.exists(STATE_FILE):
        os.remove(STATE_FILE)


# --- the network --------------------------------------------------------------------------------


GUARD_METRIC = 4000  # worse than the bridge's connected route (0): the bridge wins while it lives


def guard_subnet():
    """Routes the subnet nowhere unless the bridge does (see the module's doc). Idempotent."""
    run("ip", "route", "replace", "unreachable", f"{SUBNET}.0/24", "metric", str(GUARD_METRIC))


def release_guard():
    """Removes the guard route; only when no client of this process can still send."""
    run("ip", "route", "del", "unreachable", f"{SUBNET}.0/24", "metric", str(GUARD_METRIC),
        check=False)


def check_subnet_free():
    """Refuses to run when anything but our bridge (or our guard) already routes our subnet."""
    routes = run("ip", "-o", "route", "show", "to", "match", f"{SUBNET}.0/24", check=False)
    for line in routes.splitlines():
        if line.startswith("default") or line.startswith(f"unreachable {SUBNET}.0/24"):
            continue
        if f"{SUBNET}." in line and f"dev {BRIDGE}" not in line:
            raise RuntimeError(f"{SUBNET}.0/24 is already routed on this machine ({line}): refusing")


def set_up_network(nodes):
    check_subnet_free()
    guard_subnet()
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for node in range(1, nodes + 1):
        ns, host_side, peer = ns_name(node), f"{PREFIX}h{node}", f"{PREFIX}p{node}"
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", host_side, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", host_side, "master", BRIDGE)
        run("ip", "link", "set", host_side, "up")
        run("ip", "link", "set", peer, "netns", ns)
        in_ns(node, "ip", "link", "set", peer, "name", "eth0")
        in_ns(node, "ip", "addr", "add", f"{node_addr(node)}/24", "dev", "eth0")
        in_ns(node, "ip", "link", "set", "eth0", "up")
        in_ns(node, "ip", "link", "set", "lo", "up")
        # No default route inside: a namespace can reach the bridge's subnet and nothing else.
    check_routes(nodes)


def check_routes(nodes):
    """Before the first packet: every node address must route into our bridge, from the root
    namespace (the clients) and from every node namespace (the peers)."""
    for node in range(1, nodes + 1):
        addr = node_addr(node)
        route = run("ip", "route", "get", addr)
        if f"dev {BRIDGE}" not in route:
            raise RuntimeError(f"route to {addr} does not lead into {BRIDGE}: {route.strip()}")
        for other in range(1, nodes + 1):
            inner = in_ns(other, "ip", "route", "get", addr)
            if "dev eth0" not in inner and "dev lo" not in inner:
                raise RuntimeError(f"inside {ns_name(other)}, {addr} routes elsewhere: {inner}")
        for via in run("ip", "route", "show", "dev", BRIDGE).splitlines():
            if "via" in via:
                raise RuntimeError(f"unexpected gateway route on {BRIDGE}: {via}")
    log(f"routes checked: {', '.join(node_addr(n) for n in range(1, nodes + 1))} lead into {BRIDGE}")


def drop_from(node, peer):
    """`node` stops hearing `peer` (one direction; both for a full cut)."""
    in_ns(node, "iptables", "-w", "5", "-A", "INPUT", "-s", node_addr(peer), "-j", "DROP")


def heal_network(nodes):
    for node in range(1, nodes + 1):
        in_ns(node, "iptables", "-w", "5", "-F", "INPUT", check=False)
        in_ns(node, "iptables", "-w", "5", "-F", "OUTPUT", check=False)
        in_ns(node, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)


_NETEM = None


def netem_available():
    """Whether the kernel has sch_netem (Firecracker guest kernels, like CI's, lack it)."""
    global _NETEM
    if _NETEM is None:
        probe = f"{PREFIX}probe"
        run("ip", "netns", "add", probe)
        try:
            done = subprocess.run(
                ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                 "delay", "1ms"], capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
            _NETEM = done.returncode == 0
        finally:
            run("ip", "netns", "del", probe, check=False)
    return _NETEM


def degrade(node, loss, delay_ms):
    """Packet loss and latency on the node's interface (clients and peers both see it): with
    netem when the kernel has it, else loss by iptables' statistic match and latency by a tbf
    shaper whose small rate queues packets (a slow link rather than a fixed delay). Returns what
    was applied, for the history."""
    if netem_available():
        spec = []
        if delay_ms:
            spec += ["delay", f"{delay_ms}ms", f"{delay_ms // 2}ms"]
        if loss:
            spec += ["loss", f"{loss * 100:.0f}%"]
        in_ns(node, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)
        return "netem " + " ".join(spec)
    applied = []
    if loss:
        for chain in ("INPUT", "OUTPUT"):
            in_ns(node, "iptables", "-w", "5", "-A", chain, "-o" if chain == "OUTPUT" else "-i",
                  "eth0", "-m", "statistic", "--mode", "random", "--probability", str(loss),
                  "-j", "DROP")
        applied.append(f"iptables statistic drop {loss} each way")
    if delay_ms:
        in_ns(node, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "1mbit",
              "burst", "16kb", "latency", f"{delay_ms}ms")
        applied.append(f"tbf rate 1mbit latency {delay_ms}ms")
    return "; ".join(applied)


# The nodes' shared secret for inter-node traffic; clients never see it.
CLUSTER_SECRET = "rill-jepsen-cluster-secret-0001"


# --- LazyFS: a disk that loses unsynced writes on command --------------------------------------

# Bounds on LazyFS's start (the mount appearing) and on one clear-cache command.
LAZYFS_START_S = 10
LAZYFS_CLEAR_S = 10
CLEARED = b"finished::clear-cache"


class LazyFS:
    """One LazyFS daemon (tests/jepsen/lazyfs/) mounted at `mount`, keeping its files in `backing`.

    LazyFS holds every write in its own cache until the file is fsynced and drops what was not
    synced on `lazyfs::clear-cache`, written to its FIFO: with the process killed first, that is
    a power failure of this node's disk. Metadata (create, rename, unlink, truncate) goes through
    to `backing` at once, as on a journaling file system. The mount is made in the root mount
    namespace before the node starts; `ip netns exec` copies it into the node's namespace.
    """

    def __init__(self, binary, directory, mount, backing, cache_mb):
        assert os.path.isdir(mount) and os.path.isdir(backing), "both directories exist"
        assert cache_mb > 0, "a cache to hold unsynced writes"
        self.mount = mount
        self.backing = backing
        self.fifo = os.path.join(directory, "lazyfs-faults.fifo")
        self.done_fifo = os.path.join(directory, "lazyfs-done.fifo")
        self.log_path = os.path.join(directory, "lazyfs.log")
        config = os.path.join(directory, "lazyfs.toml")
        # The cache may hold at most the whole disk; pages are allocated up front but only touched
        # pages take memory. No eviction: an evicted page would be written back, so survive.
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                f"[faults]\nfifo_path=\"{self.fifo}\"\nfifo_path_completed=\"{self.done_fifo}\"\n"
                f"[cache]\napply_eviction=false\n[cache.simple]\ncustom_size=\"{cache_mb}mb\"\n"
                "blocks_per_page=1\n"
                f"[filesystem]\nlog_all_operations=false\nlogfile=\"{self.log_path}\"\n")
        os.mkfifo(self.fifo)
        os.mkfifo(self.done_fifo)
        # LazyFS opens the completion FIFO for writing when it starts, which blocks until a reader
        # exists: open ours first, and keep it for the node's life.
        self.done_fd = os.open(self.done_fifo, os.O_RDONLY | os.O_NONBLOCK)
        output = open(os.path.join(directory, "lazyfs.out"), "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [binary, mount, "--config-path", config, "-o", "allow_other", "-o", "modules=subdir",
             "-o", f"subdir={backing}", "-f"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        output.close()
        self.pid_ticks = [self.proc.pid, process_start_ticks(self.proc.pid)]
        remember("pids", self.pid_ticks)
        remember("mounts", mount)
        deadline = time.monotonic() + LAZYFS_START_S
        while not mounted(mount):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"LazyFS did not mount {mount} (see {self.log_path})")
            time.sleep(0.02)

    def alive(self):
        return self.proc.poll() is None

    def clear_cache(self):
        """Drops every write not yet fsynced; returns once LazyFS says it is done (bounded)."""
        assert self.alive(), "a LazyFS to clear"
        deadline = time.monotonic() + LAZYFS_CLEAR_S
        # LazyFS holds its FIFO open for reading (O_RDWR), so a non-blocking open finds a reader.
        fifo = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            # One command per write and per wait: LazyFS reads up to 100 bytes as one command.
            written = os.write(fifo, b"lazyfs::clear-cache\n")
        finally:
            os.close(fifo)
        assert written == len(b"lazyfs::clear-cache\n"), "a FIFO write this small is atomic"
        answer = b""
        while CLEARED not in answer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"LazyFS at {self.mount} did not clear its cache in "
                                   f"{LAZYFS_CLEAR_S} s (see {self.log_path})")
            ready, _, _ = select.select([self.done_fd], [], [], left)
            chunk = os.read(self.done_fd, 256) if ready else b""
            if not chunk:
                time.sleep(0.01)  # no writer yet (EOF): LazyFS's worker is still starting
            answer += chunk

    def unsynced_bytes(self):
        """Bytes LazyFS holds that the tmpfs does not: what a clear-cache now drops. Files only
        grow between fsyncs (logs append; checkpoints are written whole, then renamed), so per
        file this is the size seen through the mount less the size on the tmpfs."""
        total = 0
        for parent, _, files in os.walk(self.mount):
            for name in files:
                path = os.path.join(parent, name)
                backing = os.path.join(self.backing, os.path.relpath(path, self.mount))
                try:
                    seen = os.stat(path).st_size
                    synced = os.stat(backing).st_size if os.path.exists(backing) else 0
                except OSError:
                    continue  # removed meanwhile (a wipe): nothing to lose
                total += max(0, seen - synced)
        assert total >= 0, "a count"
        return total

    def self_check(self):
        """The power fault's premise, checked before a run relies on it: a killed process that
        wrote to this mount keeps what it fsynced and loses the rest once the cache is cleared.
        Without it, a LazyFS that synced everything would turn `power` into a plain kill and a
        clean result would prove nothing. Raises when the premise does not hold."""
        synced_bytes, unsynced_bytes = 8192, 4096
        writer = (
            "import os, sys, time\n"
            "a = os.open(sys.argv[1] + '/rjep-check-a', os.O_CREAT | os.O_WRONLY, 0o600)\n"
            f"os.write(a, b'S' * {synced_bytes}); os.fsync(a); os.write(a, b'U' * {unsynced_bytes})\n"
            "b = os.open(sys.argv[1] + '/rjep-check-b', os.O_CREAT | os.O_WRONLY, 0o600)\n"
            f"os.write(b, b'U' * {unsynced_bytes})\n"
            "print('written', flush=True); time.sleep(60)\n")
        child = subprocess.Popen([sys.executable, "-c", writer, self.mount], stdout=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
        try:
            ready = child.stdout.readline()
        finally:
            child.kill()
            child.wait(timeout=10)
            child.stdout.close()
        assert ready == b"written\n", f"the writer wrote its files ({ready!r})"
        paths = [os.path.join(self.mount, name) for name in ("rjep-check-a", "rjep-check-b")]
        # Before the clear, the killed writer's bytes are all there: a SIGKILL alone loses none.
        before = [os.path.getsize(path) for path in paths]
        self.clear_cache()
        after = []
        for path in paths:
            with open(path, "rb") as handle:
                after.append(handle.read())
            os.remove(path)
        if before != [synced_bytes + unsynced_bytes, unsynced_bytes] or \
                after != [b"S" * synced_bytes, b""]:
            raise RuntimeError(
                f"LazyFS at {self.mount} does not lose unsynced writes as a power failure does: "
                f"sizes after the kill {before}, after clearing its cache "
                f"{[len(data) for data in after]} (expected {synced_bytes} and 0)")
        return f"a killed writer kept its {synced_bytes} fsynced bytes and lost {unsynced_bytes} " \
               f"+ {unsynced_bytes} unsynced ones"

    def stop(self):
        """Unmounts (the daemon then exits) and reaps the daemon; cleanup() covers a crash."""
        if mounted(self.mount):
            run("umount", "-l", self.mount, check=False)
        forget("mounts", self.mount)
        if self.alive():
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        forget("pids", self.pid_ticks)
        os.close(self.done_fd)


# --- the nodes ----------------------------------------------------------------------------------


class Node:
    """One `rill broker` in its namespace, with its own tmpfs disk and config (and, given a
    LazyFS binary, the data directory a LazyFS mount over that tmpfs)."""

    def __init__(self, node_id, nodes, workdir, rill, row, disk_mb, faketime, bug=None,
                 lazyfs=None):
        self.id = node_id
        self.rill = rill
        self.dir = os.path.join(workdir, f"node-{node_id}")
        self.data = os.path.join(self.dir, "data")
        # The tmpfs: the data directory itself, or the files under the LazyFS mount.
        self.disk = os.path.join(self.dir, "disk") if lazyfs else self.data
        self.lazyfs_binary = lazyfs
        self.lazy = None
        self.config = os.path.join(self.dir, "node.toml")
        self.log_path = os.path.join(self.dir, "node.log")
        self.clock_file = os.path.join(self.dir, "faketime")
        self.faketime = faketime
        self.bug = bug
        self.disk_mb = disk_mb
        self.proc = None
        self.stopped = False
        # True once the harness killed the process on purpose; an exit otherwise is a crash.
        self.killed = False
        self.crashes = []
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.disk, exist_ok=True)
        voters = ", ".join(
            f'"{v}@{node_addr(v)}:{CONTROLLER_PORT}"' for v in range(1, min(nodes, 3) + 1)
        )
        roles = '["broker", "controller"]' if node_id <= 3 else '["broker"]'
        addr = node_addr(node_id)
        controller = f'controller = "{addr}:{CONTROLLER_PORT}"\n' if node_id <= 3 else ""
        text = (
            f"node_id = {node_id}\nroles = {roles}\ndata_dir = \"{self.data}\"\n"
            f"controller_voters = [{voters}]\n\n"
            f"[listeners]\nkafka = \"{addr}:{KAFKA_PORT}\"\nadvertised_kafka = \"{addr}:{KAFKA_PORT}\"\n"
            f"{controller}metrics = \"{addr}:{METRICS_PORT}\"\n\n"
            f"[topics]\nreplication_factor = {min(nodes, 3)}\npartitions = 3\n"
            f"min_insync_replicas = {row['min_isr']}\n"
            f"unclean_leader_election = {'true' if row['unclean'] else 'false'}\nauto_create = false\n\n"
            # Small segments so that rolls happen in a short run; the disk is small too.
            "[log]\nsegment_bytes = 1048576\n\n"
            # The simulator's faster timeouts, so a short run sees ISR shrinks and elections.
            "[timing]\nreplica_lag_time_max_ms = 5000\nbroker_session_timeout_ms = 4000\n"
            "request_timeout_ms = 10000\n\n"
            # Inter-node traffic authenticated, as a real deployment runs it (docs/security.md).
            f"[security]\ncluster_secret = \"{CLUSTER_SECRET}\"\n"
        )
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(text)
        self.mount_disk()

    def mount_disk(self):
        run("mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m", f"{PREFIX}disk{self.id}", self.disk)
        remember("mounts", self.disk)
        if self.lazyfs_binary:
            self.lazy = LazyFS(self.lazyfs_binary, self.dir, self.data, self.disk, self.disk_mb)
            checked = self.lazy.self_check()
            if self.id == 1:
                log(f"LazyFS disks checked: {checked}")

    def check_disk(self):
        """A LazyFS that died takes the node's disk with it: a harness failure, not rill's."""
        if self.lazy is not None and not self.lazy.alive():
            raise RuntimeError(f"the LazyFS of node {self.id} exited ({self.lazy.proc.poll()}); "
                               f"see {self.lazy.log_path}")

    def unmount_disk(self):
        """The LazyFS mount, if any, before the run's cleanup() takes the tmpfs."""
        if self.lazy is not None:
            self.lazy.stop()
            self.lazy = None

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "start only a stopped node"
        env = dict(os.environ, RUST_LOG=os.environ.get("RILL_JEPSEN_LOG", "info"))
        env.pop("RILL_BUGS", None)
        if self.bug:
            env["RILL_BUGS"] = self.bug
        if self.faketime:
            # Real-time skew only (see docs/reality-check.md): monotonic clocks do not jump
            # between machines, and rill's timers run on the monotonic clock.
            if not os.path.exists(self.clock_file):
                with open(self.clock_file, "w", encoding="utf-8") as handle:
                    handle.write("+0\n")
            env.update(
                LD_PRELOAD=self.faketime,
                FAKETIME_TIMESTAMP_FILE=self.clock_file,
                FAKETIME_CACHE_DURATION="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",
            )
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_name(self.id), self.rill, "broker", "--config", self.config],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
        )
        log_file.close()
        # `ip netns exec` execs the command: the pid is rill's own once the exec happened.
        if not wait_exec(self.proc.pid, self.rill, 5):
            log(f"node {self.id}: no exec of {self.rill} seen within 5 s")
        remember("pids", [self.proc.pid, process_start_ticks(self.proc.pid)])
        self.stopped = False
        self.killed = False

    def check_crash(self):
        """Records an exit the harness did not cause (a panic, a broken invariant)."""
        if self.proc is not None and not self.killed and self.proc.poll() is not None:
            crash = f"node {self.id} exited with status {self.proc.poll()}"
            if crash not in self.crashes:
                self.crashes.append(crash)
                log(f"{crash}; last lines of its log:\n{self.tail()}")
            return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        kill_together([self])

    def power_off(self):
        """Power failure: the process dies and the disk keeps only what was fsynced. Returns
        the unsynced bytes dropped and the tries it took to find some (power_off_together)."""
        dropped, tries = power_off_together([self])
        return dropped[self.id], tries

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def fill_disk(self):
        """Takes the rest of the node's disk with a ballast file (the disk-full fault)."""
        stat = os.statvfs(self.disk)
        free = stat.f_bavail * stat.f_frsize
        # Leave no byte: a write of one more page fails with ENOSPC. On the tmpfs itself, under
        # LazyFS too: its cache would hold the ballast rather than take the space.
        run("fallocate", "-l", str(max(free, 4096)), os.path.join(self.disk, "rjep-ballast"), check=False)

    def free_disk(self):
        path = os.path.join(self.disk, "rjep-ballast")
        if os.path.exists(path):
            os.remove(path)

    def wipe(self):
        """Node replacement: the process dies and its disk comes back empty."""
        self.kill()
        for entry in os.listdir(self.data):
            path = os.path.join(self.data, entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)

    def skew_clock(self, offset_s):
        with open(self.clock_file, "w", encoding="utf-8") as handle:
            handle.write(f"{offset_s:+d}s\n" if offset_s else "+0\n")

    def tail(self, lines=15):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""


def kill_together(nodes):
    """SIGKILLs the live ones of `nodes` first, then waits for each: they die at one moment."""
    dying = []
    for node in nodes:
        if not node.alive():
            node.check_crash()
            continue
        pid = node.proc.pid
        dying.append((node, pid, process_start_ticks(pid)))
        # Before the signal: an exit seen from now on is ours, not a crash.
        node.killed = True
        node.signal(signal.SIGKILL)
    for node, pid, ticks in dying:
        try:
            node.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"node {node.id} (pid {pid}) did not die of SIGKILL within 10 s")
        forget("pids", [pid, ticks])
        node.stopped = False
    assert all(not node.alive() for node, _, _ in dying), "every killed node is gone"


# A power failure is aimed at a moment when some write is not yet fsynced: rill fsyncs within
# milliseconds, so a failure at a random moment almost never finds one (measured: none in 45
# episodes). Each try stops the nodes (SIGSTOP: a pause of a few milliseconds, itself a fault
# the model allows) and looks; the failure strikes at the first try that finds unsynced bytes,
# or at the last try anyway.
POWER_AIM_TRIES = 100
POWER_AIM_GAP_S = 0.005


def power_off_together(nodes):
    """Every node of `nodes` loses power at one moment: stopped, killed together, then each
    LazyFS drops the writes its node had not fsynced. Only the dead may lose their cache: a write
    still in flight from a live process would otherwise vanish under it. Returns ({node id:
    unsynced bytes dropped}, tries it took to find some), for the history."""
    assert all(node.lazy is not None for node in nodes), "power failures need LazyFS disks"
    assert not any(node.stopped for node in nodes), "a paused node is not resumed by aiming"
    for tries in range(1, POWER_AIM_TRIES + 1):
        for node in nodes:
            node.signal(signal.SIGSTOP)
        # Stopped processes write nothing more: what is unsynced now is what the failure drops.
        dropped = {node.id: node.lazy.unsynced_bytes() for node in nodes}
        if sum(dropped.values()) > 0 or tries == POWER_AIM_TRIES:
            break
        for node in nodes:
            node.signal(signal.SIGCONT)
        time.sleep(POWER_AIM_GAP_S)
    # SIGKILL ends a stopped process too.
    kill_together(nodes)
    for node in nodes:
        assert not node.alive(), "the process is gone before its disk forgets"
        node.lazy.clear_cache()
    assert sum(node.lazy.unsynced_bytes() for node in nodes) == 0, "the caches were dropped"
    return dropped, tries
