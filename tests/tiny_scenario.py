"""A small, quick flash sale for tests of the whole harness (a run takes a few seconds).

60 units, 30 users on one node, 1-s holds: it sells out in a few seconds with
``pre_deduct`` and oversells with ``naive`` (whose 5-ms race window makes
concurrent orders overlap for sure).
"""

from __future__ import annotations

from pathlib import Path

TINY_SCENARIO = """\
name: tiny
seed: 7
sale:
  id: tiny
  stock: 60
  hold_ttl_ms: 1000
  strategy: pre_deduct
backend:
  nodes: 1
swarm:
  users: 30
  spawn_rate: 30
  duration_s: 15  # an upper bound: pre_deduct sells out in about 2.5 s here
  mix: {buyer: 4, hoarder: 1}
  hoarder: {qty: 1, wait_ms: [300, 600]}
checker:
  grace_ms: 1500
  quiesce_timeout_s: 15
thresholds:
  oversold_units: ["value==0"]
"""


def write_tiny(directory: Path, name: str = "tiny.yaml", text: str = TINY_SCENARIO) -> Path:
    """Write the tiny scenario into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
