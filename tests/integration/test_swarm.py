"""The swarm: recorder units (pure), and real Locust runs against real backend nodes.

The runs are real ``locust`` subprocesses (local, ``--processes 2``, and a
``--master`` with two separate ``--worker`` processes) against the two real
reference backend nodes of ``tests/conftest.py``, over real Redis. Nothing from
Locust is imported here: importing locust monkey-patches the test process.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths import REPO

from oversold.adapters.contract_client import ContractClient
from oversold.infra.procs import Child, free_port
from oversold.model.history import Op, read_history

FLASH_SALE = REPO / "locustfiles" / "flash_sale.py"

# -- pure units -----------------------------------------------------------------------


# -- real runs ------------------------------------------------------------------------

# A test-only locustfile: the flash sale, plus each process writing how many
# records it made (at Locust's very last event) so the test can tell whether
# the master's history lost any.
COUNTING_LOCUSTFILE = '''
import json, os
from locust import events
from oversold.swarm import plugin
from oversold.swarm.runtime import runtime_of
from oversold.swarm.users import Buyer, HoldHoarder  # noqa: F401

plugin.install()
_envs = []


@events.init.add_listener
def _keep(environment, **_):
    _envs.append(environment)


@events.quit.add_listener
def _count(exit_code, **_):
    rt = runtime_of(_envs[0])
    out = os.path.join(os.environ["OVERSOLD_TEST_COUNTS"], f"{rt.role}-{os.getpid()}.json")
    with open(out, "w") as f:
        json.dump({"role": rt.role, "tag": rt.worker_tag, "total": rt.recorder.total}, f)
'''


def _scenario(tmp_path: Path, sale_id: str, *, stock: int, stop_when_sold_out: bool = True) -> Path:
    data = {
        "seed": 11,
        "sale": {"id": sale_id, "stock": stock, "hold_ttl_ms": 800, "strategy": "pre_deduct"},
        "swarm": {
            "request_timeout_s": 2,
            "stop_when_sold_out": stop_when_sold_out,
            "mix": {"buyer": 4, "hoarder": 1},
            "buyer": {"qty": 1, "wait_ms": [20, 120], "pay_delay_ms": [10, 80], "cancel_rate": 0.1},
            "hoarder": {"qty": 1, "wait_ms": [150, 300]},
        },
    }
    path = tmp_path / f"{sale_id}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _locust_env(admin_token: str, counts: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, OVERSOLD_ADMIN_TOKEN=admin_token, PYTHONUNBUFFERED="1")
    if counts is not None:
        env["OVERSOLD_TEST_COUNTS"] = str(counts)
    return env


def _swarm_argv(locustfile: Path, nodes: list[Any], scenario: Path, history: Path, run_time: str) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--host", nodes[0].url, "--oversold-nodes", ",".join(n.url for n in nodes),
        "-u", "30", "-r", "30", "-t", run_time,
        "--oversold-scenario", str(scenario), "--oversold-history", str(history), "--oversold-setup-sale",
    ]


def _wait(child: Child, timeout: float) -> int:
    try:
        return child.popen.wait(timeout=timeout)
    except Exception:
        child.stop()
        pytest.fail(f"{child.name} did not finish in {timeout}s:\n{child.log_tail(40)}")
    raise AssertionError("unreachable")


def _audit(node: Any, admin_token: str, sale_id: str) -> dict[str, Any]:
    client = ContractClient(node.url, admin_token=admin_token)
    try:
        status, audit = client.audit(sale_id)
    finally:
        client.close()
    assert status == 200, audit
    return audit


def _check_history(ops: list[Op], audit: dict[str, Any], sale_id: str) -> dict[str, Any]:
    """Every property of a healthy run's history; returns some numbers for the caller."""
    assert ops, "empty history"
    invokes = {o.op_id: o for o in ops if o.type == "invoke"}
    completions = [o for o in ops if o.type != "invoke"]
    assert len(invokes) == sum(o.type == "invoke" for o in ops), "duplicate op_id among invokes"
    assert len({o.op_id for o in completions}) == len(completions), "an operation completed twice"
    for c in completions:
        inv = invokes.get(c.op_id)
        assert inv is not None, f"completion without invoke: {c}"
        assert (inv.op, inv.user_id, inv.kind, inv.key) == (c.op, c.user_id, c.kind, c.key)
        assert inv.time <= c.time and c.latency_ms is not None and c.latency_ms >= 0
    # the drain let every in-flight request finish: no lone invoke on a healthy backend
    lone = set(invokes) - {c.op_id for c in completions}
    assert not lone, f"{len(lone)} invokes without completion, e.g. {sorted(lone)[:3]}"
    assert {o.op for o in ops} <= {"order", "pay", "cancel"}
    assert {o.kind for o in ops} == {"buyer", "hoarder"}
    assert all(o.sale_id == sale_id for o in ops)
    assert all(re.fullmatch(rf"{o.kind}-[0-9]+-[0-9]+", o.user_id) and o.process == o.user_id for o in ops)
    assert all(o.op == "order" for o in ops if o.kind == "hoarder"), "a hoarder paid or cancelled"
    keys = [o.key for o in invokes.values()]
    assert all(keys) and len(set(keys)) == len(keys), "idempotency keys must be unique per operation"
    assert not [c for c in completions if c.type == "info"], "unknown outcomes on a healthy backend"
    # pays and cancels only for orders the same user got, with the ids the backend gave
    held = {(c.user_id, c.order_id) for c in completions if c.op == "order" and c.type == "ok"}
    assert all(c.order_id for c in completions if c.op == "order" and c.type == "ok")
    for inv in invokes.values():
        if inv.op in ("pay", "cancel"):
            assert (inv.user_id, inv.order_id) in held
    ok_pays = {c.order_id for c in completions if c.op == "pay" and c.type == "ok"}
    sold = {s["order_id"] for s in audit["sold"]}
    assert ok_pays and ok_pays <= sold, f"acknowledged payments missing from the sold list: {ok_pays - sold}"
    assert sold <= ok_pays, f"sold orders no recorded payment acknowledged: {sold - ok_pays}"
    codes = Counter(c.code for c in completions if c.type == "fail")
    return {"ok_pays": len(ok_pays), "codes": codes, "records": len(ops),
            "workers": {o.user_id.split("-")[1] for o in ops}}


