"""The Redis key names of one sale (docs/internals.md section 2).

Every key carries the hash tag ``{sale_id}`` so a Lua script touches one slot.

Usage::

    k = SaleKeys("s1")
    k.avail            # 'os:{s1}:avail'
    k.order("17")      # 'os:{s1}:o:17'
"""

from __future__ import annotations

from dataclasses import dataclass

SALES = "os:sales"  # set of every sale id, the reaper's list of sales
# the stock sync worker's controls and report (reference_backend/sync.py), global
SYNC_DELAY_MS = "os:sync:delay_ms"  # int: apply a change no earlier than this long after it happened
SYNC_STALL = "os:sync:stall"  # "1": apply nothing until the key goes (a stalled sync, for chaos)
SYNC_LAG_MS = "os:sync:lag_ms"  # int: the worst sale's current lag, as the worker last saw it
ORDER_GROUP = "orders"  # consumer group of the asynchronous order processors
SYNC_GROUP = "sync"  # consumer group of the stock sync worker


@dataclass(frozen=True, slots=True)
class SaleKeys:
    """Key names of one sale."""

    sale_id: str

    @property
    def prefix(self) -> str:
        return f"os:{{{self.sale_id}}}:"

    @property
    def meta(self) -> str:
        return self.prefix + "meta"

    @property
    def avail(self) -> str:
        return self.prefix + "avail"

    @property
    def held(self) -> str:
        return self.prefix + "held"

    @property
    def sold(self) -> str:
        return self.prefix + "sold"

    @property
    def seq(self) -> str:
        return self.prefix + "seq"

    @property
    def holds(self) -> str:
        return self.prefix + "holds"

    @property
    def sold_set(self) -> str:
        return self.prefix + "sold_set"

    @property
    def users(self) -> str:
        # not in the spec's table: user id -> units held or paid, for per-user limits
        return self.prefix + "users"

    # Side records of the protections (docs/internals.md section 2). Lua scripts
    # derive these names from the sale's prefix (see ``skey`` in lua/_sale.lua), so
    # a new one never shifts the KEYS list every order/pay/cancel script shares.

    @property
    def payments(self) -> str:
        return self.prefix + "payments"  # hash order id -> captured payment (JSON), payment_deduct

    @property
    def paying(self) -> str:
        return self.prefix + "paying"  # zset order id -> captured_ms: captured, not yet settled

    @property
    def refunds(self) -> str:
        return self.prefix + "refunds"  # hash order id -> refund record (JSON)

    @property
    def compensations(self) -> str:
        return self.prefix + "compensations"  # hash order id -> compensation record (JSON)

    @property
    def refunded(self) -> str:
        # int: units of every refund record (captured payments refunded unshipped + admin refunds of
        # sold orders), counted by refund_and_compensate (lua/_sale.lua) in the refund's atomic step
        return self.prefix + "refunded"

    @property
    def released(self) -> str:
        return self.prefix + "released"  # hash: order id -> units its hold gave back to stock (the audit's)

    @property
    def refunded_sold(self) -> str:
        return self.prefix + "refunded_sold"  # int: units of sold orders refunded afterwards

    @property
    def warnings(self) -> str:
        return self.prefix + "warnings"  # stream: inventory threshold crossings

    @property
    def alerts(self) -> str:
        return self.prefix + "alerts"  # stream: the oversell detector's alerts

    @property
    def monitor(self) -> str:
        return self.prefix + "monitor"  # hash: the detector's last alerted excess

    @property
    def profiles(self) -> str:
        return self.prefix + "profiles"  # hash user id -> profile (scalper policy input)

    # Warehouse sync and asynchronous orders (part B of issue 3; see reference_backend/README.md)

    @property
    def events(self) -> str:
        return self.prefix + "events"  # stream: front sales (sold/unsold) for the sync worker, when synced

    @property
    def sync(self) -> str:
        return self.prefix + "sync"  # hash: the sync worker's last_lag_ms, at_ms

    @property
    def front_applied(self) -> str:
        return self.prefix + "front_applied"  # int: last ledger outbox id applied to this front

    @property
    def confirming(self) -> str:
        return self.prefix + "confirming"  # zset order id -> ms: payments being confirmed with the ledger

    @property
    def order_queue(self) -> str:
        return self.prefix + "order_queue"  # stream: accepted asynchronous orders not yet processed

    # pre_deduct_buckets: a bucket is a sale of its own keys (its own hash tag), see strategies/pre_deduct_buckets.py

    @property
    def sent(self) -> str:
        return self.prefix + "sent"  # hash transfer id -> "to:qty:ms": units sent to another bucket, not yet confirmed

    @property
    def received(self) -> str:
        return self.prefix + "received"  # set of transfer ids whose units this bucket added

    @property
    def order_prefix(self) -> str:
        return self.prefix + "o:"

    def order(self, order_id: str) -> str:
        return self.order_prefix + order_id

    def idem(self, op: str, key: str | None) -> str:
        # without a key the scripts still get a key of the sale's slot, and ignore it
        return f"{self.prefix}idem:{op}:{key if key is not None else '-'}"

    def sale_keys(self) -> list[str]:
        """The sale's own KEYS, first in every order/pay/cancel script (lua/_op.lua) and all of a batch's."""
        return [self.meta, self.avail, self.held, self.sold, self.seq, self.holds, self.sold_set, self.users]

    def op_keys(self, op: str, key: str | None, order_id: str | None = None) -> list[str]:
        """The KEYS list every order/pay/cancel script takes, in its fixed order (lua/_op.lua)."""
        return [*self.sale_keys(), self.idem(op, key),
                self.order(order_id) if order_id is not None else self.order_prefix]
