"""The guard of tests/unit/conftest.py works: a socket or a child process fails a unit test."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from unit.conftest import NotAUnitTest


def test_a_unit_test_cannot_connect_a_socket():
    with socket.socket() as s, pytest.raises(NotAUnitTest):
        s.connect(("127.0.0.1", 9))


def test_a_unit_test_cannot_start_a_process():
    with pytest.raises(NotAUnitTest):
        subprocess.run([sys.executable, "-c", "pass"])
