"""The proxy driver: network faults as toxics of the fault proxy, through the same inject / heal seam.

Targets are named proxies of one ``FaultProxy`` (say, one per backend node,
each ``node -> Redis``), registered by role. Two actions:

| action  | params                                                        | inject                   | heal          |
| ------- | ------------------------------------------------------------- | ------------------------ | ------------- |
| `toxic` | `type`, `attributes`, `stream`, `toxicity` (Toxiproxy's names) | add the toxic            | remove it     |
| `down`  | none                                                          | add a `down` toxic: refused, open connections cut | remove it: listening again |

Each injection names its toxics after itself (``oversold-proxy-3``), so two
faults of the same type on one proxy never collide and a heal removes only
its own. A toxic that is already gone (the proxy was reset) heals as done.

Usage::

    driver = ProxyDriver(fault_proxy.client)
    driver.register("proxy", "node1-redis")
    inj = driver.inject(Fault("toxic", "proxy", 0, params={"type": "latency", "attributes": {"latency": 200}}))
    driver.heal(inj)
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable

from oversold.errors import FaultSpecError
from oversold.model.fault import Fault
from oversold.model.toxics import Toxic, ToxicError

from .driver import Hit, Injection
from .proxy import ProxyClient, ProxyControlError

PROXY_ACTIONS = ("toxic", "down")


def toxic_body(fault: Fault, name: str) -> dict[str, Any]:
    """The control API body of the toxic ``fault`` asks for, checked (``FaultSpecError`` when wrong)."""
    if fault.action == "down":
        if fault.params:
            raise FaultSpecError(f"proxy driver: down takes no params (got {', '.join(fault.params)})")
        body: dict[str, Any] = {"type": "down", "name": name}
    else:
        unknown = set(fault.params) - {"type", "attributes", "stream", "toxicity"}
        if unknown or "type" not in fault.params:
            raise FaultSpecError("proxy driver: toxic params are type (required), attributes, stream, toxicity"
                                 + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
        body = {k: v for k, v in fault.params.items()}
        body["name"] = name
        if isinstance(body.get("attributes"), dict):
            body["attributes"] = dict(body["attributes"])
    try:
        Toxic.from_json(body)  # the proxy's own checks, before anything is sent
    except ToxicError as e:
        raise FaultSpecError(f"proxy driver: {e}") from None
    return body


class ProxyDriver:
    """Toxics on registered proxies of one fault proxy.

    Usage::

        driver = ProxyDriver(ProxyClient(fp.url))
        for i, node in enumerate(nodes):
            driver.register("proxy", f"node{i + 1}-redis")
        with Nemesis(process_driver, driver) as nemesis: ...
    """

    name = "proxy"

    def __init__(self, client: ProxyClient, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self._clock = clock
        self._targets: dict[str, list[str]] = {}
        self._healed: set[str] = set()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    def register(self, role: str, proxy_name: str) -> int:
        if not role:
            raise FaultSpecError("a target needs a role")
        with self._lock:
            targets = self._targets.setdefault(role, [])
            targets.append(proxy_name)
            return len(targets) - 1

    def roles(self) -> dict[str, int]:
        with self._lock:
            return {role: len(ts) for role, ts in self._targets.items()}

    def inject(self, fault: Fault) -> Injection:
        if fault.action not in PROXY_ACTIONS:
            raise FaultSpecError(f"proxy driver: unknown action {fault.action!r} (one of {', '.join(PROXY_ACTIONS)})")
        with self._lock:
            targets = self._targets.get(fault.role)
            if not targets:
                raise FaultSpecError(f"proxy driver: no targets for role {fault.role!r}")
            inj_id = f"{self.name}-{next(self._seq)}"
            body = toxic_body(fault, f"oversold-{inj_id}")
            started_at = self._clock()
            hits: list[Hit] = []
            try:
                for i in fault.indices(len(targets)):
                    proxy = targets[i]
                    self.client.add_toxic(proxy, body["type"], name=body["name"],
                                          stream=body.get("stream", "downstream"),
                                          toxicity=body.get("toxicity", 1.0), **(body.get("attributes") or {}))
                    hits.append(Hit(fault.role, i, "proxy", proxy, f"{proxy}/{body['name']}"))
            except ProxyControlError:
                # some proxies got the toxic: take them back before the error goes up
                self._remove(Injection(inj_id, self.name, fault, tuple(hits), started_at))
                raise
            return Injection(inj_id, self.name, fault, tuple(hits), started_at)

    def heal(self, injection: Injection) -> None:
        with self._lock:
            if injection.id in self._healed:
                return
            self._remove(injection)
            self._healed.add(injection.id)

    def _remove(self, injection: Injection) -> None:
        for hit in injection.hits:
            toxic = hit.name.rpartition("/")[2]
            try:
                self.client.remove_toxic(hit.ident, toxic)
            except ProxyControlError as e:
                if e.status != 404:  # 404: already gone (a reset), which is healed
                    raise
