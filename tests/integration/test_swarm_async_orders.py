"""The swarm against asynchronous orders: `oversold run` of scenarios/async_orders.yaml, real everything.

Real Redis, two real nodes, two real order processors (``reference_backend.order_worker``)
and a real Locust swarm: every order answers 202 ``pending``, the processors apply it
(held, or rejected ``sold_out``), buyers read their order until it is applied and pay
only a held one. The negative control SIGKILLs the order processors mid-run (from the
test: the chaos spec has no role for them): accepted orders stay queued and stock unsold.
Buyers wait on their queued orders, so demand stays under stock and ``sells_out`` does
not see it; ``orders_applied`` (nothing left queued once the sale settled) fails the run
while the safety invariants hold. Before ``orders_applied`` that run passed.

The unit test of ``oversold.swarm.users.applied`` runs in a subprocess: importing
Locust monkey-patches the process that imports it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from swarm_util import REPO, SCENARIOS, scenario_file

from oversold.analysis.results import validate_results

SCENARIO = SCENARIOS / "async_orders.yaml"
WORKER_STOPPED = re.compile(r"order worker (\S+) stopped: held=(\d+) rejected=(\d+) already=(\d+) dropped=(\d+)")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def oversold_run(state_dir: Path, scenario: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "oversold.cli", "run", str(scenario), "--out", str(out), "-q",
                             *extra], cwd=REPO, env=dict(os.environ, OVERSOLD_STATE_DIR=str(state_dir)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: its state file is swept by the next run in that state dir
        out, err = proc.communicate()
        pytest.fail(f"oversold run did not finish in {timeout}s:\n{out}\n{err}")
    return proc.returncode, out + err


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X") and (start_ticks is None or int(fields[19]) == start_ticks)


def results_of(out: Path, state_dir: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    started = [e for e in jsonl(out / "processes.jsonl") if e["kind"] == "pid"]
    assert {e["name"] for e in started} >= {"redis", "node1", "node2", "orders-1", "orders-2", "locust"}
    assert not [e for e in started if _alive(e["pid"], e.get("start_ticks"))], "the run left processes running"
    assert list(state_dir.glob("*.jsonl")) == [], "a finished run left its state file"
    return results


def completions(out: Path) -> list[dict]:
    return [o for o in jsonl(out / "history.jsonl") if o["type"] != "invoke"]


# -- the queued order as a swarm user judges it (unit) ------------------------------------------

APPLIED_CHECK = textwrap.dedent("""
    from oversold.adapters.outcome import Outcome
    from oversold.swarm.users import applied

    pending = Outcome("ok", 202, None, {"order_id": "7", "status": "pending", "qty": 1})
    held = Outcome("ok", 200, None, {"order_id": "7", "status": "held", "expires_ms": 5})
    rejected = Outcome("ok", 200, "sold_out", {"order_id": "7", "status": "rejected",
                                               "error": {"code": "sold_out", "message": "available 0"}})
    assert applied(pending, held) is held
    got = applied(pending, rejected)
    assert (got.type, got.code, got.order_id, got.status) == ("fail", "sold_out", "7", 200), got
    assert got.locust_failure() is None  # sold_out is a business answer, not a broken request
    gave_up = applied(pending, None)
    assert (gave_up.type, gave_up.order_id) == ("info", "7"), gave_up  # may still be applied: unknown
    no_id = Outcome("ok", 200, None, {"status": "held"})  # a read without the id keeps the placed one's
    assert applied(pending, no_id) is pending
    print("applied: ok")
