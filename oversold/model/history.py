"""The history of a run: every client operation as an invoke and a completion.

Pure data and JSON-lines I/O; see ``docs/internals.md`` section 3 for the fields.

Usage::

    ops = [Op(type="invoke", op_id="u1-1", time=1.0, process="u1", user_id="u1",
              kind="buyer", op="order", sale_id="moutai", qty=1)]
    write_history(path, ops)
    assert read_history(path) == ops
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal

from oversold.errors import BadInput

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES = ("invoke", "ok", "fail", "info")
OPS = ("order", "pay", "cancel", "read", "refund", "restock", "in_transit", "receive")  # the admin kind: the last four


@dataclass(frozen=True)
class Op:
    """One record of the history (an invoke or a completion)."""

    type: OpType
    op_id: str
    time: float
    process: str
    user_id: str
    kind: str
    op: str
    sale_id: str
    qty: int = 1
    order_id: str | None = None
    key: str | None = None
    status: int | None = None
    code: str | None = None
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "history") -> "Op":
        known = {f.name for f in fields(cls)}
        if "sale_id" not in data and "sku" in data:  # histories written before the field was renamed
            data = {**data, "sale_id": data["sku"]}
        missing = [n for n in ("type", "op_id", "time", "process", "user_id", "kind", "op", "sale_id") if n not in data]
        if missing:
            raise BadInput(f"{where}: missing field(s) {', '.join(missing)}")
        if data["type"] not in OP_TYPES:
            raise BadInput(f"{where}.type: {data['type']!r} is not one of {', '.join(OP_TYPES)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:  # pragma: no cover - dataclass init errors
            raise BadInput(f"{where}: {e}") from None


@dataclass(frozen=True)
class FinalState:
    """What the harness read from the backend after the sale went quiet.

    ``counters`` and ``audit`` are None where the read failed; the checker then
    says which invariants it could not decide instead of guessing.
    """

    sale_id: str
    stock: int
    hold_ttl_ms: int
    counters: dict[str, Any] | None = None
    audit: dict[str, Any] | None = None
    read_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinalState":
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise BadInput(f"final_state: {e}") from None


def write_history(path: Path, ops: Iterable[Op]) -> int:
    """Write ``ops`` sorted by time, one JSON object a line; returns the count."""
    rows = sorted(ops, key=lambda o: (o.time, o.type != "invoke"))
    with open(path, "w", encoding="utf-8") as f:
        for op in rows:
            f.write(json.dumps(op.to_dict(), separators=(",", ":")) + "\n")
    return len(rows)


def read_history(path: Path) -> list[Op]:
    """Read a ``history.jsonl``; a bad line is a BadInput naming its line number."""
    ops: list[Op] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{n}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(data, dict):
                raise BadInput(f"{where}: expected an object")
            ops.append(Op.from_dict(data, where))
    return ops


def accepted_orders(ops: Iterable[Op], sale_id: str) -> list[str]:
    """Ids of the orders of ``sale_id`` a backend accepted for later (``ok`` with 202: an asynchronous
    order), first seen first. The settle step reads each of them once the sale is quiet, so the checker
    can reconcile every one of them (``orders_applied``).

    >>> accepted_orders([Op("ok", "u-1", 1.0, "u", "u", "buyer", "order", "s", order_id="7", status=202)], "s")
    ['7']
    """
    seen: dict[str, None] = {}
    for op in ops:
        if (op.type == "ok" and op.op == "order" and op.status == 202 and op.order_id
                and op.sale_id == sale_id):
            seen.setdefault(op.order_id, None)
    return list(seen)
