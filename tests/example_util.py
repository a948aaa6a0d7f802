"""Helpers of the example tests: copy an example into a working directory and run it as a user would."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from paths import REPO

from oversold.infra.procs import Child, free_port, wait_for_port

OVERSOLD = Path(sys.executable).with_name("oversold")


def copy_example(name: str, where: Path) -> Path:
    """The example's files in ``where`` (a user's project directory), nothing else."""
    shutil.copytree(REPO / "examples" / name, where, ignore=shutil.ignore_patterns("__pycache__"))
    return where


def start_app(argv: list[str], cwd: Path, *, name: str = "shop") -> tuple[Child, str]:
    """The user's backend on a free loopback port; waits until it listens."""
    port = free_port()
    child = Child.start([sys.executable, *argv, "--port", str(port)], name=name, log_dir=cwd / "logs", cwd=cwd)
    if not wait_for_port(port, timeout=20, child=child):
        child.stop()
        raise AssertionError(f"{name} did not listen on {port}: {child.log_tail(20)}")
    return child, f"http://127.0.0.1:{port}"


def harness_starts_the_shop(cwd: Path, faults: list[dict[str, Any]], *, stock: int = 400, duration_s: float = 5,
                            **chaos: Any) -> str:
    """The SQLite shop's scenario in ``cwd`` turned into one where the harness starts the shop itself
    (``chaos.processes`` with a command, on a free port) with ``faults`` and more ``chaos`` parts; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = yaml.safe_load((cwd / "scenario.yaml").read_text())
    data["backend"]["url"] = url
    data["sale"]["stock"] = stock  # enough that the load is still on when the faults come
    data["swarm"]["duration_s"] = duration_s  # an upper bound: the run stops once the stock is gone
    data["chaos"] = {"processes": [{"role": "shop", "command": [sys.executable, "app.py", "--db", "shop.db",
                                                                 "--port", str(port)],
                                    "ready_url": f"{url}/health"}], **chaos}
    data["faults"] = faults
    (cwd / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return url


def set_options(scenario: Path, **options: Any) -> None:
    """Change the scenario's ``backend.adapter_options`` (and ``seed``) as a user edits the file."""
    data = yaml.safe_load(scenario.read_text())
    seed = options.pop("seed", None)
    if seed is not None:
        data["seed"] = seed
    data["backend"]["adapter_options"].update(options)
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))


def oversold_run(cwd: Path, url: str, out: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    """``oversold run scenario.yaml --host URL`` in the user's directory: exit status, results.json, output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(OVERSOLD), "run", "scenario.yaml", "--host", url, "--out", out, "-q", *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    results_path = cwd / out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


class Postgres:
    """Debian's PostgreSQL on a free loopback port with its own data directory, as a user would start it
    for a test: ``initdb`` (trust auth, user ``shop``), ``pg_ctl start``, ``createdb shop``; stopped and
    removed on exit. As root it runs as the ``postgres`` account (PostgreSQL refuses to run as root).

    Usage::

        with Postgres.start() as pg:
            pg.dsn   # "host=127.0.0.1 port=PORT dbname=shop user=shop"
    """

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.dsn = f"host=127.0.0.1 port={port} dbname=shop user=shop"

    @staticmethod
    def bindir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise AssertionError("PostgreSQL is not installed: scripts/system-deps.sh installs Debian's postgresql")
        return Path(found[-1]).parent

    def _run(self, *argv: str) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed: {proc.stdout}{proc.stderr}")

    @classmethod
    def start(cls) -> "Postgres":
        # not under pytest's tmp_path: the postgres account must be able to reach its directory
        root = Path(tempfile.mkdtemp(prefix="oversold-example-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pg = cls(cls.bindir(), root, free_port())
        pg._run(str(pg.bindir / "initdb"), "-D", str(root / "data"), "-U", "shop", "--auth=trust", "-E", "UTF8")
        try:
            pg._run(str(pg.bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
                    "-o", f"-p {pg.port} -k {root} -c listen_addresses=127.0.0.1", "start")
            pg._run(str(pg.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "shop", "shop")
        except BaseException:
            pg.stop()
            raise
        return pg

    def stop(self) -> None:
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Postgres":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
