"""Locust user classes of the swarm: buyers and bots, each driving the backend through the adapter.

Every order/pay/cancel (and every read) is recorded as an invoke and a
completion. Each carries its own idempotency key unless a user means to
repeat one (``DoubleClicker``, a ``Scalper`` retrying an unknown outcome).
Requests never retry silently: ``max_retries = 0``. Requests are shaped by
the run's adapter (``--oversold-adapter``, the contract by default) and sent
through Locust's own client, so Locust's statistics count them. Each user
talks to one backend node (``index % len(nodes)``), has a stable account id
``<kind>-<worker>-<n>`` (bots may act as accounts of a shared farm instead,
``oversold.swarm.profiles``) and its own ``random.Random`` seeded from the
scenario seed and that id, so a run is reproducible as far as timing allows.

=====================  ====================  ==================================================
class                  kind (swarm.mix)      what it does
=====================  ====================  ==================================================
``Buyer``              ``buyer``             reads the sale, holds, pays within a think time, sometimes cancels
``HoldHoarder``        ``hoarder``           takes holds (``burst`` at once) and never pays
``Scalper``            ``scalper``           farm accounts, ``parallel`` orders at once, retries, pays at once
``DoubleClicker``      ``double_clicker``    the same order and payment twice with one key, and with a new one
``LatePayer``          ``late_payer``        pays after its hold expired
``SimultaneousPayer``  ``simultaneous_payer`` holds (or orders), then pays at the master's one instant
``Sessions``           ``sessions``          one account in several sessions: parallel orders against its limit
``MindChanger``        ``mind_changer``      pays and cancels one hold at once; cancels a paid order; pays a cancelled one
``Admin``              ``admin``             refunds paid orders (their buyers pay again); restocks, in transit, receive
=====================  ====================  ==================================================

Write your own kinds by subclassing ``SwarmUser`` (set ``kind``, read your
settings in ``configure``, write ``@task`` methods that call ``hold``/``pay``/
``cancel``/``read_sale``), import them into a locustfile and call
``oversold.swarm.plugin.install()`` there.

Usage (a locustfile)::

    from oversold.swarm import Buyer, HoldHoarder, plugin  # noqa: F401 (Locust finds the classes)

    plugin.install()
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Callable, ClassVar, Sequence, TypeVar

import gevent
from locust import FastHttpUser, task

from oversold.adapters.base import Adapter, Request, RequestContext
from oversold.adapters.outcome import Outcome

from .profiles import farm_account
from .runtime import SwarmRuntime, runtime_of

T = TypeVar("T")

PENDING_POLL_S = 0.02  # an asynchronous order (202 pending) is read again this often until applied
RETRY_PAUSE_MS = (20, 80)  # a scalper's pause before it tries again after sold_out


class SwarmUser(FastHttpUser):
    """Base of every swarm user: one account (or a farm of them), one node, recorded operations.

    Usage::

        class Flipper(SwarmUser):
            kind = "flipper"

            @task
            def flip(self) -> None:
                if not self.swarm.draining:
                    placed = self.hold(1)
                    if placed.type == "ok":
                        self.cancel(placed.order_id, 1)
    """

    abstract = True
    kind: ClassVar[str] = "user"
    # whether this kind can shop at a single-step backend (one buy, no hold): only buyers and scalpers
    single_step_ok: ClassVar[bool] = False
    # a hidden retry of a POST could apply an operation twice; a redirect is not part of the contract
    max_retries = 0
    max_redirects = 0

    def __init__(self, environment: Any) -> None:
        self.swarm: SwarmRuntime = runtime_of(environment)
        config = self.swarm.require_config()
        assert self.swarm.adapter is not None  # set with the config
        self.adapter: Adapter = self.swarm.adapter
        self.index = self.swarm.next_index(self.kind)
        self.user_id = f"{self.kind}-{self.swarm.worker_tag}-{self.index}"
        # str seeds hash the same in every process (unlike hash()), so the stream is replayable
        self.rng = random.Random(f"{config.scenario.seed}/{self.user_id}")
        self.sale_id = config.sale_id
        self.scenario = config.scenario
        self.farm_size = 0  # > 0: operations are made as farm accounts (next_account)
        self._farm_next = 0
        self._children: list[gevent.Greenlet] = []
        # instance attributes, read by FastHttpUser.__init__ below
        self.host = config.nodes[self.index % len(config.nodes)]
        self.network_timeout = config.request_timeout_s
        self.connection_timeout = config.request_timeout_s
        super().__init__(environment)
        self.configure(config.scenario)

    def configure(self, scenario: Any) -> None:
        """Read this kind's settings from the scenario (override in subclasses)."""

    def use_farm(self, size: int) -> None:
        """Act as the accounts of the ``<kind>-farm-*`` farm (``size`` > 0), starting at a random one."""
        self.farm_size = size
        if size:
            self._farm_next = self.rng.randrange(size)

    def next_account(self) -> str:
        """The account of the next operation: the user's own, or the next one of its farm."""
        if not self.farm_size:
            return self.user_id
        account = farm_account(self.kind, self._farm_next % self.farm_size)
        self._farm_next += 1
        return account

    def sleep_ms(self, bounds: Sequence[int]) -> None:
        gevent.sleep(self.rng.uniform(bounds[0], bounds[1]) / 1000.0)

    def think(self, bounds: Sequence[int]) -> float:
        return self.rng.uniform(bounds[0], bounds[1]) / 1000.0

    def new_key(self) -> str:
        """A fresh idempotency key, for an operation a user means to send more than once."""
        return self.swarm.idempotency_key(self.swarm.recorder.next_op_id(f"{self.user_id}.k"))

    def parallel(self, calls: Sequence[Callable[[], T]]) -> list[T | None]:
        """Run ``calls`` at once (one greenlet each) and wait for all; None for one that died.

        When this user is stopped meanwhile, the calls are killed with it (their
        requests stay as lone invokes: unknown outcomes).
        """
        if len(calls) == 1:
            return [calls[0]()]
        greenlets = [gevent.spawn(c) for c in calls]
        self._children.extend(greenlets)
        try:
            gevent.joinall(greenlets)
        finally:
            for g in greenlets:
                if not g.dead:
                    g.kill(block=False)
            self._children = [g for g in self._children if not g.dead]
        return [g.value if g.successful() else None for g in greenlets]

    def retry_unknown(self, pay: Callable[[str], Outcome], retries: int) -> Outcome:
        """``pay(key)``, and while its outcome is unknown (timeout, 503) again with the SAME key, up to
        ``retries`` more times -- only for a backend that declared ``idempotent_pay``: resending a payment
        to one that did not promise to apply it once would be a double purchase caused by the harness."""
        key = self.new_key()
        paid = pay(key)
        if not self.adapter.idempotent_pay:
            return paid
        for _ in range(retries):
            if paid.type != "info" or self.swarm.draining:
                break
            self.sleep_ms(RETRY_PAUSE_MS)
            paid = pay(key)
        return paid

    def on_stop(self) -> None:
        for g in self._children:
            g.kill(block=False)

    # -- the operations, each recorded ---------------------------------------------------

    def order(self, qty: int, *, key: str | None = None, account: str | None = None) -> Outcome:
        """Place an order (a hold under pre_deduct) as ``account`` (default: this user's)."""
        account = account or self.user_id
        key = key or self.new_key()
        return self._call("order", "order", self.adapter.order(self.sale_id, account, qty, key), qty, account, key=key)

    def hold(self, qty: int, *, key: str | None = None, account: str | None = None) -> Outcome:
        """``order``, then, for an asynchronous order (``pending``), read it until it is applied.

        What an asynchronous order came to is judged as a synchronous order would be
        (``applied``): held is ``ok``, rejected by its processor a ``fail`` with the
        refusal's code (``sold_out``...), still pending when the poll gives up ``info``.
        """
        placed = self.order(qty, key=key, account=account)
        if placed.type != "ok" or placed.order_id is None or not _pending(placed):
            return placed
        deadline = time.monotonic() + self.swarm.require_config().drain_timeout_s
        while time.monotonic() < deadline and not self.swarm.draining:
            gevent.sleep(PENDING_POLL_S)
            seen = self.read_order(placed.order_id, account=account)
            if seen.type == "ok" and not _pending(seen):
                return applied(placed, seen)
        return applied(placed, None)

    def pay(self, order_id: str, qty: int, *, key: str | None = None, account: str | None = None) -> Outcome:
        key = key or self.new_key()
        return self._call("pay", "pay", self.adapter.pay(self.sale_id, order_id, key), qty, account or self.user_id,
                          order_id, key)

    def cancel(self, order_id: str, qty: int, *, key: str | None = None, account: str | None = None) -> Outcome:
        key = key or self.new_key()
        return self._call("cancel", "cancel", self.adapter.cancel(self.sale_id, order_id, key), qty,
                          account or self.user_id, order_id, key)

    def buy(self, qty: int, *, key: str | None = None, account: str | None = None) -> Outcome:
        """A single-step purchase (``Adapter.single_step``). Recorded as a ``pay`` (it is what a payment is:
        units the buyer is told are theirs) of the order id the backend names, else ``buy:<key>``, so a
        buy resent with its key is one purchase to the checker, as it is to an idempotent backend."""
        account = account or self.user_id
        key = key or self.new_key()
        return self._call("pay", "buy", self.adapter.buy(self.sale_id, account, qty, key), qty, account,
                          f"buy:{key}", key)

    def refund(self, order_id: str, qty: int, *, account: str) -> Outcome | None:
        """Refund a paid order (admin; None when the adapter has no refund). Recorded as the admin's."""
        req = self.swarm.admin_adapter.refund(self.sale_id, order_id, self.new_key())
        if req is None:
            return None
        return self._call("refund", "refund", req, qty, account, order_id, req.headers.get("Idempotency-Key"))

    def warehouse(self, change: str, qty: int) -> Outcome | None:
        """``restock``, ``in_transit`` or ``receive`` of ``qty`` units (admin; None when the adapter has none)."""
        req = self.swarm.admin_adapter.warehouse_change(self.sale_id, change, qty)
        return None if req is None else self._call(change, change, req, qty, self.user_id)

    def read_order(self, order_id: str, *, account: str | None = None) -> Outcome:
        """Look at one's order (recorded as ``read``: it changes nothing)."""
        return self._call("read", "read_order", self.adapter.read_order(self.sale_id, order_id), 0,
                          account or self.user_id, order_id)

    def read_sale(self) -> Outcome:
        """Look at the sale's counters, as a browsing buyer does (recorded as ``read``)."""
        return self._call("read", "counters", self.adapter.counters(self.sale_id), 0, self.user_id)

    def _call(self, op: str, adapter_op: str, req: Request, qty: int, account: str,
              order_id: str | None = None, key: str | None = None) -> Outcome:
        rec = self.swarm.recorder
        pending = rec.invoke(
            process=self.user_id, user_id=account, kind=self.kind, op=op,
            sale_id=self.sale_id, qty=qty, order_id=order_id, key=key,
        )
        try:
            with self.client.request(
                req.method, req.path, name=req.name or op, catch_response=True,
                headers=dict(req.headers) if req.headers else None, json=req.body,
            ) as resp:
                status = resp.status_code or 0
                try:
                    content = resp.content if status else None
                except Exception:  # noqa: BLE001 - the status line came, the body broke off: judge by status
                    content = None
                ctx = RequestContext(adapter_op, self.sale_id, account, qty, key, order_id)
                outcome = self.adapter.outcome_in(ctx, status, content, getattr(resp, "error", None))
                if op == "pay" and outcome.type == "ok" and order_id is not None:
                    self.swarm.paid.append((order_id, account, qty))
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


