"""``flotilla init`` and ``flotilla server``: setting up and running a control plane."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flotilla.cli.config import DEFAULT_LISTEN, config_path, normalise_server, write_config
from flotilla.cli.output import echo, note
from flotilla.cli.session import CliError


def default_data_dir() -> Path:
    env = os.environ.get("FLOTILLA_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "flotilla"


_DATA_DIR_HELP = "State directory (store, token hashes). Default: $FLOTILLA_DATA_DIR or " \
                 "~/.local/share/flotilla."


@click.command(epilog="""\b
Examples:
  flotilla init
  flotilla init --data-dir ./state --server http://127.0.0.1:9000
  FLOTILLA_CONFIG=./client.yaml flotilla init --data-dir ./state
""")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
@click.option("--server", "server_url", default=f"http://{DEFAULT_LISTEN}", show_default=True,
              metavar="URL", help="Server address to write into the client config.")
def init(data_dir: Path | None, server_url: str) -> None:
    """Create the admin token and the client config file.

    The token is printed once: the data directory keeps only its hash. The client
    config ($FLOTILLA_CONFIG, else ~/.config/flotilla/config.yaml, mode 0600) gets the
    server address and the token, so later commands need no flags.
    """
    from flotilla.api.auth import ensure_admin_token  # server-side code: import on use

    data_dir = data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        token = ensure_admin_token(data_dir)
    except OSError as exc:
        raise CliError(f"cannot set up {data_dir}: {exc.strerror or exc}") from None
    if token is None:
        raise CliError(
            f"{data_dir} already has an admin token, and only its hash is kept, so it "
            f"cannot be shown again; use the config file you saved it in "
            f"({config_path()}) or start over with a new --data-dir")
    try:
        path = write_config(server_url, token)
    except OSError as exc:
        raise CliError(f"cannot write the client config {config_path()}: "
                       f"{exc.strerror or exc}") from None
    echo(f"admin token (shown only this once): {token}")
    note(f"client config written to {path} (server {normalise_server(server_url)}, mode 0600)")
    note(f"start the server with: flotilla server --data-dir {data_dir} --listen "
         f"{normalise_server(server_url).split('://', 1)[1]}")


@click.command(epilog="""\b
Examples:
  flotilla server --data-dir ./state --listen 127.0.0.1:8443
  flotilla server --listen 127.0.0.1:0      # any free port; the real one is printed
""")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to serve the API on.")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=3 * 1024 * 1024,
              show_default=True, help="Largest request body accepted (413 beyond).")
@click.option("--keep-revisions", type=click.IntRange(min=1), default=None, metavar="N",
              help="Watch history to keep, in revisions: a watcher resuming from an older "
                   "one must re-list (410). Default: the store's.")
@click.option("--disk-reserve", default="64Mi", show_default=True, metavar="QUANTITY",
              help="Free space kept on the store's disk: below it, writes that grow the "
                   "store get 507 (deletes and heartbeats go on). 0 turns it off.")
@click.option("--cluster-grace-period", type=click.FloatRange(min=0.1), default=3.0,
              show_default=True, help="Seconds without a heartbeat before a cluster is "
              "Ready=Unknown and tainted unreachable.")
@click.option("--no-controllers", is_flag=True,
              help="Serve the API only (no scheduler, health or failover controllers).")
def server(data_dir: Path | None, listen: str, max_body_bytes: int,
           keep_revisions: int | None, disk_reserve: str, cluster_grace_period: float,
           no_controllers: bool) -> None:
    """Run the control plane's API server until SIGINT/SIGTERM.

    On first start it creates the admin token and prints it once (unless `flotilla init`
    already did). Ready when GET /readyz answers 200.
    """
    from flotilla.api.plane import control_plane_tasks
    from flotilla.api.server import main as run  # heavy: import on use
    from flotilla.api.server import parse_listen
    from flotilla.lifecycle import FatalError
    from flotilla.resources.quantity import integer_amount

    try:
        parse_listen(listen)
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    try:
        reserve = integer_amount("disk-reserve", disk_reserve)
    except ValueError as exc:
        raise CliError(f"--disk-reserve: {exc}", exit_code=2) from None
    data_dir = data_dir or default_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        background = () if no_controllers else control_plane_tasks(cluster_grace_period)
        run(data_dir, listen, max_body_bytes=max_body_bytes, keep_revisions=keep_revisions,
            disk_reserve=reserve,
            background=background)
    except KeyboardInterrupt:
        return
    except FatalError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot serve on {listen} from {data_dir}: "
                       f"{exc.strerror or exc}") from None
