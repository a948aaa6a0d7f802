"""``pre_deduct_ledger``: ``pre_deduct`` plus a synchronous, conditional write to the warehouse ledger at payment.

Order and cancel are ``pre_deduct``'s. Payment is three steps, because Redis
and the ledger cannot share one transaction:

1. ``pre_deduct_ledger_prepare.lua``: the order becomes ``confirming`` (a live
   hold, or fresh stock taken into a hold after expiry with ``fresh_stock``);
   no reaper, cancel or other payment can move it now, except to settle it.
2. ``ledger.reserve_sold(sale, order, qty)``: the warehouse's conditional
   write; it refuses to pass stock and is idempotent per order id.
3. ``pre_deduct_ledger_commit.lua``: ``sold`` confirms the hold (paid);
   ``refused`` releases it and answers 409 ``sold_out``. If the order was
   settled by someone else first and is not paid, a ledger sale made in step 2
   is given back.

Why this order, and what each crash leaves, is in reference_backend/README.md
("pre_deduct_ledger: crash windows"). In short: the client hears 200 only after
the ledger recorded the sale, so acknowledged payments never exceed the
warehouse's stock even when Redis loses acknowledged writes; a payment
interrupted after step 1 is finished by a retry, a second payer or the node's
settler (``settle_confirming``), all through the same idempotent steps 2-3.

Usage::

    strategy = PreDeductLedger(store, StrategyOptions(ledger=AsyncLedger(SqliteLedger(path))))
    reply = await strategy.pay("s1", "17", key="pay-17")
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping

from redis import exceptions as rx

from ..errors import REDIS_DOWN, ApiError, StrategyMoved
from ..keys import SALES, SaleKeys
from ..ledger import LedgerCounters, LedgerError
from ..replies import Reply, from_stored
from .base import Strategy
from .pre_deduct import PreDeduct

log = logging.getLogger("reference_backend")

#: a payment confirming longer than this is taken to be abandoned (its node died or hangs)
#: and is settled by the node's settler; far longer than the steps take
CONFIRM_GRACE_MS = 2000


class PreDeductLedger(PreDeduct):
    """Pre-deduction in Redis, every sale recorded first in the warehouse ledger."""

    name = "pre_deduct_ledger"
    scripts = {"order": "pre_deduct_order", "pay": "pre_deduct_ledger_prepare", "cancel": "pre_deduct_cancel"}
    needs_ledger = True

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        k = SaleKeys(sale_id)
        kind, payload = await self.store.script("pre_deduct_ledger_prepare")(
            keys=k.op_keys("pay", key, order_id), args=self._args(sale_id, key, order_id),
        )
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        if kind == b"r":
            return from_stored(payload, order_id)
        return await self.settle(sale_id, order_id, int(payload), key)

    async def settle(self, sale_id: str, order_id: str, qty: int, key: str | None = None) -> Reply:
        """Steps 2 and 3 for a confirming order: ask the ledger, then settle Redis by its answer."""
        ledger = self.options.ledger
        if ledger is None:
            raise ApiError(503, "unavailable", f"ledger: this node has no warehouse ledger for sale {sale_id} "
                                               f"(start it with --ledger PATH)")
        try:
            sold = await ledger.reserve_sold(sale_id, order_id, qty)
            detail = "" if sold else _detail(await ledger.counters(sale_id))
        except (sqlite3.Error, LedgerError) as e:
            # the order stays confirming: a retry or the settler finishes it
            raise ApiError(503, "unavailable", f"ledger: unavailable, outcome unknown ({e})") from None
        k = SaleKeys(sale_id)
        kind, payload = await self.store.script("pre_deduct_ledger_commit")(
            keys=k.op_keys("pay", key, order_id),
            args=[*self._args(sale_id, key, order_id), "sold" if sold else "refused", detail],
        )
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        reply = from_stored(payload, order_id)
        if sold and reply.status != 200:
            # settled unpaid by someone else first (and unpaid is final): our ledger sale must go.
            # A failure here leaves the ledger one sale above the front, never below: an
            # undersell that stock_converges reports, not an oversell.
            try:
                await ledger.release(sale_id, order_id)
            except (sqlite3.Error, LedgerError) as e:
                log.error("sale %s order %s: could not give back its ledger sale: %s", sale_id, order_id, e)
        return reply

    async def settle_confirming(self, older_than_ms: int = CONFIRM_GRACE_MS) -> int:
        """Settle every payment confirming for longer than ``older_than_ms`` (its payer is gone); how many."""
        r = self.store.redis
        sec, usec = await r.time()
        cutoff = sec * 1000 + usec // 1000 - older_than_ms
        sales = [raw.decode() for raw in await r.smembers(SALES)]
        async with r.pipeline(transaction=False) as p:
            for sale_id in sales:
                p.zrangebyscore(SaleKeys(sale_id).confirming, "-inf", cutoff, start=0, num=100)
            found = await p.execute()
        done = 0
        for sale_id, ids in zip(sales, found):
            for raw in ids:
                oid = raw.decode()
                qty = await r.hget(SaleKeys(sale_id).order(oid), "qty")
                if qty is None:
                    await r.zrem(SaleKeys(sale_id).confirming, oid)  # the sale was reset under it
                    continue
                try:
                    await self.settle(sale_id, oid, int(qty))
                    done += 1
                except StrategyMoved:
                    await r.zrem(SaleKeys(sale_id).confirming, oid)
                except ApiError as e:
                    log.warning("settling payment of order %s of sale %s: %s", oid, sale_id, e.message)
        return done

    def _args(self, sale_id: str, key: str | None, order_id: str) -> list[str]:
        k = SaleKeys(sale_id)
        return [self.name, sale_id, "1" if key is not None else "0", order_id, k.order_prefix, order_id]


def _detail(counters: LedgerCounters | None) -> str:
    if counters is None:
        return "the sale is not in the warehouse ledger"
    return f"warehouse sold {counters.sold} of stock {counters.stock}"


async def settle_forever(strategies: Mapping[str, Strategy], interval_s: float) -> None:
    """Forever: settle abandoned confirming payments (a node's background task when it has a ledger)."""

    settler = strategies.get(PreDeductLedger.name)
    if not isinstance(settler, PreDeductLedger):
        return
    while True:
        try:
            await settler.settle_confirming()
        except REDIS_DOWN:
            pass  # the reaper logs outages
        except rx.ResponseError as e:
            log.warning("settler: redis refused: %s", e)
        await asyncio.sleep(interval_s)
