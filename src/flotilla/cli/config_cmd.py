"""``flotilla config``: the contexts of the client config file (kubeconfig-like)."""

from __future__ import annotations

import click

from flotilla.cli.config import ConfigError, config_path, read_contexts, use_context
from flotilla.cli.output import echo, table
from flotilla.cli.session import CliError


@click.group(epilog="""\b
Examples:
  flotilla config get-contexts
  flotilla config use-context lab
""")
def config() -> None:
    """Show or switch the contexts of the client config ($FLOTILLA_CONFIG, else
    ~/.config/flotilla/config.yaml). A context binds a server, its CA and its token;
    a token is only ever sent to the server of its own context."""


@config.command("get-contexts")
def get_contexts() -> None:
    """List the contexts; the current one is marked with *."""
    path = config_path()
    try:
        contexts, current = read_contexts(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if not contexts:
        raise CliError(f"{path} has no contexts; 'flotilla init' writes one")
    rows = [["*" if c["name"] == current else "", str(c["name"]), str(c.get("server") or ""),
             str(c.get("certificate-authority") or "<system>"),
             "token-file" if c.get("token-file") else ("token" if c.get("token") else "none")]
            for c in contexts]
    table(["CURRENT", "NAME", "SERVER", "CA", "CREDENTIAL"], rows)


@config.command("use-context")
@click.argument("name")
def use_context_cmd(name: str) -> None:
    """Make NAME the current context."""
    try:
        path = use_context(name)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    echo(f'switched to context "{name}" ({path})')
