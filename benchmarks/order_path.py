"""Order-path benchmark: the reference backend against a bare baseline app, in the same run.

Every contender is one server process on loopback in front of one embedded
Redis; wrk (``benchmarks/order.lua``) POSTs orders with a distinct user id and
Idempotency-Key each. The contenders take turns, one at a time, round after
round (A B, B A, A B, ...), on a Redis emptied and given a fresh sale before
each turn, so machine noise falls on all of them; the figures are medians over
the rounds. Stock is far larger than a run can sell: every answer measured is a
201 (a non-2xx answer counts as an error and fails the run).

Contenders (``--contenders``):
  reference  a reference backend node (``BackendNode.start``), one per strategy
  baseline   ``benchmarks/baseline_app.py``: a bare ASGI app doing just the
             strategy's order script, on granian embed like a node
  uvicorn    the same bare app under uvicorn (asyncio loop, httptools)
  starlette  the same call as a Starlette route, on granian embed
  fastapi    the same call as a FastAPI route with a pydantic body, on granian embed
uvicorn, starlette and fastapi need the ``bench`` extra (``pip install -e '.[bench]'``);
without it they are skipped, with a note.

``--strategies`` takes names from ``reference_backend.strategies`` (or ``all``);
each gets a reference contender, and each strategy with one atomic order
script (a ``LuaStrategy``) a baseline running that same script, and a ratio.
The other variants run against the first such strategy only.

The figure that matters is ``ratio`` = reference req/s / baseline req/s, the
median of the per-round ratios: each pair ran back to back on the same machine.
The exit status is 1 when a ratio is below ``--min-ratio``, 2 when a contender
failed (no requests, errors, a process died).

``--ops order,pay`` adds the pay path: ``POST /v1/sales/{id}/orders/{order_id}/pay``
(``benchmarks/pay.lua``). Before each pay turn ``--pay-orders`` held orders (default
6000 per second of the turn) are made straight in Redis, by the strategy's own order
script in pipelined batches (naive: its order hash written directly), and their ids
are handed to wrk in a file; every request pays a different order with its own
Idempotency-Key, and after the turn the number of orders paid (``orders_paid``, the
sale's sold set) must be at least the requests answered. The pay baseline is the bare
app running the strategy's single pay script; strategies whose pay is more than one
script (``payment_deduct``: capture then settle; ``pre_deduct_ledger``: prepare, the
warehouse ledger, commit; ``naive``) are measured without a baseline or ratio.
``pre_deduct_ledger``'s node runs with a warehouse ledger (SQLite in the run's temp
directory), its sale created in the ledger before each turn.

Usage::

    .venv/bin/python benchmarks/order_path.py [--duration 10] [--rounds 5] [--connections 32]
        [--strategies pre_deduct] [--contenders reference,baseline,uvicorn,starlette,fastapi]
        [--min-ratio 0.7] [--out benchmarks/results/order_path.json]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this checkout's packages, here and in every server process started from here
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

import redis  # noqa: E402

from oversold.infra.procs import Child, free_port, wait_for_port  # noqa: E402
from oversold.infra.redis_server import RedisServer, find_redis_binary  # noqa: E402
from oversold.orchestrate.nodes import BackendNode  # noqa: E402
from reference_backend.keys import SaleKeys  # noqa: E402
from reference_backend.sale import SaleConfig  # noqa: E402
from reference_backend.store import Store  # noqa: E402
from reference_backend.strategies import LuaStrategy, discover  # noqa: E402

WRK_SCRIPTS = {"order": HERE / "order.lua", "pay": HERE / "pay.lua"}  # op -> wrk script
OPS = tuple(WRK_SCRIPTS)
DEFAULT_OUT = HERE / "results" / "order_path.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# variant -> (server, framework, modules it needs)
VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "baseline": ("granian", "bare", ()),
    "uvicorn": ("uvicorn", "bare", ("uvicorn", "httptools")),
    "starlette": ("granian", "starlette", ("starlette",)),
    "fastapi": ("granian", "fastapi", ("fastapi",)),
}
# the reference node under each server it can run (reference_backend.servers): the default is picked from this
REFERENCES = {"reference": "granian", "reference_uvicorn": "uvicorn"}
ALL_CONTENDERS = (*REFERENCES, *VARIANTS)


class BenchError(Exception):
    """A contender could not be started or did not serve: the run proves nothing."""


@dataclass
class Contender:
    """One server under test: the reference node of a strategy, or a baseline variant."""

    kind: str  # "reference" or a key of VARIANTS
    strategy: str
    op: str
    server: str
    framework: str
    port: int
    process: Child | BackendNode
    runs: list[dict[str, Any]] = field(default_factory=list)
    pay_ids: Path | None = None  # pay: the file of held order ids wrk pays this turn
    script: str | None = None  # the one Lua script of this op (None: more than one step)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.strategy}" + ("" if self.op == "order" else f":{self.op}")

    @property
    def pid(self) -> int:
        return self.process.child.pid if isinstance(self.process, BackendNode) else self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self) -> str:
        return self.process.log_tail()

    def stop(self) -> None:
        self.process.stop()


# --- processes ------------------------------------------------------------------


def ledger_path(log_dir: Path) -> Path:
    """The warehouse ledger of the nodes whose strategy needs one (pre_deduct_ledger)."""
    return log_dir / "ledger.sqlite3"


def start_reference(redis_url: str, strategy: str, log_dir: Path, kind: str = "reference", op: str = "order",
                    needs_ledger: bool = False, node_args: tuple[str, ...] = ()) -> Contender:
    server = REFERENCES[kind]
    extra = ("--server", server, *(("--ledger", str(ledger_path(log_dir))) if needs_ledger else ()), *node_args)
    node = BackendNode.start(redis_url, name=f"{kind}-{strategy}", admin_token=secrets.token_urlsafe(16),
                             log_dir=log_dir, extra_args=extra)
    return Contender(kind, strategy, op, server, "reference_backend", node.port, node)


def start_variant(kind: str, redis_url: str, strategy: str, script: str, log_dir: Path, op: str = "order") -> Contender:
    server, framework, _ = VARIANTS[kind]
    for _attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        argv = [sys.executable, str(HERE / "baseline_app.py"), "--port", str(port), "--redis-url", redis_url,
                "--strategy", strategy, "--script", script, "--server", server, "--framework", framework, "--op", op]
        child = Child.start(argv, name=f"{kind}-{strategy}-{op}", log_dir=log_dir,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=ROOT)
        if wait_for_port(port, timeout=15, child=child):
            return Contender(kind, strategy, op, server, framework, port, child)
        tail = child.log_tail()
        child.stop()
    raise BenchError(f"{kind} for {strategy} did not start; log:\n{tail}")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    total = sum(ticks[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


# --- one turn -------------------------------------------------------------------


def reset_sales(redis_url: str, strategies: list[str], stock: int, hold_ttl_ms: int,
                ledger: Path | None = None, ledger_strategies: tuple[str, ...] = ()) -> None:
    """An empty Redis with one fresh sale ``bench-<strategy>`` per strategy (as PUT /v1/sales does).

    A strategy in ``ledger_strategies`` gets its sale created in the warehouse ledger too, with a
    new epoch, as a node with ``--ledger`` does.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()
    epochs: dict[str, str] = {}
    if ledger is not None and any(s in ledger_strategies for s in strategies):
        from reference_backend.ledger import SqliteLedger

        led = SqliteLedger(str(ledger))
        try:
            for s in strategies:
                if s in ledger_strategies:
                    epochs[s] = secrets.token_hex(8)
                    led.create_sale(sale_id(s), stock, epochs[s])
        finally:
            led.close()

    async def put() -> None:
        store = Store.connect(redis_url)
        try:
            for s in strategies:
                await store.put_sale(sale_id(s), SaleConfig(stock=stock, hold_ttl_ms=hold_ttl_ms, strategy=s,
                                                            epoch=epochs.get(s, "")))
        finally:
            await store.close()

    asyncio.run(put())


