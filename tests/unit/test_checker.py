"""The checker on hand-written histories, plus properties over histories from a correct model.

Pure unit tests: no Redis, no backend; the checker is a pure function.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs

from oversold.checker import INVARIANT_NAMES, Verdict, check
from oversold.errors import BadInput
from oversold.model.history import FinalState, Op

SKU = "moutai"
TTL = 5000
NOW = 1_000_000  # the backend's clock (ms) when the audit was read
STATUS = {"ok": 200, "fail": 409, "info": 503}


# --------------------------------------------------------------------------- builders


class History:
    """Builds a history: each call is an invoke and, unless ``outcome`` is None, a completion."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.t = 100.0
        self.n = 0

    def call(self, op: str, user: str, *, qty: int = 1, order_id: str | None = None, outcome: str | None = "ok",
             key: str | None = None, sale_id: str = SKU, done_order_id: str | None = None, done_qty: int | None = None,
             ) -> str:
        self.n += 1
        op_id = f"{user}-{self.n}"
        self.ops.append(Op("invoke", op_id, self.t, user, user, "buyer", op, sale_id, qty=qty, order_id=order_id, key=key))
        self.t += 0.5
        if outcome is not None:
            self.ops.append(Op(outcome, op_id, self.t, user, user, "buyer", op, sale_id,
                               qty=qty if done_qty is None else done_qty, order_id=order_id or done_order_id, key=key,
                               status=STATUS[outcome], code="sold_out" if outcome == "fail" else None,
                               latency_ms=500.0))
            self.t += 0.5
        return op_id

    def order(self, user: str, oid: str | None = None, *, qty: int = 1, outcome: str | None = "ok",
              key: str | None = None, sale_id: str = SKU) -> str:
        """An order; ``oid`` is the id its ok response names."""
        return self.call("order", user, qty=qty, outcome=outcome, key=key, sale_id=sale_id,
                         done_order_id=oid if outcome == "ok" else None)

    def pay(self, user: str, oid: str, *, qty: int = 1, outcome: str | None = "ok", key: str | None = None,
            done_qty: int | None = None) -> str:
        return self.call("pay", user, qty=qty, order_id=oid, outcome=outcome, key=key, done_qty=done_qty)

    def buy(self, user: str, oid: str, qty: int = 1) -> tuple[str, str]:
        return self.order(user, oid, qty=qty), self.pay(user, oid, qty=qty)


def final(stock: int, sold: list[tuple[str, str, int]], holds: list[tuple[str, str, int, int]] = (), *,
          now_ms: int = NOW, counters: Any = "auto", audit: bool = True,
          payments: list[tuple[str, str, int]] | None = None, refunds: list[tuple[str, str, int]] | None = None,
          compensations: list[tuple[str, str]] | None = None, sale: dict[str, Any] | None = None) -> FinalState:
    """A final state; ``sold`` is (order, user, qty) in paid order, ``holds`` adds expires_ms.

    ``counters="auto"`` computes correct counters from the audit. ``payments``,
    ``refunds`` (order, user, qty) and ``compensations`` (order, user) become the
    audit's lists when given; ``sale`` becomes ``extra["sale"]``.
    """
    sold_rows = [{"order_id": o, "user_id": u, "qty": q, "paid_ms": now_ms - 10_000 + 10 * i}
                 for i, (o, u, q) in enumerate(sold)]
    hold_rows = [{"order_id": o, "user_id": u, "qty": q, "created_ms": e - TTL, "expires_ms": e}
                 for o, u, q, e in holds]
    s, h = sum(r["qty"] for r in sold_rows), sum(r["qty"] for r in hold_rows)
    if counters == "auto":
        counters = {"available": stock - s - h, "held": h, "sold": s}
    body = {"sale_id": SKU, "now_ms": now_ms, "counters": counters, "sold": sold_rows, "holds": hold_rows}
    if payments is not None:
        body["payments"] = [{"order_id": o, "user_id": u, "qty": q, "amount_cents": 100 * q, "captured_ms": now_ms}
                            for o, u, q in payments]
    if refunds is not None:
        body["refunds"] = [{"order_id": o, "user_id": u, "qty": q, "amount_cents": 100 * q, "reason": "sold_out",
                            "refunded_ms": now_ms} for o, u, q in refunds]
    if compensations is not None:
        body["compensations"] = [{"order_id": o, "user_id": u, "kind": "coupon", "value_cents": 500,
                                  "issued_ms": now_ms} for o, u in compensations]
    return FinalState(
        sale_id=SKU, stock=stock, hold_ttl_ms=TTL, counters=counters, read_ms=now_ms,
        audit=body if audit else None, extra={"sale": sale} if sale is not None else {},
    )


def statuses(v: Verdict) -> dict[str, str]:
    return {inv.name: inv.status for inv in v.invariants}


ALL_PASS = {name: "pass" for name in INVARIANT_NAMES}


def only(**changes: str) -> dict[str, str]:
    return {**ALL_PASS, **changes}


def clean_sale() -> tuple[History, FinalState]:
    """Stock 3, five buyers: three buy, two are turned away sold out."""
    h = History()
    for i in (1, 2, 3):
        h.buy(f"u{i}", f"o{i}")
    h.order("u4", outcome="fail")
    h.order("u5", outcome="fail")
    return h, final(3, [("o1", "u1", 1), ("o2", "u2", 1), ("o3", "u3", 1)])


# --------------------------------------------------------------------------- a clean sale


def test_clean_sale_passes_with_exact_totals():
    h, f = clean_sale()
    v = check(h.ops, f)
    assert v.overall == "pass"
    assert statuses(v) == ALL_PASS
    t = v.totals
    assert (t.stock, t.sold, t.oversold_units, t.acked_paid, t.info_ops, t.ops) == (3, 3, 0, 3, 0, 8)
    assert (t.demand, t.ok_ops, t.fail_ops, t.records) == (5, 6, 2, 16)
    assert (t.unmatched_completions, t.unfinished_ops, t.other_sale_records) == (0, 0, 0)
    assert v.invariant("sells_out").message == "Demand 5 exceeded stock 3 and 3 units sold."
    assert all(inv.counterexamples == () for inv in v.invariants)


def test_docstring_usage_example():
    final_state = FinalState(sale_id="moutai", stock=1, hold_ttl_ms=5000,
                             counters={"available": 0, "held": 0, "sold": 1},
                             audit={"now_ms": 9000, "holds": [],
                                    "sold": [{"order_id": "o1", "user_id": "u1", "qty": 1, "paid_ms": 8000}]})
    ops = [Op("invoke", "u1-1", 1.0, "u1", "u1", "buyer", "order", "moutai"),
           Op("ok", "u1-1", 1.1, "u1", "u1", "buyer", "order", "moutai", order_id="o1"),
           Op("invoke", "u1-2", 1.2, "u1", "u1", "buyer", "pay", "moutai", order_id="o1"),
           Op("ok", "u1-2", 1.3, "u1", "u1", "buyer", "pay", "moutai", order_id="o1")]
    v = check(ops, final_state)
    assert v.overall == "pass" and v.totals.oversold_units == 0


# --------------------------------------------------------------------------- each invariant failing


