"""Node faults, the pure part: the fault model, the plan, the nemesis's bookkeeping (a recording
driver), the sweep's matching and its state file. The process driver on real ``redis-server``
children is in tests/integration/test_chaos_process.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from oversold.chaos import (
    ChaosError,
    Driver,
    Fault,
    FaultSpecError,
    Hit,
    Injection,
    Nemesis,
    ProcessDriver,
    StateFile,
    plan,
)
from oversold.chaos.sweep import cmdline_matches


# -- pure: faults and the plan ------------------------------------------------------


def test_fault_rejects_bad_fields_all_at_once():
    with pytest.raises(FaultSpecError) as e:
        Fault("", "", target=-1, start_s=-1, duration_s=-2)
    for field in ("action", "role", "target", "start_s", "duration_s"):
        assert field in str(e.value)
    with pytest.raises(FaultSpecError, match="target"):
        Fault("kill", "backend", target="some")
    with pytest.raises(FaultSpecError, match="target"):
        Fault("kill", "backend", target=True)


def test_fault_from_dict_reports_path_and_round_trips():
    f = Fault.from_dict({"action": "kill", "role": "backend", "target": [0, 2], "start_s": 1, "duration_s": 2})
    assert f.target == (0, 2) and f.heal_at_s == 3
    assert Fault.from_dict(f.to_dict()) == f
    with pytest.raises(FaultSpecError, match=r"faults\[3\]: unknown field\(s\) colour"):
        Fault.from_dict({"action": "kill", "role": "b", "colour": "red"}, path="faults[3]")
    with pytest.raises(FaultSpecError, match=r"faults\[1\]: .*role"):
        Fault.from_dict({"action": "kill"}, path="faults[1]")


def test_fault_params_are_read_only_and_kept_by_plan():
    f = Fault("latency", "redis-link", 0, params={"latency_ms": 200})
    assert hash(f) == hash(Fault("latency", "redis-link", 0, params={"latency_ms": 300}))  # hashable; params not hashed
    with pytest.raises(TypeError):
        f.params["latency_ms"] = 1  # type: ignore[index]
    assert Fault.from_dict(f.to_dict()) == f and f.to_dict()["params"] == {"latency_ms": 200}
    assert plan([f], {"redis-link": 1}, seed=1)[0].params == {"latency_ms": 200}
    with pytest.raises(FaultSpecError, match="params"):
        Fault("latency", "x", params=None)  # type: ignore[arg-type]


def test_plan_is_deterministic_in_the_seed_and_sorted_by_start():
    faults = [Fault("kill", "backend", "one", start_s=5), Fault("pause", "redis", "random", start_s=1),
              Fault("stop", "backend", "all", start_s=3), Fault("restart", "backend", 1, start_s=3)]
    counts = {"backend": 4, "redis": 3}
    a, b = plan(faults, counts, seed=7), plan(faults, counts, seed=7)
    assert a == b
    assert [f.start_s for f in a] == [1, 3, 3, 5]
    assert [f.action for f in a] == ["pause", "stop", "restart", "kill"]  # ties keep written order
    assert all(f.resolved and isinstance(f.target, tuple) for f in a)
    assert a[1].target == (0, 1, 2, 3) and a[2].target == (1,)
    picks = {plan(faults, counts, seed=s)[3].target for s in range(40)}
    assert len(picks) > 1 and all(len(p) == 1 and 0 <= p[0] < 4 for p in picks)
    subsets = {plan(faults, counts, seed=s)[0].target for s in range(40)}
    assert all(1 <= len(t) <= 3 and list(t) == sorted(set(t)) for t in subsets) and len(subsets) > 1


def test_plan_lists_every_problem():
    with pytest.raises(FaultSpecError) as e:
        plan([Fault("kill", "nobody"), Fault("kill", "backend", 5)], {"backend": 2}, seed=1)
    assert "faults[0].role" in str(e.value) and "faults[1].target" in str(e.value)


def test_unresolved_choice_is_refused_by_drivers():
    with pytest.raises(FaultSpecError, match="chaos.plan"):
        Fault("kill", "backend", "one").indices(3)


# -- pure: the nemesis's bookkeeping, with a recording driver ---------------------------


class RecordingDriver:
    """Records calls; fails heals of the roles in ``fail_heal``. A pure unit, no processes."""

    name = "rec"

    def __init__(self, roles: dict[str, int], fail_heal: set[str] = frozenset()) -> None:
        self._roles = roles
        self.fail_heal = set(fail_heal)
        self.calls: list[tuple[str, str]] = []
        self.n = 0

    def roles(self):
        return dict(self._roles)

    def inject(self, fault):
        self.n += 1
        self.calls.append(("inject", f"{fault.action}:{fault.role}"))
        hits = tuple(Hit(fault.role, i, "pid", str(1000 + i)) for i in fault.indices(self._roles[fault.role]))
        return Injection(f"rec-{self.n}", self.name, fault, hits, time.time())

    def heal(self, injection):
        if injection.fault.role in self.fail_heal:
            raise ChaosError(f"cannot heal {injection.fault.role}")
        self.calls.append(("heal", f"{injection.fault.action}:{injection.fault.role}"))


def test_recording_driver_is_a_driver():
    assert isinstance(RecordingDriver({}), Driver)
    assert isinstance(ProcessDriver(), Driver)


def test_step_injects_and_heals_on_schedule():
    d = RecordingDriver({"a": 1, "b": 2})
    n = Nemesis(d)
    schedule = plan([Fault("pause", "a", 0, start_s=1, duration_s=2), Fault("kill", "b", "all", start_s=2)],
                    n.roles(), seed=1)
    assert not n.step(schedule, 0.5) and d.calls == []
    assert not n.step(schedule, 1.0) and d.calls == [("inject", "pause:a")]
    assert not n.step(schedule, 2.5) and d.calls[-1] == ("inject", "kill:b")
    assert n.step(schedule, 3.0) and d.calls[-1] == ("heal", "pause:a")  # done: the untimed kill waits for the end
    assert [i.fault.action for i in n.active] == ["kill"]
    n.heal_all()
    assert n.active == () and d.calls[-1] == ("heal", "kill:b")
    assert [e.event for e in n.timeline] == ["inject", "inject", "heal", "heal"]
    assert n.timeline[1].to_dict()["hits"][1]["ident"] == "1001"


def test_run_follows_the_clock_until_done():
    d = RecordingDriver({"a": 1})
    n = Nemesis(d)
    schedule = plan([Fault("pause", "a", 0, start_s=0.05, duration_s=0.05)], n.roles(), seed=1)
    t = time.monotonic()
    n.run(schedule, stop=threading.Event(), tick_s=0.01)
    assert 0.09 <= time.monotonic() - t < 2
    assert d.calls == [("inject", "pause:a"), ("heal", "pause:a")]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_with_block_heals_everything_on_error_and_ctrl_c(exc):
    d = RecordingDriver({"a": 1, "b": 1})
    with pytest.raises(type(exc)):
        with Nemesis(d) as n:
            n.inject(Fault("pause", "a", 0))
            n.inject(Fault("stop", "b", 0))
            raise exc
    assert d.calls[2:] == [("heal", "stop:b"), ("heal", "pause:a")]  # newest first
    assert n.active == ()


def test_heal_all_tries_every_injection_and_names_the_failures():
    d = RecordingDriver({"a": 1, "b": 1}, fail_heal={"a"})
    n = Nemesis(d)
    n.inject(Fault("pause", "a", 0))
    n.inject(Fault("pause", "b", 0))
    with pytest.raises(ChaosError, match=r"rec-1 \(pause a\)"):
        n.heal_all()
    assert ("heal", "pause:b") in d.calls
    assert [i.id for i in n.active] == ["rec-1"]  # kept, so a later heal_all can try again
    assert n.timeline[-2].event in ("heal", "heal-error")
    d.fail_heal.clear()
    n.heal_all()
    assert n.active == ()


def test_nemesis_routes_roles_and_refuses_unknown_or_shared_ones():
    class Other(RecordingDriver):
        name = "other"

    a, b = RecordingDriver({"x": 1}), Other({"y": 1})
    n = Nemesis(a, b)
    n.inject(Fault("kill", "y", 0))
    assert b.calls and not a.calls
    with pytest.raises(FaultSpecError, match="no driver has"):
        n.inject(Fault("kill", "z", 0))
    with pytest.raises(FaultSpecError, match="two drivers"):
        Nemesis(RecordingDriver({"x": 1}), Other({"x": 1})).roles()


# -- the sweep ------------------------------------------------------------------


def test_cmdline_matching():
    argv = ["/opt/redis-server", "--port", "7000"]
    assert cmdline_matches(argv, argv)
    assert cmdline_matches(["/opt/redis-server 127.0.0.1:7000"], argv)  # a rewritten title
    assert not cmdline_matches(["/usr/bin/python3", "x.py"], argv)
    assert not cmdline_matches(["/opt/redis-server", "--port", "7001"], argv)
    assert not cmdline_matches([], argv) and not cmdline_matches(argv, [])


def test_state_file_survives_a_torn_line_and_refuses_empty_labels(tmp_path):
    state = StateFile(tmp_path / "s.jsonl")
    state.record_label("oversold.run=abc")
    with open(state.path, "a") as f:
        f.write('{"kind": "pid", "pi')  # a run killed mid-write
    assert state.entries() == [{"kind": "label", "label": "oversold.run=abc"}]
    with pytest.raises(ValueError):
        state.record_label("")
