"""The orchestrator: stand the system up, run the swarm and the fault schedule, read the final state, check.

A plain process supervisor. In order:

1. plan the fault schedule (pure: ``oversold.model.fault_spec.schedule``) and write
   the scenario *as it will run* -- concrete fault times and targets -- into
   the run directory, so ``oversold run RUN_DIR/scenario.yaml`` replays it;
2. sweep what earlier runs that were killed left behind (``oversold.chaos.leftovers``)
   and open this run's state file;
3. stand the topology up (``oversold.orchestrate.topology``): every child recorded in the
   state file, every part registered by role with a fault driver;
4. run the swarm (Locust) and, beside it, the schedule (``oversold.chaos.runner``);
5. heal every fault, settle, read the final state, tear everything down --
   the ``ExitStack`` also does the healing and the teardown on an error, on
   Ctrl-C and on SIGTERM (the CLI turns it into ``KeyboardInterrupt``);
6. judge (``oversold.analysis.judge``): check, evaluate the thresholds, write
   results.json, junit.xml and report.html, decide the exit status.

Usage::

    scenario = load_scenario(Path("scenarios/node_kill.yaml"))
    result = run_scenario(scenario, Path("runs/demo"))
    print(result.summary)                      # the verdict, per invariant, with counterexamples
    sys.exit(result.exit_code)
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from oversold.adapters.base import Adapter, load_adapter
from oversold.adapters.http import AdapterClient
from oversold.adapters.outcome import Outcome, refused
from oversold.adapters.settle import settle_and_read, state_readers
from oversold.analysis.evaluation import Evaluation
from oversold.analysis.judge import judge
from oversold.analysis.summary import AUDIT_MISSING_WHY, NO_ADMIN_TOKEN
from oversold.chaos.leftovers import RunState, sweep_dead_runs
from oversold.chaos.nemesis import Nemesis
from oversold.chaos.runner import FaultLog, FaultRunner
from oversold.checker import Verdict
from oversold.errors import HarnessError, StandUpError
from oversold.infra.procs import LOOPBACK, Child, free_port
from oversold.model.fault_spec import FaultSpec
from oversold.model.history import FinalState, accepted_orders, read_history
from oversold.model.history_cols import cols_path
from oversold.model.roles import schedule
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import dump_scenario
from oversold.model.timeline import FAULTS_FILE, TIMELINE_FILE
from oversold.swarm.config import DEFAULT_ADAPTER

from .sampler import CounterSampler
from .topology import Topology, stand_up, start_workers

if TYPE_CHECKING:
    from .progress import RunObserver

#: The environment variable holding the admin token of a backend given by URL (as the backend reads it).
ADMIN_TOKEN_ENV = "OVERSOLD_ADMIN_TOKEN"

REPO_ROOT = Path(__file__).resolve().parents[2]
# the scenario locustfiles ship inside the package (the checkout's locustfiles/ links here),
# so an installed oversold finds them as an editable checkout does
LOCUSTFILES = Path(__file__).resolve().parents[1] / "locustfiles"
DEFAULT_LOCUSTFILE = LOCUSTFILES / "flash_sale.py"
SETUP_TIMEOUT_S = 10.0  # creating or resetting the sale (reads time out after 2 s: a node may be down)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """What a run produced: the verdict, its exit status and summary, and where its files are."""

    verdict: Verdict
    run_dir: Path
    final: FinalState
    ops: int
    elapsed_s: float
    evaluation: Evaluation  # metrics and thresholds (oversold.analysis.evaluation)
    exit_code: int
    summary: str  # what a person reads: the verdict per invariant, counterexamples, thresholds
    faults: tuple[dict[str, Any], ...] = ()  # faults.jsonl: one period per injection


def _say_nothing(_: str) -> None:
    pass


def new_run_id() -> str:
    """Unique per run on this machine: it names the state file and the containers' label value."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def run_scenario(
    scenario: Scenario,
    run_dir: Path,
    *,
    locustfile: Path | None = None,
    progress: Progress = _say_nothing,
    observer: "RunObserver | None" = None,
) -> RunResult:
    """Run one scenario end to end and write the run directory; returns the verdict."""
    started = time.monotonic()
    planned = schedule(scenario)  # a fault that cannot run is bad input (exit 4), before anything starts
    scenario = dataclasses.replace(scenario, faults=tuple(FaultSpec.of(f) for f in planned))
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario_path = run_dir / "scenario.yaml"
    scenario_path.write_text(dump_scenario(scenario), encoding="utf-8")
    history_path = run_dir / "history.jsonl"
    for stale in (history_path, cols_path(history_path), run_dir / TIMELINE_FILE, run_dir / FAULTS_FILE):
        stale.unlink(missing_ok=True)

    # a backend somebody else runs takes their admin token (the contract's variable)
    token = (os.environ.get(ADMIN_TOKEN_ENV) if scenario.backend.url else None) or secrets.token_urlsafe(24)
    # a bad adapter is bad input (exit 4) before anything starts
    adapter = load_adapter(scenario.backend.adapter or DEFAULT_ADAPTER, admin_token=token,
                           source="backend.adapter (--adapter)", options=scenario.backend.adapter_options)
    sweep_dead_runs(say=progress)  # what runs killed earlier left running
    run = RunState.open(new_run_id(), run_dir=run_dir)

    with ExitStack() as stack:
        stack.callback(run.finish)  # runs last: only what is really gone leaves the state file
        topo = stand_up(scenario, run_dir, stack=stack, run=run, admin_token=token, progress=progress)
        nodes = AnyNode(adapter, topo.node_urls)
        stack.callback(nodes.close)
        stack.callback(adapter.close)
        _setup_sale(nodes, scenario, progress)
        start_workers(topo, scenario, run_dir, stack=stack, run=run, progress=progress)  # they need the sale

        sampler = CounterSampler(nodes.read_counters, scenario.sale.id, run_dir / TIMELINE_FILE).start()
        stack.callback(sampler.stop)
        nemesis = Nemesis(*topo.drivers)
        log = FaultLog(run_dir / FAULTS_FILE, nemesis)
        stack.callback(log.write)  # after the heal below: the log shows every end
        stack.enter_context(nemesis)  # heal_all on the way out, on success, error or Ctrl-C
        locust = _start_locust(scenario, locustfile or locustfile_for(scenario), topo.node_urls, scenario_path,
                               history_path, run_dir / "logs", admin_token=token,
                               adapter=scenario.backend.adapter)
        run.state.record_child(locust)
        sampler.watch(locust.pid)  # the harness's memory on the timeline: Locust's master and workers too
        stack.callback(locust.stop)
        progress(f"swarm: {scenario.swarm.users} users for up to {scenario.swarm.duration_s:g}s (pid {locust.pid})")
        if observer is not None:  # the live display (oversold.orchestrate.progress) reads the run directory
            observer.swarm_started(scenario, run_dir)
            stack.callback(observer.stop)
        runner = FaultRunner(nemesis, planned, log=log, load_started=_load_started(nodes, scenario))
        stack.callback(runner.stop)  # before the nemesis heals: nothing is injected after the heal
        runner.start()
        if planned:
            progress(f"chaos: {len(planned)} fault(s) planned: " + "; ".join(_describe(f) for f in planned[:6])
                     + (" ..." if len(planned) > 6 else ""))
        _wait_locust(locust, scenario, runner)
        runner.stop()
        nemesis.heal_all()  # the final state is read from a healed system
        faults = tuple(log.write(force=True))
        if planned:
            progress(f"chaos: {len(faults)} fault(s) injected, every one healed")
        if not history_path.exists():
            raise HarnessError(f"the swarm wrote no history ({history_path}); locust log:\n{locust.log_tail(30)}")
        ops = read_history(history_path)
        progress(f"swarm: done, {len(ops)} history records")

        final = _settle(nodes, topo, scenario, progress, accepted_orders(ops, scenario.sale.id))
        if final.audit is None and scenario.backend.url and not os.environ.get(ADMIN_TOKEN_ENV):
            final = dataclasses.replace(final, extra={**final.extra, AUDIT_MISSING_WHY: NO_ADMIN_TOKEN})
        sampler.stop()
        (run_dir / "final_state.json").write_text(json.dumps(final.to_dict(), indent=1), encoding="utf-8")

    elapsed = time.monotonic() - started
    j = judge(scenario, ops, final, run_dir=run_dir, elapsed_s=elapsed)
    return RunResult(verdict=j.verdict, run_dir=run_dir, final=final, ops=len(ops), elapsed_s=elapsed,
                     evaluation=j.evaluation, exit_code=j.exit_code, summary=j.summary, faults=faults)


