"""How a component's credential reaches it: a file (``--token-file``, mode 0600) or the
``FLOTILLA_TOKEN`` environment variable, never the command line, where ``ps`` and
``/proc/*/cmdline`` show it to every local user. ``--token`` stays for one-off use by
hand and says so in its help.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from flotilla.cli.session import CliError

F = TypeVar("F", bound=Callable[..., Any])

TOKEN_HELP = ("Bearer token. Prefer --token-file or $FLOTILLA_TOKEN: a token on the "
              "command line is visible to every local user (ps).")


def token_file_option(fn: F) -> F:
    """``--token-file PATH``: read the bearer token from a file (first line)."""
    return click.option(
        "--token-file", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
        envvar="FLOTILLA_TOKEN_FILE",
        help="File holding the bearer token (mode 0600; `flotilla up` writes one per "
             "component). Overrides --token and $FLOTILLA_TOKEN.")(fn)


def read_token_file(path: Path) -> str:
    """The token in ``path``; refused when others may read the file, as ssh does."""
    try:
        st = path.stat()
        text = path.read_text().strip()
    except OSError as exc:
        raise CliError(f"--token-file {path}: {exc.strerror or exc}", exit_code=2) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(f"--token-file {path}: mode {stat.S_IMODE(st.st_mode):04o} lets other "
                       "users read the token; chmod 600 it", exit_code=2)
    token = text.splitlines()[0].strip() if text else ""
    if not token:
        raise CliError(f"--token-file {path}: the file is empty", exit_code=2)
    return token


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    return read_token_file(token_file) if token_file is not None else token
