"""No import cycle among the modules of `flotilla.traffic`: the graph is built from the
source with `ast` (every import counts, also those under ``TYPE_CHECKING`` and inside
functions: a cycle hidden that way is still two modules that cannot be read, tested or
changed apart), and any strongly connected component of more than one module fails."""

from __future__ import annotations

import ast
from pathlib import Path

import flotilla.traffic

PACKAGE = "flotilla.traffic"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module under ``root`` (a package dir)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_traffic_has_no_import_cycle() -> None:
    root = Path(flotilla.traffic.__file__).parent
    graph = import_graph(root, PACKAGE)
    assert f"{PACKAGE}.proxy" in graph
    assert f"{PACKAGE}.balancers.table" in graph
    assert f"{PACKAGE}.pool" in graph[f"{PACKAGE}.proxy"]  # the graph sees real imports
    assert cycles(graph) == []


def test_the_check_finds_cycles_however_they_are_written(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    # a hidden edge back: under TYPE_CHECKING, relative, from a subpackage
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .sub import c\n")
    (pkg / "sub" / "c.py").write_text("def f() -> None:\n    from .. import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")  # imports into the cycle, not part of it
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "sub" / "c.py").write_text("import json\n")
    assert cycles(import_graph(pkg, "pkg")) == []
