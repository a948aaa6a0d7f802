"""The checker: a pure function of (history, final state) that returns a verdict.

No I/O, no clock, no randomness: the same input always gives an equal output, so
a saved run directory can be checked again later. See ``docs/internals.md`` for
the history records and the final state, and ``check`` for the rules.

Usage::

    verdict = check(read_history(run_dir / "history.jsonl"), final)
    if verdict.verdict == "fail":
        for inv in verdict.invariants:
            print(inv.name, inv.status, inv.message)
    json.dumps(verdict.to_dict())  # the results.json shape
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Literal

from .calls import Call, pair
from .errors import BadInput
from .history import FinalState, Op

Status = Literal["pass", "fail", "unknown"]
VerdictName = Literal["pass", "fail", "inconclusive"]

INVARIANTS = (
    "no_oversell",
    "no_lost_sale",
    "no_phantom_sale",
    "conservation",
    "holds_returned",
    "single_payment",
    "unique_order_ids",
    "sells_out",
    "orders_applied",
    "refunds_compensated",
    "per_user_limits",
    "ledger_no_oversell",
    "stock_converges",
)

#: strategies whose every sale is written to the warehouse ledger: a run of them without one is unknown
LEDGER_STRATEGIES = ("pre_deduct_ledger",)


@dataclass(frozen=True)
class InvariantResult:
    """The outcome of one invariant.

    Usage::

        r = verdict.invariant("no_oversell")
        if r.status == "fail":
            print(r.message, r.counterexamples[0]["order_id"])
    """

    name: str
    status: Status
    message: str
    counterexamples: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "counterexamples": [dict(c) for c in self.counterexamples],
        }


@dataclass(frozen=True)
class Verdict:
    """The checker's answer: one overall verdict, totals and one result per invariant.

    Usage::

        v = check(ops, final)
        v.verdict                        # "pass" | "fail" | "inconclusive"
        v.totals["oversold_units"]       # 0 unless something oversold
        v.invariant("no_lost_sale").status
        v.to_dict()                      # what results.json holds
    """

    verdict: VerdictName
    totals: dict[str, Any]
    invariants: tuple[InvariantResult, ...]

    def invariant(self, name: str) -> InvariantResult:
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "totals": dict(self.totals),
            "invariants": [inv.to_dict() for inv in self.invariants],
        }


# --------------------------------------------------------------------------- the inputs, parsed once


@dataclass(frozen=True)
class _Sold:
    order_id: str
    user_id: str
    qty: int
    paid_ms: int | None


@dataclass(frozen=True)
class _Hold:
    order_id: str
    user_id: str
    qty: int
    created_ms: int | None
    expires_ms: int | None


@dataclass(frozen=True)
class _Record:
    """One entry of the audit's payments, refunds or compensations lists."""

    order_id: str
    user_id: str
    qty: int


@dataclass(frozen=True)
class _Audit:
    now_ms: int | None
    sold: tuple[_Sold, ...]
    holds: tuple[_Hold, ...]
    counters: dict[str, Any] | None
    # None where the audit has no such list (a backend without a payment ledger)
    payments: tuple[_Record, ...] | None = None
    refunds: tuple[_Record, ...] | None = None
    compensations: tuple[_Record, ...] | None = None

    @property
    def sold_qty(self) -> int:
        return sum(s.qty for s in self.sold)

    @cached_property
    def refunded_ids(self) -> frozenset[str]:
        return frozenset(r.order_id for r in self.refunds or ())

    @property
    def refunded_sold_qty(self) -> int:
        """Units of sold orders that were refunded afterwards (they did not ship)."""
        return sum(s.qty for s in self.sold if s.order_id in self.refunded_ids)

    @property
    def net_sold_qty(self) -> int:
        """What shipped: sold minus refunded sold orders."""
        return self.sold_qty - self.refunded_sold_qty

    @property
    def held_qty(self) -> int:
        return sum(h.qty for h in self.holds)


