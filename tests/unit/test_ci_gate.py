"""The CI gate: `oversold run --host` against a backend somebody else runs, and the example
GitHub Actions workflow's steps run as written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from paths import REPO

WORKFLOW = REPO / "examples" / "github-actions.yml"


def oversold(*args: str, token: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("OVERSOLD_ADMIN_TOKEN", None)
    if token is not None:
        env["OVERSOLD_ADMIN_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "oversold.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


# --------------------------------------------------------------------------- --host


# --------------------------------------------------------------------------- --host with --adapter


# --------------------------------------------------------------------------- the example workflow


def workflow_steps() -> list[dict]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return job["steps"]


def test_the_example_workflow_has_the_steps_a_reader_expects():
    steps = workflow_steps()
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert "pip install" in next(s for s in steps if s.get("id") == "install")["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "always()" in str(upload.get("if")), "a failed sale must still upload its counterexamples"
    junit = next(s for s in steps if "junit" in s.get("uses", ""))
    assert "always()" in str(junit.get("if")), "a failed sale must still show its test cases"
    sale = next(s for s in steps if s.get("id") == "sale")
    assert sale["run"].strip() == "oversold run scenarios/flash_sale.yaml --out run"
    assert "shell" not in sale  # GitHub's default bash fails the step, so the job, on a non-zero exit


@pytest.fixture
def workspace(tmp_path) -> Path:
    """What the checkout step gives the later steps: the repository's scenarios at the root."""
    ws = tmp_path / "workspace"
    shutil.copytree(REPO / "scenarios", ws / "scenarios")
    return ws


