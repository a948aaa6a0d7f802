"""The CI gate: `oversold run --host` against a backend somebody else runs, and the example
GitHub Actions workflow's steps run as written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from paths import REPO
from swarm_util import SHOP_KEY, shop_server
from tiny_scenario import write_tiny

from oversold.analysis.results import validate_results

pytestmark = pytest.mark.e2e

WORKFLOW = REPO / "examples" / "github-actions.yml"
VENV_BIN = Path(sys.executable).parent


def oversold(*args: str, token: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("OVERSOLD_ADMIN_TOKEN", None)
    if token is not None:
        env["OVERSOLD_ADMIN_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "oversold.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


# --------------------------------------------------------------------------- --host


def test_run_against_your_own_backend_passes_without_starting_one(backend, admin_token, tmp_path):
    """The user's backend: a reference node this test started, not the harness."""
    out = tmp_path / "run"
    r = oversold("run", str(write_tiny(tmp_path)), "--host", backend[0].url + "/", "--out", str(out),
                 token=admin_token)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node(s)" not in r.stdout and "redis:" not in r.stdout
    assert not list((out / "logs").glob("node*.log")), "the harness started a backend node of its own"
    assert not list((out / "logs").glob("redis*")), "the harness started a Redis the backend does not use"
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    assert results["verdict"] == "pass" and results["totals"]["sold"] == 60


def test_run_against_a_backend_that_oversells_exits_1(backend, admin_token, tmp_path):
    out = tmp_path / "run"
    r = oversold("run", str(write_tiny(tmp_path)), "--host", backend[0].url, "--strategy", "naive",
                 "--duration", "6", "--out", str(out), token=admin_token)  # naive never sells out: it runs to the end
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verdict: FAIL" in r.stdout and "no_oversell" in r.stdout
    assert json.loads((out / "results.json").read_text())["totals"]["oversold_units"] > 0


def test_a_wrong_admin_token_is_a_stand_up_failure(backend, tmp_path):
    r = oversold("run", str(write_tiny(tmp_path)), "--host", backend[0].url, "--out", str(tmp_path / "run"),
                 token="not-the-token")
    assert r.returncode == 5, r.stdout + r.stderr
    assert "401" in r.stderr


def test_without_a_token_the_cli_says_so(backend, tmp_path):
    r = oversold("run", str(write_tiny(tmp_path)), "--host", backend[0].url, "--out", str(tmp_path / "run"))
    assert r.returncode == 5
    assert "OVERSOLD_ADMIN_TOKEN is not set" in r.stderr


@pytest.mark.parametrize("host", ["ftp://127.0.0.1:1", "127.0.0.1:8000", "https://127.0.0.1:8443",
                                  "http://127.0.0.1:port", "http://127.0.0.1:1/?a=b"])
def test_a_bad_host_is_exit_4(host):
    r = oversold("run", "scenarios/flash_sale.yaml", "--host", host)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "--host" in r.stderr


# --------------------------------------------------------------------------- --host with --adapter

SHOP_ADAPTER = "oversold.adapters.shop:ShopAdapter"


def test_run_through_an_adapter_drives_a_backend_shaped_nothing_like_the_contract(tmp_path):
    """The example shop: no contract, no audit. The run sets the sale up, samples the counters and
    settles through the adapter; without an audit the checker decides what it can (inconclusive)."""
    out = tmp_path / "run"
    with shop_server(tmp_path) as shop:
        r = oversold("run", str(write_tiny(tmp_path)), "--host", shop, "--adapter", SHOP_ADAPTER, "--out", str(out),
                     token=SHOP_KEY)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "redis:" not in r.stdout and not list((out / "logs").glob("redis*")), "a --host run started a Redis"
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    status = {i["name"]: i["status"] for i in results["invariants"]}
    assert status["no_oversell"] == "pass" and status["no_lost_sale"] == "unknown"
    assert results["totals"]["acked_paid"] == 60  # sold out, through reserve/checkout
    assert yaml.safe_load((out / "scenario.yaml").read_text())["backend"]["adapter"] == SHOP_ADAPTER
    timeline = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert timeline and all("error" not in t for t in timeline), timeline[:3]
    assert timeline[-1]["sold"] == 60 and timeline[-1]["available"] == 0  # the shop's stock, in contract words
    final = json.loads((out / "final_state.json").read_text())
    assert final["counters"]["sold"] == 60 and final["audit"] is None


def test_run_through_an_adapter_fails_a_shop_that_oversells(tmp_path):
    out = tmp_path / "run"
    with shop_server(tmp_path, "--oversell") as shop:
        r = oversold("run", str(write_tiny(tmp_path)), "--host", shop, "--adapter", SHOP_ADAPTER, "--out", str(out),
                     token=SHOP_KEY)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verdict: FAIL" in r.stdout and "no_oversell" in r.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["totals"]["acked_paid"] > 60