@dataclass(frozen=True)
class _Sale:
    """Everything the invariants read, derived once from the inputs."""

    stock: int
    grace_ms: int
    calls: tuple[Call, ...]  # this sale's operations, by time of their first record
    audit: _Audit | None
    counters: dict[str, Any] | None  # final.counters, else the audit's own snapshot
    order_call: dict[str, Call] = field(default_factory=dict)  # order id -> the ok order that placed it
    # order id -> every ok order that was answered with it (more than one request: see unique_order_ids)
    order_calls: dict[str, tuple[Call, ...]] = field(default_factory=dict)
    pays: dict[str, tuple[Call, ...]] = field(default_factory=dict)  # order id -> every pay of it
    settings: dict[str, Any] = field(default_factory=dict)  # the sale's settings: final.extra["sale"]

    def ok_pays(self, order_id: str) -> tuple[Call, ...]:
        return tuple(c for c in self.pays.get(order_id, ()) if c.outcome == "ok")

    # cached_property writes straight into __dict__, so it works on a frozen dataclass;
    # the caches keep the invariants linear in the size of the history.
    @cached_property
    def acked_orders(self) -> tuple[str, ...]:
        """Order ids with at least one ``ok`` pay, in the order they were first acknowledged."""
        firsts = []
        for oid in self.pays:
            oks = self.ok_pays(oid)
            if oks:
                firsts.append((min(_done_time(c) for c in oks), oid))
        return tuple(oid for _, oid in sorted(firsts))

    def pay_owner(self, pay: Call) -> Call | None:
        """The ok order operation a pay belongs to: of the ok orders answered with its order id, the
        latest one completed before the pay was invoked, the payer's own preferred; None if none.

        An order id may name two orders when a backend reused it (a failover that rolled its id
        counter back): keyed by id alone, the second buyer's acknowledged payment would vanish
        into the first's.
        """
        cands = self.order_calls.get(pay.order_id or "", ())
        if not cands:
            return None
        before = [c for c in cands if _done_time(c) <= pay.time] or list(cands)
        own = [c for c in before if c.user_id == pay.user_id] or before
        return max(own, key=lambda c: (_done_time(c), c.op_id))

    @cached_property
    def acked_payments(self) -> tuple[tuple[str, Call | None, Call], ...]:
        """One (order id, order operation, first ok pay) per distinct order operation with an ``ok`` pay,
        in the order they were first acknowledged: acknowledged payments keyed by (order op, order id)."""
        firsts: dict[tuple[str, str | None], Call] = {}
        owner: dict[tuple[str, str | None], Call | None] = {}
        for oid in self.pays:
            for c in self.ok_pays(oid):
                oc = self.pay_owner(c)
                k = (oid, oc.op_id if oc else None)
                if k not in firsts or _done_time(c) < _done_time(firsts[k]):
                    firsts[k] = c
                    owner[k] = oc
        ordered = sorted(firsts, key=lambda k: (_done_time(firsts[k]), k[0], k[1] or ""))
        return tuple((k[0], owner[k], firsts[k]) for k in ordered)

    def acked_qty(self, oid: str, oc: Call | None) -> int:
        return oc.qty if oc is not None else self.qty_of(oid)

    @cached_property
    def audited_qty(self) -> dict[str, int]:
        return {e.order_id: e.qty for e in self.audit.sold} if self.audit else {}

    @cached_property
    def acked_paid(self) -> int:
        """Units of acknowledged payments, one per distinct order operation (not per order id)."""
        return sum(self.acked_qty(oid, oc) for oid, oc, _ in self.acked_payments)

    @cached_property
    def acked_refunded(self) -> int:
        """Units of acknowledged paid orders that the audit lists as refunded.

        A refund names an order id, so it excuses one acknowledged payment of that id (the first):
        a reused id's second payment is never written off by the first one's refund.
        """
        refunded = self.audit.refunded_ids if self.audit else frozenset()
        seen: set[str] = set()
        total = 0
        for oid, oc, _ in self.acked_payments:
            if oid in refunded and oid not in seen:
                seen.add(oid)
                total += self.acked_qty(oid, oc)
        return total

    def setting(self, name: str) -> Any:
        """A sale setting: from ``final.extra["sale"]``, else as the counters (or the audit's) report it."""
        for source in (self.settings, self.counters, self.audit.counters if self.audit else None):
            if isinstance(source, dict) and source.get(name) is not None:
                return source[name]
        return None

    def qty_of(self, order_id: str) -> int:
        """Quantity of an order: as placed, else as audited, else as the pay said."""
        if order_id in self.order_call:
            return self.order_call[order_id].qty
        if order_id in self.audited_qty:
            return self.audited_qty[order_id]
        pays = self.pays.get(order_id, ())
        return pays[0].qty if pays else 0

    def user_of(self, order_id: str) -> str | None:
        if order_id in self.order_call:
            return self.order_call[order_id].user_id
        pays = self.pays.get(order_id, ())
        return pays[0].user_id if pays else None


def _done_time(c: Call) -> float:
    return c.done_time if c.done_time is not None else c.time


def _int(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where}: expected an integer, got {value!r}")
    return value


def _parse_audit(raw: dict[str, Any] | None) -> _Audit | None:
    """Validate the audit strictly: a malformed one must not read as 'nothing sold'."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadInput("final_state.audit: expected an object")
    for name in ("sold", "holds"):
        if not isinstance(raw.get(name), list):
            raise BadInput(f"final_state.audit.{name}: expected a list")
    sold: list[_Sold] = []
    for i, e in enumerate(raw["sold"]):
        w = f"final_state.audit.sold[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("order_id"), str):
            raise BadInput(f"{w}: expected an object with a string order_id")
        sold.append(_Sold(e["order_id"], str(e.get("user_id", "")), _int(e.get("qty"), f"{w}.qty"),
                          _int(e.get("paid_ms"), f"{w}.paid_ms", optional=True)))
    holds: list[_Hold] = []
    for i, e in enumerate(raw["holds"]):
        w = f"final_state.audit.holds[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("order_id"), str):
            raise BadInput(f"{w}: expected an object with a string order_id")
        holds.append(_Hold(e["order_id"], str(e.get("user_id", "")), _int(e.get("qty"), f"{w}.qty"),
                           _int(e.get("created_ms"), f"{w}.created_ms", optional=True),
                           _int(e.get("expires_ms"), f"{w}.expires_ms", optional=True)))
    counters = raw.get("counters")
    return _Audit(
        now_ms=_int(raw.get("now_ms"), "final_state.audit.now_ms", optional=True),
        sold=tuple(sold),
        holds=tuple(holds),
        counters=counters if isinstance(counters, dict) else None,
        payments=_parse_records(raw, "payments"),
        refunds=_parse_records(raw, "refunds"),
        compensations=_parse_records(raw, "compensations"),
    )


def _parse_records(raw: dict[str, Any], name: str) -> tuple[_Record, ...] | None:
    """An optional list of the audit (payments, refunds, compensations); None when absent."""
    if raw.get(name) is None:
        return None
    if not isinstance(raw[name], list):
        raise BadInput(f"final_state.audit.{name}: expected a list")
    out = []
    for i, e in enumerate(raw[name]):
        w = f"final_state.audit.{name}[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("order_id"), str):
            raise BadInput(f"{w}: expected an object with a string order_id")
        qty = _int(e.get("qty"), f"{w}.qty", optional=True)
        out.append(_Record(e["order_id"], str(e.get("user_id", "")), 0 if qty is None else qty))
    return tuple(out)


def _counter(counters: dict[str, Any], name: str, where: str = "final_state.counters") -> int:
    return _int(counters.get(name), f"{where}.{name}")


def _build(ops: Iterable[Op], final: FinalState, grace_ms: int) -> tuple[_Sale, dict[str, int]]:
    calls, counts = pair(ops, final.sale_id)
    audit = _parse_audit(final.audit)
    order_call: dict[str, Call] = {}
    order_calls: dict[str, list[Call]] = defaultdict(list)
    pays: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        oid = c.order_id
        if c.op == "order" and c.outcome == "ok" and oid:
            order_calls[oid].append(c)
            order_call.setdefault(oid, c)
        elif c.op == "pay" and oid:
            pays[oid].append(c)
    sale = _Sale(
        stock=final.stock,
        grace_ms=grace_ms,
        calls=calls,
        audit=audit,
        counters=final.counters if final.counters is not None else (audit.counters if audit else None),
        order_call=order_call,
        order_calls={k: tuple(v) for k, v in order_calls.items()},
        pays={k: tuple(v) for k, v in pays.items()},
        settings=_sale_settings(final),
    )
    return sale, counts


def _sale_settings(final: FinalState) -> dict[str, Any]:
    raw = (final.extra or {}).get("sale")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput("final_state.extra.sale: expected an object of the sale's settings")
    return raw


# --------------------------------------------------------------------------- helpers for results


def _result(name: str, status: Status, message: str, examples: list[dict[str, Any]] | None = None) -> InvariantResult:
    """One invariant's result with every counterexample found: none is dropped, however many."""
    return InvariantResult(name, status, message, tuple(examples or ()))


