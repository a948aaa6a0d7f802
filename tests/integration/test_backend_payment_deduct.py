"""payment_deduct (付款减库存) on real nodes and real Redis.

Its known behaviour: it may confirm (capture) more payments than there is
stock, but only if every extra payment is refunded and compensated. With the
sale's ``refunds: false`` the extras are kept and not shipped, and the checks
below (this file's own and the harness checker's) must fail.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from backend_util import assert_conserved, clients, concurrently, counters

from oversold.checker import check
from oversold.model.history import FinalState, Op
from reference_backend.keys import SaleKeys
from reference_backend.monitor import settle_stranded
from reference_backend.store import Store
from reference_backend.strategies import StrategyOptions
from reference_backend.strategies.payment_deduct import PaymentDeduct


def put(client, sale_id: str, **overrides):
    cfg = {"stock": 3, "hold_ttl_ms": 30_000, "strategy": "payment_deduct"} | overrides
    status, body = client.put_sale(sale_id, **cfg)
    assert status == 200, body
    return body


def unmade_good(audit: dict) -> list[str]:
    """Captured payments that neither shipped nor were refunded and compensated (must be none)."""
    sold = {row["order_id"] for row in audit["sold"]}
    refunded = {row["order_id"] for row in audit["refunds"]}
    compensated = {row["order_id"] for row in audit["compensations"]}
    return sorted(p["order_id"] for p in audit["payments"]
                  if p["order_id"] not in sold and not (p["order_id"] in refunded and p["order_id"] in compensated))


def pay_race(backend, stock: int, payers: int, **settings):
    """``payers`` orders, then all of them paid at once; the provider's latency lets every capture in first."""
    a, b = clients(backend)
    put(a, "s", stock=stock, payment_delay_ms=300, **settings)
    orders = [a.order("s", f"u{i}", 1)[1] for i in range(payers)]
    assert {o["status"] for o in orders} == {"ordered"} and all(o["expires_ms"] is None for o in orders)
    assert counters(a, "s")["available"] == stock  # nothing is held at order
    paid = concurrently([lambda o=o, i=i: (a, b)[i % 2].pay("s", o["order_id"], key=f"pay-{i}")
                         for i, o in enumerate(orders)])
    return a, b, orders, paid


def test_more_payments_than_stock_are_captured_and_every_extra_one_is_refunded(backend):
    stock, payers = 3, 12
    a, b, orders, paid = pay_race(backend, stock, payers)
    assert Counter(status for status, _ in paid) == {200: stock, 409: payers - stock}
    refused = [body["error"] for status, body in paid if status == 409]
    assert {e["code"] for e in refused} == {"sold_out"}
    made_good = [e for e in refused if e.get("refunded")]  # those refused before capture carry no refund
    assert made_good and all(e["compensation"]["kind"] == "coupon" for e in made_good)
    assert all(e["refund"]["amount_cents"] == 100 and e["compensation"]["value_cents"] == 500 for e in made_good)
    audit = assert_conserved(a, "s")
    # the payers were charged before any stock was taken ("100 pay, 1 ships"); on a very slow machine a
    # late payer may find the sale already sold out and be refused before capture: fewer, never fewer than
    # stock + 1 under a 300 ms provider latency
    captured = len(audit["payments"])
    assert stock < captured <= payers
    assert (len(audit["sold"]), len(audit["refunds"]), len(audit["compensations"])) == (stock, captured - stock,
                                                                                          captured - stock)
    assert {r["reason"] for r in audit["refunds"]} == {"sold_out"}
    assert unmade_good(audit) == []
    statuses = Counter(b.get_order("s", o["order_id"])[1]["status"] for o in orders)
    assert statuses == {"paid": stock, "refunded": captured - stock} | (
        {"ordered": payers - captured} if captured < payers else {})
    # a retry under the same key gets the first answer; without one, the order's final state
    first = next((i, body) for i, (status, body) in enumerate(paid) if status == 409 and body["error"].get("refunded"))
    assert a.pay("s", orders[first[0]]["order_id"], key=f"pay-{first[0]}") == (409, first[1])
    status, body = b.pay("s", orders[first[0]]["order_id"])
    assert (status, body["error"]["code"], body["error"]["refunded"]) == (409, "order_refunded", True)
    # and the harness checker agrees: made good, nothing oversold
    verdict = check(history(orders, paid), final_state(audit, stock))
    assert verdict.invariant("refunds_compensated").status == "pass"
    assert verdict.invariant("no_oversell").status == "pass"


