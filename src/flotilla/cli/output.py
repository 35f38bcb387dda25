"""Printing: consoles, tables, YAML/JSON dumps, error lines and human ages.

All terminal output goes through here so that the rules hold everywhere: data on stdout,
errors on stderr as one line, no colour when not a terminal (rich decides, honouring
``NO_COLOR``), and user data is never parsed as rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flotilla.resources.ages import age, human_duration, parse_time

__all__ = ["age", "human_duration", "parse_time"]

#: A wide virtual width when piped, so tables are never wrapped or truncated for scripts.
_PIPE_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    c = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not c.is_terminal:
        c = Console(stderr=stderr, highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
    return c


out = _console(stderr=False)
err = _console(stderr=True)


def error(message: str) -> None:
    """One red line on stderr: ``error: <message>``."""
    line = " ".join(message.split("\n")).strip()
    err.print(f"[bold red]error:[/bold red] {escape(line)}")


def note(message: str) -> None:
    """A secondary line on stderr (hints, progress) that scripts reading stdout ignore."""
    err.print(escape(message), style="dim")


def echo(text: str) -> None:
    """Plain text to stdout, exactly as given (no markup, no wrapping)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def as_list(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several objects as one document, in kubectl's ``kind: List`` shape."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """kubectl-style plain table: bold headers, no borders, two spaces between columns."""
    t = Table(box=None, pad_edge=False, padding=(0, 3, 0, 0), show_edge=False,
              header_style="bold")
    for h in headers:
        t.add_column(h, no_wrap=True, overflow="ignore")
    for row in rows:
        t.add_row(*(Text(cell) for cell in row))
    with out.capture() as captured:
        out.print(t)
    # rich pads the last column to its width; scripts and diffs prefer no trailing blanks.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()