def _pay_ids(s: _Sale, order_id: str) -> list[str]:
    return [c.op_id for c in s.pays.get(order_id, ())]


def _order_ref(s: _Sale, order_id: str) -> dict[str, Any]:
    """What the history knows of an order, for a counterexample."""
    oc = s.order_call.get(order_id)
    return {
        "order_op_id": oc.op_id if oc else None,
        "pay_op_ids": _pay_ids(s, order_id),
    }


# --------------------------------------------------------------------------- the invariants


def no_oversell(s: _Sale) -> InvariantResult:
    """Acknowledged paid quantity and audited sold quantity never exceed stock.

    Without an audit: fail if the history alone (or the counters' ``sold``) goes
    over stock; pass "on the client view" if even counting every unknown-outcome
    (``info``) pay as applied stays within stock; otherwise unknown. The client
    view cannot see a sale nobody asked for; that is ``no_phantom_sale``'s job,
    which is unknown without an audit, so the overall verdict stays inconclusive.

    Refunds: what counts is what *shipped*. A sold order that the audit's
    ``refunds`` list names did not ship, so both views are taken net of it:
    audited sold minus refunded sold units, acknowledged paid minus the
    acknowledged orders that were refunded. An acknowledged payment that was
    refunded is therefore not an oversell (whether it was made good is
    ``refunds_compensated``'s question); a refund never excuses a shipped unit.
    """
    name, stock = "no_oversell", s.stock
    acked = s.acked_paid - s.acked_refunded
    audited = s.audit.net_sold_qty if s.audit else None
    refunded = s.audit.refunded_sold_qty if s.audit else 0
    net = f" net of {refunded} refunded units" if refunded else ""
    if acked > stock or (audited is not None and audited > stock):
        # Blame the view that overshoots most; the audit wins ties as the backend's own record.
        if audited is not None and audited >= acked:
            examples = _beyond_stock_audit(s)
            worst = audited
        else:
            examples = _beyond_stock_history(s)
            worst = acked
        return _result(name, "fail",
                       f"Sold {worst} units of stock {stock}, {worst - stock} oversold "
                       f"(acknowledged paid {acked}, audited sold {_fmt(audited)}{net}).", examples)
    if s.audit is not None:
        return _result(name, "pass", f"Acknowledged paid {acked} and audited sold {audited}{net} are within "
                                     f"stock {stock}.")
    if s.counters is not None and _counter(s.counters, "sold") > stock:
        sold = _counter(s.counters, "sold")
        return _result(name, "fail", f"The audit is missing but the counters say sold {sold} of stock {stock}, "
                                     f"{sold - stock} oversold.",
                       [{"counters_sold": sold, "stock": stock}])
    acked_set = set(s.acked_orders)
    maybe_orders = sorted(oid for oid, cs in s.pays.items()
                          if oid not in acked_set and any(c.outcome == "info" for c in cs))
    maybe = sum(s.qty_of(oid) for oid in maybe_orders)
    if acked + maybe > stock:
        return _result(name, "unknown",
                       f"The audit is missing; acknowledged paid {acked} is within stock {stock}, but {maybe} more "
                       f"units have unknown-outcome pays and could push it over.",
                       [{"order_id": oid, "user_id": s.user_of(oid), "qty": s.qty_of(oid), **_order_ref(s, oid)}
                        for oid in maybe_orders])
    return _result(name, "pass",
                   f"Client view only (the audit is missing): acknowledged paid {acked} plus {maybe} units with "
                   f"unknown-outcome pays is within stock {stock}.")


def _fmt(value: int | None) -> str:
    return "unknown (no audit)" if value is None else str(value)


def _beyond_stock_audit(s: _Sale) -> list[dict[str, Any]]:
    """The audited sold orders past the stock line, the latest paid ones being the excess (refunded ones left out)."""
    assert s.audit is not None
    shipped = [e for e in s.audit.sold if e.order_id not in s.audit.refunded_ids]
    ordered = sorted(shipped, key=lambda e: (e.paid_ms if e.paid_ms is not None else 0, e.order_id))
    out, total = [], 0
    for e in ordered:
        total += e.qty
        if total > s.stock:
            out.append({"order_id": e.order_id, "user_id": e.user_id, "qty": e.qty, "paid_ms": e.paid_ms,
                        "sold_through": total, **_order_ref(s, e.order_id)})
    return out


def _beyond_stock_history(s: _Sale) -> list[dict[str, Any]]:
    """The acknowledged payments past the stock line, one per order operation, by time of their first ok pay."""
    out, total = [], 0
    refunded = s.audit.refunded_ids if s.audit else frozenset()
    excused: set[str] = set()  # a refund excuses one acknowledged payment of its id (see acked_refunded)
    for oid, oc, first_ok in s.acked_payments:
        if oid in refunded and oid not in excused:
            excused.add(oid)
            continue
        qty = s.acked_qty(oid, oc)
        total += qty
        if total > s.stock:
            out.append({"order_id": oid, "user_id": oc.user_id if oc else s.user_of(oid), "qty": qty,
                        "paid_time": _done_time(first_ok), "sold_through": total, **_order_ref(s, oid),
                        "order_op_id": oc.op_id if oc else None, "ok_pay_op_id": first_ok.op_id})
    return out


