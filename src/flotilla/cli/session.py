"""Running one command's API calls: the connection options, the client, the errors.

Every command that talks to the server takes the same ``--server``/``--token`` options
and runs its work as one coroutine inside `call`, which owns the event loop and the HTTP
client and turns the ways a call can fail into one clear `CliError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import httpx

from flotilla.cli.config import ConfigError, Connection, resolve
from flotilla.client.base import ApiError, ResourceClient
from flotilla.client.http import HttpClient, UnreachableError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """A failure to report as one line; exit code 1 for API/runtime errors, 2 for usage."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def connection_options(fn: F) -> F:
    """``--server`` and ``--token``. Their environment variables are read by
    `flotilla.cli.config.resolve`, not by click, because a flag and a variable are two
    different sources there (each pairs a server with its own token)."""
    fn = click.option(
        "--token", metavar="TOKEN",
        help="Bearer token for --server (env FLOTILLA_TOKEN, with FLOTILLA_SERVER). Else "
             "the token of ./.flotilla/up.json or the config file, whichever names the "
             "server used.",
    )(fn)
    fn = click.option(
        "--server", "-s", metavar="URL",
        help="API server, e.g. http://127.0.0.1:8443 (env FLOTILLA_SERVER). Else "
             "./.flotilla/up.json, then the config file ($FLOTILLA_CONFIG or "
             "~/.config/flotilla/config.yaml).",
    )(fn)
    return fn


def connect(server: str | None, token: str | None) -> Connection:
    try:
        return resolve(server, token)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def call(conn: Connection, work: Callable[[ResourceClient], Awaitable[T]]) -> T:
    """Run ``work(client)`` against ``conn`` and translate failures into `CliError`."""

    async def run() -> T:
        async with HttpClient(conn.server, conn.token) as client:
            return await work(client)

    try:
        return asyncio.run(run())
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
    return (f"cannot reach the Flotilla server at {conn.server} ({reason}; address from "
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