def test_with_refunds_off_the_extra_payments_are_kept_and_the_checks_fail(backend):
    stock, payers = 2, 6
    a, b, orders, paid = pay_race(backend, stock, payers, refunds=False)
    refused = [body["error"] for status, body in paid if status == 409]
    assert len(refused) == payers - stock
    assert sum(1 for e in refused if e.get("refunded") is False) > 0  # captured, not shipped, not refunded
    audit = assert_conserved(b, "s")
    kept = len(audit["payments"]) - stock
    assert kept > 0 and audit["refunds"] == [] and audit["compensations"] == []
    assert len(unmade_good(audit)) == kept  # this file's own check fails...
    verdict = check(history(orders, paid), final_state(audit, stock))
    inv = verdict.invariant("refunds_compensated")  # ...and so does the checker's
    assert inv.status == "fail" and verdict.overall == "fail"
    assert inv.message == (f"Payments were not made good: {kept} captured payments ({kept} units) "
                           f"neither shipped nor were refunded.")
    assert Counter(a.get_order("s", o["order_id"])[1]["status"] for o in orders)["unfulfilled"] == kept


def test_a_double_click_is_captured_and_settled_once(backend):
    a, b = clients(backend)
    put(a, "s", stock=1, payment_delay_ms=100)
    order = a.order("s", "u1", 1)[1]["order_id"]
    results = concurrently([lambda k=k: (a, b)[k % 2].pay("s", order, key=f"click-{k}") for k in range(6)])
    assert {status for status, _ in results} == {200}
    assert len({body["paid_ms"] for _, body in results}) == 1
    audit = assert_conserved(a, "s")
    assert [p["order_id"] for p in audit["payments"]] == [order] and audit["refunds"] == []
    assert audit["counters"]["sold"] == 1


def test_sold_out_before_payment_takes_no_money_and_cancel_rules(backend):
    a, b = clients(backend)
    put(a, "s", stock=1)
    first, second, third = (a.order("s", f"u{i}", 1)[1]["order_id"] for i in range(3))
    assert a.pay("s", first)[0] == 200
    status, body = b.pay("s", second)
    assert (status, body["error"]["code"]) == (409, "sold_out") and "no payment was taken" in body["error"]["message"]
    assert b.get_order("s", second)[1]["status"] == "ordered"
    assert a.order("s", "u9", 1)[1]["error"]["code"] == "sold_out"  # nothing left to order either
    assert b.cancel("s", third)[1]["status"] == "cancelled"
    assert a.pay("s", third)[1]["error"]["code"] == "order_cancelled"
    assert a.cancel("s", first)[1]["error"]["code"] == "already_paid"
    audit = assert_conserved(a, "s")
    assert [p["order_id"] for p in audit["payments"]] == [first]
    c = audit["counters"]
    assert (c["available"], c["held"], c["sold"]) == (0, 0, 1)


def test_per_user_limit_counts_orders_atomically(backend):
    a, b = clients(backend)
    put(a, "s", stock=100, per_user_limit=2)
    results = concurrently([lambda i=i: (a, b)[i % 2].order("s", "greedy", 1) for i in range(50)])
    assert Counter(status for status, _ in results) == {201: 2, 409: 48}
    assert {body["error"]["code"] for status, body in results if status == 409} == {"limit_exceeded"}