def test_oversell_in_audit_names_the_latest_paid_orders():
    h = History()
    for i in (1, 2, 3, 4):
        h.buy(f"u{i}", f"o{i}")
    # The audit lists o4 before o3 but o3 was paid last: blame goes by paid time, not list order.
    f = final(2, [("o1", "u1", 1), ("o2", "u2", 1), ("o4", "u4", 1), ("o3", "u3", 1)])
    v = check(h.ops, f)
    assert v.overall == "fail"
    # a real oversell also breaks conservation: available went to -2; without refund lists in the
    # audit, nobody can tell whether the excess was made good
    assert statuses(v) == only(no_oversell="fail", conservation="fail", refunds_compensated="unknown")
    assert v.invariant("refunds_compensated").message == (
        "The audit lists 4 units sold of stock 2 but has no payments / refunds / compensations list, so it cannot "
        "show the excess was refunded and compensated.")
    inv = v.invariant("no_oversell")
    assert inv.message == "Sold 4 units of stock 2, 2 oversold (acknowledged paid 4, audited sold 4)."
    assert [(c["order_id"], c["user_id"], c["qty"], c["sold_through"]) for c in inv.counterexamples] == [
        ("o4", "u4", 1, 3), ("o3", "u3", 1, 4)]
    assert inv.counterexamples[1]["order_op_id"] == "u3-5" and inv.counterexamples[1]["pay_op_ids"] == ["u3-6"]
    assert v.totals.oversold_units == 2
    assert "available is negative (-2)" in v.invariant("conservation").message


def test_oversell_seen_only_by_clients_fails_from_the_history():
    h = History()
    for i in (1, 2, 3):
        h.buy(f"u{i}", f"o{i}", qty=2)
    # The backend acknowledged three pays of 2 units but only recorded two of them.
    f = final(4, [("o1", "u1", 2), ("o2", "u2", 2)])
    v = check(h.ops, f)
    assert statuses(v) == only(no_oversell="fail", no_lost_sale="fail")
    inv = v.invariant("no_oversell")
    assert inv.message == "Sold 6 units of stock 4, 2 oversold (acknowledged paid 6, audited sold 4)."
    (ce,) = inv.counterexamples
    assert (ce["order_id"], ce["user_id"], ce["qty"], ce["paid_time"], ce["pay_op_ids"]) == ("o3", "u3", 2, 105.5, ["u3-6"])
    assert v.totals.oversold_units == 2 and v.totals.acked_paid == 6


def test_lost_sale_names_the_acknowledged_payment():
    h = History()
    for i in (1, 2, 3):
        h.buy(f"u{i}", f"o{i}")
    f = final(3, [("o1", "u1", 1), ("o2", "u2", 1)])
    v = check(h.ops, f)
    assert v.overall == "fail"
    assert statuses(v) == only(no_lost_sale="fail")
    inv = v.invariant("no_lost_sale")
    assert inv.message == "1 of 3 acknowledged paid orders (1 units) are missing from the audited sold set."
    (ce,) = inv.counterexamples
    assert (ce["order_id"], ce["user_id"], ce["ok_pay_op_id"], ce["order_op_id"], ce["paid_time"]) == (
        "o3", "u3", "u3-6", "u3-5", 105.5)


def test_phantom_sale_is_an_order_no_client_placed():
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    f = final(3, [("o1", "u1", 1), ("o2", "u2", 1), ("o9", "u7", 1)])
    v = check(h.ops, f)
    assert statuses(v) == only(no_phantom_sale="fail")
    inv = v.invariant("no_phantom_sale")
    assert inv.message.startswith("1 of 3 audited sold orders (1 units) match no client order")
    assert inv.counterexamples == ({"order_id": "o9", "user_id": "u7", "qty": 1, "paid_ms": NOW - 10_000 + 20,
                                    "pay_op_ids": []},)


def test_a_failed_order_does_not_explain_a_sale():
    h = History()
    h.order("u1", outcome="fail")  # fail means it definitely did not happen
    v = check(h.ops, final(1, [("o1", "u1", 1)]))
    assert v.invariant("no_phantom_sale").status == "fail"


def test_conservation_fails_when_counters_do_not_add_up():
    h, f = clean_sale()
    f = final(3, [("o1", "u1", 1), ("o2", "u2", 1), ("o3", "u3", 1)],
              counters={"available": 1, "held": 0, "sold": 3})
    v = check(h.ops, f)
    assert statuses(v) == only(conservation="fail")
    inv = v.invariant("conservation")
    assert inv.message == "Conservation is broken: available 1 + held 0 + sold 3 = 4, not stock 3."
    assert inv.counterexamples == ({"available": 1, "held": 0, "sold": 3, "stock": 3, "audited_sold": 3},)


def test_conservation_fails_when_counters_disagree_with_the_audit():
    h = History()
    h.buy("u1", "o1")
    f = final(3, [("o1", "u1", 1)], counters={"available": 1, "held": 0, "sold": 2})
    v = check(h.ops, f)
    assert statuses(v) == only(conservation="fail")
    assert v.invariant("conservation").message == (
        "Conservation is broken: the counters say sold 2 but the audit lists 1 units sold.")


def test_conservation_fails_on_a_changed_stock_counter():
    h = History()
    h.buy("u1", "o1")
    f = final(3, [("o1", "u1", 1)], counters={"available": 2, "held": 0, "sold": 1, "stock": 4})
    assert check(h.ops, f).invariant("conservation").status == "fail"


def test_overdue_hold_fails_holds_returned():
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    h.order("u3", "o3")  # held, never paid; the reaper should have returned it
    expires = NOW - 2000 - 1  # one millisecond past TTL plus the 2000 ms grace
    v = check(h.ops, final(3, [("o1", "u1", 1), ("o2", "u2", 1)], [("o3", "u3", 1, expires)]))
    assert statuses(v) == only(holds_returned="fail")
    inv = v.invariant("holds_returned")
    assert inv.message == "Holds were not returned: 1 holds (1 units) outlived their TTL plus 2000 ms grace."
    (ce,) = inv.counterexamples
    assert (ce["order_id"], ce["user_id"], ce["overdue_ms"], ce["expires_ms"], ce["order_op_id"]) == (
        "o3", "u3", 2001, expires, "u3-5")


def test_hold_exactly_at_ttl_plus_grace_is_not_overdue_and_grace_is_a_parameter():
    h = History()
    h.order("u1", "o1")
    f = final(1, [], [("o1", "u1", 1, NOW - 2000)])
    assert check(h.ops, f).invariant("holds_returned").status == "pass"
    assert check(h.ops, f, grace_ms=1999).invariant("holds_returned").status == "fail"


def test_held_counter_must_match_the_listed_holds():
    h = History()
    h.order("u1", "o1")
    f = final(2, [], [("o1", "u1", 1, NOW + 1000)], counters={"available": 2, "held": 0, "sold": 0})
    v = check(h.ops, f)
    assert statuses(v) == only(holds_returned="fail")
    inv = v.invariant("holds_returned")
    assert inv.message == "Holds were not returned: the held counter is 0 but the listed holds add up to 1."
    assert inv.counterexamples == ({"counters_held": 0, "listed_held": 1},)


