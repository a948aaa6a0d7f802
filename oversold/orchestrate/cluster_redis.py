"""The Redis of ``redis.topology: cluster``: a Redis Cluster the run starts, and the driver that hurts it.

``shards`` primaries, each with one replica (``oversold.chaos.cluster.ClusterTopology``),
every process recorded in the run's state file the moment it exists and
stopped by the run's ``ExitStack``. The nodes get its ``redis+cluster://`` URL
(``reference_backend/cluster_pool.py``); the ``redis-primary`` role has one
target per shard (``oversold.chaos.cluster_driver.ClusterDriver``).

Usage::

    url, driver = stand_up_cluster(shards=3, logs=run_dir / "logs", stack=stack, state=run.state)
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from oversold.chaos.cluster import ClusterTopology
from oversold.chaos.cluster_driver import ClusterDriver

#: how long a fault's heal waits for a shard's failover (a kill is healed once its replica took over)
FAILOVER_TIMEOUT_S = 45.0


def stand_up_cluster(*, shards: int, logs: Path, stack: ExitStack, state: Any) -> tuple[str, ClusterDriver]:
    """Start the cluster (its stop pushed onto ``stack``); its URL and fault driver."""
    topo = ClusterTopology.start(shards=shards, log_dir=logs)
    stack.callback(topo.stop)
    for node in topo.nodes:
        state.record_child(node.child)
    return topo.url, ClusterDriver(topo, state=state, failover_timeout_s=FAILOVER_TIMEOUT_S)