def test_an_adapter_that_cannot_set_up_needs_the_sale_there_as_the_scenario_says(tmp_path):
    from oversold.adapters.http import AdapterClient
    from oversold.adapters.shop import ShopAdapter

    with shop_server(tmp_path) as shop:
        missing = oversold("run", str(write_tiny(tmp_path)), "--host", shop, "--adapter",
                           "tests.shop_adapters:NoSetupShop", "--out", str(tmp_path / "a"), token=SHOP_KEY)
        admin = AdapterClient(ShopAdapter(admin_token=SHOP_KEY), shop)
        assert admin.setup_sale("tiny", {"stock": 50, "hold_ttl_ms": 1000}).type == "ok"  # type: ignore[union-attr]
        admin.close()
        other_stock = oversold("run", str(write_tiny(tmp_path)), "--host", shop, "--adapter",
                               "tests.shop_adapters:NoSetupShop", "--out", str(tmp_path / "b"), token=SHOP_KEY)
    assert missing.returncode == 5, missing.stdout + missing.stderr
    assert "cannot set a sale up and sale 'tiny' cannot be read" in missing.stderr
    assert other_stock.returncode == 5, other_stock.stdout + other_stock.stderr
    assert "has stock 50, the scenario says 60 (sale.stock)" in other_stock.stderr


@pytest.mark.parametrize(("adapter", "says"), [
    ("oversold.adapters.shop", "--adapter: 'oversold.adapters.shop' must be 'package.module:ClassName'"),
    ("no_such_module:Shop", "backend.adapter (--adapter): cannot import no_such_module"),
    ("oversold.adapters.base:Request", "backend.adapter (--adapter): oversold.adapters.base:Request is not an"),
])
def test_a_bad_adapter_is_exit_4_before_anything_starts(adapter, says, tmp_path):
    r = oversold("run", str(write_tiny(tmp_path)), "--host", "http://127.0.0.1:9", "--adapter", adapter,
                 "--out", str(tmp_path / "run"))
    assert r.returncode == 4, r.stdout + r.stderr
    assert says in r.stderr
    assert not (tmp_path / "run" / "logs").exists()


# --------------------------------------------------------------------------- the example workflow


def workflow_steps() -> list[dict]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return job["steps"]


def run_step(command: str, workspace: Path, *extra: str) -> subprocess.CompletedProcess:
    """One `run:` step the way GitHub runs it (bash -e), in a checkout-like workspace."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("OVERSOLD_ADMIN_TOKEN", None)
    script = command.rstrip() + "".join(f" {a}" for a in extra)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=workspace,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def workspace(tmp_path) -> Path:
    """What the checkout step gives the later steps: the repository's scenarios at the root."""
    ws = tmp_path / "workspace"
    shutil.copytree(REPO / "scenarios", ws / "scenarios")
    return ws


def artifact_dir(workspace: Path) -> Path:
    upload = next(s for s in workflow_steps() if s.get("uses", "").startswith("actions/upload-artifact@"))
    return workspace / upload["with"]["path"]


def test_the_workflow_sale_step_passes_and_leaves_the_artifact(workspace):
    sale = next(s for s in workflow_steps() if s.get("id") == "sale")
    r = run_step(sale["run"], workspace, "--duration", "40")  # the scenario's bound is 60 s
    assert r.returncode == 0, r.stdout + r.stderr
    run = artifact_dir(workspace)
    for name in ("results.json", "report.html", "junit.xml", "history.jsonl", "scenario.yaml"):
        assert (run / name).stat().st_size > 0, name
    assert json.loads((run / "results.json").read_text())["verdict"] == "pass"
    junit = next(s for s in workflow_steps() if "junit" in s.get("uses", ""))
    cases = ET.parse(workspace / junit["with"]["report_paths"]).getroot().iter("testcase")
    assert {c.get("name") for c in cases} >= {"no_oversell", "no_lost_sale"}  # what the step publishes


def test_the_workflow_steps_work_with_oversold_installed_from_its_wheel(workspace, tmp_path):
    """`pip install .` (not editable): the wheel carries the locustfiles, Lua scripts and schema, so
    the sale step runs from a workspace holding only the scenarios, with no checkout on the path."""
    install = next(s for s in workflow_steps() if s.get("id") == "install")["run"]
    assert install.strip() == "python -m pip install ."
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "--quiet", "-w", str(wheels)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("oversold-*.whl")
    put = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert put.returncode == 0, put.stdout + put.stderr
    sale = next(s for s in workflow_steps() if s.get("id") == "sale")
    env = dict(os.environ, PATH=f"{site / 'bin'}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(site))  # before the venv's editable checkout
    env.pop("OVERSOLD_ADMIN_TOKEN", None)
    where = subprocess.run([sys.executable, "-c", "import oversold, reference_backend; "
                            "print(oversold.__file__, reference_backend.__file__)"],
                           cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.count(str(site)) == 2, where.stdout + where.stderr
    r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", sale["run"] + " --duration 20"],
                       cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    results = json.loads((artifact_dir(workspace) / "results.json").read_text())
    stock = yaml.safe_load((workspace / "scenarios" / "flash_sale.yaml").read_text())["sale"]["stock"]
    assert results["verdict"] == "pass" and results["totals"]["sold"] == stock


def test_the_workflow_sale_step_fails_the_job_when_the_backend_oversells(workspace):
    sale = next(s for s in workflow_steps() if s.get("id") == "sale")
    r = run_step(sale["run"], workspace, "--strategy", "naive", "--duration", "10")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (artifact_dir(workspace) / "results.json").exists(), "the artifact to upload is there on failure too"
