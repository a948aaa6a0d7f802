"""The adapter seam: one backend's HTTP API, seen as the contract's operations.

An adapter does no I/O. It turns each operation of the harness (order, pay,
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

from .outcome import Outcome, outcome_of

NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: The operations an adapter shapes (``Adapter.outcome`` gets one of these names).
OPERATIONS = ("order", "pay", "cancel", "read_order", "counters", "audit", "setup_sale", "profiles",
              "refund", "restock", "in_transit", "receive")


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
    are not the contract's, ``outcome``. ``admin_token`` is given only where
    admin operations run (the master or local runner, never the workers).

    Usage::

        adapter = ContractAdapter(admin_token="secret")
        req = adapter.pay("moutai", "17", key="k-9")
        adapter.outcome("pay", 200, b'{"order_id": "17", "status": "paid"}', None).type   # "ok"
    """

    name: ClassVar[str] = "adapter"

    def __init__(self, admin_token: str | None = None) -> None:
        self.admin_token = admin_token

    # -- what a buyer does (required) ------------------------------------------------

    def order(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        raise NotImplementedError

    def pay(self, sale_id: str, order_id: str, key: str) -> Request:
        raise NotImplementedError

    def cancel(self, sale_id: str, order_id: str, key: str) -> Request:
        raise NotImplementedError

    def read_order(self, sale_id: str, order_id: str) -> Request:
        raise NotImplementedError

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

    # -- answers ---------------------------------------------------------------------

    def outcome(self, op: str, status: int, content: bytes | None, error: BaseException | None) -> Outcome:
        """The answer to ``op`` in the contract's terms (default: the answer *is* the contract's)."""
        return outcome_of(status, content, error)


def load_adapter(spec: str, admin_token: str | None = None, *, source: str = "--oversold-adapter") -> Adapter:
    """An adapter from ``"package.module:ClassName"``; BadInput naming ``source`` when it cannot be loaded.

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
    return cls(admin_token=admin_token)