def make_held_orders(redis_url: str, strategy: str, strategy_cls: type, n: int, out: Path, batch: int = 4000) -> int:
    """``n`` unpaid orders in the sale of ``strategy``, made straight in Redis; their ids, one a line, in ``out``.

    A Lua strategy's orders come from its own order script with a node's arguments (no key,
    no policy), pipelined; naive's order hash is written as ``Naive._order`` writes it.
    """
    sid = sale_id(strategy)
    k = SaleKeys(sid)
    client = redis.Redis.from_url(redis_url)
    ids: list[str] = []
    try:
        if issubclass(strategy_cls, LuaStrategy):
            from reference_backend import lua

            script = client.register_script(lua.source(strategy_cls.scripts["order"]))
            nonce = secrets.token_hex(6)
            for start in range(0, n, batch):
                with client.pipeline(transaction=False) as p:
                    for i in range(start, min(n, start + batch)):
                        user = f"payer-{i}"
                        script(keys=k.op_keys("order", None), client=p,
                               args=[strategy, sid, "0", f"1:{user}", k.order_prefix, user, 1, "", "", "", nonce])
                    for kind, payload in p.execute():
                        result = json.loads(payload.partition(b"\n")[2]) if kind not in (b"s", b"p") else {}
                        if result.get("s") != 201:
                            raise BenchError(f"setup order for {strategy} answered {kind!r} {payload[:200]!r}")
                        ids.append(result["o"]["order_id"])
        else:
            sec, usec = client.time()
            now = sec * 1000 + usec // 1000
            ttl = int(client.hget(k.meta, "hold_ttl_ms") or 3_600_000)
            nonce = secrets.token_hex(6)
            for start in range(0, n, batch):
                with client.pipeline(transaction=False) as p:
                    for i in range(start, min(n, start + batch)):
                        oid = f"{i + 1}-{nonce}"
                        p.hset(k.order(oid), mapping={"user_id": f"payer-{i}", "qty": 1, "status": "held",
                                                      "created_ms": now, "expires_ms": now + ttl})
                        p.zadd(k.holds, {oid: now + ttl})
                        ids.append(oid)
                    p.decrby(k.avail, min(n, start + batch) - start)
                    p.incrby(k.held, min(n, start + batch) - start)
                    p.execute()
    finally:
        client.close()
    out.write_text("\n".join(ids) + "\n")
    return len(ids)


