"""A local 3-node rill cluster for the perf probes: `rill cluster up` in a temporary directory on
127.0.0.1, the node pids and ports, per-process CPU and memory from /proc, and a guaranteed
`rill cluster down`. Used as a context manager:

    with LocalCluster(rill, base_port) as cluster:
        ... cluster.bootstrap, cluster.pids, cluster.kafka_ports ...
"""
import json
import os
import re
import subprocess
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class LocalCluster:
    def __init__(self, rill, base_port, brokers=3):
        self.rill = rill
        self.base_port = base_port
        self.brokers = brokers
        self.directory = tempfile.mkdtemp(prefix="rill-probe-")
        self.bootstrap = None
        self.pids = []

    def __enter__(self):
        up = subprocess.run(
            [self.rill, "cluster", "up", "--brokers", str(self.brokers), "--dir", self.directory,
             "--base-port", str(self.base_port)],
            capture_output=True, text=True, timeout=120, check=True)
        self.bootstrap = up.stdout.strip().splitlines()[-1]
        with open(os.path.join(self.directory, "cluster.json")) as handle:
            self.pids = json.load(handle)["pids"]
        return self

    def __exit__(self, *_exc):
        subprocess.run([self.rill, "cluster", "down", "--dir", self.directory],
                       capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", self.directory], timeout=60)

    @property
    def kafka_ports(self):
        return [self.base_port + 10 * node for node in range(1, self.brokers + 1)]

    def metrics_url(self, node):
        return f"http://127.0.0.1:{self.base_port + 10 * node + 2}/metrics"

    def create_topic(self, name, partitions, replication=3, attempts=30):
        """Creates `name`, retrying while the controller is still being elected."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for _ in range(attempts):
            futures = admin.create_topics([NewTopic(name, partitions, replication)],
                                          request_timeout=30)
            try:
                futures[name].result(60)
                return
            except Exception as error:  # noqa: BLE001 - the controller may still be electing
                if "already exists" in str(error).lower():
                    return
                time.sleep(1)
        raise RuntimeError(f"could not create {name}")

    def cpu_seconds(self):
        """User + system CPU seconds of every node process so far."""
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def rss_mib(self):
        """Resident memory of each node, MiB."""
        sizes = []
        for pid in self.pids:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        sizes.append(round(int(line.split()[1]) / 1024))
        return sizes

    def peer_connections(self):
        """Established TCP connections from a node process to another node's Kafka port."""
        out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                             text=True, timeout=30).stdout
        pids = {str(pid) for pid in self.pids}
        ports = {str(port) for port in self.kafka_ports}
        count = 0
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            peer_port = parts[3].rsplit(":", 1)[-1]
            owners = set(re.findall(r"pid=(\d+)", line))
            if peer_port in ports and owners & pids:
                count += 1
        return count
