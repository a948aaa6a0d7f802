"""The cluster driver: node faults on whichever node is the primary of a shard *now*, in a ``ClusterTopology``.

One role (``redis-primary``) with one target per shard: target *i* is the node
serving shard *i*'s slots at inject time, so a second kill after a failover
hits the promoted node.

| action     | inject                                       | heal                                                |
| ---------- | -------------------------------------------- | --------------------------------------------------- |
| `kill`     | SIGKILL the shard's primary, reaped          | wait for the failover, start it again (a replica)   |
| `pause`    | SIGSTOP the shard's primary                  | SIGCONT (the cluster demotes it if it failed over)  |
| `stop`     | SIGTERM the shard's primary                  | as `kill`                                           |
| `restart`  | SIGTERM, wait for the failover, start again  | nothing                                             |
| `failover` | ``CLUSTER FAILOVER`` on its replica, waited for | nothing                                          |

As with Sentinel (``sentinel_driver.py``), the heal of a kill waits for
the failover first: the nodes run without persistence, and a primary that
came back empty before its replica was promoted would still own its slots,
empty, and its replica would copy the empty dataset.

Usage::

    driver = ClusterDriver(topology, state=state_file)
    with Nemesis(driver) as nemesis:
        inj = nemesis.inject(Fault("kill", "redis-primary", 1))   # shard 1's primary
        nemesis.heal(inj)                                        # back, as a replica of the promoted node
"""

from __future__ import annotations

import signal
import time
from typing import Callable

from oversold.errors import FaultSpecError
from oversold.model.fault import NODE_ACTIONS, Fault, check_fault

from .cluster import ClusterNode, ClusterTopology
from .driver import Hit, Injection
from .sentinel_driver import SentinelDriver
from .sweep import StateFile

CLUSTER_ACTIONS = NODE_ACTIONS + ("failover",)


class ClusterDriver(SentinelDriver):
    """Faults on shard primaries of a Redis Cluster (the heal is the Sentinel driver's: the same rules).

    Usage::

        driver = ClusterDriver(topo)
        driver.roles()         # {"redis-primary": 3} for three shards
    """

    name = "cluster"
    topology: ClusterTopology  # type: ignore[assignment]

    def __init__(self, topology: ClusterTopology, *, role: str = "redis-primary", failover_timeout_s: float = 30.0,
                 state: StateFile | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(topology, role=role, failover_timeout_s=failover_timeout_s,  # type: ignore[arg-type]
                         state=state, clock=clock)

    def roles(self) -> dict[str, int]:
        return {self.role: self.topology.shards}

    def inject(self, fault: Fault) -> Injection:
        check_fault("cluster", fault, CLUSTER_ACTIONS)
        if fault.role != self.role:
            raise FaultSpecError(f"cluster driver: no targets for role {fault.role!r} (it has {self.role!r})")
        shards = fault.indices(self.topology.shards)
        with self._lock:
            started_at = self._clock()
            hits = []
            for shard in shards:
                node = self.topology.node_at(self.topology.primary(shard))
                hits.append(Hit(self.role, shard, "pid", str(node.child.pid), node.name))
                if fault.action == "kill":
                    node.child.signal(signal.SIGKILL)
                    node.child.popen.wait(timeout=10)  # reaped: the port is really closed
                elif fault.action == "pause":
                    node.child.signal(signal.SIGSTOP)
                elif fault.action == "stop":
                    node.child.stop()
                elif fault.action == "restart":
                    node.child.stop()
                    self._back_as_replica(node)  # type: ignore[arg-type]
                elif fault.action == "failover":
                    self.topology.failover(shard, timeout=self._failover_timeout_s)
            return Injection(f"{self.name}-{next(self._seq)}", self.name, fault, tuple(hits), started_at)

    def _back_as_replica(self, node: ClusterNode) -> None:  # type: ignore[override]
        """Wait until the shard's replica took over, then start ``node`` again (it rejoins as a replica)."""
        self.topology.wait_failover(node.shard, old=node.addr, timeout=self._failover_timeout_s)
        self.topology.restart(node)
        if self._state is not None:
            self._state.record_child(node.child)