def _pending(outcome: Outcome) -> bool:
    return outcome.body is not None and outcome.body.get("status") == "pending"


def applied(placed: Outcome, seen: Outcome | None) -> Outcome:
    """What an asynchronous order (``placed``: 202 ``pending``) came to, as the answer of a synchronous order.

    ``seen`` is the read that found it applied (None: the poll gave up while it was
    still pending). A held order is the read (``ok``). One its processor ``rejected``
    holds nothing: a ``fail`` with the refusal's code, so no caller pays it and a
    scalper retries a ``sold_out`` as it would a refused order. One still pending is
    ``info``: it may yet be applied, it is not a hold to pay. Only what callers act on
    changes; the history keeps the 202 and every read as they were.

    >>> pending = Outcome("ok", 202, None, {"order_id": "7", "status": "pending"})
    >>> applied(pending, Outcome("ok", 200, "sold_out", {"order_id": "7", "status": "rejected"})).type
    'fail'
    >>> applied(pending, None).type
    'info'
    """
    if seen is None:
        return dataclasses.replace(placed, type="info")
    if (seen.body or {}).get("status") == "rejected":
        return dataclasses.replace(seen, type="fail")
    return seen if seen.order_id else placed


def _expiry_ms(outcome: Outcome) -> int | None:
    """How long the hold in an order answer lives (server clock), or None when it does not say."""
    body = outcome.body or {}
    created, expires = body.get("created_ms"), body.get("expires_ms")
    if isinstance(created, int) and isinstance(expires, int):
        return max(0, expires - created)
    return None


