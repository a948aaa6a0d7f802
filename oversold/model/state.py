"""The final state of a sale, typed: counters, audit and warehouse ledger, parsed strictly once.

``FinalState`` (``oversold.model.history``) is what the harness read from the
backend, kept as the backend said it so ``final_state.json`` shows the raw
answers. ``parse_state`` turns it into a ``SaleState`` that the checker, the
metrics and the report all read: the same parse for every reader, so two of
them can never disagree about what the backend said.

Strict means a wrong shape is ``BadInput`` naming the field
(``final_state.audit.sold[3].qty: expected an integer, got '2'``): a malformed
audit must never read as "nothing sold". A field that is absent is ``None``:
a backend may report less (a foreign backend may have only a sold count), and
each invariant then says what it could not decide.

Usage::

    state = parse_state(final)
    state.counters.sold if state.counters else None
    state.audit.net_sold_qty if state.audit else None
    state.settings.per_user_limit
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from oversold.errors import BadInput

from .evidence import DEFAULT_EVIDENCE, Evidence, parse_evidence
from .history import FinalState


def _int(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where}: expected an integer, got {value!r}")
    return value


def _opt_int(data: dict[str, Any], key: str, where: str) -> int | None:
    return _int(data.get(key), f"{where}.{key}", optional=True)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{where}: expected an object")
    return value


@dataclass(frozen=True)
class WarehouseCounters:
    """The warehouse ledger's counters as a node with a ledger reports them."""

    stock: int | None
    sold: int | None
    in_transit: int | None
    refused: int | None


@dataclass(frozen=True)
class Counters:
    """A sale's counters (``GET /v1/sales/{id}``); every field ``None`` when the backend does not report it.

    Usage::

        c = parse_counters({"available": 0, "held": 0, "sold": 5, "stock": 5}, "final_state.counters")
        c.available + c.held + c.sold == c.stock
    """

    stock: int | None = None
    available: int | None = None
    held: int | None = None
    sold: int | None = None
    refunded: int | None = None
    in_transit: int | None = None
    queued: int | None = None
    async_orders: bool | None = None
    strategy: str | None = None
    per_user_limit: int | None = None
    hold_ttl_ms: int | None = None
    sync_lag_ms: int | None = None
    sync_pending: int | None = None
    warehouse: WarehouseCounters | None = None


_COUNTER_INTS = ("stock", "available", "held", "sold", "refunded", "in_transit", "queued", "per_user_limit",
                 "hold_ttl_ms", "sync_lag_ms", "sync_pending")


def parse_counters(raw: Any, where: str) -> Counters:
    """A counters object, strictly: each known field an integer (or absent); unknown fields are ignored."""
    data = _obj(raw, where)
    ints = {k: _opt_int(data, k, where) for k in _COUNTER_INTS}
    async_orders = data.get("async_orders")
    if async_orders is not None and not isinstance(async_orders, bool):
        raise BadInput(f"{where}.async_orders: expected true or false, got {async_orders!r}")
    strategy = data.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise BadInput(f"{where}.strategy: expected a string, got {strategy!r}")
    warehouse = None
    if data.get("warehouse") is not None:
        w = _obj(data["warehouse"], f"{where}.warehouse")
        warehouse = WarehouseCounters(*(_opt_int(w, k, f"{where}.warehouse")
                                        for k in ("stock", "sold", "in_transit", "refused")))
    return Counters(**ints, async_orders=async_orders, strategy=strategy, warehouse=warehouse)


@dataclass(frozen=True)
class SoldOrder:
    """One entry of the audit's ``sold`` list."""

    order_id: str
    user_id: str
    qty: int
    paid_ms: int | None


@dataclass(frozen=True)
class Hold:
    """One entry of the audit's ``holds`` list: an order still in status ``held``."""

    order_id: str
    user_id: str
    qty: int
    created_ms: int | None
    expires_ms: int | None


@dataclass(frozen=True)
class Record:
    """One entry of the audit's ``payments``, ``refunds`` or ``compensations`` lists."""

    order_id: str
    user_id: str
    qty: int


@dataclass(frozen=True)
class Ledger:
    """The warehouse ledger (back-end stock) as the audit's ``ledger`` shows it."""

    stock: int
    sold: int
    in_transit: int | None
    sold_orders: tuple[tuple[str, int], ...]  # (order id, qty), in the order the ledger recorded them
    refused_orders: tuple[tuple[str, int], ...]  # sales of the front the warehouse had no stock for