def test_two_ok_pays_of_one_order_that_disagree_fail_single_payment():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1")
    h.pay("u1", "o1", done_qty=2)
    v = check(h.ops, final(2, [("o1", "u1", 1)]))
    assert statuses(v) == only(single_payment="fail")
    inv = v.invariant("single_payment")
    assert inv.message == "Payments were applied more than once: 1 orders have ok pays that disagree on quantity."
    assert inv.counterexamples == ({"order_id": "o1", "user_ids": ["u1"], "op_ids": ["u1-2", "u1-3"],
                                    "times": [101.5, 102.5], "qtys": [1, 2]},)


def test_repeat_ok_pays_that_agree_are_idempotent():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", key="p1")
    h.pay("u1", "o1", key="p1")  # a retry with the same key
    h.pay("u1", "o1", key="p2")  # a double-click with a fresh key
    v = check(h.ops, final(1, [("o1", "u1", 1)]))
    assert v.overall == "pass"
    assert v.totals.acked_paid == 1 and v.totals.acked_paid_orders == 1


def test_one_idempotency_key_two_orders_fails_single_payment():
    h = History()
    h.order("u1", "o1", key="k1")
    h.order("u1", "o2", key="k1")  # the retry was applied again: a second hold
    f = final(3, [], [("o1", "u1", 1, NOW + 1000), ("o2", "u1", 1, NOW + 1000)])
    v = check(h.ops, f)
    assert statuses(v) == only(single_payment="fail")
    inv = v.invariant("single_payment")
    assert inv.message == "Payments were applied more than once: 1 idempotency keys were answered two different ways."
    assert inv.counterexamples == ({"op": "order", "key": "k1", "replies": [[200, None, "o1", 1], [200, None, "o2", 1]],
                                    "order_ids": ["o1", "o2"], "user_ids": ["u1", "u1"],
                                    "op_ids": ["u1-1", "u1-2"], "times": [100.5, 101.5]},)


def test_an_order_listed_twice_in_the_audit_fails_single_payment():
    h = History()
    h.buy("u1", "o1")
    v = check(h.ops, final(3, [("o1", "u1", 1), ("o1", "u1", 1)]))
    assert statuses(v) == only(single_payment="fail")
    assert v.invariant("single_payment").counterexamples == (
        {"order_id": "o1", "audit_entries": 2, "order_op_id": "u1-1", "pay_op_ids": ["u1-2"]},)


def stuck_sale() -> tuple[History, FinalState]:
    """Stock 3, demand 5: one sale, two live holds nobody pays, two buyers turned away."""
    h = History()
    h.buy("u1", "o1")
    h.order("u2", "o2")
    h.order("u3", "o3", qty=1)
    h.order("u4", outcome="fail")
    h.order("u5", outcome="fail")
    return h, final(3, [("o1", "u1", 1)], [("o2", "u2", 1, NOW + 500), ("o3", "u3", 1, NOW + 900)])


def test_stock_stuck_in_holds_fails_sells_out():
    h, f = stuck_sale()
    v = check(h.ops, f)
    assert statuses(v) == only(sells_out="fail")
    inv = v.invariant("sells_out")
    assert inv.message == "Demand 5 exceeded stock 3 but only 1 units sold: 2 left unsold, of which 2 are stuck in holds."
    assert [(c["order_id"], c["user_id"], c["expires_ms"]) for c in inv.counterexamples] == [
        ("o2", "u2", NOW + 500), ("o3", "u3", NOW + 900)]


def test_sells_out_not_checked_when_not_expected_or_demand_within_stock():
    h, f = stuck_sale()
    v = check(h.ops, f, expect_sell_out=False)
    assert v.overall == "pass"
    assert v.invariant("sells_out").message == "Not checked: the scenario does not expect a sell-out."
    h = History()
    h.buy("u1", "o1")
    v = check(h.ops, final(3, [("o1", "u1", 1)]))
    assert v.invariant("sells_out").status == "pass"
    assert v.invariant("sells_out").message == "Not checked: demand 1 did not exceed stock 3."


def cut_short_sale(refused_after_return: bool) -> tuple[History, FinalState]:
    """Stock 3, demand 5: one buyer paid, two holds nobody paid lapsed back to stock (TTL 5 s), two
    buyers were refused while those holds were live; optionally one more refused after they lapsed."""
    h = History()
    h.buy("u1", "o1")
    h.order("u2", "o2")
    h.order("u3", "o3")
    h.order("u4", outcome="fail")
    h.order("u5", outcome="fail")
    if refused_after_return:
        h.t += (TTL + 2000) / 1000 + 1  # the two holds are back on sale by now, past TTL and grace
        h.order("u6", outcome="fail")
    return h, final(3, [("o1", "u1", 1)])


def test_a_run_cut_short_before_the_lapsed_holds_could_sell_is_undecided_not_failed():
    h, f = cut_short_sale(refused_after_return=False)
    v = check(h.ops, f)
    assert statuses(v) == only(sells_out="unknown")
    assert v.overall == "inconclusive"  # exit 2, never the 1 of a violation
    inv = v.invariant("sells_out")
    assert inv.message.startswith("Not decided: the run ended before the sale could sell out. Demand 5 exceeded "
                                  "stock 3 and 1 units sold; the other 2 were back on sale once their holds lapsed")
    assert "not a safety violation" in inv.message


def test_an_order_refused_after_the_units_were_back_on_sale_fails_sells_out():
    h, f = cut_short_sale(refused_after_return=True)
    v = check(h.ops, f)
    assert statuses(v) == only(sells_out="fail")
    inv = v.invariant("sells_out")
    assert inv.message == ("Demand 6 exceeded stock 3 but only 1 units sold: 2 left unsold and back on sale, yet 1 "
                           "later orders for no more than that were refused as sold out.")
    assert inv.counterexamples[0]["refused_orders"] == 1


def test_refusals_for_a_limit_are_not_sold_out_refusals():
    h, f = cut_short_sale(refused_after_return=False)
    h.t += (TTL + 2000) / 1000 + 1
    n = h.order("u7", outcome="fail")
    h.ops[-1] = structs.replace(h.ops[-1], code="limit_exceeded")
    assert h.ops[-1].op_id == n
    assert check(h.ops, f).invariant("sells_out").status == "unknown"


# --------------------------------------------------------------------------- unknown outcomes widen


def test_info_pay_in_the_sold_set_passes():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", outcome="info")
    v = check(h.ops, final(1, [("o1", "u1", 1)]))
    assert v.overall == "pass"
    assert v.totals.info_ops == 1 and v.totals.acked_paid == 0 and v.totals.sold == 1
    assert v.invariant("no_lost_sale").message == (
        "All 0 acknowledged paid orders are in the audited sold set; of 1 orders with only unknown-outcome pays, "
        "1 were sold and 0 were not.")


def test_info_pay_not_in_the_sold_set_passes():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", outcome="info")
    v = check(h.ops, final(1, [], [("o1", "u1", 1, NOW + 100)]), expect_sell_out=False)
    assert v.overall == "pass"
    assert v.invariant("no_lost_sale").message.endswith("0 were sold and 1 were not.")


def test_ok_pay_not_in_the_sold_set_fails_even_next_to_info_pays():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", outcome="info")
    h.pay("u1", "o1", outcome="ok")  # the retry was acknowledged: now it must be sold
    v = check(h.ops, final(1, [], [("o1", "u1", 1, NOW + 100)]), expect_sell_out=False)
    assert statuses(v) == only(no_lost_sale="fail")
    assert [c["order_id"] for c in v.invariant("no_lost_sale").counterexamples] == ["o1"]


