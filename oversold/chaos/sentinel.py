"""A Redis failover topology on loopback, and the URL a backend uses to reach it.

One primary, one replica and three Sentinels, all ``redis-server`` child
processes (Sentinels are the same binary with ``--sentinel``) on free
127.0.0.1 ports, with short timers so a failover takes a few seconds.

URL format (built by ``sentinel_url``; the reference backend parses it in
``reference_backend.sentinel_url``)::

    redis+sentinel://[[username]:password@]host:port[,host:port...]/service_name[/db][?option=value&...]

    redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/oversold
    redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/oversold/0?socket_timeout=0.5

Hosts are the Sentinels (IPv6 in brackets: ``[::1]:26379``); credentials and
``db`` are for the data nodes. Options: ``socket_timeout`` and
``socket_connect_timeout`` (seconds, for Sentinels and data nodes),
``sentinel_password`` (for the Sentinels), ``min_other_sentinels`` (int).
Anything else is an error, so a typo never passes silently.

Usage (harness side)::

    with SentinelTopology.start(log_dir=run_dir, master_name="oversold") as topo:
        topo.url                    # redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/oversold
        old = topo.kill_primary()   # SIGKILL, like a crashed host
        new = topo.wait_failover(timeout=20)
        topo.restart(old)           # comes back as a replica of the new primary
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from oversold.errors import BadInput, ChaosError, RedisUnavailable
from oversold.infra.procs import LOOPBACK, Child, free_port
from oversold.infra.redis_server import find_redis_binary, wait_for_redis

from .redis_ask import ask as _ask

SCHEME = "redis+sentinel"
Address = tuple[str, int]

# ---------------------------------------------------------------- the URL


def sentinel_url(
    sentinels: list[Address] | tuple[Address, ...],
    service_name: str,
    *,
    db: int = 0,
    username: str | None = None,
    password: str | None = None,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    sentinel_password: str | None = None,
    min_other_sentinels: int = 0,
) -> str:
    """Build a ``redis+sentinel://`` URL; ``reference_backend.sentinel_url.parse_sentinel_url`` reads it back."""
    if not sentinels:
        raise BadInput("sentinel URL: at least one Sentinel address is needed")
    hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sentinels)
    auth = ""
    if username is not None or password is not None:
        auth = quote(username or "", safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        auth += "@"
    path = "/" + quote(service_name, safe="") + (f"/{db}" if db else "")
    options = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "sentinel_password": sentinel_password,
        "min_other_sentinels": min_other_sentinels or None,
    }
    query = urlencode({k: v for k, v in options.items() if v is not None})
    return f"{SCHEME}://{auth}{hosts}{path}" + (f"?{query}" if query else "")


# ------------------------------------------------------------ the topology


@dataclass
class Node:
    """One process of the topology: a data node (``redis``) or a ``sentinel``."""

    name: str
    kind: str
    port: int
    argv: list[str]
    child: Child
    host: str = LOOPBACK

    @property
    def addr(self) -> Address:
        return (self.host, self.port)

    def alive(self) -> bool:
        return self.child.alive()


