"""The pytest entry point for users' own suites, tried the way a user would: a test file in
another directory, run by pytest in a subprocess, the plugin loaded from its entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_scenario import write_tiny


def test_a_bad_host_is_bad_input(tmp_path: Path):
    from oversold.errors import BadInput
    from oversold.pytest_plugin import OversoldRunner

    runner = OversoldRunner(tmp_path)
    with pytest.raises(BadInput, match=r"--host: 'https://127.0.0.1:9' must be an http://host\[:port\] URL"):
        runner(write_tiny(tmp_path), host="https://127.0.0.1:9")
    assert runner.results == [] and not list(tmp_path.glob("oversold-*"))
