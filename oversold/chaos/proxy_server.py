"""The fault proxy process: TCP proxies with toxics, and their HTTP control API.

This is the asyncio side; it runs only in its own process
(``python -m oversold.chaos.proxy``). The harness and tests drive it through
``oversold.chaos.proxy.ProxyClient``, which imports nothing asyncio.

Data path of one connection (a *link*)::

    client ──► reader ─(RESP scan: commands)─► queue ─► writer (timeout drop, latency, bandwidth) ──► upstream
    client ◄── writer (…same toxics…) ◄─ queue ◄─(RESP scan: drop replies)─ reader ◄── upstream

A reader stamps each chunk when it arrives and a separate writer delays it, so
latency delays every chunk by the same amount instead of serialising them
(pipelined traffic keeps its throughput, as in Toxiproxy).

Usage (normally through ``FaultProxy.start()``)::

    python -m oversold.chaos.proxy --port 8474 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import re
import signal
import socket
import struct
import sys
from collections import deque
from typing import Any

from oversold.model.toxics import Toxic, ToxicError

from .resp import RespError, RespScanner

_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 64  # bounded, so a slow (bandwidth-limited) writer pushes back on the reader
# After these, replies no longer pair one-to-one with commands; stop pairing on that link.
_UNPAIRED = {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR", b"SYNC", b"PSYNC"}


class ControlError(Exception):
    """An HTTP error answer of the control API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def split_address(text: Any, what: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:port"`` for IPv6) as a pair; ControlError 400 if malformed."""
    if not isinstance(text, str) or ":" not in text:
        raise ControlError(400, f"{what}: expected 'host:port', got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ControlError(400, f"{what}: bad port in {text!r}") from None
    if not host or not 0 <= port <= 65535:
        raise ControlError(400, f"{what}: bad address {text!r}")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Link:
    """One client connection and its upstream connection."""

    def __init__(
        self,
        proxy: "Proxy",
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_r, self.client_w = client
        self.up_r, self.up_w = upstream
        self.rolls: dict[int, bool] = {}  # toxic serial -> does it apply to this link
        self.timers: dict[int, asyncio.Task[None]] = {}  # toxic serial -> close/reset timer
        self.tasks: list[asyncio.Task[None]] = []
        # RESP pairing: one entry per command sent upstream and not yet answered;
        # the toxic whose reply-drop it drew, or None.
        self.pending: deque[Toxic | None] = deque()
        self.req_scan = RespScanner(requests=True)
        self.rep_scan = RespScanner(requests=False)
        self.paired = True  # False once the stream is not one-reply-per-command RESP
        self.silenced = False  # a reply was dropped: every later reply is dropped too
        self.closed = False

    def applies(self, toxic: Toxic) -> bool:
        """Roll ``toxicity`` once per (link, toxic)."""
        roll = self.rolls.get(toxic.serial)
        if roll is None:
            roll = self.rolls[toxic.serial] = self.proxy.rng.random() < toxic.toxicity
        return roll

    # -- lifecycle -------------------------------------------------------

    async def run(self) -> None:
        for toxic in list(self.proxy.toxics.values()):
            self.toxic_added(toxic)
        self.tasks = [
            asyncio.create_task(self._pump(self.client_r, self.up_w, "upstream")),
            asyncio.create_task(self._pump(self.up_r, self.client_w, "downstream")),
        ]
        # Either side ending (EOF or error) ends the link, as in Toxiproxy.
        await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        self.close("flush")

    def close(self, how: str = "cut") -> None:
        """Close both sockets.

        ``flush`` sends what is buffered, then a FIN (one side ended normally);
        ``cut`` drops what is buffered and closes now (proxy down, timeout);
        ``reset`` closes with a TCP RST (``reset_peer``).
        """
        if self.closed:
            return
        self.closed = True
        me = asyncio.current_task()
        for task in [*self.tasks, *self.timers.values()]:
            if task is not me:
                task.cancel()
        for writer in (self.client_w, self.up_w):
            if how == "flush":
                writer.close()
                continue
            if how == "reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    try:  # linger on, timeout 0: close() sends RST and drops unsent data
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
            writer.transport.abort()
        self.proxy.links.discard(self)

    def toxic_added(self, toxic: Toxic) -> None:
        """Start the connection-level clock of a ``reset_peer`` or ``timeout`` toxic."""
        if toxic.type not in ("reset_peer", "timeout") or not self.applies(toxic):
            return
        ms = toxic.attributes["timeout"]
        if toxic.type == "timeout" and ms == 0:
            return  # blackhole forever: the writer drops data, nothing to schedule
        self._start_timer(toxic.serial, ms, "reset" if toxic.type == "reset_peer" else "cut")

    def toxic_removed(self, toxic: Toxic) -> None:
        timer = self.timers.pop(toxic.serial, None)
        if timer is not None:
            timer.cancel()

    def _start_timer(self, key: int, ms: float, how: str) -> None:
        async def fire() -> None:
            await asyncio.sleep(ms / 1000)
            self.close(how)

        if not self.closed and key not in self.timers:
            self.timers[key] = asyncio.create_task(fire())

    # -- data path -------------------------------------------------------

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)
        loop = asyncio.get_running_loop()
        busy = False  # the writer holds a chunk (perhaps sleeping on it)

        async def read() -> None:
            try:
                while True:
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    arrived = loop.time()
                    data = self._track_commands(data) if stream == "upstream" else self._filter_replies(data)
                    if not data:
                        continue
                    if not busy and queue.empty() and not self._shaped(stream):
                        # Nothing ahead of it and nothing to time it: skip the queue's two
                        # task switches, which would cut the proxy's throughput by half.
                        writer.write(data)
                        await writer.drain()
                    else:
                        await queue.put((arrived, data))
            except (ConnectionError, OSError):
                pass
            await queue.put(None)

        reading = asyncio.create_task(read())
        try:
            while (item := await queue.get()) is not None:
                busy = True
                await self._deliver(stream, *item, writer)
                busy = False
        except (ConnectionError, OSError):
            pass
        finally:
            reading.cancel()

    def _shaped(self, stream: str) -> bool:
        """Does a toxic that delays, paces or drops data apply to this stream of this link?"""
        return any(
            t.type in ("latency", "bandwidth", "timeout") and self.applies(t) for t in self.proxy.toxics_on(stream)
        )

    async def _deliver(self, stream: str, arrived: float, data: bytes, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        rate = 0.0
        for toxic in self.proxy.toxics_on(stream):
            if not self.applies(toxic):
                continue
            if toxic.type == "timeout":
                return  # Toxiproxy's timeout drops the data on the ground
            if toxic.type == "latency":
                jitter = toxic.attributes["jitter"]
                delay += max(0.0, toxic.attributes["latency"] + self.proxy.rng.uniform(-jitter, jitter)) / 1000
            elif toxic.type == "bandwidth" and toxic.attributes["rate"] > 0:
                bps = toxic.attributes["rate"] * 1000
                rate = bps if rate == 0 else min(rate, bps)
        wait = arrived + delay - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if rate == 0:
            writer.write(data)
            await writer.drain()
            return
        # Slices worth 100 ms each, paced against a deadline so sleeps do not drift.
        piece = max(1, int(rate / 10))
        start = loop.time()
        for offset in range(0, len(data), piece):
            part = data[offset : offset + piece]
            writer.write(part)
            await writer.drain()
            due = start + (offset + len(part)) / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())

    def _track_commands(self, data: bytes) -> bytes:
        """Note each command sent upstream, and whether its reply is to be dropped."""
        if not self.paired:
            return data
        try:
            frames = self.req_scan.feed(data)
        except RespError:
            self.paired = False  # not RESP (or not a form we follow): never interfere
            return data
        for frame in frames:
            words = frame.words
            if words[0] in _UNPAIRED or words[:2] == (b"CLIENT", b"REPLY"):
                self.paired = False
                break
            self.pending.append(self._draw_drop(words[0]))
        return data

    def _draw_drop(self, command: bytes) -> Toxic | None:
        for toxic in self.proxy.toxics.values():
            if toxic.type != "redis_drop_reply" or not self.applies(toxic):
                continue
            names = toxic.attributes["commands"]
            if names and command.decode("latin-1") not in names:
                continue
            if self.proxy.rng.random() < toxic.attributes["probability"]:
                return toxic
        return None

    def _filter_replies(self, data: bytes) -> bytes:
        """Cut the stream where the first reply to drop begins; drop all after it."""
        if self.silenced:
            return b""
        if not self.paired:
            return data
        if self.rep_scan.idle and self.pending and self.pending[0] is not None:
            self._silence(self.pending[0])
            return b""
        try:
            frames = self.rep_scan.feed(data)
        except RespError:
            self.paired = False
            return data
        for frame in frames:
            if frame.kind == "push":
                continue  # RESP3 out-of-band data answers no command
            if not self.pending:
                self.paired = False  # a reply nobody asked for: we lost track, stand aside
                return data
            self.pending.popleft()
            if self.pending and self.pending[0] is not None:
                self._silence(self.pending[0])
                return data[: frame.end]
        return data

    def _silence(self, toxic: Toxic) -> None:
        self.silenced = True
        if toxic.attributes["timeout"] > 0:
            self._start_timer(-toxic.serial, toxic.attributes["timeout"], "cut")


class Proxy:
    """One named proxy: a loopback listener, an upstream, its toxics and links."""

    def __init__(self, name: str, listen: tuple[str, int], upstream: tuple[str, int], rng: random.Random) -> None:
        self.name = name
        self.host, self.port = listen
        self.upstream = upstream
        self.enabled = True
        self.toxics: dict[str, Toxic] = {}  # insertion order is the toxic chain order
        self.links: set[Link] = set()
        self.rng = rng
        self._server: asyncio.Server | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def toxics_on(self, stream: str) -> list[Toxic]:
        return [t for t in self.toxics.values() if t.stream == stream]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": f"{self.host}:{self.port}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "enabled": self.enabled,
            "listening": self.listening,
            "connections": len(self.links),
            "toxics": [t.to_json() for t in self.toxics.values()],
        }

    async def sync_listening(self) -> None:
        """Listen iff enabled and no ``down`` toxic; going down cuts every link."""
        should = self.enabled and not any(t.type == "down" for t in self.toxics.values())
        if should and self._server is None:
            try:
                self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
            except OSError as e:
                raise ControlError(409, f"proxy {self.name}: cannot listen on {self.host}:{self.port}: {e}") from None
            # Keep the port the OS chose for ":0", so going down and up keeps the address.
            self.port = self._server.sockets[0].getsockname()[1]
        elif not should and self._server is not None:
            self._server.close()  # closes the listening socket now: new connections are refused
            self._server = None
            for link in list(self.links):
                link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.listening:
            writer.close()
            return
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*self.upstream), timeout=5)
        except (OSError, asyncio.TimeoutError):
            writer.close()  # upstream unreachable: the client sees its connection closed
            return
        if not self.listening:  # went down while we were connecting upstream
            writer.close()
            upstream[1].close()
            return
        link = Link(self, (reader, writer), upstream)
        self.links.add(link)
        try:
            await link.run()
        except asyncio.CancelledError:
            link.close("cut")  # process shutdown; asyncio would log a cancelled connection task

    def add_toxic(self, toxic: Toxic) -> None:
        if toxic.name in self.toxics:
            raise ControlError(409, f"toxic {toxic.name} already exists on proxy {self.name}")
        self.toxics[toxic.name] = toxic
        for link in list(self.links):
            link.toxic_added(toxic)

    def remove_toxic(self, name: str) -> Toxic:
        toxic = self.toxics.pop(name, None)
        if toxic is None:
            raise ControlError(404, f"toxic {name} not found on proxy {self.name}")
        for link in list(self.links):
            link.toxic_removed(toxic)
        return toxic

    def replace_toxic(self, new: Toxic) -> None:
        old = self.toxics[new.name]
        self.toxics[new.name] = new  # same position in the chain
        for link in list(self.links):
            link.toxic_removed(old)
            link.toxic_added(new)

    async def close(self) -> None:
        self.enabled = False
        await self.sync_listening()


