"""The warehouse ledger (SQLite, WAL): the conditional write at the boundary, from threads and processes."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from reference_backend.ledger import (
    IN_TRANSIT,
    RECEIVE,
    RESTOCK,
    SOLD,
    UNSOLD,
    FrontEvent,
    NotInTransit,
    SqliteLedger,
    UnknownSale,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def ledger(path):
    led = SqliteLedger(path)
    yield led
    led.close()


def at_once(n: int, call) -> list:
    """Run call(i) for i in range(n) on n threads released together."""
    barrier = threading.Barrier(n)

    def run(i: int):
        barrier.wait(timeout=10)
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def assert_consistent(led: SqliteLedger, sku: str) -> None:
    c = led.counters(sku)
    assert c is not None
    assert 0 <= c.sold <= c.stock, c
    assert sum(q for _, q in led.sold_orders(sku)) == c.sold


def test_the_file_is_in_wal_mode_and_survives_a_reopen(path, ledger):
    ledger.create_sale("s", 5, "e1")
    assert ledger.reserve_sold("s", "1", 2)
    again = SqliteLedger(path)
    try:
        assert again.counters("s").as_dict() == {"stock": 5, "sold": 2, "in_transit": 0, "refused": 0}
        assert again.sold_orders("s") == [("1", 2)]
    finally:
        again.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


@pytest.mark.parametrize("stock", [0, 1, 37])
def test_many_threads_at_the_boundary_sell_exactly_the_stock(ledger, stock):
    ledger.create_sale("s", stock)
    n = stock + 40
    results = at_once(n, lambda i: ledger.reserve_sold("s", f"o{i}", 1))
    assert Counter(results) == ({True: stock, False: n - stock} if stock else {False: n})
    assert ledger.counters("s").sold == stock
    assert len(ledger.sold_orders("s")) == stock
    assert_consistent(ledger, "s")


def test_multi_unit_orders_never_split_the_last_units(ledger):
    ledger.create_sale("s", 10)
    results = at_once(12, lambda i: ledger.reserve_sold("s", f"o{i}", 3))
    assert results.count(True) == 3
    assert ledger.counters("s").sold == 9
    assert not ledger.reserve_sold("s", "late", 2)
    assert ledger.reserve_sold("s", "late", 1)
    assert ledger.counters("s").sold == 10


def test_reserve_is_idempotent_per_order_even_in_parallel(ledger):
    ledger.create_sale("s", 5)
    assert all(at_once(30, lambda i: ledger.reserve_sold("s", "same", 2)))
    assert ledger.counters("s").sold == 2 and ledger.sold_orders("s") == [("same", 2)]
    assert ledger.reserve_sold("s", "other", 3)
    # full now: a new order is refused, a retry of a sold one still converges to True
    assert not ledger.reserve_sold("s", "third", 1)
    assert ledger.reserve_sold("s", "same", 2)
    assert ledger.counters("s").sold == 5


def test_release_gives_units_back_once(ledger):
    ledger.create_sale("s", 2)
    assert ledger.reserve_sold("s", "a", 2)
    assert not ledger.reserve_sold("s", "b", 1)
    assert ledger.release("s", "a")
    assert not ledger.release("s", "a")
    assert not ledger.release("s", "never")
    assert ledger.counters("s").sold == 0
    assert ledger.reserve_sold("s", "b", 1)


def test_the_schema_itself_refuses_an_oversell(path, ledger):
    """Second line of defence: even a write that skips reserve_sold cannot commit sold > stock."""
    ledger.create_sale("s", 1)
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE sales SET sold = 2 WHERE sku = 's'")
    raw.close()


def test_unknown_sale(ledger):
    with pytest.raises(UnknownSale):
        ledger.reserve_sold("nope", "1", 1)
    with pytest.raises(UnknownSale):
        ledger.restock("nope", 1)
    assert ledger.counters("nope") is None and ledger.snapshot("nope") is None


def test_restock_in_transit_and_receive_queue_the_front_change(ledger):
    ledger.create_sale("s", 1, "e1")
    assert ledger.reserve_sold("s", "a", 1)
    assert not ledger.reserve_sold("s", "b", 1)
    assert ledger.restock("s", 2).stock == 3
    assert ledger.reserve_sold("s", "b", 1)  # restocked units sell at once in the warehouse
    c = ledger.in_transit("s", 5)
    assert (c.stock, c.in_transit) == (3, 5)
    assert not ledger.reserve_sold("s", "c", 2)  # in transit is not sellable yet
    c = ledger.receive("s", 4)
    assert (c.stock, c.in_transit) == (7, 1)
    with pytest.raises(NotInTransit, match="only 1 in transit"):
        ledger.receive("s", 2)
    assert ledger.counters("s").stock == 7  # a refused receive changed nothing
    rows = ledger.pending_outbox()
    assert [(r.kind, r.qty, r.epoch) for r in rows] == [(RESTOCK, 2, "e1"), (IN_TRANSIT, 5, "e1"), (RECEIVE, 4, "e1")]
    assert ledger.oldest_outbox_ms("s") == rows[0].created_ms
    ledger.outbox_done([rows[0].id, rows[1].id])
    assert [r.kind for r in ledger.pending_outbox()] == [RECEIVE]
    ledger.outbox_done([rows[2].id])
    assert ledger.oldest_outbox_ms("s") is None


def test_create_sale_resets_everything_of_that_sale_only(ledger):
    ledger.create_sale("s", 3, "e1")
    ledger.create_sale("t", 3, "e1")
    for sku in ("s", "t"):
        ledger.reserve_sold(sku, "a", 1)
        ledger.restock(sku, 1)
    ledger.create_sale("s", 9, "e2")
    assert ledger.counters("s").as_dict() == {"stock": 9, "sold": 0, "in_transit": 0, "refused": 0}
    assert ledger.counters("s").epoch == "e2"
    assert ledger.sold_orders("s") == [] and ledger.sold_orders("t") == [("a", 1)]
    assert [r.sku for r in ledger.pending_outbox()] == ["t"]
    assert ledger.sales() == [("s", "e2"), ("t", "e1")]


def ev(eid: str, kind: str, order: str, qty: int = 1, epoch: str = "e1") -> FrontEvent:
    return FrontEvent(eid, kind, order, qty, epoch)


def test_front_events_apply_once_in_the_same_transaction_as_their_id(ledger):
    ledger.create_sale("s", 2, "e1")
    out = ledger.apply_front_events("s", [ev("1-0", SOLD, "a"), ev("1-0", SOLD, "a"), ev("2-0", SOLD, "b"),
                                          ev("3-0", SOLD, "c"), ev("4-0", SOLD, "d", epoch="old")])
    assert out == ["applied", "duplicate", "applied", "refused", "stale"]
    assert ledger.counters("s").as_dict() == {"stock": 2, "sold": 2, "in_transit": 0, "refused": 1}
    assert ledger.refused_orders("s") == [("c", 1)]
    # a replay of the whole batch (a worker killed before it acknowledged) changes nothing
    assert ledger.apply_front_events("s", [ev("1-0", SOLD, "a"), ev("2-0", SOLD, "b")]) == ["duplicate"] * 2
    assert ledger.counters("s").sold == 2


def test_an_unsold_order_stays_unsold_whatever_order_its_events_come_in(ledger):
    ledger.create_sale("s", 5, "e1")
    assert ledger.apply_front_events("s", [ev("1-0", SOLD, "a", 2), ev("2-0", UNSOLD, "a", 2)]) == ["applied"] * 2
    assert ledger.counters("s").sold == 0
    assert ledger.apply_front_events("s", [ev("4-0", UNSOLD, "b", 2), ev("3-0", SOLD, "b", 2)]) == [
        "applied", "superseded"]
    assert ledger.counters("s").sold == 0 and ledger.sold_orders("s") == []
