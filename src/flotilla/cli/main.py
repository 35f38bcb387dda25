"""The ``flotilla`` command: the group, the commands, and the one place errors are shown.

Commands raise; `main` reports. Every failure ends as a single red ``error:`` line on
stderr and an exit code a script can test (1: the operation failed, 2: the command line
was wrong) -- never a traceback, which would bury the one line that matters. Set
``FLOTILLA_DEBUG=1`` to get the traceback of an unexpected error.

Other components add their commands with `register` (e.g. ``flotilla up``,
``flotilla gateway``) without editing this file's command list.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from flotilla import __version__
from flotilla.cli.admin import init, server
from flotilla.cli.agent_cmd import agent
from flotilla.cli.apply import apply
from flotilla.cli.chaos_cmd import chaos
from flotilla.cli.cluster_cmd import cluster
from flotilla.cli.delete import delete
from flotilla.cli.describe import describe
from flotilla.cli.events import events
from flotilla.cli.get import get
from flotilla.cli.members import logs
from flotilla.cli.output import error
from flotilla.cli.session import CliError
from flotilla.cli.up_cmd import status, up


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Get started:
  flotilla init --data-dir ./state          # admin token + client config
  flotilla server --data-dir ./state &      # the API on 127.0.0.1:8443
  flotilla apply -f app.yaml
  flotilla get deployments
  flotilla describe deploy web
Run 'flotilla COMMAND --help' for a command's options and examples.
""",
)
@click.version_option(__version__, "--version", prog_name="flotilla")
def cli() -> None:
    """Flotilla: run one application across many clusters as if they were one."""


def register(command: click.Command, name: str | None = None) -> None:
    """Add a command to ``flotilla`` (for components that bring their own)."""
    cli.add_command(command, name)


for _command in (init, server, apply, get, describe, delete, events):
    register(_command)
for _command in (agent, up, status, chaos, cluster, logs):
    register(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn every failure into one line."""
    code = run(argv)
    sys.exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="flotilla",
                          standalone_mode=False)
    except CliError as exc:
        error(exc.message)
        return exc.exit_code
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        error(exc.format_message() + hint)
        return 2
    except click.ClickException as exc:
        error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130
    except BrokenPipeError:
        # `flotilla get ... | head`: the reader left; that is not an error.
        _silence_stdout()
        return 0
    except Exception as exc:
        if os.environ.get("FLOTILLA_DEBUG"):
            traceback.print_exc()
        error(f"unexpected {type(exc).__name__}: {exc} (set FLOTILLA_DEBUG=1 for details)")
        return 1
    # With standalone_mode=False click returns the exit code of ctx.exit() / Exit.
    return result if isinstance(result, int) else 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
