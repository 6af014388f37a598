"""Imports flow one way: no circle of modules in the code, counting every import (inside functions and under
``TYPE_CHECKING`` too: a deferred import is still a dependency, and it is how a circle hides). Read from the source
with ``ast``, nothing imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("assets", "ingestion", "quality", "orchestration")


def modules(root: Path = REPO) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a name in one) lives in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module of ours ``module`` imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parents, base] if base else parents)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            owner = _owner(target, known)
            if owner is not None and owner != module:
                yield owner


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(vertex: str) -> None:
        index[vertex] = low[vertex] = len(index)
        stack.append(vertex)
        on_stack.add(vertex)
        for other in sorted(edges.get(vertex, ())):
            if other not in index:
                visit(other)
                low[vertex] = min(low[vertex], low[other])
            elif other in on_stack:
                low[vertex] = min(low[vertex], index[other])
        if low[vertex] == index[vertex]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == vertex:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in sorted(edges):
        if vertex not in index:
            visit(vertex)
    return found


def test_the_circle_finder_finds_a_planted_circle_and_a_deferred_import(tmp_path: Path) -> None:
    """The check itself can fail: a circle closed by an import inside a function is found."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "__init__.py").write_text("")
    (tmp_path / "assets" / "a.py").write_text("from assets.b import thing\n")
    (tmp_path / "assets" / "b.py").write_text("def thing():\n    from assets import a\n")
    (tmp_path / "assets" / "c.py").write_text("from . import a\n")
    known = modules(tmp_path)
    edges = {name: set(imports(name, path, known)) for name, path in known.items()}
    assert edges["assets.c"] == {"assets.a"}, "relative imports resolve"
    assert circles(edges) == [["assets.a", "assets.b"]]


def test_no_module_imports_itself_back_through_others() -> None:
    known = modules()
    edges = {name: set(imports(name, path, known)) for name, path in known.items()}
    found = circles(edges)
    shown = [" -> ".join(c) + " (each imports another of these)" for c in found]
    assert found == [], "import circles (break one edge: move the shared part down):\n" + "\n".join(shown)


def missing(known: dict[str, Path]) -> list[str]:
    """Imports of a module of ours that does not exist (a deferred import of a moved module fails only when its
    function runs, often on a path few tests take)."""
    found = []
    for path in known.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in PACKAGES and name not in known:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return found


def test_every_import_of_our_own_modules_names_one_that_exists() -> None:
    assert missing(modules()) == []
