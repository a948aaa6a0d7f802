"""Headless Chromium for the tests that look at a page as a person's browser draws it.

``chromium()`` finds Debian's ``chromium`` on PATH, installing it through
``scripts/chromium.sh`` when missing (``scripts/test.sh`` installs it up front through
``scripts/system-deps.sh``); it skips with the reason when it cannot, and fails under
``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from paths import REPO


def chromium() -> str:
    """Chromium on PATH, installing Debian's package through scripts/chromium.sh when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    r = subprocess.run(["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=900)
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip().splitlines()[-1]
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but chromium could not be installed: {r.stderr[-2000:]}")
    pytest.skip(f"no chromium and it could not be installed: {r.stderr.strip()[-300:]}")
    raise AssertionError("unreachable")


def chromium_run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run with its own profile directory (``--dump-dom``, ``--screenshot``...)."""
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)
