"""pre_deduct_ledger on real nodes sharing one real ledger file: the warehouse has the last word at payment."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from backend_util import assert_conserved, clients, concurrently, counters, wait_for, wait_past
from ledger_util import ledger_view, put, raw_redis, start_ledger_nodes

from reference_backend.ledger import SqliteLedger


@pytest.fixture(scope="module")
def ledger_env(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("ledger-nodes")
    path = base / "ledger.sqlite3"
    nodes = start_ledger_nodes(redis_server.url, path, base)
    yield nodes, path
    for node in nodes:
        node.stop()


@pytest.fixture
def env(redis_url, ledger_env):
    nodes, path = ledger_env
    return clients(nodes), path, redis_url


def confirming_by_hand(redis_url: str, sale: str, order_id: str, since_ms: int) -> None:
    """What a node leaves when it dies right after step 1 (prepare) of a payment."""
    r = raw_redis(redis_url)
    r.zrem(f"os:{{{sale}}}:holds", order_id)
    r.zadd(f"os:{{{sale}}}:confirming", {order_id: since_ms})
    r.hset(f"os:{{{sale}}}:o:{order_id}", "status", "confirming")
    r.close()


def test_a_node_without_a_ledger_refuses_the_strategy(backend):
    status, body = backend[0].client().request(
        "PUT", "/v1/sales/s", {"stock": 1, "hold_ttl_ms": 1000, "strategy": "pre_deduct_ledger"}, admin=True)
    assert (status, body["error"]["code"]) == (409, "no_ledger")  # well-formed, but not on this node
    assert body["error"]["message"].startswith("strategy: pre_deduct_ledger needs the warehouse ledger")


@pytest.mark.parametrize("stock", [1, 6])
def test_concurrent_orders_and_payments_at_the_boundary(env, stock):
    (a, b), path, _ = env
    body = put(a, "s", stock=stock)
    assert body["warehouse"] == {"stock": stock, "sold": 0, "in_transit": 0, "refused": 0}
    n = 3 * stock + 2
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", f"u{i}", 1) for i in range(n)])
    assert Counter(s for s, _ in results) == {201: stock, 409: n - stock}
    ids = [o["order_id"] for s, o in results if s == 201]
    pays = concurrently([lambda o=o, k=k: (a, b)[k % 2].pay("s", o, key=f"p{o}-{k}") for o in ids for k in range(3)])
    assert all(s == 200 for s, _ in pays), pays
    audit = assert_conserved(a, "s")
    assert audit["counters"]["sold"] == stock
    assert audit["ledger"]["sold"] == stock and audit["ledger"]["stock"] == stock
    assert sorted(r["order_id"] for r in audit["ledger"]["sold_orders"]) == sorted(ids)
    assert sorted(r["order_id"] for r in audit["sold"]) == sorted(ids)
    c, sold = ledger_view(path, "s")  # the file itself, read by another process
    assert c["sold"] == stock and sorted(sold) == sorted(ids)
    assert counters(b, "s")["warehouse"]["sold"] == stock


@pytest.mark.parametrize("strategy", ["pre_deduct_ledger", "pre_deduct"])
def test_redis_losing_acknowledged_payments_cannot_oversell_what_the_ledger_records(env, strategy):
    """A failover to a replica that missed the last writes: the front thinks the stock is back.

    pre_deduct (the control) then sells it again; pre_deduct_ledger's ledger refuses.
    """
    (a, b), path, redis_url = env
    put(a, "s", stock=3, strategy=strategy)
    first = [a.order("s", f"early{i}", 1)[1]["order_id"] for i in range(3)]
    assert all(b.pay("s", o)[0] == 200 for o in first)
    r = raw_redis(redis_url)
    r.set("os:{s}:avail", 3)  # the lost writes: three payments' deductions
    r.set("os:{s}:sold", 0)
    r.delete("os:{s}:sold_set")
    r.close()
    late = [o["order_id"] for s, o in concurrently([lambda i=i: (a, b)[i % 2].order("s", f"late{i}", 1)
                                                     for i in range(3)]) if s == 201]
    assert len(late) == 3  # the front really believes it has the units
    pays = concurrently([lambda i=i, o=o: (a, b)[i % 2].pay("s", o, key=f"pay-{o}") for i, o in enumerate(late)])
    acked = 3 + sum(1 for s, _ in pays if s == 200)
    if strategy == "pre_deduct":
        assert acked == 6  # the control: without the ledger, the loss turns into an oversell
        return
    assert acked == 3
    assert {(s, body["error"]["code"]) for s, body in pays} == {(409, "sold_out")}
    assert all("warehouse sold 3 of stock 3" in body["error"]["message"] for _, body in pays)
    for o in late:  # the holds went back, the orders are not paid
        assert a.get_order("s", o)[1]["status"] == "cancelled"
    c = counters(a, "s")
    assert (c["available"], c["held"], c["warehouse"]["sold"]) == (3, 0, 3)
    assert ledger_view(path, "s")[1] == {o: 1 for o in first}
    assert b.pay("s", late[0], key=f"pay-{late[0]}")[0] == 409  # a retry gets the same answer


def test_a_lost_confirm_is_paid_again_without_a_second_sale(env):
    (a, b), path, redis_url = env
    put(a, "s", stock=2)
    o = a.order("s", "u1", 2)[1]
    paid = a.pay("s", o["order_id"], key="k1")
    assert paid[0] == 200
    # Redis loses the confirmation: the order is a live hold again, the counters say so
    r = raw_redis(redis_url)
    r.hset(f"os:{{s}}:o:{o['order_id']}", mapping={"status": "held"})
    r.hdel(f"os:{{s}}:o:{o['order_id']}", "paid_ms")
    r.zadd("os:{s}:holds", {o["order_id"]: o["expires_ms"]})
    r.hdel("os:{s}:sold_set", o["order_id"])
    r.set("os:{s}:sold", 0)
    r.set("os:{s}:held", 2)
    r.close()
    again = b.pay("s", o["order_id"], key="k2")
    assert again[0] == 200 and again[1]["status"] == "paid"
    assert ledger_view(path, "s") == ({"stock": 2, "sold": 2, "in_transit": 0, "refused": 0}, {o["order_id"]: 2})
    assert assert_conserved(a, "s")["counters"]["sold"] == 2


def test_a_payment_cut_between_the_ledger_write_and_the_confirm_converges_on_retry(env):
    (a, b), path, redis_url = env
    put(a, "s", stock=1)
    o = a.order("s", "u1", 1)[1]["order_id"]
    confirming_by_hand(redis_url, "s", o, int(time.time() * 1000))
    led = SqliteLedger(path)
    assert led.reserve_sold("s", o, 1)  # step 2 happened, then the node died
    led.close()
    assert a.get_order("s", o)[1]["status"] == "confirming"
    status, body = a.cancel("s", o)  # a confirming payment is not cancellable
    assert (status, body["error"]["code"]) == (409, "already_paid")
    paid = b.pay("s", o, key="retry")
    assert paid[0] == 200 and paid[1]["status"] == "paid"
    assert ledger_view(path, "s")[0]["sold"] == 1
    audit = assert_conserved(a, "s")
    assert audit["ledger"]["sold_orders"] == [{"order_id": o, "qty": 1}]


def test_abandoned_confirming_payments_are_settled_by_the_nodes(env):
    (a, _), path, redis_url = env
    put(a, "s", stock=1)
    first = a.order("s", "u1", 1)[1]["order_id"]
    # the first payer's node died after step 1; nobody retries
    confirming_by_hand(redis_url, "s", first, int(time.time() * 1000) - 10_000)
    audit = a.audit("s")[1]
    assert [h["order_id"] for h in audit["holds"]] == [first]  # still a hold while confirming
    assert wait_for(lambda: a.get_order("s", first)[1]["status"] == "paid", timeout=5)
    assert ledger_view(path, "s")[0]["sold"] == 1
    # the second one finds the warehouse full: settled unpaid, its units back on the front
    r = raw_redis(redis_url)
    r.set("os:{s}:avail", 1)  # a lossy front again
    r.close()
    second = a.order("s", "u2", 1)[1]["order_id"]
    confirming_by_hand(redis_url, "s", second, int(time.time() * 1000) - 10_000)
    assert wait_for(lambda: a.get_order("s", second)[1]["status"] == "cancelled", timeout=5)
    c = counters(a, "s")
    assert (c["available"], c["held"], c["warehouse"]["sold"]) == (1, 0, 1)
    status, body = a.pay("s", second)
    assert (status, body["error"]["code"]) == (409, "sold_out")


def test_one_order_paid_by_many_at_once_is_sold_once(env):
    (a, b), path, _ = env
    put(a, "s", stock=5)
    o = a.order("s", "u1", 3)[1]["order_id"]
    results = concurrently([lambda k=k: (a, b)[k % 2].pay("s", o, key=f"k{k}") for k in range(12)])
    assert all(s == 200 for s, _ in results)
    assert len({body["paid_ms"] for _, body in results}) == 1
    assert ledger_view(path, "s") == ({"stock": 5, "sold": 3, "in_transit": 0, "refused": 0}, {o: 3})
    assert_conserved(b, "s")


def test_after_expiry_only_fresh_stock_and_only_through_the_ledger(env):
    (a, b), path, _ = env
    put(a, "s", stock=1, hold_ttl_ms=150)
    order = a.order("s", "u1", 1)[1]
    o = order["order_id"]
    assert wait_past(order["expires_ms"])
    status, body = b.pay("s", o)
    assert (status, body["error"]["code"]) == (409, "hold_expired")
    assert ledger_view(path, "s")[0]["sold"] == 0
    put(a, "f", stock=1, hold_ttl_ms=150, pay_after_expiry="fresh_stock")
    order = a.order("f", "u1", 1)[1]
    o = order["order_id"]
    assert wait_past(order["expires_ms"])
    status, body = b.pay("f", o)
    assert status == 200 and body["status"] == "paid"
    assert ledger_view(path, "f")[1] == {o: 1}
    assert_conserved(a, "f")


def test_a_late_payment_refused_by_the_ledger_gives_back_two_holds(env):
    """With fresh_stock a payment after expiry takes fresh units into a second (confirming) hold; the
    ledger refusing it gives those back too, so the order's released units are twice its qty (what
    stock_returned_once allows for pre_deduct_ledger, and only there)."""
    (a, b), path, redis_url = env
    put(a, "h", stock=1, hold_ttl_ms=150, pay_after_expiry="fresh_stock")
    first = a.order("h", "u0", 1)[1]["order_id"]
    assert b.pay("h", first)[0] == 200  # the warehouse sold its one unit
    r = raw_redis(redis_url)
    r.set("os:{h}:avail", 1)  # lost writes: the front believes the unit is back
    r.set("os:{h}:sold", 0)
    r.delete("os:{h}:sold_set")
    r.close()
    order = a.order("h", "u1", 1)[1]
    assert wait_past(order["expires_ms"])
    status, body = b.pay("h", order["order_id"])
    assert (status, body["error"]["code"]) == (409, "sold_out")  # the ledger refused the fresh hold
    assert a.get_order("h", order["order_id"])[1]["status"] == "cancelled"
    status, audit = a.audit("h")
    assert status == 200
    assert audit["released"] == [{"order_id": order["order_id"], "qty": 2}]  # the expired hold, then the fresh one
