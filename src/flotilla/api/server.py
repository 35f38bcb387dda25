"""Running the API server: store, admin token, uvicorn, background tasks, shutdown.

uvicorn runs on uvloop with the httptools parser, on a socket this module binds itself
(so ``--listen 127.0.0.1:0`` works and the real port is printed). The process is three
components under `flotilla.lifecycle.serve` (signals, order, crashes): the store, the
background tasks, the HTTP API. They stop in reverse: on SIGINT/SIGTERM the open watch
streams are ended *first* — otherwise uvicorn would wait for those never-ending
responses — then the HTTP server stops, background tasks are cancelled, and the store is
closed last.

The API is HTTPS only unless ``insecure_http`` (for a TLS terminator in front): the
serving pair comes from the data directory's CA (`flotilla.pki.ensure_server_pair`,
issued for the listen address and localhost when missing or stale), and a plain-HTTP
request to the port fails its handshake and is closed, never served.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import uvicorn
import uvloop

from flotilla.api import heap
from flotilla.api.app import create_app
from flotilla.api.audit import AuditLog
from flotilla.api.auth import Authenticator, ensure_admin_token
from flotilla.api.fairness import Fairness, FairnessConfig
from flotilla.api.http_guard import HttpLimits, InflightLimit, header_timeout_protocol
from flotilla.api.metrics import ApiMetrics
from flotilla.api.registry import Registry
from flotilla.api.routes import ApiContext
from flotilla.lifecycle import FatalError, Loops, Step, serve
from flotilla.lifecycle import run as run_process
from flotilla.lifecycle.asgi import AsgiServer
from flotilla.pki import ensure_server_pair, server_ssl_context
from flotilla.pki.files import ensure_private_dir
from flotilla.pki.layout import PkiLayout
from flotilla.store.base import CorruptStore, Store, StoreUnavailable
from flotilla.store.encrypted import EncryptedStore
from flotilla.store.envelope import Envelope, KeyFileError
from flotilla.store.fence import FencingStore
from flotilla.store.metrics import StoreCollector, StoreTelemetry
from flotilla.store.sqlite.lock import DataDirLocked
from flotilla.store.url import StoreSpec, open_store, sqlite_spec

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_HTTP_LIMITS = HttpLimits()
Background = Callable[[Registry], Awaitable[None]]
INSECURE_WARNING = (
    "*** --insecure-http: the API is served over PLAIN HTTP. Tokens and every object "
    "cross the network unencrypted and unauthenticated; use this only behind a TLS "
    "terminator on the same host. ***")


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


class _Store:
    """The store and the registry over it: opened first, closed last."""

    name = "store"

    def __init__(self, data_dir: Path, keep_revisions: int | None,
                 disk_reserve: int | None = None, spec: StoreSpec | None = None) -> None:
        self.data_dir = data_dir
        self.spec = spec or sqlite_spec(data_dir)
        self.keep_revisions = keep_revisions
        self.disk_reserve = disk_reserve
        self.store: Store | None = None
        self._registry: Registry | None = None
        #: the store under encryption and fencing, whose `telemetry` /metrics shows
        self._backend: object = None

    @property
    def registry(self) -> Registry:
        assert self._registry is not None, "the store is not open yet"
        return self._registry

    def telemetry(self) -> StoreTelemetry | None:
        """The SQLite store's batch, commit and watch figures (None for etcd)."""
        telemetry = getattr(self._backend, "telemetry", None)
        return telemetry() if callable(telemetry) else None

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        try:
            envelope = Envelope.load_or_create(PkiLayout(self.data_dir).secrets_key)
            backend = await open_store(self.spec, keep_revisions=self.keep_revisions,
                                       disk_reserve=self.disk_reserve)
        except (CorruptStore, DataDirLocked, KeyFileError) as exc:  # the operator's to fix
            raise FatalError(str(exc)) from None
        except StoreUnavailable as exc:
            raise FatalError(f"cannot open the store: {exc}") from None
        self._backend = backend
        self.store = EncryptedStore(backend, envelope)
        # the controllers' writes are fenced by the leader Lease (flotilla.store.fence)
        self._registry = Registry(FencingStore(self.store))

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None


