"""Helpers of the warehouse tests: nodes with a ledger, the sync worker, a look into Redis and the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from backend_util import wait_for

from oversold.infra.procs import Child
from oversold.orchestrate.nodes import BackendNode, start_nodes
from oversold.orchestrate.workers import start_sync_worker
from reference_backend.ledger import SqliteLedger

ADMIN_TOKEN = "test-admin-token"


def start_ledger_nodes(redis_url: str, ledger_path: Path, log_dir: Path, n: int = 2) -> list[BackendNode]:
    """``n`` real nodes sharing one ledger file (reaper every 50 ms, settler every 100 ms)."""
    return start_nodes(
        n, redis_url, admin_token=ADMIN_TOKEN, log_dir=log_dir, name_prefix="ledger-node",
        extra_args=("--reap-interval-ms", "50", "--monitor-interval-ms", "100", "--ledger", str(ledger_path)),
    )


def sync_worker(redis_url: str, ledger_path: Path, log_dir: Path, **options: Any) -> Child:
    options.setdefault("interval_ms", 20)
    return start_sync_worker(redis_url, ledger_path, log_dir=log_dir, **options)


def put(client, sale_id: str, **overrides: Any) -> dict:
    cfg = {"stock": 10, "hold_ttl_ms": 30_000, "strategy": "pre_deduct_ledger"} | overrides
    status, body = client.request("PUT", f"/v1/sales/{sale_id}", cfg, admin=True)
    assert status == 200, body
    return body


def change(client, sale_id: str, kind: str, qty: int) -> tuple[int, dict]:
    return client.request("POST", f"/v1/sales/{sale_id}/{kind}", {"qty": qty}, admin=True)


def raw_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def ledger_view(path: Path, sale_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """(counters, sold orders) straight from the ledger file, as a second process sees it."""
    led = SqliteLedger(path)
    try:
        c = led.counters(sale_id)
        assert c is not None, sale_id
        return c.as_dict(), dict(led.sold_orders(sale_id))
    finally:
        led.close()


def sync_pass_after(r: redis.Redis, sale_id: str, ms: int, timeout: float = 10.0) -> bool:
    """Until the sync worker has completed a pass that began after ``ms`` (Redis time, e.g. a
    counters ``now_ms``): each pass ends by stamping every sale's ``os:{S}:sync`` ``at_ms`` with
    the time it began, so that pass saw everything written before ``ms``."""
    return wait_for(lambda: int(r.hget(f"os:{{{sale_id}}}:sync", "at_ms") or 0) > ms, timeout=timeout)
