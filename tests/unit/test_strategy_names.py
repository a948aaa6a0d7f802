"""The harness's strategy lists (oversold.model.scenario) name exactly the backend's strategies.

The harness cannot import the reference backend at run time (the layers forbid it),
so it keeps its own lists for scenario validation; this test holds them to the
backend's registry, so a new strategy module cannot be forgotten on either side.
"""

from __future__ import annotations

from oversold.model.scenario import ASYNC_STRATEGIES, LEDGER_STRATEGIES, STRATEGIES
from reference_backend.strategies import discover


def test_the_harness_lists_every_backend_strategy_and_no_other():
    assert set(STRATEGIES) == set(discover())


def test_async_and_ledger_lists_follow_the_strategy_classes():
    registry = discover()
    assert set(ASYNC_STRATEGIES) == {n for n, cls in registry.items() if cls.supports_async}
    assert set(LEDGER_STRATEGIES) == {n for n, cls in registry.items() if cls.needs_ledger}
