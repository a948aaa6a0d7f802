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


def test_a_process_of_yours_given_by_pid_file_takes_pause_and_an_unhealed_kill():
    shop = {"processes": [{"role": "shop", "pidfile": "shop.pid"}]}
    s = parse_scenario({"backend": HOST, "chaos": shop,
                        "faults": [PAUSE, {**PAUSE, "action": "kill", "duration_s": None}]})
    assert expected_roles(s) == {"shop": 1} and [f.action for f in schedule(s)] == ["pause", "kill"]
    with pytest.raises(ScenarioError, match=r"faults\[0\].action: shop takes pause, kill, got 'restart' \(shop is "
                                            r"given by pid file.*give chaos.processes a command"):
        parse_scenario({"backend": HOST, "chaos": shop, "faults": [{**PAUSE, "action": "restart"}]})
    with pytest.raises(ScenarioError, match=r"faults\[0\].duration_s: a kill of shop is never healed"):
        parse_scenario({"backend": HOST, "chaos": shop, "faults": [{**PAUSE, "action": "kill"}]})
    with pytest.raises(ScenarioError, match=r"chaos.processes\[0\]: must be a mapping of role, pidfile\?, command\?"):
        parse_scenario({"backend": HOST, "chaos": {"processes": [{"role": "shop", "pid": 12}]}})
    with pytest.raises(ScenarioError, match="chaos.processes: names the processes of a backend given by URL"):
        parse_scenario({"chaos": shop})


STARTED = {"role": "shop", "command": ["python", "app.py", "--port", "8080"], "cwd": "shop", "env": {"DB": "shop.db"},
           "ready_url": "http://127.0.0.1:8080/health"}


def test_a_process_the_harness_starts_takes_every_node_fault_and_replays():
    s = parse_scenario({"backend": HOST, "chaos": {"processes": [STARTED]},
                        "faults": [{**PAUSE, "action": a} for a in ("kill", "restart", "stop", "pause")]})
    p = s.chaos.processes[0]
    assert p.started and p.command == ("python", "app.py", "--port", "8080") and p.env == {"DB": "shop.db"}
    assert expected_roles(s) == {"shop": 1}
    assert parse_scenario(__import__("yaml").safe_load(dump_scenario(s))).chaos == s.chaos  # nulls read as not given


@pytest.mark.parametrize("bad, says", [
    ({**STARTED, "pidfile": "shop.pid"}, "chaos.processes[0]: give either pidfile (a process you start) or command"),
    ({"role": "shop", "pidfile": "shop.pid", "cwd": "x"}, "chaos.processes[0]: cwd only with command"),
    ({**STARTED, "command": "python app.py"}, "chaos.processes[0].command: must be a non-empty list of strings"),
    ({**STARTED, "command": []}, "chaos.processes[0].command: must be a non-empty list of strings"),
    ({**STARTED, "cwd": 3}, "chaos.processes[0].cwd: must be a directory path"),
    ({**STARTED, "env": {"DEBUG": True}}, "chaos.processes[0].env: must map variable names to strings or numbers"),
    ({**STARTED, "ready_url": "http://10.1.2.3:8080/health"},
     "chaos.processes[0].ready_url: must be an http:// URL on loopback"),
    ({**STARTED, "ready_url": "http://127.0.0.1/health"},  # no port: which one would it wait on?
     "chaos.processes[0].ready_url: must be an http:// URL on loopback"),
    ({**STARTED, "ready_url": None, "ready_port": 70000}, "chaos.processes[0].ready_port: must be a TCP port"),
    ({**STARTED, "ready_port": 8080}, "chaos.processes[0]: give ready_url or ready_port, not both"),
    ({**STARTED, "restart": True}, "chaos.processes[0]: must be a mapping of role, pidfile?, command?"),
])
def test_bad_processes_are_refused_with_their_path(bad, says):
    with pytest.raises(ScenarioError, match=__import__("re").escape(says)):
        parse_scenario({"backend": HOST, "chaos": {"processes": [bad]}})


def test_a_role_is_one_kind_of_part():
    with pytest.raises(ScenarioError, match=r"chaos.containers\[0\].role: 'shop' names one of your processes too"):
        parse_scenario({"backend": HOST, "chaos": {"processes": [STARTED],
                                                   "containers": [{"role": "shop", "container": "c"}]}})
    with pytest.raises(ScenarioError, match=r"chaos.processes\[1\].role: 'shop' names a process the harness starts too"):
        parse_scenario({"backend": HOST, "chaos": {"processes": [STARTED, {"role": "shop", "pidfile": "shop.pid"}]}})


CONTAINER = {"role": "cache", "container": "shop-redis", "ready_port": 6379}


def test_a_container_of_yours_takes_every_node_fault():
    s = parse_scenario({"backend": HOST, "chaos": {"containers": [CONTAINER]},
                        "faults": [{**PAUSE, "role": "cache", "action": a} for a in ("kill", "pause", "restart")]})
    assert s.chaos.containers[0].container == "shop-redis" and expected_roles(s) == {"cache": 1}
    assert parse_scenario(__import__("yaml").safe_load(dump_scenario(s))).chaos == s.chaos


@pytest.mark.parametrize("bad, says", [
    ({"role": "cache"}, "chaos.containers[0]: must be a mapping of role, container, ready_port?"),
    ({**CONTAINER, "container": ""}, "chaos.containers[0].container: must be a container name or id"),
    ({**CONTAINER, "ready_port": "6379"}, "chaos.containers[0].ready_port: must be a TCP port"),
    ({**CONTAINER, "role": "redis-primary"}, "chaos.containers[0].role: must name your part"),
])
def test_bad_containers_are_refused_with_their_path(bad, says):
    with pytest.raises(ScenarioError, match=__import__("re").escape(says)):
        parse_scenario({"backend": HOST, "chaos": {"containers": [bad]}})
    with pytest.raises(ScenarioError, match="chaos.containers: names the containers of a backend given by URL"):
        parse_scenario({"chaos": {"containers": [CONTAINER]}})


def test_the_given_process_driver_refuses_a_pid_that_is_not_there_and_restart():
    from oversold.chaos.given import GivenProcessDriver
    from oversold.errors import ChaosError, FaultSpecError
    from oversold.model.fault import Fault

    driver = GivenProcessDriver()
    with pytest.raises(ChaosError, match="no process"):
        driver.register("shop", 2**22 + 12345)  # above the largest pid Linux hands out
    with pytest.raises(FaultSpecError, match="unknown action 'restart'"):
        driver.inject(Fault("restart", "shop", 0))
    with pytest.raises(FaultSpecError, match="no targets for role 'shop'"):
        driver.inject(Fault("pause", "shop", 0))
