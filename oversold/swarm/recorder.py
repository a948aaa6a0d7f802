"""The recorder: every client operation as an invoke and a completion, in memory.

A Locust process records into one ``Recorder``; the records are plain tuples in
``oversold.history.Op`` field order (``ROW_FIELDS``) so that recording costs one
``list.append`` and shipping a batch to the master is a msgpack of lists.
``to_op`` turns a row back into an ``Op``.

Completions are classified as in docs/internals.md section 3 (``classify``,
and ``outcome_of`` for a whole response): 2xx ``ok``; 4xx ``fail``; connection
refused ``fail`` (nothing was sent); 5xx, timeouts, resets and anything else
``info`` (the operation may or may not have happened).

Usage::

    rec = Recorder()
    p = rec.invoke(process="buyer-0-1", user_id="buyer-0-1", kind="buyer",
                   op="order", sku="moutai", qty=1, key="k1")
    rec.complete(p, classify(201, None), status=201, order_id="17")
    ops = [to_op(row) for row in rec.take()]   # an invoke and an ok
"""

from __future__ import annotations

import errno
import itertools
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

from ..history import Op, OpType

ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Op))
Row = tuple[Any, ...]

# Raised (or wrapped) by geventhttpclient when the peer refused the connection:
# the request never left this machine, so it definitely did not happen.
_REFUSED_ERRNOS = {errno.ECONNREFUSED}


def classify(status: int | None, error: BaseException | None = None) -> OpType:
    """The completion type of a request that got ``status`` (0/None: no response) or ``error``.

    >>> classify(201), classify(409), classify(503), classify(0, ConnectionRefusedError())
    ('ok', 'fail', 'info', 'fail')
    """
    if status:
        if 200 <= status < 300:
            return "ok"
        if 400 <= status < 500:
            return "fail"
        return "info"  # 5xx (503 = unknown outcome by contract), and 1xx/3xx we never expect
    if error is not None and _refused(error):
        return "fail"
    # a timeout or a reset may strike after the server applied the request; a
    # connect timeout cannot be told apart from a read timeout here, so it is
    # unknown too (info only widens what the checker accepts, a wrong fail would
    # turn into a false alarm)
    return "info"


def _refused(error: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:  # geventhttpclient wraps as RetriesExceeded(original=...)
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) in _REFUSED_ERRNOS:
            return True
        # only explicit wrapping: an unrelated exception in __context__ must not turn unknown into fail
        e = getattr(e, "original", None) or e.__cause__
    return False


@dataclass(slots=True)
class Pending:
    """An invoked, not yet completed operation (handed back by ``Recorder.invoke``)."""

    op_id: str
    process: str
    user_id: str
    kind: str
    op: str
    sku: str
    qty: int
    order_id: str | None
    key: str | None
    started: float  # perf_counter, for the latency
    done: bool = False


@dataclass
class Recorder:
    """In-memory, append-only history buffer of one Locust process.

    ``take()`` hands over (and forgets) what was recorded since the last take;
    ``total`` counts every row ever recorded, so a receiver can tell whether it
    has them all. ``in_flight`` counts invoked operations not yet completed or
    abandoned (the drain before a stop waits for it to reach 0).
    """

    clock: Callable[[], float] = time.time
    perf: Callable[[], float] = time.perf_counter
    total: int = 0
    in_flight: int = 0
    _rows: list[Row] = field(default_factory=list)
    _seq: dict[str, itertools.count] = field(default_factory=dict)

    def next_op_id(self, process: str) -> str:
        """``<process>-<n>``: unique as long as process names are unique across processes."""
        counter = self._seq.get(process)
        if counter is None:
            counter = self._seq[process] = itertools.count(1)
        return f"{process}-{next(counter)}"

    def invoke(
        self,
        *,
        process: str,
        user_id: str,
        kind: str,
        op: str,
        sku: str,
        qty: int = 1,
        order_id: str | None = None,
        key: str | None = None,
        op_id: str | None = None,
    ) -> Pending:
        """Record the invoke of an operation and return its handle for ``complete``."""
        p = Pending(
            op_id=op_id or self.next_op_id(process), process=process, user_id=user_id, kind=kind, op=op,
            sku=sku, qty=qty, order_id=order_id, key=key, started=self.perf(),
        )
        self._append(("invoke", p.op_id, self.clock(), process, user_id, kind, op, sku, qty, order_id, key, None, None, None))
        self.in_flight += 1
        return p

    def complete(
        self,
        p: Pending,
        type: OpType,
        *,
        status: int | None = None,
        code: str | None = None,
        order_id: str | None = None,
    ) -> None:
        """Record the completion of ``p`` (once; a second call is ignored)."""
        if p.done:
            return
        p.done = True
        self.in_flight -= 1
        latency_ms = (self.perf() - p.started) * 1000.0
        self._append((
            type, p.op_id, self.clock(), p.process, p.user_id, p.kind, p.op, p.sku, p.qty,
            order_id if order_id is not None else p.order_id, p.key, status, code, round(latency_ms, 3),
        ))

    def abandon(self, p: Pending) -> None:
        """The client died mid-request: keep the lone invoke (unknown), stop counting it in flight."""
        if not p.done:
            p.done = True
            self.in_flight -= 1

    def take(self) -> list[Row]:
        """Rows recorded since the last ``take`` (the buffer is swapped, not copied)."""
        rows, self._rows = self._rows, []
        return rows

    def untake(self, rows: list[Row]) -> None:
        """Put back rows that could not be shipped (they go out with the next batch)."""
        self._rows[:0] = rows

    def pending_rows(self) -> int:
        return len(self._rows)

    def _append(self, row: Row) -> None:
        self._rows.append(row)
        self.total += 1


def to_op(row: Sequence[Any]) -> Op:
    """A recorded row (a tuple, or the list it became on the wire) as an ``Op``."""
    return Op(*row)


# Business answers of a healthy sale under load: recorded as ``fail`` in the
# history (they did not happen) but not Locust failures (nothing is broken).
EXPECTED_CODES = frozenset({
    "sold_out", "limit_exceeded", "hold_expired", "order_cancelled", "already_paid", "risk_rejected",
})


@dataclass(frozen=True)
class Outcome:
    """How one operation ended: history type, HTTP status (0: no response), error code, body."""

    type: OpType
    status: int
    code: str | None
    body: dict[str, Any] | None
    error: BaseException | None = None

    @property
    def order_id(self) -> str | None:
        if self.body is None:
            return None
        oid = self.body.get("order_id")
        return str(oid) if oid is not None else None

    def locust_failure(self) -> str | None:
        """Why Locust should count this request as failed, or None for success."""
        if self.type == "ok":
            return None
        if self.status and self.code in EXPECTED_CODES:
            return None
        if self.status:
            return f"HTTP {self.status} {self.code or ''}".rstrip()
        return f"{type(self.error).__name__}: {self.error}" if self.error else "no response"


def outcome_of(status: int, content: bytes | None, error: BaseException | None) -> Outcome:
    """Classify a response (or its absence); pure, so it is unit-tested without a server."""
    body: dict[str, Any] | None = None
    code: str | None = None
    if status and content:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
            err = parsed.get("error")
            if isinstance(err, dict) and isinstance(err.get("code"), str):
                code = err["code"]
    return Outcome(type=classify(status, error), status=status or 0, code=code, body=body, error=error)