def no_lost_sale(s: _Sale) -> InvariantResult:
    """Every order with an ``ok`` pay is in the audited sold set; ``info`` pays may be either way."""
    name = "no_lost_sale"
    acked = s.acked_orders
    if s.audit is None:
        return _result(name, "unknown", f"The audit is missing, so {len(acked)} acknowledged paid orders "
                                        f"cannot be reconciled with the sold set.")
    sold_ids = {e.order_id for e in s.audit.sold}
    lost = [oid for oid in acked if oid not in sold_ids]
    if lost:
        examples = []
        for oid in lost:
            first_ok = min(s.ok_pays(oid), key=_done_time)
            examples.append({"order_id": oid, "user_id": s.user_of(oid), "qty": s.qty_of(oid),
                             "paid_time": _done_time(first_ok), "ok_pay_op_id": first_ok.op_id,
                             **_order_ref(s, oid)})
        return _result(name, "fail",
                       f"{len(lost)} of {len(acked)} acknowledged paid orders "
                       f"({sum(s.qty_of(o) for o in lost)} units) are missing from the audited sold set.", examples)
    acked_set = set(acked)
    unsure = [oid for oid, cs in s.pays.items() if oid not in acked_set and any(c.outcome == "info" for c in cs)]
    in_sold = sum(1 for oid in unsure if oid in sold_ids)
    return _result(name, "pass",
                   f"All {len(acked)} acknowledged paid orders are in the audited sold set; of {len(unsure)} orders "
                   f"with only unknown-outcome pays, {in_sold} were sold and {len(unsure) - in_sold} were not.")


def no_phantom_sale(s: _Sale) -> InvariantResult:
    """Every audited sold order was placed by some client.

    An order is explained by an ``ok`` order completion carrying its id. An
    unexplained one may be matched to an order whose outcome is unknown
    (``info`` or unfinished) of the same user and quantity; each such order
    explains at most one sold order (a hold is one request's worth of stock).
    """
    name = "no_phantom_sale"
    if s.audit is None:
        return _result(name, "unknown", "The audit is missing, so the sold orders cannot be traced to clients.")
    pool: dict[tuple[str, int], list[Call]] = defaultdict(list)
    for c in s.calls:  # already by time, so the earliest unknown order is used first
        if c.op == "order" and c.outcome == "info":
            pool[(c.user_id, c.qty)].append(c)
    matched, phantoms = 0, []
    for e in sorted(s.audit.sold, key=lambda e: (e.paid_ms if e.paid_ms is not None else 0, e.order_id)):
        if e.order_id in s.order_call:
            continue
        candidates = pool[(e.user_id, e.qty)]
        if candidates:
            candidates.pop(0)
            matched += 1
            continue
        phantoms.append({"order_id": e.order_id, "user_id": e.user_id, "qty": e.qty, "paid_ms": e.paid_ms,
                         "pay_op_ids": _pay_ids(s, e.order_id)})
    n = len(s.audit.sold)
    if phantoms:
        return _result(name, "fail",
                       f"{len(phantoms)} of {n} audited sold orders ({sum(p['qty'] for p in phantoms)} units) match "
                       f"no client order: no ok order response names them and no unknown-outcome order of the same "
                       f"user and quantity is left to explain them.", phantoms)
    return _result(name, "pass", f"All {n} audited sold orders were placed by clients "
                                 f"({matched} explained only by an unknown-outcome order of the same user).")


def conservation(s: _Sale) -> InvariantResult:
    """At quiescence available + held + sold == stock, none negative, and counters' sold == audited sold.

    Counters are ``final.counters``, else the audit's own snapshot. Fail on any
    broken part; unknown if the audit is missing (sold cannot be reconciled).
    """
    name = "conservation"
    c = s.counters
    if c is None:
        return _result(name, "unknown", "The sale's counters are missing, so conservation cannot be checked.")
    a, h, sold = (_counter(c, k) for k in ("available", "held", "sold"))
    problems: list[str] = []
    if a + h + sold != s.stock:
        problems.append(f"available {a} + held {h} + sold {sold} = {a + h + sold}, not stock {s.stock}")
    for label, v in (("available", a), ("held", h), ("sold", sold)):
        if v < 0:
            problems.append(f"{label} is negative ({v})")
    if "stock" in c and c["stock"] != s.stock:
        # A backend that quietly raised its own stock would hide an oversell.
        problems.append(f"the counters' stock {c['stock']} is not the sale's stock {s.stock}")
    audited = s.audit.sold_qty if s.audit else None
    if audited is not None and audited != sold:
        problems.append(f"the counters say sold {sold} but the audit lists {audited} units sold")
    example = {"available": a, "held": h, "sold": sold, "stock": s.stock, "audited_sold": audited}
    if problems:
        return _result(name, "fail", "Conservation is broken: " + "; ".join(problems) + ".", [example])
    if audited is None:
        return _result(name, "unknown", f"available {a} + held {h} + sold {sold} = stock {s.stock}, but the audit "
                                        f"is missing so sold cannot be reconciled.")
    return _result(name, "pass", f"available {a} + held {h} + sold {sold} = stock {s.stock}, "
                                 f"and the audit agrees on sold.")


def holds_returned(s: _Sale) -> InvariantResult:
    """No listed hold outlived its TTL plus grace, and the held counter equals the listed holds.

    Holds without ``expires_ms`` never expire by design (``order_deduct``) and
    are left to ``sells_out``. The held counter is read from the audit's own
    snapshot when it has one: it was taken with the hold list, so a reaper
    running between two reads cannot fake a mismatch.
    """
    name = "holds_returned"
    if s.audit is None:
        return _result(name, "unknown", "The audit is missing, so the holds left cannot be checked.")
    now, grace = s.audit.now_ms, s.grace_ms
    expiring = [h for h in s.audit.holds if h.expires_ms is not None]
    examples: list[dict[str, Any]] = []
    if now is not None:
        for h in sorted(expiring, key=lambda h: (h.expires_ms, h.order_id)):
            if h.expires_ms + grace < now:
                examples.append({"order_id": h.order_id, "user_id": h.user_id, "qty": h.qty,
                              "created_ms": h.created_ms, "expires_ms": h.expires_ms,
                              "overdue_ms": now - h.expires_ms, **_order_ref(s, h.order_id)})
    counters = s.audit.counters if s.audit.counters is not None else s.counters
    listed = s.audit.held_qty
    held = _counter(counters, "held", "counters") if counters is not None else None
    problems: list[str] = []
    if examples:
        problems.append(f"{len(examples)} holds ({sum(x['qty'] for x in examples)} units) outlived their TTL plus "
                        f"{grace} ms grace")
    if held is not None and held != listed:
        problems.append(f"the held counter is {held} but the listed holds add up to {listed}")
        examples.insert(0, {"counters_held": held, "listed_held": listed})  # first, so the cap never hides it
    if problems:
        return _result(name, "fail", "Holds were not returned: " + "; ".join(problems) + ".", examples)
    if now is None and expiring:
        return _result(name, "unknown", f"The audit has no now_ms, so {len(expiring)} listed holds cannot be aged.")
    if held is None:
        return _result(name, "unknown", f"No hold is overdue, but the counters are missing so held cannot be "
                                        f"compared with the {listed} units listed.")
    return _result(name, "pass", f"{len(s.audit.holds)} holds ({listed} units) are left, none past TTL plus "
                                 f"{grace} ms grace, and the held counter agrees.")