def test_a_payment_stranded_between_its_steps_is_settled(backend, redis_url):
    """A node that dies after capture leaves the order 'captured'; the monitor settles it."""
    a, _ = clients(backend)
    put(a, "s", stock=1)
    order = a.order("s", "u1", 1)[1]["order_id"]
    late = a.order("s", "u2", 1)[1]["order_id"]

    async def strand_and_settle() -> int:
        store = Store.connect(redis_url)
        try:
            strategy = PaymentDeduct(store, StrategyOptions())
            for oid in (order, late):  # the capture step only, as a node killed mid-payment leaves it
                kind, _ = await strategy._step("capture", "s", oid, None)
                assert kind == b"c"
            assert await store.redis.zcard(SaleKeys("s").paying) == 2
            assert await settle_stranded(store, strategy, older_than_ms=60_000) == 0  # too young yet
            return await settle_stranded(store, strategy, older_than_ms=0)
        finally:
            await store.close()

    assert asyncio.run(strand_and_settle()) == 2
    assert a.get_order("s", order)[1]["status"] == "paid"
    assert a.get_order("s", late)[1]["status"] == "refunded"
    audit = assert_conserved(a, "s")
    assert unmade_good(audit) == [] and len(audit["payments"]) == 2


# --------------------------------------------------------------------------- for the checker


def history(orders: list[dict], paid: list[tuple[int, dict]]) -> list[Op]:
    """The test's own calls as a history (order ok, then pay ok or fail)."""
    ops: list[Op] = []
    t = 1.0
    for i, (o, (status, _)) in enumerate(zip(orders, paid)):
        user = o["user_id"]
        for op_id, op, outcome, code in ((f"{user}-o", "order", "ok", 201), (f"{user}-p", "pay",
                                         "ok" if status == 200 else "fail", status)):
            oid = o["order_id"] if op == "pay" else None
            ops.append(Op("invoke", op_id, t, user, user, "buyer", op, "s", 1, order_id=oid))
            ops.append(Op(outcome, op_id, t + 0.1, user, user, "buyer", op, "s", 1, order_id=o["order_id"],
                          status=code))
            t += 0.2
    return ops


def final_state(audit: dict, stock: int) -> FinalState:
    return FinalState(sale_id="s", stock=stock, hold_ttl_ms=30_000, counters=audit["counters"], audit=audit,
                      read_ms=audit["now_ms"], extra={"sale": {"strategy": "payment_deduct"}})



def test_refunded_counts_the_units_of_every_refund_and_a_reset_clears_it(backend, redis_url):
    """GET sale's ``refunded``: units of captured payments refunded unshipped plus admin refunds of sold orders."""
    a, b = clients(backend)
    put(a, "s", stock=2)
    assert counters(a, "s")["refunded"] == 0
    two = a.order("s", "u2", 2)[1]["order_id"]
    one = a.order("s", "u1", 1)[1]["order_id"]

    async def capture_both() -> None:  # both captured before either settles: one of them cannot ship
        store = Store.connect(redis_url)
        try:
            strategy = PaymentDeduct(store, StrategyOptions())
            for oid in (two, one):
                assert (await strategy._step("capture", "s", oid, None))[0] == b"c"
        finally:
            await store.close()

    asyncio.run(capture_both())
    assert a.pay("s", one)[0] == 200  # ships 1 of 2
    assert counters(b, "s")["refunded"] == 0
    status, body = b.pay("s", two)   # 2 asked, 1 left: refunded and compensated
    assert (status, body["error"]["refunded"]) == (409, True)
    assert counters(a, "s")["refunded"] == 2
    assert a.refund("s", one)[1]["status"] == "refunded"  # an admin refund of the sold order
    assert a.refund("s", one)[1]["status"] == "refunded"  # once only: the counter does not move again
    audit = assert_conserved(b, "s")
    c = counters(b, "s")
    assert c["refunded"] == audit["counters"]["refunded"] == sum(r["qty"] for r in audit["refunds"]) == 3
    assert (c["sold"], audit["refunded_sold"]) == (1, 1)  # the admin refund stays sold; refunded_sold has it
    put(a, "s", stock=2)  # a reset of the sale starts the count again
    assert counters(b, "s")["refunded"] == 0
    assert b.audit("s")[1]["counters"]["refunded"] == 0
