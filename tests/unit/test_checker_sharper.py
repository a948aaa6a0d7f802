"""The sharper invariants of issue 13, each failing on a hand-written history it used to pass.

orders_applied per order (not by queue length), single_payment over every reply under a key,
no_resurrection, and per_user_limits at every moment (not only at the end).
"""

from __future__ import annotations

from dataclasses import replace
from msgspec import structs

import pytest
from unit.test_checker import NOW, TTL, History, final, statuses

from oversold.adapters.settle import settle_and_read
from oversold.checker import check
from oversold.errors import BadInput
from oversold.model.history import Op, accepted_orders
from oversold.model.scenario_file import parse_scenario

# --------------------------------------------------------------------------- orders_applied, per order


def async_sale(orders: dict | None, queued: int = 0):
    """u1 and u2 were answered 202; u1's order became a hold and was paid; the queue is empty."""
    ops = []
    for i, user in enumerate(("u1", "u2"), 1):
        ops += [Op("invoke", f"{user}-1", i, user, user, "buyer", "order", "moutai", key=f"k{i}"),
                Op("ok", f"{user}-1", i + 0.1, user, user, "buyer", "order", "moutai", order_id=f"o{i}",
                   key=f"k{i}", status=202)]
    ops += [Op("invoke", "u1-2", 5, "u1", "u1", "buyer", "pay", "moutai", order_id="o1", key="p1"),
            Op("ok", "u1-2", 5.1, "u1", "u1", "buyer", "pay", "moutai", order_id="o1", key="p1", status=200)]
    f = final(3, [("o1", "u1", 1)], sale={"strategy": "pre_deduct", "async_orders": True})
    f = replace(f, counters={**f.counters, "async_orders": True, "queued": queued},
                extra={**f.extra, **({"orders": orders} if orders is not None else {})})
    return ops, f


def test_an_accepted_order_left_pending_with_an_empty_queue_fails_orders_applied():
    ops, f = async_sale({"o1": "paid", "o2": "pending"})
    v = check(ops, f)
    assert statuses(v)["orders_applied"] == "fail" and v.overall == "fail"
    inv = v.invariant("orders_applied")
    assert inv.message == ("Of 2 accepted (202) orders, 1 accepted orders are still pending: acknowledged (202) "
                           "and never applied nor rejected.")
    assert inv.counterexamples[0]["order_id"] == "o2" and inv.counterexamples[0]["order_op_id"] == "u2-1"
    assert check(*async_sale({"o1": "paid", "o2": "rejected"})).invariant("orders_applied").status == "pass"
    # o2 could not be read: neither sold nor held, so nobody can say
    assert check(*async_sale({"o1": "paid", "o2": None})).invariant("orders_applied").status == "unknown"
    # o1 could not be read either, but the audit lists it sold: applied
    assert check(*async_sale({"o1": None, "o2": "rejected"})).invariant("orders_applied").status == "pass"


def test_the_orders_read_at_the_end_are_parsed_strictly():
    ops, f = async_sale({"o1": "paid", "o2": 3})
    with pytest.raises(BadInput, match=r"final_state.extra.orders.o2: expected a status string or null"):
        check(ops, f)
    with pytest.raises(BadInput, match=r"final_state.extra.orders: expected an object"):
        check(ops, replace(f, extra={**f.extra, "orders": ["o1"]}))