async def run_server(
    data_dir: Path,
    listen: str,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    background: Sequence[Callable[[Registry], Awaitable[None]]] = (),
    keep_revisions: int | None = None,
    disk_reserve: int | None = None,
    bookmark_interval: float = 5.0,
    insecure_http: bool = False,
    http_limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    fairness: FairnessConfig | None = None,
    store_spec: StoreSpec | None = None,
    metrics: ApiMetrics | None = None,
    server_name: str = "",
) -> None:
    """Serve the API on ``listen`` from the store in ``data_dir`` (or ``store_spec``'s)
    until SIGINT/SIGTERM.

    ``background`` coroutines (controllers) get the in-process `Registry` and run until
    shutdown. ``keep_revisions`` bounds the watch history kept in the store.
    ``metrics`` is the registry /metrics shows (the controllers' count there too).
    ``server_name`` (``--name``) is written on each audit line: which replica answered.
    """
    host, port = parse_listen(listen)
    # The store, its WAL, the audit log and the logs hold secrets or who did what: private
    # to this user from their first byte, in a private data directory.
    os.umask(0o077)
    ensure_private_dir(data_dir)
    tls = None
    if insecure_http:
        log.warning(INSECURE_WARNING)
    else:
        layout = ensure_server_pair(data_dir, host)
        tls = server_ssl_context(layout.server_cert, layout.server_key)
    token = ensure_admin_token(data_dir)
    if token is not None:
        print(f"Admin token (shown only this once; the data dir keeps only its hash): {token}",
              flush=True)
    store = _Store(data_dir, keep_revisions, disk_reserve, store_spec)
    metrics = metrics or ApiMetrics()
    metrics.registry.register(StoreCollector(store.telemetry))

    def http_config() -> uvicorn.Config:
        ctx = ApiContext(store.registry, Authenticator.from_data_dir(data_dir), metrics,
                         max_body_bytes, bookmark_interval,
                         audit=AuditLog(data_dir, server=server_name),
                         fairness=Fairness(fairness or FairnessConfig()))
        # Hostile clients: `flotilla.api.http_guard` (header timeout, requests in flight).
        return uvicorn.Config(InflightLimit(create_app(ctx), http_limits.max_inflight),
                              loop="none", http=header_timeout_protocol(http_limits.header_timeout),
                              ws="none", lifespan="off", access_log=False, log_level="warning",
                              # typed int by uvicorn, used as a call_later delay: a float works
                              timeout_keep_alive=http_limits.keep_alive_timeout,  # type: ignore[arg-type]
                              timeout_graceful_shutdown=5)

    # Stopped in reverse: watch streams end first (before_stop), then HTTP, then the
    # background tasks; the store closes last.
    http = AsgiServer("api", http_config, _bind(host, port),
                      before_stop=lambda: store.registry.close_watches(), tls=tls)
    scheme = "http" if tls is None else "https"
    await serve([
        store,
        Loops("background", [(getattr(fn, "__name__", "task"),
                              functools.partial(_supervise, fn, store)) for fn in background]),
        http,
        Step("heap", start=heap.settle),
        Step("announce", start=lambda: print(
            f"flotilla API server listening on {scheme}://{host}:{http.port}", flush=True)),
    ])


async def _supervise(fn: Background, store: _Store) -> None:
    """Run one background task; a crash is logged loudly but does not stop the API."""
    try:
        await fn(store.registry)
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
    disk_reserve: int | None = None,
    bookmark_interval: float = 5.0,
    insecure_http: bool = False,
    http_limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    fairness: FairnessConfig | None = None,
    store_spec: StoreSpec | None = None,
    metrics: ApiMetrics | None = None,
    server_name: str = "",
) -> None:
    """Blocking entry point for the CLI: `run_server` on a uvloop event loop."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_process(functools.partial(
        run_server, data_dir, listen, max_body_bytes=max_body_bytes, background=background,
        keep_revisions=keep_revisions, disk_reserve=disk_reserve,
        bookmark_interval=bookmark_interval, insecure_http=insecure_http,
        http_limits=http_limits, fairness=fairness,
        store_spec=store_spec, metrics=metrics, server_name=server_name),
        loop_factory=uvloop.new_event_loop)
