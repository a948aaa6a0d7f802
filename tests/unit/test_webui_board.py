"""The verdict board's rows and its entry in Locust's ``/stats/requests``, on a real Flask app."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from flask import Flask, jsonify

from oversold.swarm.webui import TAB_KEY, VerdictBoard


def _web_ui() -> SimpleNamespace:
    """What the board uses of Locust's WebUI; ``/stats/requests`` answers one cached response object,
    as Locust's own memoized route does between refreshes."""
    app = Flask("webui-test")
    cached = {}

    @app.route("/stats/requests")
    def stats():
        if "response" not in cached:
            cached["response"] = jsonify({"stats": [], "extended_stats": [{"key": "theirs", "data": [1]}]})
        return cached["response"]

    return SimpleNamespace(app=app, template_args={}, auth_required_if_enabled=lambda f: f)


def test_each_poll_carries_one_fresh_entry_even_from_a_cached_response():
    board, ui = VerdictBoard(), _web_ui()
    board.attach(ui)
    client = ui.app.test_client()
    board.started(1, Path("runs/test-1"))
    first = client.get("/stats/requests").get_json()["extended_stats"]
    board.finished(1, "pass", 0, "every invariant holds")
    board.started(2, Path("runs/test-2"))
    for _ in range(3):
        polled = client.get("/stats/requests").get_json()["extended_stats"]
    assert [e["key"] for e in first] == ["theirs", TAB_KEY] and [r["state"] for r in first[1]["data"]] == ["running"]
    assert [e["key"] for e in polled] == ["theirs", TAB_KEY]
    assert [(r["test"], r["state"]) for r in polled[1]["data"]] == [(2, "running"), (1, "pass")]
    assert [t["key"] for t in ui.template_args["extended_tabs"]] == [TAB_KEY]
    assert client.get("/oversold/runs").get_json()[1]["detail"] == "every invariant holds"
