"""k6-style thresholds: the grammar, errors with field paths, evaluation, and exit status 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from paths import REPO
from synthetic_run import make_run_dir


def test_cli_rejects_a_bad_threshold_with_exit_4_before_starting_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('thresholds:\n  latency.order: ["p(99)<<50"]\n  wat: ["value<1"]\n')
    r = subprocess.run([sys.executable, "-m", "oversold.cli", "run", str(bad), "--out", str(tmp_path / "run")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 4, r.stderr
    assert "thresholds.latency.order[0]:" in r.stderr and "thresholds.wat: unknown metric" in r.stderr
    assert not (tmp_path / "run").exists()


def _check(run_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oversold.cli", "check", str(run_dir), *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_check_exits_3_on_a_failed_threshold_when_every_invariant_holds(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=3,
                       thresholds={"latency.order": ["p(99)<20"], "errors": ["rate<0.01"]})
    r = _check(run)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout and "thresholds: 1 of 2 passed, 1 FAILED" in r.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["verdict"] == "pass"
    assert [(t["expression"], t["passed"]) for t in results["thresholds"]] == [("p(99)<20", False), ("rate<0.01", True)]
    assert results["thresholds"][0]["observed"] == pytest.approx(69.6)   # latencies 10..70 ms
    assert (run / "junit.xml").exists() and (run / "report.html").exists()


def test_check_exits_0_when_thresholds_pass_and_1_when_an_invariant_fails_too(tmp_path):
    good = make_run_dir(tmp_path / "good", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    assert _check(good).returncode == 0
    both = make_run_dir(tmp_path / "both", stock=2, thresholds={"latency.order": ["p(99)<20"]})
    r = _check(both)
    assert r.returncode == 1, r.stdout + r.stderr
    results = json.loads((both / "results.json").read_text())
    assert results["verdict"] == "fail" and results["thresholds"][0]["passed"] is False


def test_check_re_evaluates_thresholds_edited_after_the_run(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    assert _check(run).returncode == 0
    scenario = yaml.safe_load((run / "scenario.yaml").read_text())
    scenario["thresholds"] = {"sync_lag": ["max<2000"]}           # not measured in this run
    (run / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    r = _check(run)
    assert r.returncode == 3
    assert "sync_lag was not measured" in r.stdout
    assert json.loads((run / "results.json").read_text())["thresholds"][0]["observed"] is None


def test_check_with_other_thresholds_writes_elsewhere_and_leaves_the_run_as_it_was(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    assert _check(run).returncode == 0
    before = {name: (run / name).read_bytes() for name in ("results.json", "junit.xml", "report.html", "scenario.yaml")}
    strict = tmp_path / "strict.yaml"
    strict.write_text('thresholds:\n  latency.order: ["p(99)<20"]\n  errors: ["rate<0.01"]\n')
    r = _check(run, "--thresholds", str(strict), "--out", str(tmp_path / "strict-run"))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "checked again into: " + str(tmp_path / "strict-run") in r.stdout
    results = json.loads((tmp_path / "strict-run" / "results.json").read_text())
    assert [(t["expression"], t["passed"]) for t in results["thresholds"]] == [("p(99)<20", False), ("rate<0.01", True)]
    assert yaml.safe_load((tmp_path / "strict-run" / "scenario.yaml").read_text())["thresholds"] == {
        "latency.order": ["p(99)<20"], "errors": ["rate<0.01"]}
    assert "p(99)&lt;20" in (tmp_path / "strict-run" / "report.html").read_text()
    assert {name: (run / name).read_bytes() for name in before} == before  # the run itself is untouched


@pytest.mark.parametrize("content, flags, problem", [
    ('thresholds:\n  latency.order: ["p(99)<20"]\n', (), "--thresholds: give --out DIR too"),
    ('thresholds:\n  latncy.order: ["p(99)<20"]\n', ("--out", "OUT"), "thresholds.latncy.order: unknown metric"),
    ('thresholds:\n  errors: ["rate<<1"]\n', ("--out", "OUT"), "thresholds.errors[0]"),
    ("sale:\n  stock: 3\n", ("--out", "OUT"), "needs a top-level 'thresholds:' mapping"),
])
def test_check_refuses_bad_thresholds_and_writes_nothing(tmp_path, content, flags, problem):
    run = make_run_dir(tmp_path / "run", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    file = tmp_path / "t.yaml"
    file.write_text(content)
    r = _check(run, "--thresholds", str(file), *(str(tmp_path / f) if f == "OUT" else f for f in flags))
    assert r.returncode == 4, r.stdout + r.stderr
    assert problem in r.stderr
    assert not (tmp_path / "OUT").exists() and not (run / "results.json").exists()


def test_check_never_writes_over_another_run_and_a_failed_write_is_bad_input(tmp_path):
    run = make_run_dir(tmp_path / "run", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    other = make_run_dir(tmp_path / "other", stock=3, thresholds={"latency.order": ["p(99)<100"]})
    before = (other / "scenario.yaml").read_bytes()
    r = _check(run, "--out", str(other))
    assert r.returncode == 4 and f"--out: {other} holds another run" in r.stderr, r.stderr
    assert (other / "scenario.yaml").read_bytes() == before and not (other / "results.json").exists()
    blocked = tmp_path / "blocked"
    (blocked / "results.json").mkdir(parents=True)  # a directory where the file must go
    r = _check(run, "--out", str(blocked))
    assert r.returncode == 4 and "--out: cannot write the results into" in r.stderr, r.stdout + r.stderr