def test_invoke_without_completion_is_info():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", outcome=None)  # the client died mid-request
    v = check(h.ops, final(1, [("o1", "u1", 1)]))
    assert v.overall == "pass"
    assert (v.totals.info_ops, v.totals.unfinished_ops, v.totals.acked_paid) == (1, 1, 0)
    assert "of 1 orders with only unknown-outcome pays, 1 were sold" in v.invariant("no_lost_sale").message


def test_unknown_order_of_the_same_user_explains_one_sale_only():
    h = History()
    h.order("u7", outcome="info")  # the response was lost: which id it got, nobody knows
    v = check(h.ops, final(2, [("o8", "u7", 1)]), expect_sell_out=False)
    assert v.overall == "pass"
    assert v.invariant("no_phantom_sale").message == (
        "All 1 audited sold orders were placed by clients (1 explained only by an unknown-outcome order of the same user).")
    # one unknown order cannot explain two sales; the later paid one is the phantom
    v = check(h.ops, final(2, [("o8", "u7", 1), ("o9", "u7", 1)]), expect_sell_out=False)
    assert [c["order_id"] for c in v.invariant("no_phantom_sale").counterexamples] == ["o9"]
    # nor can another user's, or one of another quantity, or an unfinished order of another user
    h.order("u8", qty=2, outcome=None)
    v = check(h.ops, final(3, [("o9", "u8", 1)]), expect_sell_out=False)
    assert v.invariant("no_phantom_sale").status == "fail"


def test_unfinished_order_explains_a_sale():
    h = History()
    h.order("u7", outcome=None)
    v = check(h.ops, final(1, [("o8", "u7", 1)]))
    assert v.invariant("no_phantom_sale").status == "pass"
    assert v.totals.info_ops == 1


def test_completion_without_invoke_is_tolerated_used_and_counted():
    h, f = clean_sale()
    ops = [op for op in h.ops if not (op.op_id == "u3-6" and op.type == "invoke")]
    v = check(ops, f)
    assert v.overall == "pass"
    assert (v.totals.unmatched_completions, v.totals.acked_paid, v.totals.ops) == (1, 3, 8)


def test_duplicate_records_are_counted_and_the_first_wins():
    h, f = clean_sale()
    v = check(h.ops + h.ops[:2], f)
    assert v.overall == "pass" and v.totals.duplicate_records == 2 and v.totals.ops == 8


def test_of_two_conflicting_completions_the_earlier_wins_whatever_the_input_order():
    h = History()
    h.order("u1", "o1")
    h.pay("u1", "o1", outcome="ok")
    late = structs.replace(h.ops[-1], type="info", time=h.ops[-1].time + 5, status=503)
    f = final(1, [], [("o1", "u1", 1, NOW + 100)], counters={"available": 0, "held": 1, "sold": 0})
    for ops in (h.ops + [late], [late] + list(reversed(h.ops))):
        v = check(ops, f)
        # the ok pay (earlier) is what counts, so the missing sale is a lost sale
        assert v.invariant("no_lost_sale").status == "fail"
        assert (v.totals.acked_paid, v.totals.duplicate_records) == (1, 1)


# --------------------------------------------------------------------------- missing final state


def test_missing_audit_is_inconclusive_and_says_which_invariants_are_unknown():
    h, _ = clean_sale()
    v = check(h.ops, final(3, [("o1", "u1", 1), ("o2", "u2", 1), ("o3", "u3", 1)], audit=False))
    assert v.overall == "inconclusive"
    assert statuses(v) == {"no_oversell": "pass", "no_lost_sale": "unknown", "no_phantom_sale": "unknown",
                           "conservation": "unknown", "holds_returned": "unknown", "single_payment": "unknown",
                           "unique_order_ids": "pass",
                           "sells_out": "unknown", "orders_applied": "pass", "refunds_compensated": "unknown",
                           "per_user_limits": "pass",
                           "ledger_no_oversell": "pass", "stock_converges": "pass", "no_resurrection": "pass",
                           "stock_returned_once": "pass"}
    assert v.invariant("no_oversell").message == (
        "Client view only (the audit is missing): acknowledged paid 3 plus 0 units with unknown-outcome pays "
        "is within stock 3.")
    # sold comes from the counters when the audit is missing (never "sold None" beside a count)
    assert v.totals.sold == 3 and v.totals.held is None and v.totals.oversold_units == 0


def test_missing_audit_with_info_pays_that_could_oversell_is_unknown():
    h = History()
    h.buy("u1", "o1")
    h.order("u2", "o2")
    h.pay("u2", "o2", outcome="info")
    v = check(h.ops, final(1, [], audit=False, counters=None))
    inv = v.invariant("no_oversell")
    assert inv.status == "unknown"
    assert inv.message == ("The audit is missing; acknowledged paid 1 is within stock 1, but 1 more units have "
                           "unknown-outcome pays and could push it over.")
    assert [c["order_id"] for c in inv.counterexamples] == ["o2"]
    assert v.overall == "inconclusive"


def test_missing_audit_still_fails_on_a_history_oversell():
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    v = check(h.ops, final(1, [], audit=False, counters=None))
    assert v.overall == "fail"
    assert v.invariant("no_oversell").status == "fail"
    assert v.totals.oversold_units == 1 and v.totals.sold is None


def test_missing_audit_fails_when_the_counters_show_an_oversell():
    h = History()
    h.buy("u1", "o1")
    v = check(h.ops, final(1, [], audit=False, counters={"available": -1, "held": 0, "sold": 2}))
    assert v.invariant("no_oversell").status == "fail"
    assert v.invariant("no_oversell").counterexamples == ({"counters_sold": 2, "stock": 1},)


def test_missing_counters_fall_back_to_the_audit_snapshot_or_are_unknown():
    h, f = clean_sale()
    v = check(h.ops, replace(f, counters=None))
    assert v.overall == "pass"  # the audit carries its own counters
    audit = dict(f.audit, counters=None)
    v = check(h.ops, replace(f, counters=None, audit=audit))
    assert v.invariant("conservation").status == "unknown"
    assert v.invariant("conservation").message == "The sale's counters are missing, so conservation cannot be checked."
    assert v.invariant("holds_returned").status == "unknown"
    assert v.overall == "inconclusive"


def test_malformed_audit_is_bad_input_not_an_empty_sale():
    h, f = clean_sale()
    with pytest.raises(BadInput, match=r"audit\.sold\[0\]\.qty"):
        check(h.ops, replace(f, audit=dict(f.audit, sold=[{"order_id": "o1", "qty": "1"}])))
    with pytest.raises(BadInput, match=r"audit\.holds"):
        check(h.ops, replace(f, audit={"sold": []}))


# --------------------------------------------------------------------------- shape, order, determinism


def test_to_dict_has_the_results_json_shape():
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    d = check(h.ops, final(1, [("o1", "u1", 1), ("o2", "u2", 1)])).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert list(d) == ["verdict", "totals", "invariants"]
    assert d["verdict"] == "fail"
    assert {"stock", "sold", "oversold_units", "acked_paid", "info_ops", "ops"} <= set(d["totals"])
    assert [i["name"] for i in d["invariants"]] == list(INVARIANT_NAMES)
    for inv in d["invariants"]:
        assert list(inv) == ["name", "status", "message", "counterexamples"]
        assert isinstance(inv["counterexamples"], list)
    oversell = d["invariants"][0]
    assert oversell["status"] == "fail" and oversell["counterexamples"][0]["order_id"] == "o2"


