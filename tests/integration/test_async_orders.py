"""Asynchronous orders on real nodes, real Redis and real order processor processes."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from backend_util import assert_conserved, clients, concurrently, counters, wait_for, wait_rounds
from ledger_util import raw_redis

from oversold.orchestrate.workers import start_order_worker

QUEUE = "os:{s}:order_queue"


@pytest.fixture
def env(backend, redis_url, tmp_path):
    started = []

    def start(name: str, *extra: str):
        child = start_order_worker(redis_url, name=name, log_dir=tmp_path,
                                   extra_args=("--interval-ms", "20", *extra))
        started.append(child)
        return child

    r = raw_redis(redis_url)
    yield clients(backend), r, start
    for child in started:
        child.stop()
    r.close()


def put(client, **overrides) -> dict:
    cfg = {"stock": 5, "hold_ttl_ms": 30_000, "strategy": "pre_deduct", "async_orders": True} | overrides
    status, body = client.request("PUT", "/v1/sales/s", cfg, admin=True)
    assert status == 200, body
    assert body["async_orders"] is True and body["queued"] == 0
    return body


def settled(client, order_ids, timeout: float = 5.0) -> dict[str, dict]:
    """Poll every order until none is pending; returns them by id."""
    found: dict[str, dict] = {}

    def done() -> bool:
        for oid in order_ids:
            status, body = client.get_order("s", oid)
            assert status == 200, body
            found[oid] = body
        return all(o["status"] != "pending" for o in found.values())

    assert wait_for(done, timeout=timeout), found
    return found


def test_an_order_is_accepted_at_once_and_polled_until_it_holds(env):
    (a, b), r, start = env
    put(a)
    status, order = a.order("s", "u1", 2, key="k1")
    assert status == 202
    assert (order["status"], order["expires_ms"], order["paid_ms"]) == ("pending", None, None)
    assert counters(b, "s")["queued"] == 1 and counters(b, "s")["held"] == 0  # nobody processes yet
    status, body = b.pay("s", order["order_id"])
    assert (status, body["error"]["code"]) == (409, "order_pending")
    # the nodes' own loops go round and leave the queue alone: only an order processor takes from it
    assert wait_rounds([a, b], "reaper", 2) and wait_rounds([a, b], "monitor", 2)
    assert a.get_order("s", order["order_id"])[1]["status"] == "pending"
    start("w1")
    held = settled(b, [order["order_id"]])[order["order_id"]]
    assert held["status"] == "held" and held["expires_ms"] == held["created_ms"] + 30_000
    assert b.pay("s", order["order_id"])[0] == 200
    assert_conserved(a, "s")
    c = counters(a, "s")
    assert (c["sold"], c["available"], c["queued"]) == (2, 3, 0)
    assert r.xlen(QUEUE) == 0  # processed entries are acknowledged and deleted


def test_orders_past_the_stock_are_rejected_with_their_code(env):
    (a, b), r, start = env
    put(a, stock=4)
    start("w1")
    start("w2")
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 1) for i in range(12)])
    assert Counter(s for s, _ in results) == {202: 12}
    ids = [body["order_id"] for _, body in results]
    assert len(set(ids)) == 12
    orders = settled(a, ids)
    assert Counter(o["status"] for o in orders.values()) == {"held": 4, "rejected": 8}
    rejected = [o for o in orders.values() if o["status"] == "rejected"]
    assert {o["error"]["code"] for o in rejected} == {"sold_out"}
    assert all("available" in o["error"]["message"] for o in rejected)
    status, body = b.pay("s", rejected[0]["order_id"])
    assert (status, body["error"]["code"]) == (409, "sold_out")
    assert_conserved(a, "s")
    c = counters(a, "s")
    assert (c["held"], c["available"], c["queued"]) == (4, 0, 0)


def test_a_retried_request_is_queued_once(env):
    (a, b), r, start = env
    put(a)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "u1", 1, key="same") for i in range(8)])
    assert {s for s, _ in results} == {202} and len({body["order_id"] for _, body in results}) == 1
    assert r.xlen(QUEUE) == 1
    start("w1")
    settled(a, [results[0][1]["order_id"]])
    assert counters(a, "s")["held"] == 1


def test_cancel_while_queued_withdraws_the_order(env):
    (a, b), r, start = env
    put(a)
    oid = a.order("s", "u1", 3)[1]["order_id"]
    status, body = b.cancel("s", oid)
    assert (status, body["status"]) == (200, "cancelled")
    start("w1")
    assert wait_for(lambda: r.xlen(QUEUE) == 0)
    assert a.get_order("s", oid)[1]["status"] == "cancelled"
    c = counters(a, "s")
    assert (c["available"], c["held"], c["queued"]) == (5, 0, 0)


def test_a_killed_processor_leaves_pending_orders_that_another_reclaims(env):
    (a, b), r, start = env
    put(a, stock=5)
    ids = [a.order("s", f"u{i}", 1)[1]["order_id"] for i in range(8)]
    # a slow processor: it takes all eight at once, then holds each 400 ms before applying it
    slow = start("slow", "--apply-delay-ms", "400", "--batch", "10")
    assert wait_for(lambda: r.xpending(QUEUE, "orders")["pending"] >= 6, timeout=5)
    slow.signal(signal.SIGKILL)
    slow.popen.wait(5)
    pending = r.xpending(QUEUE, "orders")
    assert pending["pending"] >= 6 and {c["name"] for c in pending["consumers"]} == {"slow"}
    assert any(o["status"] == "pending" for o in settled_now(a, ids))  # the dead one did not finish
    heir = start("heir", "--claim-idle-ms", "300")
    orders = settled(b, ids, timeout=8)
    assert Counter(o["status"] for o in orders.values()) == {"held": 5, "rejected": 3}  # none lost
    audit = assert_conserved(a, "s")
    assert sorted(h["order_id"] for h in audit["holds"]) == sorted(o for o in ids if orders[o]["status"] == "held")
    assert audit["counters"]["held"] == 5 and counters(b, "s")["queued"] == 0  # none applied twice
    assert r.xpending(QUEUE, "orders")["pending"] == 0 and r.xlen(QUEUE) == 0
    heir.stop()
    assert "claimed=0" not in heir.log_tail()


def settled_now(client, ids):
    return [client.get_order("s", oid)[1] for oid in ids]


def test_an_order_delivered_twice_is_applied_once(env):
    (a, b), r, start = env
    put(a, stock=5)
    oid = a.order("s", "u1", 2)[1]["order_id"]
    # a second entry for the same order (a redelivery), and a ghost consumer that took the
    # first entry and died without acknowledging it
    r.xadd(QUEUE, {"order": oid, "user": "u1", "qty": "2"})
    taken = r.xreadgroup("orders", "ghost", {QUEUE: ">"}, count=1)
    assert len(taken[0][1]) == 1
    start("w1", "--claim-idle-ms", "200")
    assert wait_for(lambda: r.xlen(QUEUE) == 0, timeout=5)
    assert a.get_order("s", oid)[1]["status"] == "held"
    c = assert_conserved(b, "s")["counters"]
    assert (c["held"], c["available"]) == (2, 3)
    assert r.hget("os:{s}:users", "u1") == "2"
