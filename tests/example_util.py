"""Helpers of the example tests: copy an example into a working directory and run it as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
