"""Operations of a history: each invoke paired with its completion (pure, no I/O).

The checker and the metrics read the same pairs, so they never disagree on which
record of an operation counts.

Usage::

    calls, counts = pair(read_history(path), sale_id="moutai")
    unknown = [c for c in calls if c.outcome == "info"]   # no completion: unknown
"""

from __future__ import annotations

from itertools import compress, count, islice, repeat
from operator import attrgetter, eq, is_not, le
from typing import Iterable, Literal

import msgspec

from .history import Op

Completion = Literal["ok", "fail", "info"]


class Call(msgspec.Struct, frozen=True, gc=False):
    """One client operation: its invoke and its completion paired by ``op_id``.

    Either side may be missing: no completion means the outcome is unknown
    (``info``); no invoke is a harness glitch we tolerate and count. What the
    checker reads of it is worked out once, by ``Call.of``: a history has a
    million of these and every invariant walks them. (A ``msgspec.Struct``:
    built in C, immutable, not tracked by the garbage collector; it holds only
    records and strings, so it can never be part of a cycle.)

    Usage::

        c = Call.of(invoke, done)
        c.outcome, c.order_id, c.done_time      # "ok", "17", 1.25
    """

    invoke: Op | None
    done: Op | None
    first: Op  # the invoke, else (an orphan completion) the completion
    op_id: str
    op: str
    user_id: str
    kind: str
    qty: int  # the quantity asked for; a completion alone is all we have for an orphan
    key: str | None
    outcome: Completion
    order_id: str | None  # pay and cancel know the order at invoke; an order learns it from its response
    time: float  # of the first record
    done_time: float | None  # of the completion; None without one

    @classmethod
    def of(cls, invoke: Op | None, done: Op | None) -> "Call":
        """The call of an invoke and its completion (either may be None, not both)."""
        first = invoke if invoke is not None else done
        if first is None:
            raise ValueError("a call needs an invoke or a completion")
        order_id = invoke.order_id if invoke is not None and invoke.order_id else None
        if done is None:
            return cls(invoke, None, first, first.op_id, first.op, first.user_id, first.kind, first.qty, first.key,
                       "info", order_id, first.time, None)
        return cls(invoke, done, first, first.op_id, first.op, first.user_id, first.kind, first.qty, first.key,
                   done.type, order_id or done.order_id, first.time, done.time)


def pair(ops: Iterable[Op], sale_id: str | None = None) -> tuple[tuple[Call, ...], dict[str, int]]:
    """Pair invokes with completions by op_id, in time order; returns the calls and bookkeeping counts.

    Only records of ``sale_id`` are paired (all when None). Of two records of one side of
    an op, the earliest wins (exact ties broken by ``repr``, so input order never matters);
    the other one is counted (``duplicate_records``), never trusted. Linear in the
    records; the calls are sorted only where they are not in time order already (see ``_sort_calls``).
    """
    records_list = ops if isinstance(ops, (list, tuple)) else list(ops)
    mine = records_list if sale_id is None else [o for o in records_list if o.sale_id == sale_id]
    calls = _pair_in_order(mine)
    if calls is not None:  # the usual history: no duplicate, no orphan, every invoke before its completion
        duplicates = unmatched = 0
        unfinished = _finish_unfinished(calls)
    else:
        calls, duplicates, unmatched, unfinished = _pair_any(mine)
    _sort_calls(calls)
    counts = {"records": len(records_list), "other_sale_records": len(records_list) - len(mine),
              "duplicate_records": duplicates,
              "unmatched_completions": unmatched, "unfinished_ops": unfinished}
    return tuple(calls), counts


def _pair_in_order(records: list[Op]) -> list[Call | Op] | None:
    """One pass over records as a history is written (each invoke before its completion, each op_id once a
    side): a slot per invoke, in invoke order, filled with its call when the completion comes (an invoke
    left in its slot never completed). None at the first record that breaks that shape: ``_pair_any`` then
    pairs them all, and gives the same calls for a history of that shape (a unit test holds them equal)."""
    slot: dict[str, int] = {}
    slots: list[Call | Op] = []
    add = slots.append
    for o in records:
        op_id = o.op_id
        if o.type == "invoke":
            if op_id in slot:  # a second invoke of one op
                return None
            slot[op_id] = len(slots)
            add(o)
        else:
            i = slot.get(op_id)
            if i is None:  # an orphan, or a completion before its invoke
                return None
            a = slots[i]
            if type(a) is Call:  # a second completion
                return None
            # Call.of, unrolled: this line runs once per operation of the run
            slots[i] = Call(a, o, a, op_id, a.op, a.user_id, a.kind, a.qty, a.key, o.type, a.order_id or o.order_id,
                            a.time, o.time)
    return slots


def _finish_unfinished(slots: list[Call | Op]) -> int:
    """Turn the invokes left in their slots (never completed) into calls of unknown outcome; their count."""
    unfinished = list(compress(count(), map(is_not, map(type, slots), repeat(Call))))
    for i in unfinished:
        slots[i] = Call.of(slots[i], None)  # type: ignore[arg-type]
    return len(unfinished)


def _pair_any(mine: list[Op]) -> tuple[list[Call], int, int, int]:
    """Pair records in any order, duplicates and orphans too: (calls in invoke order then orphans,
    duplicate records, unmatched completions, unfinished ops)."""
    # Comprehensions run in C-speed loops; when they keep every record (no op_id twice on one
    # side) they are the answer, else the records are walked again, the earliest one winning.
    invokes = {o.op_id: o for o in mine if o.type == "invoke"}
    dones = {o.op_id: o for o in mine if o.type != "invoke"}
    duplicates = len(mine) - len(invokes) - len(dones)
    if duplicates:
        invokes, dones = _earliest(mine)
    take_done = dones.pop
    calls: list[Call] = []
    add = calls.append
    unfinished = 0
    for op_id, a in invokes.items():
        d = take_done(op_id, None)
        if d is None:
            unfinished += 1
        add(Call.of(a, d))
    unmatched = len(dones)
    calls.extend(Call.of(None, d) for d in dones.values())
    return calls, duplicates, unmatched, unfinished


_CALL_ORDER = attrgetter("time", "op_id")
_OP_ID = attrgetter("op_id")
_TIME = attrgetter("time")


def _sort_calls(calls: list[Call]) -> None:
    """Sort by (time, op_id) in place. A history is written in time order, so its calls usually come by
    time already: then only the runs at one instant are sorted (by op_id), not the whole list."""
    times = list(map(_TIME, calls))
    if not all(map(le, times, islice(times, 1, None))):  # (a NaN time lands here too)
        calls.sort(key=_CALL_ORDER)
        return
    tied = list(compress(range(len(times) - 1), map(eq, times, islice(times, 1, None))))
    i = 0
    while i < len(tied):
        start = end = tied[i]  # calls[start..end + 1] share one instant
        while i + 1 < len(tied) and tied[i + 1] == end + 1:
            i += 1
            end += 1
        calls[start:end + 2] = sorted(calls[start:end + 2], key=_OP_ID)
        i += 1


def _earliest(records: list[Op]) -> tuple[dict[str, Op], dict[str, Op]]:
    """Invokes and completions by op_id where an op_id has two records on one side: the earliest
    wins, an exact tie is broken by ``repr`` (so the order the records come in never matters)."""
    invokes: dict[str, Op] = {}
    dones: dict[str, Op] = {}
    for op in records:
        side = invokes if op.type == "invoke" else dones
        prev = side.get(op.op_id)
        if prev is None or op.time < prev.time or (op.time == prev.time and repr(op) < repr(prev)):
            side[op.op_id] = op
    return invokes, dones
