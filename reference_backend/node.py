"""One backend node: the app, its Redis pool, its reaper, served in this process.

The HTTP server (uvicorn's by default, or granian's embedded server, ``--server``) runs
inside this process's own asyncio loop (no worker processes), so SIGKILL of this pid kills exactly one node and leaves
nothing behind; SIGTERM and SIGINT stop it cleanly.

Usage::

    asyncio.run(serve(NodeConfig(port=8001, redis_url="redis://127.0.0.1:6379/0",
                                 node_name="n1", admin_token="secret")))
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from dataclasses import dataclass

from redis import exceptions as rx

from .app import App
from .cluster_pool import cluster_client, is_cluster_url
from .coalesce import CoalesceConfig
from .errors import REDIS_DOWN
from .ledger import SqliteLedger
from .monitor import watch
from .sentinel_pool import is_sentinel_url, sentinel_client
from .servers import DEFAULT_SERVER, ensure_port_free, make_server
from .store import Store
from .strategies import StrategyOptions, discover
from .strategies.pre_deduct_ledger import settle_forever
from .warehouse import AsyncLedger, Warehouse
from .webhook import forward_warnings

log = logging.getLogger("reference_backend")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node is started with (see ``python -m reference_backend --help``)."""

    port: int
    redis_url: str
    node_name: str
    admin_token: str
    host: str = "127.0.0.1"
    reap_interval_ms: int = 100
    monitor_interval_ms: int = 200  # oversell detector, stranded payments, warning webhook
    naive_delay_ms: float = 5.0
    redis_max_connections: int = 64
    redis_timeout_ms: int = 2000
    backlog: int = 1024
    ledger_path: str | None = None  # the warehouse ledger (SQLite file), shared by every node and the sync worker
    server: str = DEFAULT_SERVER  # uvicorn | granian (reference_backend.servers)
    coalesce: CoalesceConfig = CoalesceConfig()  # how strategies that coalesce orders batch them


async def reaper(store: Store, interval_s: float, rounds: Counter[str] | None = None) -> None:
    """Release expired holds of every sale, forever; Redis outages are waited out.

    ``rounds["reaper"]`` counts the completed passes (shown by ``GET /v1/health``).
    """
    down = False
    while True:
        try:
            await store.reap()
            if rounds is not None:
                rounds["reaper"] += 1
            if down:
                log.warning("reaper: redis is back")
            down = False
        except REDIS_DOWN as e:
            if not down:  # once per outage, not once per tick
                log.warning("reaper: redis unavailable (%s), retrying", e)
            down = True
        except rx.ResponseError as e:
            log.warning("reaper: redis refused: %s", e)
        await asyncio.sleep(interval_s)


async def cancel_and_wait(tasks: list[asyncio.Task], recancel_s: float = 0.2) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again any still running.

    One ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for`` swallows a
    cancellation that arrives after its inner awaitable finished but before wait_for
    resumed (it returns the result instead; CPython gh-86296, fixed in 3.12 by building
    wait_for on ``asyncio.timeout``). redis-py sends every command through
    ``wait_for(..., socket_timeout)``, so a cancel landing in that one-iteration window
    is lost, and a ``while True`` loop (the reaper, the webhook forwarder) goes on
    forever: the node never got past this point on SIGTERM (about 1 run in 50 under
    uvicorn). A later cancel lands elsewhere in the loop and ends it.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_s)
    await asyncio.gather(*tasks, return_exceptions=True)  # retrieve each outcome; all are done


async def serve(cfg: NodeConfig) -> None:
    # before anything else: whichever server serves, a taken port is refused (PortTaken), not shared
    ensure_port_free(cfg.host, cfg.port)
    if is_sentinel_url(cfg.redis_url):  # follow the primary the Sentinels name, across failovers
        store = Store(sentinel_client(cfg.redis_url, max_connections=cfg.redis_max_connections,
                                      timeout_s=cfg.redis_timeout_ms / 1000))
    elif is_cluster_url(cfg.redis_url):  # a Redis Cluster: each sale's keys on one slot, followed across failovers
        store = Store(cluster_client(cfg.redis_url, max_connections=cfg.redis_max_connections,
                                     timeout_s=cfg.redis_timeout_ms / 1000), cluster=True)
    else:
        store = Store.connect(
            cfg.redis_url, max_connections=cfg.redis_max_connections, timeout_s=cfg.redis_timeout_ms / 1000
        )
    ledger = AsyncLedger(SqliteLedger(cfg.ledger_path)) if cfg.ledger_path else None
    options = StrategyOptions(naive_delay_s=cfg.naive_delay_ms / 1000, ledger=ledger, coalesce=cfg.coalesce)
    strategies = {name: cls(store, options) for name, cls in discover().items()}
    rounds: Counter[str] = Counter(reaper=0, monitor=0, webhook=0)  # completed passes of each background loop
    app = App(store, strategies, node_name=cfg.node_name, admin_token=cfg.admin_token,
              warehouse=Warehouse(ledger, store.redis) if ledger else None, rounds=rounds)
    server = make_server(cfg.server, app, host=cfg.host, port=cfg.port, backlog=cfg.backlog)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    reaping = asyncio.create_task(reaper(store, cfg.reap_interval_ms / 1000, rounds))
    watching = [
        asyncio.create_task(watch(store, strategies, cfg.monitor_interval_ms / 1000, rounds)),
        asyncio.create_task(forward_warnings(store, cfg.node_name, cfg.monitor_interval_ms / 1000, rounds)),
    ]
    for strategy in strategies.values():  # e.g. pre_deduct_buckets' rebalancer
        loop = strategy.background(cfg.monitor_interval_ms / 1000)
        if loop is not None:
            watching.append(asyncio.ensure_future(loop))
    if ledger is not None:  # payments whose payer went away mid-confirmation (pre_deduct_ledger)
        watching.append(asyncio.create_task(settle_forever(strategies, cfg.monitor_interval_ms / 1000)))
    print(
        f"node {cfg.node_name} on http://{cfg.host}:{cfg.port} redis={cfg.redis_url} ledger={cfg.ledger_path} "
        f"strategies={','.join(sorted(strategies))}",
        flush=True,
    )
    try:
        await server.serve()
    finally:
        await cancel_and_wait([reaping, *watching])
        await store.close()
        if ledger is not None:
            ledger.close()
        print(f"node {cfg.node_name} stopped", flush=True)
