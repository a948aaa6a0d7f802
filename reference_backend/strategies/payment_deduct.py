"""``payment_deduct`` (付款减库存): nothing held at order; payment captures money, then deducts.

Order and cancel are one Lua script each (``lua/payment_deduct_*.lua``). Pay is
two steps of ``lua/payment_deduct_pay.lua`` with an await between them, the way
a real shop talks to a payment provider: *capture* (the money is taken and the
payments ledger records it), the provider's latency (the sale's
``payment_delay_ms``), then *settle* (stock is deducted atomically, or, if none
is left, the payment is refunded and the buyer compensated). So concurrent
payers may all be captured for the last unit; one ships, the rest are refunded.

Usage::

    strategy = PaymentDeduct(store, StrategyOptions())
    await strategy.order("s1", "alice", 1, key=None)        # 201, status "ordered"
    await strategy.pay("s1", "1", key="pay-1")              # 200 "paid", or 409 sold_out, refunded: true
"""

from __future__ import annotations

import asyncio

from ..errors import StrategyMoved
from ..keys import SaleKeys
from ..replies import Reply, from_stored
from .base import LuaStrategy


class PaymentDeduct(LuaStrategy):
    """Deduction at payment, after capture; a payment without stock is refunded and compensated."""

    name = "payment_deduct"
    scripts = {"order": "payment_deduct_order", "pay": "payment_deduct_pay", "cancel": "payment_deduct_cancel"}

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        kind, payload = await self._step("capture", sale_id, order_id, key)
        if kind == b"c":  # captured (by this call or an earlier one): settle it
            delay_ms = int(payload or 0)
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            kind, payload = await self._step("settle", sale_id, order_id, key)
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        return from_stored(payload, order_id)

    async def settle(self, sale_id: str, order_id: str) -> Reply:
        """Settle a payment left captured (its node died between the steps); see monitor.py."""
        kind, payload = await self._step("settle", sale_id, order_id, None)
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        return from_stored(payload, order_id)

    async def _step(self, step: str, sale_id: str, order_id: str, key: str | None) -> tuple[bytes, bytes]:
        k = SaleKeys(sale_id)
        kind, payload = await self.store.script(self.scripts["pay"])(
            keys=k.op_keys("pay", key, order_id),
            args=[self.name, sale_id, "1" if key is not None else "0", order_id, k.order_prefix, order_id, step],
        )
        return kind, payload
