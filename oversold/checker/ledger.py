"""The warehouse ledger (back-end stock): it never oversells, and front and warehouse converge."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from oversold.model.evidence import Evidence
from oversold.model.scenario import LEDGER_STRATEGIES

from .invariant import CheckOptions, result
from .result import InvariantResult
from .view import SaleView


def ledger_expected(s: SaleView) -> str | None:
    """Why this run should have a warehouse ledger, or None if nothing says it has one."""
    strategy = s.settings.strategy
    if strategy in LEDGER_STRATEGIES:
        return f"the strategy {strategy} writes every sale to it"
    if s.counters is not None and s.counters.warehouse is not None:
        return "the counters report a warehouse"
    if s.audit is not None and s.audit.counters is not None and s.audit.counters.warehouse is not None:
        return "the audit's counters report a warehouse"
    return None


class LedgerNoOversell:
    """The warehouse ledger never records more sold than its stock, and its sold orders add up.

    The ledger's stock is initial stock plus restocks plus received units. Not
    checked (pass) when nothing says the run has a ledger; unknown when one is
    expected (``pre_deduct_ledger``, or counters that report a warehouse) but
    the audit does not show it.
    """

    name: ClassVar[str] = "ledger_no_oversell"
    needs: ClassVar[Evidence] = "per_order_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name, ledger = self.name, s.ledger
        if ledger is None:
            why = ledger_expected(s)
            if why is None:
                return result(name, "pass", "Not checked: the backend reports no warehouse ledger.")
            return result(name, "unknown", f"A warehouse ledger is expected ({why}) but the audit does not show it, "
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
                                     "ledger_stock": ledger.stock, **s.order_ref(oid)})
        if listed != ledger.sold:
            problems.append(f"its sold counter is {ledger.sold} but its sold orders add up to {listed}")
            examples.insert(0, {"ledger_sold": ledger.sold, "ledger_sold_orders_qty": listed})
        twice = sorted(oid for oid, n in Counter(oid for oid, _ in ledger.sold_orders).items() if n > 1)
        if twice:
            problems.append(f"{len(twice)} orders are recorded as sold more than once")
            examples.extend({"order_id": oid, "ledger_entries": 2, **s.order_ref(oid)} for oid in twice)
        if problems:
            return result(name, "fail", "The warehouse ledger oversold: " + "; ".join(problems) + ".", examples)
        return result(name, "pass", f"The warehouse ledger sold {ledger.sold} of its stock {ledger.stock} "
                                     f"({len(ledger.sold_orders)} orders), and its sold orders add up.")


class StockConverges:
    """Front (Redis) and warehouse (the ledger) agree once the sync settled: same stock, same sold orders.

    Compares the front's stock and in-transit units (the counters) and its sold
    set (the audit) with the ledger's; a sale the warehouse refused (it had no
    stock for it) is a disagreement. The sync lag at the final read
    (``sync_lag_ms`` of the counters) is reported either way.
    """

    name: ClassVar[str] = "stock_converges"
    needs: ClassVar[Evidence] = "per_order_audit"

    def __call__(self, s: SaleView, opts: CheckOptions) -> InvariantResult:
        name = self.name
        lag, ledger = s.state.sync_lag_ms, s.ledger
        lag_text = f"sync lag {lag} ms at the final read" if lag is not None else "sync lag not reported"
        if ledger is None:
            why = ledger_expected(s)
            if why is None:
                return result(name, "pass", "Not checked: the backend reports no warehouse ledger.")
            return result(name, "unknown", f"A warehouse ledger is expected ({why}) but the audit does not show it, "
                                            f"so front and warehouse cannot be compared ({lag_text}).")
        if s.audit is None or s.counters is None:
            return result(name, "unknown", f"The front's {'audit' if s.audit is None else 'counters'} is missing, "
                                            f"so front and warehouse cannot be compared ({lag_text}).")
        front_stock = s.counters.stock
        if front_stock is None:
            return result(name, "unknown", f"The front's counters do not report its stock, so front and warehouse "
                                           f"cannot be compared ({lag_text}).")
        front_sold = {e.order_id: e.qty for e in s.audit.sold}
        wh_sold = dict(ledger.sold_orders)
        problems: list[str] = []
        examples: list[dict[str, Any]] = []
        if front_stock != ledger.stock:
            problems.append(f"front stock {front_stock} but warehouse stock {ledger.stock}")
            examples.append({"front_stock": front_stock, "ledger_stock": ledger.stock})
        front_transit = s.counters.in_transit
        if front_transit is not None and ledger.in_transit is not None and front_transit != ledger.in_transit:
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
                             **s.order_ref(oid)})
        for oid in only_wh:
            examples.append({"order_id": oid, "qty": wh_sold[oid], "side": "warehouse only", **s.order_ref(oid)})
        if only_front:
            n_refused = sum(1 for oid in only_front if oid in refused)
            problems.append(f"{len(only_front)} sold orders are on the front only ({n_refused} refused by the warehouse)")
        if only_wh:
            problems.append(f"{len(only_wh)} sold orders are in the warehouse only")
        if problems:
            return result(name, "fail", "Front and warehouse disagree: " + "; ".join(problems) + f" ({lag_text}).",
                           examples)
        return result(name, "pass", f"Front and warehouse agree: stock {front_stock}, {len(front_sold)} sold orders "
                                     f"({ledger.sold} units) ({lag_text}).")
