"""pre_deduct on real nodes and real Redis: the Lua boundary, expiry, payment, idempotency, cancel."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
import redis
from backend_util import assert_conserved, clients, concurrently, counters, wait_for, wait_past, wait_rounds


def put(client, sale_id: str, **overrides):
    cfg = {"stock": 10, "hold_ttl_ms": 30_000, "strategy": "pre_deduct"} | overrides
    status, body = client.put_sale(sale_id, **cfg)
    assert status == 200, body
    assert (body["available"], body["held"], body["sold"]) == (cfg["stock"], 0, 0)
    return body


def stop_reaping(redis_url: str, sale_id: str) -> None:
    """Take the sale off the reapers' list, so an expired hold stays unreaped until touched."""
    r = redis.Redis.from_url(redis_url)
    assert r.srem("os:sales", sale_id) == 1
    r.close()


@pytest.mark.parametrize("stock", [1, 7, 25])
def test_concurrent_orders_hold_exactly_the_stock(backend, stock):
    a, b = clients(backend)
    put(a, "s", stock=stock)
    n = 3 * stock + 1
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 1) for i in range(n)])
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: stock, 409: n - stock}, statuses
    assert {body["error"]["code"] for status, body in results if status == 409} == {"sold_out"}
    ids = [body["order_id"] for status, body in results if status == 201]
    assert len(set(ids)) == stock
    c = counters(b, "s")
    assert (c["available"], c["held"], c["sold"]) == (0, stock, 0)
    audit = assert_conserved(a, "s")
    assert sorted(h["order_id"] for h in audit["holds"]) == sorted(ids)


def test_multi_unit_orders_never_split_the_last_units(backend):
    a, b = clients(backend)
    put(a, "s", stock=10)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 3) for i in range(12)])
    assert Counter(s for s, _ in results) == {201: 3, 409: 9}
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"]) == (1, 9)
    assert a.order("s", "late", 2)[0] == 409
    assert a.order("s", "late", 1)[0] == 201
    assert assert_conserved(b, "s")["counters"]["available"] == 0


def test_concurrent_payments_sell_each_hold_once(backend):
    a, b = clients(backend)
    put(a, "s", stock=8)
    orders = [a.order("s", f"u{i}", 1)[1]["order_id"] for i in range(8)]
    # every order paid four times at once, under four different keys, through both nodes
    calls = [lambda o=o, k=k: (a, b)[k % 2].pay("s", o, key=f"pay-{o}-{k}") for o in orders for k in range(4)]
    results = concurrently(calls)
    assert all(status == 200 for status, _ in results), results
    paid_ms = {}
    for _, body in results:
        assert body["status"] == "paid"
        assert paid_ms.setdefault(body["order_id"], body["paid_ms"]) == body["paid_ms"]  # one payment each
    audit = assert_conserved(b, "s")
    assert audit["counters"]["sold"] == 8 and audit["counters"]["held"] == 0
    assert sorted(row["order_id"] for row in audit["sold"]) == sorted(orders)


