"""KeepAlive: one kept-alive connection per thread; a stale one is retried only when that is safe."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from oversold.infra.keepalive import KeepAlive


class OneAnswerServer:
    """Answers one request per connection, then closes it without saying so (keep-alive gone stale)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/base"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.requests.append(data.split(b"\r\n", 1)[0].decode())
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    s = OneAnswerServer()
    yield s
    s.close()


def test_a_stale_connection_is_retried_for_a_safe_request_only(server):
    conn = KeepAlive(server.url, timeout=2)
    assert conn.exchange("GET", "/a", None, {}, retry_safe=True) == (200, b"ok")
    assert conn.exchange("GET", "/b", None, {}, retry_safe=True) == (200, b"ok")  # resent on a new connection
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.exchange("POST", "/c", b"{}", {}, retry_safe=False)  # may have been applied: never resent
    assert conn.exchange("POST", "/d", b"{}", {}, retry_safe=False) == (200, b"ok")  # the next one opens anew
    # /c went down the dead connection and was not sent again (a resend would show it here)
    assert server.requests == ["GET /base/a HTTP/1.1", "GET /base/b HTTP/1.1", "POST /base/d HTTP/1.1"]
    conn.close()


def test_each_thread_has_its_own_connection(server):
    conn = KeepAlive(server.url, timeout=2)
    conn.exchange("GET", "/main", None, {}, retry_safe=True)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(getattr(conn._local, "conn", None)))
    thread.start()
    thread.join()
    assert seen == [None] and conn._local.conn is not None
    conn.close()
    assert conn._local.conn is None


