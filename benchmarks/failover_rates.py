"""How often does a Redis failover lose acknowledged writes, and does the sale then oversell?

Runs ``oversold run`` N times per (scenario, strategy), each with its own seed,
and counts, per run, from the run directory:

- lost acknowledged payments: (buyer, order) pairs whose payment was
  acknowledged (200) but that are not in the final audited sold set (Redis);
- reused order ids: an order id acknowledged to two different buyers. Order
  ids used to be a bare Redis counter, so a failover that lost writes handed
  the lost ids out again; keyed by order id alone, a lost sale and its
  successor looked like one order. They are now ``<seq>-<node nonce>``, and
  the checker's ``unique_order_ids`` fails any reuse;
- acknowledged units beyond stock: distinct acknowledged (buyer, order)
  payments minus stock -- what buyers were told they bought and cannot get;
- the checker's own figure (``totals.oversold_units``; acknowledged payments
  counted per order operation, not per order id) and the exit status.

    .venv/bin/python benchmarks/failover_rates.py                      # 10 runs per cell, ~12 min
    .venv/bin/python benchmarks/failover_rates.py --runs 3 --scenarios redis_partition
    .venv/bin/python benchmarks/failover_rates.py --strategies pre_deduct --runs 20
    .venv/bin/python benchmarks/failover_rates.py --scenarios hot_sku_cluster,cluster_failover \
        --strategies pre_deduct_buckets --runs 10 --out benchmarks/results/cluster_rates.json   # Redis Cluster

Writes ``benchmarks/results/failover_rates.json`` (every run) and prints a
Markdown table (the README's). Runs go to a temporary directory unless
``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = ("redis_failover", "redis_partition")
DEFAULT_STRATEGIES = ("pre_deduct", "pre_deduct_ledger")


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measure(run_dir: Path, exit_status: int) -> dict[str, Any]:
    """What one run shows, from its run directory (history, final state, results)."""
    ops = jsonl(run_dir / "history.jsonl")
    done = [o for o in ops if o["type"] != "invoke"]
    final = json.loads((run_dir / "final_state.json").read_text()) if (run_dir / "final_state.json").exists() else {}
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    audit = final.get("audit") or {}
    # (buyer, order id): an order id alone may name two orders after a failover (see above)
    sold = {(s.get("user_id"), s["order_id"]) for s in audit.get("sold", [])}
    qty = {(o["user_id"], o["order_id"]): o["qty"] for o in done if o["op"] == "order" and o["type"] == "ok"}
    acked_pay = {(o["user_id"], o["order_id"]) for o in done if o["op"] == "pay" and o["type"] == "ok"}
    owners: dict[str, set[str]] = defaultdict(set)
    for user, oid in qty:
        owners[oid].add(user)
    stock = final.get("stock") or 0
    acked_units = sum(qty.get(k, 1) for k in acked_pay)
    statuses = {inv["name"]: inv["status"] for inv in results.get("invariants", [])}
    ledger = (audit.get("ledger") or {})
    return {
        "exit": exit_status,
        "verdict": results.get("verdict"),
        "lost_payments": len(acked_pay - sold) if audit else None,
        "reused_order_ids": sum(1 for users in owners.values() if len(users) > 1),
        "acked_units": acked_units,
        "oversold_units": max(0, acked_units - stock),
        "checker_oversold_units": (results.get("totals") or {}).get("oversold_units"),
        "ledger_sold": ledger.get("sold"),
        "front_sold": (final.get("counters") or {}).get("sold"),
        "stock": stock,
        "left_available": (final.get("counters") or {}).get("available"),
        "unknown_ops": sum(1 for o in done if o["type"] == "info"),
        "invariants": statuses,
    }


def run_once(scenario: str, strategy: str, seed: int, out: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "oversold.cli", "run", str(REPO / "scenarios" / f"{scenario}.yaml"),
         "--strategy", strategy, "--seed", str(seed), "--out", str(out), "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    row = {"scenario": scenario, "strategy": strategy, "seed": seed, "seconds": round(time.monotonic() - started, 1)}
    if proc.returncode not in (0, 1, 2, 3):
        row.update(exit=proc.returncode, error=proc.stderr.strip().splitlines()[-1:] or ["?"])
        return row
    row.update(measure(out, proc.returncode))
    return row


def table(rows: list[dict[str, Any]]) -> str:
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["scenario"], r["strategy"])].append(r)
    lines = [
        "| scenario | strategy | runs | runs with lost acknowledged writes (payments lost, total) "
        "| runs with reused order ids | runs that oversold (units, total) | checker: runs failing no_oversell "
        "| runs sold out to the last unit | verdicts | harness errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (scenario, strategy), rs in sorted(cells.items()):
        ok = [r for r in rs if "error" not in r]
        lost = [r for r in ok if (r.get("lost_payments") or 0) > 0 or (r.get("reused_order_ids") or 0) > 0]
        reused = [r for r in ok if (r.get("reused_order_ids") or 0) > 0]
        over = [r for r in ok if (r.get("oversold_units") or 0) > 0]
        flagged = [r for r in ok if r.get("invariants", {}).get("no_oversell") == "fail"]
        sold_out = [r for r in ok if r.get("stock") and r.get("front_sold") == r["stock"]
                    and r.get("invariants", {}).get("sells_out") == "pass"]
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(Counter(str(r.get("verdict")) for r in ok).items()))
        lines.append(
            f"| {scenario} | {strategy} | {len(rs)} | {len(lost)} ({sum(r.get('lost_payments') or 0 for r in ok)}) "
            f"| {len(reused)} | {len(over)} ({sum(r.get('oversold_units') or 0 for r in ok)}) | {len(flagged)} "
            f"| {len(sold_out)} | {verdicts} | {len(rs) - len(ok)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "failover_rates.json")
    p.add_argument("--keep", type=Path, help="keep the run directories here")
    p.add_argument("--measure", type=Path, metavar="JSON",
                   help="no runs: measure again the run directories kept (--keep) of an earlier JSON output")
    args = p.parse_args(argv)
    if args.measure is not None:
        rows = []
        for row in json.loads(args.measure.read_text())["runs"]:
            run_dir = Path(row["run_dir"])
            rows.append({**row, **measure(run_dir, row["exit"])} if "error" not in row else row)
        args.out.write_text(json.dumps({"runs": rows, "table": table(rows)}, indent=1), encoding="utf-8")
        print(table(rows))
        return 0
    base = args.keep or Path(tempfile.mkdtemp(prefix="oversold-failover-"))
    rows: list[dict[str, Any]] = []
    try:
        for scenario in args.scenarios.split(","):
            for strategy in args.strategies.split(","):
                for seed in range(args.first_seed, args.first_seed + args.runs):
                    row = run_once(scenario, strategy, seed, base / f"{scenario}-{strategy}-{seed}")
                    if args.keep is not None:
                        row["run_dir"] = str(base / f"{scenario}-{strategy}-{seed}")
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "invariants"}), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "table": table(rows)}, indent=1), encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
