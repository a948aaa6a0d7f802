"""Everything a node reads and writes in Redis that is not a strategy's own step.

One ``Store`` per node holds the node's one connection pool. Sale reset,
counters, order reads, the audit and the reaper's batch live here; order, pay
and cancel live in the strategies.

Usage::

    store = Store.connect("redis://127.0.0.1:6379/0")
    await store.put_sale("s1", SaleConfig(stock=10, hold_ttl_ms=5000, strategy="pre_deduct"))
    print(await store.counters("s1"))
    await store.close()
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from . import lua
from .errors import ApiError
from .keys import ORDER_GROUP, SALES, SYNC_GROUP, SaleKeys
from .policy import PolicyCache, Profile
from .replies import ORDER_HASH_FIELDS, Reply, from_stored, order_body, order_from_hash
from .sale import SaleConfig
from .webhook import GROUP as WEBHOOK_GROUP

REAP_BATCH = 1000


def _int(value: bytes | None) -> int:
    return int(value) if value is not None else 0


class Store:
    """Redis access of one node (one pool), plus the scripts it has registered."""

    def __init__(self, client: aioredis.Redis | RedisCluster, *, cluster: bool = False) -> None:
        self.redis = client
        self.cluster = cluster  # a Redis Cluster client: no multi-slot pipelines of scripts
        self._scripts: dict[str, AsyncScript] = {}
        self.policies = PolicyCache()  # scalper policy per sale, checked by the order scripts

    @classmethod
    def connect(cls, url: str, *, max_connections: int = 64, timeout_s: float = 2.0) -> "Store":
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # waiting for a free connection longer than this is a 503
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # never resend a command on its own: a write whose reply was lost may have
            # been applied, and a blind resend would apply it twice
            retry=Retry(NoBackoff(), 0),
        )
        return cls(aioredis.Redis.from_pool(pool))

    async def close(self) -> None:
        await self.redis.aclose()

    def script(self, name: str) -> AsyncScript:
        """The script ``lua/<name>.lua`` (EVALSHA, loaded again on NOSCRIPT)."""
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = self.redis.register_script(lua.source(name))
        return found

    async def strategy_of(self, sale_id: str) -> str | None:
        name = await self.redis.hget(SaleKeys(sale_id).meta, "strategy")
        return name.decode() if name is not None else None

    async def put_sale(self, sale_id: str, cfg: SaleConfig) -> dict[str, Any]:
        """Create or reset a sale: every key of it goes, except the order id sequence.

        Keeping ``seq`` means an order id is never reused across resets, so a late
        request for an order of an earlier run cannot touch a new order.
        A reset is not meant to race with traffic on the same sale.
        """
        await self.forget_buckets(sale_id)  # a reset of a pre_deduct_buckets sale to another strategy
        await self.write_sale(sale_id, cfg)
        self.policies.put(sale_id, cfg.scalper_policy.encode() if cfg.scalper_policy else "")
        counters = await self.counters(sale_id)
        assert counters is not None
        return counters

    async def write_sale(self, sale_id: str, cfg: SaleConfig, meta: dict[str, Any] | None = None) -> None:
        """Every key of the sale (one slot) replaced, in one MULTI, by ``cfg`` (plus ``meta`` fields)."""
        k = SaleKeys(sale_id)
        await self.redis.sadd(SALES, sale_id)  # first: the reaper's list may name a sale not made yet, never miss one
        # the streams go whatever the scan saw: a sync worker or order processor may
        # make one (XGROUP CREATE ... MKSTREAM) between the scan and the MULTI, and
        # the group created below would then fail with BUSYGROUP mid-transaction
        streams = {key.encode() for key in (k.warnings, k.order_queue, k.events)}
        doomed = sorted((await self.keys_of(k) | streams) - {k.seq.encode()})
        if self.cluster:  # redis-py's cluster transaction has no UNLINK: gone just before it (resets do not race)
            for i in range(0, len(doomed), 1000):
                await self.redis.unlink(*doomed[i : i + 1000])
        async with self.redis.pipeline(transaction=True) as pipe:
            if not self.cluster:
                for i in range(0, len(doomed), 1000):
                    pipe.unlink(*doomed[i : i + 1000])
            pipe.hset(k.meta, mapping={**cfg.as_meta(), **(meta or {})})
            if cfg.profiles:
                pipe.hset(k.profiles, mapping={u: p.encode() for u, p in cfg.profiles.items()})
            if cfg.warn_webhook_url:  # the group the nodes share the warnings through (webhook.py)
                pipe.xgroup_create(k.warnings, WEBHOOK_GROUP, id="0", mkstream=True)
            if cfg.async_orders:  # the order processors' group, before the first order is queued
                pipe.xgroup_create(k.order_queue, ORDER_GROUP, id="0", mkstream=True)
            if cfg.epoch:  # synced with the warehouse: the sync worker's group
                pipe.xgroup_create(k.events, SYNC_GROUP, id="0", mkstream=True)
            for counter, value in ((k.avail, cfg.stock), (k.held, 0), (k.sold, 0)):  # no MSET in a cluster pipeline
                pipe.set(counter, value)
            await pipe.execute()

    async def forget_buckets(self, sale_id: str) -> None:
        """Delete the keys of every bucket a pre_deduct_buckets incarnation of the sale had, and their registry.

        A bucket is a sale of its own (hash tag ``<sale_id>~<b>~<k>``; a sale id never holds
        ``~``), listed in the sales registry from before its keys were written.
        """
        buckets = [m async for m in self.redis.sscan_iter(SALES, match=f"{sale_id}~*")]
        for raw in buckets:
            doomed = sorted(await self.keys_of(SaleKeys(raw.decode())))
            for i in range(0, len(doomed), 1000):
                await self.redis.unlink(*doomed[i : i + 1000])  # one bucket: one slot
        if buckets:
            await self.redis.srem(SALES, *buckets)

    async def keys_of(self, k: SaleKeys) -> set[bytes]:
        """Every key of one sale. A cluster lists its slot's keys (CLUSTER GETKEYSINSLOT on the
        slot's node: as many as the slot holds, not a SCAN of every node's whole keyspace);
        one Redis is scanned."""
        if not self.cluster:
            return {key async for key in self.redis.scan_iter(match=k.prefix + "*", count=1000)}
        slot = key_slot(k.meta.encode())
        node = self.redis.get_node_from_key(k.meta)
        n = int(await self.redis.execute_command("CLUSTER COUNTKEYSINSLOT", slot, target_nodes=node))
        if not n:
            return set()
        found = await self.redis.execute_command("CLUSTER GETKEYSINSLOT", slot, n, target_nodes=node)
        keys = {key if isinstance(key, bytes) else key.encode() for key in found}  # redis-py may decode them
        return {key for key in keys if key.startswith(k.prefix.encode())}  # other sales may share the slot

    async def counters(self, sale_id: str) -> dict[str, Any] | None:
        """The sale's counters, one consistent snapshot (lua/counters.lua)."""
        found = await self.counters_of(sale_id)
        return None if found is None else found[0]

    async def counters_of(self, sale_id: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The counters and the transfers the sale (a bucket) sent and has not seen confirmed (id -> 'to:qty:ms')."""
        k = SaleKeys(sale_id)
        meta, counters, now, sent = await self.script("counters")(
            keys=[k.meta, k.avail, k.held, k.sold, k.refunded, k.sent])
        found = _counters(sale_id, meta, counters, int(now))
        if found is None:
            return None
        return found, {sent[i].decode(): sent[i + 1].decode() for i in range(0, len(sent), 2)}

    async def get_order(self, sale_id: str, order_id: str, keys_of: str | None = None) -> Reply:
        """One order; ``keys_of`` names the sale whose keys hold it (a bucket of a pre_deduct_buckets sale)."""
        k = SaleKeys(keys_of or sale_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(k.meta)
            pipe.hmget(k.order(order_id), *ORDER_HASH_FIELDS)
            exists, fields = await pipe.execute()
        if not exists:
            raise ApiError(404, "unknown_sale", f"sale_id: no sale {sale_id}")
        if fields[0] is None:
            raise ApiError(404, "unknown_order", f"order_id: no order {order_id} in sale {sale_id}")
        return Reply(200, order_body(order_from_hash(sale_id, order_id, fields)))

    async def audit(self, sale_id: str, keys_of: str | None = None) -> dict[str, Any] | None:
        """Counters, sold orders and live holds, from one atomic script run (of ``keys_of``'s keys, if given)."""
        k = SaleKeys(keys_of or sale_id)
        found = await self.script("audit")(
            keys=[k.meta, k.avail, k.held, k.sold, k.sold_set, k.holds], args=[k.order_prefix]
        )
        if found is None:
            return None
        meta, counters, now, sold, holds, records = found[:6]
        sold_rows = [
            {"order_id": sold[i].decode(), "user_id": sold[i + 1].decode(), "qty": int(sold[i + 2]),
             "paid_ms": int(sold[i + 3])}
            for i in range(0, len(sold), 4)
        ]
        hold_rows = [
            {"order_id": holds[i].decode(), "user_id": holds[i + 1].decode(), "qty": int(holds[i + 2]),
             "created_ms": int(holds[i + 3]), "expires_ms": int(holds[i + 4]) if holds[i + 4] else None}
            for i in range(0, len(holds), 5)
        ]
        payments, refunds, compensations, warnings, alerts, refunded_sold, released = records
        return {
            "sale_id": sale_id,
            "now_ms": int(now),
            "counters": _counters(sale_id, meta, counters, int(now)),
            "sold": sold_rows,
            "holds": hold_rows,
            "payments": _json_rows(payments, "captured_ms"),
            "refunds": _json_rows(refunds, "refunded_ms"),
            "compensations": _json_rows(compensations, "issued_ms"),
            "refunded_sold": int(refunded_sold),
            "released": [{"order_id": released[i].decode(), "qty": int(released[i + 1])}
                         for i in range(0, len(released), 2)],
            "warnings": _stream_rows(warnings),
            "alerts": _stream_rows(alerts),
        }

    async def load_profiles(self, sale_id: str, profiles: dict[str, Profile]) -> int | None:
        """Add or replace user profiles of a sale; the sale's profile count, None without a sale."""
        k = SaleKeys(sale_id)
        if not await self.redis.exists(k.meta):  # checked first: nothing is written for a missing sale
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            if profiles:
                pipe.hset(k.profiles, mapping={u: p.encode() for u, p in profiles.items()})
            pipe.hlen(k.profiles)
            *_, total = await pipe.execute()
        return int(total)

    async def refund(self, sale_id: str, order_id: str, key: str | None, keys_of: str | None = None) -> Reply:
        """Admin refund of a paid order (lua/refund.lua), any strategy (``keys_of``: as for ``get_order``)."""
        k = SaleKeys(keys_of or sale_id)
        _, payload = await self.script("refund")(
            keys=k.op_keys("refund", key, order_id),
            args=["*", sale_id, "1" if key is not None else "0", order_id, k.order_prefix, order_id],
        )
        return from_stored(payload, order_id)

    async def detect_oversell(self) -> dict[str, int]:
        """Run the oversell detector (lua/monitor.lua) over every sale once; sale -> excess."""
        sales = [raw.decode() for raw in await self.redis.smembers(SALES)]
        if not sales:
            return {}
        monitor = self.script("monitor")

        def keys(k: SaleKeys) -> list[str]:
            return [k.meta, k.sold_set, k.sold, k.avail, k.refunded_sold, k.monitor, k.alerts]

        if self.cluster:  # sales on many slots: no script pipeline across nodes (a NOSCRIPT there is not reloaded)
            found = [await monitor(keys=keys(SaleKeys(sale_id)), args=[]) for sale_id in sales]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sale_id in sales:
                    await monitor(keys=keys(SaleKeys(sale_id)), args=[], client=pipe)
                found = await pipe.execute()
        return {sale_id: int(excess) for sale_id, excess in zip(sales, found) if excess is not None}

    async def reap(self) -> int:
        """Release expired holds of every sale once; returns how many holds it looked at."""
        sales = await self.redis.smembers(SALES)
        if not sales:
            return 0
        reap = self.script("reap")

        def keys(k: SaleKeys) -> list[str]:
            return [k.holds, k.avail, k.held, k.users]

        if self.cluster:  # as in detect_oversell
            done = [await reap(keys=keys(k), args=[k.order_prefix, REAP_BATCH])
                    for k in (SaleKeys(raw.decode()) for raw in sales)]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for raw in sales:
                    k = SaleKeys(raw.decode())
                    await reap(keys=keys(k), args=[k.order_prefix, REAP_BATCH], client=pipe)
                done = await pipe.execute()
        return sum(int(n) for n in done)


def _json_rows(values: list[bytes], order_by: str) -> list[dict[str, Any]]:
    """Ledger records (JSON written by Lua's cjson), oldest first; whole numbers as ints."""
    rows = [{k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in orjson.loads(raw).items()}
            for raw in values]
    return sorted(rows, key=lambda r: (r.get(order_by, 0), r.get("order_id", "")))


def _stream_rows(entries: list[Any]) -> list[dict[str, Any]]:
    """Stream entries as objects: the entry id, then its fields (numbers as ints)."""
    out = []
    for entry_id, flat in entries:
        row: dict[str, Any] = {"id": entry_id.decode()}
        for i in range(0, len(flat), 2):
            text = flat[i + 1].decode()
            row[flat[i].decode()] = int(text) if text.lstrip("-").isdigit() else text
        out.append(row)
    return out


def _counters(sale_id: str, meta: list[bytes | None], counters: list[bytes | None], now_ms: int) -> dict[str, Any] | None:
    strategy, stock, ttl, limit, pae = meta
    if strategy is None:
        return None
    avail, held, sold, refunded = (_int(v) for v in counters)
    return {
        "sale_id": sale_id, "strategy": strategy.decode(), "stock": _int(stock),
        "available": avail, "held": held, "sold": sold, "refunded": refunded, "hold_ttl_ms": _int(ttl), "now_ms": now_ms,
        "per_user_limit": _int(limit), "pay_after_expiry": (pae or b"refuse").decode(),
    }
