"""The HTTP server a node runs its ASGI app under, inside this process's own loop.

Two are offered because which is faster depends on the machine and the app:
``benchmarks/order_path.py`` measures the reference app under both in one run. Here
(2 cores shared by wrk, Redis and the node) uvicorn served the reference node faster:
2092 against 1698 req/s one call per order, 6243 against 4436 with coalesced orders
(``results/order_path_coalesced.json``, benchmarks/README.md), and it suffers less when
the machine is busy (granian hands every request from its Rust thread to the asyncio
loop), so ``DEFAULT_SERVER`` is uvicorn. Either way a node stays one OS process with no
workers, so SIGKILL of its pid kills exactly one node; both stop cleanly through ``stop()``.

Fixed: under uvicorn a node used to keep running after SIGTERM now and then (3 of 200
SIGTERMs in a loop, 10 of 520 over four batches). The signal was handled and uvicorn
stopped (the port closed); the node then hung in its own shutdown, waiting for a
background loop (the webhook forwarder) whose ``cancel()`` had been swallowed by
Python 3.11's ``asyncio.wait_for`` inside a redis-py send (CPython gh-86296).
``node.cancel_and_wait`` cancels again until each task has ended: 0 of 200 since
(and 0 of 150 against 12 of 150 without it, measured back to back).
Uvicorn's 100 ms polling in ``main_loop``/``shutdown`` likely lined the cancel up with
the node's 100/200 ms loops, which is why granian (stopped by an event) was not seen
to hang; the fix covers both.

Usage::

    server = make_server("uvicorn", app, host="127.0.0.1", port=8001, backlog=1024)
    loop.add_signal_handler(signal.SIGTERM, server.stop)
    await server.serve()
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

SERVERS = ("granian", "uvicorn")
DEFAULT_SERVER = "uvicorn"  # the faster here for the reference node (see above)


class PortTaken(OSError):
    """The node's port is already bound by another process."""


def ensure_port_free(host: str, port: int) -> None:
    """Raise ``PortTaken`` when ``host:port`` is already bound, whichever server will serve it.

    Granian binds with SO_REUSEPORT, so a second node on a taken port started anyway and the
    kernel split the connections between the two; uvicorn refused. A bind without SO_REUSEPORT
    fails against any listener, so both servers refuse the same way. SO_REUSEADDR, as both
    servers set it, keeps a port whose old connections linger in TIME_WAIT usable (a restarted
    node). A process that binds the port in the instant between this probe and the server's own
    bind is not caught; nothing here starts two nodes on one port at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortTaken(e.errno, f"port {port} on {host} is already in use by another process") from None
            raise


class _DropExperimentalNotice(logging.Filter):
    """Granian's embedded server warns "Embedded server is experimental!" on every start; a node
    starts it on purpose (one process, no workers), so the line is noise in every node's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Embedded server is experimental!"


@dataclass(frozen=True)
class EmbeddedServer:
    """A server bound to one app: ``serve()`` runs until ``stop()`` is called."""

    serve: Callable[[], Awaitable[None]]
    stop: Callable[[], None]


def make_server(kind: str, app: Any, *, host: str, port: int, backlog: int) -> EmbeddedServer:
    if kind == "granian":
        from granian.constants import HTTPModes, Interfaces
        from granian.log import LogLevels
        from granian.server.embed import Server

        server = Server(
            app, address=host, port=port,
            interface=Interfaces.ASGINL,  # no lifespan: the node sets up and tears down itself
            http=HTTPModes.http1, websockets=False, backlog=backlog, log_level=LogLevels.warning,
        )
        granian_log = logging.getLogger("_granian")
        if not any(isinstance(f, _DropExperimentalNotice) for f in granian_log.filters):
            granian_log.addFilter(_DropExperimentalNotice())
        return EmbeddedServer(serve=server.serve, stop=server.stop)
    if kind == "uvicorn":
        import uvicorn

        class _Server(uvicorn.Server):
            # the node owns SIGTERM/SIGINT (loop handlers that call stop); uvicorn's own
            # capture would re-raise the signal after shutdown and skip the node's cleanup
            def capture_signals(self):  # type: ignore[override]
                return contextlib.nullcontext()

        config = uvicorn.Config(
            app, host=host, port=port, backlog=backlog, http="httptools", loop="none", lifespan="off",
            interface="asgi3", log_level="warning", access_log=False, server_header=False, date_header=False,
            timeout_graceful_shutdown=2,  # SIGTERM must stop the node promptly, as granian does
        )
        server = _Server(config)

        def stop() -> None:
            # force: do not wait on keep-alive connections or tasks (seen hanging >10 s now and
            # then); the node's own finally releases Redis and the ledger either way
            server.should_exit = True
            server.force_exit = True

        return EmbeddedServer(serve=server.serve, stop=stop)
    raise ValueError(f"server: must be one of {', '.join(SERVERS)}, got {kind!r}")
