"""``naive``: the negative control. Read, sleep, write back: lost updates oversell.

Nothing here is atomic on purpose: each step reads a counter, waits
``--naive-delay-ms`` (5 ms by default, so concurrent requests surely overlap),
then writes back the value it computed from its stale read. Holds, expiry and
idempotency keys work as in ``pre_deduct``; stock does not.

Usage::

    strategy = Naive(store, StrategyOptions(naive_delay_s=0.005))
    reply = await strategy.order("s1", "alice", 1, key=None)
"""

from __future__ import annotations

import asyncio

from ..errors import StrategyMoved, error_body
from ..keys import SaleKeys
from ..replies import ORDER_HASH_FIELDS, Reply, order_body, order_from_hash
from .base import Strategy, new_order_nonce


class Naive(Strategy):
    """Non-atomic read-sleep-write deduction; it must oversell under concurrency."""

    name = "naive"

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None) -> Reply:
        return await self.idempotent(sale_id, "order", key, f"{qty}:{user_id}", lambda: self._order(sale_id, user_id, qty))

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self.idempotent(sale_id, "pay", key, order_id, lambda: self._pay(sale_id, order_id))

    async def cancel(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self.idempotent(sale_id, "cancel", key, order_id, lambda: self._cancel(sale_id, order_id))

    async def _order(self, sale_id: str, user_id: str, qty: int) -> Reply:
        k = SaleKeys(sale_id)
        r = self.store.redis
        async with r.pipeline(transaction=False) as p:
            p.hmget(k.meta, "strategy", "hold_ttl_ms", "per_user_limit")
            p.get(k.avail)
            p.hget(k.users, user_id)
            meta, avail_raw, mine_raw = await p.execute()
        if (gone := self._no_sale(sale_id, meta[0])) is not None:
            return gone
        await self._race_window()
        avail, mine, limit = int(avail_raw or 0), int(mine_raw or 0), int(meta[2] or 0)
        if limit and mine + qty > limit:
            return _refuse(409, "limit_exceeded", f"qty: user {user_id} has {mine} of a limit of {limit}, asked {qty}")
        if avail < qty:
            return _refuse(409, "sold_out", f"qty: {qty} asked, {avail} available")
        async with r.pipeline(transaction=False) as p:
            p.set(k.avail, avail - qty)  # the lost update: overwrites what others wrote meanwhile
            p.incrby(k.held, qty)
            p.hincrby(k.users, user_id, qty)
            p.incr(k.seq)
            p.time()
            *_, seq, (sec, usec) = await p.execute()
        now = sec * 1000 + usec // 1000
        # seq plus a node nonce, like the atomic strategies' ids: seq alone repeats after a failover
        order = {"order_id": f"{seq}-{new_order_nonce()}", "sale_id": sale_id, "user_id": user_id, "qty": qty,
                 "status": "held", "created_ms": now, "expires_ms": now + int(meta[1]), "paid_ms": None}
        async with r.pipeline(transaction=False) as p:
            p.hset(k.order(order["order_id"]), mapping={
                "user_id": user_id, "qty": qty, "status": "held", "created_ms": now, "expires_ms": order["expires_ms"]})
            p.zadd(k.holds, {order["order_id"]: order["expires_ms"]})
            await p.execute()
        return Reply(201, order_body(order))

    async def _pay(self, sale_id: str, order_id: str) -> Reply:
        k = SaleKeys(sale_id)
        r = self.store.redis
        async with r.pipeline(transaction=False) as p:
            p.hmget(k.meta, "strategy", "stock")
            p.hmget(k.order(order_id), *ORDER_HASH_FIELDS)
            p.get(k.sold)
            p.time()
            meta, fields, sold_raw, (sec, usec) = await p.execute()
        if (gone := self._no_sale(sale_id, meta[0])) is not None:
            return gone
        if fields[0] is None:
            return _refuse(404, "unknown_order", f"order_id: no order {order_id} in sale {sale_id}", keep=False)
        order = order_from_hash(sale_id, order_id, fields)
        if order["status"] == "paid":
            return Reply(200, order_body(order))
        if order["status"] == "cancelled":
            return _refuse(409, "order_cancelled", f"order_id: order {order_id} was cancelled")
        if order["status"] == "expired" or sec * 1000 + usec // 1000 >= order["expires_ms"]:
            # naive never takes fresh stock; the reaper gives the hold back
            return _refuse(409, "hold_expired", f"order_id: the hold of order {order_id} expired at {order['expires_ms']}")
        await self._race_window()
        sold, stock, qty = int(sold_raw or 0), int(meta[1] or 0), order["qty"]
        if sold + qty > stock:
            return _refuse(409, "sold_out", f"order_id: {sold} of {stock} units already sold")
        now = sec * 1000 + usec // 1000
        async with r.pipeline(transaction=False) as p:
            p.set(k.sold, sold + qty)  # lost update again
            p.decrby(k.held, qty)
            p.zrem(k.holds, order_id)
            p.hset(k.order(order_id), mapping={"status": "paid", "paid_ms": now})
            p.hset(k.sold_set, order_id, qty)
            await p.execute()
        order.update(status="paid", paid_ms=now)
        return Reply(200, order_body(order))

    async def _cancel(self, sale_id: str, order_id: str) -> Reply:
        k = SaleKeys(sale_id)
        r = self.store.redis
        async with r.pipeline(transaction=False) as p:
            p.hget(k.meta, "strategy")
            p.hmget(k.order(order_id), *ORDER_HASH_FIELDS)
            p.get(k.avail)
            strategy, fields, avail_raw = await p.execute()
        if (gone := self._no_sale(sale_id, strategy)) is not None:
            return gone
        if fields[0] is None:
            return _refuse(404, "unknown_order", f"order_id: no order {order_id} in sale {sale_id}", keep=False)
        order = order_from_hash(sale_id, order_id, fields)
        if order["status"] == "paid":
            return _refuse(409, "already_paid", f"order_id: order {order_id} is paid")
        if order["status"] != "held":
            return Reply(200, order_body(order))
        await self._race_window()
        async with r.pipeline(transaction=False) as p:
            p.set(k.avail, int(avail_raw or 0) + order["qty"])  # lost update
            p.decrby(k.held, order["qty"])
            p.hincrby(k.users, order["user_id"], -order["qty"])
            p.hincrby(k.released, order_id, order["qty"])
            p.zrem(k.holds, order_id)
            p.hset(k.order(order_id), "status", "cancelled")
            await p.execute()
        order["status"] = "cancelled"
        return Reply(200, order_body(order))

    async def _race_window(self) -> None:
        await asyncio.sleep(self.options.naive_delay_s)

    def _no_sale(self, sale_id: str, strategy: bytes | None) -> Reply | None:
        if strategy is None:
            return _refuse(404, "unknown_sale", f"sale_id: no sale {sale_id}", keep=False)
        if strategy.decode() != self.name:
            raise StrategyMoved(strategy.decode())
        return None


def _refuse(status: int, code: str, message: str, keep: bool = True) -> Reply:
    return Reply(status, error_body(code, message), keep)