def single_payment(s: _Sale) -> InvariantResult:
    """At most one payment per order; one outcome per idempotency key; no order sold twice.

    Repeat ``ok`` pays of one order are fine (paying a paid order is
    idempotent) as long as they agree on the quantity. Completions with one
    idempotency key and one operation must all name the same order and quantity.
    Without an audit the history can still fail it, but not pass it.
    """
    name = "single_payment"
    examples: list[dict[str, Any]] = []
    problems: list[str] = []
    disagree = 0
    for oid in sorted(s.pays):
        oks = s.ok_pays(oid)
        if len({(c.done.qty if c.done else c.qty) for c in oks}) > 1:
            disagree += 1
            examples.append({"order_id": oid, "user_ids": sorted({c.user_id for c in oks}),
                             "op_ids": [c.op_id for c in oks], "times": [_done_time(c) for c in oks],
                             "qtys": [c.done.qty if c.done else c.qty for c in oks]})
    if disagree:
        problems.append(f"{disagree} orders have ok pays that disagree on quantity")
    by_key: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for c in s.calls:
        if c.key is not None and c.outcome == "ok":
            by_key[(c.op, c.key)].append(c)
    split = 0
    for (op, key), cs in sorted(by_key.items()):
        outcomes = {(c.order_id, c.done.qty if c.done else c.qty) for c in cs}
        if len(outcomes) > 1:
            split += 1
            examples.append({"op": op, "key": key, "order_ids": [c.order_id for c in cs],
                             "user_ids": [c.user_id for c in cs], "op_ids": [c.op_id for c in cs],
                             "times": [_done_time(c) for c in cs]})
    if split:
        problems.append(f"{split} idempotency keys gave two different ok outcomes")
    if s.audit is not None:
        twice = sorted((oid, n) for oid, n in Counter(e.order_id for e in s.audit.sold).items() if n > 1)
        for oid, n in twice:
            examples.append({"order_id": oid, "audit_entries": n, **_order_ref(s, oid)})
        if twice:
            problems.append(f"the audit lists {len(twice)} orders more than once")
    if problems:
        return _result(name, "fail", "Payments were applied more than once: " + "; ".join(problems) + ".", examples)
    paid = len(s.acked_orders)
    if s.audit is None:
        return _result(name, "unknown", f"The history shows one outcome per order and key for {paid} paid orders, "
                                        f"but the audit is missing so double sales cannot be ruled out.")
    return _result(name, "pass", f"{paid} acknowledged paid orders, {len(by_key)} idempotency keys with ok "
                                 f"outcomes, each with one outcome, and no order sold twice.")


def unique_order_ids(s: _Sale) -> InvariantResult:
    """No order id is handed out twice: ``ok`` orders of different requests never share one.

    Two ok order completions with the same ``order_id`` are one request only when
    they carry the same idempotency key and user (a retry gets the stored
    answer back). Anything else is a reused id: every id-keyed record (a sold
    set, a ledger idempotent per order id, a pay by id) then merges two orders,
    and an acknowledged payment can vanish into the other's. A Redis failover
    that rolls an id counter back does exactly this.
    """
    name = "unique_order_ids"
    examples: list[dict[str, Any]] = []
    for oid in sorted(s.order_calls):
        cs = s.order_calls[oid]
        # one request = one (user, key); without a key each operation is its own request
        requests = {(c.user_id, c.key) if c.key is not None else ("", c.op_id) for c in cs}
        if len(requests) > 1:
            examples.append({"order_id": oid, "order_op_ids": [c.op_id for c in cs],
                             "user_ids": [c.user_id for c in cs], "keys": [c.key for c in cs],
                             "times": [_done_time(c) for c in cs],
                             "pay_op_ids": _pay_ids(s, oid)})
    if examples:
        ops = sum(len(e["order_op_ids"]) for e in examples)
        return _result(name, "fail",
                       f"{len(examples)} order ids were returned by ok orders of different requests "
                       f"({ops} order operations): the backend reused order ids.", examples)
    return _result(name, "pass", f"{len(s.order_calls)} order ids, each returned by ok orders of one request.")


def sells_out(s: _Sale, expect_sell_out: bool) -> InvariantResult:
    """Liveness: where demand exceeded stock, the audited sold quantity reaches the stock."""
    name = "sells_out"
    demand = sum(c.qty for c in s.calls if c.op == "order")
    if not expect_sell_out:
        return _result(name, "pass", "Not checked: the scenario does not expect a sell-out.")
    if demand <= s.stock:
        return _result(name, "pass", f"Not checked: demand {demand} did not exceed stock {s.stock}.")
    if s.audit is None:
        return _result(name, "unknown", f"Demand {demand} exceeded stock {s.stock}, but the audit is missing "
                                        f"so the sold quantity is unknown.")
    sold = s.audit.sold_qty
    if sold >= s.stock:
        return _result(name, "pass", f"Demand {demand} exceeded stock {s.stock} and {sold} units sold.")
    held = s.audit.held_qty
    examples = [{"order_id": h.order_id, "user_id": h.user_id, "qty": h.qty, "created_ms": h.created_ms,
                 "expires_ms": h.expires_ms, **_order_ref(s, h.order_id)}
                for h in sorted(s.audit.holds, key=lambda h: h.order_id)]
    if not examples:
        examples = [{"stock": s.stock, "sold": sold, "left": s.stock - sold, "held": held, "demand": demand}]
    return _result(name, "fail",
                   f"Demand {demand} exceeded stock {s.stock} but only {sold} units sold: {s.stock - sold} left "
                   f"unsold, of which {held} are stuck in holds.", examples)


