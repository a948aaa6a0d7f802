"""One seam for every invariant: a name, and a pure call on the sale's view.

An invariant fails on any evidence that it is broken, is ``unknown`` when the
evidence it needs (audit, counters) is missing or unknown outcomes leave both
answers possible, and passes otherwise.

``needs`` is the level of evidence (``oversold.model.evidence``) the invariant
cannot be decided without. ``check`` does not call an invariant that needs more
than the backend declared it provides: it is ``not_applicable``, and says why.
An invariant without ``needs`` is taken to need the per-order audit (the
cautious default). ``opts.evidence`` is the declared level, for an invariant
that decides more when it knows, say, that a missing audit is missing by design.

Usage::

    class NoNegativeStock:
        name: ClassVar[str] = "no_negative_stock"
        needs: ClassVar[Evidence] = "sold_count"

        def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
            c = s.counters
            if c is None or c.available is None:
                return result(self.name, "unknown", "No counters.")
            return result(self.name, "fail" if c.available < 0 else "pass", f"available {c.available}")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from oversold.model.evidence import DEFAULT_EVIDENCE, Evidence

from .result import InvariantResult, Status
from .view import SaleView


@dataclass(frozen=True)
class CheckOptions:
    """How strictly to judge: the grace a hold gets past its TTL, whether a sell-out is expected, and the
    level of evidence the backend declared (``check`` sets it from the final state)."""

    grace_ms: int = 2000
    expect_sell_out: bool = True
    evidence: Evidence = DEFAULT_EVIDENCE


class Invariant(Protocol):
    name: ClassVar[str]
    needs: ClassVar[Evidence]

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult: ...


def result(name: str, status: Status, message: str, examples: list[dict[str, Any]] | None = None) -> InvariantResult:
    """One invariant's result with every counterexample found."""
    return InvariantResult(name, status, message, tuple(examples or ()))