def test_ops_order_does_not_matter():
    h, f = stuck_sale()
    h.pay("u2", "o2", outcome="info")
    expected = check(h.ops, f)
    for seed in range(5):
        ops = list(h.ops)
        random.Random(seed).shuffle(ops)
        assert check(ops, f) == expected
    assert check(list(reversed(h.ops)), f).to_dict() == expected.to_dict()


def test_check_is_deterministic():
    h, f = stuck_sale()
    a, b = check(h.ops, f), check(h.ops, f)
    assert a == b and a.to_dict() == b.to_dict()
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_other_sales_are_ignored_but_counted():
    h, f = clean_sale()
    for i in range(5):  # an oversell on another sale is not this sale's problem
        h.order(f"x{i}", f"x{i}", sale_id="other")
        h.pay(f"x{i}", f"x{i}", outcome="ok")
    h.ops = [structs.replace(op, sale_id="other") if op.user_id.startswith("x") else op for op in h.ops]
    v = check(h.ops, f)
    assert v.overall == "pass"
    assert v.totals.other_sale_records == 20 and v.totals.ops == 8


def test_every_counterexample_is_kept_and_the_message_claims_no_cut():
    v = check([], final(1000, [(f"o{i:04}", "ghost", 1) for i in range(900)]), expect_sell_out=False)
    inv = v.invariant("no_phantom_sale")
    assert inv.status == "fail"
    assert [c["order_id"] for c in inv.counterexamples] == [f"o{i:04}" for i in range(900)]
    assert len(v.to_dict()["invariants"][2]["counterexamples"]) == 900
    assert "showing" not in inv.message and "900" in inv.message


# --------------------------------------------------------------------------- properties over a correct model


@dataclass
class Model:
    """A correct pre-deduct backend and its clients, recording the history as it goes.

    Orders take stock into a hold with a TTL, pays confirm a hold, cancels and a
    timely reaper return it. Any request can lose its response (``info``) or the
    client can die (no completion), before or after the backend applied it.
    Retries reuse the idempotency key and get the stored first response.
    """

    stock: int
    avail: int = 0
    ms: int = 1_000_000
    t: float = 1000.0
    n: int = 0
    holds: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)  # oid -> user, qty, created, expires
    sold: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # oid -> user, qty, paid_ms
    known: list[str] = field(default_factory=list)  # order ids clients can pay or cancel
    ordered: dict[str, int] = field(default_factory=dict)  # oid -> qty, of every order placed
    stored: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)  # (op, key) -> response
    last: tuple[str, str, int, str | None, str] | None = None
    ops: list[Op] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.avail = self.stock

    def reap(self) -> None:
        for oid, (_, qty, _, expires) in sorted(self.holds.items()):
            if expires < self.ms:
                del self.holds[oid]
                self.avail += qty

    def apply(self, op: str, user: str, qty: int, oid: str | None) -> tuple[str, str | None]:
        """What the backend does; returns ('ok' | 'fail', order id)."""
        if op == "order":
            if qty > self.avail:
                return "fail", None
            self.n += 1
            oid = f"o{self.n}"
            self.avail -= qty
            self.holds[oid] = (user, qty, self.ms, self.ms + TTL)
            self.ordered[oid] = qty
            return "ok", oid
        assert oid is not None
        if op == "pay":
            if oid in self.sold:
                return "ok", oid  # paying a paid order is idempotent
            if oid in self.holds:
                u, q, _, _ = self.holds.pop(oid)
                self.sold[oid] = (u, q, self.ms)
                return "ok", oid
            return "fail", oid  # hold_expired / cancelled
        if oid in self.holds:  # cancel
            self.avail += self.holds.pop(oid)[1]
            return "ok", oid
        return "fail", oid

    def step(self, action: str, user: str, qty: int, pick: int, delivery: str, advance: int) -> None:
        self.ms += advance
        self.reap()
        if action == "retry" and self.last is not None:
            op, user, qty, oid, key = self.last
        elif action in ("pay", "cancel") and self.known:
            op, oid = action, self.known[pick % len(self.known)]
            qty = self.qty_of(oid)
            key = f"k{len(self.ops)}"
        else:
            op, oid, key = "order", None, f"k{len(self.ops)}"
        self.last = (op, user, qty, oid, key)
        op_id = f"{user}-{len(self.ops)}"
        self.ops.append(Op("invoke", op_id, self.t, user, user, "buyer", op, SKU, qty=qty, order_id=oid, key=key))
        self.t += 0.25
        applied = delivery in ("ok", "info_after", "hang_after")
        if applied:
            if (op, key) not in self.stored:
                self.stored[(op, key)] = self.apply(op, user, qty, oid)
            result, rid = self.stored[(op, key)]
        if applied and result == "ok" and op == "order" and rid not in self.known and (delivery == "ok" or pick % 2):
            # Half the clients whose order response was lost find the order later (as by reading their
            # account) and pay it: a sale the checker can only explain by that unknown-outcome order.
            self.known.append(rid)
        if delivery == "ok":
            self.ops.append(Op(result, op_id, self.t, user, user, "buyer", op, SKU, qty=qty, order_id=rid or oid,
                               key=key, status=200 if result == "ok" else 409))
        elif delivery in ("info_before", "info_after"):
            self.ops.append(Op("info", op_id, self.t, user, user, "buyer", op, SKU, qty=qty, order_id=oid, key=key,
                               status=503))
        self.t += 0.25

    def qty_of(self, oid: str) -> int:
        return self.sold[oid][1] if oid in self.sold else self.ordered[oid]

    def final(self, *, audit: bool = True) -> FinalState:
        self.reap()
        h = sum(q for _, q, _, _ in self.holds.values())
        s = sum(q for _, q, _ in self.sold.values())
        counters = {"available": self.avail, "held": h, "sold": s, "stock": self.stock}
        body = {
            "sale_id": SKU, "now_ms": self.ms, "counters": counters,
            "sold": [{"order_id": o, "user_id": u, "qty": q, "paid_ms": p} for o, (u, q, p) in self.sold.items()],
            "holds": [{"order_id": o, "user_id": u, "qty": q, "created_ms": c, "expires_ms": e}
                      for o, (u, q, c, e) in self.holds.items()],
        }
        return FinalState(SKU, self.stock, TTL, counters=counters, audit=body if audit else None, read_ms=self.ms)


steps = st.lists(st.tuples(
    st.sampled_from(["order", "order", "pay", "pay", "cancel", "retry"]),
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.integers(1, 3),
    st.integers(0, 50),
    st.sampled_from(["ok", "ok", "ok", "info_before", "info_after", "hang_before", "hang_after"]),
    st.integers(0, 3000),
), max_size=40)


