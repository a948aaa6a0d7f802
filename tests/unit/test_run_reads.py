"""The orchestrator's reads through the adapter: any node that answers, and the counter timeline."""

from __future__ import annotations

import json

from backend_util import wait_for

from oversold.adapters.outcome import Outcome
from oversold.orchestrate.sampler import CounterSampler, read_timeline


def test_the_sampler_writes_counters_and_gaps(tmp_path):
    answers = iter([
        Outcome("ok", 200, None, {"available": 5, "held": 1, "sold": 4, "strategy": "pre_deduct", "async": True}),
        Outcome("info", 503, "unavailable", None),
        Outcome("info", 0, None, None, ConnectionRefusedError()),
    ])
    last = Outcome("ok", 200, None, {"available": 0, "held": 0, "sold": 10})
    path = tmp_path / "timeline.jsonl"
    sampler = CounterSampler(lambda sale_id: next(answers, last), "s", path, interval_s=0.01).start()
    try:
        assert wait_for(lambda: sampler.samples >= 4, timeout=5)
    finally:
        sampler.stop()
    samples = read_timeline(path)
    fields = [{k: v for k, v in s.items() if k not in ("t", "harness_rss_mib")} for s in samples]
    # every sample, a failed read too, carries the harness's memory (this process here)
    assert all(0 < s["harness_rss_mib"] < 4096 for s in samples)
    assert fields[:4] == [{"available": 5, "held": 1, "sold": 4}, {"error": "HTTP 503"},
                          {"error": "ConnectionRefusedError"}, {"available": 0, "held": 0, "sold": 10}]
    assert all(isinstance(s["t"], float) for s in samples)
    assert json.loads(path.read_text().splitlines()[0])["available"] == 5