class Buyer(SwarmUser):
    """A buyer: (reads the sale,) holds, waits ``pay_delay_ms``, pays or cancels (``cancel_rate``),
    (reads its order,) thinks ``wait_ms``. ``browse_rate`` is the share of purchases with the reads.

    On ``sold_out`` it keeps trying after its think time: expiring holds give stock back. A payment
    whose outcome is unknown is sent again with the same idempotency key, up to ``pay_retries`` times.

    Usage (scenario)::

        swarm: {mix: {buyer: 4}, buyer: {qty: 1, wait_ms: [50, 300], pay_delay_ms: [20, 300],
                                        cancel_rate: 0.05, browse_rate: 0.5}}
    """

    kind = "buyer"
    single_step_ok = True

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.buyer

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def shop(self) -> None:
        if self.swarm.draining:
            return
        browse = self.cfg.browse_rate > 0 and self.rng.random() < self.cfg.browse_rate
        if browse:
            self.read_sale()
        if self.adapter.single_step:
            self.retry_unknown(lambda key: self.buy(self.cfg.qty, key=key), self.cfg.pay_retries)
            return
        placed = self.hold(self.cfg.qty)
        order_id = placed.order_id
        if placed.type != "ok" or order_id is None:
            return
        self.sleep_ms(self.cfg.pay_delay_ms)
        if self.swarm.draining:
            return  # the hold lapses back to stock; no new request once a stop began
        if self.cfg.cancel_rate > 0 and self.rng.random() < self.cfg.cancel_rate:
            self.cancel(order_id, self.cfg.qty)
            return
        paid = self.retry_unknown(lambda key: self.pay(order_id, self.cfg.qty, key=key), self.cfg.pay_retries)
        if browse and paid.type == "ok" and not self.swarm.draining:
            self.read_order(order_id)


