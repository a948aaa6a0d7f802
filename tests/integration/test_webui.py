"""Locust's web UI, driven through its own HTTP API: each test started there is its own run.

A real ``locust`` (web UI, no ``--headless``) against the session's two real nodes:
start a test, stop it, start another. Each gets its own run directory and its own
verdict (a second test used to be checked together with the first one's records: a
false oversell), the UI lists both verdicts, the admin token never reaches the page,
and the UI listens on loopback only. Nothing from Locust is imported here.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from chromium_util import chromium, chromium_run
from swarm_util import LOCUSTFILES, locust_env, scenario_file

from oversold.infra.procs import Child, free_port, wait_for_port
from oversold.model.history import read_history

TOKEN = "test-admin-token"  # the session's nodes' (tests/conftest.py)


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        body = resp.read().decode()
    return json.loads(body) if path != "/" else body


def _post(base: str, path: str, form: dict[str, Any] | None = None) -> dict[str, Any]:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, method="POST"), timeout=60) as resp:
        return json.loads(resp.read().decode())


def _until(what: str, predicate, child: Child, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert child.alive(), f"locust died while waiting for {what}:\n{child.log_tail(80)}"
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {timeout}s:\n{child.log_tail(80)}")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) of sockets listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if int(hexport, 16) == port and fields[3] == "0A":
                out.add(addr)
    return out


def test_each_web_ui_test_is_its_own_run_with_its_own_verdict(backend, tmp_path):
    urls = [n.url for n in backend]
    scenario = scenario_file(tmp_path, None, "ui", sale={"id": "ui", "stock": 60, "hold_ttl_ms": 1000},
                             backend={"nodes": 2},
                             swarm={"users": 20, "spawn_rate": 20, "mix": {"buyer": 4, "hoarder": 1},
                                    "hoarder": {"qty": 1, "wait_ms": [300, 600]}},
                             checker={"grace_ms": 1500, "quiesce_timeout_s": 15})
    results = tmp_path / "ui-runs"
    port = free_port()
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "flash_sale.py"), "--web-port", str(port),
            "--host", urls[0], "--oversold-nodes", ",".join(urls), "--oversold-scenario", str(scenario),
            "--oversold-setup-sale", "--oversold-results", str(results),
            "--oversold-admin-token", TOKEN]  # on the command line too: it must not reach the page either
    child = Child.start(argv, name="locust-ui", log_dir=tmp_path, env=locust_env(TOKEN))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_port(port, timeout=30, child=child), child.log_tail(60)
        # loopback only, although no --web-host was given (127.0.0.1 is 0100007F in /proc/net/tcp)
        assert _listening_addresses(port) == {"0100007F"}
        page = _get(base, "/")
        assert TOKEN not in page
        assert "oversold verdicts" in page  # the tab is offered

        earlier: set[str] = set()  # the orders an earlier test sold
        for test in (1, 2):
            started = _post(base, "/swarm", {"user_count": 20, "spawn_rate": 20, "host": urls[0]})
            assert started["success"], started
            _until(f"test {test} running", lambda: _get(base, "/oversold/runs")[:1]
                   and _get(base, "/oversold/runs")[0]["test"] == test, child)
            # let it sell out (it may stop by itself), then stop it from the UI. Sold out means 60 units
            # in orders this test sold: the sale is set up again only after the row shows, and Locust
            # caches /stats/requests, so neither the counters nor its rates tell the tests apart (test 2
            # once went by test 1's 60 units, was stopped before it sold any, and sold 0)
            sold = _until(f"test {test} sold out", lambda: _sold_orders(backend, 60, earlier), child, timeout=60)
            earlier |= sold
            assert _post(base, "/stop")["success"]
            row = _until(f"test {test}'s verdict", lambda: _decided(_get(base, "/oversold/runs"), test), child,
                         timeout=90)
            assert (row["state"], row["exit_code"]) == ("pass", 0), (row, child.log_tail(120))
            assert row["run_dir"] == str(results / f"test-{test}")

        rows = _get(base, "/oversold/runs")
        assert [(r["test"], r["state"]) for r in rows] == [(2, "pass"), (1, "pass")]
        # and a browser shows them: the UI's own page, its "oversold verdicts" tab, rendered by Chromium
        shown = chromium_run(chromium(), tmp_path / "profile", "--virtual-time-budget=8000", "--dump-dom",
                             f"{base}/?tab=oversold")
        assert shown.returncode == 0, shown.stderr[-2000:]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", shown.stdout)
        assert [c for c in cells if c.startswith(str(results))] == [str(results / "test-2"), str(results / "test-1")]
        assert cells.count("pass") == 2 and cells.count("every invariant holds") == 2, cells
        assert TOKEN not in shown.stdout
        # the UI polls /stats/requests; its extended stats carry the same rows for the tab
        extended = {e["key"]: e["data"] for e in _get(base, "/stats/requests")["extended_stats"]}
        assert [r["state"] for r in extended["oversold"]] == ["pass", "pass"]
    finally:
        child.stop()

    first, second = (results / "test-1", results / "test-2")
    for run_dir in (first, second):
        body = json.loads((run_dir / "results.json").read_text())
        assert body["verdict"] == "pass", body
        assert body["totals"]["sold"] == 60 and body["totals"]["oversold_units"] == 0
    one, two = read_history(first / "history.jsonl"), read_history(second / "history.jsonl")
    assert one and two
    assert max(o.time for o in one) < min(o.time for o in two)  # each test has only its own records
    assert not {o.op_id for o in one} & {o.op_id for o in two}


def _sold_orders(nodes, units: int, earlier: set[str]) -> set[str] | None:
    """The ids of the orders the audit lists as sold, once they hold ``units`` units and none is in ``earlier``."""
    client = nodes[0].client()
    try:
        status, body = client.audit("ui")
    finally:
        client.close()
    if status != 200:
        return None
    sold = {s["order_id"]: s["qty"] for s in body.get("sold") or ()}
    return set(sold) if sum(sold.values()) == units and not set(sold) & earlier else None


def _decided(rows: list[dict[str, Any]], test: int) -> dict[str, Any] | None:
    row = next((r for r in rows if r["test"] == test), None)
    return row if row is not None and row["state"] not in ("running", "checking") else None
