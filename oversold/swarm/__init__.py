"""The swarm: Locust users that drive a backend (through an adapter) and record every operation.

The user classes and the load shape are importable from here
(``from oversold.swarm import Buyer, SimultaneousPayer, HoldHoarder, Scalper,
DoubleClicker, LatePayer, FlashSaleShape, plugin``); they are loaded on first
access, because importing Locust monkey-patches the process, and the pure
modules (``recorder``, ``collector``, ``config``, ``profiles``) must stay
importable without it (tests, the orchestrator).

Modules:

- ``recorder``  - invoke/completion records in memory, and their classification (pure)
- ``collector`` - the master's rows from every worker, completeness, history.jsonl (pure)
- ``config``    - the resolved settings of a run, and their wire form for workers
- ``profiles``  - bot farms' account names and the scalper profile (pure)
- ``runtime``   - per-process state shared by the users (config, adapter, recorder, drain flag, pay instant)
- ``soldout``   - the watch that stops the swarm once nothing is left to buy
- ``users``     - ``SwarmUser`` and the nine kinds of buyers, bots and the admin
- ``shape``     - ``FlashSaleShape``: quiet, a spike at the opening second, decay
- ``verdict``   - the end of a plain ``locust`` run: settle, read, check, exit code
- ``plugin``    - ``--oversold-*`` options and the Locust event wiring (``install()``)

Usage (a locustfile)::

    from oversold.swarm import Buyer, Scalper, plugin  # noqa: F401

    plugin.install()
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SwarmUser": "users", "Buyer": "users", "HoldHoarder": "users", "Scalper": "users",
    "DoubleClicker": "users", "LatePayer": "users", "SimultaneousPayer": "users",
    "Sessions": "users", "MindChanger": "users", "Admin": "users",
    "FlashSaleShape": "shape", "plugin": "plugin",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oversold.swarm' has no attribute {name!r}")
    mod = importlib.import_module(f"{__name__}.{module}")
    return mod if name == module else getattr(mod, name)