def orders_applied(s: _Sale) -> InvariantResult:
    """Liveness of the asynchronous order mode: every accepted order was applied, none is left queued.

    A sale with ``async_orders`` answers an order 202 ``pending`` and queues it; its
    order processors make it a hold or reject it, and the buyer polls it until then.
    Once the sale settled the counters' ``queued`` (accepted, not yet applied) must
    be 0: an order still queued was accepted and never answered (its processors are
    dead or stuck), its buyer polls it in vain. Demand may stay under stock for just
    that reason (buyers wait on their queued orders), so ``sells_out`` cannot be
    relied on to notice. Not checked (pass) for a sale
    that does not queue orders; unknown when it does and no counters say how many
    are still queued.
    """
    name = "orders_applied"
    accepted = sum(1 for c in s.calls
                   if c.op == "order" and c.outcome == "ok" and c.done is not None and c.done.status == 202)
    counters = s.counters if s.counters is not None else (s.audit.counters if s.audit else None)
    queued = counters.get("queued") if isinstance(counters, dict) else None
    if s.setting("async_orders") is not True and queued is None:
        return _result(name, "pass", "Not checked: the sale does not queue orders.")
    if queued is None:
        return _result(name, "unknown", f"The sale queues orders (async_orders) and {accepted} were accepted (202), "
                                        f"but no counters say how many are still queued.")
    queued = _int(queued, "final_state.counters.queued")
    if queued > 0:
        return _result(name, "fail",
                       f"{queued} accepted orders were never applied: still queued once the sale settled "
                       f"({accepted} orders were accepted with 202); no order processor took them.",
                       [{"queued": queued, "accepted": accepted, "stock": s.stock,
                         "sold": s.audit.sold_qty if s.audit else None}])
    return _result(name, "pass", f"All {accepted} accepted (202) orders were applied: none is left queued.")


def refunds_compensated(s: _Sale) -> InvariantResult:
    """Every captured payment shipped or was refunded and compensated; nothing shipped past stock unrefunded.

    Reads the audit's ``payments`` (captured money), ``refunds`` and
    ``compensations`` lists, keyed by order id. Three parts: (1) every captured
    payment is in the sold set or refunded; (2) every refund has a compensation;
    (3) the sold orders past the stock line (latest paid first, refunded ones
    left out) are none, i.e. every oversold unit was refunded and compensated.

    Without an audit: unknown. An audit without those lists (a backend with no
    payment ledger): unknown if it sold past stock or the sale is
    ``payment_deduct`` (its payments cannot be reconciled), else a pass that
    says it was not checked.
    """
    name = "refunds_compensated"
    if s.audit is None:
        return _result(name, "unknown", "The audit is missing, so payments, refunds and compensations cannot be "
                                        "reconciled.")
    a, stock = s.audit, s.stock
    if a.payments is None or a.refunds is None or a.compensations is None:
        missing = " / ".join(n for n, v in (("payments", a.payments), ("refunds", a.refunds),
                                            ("compensations", a.compensations)) if v is None)
        if a.sold_qty > stock:
            return _result(name, "unknown", f"The audit lists {a.sold_qty} units sold of stock {stock} but has no "
                                            f"{missing} list, so it cannot show the excess was refunded and "
                                            f"compensated.")
        if s.setting("strategy") == "payment_deduct":
            return _result(name, "unknown", f"The sale captures payments (payment_deduct) but the audit has no "
                                            f"{missing} list to reconcile them.")
        return _result(name, "pass", f"Not checked: the audit has no {missing} list, and {a.sold_qty} units sold "
                                     f"is within stock {stock}.")
    sold_ids = {e.order_id for e in a.sold}
    compensated = {c.order_id for c in a.compensations}
    examples: list[dict[str, Any]] = []
    problems: list[str] = []
    dropped = [p for p in a.payments if p.order_id not in sold_ids and p.order_id not in a.refunded_ids]
    if dropped:
        problems.append(f"{len(dropped)} captured payments ({sum(p.qty for p in dropped)} units) neither shipped "
                        f"nor were refunded")
        examples += [{"problem": "captured_not_refunded", "order_id": p.order_id, "user_id": p.user_id,
                      "qty": p.qty, **_order_ref(s, p.order_id)} for p in dropped]
    uncompensated = [r for r in a.refunds if r.order_id not in compensated]
    if uncompensated:
        problems.append(f"{len(uncompensated)} refunds have no compensation")
        examples += [{"problem": "refund_not_compensated", "order_id": r.order_id, "user_id": r.user_id,
                      "qty": r.qty, **_order_ref(s, r.order_id)} for r in uncompensated]
    oversold = _beyond_stock_audit(s)
    if oversold:
        problems.append(f"{a.net_sold_qty - stock} units sold past stock {stock} were not refunded")
        examples += [{"problem": "oversold_not_refunded", **e} for e in oversold]
    if problems:
        return _result(name, "fail", "Payments were not made good: " + "; ".join(problems) + ".", examples)
    shipped = sum(1 for p in a.payments if p.order_id in sold_ids and p.order_id not in a.refunded_ids)
    return _result(name, "pass",
                   f"{len(a.payments)} captured payments: {shipped} shipped, {len(a.payments) - shipped} refunded; "
                   f"{len(a.refunds)} refunds, all compensated; net sold {a.net_sold_qty} is within stock {stock}.")


def per_user_limits(s: _Sale) -> InvariantResult:
    """No user ends with more units than the sale's ``per_user_limit`` (bought and not refunded, plus held).

    The limit comes from ``final.extra["sale"]``, else the counters'
    ``per_user_limit``; missing or 0 means no limit, and the invariant passes
    unchecked. The audit is needed to count each user's units.
    """
    name = "per_user_limits"
    limit = s.setting("per_user_limit")
    if limit is not None:
        limit = _int(limit, "per_user_limit")
    if not limit:
        return _result(name, "pass", "Not checked: the sale has no per-user limit.")
    if s.audit is None:
        return _result(name, "unknown", f"The audit is missing, so the units each user holds or bought cannot be "
                                        f"compared with the limit {limit}.")
    units: Counter[str] = Counter()
    orders: dict[str, list[str]] = defaultdict(list)
    for e in s.audit.sold:
        if e.order_id not in s.audit.refunded_ids:
            units[e.user_id] += e.qty
            orders[e.user_id].append(e.order_id)
    for h in s.audit.holds:
        units[h.user_id] += h.qty
        orders[h.user_id].append(h.order_id)
    over = sorted((u for u, n in units.items() if n > limit), key=lambda u: (-units[u], u))
    if over:
        return _result(name, "fail",
                       f"{len(over)} users hold or bought more than the per-user limit {limit}; the most is "
                       f"{units[over[0]]} units, by {over[0]}.",
                       [{"user_id": u, "units": units[u], "limit": limit, "order_ids": sorted(orders[u])}
                        for u in over])
    most = max(units.values(), default=0)
    return _result(name, "pass", f"No user holds or bought more than the per-user limit {limit} "
                                 f"(the most is {most} units, across {len(units)} users).")


