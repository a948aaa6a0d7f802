"""Standing up the system under test for one run, and registering every part as a fault target.

What a scenario asks for (``redis``, ``backend``, ``chaos`` sections), started
as children of this process (or containers with the run's label), each one
recorded in the run's state file the moment its starter returns, each one
registered by role with the driver that can hurt it:

| part                          | started by                         | role / driver                      |
| ----------------------------- | ---------------------------------- | ---------------------------------- |
| Redis (``topology: single``)  | ``RedisServer`` (or a container with ``chaos.driver: docker``) | ``redis-primary`` / process (docker) |
| Redis (``topology: sentinel``)| ``SentinelTopology``: primary, replica, 3 Sentinels | ``redis-primary`` / sentinel, ``sentinel`` / process |
| Redis (``topology: cluster``) | ``ClusterTopology`` (``cluster_redis.py``): a primary and a replica per shard | ``redis-primary`` / cluster (one per shard) |
| fault proxy (``redis.proxy``) | ``FaultProxy``, one link per node  | ``proxy`` / proxy                  |
| backend nodes                 | ``BackendNode``                    | ``backend`` / process              |
| each node's own clock         | ``--clock-file`` of every node     | ``clock`` / clock                  |
| sync worker (ledger runs)     | ``oversold.orchestrate.workers``               | ``sync`` / sync                    |
| order processors (async sale) | ``oversold.orchestrate.workers``               | ``orders`` / process               |
| the user's parts (``--host``) | ``oversold.orchestrate.user_system``: ``chaos.upstreams``, ``processes``, ``containers`` | their roles |

Everything is stopped by the ``ExitStack`` the caller passes, newest first;
restarted children are stopped too (the owners' handles follow restarts).

Usage::

    with ExitStack() as stack:
        topo = stand_up(scenario, run_dir, stack=stack, run=run_state, admin_token=token, progress=print)
        ...                                           # create the sale
        start_workers(topo, scenario, run_dir, stack=stack, run=run_state, progress=print)
        with Nemesis(*topo.drivers) as nemesis: ...
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import redis

from oversold.chaos.clock_driver import ClockDriver
from oversold.chaos.driver import Driver
from oversold.chaos.leftovers import RunState
from oversold.chaos.process import ProcessDriver, same_argv
from oversold.chaos.sentinel_driver import SentinelDriver
from oversold.chaos.sync_driver import SyncDriver
from oversold.errors import BackendUnavailable, HarnessError, RedisUnavailable
from oversold.infra.procs import LOOPBACK, Child, free_port, wait_for_port
from oversold.infra.redis_server import RedisServer
from oversold.model.roles import expected_roles

from .nodes import BackendNode
from .user_system import docker_client, start_user_processes, user_drivers
from .workers import start_order_worker, start_sync_worker

Say = Callable[[str], None]

#: Redis settings of ``redis.persistence: aof``: every acknowledged write is on disk before the reply
AOF_ARGS = ["--appendonly", "yes", "--appendfsync", "always"]


@dataclass
class Topology:
    """What ``stand_up`` started: where the nodes are, the Redis URL they use, the fault drivers."""

    node_urls: list[str]
    admin_token: str
    # as the nodes' and the sync worker's --redis-url (redis:// or redis+sentinel://); None when
    # the backend is given by URL and no Redis was named (the harness starts none then)
    redis_url: str | None
    drivers: list[Driver] = field(default_factory=list)
    ledger_path: Path | None = None
    has_sync: bool = False
    label: str | None = None  # the run's container label, when it started containers


class _Handle:
    """A child whose process changes on restart; ``stop`` always stops the current one."""

    def __init__(self, child: Child) -> None:
        self.child = child

    def set(self, child: Child) -> None:
        self.child = child

    def stop(self) -> None:
        self.child.stop()


def stand_up(scenario: Any, run_dir: Path, *, stack: ExitStack, run: RunState, admin_token: str,
             progress: Say) -> Topology:
    """Start everything ``scenario`` asks for; every stop is pushed onto ``stack``."""
    logs = run_dir / "logs"
    state = run.state
    procs = ProcessDriver(state=state)
    drivers: list[Driver] = [procs]
    own_nodes = scenario.backend.url is None

    # -- Redis -----------------------------------------------------------------------
    label = None
    redis_url: str | None
    if not own_nodes and scenario.redis.url is None:
        redis_url = None  # a backend given by URL has its own Redis; the harness starts none
    elif scenario.redis.url is not None:
        redis_url = scenario.redis.url
        progress(f"redis: using {redis_url}")
    elif scenario.chaos.driver == "docker":
        label = f"{scenario.chaos.docker_label}={run.run_id}"
        redis_url, docker_driver = _redis_container(scenario, stack, run, label, logs)
        drivers.append(docker_driver)
        progress(f"redis: container {scenario.chaos.docker_image} on {redis_url} (label {label})")
    elif scenario.redis.topology == "sentinel":
        from oversold.chaos.sentinel import SentinelTopology

        # Sentinel puts a replica that replicates from "the wrong address" (our proxy) back after
        # failover-timeout; 15 s keeps the proxied link for the run and a failed election's retry
        # (2 x failover-timeout) within reach
        partitionable = scenario.redis.replication_proxy
        topo = SentinelTopology.start(log_dir=logs, master_name="oversold",
                                      **({"failover_timeout_ms": 15_000} if partitionable else {}))
        stack.callback(topo.stop)
        for pid_node in topo.data_nodes + topo.sentinel_nodes:
            state.record_child(pid_node.child)
        for node in topo.sentinel_nodes:
            procs.register("sentinel", node.child, port=node.port,
                           restart=lambda n=node: topo.restart(n).child)  # the topology keeps n.child current
        drivers.append(SentinelDriver(topo, state=state, failover_timeout_s=45.0))
        redis_url = topo.url
        progress(f"redis: sentinel topology, primary {topo.primary()[1]}, {redis_url}")
        if partitionable:
            drivers.append(_replication_through_proxy(topo, scenario.seed, stack, state, logs))
            progress("redis: the replica replicates through the fault proxy (role replication)")
    elif scenario.redis.topology == "cluster":
        from .cluster_redis import stand_up_cluster

        redis_url, cluster_driver = stand_up_cluster(shards=scenario.redis.shards, logs=logs, stack=stack, state=state)
        drivers.append(cluster_driver)
        progress(f"redis: cluster of {scenario.redis.shards} shards (a primary and a replica each), {redis_url}")
    else:
        extra = AOF_ARGS if scenario.redis.persistence == "aof" else []
        server = RedisServer.start(log_dir=logs, extra_args=extra)
        state.record_child(server.child)
        stack.callback(server.stop)
        procs.register_redis("redis-primary", server)
        redis_url = server.url
        progress(f"redis: started {redis_url} (pid {server.child.pid}"
                 f"{', AOF appendfsync always' if extra else ''})")
    if redis_url is not None and not redis_url.startswith("redis+cluster://"):  # a cluster waited for itself
        _check_redis(redis_url)

    if not own_nodes:  # the user's own parts, as the scenario declares them (oversold.orchestrate.user_system)
        drivers += user_drivers(scenario, stack=stack, state=state, logs=logs, progress=progress)
        start_user_processes(scenario, procs, stack=stack, state=state, logs=logs, progress=progress)
        return Topology([scenario.backend.url.rstrip("/")], admin_token, redis_url, drivers, label=label)
    assert redis_url is not None

    # -- the fault proxy: one link per node ------------------------------------------
    node_redis = [redis_url] * scenario.backend.nodes
    if scenario.redis.proxy:
        from oversold.chaos.proxy import FaultProxy, listen_port
        from oversold.chaos.proxy_driver import ProxyDriver

        fp = FaultProxy.start(log_dir=logs, seed=scenario.seed)
        state.record_child(fp.child)
        stack.callback(fp.stop)
        proxy_driver = ProxyDriver(fp.client)
        parts = urlsplit(redis_url)
        upstream = f"{parts.hostname}:{parts.port or 6379}"
        for i in range(scenario.backend.nodes):
            name = f"node{i + 1}-redis"
            port = listen_port(fp.client.create(name, upstream=upstream))
            node_redis[i] = urlunsplit(parts._replace(netloc=_netloc(parts, port)))
            proxy_driver.register("proxy", name)
        drivers.append(proxy_driver)
        progress(f"proxy: {scenario.backend.nodes} link(s) to {upstream} through {fp.url}")

    # -- the warehouse ledger, the nodes --------------------------------------------
    ledger = None
    extra_args = ["--redis-timeout-ms", str(scenario.backend.redis_timeout_ms)]
    if scenario.uses_ledger:
        ledger = run_dir / "ledger.sqlite3"
        for leftover in (ledger, ledger.with_name(ledger.name + "-wal"), ledger.with_name(ledger.name + "-shm")):
            leftover.unlink(missing_ok=True)  # a run directory used again starts with an empty warehouse
        extra_args += ["--ledger", str(ledger)]
    clocks = ClockDriver()  # each node's own clock, off by the offset in its file (role clock)
    clock_files = [run_dir / "clock" / f"node{i + 1}.offset_ms" for i in range(scenario.backend.nodes)]
    for path in clock_files:
        path.unlink(missing_ok=True)  # a run directory used again starts with true clocks
        clocks.register("clock", path)
    drivers.append(clocks)
    nodes = _start_nodes(node_redis, admin_token, logs, extra_args, stack, state,
                         [["--clock-file", str(p)] for p in clock_files])
    env = dict(os.environ, OVERSOLD_ADMIN_TOKEN=admin_token, PYTHONUNBUFFERED="1")
    for node in nodes:
        procs.register("backend", node.child, port=node.port, restart=same_argv(node.child, env=env),
                       on_restart=lambda c, n=node: setattr(n, "child", c))
    progress(f"backend: {len(nodes)} node(s) {', '.join(n.url for n in nodes)}"
             + (f", ledger {ledger.name}" if ledger else ""))

    return Topology([n.url for n in nodes], admin_token, redis_url, drivers, ledger, label=label)


def start_workers(topo: Topology, scenario: Any, run_dir: Path, *, stack: ExitStack, run: RunState,
                  progress: Say) -> None:
    """The sync worker (ledger runs) and order processors (async sale), once the sale exists.

    After the sale, not before: a sync worker that already watched the ledger would
    create the sale's stream group between the ledger's and the front's halves of
    the sale's creation, and the front's own creation of it then fails (BUSYGROUP).
    Then the registered roles are checked against those the schedule was planned for.
    """
    logs, state, drivers = run_dir / "logs", run.state, topo.drivers
    redis_url, ledger = topo.redis_url, topo.ledger_path
    if scenario.backend.url is None:
        assert redis_url is not None  # stand_up starts or names one for the harness's own nodes
        if ledger is not None:
            from reference_backend.keys import SYNC_DELAY_MS, SYNC_STALL

            worker = start_sync_worker(redis_url, ledger, log_dir=logs, interval_ms=scenario.backend.sync_interval_ms,
                                       delay_ms=scenario.backend.sync_delay_ms)
            state.record_child(worker)
            handle = _Handle(worker)
            stack.callback(handle.stop)
            sync_procs = ProcessDriver(state=state, settle_s=0.5)  # no port: alive half a second later counts
            sync_procs.register("sync", worker, on_restart=handle.set,
                                restart=same_argv(worker, env=dict(os.environ, PYTHONUNBUFFERED="1")))
            from reference_backend.sentinel_pool import sync_client

            client = sync_client(redis_url, timeout_s=3.0)
            stack.callback(client.close)
            drivers.append(SyncDriver(client, delay_key=SYNC_DELAY_MS, stall_key=SYNC_STALL, processes=sync_procs))
            topo.has_sync = True
            progress(f"sync: worker pid {worker.pid} (every {scenario.backend.sync_interval_ms} ms)")
        if getattr(scenario.sale, "async_orders", False):
            # one driver for the role, as for the sync worker: no port, alive half a second later counts
            order_procs = ProcessDriver(state=state, settle_s=0.5, name="orders")
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            for i in range(scenario.backend.order_workers):
                child = start_order_worker(redis_url, name=f"orders-{i + 1}", log_dir=logs)
                state.record_child(child)
                handle = _Handle(child)
                stack.callback(handle.stop)
                # a restart keeps the consumer name, so it reads its own pending entries first
                order_procs.register("orders", child, on_restart=handle.set, restart=same_argv(child, env=env))
            drivers.append(order_procs)
            progress(f"orders: {scenario.backend.order_workers} order processor(s)")

    _check_roles(scenario, drivers)


def _replication_through_proxy(topo: Any, seed: int, stack: ExitStack, state: Any, logs: Path) -> Driver:
    """Point the replica at the primary through a fault proxy link, so a toxic can partition them."""
    from oversold.chaos.proxy import FaultProxy, listen_port
    from oversold.chaos.proxy_driver import ProxyDriver

    fp = FaultProxy.start(log_dir=logs, seed=seed, name="replication-proxy")
    state.record_child(fp.child)
    stack.callback(fp.stop)
    primary = topo.primary()
    replica = next(n for n in topo.data_nodes if n.addr != primary)
    port = listen_port(fp.client.create("replication", upstream=f"{primary[0]}:{primary[1]}"))
    client = redis.Redis(host=replica.host, port=replica.port, socket_timeout=3, decode_responses=True)
    try:
        client.execute_command("REPLICAOF", LOOPBACK, str(port))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = client.info("replication")
            if info.get("master_port") == port and info.get("master_link_status") == "up":
                break
            time.sleep(0.05)
        else:
            raise RedisUnavailable(f"the replica {replica.name} did not sync through the proxy (port {port})")
    finally:
        client.close()
    driver = ProxyDriver(fp.client)
    driver.register("replication", "replication")
    return driver


def _netloc(parts: Any, port: int) -> str:
    auth = parts.netloc.rpartition("@")[0]
    return (auth + "@" if auth else "") + f"{LOOPBACK}:{port}"


def _start_nodes(urls: list[str], token: str, logs: Path, extra_args: list[str], stack: ExitStack,
                 state: Any, own_args: list[list[str]]) -> list[BackendNode]:
    """All nodes spawned at once (start-up is mostly imports), then each waited for; ``own_args[i]`` are node i's."""
    nodes: list[BackendNode] = []
    for i, url in enumerate(urls):
        node = BackendNode.spawn(url, name=f"node{i + 1}", admin_token=token, log_dir=logs,
                                 extra_args=extra_args + own_args[i])
        state.record_child(node.child)
        stack.callback(node.stop)  # node.child follows restarts (on_restart), so this stops the current one
        nodes.append(node)
    for i, node in enumerate(nodes):
        try:
            node.wait_ready()
        except BackendUnavailable:
            if node.child.alive():
                raise
            # most likely lost its port in a race: once more on another port
            node.stop()
            again = BackendNode.start(urls[i], name=node.name, admin_token=token, log_dir=logs,
                                      extra_args=extra_args + own_args[i])
            state.record_child(again.child)
            stack.callback(again.stop)
            nodes[i] = again
    return nodes