""")


def test_a_rejected_queued_order_is_a_refusal_and_one_still_pending_is_unknown() -> None:
    proc = subprocess.run([sys.executable, "-c", APPLIED_CHECK], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "applied: ok" in proc.stdout, proc.stdout + proc.stderr


# -- what the checker and the settle step make of queued orders (units) -----------------------


# -- the sale through the queue, end to end ---------------------------------------------------


@pytest.mark.e2e
def test_async_sale_sells_out_through_the_queue_and_passes(tmp_path: Path) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "run"
    rc, log = finish(oversold_run(state_dir, SCENARIO, out), timeout=60)
    assert rc == 0, log
    results = results_of(out, state_dir)
    assert results["verdict"] == "pass", log
    assert {i["name"]: i["status"] for i in results["invariants"]} == {i["name"]: "pass" for i in results["invariants"]}
    t = results["totals"]
    assert (t["stock"], t["sold"], t["acked_paid"], t["oversold_units"], t["held"]) == (80, 80, 80, 0, 0), t
    assert t["info_ops"] == 0 and t["unfinished_ops"] == 0, t
    final = json.loads((out / "final_state.json").read_text())
    c = final["counters"]
    assert (c["async_orders"], c["queued"], c["available"], c["held"], c["sold"]) == (True, 0, 0, 0, 80), c

    done = completions(out)
    orders = [o for o in done if o["op"] == "order"]
    applied_msg = next(i["message"] for i in results["invariants"] if i["name"] == "orders_applied")
    assert applied_msg == (f"All {len(orders)} accepted (202) orders were applied or rejected, each read once the "
                           f"sale settled; none is left queued.")
    assert set(final["extra"]["orders"]) == {o["order_id"] for o in orders}  # every accepted order read at the end
    # every order was queued (202 pending), none applied on the spot
    assert Counter((o["type"], o["status"]) for o in orders) == {("ok", 202): len(orders)}
    order_ids = {o["order_id"] for o in orders}
    assert len(order_ids) == len(orders) > 80  # demand went past stock, one id per order

    # the order processors applied every accepted order once: held or rejected, nothing left queued
    stops = [WORKER_STOPPED.search(p.read_text()) for p in sorted((out / "logs").glob("orders-*.log"))]
    assert len(stops) == 2 and all(stops), [p.read_text() for p in (out / "logs").glob("orders-*.log")]
    held = sum(int(m.group(2)) for m in stops)
    rejected = sum(int(m.group(3)) for m in stops)
    assert all(int(m.group(2)) + int(m.group(3)) > 0 for m in stops)  # both processors took orders
    assert held + rejected == len(orders), (held, rejected, len(orders))
    assert held >= 80 and rejected > 0

    # buyers read each order until it was applied; the reads saw holds and sold_out rejections
    reads = defaultdict(list)
    for o in done:
        if o["op"] == "read":
            assert (o["type"], o["status"], o["kind"]) == ("ok", 200, "buyer"), o
            assert o["order_id"] in order_ids
            reads[o["order_id"]].append(o)
    seen_rejected = {oid for oid, rs in reads.items() if any(r["code"] for r in rs)}
    assert {r["code"] for rs in reads.values() for r in rs} == {None, "sold_out"}
    assert 0 < len(seen_rejected) <= rejected
    assert not [o for o in done if o["kind"] == "hoarder" and o["op"] != "order"]  # hoarders only order

    # every acknowledged payment paid an order its buyer had read as applied before paying
    invoked = {o["op_id"]: o for o in jsonl(out / "history.jsonl") if o["type"] == "invoke"}
    pays = [o for o in done if o["op"] == "pay"]
    ok_pays = [p for p in pays if p["type"] == "ok"]
    assert len(ok_pays) == 80 and len({p["order_id"] for p in ok_pays}) == 80
    for p in ok_pays:
        before = [r for r in reads[p["order_id"]] if r["time"] <= invoked[p["op_id"]]["time"]]
        assert before and before[-1]["code"] is None and before[-1]["user_id"] == p["user_id"], p
    # and no buyer paid an order the queue had rejected (it holds nothing: the pay could only be refused)
    paid_rejected = [p for p in pays if p["order_id"] in seen_rejected]
    assert paid_rejected == [], f"{len(paid_rejected)} pays of rejected orders, e.g. {paid_rejected[:2]}"
    assert not [p for p in pays if p["code"] == "order_pending"]


# -- negative control: the order processors die mid-run -----------------------------------------


def _kill_order_workers(state_dir: Path, out: Path, proc: subprocess.Popen, *, after_sold: int,
                        timeout: float = 30) -> tuple[list[int], int]:
    """SIGKILL the run's order processors (found in its state file) once ``after_sold`` units sold."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its order processors were killed: {proc.communicate()}")
        timeline = out / "timeline.jsonl"
        sold = max((s.get("sold") or 0 for s in jsonl(timeline)), default=0) if timeline.exists() else 0
        workers = [e for f in state_dir.glob("*.jsonl") for e in jsonl(f)
                   if e.get("kind") == "pid" and str(e.get("name", "")).startswith("orders-")]
        if sold >= after_sold and len(workers) == 2:
            killed = []
            for e in workers:
                if _alive(e["pid"], e.get("start_ticks")):  # the very process the run started, not a reused pid
                    os.kill(e["pid"], signal.SIGKILL)
                    killed.append(e["pid"])
            return killed, sold
        time.sleep(0.05)
    raise AssertionError("the sale did not start selling in time")


@pytest.mark.e2e
def test_killed_order_processors_leave_the_sale_unsold_and_the_run_fails(tmp_path: Path) -> None:
    state_dir, out = tmp_path / "state", tmp_path / "run"
    # stock the crowd cannot reach in 5 s, so sells_out is not what catches it; a short quiesce
    # timeout bounds how long the settle step waits for a queue nobody drains any more
    scenario = scenario_file(tmp_path, "async_orders", "async_orders", sale={"stock": 400},
                             checker={"quiesce_timeout_s": 1})
    proc = oversold_run(state_dir, scenario, out, "--duration", "5")
    try:
        killed, sold_at_kill = _kill_order_workers(state_dir, out, proc, after_sold=5)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    rc, log = finish(proc, timeout=45)
    assert len(killed) == 2, killed
    assert rc == 1, log  # an invariant failed
    results = results_of(out, state_dir)
    assert results["verdict"] == "fail"
    st = {i["name"]: i for i in results["invariants"]}
    failed = sorted(n for n, i in st.items() if i["status"] == "fail")
    assert failed == ["orders_applied"], failed  # liveness: accepted orders never applied
    assert not [n for n, i in st.items() if i["status"] == "unknown"]
    t = results["totals"]
    assert sold_at_kill <= t["sold"] == t["acked_paid"] < t["demand"] < 400 and t["oversold_units"] == 0, t
    # buyers wait on their queued orders, so demand stayed under stock: sells_out cannot see it
    assert st["sells_out"]["message"] == f"Not checked: demand {t['demand']} did not exceed stock 400."

    final = json.loads((out / "final_state.json").read_text())
    c = final["counters"]
    assert c["queued"] > 0 and c["held"] == 0 and c["available"] == 400 - t["sold"], c  # stuck in the queue
    done = completions(out)
    orders = [o for o in done if o["op"] == "order"]
    assert orders and {(o["type"], o["status"]) for o in orders} == {("ok", 202)}  # still accepted
    assert len(orders) > c["queued"]  # some were applied before the kill, the rest never
    pending = sum(1 for status in final["extra"]["orders"].values() if status == "pending")
    # each order still queued was read pending, one by one; an order queued whose 202 never reached its
    # client (killed mid-reply: no ok completion) is not in the accepted list, so it is not read; and a
    # processor applies an entry before it acks and deletes it, so one SIGKILLed between the two leaves an
    # applied order in the queue (at most one a processor: it applies them one at a time)
    history = jsonl(out / "history.jsonl")
    answered = {o["op_id"] for o in history if o["type"] == "ok" and o["op"] == "order"}
    unanswered = sum(1 for o in history if o["type"] == "invoke" and o["op"] == "order" and o["op_id"] not in answered)
    assert pending >= c["queued"] - unanswered - len(killed), (pending, c["queued"], unanswered, len(killed))
    assert st["orders_applied"]["message"] == (
        f"Of {len(orders)} accepted (202) orders, {pending} accepted orders are still pending: acknowledged (202) "
        f"and never applied nor rejected; {c['queued']} are still queued once the sale settled.")
    # buyers did not pay orders that never got out of the queue
    assert not [o for o in done if o["op"] == "pay" and o["code"] == "order_pending"]
    for p in (out / "logs").glob("orders-*.log"):
        assert "stopped:" not in p.read_text()  # SIGKILLed: no clean stop line
