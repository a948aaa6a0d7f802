"""Redis Cluster, the pure parts: slot ranges, CLUSTER NODES lines, cluster URLs, what a cluster scenario
may ask for, and when a bucketed sale may say sold out. The real cluster is in tests/integration/test_cluster.py."""

from __future__ import annotations

import pytest

from oversold.chaos.cluster import cluster_url, parse_nodes, slot_ranges
from oversold.errors import ScenarioError
from oversold.model.roles import expected_roles
from oversold.model.scenario_file import parse_scenario
from reference_backend.cluster_pool import ClusterURLError, parse_cluster_url
from reference_backend.strategies.pre_deduct_buckets import Look, nothing_elsewhere


def test_slots_are_split_evenly_and_cover_every_slot():
    assert slot_ranges(1) == [(0, 16383)]
    assert slot_ranges(3) == [(0, 5460), (5461, 10921), (10922, 16383)]
    with pytest.raises(ValueError):
        slot_ranges(0)


def test_cluster_nodes_lines_are_parsed():
    text = ("07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n"
            "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-abc]\n"
            "6ec2 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315230 2 disconnected\n")
    rows = parse_nodes(text)
    assert [(r["id"], r["port"], r["master"], r["link"]) for r in rows] == [
        ("07c3", 30004, "e7d1", "connected"), ("e7d1", 30001, None, "connected"), ("6ec2", 30002, None, "disconnected")]
    assert rows[1]["flags"] == {"myself", "master"} and rows[1]["slots"] == [(0, 5460), (5462, 5462)]
    assert rows[2]["flags"] == {"master", "fail"} and rows[2]["slots"] == []


def test_cluster_urls_round_trip_and_bad_ones_are_refused():
    url = cluster_url([("127.0.0.1", 7000), ("::1", 7001)])
    assert url == "redis+cluster://127.0.0.1:7000,[::1]:7001"
    assert parse_cluster_url(url) == [("127.0.0.1", 7000), ("::1", 7001)]
    for bad in ("redis://127.0.0.1:7000", "redis+cluster://", "redis+cluster://127.0.0.1",
                "redis+cluster://127.0.0.1:7000/0", "redis+cluster://u:p@127.0.0.1:7000", "redis+cluster://h:99999"):
        with pytest.raises(ClusterURLError):
            parse_cluster_url(bad)


def scenario(**redis_cfg) -> dict:
    return {"sale": {"strategy": "pre_deduct_buckets", "buckets": 4}, "redis": {"topology": "cluster", **redis_cfg}}


def test_a_cluster_scenario_has_one_primary_target_per_shard_and_refuses_what_it_cannot_run():
    s = parse_scenario(scenario(shards=5) | {"faults": [{"action": "failover", "role": "redis-primary", "target": 4}]})
    assert expected_roles(s) == {"backend": 2, "clock": 2, "redis-primary": 5}
    with pytest.raises(ScenarioError) as e:
        parse_scenario(scenario(proxy=True, url="redis://127.0.0.1:1/0", persistence="aof")
                       | {"chaos": {"driver": "docker"}})
    problems = "\n".join(e.value.problems)
    for expected in ("redis.topology: cluster is a topology the harness starts", "redis.proxy:",
                     "chaos.driver: docker runs a single Redis", "redis.persistence:"):
        assert expected in problems, problems
    with pytest.raises(ScenarioError, match="backend.ledger: strategy pre_deduct_buckets cannot be synced"):
        parse_scenario(scenario() | {"backend": {"ledger": True}})
    with pytest.raises(ScenarioError, match="redis.topology: cluster has no warehouse ledger sync"):
        parse_scenario(scenario() | {"sale": {"strategy": "pre_deduct_ledger"}})
    with pytest.raises(ScenarioError, match="failover needs redis.topology: sentinel or cluster"):
        parse_scenario({"faults": [{"action": "failover", "role": "redis-primary"}]})
    with pytest.raises(ScenarioError, match="target"):  # shard 3 of 3 does not exist
        parse_scenario(scenario() | {"faults": [{"action": "kill", "role": "redis-primary", "target": 3}]})


# -- pre_deduct_buckets: when may an order say sold out ------------------------------------------------------


def look(*avail: int, sent: dict[int, int] | None = None, sends: dict[int, int] | None = None) -> list[Look]:
    """One look at every bucket: bucket b has avail[b] units, sends[b] transfers sent ever, sent[b] in flight."""
    return [Look(units, (sends or {}).get(b, 0), (sent or {}).get(b, 0)) for b, units in enumerate(avail)]


def test_sold_out_is_proven_only_by_two_empty_looks_with_nothing_sent_between():
    assert nothing_elsewhere(look(0, 0, 0), look(0, 0, 0), home=0)
    assert nothing_elsewhere(look(3, 0, 0), look(1, 0, 0), home=0)  # the home bucket answers for itself
    assert nothing_elsewhere(look(0, 0, 0, sends={1: 4}), look(0, 0, 0, sends={1: 4}), home=2)  # old transfers
    # a unit went from bucket 2 (not yet read in the second look) to bucket 1 (already read): both looks
    # miss it, but bucket 2 counted the transfer
    assert not nothing_elsewhere(look(0, 0, 0), look(0, 0, 0, sends={2: 1}), home=0)
    assert not nothing_elsewhere(look(0, 0, 0), look(0, 1, 0), home=0)  # a unit elsewhere
    assert not nothing_elsewhere(look(0, 2, 0), look(0, 0, 0), home=0)  # ... or taken since, by whom is unknown
    assert not nothing_elsewhere(look(0, 0, 0, sent={2: 1}), look(0, 0, 0), home=0)  # in flight
    assert not nothing_elsewhere(look(0, 0, 0), look(0, 0, 0, sent={0: 1}), home=0)  # from home, too
    assert not nothing_elsewhere(look(0, 0, 0), None, home=0)  # a bucket gone: no proof
    assert not nothing_elsewhere(look(0, 0, 0), look(0, 0), home=0)
