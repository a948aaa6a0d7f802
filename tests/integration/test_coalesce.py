"""Request coalescing: one batch of mixed outcomes on a real node and Redis. The Coalescer alone is in
tests/unit/test_coalesce.py."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import pytest
import redis

from backend_util import assert_conserved, concurrently, wait_for
from oversold.orchestrate.nodes import BackendNode
from reference_backend import lua

# -- one batch of mixed outcomes: a real node (window 800 ms) on a real Redis ----------------------

POLICY = {"enabled": True, "suspect_limit": 1}
SCALPER = {"account_age_days": 1, "past_purchases": 0, "activity_score": 0.0, "membership_age_days": 1}
SUSPECT = {"account_age_days": 1, "past_purchases": 0, "activity_score": 0.9, "membership_age_days": 1}


@pytest.fixture(scope="module")
def slow_window_node(redis_server, tmp_path_factory, admin_token):
    """A node that waits 800 ms for a sale's batch to fill, so concurrent orders surely share one call."""
    node = BackendNode.start(redis_server.url, name="coalescer", admin_token=admin_token,
                             log_dir=tmp_path_factory.mktemp("coalescer"),
                             extra_args=("--coalesce-window-us", "800000", "--reap-interval-ms", "50"))
    yield node
    node.stop()


class ScriptCalls:
    """Counts the calls of one script Redis runs, from its slow log with every command logged.

    Other scripts (the reapers of every node on this Redis) run meanwhile, so
    INFO's per-command counts cannot tell them apart; the slow log has the sha.
    """

    def __init__(self, r: redis.Redis, source: str) -> None:
        self.r = r
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()
        self.saved = r.config_get("slowlog-*")
        r.config_set("slowlog-max-len", 100_000)
        r.config_set("slowlog-log-slower-than", 0)
        r.slowlog_reset()

    def count(self) -> int:
        entries = self.r.slowlog_get(100_000)
        for name, value in self.saved.items():
            self.r.config_set(name, value)
        return sum(1 for e in entries if e["command"].split()[:2] == [b"EVALSHA", self.sha])


def test_one_script_call_answers_each_order_of_a_mixed_batch(redis_url, slow_window_node):
    node = slow_window_node
    client = node.client(timeout=10)
    status, body = client.put_sale("mix", stock=10, hold_ttl_ms=1500, strategy="pre_deduct_coalesced",
                                   scalper_policy=POLICY,
                                   profiles={"scalper": SCALPER, "suspect": SUSPECT})
    assert status == 200, body
    assert client.order("mix", "warm-up", 1)[0] == 201  # loads the batch script (NOSCRIPT once)
    r = redis.Redis.from_url(redis_url)
    calls = ScriptCalls(r, lua.source("pre_deduct_order_batch"))
    requests = [
        ("alice", 1, "a1"), ("alice", 1, "a2"),  # two orders of one user: both held
        ("suspect", 1, "s1"), ("suspect", 1, "s2"),  # the policy limits this user to 1: one held, one refused
        ("scalper", 1, "x1"),  # the policy refuses this one
        ("carol", 1, "c1"), ("carol", 1, "c1"),  # a double click: one order, one answer
        ("gina", 1, "g1"), ("gina", 2, "g1"),  # one key for two requests: one answered, one 422
        ("frank", 50, "f1"),  # more than is left: sold out
    ]
    results = concurrently([lambda u=u, q=q, k=k: node.client(timeout=10).order("mix", u, q, key=k)
                            for u, q, k in requests])
    assert calls.count() == 1  # every order above went to Redis in one script call
    by_user: dict[str, list] = defaultdict(list)
    for (user, _, _), (status, body) in zip(requests, results):
        by_user[user].append((status, body.get("error", {}).get("code") if status >= 400 else None))
    assert by_user["alice"] == [(201, None), (201, None)]
    assert Counter(by_user["suspect"]) == {(201, None): 1, (409, "limit_exceeded"): 1}
    assert by_user["scalper"] == [(409, "risk_rejected")]
    carol = [body for (user, _, _), (_, body) in zip(requests, results) if user == "carol"]
    assert carol[0] == carol[1] and carol[0]["status"] == "held"  # the replay is the first answer
    assert Counter(by_user["gina"]) == {(201, None): 1, (422, "idempotency_conflict"): 1}
    assert by_user["frank"] == [(409, "sold_out")]
    held = [body for status, body in results if status == 201]
    assert len({b["order_id"] for b in held}) == 5  # alice 2, suspect 1, carol 1, gina 1
    assert all(b["expires_ms"] - b["created_ms"] == 1500 for b in held)  # each a hold with the sale's TTL
    audit = assert_conserved(client, "mix")
    holds = {h["order_id"]: h["qty"] for h in audit["holds"]}
    assert {b["order_id"]: b["qty"] for b in held}.items() <= holds.items()  # each one held, as answered
    # the holds expire like any pre_deduct hold, and their units come back
    r.close()
    assert wait_for(lambda: assert_conserved(client, "mix")["counters"]["available"] == 10, timeout=5)
