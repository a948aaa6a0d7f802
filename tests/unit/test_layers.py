"""The import contract: the system under test stands alone, the harness's layers hold, no import cycles.

The contracts are in pyproject.toml (``[tool.importlinter]``) and drawn in
docs/internals.md; ``lint-imports`` checks them. The cycle check counts every
import statement, function-local and ``TYPE_CHECKING`` ones included, since a
cycle hidden inside a function is still a cycle.
"""

from __future__ import annotations

import grimp
from importlinter.cli import lint_imports
from paths import REPO


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; pure."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_finds_cycles_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"c"}}) == [["c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_import_cycles_in_the_harness_or_the_backend():
    graph = grimp.build_graph("oversold", "reference_backend", include_external_packages=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def test_the_import_contracts_hold(capsys):
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count("KEPT") == 3


def test_the_reference_backend_imports_nothing_of_the_harness():
    graph = grimp.build_graph("oversold", "reference_backend", include_external_packages=False)
    leaks = sorted((m, w) for m in graph.modules if m.startswith("reference_backend")
                   for w in graph.find_modules_directly_imported_by(m) if w.startswith("oversold"))
    assert leaks == []