def script_calls(redis_url: str) -> int:
    """EVAL and EVALSHA calls Redis has run so far (INFO commandstats)."""
    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("eval", "evalsha"))


def orders_paid(redis_url: str, strategy: str) -> int:
    """Distinct orders paid in the sale (its sold set: one entry per paid order)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.hlen(SaleKeys(sale_id(strategy)).sold_set))
    finally:
        client.close()


def sale_id(strategy: str) -> str:
    return f"bench-{strategy}"


def orders_placed(redis_url: str, strategy: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.get(SaleKeys(sale_id(strategy)).seq) or 0)
    finally:
        client.close()


def probe(c: Contender, order_id: str | None = None) -> tuple[int, bytes]:
    """One order (or, for pay, one payment of ``order_id``), by hand: the status and body a contender answers."""
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    try:
        if c.op == "pay":
            conn.request("POST", f"/v1/sales/{sale_id(c.strategy)}/orders/{order_id}/pay",
                         headers={"Idempotency-Key": secrets.token_hex(8)})
        else:
            body = json.dumps({"user_id": f"probe-{c.kind}", "qty": 1})
            conn.request("POST", f"/v1/sales/{sale_id(c.strategy)}/orders", body=body,
                         headers={"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wrk_argv(wrk: str, url: str, script: Path, seconds: int, connections: int, threads: int,
             *script_args: str) -> list[str]:
    """A wrk command line: ``script`` against ``url`` for ``seconds``; the script's own arguments last."""
    return [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
            "-s", str(script), url, "--", *script_args]


