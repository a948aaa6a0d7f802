"""Checker at scale: read + check + metrics of generated histories of 10^5, 10^6 and 10^7 records.

Each size gets a generated run (``history.jsonl`` and ``final_state.json``, cached in
``--dir``): a flash sale with buyers, late payers, scalpers and hoarders; orders that
are held, refused ``sold_out`` or time out (``info``); pays that succeed, fail or time
out; cancels; holds that expire. Its final state is the one a correct backend would
leave, so the verdict is ``pass`` and every invariant walks the whole history.

Every measurement runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its
own: the Python interpreter and the imports plus what the step built.

- **baseline**: ``json.loads`` of every line and nothing kept: the cheapest reading of
  the file there is, a yardstick for the machine's speed at that moment (the machine
  is shared and noisy; compare ``ratio`` = oversold time / baseline time across runs,
  not the seconds).
- **oversold**: ``read_history`` + ``check`` + ``compute_metrics`` (what ``oversold
  check`` does before it writes its files), each timed.
- ``--write``: what the end of a run pays to write the history with its columnar twin
  (``history.cols``) against the JSON lines alone, and reading it back from either.

Usage::

    .venv/bin/python benchmarks/checker_scale.py                      # 1e5, 1e6, 1e7
    .venv/bin/python benchmarks/checker_scale.py --sizes 100000,1000000 --max-s 5 --max-mib 1024
    .venv/bin/python benchmarks/checker_scale.py --out benchmarks/results/checker_scale.json
    .venv/bin/python benchmarks/checker_scale.py --sizes 1000000 --write
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

SALE = "flash"
HOLD_TTL_S = 5.0
# user kinds and their share of the crowd; hoarders never pay, late payers pay after a while
KINDS = (("buyer", 0.70), ("late_payer", 0.10), ("scalper", 0.15), ("hoarder", 0.05))


def generate(run_dir: Path, records: int, seed: int = 1) -> dict[str, Any]:
    """Write a history of about ``records`` records and a matching final state into ``run_dir``."""
    rnd = random.Random(seed)
    ops_target = records // 2
    # a user does about four operations; at most 150,000 users, so a hold is often paid before it lapses
    # and the sale sells out at every size (the verdict is pass and every invariant walks everything)
    users = max(10, min(ops_target // 4, 150_000))
    stock = max(10, ops_target // 10)
    kinds = [k for k, share in KINDS for _ in range(int(share * 100))]
    user_kind = [kinds[rnd.randrange(len(kinds))] for _ in range(users)]
    seq = [0] * users
    held: dict[int, tuple[str, int]] = {}  # user -> (order id, qty) of its open hold
    expiries: list[tuple[float, int, str]] = []  # (expiry time, user, order id)
    sold: list[dict[str, Any]] = []
    taken = 0  # units sold or held
    oid_n = 0
    t = 1_700_000_000.0
    n = 0
    later: list[tuple[float, int, str]] = []  # completions not yet due: the file is in time order, like a real one
    tmp = run_dir / "history.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        def emit(user: int, op: str, qty: int, outcome: str, order_id: str | None, status: int | None,
                 code: str | None, lat_ms: float) -> None:
            nonlocal n
            while later and later[0][0] <= t:
                f.write(heapq.heappop(later)[2])
            seq[user] += 1
            u = f"{user_kind[user]}-{user}"
            op_id = f"{u}-{seq[user]}"
            inv_oid = json.dumps(order_id) if op != "order" and order_id else "null"
            head = f'"op_id":"{op_id}","time":'
            tail = (f',"process":"{u}","user_id":"{u}","kind":"{user_kind[user]}","op":"{op}","sale_id":"{SALE}",'
                    f'"qty":{qty},')
            f.write(f'{{"type":"invoke",{head}{t:.6f}{tail}"order_id":{inv_oid},"key":"k-{op_id}",'
                    f'"status":null,"code":null,"latency_ms":null}}\n')
            n += 1
            if outcome == "none":  # the client died: an invoke without completion
                return
            done_oid = json.dumps(order_id) if order_id else "null"
            heapq.heappush(later, (t + lat_ms / 1000, n, (
                f'{{"type":"{outcome}",{head}{t + lat_ms / 1000:.6f}{tail}"order_id":{done_oid},'
                f'"key":"k-{op_id}","status":{status if status is not None else "null"},'
                f'"code":{json.dumps(code) if code else "null"},"latency_ms":{lat_ms:.3f}}}\n')))
            n += 1

        while n < records:
            t += rnd.expovariate(5000.0)  # about 5,000 operations a second
            while expiries and expiries[0][0] <= t:
                _, eu, eoid = heapq.heappop(expiries)
                if eu in held and held[eu][0] == eoid:
                    taken -= held.pop(eu)[1]
            user = rnd.randrange(users)
            kind = user_kind[user]
            lat = rnd.lognormvariate(1.5, 0.6)
            roll = rnd.random()
            if user in held:
                oid, qty = held[user]
                if kind == "hoarder" or (kind == "late_payer" and roll < 0.5):
                    continue  # keeps holding; the hold expires
                if roll < 0.06:  # cancels
                    del held[user]
                    taken -= qty
                    emit(user, "cancel", qty, "ok", oid, 200, None, lat)
                elif roll < 0.09:  # the pay is refused (declined card); the hold stays
                    emit(user, "pay", qty, "fail", oid, 402, "payment_declined", lat)
                elif roll < 0.11:  # the pay times out; the backend applied it or not
                    del held[user]
                    if rnd.random() < 0.5:
                        sold.append({"order_id": oid, "user_id": f"{kind}-{user}", "qty": qty,
                                     "paid_ms": int((t + lat / 1000) * 1000)})
                    else:
                        taken -= qty
                    emit(user, "pay", qty, "info", oid, None, "timeout", 1000.0)
                else:
                    del held[user]
                    sold.append({"order_id": oid, "user_id": f"{kind}-{user}", "qty": qty,
                                 "paid_ms": int((t + lat / 1000) * 1000)})
                    emit(user, "pay", qty, "ok", oid, 200, None, lat)
                continue
            qty = 2 if kind == "scalper" and roll < 0.3 else 1
            if roll > 0.995:
                emit(user, "order", qty, "none", None, None, None, lat)
            elif roll > 0.98:  # timed out; the backend took nothing (a hold would have expired)
                emit(user, "order", qty, "info", None, None, "timeout", 1000.0)
            elif stock - taken >= qty:
                oid_n += 1
                oid = f"ORD-{oid_n:09d}"
                held[user] = (oid, qty)
                taken += qty
                heapq.heappush(expiries, (t + HOLD_TTL_S, user, oid))
                emit(user, "order", qty, "ok", oid, 201, None, lat)
            else:
                emit(user, "order", qty, "fail", None, 409, "sold_out", lat)
        for user, (oid, qty) in sorted(held.items()):  # the last holders pay: the sale sells out
            t += rnd.expovariate(5000.0)
            sold.append({"order_id": oid, "user_id": f"{user_kind[user]}-{user}", "qty": qty,
                         "paid_ms": int((t + 0.005) * 1000)})
            emit(user, "pay", qty, "ok", oid, 200, None, 5.0)
        while later:
            f.write(heapq.heappop(later)[2])
    # the sale goes quiet: every hold left expires
    sold_qty = sum(e["qty"] for e in sold)
    end_ms = int((t + 2 * HOLD_TTL_S + 5) * 1000)
    counters = {"available": stock - sold_qty, "held": 0, "sold": sold_qty, "stock": stock}
    final = {"sale_id": SALE, "stock": stock, "hold_ttl_ms": int(HOLD_TTL_S * 1000), "counters": counters,
             "audit": {"sale_id": SALE, "now_ms": end_ms, "counters": counters, "sold": sold, "holds": []},
             "read_ms": end_ms, "extra": {}}
    (run_dir / "final_state.json").write_text(json.dumps(final), encoding="utf-8")
    from oversold.model.scenario import Sale, Scenario
    from oversold.model.scenario_file import dump_scenario

    scenario = Scenario(name="checker-scale", sale=Sale(id=SALE, stock=stock, hold_ttl_ms=int(HOLD_TTL_S * 1000)))
    (run_dir / "scenario.yaml").write_text(dump_scenario(scenario), encoding="utf-8")
    os.replace(tmp, run_dir / "history.jsonl")
    return {"records": n, "stock": stock, "users": users, "sold": sold_qty}


def ensure_run(base: Path, records: int) -> Path:
    run_dir = base / f"run-{records}"
    if not (run_dir / "history.jsonl").exists() or not (run_dir / "final_state.json").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = generate(run_dir, records)
        print(f"  generated {info['records']:,} records in {time.perf_counter() - t0:.0f} s "
              f"(stock {info['stock']:,}, {info['users']:,} users, {info['sold']:,} sold) -> {run_dir}", flush=True)
    if not (run_dir / "history.cols").exists():
        # the columnar twin a run writes beside its history.jsonl (the swarm's collector does, in one pass)
        from oversold.model.history import write_twin

        t0 = time.perf_counter()
        write_twin(run_dir / "history.jsonl")
        print(f"  wrote its columnar twin in {time.perf_counter() - t0:.0f} s", flush=True)
    return run_dir


# --------------------------------------------------------------------------- the measured steps (in a child)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    # CPU seconds of this process: on a shared machine they move far less than the wall clock
    # (the steps are single-threaded, so on an idle machine wall time is about this)
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure_baseline(run_dir: Path) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), _cpu_s()
    n = 0
    with open(run_dir / "history.jsonl", encoding="utf-8") as f:
        for line in f:
            json.loads(line)
            n += 1
    return {"records": n, "total_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0, "peak_mib": _peak_mib()}


def measure_oversold(run_dir: Path) -> dict[str, Any]:
    from oversold.analysis.metrics import compute_metrics
    from oversold.model.history import FinalState, read_history

    try:
        from oversold.checker import SaleView, check_view
    except ImportError:  # a checkout from before check_view (run this file from it to measure it)
        return _measure_before(run_dir)

    final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text(encoding="utf-8")))
    c0 = _cpu_s()
    t0 = time.perf_counter()
    ops = read_history(run_dir / "history.jsonl")
    t1 = time.perf_counter()
    view = SaleView.build(ops, final)  # as judge() does: one view for the checker and the metrics
    verdict = check_view(view)
    t2 = time.perf_counter()
    metrics = compute_metrics(ops, final, totals=verdict.totals, view=view)
    t3 = time.perf_counter()
    cpu = _cpu_s() - c0
    return {"records": len(ops), "cpu_s": cpu, "read_s": t1 - t0, "check_s": t2 - t1, "metrics_s": t3 - t2, "total_s": t3 - t0,
            "peak_mib": _peak_mib(), "verdict": verdict.overall,
            "failed": [i.name for i in verdict.invariants if i.status != "pass"],
            "p99_order_ms": metrics.stat("latency.order", "p(99)")}


def measure_cli(run_dir: Path) -> dict[str, Any]:
    """``oversold check RUN_DIR``, the whole of it: read, check, metrics, results.json, junit.xml, report.html."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "oversold.cli", "check", str(run_dir)], capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"oversold check {run_dir} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"total_s": elapsed, "peak_mib": peak, "exit": proc.returncode,
            "report_kib": (run_dir / "report.html").stat().st_size / 1024,
            "results_kib": (run_dir / "results.json").stat().st_size / 1024}


