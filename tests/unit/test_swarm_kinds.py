"""Every kind of buyer and bot, the load shape, and the scenario locustfiles on real backend nodes.

Pure units first (scenario sections, bot farms, the crowd curve), then real
``locust`` runs of ``locustfiles/*.py`` against the two real reference nodes
of ``tests/conftest.py``: each locustfile sets its sale up, runs, checks the
run itself and exits with the verdict's code. Nothing from Locust is imported
here: importing locust monkey-patches the test process.
"""

from __future__ import annotations

import pytest

from oversold.errors import ScenarioError
from oversold.model.scenario import USER_KINDS, Scenario
from oversold.model.scenario_file import parse_scenario
from oversold.swarm.crowd import users_at
from oversold.swarm.profiles import SCALPER_PROFILE, batches, bot_profiles, farm_accounts

# -- pure units -------------------------------------------------------------------------


def test_kinds_and_their_sections() -> None:
    assert set(USER_KINDS) >= {"buyer", "hoarder", "scalper", "double_clicker", "late_payer", "simultaneous_payer"}
    s = parse_scenario({"swarm": {
        "mix": {"scalper": 1, "late_payer": 2},
        "scalper": {"parallel": 8, "retries": 0, "accounts": 5, "wait_ms": [1, 2]},
        "hoarder": {"burst": 3, "accounts": 10, "register_profiles": True},
        "double_clicker": {"clicks": 3, "new_key_rate": 1.0},
        "late_payer": {"late_ms": [0, 10]},
        "simultaneous_payer": {"lead_ms": 250},
        "buyer": {"browse_rate": 0.5},
    }})
    sw = s.swarm
    assert (sw.scalper.parallel, sw.scalper.retries, sw.scalper.wait_ms, sw.scalper.register_profiles) == (8, 0, (1, 2), True)
    assert (sw.hoarder.burst, sw.hoarder.accounts, sw.double_clicker.clicks, sw.late_payer.late_ms) == (3, 10, 3, (0, 10))
    assert (sw.simultaneous_payer.lead_ms, sw.buyer.browse_rate) == (250, 0.5)
    assert parse_scenario(s.to_dict()) == s  # the wire form to workers round-trips
    with pytest.raises(ScenarioError) as e:
        parse_scenario({"swarm": {"mix": {"bot": 1}, "scalper": {"parallel": 0, "nope": 1},
                                  "hoarder": {"register_profiles": True}, "late_payer": {"late_ms": [5, 1]}}})
    assert set(e.value.problems) == {
        "swarm.mix.bot: unknown user kind; known: " + ", ".join(USER_KINDS),
        "swarm.scalper.parallel: must be an integer from 1 to 100, got 0",
        "swarm.scalper.nope: unknown field; known: qty, wait_ms, pay_delay_ms, parallel, retries, accounts, "
        "register_profiles",
        "swarm.hoarder.register_profiles: needs a farm of accounts (swarm.hoarder.accounts > 0)",
        "swarm.late_payer.late_ms: must be [low, high] milliseconds with 0 <= low <= high, got [5, 1]",
    }


def test_bot_farms_and_their_profiles() -> None:
    assert farm_accounts("scalper", 2) == ["scalper-farm-0", "scalper-farm-1"]
    s = parse_scenario({"swarm": {"mix": {"scalper": 1, "hoarder": 1}, "scalper": {"accounts": 3},
                                  "hoarder": {"accounts": 2, "register_profiles": True}}})
    profiles = bot_profiles(s)
    assert sorted(profiles) == ["hoarder-farm-0", "hoarder-farm-1", "scalper-farm-0", "scalper-farm-1",
                                "scalper-farm-2"]
    assert all(p == SCALPER_PROFILE for p in profiles.values())
    assert bot_profiles(Scenario()) == {}  # no scalper in the default mix, hoarders do not register
    only_hoarders = parse_scenario({"swarm": {"mix": {"buyer": 1, "scalper": 0}}})
    assert bot_profiles(only_hoarders) == {}  # a kind with weight 0 registers nothing
    assert [len(b) for b in batches({f"u{i}": {} for i in range(2500)})] == [1000, 1000, 500]


def test_crowd_curve() -> None:
    kw = dict(quiet_s=3, quiet_share=0.05, spike_s=1, half_life_s=2, floor_share=0.1)
    curve = [users_at(t / 2, 200, **kw) for t in range(0, 40)]
    assert curve[:6] == [10] * 6 and curve[6:8] == [200, 200]  # quiet, then all at the opening second
    assert curve[8:] == sorted(curve[8:], reverse=True) and curve[-1] == 20  # decays to the floor
    assert users_at(6.0, 200, **kw) == 100  # one half-life after the spike
    assert users_at(0, 3, **kw) == 1  # never zero users


# -- real runs ------------------------------------------------------------------------




def test_sessions_mind_changers_and_the_admin_and_their_sections() -> None:
    s = parse_scenario({"sale": {"strategy": "pre_deduct_ledger"}, "swarm": {
        "mix": {"sessions": 2, "mind_changer": 1, "admin": 1},
        "sessions": {"sessions": 4, "qty": 2},
        "mind_changer": {"pay_delay_ms": [0, 5]},
        "admin": {"refunds": False, "restock_qty": 3, "in_transit_qty": 2, "wait_ms": [10, 20]},
    }})
    sw = s.swarm
    assert (sw.sessions.sessions, sw.sessions.qty, sw.mind_changer.pay_delay_ms) == (4, 2, (0, 5))
    assert (sw.admin.refunds, sw.admin.restock_qty, sw.admin.in_transit_qty, sw.admin.wait_ms) == (False, 3, 2, (10, 20))
    assert parse_scenario(s.to_dict()) == s
    with pytest.raises(ScenarioError) as e:
        parse_scenario({"swarm": {"mix": {"admin": 1}, "admin": {"restock_qty": 1, "refunds": "yes"},
                                  "sessions": {"sessions": 0}}})
    assert set(e.value.problems) == {
        "swarm.admin.refunds: must be true or false, got 'yes'",
        "swarm.sessions.sessions: must be an integer from 1 to 100, got 0",
        "swarm.admin: restock_qty / in_transit_qty change warehouse stock, which needs the warehouse ledger "
        "(backend.ledger: true or strategy pre_deduct_ledger)",
    }
