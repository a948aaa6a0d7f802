"""Recording overhead: the swarm's recording users against plain FastHttpUser tasks, same run, same backend.

Both contenders do the same work per task: ``POST`` an order (JSON body, a
unique ``Idempotency-Key``), parse the answer for its order id, ``POST`` its
payment, and mark the requests in Locust's statistics. ``recording`` is a
``SwarmUser`` (invoke + completion records, the adapter's request shaping and
answer parsing); ``plain`` is a bare ``FastHttpUser`` doing the same requests.

One Locust process (library mode, one ``LocalRunner``) runs them in turns,
round after round (R P, P R, R P, ...), each turn ``--users`` users with no
wait for ``--round-s`` seconds after a warm-up, against the same backend (a
fresh embedded Redis and ``--nodes`` reference nodes, or ``--host``), each turn
on a sale of its own (so neither contender runs against a sale the other grew:
a sale's keys slow it down as they pile up) with a stock no run can sell out. Per turn it measures requests per second and the
client's CPU time per request (this process's CPU: on a small machine the
backend may be the bottleneck, and then req/s hides the client's cost while
CPU per request still shows it).

Figures: ``ratio`` = median over rounds of recording req/s / plain req/s
(target >= 0.9), and ``cpu_ratio`` = median of plain CPU/request / recording
CPU/request (1.0 = recording costs nothing). Exit status 1 when ``ratio`` is
below ``--min-ratio``.

Usage::

    .venv/bin/python benchmarks/recording_overhead.py [--users 20] [--rounds 5] [--round-s 3]
        [--nodes 2 | --host http://127.0.0.1:8001] [--min-ratio 0.9] [--out benchmarks/results/recording_overhead.json]
"""

from __future__ import annotations

# Locust first: it monkey-patches the process (sockets, threads, subprocess) on import
import locust  # noqa: I001
from locust import FastHttpUser, constant, task
from locust.env import Environment

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gevent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

from oversold.adapters.contract import ContractAdapter  # noqa: E402
from oversold.adapters.http import AdapterClient  # noqa: E402
from oversold.infra.redis_server import RedisServer  # noqa: E402
from oversold.model.scenario_file import parse_scenario  # noqa: E402
from oversold.orchestrate.nodes import start_nodes  # noqa: E402
from oversold.swarm.config import SwarmConfig  # noqa: E402
from oversold.swarm.runtime import SwarmRuntime, attach  # noqa: E402
from oversold.swarm.users import SwarmUser  # noqa: E402

SALE = "bench"
STOCK = 1_000_000_000
DEFAULT_OUT = HERE / "results" / "recording_overhead.json"
TOKEN = "bench-admin-token"


class RecordingBuyer(SwarmUser):
    """The swarm's way: every request recorded (invoke + completion), shaped by the adapter."""

    kind = "buyer"
    wait_time = constant(0)

    @task
    def buy(self) -> None:
        placed = self.order(1)
        if placed.type == "ok" and placed.order_id is not None:
            self.pay(placed.order_id, 1)


class PlainBuyer(FastHttpUser):
    """The same requests with nothing recorded."""

    abstract = False
    wait_time = constant(0)
    max_retries = 0
    n = 0

    def on_start(self) -> None:
        PlainBuyer.n += 1
        self.me = f"plain-{PlainBuyer.n}"
        self.seq = 0

    def _key(self) -> str:
        self.seq += 1
        return f"{NONCE}.{self.me}-{self.seq}"

    @task
    def buy(self) -> None:
        with self.client.request("POST", f"/v1/sales/{SALE_OF_TURN[0]}/orders", name="order", catch_response=True,
                                 json={"user_id": self.me, "qty": 1},
                                 headers={"Idempotency-Key": self._key()}) as resp:
            order_id = None
            if resp.status_code == 201:
                order_id = json.loads(resp.content).get("order_id")
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}")
        if order_id is None:
            return
        with self.client.request("POST", f"/v1/sales/{SALE_OF_TURN[0]}/orders/{order_id}/pay", name="pay",
                                 catch_response=True, json={}, headers={"Idempotency-Key": self._key()}) as resp:
            if resp.status_code == 200:
                json.loads(resp.content)
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}")


NONCE = os.urandom(4).hex()
SALE_OF_TURN = [SALE]  # the plain users' sale; the recording users read theirs from the runtime's config