def test_local_run_records_everything_and_stops_when_sold_out(tmp_path: Path, backend, admin_token: str) -> None:
    stock = 40
    scenario = _scenario(tmp_path, "local1", stock=stock)
    history = tmp_path / "history.jsonl"
    started = time.monotonic()
    child = Child.start(_swarm_argv(FLASH_SALE, backend, scenario, history, "60s"), name="locust",
                        log_dir=tmp_path, env=_locust_env(admin_token), cwd=REPO)
    rc = _wait(child, 60)
    elapsed = time.monotonic() - started
    log = child.log_tail(400)
    assert rc == 0, log
    assert "sold-out watch: sale sold out" in log, log
    assert elapsed < 40, f"took {elapsed:.1f}s with -t 60s: the sold-out stop did not end the run early"
    audit = _audit(backend[0], admin_token, "local1")
    assert audit["counters"]["sold"] == stock and audit["counters"]["available"] == 0
    numbers = _check_history(read_history(history), audit, "local1")
    assert numbers["ok_pays"] == stock
    assert numbers["codes"]["sold_out"] > 0  # buyers kept trying after the stock ran out
    assert numbers["workers"] == {"0"}


def _counts(counts: Path, role: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(counts.glob(f"{role}-*.json"))]


def test_processes_2_loses_nothing(tmp_path: Path, backend, admin_token: str) -> None:
    stock = 60
    scenario = _scenario(tmp_path, "procs2", stock=stock)
    history, counts = tmp_path / "history.jsonl", tmp_path / "counts"
    counts.mkdir()
    locustfile = tmp_path / "counting_locustfile.py"
    locustfile.write_text(COUNTING_LOCUSTFILE)
    port = free_port()
    argv = _swarm_argv(locustfile, backend, scenario, history, "60s") + [
        "--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--master-host", "127.0.0.1", "--master-port", str(port),
    ]
    started = time.monotonic()
    child = Child.start(argv, name="locust", log_dir=tmp_path, env=_locust_env(admin_token, counts), cwd=REPO)
    rc = _wait(child, 60)
    log = child.log_tail(400)
    assert rc == 0, log
    assert time.monotonic() - started < 40, "the sold-out stop did not end the distributed run early (-t 60s)"
    workers = _counts(counts, "worker")
    assert len(workers) == 2 and all(w["total"] > 0 for w in workers), (workers, log)
    ops = read_history(history)
    assert len(ops) == sum(w["total"] for w in workers), f"master has {len(ops)} records, workers made {workers}"
    audit = _audit(backend[1], admin_token, "procs2")
    numbers = _check_history(ops, audit, "procs2")
    assert numbers["ok_pays"] == stock and numbers["workers"] == {"0", "1"}


