"""Locust user classes of the swarm: each user is one account driving the HTTP contract.

Every order/pay/cancel is recorded (invoke + completion) and carries its own
``Idempotency-Key``. Requests never retry silently: geventhttpclient only
retries idempotent methods, and ``max_retries = 0`` besides. Each user talks
to one backend node (``index % len(nodes)``), has a stable account id
``<kind>-<worker>-<n>`` and its own ``random.Random`` seeded from the scenario
seed and that id, so a run is reproducible as far as timing allows.

Write your own kinds by subclassing ``SwarmUser`` (set ``kind``, read your
settings in ``configure``, write ``@task`` methods that call ``order``/``pay``/
``cancel``), import them into a locustfile and call
``oversold.swarm.plugin.install()`` there.

Usage (a locustfile)::

    from oversold.swarm import plugin
    from oversold.swarm.users import Buyer, HoldHoarder  # noqa: F401 (Locust finds them)

    plugin.install()
"""

from __future__ import annotations

import random
from typing import Any, ClassVar
from urllib.parse import quote

import gevent
from locust import FastHttpUser, task

from .recorder import Outcome, outcome_of
from .runtime import SwarmRuntime, runtime_of


def _seg(value: str) -> str:
    """One path segment: an order id from another backend may hold any character."""
    return quote(value, safe="")


class SwarmUser(FastHttpUser):
    """Base of every swarm user: one account, one node, recorded operations.

    Usage::

        class Scalper(SwarmUser):
            kind = "scalper"

            @task
            def grab(self) -> None:
                if not self.swarm.draining:
                    self.order(qty=5)
    """

    abstract = True
    kind: ClassVar[str] = "user"
    # a hidden retry of a POST could apply an operation twice; a redirect is not part of the contract
    max_retries = 0
    max_redirects = 0

    def __init__(self, environment: Any) -> None:
        self.swarm: SwarmRuntime = runtime_of(environment)
        config = self.swarm.require_config()
        self.index = self.swarm.next_index(self.kind)
        self.user_id = f"{self.kind}-{self.swarm.worker_tag}-{self.index}"
        # str seeds hash the same in every process (unlike hash()), so the stream is replayable
        self.rng = random.Random(f"{config.scenario.seed}/{self.user_id}")
        self.sale_id = config.sale_id
        # instance attributes, read by FastHttpUser.__init__ below
        self.host = config.nodes[self.index % len(config.nodes)]
        self.network_timeout = config.request_timeout_s
        self.connection_timeout = config.request_timeout_s
        super().__init__(environment)
        self.configure(config.scenario)

    def configure(self, scenario: Any) -> None:
        """Read this kind's settings from the scenario (override in subclasses)."""

    def sleep_ms(self, bounds: tuple[int, int]) -> None:
        gevent.sleep(self.rng.uniform(bounds[0], bounds[1]) / 1000.0)

    # -- the operations of the contract, each recorded ------------------------------

    def order(self, qty: int) -> Outcome:
        """Place an order (a hold under pre_deduct)."""
        return self._call("order", f"/v1/sales/{self.sale_id}/orders", {"user_id": self.user_id, "qty": qty}, qty)

    def pay(self, order_id: str, qty: int, *, key: str | None = None) -> Outcome:
        """Pay; ``key`` repeats an earlier payment's idempotency key (a retry after an unknown outcome)."""
        return self._call("pay", f"/v1/sales/{self.sale_id}/orders/{_seg(order_id)}/pay", {}, qty, order_id, key)

    def cancel(self, order_id: str, qty: int) -> Outcome:
        return self._call("cancel", f"/v1/sales/{self.sale_id}/orders/{_seg(order_id)}/cancel", {}, qty, order_id)

    def _call(self, op: str, path: str, body: dict[str, Any], qty: int, order_id: str | None = None,
              key: str | None = None) -> Outcome:
        rec = self.swarm.recorder
        op_id = rec.next_op_id(self.user_id)
        key = key or self.swarm.idempotency_key(op_id)
        pending = rec.invoke(
            op_id=op_id, process=self.user_id, user_id=self.user_id, kind=self.kind, op=op,
            sku=self.sale_id, qty=qty, order_id=order_id, key=key,
        )
        try:
            with self.client.post(
                path, json=body, name=op, catch_response=True, headers={"Idempotency-Key": key}
            ) as resp:
                status = resp.status_code or 0
                try:
                    content = resp.content if status else None
                except Exception:  # noqa: BLE001 - the status line came, the body broke off: judge by status
                    content = None
                outcome = outcome_of(status, content, getattr(resp, "error", None))
                rec.complete(
                    pending, outcome.type, status=outcome.status or None, code=outcome.code,
                    order_id=outcome.order_id if op == "order" else order_id,
                )
                why = outcome.locust_failure()
                if why is None:
                    resp.success()
                else:
                    resp.failure(why)
            return outcome
        finally:
            # killed mid-request (GreenletExit): the lone invoke stays, the checker treats it as unknown
            rec.abandon(pending)


class Buyer(SwarmUser):
    """A buyer: order a hold, wait ``pay_delay_ms``, pay (or cancel with ``cancel_rate``), think ``wait_ms``.

    On ``sold_out`` it keeps trying after its think time: expiring holds give stock back.
    """

    kind = "buyer"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.buyer

    def wait_time(self) -> float:
        lo, hi = self.cfg.wait_ms
        return self.rng.uniform(lo, hi) / 1000.0

    @task
    def buy(self) -> None:
        if self.swarm.draining:
            return
        placed = self.order(self.cfg.qty)
        order_id = placed.order_id
        if placed.type != "ok" or order_id is None:
            return
        self.sleep_ms(self.cfg.pay_delay_ms)
        if self.swarm.draining:
            return  # the hold lapses back to stock; no new request once a stop began
        if self.cfg.cancel_rate > 0 and self.rng.random() < self.cfg.cancel_rate:
            self.cancel(order_id, self.cfg.qty)
        else:
            # the key chosen here, not per request, so a retry can repeat it
            key = self.swarm.idempotency_key(self.swarm.recorder.next_op_id(f"{self.user_id}.k"))
            paid = self.pay(order_id, self.cfg.qty, key=key)
            for _ in range(self.cfg.pay_retries):
                # unknown outcome (timeout, 503): a real client asks again with the SAME key, so the
                # backend can answer the first outcome instead of paying twice
                if paid.type != "info" or self.swarm.draining:
                    break
                gevent.sleep(self.rng.uniform(0.02, 0.08))
                paid = self.pay(order_id, self.cfg.qty, key=key)


class HoldHoarder(SwarmUser):
    """A hoarder: takes holds of ``qty`` and never pays; keeps ordering every ``wait_ms``,
    so it takes stock again as soon as its (and others') holds expire."""

    kind = "hoarder"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.hoarder

    def wait_time(self) -> float:
        lo, hi = self.cfg.wait_ms
        return self.rng.uniform(lo, hi) / 1000.0

    @task
    def hoard(self) -> None:
        if not self.swarm.draining:
            self.order(self.cfg.qty)
