"""The verdicts in Locust's web UI: one row per test started from the UI, as each is decided.

Every test started from the web UI is its own run (``oversold.swarm.plugin``): its
own history, run directory and verdict. This board lists them in an "oversold
verdicts" tab of Locust's web UI (fed through the ``extended_stats`` of
``/stats/requests``, which the UI polls) and as JSON at ``/oversold/runs``.

Usage::

    board = VerdictBoard()
    board.attach(environment.web_ui)         # once, at Locust's init
    board.started(1, Path("runs/ui/test-1"))
    board.finished(1, "pass", 0, "every invariant holds")
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TAB_KEY = "oversold"
COLUMNS = (("test", "Test"), ("state", "Verdict"), ("exit_code", "Exit code"), ("detail", "Why"),
           ("run_dir", "Run directory"))


@dataclass
class TestRun:
    """One test of the session: ``state`` is ``running``, ``checking``, or the verdict once decided."""

    test: int
    run_dir: str
    state: str = "running"
    exit_code: int | None = None
    detail: str = ""
    started: float = field(default_factory=time.time)


@dataclass
class VerdictBoard:
    """The tests of one Locust session and their verdicts."""

    runs: list[TestRun] = field(default_factory=list)

    def started(self, test: int, run_dir: Path | None) -> None:
        self.runs.append(TestRun(test=test, run_dir=str(run_dir) if run_dir else "(no --oversold-results)"))

    def _run(self, test: int) -> TestRun | None:
        return next((r for r in self.runs if r.test == test), None)

    def checking(self, test: int) -> None:
        run = self._run(test)
        if run is not None:
            run.state = "checking"

    def finished(self, test: int, state: str, exit_code: int | None, detail: str) -> None:
        run = self._run(test)
        if run is not None:
            run.state, run.exit_code, run.detail = state, exit_code, detail

    def rows(self) -> list[dict[str, Any]]:
        """Newest first, as the UI shows them."""
        return [asdict(r) for r in reversed(self.runs)]

    def attach(self, web_ui: Any) -> None:
        """Add the tab to Locust's web UI and the ``/oversold/runs`` route."""
        from flask import jsonify, request

        args = web_ui.template_args
        args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "oversold verdicts", "key": TAB_KEY}]
        args["extended_tables"] = [*args.get("extended_tables", []),
                                   {"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}]

        @web_ui.app.route("/oversold/runs")
        @web_ui.auth_required_if_enabled
        def oversold_runs() -> Any:
            return jsonify(self.rows())

        @web_ui.app.after_request
        def add_verdicts(response: Any) -> Any:
            if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
                return response
            body = response.get_json()
            # Locust caches this response (2 s or more) and hands out the same object: replace our entry
            others = [e for e in body.get("extended_stats", []) if e.get("key") != TAB_KEY]
            body["extended_stats"] = [*others, {"key": TAB_KEY, "data": self.rows()}]
            response.set_data(json.dumps(body))
            return response


def describe(verdict: Any, exit_code: int, expectation: Any = None) -> str:
    """A line on why: the invariants that failed or could not be decided, else that all hold; with a
    scenario that expects a failure (``expect:``), how the run compares with it (the exit status's reason)."""
    failed = [i.name for i in verdict.invariants if i.status == "fail"]
    unknown = [i.name for i in verdict.invariants if i.status == "unknown"]
    parts = []
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if unknown:
        parts.append("undecided: " + ", ".join(unknown))
    if not parts:
        parts.append("every invariant holds" + (" but a threshold failed" if exit_code == 3 else ""))
    if expectation is not None:
        parts.append(expectation.message)
    return "; ".join(parts)
