"""Levels of evidence: a backend with less than the contract's audit is judged on what it can show.

Pure: hand-written histories and final states, as in test_checker.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from oversold.checker import INVARIANTS, check
from oversold.checker.invariant import CheckOptions, result
from oversold.errors import BadInput
from oversold.model.evidence import EVIDENCE_LEVELS, at_least
from oversold.model.history import FinalState, Op

from .test_checker import SKU, TTL, History, final, statuses

STATUS = {"ok": 200, "fail": 409, "info": 504}


def buys(outcomes: list[str]) -> list[Op]:
    """A single-step buy API's history: each buy is one pay, its order id the buy's key (no order op)."""
    ops: list[Op] = []
    t = 100.0
    for n, outcome in enumerate(outcomes, 1):
        user, key = f"u{n}", f"k{n}"
        oid = f"buy:{key}"
        ops.append(Op("invoke", f"{user}-1", t, user, user, "buyer", "pay", SKU, order_id=oid, key=key))
        if outcome != "none":
            ops.append(Op(outcome, f"{user}-1", t + 0.5, user, user, "buyer", "pay", SKU, order_id=oid, key=key,
                          status=STATUS[outcome]))
        t += 1.0
    return ops


def counted(stock: int, sold: int, *, evidence: str = "sold_count", **extra: Any) -> FinalState:
    return FinalState(sale_id=SKU, stock=stock, hold_ttl_ms=TTL,
                      counters={"available": stock - sold, "held": 0, "sold": sold, **extra},
                      extra={"evidence": evidence})


def test_levels_are_ordered():
    assert EVIDENCE_LEVELS == ("none", "sold_count", "per_user_audit", "per_order_audit")
    assert at_least("per_order_audit", "sold_count") and not at_least("sold_count", "per_user_audit")


def test_a_correct_single_step_backend_with_a_sold_count_passes_and_names_what_was_not_applicable():
    v = check(buys(["ok", "ok", "ok", "fail", "info"]), counted(3, 3))
    assert v.overall == "pass"
    st = statuses(v)
    assert st["no_oversell"] == st["conservation"] == st["unique_order_ids"] == st["orders_applied"] == "pass"
    not_applicable = {inv.name for inv in v.not_applicable}
    assert not_applicable == {"no_lost_sale", "no_phantom_sale", "holds_returned", "single_payment", "sells_out",
                              "refunds_compensated", "per_user_limits", "ledger_no_oversell", "stock_converges",
                              "no_resurrection", "stock_returned_once"}
    msg = v.invariant("no_lost_sale").message
    assert "per_order_audit" in msg and "sold_count" in msg  # what it needs, what the backend has
    assert v.totals.sold == 3 and v.totals.oversold_units == 0
    assert v.to_dict()["invariants"][1]["status"] == "not_applicable"


def test_an_unknown_outcome_buy_is_in_a_trustworthy_count_so_it_does_not_leave_no_oversell_unknown():
    # 2 acknowledged + 1 unknown of stock 2: without a count the third could have oversold
    ops = buys(["ok", "ok", "info"])
    assert check(ops, counted(2, 2)).invariant("no_oversell").status == "pass"
    no_count = FinalState(sale_id=SKU, stock=2, hold_ttl_ms=TTL, extra={"evidence": "sold_count"})
    assert check(ops, no_count).invariant("no_oversell").status == "unknown"  # promised a count, gave none


def test_a_sold_count_past_stock_fails_with_the_units_from_the_count():
    v = check(buys(["ok", "ok", "info", "info"]), counted(2, 4, available=0))
    assert v.overall == "fail"
    assert v.invariant("no_oversell").status == "fail"
    assert v.totals.oversold_units == 2


def test_acknowledged_buys_past_stock_fail_from_the_history_even_when_the_count_looks_fine():
    v = check(buys(["ok", "ok", "ok"]), counted(2, 2))
    assert v.invariant("no_oversell").status == "fail"
    assert v.totals.oversold_units == 1


def test_counters_that_do_not_add_up_fail_conservation_on_a_sold_count_backend():
    f = FinalState(sale_id=SKU, stock=3, hold_ttl_ms=TTL, counters={"available": 1, "held": 0, "sold": 1},
                   extra={"evidence": "sold_count"})
    v = check(buys(["ok"]), f)
    assert v.invariant("conservation").status == "fail" and v.overall == "fail"


def test_history_only_backend_decides_no_oversell_from_the_client_view():
    f = FinalState(sale_id=SKU, stock=3, hold_ttl_ms=TTL, extra={"evidence": "none"})
    v = check(buys(["ok", "ok"]), f)
    assert v.invariant("no_oversell").status == "pass"
    assert v.invariant("conservation").status == "not_applicable"
    assert v.overall == "pass"


def test_a_backend_that_promised_the_audit_and_did_not_give_it_stays_inconclusive():
    # the default level is the contract's audit: its absence is a failure to read, not a design
    h = History()
    h.buy("u1", "o1")
    v = check(h.ops, final(1, [("o1", "u1", 1)], audit=False))
    assert v.overall == "inconclusive" and not v.not_applicable


def test_counters_past_stock_fail_no_oversell_even_beside_an_audit_within_stock():
    h = History()
    h.buy("u1", "o1")
    f = final(1, [("o1", "u1", 1)], counters={"available": 0, "held": 0, "sold": 3})
    v = check(h.ops, f)
    assert v.invariant("no_oversell").status == "fail"
    assert v.totals.oversold_units == 2  # never "0 oversold" on a failed run whose counters show an oversell


def test_a_refunded_sold_order_in_the_counters_is_not_an_oversell():
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    f = final(1, [("o1", "u1", 1), ("o2", "u2", 1)], refunds=[("o2", "u2", 1)],
              counters={"available": 0, "held": 0, "sold": 2})
    v = check(h.ops, f)
    assert v.invariant("no_oversell").status == "pass" and v.totals.oversold_units == 0


def test_rows_by_user_decide_no_oversell_by_count_but_never_match_ids():
    # the user's database rows carry its own ids: matching them to the clients' order ids would be a false alarm
    h = History()
    h.buy("u1", "o1")
    h.buy("u2", "o2")
    f = final(2, [("row-1", "u1", 1), ("row-2", "u2", 1)])
    f = FinalState(**{**f.to_dict(), "extra": {"evidence": "per_user_audit"}})
    v = check(h.ops, f)
    st = statuses(v)
    assert st["no_phantom_sale"] == st["no_lost_sale"] == "not_applicable"
    assert st["no_oversell"] == st["conservation"] == "pass"
    assert v.overall == "pass"
    assert check(h.ops, FinalState(**{**f.to_dict(), "extra": {}})).overall == "fail"  # as an order audit


def test_an_invariant_that_declares_no_need_is_taken_to_need_the_order_audit():
    class Custom:
        name: ClassVar[str] = "custom"

        def __call__(self, s: Any, opts: CheckOptions) -> Any:
            return result(self.name, "fail", "called")

    v = check(buys(["ok"]), counted(1, 1), invariants=(*INVARIANTS, Custom()))
    assert v.invariant("custom").status == "not_applicable" and v.overall == "pass"


def test_an_unknown_level_is_bad_input_naming_the_field():
    with pytest.raises(BadInput, match=r"final_state.extra.evidence: 'sold' is not a level"):
        check(buys(["ok"]), counted(1, 1, evidence="sold"))


def test_the_summary_marks_what_was_not_applicable_and_never_says_sold_none():
    from oversold.analysis.summary import format_summary

    text = format_summary(check(buys(["ok", "ok"]), counted(2, 2)), notes=["the backend died"])
    assert "[n/a ] no_lost_sale: Not applicable" in text
    assert "11 invariants not applicable" in text
    assert "NOTE: the backend died" in text
    nothing = FinalState(sale_id=SKU, stock=2, hold_ttl_ms=TTL, extra={"evidence": "none"})
    text = format_summary(check(buys(["ok"]), nothing))
    assert "sold None" not in text and "sold unknown" in text


def test_an_oversell_on_a_count_backend_names_the_count_not_a_missing_audit():
    msg = check(buys(["ok", "ok", "ok"]), counted(2, 3, available=0)).invariant("no_oversell").message
    assert "the backend's sold count 3" in msg and "audit" not in msg
