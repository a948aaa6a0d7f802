"""The backend's own watch over its sales: the oversell detector, and stranded payments.

Oversell detection (超卖检测) runs in every node, independent of the harness's
checker: each tick, ``lua/monitor.lua`` compares each sale's sold set (net of
refunded sold units) with its stock and, once per new excess, adds an alert to
the sale's ``os:{S}:alerts`` stream (read back in the audit's ``alerts``). The
check and the record are one atomic script, so several nodes running it at once
still raise each alert once; no lock or election is needed.

A payment_deduct payment whose node died between capture and settle stays
``captured``: money taken, no outcome. The same tick settles every payment
captured more than ``STRANDED_MS`` ago (ship or refund), so none is dropped.

Usage::

    asyncio.create_task(watch(store, strategies, interval_s=0.2))
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from redis import exceptions as rx

from .errors import REDIS_DOWN, ApiError, StrategyMoved
from .keys import SALES, SaleKeys

log = logging.getLogger("reference_backend")

STRANDED_MS = 5000  # far longer than any node takes between its two pay steps


async def watch(store: Any, strategies: Mapping[str, Any], interval_s: float,
                rounds: Counter[str] | None = None) -> None:
    """Forever: detect oversells and settle stranded payments; Redis outages are waited out.

    ``rounds["monitor"]`` counts the completed passes (shown by ``GET /v1/health``).
    """

    alerted: dict[str, int] = {}
    while True:
        try:
            for sale_id, excess in (await store.detect_oversell()).items():
                if excess > alerted.get(sale_id, 0):  # the log says it once per node too
                    log.error("oversell detected: sale %s sold %d units past its stock", sale_id, excess)
                alerted[sale_id] = excess
            settler = strategies.get("payment_deduct")
            if settler is not None:
                await settle_stranded(store, settler)
            if rounds is not None:
                rounds["monitor"] += 1
        except REDIS_DOWN:
            pass  # the reaper logs outages
        except rx.ResponseError as e:
            log.warning("monitor: redis refused: %s", e)
        await asyncio.sleep(interval_s)


async def settle_stranded(store: Any, settler: Any, older_than_ms: int = STRANDED_MS) -> int:
    """Settle payments captured longer ago than ``older_than_ms``; how many it settled."""
    sec, usec = await store.redis.time()
    cutoff = sec * 1000 + usec // 1000 - older_than_ms
    done = 0
    for raw in await store.redis.smembers(SALES):
        sale_id = raw.decode()
        for oid in await store.redis.zrangebyscore(SaleKeys(sale_id).paying, "-inf", cutoff, start=0, num=100):
            try:
                await settler.settle(sale_id, oid.decode())
                done += 1
            except (StrategyMoved, ApiError):
                await store.redis.zrem(SaleKeys(sale_id).paying, oid)  # not a payment_deduct sale (any more)
            except rx.ResponseError as e:  # settle refuses an order that is no longer captured
                log.warning("monitor: settling payment %s of sale %s: %s", oid.decode(), sale_id, e)
                await store.redis.zrem(SaleKeys(sale_id).paying, oid)
    return done
