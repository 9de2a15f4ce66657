"""The hosts of a real-process Jepsen run: one network namespace per node on a bridge the harness
creates, one size-limited tmpfs per node as its disk, and the `rill broker` processes.

Everything here carries the prefix `rjep-` (namespaces, links) or lives under the run's work
directory (mounts), and is recorded in a state file as it is made, so that `cleanup()` removes
exactly what this harness made, also what an earlier crashed run left behind. No packet may leave
the machine: the subnet is private, the namespaces have no default route, and before the first
packet `check_routes()` requires that the route to every node address leads into our bridge.
"""

import json
import os
import re
import shutil
import signal
import subprocess
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


def _is_our_rill(pid, start_ticks):
    """True when `pid` is still the rill process we started (same start time, our config)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode(errors="replace")
    except OSError:
        return False
    return int(fields[19]) == start_ticks and "rjep" in cmdline


def process_start_ticks(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def cleanup():
    """Removes every process, mount, namespace and link an earlier (or this) run made."""
    state = _load_state()
    for pid, ticks in state["pids"]:
        if _is_our_rill(pid, ticks):
            # SIGKILL ends a stopped (SIGSTOPped) process too; CONT anyway so that nothing
            # lingers stopped should the kill be refused.
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    for pid, ticks in state["pids"]:
        deadline = time.monotonic() + 10
        while _is_our_rill(pid, ticks) and time.monotonic() < deadline:
            time.sleep(0.05)
    for mount in state["mounts"]:
        if os.path.ismount(mount):
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


def check_subnet_free():
    """Refuses to run when anything but our bridge already routes our subnet."""
    routes = run("ip", "-o", "route", "show", "to", "match", f"{SUBNET}.0/24", check=False)
    for line in routes.splitlines():
        if line.startswith("default"):
            continue
        if f"{SUBNET}." in line and f"dev {BRIDGE}" not in line:
            raise RuntimeError(f"{SUBNET}.0/24 is already routed on this machine ({line}): refusing")


def set_up_network(nodes):
    check_subnet_free()
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


# --- the nodes ----------------------------------------------------------------------------------


class Node:
    """One `rill broker` in its namespace, with its own tmpfs disk and config."""

    def __init__(self, node_id, nodes, workdir, rill, row, disk_mb, faketime, bug=None):
        self.id = node_id
        self.rill = rill
        self.dir = os.path.join(workdir, f"node-{node_id}")
        self.data = os.path.join(self.dir, "data")
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
        run("mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m", f"{PREFIX}disk{self.id}", self.data)
        remember("mounts", self.data)

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
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.proc.pid}/cmdline", "rb") as handle:
                    if b"broker" in handle.read() and os.readlink(f"/proc/{self.proc.pid}/exe").endswith("rill"):
                        break
            except OSError:
                pass
            time.sleep(0.01)
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
        if not self.alive():
            self.check_crash()
            return
        pid = self.proc.pid
        ticks = process_start_ticks(pid)
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"node {self.id} (pid {pid}) did not die of SIGKILL within 10 s")
        forget("pids", [pid, ticks])
        self.stopped = False
        self.killed = True

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def fill_disk(self):
        """Takes the rest of the node's disk with a ballast file (the disk-full fault)."""
        stat = os.statvfs(self.data)
        free = stat.f_bavail * stat.f_frsize
        # Leave no byte: a write of one more page fails with ENOSPC.
        run("fallocate", "-l", str(max(free, 4096)), os.path.join(self.data, "rjep-ballast"), check=False)

    def free_disk(self):
        path = os.path.join(self.data, "rjep-ballast")
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
