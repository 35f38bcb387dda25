"""The layering checks pass on the tree, and fail, naming the rule, on a violation.

Both checks run for real: ``lint-imports`` (the contracts in pyproject.toml) on the
package as it is and on a copy with one import added where the layering forbids it, and
scripts/check_private_imports.py on the package and on small packages made for the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
CHECK_PRIVATE = REPO / "scripts" / "check_private_imports.py"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contracts over the flotilla found in ``src``."""
    # Wide enough that no contract's name wraps: one contract, one line of the report.
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "400"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo",
                           "--config", str(REPO / "pyproject.toml")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def copy_of_package(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SRC / "flotilla", src / "flotilla",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


def add_import(module: Path, line: str) -> None:
    text = module.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, f"{module} has no __future__ import to put {line!r} after"
    module.write_text(f"{head}{sep}\n{line}\n{rest}")


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(SRC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("importer", "line", "contract"), [
    ("cli/get.py", "import flotilla.controllers.plane", "the CLI never imports the controllers"),
    ("lifecycle/serve.py", "import flotilla.resources.kinds",
     "a package imports only from the layers below it"),
    ("traffic/model.py", "import flotilla.dns.model",
     "the server, agent, gateway and DNS do not import each other"),
    ("scheduler/core.py", "import flotilla.client.base",
     "scheduler, store and client do not import each other"),
])
def test_a_violation_breaks_its_contract(tmp_path: Path, importer: str, line: str,
                                         contract: str) -> None:
    src = copy_of_package(tmp_path)
    add_import(src / "flotilla" / importer, line)
    done = lint_imports(src)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [ln for ln in done.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert len(broken) == 1, done.stdout
    assert broken[0].startswith(contract), done.stdout
    assert line.split()[-1] in done.stdout, done.stdout  # the offending import is named


def check_private(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK_PRIVATE), str(src)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_no_package_imports_another_packages_private_module() -> None:
    done = check_private(SRC)
    assert done.returncode == 0, done.stdout + done.stderr


def make_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"flotilla/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_private_imports_across_packages_are_refused(tmp_path: Path) -> None:
    src = make_package(tmp_path, {
        "flotilla/traffic/__init__.py": "",
        "flotilla/traffic/_pool.py": "def _grow() -> None: ...\n",
        "flotilla/traffic/http/__init__.py": "",
        "flotilla/traffic/http/_heads.py": "",
        "flotilla/traffic/zone.py": "def _pack() -> None: ...\n",
        "flotilla/cli/__init__.py": "",
        "flotilla/cli/a.py": "from flotilla.traffic._pool import _grow\n",
        "flotilla/cli/b.py": "import flotilla.traffic.http._heads\n",
        "flotilla/cli/c.py": "from flotilla.traffic import _pool\n",
        "flotilla/cli/d.py": "from flotilla.traffic.zone import _pack\n",
        "flotilla/cli/e.py": "from ..traffic.http import _heads\n",
    })
    done = check_private(src)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "flotilla/cli/a.py:1: flotilla.cli.a imports flotilla.traffic._pool._grow, "
        "private to flotilla.traffic",
        "flotilla/cli/b.py:1: flotilla.cli.b imports flotilla.traffic.http._heads, "
        "private to flotilla.traffic",
        "flotilla/cli/c.py:1: flotilla.cli.c imports flotilla.traffic._pool, "
        "private to flotilla.traffic",
        "flotilla/cli/d.py:1: flotilla.cli.d imports flotilla.traffic.zone._pack, "
        "private to flotilla.traffic",
        "flotilla/cli/e.py:1: flotilla.cli.e imports flotilla.traffic.http._heads, "
        "private to flotilla.traffic",
    ]


def test_a_package_may_use_its_own_private_modules(tmp_path: Path) -> None:
    src = make_package(tmp_path, {
        "flotilla/traffic/__init__.py": "from flotilla.traffic._pool import _grow\n",
        "flotilla/traffic/_pool.py": "def _grow() -> None: ...\n",
        "flotilla/traffic/http/__init__.py": "from .._pool import _grow\n",
        "flotilla/cli/__init__.py": "from flotilla.traffic import __doc__ as _doc\n",
    })
    done = check_private(src)
    assert done.returncode == 0, done.stdout + done.stderr
