"""Levels of evidence: what a backend can show the checker about what it sold, and what each invariant needs.

A backend that speaks the contract lists its sold orders by the order ids the
clients were given (``per_order_audit``). Many real backends cannot: a
single-step "buy" API hands out no order id, and the user's database rows carry
its own ids (``per_user_audit``: rows with user and quantity), or there is only
a sold count the adapter reads from the user's database (``sold_count``), or
nothing at all (``none``: the history alone). An adapter declares the level it
provides (``Adapter.evidence``); each invariant declares the level it needs
(``needs``); an invariant that needs more than the backend provides is
``not_applicable``, never guessed at (a false alarm is the worst outcome).

The levels are ordered: each one includes what the ones below it give.

Usage::

    at_least("per_user_audit", "sold_count")      # True
    parse_evidence("sold_count", "backend.evidence")
    describe("sold_count")                        # "a sold count only"
"""

from __future__ import annotations

from typing import Any, Literal

from oversold.errors import BadInput

Evidence = Literal["none", "sold_count", "per_user_audit", "per_order_audit"]

#: From least to most: each level gives everything the ones before it give.
EVIDENCE_LEVELS: tuple[Evidence, ...] = ("none", "sold_count", "per_user_audit", "per_order_audit")

#: What a final state written before levels existed provided: the contract's audit.
DEFAULT_EVIDENCE: Evidence = "per_order_audit"

_DESCRIPTIONS: dict[str, str] = {
    "none": "no record of what it sold (the history alone)",
    "sold_count": "a sold count only",
    "per_user_audit": "an audit of sold rows (and holds) by user",
    "per_order_audit": "an audit of sold orders by the clients' order ids",
}


def at_least(have: Evidence, need: Evidence) -> bool:
    """Whether evidence ``have`` gives what ``need`` asks for."""
    return EVIDENCE_LEVELS.index(have) >= EVIDENCE_LEVELS.index(need)


def describe(level: Evidence) -> str:
    return _DESCRIPTIONS[level]


def parse_evidence(raw: Any, where: str) -> Evidence:
    """A level by name; ``BadInput`` naming ``where`` and the levels otherwise."""
    if raw not in EVIDENCE_LEVELS:
        raise BadInput(f"{where}: {raw!r} is not a level of evidence; use one of {', '.join(EVIDENCE_LEVELS)}")
    return raw  # type: ignore[no-any-return]
