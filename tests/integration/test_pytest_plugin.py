"""The pytest entry point for users' own suites, tried the way a user would: a test file in
another directory, run by pytest in a subprocess, the plugin loaded from its entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_scenario import write_tiny

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e

USER_TESTS = '''
from oversold.pytest_plugin import assert_sale_sound

SCENARIO = {scenario!r}


def test_reference_backend_is_sound(oversold_run):
    result = oversold_run(SCENARIO)
    assert_sale_sound(result)
    assert result.verdict.totals.sold == 60
    assert (result.run_dir / "report.html").exists()


def test_naive_is_not(oversold_run):
    result = oversold_run(SCENARIO, strategy="naive", duration_s=6)
    assert_sale_sound(result)
'''


def test_a_users_suite_gets_the_fixture_and_the_counterexamples(pytester: pytest.Pytester, tmp_path: Path):
    scenario = write_tiny(tmp_path / "scenarios")
    pytester.makepyfile(test_sale=USER_TESTS.format(scenario=str(scenario)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "oversold: the sale was not sound (exit status 1)" in out
    assert "[FAIL] no_oversell" in out and "e.g. {" in out  # the counterexamples, with order ids
    assert "assert_sale_sound(result)" in out  # pytest points at the user's line


def test_an_unknown_override_is_an_error_not_a_silent_run(pytester: pytest.Pytester, tmp_path: Path):
    scenario = write_tiny(tmp_path)
    pytester.makepyfile(test_bad=f'''
import pytest
from oversold.errors import BadInput

def test_typo(oversold_run):
    with pytest.raises(BadInput, match="stratgy"):
        oversold_run({str(scenario)!r}, stratgy="naive")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_oversold_host_option_is_registered(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--oversold-host=URL*"])


def test_oversold_host_sends_every_run_to_the_users_backend(pytester: pytest.Pytester, tmp_path: Path,
                                                             backend, admin_token, monkeypatch):
    """No reference backend is started: the sale is set up on, sold by and read from the given node."""
    node = backend[0]
    scenario = write_tiny(tmp_path)
    monkeypatch.setenv("OVERSOLD_ADMIN_TOKEN", admin_token)
    pytester.makepyfile(test_host=f'''
import json
from oversold.pytest_plugin import assert_sale_sound

def test_sale(oversold_run):
    result = oversold_run({str(scenario)!r}, duration_s=30)  # a bound: it ends when sold out (2.5 s here)
    assert_sale_sound(result)
    print("RUN_DIR", result.run_dir)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--oversold-host", node.url, timeout=300)
    result.assert_outcomes(passed=1)
    run_dir = Path(next(line.split("RUN_DIR ")[1] for line in result.outlines if "RUN_DIR " in line))
    logs = sorted(p.name for p in (run_dir / "logs").iterdir())
    assert "locust.log" in logs and not [n for n in logs if n.startswith(("node", "redis"))]  # none of its own
    client = node.client()
    assert client.sale("tiny")[1]["sold"] == 60  # the user's backend sold the sale
    client.close()


