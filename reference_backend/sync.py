"""The stock sync worker (数据实时同步): front (Redis) <-> warehouse (the ledger), in its own process.

    python -m reference_backend.sync --redis-url URL --ledger PATH \\
        [--interval-ms 100] [--delay-ms 0] [--consumer sync-1] [--claim-idle-ms 5000] [--batch 200]

Front -> warehouse: the pay (and refund) scripts of a synced sale append a sale
event to the sale's stream ``os:{S}:events`` in the same atomic step as the
sale. The worker reads them as consumer group ``sync``, applies each to the
ledger in one SQLite transaction that also records the event id, and only then
acknowledges and deletes the entry (XACK + XDEL in one MULTI). A worker killed
at any point loses nothing (unacknowledged entries stay in its pending list and
are read again, or claimed by another consumer with XAUTOCLAIM once idle) and
applies nothing twice (a replayed id is found in the ledger's ``applied``).
Because applied entries are deleted, the first entry of the stream is the
oldest unapplied one.

Warehouse -> front: restocks, in-transit and received units are written to the
ledger with an outbox row in one transaction; the worker applies each row to
the front with ``lua/sync_front.lua`` (stock and available in one step, and a
per-sale watermark of applied row ids, so a retry is a no-op), then marks it done.

Chaos knobs, read every tick: ``os:sync:delay_ms`` (overrides ``--delay-ms``: a
change is applied no earlier than this long after it happened) and
``os:sync:stall`` = 1 (apply nothing). Report: ``os:sync:lag_ms`` (the worst
sale's current lag) and per sale ``os:{S}:sync`` {last_lag_ms, at_ms}; the
lag definition is ``warehouse.lag_ms``.

Usage from Python::

    worker = SyncWorker(redis.Redis.from_url(url), SqliteLedger(path), consumer="sync-1")
    worker.tick()    # one pass; run() loops until stop is set
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis import exceptions as rx

from . import lua
from .errors import REDIS_DOWN
from .keys import SYNC_DELAY_MS, SYNC_GROUP, SYNC_LAG_MS, SYNC_STALL, SaleKeys
from .ledger import FrontEvent, OutboxRow, SqliteLedger
from .sentinel_pool import sync_client
from .warehouse import lag_ms, stream_ms

log = logging.getLogger("reference_backend.sync")

MAX_BATCHES = 20  # per sale and source in one tick, so one busy sale cannot starve the others


@dataclass
class SyncStats:
    """What one worker did since it started (for logs and tests)."""

    events_applied: int = 0
    events_duplicate: int = 0
    events_refused: int = 0
    events_stale: int = 0
    outbox_applied: int = 0
    outbox_skipped: int = 0


class SyncWorker:
    """One sync worker: call ``tick()`` in a loop (``run``)."""

    def __init__(
        self,
        client: redis.Redis,
        ledger: SqliteLedger,
        *,
        consumer: str = "sync-1",
        delay_ms: int = 0,
        claim_idle_ms: int = 5000,
        batch: int = 200,
    ) -> None:
        self.redis = client
        self.ledger = ledger
        self.consumer = consumer
        self.default_delay_ms = delay_ms
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.stats = SyncStats()
        self._front = client.register_script(lua.source("sync_front"))
        self._groups: set[str] = set()  # streams whose group this worker made sure of
        self._last_claim = 0.0

    # -- one pass ------------------------------------------------------------------

    def tick(self) -> None:
        delay_raw, stall, (sec, usec) = self._controls()
        now = sec * 1000 + usec // 1000
        delay = int(delay_raw) if delay_raw is not None and delay_raw.isdigit() else self.default_delay_ms
        sales = self.ledger.sales()
        if stall != b"1":
            self._push_outbox(now, delay)
            claim = time.monotonic() - self._last_claim > self.claim_idle_ms / 4000
            for sku, _epoch in sales:
                self._pull_events(sku, now, delay, claim)
            if claim:
                self._last_claim = time.monotonic()
        self._publish_lag(sales, now)

    def _controls(self) -> list[Any]:
        with self.redis.pipeline(transaction=False) as p:
            p.get(SYNC_DELAY_MS)
            p.get(SYNC_STALL)
            p.time()
            delay, stall, now = p.execute()
        return [delay.decode() if delay is not None else None, stall, now]

    # -- warehouse -> front --------------------------------------------------------

    def _push_outbox(self, now: int, delay: int) -> None:
        blocked: set[str] = set()  # a sale whose row could not be applied: keep its later rows back (watermark)
        done: list[int] = []
        for row in self.ledger.pending_outbox(self.batch):
            if row.sku in blocked:
                continue
            if row.created_ms + delay > now:
                blocked.add(row.sku)
                continue
            outcome = self._apply_row(row)
            if outcome == "applied":
                self.stats.outbox_applied += 1
                self._note_applied(row.sku, now - row.created_ms)
            else:
                self.stats.outbox_skipped += 1
                if outcome != "duplicate":
                    log.warning("outbox row %s (%s %s of sale %s): %s", row.id, row.kind, row.qty, row.sku, outcome)
            done.append(row.id)
        self.ledger.outbox_done(done)

    def _apply_row(self, row: OutboxRow) -> str:
        k = SaleKeys(row.sku)
        out = self._front(keys=[k.meta, k.avail, k.front_applied], args=[row.id, row.kind, row.qty, row.epoch])
        return out.decode() if isinstance(out, bytes) else str(out)

    # -- front -> warehouse --------------------------------------------------------

    def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            self.redis.xgroup_create(stream, SYNC_GROUP, id="0", mkstream=True)
        except rx.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(stream)

    def _pull_events(self, sku: str, now: int, delay: int, claim: bool) -> None:
        stream = SaleKeys(sku).events
        try:
            self._ensure_group(stream)
            self._drain(sku, stream, now, delay, claim)
        except rx.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            self._groups.discard(stream)  # the sale was reset (its stream went): make the group again

    def _drain(self, sku: str, stream: str, now: int, delay: int, claim: bool) -> None:
        """Apply every due entry: own pending ones first (read before a crash, or held
        back by the delay), then those of consumers that went quiet, then new ones.

        Entries are applied in stream order and the first one not yet due stops
        the pass, so a delay holds back everything after it too.
        """
        sources = ["0"] + (["claim"] if claim else []) + [">"]
        for source in sources:
            for _ in range(MAX_BATCHES):
                if source == "claim":
                    entries = self.redis.xautoclaim(stream, SYNC_GROUP, self.consumer, self.claim_idle_ms,
                                                    start_id="0-0", count=self.batch)[1]
                else:
                    got = self.redis.xreadgroup(SYNC_GROUP, self.consumer, {stream: source}, count=self.batch)
                    entries = got[0][1] if got else []
                gone = [e[0] for e in entries if not e[1]]  # deleted but never acknowledged: nothing to apply
                if gone:
                    self.redis.xack(stream, SYNC_GROUP, *gone)
                entries = [e for e in entries if e[1]]
                if not entries:
                    break
                due = 0
                while due < len(entries) and stream_ms(entries[due][0]) + delay <= now:
                    due += 1
                if due:
                    self._apply_events(sku, stream, entries[:due], now)
                if due < len(entries):
                    return

    def _apply_events(self, sku: str, stream: str, entries: list[tuple[bytes, dict[bytes, bytes]]], now: int) -> None:
        events = [_event(eid, fields) for eid, fields in entries]
        outcomes = self.ledger.apply_front_events(sku, events)
        self._ack(stream, [eid for eid, _ in entries])
        for ev, outcome in zip(events, outcomes):
            if outcome == "applied":
                self.stats.events_applied += 1
            elif outcome == "duplicate":
                self.stats.events_duplicate += 1
            elif outcome == "refused":
                self.stats.events_refused += 1
                log.warning("sale %s: the front sold order %s (%s units) past the warehouse's stock",
                            sku, ev.order_id, ev.qty)
            else:
                self.stats.events_stale += 1
        self._note_applied(sku, now - events[-1].ms)

    def _ack(self, stream: str, ids: list[bytes]) -> None:
        # only now, after the ledger committed, may the entries go: XACK and XDEL as one step
        with self.redis.pipeline(transaction=True) as p:
            p.xack(stream, SYNC_GROUP, *ids)
            p.xdel(stream, *ids)
            p.execute()

    # -- the lag -------------------------------------------------------------------

    def _note_applied(self, sku: str, lag: int) -> None:
        self.redis.hset(SaleKeys(sku).sync, "last_lag_ms", max(0, lag))

    def _publish_lag(self, sales: list[tuple[str, str]], now: int) -> None:
        if not sales:
            self.redis.set(SYNC_LAG_MS, 0)
            return
        with self.redis.pipeline(transaction=False) as p:
            for sku, _ in sales:
                k = SaleKeys(sku)
                p.xrange(k.events, count=1)
                p.hget(k.sync, "last_lag_ms")
            found = p.execute()
        worst = 0
        with self.redis.pipeline(transaction=False) as p:
            for i, (sku, _) in enumerate(sales):
                first, last = found[2 * i], found[2 * i + 1]
                oldest = [stream_ms(first[0][0])] if first else []
                outbox = self.ledger.oldest_outbox_ms(sku)
                if outbox is not None:
                    oldest.append(outbox)
                lag = lag_ms(now, min(oldest) if oldest else None, int(last) if last else None)
                worst = max(worst, lag)
                p.hset(SaleKeys(sku).sync, "at_ms", now)
            p.set(SYNC_LAG_MS, worst)
            p.execute()

    # -- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float) -> None:
        down = False
        while not stop.is_set():
            try:
                self.tick()
                if down:
                    log.warning("redis is back")
                down = False
            except REDIS_DOWN as e:
                if not down:
                    log.warning("redis unavailable (%s), retrying", e)
                down = True
            except rx.ResponseError as e:
                log.warning("redis refused: %s", e)
            except sqlite3.Error as e:  # e.g. locked past the busy timeout: nothing was acknowledged, retry
                log.warning("ledger: %s", e)
            stop.wait(interval_s)


def _event(eid: bytes, fields: dict[bytes, bytes]) -> FrontEvent:
    return FrontEvent(
        event_id=eid.decode(),
        kind=fields.get(b"type", b"").decode(),
        order_id=fields.get(b"order", b"").decode(),
        qty=int(fields.get(b"qty", b"0")),
        epoch=fields.get(b"epoch", b"").decode(),
    )


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reference_backend.sync", description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--ledger", required=True, help="the warehouse ledger file (SQLite), shared with the nodes")
    p.add_argument("--interval-ms", type=int, default=100)
    p.add_argument("--delay-ms", type=int, default=0, help="apply a change no earlier than this after it happened")
    p.add_argument("--consumer", default="sync-1", help="consumer name in the stream groups (keep it across restarts)")
    p.add_argument("--claim-idle-ms", type=int, default=5000, help="claim another consumer's entries idle this long")
    p.add_argument("--batch", type=int, default=200)
    args = p.parse_args(argv)
    if args.interval_ms < 1 or args.batch < 1 or args.claim_idle_ms < 1:
        p.error("--interval-ms, --batch and --claim-idle-ms must be >= 1")
    if args.delay_ms < 0:
        p.error("--delay-ms must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s sync {args.consumer} %(levelname)s %(message)s")
    client = sync_client(args.redis_url, timeout_s=2)  # redis:// or redis+sentinel:// (follows failovers)
    ledger = SqliteLedger(args.ledger)
    worker = SyncWorker(client, ledger, consumer=args.consumer, delay_ms=args.delay_ms,
                        claim_idle_ms=args.claim_idle_ms, batch=args.batch)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"sync worker {args.consumer} redis={args.redis_url} ledger={args.ledger}", flush=True)
    try:
        worker.run(stop, args.interval_ms / 1000)
    finally:
        s = worker.stats
        print(f"sync worker {args.consumer} stopped: events applied={s.events_applied} "
              f"duplicate={s.events_duplicate} refused={s.events_refused} stale={s.events_stale} "
              f"outbox applied={s.outbox_applied} skipped={s.outbox_skipped}", flush=True)
        ledger.close()
        client.close()


if __name__ == "__main__":
    main()
