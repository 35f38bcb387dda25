"""``flotilla token`` and ``flotilla audit``: credentials and the trail of what they did.

Both work on the control plane's data directory directly (the server re-reads the token
file within a second): holding that directory, which is private to the user running the
server, is what makes one an operator, so no API call and no bootstrap token is needed.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import click

from flotilla.cli.output import echo, note, table
from flotilla.cli.session import CliError
from flotilla.up.state import DEFAULT_DATA_DIR

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.:@]*[a-z0-9])?$")


def control_plane_dir(data_dir: Path | None) -> Path:
    """--data-dir, else $FLOTILLA_DATA_DIR, else ./.flotilla when `flotilla up` made it
    here, else the server's default data directory."""
    from flotilla.api.auth import TOKENS_FILE
    from flotilla.cli.admin import default_data_dir

    if data_dir is not None:
        return data_dir
    if os.environ.get("FLOTILLA_DATA_DIR"):
        return Path(os.environ["FLOTILLA_DATA_DIR"])
    if (DEFAULT_DATA_DIR / TOKENS_FILE).exists():
        return DEFAULT_DATA_DIR
    return default_data_dir()


_DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path),
    help="The control plane's data directory. Default: $FLOTILLA_DATA_DIR, else "
         "./.flotilla if `flotilla up` runs here, else ~/.local/share/flotilla.")


def _duration(value: str | None, flag: str) -> float | None:
    from flotilla.resources.models.common import parse_duration

    if value is None:
        return None
    text = value.strip()
    days = 0.0
    if text.endswith("d") and text[:-1].replace(".", "", 1).isdigit():
        days, text = float(text[:-1]), "0"
    try:
        seconds = parse_duration(text) + days * 86400
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}", exit_code=2) from None
    if seconds <= 0:
        raise CliError(f"{flag}: must be more than 0, got {value!r}", exit_code=2)
    return seconds


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (one identity per person or component)."""


@token.command("create", epilog="""\b
Examples:
  flotilla token create alice --role edit --namespace shop --ttl 720h
  flotilla token create ci --role view --ttl 1h
  flotilla token create agent-east-1 --cluster east-1     # an agent credential
  (umask 077; flotilla token create gw --role gateway | tail -1 > gateway.token)
Roles: admin, edit, view, gateway, dns, agent, or a ClusterRole you created.
""")
@click.argument("name")
@click.option("--role", help="The ClusterRole the token is bound to.")
@click.option("--namespace", default="", help="Apply the role in this namespace only.")
@click.option("--cluster", default="",
              help="Bind the token to a member cluster: an agent credential (role agent), "
                   "confined to that cluster's objects.")
@click.option("--ttl", metavar="DURATION",
              help="Expire after this long: 30m, 12h, 30d. Default: never.")
@_DATA_DIR
def create(name: str, role: str | None, namespace: str, cluster: str, ttl: str | None,
           data_dir: Path | None) -> None:
    """Create a token and print it once, alone on the last line of stdout (only its
    SHA-256 digest is kept). A token of the same name is replaced."""
    from flotilla.api.auth import AGENT, add_token
    from flotilla.api.authz import BUILTIN_ROLES

    if not _NAME.match(name):
        raise CliError(f"token name {name!r}: use lower-case letters, digits, '-', '.', "
                       "':' or '@'", exit_code=2)
    if cluster:
        if role not in (None, AGENT):
            raise CliError(f"--cluster makes an agent credential (role {AGENT}); drop "
                           f"--role {role}", exit_code=2)
        role = AGENT
    elif role is None:
        raise CliError("give --role ROLE (admin, edit, view, gateway, dns) or --cluster C",
                       exit_code=2)
    elif role == AGENT:
        raise CliError("an agent credential needs --cluster C (the cluster it may act for)",
                       exit_code=2)
    seconds = _duration(ttl, "--ttl")
    directory = control_plane_dir(data_dir)
    try:
        secret = add_token(directory, name, role, namespace=namespace, cluster=cluster,
                           ttl=seconds)
    except OSError as exc:
        raise CliError(f"cannot write the tokens of {directory}: {exc.strerror or exc}") \
            from None
    if role not in BUILTIN_ROLES:
        note(f"role {role!r} is not built in: the token gets what a ClusterRole {role!r} "
             f"and bindings to User {name!r} or Group {role!r} grant")
    scope = f" in namespace {namespace}" if namespace else ""
    note(f"token {name} (role {role}{scope}{', cluster ' + cluster if cluster else ''}) "
         f"created in {directory}; it is shown only this once")
    echo(secret)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "never"


@token.command("list")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@_DATA_DIR
def list_tokens(fmt: str, data_dir: Path | None) -> None:
    """The tokens and what they are bound to (never the secrets)."""
    from flotilla.api.auth import load_tokens

    records = load_tokens(control_plane_dir(data_dir))
    if fmt == "json":
        echo(json.dumps([{"name": r.name, "role": r.role, "namespace": r.namespace,
                          "cluster": r.cluster, "expires": _when(r.expires),
                          "expired": r.expired()} for r in records], indent=2))
        return
    table(["NAME", "ROLE", "NAMESPACE", "CLUSTER", "EXPIRES"],
          [[r.name, r.role, r.namespace or "*", r.cluster or "-",
            _when(r.expires) + (" (expired)" if r.expired() else "")] for r in records])


@token.command("revoke")
@click.argument("name")
@_DATA_DIR
def revoke(name: str, data_dir: Path | None) -> None:
    """Remove a token; the server refuses it within a second."""
    from flotilla.api.auth import revoke_token

    directory = control_plane_dir(data_dir)
    if not revoke_token(directory, name):
        raise CliError(f"no token named {name!r} in {directory} (see flotilla token list)")
    note(f"token {name} revoked")


@click.command(epilog="""\b
Examples:
  flotilla audit --since 5m
  flotilla audit --user agent-east-1 -o json
""")
@click.option("--since", metavar="DURATION", help="Only entries newer than this: 30s, 5m, 2h.")
@click.option("--user", help="Only this user's entries (a token name).")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@_DATA_DIR
def audit(since: str | None, user: str | None, fmt: str, data_dir: Path | None) -> None:
    """Every write and every refused call the API server answered, oldest first; with
    several servers (`flotilla up --ha`), every server's, merged in time order, SERVER
    naming the one that answered."""
    from flotilla.api.audit import read_entries

    directory = control_plane_dir(data_dir)
    try:
        entries = list(read_entries(directory, since=_duration(since, "--since"), user=user))
    except FileNotFoundError:
        raise CliError(f"no audit log in {directory} (nothing written yet, or not the "
                       "control plane's data directory: pass --data-dir)") from None
    except OSError as exc:
        raise CliError(f"cannot read the audit log of {directory}: {exc.strerror or exc}") \
            from None
    if fmt == "json":
        echo(json.dumps(entries, indent=2))
        return
    table(["TIME", "SERVER", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE",
           "SOURCE"],
          [[str(e.get("time", "")), str(e.get("server", "")), str(e.get("user", "")),
            str(e.get("verb", "")),
            str(e.get("resource", "")), str(e.get("namespace", "")), str(e.get("name", "")),
            str(e.get("code", "")), str(e.get("source", ""))] for e in entries])
