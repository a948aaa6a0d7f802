"""A small saved run directory built with the real writers, for tests of check/report/junit/schema.

Two buyers and a scalper pay for one unit each, a hoarder holds one unit until
it expires, one order is refused ``sold_out``. With ``stock=3`` every invariant
holds; with ``stock=2`` the audit lists one unit more than the stock (an
oversell of order ``ORD-0004``). ``ghosts=n`` adds n sold orders to the audit
that no client placed: n counterexamples of ``no_phantom_sale``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oversold.model.history import FinalState, Op, write_history
from oversold.model.scenario import Sale, Scenario
from oversold.model.scenario_file import dump_scenario

SALE = "moutai"
T0 = 1000.0
# an id with markup in it: the report must escape it, never run it
ODD_USER = 'buyer-3<script>alert("x")</script>'
OVERSOLD_ORDER = "ORD-0004"
SCALPER = "scalper-1"


def _call(n: int, user: str, kind: str, op: str, t: float, dt_ms: float, outcome: str,
          order_id: str | None = None, code: str | None = None, status: int | None = None) -> list[Op]:
    op_id = f"{user}-{n}"
    invoke = Op("invoke", op_id, t, user, user, kind, op, SALE, 1,
                order_id=order_id if op != "order" else None, key=f"k-{op_id}")
    done = Op(outcome, op_id, t + dt_ms / 1000, user, user, kind, op, SALE, 1, order_id=order_id,
              key=f"k-{op_id}", status=status or (200 if outcome == "ok" else 409), code=code, latency_ms=dt_ms)
    return [invoke, done]


def history() -> list[Op]:
    ops: list[Op] = []
    ops += _call(1, "buyer-1", "buyer", "order", T0 + 0.0, 10, "ok", "ORD-0001", status=201)
    ops += _call(2, "buyer-1", "buyer", "pay", T0 + 0.1, 20, "ok", "ORD-0001")
    ops += _call(1, SCALPER, "scalper", "order", T0 + 0.2, 30, "ok", "ORD-0002", status=201)
    ops += _call(2, SCALPER, "scalper", "pay", T0 + 0.4, 40, "ok", "ORD-0002")
    ops += _call(1, "hoarder-1", "hoarder", "order", T0 + 0.5, 50, "ok", "ORD-0003", status=201)
    ops += _call(1, ODD_USER, "buyer", "order", T0 + 1.0, 60, "fail", code="sold_out")
    ops += _call(2, ODD_USER, "buyer", "order", T0 + 2.0, 70, "ok", OVERSOLD_ORDER, status=201)
    ops += _call(3, ODD_USER, "buyer", "pay", T0 + 2.2, 50, "ok", OVERSOLD_ORDER)
    return ops


def final_state(stock: int, *, audit: bool = True, ghosts: int = 0) -> FinalState:
    sold = [{"order_id": "ORD-0001", "user_id": "buyer-1", "qty": 1, "paid_ms": 1_000_120},
            {"order_id": "ORD-0002", "user_id": SCALPER, "qty": 1, "paid_ms": 1_000_440},
            {"order_id": OVERSOLD_ORDER, "user_id": ODD_USER, "qty": 1, "paid_ms": 1_002_250}]
    sold += [{"order_id": f"GHOST-{i:03}", "user_id": f"ghost-{i}", "qty": 1, "paid_ms": 1_002_500 + i}
             for i in range(ghosts)]
    counters = {"available": 0, "held": 0, "sold": len(sold), "stock": stock}
    return FinalState(
        sale_id=SALE, stock=stock, hold_ttl_ms=1000, counters=counters,
        audit={"sale_id": SALE, "now_ms": 1_003_000, "counters": counters, "sold": sold, "holds": []} if audit else None,
        read_ms=1_003_000,
    )


TIMELINE = [
    {"t": T0 - 0.1, "available": 3, "held": 0, "sold": 0, "refunded": 0},
    {"t": T0 + 0.3, "available": 1, "held": 0, "sold": 2, "refunded": 0},
    {"t": T0 + 0.6, "available": 0, "held": 1, "sold": 2, "refunded": 0},
    {"t": T0 + 0.9, "error": "ConnectError"},
    {"t": T0 + 1.6, "available": 1, "held": 0, "sold": 2, "refunded": 0},
    {"t": T0 + 2.1, "available": 0, "held": 1, "sold": 2, "refunded": 0},
    {"t": T0 + 2.3, "available": 0, "held": 0, "sold": 3, "refunded": 0},
]
FAULTS = [{"start": T0 + 0.6, "end": T0 + 1.2, "action": "kill", "role": "backend", "target": "node1"}]


def make_run_dir(run_dir: Path, *, stock: int = 3, thresholds: dict[str, list[str]] | None = None,
                 audit: bool = True, timeline: bool = True, faults: bool = True, ghosts: int = 0) -> Path:
    """Write scenario.yaml, history.jsonl, final_state.json (and timeline/faults) like a real run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(name="synthetic", seed=7, sale=Sale(id=SALE, stock=stock, hold_ttl_ms=1000),
                        thresholds={k: tuple(v) for k, v in (thresholds or {}).items()})
    (run_dir / "scenario.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
    write_history(run_dir / "history.jsonl", history())
    (run_dir / "final_state.json").write_text(json.dumps(final_state(stock, audit=audit, ghosts=ghosts).to_dict()), encoding="utf-8")
    if timeline:
        _jsonl(run_dir / "timeline.jsonl", TIMELINE, torn_tail=True)
    if faults:
        _jsonl(run_dir / "faults.jsonl", FAULTS)
    return run_dir


def _jsonl(path: Path, rows: list[dict[str, Any]], torn_tail: bool = False) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if torn_tail:
        text += '{"t": 1009.0, "avail'  # a writer killed mid-line must not break the reader
    path.write_text(text, encoding="utf-8")
