"""What a person reads at the end of a run: a short plain-text summary of the verdict.

Usage::

    print(format_summary(verdict, run_dir=Path("runs/demo")))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from oversold.checker import Verdict
from oversold.model.expect import Met

from .thresholds import ThresholdResult

_MARK = {"pass": "ok  ", "fail": "FAIL", "unknown": "??  ", "not_applicable": "n/a "}


def _n(value: int | None) -> str:
    return "unknown" if value is None else str(value)


#: ``FinalState.extra`` key: why the audit could not be read (said once in the summary)
AUDIT_MISSING_WHY = "audit_missing_why"
#: what that says when no admin token was given (the contract's audit needs it)
NO_ADMIN_TOKEN = ("no admin token was given: the backend answers the audit only to its admin token "
                  "(set $OVERSOLD_ADMIN_TOKEN, or pass --oversold-admin-token to plain locust)")


def format_summary(verdict: Verdict, *, run_dir: Path | None = None, max_examples: int = 3,
                   thresholds: Sequence[ThresholdResult] = (), audit_missing_why: str | None = None,
                   notes: Sequence[str] = (), expectation: Met | None = None) -> str:
    """The verdict, the run in numbers, one line per invariant (with counterexamples when it failed),
    the thresholds; ``audit_missing_why`` (when the audit could not be read) is said once, instead of
    leaving every invariant that needed it to say only that it is missing; ``notes``: what the reader
    must know to read the rest (the backend died); ``expectation`` (a scenario that expects a failure)
    is said beside the verdict."""
    t = verdict.totals
    lines = [
        "",
        f"verdict: {verdict.overall.upper()}" + (f" ({expectation.message})" if expectation is not None else ""),
        f"  stock {t.stock}  sold {_n(t.sold)}  oversold units {t.oversold_units}"
        f"  acknowledged payments {t.acked_paid}  unknown outcomes {t.info_ops}",
    ]
    if verdict.overall == "inconclusive":
        undecided = [inv.name for inv in verdict.invariants if inv.status == "unknown"]
        lines.append(f"  no invariant failed; {len(undecided)} could not be decided ({', '.join(undecided)}): "
                     f"exit 2, not the exit 1 of a violation")
    if audit_missing_why:
        lines.append(f"  note: the audit is missing because {audit_missing_why}")
    lines += [f"  NOTE: {note}" for note in notes]
    for inv in verdict.invariants:
        lines.append(f"  [{_MARK.get(inv.status, inv.status)}] {inv.name}: {inv.message}")
        if inv.status == "fail":
            for example in inv.counterexamples[:max_examples]:
                lines.append(f"         e.g. {json.dumps(example, sort_keys=True)}")
            more = len(inv.counterexamples) - max_examples
            if more > 0:
                lines.append(f"         ... and {more} more (all {len(inv.counterexamples)} in results.json and report.html)")
    skipped = verdict.not_applicable
    if skipped:
        lines.append(f"  {len(skipped)} invariants not applicable: they need evidence this backend does not keep "
                     f"(see each line; docs/adapters.md, levels of evidence)")
    if thresholds:
        failed = sum(1 for th in thresholds if not th.passed)
        lines.append(f"thresholds: {len(thresholds) - failed} of {len(thresholds)} passed"
                     + (f", {failed} FAILED" if failed else ""))
        for th in thresholds:
            lines.append(f"  [{'ok  ' if th.passed else 'FAIL'}] {th.metric} {th.expression}: {th.message}")
    if run_dir is not None:
        lines.append(f"  run directory: {run_dir}  (report.html, results.json, junit.xml, history.jsonl)")
    return "\n".join(lines)
