"""order_deduct (拍下减库存) on real nodes and real Redis: it never oversells, and hoarders drain it."""

from __future__ import annotations

from collections import Counter

import pytest
from backend_util import assert_conserved, clients, concurrently, counters, wait_past, wait_rounds


def put(client, sale_id: str, **overrides):
    # a short hold_ttl_ms on purpose: order_deduct must ignore it (nothing expires)
    cfg = {"stock": 10, "hold_ttl_ms": 100, "strategy": "order_deduct"} | overrides
    status, body = client.put_sale(sale_id, **cfg)
    assert status == 200, body
    assert (body["strategy"], body["available"], body["held"], body["sold"]) == ("order_deduct", cfg["stock"], 0, 0)
    return body


@pytest.mark.parametrize("stock", [1, 9])
def test_the_boundary_never_oversells(backend, stock):
    """3N+1 buyers at once take exactly N; every order paid four times at once sells N, once each."""
    a, b = clients(backend)
    put(a, "s", stock=stock)
    n = 3 * stock + 1
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 1) for i in range(n)])
    assert Counter(status for status, _ in results) == {201: stock, 409: n - stock}
    assert {body["error"]["code"] for status, body in results if status == 409} == {"sold_out"}
    orders = [body for status, body in results if status == 201]
    assert all(o["status"] == "held" and o["expires_ms"] is None for o in orders)
    ids = [o["order_id"] for o in orders]
    paid = concurrently([lambda o=o, k=k: (a, b)[k % 2].pay("s", o, key=f"p-{o}-{k}") for o in ids for k in range(4)])
    assert all(status == 200 for status, _ in paid), paid
    assert len({(body["order_id"], body["paid_ms"]) for _, body in paid}) == stock  # one payment per order
    audit = assert_conserved(b, "s")
    c = audit["counters"]
    assert (c["available"], c["held"], c["sold"]) == (0, 0, stock)
    assert sorted(row["order_id"] for row in audit["sold"]) == sorted(ids)
    assert a.order("s", "late", 1)[1]["error"]["code"] == "sold_out"


def test_hoarders_drain_it_and_nothing_ever_gives_the_stock_back(backend):
    a, b = clients(backend)
    put(a, "s", stock=6)
    hoards = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"hoarder{i}", 2) for i in range(3)])
    assert [status for status, _ in hoards] == [201, 201, 201]
    # well past the sale's hold_ttl_ms (100), and then three reaper rounds on each node
    assert wait_past(max(order["created_ms"] for _, order in hoards) + 100, margin_ms=100)
    assert wait_rounds([a, b], "reaper", 3)
    buyers = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"buyer{i}", 1) for i in range(10)])
    assert Counter(body["error"]["code"] for _, body in buyers) == {"sold_out": 10}  # the legit buyers get nothing
    audit = assert_conserved(a, "s")
    c = audit["counters"]
    assert (c["available"], c["held"], c["sold"]) == (0, 6, 0)
    assert sorted(h["user_id"] for h in audit["holds"]) == ["hoarder0", "hoarder1", "hoarder2"]
    assert all(h["expires_ms"] is None for h in audit["holds"])
    for _, order in hoards:
        assert b.get_order("s", order["order_id"])[1] | {"status": "held"} == order  # unchanged, still held
    # only a cancel gives stock back, and then a buyer gets it
    assert a.cancel("s", hoards[0][1]["order_id"], key="c1")[1]["status"] == "cancelled"
    assert counters(b, "s")["available"] == 2
    got = b.order("s", "buyer-late", 2)
    assert got[0] == 201
    assert a.pay("s", got[1]["order_id"])[0] == 200
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"], c["sold"]) == (0, 4, 2)


def test_pay_cancel_and_their_retries(backend):
    a, b = clients(backend)
    put(a, "s", stock=3)
    o1 = a.order("s", "u1", 1, key="o1")[1]["order_id"]
    assert b.order("s", "u1", 1, key="o1")[1]["order_id"] == o1  # a retry is the same order
    o2 = a.order("s", "u2", 2)[1]["order_id"]
    paid = b.pay("s", o1, key="p1")
    assert paid[0] == 200 and paid[1]["status"] == "paid" and paid[1]["expires_ms"] is None
    assert a.pay("s", o1, key="p1") == paid
    assert a.pay("s", o1)[1]["paid_ms"] == paid[1]["paid_ms"]
    status, body = a.cancel("s", o1)
    assert (status, body["error"]["code"]) == (409, "already_paid")
    assert b.cancel("s", o2)[1]["status"] == "cancelled"
    assert b.cancel("s", o2)[1]["status"] == "cancelled"  # a second cancel changes nothing
    status, body = a.pay("s", o2)
    assert (status, body["error"]["code"]) == (409, "order_cancelled")
    assert a.pay("s", "999")[1]["error"]["code"] == "unknown_order"
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"], c["sold"]) == (2, 0, 1)


def test_per_user_limit_is_part_of_the_deduction(backend):
    a, b = clients(backend)
    put(a, "s", stock=100, per_user_limit=3)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "greedy", 1) for i in range(50)])
    assert Counter(status for status, _ in results) == {201: 3, 409: 47}
    assert {body["error"]["code"] for status, body in results if status == 409} == {"limit_exceeded"}
    held = [body["order_id"] for status, body in results if status == 201]
    assert a.cancel("s", held[0])[0] == 200  # a cancelled order frees the allowance
    assert a.order("s", "greedy", 1)[0] == 201
    assert a.order("s", "greedy", 1)[1]["error"]["code"] == "limit_exceeded"
    assert_conserved(b, "s")