class AnyNode:
    """The backend's nodes through the run's adapter; a read goes to the first node that answers
    (a node may be down on purpose), starting with the one that answered last.

    Usage::

        nodes = AnyNode(ContractAdapter(admin_token=token), urls)
        nodes.counters("moutai")            # a dict, or None when no node could say
        CounterSampler(nodes.read_counters, "moutai", path)
    """

    def __init__(self, adapter: Adapter, urls: list[str], timeout: float = 2.0) -> None:
        self.adapter = adapter
        self.clients = [AdapterClient(adapter, u, timeout=timeout) for u in urls]
        self.base_url = ", ".join(urls)
        self._first = 0

    @property
    def last_error(self) -> BaseException | None:
        """Why no node answered the last read (the first node's error), None when one did."""
        errors = [c.last_error for c in self.clients]
        if not errors or any(e is None for e in errors):
            return None
        return next((e for e in errors if not refused(e)), errors[0])  # "refused" only if every node refused

    def read_counters(self, sale_id: str) -> Outcome:
        """The counters read as an Outcome: the first ok answer, else what went wrong."""
        answer = self._ask(lambda c: c.send("counters", c.adapter.counters(sale_id)))
        assert answer is not None  # every adapter has a counters request
        return answer

    def counters(self, sale_id: str) -> dict[str, Any] | None:
        return _body(self.read_counters(sale_id))

    def audit(self, sale_id: str) -> dict[str, Any] | None:
        """The audit, or None when no node could give it or the backend has no audit read."""
        return _body(self._ask(lambda c: c.send("audit", c.adapter.audit(sale_id))))

    def order_state(self, sale_id: str, order_id: str) -> dict[str, Any] | None:
        """One order as the backend shows it now, or None when no node could say."""
        return _body(self._ask(lambda c: c.send("read_order", c.adapter.read_order(sale_id, order_id))))

    def setup_sale(self, scenario: Scenario) -> Outcome | None:
        """Create or reset the sale on the first node (None: the adapter has no admin reset)."""
        first = self.clients[0]
        client = AdapterClient(first.adapter, first.base_url, timeout=SETUP_TIMEOUT_S)  # a reset may take a while
        try:
            return client.send("setup_sale", client.adapter.setup_sale(scenario.sale.id, scenario.sale.settings()))
        finally:
            client.close()

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def _ask(self, call: Callable[[AdapterClient], Outcome | None]) -> Outcome | None:
        """The first ok answer; else a node's HTTP answer (it says more) over a transport failure."""
        best: Outcome | None = None
        for k in range(len(self.clients)):
            i = (self._first + k) % len(self.clients)
            answer = call(self.clients[i])
            if answer is None:  # the adapter has no such request: no node will have it
                return None
            if answer.type == "ok":
                self._first = i
                return answer
            if best is None or (best.status == 0 and answer.status != 0):
                best = answer
        return best


