"""A Redis Cluster on loopback: N shards, each a primary and a replica, all ``redis-server`` children.

Every node runs with ``cluster-enabled yes`` on a free 127.0.0.1 port. The
cluster is made from Python (``CLUSTER ADDSLOTS`` / ``MEET`` / ``REPLICATE``,
no ``redis-cli``): shard *i* gets the *i*-th equal range of the 16384 slots,
its node ``shard<i>-a`` starts as the primary and ``shard<i>-b`` as its replica.
Short timers (``cluster-node-timeout`` 1000 ms) make a failover take a few
seconds. ``cluster-require-full-coverage no``: while one shard has no primary,
the others keep serving their slots (only that shard's keys are refused).

URL of the whole cluster, for a backend node's ``--redis-url``
(``reference_backend/cluster_pool.py`` reads it)::

    redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...     (every node: any one is enough to find the rest)

Usage::

    with ClusterTopology.start(shards=3, log_dir=run_dir) as topo:
        topo.url                           # redis+cluster://127.0.0.1:...,...
        old = topo.kill_primary(1)         # SIGKILL shard 1's primary, as a crashed host
        topo.wait_failover(1, old=old.addr)
        topo.restart(old)                  # back as a replica of the promoted node
"""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from oversold.errors import ChaosError, RedisUnavailable
from oversold.infra.procs import LOOPBACK, Child, free_port
from oversold.infra.redis_server import find_redis_binary, wait_for_redis

from .redis_ask import ask as _ask
from .redis_ask import client as _client

SCHEME = "redis+cluster"
SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
Address = tuple[str, int]


def cluster_url(nodes: list[Address]) -> str:
    """``redis+cluster://host:port,host:port,...`` of the given nodes."""
    return f"{SCHEME}://" + ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)


def free_cluster_port(tries: int = 200) -> int:
    """A free port whose cluster bus port (port + 10000, fixed in Redis 6) is free and valid too."""
    for _ in range(tries):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RedisUnavailable(f"no free port pair (p, p + {BUS_OFFSET}) on {LOOPBACK} after {tries} tries")


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The slots of each shard: ``shards`` equal ranges (first, last) covering 0..16383. Pure."""
    if not 1 <= shards <= 64:
        raise ValueError(f"shards: from 1 to 64, got {shards}")
    edges = [i * SLOTS // shards for i in range(shards + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(shards)]


@dataclass
class ClusterNode:
    """One ``redis-server`` of the cluster; ``shard`` is the slot range it was made for."""

    name: str
    shard: int
    port: int
    argv: list[str]
    child: Child
    node_id: str = ""
    host: str = LOOPBACK

    @property
    def addr(self) -> Address:
        return (self.host, self.port)

    def alive(self) -> bool:
        return self.child.alive()


def parse_nodes(text: str) -> list[dict[str, Any]]:
    """``CLUSTER NODES`` as rows: id, port, flags (a set), master id, link, slots (first, last) ranges. Pure."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        port = int(parts[1].split("@")[0].rpartition(":")[2] or 0)
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        rows.append({"id": parts[0], "port": port, "flags": set(parts[2].split(",")),
                     "master": None if parts[3] == "-" else parts[3], "link": parts[7], "slots": slots})
    return rows