def wrk_json(stdout: str, stderr: str, returncode: int, name: str) -> dict[str, Any]:
    """The ``WRK_JSON {...}`` line our wrk scripts print at the end; ``BenchError`` if there is none."""
    found = re.search(r"^WRK_JSON (\{.*\})$", stdout, re.M)
    if returncode != 0 or not found:
        raise BenchError(f"wrk against {name} failed ({returncode}):\n{stdout}\n{stderr}")
    return json.loads(found.group(1))


def run_wrk(c: Contender, args: argparse.Namespace, seconds: int, tag: str) -> dict[str, Any]:
    extra = [str(c.pay_ids), str(args.threads)] if c.op == "pay" else []
    argv = wrk_argv(args.wrk, c.url, WRK_SCRIPTS[c.op], seconds, args.connections, args.threads,
                    sale_id(c.strategy), tag, *extra)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    return wrk_json(done.stdout, done.stderr, done.returncode, c.name)


def prepare_turn(c: Contender, args: argparse.Namespace, redis_srv: RedisServer, seconds: int) -> float:
    """A fresh sale for the turn; for pay, its held orders too. Seconds the setup took."""
    t0 = time.monotonic()
    reset_sales(redis_srv.url, args.strategy_list, args.stock, args.hold_ttl_ms, args.ledger, args.ledger_strategies)
    if c.op == "pay":
        n = args.pay_orders or max(2000, seconds * 6000)
        assert c.pay_ids is not None
        make_held_orders(redis_srv.url, c.strategy, args.strategy_classes[c.strategy], n, c.pay_ids)
    return time.monotonic() - t0


def measure(c: Contender, args: argparse.Namespace, redis_srv: RedisServer, rnd: int) -> dict[str, Any]:
    """One timed turn of one contender on a fresh sale."""
    setup_s = prepare_turn(c, args, redis_srv, args.duration)
    tag = f"r{rnd}-{c.kind}-{secrets.token_hex(3)}"
    calls0 = script_calls(redis_srv.url)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv0, red0, (busy0, tot0), t0 = proc_cpu_s(c.pid), proc_cpu_s(redis_srv.child.pid), machine_busy_s(), time.monotonic()
    w = run_wrk(c, args, args.duration, tag)
    srv1, red1, (busy1, tot1), t1 = proc_cpu_s(c.pid), proc_cpu_s(redis_srv.child.pid), machine_busy_s(), time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    calls = script_calls(redis_srv.url) - calls0
    wall = t1 - t0
    n = w["requests"]
    server_cpu, redis_cpu = srv1 - srv0, red1 - red0
    wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy_cores = (busy1 - busy0) / wall
    cores = (tot1 - tot0) / wall
    errors = sum(w["errors"].values())
    return {
        "round": rnd,
        "requests": n,
        "rps": round(n / (w["duration_us"] / 1e6), 1),
        "p50_ms": w["latency_us"]["p50"] / 1000,
        "p90_ms": w["latency_us"]["p90"] / 1000,
        "p99_ms": w["latency_us"]["p99"] / 1000,
        "max_ms": w["latency_us"]["max"] / 1000,
        "errors": w["errors"],
        "error_count": errors,
        "orders_placed": orders_placed(redis_srv.url, c.strategy),
        # pay: distinct orders paid this turn (every request paid its own order: >= requests)
        **({"orders_paid": orders_paid(redis_srv.url, c.strategy), "setup_s": round(setup_s, 2)}
           if c.op == "pay" else {}),
        "server_cpu_us_per_req": round(server_cpu / n * 1e6, 1) if n else None,
        # Lua script calls Redis ran per request answered: 1 one by one, below 1 when orders are coalesced
        "script_calls_per_req": round(calls / n, 3) if n else None,
        "redis_cpu_us_per_req": round(redis_cpu / n * 1e6, 1) if n else None,
        "server_cpu_cores": round(server_cpu / wall, 2),
        "redis_cpu_cores": round(redis_cpu / wall, 2),
        "wrk_cpu_cores": round(wrk_cpu / wall, 2),
        "machine_busy_cores": round(busy_cores, 2),
        # CPU used by processes outside this benchmark (other people's test suites, ...)
        "other_cpu_cores": round(max(0.0, busy_cores - (server_cpu + redis_cpu + wrk_cpu) / wall), 2),
        "machine_cores": round(cores, 2),
    }


