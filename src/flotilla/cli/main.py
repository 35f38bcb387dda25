"""The ``flotilla`` command: the group, the commands, and the one place errors are shown.

Commands raise; `main` reports. Every failure ends as a single red ``error:`` line on
stderr and an exit code a script can test (1: the operation failed, 2: the command line
was wrong) -- never a traceback, which would bury the one line that matters. Set
``FLOTILLA_DEBUG=1`` to get the traceback of an unexpected error.

Other components add their commands with `register` (e.g. ``flotilla up``,
``flotilla gateway``) without editing this file's command list.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

import click

from flotilla import __version__
from flotilla.cli.output import error
from flotilla.cli.session import CliError

#: Command name -> "module:attribute". Imported only when that command runs (or for the
#: top-level --help): every CLI call pays interpreter start-up, and importing the agent,
#: the server and the resource models for a `flotilla get` would more than double it.
COMMANDS: dict[str, str] = {
    "init": "flotilla.cli.admin:init",
    "server": "flotilla.cli.admin:server",
    "cert": "flotilla.cli.admin:cert",
    "config": "flotilla.cli.config_cmd:config",
    "backup": "flotilla.cli.store_cmd:backup",
    "restore": "flotilla.cli.store_cmd:restore",
    "apply": "flotilla.cli.apply:apply",
    "get": "flotilla.cli.get:get",
    "describe": "flotilla.cli.describe:describe",
    "delete": "flotilla.cli.delete:delete",
    "events": "flotilla.cli.events:events",
    "agent": "flotilla.cli.agent_cmd:agent",
    "node-agent": "flotilla.cli.node_agent_cmd:node_agent",
    "up": "flotilla.cli.up_cmd:up",
    "status": "flotilla.cli.up_cmd:status",
    "chaos": "flotilla.cli.chaos_cmd:chaos",
    "cluster": "flotilla.cli.cluster_cmd:cluster",
    "logs": "flotilla.cli.logs_cmd:logs",
    "gateway": "flotilla.cli.edge_cmd:gateway",
    "dns": "flotilla.cli.edge_cmd:dns",
    "rollout": "flotilla.cli.rollout_cmd:rollout",
    "what-if": "flotilla.cli.whatif_cmd:what_if_cmd",
    "token": "flotilla.cli.token_cmd:token",
    "audit": "flotilla.cli.token_cmd:audit",
    "dashboard": "flotilla.cli.dashboard_cmd:dashboard",
    "kubeconfig": "flotilla.cli.kubeconfig_cmd:kubeconfig_cmd",
}


class LazyGroup(click.Group):
    """A group whose commands in `COMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMANDS:
            return command
        module, _, attr = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command


@click.group(
    cls=LazyGroup,
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


def register(command: click.Command | str, name: str | None = None) -> None:
    """Add a command to ``flotilla``: a click command, or ``"module:attr"`` with ``name``
    to import it lazily (for components that bring their own commands)."""
    if isinstance(command, str):
        if not name:
            raise ValueError("a lazily registered command needs a name")
        COMMANDS[name] = command
    else:
        cli.add_command(command, name)


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
