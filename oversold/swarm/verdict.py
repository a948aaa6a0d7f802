"""The end of a plain ``locust`` run: settle, read the final state through the adapter, check.

Runs on the master (or the local runner) once the history is complete. It is
what ``oversold run`` does after the swarm, so a locustfile is a whole test on
its own: the verdict is printed, written (with ``--oversold-results``) as the
same run directory the orchestrator writes, and becomes Locust's exit code
(0 pass, 1 fail, 2 inconclusive, 3 a threshold failed; ``oversold.cli.exit_status``).

Usage::

    outcome = finish_run(config, rows)
    print(outcome.summary)
    environment.process_exit_code = outcome.exit_code
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..adapters.base import load_adapter
from ..adapters.http import AdapterClient
from ..checker import Verdict, check
from ..cli import exit_status
from ..history import FinalState
from ..report import format_summary
from ..results import Evaluation, evaluate_run, write_outputs
from ..scenario import dump_scenario
from ..settle import settle_and_read
from .config import SwarmConfig
from .recorder import to_op


@dataclass(frozen=True)
class RunOutcome:
    """What the end of a run found: the verdict, its evaluation, the exit code and the printed summary."""

    verdict: Verdict
    evaluation: Evaluation
    final: FinalState
    exit_code: int
    summary: str


def readers(config: SwarmConfig) -> list[AdapterClient]:
    """One admin-capable client per node: the final state is read from the first that answers."""
    adapter = load_adapter(config.adapter, admin_token=config.admin_token)
    timeout = max(5.0, config.request_timeout_s)
    return [AdapterClient(adapter, url, timeout=timeout) for url in config.nodes]


def finish_run(config: SwarmConfig, rows: Sequence[Sequence[Any]], *, started: float | None = None) -> RunOutcome:
    """Settle, read, check and (with ``config.results_dir``) write the run directory."""
    scenario = config.scenario
    clients = readers(config)
    try:
        final = settle_and_read(clients, scenario)
    finally:
        for c in clients:
            c.close()
    ops = [to_op(r) for r in rows]
    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    elapsed = time.time() - started if started is not None else None
    run_dir = config.results_dir
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "scenario.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
        (run_dir / "final_state.json").write_text(json.dumps(final.to_dict(), indent=1), encoding="utf-8")
        evaluation = write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=elapsed)
    else:
        evaluation = evaluate_run(scenario, ops, final, verdict)
    code = exit_status(verdict.verdict, evaluation.thresholds)
    summary = format_summary(verdict, run_dir=run_dir, thresholds=evaluation.thresholds)
    return RunOutcome(verdict=verdict, evaluation=evaluation, final=final, exit_code=code, summary=summary)
