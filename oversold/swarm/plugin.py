"""Wiring of the swarm into Locust: command-line options, and what happens at each Locust event.

A scenario locustfile is a few lines: import the user classes and ``install()``.

Roles (one per Locust process):

* ``local`` (plain ``locust``): runs users, records, writes the history.
* ``worker``: runs users, records, ships rows to the master (``oversold_rows``
  every second, ``oversold_final`` with its running total at the end).
* ``master``: runs no users; sends the config to workers (``oversold_hello`` ->
  ``oversold_config``), collects their rows, writes the history.

End of run (any role), in Locust's own stop sequence:

1. ``test_stopping``: the drain. Users start no new operation; the process
   waits (bounded by ``SwarmConfig.drain_timeout_s``) until no request is in
   flight. The master first sends ``oversold_drain`` to every worker, then
   waits (bounded) until each worker's final batch is in and the rows received
   from it equal the total it announced. Only then does Locust go on to stop
   users and, on a master, tell workers to quit (after which its receiving
   greenlet dies, which is why the handshake must happen here).
2. ``test_stop``: a worker ships its final batch again (anything new); the
   master or local runner writes the history (atomically) to ``--oversold-history``,
   then (unless ``--oversold-no-check``) waits for the sale to settle, reads the
   final state through the adapter, checks it, prints the verdict and sets
   Locust's exit code from it (``oversold.swarm.verdict``).
3. ``quitting``: a worker that quits on its own (signal) drains and ships its
   final batch *before* Locust tells the master it quit (same socket, so the
   master sees the rows first).

Each test is its own run: at its start the history recorded so far is dropped (every
process), and in the web UI (no ``--headless``) test n of the session writes to its own
``<--oversold-results>/test-<n>`` run directory and gets its own verdict, listed in the
UI's "oversold verdicts" tab and at ``/oversold/runs`` (``oversold.swarm.webui``). The
admin token is never shown in the web UI, which listens on 127.0.0.1 unless ``--web-host``
says otherwise.

Around the test: at its start the master (or local runner) sets the sale up
(``--oversold-setup-sale``) and registers the bot farms' profiles (when the
adapter can and there is an admin token); once every user is spawned it picks
the simultaneous payers' pay instant and broadcasts it (``oversold_pay_at``).

Locust reads ``--help`` before it imports the locustfile, so the options below
are not in ``locust -f x.py --help``; ``locust -f x.py --oversold-help`` prints
the whole help with them.

Usage (``locustfiles/my_scenario.py``)::

    from oversold.swarm import Buyer, HoldHoarder, plugin  # noqa: F401

    plugin.install()
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
from locust import stats as locust_stats
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, Runner, WorkerRunner

from oversold.adapters.base import load_adapter
from oversold.adapters.http import AdapterClient
from oversold.errors import OversoldError

from .collector import Collector
from .config import ADMIN_TOKEN_ENV, DEFAULT_ADAPTER, SwarmConfig
from .profiles import batches, bot_profiles
from .recorder import Recorder
from .runtime import SwarmRuntime, attach, runtime_of
from .soldout import SoldOutWatch
from .webui import VerdictBoard, describe

log = logging.getLogger("oversold.swarm")

MSG_HELLO = "oversold_hello"
MSG_CONFIG = "oversold_config"
MSG_ROWS = "oversold_rows"
MSG_FINAL = "oversold_final"
MSG_DRAIN = "oversold_drain"
MSG_PAY_AT = "oversold_pay_at"
SHIP_INTERVAL_S = 1.0
HANDSHAKE_MARGIN_S = 5.0  # on top of the workers' drain: message latency, a busy machine

_installed: set[int] = set()


def add_arguments(parser: Any) -> None:
    """The ``--oversold-*`` options (also read from locust.conf and ``LOCUST_OVERSOLD_*``)."""
    group = parser.add_argument_group("oversold", "Flash-sale swarm (oversold)")

    def add(*args: Any, in_web_ui: bool = True, **kwargs: Any) -> None:
        action = group.add_argument(*args, **kwargs)
        # what LocustArgumentParser.add_argument sets (a group's add_argument does not): the web UI
        # shows the option with its current value as the default, in the page source
        action.include_in_web_ui = in_web_ui
        action.is_secret = False
        action.is_required = False
        action.is_multiple = False

    add("--oversold-scenario", metavar="PATH", env_var="LOCUST_OVERSOLD_SCENARIO", default=None,
        help="Scenario YAML: sale id, user mix, buyer/hoarder settings, seed, request timeout.")
    add("--oversold-nodes", metavar="URLS", env_var="LOCUST_OVERSOLD_NODES", default=None,
        help="Comma-separated backend base URLs; user n talks to node n %% len. Default: --host.")
    add("--oversold-history", metavar="PATH", env_var="LOCUST_OVERSOLD_HISTORY", default=None,
        help="Where the master (or local runner) writes history.jsonl at the end of the test.")
    add("--oversold-setup-sale", action="store_true", env_var="LOCUST_OVERSOLD_SETUP_SALE", default=False,
        help="Create/reset the sale through the contract when the test starts (needs the admin token).")
    # never in the web UI: Locust puts an option's value into the page as its default (a "secret"
    # option is only masked on screen), so the token would reach every browser that opens the UI
    add("--oversold-admin-token", metavar="TOKEN", default=None, in_web_ui=False,
        help=f"Admin bearer token of the backend (default: ${ADMIN_TOKEN_ENV}).")
    add("--oversold-adapter", metavar="MODULE:CLASS", env_var="LOCUST_OVERSOLD_ADAPTER", default=None,
        help=f"How to speak to a backend with another API: an oversold.adapters.Adapter subclass "
             f"(default: {DEFAULT_ADAPTER}).")
    add("--oversold-results", metavar="DIR", env_var="LOCUST_OVERSOLD_RESULTS", default=None,
        help="Write a run directory there at the end: results.json, final_state.json, junit.xml, report.html, "
             "scenario.yaml and (unless --oversold-history says otherwise) history.jsonl.")
    add("--oversold-no-check", action="store_true", env_var="LOCUST_OVERSOLD_NO_CHECK", default=False,
        help="Do not check the run at its end (the orchestrator checks it itself); the exit code is Locust's.")
    help_action = group.add_argument(
        "--oversold-help", action=_FullHelp, help="Show this help with the oversold options, and exit.")
    help_action.include_in_web_ui = False
    # the web UI starts and stops tests against a backend with an admin token: on loopback unless
    # asked otherwise (--web-host '*' or LOCUST_WEB_HOST for every interface)
    parser.set_defaults(web_host="127.0.0.1")


class _FullHelp(argparse.Action):
    """``--oversold-help``: Locust answers ``--help`` before it imports the locustfile (so before
    plugins add their options); this one is parsed after, so its help lists them."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        parser.print_help()
        parser.exit()


