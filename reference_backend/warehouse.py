"""A node's view of the warehouse: the ledger off the event loop, and what the contract shows of it.

SQLite calls block, so every ledger call runs on a small thread pool
(``AsyncLedger``) and the asyncio loop keeps serving. ``Warehouse`` adds what
the HTTP contract needs on top: a sale's warehouse counters and sync lag for
``GET /v1/sales/{id}``, the ledger part of the audit, and the admin changes
(restock, in transit, receive).

Usage::

    wh = Warehouse(AsyncLedger(SqliteLedger("/tmp/ledger.sqlite3")), redis)
    epoch = await wh.create_sale("moutai", 100)
    extra = await wh.counters("moutai")   # {"warehouse": {...}, "sync_lag_ms": 0, ...}
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import redis.asyncio as aioredis

from .keys import SaleKeys
from .ledger import IN_TRANSIT, RECEIVE, RESTOCK, LedgerCounters, SqliteLedger

T = TypeVar("T")


def lag_ms(now_ms: int, oldest_unapplied_ms: int | None, last_lag_ms: int | None) -> int:
    """The sync lag of a sale: how far the warehouse and the front are apart in time.

    The age of the oldest change not yet applied on the other side, if there is
    one (it grows while the worker is stalled, slow or dead); otherwise the lag
    the last applied change had; 0 if nothing ever needed syncing.
    """
    if oldest_unapplied_ms is not None:
        return max(0, now_ms - oldest_unapplied_ms)
    return max(0, last_lag_ms or 0)


def stream_ms(entry_id: bytes | str) -> int:
    """The Redis-clock milliseconds in a stream entry id ('1700000000000-3')."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


class AsyncLedger:
    """A ``SqliteLedger`` called from asyncio: each call on a thread of a small pool.

    Writes serialize in SQLite anyway; a few threads let reads (WAL) overlap them.
    """

    def __init__(self, ledger: SqliteLedger, threads: int = 4) -> None:
        self.ledger = ledger
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ledger")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def reserve_sold(self, sku: str, order_id: str, qty: int) -> bool:
        return await self.run(self.ledger.reserve_sold, sku, order_id, qty)

    async def release(self, sku: str, order_id: str) -> bool:
        return await self.run(self.ledger.release, sku, order_id)

    async def counters(self, sku: str) -> LedgerCounters | None:
        return await self.run(self.ledger.counters, sku)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.ledger.close()


class Warehouse:
    """The ledger as one node shows it through the contract."""

    def __init__(self, ledger: AsyncLedger, redis: aioredis.Redis) -> None:
        self.ledger = ledger
        self.redis = redis

    async def create_sale(self, sale_id: str, stock: int) -> str:
        """Create or reset the sale in the ledger; returns its new epoch.

        The epoch names this incarnation of the sale: the front stores it with
        the sale and stamps it on every event, so an event or a restock from
        before a reset is recognised as stale and never applied to the new sale.
        """
        epoch = secrets.token_hex(8)
        await self.ledger.run(self.ledger.ledger.create_sale, sale_id, stock, epoch)
        return epoch

    async def change(self, sale_id: str, kind: str, qty: int) -> LedgerCounters:
        """Restock, in transit or receive: written to the ledger now, to the front by the sync worker."""
        led = self.ledger.ledger
        method = {RESTOCK: led.restock, IN_TRANSIT: led.in_transit, RECEIVE: led.receive}[kind]
        return await self.ledger.run(method, sale_id, qty)

    async def counters(self, sale_id: str) -> dict[str, Any]:
        """What ``GET /v1/sales/{id}`` adds: warehouse counters, the front's in-transit units, the sync lag."""
        k = SaleKeys(sale_id)
        async with self.redis.pipeline(transaction=False) as p:
            p.xrange(k.events, count=1)
            p.xlen(k.events)
            p.hmget(k.sync, "last_lag_ms", "at_ms")
            p.hget(k.meta, "in_transit")
            p.time()
            first, unapplied, (last_lag, at), in_transit, (sec, usec) = await p.execute()
        now = sec * 1000 + usec // 1000
        wh = await self.ledger.counters(sale_id)
        outbox_rows, outbox_ms = await self.ledger.run(self.ledger.ledger.outbox_state, sale_id)
        oldest = [stream_ms(first[0][0])] if first else []
        if outbox_ms is not None:
            oldest.append(outbox_ms)
        return {
            "in_transit": int(in_transit or 0),
            "warehouse": wh.as_dict() if wh is not None else None,
            "sync_lag_ms": lag_ms(now, min(oldest) if oldest else None, int(last_lag) if last_lag else None),
            # changes not yet carried across (sales to the warehouse, restocks to the front): 0 = settled
            "sync_pending": int(unapplied) + outbox_rows,
            "sync_at_ms": int(at) if at else None,
        }

    async def audit(self, sale_id: str) -> dict[str, Any] | None:
        """The ledger part of the audit: its counters and every order it sold, one consistent read."""
        snap = await self.ledger.run(self.ledger.ledger.snapshot, sale_id)
        if snap is None:
            return None
        c, sold, refused = snap
        return {
            **c.as_dict(),
            "sold_orders": [{"order_id": oid, "qty": qty} for oid, qty in sold],
            "refused_orders": [{"order_id": oid, "qty": qty} for oid, qty in refused],
        }
