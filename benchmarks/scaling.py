"""A hot SKU on a loopback Redis Cluster: orders per second vs buckets and vs nodes, and where it stops.

One Redis Cluster (``--shards`` primaries, a replica each: ``oversold.chaos.cluster.ClusterTopology``)
and ``max(--nodes)`` reference backend nodes on it, all on this machine. Each *row* is one
configuration of one sale: a strategy, its buckets, how many of the nodes take the load.
wrk (``benchmarks/order.lua``: POST /v1/sales/{id}/orders, qty 1, a distinct user and
Idempotency-Key per request) runs once per node taking part, concurrently, the
``--connections`` split between them; the row's req/s is their sum. Stock is 10^9 (every
answer a 201; anything else fails the run). Rows take turns, A B ... in odd rounds and
... B A in even ones, each on a freshly reset sale, and each figure is the median over
the rounds.

Rows (``--rows``; default all):

  pre_deduct            1 node, one script call per order, the sale on one slot
  pre_deduct_coalesced  1 node, orders coalesced, one slot
  buckets=B             pre_deduct_buckets with B buckets (``--buckets``, default 1,2,4,8), 1 node
  nodes=N               pre_deduct_buckets with ``--node-buckets`` buckets (default 4), N nodes (``--nodes``)

Beside req/s each row has the CPU the nodes, the Redis primaries and wrk used per
request and in cores, the machine's other load, and the script calls Redis ran per
request (below 1 when orders are coalesced). The *ceiling* is the best row's req/s;
the JSON says which part of the machine was busiest there.

Usage::

    .venv/bin/python benchmarks/scaling.py                              # ~6 min: 9 rows x 3 rounds x 10 s
    .venv/bin/python benchmarks/scaling.py --rounds 2 --duration 5 --rows buckets --buckets 1,4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import order_path as op  # noqa: E402  (puts this checkout on sys.path and PYTHONPATH too)
import redis  # noqa: E402

from oversold.chaos.cluster import ClusterTopology  # noqa: E402
from oversold.orchestrate.nodes import BackendNode, start_nodes  # noqa: E402

DEFAULT_OUT = HERE / "results" / "scaling.json"
SALE = "hot"


@dataclass
class Row:
    """One configuration measured: a strategy, its buckets, the nodes taking the load."""

    name: str
    strategy: str
    buckets: int
    nodes: int
    runs: list[dict[str, Any]] = field(default_factory=list)


def plan(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    kinds = args.row_list
    if "pre_deduct" in kinds:
        rows.append(Row("pre_deduct", "pre_deduct", 0, 1))
    if "pre_deduct_coalesced" in kinds:
        rows.append(Row("pre_deduct_coalesced", "pre_deduct_coalesced", 0, 1))
    if "buckets" in kinds:
        rows += [Row(f"buckets={b}", "pre_deduct_buckets", b, 1) for b in args.bucket_list]
    if "nodes" in kinds:
        rows += [Row(f"nodes={n}", "pre_deduct_buckets", args.node_buckets, n) for n in args.node_list if n > 1]
    return rows


def reset(node: BackendNode, row: Row, stock: int, topo: ClusterTopology) -> None:
    """An empty cluster (every primary flushed, so earlier turns' orders weigh on nothing), then the row's sale."""
    for shard in range(topo.shards):
        host, port = topo.primary(shard)
        client = redis.Redis(host=host, port=port)
        try:
            client.flushall()
        finally:
            client.close()
    body: dict[str, Any] = {"stock": stock, "hold_ttl_ms": 3_600_000, "strategy": row.strategy}
    if row.buckets:
        body["buckets"] = row.buckets
    status, answer = node.client(timeout=30).put_sale(SALE, **body)
    if status != 200:
        raise op.BenchError(f"PUT sale for {row.name}: {status} {answer}")


def primaries(topo: ClusterTopology) -> list[int]:
    return [topo.node_at(topo.primary(s)).child.pid for s in range(topo.shards)]


def script_calls(topo: ClusterTopology) -> int:
    total = 0
    for shard in range(topo.shards):
        host, port = topo.primary(shard)
        total += op.script_calls(f"redis://{host}:{port}/0")
    return total


def measure(row: Row, nodes: list[BackendNode], topo: ClusterTopology, args: argparse.Namespace,
            rnd: int) -> dict[str, Any]:
    reset(nodes[0], row, args.stock, topo)
    used = nodes[: row.nodes]
    tag = f"r{rnd}-{row.name.replace('=', '')}-{secrets.token_hex(3)}"  # Idempotency-Keys take no '='
    per = max(1, args.connections // len(used))
    node_pids, redis_pids = [n.child.pid for n in used], primaries(topo)
    calls0 = script_calls(topo)
    cpu0 = [op.proc_cpu_s(p) for p in node_pids + redis_pids]
    ru0, (busy0, tot0), t0 = resource.getrusage(resource.RUSAGE_CHILDREN), op.machine_busy_s(), time.monotonic()
    procs = [subprocess.Popen(op.wrk_argv(args.wrk, n.url, op.WRK_SCRIPTS["order"], args.duration, per, 1,
                                          SALE, f"{tag}-{i}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i, n in enumerate(used)]
    outs = [p.communicate(timeout=args.duration + 60) for p in procs]
    t1, (busy1, tot1), ru1 = time.monotonic(), op.machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = [op.proc_cpu_s(p) for p in node_pids + redis_pids]
    calls = script_calls(topo) - calls0
    results = [op.wrk_json(o, e, p.returncode, f"{row.name} node {i + 1}") for i, (p, (o, e)) in
               enumerate(zip(procs, outs))]
    wall = t1 - t0
    n = sum(r["requests"] for r in results)
    errors = sum(sum(r["errors"].values()) for r in results)
    node_cpu = sum(b - a for a, b in zip(cpu0[: len(node_pids)], cpu1[: len(node_pids)]))
    redis_cpu = sum(b - a for a, b in zip(cpu0[len(node_pids):], cpu1[len(node_pids):]))
    wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy = (busy1 - busy0) / wall
    return {
        "round": rnd, "requests": n, "errors": errors,
        "rps": round(sum(r["requests"] / (r["duration_us"] / 1e6) for r in results), 1),
        "p99_ms": max(r["latency_us"]["p99"] for r in results) / 1000,
        "node_cpu_us_per_req": round(node_cpu / n * 1e6, 1) if n else None,
        "redis_cpu_us_per_req": round(redis_cpu / n * 1e6, 1) if n else None,
        "script_calls_per_req": round(calls / n, 3) if n else None,
        "node_cpu_cores": round(node_cpu / wall, 2), "redis_cpu_cores": round(redis_cpu / wall, 2),
        "wrk_cpu_cores": round(wrk_cpu / wall, 2), "machine_busy_cores": round(busy, 2),
        "other_cpu_cores": round(max(0.0, busy - (node_cpu + redis_cpu + wrk_cpu) / wall), 2),
        "machine_cores": round((tot1 - tot0) / wall, 2),
    }


KEYS = ("rps", "p99_ms", "node_cpu_us_per_req", "redis_cpu_us_per_req", "script_calls_per_req", "node_cpu_cores",
        "redis_cpu_cores", "wrk_cpu_cores", "other_cpu_cores")


def table(rows: list[Row]) -> str:
    head = "| row | strategy | buckets | nodes | req/s | p99 ms | node CPU µs/req | Redis CPU µs/req | script calls/req | " \
           "cores: nodes / Redis / wrk / others |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        m = {k: op.median(r.runs, k) for k in KEYS}
        lines.append(f"| {r.name} | {r.strategy} | {r.buckets or '—'} | {r.nodes} | {m['rps']:.0f} | {m['p99_ms']:.1f} | "
                     f"{m['node_cpu_us_per_req']:.0f} | {m['redis_cpu_us_per_req']:.0f} | "
                     f"{m['script_calls_per_req']:.3f} | {m['node_cpu_cores']:.2f} / {m['redis_cpu_cores']:.2f} / "
                     f"{m['wrk_cpu_cores']:.2f} / {m['other_cpu_cores']:.2f} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", type=int, default=3, help="cluster primaries, each with a replica (default 3)")
    p.add_argument("--rows", default="pre_deduct,pre_deduct_coalesced,buckets,nodes",
                   help="comma list of pre_deduct, pre_deduct_coalesced, buckets, nodes")
    p.add_argument("--buckets", default="1,2,4,8", help="bucket counts of the buckets rows (default 1,2,4,8)")
    p.add_argument("--nodes", default="1,2,3", help="node counts of the nodes rows (default 1,2,3)")
    p.add_argument("--node-buckets", type=int, default=4, help="buckets of the nodes rows (default 4)")
    p.add_argument("--duration", type=int, default=10, help="seconds per turn (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="turns per row (default 3)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections in all, split over the nodes")
    p.add_argument("--stock", type=int, default=10**9)
    p.add_argument("--node-args", default="", help="extra arguments of every node, e.g. '--server granian'")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--wrk", default=shutil.which("wrk"), help="wrk binary (default: on PATH)")
    args = p.parse_args(argv)
    if not args.wrk:
        p.error("wrk not found: apt-get install -y wrk (or pass --wrk)")
    args.row_list = [r for r in args.rows.split(",") if r]
    bad = [r for r in args.row_list if r not in ("pre_deduct", "pre_deduct_coalesced", "buckets", "nodes")]
    try:
        args.bucket_list = [int(b) for b in args.buckets.split(",") if b]
        args.node_list = [int(n) for n in args.nodes.split(",") if n]
    except ValueError:
        p.error("--buckets and --nodes: comma lists of integers")
    if bad or not args.row_list:
        p.error(f"--rows: unknown {bad}")
    if min(args.bucket_list + args.node_list + [args.node_buckets, args.shards, args.rounds, args.duration]) < 1:
        p.error("--buckets, --nodes, --node-buckets, --shards, --rounds, --duration: every value >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    rows = plan(args)
    log_dir = Path(tempfile.mkdtemp(prefix="oversold-scaling-"))
    topo: ClusterTopology | None = None
    nodes: list[BackendNode] = []
    load_start, started = os.getloadavg(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        topo = ClusterTopology.start(shards=args.shards, log_dir=log_dir)
        nodes = start_nodes(max(r.nodes for r in rows), topo.url, admin_token=secrets.token_urlsafe(16),
                            log_dir=log_dir, name_prefix="scaling", extra_args=tuple(args.node_args.split()))
        print(f"cluster: {args.shards} shards {topo.url}; nodes: {', '.join(n.url for n in nodes)}", flush=True)
        for row in rows:  # warm-up: scripts loaded, connections made
            measure(row, nodes, topo, argparse.Namespace(**{**vars(args), "duration": 1}), 0)
        for rnd in range(1, args.rounds + 1):
            for row in rows if rnd % 2 else rows[::-1]:
                r = measure(row, nodes, topo, args, rnd)
                if not r["requests"] or r["errors"]:
                    probe = nodes[0].client(timeout=10).order(SALE, "probe", 1)
                    raise op.BenchError(f"{row.name}: {r['requests']} requests, {r['errors']} errors; an order "
                                        f"now: {probe}; node log:\n{nodes[0].log_tail()}")
                row.runs.append(r)
                print(f"round {rnd} {row.name:<22} {r['rps']:>8.0f} req/s  p99 {r['p99_ms']:.1f} ms  "
                      f"nodes {r['node_cpu_cores']} Redis {r['redis_cpu_cores']} wrk {r['wrk_cpu_cores']} "
                      f"other {r['other_cpu_cores']} cores  script calls/req {r['script_calls_per_req']}", flush=True)
    except op.BenchError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        for node in nodes:
            node.stop()
        if topo is not None:
            topo.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    best = max(rows, key=lambda r: op.median(r.runs, "rps") or 0)
    result = {
        "benchmark": "scaling", "started_at": started, "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measured": "POST /v1/sales/hot/orders, qty 1, distinct user and Idempotency-Key each, stock never runs out; "
                    "one wrk per node taking part, the connections split between them",
        "machine": {"cpus": os.cpu_count(), "cpu_model": op.cpu_model(), "platform": platform.platform(),
                    "loadavg_start": [round(v, 2) for v in load_start],
                    "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
        "versions": op.versions(args.wrk), "source": op.source_state(),
        "config": {"shards": args.shards, "duration_s": args.duration, "rounds": args.rounds,
                   "connections": args.connections, "node_args": args.node_args},
        "rows": [{"name": r.name, "strategy": r.strategy, "buckets": r.buckets, "nodes": r.nodes,
                  "median": {k: op.median(r.runs, k) for k in KEYS}, "runs": r.runs} for r in rows],
        "ceiling": {"row": best.name, "rps": op.median(best.runs, "rps"),
                    "cores": {k: op.median(best.runs, k) for k in ("node_cpu_cores", "redis_cpu_cores", "wrk_cpu_cores",
                                                                    "other_cpu_cores")}},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(rows))
    print(f"\nceiling: {best.name} at {result['ceiling']['rps']:.0f} req/s; results: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop still cleans every process up
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
