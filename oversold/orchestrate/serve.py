"""``oversold serve``: Redis and reference backend nodes, kept up for plain ``locust -f`` use.

What ``oversold run`` stands up before its swarm (``topology.stand_up``), without the
swarm: an embedded Redis, the scenario's nodes, the sale, and (ledger or asynchronous
sales) the workers. It writes the addresses to ``<dir>/serve.json`` and the admin token
to ``<dir>/admin-token`` (mode 600; not printed), prints the ``locust`` command to run
against it, and keeps everything up until Ctrl-C or SIGTERM, which stop everything it
started (the state file lets the next run sweep what a SIGKILL left behind). The
scenario's faults are not run: chaos needs ``oversold run``.

Usage::

    with ExitStack() as stack:
        served = stand_up_for_locust(scenario, Path("runs/serve"), stack=stack, progress=print)
        print(locust_command(served))
        wait_forever()
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from oversold.adapters.base import load_adapter
from oversold.chaos.leftovers import RunState, sweep_dead_runs
from oversold.errors import BadInput
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import dump_scenario
from oversold.swarm.config import DEFAULT_ADAPTER

from .run import ADMIN_TOKEN_ENV, AnyNode, _setup_sale, locustfile_for, new_run_id
from .topology import stand_up, start_workers

SERVE_FILE = "serve.json"
TOKEN_FILE = "admin-token"


@dataclass(frozen=True)
class Served:
    """What ``oversold serve`` keeps up, and where its files are."""

    scenario: Scenario
    scenario_path: Path  # the scenario the nodes' sale was set up from (give it to locust)
    node_urls: tuple[str, ...]
    redis_url: str
    run_dir: Path
    token_from_env: bool  # the admin token is the caller's $OVERSOLD_ADMIN_TOKEN, else <run_dir>/admin-token


def stand_up_for_locust(scenario: Scenario, run_dir: Path, *, stack: ExitStack,
                        progress: Callable[[str], None]) -> Served:
    """Start Redis, the nodes, the sale and its workers; every stop goes on ``stack``."""
    if scenario.backend.url:
        raise BadInput("backend.url: oversold serve starts the reference backend; a backend given by URL "
                       "needs no serve (point locust --host at it)")
    run_dir.mkdir(parents=True, exist_ok=True)
    # the scenario as served (with --strategy applied): locust sets the same sale up from it
    scenario_path = run_dir / "scenario.yaml"
    scenario_path.write_text(dump_scenario(scenario), encoding="utf-8")
    env_token = os.environ.get(ADMIN_TOKEN_ENV)
    token = env_token or secrets.token_urlsafe(24)
    if not env_token:
        token_file = run_dir / TOKEN_FILE
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(token + "\n", encoding="utf-8")
    adapter = load_adapter(DEFAULT_ADAPTER, admin_token=token)
    sweep_dead_runs(say=progress)
    run = RunState.open(new_run_id(), run_dir=run_dir)
    stack.callback(run.finish)  # runs last: only what is really gone leaves the state file
    topo = stand_up(scenario, run_dir, stack=stack, run=run, admin_token=token, progress=progress)
    nodes = AnyNode(adapter, topo.node_urls)
    stack.callback(nodes.close)
    _setup_sale(nodes, scenario, progress)
    start_workers(topo, scenario, run_dir, stack=stack, run=run, progress=progress)
    assert topo.redis_url is not None
    served = Served(scenario=scenario, scenario_path=scenario_path, node_urls=tuple(topo.node_urls),
                    redis_url=topo.redis_url, run_dir=run_dir, token_from_env=bool(env_token))
    (run_dir / SERVE_FILE).write_text(json.dumps({
        "nodes": list(served.node_urls), "redis_url": served.redis_url, "sale_id": scenario.sale.id,
        "scenario": str(scenario_path), "admin_token_file": None if env_token else str(run_dir / TOKEN_FILE),
        "pid": os.getpid(),
    }, indent=1), encoding="utf-8")
    return served


def locust_command(served: Served, results: str = "runs/locust") -> str:
    """The plain ``locust`` command line for what ``served`` keeps up (web UI on loopback)."""
    token = "" if served.token_from_env else f"{ADMIN_TOKEN_ENV}=$(cat {shlex.quote(str(served.run_dir / TOKEN_FILE))}) "
    return (f"{token}locust -f {shlex.quote(str(locustfile_for(served.scenario)))} --web-host 127.0.0.1 "
            f"--host {served.node_urls[0]} --oversold-nodes {','.join(served.node_urls)} "
            f"--oversold-scenario {shlex.quote(str(served.scenario_path))} --oversold-setup-sale "
            f"--oversold-results {results}")


def wait_forever(sleep: Callable[[float], None] = time.sleep) -> None:
    """Until a signal: Ctrl-C and SIGTERM arrive as ``KeyboardInterrupt`` (``oversold.cli``)."""
    while True:
        sleep(3600)