# --------------------------------------------------------------------------- the warehouse ledger


@dataclass(frozen=True)
class _Ledger:
    """The warehouse ledger (back-end stock) as the audit's ``ledger`` shows it."""

    stock: int
    sold: int
    in_transit: int | None
    sold_orders: tuple[tuple[str, int], ...]  # (order id, qty), in the order the ledger recorded them
    refused_orders: tuple[tuple[str, int], ...]  # sales of the front the warehouse had no stock for


def _parse_ledger(final: FinalState) -> _Ledger | None:
    """``final.audit["ledger"]``, strictly (a malformed ledger must not read as "nothing sold"); None if absent."""
    raw = final.audit.get("ledger") if isinstance(final.audit, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadInput("final_state.audit.ledger: expected an object")
    lists: dict[str, tuple[tuple[str, int], ...]] = {}
    for name in ("sold_orders", "refused_orders"):
        rows = raw.get(name, [])
        if not isinstance(rows, list):
            raise BadInput(f"final_state.audit.ledger.{name}: expected a list")
        out = []
        for i, e in enumerate(rows):
            w = f"final_state.audit.ledger.{name}[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("order_id"), str):
                raise BadInput(f"{w}: expected an object with a string order_id")
            out.append((e["order_id"], _int(e.get("qty"), f"{w}.qty")))
        lists[name] = tuple(out)
    return _Ledger(
        stock=_int(raw.get("stock"), "final_state.audit.ledger.stock"),
        sold=_int(raw.get("sold"), "final_state.audit.ledger.sold"),
        in_transit=_int(raw.get("in_transit"), "final_state.audit.ledger.in_transit", optional=True),
        sold_orders=lists["sold_orders"],
        refused_orders=lists["refused_orders"],
    )


def _ledger_expected(s: _Sale) -> str | None:
    """Why this run should have a warehouse ledger, or None if nothing says it has one."""
    strategy = s.setting("strategy")
    if strategy in LEDGER_STRATEGIES:
        return f"the strategy {strategy} writes every sale to it"
    if isinstance(s.counters, dict) and s.counters.get("warehouse") is not None:
        return "the counters report a warehouse"
    if s.audit is not None and s.audit.counters is not None and s.audit.counters.get("warehouse") is not None:
        return "the audit's counters report a warehouse"
    return None


def _sync_lag(s: _Sale) -> int | None:
    lag = s.counters.get("sync_lag_ms") if isinstance(s.counters, dict) else None
    return lag if isinstance(lag, int) and not isinstance(lag, bool) else None


def ledger_no_oversell(s: _Sale, ledger: _Ledger | None) -> InvariantResult:
    """The warehouse ledger never records more sold than its stock, and its sold orders add up.

    The ledger's stock is initial stock plus restocks plus received units. Not
    checked (pass) when nothing says the run has a ledger; unknown when one is
    expected (``pre_deduct_ledger``, or counters that report a warehouse) but
    the audit does not show it.
    """
    name = "ledger_no_oversell"
    if ledger is None:
        why = _ledger_expected(s)
        if why is None:
            return _result(name, "pass", "Not checked: the backend reports no warehouse ledger.")
        return _result(name, "unknown", f"A warehouse ledger is expected ({why}) but the audit does not show it, "
                                        f"so what the warehouse sold is unknown.")
    problems: list[str] = []
    examples: list[dict[str, Any]] = []
    listed = sum(q for _, q in ledger.sold_orders)
    if ledger.sold > ledger.stock or listed > ledger.stock:
        worst = max(ledger.sold, listed)
        problems.append(f"the ledger sold {worst} units of its stock {ledger.stock}, {worst - ledger.stock} oversold")
        total = 0
        for oid, qty in ledger.sold_orders:  # the ones recorded last are past the stock line
            total += qty
            if total > ledger.stock:
                examples.append({"order_id": oid, "qty": qty, "ledger_sold_through": total,
                                 "ledger_stock": ledger.stock, **_order_ref(s, oid)})
    if listed != ledger.sold:
        problems.append(f"its sold counter is {ledger.sold} but its sold orders add up to {listed}")
        examples.insert(0, {"ledger_sold": ledger.sold, "ledger_sold_orders_qty": listed})
    twice = sorted(oid for oid, n in Counter(oid for oid, _ in ledger.sold_orders).items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} orders are recorded as sold more than once")
        examples.extend({"order_id": oid, "ledger_entries": 2, **_order_ref(s, oid)} for oid in twice)
    if problems:
        return _result(name, "fail", "The warehouse ledger oversold: " + "; ".join(problems) + ".", examples)
    return _result(name, "pass", f"The warehouse ledger sold {ledger.sold} of its stock {ledger.stock} "
                                 f"({len(ledger.sold_orders)} orders), and its sold orders add up.")


def stock_converges(s: _Sale, ledger: _Ledger | None) -> InvariantResult:
    """Front (Redis) and warehouse (the ledger) agree once the sync settled: same stock, same sold orders.

    Compares the front's stock and in-transit units (the counters) and its sold
    set (the audit) with the ledger's; a sale the warehouse refused (it had no
    stock for it) is a disagreement. The sync lag at the final read
    (``sync_lag_ms`` of the counters) is reported either way.
    """
    name = "stock_converges"
    lag = _sync_lag(s)
    lag_text = f"sync lag {lag} ms at the final read" if lag is not None else "sync lag not reported"
    if ledger is None:
        why = _ledger_expected(s)
        if why is None:
            return _result(name, "pass", "Not checked: the backend reports no warehouse ledger.")
        return _result(name, "unknown", f"A warehouse ledger is expected ({why}) but the audit does not show it, "
                                        f"so front and warehouse cannot be compared ({lag_text}).")
    if s.audit is None or s.counters is None:
        return _result(name, "unknown", f"The front's {'audit' if s.audit is None else 'counters'} is missing, "
                                        f"so front and warehouse cannot be compared ({lag_text}).")
    front_stock = _counter(s.counters, "stock")
    front_sold = {e.order_id: e.qty for e in s.audit.sold}
    wh_sold = dict(ledger.sold_orders)
    problems: list[str] = []
    examples: list[dict[str, Any]] = []
    if front_stock != ledger.stock:
        problems.append(f"front stock {front_stock} but warehouse stock {ledger.stock}")
        examples.append({"front_stock": front_stock, "ledger_stock": ledger.stock})
    front_transit = s.counters.get("in_transit")
    if isinstance(front_transit, int) and ledger.in_transit is not None and front_transit != ledger.in_transit:
        problems.append(f"front in transit {front_transit} but warehouse in transit {ledger.in_transit}")
        examples.append({"front_in_transit": front_transit, "ledger_in_transit": ledger.in_transit})
    if sum(front_sold.values()) != ledger.sold:
        problems.append(f"front sold {sum(front_sold.values())} but warehouse sold {ledger.sold}")
    refused = dict(ledger.refused_orders)
    only_front = sorted(oid for oid in front_sold if oid not in wh_sold)
    only_wh = sorted(oid for oid in wh_sold if oid not in front_sold)
    for oid in only_front:
        where = "refused by the warehouse (no stock left)" if oid in refused else "not in the warehouse"
        examples.append({"order_id": oid, "qty": front_sold[oid], "side": "front only", "why": where,
                         **_order_ref(s, oid)})
    for oid in only_wh:
        examples.append({"order_id": oid, "qty": wh_sold[oid], "side": "warehouse only", **_order_ref(s, oid)})
    if only_front:
        n_refused = sum(1 for oid in only_front if oid in refused)
        problems.append(f"{len(only_front)} sold orders are on the front only ({n_refused} refused by the warehouse)")
    if only_wh:
        problems.append(f"{len(only_wh)} sold orders are in the warehouse only")
    if problems:
        return _result(name, "fail", "Front and warehouse disagree: " + "; ".join(problems) + f" ({lag_text}).",
                       examples)
    return _result(name, "pass", f"Front and warehouse agree: stock {front_stock}, {len(front_sold)} sold orders "
                                 f"({ledger.sold} units) ({lag_text}).")


# --------------------------------------------------------------------------- the entry point


def check(ops: Iterable[Op], final: FinalState, *, grace_ms: int = 2000, expect_sell_out: bool = True) -> Verdict:
    """Check one sale's history against its final state.

    Only operations on ``final.sale_id`` are checked; others are counted in
    ``totals["other_sku_records"]``. Records may come in any order. Invokes and
    completions pair by ``op_id``; an invoke without completion is an unknown
    (``info``) outcome; a completion without invoke is used as evidence and
    counted in ``totals["unmatched_completions"]``; a repeated record is
    counted in ``totals["duplicate_records"]`` and the earliest one is used.

    Rules for ``unknown``: an invariant fails on any evidence that it is broken,
    is ``unknown`` when the evidence it needs (audit, counters) is missing or
    unknown outcomes leave both answers possible, and passes otherwise. The one
    exception is ``no_oversell`` without an audit, which passes on the client
    view when even every ``info`` pay applied stays within stock (see its
    docstring). The verdict is ``fail`` if any invariant fails, else
    ``inconclusive`` if any is unknown, else ``pass``.

    Raises ``BadInput`` for a malformed audit or counters (a wrong shape must
    never read as "nothing sold").

    Usage::

        final = FinalState(sale_id="moutai", stock=1, hold_ttl_ms=5000,
                           counters={"available": 0, "held": 0, "sold": 1},
                           audit={"now_ms": 9000, "holds": [],
                                  "sold": [{"order_id": "o1", "user_id": "u1", "qty": 1, "paid_ms": 8000}]})
        ops = [Op("invoke", "u1-1", 1.0, "u1", "u1", "buyer", "order", "moutai"),
               Op("ok", "u1-1", 1.1, "u1", "u1", "buyer", "order", "moutai", order_id="o1"),
               Op("invoke", "u1-2", 1.2, "u1", "u1", "buyer", "pay", "moutai", order_id="o1"),
               Op("ok", "u1-2", 1.3, "u1", "u1", "buyer", "pay", "moutai", order_id="o1")]
        v = check(ops, final)
        assert v.verdict == "pass" and v.totals["oversold_units"] == 0
    """
    s, counts = _build(ops, final, grace_ms)
    ledger = _parse_ledger(final)
    results = (
        no_oversell(s),
        no_lost_sale(s),
        no_phantom_sale(s),
        conservation(s),
        holds_returned(s),
        single_payment(s),
        unique_order_ids(s),
        sells_out(s, expect_sell_out),
        orders_applied(s),
        refunds_compensated(s),
        per_user_limits(s),
        ledger_no_oversell(s, ledger),
        stock_converges(s, ledger),
    )
    statuses = {r.status for r in results}
    verdict: VerdictName = "fail" if "fail" in statuses else "inconclusive" if "unknown" in statuses else "pass"
    audited = s.audit.sold_qty if s.audit else None
    acked = s.acked_paid
    shipped = max(s.audit.net_sold_qty if s.audit else 0, acked - s.acked_refunded)  # refunds did not ship
    totals: dict[str, Any] = {
        "stock": s.stock,
        "sold": audited,
        "oversold_units": max(0, shipped - s.stock),
        "refunded_sold_units": s.audit.refunded_sold_qty if s.audit else None,  # sold, then refunded
        "captured_payments": len(s.audit.payments) if s.audit and s.audit.payments is not None else None,
        "acked_paid": acked,
        "acked_paid_orders": len(s.acked_payments),  # distinct order operations with an ok pay
        "held": s.audit.held_qty if s.audit else None,
        "demand": sum(c.qty for c in s.calls if c.op == "order"),
        "ops": len(s.calls),
        "ok_ops": sum(1 for c in s.calls if c.outcome == "ok"),
        "fail_ops": sum(1 for c in s.calls if c.outcome == "fail"),
        "info_ops": sum(1 for c in s.calls if c.outcome == "info"),
        "ledger_stock": ledger.stock if ledger else None,
        "ledger_sold": ledger.sold if ledger else None,
        "sync_lag_ms": _sync_lag(s),
        **counts,
    }
    return Verdict(verdict=verdict, totals=totals, invariants=results)
