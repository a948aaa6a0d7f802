"""The history of a run: every client operation as an invoke and a completion.

Pure data and JSON-lines I/O; see ``docs/internals.md`` section 3 for the fields.
A record is a ``msgspec.Struct``: a million of them are decoded from JSON lines in
C, with their types checked, and each costs a slotted object, no GC tracking.

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
from typing import Any, Iterable, Iterator, Literal

import msgspec

from oversold.errors import BadInput

from .gcpause import gc_paused

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES = ("invoke", "ok", "fail", "info")
OPS = ("order", "pay", "cancel", "read", "refund", "restock", "in_transit", "receive")  # the admin kind: the last four


class Op(msgspec.Struct, frozen=True, gc=False):
    """One record of the history (an invoke or a completion).

    Immutable and hashable; ``msgspec.structs.replace(op, type="info")`` makes a changed copy.
    """

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
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "history") -> "Op":
        known = OP_FIELDS
        if "sale_id" not in data and "sku" in data:  # histories written before the field was renamed
            data = {**data, "sale_id": data["sku"]}
        missing = [n for n in ("type", "op_id", "time", "process", "user_id", "kind", "op", "sale_id") if n not in data]
        if missing:
            raise BadInput(f"{where}: missing field(s) {', '.join(missing)}")
        if data["type"] not in OP_TYPES:
            raise BadInput(f"{where}.type: {data['type']!r} is not one of {', '.join(OP_TYPES)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:  # pragma: no cover - init errors
            raise BadInput(f"{where}: {e}") from None


OP_FIELDS: tuple[str, ...] = Op.__struct_fields__


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


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Op)
_CHUNK = 1 << 23  # bytes of JSON lines decoded at a time: a bounded buffer, however large the file


def history_order(op: Op) -> tuple[float, bool]:
    """The order ``write_history`` writes records in: by time, an invoke before a completion at the same time."""
    return (op.time, op.type != "invoke")


def write_history(path: Path, ops: Iterable[Op]) -> int:
    """Write ``ops`` sorted by time, one JSON object a line; returns the count."""
    return write_history_stream(path, sorted(ops, key=history_order))


def write_history_stream(path: Path, ops: Iterable[Op]) -> int:
    """Write ``ops`` in the order given (already in ``history_order``), one JSON object a line, without
    holding them; returns the count."""
    encode = _ENCODER.encode
    n = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for op in ops:
            f.write(encode(op) + b"\n")
            n += 1
    return n


def read_history(path: Path) -> list[Op]:
    """Read a ``history.jsonl``; a bad line is a BadInput naming its line number."""
    with gc_paused():
        return list(iter_history(path))


def iter_history(path: Path) -> Iterator[Op]:
    """The records of a ``history.jsonl`` one by one, reading a bounded chunk at a time.

    Well-formed files are decoded in C a chunk at a time; a chunk that does not decode is read
    again line by line by the checking reader, which says what is wrong and where (and accepts
    what it always accepted: a legacy ``sku`` field, a value of an unexpected type).
    """
    shared: dict[Any, Any] = {}
    with open(path, "rb") as f:
        line_no = 0
        while True:
            buf = f.read(_CHUNK)
            if not buf:
                return
            if not buf.endswith(b"\n"):
                buf += f.readline()
            try:
                chunk = _DECODER.decode_lines(buf)
            except (msgspec.DecodeError, msgspec.ValidationError):
                chunk = list(_read_lines(buf, path, line_no))
            _share_strings(chunk, shared)
            yield from chunk
            line_no += buf.count(b"\n")


def _share_strings(chunk: list[Op], shared: dict[Any, Any]) -> None:
    # A decoder makes a new string for every value; the few distinct processes, users, kinds, ops
    # and sales would otherwise cost ~250 bytes a record. (Unrolled: this loop runs per record.)
    get = shared.setdefault
    put = msgspec.structs.force_setattr
    try:
        for op in chunk:
            put(op, "process", get(op.process, op.process))
            put(op, "user_id", get(op.user_id, op.user_id))
            put(op, "kind", get(op.kind, op.kind))
            put(op, "op", get(op.op, op.op))
            put(op, "sale_id", get(op.sale_id, op.sale_id))
    except TypeError:  # an unhashable value the checking reader let through: nothing to share
        pass


def _read_lines(buf: bytes, path: Path, line_no: int) -> Iterator[Op]:
    for n, raw in enumerate(buf.split(b"\n"), line_no + 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{n}"
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadInput(f"{where}: not JSON ({getattr(e, 'msg', None) or e.reason})") from None
        if not isinstance(data, dict):
            raise BadInput(f"{where}: expected an object")
        yield Op.from_dict(data, where)


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