def _check_roles(scenario: Any, drivers: list[Driver]) -> None:
    """The roles registered are those the schedule was planned for (``expected_roles``)."""
    got: dict[str, int] = {}
    for d in drivers:
        got.update(d.roles())
    if got != expected_roles(scenario):
        raise HarnessError(f"fault targets registered {got} differ from those planned {expected_roles(scenario)}")


def _check_redis(url: str) -> None:
    try:
        if url.startswith("redis+sentinel://"):
            from reference_backend.sentinel_pool import sync_client

            client = sync_client(url, timeout_s=3.0)
        else:
            client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as e:
        raise RedisUnavailable(f"cannot reach Redis at {url}: {e}") from None


def _redis_container(scenario: Any, stack: ExitStack, run: RunState, label: str, logs: Path) -> tuple[str, Driver]:
    """Redis as a container of the locally built image, host network, the run's label."""
    import docker

    from oversold.chaos.docker_driver import DockerDriver, remove_labelled, run_container
    from oversold.chaos.image import build_redis_image

    client = docker_client("chaos.driver: docker", ", or use chaos.driver: process")
    image = scenario.chaos.docker_image
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        build_redis_image(client, tag=image)  # no registry: assembled from the local redis-server binary
    run.record_label(label)  # before the container exists: a kill now still leaves the label to sweep
    stack.callback(client.close)
    def remove() -> None:
        remove_labelled(client, label)
        run.containers_removed()  # only now may the label leave the state file

    stack.callback(remove)
    port = free_port()
    args = ["--bind", LOOPBACK, "--port", str(port), "--save", "", "--protected-mode", "yes"]
    args += AOF_ARGS if scenario.redis.persistence == "aof" else ["--appendonly", "no"]
    container = run_container(client, image, args, label=label, name=f"{run.run_id}-redis")
    run.state.record_container(container.id, label, name=container.name)
    if not wait_for_port(port, timeout=20):
        container.reload()
        raise RedisUnavailable(f"redis container {container.name} did not listen on {port} "
                               f"(status {container.status}): {container.logs(tail=20).decode(errors='replace')}")
    driver = DockerDriver(client, label=label)
    driver.register("redis-primary", container, port=port)
    (logs).mkdir(parents=True, exist_ok=True)
    stack.callback(_save_container_log, container, logs / "redis-container.log")
    return f"redis://{LOOPBACK}:{port}/0", driver


def _save_container_log(container: Any, path: Path) -> None:
    try:
        path.write_bytes(container.logs())
    except Exception:  # noqa: BLE001 - a log is a nicety; the container may already be gone
        pass
