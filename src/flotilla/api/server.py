"""Running the API server: store, admin token, uvicorn, background tasks, shutdown.

uvicorn runs on uvloop with the httptools parser, on a socket this module binds itself
(so ``--listen 127.0.0.1:0`` works and the real port is printed). uvicorn's own signal
handling is replaced: on SIGINT/SIGTERM the open watch streams are ended *first* —
otherwise uvicorn would wait for those never-ending responses — then the HTTP server
stops, background tasks are cancelled, and the store is closed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import uvicorn
import uvloop

from flotilla.api.app import create_app
from flotilla.api.auth import Authenticator, ensure_admin_token
from flotilla.api.metrics import ApiMetrics
from flotilla.api.registry import Registry
from flotilla.api.routes import ApiContext
from flotilla.store.sqlite import open_sqlite_store

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024
Background = Callable[[Registry], Awaitable[None]]


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) into its parts, or a ValueError saying why."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: `run_server` owns shutdown ordering."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_server(
    data_dir: Path,
    listen: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background: Sequence[Callable[[Registry], Awaitable[None]]] = (),
    keep_revisions: int | None = None,
    bookmark_interval: float = 5.0,
) -> None:
    """Serve the API on ``listen`` from the store in ``data_dir`` until SIGINT/SIGTERM.

    ``background`` coroutines (controllers) get the in-process `Registry` and run until
    shutdown. ``keep_revisions`` bounds the watch history kept in the store.
    """
    host, port = parse_listen(listen)
    token = ensure_admin_token(data_dir)
    if token is not None:
        print(f"Admin token (shown only this once; the data dir keeps only its hash): {token}",
              flush=True)
    store = await (open_sqlite_store(data_dir) if keep_revisions is None
                   else open_sqlite_store(data_dir, keep_revisions=keep_revisions))
    try:
        registry = Registry(store)
        ctx = ApiContext(registry, Authenticator.from_data_dir(data_dir), ApiMetrics(),
                         max_body_bytes, bookmark_interval)
        sock = _bind(host, port)
        config = uvicorn.Config(
            create_app(ctx), loop="none", http="httptools", ws="none", lifespan="off",
            access_log=False, log_level="warning", timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(_supervise(fn, registry)) for fn in background]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        bound = sock.getsockname()
        print(f"flotilla API server listening on http://{host}:{bound[1]}", flush=True)
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            registry.close_watches()
            server.should_exit = True
            (outcome,) = await asyncio.gather(serving, return_exceptions=True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            sock.close()
        if isinstance(outcome, BaseException):
            raise RuntimeError(f"the HTTP server failed: {outcome!r}") from outcome
    finally:
        await store.close()


async def _supervise(fn: Background, registry: Registry) -> None:
    """Run one background task; a crash is logged loudly but does not stop the API."""
    try:
        await fn(registry)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s crashed", getattr(fn, "__name__", fn))


def main(
    data_dir: Path,
    listen: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background: Sequence[Background] = (),
    keep_revisions: int | None = None,
    bookmark_interval: float = 5.0,
) -> None:
    """Blocking entry point for the CLI: `run_server` on a uvloop event loop."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_server(data_dir, listen, max_body_bytes=max_body_bytes,
                              background=background, keep_revisions=keep_revisions,
                              bookmark_interval=bookmark_interval))