class OrderReader:
    """A quiet sale whose orders can be read one by one (``o3`` cannot)."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def counters(self, sale_id):
        return {"stock": 3, "available": 3, "held": 0, "sold": 0, "queued": 0, "async_orders": True}

    def audit(self, sale_id):
        return {"now_ms": 1, "holds": [], "sold": []}

    def order_state(self, sale_id, order_id):
        self.read.append(order_id)
        return None if order_id == "o3" else {"order_id": order_id, "status": "pending"}


def test_settle_reads_every_accepted_order_once():
    ops = [Op("ok", f"u-{i}", i, "u", "u", "buyer", "order", "moutai", order_id=f"o{i}", status=202)
           for i in (1, 2, 3)]
    ops += [Op("ok", "u-9", 9, "u", "u", "buyer", "order", "moutai", order_id="o9", status=201),  # not queued
            Op("ok", "u-1", 10, "u", "u", "buyer", "order", "moutai", order_id="o1", status=202),  # seen again
            Op("ok", "x-1", 11, "u", "u", "buyer", "order", "other", order_id="o7", status=202)]  # another sale
    accepted = accepted_orders(ops, "moutai")
    assert accepted == ["o1", "o2", "o3"]
    reader = OrderReader()
    scenario = parse_scenario({"sale": {"id": "moutai", "stock": 3, "async_orders": True}})
    final = settle_and_read(reader, scenario, accepted=accepted, sleep=lambda s: None)
    assert reader.read == ["o1", "o2", "o3"]
    assert final.extra["orders"] == {"o1": "pending", "o2": "pending", "o3": None}
    assert "orders" not in settle_and_read(reader, scenario, sleep=lambda s: None).extra


# --------------------------------------------------------------------------- single_payment, every reply


def test_a_200_then_a_409_under_one_key_fails_single_payment():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", key="p1")
    h.pay("u1", "o1", key="p1", outcome="fail")  # the retry ran again and was refused: the first answer was lost
    v = check(h.ops, final(3, [("o1", "u1", 1)]))
    inv = v.invariant("single_payment")
    assert inv.status == "fail"
    assert inv.message == "Payments were applied more than once: 1 idempotency keys were answered two different ways."
    assert inv.counterexamples[0]["replies"] == [[200, None, "o1", 1], [409, "sold_out", None, 1]]


def test_unknown_and_never_sent_replies_under_one_key_are_not_a_second_answer():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", key="p1", outcome="info")  # a 503: unknown
    h.pay("u1", "o1", key="p1")
    h.ops.append(Op("invoke", "u1-9", 200.0, "u1", "u1", "buyer", "pay", "moutai", order_id="o1", key="p1"))
    h.ops.append(Op("fail", "u1-9", 200.1, "u1", "u1", "buyer", "pay", "moutai", order_id="o1", key="p1"))  # refused
    assert check(h.ops, final(3, [("o1", "u1", 1)])).invariant("single_payment").status == "pass"


# --------------------------------------------------------------------------- no_resurrection


def cancelled_then_paid(*, sale: dict, pay_after_s: float = 0.0, sold: bool = True):
    h = History()
    h.order("u1", "o1")
    h.call("cancel", "u1", order_id="o1")
    h.t += pay_after_s
    h.pay("u1", "o1")
    return h, final(3, [("o1", "u1", 1)] if sold else [], sale=sale)


def test_a_cancelled_order_that_is_paid_fails_no_resurrection():
    h, f = cancelled_then_paid(sale={"pay_after_expiry": "refuse"})
    v = check(h.ops, f)
    assert statuses(v)["no_resurrection"] == "fail"
    inv = v.invariant("no_resurrection")
    assert inv.message == ("1 orders came back after they ended: 1 cancelled ones were paid or sold, 0 refunded "
                           "ones paid again.")
    assert inv.counterexamples[0]["cancel_op_id"] == "u1-2" and inv.counterexamples[0]["ok_pay_op_ids"] == ["u1-3"]


def test_a_cancel_that_may_have_met_an_expired_hold_is_left_out_with_fresh_stock():
    # the cancel completed after the order's invoke + TTL: it may have found the hold expired, and
    # fresh_stock lets an expired order be paid from stock available then
    h, f = cancelled_then_paid(sale={"pay_after_expiry": "fresh_stock"}, pay_after_s=0.0)
    assert check(h.ops, f).invariant("no_resurrection").status == "fail"  # cancelled 1 s after the order: live
    h = History()
    h.order("u1", "o1")
    h.t += TTL / 1000
    h.call("cancel", "u1", order_id="o1")
    h.pay("u1", "o1")
    f = final(3, [("o1", "u1", 1)], sale={"pay_after_expiry": "fresh_stock"})
    assert check(h.ops, f).invariant("no_resurrection").status == "pass"


def test_a_cancelled_order_in_the_sold_set_fails_though_its_pay_was_unknown():
    h = History()
    h.order("u1", "o1")
    h.call("cancel", "u1", order_id="o1")
    h.pay("u1", "o1", outcome="info")
    v = check(h.ops, final(3, [("o1", "u1", 1)], sale={"pay_after_expiry": "refuse"}))
    inv = v.invariant("no_resurrection")
    assert inv.status == "fail" and inv.counterexamples[0]["in_audit_sold"] is True


def test_a_refunded_order_paid_again_under_a_new_key_fails_and_a_replay_does_not():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", key="p1")
    h.call("refund", "admin", order_id="o1", key="r1")
    h.pay("u1", "o1", key="p1")  # the stored first answer: fine
    f = final(3, [("o1", "u1", 1)], payments=[], refunds=[("o1", "u1", 1)], compensations=[("o1", "u1")])
    assert check(h.ops, f).invariant("no_resurrection").status == "pass"
    # another client's new payment is not timed against the admin's refund: the two clocks may disagree
    h.pay("u1", "o1", key="p2")
    assert check(h.ops, f).invariant("no_resurrection").status == "pass"
    # the admin pays it again as its buyer (the admin kind does): must be order_refunded
    t = h.t + 1
    h.ops += [Op("invoke", "admin-9", t, "admin", "u1", "admin", "pay", "moutai", order_id="o1", key="p3"),
              Op("ok", "admin-9", t + 0.1, "admin", "u1", "admin", "pay", "moutai", order_id="o1", key="p3",
                 status=200)]
    inv = check(h.ops, f).invariant("no_resurrection")
    assert inv.status == "fail" and inv.counterexamples[0]["after"] == "refund"
    assert inv.counterexamples[0]["ok_pay_op_ids"] == ["admin-9"]


# --------------------------------------------------------------------------- per_user_limits at every moment


def test_two_holds_of_one_account_at_once_fail_the_limit_though_the_end_is_within_it():
    h = History()
    # two parallel orders of one account: both acknowledged, the second while the first still held
    h.order("u1", "o1")
    h.order("u1", "o2")
    h.pay("u1", "o1")
    h.call("cancel", "u1", order_id="o2")
    f = final(3, [("o1", "u1", 1)], sale={"per_user_limit": 1})
    v = check(h.ops, f)
    inv = v.invariant("per_user_limits")
    assert statuses(v)["per_user_limits"] == "fail"
    assert [(e["when"], e["user_id"], e["units"], e["order_ids"]) for e in inv.counterexamples] == [
        ("at_once", "u1", 2, ["o1", "o2"])]
    # the same two orders from two clients (two clocks) are not compared moment by moment
    two = [structs.replace(o, process="other") if o.op_id == "u1-2" else o for o in h.ops]
    assert check(two, f).invariant("per_user_limits").status == "pass"


def test_holds_that_follow_each_other_are_within_the_limit():
    h = History()
    h.order("u1", "o1")
    h.call("cancel", "u1", order_id="o1")  # the cancel was invoked before the next order completed
    h.order("u1", "o2")
    h.t += TTL / 1000  # o2 lapsed by now
    h.order("u1", "o3")
    h.pay("u1", "o3")
    f = final(3, [("o3", "u1", 1)], sale={"per_user_limit": 1})
    assert check(h.ops, f).invariant("per_user_limits").status == "pass"
    # an order whose answer was lost does not count at a moment, only once the audit lists it
    h.order("u1", outcome="info")
    assert check(h.ops, f).invariant("per_user_limits").status == "pass"
    f2 = final(3, [("o3", "u1", 1)], [("o9", "u1", 1, NOW + 1000)], sale={"per_user_limit": 1})
    inv = check(h.ops, f2).invariant("per_user_limits")
    assert inv.status == "fail" and inv.counterexamples[0]["when"] == "end"


# --------------------------------------------------------------------------- the stock an admin changed


def test_restocks_and_receipts_in_the_history_raise_the_stock_the_invariants_use():
    h = History()
    for i in (1, 2, 3):
        h.buy(f"u{i}", f"o{i}")
    h.call("restock", "admin", qty=1)
    h.call("in_transit", "admin", qty=5)  # not stock until received
    h.call("receive", "admin", qty=1)
    f = final(2, [("o1", "u1", 1), ("o2", "u2", 1), ("o3", "u3", 1)])
    f = replace(f, counters={"available": 1, "held": 0, "sold": 3, "stock": 4})
    v = check(h.ops, f)
    assert v.overall == "pass" and v.totals.stock == 4
    # without the receipt the counters claim a unit of stock nobody gave the sale
    h2 = History()
    for i in (1, 2, 3):
        h2.buy(f"u{i}", f"o{i}")
    h2.call("restock", "admin", qty=1)
    assert statuses(check(h2.ops, f))["conservation"] == "fail"
    # a receipt of unknown outcome counts as far as the counters show it, never beyond what was asked
    h2.call("receive", "admin", qty=1, outcome="info")
    assert check(h2.ops, f).totals.stock == 4 and check(h2.ops, f).overall == "pass"
    too_much = replace(f, counters={**f.counters, "stock": 9, "available": 6})
    assert check(h2.ops, too_much).totals.stock == 3


# --------------------------------------------------------------------------- stock_returned_once


PRE_DEDUCT = {"strategy": "pre_deduct", "pay_after_expiry": "fresh_stock"}


def returns_sale(released: list[tuple[str, int]] | None, *, holds=(), sale: dict | None = PRE_DEDUCT):
    """u1 bought o1; u2's o2 and u3's o3 were cancelled; o4 of u4 is still held."""
    h = History()
    h.buy("u1", "o1")
    for user, oid in (("u2", "o2"), ("u3", "o3")):
        h.order(user, oid)
        h.call("cancel", user, order_id=oid)
    h.order("u4", "o4")
    for c in h.ops:  # holds answer 201
        if c.op == "order" and c.type == "ok":
            h.ops[h.ops.index(c)] = structs.replace(c, status=201)
    f = final(5, [("o1", "u1", 1)], [("o4", "u4", 1, NOW + 1000), *holds], sale=sale)
    if released is not None:
        f = replace(f, audit={**f.audit, "released": [{"order_id": o, "qty": q} for o, q in released]})
    return h.ops, f


def test_each_hold_gives_its_units_back_once():
    assert check(*returns_sale([("o2", 1), ("o3", 1)])).invariant("stock_returned_once").status == "pass"
    assert check(*returns_sale(None)).invariant("stock_returned_once").message.startswith("Not checked")


def test_a_hold_returned_twice_fails_though_the_totals_balance():
    # o2 came back twice and o3 never: available + held + sold still adds up to stock
    ops, f = returns_sale([("o2", 2)])
    v = check(ops, f)
    assert statuses(v)["conservation"] == "pass"
    inv = v.invariant("stock_returned_once")
    assert inv.status == "fail"
    assert inv.message == "1 holds gave their units back wrongly: 1 more than once, 0 while still held."
    assert [(e["problem"], e["order_id"], e["returned"]) for e in inv.counterexamples] == [("returned_twice", "o2", 2)]
    # a backend that records only some releases: nothing recorded is never a failure by itself
    assert check(*returns_sale([("o2", 1)])).invariant("stock_returned_once").status == "pass"


def test_a_hold_still_listed_that_gave_its_units_back_fails():
    ops, f = returns_sale([("o2", 1), ("o3", 1), ("o4", 1)])
    inv = check(ops, f).invariant("stock_returned_once")
    assert inv.status == "fail" and inv.counterexamples[0]["problem"] == "returned_while_held"
    with pytest.raises(BadInput, match=r"final_state.audit.released\[0\].qty: expected an integer"):
        check(ops, replace(f, audit={**f.audit, "released": [{"order_id": "o2", "qty": "1"}]}))


def test_a_second_hold_from_fresh_stock_may_give_back_again_where_one_can_exist():
    # pre_deduct_ledger with fresh_stock: o2 expired (given back), a payment took fresh units into a
    # confirming hold, the ledger refused it (given back again); o4 expired and is in its fresh hold now
    ledger = {"strategy": "pre_deduct_ledger", "pay_after_expiry": "fresh_stock"}
    v = check(*returns_sale([("o2", 2), ("o4", 1)], sale=ledger)).invariant("stock_returned_once")
    assert v.status == "pass", v.message
    assert check(*returns_sale([("o2", 3)], sale=ledger)).invariant("stock_returned_once").status == "fail"
    assert check(*returns_sale([("o4", 2)], sale=ledger)).invariant("stock_returned_once").status == "fail"
    # the same records where no second hold can exist: pre_deduct, or the ledger refusing late payments
    for sale in (PRE_DEDUCT, {**ledger, "pay_after_expiry": "refuse"}):
        assert check(*returns_sale([("o2", 2)], sale=sale)).invariant("stock_returned_once").status == "fail"
        assert check(*returns_sale([("o4", 1)], sale=sale)).invariant("stock_returned_once").status == "fail"
    # settings unknown (no sale sent, none counted): no false alarm
    assert check(*returns_sale([("o2", 2)], sale=None)).invariant("stock_returned_once").status == "pass"