@dataclass(frozen=True)
class Audit:
    """The audit (``GET /v1/sales/{id}/audit``): sold orders, live holds, the money lists, the ledger.

    Usage::

        audit.sold_qty, audit.net_sold_qty, audit.held_qty
        audit.refunded_ids        # order ids with a refund record
    """

    now_ms: int | None
    sold: tuple[SoldOrder, ...]
    holds: tuple[Hold, ...]
    counters: Counters | None  # the audit's own snapshot, taken with its lists
    # None where the audit has no such list (a backend without a payment ledger)
    payments: tuple[Record, ...] | None = None
    refunds: tuple[Record, ...] | None = None
    compensations: tuple[Record, ...] | None = None
    ledger: Ledger | None = None
    # (order id, units its hold gave back to stock in all); None where the audit has no such list
    released: tuple[tuple[str, int], ...] | None = None

    # cached: the lists never change, and a million-record run's audit lists a hundred thousand orders
    @cached_property
    def sold_qty(self) -> int:
        return sum(s.qty for s in self.sold)

    @cached_property
    def refunded_ids(self) -> frozenset[str]:
        return frozenset(r.order_id for r in self.refunds or ())

    @cached_property
    def refunded_sold_qty(self) -> int:
        """Units of sold orders that were refunded afterwards (they did not ship)."""
        refunded = self.refunded_ids
        return sum(s.qty for s in self.sold if s.order_id in refunded) if refunded else 0

    @property
    def net_sold_qty(self) -> int:
        """What shipped: sold minus refunded sold orders."""
        return self.sold_qty - self.refunded_sold_qty

    @cached_property
    def held_qty(self) -> int:
        return sum(h.qty for h in self.holds)


def _entry(e: Any, where: str) -> dict[str, Any]:
    if not isinstance(e, dict) or not isinstance(e.get("order_id"), str):
        raise BadInput(f"{where}: expected an object with a string order_id")
    return e


def _records(raw: dict[str, Any], name: str, where: str) -> tuple[Record, ...] | None:
    if raw.get(name) is None:
        return None
    if not isinstance(raw[name], list):
        raise BadInput(f"{where}.{name}: expected a list")
    out = []
    for i, e in enumerate(raw[name]):
        w = f"{where}.{name}[{i}]"
        e = _entry(e, w)
        qty = _int(e.get("qty"), f"{w}.qty", optional=True)
        out.append(Record(e["order_id"], str(e.get("user_id", "")), 0 if qty is None else qty))
    return tuple(out)


def parse_ledger(raw: Any, where: str) -> Ledger:
    """The audit's ``ledger``, strictly (a malformed ledger must not read as "nothing sold")."""
    data = _obj(raw, where)
    lists: dict[str, tuple[tuple[str, int], ...]] = {}
    for name in ("sold_orders", "refused_orders"):
        rows = data.get(name, [])
        if not isinstance(rows, list):
            raise BadInput(f"{where}.{name}: expected a list")
        lists[name] = tuple((_entry(e, f"{where}.{name}[{i}]")["order_id"],
                             _int(e.get("qty"), f"{where}.{name}[{i}].qty")) for i, e in enumerate(rows))
    return Ledger(
        stock=_int(data.get("stock"), f"{where}.stock"),
        sold=_int(data.get("sold"), f"{where}.sold"),
        in_transit=_int(data.get("in_transit"), f"{where}.in_transit", optional=True),
        sold_orders=lists["sold_orders"],
        refused_orders=lists["refused_orders"],
    )


def _sold_fast(rows: list[Any]) -> list[SoldOrder] | None:
    """The sold list when every entry is as the contract says (an object, a string order id and user id, an
    integer qty and paid_ms or none): one comprehension for a hundred thousand entries. None otherwise."""
    try:
        sold = [SoldOrder(e["order_id"], e.get("user_id", ""), e["qty"], e.get("paid_ms")) for e in rows]
    except (TypeError, KeyError, AttributeError):
        return None
    for s in sold:
        if (type(s.order_id) is not str or type(s.user_id) is not str or type(s.qty) is not int
                or (s.paid_ms is not None and type(s.paid_ms) is not int)):
            return None
    return sold


def parse_audit(raw: Any, where: str = "final_state.audit") -> Audit:
    """An audit, strictly: ``sold`` and ``holds`` are required lists; the other lists are optional."""
    data = _obj(raw, where)
    for name in ("sold", "holds"):
        if not isinstance(data.get(name), list):
            raise BadInput(f"{where}.{name}: expected a list")
    sold = _sold_fast(data["sold"])
    if sold is None:  # something in it is not as it should be: the careful walk says what and where
        sold = []
        for i, e in enumerate(data["sold"]):
            w = f"{where}.sold[{i}]"
            e = _entry(e, w)
            sold.append(SoldOrder(e["order_id"], str(e.get("user_id", "")), _int(e.get("qty"), f"{w}.qty"),
                                  _int(e.get("paid_ms"), f"{w}.paid_ms", optional=True)))
    holds = []
    for i, e in enumerate(data["holds"]):
        w = f"{where}.holds[{i}]"
        e = _entry(e, w)
        holds.append(Hold(e["order_id"], str(e.get("user_id", "")), _int(e.get("qty"), f"{w}.qty"),
                          _int(e.get("created_ms"), f"{w}.created_ms", optional=True),
                          _int(e.get("expires_ms"), f"{w}.expires_ms", optional=True)))
    # the audit's own counters snapshot: a wrong shape there is ignored, as the checker always did
    counters = parse_counters(data["counters"], f"{where}.counters") if isinstance(data.get("counters"), dict) else None
    return Audit(
        now_ms=_int(data.get("now_ms"), f"{where}.now_ms", optional=True),
        sold=tuple(sold),
        holds=tuple(holds),
        counters=counters,
        payments=_records(data, "payments", where),
        refunds=_records(data, "refunds", where),
        compensations=_records(data, "compensations", where),
        ledger=parse_ledger(data["ledger"], f"{where}.ledger") if data.get("ledger") is not None else None,
        released=_released(data, where),
    )