class HoldHoarder(SwarmUser):
    """A hoarder: takes holds of ``qty`` and never pays; every ``wait_ms`` it takes ``burst`` more at once,
    so it takes stock again as soon as its (and others') holds expire. With ``accounts`` > 0 the holds
    are spread over a farm of accounts (past per-user limits), ``register_profiles`` gives the farm
    the scalper profile.

    Usage (scenario)::

        swarm: {mix: {hoarder: 1}, hoarder: {qty: 2, wait_ms: [20, 100], burst: 4, accounts: 50}}
    """

    kind = "hoarder"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.hoarder
        self.use_farm(self.cfg.accounts)

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def hoard(self) -> None:
        if self.swarm.draining:
            return
        accounts = [self.next_account() for _ in range(self.cfg.burst)]
        self.parallel([lambda a=a: self.order(self.cfg.qty, account=a) for a in accounts])


class Scalper(SwarmUser):
    """A scalper (黄牛): buys as much as it can, ``parallel`` orders at once, each as another account of
    the scalper farm (``accounts``, registered with the scalper profile when ``register_profiles``).
    An order refused as ``sold_out`` is tried again (new key, short pause), one with an unknown
    outcome again with the *same* key (a true retry), one refused for the account (``risk_rejected``,
    ``limit_exceeded``) again as the next account: up to ``retries`` more times. Holds are paid at once.

    Usage (scenario)::

        swarm: {mix: {scalper: 1}, scalper: {parallel: 4, retries: 3, accounts: 20}}
    """

    kind = "scalper"
    single_step_ok = True

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.scalper
        self.use_farm(self.cfg.accounts)

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def rush(self) -> None:
        if not self.swarm.draining:
            self.parallel([self._grab] * self.cfg.parallel)

    def _grab(self) -> None:
        account = self.next_account()
        key = self.new_key()
        placed: Outcome | None = None
        # a single-step backend: a buy is hold and pay at once; an unknown one is resent only when
        # the backend declared that a resent payment applies once
        step = self.buy if self.adapter.single_step else self.hold
        for _ in range(1 + self.cfg.retries):
            if self.swarm.draining:
                return
            placed = step(self.cfg.qty, key=key, account=account)
            if placed.type == "ok":
                if self.adapter.single_step:
                    return  # bought: nothing to pay
                break
            if placed.type == "info":
                if self.adapter.single_step and not self.adapter.idempotent_pay:
                    return  # resending a buy of unknown outcome could buy twice
                continue  # unknown: the same request again, under the same key
            if placed.code in ("risk_rejected", "limit_exceeded"):
                account, key = self.next_account(), self.new_key()
            elif placed.code == "sold_out":
                key = self.new_key()
                self.sleep_ms(RETRY_PAUSE_MS)
            else:
                return
        if placed is None or placed.type != "ok" or placed.order_id is None:
            return
        self.sleep_ms(self.cfg.pay_delay_ms)
        pay_key = self.new_key()
        for _ in range(1 + self.cfg.retries):
            if self.swarm.draining:
                return
            paid = self.pay(placed.order_id, self.cfg.qty, key=pay_key, account=account)
            if paid.type != "info" or not self.adapter.idempotent_pay:
                return


