"""The orchestrator: stand the system up, run the swarm, read the final state, check.

A plain process supervisor. Everything it starts is a child process it owns and
stops again on return, on error and on Ctrl-C (the ``ExitStack`` unwinds).

Usage::

    scenario = load_scenario(Path("scenarios/flash_sale.yaml"))
    result = run_scenario(scenario, Path("runs/demo"))
    print(result.verdict.verdict, result.verdict.totals["oversold_units"])
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import redis

from .checker import Verdict, check
from .contract import ContractClient, TransportError
from .errors import HarnessError, RedisUnavailable, StandUpError
from .history import FinalState, read_history
from .nodes import BackendNode
from .procs import LOOPBACK, Child, free_port
from .redis_server import RedisServer
from .results import Evaluation, results_body, write_outputs
from .sampler import CounterSampler
from .scenario import Scenario, dump_scenario

if TYPE_CHECKING:
    from .progress import RunObserver

#: The environment variable holding the admin token of a backend given by URL (as the backend reads it).
ADMIN_TOKEN_ENV = "OVERSOLD_ADMIN_TOKEN"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCUSTFILE = REPO_ROOT / "locustfiles" / "flash_sale.py"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """What a run produced: the verdict and where its files are."""

    verdict: Verdict
    run_dir: Path
    final: FinalState
    ops: int
    elapsed_s: float
    evaluation: Evaluation | None = None  # metrics and thresholds (oversold.results)


def _say_nothing(_: str) -> None:
    pass


def run_scenario(
    scenario: Scenario,
    run_dir: Path,
    *,
    locustfile: Path = DEFAULT_LOCUSTFILE,
    progress: Progress = _say_nothing,
    observer: "RunObserver | None" = None,
) -> RunResult:
    """Run one scenario end to end and write the run directory; returns the verdict."""
    started = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = run_dir / "logs"
    scenario_path = run_dir / "scenario.yaml"
    scenario_path.write_text(dump_scenario(scenario), encoding="utf-8")
    history_path = run_dir / "history.jsonl"
    history_path.unlink(missing_ok=True)
    (run_dir / "timeline.jsonl").unlink(missing_ok=True)

    with ExitStack() as stack:
        redis_url = scenario.redis.url
        if redis_url is None:
            server = RedisServer.start(log_dir=logs)
            stack.callback(server.stop)
            redis_url = server.url
            progress(f"redis: started {redis_url} (pid {server.child.pid})")
        _check_redis(redis_url)

        # a backend somebody else runs takes their admin token (the contract's variable)
        token = (os.environ.get(ADMIN_TOKEN_ENV) if scenario.backend.url else None) or secrets.token_urlsafe(24)
        if scenario.backend.url:
            urls = [scenario.backend.url.rstrip("/")]
            progress(f"backend: using {urls[0]}")
        else:
            urls = []
            for i in range(scenario.backend.nodes):
                node = BackendNode.start(redis_url, name=f"node{i + 1}", admin_token=token, log_dir=logs)
                stack.callback(node.stop)
                urls.append(node.url)
            progress(f"backend: {len(urls)} node(s) {', '.join(urls)}")

        admin = ContractClient(urls[0], admin_token=token)
        _setup_sale(admin, scenario)
        progress(
            f"sale: {scenario.sale.id} stock={scenario.sale.stock} strategy={scenario.sale.strategy} "
            f"ttl={scenario.sale.hold_ttl_ms}ms"
        )

        sampler = CounterSampler(admin, scenario.sale.id, run_dir / "timeline.jsonl").start()
        stack.callback(sampler.stop)
        locust = _start_locust(scenario, locustfile, urls, scenario_path, history_path, logs)
        stack.callback(locust.stop)
        progress(f"swarm: {scenario.swarm.users} users for up to {scenario.swarm.duration_s:g}s (pid {locust.pid})")
        if observer is not None:  # the live display (oversold.progress) reads the run directory
            observer.swarm_started(scenario, run_dir)
            stack.callback(observer.stop)
        _wait_locust(locust, scenario)
        if not history_path.exists():
            raise HarnessError(f"the swarm wrote no history ({history_path}); locust log:\n{locust.log_tail(30)}")
        ops = read_history(history_path)
        progress(f"swarm: done, {len(ops)} history records")

        final = _settle_and_read(admin, scenario)
        sampler.stop()
        (run_dir / "final_state.json").write_text(json.dumps(final.to_dict(), indent=1), encoding="utf-8")

    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms, expect_sell_out=scenario.checker.expect_sell_out)
    elapsed = time.monotonic() - started
    # metrics, thresholds, results.json, junit.xml and report.html
    evaluation = write_outputs(run_dir, scenario, ops, final, verdict, elapsed_s=elapsed)
    return RunResult(verdict=verdict, run_dir=run_dir, final=final, ops=len(ops), elapsed_s=elapsed,
                     evaluation=evaluation)


def write_results(run_dir: Path, scenario: Scenario, verdict: Verdict, *, elapsed_s: float | None,
                  evaluation: Evaluation | None = None) -> Path:
    """Write only ``results.json`` (``write_outputs`` writes it with junit.xml and report.html)."""
    body = results_body(scenario, verdict, evaluation, elapsed_s=elapsed_s)
    path = run_dir / "results.json"
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")
    return path


def _check_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as e:
        raise RedisUnavailable(f"cannot reach Redis at {url}: {e}") from None


def _setup_sale(admin: ContractClient, scenario: Scenario) -> None:
    sale = scenario.sale
    try:
        status, body = admin.put_sale(
            sale.id,
            stock=sale.stock,
            hold_ttl_ms=sale.hold_ttl_ms,
            strategy=sale.strategy,
            per_user_limit=sale.per_user_limit,
            pay_after_expiry=sale.pay_after_expiry,
        )
    except TransportError as e:
        raise StandUpError(f"cannot create the sale on {admin.base_url}: {e}") from None
    if status != 200:
        raise StandUpError(f"creating the sale {sale.id!r} was refused: HTTP {status} {body}")


def _start_locust(
    scenario: Scenario, locustfile: Path, urls: list[str], scenario_path: Path, history_path: Path, logs: Path
) -> Child:
    if not locustfile.exists():
        raise StandUpError(f"locustfile not found: {locustfile}")
    sw = scenario.swarm
    argv = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--host", urls[0], "-u", str(sw.users), "-r", str(sw.spawn_rate), "-t", f"{sw.duration_s:g}s",
        "--stop-timeout", str(max(1, int(sw.request_timeout_s) + 1)),
        "--oversold-scenario", str(scenario_path),
        "--oversold-nodes", ",".join(urls),
        "--oversold-history", str(history_path),
        "--csv", str(logs / "locust"),  # Locust's own stats; the live display takes req/s from them
    ]
    if sw.processes > 1:
        # the master must listen on loopback only, on a port no other run holds
        port = str(free_port())
        argv += [
            "--processes", str(sw.processes), "--master-bind-host", LOOPBACK, "--master-bind-port", port,
            "--master-host", LOOPBACK, "--master-port", port,
        ]
    return Child.start(argv, name="locust", log_dir=logs, cwd=REPO_ROOT)


def _wait_locust(locust: Child, scenario: Scenario) -> None:
    # the duration, the stop timeout and start-up, with room to spare on a busy machine
    limit = scenario.swarm.duration_s + scenario.swarm.request_timeout_s + 60
    try:
        locust.popen.wait(timeout=limit)
    except Exception:
        raise HarnessError(f"the swarm did not finish within {limit:.0f}s; locust log:\n{locust.log_tail(30)}") from None


def _settle_and_read(admin: ContractClient, scenario: Scenario) -> FinalState:
    """Wait until no hold is left (paid, cancelled or expired), then read counters and audit."""
    sale = scenario.sale
    deadline = time.monotonic() + sale.hold_ttl_ms / 1000 + scenario.checker.grace_ms / 1000 + scenario.checker.quiesce_timeout_s
    counters = None
    while time.monotonic() < deadline:
        counters = _read(admin.sale, sale.id)
        if counters is not None and counters.get("held") == 0:
            break
        time.sleep(0.1)
    counters = _read(admin.sale, sale.id)
    audit = _read(admin.audit, sale.id)
    read_ms = audit.get("now_ms") if audit else (counters.get("now_ms") if counters else None)
    return FinalState(
        sale_id=sale.id, stock=sale.stock, hold_ttl_ms=sale.hold_ttl_ms,
        counters=counters, audit=audit, read_ms=read_ms,
    )


def _read(fn: Callable[[str], tuple[int, dict]], sale_id: str) -> dict | None:
    """One read of the final state; None when it fails, so the checker can say what it could not decide."""
    try:
        status, body = fn(sale_id)
    except TransportError:
        return None
    return body if status == 200 else None