def _released(data: dict[str, Any], where: str) -> tuple[tuple[str, int], ...] | None:
    """The audit's optional ``released`` list: (order id, units its hold gave back), strictly."""
    rows = data.get("released")
    if rows is None:
        return None
    if not isinstance(rows, list):
        raise BadInput(f"{where}.released: expected a list")
    return tuple((_entry(e, f"{where}.released[{i}]")["order_id"], _int(e.get("qty"), f"{where}.released[{i}].qty"))
                 for i, e in enumerate(rows))


@dataclass(frozen=True)
class SaleSettings:
    """The settings the invariants need: from the sale as sent (``final.extra["sale"]``), else as counted."""

    strategy: str | None = None
    per_user_limit: int | None = None
    async_orders: bool | None = None
    pay_after_expiry: str | None = None  # refuse | fresh_stock, as sent (None: not known)


@dataclass(frozen=True)
class SaleState:
    """Everything read from the backend at the end of a run, typed.

    ``counters`` are the final read's, else the audit's own snapshot; ``ledger``
    is the audit's warehouse ledger (``None`` without one). ``evidence`` is the
    level the adapter declared it provides (``final.extra["evidence"]``; a final
    state written before levels existed had the contract's per-order audit).
    """

    sale_id: str
    stock: int
    hold_ttl_ms: int
    counters: Counters | None
    audit: Audit | None
    settings: SaleSettings
    evidence: Evidence = DEFAULT_EVIDENCE
    # order id -> its status as read once the sale settled (``extra.orders``: the asynchronous orders
    # the clients were answered 202 for); None where the read failed, the whole map None when not read
    order_status: dict[str, str | None] | None = None

    @property
    def ledger(self) -> Ledger | None:
        return self.audit.ledger if self.audit is not None else None

    @property
    def sync_lag_ms(self) -> int | None:
        return self.counters.sync_lag_ms if self.counters is not None else None


def _settings(final: FinalState, counters: Counters | None, audit: Audit | None) -> SaleSettings:
    raw = (final.extra or {}).get("sale")
    if raw is not None and not isinstance(raw, dict):
        raise BadInput("final_state.extra.sale: expected an object of the sale's settings")
    sent = raw or {}
    sources = [c for c in (counters, audit.counters if audit else None) if c is not None]

    def pick(name: str) -> Any:
        if sent.get(name) is not None:
            return sent[name]
        return next((getattr(c, name) for c in sources if getattr(c, name) is not None), None)

    limit = pick("per_user_limit")
    async_orders = pick("async_orders")
    after = sent.get("pay_after_expiry")
    return SaleSettings(strategy=pick("strategy"),
                        per_user_limit=_int(limit, "per_user_limit", optional=True),
                        async_orders=async_orders if isinstance(async_orders, bool) else None,
                        pay_after_expiry=after if isinstance(after, str) else None)


def _order_status(final: FinalState) -> dict[str, str | None] | None:
    """``extra.orders``: order id -> status (or null: it could not be read), strictly."""
    raw = (final.extra or {}).get("orders")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadInput("final_state.extra.orders: expected an object of order id -> status")
    for oid, status in raw.items():
        if status is not None and not isinstance(status, str):
            raise BadInput(f"final_state.extra.orders.{oid}: expected a status string or null, got {status!r}")
    return dict(raw)


def parse_state(final: FinalState) -> SaleState:
    """The final state, parsed once for every reader (``BadInput`` for a wrong shape, naming the field)."""
    audit = parse_audit(final.audit) if final.audit is not None else None
    counters = parse_counters(final.counters, "final_state.counters") if final.counters is not None else None
    if counters is None and audit is not None:
        counters = audit.counters
    evidence = parse_evidence((final.extra or {}).get("evidence", DEFAULT_EVIDENCE), "final_state.extra.evidence")
    return SaleState(sale_id=final.sale_id, stock=final.stock, hold_ttl_ms=final.hold_ttl_ms, counters=counters,
                     audit=audit, settings=_settings(final, counters, audit), evidence=evidence,
                     order_status=_order_status(final))
