"""Lua sources of the scripts in ``lua/``, each with the prelude its first line names.

Redis has no include, so helpers are pasted in front of a script. Which ones
is the script's own choice, written as its first line:

- ``-- prelude: base``: ``_base.lua`` only (TIME in ms, reading an order): pure
  helpers that name no key, for scripts with a key layout of their own (audit,
  reap, monitor, sync_front, async_reject).
- ``-- prelude: op``: ``_base.lua``, then ``_op.lua`` (the KEYS and ARGV every
  order/pay/cancel script takes, named once) and ``_sale.lua`` (the helpers
  over those keys: answers, idempotency, limits, holds, sales). Only scripts
  called with ``keys.py``'s ``op_keys`` take it: its helpers write the keys of
  that layout, so under another layout they would write the wrong ones.

Every script names its keys and arguments at its top (``local K_META = KEYS[1]``,
``local A_QTY = ARGV[7]``); nothing below that header indexes KEYS or ARGV
(``tests/unit/test_lua_layout.py`` holds every file to both rules).

Usage::

    src = source("pre_deduct_order")   # _base + _op + _sale + the script
    prelude_of("reap")                  # 'base'
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"

#: prelude name -> the files pasted, in order, in front of a script that names it
PRELUDES: dict[str, tuple[str, ...]] = {
    "base": ("_base",),
    "op": ("_base", "_op", "_sale"),
    "batch": ("_base", "_batch", "_sale"),
}
_HEADER = re.compile(r"-- prelude: (\w+)\n")


class LuaLayoutError(ValueError):
    """A script without a valid ``-- prelude: NAME`` first line, or with an unknown NAME."""


def prelude_of(name: str, lua_dir: Path = LUA_DIR) -> str:
    """The prelude script ``name`` asks for on its first line."""
    text = (lua_dir / f"{name}.lua").read_text()
    found = _HEADER.match(text)
    if not found:
        raise LuaLayoutError(f"lua/{name}.lua: the first line must be '-- prelude: "
                             f"{' | '.join(PRELUDES)}', got {text.partition(chr(10))[0]!r}")
    if found.group(1) not in PRELUDES:
        raise LuaLayoutError(f"lua/{name}.lua: unknown prelude {found.group(1)!r}; known: {', '.join(PRELUDES)}")
    return found.group(1)


def scripts(lua_dir: Path = LUA_DIR) -> list[str]:
    """Names of every script (a prelude part starts with ``_`` and is none)."""
    return sorted(p.stem for p in lua_dir.glob("*.lua") if not p.stem.startswith("_"))


@cache
def source(name: str) -> str:
    parts = [(LUA_DIR / f"{part}.lua").read_text() for part in PRELUDES[prelude_of(name)]]
    return "\n".join([*parts, (LUA_DIR / f"{name}.lua").read_text()])
