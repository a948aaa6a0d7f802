"""chaos.upstreams: the user's database or Redis behind the fault proxy in a --host run (parsing and planning)."""

from __future__ import annotations

import pytest

from oversold.errors import ScenarioError
from oversold.model.roles import expected_roles, schedule
from oversold.model.scenario_file import dump_scenario, parse_scenario

HOST = {"url": "http://127.0.0.1:8080", "adapter": "shop_adapter:MyShop"}
DB = {"role": "database", "listen": "127.0.0.1:6432", "upstream": "127.0.0.1:5432"}
DOWN = {"action": "down", "role": "database", "start_s": 1, "duration_s": 1}


def test_an_upstream_is_a_fault_role_of_a_host_run():
    s = parse_scenario({"backend": HOST, "chaos": {"upstreams": [DB]}, "faults": [DOWN]})
    assert s.chaos.upstreams[0].role == "database"
    assert expected_roles(s) == {"database": 1}
    assert [f.role for f in schedule(s)] == ["database"]
    assert parse_scenario(__import__("yaml").safe_load(dump_scenario(s))).chaos == s.chaos  # replays


@pytest.mark.parametrize("bad, says", [
    ({**DB, "listen": "10.0.0.5:6432"}, "chaos.upstreams[0].listen: must be host:port on loopback"),
    ({**DB, "upstream": "db.example:5432"}, "chaos.upstreams[0].upstream: must be host:port on loopback"),
    ({**DB, "role": "backend"}, "chaos.upstreams[0].role: must name your part"),
    ({"role": "database"}, "chaos.upstreams[0]: must be a mapping of exactly role, listen, upstream"),
])
def test_bad_upstreams_are_refused_with_their_path(bad, says):
    with pytest.raises(ScenarioError, match=__import__("re").escape(says)):
        parse_scenario({"backend": HOST, "chaos": {"upstreams": [bad]}})


def test_an_upstream_role_takes_network_faults_only():
    with pytest.raises(ScenarioError, match=r"faults\[0\].action: database takes toxic, down, got 'kill'"):
        parse_scenario({"backend": HOST, "chaos": {"upstreams": [DB]}, "faults": [{**DOWN, "action": "kill"}]})


def test_a_fault_on_a_role_with_no_targets_in_a_host_run_says_how_to_declare_one():
    with pytest.raises(ScenarioError) as e:
        parse_scenario({"backend": HOST, "faults": [{"action": "kill", "role": "backend", "start_s": 1}]})
    assert "this run has no backend targets" in str(e.value) and "chaos.upstreams: [{role: database" in str(e.value)


def test_upstreams_are_for_host_runs_only():
    with pytest.raises(ScenarioError, match="chaos.upstreams: fronts the upstreams of a backend given by URL"):
        parse_scenario({"chaos": {"upstreams": [DB]}})


PAUSE = {"action": "pause", "role": "shop", "start_s": 1, "duration_s": 1}


def test_a_process_of_yours_is_a_pause_role_of_a_host_run():
    s = parse_scenario({"backend": HOST, "chaos": {"processes": [{"role": "shop", "pidfile": "shop.pid"}]},
                        "faults": [PAUSE]})
    assert expected_roles(s) == {"shop": 1} and [f.action for f in schedule(s)] == ["pause"]
    with pytest.raises(ScenarioError, match=r"faults\[0\].action: shop takes pause, got 'kill'"):
        parse_scenario({"backend": HOST, "chaos": {"processes": [{"role": "shop", "pidfile": "shop.pid"}]},
                        "faults": [{**PAUSE, "action": "kill"}]})
    with pytest.raises(ScenarioError, match=r"chaos.processes\[0\]: must be a mapping of exactly role, pidfile"):
        parse_scenario({"backend": HOST, "chaos": {"processes": [{"role": "shop", "pid": 12}]}})
    with pytest.raises(ScenarioError, match="chaos.processes: names the processes of a backend given by URL"):
        parse_scenario({"chaos": {"processes": [{"role": "shop", "pidfile": "shop.pid"}]}})


def test_the_given_process_driver_refuses_a_pid_that_is_not_there_and_anything_but_pause():
    from oversold.chaos.given import GivenProcessDriver
    from oversold.errors import ChaosError, FaultSpecError
    from oversold.model.fault import Fault

    driver = GivenProcessDriver()
    with pytest.raises(ChaosError, match="no process"):
        driver.register("shop", 2**22 + 12345)  # above the largest pid Linux hands out
    with pytest.raises(FaultSpecError, match="unknown action 'kill'"):
        driver.inject(Fault("kill", "shop", 0))
    with pytest.raises(FaultSpecError, match="no targets for role 'shop'"):
        driver.inject(Fault("pause", "shop", 0))
