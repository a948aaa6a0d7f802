"""The adapter seam: one backend's HTTP API, seen as the contract's operations.

The request builders and ``outcome`` do no I/O. They turn each operation of the harness (order, pay,
cancel, read an order, read the sale's counters, the audit, set the sale up,
load user profiles) into one ``Request``, and each answer back into an
``Outcome`` in the contract's terms: the history type (``ok`` / ``fail`` /
``info``), the contract's error code, and a body shaped like the contract's
(an order has ``order_id`` and ``status``; counters have ``available``,
``held``, ``sold``, ``stock``; the audit has ``sold`` and ``holds``).

Keeping the adapter pure is what lets the same class serve two clients: the
swarm sends its requests through Locust's ``FastHttpUser`` client (so Locust's
statistics see them) and the master reads the final state through a stdlib
client (``oversold.adapters.http.AdapterClient``), like httpx's transports.

An operation a backend does not have returns ``None`` instead of a Request
(an audit read, profiles, an admin reset): the harness then skips it and the
checker says which invariants it could not decide without it.

The lifecycle (docs/adapters.md): the harness loads the adapter with the
scenario's ``backend.adapter_options``; the orchestrator (``oversold run``, or
the Locust master) calls ``setup`` once before the load (blocking I/O allowed:
SQL against your database; default: send the ``setup_sale`` request), then
during the swarm every request is shaped by the builders and its answer read by
``outcome_in`` with the request's ``RequestContext`` (sale, user, key, order
id); after the swarm it settles through ``read_state`` (your own read of
counters and audit, blocking I/O allowed; default: the ``counters`` and
``audit`` requests), and finally ``close``. Three declarations say what the
backend is: ``evidence`` (what it can show of what it sold,
``oversold.model.evidence``), ``idempotent_pay`` (a payment resent with its
key is applied once: only then does the swarm resend a payment whose outcome
is unknown) and ``single_step`` (a purchase is one ``buy`` request, no hold).

Usage (a backend whose orders are ``POST /buy`` with ``{"sku", "who", "n"}``)::

    class MyShop(ContractAdapter):
        name = "myshop"

        def order(self, sale_id, user_id, qty, key):
            return Request("POST", "/buy", {"sku": sale_id, "who": user_id, "n": qty},
                           {"Request-Id": key}, name="order")

    # locust -f locustfiles/flash_sale.py --oversold-adapter mypkg.adapters:MyShop ...
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, NamedTuple

from oversold.errors import BadInput
from oversold.model.evidence import EVIDENCE_LEVELS, Evidence

from .outcome import Outcome, outcome_of

NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: The operations an adapter shapes (``Adapter.outcome`` gets one of these names).
OPERATIONS = ("order", "pay", "buy", "cancel", "read_order", "counters", "audit", "setup_sale", "profiles",
              "refund", "restock", "in_transit", "receive")


class RequestContext(NamedTuple):
    """What the harness knew when it sent one request: given to ``Adapter.outcome_in`` with the answer.

    ``order_id`` is the order paid, cancelled or read (None for an order or a buy:
    the answer names it, if the backend hands out ids at all).

    Usage::

        ctx = RequestContext("buy", "moutai", user_id="u1", qty=1, key="k-9")
        adapter.outcome_in(ctx, 200, b'{"ok": true}', None)
    """

    op: str
    sale_id: str
    user_id: str | None = None
    qty: int = 0
    key: str | None = None
    order_id: str | None = None


class StateRead(NamedTuple):
    """The final state as an adapter read it itself (``Adapter.read_state``): counters and audit shaped
    like the contract's, or None for a part it cannot read.

    Usage::

        StateRead(counters={"stock": 100, "available": 0, "held": 0, "sold": 100}, audit=None)
    """

    counters: dict[str, Any] | None
    audit: dict[str, Any] | None = None


class Request(NamedTuple):
    """One HTTP request: method, path (relative to a node's base URL, already quoted), JSON body, headers.

    ``name`` groups requests in Locust's statistics (default: the operation). A
    named tuple, not a dataclass: one is built per request of the swarm, and a
    tuple costs a quarter of a frozen dataclass (benchmarks/recording_overhead.py).

    Usage::

        Request("POST", "/v1/sales/s1/orders", {"user_id": "u1", "qty": 1}, {"Idempotency-Key": "k1"})
    """

    method: str
    path: str
    body: Any = None  # JSON-serialisable; None sends no body
    headers: Mapping[str, str] = NO_HEADERS
    name: str = ""


class Adapter:
    """Base of every adapter: how one backend's API says each operation of the harness.

    Subclasses implement the request builders and, when the backend's answers
    are not the contract's, ``outcome`` (or ``outcome_in``, to see the request's
    context). ``admin_token`` is given only where admin operations run (the
    master or local runner, never the workers); ``options`` are the scenario's
    ``backend.adapter_options`` (say, where your database is), everywhere.

    Usage::

        adapter = ContractAdapter(admin_token="secret")
        req = adapter.pay("moutai", "17", key="k-9")
        adapter.outcome("pay", 200, b'{"order_id": "17", "status": "paid"}', None).type   # "ok"
    """

    name: ClassVar[str] = "adapter"
    #: What the backend can show of what it sold (oversold.model.evidence). The cautious default is the
    #: contract's audit: a backend that has less says so, and the checker names what it cannot decide.
    evidence: ClassVar[Evidence] = "per_order_audit"
    #: A payment (or a buy) resent with the same idempotency key is applied at most once. Only then does
    #: the swarm resend one whose outcome is unknown (a timeout): otherwise the harness would cause a
    #: double purchase itself.
    idempotent_pay: ClassVar[bool] = False
    #: A purchase is one request (``buy``): no hold, no separate payment. The swarm's buyers and scalpers
    #: buy; the kinds that need holds (hoarders, late payers, ...) cannot run against it.
    single_step: ClassVar[bool] = False

    def __init__(self, admin_token: str | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.admin_token = admin_token
        self.options: dict[str, Any] = dict(options or {})

    # -- what a buyer does (required) ------------------------------------------------

    def order(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        raise NotImplementedError

    def pay(self, sale_id: str, order_id: str, key: str) -> Request:
        raise NotImplementedError

    def cancel(self, sale_id: str, order_id: str, key: str) -> Request:
        raise NotImplementedError

    def read_order(self, sale_id: str, order_id: str) -> Request:
        raise NotImplementedError

    def buy(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        """A single-step purchase (``single_step`` adapters): the answer is ``ok`` once it is paid for."""
        raise NotImplementedError(f"{type(self).__name__} is not single_step: it has no buy request")

    def counters(self, sale_id: str) -> Request:
        raise NotImplementedError

    # -- what the harness needs around the sale (optional: None = the backend has none) --

    def audit(self, sale_id: str) -> Request | None:
        return None

    def setup_sale(self, sale_id: str, settings: Mapping[str, Any]) -> Request | None:
        """Create or reset the sale; ``settings`` is ``oversold.model.scenario.Sale.settings()``."""
        return None

    def load_profiles(self, sale_id: str, profiles: Mapping[str, Mapping[str, Any]]) -> Request | None:
        """Register user profiles (for a scalper policy); ``None``: the backend has no such thing."""
        return None

    # -- what an admin does during the sale (optional: the ``admin`` user kind) --------------

    def refund(self, sale_id: str, order_id: str, key: str) -> Request | None:
        """Refund a paid order and compensate its buyer."""
        return None

    def warehouse_change(self, sale_id: str, change: str, qty: int) -> Request | None:
        """A warehouse stock change: ``restock``, ``in_transit`` or ``receive`` of ``qty`` units."""
        return None

    # -- the lifecycle: I/O allowed, in the orchestrator (or the Locust master) only ---------------

    def setup(self, sale_id: str, stock: int, settings: Mapping[str, Any]) -> bool:
        """Create or reset the sale with ``stock`` units before the load (every run calls it once, so it
        is the reset too). Blocking I/O is fine here (SQL against your database). Return True when done;
        the default returns False: the harness then sends the ``setup_sale`` request instead."""
        return False

    def read_state(self, sale_id: str) -> StateRead | None:
        """Read the sale's counters (and audit) yourself, e.g. a SQL count of the sold rows. Blocking I/O
        is fine here: it runs in the orchestrator while the sale settles and for the final read. None
        (the default): the harness sends the ``counters`` and ``audit`` requests instead."""
        return None

    def close(self) -> None:
        """Release what ``setup``/``read_state`` opened (a database connection); called once at the end."""

    # -- answers ---------------------------------------------------------------------

    def outcome(self, op: str, status: int, content: bytes | None, error: BaseException | None) -> Outcome:
        """The answer to ``op`` in the contract's terms (default: the answer *is* the contract's)."""
        return outcome_of(status, content, error)

    def outcome_in(self, ctx: RequestContext, status: int, content: bytes | None,
                   error: BaseException | None) -> Outcome:
        """The answer with the request's context (sale, user, key, order id); default: ``outcome``.
        Override it when the answer alone does not say enough (a buy answered with no order id)."""
        return self.outcome(ctx.op, status, content, error)


def load_adapter(spec: str, admin_token: str | None = None, *, source: str = "--oversold-adapter",
                 options: Mapping[str, Any] | None = None) -> Adapter:
    """An adapter from ``"package.module:ClassName"``; BadInput naming ``source`` when it cannot be loaded.
    ``options`` (the scenario's ``backend.adapter_options``) are passed only when there are some, so an
    adapter whose ``__init__`` takes only ``admin_token`` still loads.

    Usage::

        adapter = load_adapter("oversold.adapters.contract:ContractAdapter")
    """
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise BadInput(f"{source}: {spec!r} is not 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BadInput(f"{source}: cannot import {module_name}: {e}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise BadInput(f"{source}: {spec} is not an oversold.adapters.Adapter subclass")
    if cls.evidence not in EVIDENCE_LEVELS:
        raise BadInput(f"{source}: {spec}.evidence is {cls.evidence!r}; use one of {', '.join(EVIDENCE_LEVELS)}")
    if options:
        return cls(admin_token=admin_token, options=options)
    return cls(admin_token=admin_token)
