"""Every operation and transition of the contract is raced by a shipped scenario: `oversold run` of
scenarios/refunds_and_restock.yaml on the reference backend (real Redis, nodes, ledger, sync worker,
Locust) passes, and its history shows each one answered as the contract says (the README's table)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from paths import REPO

from oversold.model.calls import pair
from oversold.model.history import read_history

pytestmark = pytest.mark.e2e


def test_refunds_and_restock_races_every_operation_and_passes(tmp_path):
    out = tmp_path / "tour"
    proc = subprocess.run([sys.executable, "-m", "oversold.cli", "run", str(REPO / "scenarios/refunds_and_restock.yaml"),
                           "--out", str(out), "-q", "--duration", "6"], cwd=REPO, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls, _ = pair(read_history(out / "history.jsonl"))
    seen = Counter((c.op, c.outcome, c.done.code if c.done else None) for c in calls)
    print("\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(seen.items(), key=str)))
    for op, outcome, code in [
        ("order", "ok", None), ("order", "fail", "limit_exceeded"),          # one account's sessions at once
        ("pay", "ok", None), ("pay", "fail", "hold_expired"),                # late payers
        ("cancel", "ok", None), ("cancel", "fail", "already_paid"),          # cancel of a held, of a paid order
        ("pay", "fail", "order_cancelled"),                                  # pay of a cancelled order
        ("refund", "ok", None), ("pay", "fail", "order_refunded"),           # the operator's refunds, a pay after
        ("restock", "ok", None), ("in_transit", "ok", None), ("receive", "ok", None),
    ]:
        assert seen[(op, outcome, code)] > 0, (op, outcome, code)
    results = json.loads((out / "results.json").read_text())
    restocked = sum(c.qty for c in calls if c.op in ("restock", "receive") and c.outcome == "ok")
    assert results["totals"]["stock"] == 60 + restocked  # the checker's stock counts the admin's changes
    statuses = {i["name"]: i["status"] for i in results["invariants"]}
    assert statuses["no_resurrection"] == statuses["per_user_limits"] == statuses["stock_converges"] == "pass"