def run_model(stock: int, plan: list) -> Model:
    m = Model(stock)
    for s in plan:
        m.step(*s)
    return m


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8), steps, st.randoms(use_true_random=False))
def test_clean_histories_from_a_correct_model_pass(stock, plan, rnd):
    m = run_model(stock, plan)
    f = m.final()
    v = check(m.ops, f, expect_sell_out=False)
    assert v.overall == "pass", v.to_dict()
    assert v.totals.oversold_units == 0
    assert v.totals.sold == sum(q for _, q, _ in m.sold.values())
    # Liveness holds exactly when demand fits the stock or everything sold.
    demand = sum(op.qty for op in m.ops if op.type == "invoke" and op.op == "order")
    live = check(m.ops, f).invariant("sells_out")
    if demand <= stock or v.totals.sold >= stock:
        assert live.status == "pass"
    elif v.totals.held:
        assert live.status == "fail"  # units stuck in holds
    else:  # units back on sale: failed only where a later order was refused as sold out
        assert live.status in ("fail", "unknown")
        assert (live.status == "fail") == ("later orders for no more than that were refused" in live.message)
    shuffled = list(m.ops)
    rnd.shuffle(shuffled)
    assert check(shuffled, f, expect_sell_out=False) == v


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 8), steps, st.integers(1, 4))
def test_a_generated_oversell_fails_and_names_the_excess(stock, plan, extra):
    m = run_model(stock, plan)
    sold_before = sum(q for _, q, _ in m.sold.values())
    # A broken backend sells single units past the stock line, each to a client that asked and was acknowledged.
    added = []
    for i in range(stock - sold_before + extra):
        m.ms += 1
        oid = f"x{i}"
        for op in ("order", "pay"):
            op_id = f"bot-{len(m.ops)}"
            m.ops.append(Op("invoke", op_id, m.t, "bot", "bot", "scalper", op, SKU,
                            order_id=oid if op == "pay" else None))
            m.ops.append(Op("ok", op_id, m.t + 0.1, "bot", "bot", "scalper", op, SKU, order_id=oid, status=200))
            m.t += 0.25
        m.sold[oid] = ("bot", 1, m.ms)
        m.avail -= 1
        added.append(oid)
    v = check(m.ops, m.final())
    assert v.overall == "fail"
    inv = v.invariant("no_oversell")
    assert inv.status == "fail"
    assert v.totals.oversold_units == extra
    assert [c["order_id"] for c in inv.counterexamples] == added[-extra:]
    assert v.invariant("conservation").status == "fail"  # available went negative


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 8), steps)
def test_without_an_audit_the_checker_never_passes(stock, plan):
    m = run_model(stock, plan)
    v = check(m.ops, m.final(audit=False))
    assert v.overall == "inconclusive"
    assert v.invariant("no_lost_sale").status == "unknown"


# --------------------------------------------------------------------------- refunds, compensations, limits


def payment_deduct_sale(*, refunded: bool = True, compensated: bool = True) -> tuple[History, FinalState]:
    """Stock 2, four payers captured at once: o1 and o2 ship, o3 and o4 are refunded (409 sold_out)."""
    h = History()
    for i in (1, 2, 3, 4):
        h.order(f"u{i}", f"o{i}")
    for i in (1, 2, 3, 4):
        h.pay(f"u{i}", f"o{i}", outcome="ok" if i <= 2 else "fail")
    extra = [("o3", "u3", 1), ("o4", "u4", 1)]
    return h, final(2, [("o1", "u1", 1), ("o2", "u2", 1)],
                    payments=[(f"o{i}", f"u{i}", 1) for i in (1, 2, 3, 4)],
                    refunds=extra if refunded else [],
                    compensations=[(o, u) for o, u, _ in extra] if compensated and refunded else [],
                    sale={"strategy": "payment_deduct"})


def test_payments_beyond_stock_that_were_refunded_and_compensated_pass():
    h, f = payment_deduct_sale()
    v = check(h.ops, f)
    assert v.overall == "pass" and statuses(v) == ALL_PASS
    assert v.invariant("refunds_compensated").message == (
        "4 captured payments: 2 shipped, 2 refunded; 2 refunds, all compensated; net sold 2 is within stock 2.")
    assert v.invariant("no_oversell").message == "Acknowledged paid 2 and audited sold 2 are within stock 2."
    assert (v.totals.captured_payments, v.totals.refunded_sold_units, v.totals.oversold_units) == (4, 0, 0)


def test_captured_payments_that_were_neither_shipped_nor_refunded_fail():
    h, f = payment_deduct_sale(refunded=False)
    v = check(h.ops, f)
    assert v.overall == "fail"
    assert statuses(v) == only(refunds_compensated="fail")  # nothing shipped past stock: no_oversell holds
    inv = v.invariant("refunds_compensated")
    assert inv.message == ("Payments were not made good: 2 captured payments (2 units) neither shipped nor were "
                           "refunded.")
    assert [(c["problem"], c["order_id"], c["user_id"], c["qty"]) for c in inv.counterexamples] == [
        ("captured_not_refunded", "o3", "u3", 1), ("captured_not_refunded", "o4", "u4", 1)]
    assert inv.counterexamples[0]["pay_op_ids"] == ["u3-7"]


def test_a_refund_without_compensation_fails():
    h, f = payment_deduct_sale(compensated=False)
    inv = check(h.ops, f).invariant("refunds_compensated")
    assert inv.status == "fail"
    assert inv.message == "Payments were not made good: 2 refunds have no compensation."
    assert [c["order_id"] for c in inv.counterexamples] == ["o3", "o4"]


def test_an_oversell_refunded_after_the_fact_is_not_oversold_but_a_shipped_one_is():
    h = History()
    for i in (1, 2, 3):
        h.buy(f"u{i}", f"o{i}")  # three acknowledged payments for two units (the naive control)
    sold = [("o1", "u1", 1), ("o2", "u2", 1), ("o3", "u3", 1)]
    counters = {"available": 0, "held": 0, "sold": 3}
    made_good = check(h.ops, final(2, sold, counters=counters, payments=[], refunds=[("o3", "u3", 1)],
                                   compensations=[("o3", "u3")]))
    assert statuses(made_good) == only(conservation="fail")  # the counters still show the oversell
    assert made_good.invariant("no_oversell").message == (
        "Acknowledged paid 2 and audited sold 2 net of 1 refunded units are within stock 2.")
    assert made_good.invariant("refunds_compensated").message == (
        "0 captured payments: 0 shipped, 0 refunded; 1 refunds, all compensated; net sold 2 is within stock 2.")
    assert (made_good.totals.oversold_units, made_good.totals.refunded_sold_units) == (0, 1)

    shipped = check(h.ops, final(2, sold, counters=counters, payments=[], refunds=[], compensations=[]))
    assert statuses(shipped) == only(no_oversell="fail", conservation="fail", refunds_compensated="fail")
    assert shipped.invariant("no_oversell").message == (
        "Sold 3 units of stock 2, 1 oversold (acknowledged paid 3, audited sold 3).")
    inv = shipped.invariant("refunds_compensated")
    assert inv.message == "Payments were not made good: 1 units sold past stock 2 were not refunded."
    assert [(c["problem"], c["order_id"], c["sold_through"]) for c in inv.counterexamples] == [
        ("oversold_not_refunded", "o3", 3)]
    assert shipped.totals.oversold_units == 1


def test_audit_without_ledger_lists():
    h, f = clean_sale()
    assert check(h.ops, f).invariant("refunds_compensated").message == (
        "Not checked: the audit has no payments / refunds / compensations list, and 3 units sold is within stock 3.")
    f = replace(f, extra={"sale": {"strategy": "payment_deduct"}})
    inv = check(h.ops, f).invariant("refunds_compensated")
    assert (inv.status, inv.message) == ("unknown", "The sale captures payments (payment_deduct) but the audit has "
                                                    "no payments / refunds / compensations list to reconcile them.")
    inv = check(h.ops, replace(f, audit=None)).invariant("refunds_compensated")
    assert inv.status == "unknown"


