"""No import cycles among the package's modules, counting module-level imports (a deferred import inside a
function is allowed only to keep `chorus --help` fast, never to break a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"chorus": "chorus"}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, prefix in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            mods[".".join([prefix, *parts])] = path
    return mods


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                deps.add(node.module)
                deps.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        # importing a.b.c runs a and a.b first
        closed = {".".join(d.split(".")[: i + 1]) for d in deps for i in range(d.count(".") + 1)}
        graph[name] = {d for d in closed if d in mods and d != name and not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    mods = _modules()
    assert "chorus.services.gateway.app" in mods and "chorus.shared.data.loaders" in mods
    assert find_cycle(_graph(mods)) is None
