"""Unit tests are pure: a test here that opens a socket or starts a process fails, so it belongs in integration/."""

from __future__ import annotations

import socket
import subprocess

import pytest


class NotAUnitTest(RuntimeError):
    """A unit test reached for the network or a child process."""


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise NotAUnitTest("unit tests open no socket and start no process: move this test to tests/integration/")


@pytest.fixture(autouse=True)
def _no_sockets_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
