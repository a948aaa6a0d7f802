"""What the checker answers: one result per invariant, the totals, and the verdict composed from them.

The verdict is ``fail`` if any invariant fails, else ``inconclusive`` if any is
``unknown``, else ``pass`` (Jepsen's fail > unknown > pass). An invariant that is
``not_applicable`` (it needs evidence the backend declared it does not keep,
``oversold.model.evidence``) takes no part: it is reported, with why, and a run
whose applicable invariants all hold passes.

Usage::

    v = check(ops, final)
    v.overall                        # "pass" | "fail" | "inconclusive"
    v.totals.oversold_units          # 0 unless something oversold
    v.invariant("no_lost_sale").status
    v.to_dict()                      # what results.json holds
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal

Status = Literal["pass", "fail", "unknown", "not_applicable"]
VerdictName = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class InvariantResult:
    """The outcome of one invariant, with every counterexample found (none is dropped, however many).

    Usage::

        r = verdict.invariant("no_oversell")
        if r.status == "fail":
            print(r.message, r.counterexamples[0]["order_id"])
    """

    name: str
    status: Status
    message: str
    counterexamples: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "counterexamples": [dict(c) for c in self.counterexamples],
        }


@dataclass(frozen=True)
class Totals:
    """The run in numbers, as the checker counted them (``None`` where the evidence was missing).

    Usage::

        t = verdict.totals
        t.oversold_units, t.sold, t.acked_paid
    """

    stock: int
    sold: int | None  # sold units (refunded ones included): the audit's, else the counters' sold; None: neither
    oversold_units: int  # units shipped beyond stock: the larger of what the backend and the clients say
    refunded_sold_units: int | None  # sold, then refunded (they did not ship)
    captured_payments: int | None  # entries of the audit's payments list
    acked_paid: int  # units of acknowledged payments, one per order operation
    acked_paid_orders: int  # distinct order operations with an ok pay
    held: int | None  # units still held at the final read (audit)
    demand: int  # units asked for by every order operation
    ops: int
    ok_ops: int
    fail_ops: int
    info_ops: int
    ledger_stock: int | None
    ledger_sold: int | None
    sync_lag_ms: int | None
    records: int = 0
    other_sale_records: int = 0
    duplicate_records: int = 0
    unmatched_completions: int = 0
    unfinished_ops: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compose(results: Iterable[InvariantResult]) -> VerdictName:
    """fail > unknown > pass."""
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else "inconclusive" if "unknown" in statuses else "pass"


@dataclass(frozen=True)
class Verdict:
    """The checker's answer: one overall verdict, totals and one result per invariant."""

    overall: VerdictName
    totals: Totals
    invariants: tuple[InvariantResult, ...]

    def invariant(self, name: str) -> InvariantResult:
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(name)

    @property
    def not_applicable(self) -> tuple[InvariantResult, ...]:
        return tuple(inv for inv in self.invariants if inv.status == "not_applicable")

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.overall,
            "totals": self.totals.to_dict(),
            "invariants": [inv.to_dict() for inv in self.invariants],
        }