def _body(outcome: Outcome | None) -> dict[str, Any] | None:
    return outcome.body if outcome is not None and outcome.type == "ok" and isinstance(outcome.body, dict) else None


def _load_started(nodes: AnyNode, scenario: Scenario) -> Callable[[], bool]:
    """True once the sale's counters moved: the swarm's first holds are in."""
    def started() -> bool:
        body = nodes.counters(scenario.sale.id)
        return body is not None and (body.get("available", scenario.sale.stock) < scenario.sale.stock
                                     or body.get("held", 0) > 0 or body.get("sold", 0) > 0)
    return started


def _describe(f: Any) -> str:
    target = list(f.target) if isinstance(f.target, tuple) else f.target
    span = f"for {f.duration_s:g}s" if f.duration_s is not None else "until the end"
    return f"{f.action} {f.role}{target} at {f.start_s:g}s {span}"


def _setup_sale(nodes: AnyNode, scenario: Scenario, progress: Progress) -> None:
    """Create (or reset) the sale: the adapter's own ``setup`` (I/O against the user's system), else its
    ``setup_sale`` request; with an adapter that can do neither, check the sale is there as the scenario says."""
    sale, where = scenario.sale, nodes.clients[0].base_url
    try:
        done = nodes.adapter.setup(sale.id, sale.stock, sale.settings())
    except HarnessError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code: whatever it raised, the sale is not there
        raise StandUpError(f"the adapter {scenario.backend.adapter}'s setup() of sale {sale.id!r} failed: "
                           f"{type(e).__name__}: {e}") from e
    if done:
        progress(f"sale: {sale.id} stock={sale.stock} set up by the adapter {type(nodes.adapter).__name__}")
        return
    outcome = nodes.setup_sale(scenario)
    if outcome is None:
        counters = nodes.counters(sale.id)
        if counters is None:
            raise StandUpError(f"the adapter {scenario.backend.adapter} cannot set a sale up and sale {sale.id!r} "
                               f"cannot be read on {where}: create it first")
        if counters.get("stock", sale.stock) != sale.stock:
            raise StandUpError(f"sale {sale.id!r} on {where} has stock {counters.get('stock')}, the scenario says "
                               f"{sale.stock} (sale.stock): the checker would judge it by the wrong stock")
        progress(f"sale: {sale.id} exists already (the adapter cannot set a sale up): {counters}")
        return
    if outcome.status == 0:
        raise StandUpError(f"cannot create the sale on {where}: {outcome.error}")
    if outcome.type != "ok":
        raise StandUpError(f"creating the sale {sale.id!r} was refused: HTTP {outcome.status} "
                           f"{outcome.body if outcome.body is not None else outcome.code}")
    progress(f"sale: {sale.id} stock={sale.stock} strategy={sale.strategy} ttl={sale.hold_ttl_ms}ms")


