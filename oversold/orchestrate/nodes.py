"""Reference backend nodes as child processes: start, wait for health, stop.

Each node is one ``python -m reference_backend`` process on its own loopback
port, so a fault can kill exactly one node.

Usage::

    node = BackendNode.start(redis.url, name="n1", admin_token="secret", log_dir=run_dir)
    status, body = node.client().health()
    node.stop()

    nodes = start_nodes(3, redis.url, admin_token="secret")
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oversold.adapters.contract_client import ContractClient, TransportError
from oversold.errors import BackendUnavailable
from oversold.infra.procs import LOOPBACK, Child, free_port


@dataclass
class BackendNode:
    """One running reference backend node this harness started."""

    name: str
    port: int
    child: Child
    admin_token: str
    redis_url: str
    host: str = LOOPBACK
    _tmp_logs: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def spawn(
        cls,
        redis_url: str,
        *,
        name: str,
        admin_token: str,
        log_dir: Path | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> "BackendNode":
        """Start the process without waiting for it; see ``wait_ready``."""
        tmp_logs = None
        if log_dir is None:  # keep a log anyway, for the tail in a failure message
            tmp_logs = log_dir = Path(tempfile.mkdtemp(prefix="oversold-node-"))
        p = port or free_port()
        argv = [
            sys.executable, "-m", "reference_backend", "--port", str(p), "--redis-url", redis_url,
            "--node-name", name, "--host", LOOPBACK, *extra_args,
        ]
        env = dict(os.environ, OVERSOLD_ADMIN_TOKEN=admin_token, PYTHONUNBUFFERED="1")
        child = Child.start(argv, name=name, log_dir=log_dir, env=env)
        return cls(name=name, port=p, child=child, admin_token=admin_token, redis_url=redis_url, _tmp_logs=tmp_logs)

    @classmethod
    def start(
        cls,
        redis_url: str,
        *,
        name: str,
        admin_token: str,
        log_dir: Path | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 15.0,
    ) -> "BackendNode":
        """Start a node and wait until ``GET /v1/health`` answers 200.

        A free port can be taken between picking it and binding it, so a node that
        dies at once is started again on another port (unless ``port`` was given).
        """
        for attempt in range(3):
            node = cls.spawn(redis_url, name=name, admin_token=admin_token, log_dir=log_dir, port=port,
                             extra_args=extra_args)
            try:
                node.wait_ready(timeout)
                return node
            except BackendUnavailable:
                if port is not None or node.child.alive() or attempt == 2:
                    node.stop()
                    raise
                node.stop()
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait for health 200; raise ``BackendUnavailable`` with the log tail if it never comes."""
        client = self.client(timeout=1.0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.child.alive():
                    raise BackendUnavailable(
                        f"backend node {self.name} exited with {self.child.popen.returncode}; log:\n{self.log_tail()}"
                    )
                try:
                    status, body = client.health()
                    if status == 200:
                        return
                except TransportError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise BackendUnavailable(
            f"backend node {self.name} on {self.url} not healthy after {timeout:.0f}s; log:\n{self.log_tail()}"
        )

    def client(self, timeout: float = 5.0) -> ContractClient:
        return ContractClient(self.url, admin_token=self.admin_token, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        return self.child.log_tail(lines)

    def alive(self) -> bool:
        return self.child.alive()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout``."""
        self.child.stop(timeout)
        if self._tmp_logs is not None:
            shutil.rmtree(self._tmp_logs, ignore_errors=True)
            self._tmp_logs = None

    def __enter__(self) -> "BackendNode":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_nodes(
    n: int,
    redis_url: str,
    *,
    admin_token: str,
    log_dir: Path | None = None,
    name_prefix: str = "node",
    extra_args: Sequence[str] = (),
    timeout: float = 15.0,
) -> list[BackendNode]:
    """Start ``n`` nodes named ``<prefix>-1`` … in parallel; all healthy, or none left running."""
    nodes = [
        BackendNode.spawn(redis_url, name=f"{name_prefix}-{i}", admin_token=admin_token, log_dir=log_dir,
                          extra_args=extra_args)
        for i in range(1, n + 1)
    ]
    try:
        for i, node in enumerate(nodes):
            try:
                node.wait_ready(timeout)
            except BackendUnavailable:
                if node.child.alive():
                    raise
                node.stop()  # most likely lost its port in a race: once more, the careful way
                nodes[i] = BackendNode.start(redis_url, name=node.name, admin_token=admin_token, log_dir=log_dir,
                                             extra_args=extra_args, timeout=timeout)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes
