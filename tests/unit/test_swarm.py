"""The swarm: recorder units (pure), and real Locust runs against real backend nodes.

The runs are real ``locust`` subprocesses (local, ``--processes 2``, and a
``--master`` with two separate ``--worker`` processes) against the two real
reference backend nodes of ``tests/conftest.py``, over real Redis. Nothing from
Locust is imported here: importing locust monkey-patches the test process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from backend_util import wait_for

from oversold.adapters.outcome import classify, outcome_of
from oversold.errors import BadInput
from oversold.model.history import Op, read_history
from oversold.model.history_cols import read_frames
from oversold.model.scenario import Scenario
from oversold.swarm.collector import Collector
from oversold.swarm.config import SwarmConfig, parse_nodes
from oversold.swarm.recorder import ROW_FIELDS, Recorder, to_op
from oversold.swarm.soldout import SoldOutWatch, is_sold_out

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
    p = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer", op="order", sale_id="s", qty=2, key="k1")
    assert rec.in_flight == 1
    rec.complete(p, "ok", status=201, order_id="17")
    rec.complete(p, "info", status=503)  # a second completion is ignored
    assert rec.in_flight == 0
    ops = [to_op(r) for r in rec.take()]
    assert ops == [
        Op(type="invoke", op_id="buyer-0-1-1", time=100.0, process="buyer-0-1", user_id="buyer-0-1",
           kind="buyer", op="order", sale_id="s", qty=2, key="k1"),
        Op(type="ok", op_id="buyer-0-1-1", time=100.5, process="buyer-0-1", user_id="buyer-0-1",
           kind="buyer", op="order", sale_id="s", qty=2, order_id="17", key="k1", status=201, latency_ms=250.0),
    ]
    assert len(ROW_FIELDS) == len(ops[0].to_dict())
    # an abandoned operation (user killed mid-request) keeps its lone invoke
    q = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer", op="pay", sale_id="s", order_id="17")
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
    # the columnar twin is renamed beside it with the history, and names its bytes
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.cols", "history.jsonl"]
    assert read_frames(path) is not None


def test_collector_spools_rows_to_disk_and_merges_them_in_time_order(tmp_path: Path) -> None:
    import gc

    c = Collector(spool_dir=tmp_path / "spool")
    (tmp_path / "spool").mkdir()
    for batch in range(5):  # two workers, each in its own clock order, interleaved in time
        c.add("w1", [_row(f"a-{batch}", 10.0 * batch + 1), _row(f"a-{batch}", 10.0 * batch + 6, "ok")])
        c.add("w2", [_row(f"b-{batch}", 10.0 * batch + 3), _row(f"b-{batch}", 10.0 * batch + 3, "ok")])
    assert c.count == 20 and not hasattr(c, "_rows")
    ops = c.ops()
    spooled = sorted((tmp_path / "spool").glob("*.spool"))
    assert len(spooled) == 2 and all(p.stat().st_size > 0 for p in spooled)  # on disk, not in memory
    assert [o.time for o in ops] == sorted(o.time for o in ops)
    assert [(o.op_id, o.type) for o in ops[:4]] == [("a-0", "invoke"), ("b-0", "invoke"), ("b-0", "ok"), ("a-0", "ok")]
    path = tmp_path / "history.jsonl"
    assert c.write(path) == 20 and read_history(path) == ops
    mine = Collector()
    mine.add("w", [_row("x-1", 1.0)])
    spool = mine.spool_dir
    assert spool is not None and spool.exists()
    del mine
    gc.collect()
    assert not spool.exists()  # a private spool goes with its collector


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
    # the watch's greenlet ends once it fired: after that nothing can fire again
    assert wait_for(lambda: watch._greenlet is not None and watch._greenlet.dead, timeout=5, sleep=gevent.sleep)
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