def test_malformed_ledger_lists_are_bad_input():
    h, f = clean_sale()
    with pytest.raises(BadInput, match=r"final_state.audit.refunds: expected a list"):
        check(h.ops, replace(f, audit={**f.audit, "refunds": {"o1": 1}}))
    with pytest.raises(BadInput, match=r"final_state.audit.payments\[0\].qty: expected an integer"):
        check(h.ops, replace(f, audit={**f.audit, "payments": [{"order_id": "o1", "qty": "1"}]}))
    with pytest.raises(BadInput, match=r"final_state.extra.sale: expected an object"):
        check(h.ops, replace(f, extra={"sale": 3}))


def limit_sale(**kw: Any) -> tuple[History, FinalState]:
    """u1 buys 1 + 2 units, u2 buys 1 and still holds 1."""
    h = History()
    h.buy("u1", "o1")
    h.buy("u1", "o2", qty=2)
    h.buy("u2", "o3")
    h.order("u2", "o4")
    return h, final(10, [("o1", "u1", 1), ("o2", "u1", 2), ("o3", "u2", 1)], [("o4", "u2", 1, NOW + 1000)], **kw)


def test_per_user_limit_exceeded_fails_with_the_users():
    h, f = limit_sale(sale={"per_user_limit": 2})
    v = check(h.ops, f)
    assert statuses(v) == only(per_user_limits="fail")
    inv = v.invariant("per_user_limits")
    assert inv.message == ("The per-user limit 2 was broken: 1 users hold or bought more than it at the end; the most "
                           "is 3 units, by u1; 1 users held or bought more than the limit at one moment (the most is "
                           "3 units, by u1).")
    assert inv.counterexamples[0] == {"when": "end", "user_id": "u1", "units": 3, "limit": 2, "order_ids": ["o1", "o2"]}
    assert inv.counterexamples[1]["when"] == "at_once" and inv.counterexamples[1]["order_ids"] == ["o1", "o2"]


def test_per_user_limit_counts_holds_and_not_refunds():
    h, f = limit_sale(sale={"per_user_limit": 3})
    assert check(h.ops, f).invariant("per_user_limits").message == (
        "No user holds or bought more than the per-user limit 3, at the end (the most is 3 units, across 2 users) or "
        "at any moment the history shows.")
    h, f = limit_sale(sale={"per_user_limit": 1}, payments=[], refunds=[("o2", "u1", 2)], compensations=[("o2", "u1")])
    inv = check(h.ops, f).invariant("per_user_limits")
    assert inv.message.startswith("The per-user limit 1 was broken: 1 users hold or bought more than it at the end; "
                                  "the most is 2 units, by u2; ")
    # u1's refunded order counts until it was paid: then u1 held it beside the unit it had bought
    assert [(e["when"], e["user_id"]) for e in inv.counterexamples] == [("end", "u2"), ("at_once", "u1"),
                                                                        ("at_once", "u2")]


def test_per_user_limit_comes_from_the_counters_without_sale_settings():
    h, f = limit_sale()
    assert check(h.ops, f).invariant("per_user_limits").message == "Not checked: the sale has no per-user limit."
    f = replace(f, counters={**f.counters, "per_user_limit": 2})
    assert check(h.ops, f).invariant("per_user_limits").status == "fail"
    assert check(h.ops, replace(f, audit=None)).invariant("per_user_limits").status == "unknown"


# --------------------------------------------------------------------------- the warehouse ledger


def with_ledger(f: FinalState, stock: int, sold: list[tuple[str, int]], *, sold_counter: int | None = None,
                refused: list[tuple[str, int]] = (), in_transit: int = 0, lag: int | None = 40,
                front: dict[str, Any] | None = None) -> FinalState:
    """``f`` with a warehouse ledger in its audit, and the counters a node with a ledger reports."""
    counter = sum(q for _, q in sold) if sold_counter is None else sold_counter
    ledger = {"stock": stock, "sold": counter, "in_transit": in_transit, "refused": sum(q for _, q in refused),
              "sold_orders": [{"order_id": o, "qty": q} for o, q in sold],
              "refused_orders": [{"order_id": o, "qty": q} for o, q in refused]}
    counters = {**f.counters, "stock": f.stock, "in_transit": in_transit, "sync_lag_ms": lag,
                "warehouse": {k: ledger[k] for k in ("stock", "sold", "in_transit", "refused")}, **(front or {})}
    return replace(f, counters=counters, audit=dict(f.audit, ledger=ledger))


def test_without_a_ledger_the_ledger_invariants_are_not_checked():
    h, f = clean_sale()
    v = check(h.ops, f)
    for name in ("ledger_no_oversell", "stock_converges"):
        assert v.invariant(name).status == "pass"
        assert v.invariant(name).message == "Not checked: the backend reports no warehouse ledger."
    assert (v.totals.ledger_sold, v.totals.ledger_stock, v.totals.sync_lag_ms) == (None, None, None)


def test_a_ledger_within_stock_that_agrees_with_the_front_passes_and_reports_the_lag():
    h, f = clean_sale()
    v = check(h.ops, with_ledger(f, 3, [("o1", 1), ("o2", 1), ("o3", 1)], lag=40))
    assert v.overall == "pass"
    assert v.invariant("ledger_no_oversell").message == (
        "The warehouse ledger sold 3 of its stock 3 (3 orders), and its sold orders add up.")
    assert v.invariant("stock_converges").message == (
        "Front and warehouse agree: stock 3, 3 sold orders (3 units) (sync lag 40 ms at the final read).")
    assert (v.totals.ledger_sold, v.totals.ledger_stock, v.totals.sync_lag_ms) == (3, 3, 40)


def test_a_ledger_past_its_stock_fails_and_names_the_orders_past_the_line():
    h, f = clean_sale()
    v = check(h.ops, with_ledger(f, 2, [("o1", 1), ("o2", 1), ("o3", 1)]))
    inv = v.invariant("ledger_no_oversell")
    assert inv.status == "fail" and v.overall == "fail"
    assert inv.message == "The warehouse ledger oversold: the ledger sold 3 units of its stock 2, 1 oversold."
    assert [(c["order_id"], c["ledger_sold_through"]) for c in inv.counterexamples] == [("o3", 3)]
    assert inv.counterexamples[0]["order_op_id"] is not None  # traced back to the client that ordered it


def test_a_ledger_whose_counter_and_orders_disagree_fails():
    h, f = clean_sale()
    v = check(h.ops, with_ledger(f, 3, [("o1", 1), ("o2", 1), ("o3", 1)], sold_counter=2))
    inv = v.invariant("ledger_no_oversell")
    assert inv.status == "fail"
    assert inv.message == "The warehouse ledger oversold: its sold counter is 2 but its sold orders add up to 3."
    assert inv.counterexamples[0] == {"ledger_sold": 2, "ledger_sold_orders_qty": 3}
    twice = check(h.ops, with_ledger(f, 3, [("o1", 1), ("o1", 1)], sold_counter=2)).invariant("ledger_no_oversell")
    assert twice.status == "fail" and "1 orders are recorded as sold more than once" in twice.message


