"""The end of a plain ``locust`` run: settle, read the final state through the adapter, check.

Runs on the master (or the local runner) once the history is complete. It is
what ``oversold run`` does after the swarm, so a locustfile is a whole test on
its own: the verdict is printed, written (with ``--oversold-results``) as the
same run directory the orchestrator writes, and becomes Locust's exit code
(0 pass, 1 fail, 2 inconclusive, 3 a threshold failed; ``oversold.cli.exit_status``).

Usage::

    outcome = finish_run(config, collector.ops())
    print(outcome.summary)
    environment.process_exit_code = outcome.exit_code
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Sequence

from oversold.adapters.base import load_adapter
from oversold.adapters.http import AdapterClient
from oversold.adapters.settle import settle_and_read, state_readers
from oversold.analysis.evaluation import Evaluation
from oversold.analysis.judge import judge
from oversold.analysis.summary import AUDIT_MISSING_WHY, NO_ADMIN_TOKEN
from oversold.checker import Verdict
from oversold.model.expect import Met
from oversold.model.history import FinalState, Op, accepted_orders
from oversold.model.scenario_file import dump_scenario

from .config import DEFAULT_ADAPTER, SwarmConfig


@dataclass(frozen=True)
class RunOutcome:
    """What the end of a run found: the verdict, its evaluation, the exit code and the printed summary."""

    verdict: Verdict
    evaluation: Evaluation
    final: FinalState
    exit_code: int
    summary: str
    expectation: Met | None = None  # how the run compares with the scenario's expect: (None: a pass is expected)


def readers(config: SwarmConfig) -> list[AdapterClient]:
    """One admin-capable client per node: the final state is read from the first that answers."""
    adapter = load_adapter(config.adapter, admin_token=config.admin_token,
                           options=config.scenario.backend.adapter_options)
    timeout = max(5.0, config.request_timeout_s)
    return [AdapterClient(adapter, url, timeout=timeout) for url in config.nodes]


def finish_run(config: SwarmConfig, ops: Sequence[Op], *, started: float | None = None) -> RunOutcome:
    """Settle, read, check ``ops`` (the collector's history) and (with ``config.results_dir``) write the run directory."""
    scenario = config.scenario
    clients = readers(config)
    adapter = clients[0].adapter
    try:
        final = settle_and_read(state_readers(adapter, clients), scenario, evidence=adapter.evidence,
                                accepted=accepted_orders(ops, scenario.sale.id))
    finally:
        for c in clients:
            c.close()
        adapter.close()
    if final.audit is None and not config.admin_token and config.adapter == DEFAULT_ADAPTER:
        # only the contract's audit takes that token; another adapter has its own way in
        final = dataclasses.replace(final, extra={**final.extra, AUDIT_MISSING_WHY: NO_ADMIN_TOKEN})
    elapsed = time.time() - started if started is not None else None
    run_dir = config.results_dir
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "scenario.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
        (run_dir / "final_state.json").write_text(json.dumps(final.to_dict(), indent=1), encoding="utf-8")
    j = judge(scenario, ops, final, run_dir=run_dir, elapsed_s=elapsed)
    return RunOutcome(verdict=j.verdict, evaluation=j.evaluation, final=final, exit_code=j.exit_code,
                      summary=j.summary, expectation=j.expectation)
