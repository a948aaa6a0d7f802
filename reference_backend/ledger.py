"""The warehouse ledger (后端货品库存): the record of what was really sold.

The front (Redis) is fast and may lose acknowledged writes in a failover; the
ledger is slow and durable, and it is the truth. One small interface,
``Ledger``, so PostgreSQL could take SQLite's place; ``SqliteLedger`` is the
default: one file shared by every node and the sync worker, WAL mode, and each
write one ``BEGIN IMMEDIATE`` transaction, so the check and the write of
``reserve_sold`` are one step across processes.

What it holds, per sale (sku):

- ``stock`` (initial plus restocks plus received), ``sold``, ``in_transit``;
- ``sold_orders``: order id -> qty, one row per sold order (``reserve_sold`` is
  idempotent per order id, so a retried payment converges);
- ``refused``: orders the front sold but the warehouse could not (the sync
  worker found no stock for them): an oversell the front made, on record;
- ``applied``: ids of front events the sync worker applied, written in the
  same transaction as their effect, so a replayed event is a no-op;
- ``outbox``: warehouse changes (restock, in transit, receive) the front has
  not seen yet; the sync worker applies them to Redis and marks them done.

Usage::

    ledger = SqliteLedger("/tmp/ledger.sqlite3")
    ledger.create_sale("moutai", 10)
    assert ledger.reserve_sold("moutai", "17", 2)        # True: sold
    assert ledger.reserve_sold("moutai", "17", 2)        # True again: same order, no double count
    ledger.counters("moutai")                            # LedgerCounters(stock=10, sold=2, in_transit=0, ...)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: kinds of warehouse -> front changes (outbox rows)
RESTOCK, IN_TRANSIT, RECEIVE = "restock", "in_transit", "receive"
#: kinds of front -> warehouse events (the sale's Redis Stream)
SOLD, UNSOLD = "sold", "unsold"


class LedgerError(Exception):
    """A ledger refusal that is the caller's fault (unknown sale, too little in transit)."""


class UnknownSale(LedgerError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"sale {sku} is not in the warehouse ledger")
        self.sku = sku


class NotInTransit(LedgerError):
    def __init__(self, sku: str, asked: int, in_transit: int) -> None:
        super().__init__(f"qty: {asked} asked to receive, only {in_transit} in transit for sale {sku}")
        self.asked = asked
        self.in_transit = in_transit


@dataclass(frozen=True, slots=True)
class LedgerCounters:
    """One sale's warehouse counters; ``refused`` = units the front sold that the warehouse could not."""

    stock: int
    sold: int
    in_transit: int
    refused: int
    epoch: str

    def as_dict(self) -> dict[str, int]:
        return {"stock": self.stock, "sold": self.sold, "in_transit": self.in_transit, "refused": self.refused}


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A warehouse change the front has not applied yet."""

    id: int
    sku: str
    epoch: str
    kind: str
    qty: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class FrontEvent:
    """One entry of a sale's front event stream (``os:{S}:events``)."""

    event_id: str  # the Redis Stream id, e.g. '1700000000000-0'
    kind: str  # SOLD or UNSOLD
    order_id: str
    qty: int
    epoch: str

    @property
    def ms(self) -> int:
        return int(self.event_id.split("-", 1)[0])


