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

import orjson

from ..coalesce import CoalesceConfig, Coalescer
from ..errors import ApiError, StrategyMoved
from ..keys import SaleKeys
from ..policy import Profile
from ..replies import Reply, conflict, encode, from_stored
from ..sale import SaleConfig
from ..store import Store


@dataclass(frozen=True, slots=True)
class StrategyOptions:
    """Node-wide knobs a strategy may read (from the node's command line)."""

    naive_delay_s: float = 0.005
    # how strategies that coalesce orders batch them (reference_backend/coalesce.py)
    coalesce: CoalesceConfig = CoalesceConfig()
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

    # the warehouse ledger's stock sync can follow its sales (a node with --ledger may create them)
    ledger_sync: ClassVar[bool] = True

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None,
                    order_id: str | None = None) -> Reply:
        """Place an order; ``order_id`` is given only when an order processor applies a queued order."""
        raise NotImplementedError

    # The sale as a whole: its keys are the sale's own (keys.py) for every strategy but one
    # that lays its sale out otherwise (pre_deduct_buckets), which overrides these.

    async def put_sale(self, sale_id: str, cfg: SaleConfig) -> dict[str, Any]:
        return await self.store.put_sale(sale_id, cfg)

    async def counters(self, sale_id: str) -> dict[str, Any] | None:
        return self._mine(await self.store.counters(sale_id))

    async def audit(self, sale_id: str) -> dict[str, Any] | None:
        found = await self.store.audit(sale_id)
        if found is not None:
            self._mine(found["counters"])
        return found

    async def get_order(self, sale_id: str, order_id: str) -> Reply:
        return await self.store.get_order(sale_id, order_id)

    async def refund(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self.store.refund(sale_id, order_id, key)

    def background(self, interval_s: float) -> Awaitable[None] | None:
        """A loop the node runs beside its server for this strategy (None: it needs none)."""
        return None

    def _mine(self, counters: dict[str, Any] | None) -> dict[str, Any] | None:
        """Counters read by this strategy's layout, if the sale is (still) this strategy's; else StrategyMoved."""
        if counters is not None and counters["strategy"] != self.name:
            raise StrategyMoved(counters["strategy"])
        return counters

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
    # the script that places many orders of a sale in one call (lua/*_batch.lua), and whether
    # this strategy sends its orders through it (coalesced) instead of one call each
    batch_script: ClassVar[str | None] = None
    coalesce: ClassVar[bool] = False

    def __init__(self, store: Store, options: StrategyOptions) -> None:
        super().__init__(store, options)
        self.coalescer: Coalescer[tuple, tuple[bytes, bytes]] | None = None  # by BatchKey
        if self.coalesce:
            assert self.batch_script is not None, f"{self.name}: coalesce needs a batch_script"
            self.coalescer = Coalescer(self._send_batch, options.coalesce)

    async def order(self, sale_id: str, user_id: str, qty: int, key: str | None,
                    order_id: str | None = None) -> Reply:
        for _ in range(3):
            raw, verdict = await self._verdict(sale_id, user_id)
            try:
                if self.coalescer is not None and order_id is None:  # a queued order is applied on its own
                    return await self._order_coalesced(BatchKey(sale_id, sale_id, self.name), user_id, qty, key,
                                                       verdict, raw)
                # ARGV 10: an async order's id ('' for a new order); ARGV 11: this node's random
                # nonce for a new order's id (fresh_order_id in lua/_sale.lua), never Redis state, so a failover
                # that rolls the sale's seq back cannot hand an id out twice
                return await self._run("order", sale_id, key, f"{qty}:{user_id}", None, user_id, qty, verdict, raw,
                                       order_id or "", new_order_nonce())
            except PolicyMoved as moved:  # this node's policy was stale: judge again by the sale's
                self.store.policies.put(sale_id, moved.raw)
        raise ApiError(503, "unavailable", f"scalper_policy: sale {sale_id} keeps changing its policy")

    async def _verdict(self, sale_id: str, user_id: str) -> tuple[str, str]:
        """The sale's scalper policy as this node knows it (raw text) and its verdict on the user.

        The policy is judged here, by the node, and the verdict goes into the
        script (with the policy text judged by), so that a lowered limit is
        enforced in the same atomic step as the deduction.
        """
        raw, policy = self.store.policies.get(sale_id)
        verdict = ""
        if policy is not None and policy.enabled:
            found = await self.store.redis.hget(SaleKeys(sale_id).profiles, user_id)
            verdict = policy.verdict(Profile.decode(found) if found else None).lua_arg()
        return raw, verdict

    async def _order_coalesced(self, batch: "BatchKey", user_id: str, qty: int, key: str | None, verdict: str,
                               policy_raw: str, nonce: str | None = None) -> Reply:
        """One order through the coalescer: it shares a batch script call with the sale's concurrent orders."""
        kind, payload = await self._submit(batch, user_id, qty, key, verdict, policy_raw, nonce)
        return self._answer(kind, payload, f"{qty}:{user_id}")

    async def _submit(self, batch: "BatchKey", user_id: str, qty: int, key: str | None, verdict: str,
                      policy_raw: str, nonce: str | None = None) -> tuple[bytes, bytes]:
        assert self.coalescer is not None
        return await self.coalescer.submit(
            batch, (key or "", user_id, str(qty), verdict, policy_raw, nonce or new_order_nonce()))

    async def _send_batch(self, batch: "BatchKey", orders: list[tuple]) -> list[tuple[bytes, bytes]]:
        """The batch script for ``orders`` of one sale (lua/_batch.lua): one (kind, payload) per order."""
        assert self.batch_script is not None
        k = SaleKeys(batch.keys_of)
        flat = await self.store.script(self.batch_script)(
            keys=k.sale_keys(),
            args=[batch.strategy, batch.sale_id, k.order_prefix, batch.short, orjson.dumps(orders)])
        return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    async def pay(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._run("pay", sale_id, key, order_id, order_id, order_id)

    async def cancel(self, sale_id: str, order_id: str, key: str | None) -> Reply:
        return await self._run("cancel", sale_id, key, order_id, order_id, order_id)

    async def _run(
        self, op: str, sale_id: str, key: str | None, fingerprint: str, order_id: str | None, *args: str | int,
        keys_of: str | None = None, strategy: str | None = None,
    ) -> Reply:
        """One op script; ``keys_of`` names the sale whose keys it runs on (default ``sale_id``, the sale
        its answers show) and ``strategy`` the strategy its meta must have (default this one's name)."""
        k = SaleKeys(keys_of or sale_id)
        kind, payload = await self.store.script(self.scripts[op])(
            keys=k.op_keys(op, key, order_id),
            args=[strategy or self.name, sale_id, "1" if key is not None else "0", fingerprint, k.order_prefix, *args],
        )
        return self._answer(kind, payload, fingerprint)

    @staticmethod
    def _answer(kind: bytes, payload: bytes, fingerprint: str) -> Reply:
        """A script's answer as a reply; the sale's strategy or policy moved on raises."""
        if kind == b"s":
            raise StrategyMoved(payload.decode())
        if kind == b"p":
            raise PolicyMoved(payload.decode())
        return from_stored(payload, fingerprint)


@dataclass(frozen=True, slots=True)
class BatchKey:
    """Which orders may share a batch: one sale shown, one sale's keys, one strategy expected, one mode."""

    sale_id: str  # the sale the answers show
    keys_of: str  # the sale whose keys the batch runs on (a bucket of a pre_deduct_buckets sale)
    strategy: str  # what the keys' meta must say
    # the scripts' A_SHORT (lua/_sale.lua short_ok_of), for pre_deduct_buckets: 'need' answers too little
    # stock {'n', available}, not sold_out; a send count does so unless the bucket sent exactly that many
    short: str = ""


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

