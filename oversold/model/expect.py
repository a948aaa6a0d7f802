"""The verdict a scenario expects (``expect:``), and whether a run met it. Pure.

Most scenarios expect a pass. A scenario that shows a known weakness (``order_deduct``
drained by hoarders, ``pre_deduct`` losing acknowledged writes in a Redis failover)
declares the failure it expects, so a run that shows exactly it reports "as expected"
and exits 0, and a gate stays green on correct code::

    expect:
      verdict: fail
      invariant: sells_out               # one name or a list: each must fail
      may_also_fail: [conservation]      # may fail too (optional); any other failure is unexpected
      strategy: order_deduct             # optional: the sale's strategy is the default

The expectation holds for one strategy (the scenario's own unless it names one):
``--strategy`` with another strategy judges the run as any other, expecting a pass.

Usage::

    exp = Expectation(verdict="fail", invariant=("sells_out",), strategy="order_deduct")
    met = exp.judge("fail", failed=("sells_out",), strategy="order_deduct")
    assert met is not None and met.met and met.exit_code == 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .exit_codes import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_UNEXPECTED

EXPECT_VERDICTS = ("pass", "fail")

#: The checker's invariant names (``oversold.checker.check.INVARIANTS``), for validating ``expect:`` at load;
#: the model cannot import the checker, so tests/unit/test_expect.py holds this list to the registry.
INVARIANT_NAMES = (
    "no_oversell", "no_lost_sale", "no_phantom_sale", "conservation", "holds_returned", "single_payment",
    "unique_order_ids", "sells_out", "orders_applied", "refunds_compensated", "per_user_limits",
    "ledger_no_oversell", "stock_converges", "no_resurrection",
    "stock_returned_once",
)


@dataclass(frozen=True)
class Met:
    """How a run compares with its expectation: ``met`` and the exit status it leads to, and why."""

    met: bool
    exit_code: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"met": self.met, "message": self.message}


@dataclass(frozen=True)
class Expectation:
    """``expect:`` of a scenario: the verdict a run of ``strategy`` should give (field names as in the YAML)."""

    verdict: str = "pass"
    invariant: tuple[str, ...] = ()
    may_also_fail: tuple[str, ...] = ()
    strategy: str | None = None

    @property
    def expects_failure(self) -> bool:
        return self.verdict == "fail"

    def applies_to(self, strategy: str) -> bool:
        return self.strategy is None or self.strategy == strategy

    def judge(self, overall: str, failed: Sequence[str], strategy: str, undecided: Sequence[str] = ()) -> Met | None:
        """The outcome against this expectation; None when it does not apply (another strategy, or a pass
        is expected: the ordinary exit status stands). An expected failure that could not be decided
        (``undecided``: e.g. ``sells_out`` of a run cut short) is inconclusive (2), never a pass or a 1,
        unless an invariant the scenario does not allow failed."""
        if not self.expects_failure or not self.applies_to(strategy):
            return None
        named = ", ".join(self.invariant)
        if overall == "pass":
            return Met(False, EXIT_UNEXPECTED,
                       f"UNEXPECTED PASS: the scenario expects {named} to fail with {strategy}, and every invariant "
                       f"held. Either the weakness it shows is gone (drop expect:) or the run no longer reaches it.")
        if overall != "fail":
            return Met(False, EXIT_INCONCLUSIVE, f"inconclusive, while the scenario expects {named} to fail.")
        missing = [n for n in self.invariant if n not in failed]
        allowed = set(self.invariant) | set(self.may_also_fail)
        extra = [n for n in failed if n not in allowed]
        if not extra and any(n in undecided for n in missing):
            return Met(False, EXIT_INCONCLUSIVE, f"inconclusive: {', '.join(n for n in missing if n in undecided)} "
                                                 f"could not be decided, while the scenario expects {named} to fail.")
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"expected to fail but did not: {', '.join(missing)}")
            if extra:
                parts.append(f"failed unexpectedly: {', '.join(extra)}")
            return Met(False, EXIT_FAIL, "NOT as expected: " + "; ".join(parts) + ".")
        return Met(True, EXIT_PASS, f"as expected: {', '.join(failed)} failed with {strategy}, "
                                    f"as the scenario declares (expect: verdict fail, invariant {named}).")