# --- the run --------------------------------------------------------------------


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summary(c: Contender) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req", "redis_cpu_us_per_req", "other_cpu_cores",
            "script_calls_per_req")
    return {
        "name": c.name, "kind": c.kind, "strategy": c.strategy, "op": c.op, "server": c.server,
        "framework": c.framework, "median": {k: median(c.runs, k) for k in keys},
        "requests": sum(r["requests"] for r in c.runs), "errors": sum(r["error_count"] for r in c.runs),
        "runs": c.runs,
    }


def ratio_of(ref: Contender, base: Contender) -> dict[str, Any]:
    by_round = {r["round"]: r for r in base.runs}
    per_round = [round(r["rps"] / by_round[r["round"]]["rps"], 3) for r in ref.runs
                 if r["round"] in by_round and by_round[r["round"]]["rps"]]
    ref_cpu, base_cpu = median(ref.runs, "server_cpu_us_per_req"), median(base.runs, "server_cpu_us_per_req")
    ref_rps, base_rps = median(ref.runs, "rps"), median(base.runs, "rps")
    return {
        "strategy": ref.strategy, "op": ref.op, "reference": ref.name, "baseline": base.name,
        "ratio": round(statistics.median(per_round), 3) if per_round else None,
        "per_round": per_round,
        "ratio_of_medians": round(ref_rps / base_rps, 3) if ref_rps and base_rps else None,
        # baseline CPU per request / reference CPU per request: the same ratio, measured by cost
        "cpu_ratio": round(base_cpu / ref_cpu, 3) if ref_cpu and base_cpu else None,
    }


def vs_fastest_bare(ref: Contender, bare: list[Contender]) -> dict[str, Any]:
    """Reference req/s over the fastest bare contender's (same op and script), per round and of the medians.

    The baseline for a speed claim is whichever bare app (granian, uvicorn) served most in the run:
    per round, the reference against the best bare turn of that round.
    """
    per_round = []
    for r in ref.runs:
        best = max((b_r["rps"] for b in bare for b_r in b.runs if b_r["round"] == r["round"]), default=0)
        if best:
            per_round.append(round(r["rps"] / best, 3))
    medians = {b.name: median(b.runs, "rps") for b in bare}
    fastest = max(medians, key=lambda n: medians[n] or 0) if medians else None
    ref_rps = median(ref.runs, "rps")
    return {
        "fastest_bare": fastest, "fastest_bare_rps": medians.get(fastest) if fastest else None,
        "reference_rps": ref_rps,
        "vs_fastest_bare": round(statistics.median(per_round), 3) if per_round else None,
        "vs_fastest_bare_per_round": per_round,
        "vs_fastest_bare_of_medians": round(ref_rps / medians[fastest], 3) if fastest and ref_rps and medians[fastest]
        else None,
    }


