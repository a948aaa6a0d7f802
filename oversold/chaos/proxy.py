"""The fault proxy: a Toxiproxy-style TCP proxy on loopback, and its client.

The proxy is its own process (``python -m oversold.chaos.proxy``, see
``chaos.proxy_server``); one process carries several named proxies, each
``listen → upstream``, each with its own toxics (see ``chaos.toxics``). This
module is the harness side and imports nothing asyncio, so it is safe in
Locust (gevent) processes too.

Control API (HTTP/JSON on loopback, Toxiproxy's paths):

    GET    /version
    GET    /proxies                          {name: proxy}
    POST   /proxies                          {"name", "upstream", "listen"?, "enabled"?} -> 201 proxy
    GET    /proxies/{name}
    POST   /proxies/{name}                   {"enabled"?, "upstream"?, "listen"?} -> proxy
    DELETE /proxies/{name}                   -> 204
    GET    /proxies/{name}/toxics            [toxic]
    POST   /proxies/{name}/toxics            {"type", "name"?, "stream"?, "toxicity"?, "attributes"?} -> toxic
    GET    /proxies/{name}/toxics/{toxic}
    POST   /proxies/{name}/toxics/{toxic}    {"toxicity"?, "attributes"?} -> toxic
    DELETE /proxies/{name}/toxics/{toxic}    -> 204
    POST   /reset                            every proxy enabled, every toxic removed -> 204

Errors are ``{"error": message, "status": code}`` with 400 (bad input), 404,
405, 409 (name taken, address in use).

Usage::

    with FaultProxy.start(log_dir=run_dir) as fp:
        proxy = fp.client.create("redis", upstream="127.0.0.1:6379")
        port = listen_port(proxy)                     # point clients at 127.0.0.1:port
        fp.client.add_toxic("redis", "latency", latency=200, jitter=20)
        fp.client.add_toxic("redis", "redis_drop_reply", commands=["EVALSHA"], toxicity=0.1)
        fp.client.remove_toxic("redis", "latency_downstream")
        fp.client.disable("redis")                    # connection refused until enable()
        fp.client.reset()                             # everything healed
"""

from __future__ import annotations

import http.client
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from oversold.errors import ProxyControlError, StandUpError
from oversold.infra.procs import LOOPBACK, Child, free_port, wait_for_port

DEFAULT_CONTROL_PORT = 8474  # Toxiproxy's


def listen_port(proxy: dict[str, Any]) -> int:
    """The port a proxy (as the control API returns it) listens on."""
    return int(str(proxy["listen"]).rpartition(":")[2])


class ProxyClient:
    """Stdlib HTTP client of the fault proxy's control API.

    Usage::

        client = ProxyClient("http://127.0.0.1:8474")
        client.create("redis", upstream="127.0.0.1:6379", listen="127.0.0.1:0")
        client.add_toxic("redis", "timeout", stream="upstream", timeout=0)
        client.remove_toxic("redis", "timeout_upstream")
    """

    def __init__(self, url: str = f"http://{LOOPBACK}:{DEFAULT_CONTROL_PORT}", *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"fault proxy URL must be http://host:port, got {url!r}")
        self.url = url
        self._host, self._port = parts.hostname, parts.port
        self._timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        # http.client, not urllib: urllib would honour *_proxy variables from the environment.
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as e:
            raise ProxyControlError(0, f"{method} {path}: {e}") from e
        finally:
            conn.close()
        payload = json.loads(raw) if raw else None
        if response.status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else raw.decode(errors="replace")
            raise ProxyControlError(response.status, f"{method} {path}: {message}")
        return payload

    @staticmethod
    def _p(*names: str) -> str:
        return "/" + "/".join(quote(n, safe="") for n in names)

    def version(self) -> dict[str, Any]:
        return self._call("GET", "/version")

    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/proxies")

    def create(
        self, name: str, *, upstream: str, listen: str = f"{LOOPBACK}:0", enabled: bool = True
    ) -> dict[str, Any]:
        """Create a proxy; ``listen`` port 0 lets the proxy pick one (read it with ``listen_port``)."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._call("POST", "/proxies", body)

    def get(self, name: str) -> dict[str, Any]:
        return self._call("GET", self._p("proxies", name))

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change ``enabled``, ``upstream`` or ``listen`` of a proxy."""
        return self._call("POST", self._p("proxies", name), fields)

    def disable(self, name: str) -> dict[str, Any]:
        """Toxiproxy's ``enabled: false``: refuse new connections, cut open ones."""
        return self.update(name, enabled=False)

    def enable(self, name: str) -> dict[str, Any]:
        return self.update(name, enabled=True)

    def delete(self, name: str) -> None:
        self._call("DELETE", self._p("proxies", name))

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", self._p("proxies", proxy, "toxics"))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Add a toxic; its name defaults to ``{type}_{stream}`` as in Toxiproxy."""
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        if name is not None:
            body["name"] = name
        return self._call("POST", self._p("proxies", proxy, "toxics"), body)

    def update_toxic(
        self, proxy: str, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        """Change a toxic's ``toxicity`` and/or attributes (connections re-roll it)."""
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._call("POST", self._p("proxies", proxy, "toxics", name), body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", self._p("proxies", proxy, "toxics", name))

    def reset(self) -> None:
        """Heal everything: every proxy enabled, every toxic removed."""
        self._call("POST", "/reset")


@dataclass
class FaultProxy:
    """A fault proxy process this harness owns (an ``oversold.infra.procs.Child``).

    Usage::

        fp = FaultProxy.start(log_dir=Path("run/logs"), seed=42)
        fp.client.create("node-1", upstream="127.0.0.1:8001")
        ...
        fp.stop()
    """

    port: int
    child: Child
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client(self) -> ProxyClient:
        return ProxyClient(self.url)

    @classmethod
    def start(
        cls,
        *,
        log_dir: Path | None = None,
        port: int | None = None,
        seed: int | None = None,
        name: str = "fault-proxy",
        timeout: float = 10.0,
    ) -> "FaultProxy":
        tail = ""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            p = port or free_port()
            argv = [sys.executable, "-m", "oversold.chaos.proxy", "--host", LOOPBACK, "--port", str(p)]
            if seed is not None:
                argv += ["--seed", str(seed)]
            child = Child.start(argv, name=name, log_dir=log_dir)
            if wait_for_port(p, timeout=timeout, child=child):
                return cls(port=p, child=child)
            tail = child.log_tail()
            child.stop()
            if port is not None:
                break
        raise StandUpError(f"fault proxy did not start on {LOOPBACK}: {tail}")

    def stop(self) -> None:
        self.child.stop()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    from .proxy_server import main

    raise SystemExit(main())
