"""Settle and read: wait until a sale is quiet, then read its final state.

After the swarm stops, holds that were neither paid nor cancelled still lapse
back to stock (``pre_deduct``). The checker wants the state *after* that, so
``settle_and_read`` polls the sale's counters until nothing is held (and, for a
sale with ``async_orders``, nothing is left ``queued``), then reads the counters
and the audit once more into a ``FinalState``. Holds that never
expire by design (``order_deduct``: the audit lists them with ``expires_ms``
null) are not waited for. A read that fails leaves ``None`` in the final
state, so the checker can say which invariants it could not decide.

Used by the Locust master at the end of a plain ``locust`` run
(``oversold.swarm.plugin``) and meant for the orchestrator too: anything with
``counters(sale_id)`` and ``audit(sale_id)`` returning a dict or None is a
``StateReader`` (``oversold.adapters.http.AdapterClient`` is one). Several
readers (one per node) are tried in turn: a node may be down on purpose.

Usage::

    readers = [AdapterClient(ContractAdapter(admin_token=token), url) for url in urls]
    final = settle_and_read(readers, scenario)
    verdict = check(ops, final, grace_ms=scenario.checker.grace_ms)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol, Sequence

from oversold.model.evidence import DEFAULT_EVIDENCE, Evidence
from oversold.model.history import FinalState
from oversold.model.scenario import Scenario

from .base import Adapter
from .outcome import refused

POLL_S = 0.1
AUDIT_EVERY_S = 1.0  # the audit is heavier than the counters: look at the holds' expiry at most this often


class StateReader(Protocol):
    def counters(self, sale_id: str) -> dict[str, Any] | None: ...

    def audit(self, sale_id: str) -> dict[str, Any] | None: ...

    # optional: ``order_state(sale_id, order_id) -> dict | None`` reads one order (see ``accepted``)


class OwnReader:
    """An adapter's own read of the final state (``Adapter.read_state``: SQL against the user's database,
    say) as a ``StateReader``. Blocking I/O: used only in the orchestrator and the Locust master.

    Usage::

        final = settle_and_read([OwnReader(adapter), *clients], scenario, evidence=adapter.evidence)
    """

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def counters(self, sale_id: str) -> dict[str, Any] | None:
        read = self.adapter.read_state(sale_id)
        return read.counters if read is not None else None

    def audit(self, sale_id: str) -> dict[str, Any] | None:
        read = self.adapter.read_state(sale_id)
        return read.audit if read is not None else None


def state_readers(adapter: Adapter, clients: Sequence[StateReader]) -> list[StateReader]:
    """The adapter's own read first when it has one (``read_state`` overridden), then the HTTP reads."""
    own = type(adapter).read_state is not Adapter.read_state
    return [OwnReader(adapter), *clients] if own else list(clients)


def unreachable(readers: Sequence[StateReader]) -> str | None:
    """A sentence when every reader's last request was refused: the backend is not listening (it died).
    Readers that do not say why they failed (no ``last_error``) give no sentence."""
    errors = [getattr(r, "last_error", None) for r in readers]
    if not errors or not all(e is not None and refused(e) for e in errors):
        return None
    where = ", ".join(str(getattr(r, "base_url", "?")) for r in readers)
    return (f"the backend refused connections at the end of the run ({where}): it is not listening, so it died "
            f"or was stopped; the final state could not be read")


def settle_deadline_s(scenario: Scenario) -> float:
    """How long settling may take: the hold TTL, the grace period and the quiesce timeout."""
    return scenario.sale.hold_ttl_ms / 1000 + scenario.checker.grace_ms / 1000 + scenario.checker.quiesce_timeout_s


def _first(readers: Sequence[StateReader], read: Callable[[StateReader], dict[str, Any] | None]) -> dict[str, Any] | None:
    for reader in readers:
        try:
            body = read(reader)
        except Exception:  # noqa: BLE001 - a reader that breaks is one that could not read
            body = None
        if body is not None:
            return body
    return None


def never_expiring_only(audit: dict[str, Any] | None) -> bool:
    """Whether every hold the audit lists is one that never expires (``expires_ms`` null).

    >>> never_expiring_only({"holds": [{"expires_ms": None}]}), never_expiring_only({"holds": [{"expires_ms": 5}]})
    (True, False)
    """
    holds = audit.get("holds") if isinstance(audit, dict) else None
    return isinstance(holds, list) and all(isinstance(h, dict) and h.get("expires_ms") is None for h in holds)


def settle_and_read(
    readers: StateReader | Sequence[StateReader],
    scenario: Scenario,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    evidence: Evidence = DEFAULT_EVIDENCE,
    accepted: Sequence[str] = (),
) -> FinalState:
    """Wait (bounded by ``settle_deadline_s``) until nothing that can lapse is held; read the final state.

    ``evidence`` is what the run's adapter declared it provides (``Adapter.evidence``); it goes into
    ``extra["evidence"]`` for the checker. When nothing could be read because every node refused the
    connection, ``extra["unreachable"]`` says so (the summary shows it: the backend died).
    ``accepted`` are the orders the clients were answered 202 for (``accepted_orders`` of the
    history): each is read once more here, its status kept in ``extra["orders"]`` (None where no
    reader could read it), so ``orders_applied`` reconciles every one of them, not a queue length.
    """
    pool: Sequence[StateReader] = [readers] if hasattr(readers, "counters") else list(readers)  # type: ignore[list-item]
    sale = scenario.sale
    deadline = clock() + settle_deadline_s(scenario)
    next_audit = clock()
    while clock() < deadline:
        counters = _first(pool, lambda r: r.counters(sale.id))
        held = counters.get("held") if counters else None
        # an asynchronous sale's accepted orders still queued become holds (or are rejected) later
        queued = counters.get("queued") if counters else None
        if held == 0 and not queued:
            break
        if held is not None and not queued and clock() >= next_audit:
            next_audit = clock() + AUDIT_EVERY_S
            if never_expiring_only(_first(pool, lambda r: r.audit(sale.id))):
                break
        sleep(POLL_S)
    counters = _first(pool, lambda r: r.counters(sale.id))
    audit = _first(pool, lambda r: r.audit(sale.id))
    read_ms = audit.get("now_ms") if audit else (counters.get("now_ms") if counters else None)
    extra: dict[str, Any] = {"sale": sale.settings(), "evidence": evidence}
    down = unreachable(pool) if counters is None else None
    if down is not None:
        extra["unreachable"] = down
    order_readers = [r for r in pool if hasattr(r, "order_state")]  # an adapter's own read has none
    if accepted and order_readers:
        extra["orders"] = {oid: _status(_first(order_readers, lambda r, oid=oid: r.order_state(sale.id, oid)))
                           for oid in accepted}
    return FinalState(
        sale_id=sale.id, stock=sale.stock, hold_ttl_ms=sale.hold_ttl_ms,
        counters=counters, audit=audit, read_ms=read_ms if isinstance(read_ms, int) else None,
        extra=extra,
    )


def _status(order: dict[str, Any] | None) -> str | None:
    status = order.get("status") if isinstance(order, dict) else None
    return status if isinstance(status, str) else None
