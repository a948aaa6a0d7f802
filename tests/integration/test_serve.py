"""``oversold serve``: Redis and reference nodes kept up for plain ``locust -f``, stopped cleanly on SIGTERM.

A real ``oversold serve`` process, a real headless ``locust`` run against what it
serves (as the README tells a user to do), then SIGTERM: everything it started is
gone and its state file with it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import yaml
from paths import REPO
from swarm_util import run_locust

from oversold.chaos.leftovers import PROCESSES_FILE
from oversold.infra.procs import port_open


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_serve_stands_up_redis_and_nodes_for_plain_locust_and_cleans_up_on_sigterm(tmp_path):
    state_dir, out = tmp_path / "state", tmp_path / "served"
    scenario = tmp_path / "served.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "served", "sale": {"id": "served", "stock": 40, "hold_ttl_ms": 1000}, "backend": {"nodes": 2},
        "swarm": {"users": 20, "spawn_rate": 20, "duration_s": 20, "mix": {"buyer": 1, "hoarder": 0}},
        "checker": {"grace_ms": 1500, "quiesce_timeout_s": 15}}))
    env = {k: v for k, v in os.environ.items() if k != "OVERSOLD_ADMIN_TOKEN"}
    serve = subprocess.Popen([sys.executable, "-m", "oversold.cli", "serve", str(scenario), "--dir", str(out)],
                             cwd=REPO, env=dict(env, OVERSOLD_STATE_DIR=str(state_dir), PYTHONUNBUFFERED="1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "serve.json").exists():
            assert serve.poll() is None and time.monotonic() < deadline, serve.communicate()
            time.sleep(0.1)
        served = json.loads((out / "serve.json").read_text())
        token_file = Path(served["admin_token_file"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(served["nodes"]) == 2 and all(port_open(int(u.rsplit(":", 1)[1])) for u in served["nodes"])

        # what the README says a Locust user runs next: plain locust against the served nodes
        run = run_locust(tmp_path, "flash_sale.py", served["nodes"], Path(served["scenario"]), users=20,
                         run_time="20s", admin_token=token)
        assert run.rc == 0, run.log
        assert run.results["verdict"] == "pass" and run.results["totals"]["sold"] == 40

        serve.send_signal(signal.SIGTERM)
        stdout, stderr = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:  # a failed assertion above: stop it the clean way, so nothing is left
            serve.send_signal(signal.SIGTERM)
            try:
                serve.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
    assert serve.returncode == 0, stderr
    assert "locust -f" in stdout and "--web-host 127.0.0.1" in stdout and f"--oversold-nodes {','.join(served['nodes'])}" in stdout
    assert token not in stdout + stderr  # the token stays in its file
    assert "oversold serve: stopped" in stderr
    started = [json.loads(line) for line in (out / PROCESSES_FILE).read_text().splitlines() if line.strip()]
    assert len([e for e in started if e["kind"] == "pid"]) >= 3  # redis and two nodes at least
    assert not [e for e in started if e["kind"] == "pid" and _alive(e["pid"])]
    assert not any(port_open(int(u.rsplit(":", 1)[1])) for u in served["nodes"])
    assert list(state_dir.glob("*.jsonl")) == []
