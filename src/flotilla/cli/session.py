"""Running one command's API calls: the connection options, the client, the errors.

Every command that talks to the server takes the same ``--server``/``--token``/
``--ca-file``/``--context`` options and runs its work as one coroutine inside `call`,
which owns the event loop and the HTTP client and turns the ways a call can fail into
one clear `CliError` (a certificate that does not verify included: its line names the
problem and the CA it was checked against).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from flotilla.cli.config import ConfigError, Connection, resolve
from flotilla.client.base import ApiError, ResourceClient
from flotilla.client.http import HttpClient, TlsError, UnreachableError
from flotilla.pki import CaFileError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """A failure to report as one line; exit code 1 for API/runtime errors, 2 for usage."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``--ca-file``/``--context`` are kept in the click context rather than passed to
    every command function, which all hand ``server, token`` to `connect`."""
    if value is not None:
        ctx.meta[f"flotilla.{param.name}"] = value
    return value


def connection_options(fn: F) -> F:
    """``--server``, ``--token``, ``--ca-file`` and ``--context``. Their environment
    variables are read by `flotilla.cli.config.resolve`, not by click, because a flag and
    a variable are two different sources there (each pairs a server with its own token
    and CA)."""
    fn = click.option(
        "--context", "context", metavar="NAME", expose_value=False, callback=_remember,
        help="Use this context of the config file (env FLOTILLA_CONTEXT; default: its "
             "current-context). See 'flotilla config get-contexts'.",
    )(fn)
    fn = click.option(
        "--ca-file", "ca_file", metavar="PATH", expose_value=False, callback=_remember,
        type=click.Path(dir_okay=False, path_type=Path),
        help="CA certificate (PEM) to verify the server with (env FLOTILLA_CA_FILE). Else "
             "the CA of the source naming the server (up.json's 'ca', the context's "
             "certificate-authority).",
    )(fn)
    fn = click.option(
        "--token", metavar="TOKEN",
        help="Bearer token for --server (env FLOTILLA_TOKEN, with FLOTILLA_SERVER). Else "
             "the token of ./.flotilla/up.json or the config file, whichever names the "
             "server used.",
    )(fn)
    fn = click.option(
        "--server", "-s", metavar="URL[,URL...]",
        help="API server, e.g. https://127.0.0.1:8443, or several replicas of one control "
             "plane, e.g. https://10.0.0.5:8443,https://10.0.0.6:8443 (tried in turn when "
             "one fails) (env FLOTILLA_SERVER). Else ./.flotilla/up.json, then the config "
             "file ($FLOTILLA_CONFIG or ~/.config/flotilla/config.yaml; a context may list "
             "'servers').",
    )(fn)
    return fn


def connect(server: str | None, token: str | None) -> Connection:
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    try:
        return resolve(server, token, meta.get("flotilla.ca_file"),
                       meta.get("flotilla.context"))
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def call(conn: Connection, work: Callable[[ResourceClient], Awaitable[T]]) -> T:
    """Run ``work(client)`` against ``conn`` and translate failures into `CliError`."""

    async def run() -> T:
        async with HttpClient(conn.server, conn.token, ca=conn.ca) as client:
            return await work(client)

    try:
        return asyncio.run(run())
    except CaFileError as exc:
        raise CliError(f"{exc} (from {conn.ca_source})") from None
    except TlsError as exc:
        raise CliError(f"{exc.message}; pass the server's CA with --ca-file or "
                       f"FLOTILLA_CA_FILE (a data directory keeps it in pki/ca.crt)") from None
    except UnreachableError as exc:
        raise CliError(unreachable(conn, exc)) from None
    except ApiError as exc:
        raise CliError(api_message(exc, conn)) from None
    except httpx.TimeoutException:
        raise CliError(f"the server at {conn.server} did not answer in time") from None
    except BrokenPipeError:
        raise  # our stdout was closed (`flotilla get ... | head`), not the server
    except (httpx.TransportError, ConnectionError) as exc:
        raise CliError(unreachable(conn, exc)) from None


def unreachable(conn: Connection, exc: BaseException) -> str:
    reason = "connection refused" if _refused(exc) else (str(exc) or type(exc).__name__)
    if conn.server.startswith("http://") and "disconnected" in reason.lower():
        reason += "; Flotilla servers speak HTTPS unless started with --insecure-http"
    where = (f"the Flotilla server at {conn.server}" if "," not in conn.server else
             f"any of the Flotilla servers {', '.join(conn.servers)}")
    return (f"cannot reach {where} ({reason}; address from "
            f"{conn.source}). Start one with 'flotilla server --data-dir DIR --listen "
            f"HOST:PORT' or 'flotilla up', or point --server / FLOTILLA_SERVER at yours")


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def api_message(exc: ApiError, conn: Connection) -> str:
    if exc.status == 401:
        sent = (f"the token from {conn.token_source} was refused" if conn.token_source
                else f"no token was sent: no source naming {conn.server} has one")
        return (f"unauthorized by {conn.server}: {exc.message} ({sent}). Pass --token, "
                f"or run 'flotilla init' to write the config file")
    causes = exc.details.get("causes") if isinstance(exc.details, dict) else None
    message = exc.message
    if causes:
        listed = "; ".join(
            f"{c.get('field')}: {c.get('message')}" if c.get("field") else str(c.get("message"))
            for c in causes if isinstance(c, dict)
        )
        if listed and listed not in message:
            message = f"{message}: {listed}"
    return message
