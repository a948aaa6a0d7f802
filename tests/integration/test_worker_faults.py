"""Process faults of every worker: the async order processors (role orders) and the sync worker, killed and
paused many times under load (scenarios/worker_kill.yaml), every one healed, and the correct backend passes."""

from __future__ import annotations

from pathlib import Path

from paths import REPO

from oversold.model.scenario_file import load_scenario
from oversold.orchestrate.run import run_scenario


def test_worker_kill_heals_every_fault_and_the_reference_backend_passes(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "worker_kill.yaml").with_overrides(seed=3, duration_s=20)
    # 20 s, not the scenario's 14: each of some 20 processor kills holds the fault clock up for its restart,
    # and on a slow machine that lag can push the last sync kill (planned at 11.25 s) past the end of the run
    result = run_scenario(scenario, tmp_path / "run")
    by_role: dict[tuple[str, str], int] = {}
    for f in result.faults:
        assert f["end"] is not None and "error" not in f and "heal_error" not in f, f
        by_role[(f["role"], f["action"])] = by_role.get((f["role"], f["action"]), 0) + 1
    assert by_role[("orders", "kill")] >= 10, by_role  # every 0.3-0.7 s for 11 s
    assert by_role[("orders", "pause")] >= 2 and by_role[("sync", "kill")] == 4, by_role
    killed = [f for f in result.faults if f["role"] == "orders" and f["action"] == "kill"]
    assert {f["target"] for f in killed} == {"orders-1", "orders-2"}  # both processors, by name
    assert len({f["hits"][0]["ident"] for f in killed}) >= 10  # killed processes were started again (new pids)
    assert result.exit_code == 0, result.summary
