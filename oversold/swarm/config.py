"""What one swarm process needs to know: the scenario, the backend nodes, where the history goes.

Built once on the master (or a local runner) from Locust's parsed options, and
sent to workers as plain data (``to_wire`` / ``from_wire``) so a worker on
another machine needs neither the scenario file nor the node list.

Usage::

    config = SwarmConfig.from_options(environment.parsed_options, host=environment.host)
    config.scenario.sale.id, config.nodes, config.request_timeout_s, config.adapter
    assert SwarmConfig.from_wire(config.to_wire()).nodes == config.nodes
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oversold.errors import BadInput
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import load_scenario, parse_scenario

ADMIN_TOKEN_ENV = "OVERSOLD_ADMIN_TOKEN"
DEFAULT_ADAPTER = "oversold.adapters.contract:ContractAdapter"


def parse_nodes(text: str | None, host: str | None = None) -> tuple[str, ...]:
    """Comma-separated base URLs (trailing slashes dropped); ``host`` when ``text`` is empty.

    >>> parse_nodes("http://a:1/, http://b:2", None)
    ('http://a:1', 'http://b:2')
    """
    raw = [u.strip() for u in (text or "").split(",") if u.strip()]
    if not raw and host:
        raw = [host.strip()]
    nodes = tuple(u.rstrip("/") for u in raw)
    for u in nodes:
        if not u.startswith(("http://", "https://")):
            raise BadInput(f"--oversold-nodes: {u!r} is not an http(s):// base URL")
    return nodes


@dataclass(frozen=True)
class SwarmConfig:
    """The resolved settings of a swarm run (the same on every process)."""

    scenario: Scenario
    nodes: tuple[str, ...]
    history_path: Path | None = None
    setup_sale: bool = False
    admin_token: str | None = None
    adapter: str = DEFAULT_ADAPTER  # "module:Class" of an oversold.adapters.Adapter
    check: bool = True  # check the run at its end and set Locust's exit code from the verdict
    results_dir: Path | None = None  # where results.json, final_state.json, report.html... go

    @property
    def sale_id(self) -> str:
        return self.scenario.sale.id

    @property
    def request_timeout_s(self) -> float:
        return float(self.scenario.swarm.request_timeout_s)

    @property
    def drain_timeout_s(self) -> float:
        """How long a stop waits for in-flight requests: connect plus read timeout, and a margin."""
        return 2 * self.request_timeout_s + 1.0

    @classmethod
    def from_options(cls, options: Any, host: str | None = None) -> "SwarmConfig":
        """From Locust's parsed options (``--oversold-*``); raises BadInput/ScenarioError."""
        path = getattr(options, "oversold_scenario", None)
        scenario = load_scenario(Path(path)) if path else Scenario()
        nodes = parse_nodes(getattr(options, "oversold_nodes", None), host)
        if not nodes:
            raise BadInput("no backend: pass --host or --oversold-nodes")
        history = getattr(options, "oversold_history", None)
        results = getattr(options, "oversold_results", None)
        if results and not history:
            history = str(Path(results) / "history.jsonl")
        # the option, else the scenario's backend.adapter (oversold run writes it there), else the contract
        adapter = getattr(options, "oversold_adapter", None) or scenario.backend.adapter or DEFAULT_ADAPTER
        token = getattr(options, "oversold_admin_token", None) or os.environ.get(ADMIN_TOKEN_ENV) or None
        setup = bool(getattr(options, "oversold_setup_sale", False))
        if setup and not token:
            raise BadInput(f"--oversold-setup-sale needs --oversold-admin-token or {ADMIN_TOKEN_ENV}")
        return cls(
            scenario=scenario,
            nodes=nodes,
            history_path=Path(history) if history else None,
            setup_sale=setup,
            admin_token=token,
            adapter=adapter,
            check=not bool(getattr(options, "oversold_no_check", False)),
            results_dir=Path(results) if results else None,
        )

    def for_test(self, label: str) -> "SwarmConfig":
        """The config of one test of a web UI session: its own run directory and history file.

        ``--oversold-results DIR`` becomes ``DIR/<label>``; an explicit ``--oversold-history
        PATH`` becomes ``PATH`` with ``-<label>`` before its suffix. So no test overwrites another's.

        >>> c = SwarmConfig(Scenario(), ("http://a",), Path("r/history.jsonl"), results_dir=Path("r"))
        >>> c.for_test("test-2").results_dir, c.for_test("test-2").history_path
        (PosixPath('r/test-2'), PosixPath('r/test-2/history.jsonl'))
        """
        results = self.results_dir / label if self.results_dir is not None else None
        history = self.history_path
        if history is not None:
            if self.results_dir is not None and history == self.results_dir / "history.jsonl":
                history = results / "history.jsonl"  # type: ignore[operator]
            else:
                history = history.with_name(f"{history.stem}-{label}{history.suffix}")
        return dataclasses.replace(self, results_dir=results, history_path=history)

    def to_wire(self) -> dict[str, Any]:
        """What a worker needs, as msgpack-able data (no history path, no admin token)."""
        return {"scenario": self.scenario.to_dict(), "nodes": list(self.nodes), "adapter": self.adapter}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "SwarmConfig":
        return cls(scenario=parse_scenario(data["scenario"], "scenario from master"), nodes=tuple(data["nodes"]),
                   adapter=data.get("adapter") or DEFAULT_ADAPTER, check=False)
