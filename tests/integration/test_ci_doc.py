"""docs/ci.md "Testing your own backend": every command of its blocks, run as written.

The blocks are read from the document itself (fenced as ``bash ci-gate`` and
``bash ci-gate-broken``), so the document cannot drift from what works. Only the
port changes: 8080 becomes a free loopback port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from oversold.infra.procs import free_port

pytestmark = pytest.mark.e2e


def block(name: str) -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    found = re.search(rf"```bash {re.escape(name)}\n(.*?)```", text, re.S)
    assert found, f"docs/ci.md has no ```bash {name} block"
    return found.group(1)


def run_block(name: str, where: Path) -> subprocess.CompletedProcess[str]:
    shutil.copytree(REPO / "examples", where / "examples", ignore=shutil.ignore_patterns("__pycache__", "*.db*"))
    script = block(name).replace("8080", str(free_port()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-c", script], cwd=where, env=env, capture_output=True, text=True, timeout=300)


def test_the_gate_of_docs_ci_passes_on_the_correct_backend(tmp_path: Path) -> None:
    proc = run_block("ci-gate", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout
    assert (tmp_path / "myshop" / "run" / "results.json").exists()


def test_the_gate_of_docs_ci_fails_on_the_broken_backend(tmp_path: Path) -> None:
    proc = run_block("ci-gate-broken", tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: FAIL" in proc.stdout and "oversold units 0" not in proc.stdout