def _measure_before(run_dir: Path) -> dict[str, Any]:
    from oversold.analysis.metrics import compute_metrics
    from oversold.checker import check
    from oversold.model.history import FinalState, read_history

    final = FinalState.from_dict(json.loads((run_dir / "final_state.json").read_text(encoding="utf-8")))
    c0, t0 = _cpu_s(), time.perf_counter()
    ops = read_history(run_dir / "history.jsonl")
    t1 = time.perf_counter()
    verdict = check(ops, final)
    t2 = time.perf_counter()
    compute_metrics(ops, final, totals=verdict.totals)
    t3 = time.perf_counter()
    return {"records": len(ops), "cpu_s": _cpu_s() - c0, "read_s": t1 - t0, "check_s": t2 - t1, "metrics_s": t3 - t2,
            "total_s": t3 - t0, "peak_mib": _peak_mib(), "verdict": verdict.overall,
            "failed": [i.name for i in verdict.invariants if i.status != "pass"], "p99_order_ms": None}


def measure_write(run_dir: Path) -> dict[str, Any]:
    """What the end of a run pays to write the history: ``write_history_stream`` (the JSON lines and their
    columnar twin) against the JSON lines alone, and what reading it back then costs from either."""
    import shutil
    import tempfile

    from oversold.model.gcpause import gc_paused
    from oversold.model.history import iter_history, read_history, write_history_stream

    ops = read_history(run_dir / "history.jsonl")
    out = Path(tempfile.mkdtemp(prefix="checker-scale-write-", dir=str(run_dir.parent)))
    try:
        c0 = _cpu_s()
        write_history_stream(out / "history.jsonl", ops)
        c1 = _cpu_s()
        write_history_stream(out / "alone.jsonl", ops, with_twin=False)
        c2 = _cpu_s()
        del ops
        n = len(read_history(out / "history.jsonl"))
        c3 = _cpu_s()
        with gc_paused():
            m = len(list(iter_history(out / "history.jsonl")))
        c4 = _cpu_s()
        return {"records": n, "write_with_twin_cpu_s": c1 - c0, "write_json_alone_cpu_s": c2 - c1,
                "read_twin_cpu_s": c3 - c2, "read_json_cpu_s": c4 - c3, "same_count": n == m,
                "twin_bytes_a_record": (out / "history.cols").stat().st_size / n if n else None}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_child(step: str, run_dir: Path, timeout_s: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", step, str(run_dir)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=str(ROOT))
    if proc.returncode != 0:
        raise SystemExit(f"{step} on {run_dir} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000", help="record counts, comma separated")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/oversold-checker-scale"),
                    help="where the generated runs are kept between runs")
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="per measurement")
    ap.add_argument("--max-s", type=float, default=None,
                    help="exit 1 if 10^6 records take more CPU seconds (read+check+metrics)")
    ap.add_argument("--max-mib", type=float, default=None, help="exit 1 if 10^6 records peak above this RSS")
    ap.add_argument("--cli", action="store_true", help="also time `oversold check` of each run (writes its report)")
    ap.add_argument("--write", action="store_true",
                    help="also time writing each history (with its columnar twin, and the JSON lines alone) and "
                         "reading it back from either")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--child", nargs=2, metavar=("STEP", "RUN_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        step, run_dir = args.child
        fn = {"baseline": measure_baseline, "oversold": measure_oversold, "cli": measure_cli,
              "write": measure_write}[step]
        print(json.dumps(fn(Path(run_dir))))
        return 0

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    print(f"checker_scale: {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
          flush=True)
    rows = []
    status = 0
    for size in sizes:
        run_dir = ensure_run(args.dir, size)
        base = run_child("baseline", run_dir, args.timeout_s)
        ours = run_child("oversold", run_dir, args.timeout_s)
        row = {"size": size, "records": ours["records"], "baseline": base, "oversold": ours,
               "records_per_s": ours["records"] / ours["total_s"], "ratio": ours["total_s"] / base["total_s"],
               "cpu_ratio": ours["cpu_s"] / base["cpu_s"] if ours.get("cpu_s") and base.get("cpu_s") else None,
               "load": os.getloadavg()[0]}
        rows.append(row)
        print(f"{ours['records']:>11,} records: read {ours['read_s']:6.2f} s  check {ours['check_s']:6.2f} s  "
              f"metrics {ours['metrics_s']:6.2f} s  total {ours['total_s']:6.2f} s  "
              f"{row['records_per_s']:>9,.0f} rec/s  CPU {ours.get('cpu_s', float('nan')):6.2f} s  "
              f"peak {ours['peak_mib']:6.0f} MiB  verdict {ours['verdict']}"
              f"{' ' + ','.join(ours['failed']) if ours['failed'] else ''}", flush=True)
        print(f"{'':>11}  baseline (json.loads per line) {base['total_s']:6.2f} s (CPU {base.get('cpu_s', 0):.2f} s) "
              f"peak {base['peak_mib']:4.0f} MiB; "
              f"ratio oversold/baseline {row['ratio']:.2f}, CPU {row['cpu_ratio'] or float('nan'):.2f}  "
              f"(load {row['load']:.1f})", flush=True)
        if args.cli:
            cli = run_child("cli", run_dir, args.timeout_s)
            row["cli"] = cli
            print(f"{'':>11}  oversold check: {cli['total_s']:6.2f} s peak {cli['peak_mib']:5.0f} MiB, "
                  f"report.html {cli['report_kib']:,.0f} KiB, results.json {cli['results_kib']:,.0f} KiB", flush=True)
        if args.write:
            w = run_child("write", run_dir, args.timeout_s)
            row["write"] = w
            print(f"{'':>11}  write: with twin {w['write_with_twin_cpu_s']:.2f} s, JSON alone "
                  f"{w['write_json_alone_cpu_s']:.2f} s; read back: twin {w['read_twin_cpu_s']:.2f} s, JSON "
                  f"{w['read_json_cpu_s']:.2f} s (CPU; twin {w['twin_bytes_a_record']:.0f} bytes a record)", flush=True)
        if size == 1_000_000:
            if args.max_s is not None and ours["cpu_s"] > args.max_s:
                print(f"  FAIL: {ours['cpu_s']:.2f} s of CPU > {args.max_s} s")
                status = 1
            if args.max_mib is not None and ours["peak_mib"] > args.max_mib:
                print(f"  FAIL: {ours['peak_mib']:.0f} MiB > {args.max_mib} MiB")
                status = 1
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        args.out.write_text(json.dumps({"commit": commit, "python": platform.python_version(),
                                        "cores": os.cpu_count(), "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
