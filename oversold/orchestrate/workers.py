"""The reference backend's worker processes as children: the stock sync worker and order processors.

Each is one OS process, so a fault can kill exactly one. Neither listens on a
port; a worker is ready once it printed its start line.

Usage::

    sync = start_sync_worker(redis.url, ledger_path, log_dir=run_dir, interval_ms=50)
    orders = [start_order_worker(redis.url, name=f"orders-{i}", log_dir=run_dir) for i in (1, 2)]
    ...
    for child in (sync, *orders):
        child.stop()
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from oversold.errors import BackendUnavailable
from oversold.infra.procs import Child


def sync_worker_argv(
    redis_url: str, ledger_path: str | Path, *, interval_ms: int = 100, delay_ms: int = 0,
    consumer: str = "sync-1", extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line of ``python -m reference_backend.sync``."""
    return [
        sys.executable, "-m", "reference_backend.sync", "--redis-url", redis_url, "--ledger", str(ledger_path),
        "--interval-ms", str(interval_ms), "--delay-ms", str(delay_ms), "--consumer", consumer, *extra_args,
    ]


def order_worker_argv(redis_url: str, *, name: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line of ``python -m reference_backend.order_worker``."""
    return [sys.executable, "-m", "reference_backend.order_worker", "--redis-url", redis_url, "--name", name,
            *extra_args]


def start_sync_worker(
    redis_url: str, ledger_path: str | Path, *, log_dir: Path, name: str = "sync", timeout: float = 15.0,
    **options: object,
) -> Child:
    """Start the stock sync worker and wait for its start line; options as ``sync_worker_argv``."""
    argv = sync_worker_argv(redis_url, ledger_path, **options)  # type: ignore[arg-type]
    return _start(argv, name=name, log_dir=log_dir, ready="sync worker", timeout=timeout)


def start_order_worker(
    redis_url: str, *, name: str, log_dir: Path, extra_args: Sequence[str] = (), timeout: float = 15.0,
) -> Child:
    """Start one order processor (consumer ``name``) and wait for its start line."""
    argv = order_worker_argv(redis_url, name=name, extra_args=extra_args)
    return _start(argv, name=name, log_dir=log_dir, ready="order worker", timeout=timeout)


def _start(argv: list[str], *, name: str, log_dir: Path, ready: str, timeout: float) -> Child:
    child = Child.start(argv, name=name, log_dir=log_dir, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in child.log_tail(50):
            return child
        if not child.alive():
            break
        time.sleep(0.02)
    child.stop()
    raise BackendUnavailable(f"{name} did not start ({' '.join(argv[2:4])}); log:\n{child.log_tail()}")