class DoubleClicker(SwarmUser):
    """A double-clicker: sends each order ``clicks`` times at once with one idempotency key (one order
    must come of it), and with ``new_key_rate`` once more with a fresh key (a second order, which it
    cancels); pays the same way (``clicks`` concurrent pays with one key, sometimes one more with a new
    key: the order must be charged once).

    Usage (scenario)::

        swarm: {mix: {double_clicker: 1}, double_clicker: {clicks: 2, new_key_rate: 0.3}}
    """

    kind = "double_clicker"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.double_clicker

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def click(self) -> None:
        if self.swarm.draining:
            return
        qty, key = self.cfg.qty, self.new_key()
        placed = [o for o in self.parallel([lambda: self.hold(qty, key=key)] * self.cfg.clicks)
                  if o is not None and o.type == "ok" and o.order_id]
        if not placed:
            return
        order_id = placed[0].order_id
        assert order_id is not None
        again = self.hold(qty) if self.rng.random() < self.cfg.new_key_rate else None
        self.sleep_ms(self.cfg.pay_delay_ms)
        if self.swarm.draining:
            return
        pay_key = self.new_key()
        self.parallel([lambda: self.pay(order_id, qty, key=pay_key)] * self.cfg.clicks)
        if self.rng.random() < self.cfg.new_key_rate and not self.swarm.draining:
            self.pay(order_id, qty)
        if again is not None and again.type == "ok" and again.order_id and not self.swarm.draining:
            self.cancel(again.order_id, qty)


class LatePayer(SwarmUser):
    """A late payer: holds, waits until the hold expired (its TTL from the answer, else the sale's
    ``hold_ttl_ms``) plus ``late_ms``, then pays: the loophole a backend must not let resurrect a
    released hold (``pay_after_expiry: refuse`` answers ``hold_expired``; ``fresh_stock`` may sell
    from stock available then).

    Usage (scenario)::

        swarm: {mix: {late_payer: 1}, late_payer: {late_ms: [100, 500]}}
    """

    kind = "late_payer"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.late_payer

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def pay_late(self) -> None:
        if self.swarm.draining:
            return
        placed = self.hold(self.cfg.qty)
        if placed.type != "ok" or placed.order_id is None:
            return
        ttl = _expiry_ms(placed)
        ttl = self.scenario.sale.hold_ttl_ms if ttl is None else ttl
        gevent.sleep(ttl / 1000.0 + self.think(self.cfg.late_ms))
        if not self.swarm.draining:
            self.pay(placed.order_id, self.cfg.qty)


class SimultaneousPayer(SwarmUser):
    """A simultaneous payer: holds once (for ``payment_deduct``: orders, which holds nothing), then waits
    for the pay instant and pays. The master picks the instant (``lead_ms`` after every user was
    spawned) and broadcasts it; every process opens its payers' gate at that wall-clock moment, so
    the payments of all processes land together. One purchase per user and test.

    Usage (scenario)::

        swarm: {mix: {simultaneous_payer: 1}, simultaneous_payer: {qty: 1, lead_ms: 1000}}
    """

    kind = "simultaneous_payer"
    IDLE_S = 0.25  # after its one purchase the user only idles (it is not stopped: Locust would respawn)

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.simultaneous_payer
        self.done = False

    def wait_time(self) -> float:
        return self.IDLE_S if self.done else 0.0

    @task
    def pay_together(self) -> None:
        if self.done or self.swarm.draining:
            return
        self.done = True
        placed = self.hold(self.cfg.qty)
        if placed.type != "ok" or placed.order_id is None:
            return
        # bounded by the run: a stop opens nothing, so look at the drain flag now and then
        while not self.swarm.wait_pay_instant(timeout=0.5):
            if self.swarm.draining:
                return
        if not self.swarm.draining:
            self.pay(placed.order_id, self.cfg.qty)


class Sessions(SwarmUser):
    """One account in several sessions (browser tabs, devices) at once: ``sessions`` parallel orders of
    ``qty`` from the same account, each under its own key, so the per-user limit (限购) is raced by one
    buyer with an ordinary profile (a scalper farm is refused by the policy before it gets there). Pays
    every hold it got.

    Usage (scenario)::

        swarm: {mix: {sessions: 1}, sessions: {sessions: 3, qty: 1}}
    """

    kind = "sessions"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.sessions

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def race(self) -> None:
        if self.swarm.draining:
            return
        qty = self.cfg.qty
        placed = self.parallel([lambda: self.hold(qty)] * self.cfg.sessions)
        held = [o.order_id for o in placed if o is not None and o.type == "ok" and o.order_id]
        self.sleep_ms(self.cfg.pay_delay_ms)
        if held and not self.swarm.draining:
            self.parallel([lambda oid=oid: self.pay(oid, qty) for oid in held])


class MindChanger(SwarmUser):
    """A buyer who changes their mind: holds, then one of three, drawn at random: sends pay and cancel
    of the hold at once (exactly one may win), pays and then cancels (a paid order: ``already_paid``),
    or cancels and then pays (a cancelled order: ``order_cancelled``).

    Usage (scenario)::

        swarm: {mix: {mind_changer: 1}, mind_changer: {qty: 1, pay_delay_ms: [20, 200]}}
    """

    kind = "mind_changer"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.mind_changer

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def change_mind(self) -> None:
        if self.swarm.draining:
            return
        qty = self.cfg.qty
        placed = self.hold(qty)
        oid = placed.order_id
        if placed.type != "ok" or oid is None:
            return
        self.sleep_ms(self.cfg.pay_delay_ms)
        if self.swarm.draining:
            return
        way = self.rng.randrange(3)
        if way == 0:
            self.parallel([lambda: self.pay(oid, qty), lambda: self.cancel(oid, qty)])
        elif way == 1:
            if self.pay(oid, qty).type == "ok" and not self.swarm.draining:
                self.cancel(oid, qty)
        elif self.cancel(oid, qty).type == "ok" and not self.swarm.draining:
            self.pay(oid, qty)


class Admin(SwarmUser):
    """The shop's operator during the sale (退款与赔偿, 库存): every ``wait_ms`` it refunds an order paid by
    this process's users and, as that buyer, pays it again (a refunded order must stay refunded:
    ``order_refunded``); restocks ``restock_qty`` units; announces ``in_transit_qty`` units in transit and
    receives them the next time. Warehouse changes need the ledger (``backend.ledger``). Admin requests
    carry the run's admin token (``OVERSOLD_ADMIN_TOKEN``).

    Usage (scenario)::

        swarm: {mix: {admin: 1}, admin: {refunds: true, restock_qty: 5, in_transit_qty: 5}}
    """

    kind = "admin"

    def configure(self, scenario: Any) -> None:
        self.cfg = scenario.swarm.admin
        self.in_transit = 0

    def wait_time(self) -> float:
        return self.think(self.cfg.wait_ms)

    @task
    def operate(self) -> None:
        if self.swarm.draining:
            return
        if self.cfg.refunds and self.swarm.paid:
            oid, account, qty = self.swarm.paid[self.rng.randrange(len(self.swarm.paid))]
            refunded = self.refund(oid, qty, account=account)
            if refunded is not None and refunded.type == "ok" and not self.swarm.draining:
                self.pay(oid, qty, account=account)  # the buyer's retry after the refund: must be refused
        if self.cfg.restock_qty and not self.swarm.draining:
            self.warehouse("restock", self.cfg.restock_qty)
        if self.in_transit and not self.swarm.draining:
            if self.warehouse("receive", self.in_transit) is not None:
                self.in_transit = 0
        elif self.cfg.in_transit_qty and not self.swarm.draining:
            placed = self.warehouse("in_transit", self.cfg.in_transit_qty)
            if placed is not None and placed.type == "ok":
                self.in_transit = self.cfg.in_transit_qty
