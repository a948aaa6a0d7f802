"""Lua sources of the scripts in ``lua/``, each with the shared prelude in front.

Redis has no include: ``_prelude.lua`` (TIME in ms, order loading, answers)
is pasted before every script so the helpers are written once.

Usage::

    src = source("pre_deduct_order")
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"


@cache
def source(name: str) -> str:
    prelude = (LUA_DIR / "_prelude.lua").read_text()
    return prelude + "\n" + (LUA_DIR / f"{name}.lua").read_text()
