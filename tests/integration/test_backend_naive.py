"""The naive strategy is the negative control: under concurrency it must oversell.

To make the oversell certain rather than lucky, these nodes widen the naive
race window (``--naive-delay-ms 1000``): a request sent while another one is
inside its window reads the same stale counter, whatever the machine's speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis
from backend_util import clients, concurrently, counters, wait_for

from oversold.orchestrate.nodes import start_nodes

WINDOW_MS = 1000


@pytest.fixture(scope="module")
def slow_nodes(redis_server, tmp_path_factory, admin_token):
    nodes = start_nodes(
        2, redis_server.url, admin_token=admin_token, log_dir=tmp_path_factory.mktemp("naive-nodes"),
        name_prefix="naive", extra_args=("--naive-delay-ms", str(WINDOW_MS)),
    )
    yield nodes
    for node in nodes:
        node.stop()


def staggered(first, second, entered: Callable[[], bool]):
    """Start ``first``, then ``second`` once ``entered()`` says first is inside its race window."""
    out: list = [None, None]

    def run(i: int, call) -> None:
        out[i] = call()

    t = threading.Thread(target=run, args=(0, first))
    t.start()
    assert wait_for(entered, timeout=WINDOW_MS / 2000)
    run(1, second)
    t.join()
    return out


@pytest.fixture
def raw(redis_url):
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def claimed(r: redis.Redis, op: str, key: str) -> Callable[[], bool]:
    """Whether a naive request of sale n under this Idempotency-Key has begun: it claims the key
    (SET NX) just before it reads, then sleeps through its window; the claim stays until it answers."""
    return lambda: r.exists(f"os:{{n}}:idem:{op}:{key}") == 1


def test_two_overlapping_buyers_oversell_a_single_unit(raw, slow_nodes):
    a, b = clients(slow_nodes)
    assert a.put_sale("n", stock=1, hold_ttl_ms=60_000, strategy="naive")[0] == 200
    o1, o2 = staggered(lambda: a.order("n", "u1", 1, key="o1"), lambda: b.order("n", "u2", 1),
                       claimed(raw, "order", "o1"))
    assert (o1[0], o2[0]) == (201, 201), (o1, o2)  # both read available == 1
    p1, p2 = staggered(lambda: a.pay("n", o1[1]["order_id"], key="p1"), lambda: b.pay("n", o2[1]["order_id"]),
                       claimed(raw, "pay", "p1"))
    assert (p1[0], p2[0]) == (200, 200), (p1, p2)  # both read sold == 0
    status, audit = a.audit("n")
    assert status == 200
    assert sum(row["qty"] for row in audit["sold"]) == 2 > audit["counters"]["stock"]


def test_a_crowd_oversells_and_breaks_conservation(redis_url, slow_nodes):
    a, b = clients(slow_nodes)
    stock = 10
    assert a.put_sale("n", stock=stock, hold_ttl_ms=60_000, strategy="naive")[0] == 200
    orders = concurrently([lambda i=i: (a, b)[i % 2].order("n", f"u{i}", 1) for i in range(40)])
    held = [body["order_id"] for status, body in orders if status == 201]
    assert len(held) > stock  # the buyers read available == 10 inside one another's window
    paid = concurrently([lambda o=o, i=i: (a, b)[i % 2].pay("n", o) for i, o in enumerate(held)])
    assert sum(status == 200 for status, _ in paid) > stock
    status, audit = b.audit("n")
    assert status == 200
    sold_units = sum(row["qty"] for row in audit["sold"])
    assert sold_units > stock, audit["counters"]
    c = counters(a, "n")
    # lost updates: the counters no longer add up to what was really held and sold
    assert c["available"] + c["held"] + c["sold"] != stock or c["sold"] != sold_units, c


def test_default_window_still_oversells_a_flash_crowd(backend):
    """The shipped 5 ms window, 60 buyers at once for 5 units: overlap is all but sure."""
    a, b = clients(backend)
    assert a.put_sale("n", stock=5, hold_ttl_ms=60_000, strategy="naive")[0] == 200
    orders = concurrently([lambda i=i: (a, b)[i % 2].order("n", f"u{i}", 1) for i in range(60)])
    assert sum(status == 201 for status, _ in orders) > 5  # in practice all 60 win
