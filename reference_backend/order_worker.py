"""An order processor of the asynchronous order mode (异步处理订单), in its own process.

    python -m reference_backend.order_worker --redis-url URL --name W1 \\
        [--interval-ms 50] [--claim-idle-ms 2000] [--batch 50] [--apply-delay-ms 0] [--ledger PATH]

A sale with ``async_orders: true`` answers ``POST .../orders`` with 202 and a
``pending`` order whose id is assigned up front; the order script has appended
it to the sale's stream ``os:{S}:order_queue`` in the same atomic step. Order
processors form the consumer group ``orders`` over those streams. Each entry is
applied with the sale's own order script, called with the order's id
(``LuaStrategy.order(..., order_id=...)``): a still pending order becomes a hold
(or, refused, ``rejected`` with the refusal's code), and an order that is not
pending any more is left as it is, so an entry delivered twice applies once.
Only after that is the entry acknowledged and deleted (XACK + XDEL in one
MULTI; the queue's length is thus the number of orders not yet applied).

A processor that dies leaves its delivered, unacknowledged entries pending;
any processor claims entries idle longer than ``--claim-idle-ms`` (XAUTOCLAIM)
and applies them, so no accepted order is lost. A restarted processor with the
same name reads its own pending entries first. ``--apply-delay-ms`` pauses
between taking an entry and applying it: the window in which a killed processor
leaves pending entries (for chaos and tests).

Usage from Python::

    worker = OrderWorker(store, strategies, name="w1")
    await worker.tick()       # one pass over every async sale
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from redis import exceptions as rx

from .errors import REDIS_DOWN, StrategyMoved
from .keys import ORDER_GROUP, SALES, SaleKeys
from .ledger import SqliteLedger
from .store import Store
from .strategies import Strategy, StrategyOptions, discover
from .warehouse import AsyncLedger

log = logging.getLogger("reference_backend.order_worker")

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class OrderStats:
    """What one processor did since it started."""

    held: int = 0  # applied now: the order holds its units
    rejected: int = 0  # applied now: refused (sold out, over the limit, a scalper)
    already: int = 0  # not pending any more: applied by another processor, or cancelled while queued
    dropped: int = 0  # no such order or sale any more (the sale was reset)
    claimed: int = 0  # entries taken over from a processor that went quiet


class OrderWorker:
    """One order processor: ``tick()`` drains every async sale's queue once."""

    def __init__(
        self, store: Store, strategies: Mapping[str, Strategy], *, name: str, claim_idle_ms: int = 2000,
        batch: int = 50, apply_delay_s: float = 0.0,
    ) -> None:
        self.store = store
        self.strategies = strategies
        self.name = name
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.apply_delay_s = apply_delay_s
        self.stats = OrderStats()
        self._groups: set[str] = set()

    async def async_sales(self) -> list[str]:
        r = self.store.redis
        sales = sorted(raw.decode() for raw in await r.smembers(SALES))
        async with r.pipeline(transaction=False) as p:
            for sale_id in sales:
                p.hget(SaleKeys(sale_id).meta, "async_orders")
            flags = await p.execute()
        return [s for s, flag in zip(sales, flags) if flag == b"1"]

    async def tick(self, block_ms: int | None = None) -> int:
        """Apply every queued order this processor can get; returns how many entries it handled."""
        handled = 0
        sales = await self.async_sales()
        for sale_id in sales:
            handled += await self._drain(sale_id)
        if block_ms and sales and not handled:
            # nothing to do: wait for a new entry on any queue instead of sleeping blind
            await self._read({SaleKeys(s).order_queue: ">" for s in sales}, block_ms=block_ms, apply=True)
        return handled

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            await self.store.redis.xgroup_create(stream, ORDER_GROUP, id="0", mkstream=True)
        except rx.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(stream)

    async def _drain(self, sale_id: str) -> int:
        stream = SaleKeys(sale_id).order_queue
        try:
            await self._ensure_group(stream)
            handled = await self._read({stream: "0"}, apply=True)  # own pending ones first (a restart)
            claimed = await self.store.redis.xautoclaim(stream, ORDER_GROUP, self.name, self.claim_idle_ms,
                                                        start_id="0-0", count=self.batch)
            if claimed[1]:
                self.stats.claimed += len(claimed[1])
                log.info("claimed %d orders of sale %s left by a quiet processor", len(claimed[1]), sale_id)
                handled += await self._apply(sale_id, stream, claimed[1])
            for _ in range(20):  # bounded, so one busy sale cannot starve the others
                n = await self._read({stream: ">"}, apply=True)
                handled += n
                if n < self.batch:
                    break
            return handled
        except rx.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._groups.discard(stream)  # the sale was reset: its queue and group went
            return 0

    async def _read(self, streams: dict[str, str], *, apply: bool, block_ms: int | None = None) -> int:
        got = await self.store.redis.xreadgroup(ORDER_GROUP, self.name, streams, count=self.batch, block=block_ms)
        handled = 0
        for stream, entries in got or []:
            stream = stream.decode() if isinstance(stream, bytes) else stream
            sale_id = stream.split("{", 1)[1].split("}", 1)[0]
            if apply:
                handled += await self._apply(sale_id, stream, entries)
        return handled

    async def _apply(self, sale_id: str, stream: str, entries: list[Entry]) -> int:
        r = self.store.redis
        for entry_id, fields in entries:
            if self.apply_delay_s:
                await asyncio.sleep(self.apply_delay_s)
            if fields:  # an entry deleted while pending comes without fields: nothing to apply
                await self._apply_one(sale_id, fields)
            # applied (or found applied): only now may the entry go
            async with r.pipeline(transaction=True) as p:
                p.xack(stream, ORDER_GROUP, entry_id)
                p.xdel(stream, entry_id)
                await p.execute()
        return len(entries)

    async def _apply_one(self, sale_id: str, fields: dict[bytes, bytes]) -> None:
        order_id = fields[b"order"].decode()
        user_id, qty = fields[b"user"].decode(), int(fields[b"qty"])
        name = await self.store.strategy_of(sale_id)
        for _ in range(3):
            strategy = self.strategies.get(name) if name else None
            if strategy is None:
                self.stats.dropped += 1  # the sale went (or uses a strategy unknown here)
                return
            try:
                reply = await strategy.order(sale_id, user_id, qty, None, order_id=order_id)
                break
            except StrategyMoved as moved:
                name = moved.actual
        else:
            return
        if reply.status == 201:
            self.stats.held += 1
        elif reply.status == 200:
            self.stats.already += 1
        elif reply.status == 404:
            self.stats.dropped += 1
        else:
            err = reply.body["error"]
            await self.store.script("async_reject")(
                keys=[SaleKeys(sale_id).order(order_id)], args=[err["code"], err["message"]])
            self.stats.rejected += 1

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        down = False
        while not stop.is_set():
            try:
                await self.tick(block_ms=max(1, int(interval_s * 1000)))
                if down:
                    log.warning("redis is back")
                down = False
            except REDIS_DOWN as e:
                if not down:
                    log.warning("redis unavailable (%s), retrying", e)
                down = True
                await asyncio.sleep(interval_s)
            except rx.ResponseError as e:
                log.warning("redis refused: %s", e)
                await asyncio.sleep(interval_s)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reference_backend.order_worker",
                                description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--name", required=True, help="consumer name; a restart under the same name resumes its entries")
    p.add_argument("--interval-ms", type=int, default=50, help="longest wait for a new order when idle")
    p.add_argument("--claim-idle-ms", type=int, default=2000, help="claim entries another processor left this long")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--apply-delay-ms", type=int, default=0, help="pause between taking an order and applying it")
    p.add_argument("--ledger", metavar="PATH", default=None, help="the warehouse ledger, as the nodes have it")
    p.add_argument("--redis-timeout-ms", type=int, default=2000)
    args = p.parse_args(argv)
    if min(args.interval_ms, args.claim_idle_ms, args.batch, args.redis_timeout_ms) < 1:
        p.error("--interval-ms, --claim-idle-ms, --batch and --redis-timeout-ms must be >= 1")
    if args.apply_delay_ms < 0:
        p.error("--apply-delay-ms must be >= 0")
    return args


async def serve(args: argparse.Namespace) -> None:
    # the socket timeout must outlast the blocking read of an idle tick
    timeout_s = args.redis_timeout_ms / 1000 + args.interval_ms / 1000
    store = Store.connect(args.redis_url, max_connections=8, timeout_s=timeout_s)
    ledger = AsyncLedger(SqliteLedger(args.ledger)) if args.ledger else None
    strategies = {name: cls(store, StrategyOptions(ledger=ledger)) for name, cls in discover().items()}
    worker = OrderWorker(store, strategies, name=args.name, claim_idle_ms=args.claim_idle_ms, batch=args.batch,
                         apply_delay_s=args.apply_delay_ms / 1000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"order worker {args.name} redis={args.redis_url}", flush=True)
    try:
        await worker.run(stop, args.interval_ms / 1000)
    finally:
        s = worker.stats
        print(f"order worker {args.name} stopped: held={s.held} rejected={s.rejected} already={s.already} "
              f"dropped={s.dropped} claimed={s.claimed}", flush=True)
        await store.close()
        if ledger is not None:
            ledger.close()


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s orders {args.name} %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
