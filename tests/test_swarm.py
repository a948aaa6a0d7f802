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

from oversold.adapters.contract_client import ContractClient
from oversold.adapters.outcome import classify, outcome_of
from oversold.errors import BadInput
from oversold.infra.procs import Child, free_port
from oversold.model.history import Op, read_history
from oversold.model.scenario import Scenario
from oversold.swarm.collector import Collector
from oversold.swarm.config import SwarmConfig, parse_nodes
from oversold.swarm.recorder import ROW_FIELDS, Recorder, to_op
from oversold.swarm.soldout import SoldOutWatch, is_sold_out

REPO = Path(__file__).resolve().parents[1]
FLASH_SALE = REPO / "locustfiles" / "flash_sale.py"

# -- pure units -----------------------------------------------------------------------


class _Wrapped(Exception):
    """Stands in for geventhttpclient's RetriesExceeded(original=...)."""

    def __init__(self, original: BaseException) -> None:
        super().__init__("retries exceeded")
        self.original = original


@pytest.mark.parametrize(
    "status, error, expected",
    [
        (200, None, "ok"),
        (201, None, "ok"),
        (400, None, "fail"),
        (404, None, "fail"),
        (409, None, "fail"),
        (422, None, "fail"),
        (500, None, "info"),
        (503, None, "info"),
        (302, None, "info"),  # never part of the contract: unknown
        (0, ConnectionRefusedError(111, "refused"), "fail"),
        (None, ConnectionRefusedError(111, "refused"), "fail"),
        (0, _Wrapped(ConnectionRefusedError(111, "refused")), "fail"),
        (0, TimeoutError("timed out"), "info"),
        (0, _Wrapped(TimeoutError("timed out")), "info"),
        (0, ConnectionResetError(104, "reset"), "info"),
        (0, OSError("connection closed."), "info"),
        (0, None, "info"),
    ],
)
def test_classify(status: int | None, error: BaseException | None, expected: str) -> None:
    assert classify(status, error) == expected


def test_classify_refused_only_through_explicit_wrapping() -> None:
    # a refused connection seen earlier (implicit __context__) must not make a timeout a "fail"
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError:
            raise TimeoutError("timed out")
    except TimeoutError as e:
        assert classify(0, e) == "info"


def test_outcome_of_parses_code_order_id_and_locust_verdict() -> None:
    placed = outcome_of(201, b'{"order_id": "17", "status": "held"}', None)
    assert (placed.type, placed.order_id, placed.code, placed.locust_failure()) == ("ok", "17", None, None)

    sold_out = outcome_of(409, b'{"error": {"code": "sold_out", "message": "qty: none left"}}', None)
    assert (sold_out.type, sold_out.code, sold_out.locust_failure()) == ("fail", "sold_out", None)

    bad = outcome_of(400, b'{"error": {"code": "bad_request", "message": "qty"}}', None)
    assert bad.type == "fail" and bad.locust_failure() == "HTTP 400 bad_request"

    down = outcome_of(503, b'{"error": {"code": "unavailable", "message": "redis"}}', None)
    assert down.type == "info" and down.locust_failure() == "HTTP 503 unavailable"

    garbage = outcome_of(502, b"<html>bad gateway</html>", None)
    assert (garbage.type, garbage.code, garbage.body) == ("info", None, None)

    refused = outcome_of(0, None, ConnectionRefusedError(111, "refused"))
    assert refused.type == "fail" and "ConnectionRefusedError" in (refused.locust_failure() or "")


def test_recorder_rows_are_ops_in_field_order() -> None:
    now = iter([100.0, 100.5, 101.0, 101.2])
    perf = iter([10.0, 10.25, 20.0])
    rec = Recorder(clock=lambda: next(now), perf=lambda: next(perf))
    p = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer", op="order", sku="s", qty=2, key="k1")
    assert rec.in_flight == 1
    rec.complete(p, "ok", status=201, order_id="17")
    rec.complete(p, "info", status=503)  # a second completion is ignored
    assert rec.in_flight == 0
    ops = [to_op(r) for r in rec.take()]
    assert ops == [
        Op(type="invoke", op_id="buyer-0-1-1", time=100.0, process="buyer-0-1", user_id="buyer-0-1",
           kind="buyer", op="order", sku="s", qty=2, key="k1"),
        Op(type="ok", op_id="buyer-0-1-1", time=100.5, process="buyer-0-1", user_id="buyer-0-1",
           kind="buyer", op="order", sku="s", qty=2, order_id="17", key="k1", status=201, latency_ms=250.0),
    ]
    assert len(ROW_FIELDS) == len(ops[0].to_dict())
    # an abandoned operation (user killed mid-request) keeps its lone invoke
    q = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer", op="pay", sku="s", order_id="17")
    rec.abandon(q)
    rec.complete(q, "ok", status=200)  # too late: ignored
    assert rec.in_flight == 0
    rows = rec.take()
    assert [r[0] for r in rows] == ["invoke"] and rows[0][1] == "buyer-0-1-2"
    assert rec.total == 3 and rec.take() == []
    rec.untake(rows)
    assert rec.pending_rows() == 1 and rec.total == 3


def test_op_ids_unique_per_process_name() -> None:
    rec = Recorder()
    ids = [rec.next_op_id(p) for p in ("buyer-0-1", "buyer-1-1", "buyer-0-1", "buyer-0-11")]
    assert ids == ["buyer-0-1-1", "buyer-1-1-1", "buyer-0-1-2", "buyer-0-11-1"]


