"""pytest plugin: run an oversold scenario from your own test suite and assert the sale was sound.

Installed with oversold (entry point ``pytest11``), so any project whose test
environment has oversold gets the ``oversold_run`` fixture and the
``--oversold-host`` option without configuration::

    # tests/test_flash_sale.py in your project
    from .pytest_plugin import assert_sale_sound

    def test_checkout_never_oversells(oversold_run):
        result = oversold_run("scenarios/flash_sale.yaml", host="http://127.0.0.1:8000", duration_s=30)
        assert_sale_sound(result)          # fails with the counterexamples when it was not

``oversold_run(scenario, **overrides)`` runs the whole harness (as ``oversold
run`` does) into a fresh directory under the test's ``tmp_path`` and returns
the ``RunResult``. Overrides are those of the CLI: ``strategy``, ``seed``,
``redis_url``, ``host`` (your backend; else the reference backend is started),
``adapter`` (``"module:Class"`` when your backend's API is not the contract),
``duration_s``. ``pytest --oversold-host URL`` sets ``host`` for every call
that does not pass one. The admin token of your backend comes from
``$OVERSOLD_ADMIN_TOKEN``, as for the CLI.

A scenario that cannot run raises ``BadInput`` (a bad scenario or override)
or ``StandUpError`` / ``HarnessError`` (the system could not be stood up), so
the test errors with the harness's own message instead of passing.

This module imports nothing heavy at import time: pytest loads it in every
session of an environment that has oversold installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from oversold.model.scenario import Scenario
    from oversold.orchestrate.run import RunResult

_OVERRIDES = ("strategy", "seed", "redis_url", "host", "backend_url", "adapter", "duration_s")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oversold", "oversold flash-sale harness")
    group.addoption("--oversold-host", metavar="URL", default=None,
                    help="backend under test for oversold_run (default: start the reference backend)")


class OversoldRunner:
    """The ``oversold_run`` fixture's value: call it to run one scenario end to end.

    Usage::

        def test_sale(oversold_run):
            result = oversold_run("scenarios/flash_sale.yaml", strategy="pre_deduct", duration_s=20)
            assert result.verdict.overall == "pass"
            print(result.run_dir / "report.html")
    """

    def __init__(self, base_dir: Path, default_host: str | None = None) -> None:
        self._base = base_dir
        self._host = default_host
        self.results: list[RunResult] = []

    def __call__(self, scenario: "str | Path | Scenario", *, out: Path | None = None,
                 **overrides: Any) -> "RunResult":
        from oversold.model.scenario import Scenario
        from oversold.model.scenario_file import load_scenario
        from oversold.orchestrate.run import run_scenario

        from .errors import BadInput

        unknown = sorted(set(overrides) - set(_OVERRIDES))
        if unknown:
            raise BadInput(f"oversold_run: unknown override(s) {', '.join(unknown)}; known: {', '.join(_OVERRIDES)}")
        host = overrides.pop("host", None) or overrides.pop("backend_url", None) or self._host
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
        loaded = loaded.with_overrides(backend_url=host, **overrides)
        if out is None:
            out = self._base / f"oversold-{len(self.results) + 1}-{loaded.name}-{loaded.sale.strategy}"
        result = run_scenario(loaded, out)
        self.results.append(result)
        return result


@pytest.fixture
def oversold_run(request: pytest.FixtureRequest, tmp_path: Path) -> OversoldRunner:
    """A callable that runs an oversold scenario and returns its ``RunResult`` (see ``OversoldRunner``)."""
    return OversoldRunner(tmp_path, default_host=request.config.getoption("--oversold-host", default=None))


def assert_sale_sound(result: "RunResult", *, thresholds: bool = True, max_examples: int = 5) -> None:
    """Fail unless every invariant held (and, with ``thresholds``, every threshold passed).

    The failure message is the run's summary: each invariant with its
    counterexamples (order ids, users), each failed threshold, and the run
    directory holding ``report.html`` and the history.

    Usage::

        result = oversold_run("scenarios/flash_sale.yaml")
        assert_sale_sound(result)                     # invariants and thresholds
        assert_sale_sound(result, thresholds=False)   # invariants only
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    from oversold.analysis.summary import format_summary

    from .model.exit_codes import exit_status

    checked = result.evaluation.thresholds if thresholds else ()
    status = exit_status(result.verdict.overall, checked)
    if status != 0:
        summary = format_summary(result.verdict, run_dir=result.run_dir, max_examples=max_examples,
                                 thresholds=checked)
        raise AssertionError(f"oversold: the sale was not sound (exit status {status}){summary}")