class ProxyServer:
    """All proxies of this process and the HTTP control API that manages them."""

    def __init__(self, seed: int | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.rng = random.Random(seed)

    # -- control API -----------------------------------------------------

    async def handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, payload = 500, {"error": "internal error"}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            length = int(headers.get("content-length", "0"))
            if length > 1 << 20:
                raise ControlError(413, "request body too large")
            raw = await asyncio.wait_for(reader.readexactly(length), timeout=10) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise ControlError(400, "request body is not JSON") from None
            status, payload = await self.route(method.upper(), target.split("?", 1)[0], body)
        except ControlError as e:
            status, payload = e.status, {"error": str(e), "status": e.status}
        except ToxicError as e:
            status, payload = 400, {"error": str(e), "status": 400}
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            status, payload = 400, {"error": "malformed HTTP request", "status": 400}
        except Exception as e:  # noqa: BLE001 - the control API must answer, and say what broke
            status, payload = 500, {"error": f"{type(e).__name__}: {e}", "status": 500}
        data = b"" if status == 204 else json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large"}.get(status, "Error")
        head_out = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head_out.encode() + data)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    async def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        match (method, parts):
            case ("GET", ["version"]):
                return 200, {"version": "oversold-fault-proxy/1", "toxics": "toxiproxy-compatible"}
            case ("POST", ["reset"]):
                for proxy in self.proxies.values():
                    for name in list(proxy.toxics):
                        proxy.remove_toxic(name)
                    proxy.enabled = True
                    await proxy.sync_listening()
                return 204, None
            case ("GET", ["proxies"]):
                return 200, {name: p.to_json() for name, p in self.proxies.items()}
            case ("POST", ["proxies"]):
                return 201, (await self.create_proxy(body)).to_json()
            case ("GET", ["proxies", name]):
                return 200, self._proxy(name).to_json()
            case ("POST" | "PATCH", ["proxies", name]):
                return 200, (await self.update_proxy(self._proxy(name), body)).to_json()
            case ("DELETE", ["proxies", name]):
                proxy = self._proxy(name)
                await proxy.close()
                del self.proxies[name]
                return 204, None
            case ("GET", ["proxies", name, "toxics"]):
                return 200, [t.to_json() for t in self._proxy(name).toxics.values()]
            case ("POST", ["proxies", name, "toxics"]):
                proxy = self._proxy(name)
                toxic = Toxic.from_json(body)
                proxy.add_toxic(toxic)
                await proxy.sync_listening()
                return 200, toxic.to_json()
            case ("GET", ["proxies", name, "toxics", toxic_name]):
                return 200, self._toxic(self._proxy(name), toxic_name).to_json()
            case ("POST" | "PATCH", ["proxies", name, "toxics", toxic_name]):
                proxy = self._proxy(name)
                toxic = self._toxic(proxy, toxic_name).updated(body)
                proxy.replace_toxic(toxic)
                return 200, toxic.to_json()
            case ("DELETE", ["proxies", name, "toxics", toxic_name]):
                proxy = self._proxy(name)
                proxy.remove_toxic(toxic_name)
                await proxy.sync_listening()
                return 204, None
        if parts and parts[0] in ("proxies", "reset", "version") and len(parts) <= 4:
            raise ControlError(405, f"{method} not allowed on {path}")
        raise ControlError(404, f"no such endpoint: {path}")

    def _proxy(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ControlError(404, f"proxy {name} not found")
        return proxy

    @staticmethod
    def _toxic(proxy: Proxy, name: str) -> Toxic:
        toxic = proxy.toxics.get(name)
        if toxic is None:
            raise ControlError(404, f"toxic {name} not found on proxy {proxy.name}")
        return toxic

    async def create_proxy(self, body: Any) -> Proxy:
        if not isinstance(body, dict):
            raise ControlError(400, "proxy: expected a JSON object")
        unknown = set(body) - {"name", "listen", "upstream", "enabled"}
        if unknown:
            raise ControlError(400, f"proxy: unknown field(s) {sorted(unknown)}")
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ControlError(400, f"name: expected letters, digits, '_', '.', '-', got {name!r}")
        if name in self.proxies:
            raise ControlError(409, f"proxy {name} already exists")
        listen = split_address(body.get("listen", "127.0.0.1:0"), "listen")
        if not _is_loopback(listen[0]):
            raise ControlError(400, f"listen: only loopback addresses are allowed, got {listen[0]!r}")
        upstream = split_address(body.get("upstream"), "upstream")
        if upstream[1] == 0:
            raise ControlError(400, "upstream: port 0 is not an address")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ControlError(400, f"enabled: expected true or false, got {enabled!r}")
        proxy = Proxy(name, listen, upstream, self.rng)
        proxy.enabled = enabled
        await proxy.sync_listening()
        self.proxies[name] = proxy
        return proxy

    async def update_proxy(self, proxy: Proxy, body: Any) -> Proxy:
        if not isinstance(body, dict):
            raise ControlError(400, "proxy: expected a JSON object")
        unknown = set(body) - {"name", "listen", "upstream", "enabled"}
        if unknown:
            raise ControlError(400, f"proxy: unknown field(s) {sorted(unknown)}")
        if body.get("name", proxy.name) != proxy.name:
            raise ControlError(400, "name: cannot be changed")
        if "upstream" in body:
            # New links go to the new upstream; links already open keep theirs.
            proxy.upstream = split_address(body["upstream"], "upstream")
        if "listen" in body:
            listen = split_address(body["listen"], "listen")
            if not _is_loopback(listen[0]):
                raise ControlError(400, f"listen: only loopback addresses are allowed, got {listen[0]!r}")
            if listen != (proxy.host, proxy.port):
                was = proxy.enabled
                await proxy.close()
                proxy.host, proxy.port = listen
                proxy.enabled = was
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise ControlError(400, f"enabled: expected true or false, got {body['enabled']!r}")
            proxy.enabled = body["enabled"]
        await proxy.sync_listening()
        return proxy

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()


async def serve(host: str, port: int, seed: int | None) -> None:
    """Run the control API on ``host:port`` until SIGTERM or SIGINT."""
    if not _is_loopback(host):
        raise SystemExit(f"--host must be a loopback address, got {host!r}")
    state = ProxyServer(seed)
    server = await asyncio.start_server(state.handle_http, host, port, reuse_address=True)
    actual = server.sockets[0].getsockname()[1]
    print(f"oversold fault proxy: control API on http://{host}:{actual}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await state.close()
    print("oversold fault proxy: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oversold.chaos.proxy", description="oversold fault proxy")
    parser.add_argument("--host", default="127.0.0.1", help="control API address (loopback only)")
    parser.add_argument("--port", type=int, default=8474, help="control API port (Toxiproxy's default)")
    parser.add_argument("--seed", type=int, default=None, help="seed for toxicity and jitter draws")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.seed))
    except OSError as e:
        print(f"oversold fault proxy: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
