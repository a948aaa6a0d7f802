"""The Lua scripts' layout rules (reference_backend/lua.py, reference_backend/README.md "Lua scripts").

1. Keys and arguments are named in a header at the top of each file; no bare
   ``KEYS[n]`` / ``ARGV[n]`` below it.
2. Each script names its prelude on its first line, and gets exactly the files
   of that prelude: the op prelude (whose helpers write the op layout's keys)
   only for the scripts called with ``keys.py``'s ``op_keys``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reference_backend import lua
from reference_backend.strategies import LuaStrategy, discover

_HEADER_LINE = re.compile(
    r"local (?P<names>[A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*) = "
    r"(?P<values>(?:KEYS|ARGV)\[\d+\](?:, (?:KEYS|ARGV)\[\d+\])*)\s*(?:--.*)?"
)
_INDEXED = re.compile(r"\b(?:KEYS|ARGV)\s*\[")
_FUNCTION = re.compile(r"^local function (\w+)", re.M)

# Called with op_keys outside a LuaStrategy's ``scripts``: PreDeductLedger.settle
# (pre_deduct_ledger_commit) and Store.refund (refund).
OP_CALLERS_ELSEWHERE = {"pre_deduct_ledger_commit", "refund"}
LAYOUT_PARTS = {"op": "_op", "batch": "_batch"}  # the prelude part that names each shared layout


def code_of(line: str) -> str:
    """The line without its comment (a ``--`` outside a string)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == "\\":
                continue
            if ch == quote and line[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif line.startswith("--", i):
            return line[:i]
    return line


def header_violations(text: str, where: str) -> list[str]:
    """Every ``KEYS[`` / ``ARGV[`` outside the naming header, and every badly named header entry."""
    problems: list[str] = []
    in_header = True
    for n, line in enumerate(text.splitlines(), 1):
        code = code_of(line).strip()
        header = _HEADER_LINE.fullmatch(line.strip())
        if in_header and header:
            names = header["names"].split(", ")
            values = header["values"].split(", ")
            if len(names) != len(values):
                problems.append(f"{where}:{n}: {len(names)} names for {len(values)} values")
            for name, value in zip(names, values):
                prefix = "K_" if value.startswith("KEYS") else "A_"
                if not name.startswith(prefix):
                    problems.append(f"{where}:{n}: {name} = {value}: a {value[:4]} name starts with {prefix}")
            continue
        if code:
            in_header = False  # the first line of code that is not a naming line ends the header
        if _INDEXED.search(code):
            problems.append(f"{where}:{n}: bare KEYS[n]/ARGV[n] below the header: {line.strip()}")
    return problems


def header_names(text: str) -> dict[str, str]:
    """name -> 'KEYS[i]' / 'ARGV[i]' of a file's header."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        header = _HEADER_LINE.fullmatch(line.strip())
        if header:
            out.update(zip(header["names"].split(", "), header["values"].split(", ")))
        elif code_of(line).strip():
            break
    return out


def op_scripts() -> set[str]:
    found = set(OP_CALLERS_ELSEWHERE)
    for cls in discover().values():
        if issubclass(cls, LuaStrategy):
            found.update(cls.scripts.values())
    return found


def batch_scripts() -> set[str]:
    """Called with keys.py's sale_keys by LuaStrategy._send_batch."""
    return {cls.batch_script for cls in discover().values() if issubclass(cls, LuaStrategy) and cls.batch_script}


def test_every_file_names_its_keys_and_args_in_a_header():
    files = sorted(lua.LUA_DIR.glob("*.lua"))
    assert len(files) > 10
    problems = [p for f in files for p in header_violations(f.read_text(), f"lua/{f.name}")]
    assert problems == []


def test_the_header_check_catches_a_bare_index_below_the_header():
    ok = "-- prelude: base\n-- doc\nlocal K_A, K_B = KEYS[1], KEYS[2]\nlocal A_N = ARGV[1]  -- n\n\nreturn K_A\n"
    assert header_violations(ok, "ok.lua") == []
    late = ok + "local K_C = KEYS[3]\n"  # a naming line after code is no header any more
    assert header_violations(late, "late.lua") == ["late.lua:7: bare KEYS[n]/ARGV[n] below the header: "
                                                   "local K_C = KEYS[3]"]
    body = ok.replace("return K_A", "redis.call('DEL', KEYS[2])")
    assert len(header_violations(body, "body.lua")) == 1
    in_string = ok.replace("return K_A", "return 'KEYS[2]' -- ARGV[3] in a comment is fine")
    assert len(header_violations(in_string, "s.lua")) == 1  # inside a string it is still code
    assert header_violations(ok.replace("-- doc", "-- KEYS[1] is named below"), "c.lua") == []
    misnamed = ok.replace("local A_N = ARGV[1]", "local K_N = ARGV[1]")
    assert header_violations(misnamed, "m.lua") == ["m.lua:4: K_N = ARGV[1]: a ARGV name starts with A_"]


def test_every_script_names_a_known_prelude():
    names = lua.scripts()
    assert "pre_deduct_order" in names and "_op" not in names
    assert {lua.prelude_of(n) for n in names} == set(lua.PRELUDES)


def test_a_missing_or_unknown_prelude_line_is_refused(tmp_path: Path):
    (tmp_path / "none.lua").write_text("local K_A = KEYS[1]\nreturn 1\n")
    (tmp_path / "odd.lua").write_text("-- prelude: everything\nreturn 1\n")
    with pytest.raises(lua.LuaLayoutError, match="none.lua: the first line must be '-- prelude: base | op | batch'"):
        lua.prelude_of("none", tmp_path)
    with pytest.raises(lua.LuaLayoutError, match="odd.lua: unknown prelude 'everything'"):
        lua.prelude_of("odd", tmp_path)


def test_only_scripts_of_the_op_layout_take_the_op_prelude():
    by_prelude = {n: lua.prelude_of(n) for n in lua.scripts()}
    assert {n for n, p in by_prelude.items() if p == "op"} == op_scripts()
    assert {n for n, p in by_prelude.items() if p == "batch"} == batch_scripts() == {"pre_deduct_order_batch"}
    op_helpers = set(_FUNCTION.findall((lua.LUA_DIR / "_sale.lua").read_text())) | {"req"}
    assert {"release", "take", "mark_paid", "answer"} <= op_helpers
    for name, prelude in by_prelude.items():
        src = lua.source(name)
        own = header_names((lua.LUA_DIR / f"{name}.lua").read_text())
        if prelude in LAYOUT_PARTS:
            layout = (lua.LUA_DIR / f"{LAYOUT_PARTS[prelude]}.lua").read_text()
            assert src.startswith((lua.LUA_DIR / "_base.lua").read_text() + "\n" + layout), name
            assert "local function release" in src, name
            other = set(LAYOUT_PARTS.values()) - {LAYOUT_PARTS[prelude]}
            assert not [part for part in other if (lua.LUA_DIR / f"{part}.lua").read_text() in src], name
            # the layout's keys and arguments come from its prelude part; an op script names ARGV 6 on only
            assert not own if prelude == "batch" else not [
                v for v in own.values() if v.startswith("KEYS") or int(v[5:-1]) < 6], (name, own)
        else:
            defined = set(_FUNCTION.findall(src)) | set(re.findall(r"^local (\w+) =", src, re.M))
            assert not defined & op_helpers, (name, defined & op_helpers)
            assert "K_" not in (lua.LUA_DIR / "_base.lua").read_text()
            if "KEYS" in src:
                assert any(v.startswith("KEYS") for v in own.values()), name  # its own layout, named
