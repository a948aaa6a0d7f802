"""The exit status of a run, a check or a Locust run: one table, one rule.

====  ==========================================================
0     every invariant and threshold holds
1     an invariant is violated
2     inconclusive: too much was unknown to decide
3     a threshold failed (and every invariant holds)
4     bad input (scenario, flags, saved run)
5     the harness could not stand the system up
6     unexpected pass: the scenario expects a failure (``expect:``) and every invariant held
====  ==========================================================

Usage::

    exit_status("pass", [])              # 0
    exit_status("pass", failed)          # 3
    exit_status("fail", failed)          # 1
"""

from __future__ import annotations

from typing import Protocol, Sequence

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_THRESHOLD, EXIT_BAD_INPUT, EXIT_STAND_UP = 0, 1, 2, 3, 4, 5
EXIT_UNEXPECTED = 6  # a scenario's declared failure (expect:) did not show: the gate must not stay green
VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}


class Judged(Protocol):
    """Anything that passed or not: a threshold's result."""

    @property
    def passed(self) -> bool: ...


def exit_status(verdict: str, thresholds: Sequence[Judged] = ()) -> int:
    """The exit status of a checked run: a violated invariant (1) or an undecided one (2) wins over
    a failed threshold (3), which only turns a passing verdict into 3."""
    if verdict == "pass" and any(not t.passed for t in thresholds):
        return EXIT_THRESHOLD
    return VERDICT_EXIT[verdict]
