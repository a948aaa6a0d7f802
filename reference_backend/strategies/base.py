"""The one interface every deduction strategy implements, and two helpers.

A strategy is one module in this package with one ``Strategy`` subclass and,
when it is atomic, its Lua scripts in ``reference_backend/lua/``. The registry
(``strategies/__init__.py``) finds it by its ``name``.

Usage::

    class OrderDeduct(LuaStrategy):
        name = "order_deduct"
        scripts = {"order": "order_deduct_order", "pay": "order_deduct_pay", "cancel": "order_deduct_cancel"}
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ApiError, StrategyMoved
from ..keys import SaleKeys
from ..policy import Profile
from ..replies import Reply, conflict, encode, from_stored
from ..store import Store


@dataclass(frozen=True, slots=True)
class StrategyOptions:
    """Node-wide knobs a strategy may read (from the node's command line)."""

    naive_delay_s: float = 0.005
    # the warehouse ledger (reference_backend.warehouse.AsyncLedger) of a node started
    # with --ledger; pre_deduct_ledger needs it, the others ignore it
    ledger: Any = None


class Strategy:
    """Order, pay and cancel for one sale; each returns a ``Reply`` or raises ``ApiError``.

    ``key`` is the request's Idempotency-Key or None. A strategy must raise
    ``StrategyMoved`` when the sale turns out to have another strategy.
    """

    name: ClassVar[str]
    # its order step can queue an order and apply it later under its given id
    # (the sale setting async_orders; see async_accept in lua/_sale.lua)
    supports_async: ClassVar[bool] = False
    # it cannot run without the node's warehouse ledger (--ledger)
    needs_ledger: ClassVar[bool] = False

    def __init__(self, store: Store, options: StrategyOptions) -> None:
        self.store = store
        self.options = options

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None,
                    order_id: str | None = None) -> Reply:
        """Place an order; ``order_id`` is given only when an order processor applies a queued order."""
        raise NotImplementedError

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        raise NotImplementedError

    async def cancel(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        raise NotImplementedError

    async def idempotent(
        self, sale_id: str, op: str, key: str | None, fingerprint: str, run: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """Idempotency for a strategy that works in several Redis steps (not one script).

        The key is claimed first with SET NX, so of two concurrent requests under one
        key only one runs; the other waits for the stored answer. The claim expires,
        so a node killed mid-request does not block the key forever (a retry after
        that may then run again: this path is only as safe as a multi-step strategy
        can be, which is the point of the negative control).
        """
        if key is None:
            return await run()
        r = self.store.redis
        ikey = SaleKeys(sale_id).idem(op, key)
        pending = fingerprint.encode() + b"\n"
        if not await r.set(ikey, pending, nx=True, px=30_000):
            for _ in range(400):  # up to ~2 s for the first request to finish
                stored = await r.get(ikey)
                if stored is None:
                    break  # the first request left no answer (a 404): run afresh
                if not stored.endswith(b"\n"):
                    return from_stored(stored, fingerprint)
                if not stored.startswith(pending):
                    raise conflict()
                await asyncio.sleep(0.005)
            else:
                raise ApiError(503, "unavailable", "Idempotency-Key: the first request with this key is still running")
            return await self.idempotent(sale_id, op, key, fingerprint, run)
        try:
            reply = await run()
        except BaseException:
            await r.delete(ikey)
            raise
        if reply.keep:
            await r.set(ikey, encode(fingerprint, _result(reply)))
        else:
            await r.delete(ikey)
        return reply


class LuaStrategy(Strategy):
    """A strategy whose order, pay and cancel are each one atomic Lua script.

    The idempotency key is checked and stored inside the same script as the write,
    so a retry can never apply twice, even from another node at the same moment.
    """

    scripts: ClassVar[dict[str, str]]  # op -> script name in reference_backend/lua/

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None,
                    order_id: str | None = None) -> Reply:
        # The scalper policy is judged here, by the node, and the verdict goes into
        # the script (ARGV 8, with the policy text judged by as ARGV 9), so that a
        # lowered limit is enforced in the same atomic step as the deduction.
        for _ in range(3):
            raw, policy = self.store.policies.get(sale_id)
            verdict = ""
            if policy is not None and policy.enabled:
                found = await self.store.redis.hget(SaleKeys(sale_id).profiles, user_id)
                verdict = policy.verdict(Profile.decode(found) if found else None).lua_arg()
            try:
                # ARGV 10: an async order's id ('' for a new order); ARGV 11: this node's random
                # nonce for a new order's id (fresh_order_id in lua/_sale.lua), never Redis state, so a failover
                # that rolls the sale's seq back cannot hand an id out twice
                return await self._run("order", sale_id, key, f"{qty}:{user_id}", None, user_id, qty, verdict, raw,
                                       order_id or "", new_order_nonce())
            except PolicyMoved as moved:  # this node's policy was stale: judge again by the sale's
                self.store.policies.put(sale_id, moved.raw)
        raise ApiError(503, "unavailable", f"scalper_policy: sale {sale_id} keeps changing its policy")

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._run("pay", sale_id, key, order_id, order_id, order_id)

    async def cancel(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._run("cancel", sale_id, key, order_id, order_id, order_id)

    async def _run(
        self, op: str, sale_id: str, key: str | None, fingerprint: str, order_id: str | None, *args: str | int
    ) -> Reply:
        k = SaleKeys(sale_id)
        kind, payload = await self.store.script(self.scripts[op])(
            keys=k.op_keys(op, key, order_id),
            args=[self.name, sale_id, "1" if key is not None else "0", fingerprint, k.order_prefix, *args],
        )
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        if kind == b"p":
            raise PolicyMoved(payload.decode())
        return from_stored(payload, fingerprint)


def new_order_nonce() -> str:
    """12 random hex characters for a new order's id (``<seq>-<nonce>``): unique without Redis."""
    return secrets.token_hex(6)


class PolicyMoved(Exception):
    """The sale's scalper policy is not the one this node judged by (answer ``{'p', policy}``)."""

    def __init__(self, raw: str) -> None:
        super().__init__(raw)
        self.raw = raw


def _result(reply: Reply) -> dict:
    """A reply back in its stored result form (see replies.py)."""
    if "error" in reply.body:
        return {"s": reply.status, "e": reply.body["error"]["code"], "m": reply.body["error"]["message"]}
    return {"s": reply.status, "o": reply.body}