def _row(op_id: str, t: float, type_: str = "invoke") -> tuple[Any, ...]:
    return (type_, op_id, t, "p", "p", "buyer", "order", "s", 1, None, None, None, None, None)


def test_collector_completeness_and_atomic_write(tmp_path: Path) -> None:
    c = Collector()
    assert c.incomplete(["w1"]) == {"w1": "no final batch yet (0 rows so far)"}
    c.add("w1", [_row("a-1", 2.0), _row("a-1", 3.0, "ok")])
    c.add("w2", [_row("b-1", 1.0)], total=2)  # announces 2, has 1
    assert set(c.incomplete(["w1"])) == {"w1", "w2"}
    c.add("w1", [], total=2)
    c.add("w2", [_row("b-1", 1.5, "fail")])
    assert c.incomplete(["w1", "w2"]) == {}
    c.add("w2", [], total=1)  # an older, smaller total never lowers the bar
    assert c.totals["w2"] == 2
    path = tmp_path / "sub" / "history.jsonl"
    assert c.dirty and c.write(path) == 4 and not c.dirty
    ops = read_history(path)
    assert [o.time for o in ops] == [1.0, 1.5, 2.0, 3.0]
    assert not list(path.parent.glob(".*.tmp"))


def test_is_sold_out() -> None:
    assert is_sold_out({"available": 0, "held": 0, "sold": 5})
    assert is_sold_out({"available": -2, "held": 0})  # an overselling backend
    assert not is_sold_out({"available": 0, "held": 1})
    assert not is_sold_out({"available": 3, "held": 0})
    assert not is_sold_out(None) and not is_sold_out({}) and not is_sold_out({"available": "x", "held": 0})


def test_sold_out_watch_fires_once_and_survives_bad_reads() -> None:
    import gevent

    reads: list[Any] = [RuntimeError("node down"), None, {"available": 1, "held": 0}, {"available": 0, "held": 0}]
    fired: list[int] = []

    def read() -> Any:
        r = reads.pop(0) if reads else {"available": 0, "held": 0}
        if isinstance(r, Exception):
            raise r
        return r

    watch = SoldOutWatch(read=read, on_sold_out=lambda: fired.append(1), interval=0.001)
    watch.start()
    gevent.sleep(0.2)
    watch.stop()
    assert fired == [1] and watch.fired and reads == []


def test_config_nodes_wire_and_token(tmp_path: Path) -> None:
    assert parse_nodes(" http://a:1/ ,http://b:2", None) == ("http://a:1", "http://b:2")
    assert parse_nodes(None, "http://h:3") == ("http://h:3",)
    with pytest.raises(BadInput):
        parse_nodes("a:1", None)
    spath = tmp_path / "s.yaml"
    spath.write_text("seed: 9\nsale: {id: s9, stock: 3}\nswarm: {request_timeout_s: 1.5, buyer: {wait_ms: [1, 2]}}\n")

    class Opts:
        oversold_scenario = str(spath)
        oversold_nodes = None
        oversold_history = str(tmp_path / "h.jsonl")
        oversold_setup_sale = False
        oversold_admin_token = None

    cfg = SwarmConfig.from_options(Opts, host="http://h:1")
    assert (cfg.sale_id, cfg.nodes, cfg.request_timeout_s, cfg.scenario.seed) == ("s9", ("http://h:1",), 1.5, 9)
    back = SwarmConfig.from_wire(json.loads(json.dumps(cfg.to_wire())))
    assert back.scenario == cfg.scenario and back.nodes == cfg.nodes and back.admin_token is None

    Opts.oversold_setup_sale = True
    env_token = os.environ.pop("OVERSOLD_ADMIN_TOKEN", None)
    try:
        with pytest.raises(BadInput, match="admin"):
            SwarmConfig.from_options(Opts, host="http://h:1")
    finally:
        if env_token is not None:
            os.environ["OVERSOLD_ADMIN_TOKEN"] = env_token
    Opts.oversold_admin_token = "t"
    assert SwarmConfig.from_options(Opts, host="http://h:1").admin_token == "t"
    Opts.oversold_scenario = None
    assert SwarmConfig.from_options(Opts, host="http://h:1").scenario == Scenario()


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
    assert all(o.sku == sale_id for o in ops)
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
    child = Child.start(_swarm_argv(FLASH_SALE, backend, scenario, history, "25s"), name="locust",
                        log_dir=tmp_path, env=_locust_env(admin_token), cwd=REPO)
    rc = _wait(child, 60)
    elapsed = time.monotonic() - started
    log = child.log_tail(400)
    assert rc == 0, log
    assert "sold-out watch: sale sold out" in log, log
    assert elapsed < 15, f"took {elapsed:.1f}s with -t 25s: the sold-out stop did not end the run early"
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
    argv = _swarm_argv(locustfile, backend, scenario, history, "25s") + [
        "--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--master-host", "127.0.0.1", "--master-port", str(port),
    ]
    started = time.monotonic()
    child = Child.start(argv, name="locust", log_dir=tmp_path, env=_locust_env(admin_token, counts), cwd=REPO)
    rc = _wait(child, 60)
    log = child.log_tail(400)
    assert rc == 0, log
    assert time.monotonic() - started < 18, "the sold-out stop did not end the distributed run early"
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