class Ledger(Protocol):
    """The warehouse ledger's interface; every method is one transaction.

    ``reserve_sold`` is the one that matters: a conditional write that never
    lets ``sold`` pass ``stock`` and is idempotent per order id.
    """

    def create_sale(self, sku: str, stock: int, epoch: str = "") -> None: ...
    def reserve_sold(self, sku: str, order_id: str, qty: int) -> bool: ...
    def release(self, sku: str, order_id: str) -> bool: ...
    def restock(self, sku: str, qty: int) -> LedgerCounters: ...
    def in_transit(self, sku: str, qty: int) -> LedgerCounters: ...
    def receive(self, sku: str, qty: int) -> LedgerCounters: ...
    def counters(self, sku: str) -> LedgerCounters | None: ...
    def sold_orders(self, sku: str) -> list[tuple[str, int]]: ...
    def refused_orders(self, sku: str) -> list[tuple[str, int]]: ...
    # the sync worker's side
    def sales(self) -> list[tuple[str, str]]: ...
    def apply_front_events(self, sku: str, events: Iterable[FrontEvent]) -> list[str]: ...
    def pending_outbox(self, limit: int = 100) -> list[OutboxRow]: ...
    def outbox_done(self, ids: Iterable[int]) -> None: ...
    def oldest_outbox_ms(self, sku: str) -> int | None: ...
    def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    sku TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    sold INTEGER NOT NULL CHECK (sold >= 0),
    in_transit INTEGER NOT NULL CHECK (in_transit >= 0),
    CHECK (sold <= stock)
);
CREATE TABLE IF NOT EXISTS sold_orders (
    sku TEXT NOT NULL, order_id TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (sku, order_id)
);
CREATE TABLE IF NOT EXISTS refused (
    sku TEXT NOT NULL, order_id TEXT NOT NULL, qty INTEGER NOT NULL,
    PRIMARY KEY (sku, order_id)
);
CREATE TABLE IF NOT EXISTS applied (
    sku TEXT NOT NULL, event_id TEXT NOT NULL,
    PRIMARY KEY (sku, event_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL, epoch TEXT NOT NULL, kind TEXT NOT NULL, qty INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (done, id);
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteLedger:
    """The ledger in one SQLite file (WAL), safe to share between processes and threads.

    Each thread gets its own connection (sqlite3 connections are not to be
    shared across threads); the asyncio node calls it from a thread pool
    (``reference_backend.warehouse.AsyncLedger``), never from the event loop.

    ``CHECK (sold <= stock)`` in the schema is a second line of defence: even a
    bug in ``reserve_sold`` could not commit an oversell.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        # NORMAL in WAL mode survives a process crash (kill -9) but may lose the last
        # commits on a power cut; FULL survives both at an fsync per commit.
        self.synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn().executescript(SCHEMA)  # idempotent; concurrent openers wait on the busy timeout

    # -- plumbing ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            self._set_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # switching to WAL needs a moment without other writers; it persists in the file
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() == "wal":
                    return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so a
        read-check-write inside it cannot interleave with another process's."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    @staticmethod
    def _counters(db: sqlite3.Connection, sku: str) -> LedgerCounters | None:
        row = db.execute("SELECT stock, sold, in_transit, epoch FROM sales WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            return None
        refused = db.execute("SELECT COALESCE(SUM(qty), 0) FROM refused WHERE sku = ?", (sku,)).fetchone()[0]
        return LedgerCounters(stock=row[0], sold=row[1], in_transit=row[2], refused=refused, epoch=row[3])

    def _require(self, db: sqlite3.Connection, sku: str) -> LedgerCounters:
        found = self._counters(db, sku)
        if found is None:
            raise UnknownSale(sku)
        return found

    # -- the interface -------------------------------------------------------------

    def create_sale(self, sku: str, stock: int, epoch: str = "") -> None:
        """Create or reset a sale: its sold orders, applied events and outbox go too."""
        with self._tx() as db:
            for table in ("sold_orders", "refused", "applied", "outbox"):
                db.execute(f"DELETE FROM {table} WHERE sku = ?", (sku,))
            db.execute(
                "INSERT INTO sales (sku, epoch, stock, sold, in_transit) VALUES (?, ?, ?, 0, 0) "
                "ON CONFLICT (sku) DO UPDATE SET epoch = excluded.epoch, stock = excluded.stock, sold = 0, "
                "in_transit = 0",
                (sku, epoch, stock),
            )

    def reserve_sold(self, sku: str, order_id: str, qty: int) -> bool:
        """Sell ``qty`` units to ``order_id`` unless that would pass stock.

        True if the order is sold now or was already (idempotent per order id:
        the first qty stands); False if the warehouse has not enough left.
        """
        with self._tx() as db:
            return self._reserve(db, sku, order_id, qty)

    def _reserve(self, db: sqlite3.Connection, sku: str, order_id: str, qty: int) -> bool:
        c = self._require(db, sku)
        if db.execute("SELECT 1 FROM sold_orders WHERE sku = ? AND order_id = ?", (sku, order_id)).fetchone():
            return True
        if c.sold + qty > c.stock:
            return False
        db.execute("INSERT INTO sold_orders (sku, order_id, qty) VALUES (?, ?, ?)", (sku, order_id, qty))
        db.execute("UPDATE sales SET sold = sold + ? WHERE sku = ?", (qty, sku))
        return True

    def release(self, sku: str, order_id: str) -> bool:
        """Give a sold order's units back (a payment that did not stand); False if it was not sold."""
        with self._tx() as db:
            return self._release(db, sku, order_id)

    @staticmethod
    def _release(db: sqlite3.Connection, sku: str, order_id: str) -> bool:
        row = db.execute("SELECT qty FROM sold_orders WHERE sku = ? AND order_id = ?", (sku, order_id)).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM sold_orders WHERE sku = ? AND order_id = ?", (sku, order_id))
        db.execute("UPDATE sales SET sold = sold - ? WHERE sku = ?", (row[0], sku))
        return True

    def restock(self, sku: str, qty: int) -> LedgerCounters:
        """New units arrived straight into the warehouse; the front learns through the sync."""
        return self._change(sku, RESTOCK, qty, "UPDATE sales SET stock = stock + ? WHERE sku = ?")

    def in_transit(self, sku: str, qty: int) -> LedgerCounters:
        """Units on their way to the warehouse: not sellable yet, shown to the front."""
        return self._change(sku, IN_TRANSIT, qty, "UPDATE sales SET in_transit = in_transit + ? WHERE sku = ?")

    def receive(self, sku: str, qty: int) -> LedgerCounters:
        """In-transit units arrived: they become stock. Raises ``NotInTransit`` if fewer are on the way."""
        return self._change(sku, RECEIVE, qty,
                            "UPDATE sales SET in_transit = in_transit - ?1, stock = stock + ?1 WHERE sku = ?2")

    def _change(self, sku: str, kind: str, qty: int, update: str) -> LedgerCounters:
        with self._tx() as db:
            c = self._require(db, sku)
            if kind == RECEIVE and qty > c.in_transit:
                raise NotInTransit(sku, qty, c.in_transit)
            db.execute(update, (qty, sku))
            # the same transaction queues it for the front: the change and its sync are one fact
            db.execute("INSERT INTO outbox (sku, epoch, kind, qty, created_ms) VALUES (?, ?, ?, ?, ?)",
                       (sku, c.epoch, kind, qty, _now_ms()))
            after = self._counters(db, sku)
            assert after is not None
            return after

    def counters(self, sku: str) -> LedgerCounters | None:
        return self._counters(self._conn(), sku)

    def sold_orders(self, sku: str) -> list[tuple[str, int]]:
        rows = self._conn().execute("SELECT order_id, qty FROM sold_orders WHERE sku = ? ORDER BY rowid", (sku,))
        return [(r[0], r[1]) for r in rows]

    def refused_orders(self, sku: str) -> list[tuple[str, int]]:
        rows = self._conn().execute("SELECT order_id, qty FROM refused WHERE sku = ? ORDER BY rowid", (sku,))
        return [(r[0], r[1]) for r in rows]

    def snapshot(self, sku: str) -> tuple[LedgerCounters, list[tuple[str, int]], list[tuple[str, int]]] | None:
        """Counters, sold orders and refused orders read in one transaction (for the audit)."""
        conn = self._conn()
        conn.execute("BEGIN")  # a read transaction: one consistent WAL snapshot
        try:
            c = self._counters(conn, sku)
            if c is None:
                return None
            return c, self.sold_orders(sku), self.refused_orders(sku)
        finally:
            conn.execute("COMMIT")

    # -- the sync worker's side ----------------------------------------------------

    def sales(self) -> list[tuple[str, str]]:
        """(sku, epoch) of every sale the warehouse knows."""
        return [(r[0], r[1]) for r in self._conn().execute("SELECT sku, epoch FROM sales ORDER BY sku")]

    def apply_front_events(self, sku: str, events: Iterable[FrontEvent]) -> list[str]:
        """Apply front events in one transaction; returns what happened to each, in order.

        ``applied``, ``duplicate`` (its id is on record: a replay after a crash),
        ``refused`` (a sale the warehouse had no stock for, recorded in ``refused``),
        ``stale`` (an event of an earlier epoch of the sale, from before a reset),
        ``superseded`` (a sale of an order whose unsale was applied already),
        ``unknown_sale``. The event id is recorded with its effect, atomically.
        """
        out: list[str] = []
        with self._tx() as db:
            c = self._counters(db, sku)
            for ev in events:
                if c is None:
                    out.append("unknown_sale")
                    continue
                if ev.epoch != c.epoch:
                    out.append("stale")
                    continue
                seen = db.execute("INSERT OR IGNORE INTO applied (sku, event_id) VALUES (?, ?)", (sku, ev.event_id))
                if seen.rowcount == 0:
                    out.append("duplicate")
                    continue
                # an unsold order stays unsold, whatever order its two events arrive in
                # (a sale event claimed from a dead consumer can come after its refund)
                tombstone = f"unsold:{ev.order_id}"
                if ev.kind == SOLD:
                    if db.execute("SELECT 1 FROM applied WHERE sku = ? AND event_id = ?", (sku, tombstone)).fetchone():
                        out.append("superseded")
                    elif self._reserve(db, sku, ev.order_id, ev.qty):
                        out.append("applied")
                    else:
                        db.execute("INSERT OR IGNORE INTO refused (sku, order_id, qty) VALUES (?, ?, ?)",
                                   (sku, ev.order_id, ev.qty))
                        out.append("refused")
                elif ev.kind == UNSOLD:
                    db.execute("INSERT OR IGNORE INTO applied (sku, event_id) VALUES (?, ?)", (sku, tombstone))
                    self._release(db, sku, ev.order_id)
                    db.execute("DELETE FROM refused WHERE sku = ? AND order_id = ?", (sku, ev.order_id))
                    out.append("applied")
                else:
                    out.append("ignored")
        return out

    def pending_outbox(self, limit: int = 100) -> list[OutboxRow]:
        rows = self._conn().execute(
            "SELECT id, sku, epoch, kind, qty, created_ms FROM outbox WHERE done = 0 ORDER BY id LIMIT ?", (limit,)
        )
        return [OutboxRow(*r) for r in rows]

    def outbox_done(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self._tx() as db:
            db.executemany("UPDATE outbox SET done = 1 WHERE id = ?", [(i,) for i in ids])

    def oldest_outbox_ms(self, sku: str) -> int | None:
        return self.outbox_state(sku)[1]

    def outbox_state(self, sku: str) -> tuple[int, int | None]:
        """(rows the front has not applied yet, the oldest one's created_ms) of one sale."""
        row = self._conn().execute(
            "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE sku = ? AND done = 0", (sku,)
        ).fetchone()
        return int(row[0]), row[1]