def _turn(env: Environment, cls: type, users: int, warmup_s: float, round_s: float) -> dict[str, Any]:
    runner = env.runner
    assert runner is not None
    runner.start(users, spawn_rate=min(100, users * 10), wait=True, user_classes=[cls])
    gevent.sleep(warmup_s)
    env.stats.reset_all()
    cpu0, t0 = time.process_time(), time.monotonic()
    gevent.sleep(round_s)
    requests, failures = env.stats.total.num_requests, env.stats.total.num_failures
    cpu, elapsed = time.process_time() - cpu0, time.monotonic() - t0
    runner.stop()
    gevent.sleep(0.2)
    return {"requests": requests, "failures": failures, "rps": requests / elapsed,
            "cpu_us_per_request": cpu / requests * 1e6 if requests else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--round-s", type=float, default=3.0)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--nodes", type=int, default=2, help="reference nodes to start (without --host)")
    p.add_argument("--host", help="an existing contract backend (admin token from $OVERSOLD_ADMIN_TOKEN)")
    p.add_argument("--min-ratio", type=float, default=0.9)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()

    started: list[Any] = []
    try:
        if args.host:
            urls, token = [args.host.rstrip("/")], os.environ.get("OVERSOLD_ADMIN_TOKEN", "")
        else:
            server = RedisServer.start()
            started.append(server)
            nodes = start_nodes(args.nodes, server.url, admin_token=TOKEN)
            started.extend(nodes)
            urls, token = [n.url for n in nodes], TOKEN
        admin = AdapterClient(ContractAdapter(admin_token=token), urls[0])
        env = Environment(user_classes=[RecordingBuyer, PlainBuyer], host=urls[0], events=locust.events)
        rt = attach(env, SwarmRuntime(role="local", worker_tag="0"))
        env.create_local_runner()

        def fresh_sale(name: str) -> bool:
            setup = admin.setup_sale(name, {"stock": STOCK, "hold_ttl_ms": 600_000, "strategy": "pre_deduct"})
            if setup is None or setup.type != "ok":
                print(f"cannot set the sale up: {setup}", file=sys.stderr)
                return False
            SALE_OF_TURN[0] = name
            rt.configure(SwarmConfig(scenario=parse_scenario({"seed": 1, "sale": {"id": name, "stock": STOCK}}),
                                     nodes=tuple(urls)))
            return True

        turns: list[dict[str, Any]] = []
        for r in range(args.rounds):
            order = [RecordingBuyer, PlainBuyer] if r % 2 == 0 else [PlainBuyer, RecordingBuyer]
            for cls in order:
                name = "recording" if cls is RecordingBuyer else "plain"
                if not fresh_sale(f"{SALE}-{NONCE}-{r}-{name}"):
                    return 2
                result = {"round": r, "contender": name,
                          **_turn(env, cls, args.users, args.warmup_s, args.round_s)}
                rt.recorder.take()  # what the plugin ships or writes; not kept across turns here
                turns.append(result)
                print(f"round {r} {name:9s} {result['rps']:8.0f} req/s  {result['cpu_us_per_request']:6.0f} "
                      f"us CPU/request  {result['failures']} failures", flush=True)
        env.runner.quit()  # type: ignore[union-attr]

        def of(name: str, r: int) -> dict[str, Any]:
            return next(t for t in turns if t["round"] == r and t["contender"] == name)

        ratios = [of("recording", r)["rps"] / of("plain", r)["rps"] for r in range(args.rounds)]
        cpu_ratios = [of("plain", r)["cpu_us_per_request"] / of("recording", r)["cpu_us_per_request"]
                      for r in range(args.rounds)]
        failures = sum(t["failures"] for t in turns)
        result = {
            "benchmark": "recording_overhead",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "versions": {"locust": locust.__version__},
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "turns": turns,
            "ratio": statistics.median(ratios),
            "cpu_ratio": statistics.median(cpu_ratios),
            "ratios": ratios,
            "failures": failures,
        }
        result["ok"] = result["ratio"] >= args.min_ratio and failures == 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"ratio (recording/plain req/s, median of {args.rounds} rounds): {result['ratio']:.3f}; "
              f"CPU per request plain/recording: {result['cpu_ratio']:.3f}; failures {failures} -> {args.out}")
        return 0 if result["ok"] else 1
    finally:
        for thing in reversed(started):
            thing.stop()


if __name__ == "__main__":
    sys.exit(main())
