"""The product end to end: `oversold run` on the shipped flash sale, real everything.

These are the two runs the README promises: pre_deduct passes and sells out; the
naive negative control oversells and the harness exits 1 with a counterexample.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from oversold.analysis.results import validate_results

pytestmark = pytest.mark.e2e

SCENARIO = REPO / "scenarios" / "flash_sale.yaml"


def oversold(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oversold.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def results_of(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    validate_results(results)  # every run's results follow the documented schema
    return results


def statuses(results: dict) -> dict[str, str]:
    return {inv["name"]: inv["status"] for inv in results["invariants"]}


@pytest.fixture(scope="module")
def pre_deduct_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "pre_deduct"
    proc = oversold("run", str(SCENARIO), "--out", str(out), "-q")
    return proc, out


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "naive"
    proc = oversold("run", str(SCENARIO), "--strategy", "naive", "--out", str(out), "-q")
    return proc, out


def test_pre_deduct_passes_and_sells_out(pre_deduct_run):
    proc, out = pre_deduct_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = results_of(out)
    assert results["verdict"] == "pass"
    assert results["totals"]["oversold_units"] == 0
    assert results["totals"]["stock"] == 500
    assert results["totals"]["sold"] == 500  # demand exceeded stock, so it sold out
    assert set(statuses(results).values()) == {"pass"}
    assert "verdict: PASS" in proc.stdout
    for name in ("junit.xml", "report.html", "timeline.jsonl"):
        assert (out / name).stat().st_size > 0, name


def test_run_directory_holds_history_and_replayable_scenario(pre_deduct_run):
    _, out = pre_deduct_run
    lines = (out / "history.jsonl").read_text().splitlines()
    kinds = {json.loads(line)["type"] for line in lines}
    assert {"invoke", "ok", "fail"} <= kinds
    assert "seed: 42" in (out / "scenario.yaml").read_text()
    final = json.loads((out / "final_state.json").read_text())
    assert final["counters"]["held"] == 0
    assert len(final["audit"]["sold"]) == 500


def test_saved_run_checks_again_to_the_same_verdict(pre_deduct_run):
    _, out = pre_deduct_run
    before = results_of(out)
    proc = oversold("check", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = results_of(out)
    assert after["verdict"] == before["verdict"]
    assert after["invariants"] == before["invariants"]


def test_naive_oversells_and_the_harness_says_so(naive_run):
    proc, out = naive_run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = results_of(out)
    assert results["verdict"] == "fail"
    assert results["totals"]["oversold_units"] > 0
    no_oversell = next(inv for inv in results["invariants"] if inv["name"] == "no_oversell")
    assert no_oversell["status"] == "fail"
    example = no_oversell["counterexamples"][0]
    assert example["order_id"] and example["user_id"]
    assert "FAIL" in proc.stdout and "no_oversell" in proc.stdout
