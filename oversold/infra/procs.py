"""Child processes on loopback: free ports, start, wait for a port, stop by pid.

Only processes this module started are ever signalled, by their own pid (and
their own process group, which each child leads), never by name.

Usage::

    port = free_port()
    child = Child.start(["redis-server", "--port", str(port)], name="redis", log_dir=tmp)
    wait_for_port(port, timeout=5, child=child)
    child.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Child:
    """One child process this harness started, in its own process group."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None = None
    argv: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        argv: list[str],
        *,
        name: str,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> "Child":
        log_path = None
        out = subprocess.DEVNULL
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / f"{name}.log"
            out = open(log_path, "ab")
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # own group: a Ctrl-C to us does not reach it first
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        return cls(name=name, popen=popen, log_path=log_path, argv=list(argv))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to exit by itself; whether it did."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this child's own process group (it and what it spawned)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; a paused child is resumed first."""
        if not self.alive():
            self.popen.wait()
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=timeout)


def wait_for_port(port: int, *, timeout: float, child: Child | None = None, host: str = LOOPBACK) -> bool:
    """Wait until ``host:port`` accepts connections; False on timeout or if ``child`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        if child is not None and not child.alive():
            return False
        time.sleep(0.02)
    return False


def wait_for_url(url: str, *, timeout: float, child: Child | None = None) -> bool:
    """Wait until a GET of ``url`` (a loopback URL) answers 2xx; False on timeout or if ``child`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as answer:
                if 200 <= answer.status < 300:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass  # not listening yet, or answering an error: not ready
        if child is not None and not child.alive():
            return False
        time.sleep(0.05)
    return False


def rss_mib(alone: Iterable[int] = (), trees: Iterable[int] = ()) -> float | None:
    """Resident memory (MiB) from /proc of the processes ``alone`` and of the processes ``trees`` with all
    their descendants; None if none of them is alive.

    Usage::

        rss_mib(alone=[os.getpid()], trees=[locust.pid])   # this process; Locust's master and its workers
    """
    page = os.sysconf("SC_PAGE_SIZE")
    seen: set[int] = set()
    todo = [(pid, False) for pid in alone] + [(pid, True) for pid in trees]
    total = 0
    while todo:
        pid, descend = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1]) * page
            if descend:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                        todo.extend((int(c), True) for c in f.read().split())
        except (OSError, ValueError, IndexError):  # gone meanwhile: it holds no memory
            continue
    return round(total / (1 << 20), 1) if total else None