def test_expired_holds_go_back_to_stock_through_the_reaper(backend):
    a, b = clients(backend)
    put(a, "s", stock=3, hold_ttl_ms=400)
    held = [a.order("s", f"u{i}", 1)[1] for i in range(3)]
    assert all(o["expires_ms"] - o["created_ms"] == 400 for o in held)
    first_expiry = min(o["expires_ms"] for o in held)
    last_expiry = max(o["expires_ms"] for o in held)
    # watch by Redis's own clock: nothing comes back before its hold expires, all of it soon after
    deadline = time.monotonic() + 5
    while True:
        c = counters(b, "s")
        if c["now_ms"] < first_expiry:
            assert (c["available"], c["held"]) == (0, 3), c
        if c["available"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert c["available"] == 3 and c["now_ms"] >= last_expiry, c
    for o in held:
        status, body = b.get_order("s", o["order_id"])
        assert (status, body["status"]) == (200, "expired")
    audit = assert_conserved(a, "s")
    assert audit["holds"] == [] and audit["sold"] == []
    assert a.order("s", "next", 3)[0] == 201  # the stock is really back


@pytest.mark.parametrize("reaped", [True, False])
def test_pay_after_expiry_is_refused_and_never_resurrects(backend, redis_url, reaped):
    a, b = clients(backend)
    put(a, "s", stock=1, hold_ttl_ms=150)
    if not reaped:
        stop_reaping(redis_url, "s")
    order = a.order("s", "u1", 1)[1]
    assert wait_past(order["expires_ms"])
    if reaped:
        assert wait_for(lambda: counters(a, "s")["held"] == 0)
    else:
        assert wait_rounds([a, b], "reaper", 2)  # both reapers went round twice since it expired ...
        assert counters(a, "s")["held"] == 1  # ... and truly did not come by
        assert b.get_order("s", order["order_id"])[1]["status"] == "held"
    status, body = b.pay("s", order["order_id"], key="p1")
    assert (status, body["error"]["code"]) == (409, "hold_expired")
    assert "order_id" in body["error"]["message"]
    assert b.pay("s", order["order_id"], key="p1") == (status, body)  # replayed as stored
    assert a.pay("s", order["order_id"])[0] == 409
    assert a.get_order("s", order["order_id"])[1]["status"] == "expired"
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"], c["sold"]) == (1, 0, 0)


@pytest.mark.parametrize("reaped", [True, False])
def test_pay_after_expiry_takes_fresh_stock_when_there_is_some(backend, redis_url, reaped):
    a, b = clients(backend)
    put(a, "s", stock=2, hold_ttl_ms=150, pay_after_expiry="fresh_stock")
    if not reaped:
        stop_reaping(redis_url, "s")
    order = a.order("s", "u1", 2)[1]
    assert wait_past(order["expires_ms"])
    if reaped:
        assert wait_for(lambda: counters(a, "s")["held"] == 0)
    else:
        assert wait_rounds([a, b], "reaper", 2)
        assert counters(a, "s")["held"] == 2
    status, body = b.pay("s", order["order_id"])
    assert status == 200 and body["status"] == "paid" and body["paid_ms"] >= order["expires_ms"]
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"], c["sold"]) == (0, 0, 2)
    assert b.pay("s", order["order_id"])[1]["paid_ms"] == body["paid_ms"]  # paid once
    assert assert_conserved(a, "s")["counters"]["sold"] == 2


def test_released_hold_taken_by_another_buyer_is_not_resurrected(backend):
    a, b = clients(backend)
    put(a, "s", stock=1, hold_ttl_ms=150, pay_after_expiry="fresh_stock")
    first = a.order("s", "u1", 1)[1]
    assert wait_for(lambda: counters(a, "s")["available"] == 1)
    second = b.order("s", "u2", 1)
    assert second[0] == 201
    status, body = a.pay("s", first["order_id"])
    assert (status, body["error"]["code"]) == (409, "sold_out")
    assert a.get_order("s", first["order_id"])[1]["status"] == "expired"
    assert b.pay("s", second[1]["order_id"])[0] == 200
    audit = assert_conserved(a, "s")
    assert [row["order_id"] for row in audit["sold"]] == [second[1]["order_id"]]


def test_late_payment_races_new_buyers_for_the_released_unit(backend):
    a, b = clients(backend)
    put(a, "s", stock=1, hold_ttl_ms=100, pay_after_expiry="fresh_stock")
    late = a.order("s", "late", 1)[1]
    assert wait_for(lambda: counters(a, "s")["available"] == 1)  # expired and reaped: the unit is up for grabs
    calls = [lambda: a.pay("s", late["order_id"])]
    calls += [lambda i=i: (a, b)[i % 2].order("s", f"new{i}", 1) for i in range(10)]
    results = concurrently(calls)
    winners = [r for r in results if r[0] in (200, 201)]
    assert len(winners) == 1, results  # one unit, one winner, whoever it is
    audit = assert_conserved(b, "s")
    c = audit["counters"]
    assert c["available"] == 0 and c["held"] + c["sold"] == 1


def test_order_retry_with_the_same_key_applies_once(backend):
    a, b = clients(backend)
    put(a, "s", stock=5)
    first = a.order("s", "u1", 2, key="order-1")
    assert first[0] == 201
    assert b.order("s", "u1", 2, key="order-1") == first  # through the other node too
    c = counters(a, "s")
    assert (c["available"], c["held"]) == (3, 2)
    # concurrent retries of one request under one key: one order
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "u2", 1, key="order-2") for i in range(12)])
    assert len({r[1]["order_id"] for r in results}) == 1 and all(r[0] == 201 for r in results)
    c = counters(a, "s")
    assert (c["available"], c["held"]) == (2, 3)
    # the same key for another request is a conflict, and changes nothing
    for other in (("u1", 1), ("u9", 2)):
        status, body = a.order("s", *other, key="order-1")
        assert (status, body["error"]["code"]) == (422, "idempotency_conflict")
    assert counters(b, "s")["held"] == 3
    assert_conserved(a, "s")


def test_a_refusal_is_stored_too(backend):
    a, b = clients(backend)
    put(a, "s", stock=1, hold_ttl_ms=100)
    a.order("s", "u0", 1)
    refused = b.order("s", "u1", 1, key="k")
    assert refused[0] == 409
    assert wait_for(lambda: counters(a, "s")["available"] == 1)
    assert a.order("s", "u1", 1, key="k") == refused  # the first answer, though stock is back
    assert counters(a, "s")["available"] == 1


def test_pay_retries_and_other_keys_pay_once(backend):
    a, b = clients(backend)
    put(a, "s", stock=3)
    o1 = a.order("s", "u1", 2)[1]["order_id"]
    o2 = a.order("s", "u2", 1)[1]["order_id"]
    paid = a.pay("s", o1, key="pay-1")
    assert paid[0] == 200 and paid[1]["status"] == "paid"
    assert b.pay("s", o1, key="pay-1") == paid
    again = b.pay("s", o1, key="pay-other")
    assert again[0] == 200 and again[1]["paid_ms"] == paid[1]["paid_ms"]
    c = counters(a, "s")
    assert (c["sold"], c["held"]) == (2, 1)
    status, body = a.pay("s", o2, key="pay-1")  # the key of another order's payment
    assert (status, body["error"]["code"]) == (422, "idempotency_conflict")
    assert counters(a, "s")["sold"] == 2
    audit = assert_conserved(b, "s")
    assert [(r["order_id"], r["qty"]) for r in audit["sold"]] == [(o1, 2)]


def test_cancel(backend):
    a, b = clients(backend)
    put(a, "s", stock=4)
    o1 = a.order("s", "u1", 3)[1]["order_id"]
    o2 = a.order("s", "u2", 1)[1]["order_id"]
    cancelled = b.cancel("s", o1, key="c1")
    assert cancelled[0] == 200 and cancelled[1]["status"] == "cancelled"
    assert a.cancel("s", o1, key="c1") == cancelled
    assert a.cancel("s", o1)[1]["status"] == "cancelled"  # a second cancel changes nothing
    c = counters(a, "s")
    assert (c["available"], c["held"]) == (3, 1)
    status, body = a.pay("s", o1)
    assert (status, body["error"]["code"]) == (409, "order_cancelled")
    assert a.pay("s", o2)[0] == 200
    status, body = b.cancel("s", o2)
    assert (status, body["error"]["code"]) == (409, "already_paid")
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"], c["sold"]) == (3, 0, 1)


def test_cancel_of_an_expired_hold_changes_nothing(backend):
    a, _ = clients(backend)
    put(a, "s", stock=1, hold_ttl_ms=100)
    o = a.order("s", "u1", 1)[1]["order_id"]
    assert wait_for(lambda: counters(a, "s")["available"] == 1)
    status, body = a.cancel("s", o)
    assert (status, body["status"]) == (200, "expired")
    c = assert_conserved(a, "s")["counters"]
    assert (c["available"], c["held"]) == (1, 0)


def test_per_user_limit_holds_under_parallel_requests(backend):
    a, b = clients(backend)
    put(a, "s", stock=100, per_user_limit=2)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "greedy", 1) for i in range(10)])
    assert Counter(s for s, _ in results) == {201: 2, 409: 8}
    assert {body["error"]["code"] for s, body in results if s == 409} == {"limit_exceeded"}
    first = next(body["order_id"] for s, body in results if s == 201)
    assert a.cancel("s", first)[0] == 200
    assert a.order("s", "greedy", 1)[0] == 201  # a cancelled hold frees the user's allowance
    assert a.order("s", "other", 2)[0] == 201
    assert_conserved(b, "s")


def test_conservation_holds_throughout_a_mixed_load(backend):
    a, b = clients(backend)
    put(a, "s", stock=30, hold_ttl_ms=250)
    stop = threading.Event()
    snapshots: list[dict] = []
    paid: set[str] = set()
    cancelled: list[str] = []
    abandoned: list[str] = []

    def buyer(seed: int) -> None:
        rng = random.Random(seed)
        client = clients(backend)[seed % 2]
        while not stop.is_set():
            status, body = client.order("s", f"u{seed}-{rng.randrange(5)}", rng.randint(1, 3))
            if status != 201:
                continue
            roll = rng.random()
            if roll < 0.5:
                if client.pay("s", body["order_id"], key=f"p-{body['order_id']}")[0] == 200:
                    paid.add(body["order_id"])
            elif roll < 0.7:
                client.cancel("s", body["order_id"])
                cancelled.append(body["order_id"])
            else:  # abandon the hold, the reaper takes it back
                abandoned.append(body["order_id"])

    def watcher() -> None:
        client = clients(backend)[0]
        while not stop.is_set():
            snapshots.append(counters(client, "s"))

    def every_path_taken() -> bool:
        """Payments, cancels, and abandoned holds the reaper took back, all under the watcher's eye."""
        reaped = sum(b.get_order("s", oid)[1]["status"] == "expired" for oid in abandoned[:2])
        return len(paid) >= 5 and len(cancelled) >= 1 and reaped == 2 and len(snapshots) > 50

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(8)] + [threading.Thread(target=watcher)]
    for t in threads:
        t.start()
    try:
        assert wait_for(every_path_taken, timeout=15), (len(paid), len(cancelled), len(abandoned), len(snapshots))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(snapshots) > 10
    for c in snapshots:
        assert c["available"] >= 0 and c["available"] + c["held"] + c["sold"] == 30, c
    assert wait_for(lambda: counters(a, "s")["held"] == 0)
    audit = assert_conserved(b, "s")
    assert {row["order_id"] for row in audit["sold"]} == paid
    assert 0 < audit["counters"]["sold"] <= 30
