"""The per-process state of a swarm: config, adapter, recorder, drain flag, account numbering, pay instant.

One ``SwarmRuntime`` lives on each Locust environment (``attach``/``runtime_of``);
the user classes read it in their constructor, the plugin drives it from
Locust's events.

Usage::

    rt = attach(environment, SwarmRuntime(role="local", worker_tag="0"))
    rt.configure(config)
    rt.next_index("buyer")          # 0, 1, 2, ... per kind, per process
    rt.start_drain(); rt.wait_drained(timeout=5.0)
    rt.set_pay_instant(time.time() + 1.0); rt.wait_pay_instant(timeout=5.0)   # SimultaneousPayer
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import gevent
from gevent.event import Event

from oversold.adapters.base import Adapter, load_adapter

from .config import ADMIN_TOKEN_ENV, SwarmConfig
from .recorder import Recorder

log = logging.getLogger("oversold.swarm")

Role = Literal["local", "master", "worker"]
_ATTR = "oversold_swarm"


@dataclass
class SwarmRuntime:
    """Everything one Locust process of the swarm shares between its users."""

    role: Role
    worker_tag: str  # part of every user id and op id: unique per process within a run
    recorder: Recorder = field(default_factory=Recorder)
    config: SwarmConfig | None = None
    # a per-process random nonce in every idempotency key, so keys never repeat
    # across runs even when the sale is not reset (op ids do repeat: they are seeded)
    nonce: str = field(default_factory=lambda: os.urandom(4).hex())
    adapter: Adapter | None = None  # how users say each operation to the backend (no admin token here)
    pay_at: float | None = None  # the wall-clock instant simultaneous payers pay at (one per test)
    _draining: Event = field(default_factory=Event)
    _indexes: dict[str, itertools.count] = field(default_factory=dict)
    _pay_gate: Event = field(default_factory=Event)
    _pay_timer: gevent.Greenlet | None = None
    # (order id, account, qty) of orders paid (ok) by this process's users, latest last: what an admin refunds
    paid: collections.deque[tuple[str, str, int]] = field(default_factory=lambda: collections.deque(maxlen=1000))
    _admin_adapter: Adapter | None = None

    def configure(self, config: SwarmConfig) -> None:
        self.adapter = load_adapter(config.adapter, options=config.scenario.backend.adapter_options)
        self.config = config

    @property
    def admin_adapter(self) -> Adapter:
        """The run's adapter with the admin token (the master's, else the environment's, as a worker's):
        only the ``admin`` user kind sends admin requests from the swarm."""
        if self._admin_adapter is None:
            config = self.require_config()
            self._admin_adapter = load_adapter(config.adapter,
                                               admin_token=config.admin_token or os.environ.get(ADMIN_TOKEN_ENV))
        return self._admin_adapter

    def require_config(self) -> SwarmConfig:
        if self.config is None:
            raise RuntimeError(
                "the oversold swarm is not configured: the locustfile must call "
                "oversold.swarm.plugin.install() and be run with --oversold-* options"
            )
        return self.config

    def next_index(self, kind: str) -> int:
        counter = self._indexes.get(kind)
        if counter is None:
            counter = self._indexes[kind] = itertools.count()
        return next(counter)

    def idempotency_key(self, op_id: str) -> str:
        return f"{self.nonce}.{op_id}"

    @property
    def draining(self) -> bool:
        """True once a stop began: users start no new operation (in-flight ones finish)."""
        return self._draining.is_set()

    def start_drain(self) -> None:
        self._draining.set()

    def reset_drain(self) -> None:
        self._draining.clear()

    def set_pay_instant(self, at: float) -> None:
        """Open the pay gate at wall-clock ``at`` (the first instant of a test wins)."""
        if self.pay_at is not None:
            return
        self.pay_at = at
        # one timer per process opens the gate for every payer at once; each payer
        # sleeping on its own timer would add one timer's jitter per payer
        self._pay_timer = gevent.spawn_later(max(0.0, at - time.time()), self._pay_gate.set)

    def wait_pay_instant(self, timeout: float | None = None) -> bool:
        """Block until the pay instant (True), or ``timeout`` passed without one (False)."""
        return self._pay_gate.wait(timeout)

    def reset_pay_instant(self) -> None:
        if self._pay_timer is not None:
            self._pay_timer.kill(block=False)
        self._pay_timer, self.pay_at = None, None
        self._pay_gate.clear()

    def wait_drained(self, timeout: float) -> int:
        """Wait until no operation is in flight or ``timeout`` passed; returns how many still are."""
        deadline = time.monotonic() + timeout
        while self.recorder.in_flight > 0 and time.monotonic() < deadline:
            gevent.sleep(0.02)
        return self.recorder.in_flight


def attach(environment: Any, runtime: SwarmRuntime) -> SwarmRuntime:
    setattr(environment, _ATTR, runtime)
    return runtime


def runtime_of(environment: Any) -> SwarmRuntime:
    """The runtime attached to a Locust environment (RuntimeError if the plugin is not installed)."""
    rt = getattr(environment, _ATTR, None)
    if rt is None:
        raise RuntimeError(
            "no oversold swarm on this Locust environment: call oversold.swarm.plugin.install() in the locustfile"
        )
    return rt