def install(events: Any = None) -> None:
    """Register the options and the init handler on Locust's events (idempotent)."""
    events = events or locust.events
    if id(events) in _installed:
        return
    _installed.add(id(events))
    # `oversold run` passes --csv for its live display (oversold.orchestrate.progress); Locust flushes those
    # files every 5 s by default, too seldom for a sale that sells out in ten
    locust_stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _role(runner: Runner) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _on_init(environment: Environment, runner: Runner | None = None, web_ui: Any = None, **_: Any) -> None:
    runner = runner or environment.runner
    if runner is None:  # an Environment without a runner (library use): nothing to wire
        return
    role = _role(runner)
    if role == "worker":
        index = getattr(runner, "worker_index", -1)
        tag = str(index) if index >= 0 else runner.client_id[-8:]
    else:
        tag = "0" if role == "local" else "master"
    rt = attach(environment, SwarmRuntime(role=role, worker_tag=tag))  # type: ignore[arg-type]
    node = _Node(environment, runner, rt, web_ui=web_ui if role != "worker" else None)
    node.wire()


class _Node:
    """The handlers of one Locust process; state lives in the runtime and the collector."""

    def __init__(self, environment: Environment, runner: Runner, rt: SwarmRuntime, web_ui: Any = None) -> None:
        self.env = environment
        self.runner = runner
        self.rt = rt
        self.web_ui = web_ui  # set on a master or local runner with the web UI: each test is its own run
        self.board = VerdictBoard()
        self.test_no = 0  # of this session; names the UI tests' run directories (test-1, test-2, ...)
        self.test_config: SwarmConfig | None = None  # this test's: its own run directory in the web UI
        self.collector = Collector()
        self.watch: SoldOutWatch | None = None
        self.shipper: gevent.Greenlet | None = None
        self._readers: list[AdapterClient] = []
        self._started: float | None = None
        self._setup_failed = False

    # -- set-up --------------------------------------------------------------------

    def wire(self) -> None:
        ev = self.env.events
        if self.rt.role in ("local", "master"):
            self._configure_from_options()
            self._apply_scenario_defaults()
            if self.web_ui is not None:
                self.board.attach(self.web_ui)
        if self.rt.role == "master":
            self.runner.register_message(MSG_HELLO, self._on_hello)
            self.runner.register_message(MSG_ROWS, self._on_rows)
            self.runner.register_message(MSG_FINAL, self._on_final)
        if self.rt.role == "worker":
            self.runner.register_message(MSG_CONFIG, self._on_config)
            self.runner.register_message(MSG_DRAIN, self._on_drain, concurrent=True)
            self.runner.register_message(MSG_PAY_AT, self._on_pay_at)
            self.runner.send_message(MSG_HELLO, {})
            self.shipper = gevent.spawn(self._ship_loop)
        if self.rt.role == "local":
            self.shipper = gevent.spawn(self._spool_loop)
        ev.test_start.add_listener(self._on_test_start)
        if self.rt.role != "worker":
            ev.spawning_complete.add_listener(self._on_spawning_complete)
        ev.test_stopping.add_listener(self._on_test_stopping)
        ev.test_stop.add_listener(self._on_test_stop)
        # added after the runner's own listeners; quitting fires in reverse, so ours run first
        ev.quitting.add_listener(self._on_quitting)

    def _configure_from_options(self) -> None:
        try:
            config = SwarmConfig.from_options(self.env.parsed_options, host=self.env.host)
            self.rt.configure(config)  # loads the adapter: a bad --oversold-adapter stops here
        except OversoldError as e:
            log.error("oversold: %s", e)
            sys.exit(1)
        if not config.admin_token and config.check:
            log.warning("oversold: no admin token ($%s or --oversold-admin-token): the backend's audit cannot be "
                        "read at the end, so the invariants that need it will be unknown", ADMIN_TOKEN_ENV)
        log.info(
            "oversold: sale %s, %d node(s), history %s",
            config.sale_id, len(config.nodes), config.history_path or "(not written: no --oversold-history)",
        )

    def _apply_scenario_defaults(self) -> None:
        """User weights from ``swarm.mix``; -u/-r/-t from the scenario where not given."""
        config = self.rt.require_config()
        sw = config.scenario.swarm
        have = {getattr(cls, "kind", None) for cls in self.env.user_classes}
        absent = sorted(k for k, w in sw.mix.items() if w > 0 and k not in have)
        if absent:
            # a scenario run with the wrong locustfile would quietly leave its bots out
            log.error("oversold: swarm.mix names %s but the locustfile has no user class of that kind "
                      "(import it from oversold.swarm, or use locustfiles/<scenario>.py)", ", ".join(absent))
            sys.exit(1)
        for cls in self.env.user_classes:
            weight = sw.weight_of(getattr(cls, "kind", None))
            if weight is not None:
                cls.weight = weight
        self.env.user_classes[:] = [c for c in self.env.user_classes if c.weight > 0 or c.fixed_count > 0]
        if not self.env.user_classes:
            log.error("oversold: swarm.mix gives every user class a weight of 0")
            sys.exit(1)
        adapter = self.rt.adapter
        if adapter is not None and adapter.single_step:
            holders = sorted(getattr(c, "kind", "?") for c in self.env.user_classes if not getattr(c, "single_step_ok", True))
            if holders:
                log.error("oversold: the adapter %s is single_step (one buy request, no holds), but swarm.mix runs "
                          "%s, which need holds; use buyer and scalper only", config.adapter, ", ".join(holders))
                sys.exit(1)
        opts = self.env.parsed_options
        if opts is None:
            return
        if getattr(opts, "num_users", None) is None:
            opts.num_users = sw.users
        if getattr(opts, "spawn_rate", None) is None:
            opts.spawn_rate = sw.spawn_rate
        if getattr(opts, "headless", False) and not getattr(opts, "run_time", None):
            opts.run_time = int(math.ceil(sw.duration_s))
        if self.env.shape_class is not None and not self.env.stop_timeout:
            # a shape stops users as the crowd thins: let them finish their purchase instead of
            # killing them mid-request (the master sends its stop timeout to the workers)
            self.env.stop_timeout = config.drain_timeout_s

    # -- messages ------------------------------------------------------------------

    def _on_hello(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.runner.send_message(MSG_CONFIG, self.rt.require_config().to_wire(), client_id=msg.node_id)

    def _on_config(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.rt.configure(SwarmConfig.from_wire(msg.data))

    def _on_rows(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.collector.add(msg.node_id, msg.data["rows"])

    def _on_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.collector.add(msg.node_id, msg.data["rows"], total=int(msg.data["total"]))

    def _on_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._drain()
        self._ship_final()

    def _on_pay_at(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.rt.set_pay_instant(float(msg.data["at"]))

    def _on_spawning_complete(self, user_count: int = 0, **_: Any) -> None:
        """Every user is spawned: pick the simultaneous payers' instant and tell every process."""
        if self.rt.pay_at is not None or self.rt.config is None:
            return
        if not any(getattr(c, "kind", None) == "simultaneous_payer" for c in self.env.user_classes):
            return
        at = time.time() + self.rt.config.scenario.swarm.simultaneous_payer.lead_ms / 1000.0
        self.rt.set_pay_instant(at)  # the master's own gate only marks the instant as taken
        if self.rt.role == "master":
            self.runner.send_message(MSG_PAY_AT, {"at": at})
        log.info("oversold: simultaneous payers pay at %.6f (in %.0f ms)", at, (at - time.time()) * 1000)

    # -- worker shipping -----------------------------------------------------------

    def _send(self, msg_type: str, data: dict[str, Any]) -> bool:
        try:
            self.runner.send_message(msg_type, data)
            return True
        except Exception as e:  # noqa: BLE001 - keep the rows, try again later
            log.warning("oversold: cannot ship history rows to the master yet (%s)", e)
            return False

    def _ship_loop(self) -> None:
        while True:
            gevent.sleep(SHIP_INTERVAL_S)
            rows = self.rt.recorder.take()
            if rows and not self._send(MSG_ROWS, {"rows": rows}):
                self.rt.recorder.untake(rows)

    def _spool_loop(self) -> None:
        # the local runner is its own master: its rows go to the collector's spool as they come,
        # so a long run never sits in this process's memory
        while True:
            gevent.sleep(SHIP_INTERVAL_S)
            rows = self.rt.recorder.take()
            if rows:
                self.collector.add("local", rows)

    def _ship_final(self) -> None:
        rows = self.rt.recorder.take()
        total = self.rt.recorder.total
        if not self._send(MSG_FINAL, {"rows": rows, "total": total}):
            self.rt.recorder.untake(rows)
        else:
            log.debug("oversold: final batch shipped (%d rows, %d in all)", len(rows), total)

    # -- the test's life -----------------------------------------------------------

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        self.rt.reset_drain()
        self.rt.reset_pay_instant()
        # each test is its own run: a second test of a web UI session is never checked with the
        # first one's records (a false oversell and lost sales) nor written over its files
        self.rt.recorder = Recorder()
        if self.rt.role == "worker":
            if self.rt.config is None:  # no config message (an older master?): use the options it sent
                self.rt.configure(SwarmConfig.from_options(self.env.parsed_options, host=self.env.host))
            return
        self.collector = Collector()
        self._started = time.time()
        self.test_config = self._config_of_next_test()
        config = self.rt.require_config()
        self._setup_failed = config.setup_sale and not self._setup_sale(config)
        if self._setup_failed:
            return
        self._register_profiles(config)
        if config.scenario.swarm.stop_when_sold_out:
            self.watch = SoldOutWatch(read=self._read_counters, on_sold_out=self._stop_sold_out)
            self.watch.start()

    def _config_of_next_test(self) -> SwarmConfig:
        """Headless: the options' config (one test per process). Web UI: test n writes to its own
        ``test-<n>`` run directory (and history file), skipping names an earlier session used."""
        config = self.rt.require_config()
        if self.web_ui is None:
            return config
        while True:
            self.test_no += 1
            own = config.for_test(f"test-{self.test_no}")
            used = (own.results_dir is not None and own.results_dir.exists() and any(own.results_dir.iterdir())) \
                or (own.history_path is not None and own.history_path.exists())
            if not used:
                break
        self.board.started(self.test_no, own.results_dir or own.history_path)
        log.info("oversold: test %d of this session writes to %s", self.test_no,
                 own.results_dir or own.history_path or "(nothing: no --oversold-results or --oversold-history)")
        return own

    def _admin_client(self, config: SwarmConfig) -> AdapterClient:
        adapter = load_adapter(config.adapter, admin_token=config.admin_token,
                               options=config.scenario.backend.adapter_options)
        return AdapterClient(adapter, config.nodes[0], timeout=max(5.0, config.request_timeout_s))

    def _setup_sale(self, config: SwarmConfig) -> bool:
        """The adapter's own ``setup`` (blocking I/O, the master only), else its ``setup_sale`` request."""
        sale = config.scenario.sale
        client = self._admin_client(config)
        try:
            if client.adapter.setup(sale.id, sale.stock, sale.settings()):
                log.info("oversold: sale %s set up by the adapter %s", sale.id, config.adapter)
                return True
            outcome = client.setup_sale(sale.id, sale.settings())
        finally:
            client.adapter.close()
            client.close()
        if outcome is None:
            log.warning("oversold: the adapter %s cannot set a sale up; sale %s must exist already",
                        config.adapter, sale.id)
            return True
        if outcome.type != "ok":
            log.error("oversold: setting up sale %s failed: HTTP %s %s", sale.id, outcome.status,
                      outcome.body or outcome.error)
            self.env.process_exit_code = 1
            gevent.spawn(self.runner.quit)
            return False
        log.info("oversold: sale %s set up: %s", sale.id, outcome.body)
        return True

    def _register_profiles(self, config: SwarmConfig) -> None:
        """Give the bot farms the scalper profile before any of them orders (when the backend can)."""
        profiles = bot_profiles(config.scenario)
        if not profiles:
            return
        if not config.admin_token:
            log.warning("oversold: %d bot profiles not registered: no admin token", len(profiles))
            return
        client = self._admin_client(config)
        try:
            for batch in batches(profiles):
                outcome = client.load_profiles(config.sale_id, batch)
                if outcome is None:
                    log.warning("oversold: the adapter %s has no user profiles; bot profiles not registered",
                                config.adapter)
                    return
                if outcome.type != "ok":
                    log.warning("oversold: registering bot profiles failed: HTTP %s %s", outcome.status,
                                outcome.body or outcome.error)
                    return
        finally:
            client.close()
        log.info("oversold: %d bot accounts registered with the scalper profile", len(profiles))

    def _read_counters(self) -> dict[str, Any] | None:
        config = self.rt.require_config()
        if not self._readers:
            # one keep-alive client per node, made once: the watch polls four times a second
            adapter = self.rt.adapter
            assert adapter is not None
            self._readers = [AdapterClient(adapter, u, timeout=min(2.0, config.request_timeout_s))
                             for u in config.nodes]
        # try each node in turn: one may be down on purpose
        for client in self._readers:
            counters = client.counters(config.sale_id)
            if counters is not None:
                return counters
        return None

    def _stop_sold_out(self) -> None:
        opts = self.env.parsed_options
        if opts is not None and getattr(opts, "headless", False):
            self.runner.quit()  # same path as --run-time: drain, stop users, write history, exit
        else:
            self.runner.stop()  # keep the web UI up

    def _drain(self) -> None:
        if self.rt.config is None:
            return
        self.rt.start_drain()
        left = self.rt.wait_drained(self.rt.config.drain_timeout_s)
        if left:
            log.warning("oversold: %d request(s) still in flight after the drain; they stay as invokes", left)

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.rt.role == "master":
            self._handshake()
        else:
            self._drain()

    def _handshake(self) -> None:
        """Make every worker drain and ship its final batch; wait (bounded) until all rows are in."""
        runner = self.runner
        assert isinstance(runner, MasterRunner)
        self.rt.start_drain()
        live = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
        if not live and not self.collector.workers():
            return
        config = self.rt.require_config()
        for client_id in live:
            try:
                runner.send_message(MSG_DRAIN, {}, client_id=client_id)
            except Exception as e:  # noqa: BLE001
                log.warning("oversold: cannot ask worker %s to drain (%s)", client_id, e)
        if gevent.getcurrent() in runner.greenlet:
            # we are on Locust's own message loop (e.g. the last worker quit): waiting here
            # would block the very messages we wait for; workers send their final batch
            # before they quit, so what they had is already in
            return
        deadline = time.monotonic() + config.drain_timeout_s + HANDSHAKE_MARGIN_S
        while True:
            # a worker that went missing meanwhile will not answer; what it shipped stays
            gone = {c.id for c in runner.clients.all if c.state == STATE_MISSING}
            missing = {w: why for w, why in self.collector.incomplete(live - gone).items() if w not in gone}
            if not missing or time.monotonic() >= deadline:
                break
            gevent.sleep(0.05)
        if missing:
            log.error("oversold: history incomplete, still missing rows from workers: %s", missing)
        else:
            log.info("oversold: history complete from %d worker(s)", len(self.collector.workers()))

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.rt.role == "worker":
            self._ship_final()
            return
        self._write()
        config = self.test_config or self.rt.config
        if config is None:
            return
        if self._setup_failed:
            self.board.finished(self.test_no, "not run", None, "setting the sale up failed (see the log)")
        elif not config.check:
            self.board.finished(self.test_no, "not checked", None, "--oversold-no-check")
        else:
            self._check(config)

    def _check(self, config: SwarmConfig) -> None:
        """Settle, read, check; the verdict becomes the exit code (oversold.swarm.verdict)."""
        from .verdict import finish_run  # the checker, results and report: only where a run ends

        log.info("oversold: waiting for sale %s to settle, then checking the run", config.sale_id)
        self.board.checking(self.test_no)
        try:
            outcome = finish_run(config, self.collector.ops(), started=self._started)
        except OversoldError as e:
            log.error("oversold: cannot check the run: %s", e)
            self.env.process_exit_code = 2
            self.board.finished(self.test_no, "error", 2, f"cannot check the run: {e}")
            return
        print(outcome.summary, flush=True)
        log.info("oversold: verdict %s, exit code %d", outcome.verdict.overall, outcome.exit_code)
        self.env.process_exit_code = outcome.exit_code
        self.board.finished(self.test_no, outcome.verdict.overall, outcome.exit_code,
                            describe(outcome.verdict, outcome.exit_code, outcome.expectation))

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        if self.rt.role == "worker":
            self._drain()
            self._ship_final()
            return
        # a signal came before the stop: write what there is now (the stop that
        # follows rewrites it complete); a test that never started writes nothing
        self._write(only_if_new=True)

    def _write(self, only_if_new: bool = False) -> None:
        config = self.test_config or self.rt.config
        local = self.rt.recorder.take()
        if local:
            self.collector.add("local", local, total=self.rt.recorder.total)
        if config is None or config.history_path is None:
            return
        if only_if_new and not (self.collector.count and self.collector.dirty):
            return
        n = self.collector.write(Path(config.history_path))
        log.info("oversold: history written: %d records to %s", n, config.history_path)


__all__ = ["add_arguments", "install", "runtime_of"]