def locustfile_for(scenario: Scenario) -> Path:
    """``locustfiles/<scenario name>.py`` when there is one (its user classes match the scenario's mix),
    else the general ``flash_sale.py``."""
    named = LOCUSTFILES / f"{scenario.name}.py"
    return named if named.exists() else DEFAULT_LOCUSTFILE


def _start_locust(
    scenario: Scenario, locustfile: Path, urls: list[str], scenario_path: Path, history_path: Path, logs: Path,
    *, admin_token: str, adapter: str | None = None,
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
        "--oversold-no-check",  # the orchestrator settles and checks once, after healing every fault
        "--csv", str(logs / "locust"),  # Locust's own stats; the live display takes req/s from them
    ]
    if adapter is not None:
        argv += ["--oversold-adapter", adapter]
    if sw.processes > 1:
        # the master must listen on loopback only, on a port no other run holds
        port = str(free_port())
        argv += [
            "--processes", str(sw.processes), "--master-bind-host", LOOPBACK, "--master-bind-port", port,
            "--master-host", LOOPBACK, "--master-port", port,
        ]
    # the token lets the swarm register bot accounts' profiles for the scalper policy
    # the swarm runs in the checkout: an adapter module beside the user (their working directory)
    # must still import there, as it does in this process
    path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, **{ADMIN_TOKEN_ENV: admin_token, "PYTHONPATH": path})
    return Child.start(argv, name="locust", log_dir=logs, cwd=REPO_ROOT, env=env)


def _wait_locust(locust: Child, scenario: Scenario, runner: FaultRunner) -> None:
    """Until the swarm ends; a fault that could not be injected ends the run (after healing) as an error."""
    # the duration, the stop timeout and start-up, with room to spare on a busy machine
    limit = scenario.swarm.duration_s + scenario.swarm.request_timeout_s + 60
    deadline = time.monotonic() + limit
    while locust.alive():
        if runner.error is not None:
            raise runner.error
        if time.monotonic() > deadline:
            raise HarnessError(f"the swarm did not finish within {limit:.0f}s; locust log:\n{locust.log_tail(30)}")
        time.sleep(0.1)
    locust.popen.wait()
    if runner.error is not None:
        raise runner.error


def _settle(nodes: AnyNode, topo: Topology, scenario: Scenario, progress: Progress,
            accepted: list[str]) -> FinalState:
    """Settle holds and read the final state; with a sync worker, wait for front and warehouse to converge."""
    final = _settle_and_read(nodes, scenario, accepted)
    if not topo.has_sync:
        return final
    began = time.monotonic()
    deadline = began + scenario.checker.quiesce_timeout_s
    converged = _converged(final.counters)
    while not converged and time.monotonic() < deadline:
        time.sleep(0.1)
        converged = _converged(nodes.counters(scenario.sale.id))
    waited = round(time.monotonic() - began, 3)
    if waited > 0.05:
        final = _settle_and_read(nodes, scenario, accepted)  # the converged (or the last) state
        converged = _converged(final.counters)
    c = final.counters or {}
    wh = c.get("warehouse") or {}
    sync = {"converged": converged, "waited_s": waited, "sync_lag_ms": c.get("sync_lag_ms"),
            "front": {"stock": c.get("stock"), "sold": c.get("sold")},
            "warehouse": {"stock": wh.get("stock"), "sold": wh.get("sold")}}
    progress(f"sync: front and warehouse {'converged' if converged else 'did NOT converge'} "
             f"(front sold {c.get('sold')}, warehouse sold {wh.get('sold')}, waited {waited:g}s)")
    return dataclasses.replace(final, extra={**final.extra, "sync": sync})


def _settle_and_read(nodes: AnyNode, scenario: Scenario, accepted: list[str]) -> FinalState:
    """Settle holds and read the final state, through the one settle step plain Locust runs use too
    (the adapter's own ``read_state`` first, when it has one)."""
    return settle_and_read(state_readers(nodes.adapter, [nodes]), scenario, evidence=nodes.adapter.evidence,
                           accepted=accepted)


def _converged(counters: dict[str, Any] | None) -> bool:
    """Front (Redis) and warehouse (ledger) agree on stock and sold, and nothing waits to be synced."""
    if not counters or not isinstance(counters.get("warehouse"), dict):
        return False
    wh = counters["warehouse"]
    return (wh.get("sold") == counters.get("sold") and wh.get("stock") == counters.get("stock")
            and not counters.get("sync_pending"))  # changes not yet carried across (0 once settled)
