"""One kept-alive HTTP connection per thread to one base URL, on the standard library's client.

Per thread means per greenlet under gevent's monkey-patching, so it works in plain
threads, in pytest and inside Locust processes alike. Shared by ``ContractClient``
and ``AdapterClient``, which turn its exceptions into their own answers.

Usage::

    conn = KeepAlive("http://127.0.0.1:8001", timeout=5.0)
    status, raw = conn.exchange("GET", "/v1/health", None, {}, retry_safe=True)
    conn.close()   # this thread's connection
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

# a kept-alive connection the server had closed in the meantime
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class KeepAlive:
    """Sends requests to ``base_url`` (http only), reusing this thread's connection."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"base_url: must be http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._host, self._port, self._prefix = parts.hostname, parts.port or 80, parts.path.rstrip("/")
        self._local = threading.local()

    def exchange(
        self, method: str, path: str, payload: bytes | None, headers: dict[str, str], *, retry_safe: bool
    ) -> tuple[int, bytes]:
        """One request; (status, body bytes). Raises ``http.client.HTTPException`` or ``OSError``
        when no answer came. A request that finds its kept-alive connection closed by the server
        is sent once more on a new one, but only if ``retry_safe`` (resending cannot apply it twice).
        """
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            try:
                conn.request(method, self._prefix + path, body=payload, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError) as e:
                self.close()
                if attempt == 1 and reused and retry_safe and isinstance(e, STALE):
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
