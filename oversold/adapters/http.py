"""``AdapterClient``: an adapter's requests over the standard library's HTTP client.

What the harness itself sends outside the swarm: setting the sale up,
registering profiles, and reading the final state after a run (the Locust
master, the orchestrator, tests). Swarm users send theirs through Locust's
client instead (``oversold.swarm.users``). One keep-alive connection per
thread (per greenlet under gevent's monkey-patching), like ``ContractClient``.

Usage::

    client = AdapterClient(ContractAdapter(admin_token="secret"), "http://127.0.0.1:8001")
    client.counters("moutai")        # {"available": ..., "held": ..., "sold": ..., ...} or None
    client.audit("moutai")           # the audit, or None (unreadable, or the backend has none)
    client.close()
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Mapping

from oversold.infra.keepalive import KeepAlive

from .base import Adapter, Request, RequestContext
from .outcome import Outcome


class AdapterClient:
    """Sends an adapter's requests to one base URL; every answer comes back as an ``Outcome``."""

    def __init__(self, adapter: Adapter, base_url: str, timeout: float = 5.0) -> None:
        self._conn = KeepAlive(base_url, timeout)
        self.adapter = adapter
        self.base_url = self._conn.base_url
        self.last_error: BaseException | None = None  # why the last request got no answer (None: it got one)

    # -- operations ------------------------------------------------------------------

    def order(self, sale_id: str, user_id: str, qty: int, key: str) -> Outcome:
        return self._must(RequestContext("order", sale_id, user_id, qty, key),
                          self.adapter.order(sale_id, user_id, qty, key))

    def pay(self, sale_id: str, order_id: str, key: str) -> Outcome:
        return self._must(RequestContext("pay", sale_id, key=key, order_id=order_id),
                          self.adapter.pay(sale_id, order_id, key))

    def buy(self, sale_id: str, user_id: str, qty: int, key: str) -> Outcome:
        return self._must(RequestContext("buy", sale_id, user_id, qty, key), self.adapter.buy(sale_id, user_id, qty, key))

    def cancel(self, sale_id: str, order_id: str, key: str) -> Outcome:
        return self._must(RequestContext("cancel", sale_id, key=key, order_id=order_id),
                          self.adapter.cancel(sale_id, order_id, key))

    def read_order(self, sale_id: str, order_id: str) -> Outcome:
        return self._must(RequestContext("read_order", sale_id, order_id=order_id),
                          self.adapter.read_order(sale_id, order_id))

    def setup_sale(self, sale_id: str, settings: Mapping[str, Any]) -> Outcome | None:
        """None when the backend has no admin reset (the sale must then exist already)."""
        return self.send(RequestContext("setup_sale", sale_id), self.adapter.setup_sale(sale_id, settings))

    def load_profiles(self, sale_id: str, profiles: Mapping[str, Mapping[str, Any]]) -> Outcome | None:
        return self.send(RequestContext("profiles", sale_id), self.adapter.load_profiles(sale_id, profiles))

    # -- reads of the final state (oversold.adapters.settle.StateReader) ------------------------

    def counters(self, sale_id: str) -> dict[str, Any] | None:
        """The sale's counters, or None when they could not be read."""
        return self._body(self.send(RequestContext("counters", sale_id), self.adapter.counters(sale_id)))

    def audit(self, sale_id: str) -> dict[str, Any] | None:
        """The audit, or None when it could not be read or the backend has no audit read."""
        return self._body(self.send(RequestContext("audit", sale_id), self.adapter.audit(sale_id)))

    def order_state(self, sale_id: str, order_id: str) -> dict[str, Any] | None:
        """One order as the backend shows it now, or None when it could not be read."""
        return self._body(self.send("read_order", self.adapter.read_order(sale_id, order_id)))

    @property
    def has_audit(self) -> bool:
        return self.adapter.audit("-") is not None

    # -- plumbing --------------------------------------------------------------------

    def send(self, op: str | RequestContext, request: Request | None) -> Outcome | None:
        """Send one request (None: the adapter has no such operation, nothing is sent); ``op`` is the
        operation's name or, where the caller knows more, its whole context."""
        ctx = op if isinstance(op, RequestContext) else RequestContext(op, "")
        if request is None:
            return None
        payload = None
        headers = dict(request.headers)
        if request.body is not None:
            payload = json.dumps(request.body).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            # resending is harmless only for reads and PUT; a POST may have been applied
            status, content = self._conn.exchange(request.method, request.path, payload, headers,
                                                  retry_safe=request.method in ("GET", "PUT", "HEAD"))
        except (http.client.HTTPException, OSError) as e:
            self.last_error = e
            return self.adapter.outcome_in(ctx, 0, None, e)
        self.last_error = None
        return self.adapter.outcome_in(ctx, status, content, None)

    def close(self) -> None:
        self._conn.close()

    def _must(self, ctx: RequestContext, request: Request | None) -> Outcome:
        outcome = self.send(ctx, request)
        if outcome is None:
            raise NotImplementedError(f"{type(self.adapter).__name__} has no {ctx.op} request")
        return outcome

    @staticmethod
    def _body(outcome: Outcome | None) -> dict[str, Any] | None:
        return outcome.body if outcome is not None and outcome.type == "ok" else None
