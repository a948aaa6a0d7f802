"""The ``oversold`` command's checks that come before anything is started (in-process, pure)."""

from __future__ import annotations

import signal

import pytest
from paths import REPO

from oversold.cli import main


@pytest.fixture(autouse=True)
def _keep_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_run_out_refuses_a_directory_that_holds_another_run(tmp_path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "results.json").write_text('{"verdict": "pass"}')
    rc = main(["run", str(REPO / "scenarios" / "flash_sale.yaml"), "--out", str(out), "-q"])
    assert rc == 4
    assert f"--out: {out} already exists and is not empty" in capsys.readouterr().err
    assert (out / "results.json").read_text() == '{"verdict": "pass"}'  # untouched
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_main_honours_sigint_even_when_it_started_ignored(tmp_path):
    """A shell without job control starts a background command with SIGINT ignored; oversold
    installs Python's KeyboardInterrupt handler again, so Ctrl-C/`kill -INT` unwinds and cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main(["check", str(tmp_path / "no-such-run")])  # returns 4 at once; the handlers are set first
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