def test_a_ledger_strategy_without_a_ledger_in_the_audit_is_unknown():
    h, f = clean_sale()
    v = check(h.ops, replace(f, extra={"sale": {"strategy": "pre_deduct_ledger"}}))
    assert v.overall == "inconclusive"
    assert v.invariant("ledger_no_oversell").message == (
        "A warehouse ledger is expected (the strategy pre_deduct_ledger writes every sale to it) but the audit "
        "does not show it, so what the warehouse sold is unknown.")
    assert v.invariant("stock_converges").status == "unknown"
    counters_say = replace(f, counters=dict(f.counters, warehouse={"stock": 3, "sold": 3}))
    assert check(h.ops, counters_say).invariant("stock_converges").status == "unknown"


def test_front_and_warehouse_that_disagree_fail_with_the_orders_on_one_side():
    h, f = clean_sale()
    # the warehouse refused o3 (no stock for it), and was restocked without the front hearing of it
    v = check(h.ops, with_ledger(f, 5, [("o1", 1), ("o2", 1)], refused=[("o3", 1)], lag=900,
                                 front={"stock": 3}))
    inv = v.invariant("stock_converges")
    assert inv.status == "fail" and v.overall == "fail"
    assert inv.message == (
        "Front and warehouse disagree: front stock 3 but warehouse stock 5; front sold 3 but warehouse sold 2; "
        "1 sold orders are on the front only (1 refused by the warehouse) (sync lag 900 ms at the final read).")
    assert inv.counterexamples[0] == {"front_stock": 3, "ledger_stock": 5}
    assert inv.counterexamples[1]["order_id"] == "o3"
    assert inv.counterexamples[1]["why"] == "refused by the warehouse (no stock left)"
    assert v.invariant("ledger_no_oversell").status == "pass"  # the warehouse itself did not oversell


def test_a_warehouse_only_sale_and_unsynced_in_transit_units_fail_to_converge():
    h, f = clean_sale()
    v = check(h.ops, with_ledger(f, 4, [("o1", 1), ("o2", 1), ("o3", 1), ("o9", 1)], in_transit=2,
                                 front={"stock": 4, "in_transit": 0, "available": 1}))
    inv = v.invariant("stock_converges")
    assert inv.status == "fail"
    assert inv.message == (
        "Front and warehouse disagree: front in transit 0 but warehouse in transit 2; front sold 3 but warehouse "
        "sold 4; 1 sold orders are in the warehouse only (sync lag 40 ms at the final read).")
    assert [c.get("order_id") for c in inv.counterexamples] == [None, "o9"]


def test_a_malformed_ledger_is_bad_input():
    h, f = clean_sale()
    with pytest.raises(BadInput, match=r"audit\.ledger\.sold"):
        check(h.ops, replace(f, audit=dict(f.audit, ledger={"stock": 3, "sold": "3"})))
    with pytest.raises(BadInput, match=r"audit\.ledger\.sold_orders\[0\]\.qty"):
        check(h.ops, replace(f, audit=dict(f.audit, ledger={"stock": 3, "sold": 1,
                                                            "sold_orders": [{"order_id": "o1", "qty": None}]})))


# --------------------------------------------------------------------------- reused order ids


def reused_id_sale() -> tuple[History, FinalState, dict[str, str]]:
    """Stock 2: u1 and u2 buy o1 and o2; a failover rolls the id counter back and u3's order is
    answered o2 again; u3's payment is acknowledged (a ledger idempotent per order id takes no unit).
    The audit, keyed by id, lists two orders within stock."""
    h = History()
    ids = {}
    ids["o1"], ids["p1"] = h.buy("u1", "o1")
    ids["o2"], ids["p2"] = h.buy("u2", "o2")
    ids["o3"], ids["p3"] = h.buy("u3", "o2")
    return h, final(2, [("o1", "u1", 1), ("o2", "u3", 1)]), ids


def test_a_reused_order_id_is_caught_and_its_payment_counted():
    h, f, ids = reused_id_sale()
    v = check(h.ops, f)
    assert v.overall == "fail"
    assert statuses(v) == only(unique_order_ids="fail", no_oversell="fail")
    u = v.invariant("unique_order_ids")
    assert u.message == ("1 order ids were returned by ok orders of different requests (2 order operations): "
                         "the backend reused order ids.")
    assert u.counterexamples == ({"order_id": "o2", "order_op_ids": [ids["o2"], ids["o3"]],
                                  "user_ids": ["u2", "u3"], "keys": [None, None], "times": [102.5, 104.5],
                                  "pay_op_ids": [ids["p2"], ids["p3"]]},)
    # three acknowledged payments of three order operations, not two order ids
    n = v.invariant("no_oversell")
    assert n.message == "Sold 3 units of stock 2, 1 oversold (acknowledged paid 3, audited sold 2)."
    (ex,) = n.counterexamples
    assert (ex["order_id"], ex["user_id"], ex["order_op_id"], ex["ok_pay_op_id"], ex["sold_through"]) == (
        "o2", "u3", ids["o3"], ids["p3"], 3)
    assert (v.totals.acked_paid, v.totals.acked_paid_orders, v.totals.oversold_units) == (3, 3, 1)


def test_acknowledged_units_are_counted_per_order_operation_with_their_own_qty():
    """u3's reused id ordered 2 units: its payment counts 2, not o2's first quantity."""
    h = History()
    h.buy("u1", "o1")
    h.order("u3", "o1", qty=2)
    h.pay("u3", "o1", qty=2)
    h.pay("u3", "o1", qty=2)  # a repeat ok pay of the same order operation counts once
    v = check(h.ops, final(3, [("o1", "u3", 2)]))
    assert v.totals.acked_paid == 3 and v.totals.acked_paid_orders == 2
    assert statuses(v)["no_oversell"] == "pass"
    assert statuses(v)["unique_order_ids"] == "fail"


def test_a_retry_with_its_key_may_get_the_same_order_id_back():
    h = History()
    h.order("u1", outcome="info", key="k1")
    h.order("u1", "o1", key="k1")
    h.order("u1", "o1", key="k1")  # the stored answer again
    h.pay("u1", "o1")
    v = check(h.ops, final(1, [("o1", "u1", 1)]))
    assert statuses(v) == ALL_PASS
    assert v.invariant("unique_order_ids").message == "1 order ids, each returned by ok orders of one request."
    assert v.totals.acked_paid == 1


def test_one_key_of_two_users_naming_one_order_is_a_reused_id():
    h = History()
    h.order("u1", "o1", key="k1")
    h.order("u2", "o1", key="k1")
    v = check(h.ops, final(2, []))
    assert statuses(v)["unique_order_ids"] == "fail"


def test_a_refund_of_a_reused_id_excuses_one_acknowledged_payment_only():
    h, _, _ = reused_id_sale()
    f = final(2, [("o1", "u1", 1), ("o2", "u3", 1)], refunds=[("o2", "u3", 1)], payments=[],
              compensations=[("o2", "u3")])
    v = check(h.ops, f)
    # acknowledged 3, one refunded: 2 within stock 2; the reuse itself still fails
    assert statuses(v)["no_oversell"] == "pass"
    assert statuses(v)["unique_order_ids"] == "fail"
