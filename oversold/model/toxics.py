"""Toxics of the fault proxy: names, attributes and checks, as plain data.

Names and attributes follow Toxiproxy, so its documentation reads the same
here; ``redis_drop_reply`` and ``down`` are ours.

| type | attributes (defaults) | effect on a connection it applies to |
| --- | --- | --- |
| ``latency`` | ``latency`` ms (0), ``jitter`` ms (0) | each chunk waits latency ± jitter after it was read |
| ``bandwidth`` | ``rate`` KB/s (0 = no limit, as Toxiproxy) | chunks are written at most ``rate`` × 1000 bytes a second |
| ``reset_peer`` | ``timeout`` ms (0) | after ``timeout``, both sockets are closed with a TCP RST |
| ``timeout`` | ``timeout`` ms (0) | data in its stream is dropped; after ``timeout`` (0 = never) the connection is closed |
| ``down`` | none | the proxy stops listening (connection refused) and cuts its connections |
| ``redis_drop_reply`` | ``commands`` list (all), ``probability`` (1.0), ``timeout`` ms (0) | a matching command reaches Redis and runs; its reply and every later reply on that connection are dropped; after ``timeout`` (0 = never) the connection is closed |

Every toxic also has ``stream`` (``downstream``, the default, is server →
client; ``upstream`` is client → server) and ``toxicity``, the probability
that it applies to a given connection (rolled once per connection).

Usage::

    toxic = Toxic.from_json({"type": "latency", "attributes": {"latency": 200}})
    toxic.name        # "latency_downstream"
    toxic.to_json()   # {"name": ..., "type": "latency", "stream": "downstream", ...}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

STREAMS = ("upstream", "downstream")

# Per type: attribute name -> (default, kind). Kinds are checked in _attribute().
TOXIC_TYPES: dict[str, dict[str, tuple[Any, str]]] = {
    "latency": {"latency": (0, "ms"), "jitter": (0, "ms")},
    "bandwidth": {"rate": (0, "rate")},
    "reset_peer": {"timeout": (0, "ms")},
    "timeout": {"timeout": (0, "ms")},
    "down": {},
    "redis_drop_reply": {"commands": ([], "commands"), "probability": (1.0, "probability"), "timeout": (0, "ms")},
}

_serials = itertools.count(1)


class ToxicError(ValueError):
    """A toxic (or its JSON) is invalid; the message names the field."""


@dataclass(frozen=True)
class Toxic:
    """One toxic on one proxy.

    ``serial`` is unique per created (or updated) toxic, so a connection's
    per-connection roll and timers are never reused for a new toxic of the
    same name: an update re-rolls ``toxicity`` and restarts ``timeout`` clocks.
    """

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_serials), compare=False)

    @classmethod
    def from_json(cls, body: Any) -> "Toxic":
        """Build and check a toxic from a Toxiproxy-style JSON object."""
        if not isinstance(body, dict):
            raise ToxicError("toxic: expected a JSON object")
        unknown = set(body) - {"name", "type", "stream", "toxicity", "attributes"}
        if unknown:
            raise ToxicError(f"toxic: unknown field(s) {sorted(unknown)}")
        kind = body.get("type")
        if kind not in TOXIC_TYPES:
            raise ToxicError(f"type: must be one of {sorted(TOXIC_TYPES)}, got {kind!r}")
        stream = body.get("stream", "downstream")
        if stream not in STREAMS:
            raise ToxicError(f"stream: must be 'upstream' or 'downstream', got {stream!r}")
        toxicity = _probability("toxicity", body.get("toxicity", 1.0))
        if kind == "down" and toxicity != 1.0:
            raise ToxicError("toxicity: 'down' acts on the whole proxy, so it must be 1")
        name = body.get("name") or f"{kind}_{stream}"
        if not isinstance(name, str) or "/" in name:
            raise ToxicError(f"name: must be a string without '/', got {name!r}")
        attributes = resolve_attributes(kind, body.get("attributes") or {})
        return cls(name=name, type=kind, stream=stream, toxicity=toxicity, attributes=attributes)

    def updated(self, body: Any) -> "Toxic":
        """This toxic with ``toxicity`` and/or ``attributes`` changed (Toxiproxy's update)."""
        if not isinstance(body, dict):
            raise ToxicError("toxic: expected a JSON object")
        unknown = set(body) - {"toxicity", "attributes", "name", "type", "stream"}
        if unknown:
            raise ToxicError(f"toxic: unknown field(s) {sorted(unknown)}")
        for fixed in ("name", "type", "stream"):
            if fixed in body and body[fixed] != getattr(self, fixed):
                raise ToxicError(f"{fixed}: cannot be changed; remove the toxic and add a new one")
        toxicity = _probability("toxicity", body.get("toxicity", self.toxicity))
        attributes = resolve_attributes(self.type, {**self.attributes, **(body.get("attributes") or {})})
        return Toxic(self.name, self.type, self.stream, toxicity, attributes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


def resolve_attributes(kind: str, given: Any) -> dict[str, Any]:
    """Defaults filled in and every attribute checked; unknown names are an error."""
    if not isinstance(given, dict):
        raise ToxicError("attributes: expected a JSON object")
    spec = TOXIC_TYPES[kind]
    unknown = set(given) - set(spec)
    if unknown:
        raise ToxicError(f"attributes: {kind} has no {sorted(unknown)} (it has {sorted(spec)})")
    return {key: _attribute(key, given.get(key, default), how) for key, (default, how) in spec.items()}


def _attribute(key: str, value: Any, how: str) -> Any:
    if how in ("ms", "rate"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ToxicError(f"attributes.{key}: expected a number >= 0, got {value!r}")
        return value
    if how == "probability":
        return _probability(f"attributes.{key}", value)
    if how == "commands":
        if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
            raise ToxicError(f"attributes.{key}: expected a list of command names, got {value!r}")
        return [c.strip().upper() for c in value]
    raise AssertionError(how)


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ToxicError(f"{key}: expected a number between 0 and 1, got {value!r}")
    return float(value)
