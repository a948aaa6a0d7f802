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
import math
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from itertools import islice
from operator import is_not
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import msgspec

from oversold.errors import BadInput

from .gcpause import gc_paused
from .history_cols import FRAME_RECORDS, ColsWriter, cols_path, read_frames, source_crc32

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


def write_history_stream(path: Path, ops: Iterable[Op], *, with_twin: bool = True) -> int:
    """Write ``ops`` in the order given (already in ``history_order``), one JSON object a line, a bounded
    batch at a time; returns the count. Its columnar twin (``history.cols``, ``oversold.model.history_cols``)
    is written in the same pass, unless a record holds what the twin cannot (then there is none) or
    ``with_twin`` is False (what the twin costs is measured that way: ``benchmarks/checker_scale.py``)."""
    path = Path(path)
    encode = _ENCODER.encode
    try:
        twin: ColsWriter | None = ColsWriter(cols_path(path)) if with_twin else None
    except OSError:  # the twin is only ever a speed-up
        twin = None
    n = 0
    try:
        with gc_paused(), open(path, "wb", buffering=1 << 20) as f:
            for batch in _batches(ops):
                for op in batch:  # (a line at a time into the buffer: cheaper than joining a batch's lines)
                    f.write(encode(op) + b"\n")
                n += len(batch)
                if twin is not None:
                    twin = _add_frame(twin, batch)
    except BaseException:
        if twin is not None:
            twin.abort()
        raise
    if twin is not None:
        _finish(twin, path)  # the twin is only ever a speed-up: the history is written even if the twin is not
    return n


def _finish(twin: ColsWriter, path: Path) -> bool:
    """Seal the twin with the size and CRC-32 of ``path`` as it landed (read back from the page cache)."""
    try:
        twin.finish(*source_crc32(path))
    except OSError:
        return False
    return True


def _add_frame(twin: ColsWriter, batch: list[Op]) -> ColsWriter | None:
    """The twin with ``batch`` added; None (and no twin left) when it cannot hold it or cannot be written."""
    payload = _columns(batch)
    if payload is not None:
        try:
            twin.add_frame(payload, len(batch))
            return twin
        except OSError:
            pass
    twin.abort()
    return None


def write_twin(path: Path) -> bool:
    """Write the columnar twin of an existing ``history.jsonl`` (one written by hand or by an older
    version); False when a record holds what the twin cannot. ``BadInput`` for a malformed history."""
    path = Path(path)
    twin: ColsWriter | None = ColsWriter(cols_path(path))
    try:
        for batch in _batches(iter_history(path)):
            twin = _add_frame(twin, batch)  # type: ignore[arg-type]
            if twin is None:
                return False
    except BaseException:
        if twin is not None:
            twin.abort()
        raise
    return _finish(twin, path)  # type: ignore[arg-type]


def _batches(ops: Iterable[Op]) -> Iterator[list[Op]]:
    it = iter(ops)
    while batch := list(islice(it, FRAME_RECORDS)):
        yield batch


# The twin's frame: Op's fields in order, each a column. Fields with few distinct values are a table and
# an index into it a record, so a million records share a few strings. Typed as Op is, so the twin
# decodes to what the JSON lines decode to, or fails (and the JSON lines are read instead).
class _Frame(msgspec.Struct, array_like=True):
    type: tuple[list[OpType], list[int]]
    op_id: list[str]
    time: list[float]
    process: tuple[list[str], list[int]]
    user_id: tuple[list[str], list[int]]
    kind: tuple[list[str], list[int]]
    op: tuple[list[str], list[int]]
    sale_id: tuple[list[str], list[int]]
    qty: list[int]
    order_id: list[str | None]
    key: list[str | None]
    status: list[int | None]
    code: tuple[list[str | None], list[int]]
    latency_ms: list[float | None]


_TABLED = frozenset(("type", "process", "user_id", "kind", "op", "sale_id", "code"))  # the (table, index) pairs
_FRAME_DECODER = msgspec.msgpack.Decoder(_Frame)
# The float fields' values must be floats (or None) already: the twin's typed read would make an int a float,
# where the JSON lines' checking reader keeps it an int. Every other wrong type fails the twin's typed read.
_FLOATS = {"time": frozenset((float,)), "latency_ms": frozenset((float, type(None)))}
_NOT_NONE = partial(is_not, None)


def _columns(batch: list[Op]) -> bytes | None:
    """The twin's frame of ``batch``; None when a value would not read back as its JSON line does: one not
    of its field's exact type (an int where a float goes reads as a float from the twin; the JSON lines'
    checking reader keeps it an int), a NaN or infinite float (``null`` in JSON). (A value of another wrong
    type is written, and fails the twin's typed read: the JSON lines are read then.)"""
    cols: list[Any] = []
    try:
        for name, col in zip(Op.__struct_fields__, zip(*map(msgspec.structs.astuple, batch))):
            if name in _TABLED:
                table = list(dict.fromkeys(col))  # (a value that is no string fails the twin's read: JSON then)
                cols.append((table, list(map(dict(zip(table, range(len(table)))).__getitem__, col))))
                continue
            if name in _FLOATS and not (_FLOATS[name].issuperset(map(type, col))
                                        and all(map(math.isfinite, filter(_NOT_NONE, col)))):
                return None
            cols.append(col)
        return msgspec.msgpack.encode(cols)
    except (TypeError, OverflowError, ValueError):
        return None


def read_history(path: Path) -> list[Op]:
    """Read a ``history.jsonl``; a bad line is a BadInput naming its line number.

    From its columnar twin when there is one and it was written with exactly this file (the same
    records, read about twice as fast), else from the JSON lines."""
    with gc_paused():
        ops = _read_twin(Path(path))
        return ops if ops is not None else list(iter_history(path))


def _read_twin(path: Path) -> list[Op] | None:
    found = read_frames(path)
    if found is None:
        return None
    frames, records = found
    ops: list[Op] = []
    try:
        for payload in frames:
            f = _FRAME_DECODER.decode(payload)
            cols = msgspec.structs.astuple(f)
            if len({len(c[1] if name in _TABLED else c) for name, c in zip(_Frame.__struct_fields__, cols)}) != 1:
                return None
            # a tabled column is an index into its table: looked up as the records are made, no list between
            ops += map(Op, *(map(c[0].__getitem__, c[1]) if name in _TABLED else c
                             for name, c in zip(_Frame.__struct_fields__, cols)))
    except (msgspec.DecodeError, msgspec.ValidationError, IndexError, ValueError):
        return None
    return ops if len(ops) == records else None


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
