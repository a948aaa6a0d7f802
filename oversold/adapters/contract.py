"""The contract adapter: the HTTP contract of ``reference_backend/openapi.yaml``, as is.

Any backend that speaks the contract (the reference backend, or yours) needs
no other adapter. Paths and bodies are those of ``oversold.adapters.contract_client.ContractClient``;
answers are the contract's own, so ``outcome`` is the base class's.

Usage::

    adapter = ContractAdapter(admin_token="secret")
    adapter.order("moutai", "alice", 1, key="k1")
    # Request(method='POST', path='/v1/sales/moutai/orders', body={'user_id': 'alice', 'qty': 1},
    #         headers={'Idempotency-Key': 'k1'}, name='order')
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from .base import Adapter, Request


def _seg(value: str) -> str:
    """One path segment: an order id from another backend may hold any character."""
    # the common case (decimal order ids) skips quote(): this runs twice per request of the swarm
    return value if value.isalnum() and value.isascii() else quote(value, safe="")


class ContractAdapter(Adapter):
    """Requests of the oversold HTTP contract, version 1."""

    name = "contract"
    evidence = "per_order_audit"
    idempotent_pay = True  # the contract: a pay resent with its Idempotency-Key gets the first outcome

    def _admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    def order(self, sale_id: str, user_id: str, qty: int, key: str) -> Request:
        return Request("POST", f"/v1/sales/{_seg(sale_id)}/orders", {"user_id": user_id, "qty": qty},
                       {"Idempotency-Key": key}, "order")

    def pay(self, sale_id: str, order_id: str, key: str) -> Request:
        # an empty JSON object, not no body: the contract wants JSON on every POST
        return Request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/pay", {},
                       {"Idempotency-Key": key}, "pay")

    def cancel(self, sale_id: str, order_id: str, key: str) -> Request:
        return Request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/cancel", {},
                       {"Idempotency-Key": key}, "cancel")

    def read_order(self, sale_id: str, order_id: str) -> Request:
        # one stats entry for every order read, not one per order id
        return Request("GET", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}", name="read order")

    def counters(self, sale_id: str) -> Request:
        return Request("GET", f"/v1/sales/{_seg(sale_id)}", name="read sale")

    def audit(self, sale_id: str) -> Request | None:
        return Request("GET", f"/v1/sales/{_seg(sale_id)}/audit", headers=self._admin(), name="audit")

    def setup_sale(self, sale_id: str, settings: Mapping[str, Any]) -> Request | None:
        return Request("PUT", f"/v1/sales/{_seg(sale_id)}", dict(settings), self._admin(), "setup sale")

    def load_profiles(self, sale_id: str, profiles: Mapping[str, Mapping[str, Any]]) -> Request | None:
        return Request("PUT", f"/v1/sales/{_seg(sale_id)}/profiles", {"profiles": dict(profiles)}, self._admin(),
                       "profiles")

    def refund(self, sale_id: str, order_id: str, key: str) -> Request | None:
        return Request("POST", f"/v1/sales/{_seg(sale_id)}/orders/{_seg(order_id)}/refund", {},
                       {"Idempotency-Key": key, **self._admin()}, "refund")

    def warehouse_change(self, sale_id: str, change: str, qty: int) -> Request | None:
        return Request("POST", f"/v1/sales/{_seg(sale_id)}/{_seg(change)}", {"qty": qty}, self._admin(), change)