def _as_dict(reply: Any) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat key/value list, as a dict."""
    if isinstance(reply, dict):
        return reply
    if isinstance(reply, list):
        return dict(zip(reply[::2], reply[1::2]))
    return {}


@dataclass
class SentinelTopology:
    """One primary, one replica, three Sentinels: real processes on loopback.

    Usage::

        topo = SentinelTopology.start(log_dir=Path("run/logs"), master_name="oversold")
        try:
            host, port = topo.primary()
            topo.kill_primary()
            topo.wait_failover(timeout=20)
        finally:
            topo.stop()
    """

    master_name: str
    data_nodes: list[Node]
    sentinel_nodes: list[Node]
    workdir: Path
    log_dir: Path
    binary: str
    quorum: int = 2
    pids: list[int] = field(default_factory=list)  # every pid ever started, for leak checks
    killed: Node | None = None

    # -- starting --------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        log_dir: Path | None = None,
        master_name: str = "oversold",
        binary: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        quorum: int = 2,
        sentinels: int = 3,
        timeout: float = 20.0,
    ) -> "SentinelTopology":
        """Start everything and wait until every Sentinel sees the replica and its peers."""
        binary = binary or find_redis_binary()
        workdir = Path(tempfile.mkdtemp(prefix="oversold-sentinel-"))
        topo = cls(master_name, [], [], workdir, Path(log_dir) if log_dir else workdir, binary, quorum)
        try:
            primary = topo._start_node("redis-1", "redis", [])
            topo._start_node("redis-2", "redis", ["--replicaof", LOOPBACK, str(primary.port)])
            for i in range(1, sentinels + 1):
                topo._start_sentinel(f"sentinel-{i}", primary.port, down_after_ms, failover_timeout_ms)
            topo._wait_ready(timeout, sentinels)
        except BaseException:
            topo.stop()
            raise
        return topo

    def _data_argv(self, name: str, port: int) -> list[str]:
        node_dir = self.workdir / name
        node_dir.mkdir(exist_ok=True)
        return [
            self.binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(node_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
            # Full syncs straight over the socket, without the default 5 s wait for more replicas.
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]

    def _start_node(self, name: str, kind: str, extra: list[str]) -> Node:
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            argv = self._data_argv(name, port) + extra
            node = Node(name, kind, port, argv, Child.start(argv, name=name, log_dir=self.log_dir))
            self.pids.append(node.child.pid)
            if wait_for_redis(port, node.child, 10):
                self.data_nodes.append(node)
                return node
            node.child.stop()
        raise RedisUnavailable(f"{name} did not start on {LOOPBACK}: {node.child.log_tail()}")

    def _start_sentinel(self, name: str, primary_port: int, down_after_ms: int, failover_timeout_ms: int) -> Node:
        node_dir = self.workdir / name
        node_dir.mkdir(exist_ok=True)
        conf = node_dir / "sentinel.conf"  # Sentinel rewrites it with what it learns: keep it writable
        m = self.master_name
        for _ in range(3):
            port = free_port()
            conf.write_text(
                f"port {port}\nbind {LOOPBACK}\ndaemonize no\nlogfile \"\"\ndir {node_dir}\n"
                f"sentinel announce-ip {LOOPBACK}\nsentinel announce-port {port}\n"
                f"sentinel monitor {m} {LOOPBACK} {primary_port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {m} {down_after_ms}\n"
                f"sentinel failover-timeout {m} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {m} 1\n"
            )
            argv = [self.binary, str(conf), "--sentinel"]
            node = Node(name, "sentinel", port, argv, Child.start(argv, name=name, log_dir=self.log_dir))
            self.pids.append(node.child.pid)
            if wait_for_redis(port, node.child, 10):
                self.sentinel_nodes.append(node)
                return node
            node.child.stop()
        raise RedisUnavailable(f"{name} did not start on {LOOPBACK}: {node.child.log_tail()}")

    def _wait_ready(self, timeout: float, sentinels: int) -> None:
        deadline = time.monotonic() + timeout
        replica = self.data_nodes[1]
        while time.monotonic() < deadline:
            info = _ask(replica.addr, "INFO", "replication") or {}
            views = [_as_dict(_ask(s.addr, "SENTINEL", "MASTER", self.master_name)) for s in self.sentinel_nodes]
            # Failover needs the quorum to agree, so every Sentinel must know its peers
            # (learned from hello messages every 2 s) and the replica it can promote.
            if info.get("master_link_status") == "up" and all(
                int(v.get("num-slaves", 0)) >= 1 and int(v.get("num-other-sentinels", 0)) >= sentinels - 1
                for v in views
            ):
                return
            time.sleep(0.1)
        raise RedisUnavailable(f"sentinel topology not ready after {timeout}s (logs in {self.log_dir})")

    # -- asking ----------------------------------------------------------

    @property
    def sentinels(self) -> list[Address]:
        return [s.addr for s in self.sentinel_nodes]

    @property
    def url(self) -> str:
        return sentinel_url(self.sentinels, self.master_name)

    def _votes(self) -> Counter[Address]:
        votes: Counter[Address] = Counter()
        for s in self.sentinel_nodes:
            if not s.alive():
                continue
            reply = _ask(s.addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            if isinstance(reply, (list, tuple)) and len(reply) == 2:
                votes[(str(reply[0]), int(reply[1]))] += 1
        return votes

    def primary(self) -> Address:
        """The primary most Sentinels name right now."""
        votes = self._votes()
        if not votes:
            raise ChaosError(f"no Sentinel of {self.master_name} answered")
        return votes.most_common(1)[0][0]

    def node_at(self, addr: Address) -> Node:
        for node in self.data_nodes + self.sentinel_nodes:
            if node.port == addr[1] and node.host == addr[0]:
                return node
        raise ChaosError(f"{addr[0]}:{addr[1]} is not a node of this topology")

    def node_named(self, name: str) -> Node:
        for node in self.data_nodes + self.sentinel_nodes:
            if node.name == name:
                return node
        raise ChaosError(f"no node named {name!r} in this topology")

    @staticmethod
    def role(addr: Address) -> str | None:
        """``master`` or ``slave`` as the node says (``ROLE``), None if it does not answer."""
        reply = _ask(addr, "ROLE")
        return str(reply[0]) if isinstance(reply, list) and reply else None

    # -- faults ----------------------------------------------------------

    def kill_primary(self) -> Node:
        """SIGKILL the current primary (no shutdown, no final save), as a crashed host."""
        node = self.node_at(self.primary())
        node.child.signal(signal.SIGKILL)
        node.child.popen.wait()  # reap it: no zombie, and the port is really closed
        self.killed = node
        return node

    def wait_failover(self, timeout: float = 30.0, *, old: Address | None = None) -> Address:
        """Wait until the quorum of Sentinels names a new primary that says it is master.

        ``old`` defaults to the node ``kill_primary`` killed.
        """
        if old is None:
            if self.killed is None:
                raise ChaosError("wait_failover: nothing was killed; pass old=(host, port)")
            old = self.killed.addr
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            votes = self._votes()
            votes.pop(old, None)
            if votes:
                addr, count = votes.most_common(1)[0]
                if count >= self.quorum and self.role(addr) == "master":
                    return addr
            time.sleep(0.1)
        raise ChaosError(
            f"no failover of {self.master_name} away from {old[0]}:{old[1]} within {timeout}s "
            f"(Sentinels say {dict(self._votes())}; logs in {self.log_dir})"
        )

    def restart(self, node: Node | str, *, as_replica: bool = True, timeout: float = 10.0) -> Node:
        """Start ``node`` again (stopping it first if it runs), on the same port.

        A data node that is not the current primary comes back with
        ``--replicaof`` the current primary (``as_replica``): Sentinel would
        demote a returning old primary by itself, but only ~10 s later, and
        until then two primaries would accept writes. Pass ``as_replica=False``
        to get exactly that split-brain window. A Sentinel restarts from its
        own rewritten config file, so it remembers the current epoch and peers.
        """
        if isinstance(node, str):
            node = self.node_named(node)
        if node.alive():
            node.child.stop()
        argv = list(node.argv)
        if node.kind == "redis":
            argv = self._data_argv(node.name, node.port)
            primary = self.primary()
            if as_replica and primary != node.addr:
                argv += ["--replicaof", primary[0], str(primary[1])]
        node.argv = argv
        node.child = Child.start(argv, name=node.name, log_dir=self.log_dir)
        self.pids.append(node.child.pid)
        if not wait_for_redis(node.port, node.child, timeout):
            raise ChaosError(f"{node.name} did not come back on {node.host}:{node.port}: {node.child.log_tail()}")
        if self.killed is node:
            self.killed = None
        return node

    def stop(self) -> None:
        """Stop every process (Sentinels first, so none starts a failover) and remove the temp dir."""
        for node in self.sentinel_nodes + self.data_nodes:
            node.child.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "SentinelTopology":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