@dataclass
class ClusterTopology:
    """``shards`` primaries with one replica each, as one Redis Cluster; real processes on loopback.

    Usage::

        topo = ClusterTopology.start(shards=3)
        try:
            topo.primary(0)          # ('127.0.0.1', port) of whoever serves shard 0 now
        finally:
            topo.stop()
    """

    shards: int
    nodes: list[ClusterNode]
    workdir: Path
    log_dir: Path
    binary: str
    node_timeout_ms: int
    pids: list[int] = field(default_factory=list)  # every pid ever started, for leak checks

    # -- starting --------------------------------------------------------

    @classmethod
    def start(cls, *, shards: int = 3, replicas: int = 1, log_dir: Path | None = None, binary: str | None = None,
              node_timeout_ms: int = 1000, timeout: float = 30.0) -> "ClusterTopology":
        """Start every node, make the cluster, and wait until it serves every slot with its replicas in sync."""
        ranges = slot_ranges(shards)
        if not 0 <= replicas <= 2:
            raise ValueError(f"replicas: from 0 to 2 per shard, got {replicas}")
        binary = binary or find_redis_binary()
        workdir = Path(tempfile.mkdtemp(prefix="oversold-cluster-"))
        topo = cls(shards, [], workdir, Path(log_dir) if log_dir else workdir, binary, node_timeout_ms)
        try:
            for shard in range(shards):
                for r in range(1 + replicas):
                    topo._start_node(f"shard{shard}-{'abc'[r]}", shard)
            for node in topo.nodes:
                node.node_id = str(_ask(node.addr, "CLUSTER", "MYID"))
            for shard, (first, last) in enumerate(ranges):
                primary = topo.members(shard)[0]
                _ask(primary.addr, "CLUSTER", "ADDSLOTS", *range(first, last + 1), timeout=5.0)
            seed = topo.nodes[0]
            for node in topo.nodes[1:]:
                _ask(node.addr, "CLUSTER", "MEET", seed.host, seed.port)
            topo._wait(timeout, topo._all_known, "every node to know every other")
            for shard in range(shards):
                primary, *others = topo.members(shard)
                for node in others:
                    topo._replicate(node, primary.node_id, timeout)
            topo._wait(timeout, topo._serving, "the cluster to serve every slot, replicas in sync")
        except BaseException:
            topo.stop()
            raise
        return topo

    def _argv(self, name: str, port: int) -> list[str]:
        node_dir = self.workdir / name
        node_dir.mkdir(exist_ok=True)
        return [
            self.binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(node_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            # full syncs straight over the socket, without the default 5 s wait for more replicas
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]

    def _start_node(self, name: str, shard: int) -> ClusterNode:
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = free_cluster_port()
            argv = self._argv(name, port)
            node = ClusterNode(name, shard, port, argv, Child.start(argv, name=name, log_dir=self.log_dir))
            self.pids.append(node.child.pid)
            if wait_for_redis(port, node.child, 10):
                self.nodes.append(node)
                return node
            node.child.stop()
        raise RedisUnavailable(f"{name} did not start on {LOOPBACK}: {node.child.log_tail()}")

    def _replicate(self, node: ClusterNode, primary_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:  # refused until the node has heard of the primary by gossip
            client = _client(node.addr, timeout=1.0)
            try:
                client.execute_command("CLUSTER", "REPLICATE", primary_id)
                return
            except redis.RedisError as e:
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"{node.name} would not replicate {primary_id}: {e}") from None
            finally:
                client.close()
            time.sleep(0.1)

    def _all_known(self) -> bool:
        for node in self.nodes:
            rows = parse_nodes(str(_ask(node.addr, "CLUSTER", "NODES") or ""))
            if len(rows) != len(self.nodes) or any(r["link"] != "connected" for r in rows):
                return False
        return True

    def _serving(self) -> bool:
        for node in self.nodes:
            info = str(_ask(node.addr, "CLUSTER", "INFO") or "")
            if "cluster_state:ok" not in info:
                return False
            role = _ask(node.addr, "ROLE")
            if isinstance(role, list) and role and role[0] == "slave" and role[3] != "connected":
                return False
        return all(self.primary_or_none(s) is not None for s in range(self.shards))

    def _wait(self, timeout: float, ready: Any, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RedisUnavailable(f"redis cluster: waited {timeout:.0f}s for {what} (logs in {self.log_dir})")

    # -- asking ----------------------------------------------------------

    @property
    def url(self) -> str:
        return cluster_url([n.addr for n in self.nodes])

    @property
    def seeds(self) -> list[Address]:
        return [n.addr for n in self.nodes]

    def members(self, shard: int) -> list[ClusterNode]:
        """The nodes made for ``shard`` (its primary first, as they were started)."""
        return [n for n in self.nodes if n.shard == shard]

    def _view(self) -> list[dict[str, Any]]:
        """``CLUSTER NODES`` as a live node of the cluster sees it."""
        for node in self.nodes:
            if node.alive():
                text = _ask(node.addr, "CLUSTER", "NODES")
                if text:
                    return parse_nodes(str(text))
        raise ChaosError("no node of the redis cluster answers")

    def primary_or_none(self, shard: int) -> Address | None:
        """Who serves ``shard``'s first slot now, as a healthy master; None if nobody does."""
        first = slot_ranges(self.shards)[shard][0]
        for row in self._view():
            if "master" in row["flags"] and not row["flags"] & {"fail", "fail?"} and any(
                    a <= first <= b for a, b in row["slots"]):
                node = self.node_by_port(row["port"])
                if node is not None and node.alive() and self.role(node.addr) == "master":
                    return node.addr
        return None

    def primary(self, shard: int) -> Address:
        found = self.primary_or_none(shard)
        if found is None:
            raise ChaosError(f"redis cluster: shard {shard} has no primary now")
        return found

    def node_by_port(self, port: int) -> ClusterNode | None:
        return next((n for n in self.nodes if n.port == port), None)

    def node_at(self, addr: Address) -> ClusterNode:
        found = self.node_by_port(addr[1])
        if found is None:
            raise ChaosError(f"{addr[0]}:{addr[1]} is not a node of this cluster")
        return found

    def node_named(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ChaosError(f"no node named {name!r} in this cluster")

    @staticmethod
    def role(addr: Address) -> str | None:
        """``master`` or ``slave`` as the node says (``ROLE``), None if it does not answer."""
        reply = _ask(addr, "ROLE")
        return str(reply[0]) if isinstance(reply, list) and reply else None

    # -- faults ----------------------------------------------------------

    def kill_primary(self, shard: int) -> ClusterNode:
        """SIGKILL the current primary of ``shard`` (no shutdown, no final save), as a crashed host."""
        node = self.node_at(self.primary(shard))
        node.child.signal(signal.SIGKILL)
        node.child.popen.wait(timeout=10)  # reaped: no zombie, and the port is really closed
        return node

    def wait_failover(self, shard: int, *, old: Address, timeout: float = 30.0) -> Address:
        """Wait until another node serves ``shard`` as a healthy master and the cluster state is ok again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.primary_or_none(shard)
            if found is not None and found != old:
                info = str(_ask(found, "CLUSTER", "INFO") or "")
                if "cluster_state:ok" in info:
                    return found
            time.sleep(0.1)
        raise ChaosError(f"redis cluster: no failover of shard {shard} away from {old[0]}:{old[1]} within "
                         f"{timeout}s (logs in {self.log_dir})")

    def failover(self, shard: int, *, timeout: float = 30.0) -> Address:
        """``CLUSTER FAILOVER`` on a replica of ``shard``: a promotion without a crash, waited for."""
        old = self.primary(shard)
        replica = next((n for n in self.members(shard) if n.addr != old and n.alive()), None)
        if replica is None:
            raise ChaosError(f"redis cluster: shard {shard} has no live replica to promote")
        client = _client(replica.addr, timeout=3.0)
        try:
            client.execute_command("CLUSTER", "FAILOVER")
        except redis.RedisError as e:
            raise ChaosError(f"redis cluster: {replica.name} refused CLUSTER FAILOVER: {e}") from None
        finally:
            client.close()
        return self.wait_failover(shard, old=old, timeout=timeout)

    def restart(self, node: ClusterNode | str, *, timeout: float = 15.0) -> ClusterNode:
        """Start ``node`` again on its port, from its own ``nodes.conf`` (its id, its epoch).

        Without persistence it comes back empty. A node whose shard failed over
        meanwhile rejoins as a replica of the promoted one and resyncs; it is
        waited for until its link is up, so it never serves as a stale primary.
        """
        if isinstance(node, str):
            node = self.node_named(node)
        if node.alive():
            node.child.stop()
        node.child = Child.start(node.argv, name=node.name, log_dir=self.log_dir)
        self.pids.append(node.child.pid)
        if not wait_for_redis(node.port, node.child, timeout):
            raise ChaosError(f"{node.name} did not come back on {node.host}:{node.port}: {node.child.log_tail()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            role = _ask(node.addr, "ROLE")
            if isinstance(role, list) and role:
                if role[0] == "slave" and role[3] == "connected":
                    return node
                if role[0] == "master" and not any(n.alive() for n in self.members(node.shard) if n is not node):
                    return node  # nobody else could have taken the shard over
            time.sleep(0.1)
        raise ChaosError(f"{node.name} came back but did not resync within {timeout}s (logs in {self.log_dir})")

    def stop(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after a grace) and remove the temp dir."""
        for node in self.nodes:
            node.child.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ClusterTopology":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