def versions(wrk: str) -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for dist in ("granian", "redis", "hiredis", "orjson", "uvicorn", "httptools", "starlette", "fastapi", "pydantic"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    found = re.search(r"v=(\S+)", subprocess.run([find_redis_binary(), "--version"], capture_output=True,
                                                 text=True).stdout)
    out["redis-server"] = found.group(1) if found else "?"
    wrk_v = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    out["wrk"] = (wrk_v.stdout or wrk_v.stderr).splitlines()[0].split(" Copyright")[0] if (wrk_v.stdout or wrk_v.stderr) else "?"
    return out


def source_state() -> dict[str, Any]:
    """The commit measured, and whether the reference backend differed from it (uncommitted edits)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "reference_backend_modified": bool(git("status", "--porcelain", "--", "reference_backend"))}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("contender", "server", "framework", "req/s", "p50 ms", "p99 ms", "server CPU µs/req",
            "Redis CPU µs/req", "script calls/req", "errors")
    lines = [head]
    for s in rows:
        m = s["median"]
        lines.append((s["name"], s["server"], s["framework"], f"{m['rps']:.0f}", f"{m['p50_ms']:.2f}",
                      f"{m['p99_ms']:.2f}", f"{m['server_cpu_us_per_req']:.0f}" if m["server_cpu_us_per_req"] else "-",
                      f"{m['redis_cpu_us_per_req']:.0f}" if m["redis_cpu_us_per_req"] else "-",
                      f"{m['script_calls_per_req']:.3f}" if m["script_calls_per_req"] is not None else "-",
                      str(s["errors"])))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    fmt = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines[1:])])


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per turn (default 10)")
    p.add_argument("--rounds", type=int, default=5, help="turns per contender (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed seconds per contender before round 1 (0: none)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the machine has few cores)")
    p.add_argument("--strategies", default="pre_deduct", help="comma list from reference_backend.strategies, or all")
    p.add_argument("--ops", default="order", help=f"comma list of {', '.join(OPS)} (default order)")
    p.add_argument("--pay-orders", type=int, default=0,
                   help="held orders made before each pay turn (default 6000 per second of the turn)")
    p.add_argument("--contenders", default=",".join(ALL_CONTENDERS),
                   help=f"comma list of {', '.join(ALL_CONTENDERS)} (default all; missing packages are skipped)")
    p.add_argument("--stock", type=int, default=10**9, help="stock of each sale: never sells out")
    p.add_argument("--hold-ttl-ms", type=int, default=3_600_000, help="holds outlive the run: the reaper stays idle")
    p.add_argument("--min-ratio", type=float, default=0.7, help="exit 1 if reference/baseline is below this")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--wrk", default=shutil.which("wrk"), help="wrk binary (default: on PATH)")
    p.add_argument("--node-args", default="", help="extra arguments of every reference node, e.g. "
                                                   "'--coalesce-max 32 --coalesce-window-us 200'")
    args = p.parse_args(argv)
    if not args.wrk:
        p.error("wrk not found: apt-get install -y wrk (or pass --wrk)")
    known = discover()
    args.strategy_list = sorted(known) if args.strategies == "all" else [s for s in args.strategies.split(",") if s]
    unknown = [s for s in args.strategy_list if s not in known]
    if unknown or not args.strategy_list:
        p.error(f"--strategies: unknown {unknown}, known: {', '.join(sorted(known))}")
    args.contender_list = [c for c in args.contenders.split(",") if c]
    bad = [c for c in args.contender_list if c not in ALL_CONTENDERS]
    if bad or not args.contender_list:
        p.error(f"--contenders: unknown {bad}, known: {', '.join(ALL_CONTENDERS)}")
    if args.duration < 1 or args.rounds < 1 or args.connections < 1 or args.threads < 1 or args.warmup < 0:
        p.error("--duration, --rounds, --connections, --threads must be >= 1, --warmup >= 0")
    args.op_list = [o for o in args.ops.split(",") if o]
    if not args.op_list or any(o not in OPS for o in args.op_list):
        p.error(f"--ops: comma list of {', '.join(OPS)}")
    args.strategy_classes = known
    args.node_arg_list = tuple(args.node_args.split())
    args.ledger_strategies = tuple(s for s in args.strategy_list if known[s].needs_ledger)
    args.ledger = None  # set by run(): the ledger file in the run's temp directory
    return args


def single_script(cls: type, op: str) -> str | None:
    """The one Lua script a strategy's ``op`` runs, or None when it runs more than that."""
    if not issubclass(cls, LuaStrategy):
        return None
    if op == "pay" and cls.pay is not LuaStrategy.pay:  # its own pay: several steps
        return None
    return cls.scripts[op]


def plan(args: argparse.Namespace) -> tuple[list[tuple[str, str, str, str | None]], list[str]]:
    """(kind, strategy, op, script) of every contender to start, and notes on what is skipped."""
    out: list[tuple[str, str, str, str | None]] = []
    notes: list[str] = []
    for op in args.op_list:
        lua_strategies = [s for s in args.strategy_list if single_script(args.strategy_classes[s], op)]
        for s in args.strategy_list:
            if "reference" in args.contender_list:
                out.append(("reference", s, op, None))
            if "reference_uvicorn" in args.contender_list:
                out.append(("reference_uvicorn", s, op, None))
            script = single_script(args.strategy_classes[s], op)
            if script is None:
                notes.append(f"{s} {op}: no single {op} script, so no baseline and no ratio")
                continue
            if script in [x[3] for x in out if x[0] == "baseline" and x[2] == op]:
                continue  # e.g. pre_deduct_coalesced: the same order script as pre_deduct, one baseline for both
            for kind in VARIANTS:
                if kind not in args.contender_list or (kind != "baseline" and s != lua_strategies[0]):
                    continue
                if op == "pay" and VARIANTS[kind][1] != "bare":
                    continue  # the framework variants serve the order route only
                missing = [m for m in VARIANTS[kind][2] if importlib.util.find_spec(m) is None]
                if missing:
                    note = f"{kind}: skipped, {', '.join(missing)} not installed (pip install -e '.[bench]')"
                    if note not in notes:
                        notes.append(note)
                    continue
                out.append((kind, s, op, script))
    return out, notes


def run(args: argparse.Namespace) -> int:
    todo, notes = plan(args)
    for note in notes:
        print(f"note: {note}", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="oversold-bench-"))
    args.ledger = ledger_path(log_dir)
    contenders: list[Contender] = []
    nodes: dict[tuple[str, str], BackendNode] = {}  # one reference node per (kind, strategy) serves every op
    redis_srv = RedisServer.start(log_dir=log_dir)
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        for kind, s, op, script in todo:
            if kind in REFERENCES:
                node = nodes.get((kind, s))
                if node is None:
                    c = start_reference(redis_srv.url, s, log_dir, kind, op,
                                        needs_ledger=s in args.ledger_strategies, node_args=args.node_arg_list)
                    nodes[(kind, s)] = c.process  # type: ignore[assignment]
                else:
                    c = Contender(kind, s, op, REFERENCES[kind], "reference_backend", node.port, node)
            else:
                assert script is not None
                c = start_variant(kind, redis_srv.url, s, script, log_dir, op)
            if op == "pay":
                c.pay_ids = log_dir / f"pay-ids-{kind}-{s}.txt"
            c.script = script if script is not None else single_script(args.strategy_classes[s], op)
            contenders.append(c)
        print("contenders: " + ", ".join(f"{c.name} (pid {c.pid}, port {c.port})" for c in contenders), flush=True)
        for c in contenders:
            prepare_turn(c, args, redis_srv, 1)
            oid = c.pay_ids.read_text().split()[0] if c.pay_ids else None
            status, body = probe(c, oid)
            if status != (200 if c.op == "pay" else 201):
                raise BenchError(f"{c.name} answers an {c.op} with {status} {body[:300]!r}; log:\n{c.log_tail()}")
        if args.warmup:
            for c in contenders:
                prepare_turn(c, args, redis_srv, args.warmup)
                w = run_wrk(c, args, args.warmup, f"warm-{c.kind}-{secrets.token_hex(3)}")
                if not w["requests"] or sum(w["errors"].values()):
                    raise BenchError(f"{c.name} failed its warm-up: {w}\nlog:\n{c.log_tail()}")
        for rnd in range(1, args.rounds + 1):
            order = contenders if rnd % 2 else contenders[::-1]  # A B, B A, ...: drift hits both alike
            for c in order:
                if not c.alive():
                    raise BenchError(f"{c.name} died; log:\n{c.log_tail()}")
                r = measure(c, args, redis_srv, rnd)
                c.runs.append(r)
                print(f"round {rnd} {c.name:<24} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  server {r['server_cpu_us_per_req']} µs/req  "
                      f"errors {r['error_count']}  other load {r['other_cpu_cores']} cores", flush=True)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        stopped: set[int] = set()
        for c in contenders:
            if id(c.process) not in stopped:  # a reference node serves several ops
                stopped.add(id(c.process))
                c.stop()
        redis_srv.stop()
        load_end = os.getloadavg()
        shutil.rmtree(log_dir, ignore_errors=True)

    rows = [summary(c) for c in contenders]
    ratios = []
    for ref in (c for c in contenders if c.kind in REFERENCES):
        base = next((c for c in contenders
                     if c.kind == "baseline" and c.script == ref.script and c.op == ref.op), None)
        if base is not None:
            bare = [c for c in contenders if c.kind in VARIANTS and VARIANTS[c.kind][1] == "bare"
                    and c.script == ref.script and c.op == ref.op]
            ratios.append({**ratio_of(ref, base), **vs_fastest_bare(ref, bare)})
    # pay: every request must have paid its own order (fewer orders paid than answers: a replay)
    failed = [s["name"] for s in rows if not s["requests"] or s["errors"]
              or any(r.get("orders_paid", r["requests"]) < r["requests"] for r in s["runs"])]
    low = [r for r in ratios if r["ratio"] is None or r["ratio"] < args.min_ratio]
    result = {
        "benchmark": "order_path",
        "started_at": started,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measured": "order: POST /v1/sales/{id}/orders, qty 1, distinct user and Idempotency-Key each; "
                    "stock never runs out, so every answer is a 201 (anything else is an error). "
                    "pay: POST /v1/sales/{id}/orders/{order_id}/pay, each request a different held order "
                    "(made in Redis before the turn) with its own Idempotency-Key; every answer is a 200",
        "machine": {
            "cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "loadavg_start": [round(v, 2) for v in load_start], "loadavg_end": [round(v, 2) for v in load_end],
            "other_cpu_cores_median": median([r for c in contenders for r in c.runs], "other_cpu_cores"),
        },
        "versions": versions(args.wrk),
        "source": source_state(),
        "config": {
            "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
            "connections": args.connections, "threads": args.threads, "stock": args.stock,
            "hold_ttl_ms": args.hold_ttl_ms, "strategies": args.strategy_list, "contenders": args.contender_list,
            "ops": args.op_list, "pay_orders": args.pay_orders or "max(2000, 6000 x duration)",
            "min_ratio": args.min_ratio, "node_args": args.node_args,
        },
        "notes": notes,
        "contenders": rows,
        "ratios": ratios,
        "failed": failed,
        "ok": not failed and not low,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print()
    print(table(rows))
    print()
    for r in ratios:
        print(f"ratio {r['reference']} / {r['baseline']}: {r['ratio']} "
              f"(per round {r['per_round']}; of medians {r['ratio_of_medians']}; by server CPU/req {r['cpu_ratio']})")
        print(f"  vs the fastest bare contender ({r['fastest_bare']}, {r['fastest_bare_rps']} req/s): "
              f"{r['vs_fastest_bare']} (reference {r['reference_rps']} req/s; per round "
              f"{r['vs_fastest_bare_per_round']}; of medians {r['vs_fastest_bare_of_medians']})")
    m = result["machine"]
    print(f"machine: {m['cpus']} cpus, loadavg {m['loadavg_start'][0]} -> {m['loadavg_end'][0]}, "
          f"other processes used {m['other_cpu_cores_median']} cores (median over turns)")
    print(f"results: {args.out}")
    if failed:
        print(f"FAIL: {', '.join(failed)} served no requests or had errors", file=sys.stderr)
        return 2
    if low:
        print(f"FAIL: ratio below --min-ratio {args.min_ratio}: " + ", ".join(f"{r['strategy']} {r['ratio']}" for r in low),
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # a SIGTERM (a test's timeout, a CI stop) still runs the cleanup of every process started here
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
