"""The CLI's contract with its caller: exit statuses and clear messages for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paths import REPO

from oversold.infra.procs import free_port


def oversold(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oversold.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_missing_scenario_file_is_exit_4(tmp_path):
    r = oversold("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 4
    assert "nope.yaml" in r.stderr and "cannot read" in r.stderr


def test_malformed_scenario_lists_every_problem_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sale:\n  stock: -5\n  strategy: magic\nswarm:\n  users: zero\n")
    r = oversold("run", str(bad))
    assert r.returncode == 4
    for path in ("sale.stock", "sale.strategy", "swarm.users"):
        assert path in r.stderr
    assert "3 problem(s)" in r.stderr


def test_unknown_strategy_flag_is_exit_4():
    r = oversold("run", "scenarios/flash_sale.yaml", "--strategy", "telepathy")
    assert r.returncode == 4
    assert "--strategy" in r.stderr and "telepathy" in r.stderr


def test_an_out_of_range_duration_is_exit_4_before_anything_starts(tmp_path):
    for command in ("run", "bench"):
        r = oversold(command, "scenarios/flash_sale.yaml", "--duration", "-5", "--out", str(tmp_path / command))
        assert r.returncode == 4, (command, r.stderr)
        assert "--duration: -5.0 must be a number from 1 to 86400" in r.stderr
        assert not (tmp_path / command).exists()  # no Redis, no nodes, no run directory


def test_unknown_flag_is_exit_4_not_argparse_2():
    r = oversold("run", "scenarios/flash_sale.yaml", "--no-such-flag")
    assert r.returncode == 4
    assert "--no-such-flag" in r.stderr


def test_unreachable_redis_is_exit_5(tmp_path):
    port = free_port()  # nothing listens there
    r = oversold("run", "scenarios/flash_sale.yaml", "--redis-url", f"redis://127.0.0.1:{port}/0", "--out", str(tmp_path / "run"))
    assert r.returncode == 5
    assert f"127.0.0.1:{port}" in r.stderr


def test_check_on_a_directory_that_is_not_a_run_is_exit_4(tmp_path):
    r = oversold("check", str(tmp_path))
    assert r.returncode == 4
    assert "not a run directory" in r.stderr
