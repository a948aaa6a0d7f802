"""Start one backend node: ``python -m reference_backend --port P --redis-url URL --node-name N``.

The admin token comes from ``OVERSOLD_ADMIN_TOKEN``; without it one is made up
and printed as ``admin-token: <token>`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys

from .clock import CLOCK_FILE_ENV
from .cluster_pool import ClusterURLError, parse_cluster_url
from .coalesce import CoalesceConfig
from .node import NodeConfig, serve
from .sentinel_url import SentinelURLError, parse_sentinel_url
from .servers import DEFAULT_SERVER, SERVERS, PortTaken

EXIT_PORT_TAKEN = 3  # the node did not start: its port is in use


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reference_backend", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True,
                   help="redis://host:port/db, or redis+sentinel://host:port[,host:port...]/service[/db] "
                        "to follow the primary the Sentinels name across failovers, or "
                        "redis+cluster://host:port[,host:port...] for a Redis Cluster")
    p.add_argument("--node-name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER,
                   help=f"HTTP server run in this process (default {DEFAULT_SERVER}; see benchmarks/README.md)")
    p.add_argument("--reap-interval-ms", type=int, default=100)
    p.add_argument("--monitor-interval-ms", type=int, default=200,
                   help="oversell detector, stranded payments and warning webhook tick")
    p.add_argument("--naive-delay-ms", type=float, default=5.0, help="race window of the naive strategy")
    p.add_argument("--redis-max-connections", type=int, default=64)
    p.add_argument("--redis-timeout-ms", type=int, default=2000)
    p.add_argument("--coalesce-window-us", type=int, default=0,
                   help="strategies that coalesce orders (pre_deduct_coalesced): wait this long for more orders "
                        "before a sale's batch goes out (default 0: at once; a batch forms while one is in flight)")
    p.add_argument("--coalesce-max", type=int, default=64,
                   help="at most this many orders per batch script call (default 64; 1: one call per order)")
    p.add_argument("--ledger", metavar="PATH", default=None,
                   help="the warehouse ledger (SQLite file) shared by every node and the sync worker")
    p.add_argument("--clock-file", metavar="PATH", default=None,
                   help="offset in ms of this node's own clock (reference_backend.clock), re-read when it "
                        "changes; for clock-skew faults (the backend's decisions use Redis's clock)")
    args = p.parse_args(argv)
    if args.reap_interval_ms < 1 or args.redis_max_connections < 1 or args.redis_timeout_ms < 1:
        p.error("--reap-interval-ms, --redis-max-connections and --redis-timeout-ms must be >= 1")
    if args.monitor_interval_ms < 1:
        p.error("--monitor-interval-ms must be >= 1")
    if args.coalesce_window_us < 0 or not 1 <= args.coalesce_max <= 1000:
        p.error("--coalesce-window-us must be >= 0 and --coalesce-max from 1 to 1000")
    if args.redis_url.startswith("redis+sentinel://"):
        try:
            parse_sentinel_url(args.redis_url)  # a bad URL is a usage error now, not a 503 on every request
        except SentinelURLError as e:
            p.error(str(e))
    if args.redis_url.startswith("redis+cluster://"):
        try:
            parse_cluster_url(args.redis_url)  # a bad URL is a usage error now, not a 503 on every request
        except ClusterURLError as e:
            p.error(str(e))
    if args.naive_delay_ms < 0:
        p.error("--naive-delay-ms must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.node_name} %(levelname)s %(message)s")
    token = os.environ.get("OVERSOLD_ADMIN_TOKEN")
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"admin-token: {token}", flush=True)
    if args.clock_file:
        os.environ[CLOCK_FILE_ENV] = args.clock_file  # read by reference_backend.clock, also in server workers
    cfg = NodeConfig(
        port=args.port, redis_url=args.redis_url, node_name=args.node_name, admin_token=token, host=args.host,
        reap_interval_ms=args.reap_interval_ms, naive_delay_ms=args.naive_delay_ms,
        monitor_interval_ms=args.monitor_interval_ms,
        redis_max_connections=args.redis_max_connections, redis_timeout_ms=args.redis_timeout_ms,
        ledger_path=args.ledger, server=args.server,
        coalesce=CoalesceConfig(window_us=args.coalesce_window_us, max_batch=args.coalesce_max),
    )
    try:
        asyncio.run(serve(cfg))
    except PortTaken as e:
        print(f"node {cfg.node_name}: {e.strerror}; not started", file=sys.stderr, flush=True)
        sys.exit(EXIT_PORT_TAKEN)


if __name__ == "__main__":
    main()
