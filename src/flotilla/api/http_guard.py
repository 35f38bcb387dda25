"""Connection-level limits uvicorn does not give us: a header read timeout and a cap on
requests in flight that answers with a ``Status``.

What uvicorn 0.54 (httptools) does on its own, measured: a connection that sends
nothing, or sends its headers one byte at a time, is held open forever (its keep-alive
timer is armed only after a response, and every byte received disarms it), so a few
hundred slowloris clients hold as many sockets and parser states indefinitely. Its
``limit_concurrency`` counts open *connections* too and answers a plain-text 503.

So: `HeaderTimeoutProtocol` (uvicorn's httptools protocol, one timer added) gives each
request ``header_timeout`` seconds from its first byte (from the accept, for the first
request) to complete its headers, then answers 408 and closes; `InflightLimit` (ASGI
middleware) answers 503 with a ``Status`` and ``Retry-After`` once ``max_inflight``
requests are being served. Probes and watches are exempt: a watch is long-running by
design (capped on its own), and /healthz must tell an overloaded server from a dead one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from flotilla.api.errors import UnavailableError
from flotilla.client.base import ApiError

log = logging.getLogger(__name__)

_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The server's connection limits; the defaults are what `flotilla server` uses."""

    #: Requests served at once (watches and probes not counted); 503 beyond.
    max_inflight: int = 256
    #: Seconds a client has to send a request's headers; then 408 and the socket closes.
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: float = 5.0


def _status_bytes(err: ApiError) -> bytes:
    return json.dumps(err.to_status(), separators=(",", ":")).encode()


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        # Bytes while no request is in progress start the next request's headers.
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        log.info("closing connection from %s: headers not complete after %.1fs",
                 self.client, self.header_timeout)
        body = _status_bytes(ApiError(
            408, "Timeout",
            f"the request headers did not arrive within the limit of {self.header_timeout:g}s"))
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)
        self.transport.close()


def header_timeout_protocol(timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` with this header timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": timeout})


def _exempt(scope: Scope) -> bool:
    if scope["path"] in _PROBES:
        return True
    watch = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("watch", [""])
    return watch[-1].lower() in ("1", "true")


class InflightLimit:
    """ASGI middleware: at most ``limit`` requests served at once, 503 ``Status`` beyond.

    The 503 carries ``Retry-After: 1`` (client-go and our HTTP client retry it), and is
    answered before the body is read, so a refused request costs almost nothing.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            body = _status_bytes(UnavailableError(
                f"the server is serving its limit of {self.limit} concurrent requests; "
                "retry shortly"))
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", b"1"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
