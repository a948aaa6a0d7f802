"""The Sentinel driver: node faults on whichever Redis is the primary *now*, in a ``SentinelTopology``.

One role (``redis-primary`` by default) with one target: the primary, looked
up from the Sentinels at inject time, so a second kill after a failover hits
the new primary.

| action     | inject                                      | heal                                               |
| ---------- | ------------------------------------------- | -------------------------------------------------- |
| `kill`     | SIGKILL the primary, reaped                 | wait for the failover, start it again as a replica |
| `pause`    | SIGSTOP the primary                         | SIGCONT (Sentinel demotes it if it failed over)    |
| `stop`     | SIGTERM the primary                         | as `kill`                                          |
| `restart`  | SIGTERM, wait for the failover, start again as a replica | nothing                               |
| `failover` | ``SENTINEL FAILOVER``: a promotion without a crash, waited for | nothing                             |

Why the heal of a kill waits for the failover: the data nodes run without
persistence, and a primary that comes back empty *before* the Sentinels
promote the replica is still the primary -- it would replicate its empty
dataset to the replica and the whole sale would be gone. That is a real
hazard (the Redis docs warn against auto-restarting a primary without
persistence), but not the fault this driver injects; a crash here is "the
host is gone until the cluster has moved on".

Usage::

    driver = SentinelDriver(topology, state=state_file)
    with Nemesis(driver) as nemesis:
        inj = nemesis.inject(Fault("kill", "redis-primary", 0))
        nemesis.heal(inj)        # the old primary is back, as a replica of the new one
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from typing import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from oversold.errors import ChaosError, FaultSpecError
from oversold.model.fault import NODE_ACTIONS, Fault, check_fault

from .driver import Hit, Injection
from .sentinel import Node, SentinelTopology
from .sweep import StateFile

SENTINEL_ACTIONS = NODE_ACTIONS + ("failover",)


class SentinelDriver:
    """Faults on the current primary of a Sentinel topology.

    Usage::

        driver = SentinelDriver(topo)
        driver.roles()         # {"redis-primary": 1}
    """

    name = "sentinel"

    def __init__(self, topology: SentinelTopology, *, role: str = "redis-primary", failover_timeout_s: float = 30.0,
                 state: StateFile | None = None, clock: Callable[[], float] = time.time) -> None:
        self.topology = topology
        self.role = role
        self._failover_timeout_s = failover_timeout_s
        self._state = state
        self._clock = clock
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    def roles(self) -> dict[str, int]:
        return {self.role: 1}

    def inject(self, fault: Fault) -> Injection:
        check_fault("sentinel", fault, SENTINEL_ACTIONS)
        if fault.role != self.role:
            raise FaultSpecError(f"sentinel driver: no targets for role {fault.role!r} (it has {self.role!r})")
        fault.indices(1)  # only index 0 exists: the primary
        with self._lock:
            node = self.topology.node_at(self.topology.primary())
            started_at = self._clock()
            hit = Hit(self.role, 0, "pid", str(node.child.pid), node.name)
            if fault.action == "kill":
                node.child.signal(signal.SIGKILL)
                node.child.popen.wait(timeout=10)  # reaped: the port is really closed
                self.topology.killed = node
            elif fault.action == "pause":
                node.child.signal(signal.SIGSTOP)
            elif fault.action == "stop":
                node.child.stop()
            elif fault.action == "restart":
                node.child.stop()
                self._back_as_replica(node)
            elif fault.action == "failover":
                self._failover(node)
            return Injection(f"{self.name}-{next(self._seq)}", self.name, fault, (hit,), started_at)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            for hit in injection.hits:
                node = self.topology.node_named(hit.name)
                if str(node.child.pid) != hit.ident:
                    continue  # started again since: the process this fault hit is gone
                if injection.fault.action == "pause":
                    node.child.signal(signal.SIGCONT)
                elif injection.fault.action in ("kill", "stop") and not node.alive():
                    self._back_as_replica(node)
            self._healed.add(injection.id)

    def _back_as_replica(self, node: Node) -> None:
        """Wait until the Sentinels promoted another node, then start ``node`` as its replica."""
        self.topology.wait_failover(self._failover_timeout_s, old=node.addr)
        self.topology.restart(node)  # --replicaof the current primary
        if self._state is not None:
            self._state.record_child(node.child)

    def _failover(self, node: Node) -> None:
        """``SENTINEL FAILOVER``, asked again until one Sentinel takes it.

        Right after an earlier failover a Sentinel refuses (``-INPROG``, or
        ``-NOGOODSLAVE`` until it has seen a replica with a healthy link again),
        so the request is repeated until ``failover_timeout_s``.
        """
        deadline = time.monotonic() + self._failover_timeout_s
        refusals: list[str] = []
        while True:
            for s in self.topology.sentinel_nodes:
                client = redis.Redis(host=s.host, port=s.port, socket_timeout=2, socket_connect_timeout=2,
                                     retry=Retry(NoBackoff(), 0))
                try:
                    client.execute_command("SENTINEL", "FAILOVER", self.topology.master_name)
                    self.topology.wait_failover(self._failover_timeout_s, old=node.addr)
                    return
                except redis.RedisError as e:
                    refusals.append(f"{s.name}: {e}")  # down, or not now: ask the next, then again
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise ChaosError(f"no Sentinel of {self.topology.master_name} accepted SENTINEL FAILOVER "
                                 f"within {self._failover_timeout_s:g}s (last: {refusals[-3:]})")
            time.sleep(0.2)
