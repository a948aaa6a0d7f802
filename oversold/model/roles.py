"""The topology a scenario asks for, its problems, and the fault schedule planned on it. Pure.

``expected_roles(scenario)`` says how many fault targets of each role the run
will register; ``chaos_problems`` lists every topology option that cannot be
stood up and every fault whose role or target this topology lacks;
``schedule`` expands the faults (``fault_spec.expand``) and plans their targets
(``fault.plan``).

Usage::

    roles = expected_roles(scenario)         # {"backend": 2, "redis-primary": 1}
    planned = schedule(scenario)             # concrete start times and targets
"""

from __future__ import annotations

from typing import Mapping

from oversold.errors import FaultSpecError

from .fault import Fault, plan
from .fault_spec import expand
from .scenario import Scenario


# a --host run starts none of the harness's parts: what a fault can reach there is what the scenario declares
_HOW_TO_DECLARE = ("; a backend given by URL (backend.url / --host) has only the targets you declare: put the "
                   "fault proxy in front of your database or Redis with chaos.upstreams: [{role: database, listen: "
                   "\"127.0.0.1:PORT\", upstream: \"127.0.0.1:PORT\"}] (point your backend at listen), let the harness "
                   "start your processes with chaos.processes: [{role: shop, command: [python, app.py], ready_url: "
                   "\"http://127.0.0.1:PORT/health\"}] (or name them by pid file to pause), or name your "
                   "containers with chaos.containers: [{role: shop, container: NAME}], and give the fault that "
                   "role (docs/adapters.md \"Faults against your system\")")


def expected_roles(scenario: Scenario) -> dict[str, int]:
    """How many fault targets each role will have once the run stands the system up (pure)."""
    roles: dict[str, int] = {}
    own_nodes = scenario.backend.url is None
    if own_nodes:
        roles["backend"] = scenario.backend.nodes
        roles["clock"] = scenario.backend.nodes  # each node's own clock (clock_skew)
    if scenario.redis.url is None and own_nodes:  # a backend given by URL has its own Redis
        roles["redis-primary"] = scenario.redis.shards if scenario.redis.topology == "cluster" else 1
        if scenario.redis.topology == "sentinel":
            roles["sentinel"] = 3
            if scenario.redis.replication_proxy:
                roles["replication"] = 1
    if scenario.redis.proxy and own_nodes:
        roles["proxy"] = scenario.backend.nodes
    if scenario.uses_ledger and own_nodes:  # the harness starts the sync worker beside its nodes
        roles["sync"] = 1
    if scenario.sale.async_orders and own_nodes:  # the harness starts the order processors too
        roles["orders"] = scenario.backend.order_workers
    # the user's upstreams (fronted by the fault proxy), processes (started or given by pid file), containers
    for part in (*scenario.chaos.upstreams, *scenario.chaos.processes, *scenario.chaos.containers):
        roles[part.role] = roles.get(part.role, 0) + 1
    return roles


def topology_problems(scenario: Scenario) -> list[str]:
    """Combinations of topology options the harness cannot stand up, each with its field path."""
    s, out = scenario, []
    sentinel = s.redis.topology == "sentinel"
    cluster = s.redis.topology == "cluster"
    docker = s.chaos.driver == "docker"
    if s.redis.url is not None:
        if sentinel or cluster:
            out.append(f"redis.topology: {s.redis.topology} is a topology the harness starts; remove redis.url")
        if docker:
            out.append("chaos.driver: docker runs the harness's own Redis in a container; remove redis.url")
        if s.redis.persistence != "none":
            out.append("redis.persistence: only for the Redis the harness starts; remove redis.url")
    if (sentinel or cluster) and s.redis.proxy:
        out.append(f"redis.proxy: the fault proxy needs one fixed upstream, so not with redis.topology: "
                   f"{s.redis.topology}")
    if cluster:
        if docker:
            out.append("chaos.driver: docker runs a single Redis; use driver: process with redis.topology: cluster")
        if s.redis.persistence != "none":
            out.append("redis.persistence: the cluster topology runs without persistence (replicas resync)")
        if s.uses_ledger:
            out.append("redis.topology: cluster has no warehouse ledger sync (the sync worker and "
                       "pre_deduct_ledger need redis.topology: single or sentinel)")
    if sentinel and docker:
        out.append("chaos.driver: docker runs a single Redis; use driver: process with redis.topology: sentinel")
    if s.redis.replication_proxy and not sentinel:
        out.append("redis.replication_proxy: needs redis.topology: sentinel (a replica to partition)")
    if sentinel and s.redis.persistence != "none":
        out.append("redis.persistence: the sentinel topology runs without persistence (replicas resync)")
    if s.backend.url is not None:
        # the harness starts no Redis for a backend given by URL: the backend has its own
        if s.redis.proxy:
            out.append("redis.proxy: only the nodes the harness starts can be pointed at the proxy; remove backend.url")
        if s.redis.url is None:
            for path, asked in ((f"redis.topology: {s.redis.topology}", sentinel or cluster),
                                ("chaos.driver: docker", docker),
                                (f"redis.persistence: {s.redis.persistence}", s.redis.persistence != "none")):
                if asked:
                    out.append(f"{path}: the harness starts no Redis for a backend given by URL "
                               f"(backend.url / --host); run it against the reference backend")
    if s.chaos.upstreams and s.backend.url is None:
        out.append("chaos.upstreams: fronts the upstreams of a backend given by URL (backend.url / --host); "
                   "the harness's own nodes take redis.proxy")
    if s.chaos.processes and s.backend.url is None:
        out.append("chaos.processes: names the processes of a backend given by URL (backend.url / --host); "
                   "the harness's own nodes are role backend")
    if s.chaos.containers and s.backend.url is None:
        out.append("chaos.containers: names the containers of a backend given by URL (backend.url / --host); "
                   "the harness's own Redis takes chaos.driver: docker")
    if s.uses_ledger and s.redis.url is not None and not s.redis.url.startswith(("redis://", "redis+sentinel://")):
        out.append("redis.url: the sync worker and the ledger nodes take redis:// or redis+sentinel:// URLs")
    for i, f in enumerate(s.faults):
        if f.action == "failover" and not (sentinel or cluster):
            out.append(f"faults[{i}].action: failover needs redis.topology: sentinel or cluster")
    return out


def chaos_problems(scenario: Scenario) -> list[str]:
    """Every problem of the topology options and of the faults against the topology's roles."""
    out = topology_problems(scenario)
    roles = expected_roles(scenario)
    known = ", ".join(f"{r} ({n})" for r, n in roles.items()) or "none"
    for i, spec in enumerate(scenario.faults):
        n = roles.get(spec.role, 0)
        if n == 0:
            out.append(f"faults[{i}].role: this run has no {spec.role} targets (roles: {known})"
                       + (_HOW_TO_DECLARE if scenario.backend.url is not None else ""))
            continue
        fault = spec.fault()
        if fault.resolved:
            try:
                fault.indices(n)
            except FaultSpecError as e:
                out.append(f"faults[{i}].target: {e}")
    return out


def schedule(scenario: Scenario, roles: Mapping[str, int] | None = None) -> tuple[Fault, ...]:
    """The fault schedule of ``scenario``: expanded, targets resolved, sorted by start. Pure.

    Raises ``FaultSpecError`` (bad input) naming every fault whose role has no
    target in this topology or whose index is out of range.
    """
    faults = expand(scenario.faults, scenario.seed, scenario.swarm.duration_s)
    return plan(faults, expected_roles(scenario) if roles is None else roles, seed=scenario.seed)
