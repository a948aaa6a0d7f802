"""The warehouse ledger (SQLite, WAL): the conditional write at the boundary, from threads and processes."""

from __future__ import annotations

import multiprocessing

import pytest

from reference_backend.ledger import (
    SqliteLedger,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def ledger(path):
    led = SqliteLedger(path)
    yield led
    led.close()


def assert_consistent(led: SqliteLedger, sku: str) -> None:
    c = led.counters(sku)
    assert c is not None
    assert 0 <= c.sold <= c.stock, c
    assert sum(q for _, q in led.sold_orders(sku)) == c.sold


def _hammer(path: str, worker: int, n: int, start) -> list[bool]:
    led = SqliteLedger(path)
    start.wait()
    try:
        return [led.reserve_sold("s", f"p{worker}-{i}", 1) for i in range(n)]
    finally:
        led.close()


def test_many_processes_on_one_file_never_pass_the_stock(path, ledger):
    ledger.create_sale("s", 70)
    ctx = multiprocessing.get_context("spawn")  # separate interpreters, separate SQLite connections
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            pending = [pool.apply_async(_hammer, (str(path), w, 30, start)) for w in range(4)]
            start.set()
            results = [r for p in pending for r in p.get(timeout=60)]
    assert results.count(True) == 70 and results.count(False) == 50
    assert ledger.counters("s").sold == 70
    assert_consistent(ledger, "s")