def test_master_and_two_workers_lose_nothing(tmp_path: Path, backend, admin_token: str) -> None:
    # a big stock and no sold-out stop: users are busy when -t ends, so the end
    # of the run has in-flight requests and unshipped rows for the handshake
    scenario = _scenario(tmp_path, "mw1", stock=100_000, stop_when_sold_out=False)
    history, counts = tmp_path / "history.jsonl", tmp_path / "counts"
    counts.mkdir()
    locustfile = tmp_path / "counting_locustfile.py"
    locustfile.write_text(COUNTING_LOCUSTFILE)
    port = free_port()
    env = _locust_env(admin_token, counts)
    master = Child.start(
        _swarm_argv(locustfile, backend, scenario, history, "4s")
        + ["--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)],
        name="master", log_dir=tmp_path, env=env, cwd=REPO,
    )
    # workers get only what a worker needs: the config comes from the master
    worker_env = {k: v for k, v in env.items() if k != "OVERSOLD_ADMIN_TOKEN"}
    workers = [
        Child.start([sys.executable, "-m", "locust", "-f", str(locustfile), "--worker",
                     "--master-host", "127.0.0.1", "--master-port", str(port)],
                    name=f"worker{i}", log_dir=tmp_path, env=worker_env, cwd=tmp_path)
        for i in (1, 2)
    ]
    try:
        rc = _wait(master, 60)
        for w in workers:
            _wait(w, 30)
    finally:
        for w in workers:
            w.stop()
        master.stop()
    log = master.log_tail(400)
    assert rc == 0, log
    assert "history complete from 2 worker(s)" in log, log
    made = _counts(counts, "worker")
    assert len(made) == 2 and all(w["total"] > 0 for w in made), (made, log)
    ops = read_history(history)
    assert len(ops) == sum(w["total"] for w in made), f"master has {len(ops)} records, workers made {made}"
    audit = _audit(backend[0], admin_token, "mw1")
    assert audit["counters"]["available"] > 0  # not sold out: the run ended by -t
    numbers = _check_history(ops, audit, "mw1")
    assert numbers["workers"] == {"0", "1"}
    assert numbers["codes"]["sold_out"] == 0


def test_users_spread_over_nodes_and_refused_is_fail(tmp_path: Path, backend, admin_token: str) -> None:
    # node 2 of 2 is a closed port: exactly the users with an odd index talk to it,
    # and every one of their operations is a definite "fail" without a status
    scenario = _scenario(tmp_path, "spread1", stock=100_000, stop_when_sold_out=False)
    history = tmp_path / "history.jsonl"
    closed = f"http://127.0.0.1:{free_port()}"
    argv = _swarm_argv(FLASH_SALE, [backend[0]], scenario, history, "3s")
    argv[argv.index("--oversold-nodes") + 1] = f"{backend[0].url},{closed}"
    argv[argv.index("-u") + 1] = "8"
    child = Child.start(argv, name="locust", log_dir=tmp_path, env=_locust_env(admin_token), cwd=REPO)
    _wait(child, 60)
    ops = read_history(history)
    by_parity: dict[int, set[str]] = {0: set(), 1: set()}
    for o in ops:
        if o.type == "invoke":
            continue
        odd = int(o.user_id.rsplit("-", 1)[1]) % 2
        by_parity[odd].add(o.type)
        if odd:
            assert (o.type, o.status, o.code, o.op) == ("fail", None, None, "order"), o
        else:
            assert o.status is not None and o.type != "info", o
    assert by_parity[1] == {"fail"} and "ok" in by_parity[0], (by_parity, child.log_tail(60))
    assert "ConnectionRefusedError" in child.log_tail(60)  # a Locust failure, unlike sold_out


def test_setup_sale_without_admin_token_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OVERSOLD_ADMIN_TOKEN"}
    child = Child.start(
        [sys.executable, "-m", "locust", "-f", str(FLASH_SALE), "--headless", "-t", "2s",
         "--host", f"http://127.0.0.1:{free_port()}", "--oversold-setup-sale",
         "--oversold-history", str(tmp_path / "h.jsonl")],
        name="locust", log_dir=tmp_path, env=env, cwd=REPO,
    )
    rc = _wait(child, 30)
    assert rc != 0
    assert "--oversold-setup-sale needs --oversold-admin-token" in child.log_tail(50)
    assert not (tmp_path / "h.jsonl").exists()


def test_without_an_admin_token_the_run_says_why_the_audit_is_missing_once(backend, admin_token, tmp_path):
    """A user who forgot OVERSOLD_ADMIN_TOKEN: warned when the test starts, and the verdict says once why the
    audit is missing (every invariant that needs it is unknown: exit 2), instead of only "missing" six times."""
    scenario = _scenario(tmp_path, "notoken", stock=20)
    client = ContractClient(backend[0].url, admin_token=admin_token)
    try:  # the sale exists already: the run itself has no token to create it
        assert client.put_sale("notoken", stock=20, hold_ttl_ms=800, strategy="pre_deduct")[0] == 200
    finally:
        client.close()
    argv = [a for a in _swarm_argv(FLASH_SALE, backend, scenario, tmp_path / "h.jsonl", "4s")
            if a != "--oversold-setup-sale"]
    env = {k: v for k, v in _locust_env(admin_token).items() if k != "OVERSOLD_ADMIN_TOKEN"}
    child = Child.start(argv, name="locust-notoken", log_dir=tmp_path, env=env, cwd=REPO)
    rc = _wait(child, 90)
    log = child.log_tail(400)
    assert rc == 2, log
    assert "no admin token ($OVERSOLD_ADMIN_TOKEN or --oversold-admin-token)" in log  # said at the start
    assert log.count("note: the audit is missing because no admin token was given") == 1
    assert log.count("OVERSOLD_ADMIN_TOKEN, or pass --oversold-admin-token") == 1
