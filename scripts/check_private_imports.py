"""Fail when a package of flotilla imports another package's private module or name.

A leading underscore marks what a package keeps to itself (``flotilla.traffic._pool``,
``flotilla.store.sqlite._writer``, ``from flotilla.dns.zone import _pack``): its own
modules may use it, no other package may, so it can change without a reader elsewhere
noticing. import-linter's contracts speak of packages, not of names, so this rule is
checked here, next to ``lint-imports`` in scripts/test.sh.

"Package" is the first level under ``flotilla`` (``flotilla.controllers.placement`` may
use ``flotilla.controllers._x``; ``flotilla.cli`` may not). Dunder modules and names
(``__init__``, ``__version__``) are public.

    python scripts/check_private_imports.py [SRC]    # SRC: the folder holding flotilla/

Exit 0 when clean; 1 with one line per offending import (file:line, what, whose).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = "flotilla"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _owner(module: str) -> str:
    """The package a module belongs to: ``flotilla.X`` (or ``flotilla`` for the root)."""
    return ".".join(module.split(".")[:2])


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(src: Path, importer: str, is_package: bool,
             node: ast.stmt) -> Iterator[tuple[str, str | None]]:
    """(module, name or None) for everything ``node`` imports from flotilla."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, None
    elif isinstance(node, ast.ImportFrom):
        module = _resolve(importer, is_package, node)
        for alias in node.names:
            sub = src.joinpath(*f"{module}.{alias.name}".split("."))
            if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                yield f"{module}.{alias.name}", None  # a submodule, not a name
            else:
                yield module, alias.name


def violations(src: Path) -> list[str]:
    """One line per import of another package's private module or name under ``src``."""
    out = []
    for path in sorted((src / ROOT).rglob("*.py")):
        importer = _module_name(src, path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for module, name in _targets(src, importer, is_package, node):
                parts = module.split(".")
                if parts[0] != ROOT or _owner(module) == _owner(importer):
                    continue
                private = [p for p in parts[1:] if _private(p)]
                what = module if private else None
                if name is not None and _private(name):
                    what = f"{module}.{name}"
                if what is not None:
                    out.append(f"{path.relative_to(src)}:{node.lineno}: {importer} imports "
                               f"{what}, private to {_owner(module)}")
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    if not (src / ROOT / "__init__.py").is_file():
        print(f"{src} holds no {ROOT}/ package", file=sys.stderr)
        return 2
    found = violations(src)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} import(s) of another package's private module or name",
              file=sys.stderr)
        return 1
    print(f"no package imports another's private module ({src / ROOT})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
