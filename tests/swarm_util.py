"""Helpers of the swarm tests: real ``locust`` subprocesses against real backends, and their results.

Nothing from Locust is imported here: importing locust monkey-patches the test process.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import yaml

from oversold.infra.procs import Child, free_port, wait_for_port
from oversold.model.history import Op, read_history

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILES = REPO / "locustfiles"
SCENARIOS = REPO / "scenarios"
SHOP_KEY = "shop-admin"  # the example shop's admin key (tests/shop_app.py), the adapter's admin token


@contextmanager
def shop_server(log_dir: Path, *args: str) -> Iterator[str]:
    """The example shop (``tests/shop_app.py``) in its own process on a free loopback port; yields its URL."""
    port = free_port()
    child = Child.start([sys.executable, str(REPO / "tests" / "shop_app.py"), "--port", str(port),
                         "--admin-key", SHOP_KEY, *args], name="shop", log_dir=log_dir)
    try:
        assert wait_for_port(port, timeout=10, child=child), child.log_tail()
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def scenario_file(tmp_path: Path, base: str | None, name: str, **changes: Any) -> Path:
    """A scenario YAML in ``tmp_path``: ``scenarios/<base>.yaml`` (or nothing) with ``changes`` merged in.

    ``changes`` are top-level sections, merged one level deep (``sale={"strategy": "naive"}``).
    """
    data: dict[str, Any] = yaml.safe_load((SCENARIOS / f"{base}.yaml").read_text()) if base else {}
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def locust_env(admin_token: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OVERSOLD_ADMIN_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    if admin_token:
        env["OVERSOLD_ADMIN_TOKEN"] = admin_token
    env.update(extra)
    return env


def wait(child: Child, timeout: float) -> int:
    try:
        return child.popen.wait(timeout=timeout)
    except Exception:
        child.stop()
        pytest.fail(f"{child.name} did not finish in {timeout}s:\n{child.log_tail(60)}")
    raise AssertionError("unreachable")


def loopback_master(port: int) -> list[str]:
    return ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--master-host", "127.0.0.1", "--master-port", str(port)]


@dataclass
class Run:
    """One finished ``locust`` run: exit code, log, and its run directory's files."""

    rc: int
    log: str
    run_dir: Path

    @property
    def results(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "results.json").read_text())

    @property
    def ops(self) -> list[Op]:
        return read_history(self.run_dir / "history.jsonl")

    def invariant(self, name: str) -> dict[str, Any]:
        return next(i for i in self.results["invariants"] if i["name"] == name)

    def metric(self, name: str, stat: str) -> Any:
        return self.results["metrics"][name][stat]


def run_locust(
    tmp_path: Path, locustfile: str | Path, urls: Sequence[str], scenario: Path, *, users: int, run_time: str,
    admin_token: str | None, extra: Sequence[str] = (), processes: int = 0, timeout: float = 90, name: str = "locust",
) -> Run:
    """``locust -f <locustfile> --headless`` on its own (it sets the sale up and checks the run)."""
    run_dir = tmp_path / f"{name}-run"
    path = Path(locustfile)
    if not path.is_absolute():
        path = LOCUSTFILES / path
    argv = [
        sys.executable, "-m", "locust", "-f", str(path), "--headless", "--only-summary",
        "--host", urls[0], "--oversold-nodes", ",".join(urls), "-u", str(users), "-r", str(users), "-t", run_time,
        "--oversold-scenario", str(scenario), "--oversold-setup-sale", "--oversold-results", str(run_dir), *extra,
    ]
    if processes:
        argv += ["--processes", str(processes), *loopback_master(free_port())]
    child = Child.start(argv, name=name, log_dir=tmp_path, env=locust_env(admin_token), cwd=REPO)
    rc = wait(child, timeout)
    return Run(rc=rc, log=child.log_tail(400), run_dir=run_dir)
