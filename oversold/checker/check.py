"""The checker's entry point: every invariant of the registry on one sale's view, composed into a verdict.

No I/O, no clock, no randomness: the same input always gives an equal output, so
a saved run directory can be checked again later. Each invariant is a small
class behind one protocol (``oversold.checker.invariant.Invariant``), grouped by
subject in its own module; ``INVARIANTS`` is the one registry, in report order.

Usage::

    verdict = check(read_history(run_dir / "history.jsonl"), final)
    if verdict.overall == "fail":
        for inv in verdict.invariants:
            print(inv.name, inv.status, inv.message)
    json.dumps(verdict.to_dict())  # the results.json shape
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Iterable

from oversold.model.evidence import DEFAULT_EVIDENCE, Evidence, at_least, describe
from oversold.model.gcpause import gc_paused
from oversold.model.history import FinalState, Op

from .invariant import CheckOptions, Invariant, result
from .ledger import LedgerNoOversell, StockConverges
from .lifecycle import NoResurrection
from .limits import PerUserLimits
from .orders import OrdersApplied
from .oversell import NoOversell, recorded_sold
from .payments import RefundsCompensated, SinglePayment, UniqueOrderIds
from .reconcile import NoLostSale, NoPhantomSale
from .result import InvariantResult, Totals, Verdict, compose
from .returns import StockReturnedOnce
from .stock import Conservation, HoldsReturned, SellsOut
from .view import SaleView

#: Every invariant, in the order results.json, the summary and the report list them.
INVARIANTS: tuple[Invariant, ...] = (
    NoOversell(),
    NoLostSale(),
    NoPhantomSale(),
    Conservation(),
    HoldsReturned(),
    SinglePayment(),
    UniqueOrderIds(),
    SellsOut(),
    OrdersApplied(),
    RefundsCompensated(),
    PerUserLimits(),
    LedgerNoOversell(),
    StockConverges(),
    NoResurrection(),
    StockReturnedOnce(),
)


_OUTCOME = attrgetter("outcome")


def totals_of(s: SaleView) -> Totals:
    """The run in numbers. ``oversold_units`` is the worst of what the backend recorded (the audit's net
    sold and its counters' sold) and what the clients were told (acknowledged payments net of refunds),
    beyond stock: the same views ``no_oversell`` fails on, so the number and the verdict agree."""
    audit, ledger = s.audit, s.ledger
    shipped = max([s.acked_paid - s.acked_refunded, *(v for v in recorded_sold(s) if v is not None)])
    counted = s.counters.sold if s.counters is not None else None
    demand = sum(c.qty for c in s.calls_of("order"))
    outcomes = Counter(map(_OUTCOME, s.calls))
    ok_ops, fail_ops, info_ops = outcomes["ok"], outcomes["fail"], outcomes["info"]
    return Totals(
        stock=s.stock,
        sold=audit.sold_qty if audit else counted,
        oversold_units=max(0, shipped - s.stock),
        refunded_sold_units=audit.refunded_sold_qty if audit else None,
        captured_payments=len(audit.payments) if audit and audit.payments is not None else None,
        acked_paid=s.acked_paid,
        acked_paid_orders=len(s.acked_payments),
        held=audit.held_qty if audit else None,
        demand=demand,
        ops=len(s.calls),
        ok_ops=ok_ops,
        fail_ops=fail_ops,
        info_ops=info_ops,
        ledger_stock=ledger.stock if ledger else None,
        ledger_sold=ledger.sold if ledger else None,
        sync_lag_ms=s.state.sync_lag_ms,
        **s.counts,
    )


def check(ops: Iterable[Op], final: FinalState, *, grace_ms: int = 2000, expect_sell_out: bool = True,
          invariants: tuple[Invariant, ...] = INVARIANTS) -> Verdict:
    """Check one sale's history against its final state.

    Only operations on ``final.sale_id`` are checked; others are counted in
    ``totals.other_sale_records``. Records may come in any order. Invokes and
    completions pair by ``op_id``; an invoke without completion is an unknown
    (``info``) outcome; a completion without invoke is used as evidence and
    counted in ``totals.unmatched_completions``; a repeated record is counted
    in ``totals.duplicate_records`` and the earliest one is used.

    Levels of evidence (``oversold.model.evidence``): an invariant that needs more
    than the backend declared it provides (``final.extra["evidence"]``, from the
    adapter) is not called; it is ``not_applicable``, saying what it needs and
    what the backend has, and takes no part in the verdict.

    Rules for ``unknown``: an invariant fails on any evidence that it is broken,
    is ``unknown`` when the evidence it needs (audit, counters) is missing or
    unknown outcomes leave both answers possible, and passes otherwise. The one
    exception is ``no_oversell`` without an audit, which passes on the client
    view when even every ``info`` pay applied stays within stock (see its
    docstring). The verdict is ``fail`` if any invariant fails, else
    ``inconclusive`` if any is unknown, else ``pass``.

    Raises ``BadInput`` for a malformed audit or counters (a wrong shape must
    never read as "nothing sold").

    Usage::

        final = FinalState(sale_id="moutai", stock=1, hold_ttl_ms=5000,
                           counters={"available": 0, "held": 0, "sold": 1},
                           audit={"now_ms": 9000, "holds": [],
                                  "sold": [{"order_id": "o1", "user_id": "u1", "qty": 1, "paid_ms": 8000}]})
        ops = [Op("invoke", "u1-1", 1.0, "u1", "u1", "buyer", "order", "moutai"),
               Op("ok", "u1-1", 1.1, "u1", "u1", "buyer", "order", "moutai", order_id="o1"),
               Op("invoke", "u1-2", 1.2, "u1", "u1", "buyer", "pay", "moutai", order_id="o1"),
               Op("ok", "u1-2", 1.3, "u1", "u1", "buyer", "pay", "moutai", order_id="o1")]
        v = check(ops, final)
        assert v.overall == "pass" and v.totals.oversold_units == 0
    """
    return check_view(SaleView.build(ops, final), grace_ms=grace_ms, expect_sell_out=expect_sell_out,
                      invariants=invariants)


def check_view(s: SaleView, *, grace_ms: int = 2000, expect_sell_out: bool = True,
               invariants: tuple[Invariant, ...] = INVARIANTS) -> Verdict:
    """``check`` on a view already built (``SaleView.build``), so the metrics can read the same view.

    Usage::

        view = SaleView.build(ops, final)
        verdict = check_view(view)
        metrics = compute_metrics(ops, final, totals=verdict.totals, view=view)
    """
    opts = CheckOptions(grace_ms=grace_ms, expect_sell_out=expect_sell_out, evidence=s.state.evidence)
    with gc_paused():
        results = tuple(_decide(inv, s, opts) for inv in invariants)
        return Verdict(overall=compose(results), totals=totals_of(s), invariants=results)


def _decide(inv: Invariant, s: SaleView, opts: CheckOptions) -> InvariantResult:
    """The invariant's result, or ``not_applicable`` when it needs more evidence than the backend keeps."""
    needs: Evidence = getattr(inv, "needs", DEFAULT_EVIDENCE)
    if at_least(opts.evidence, needs):
        return inv(s, opts)
    return result(inv.name, "not_applicable",
                  f"Not applicable: it needs {describe(needs)} ({needs}); the backend provides "
                  f"{describe(opts.evidence)} ({opts.evidence}).")
