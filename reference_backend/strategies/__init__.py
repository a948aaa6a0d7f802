"""Deduction strategies, found by name: every module here with a ``Strategy`` subclass.

Adding a strategy is adding one module (and its Lua files in ``../lua/``);
nothing else needs to list it.

Usage::

    registry = discover()
    strategy = registry["pre_deduct"](store, StrategyOptions())
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import LuaStrategy, Strategy, StrategyOptions


def discover() -> dict[str, type[Strategy]]:
    """Strategy classes by name, from every module of this package."""
    found: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Strategy)
                and obj.__module__ == module.__name__
                and "name" in vars(obj)  # a concrete strategy, not a helper base
            ):
                found[obj.name] = obj
    return found


__all__ = ["LuaStrategy", "Strategy", "StrategyOptions", "discover"]
