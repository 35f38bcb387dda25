"""A lean HTTP/1.1 client for load generators: kept-alive TLS connections, no pools of
objects per request.

httpx costs the heartbeat bench ~1 ms of CPU per request (request and response objects,
header models, its connection pool's state machine), so one generator process used a
whole core at ~600 renewals/s and became the bottleneck it was meant to measure. This
client writes the request bytes itself on a kept-alive asyncio stream and reads the
answer by its ``Content-Length`` (what uvicorn sends for every JSON answer): the same
bytes on the wire, TLS verified with the same context as `HttpClient`, a fraction of
the CPU. It is a bench tool, not a general client: no redirects, no chunked bodies, no
proxies.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

#: Seconds one request may take, connect included (as `HttpClient`'s default).
TIMEOUT = 10.0
#: An idle connection older than this is closed, not reused: the server closes its
#: side after its keep-alive timeout (5 s by default), and a request sent just then
#: would be lost in the race.
MAX_IDLE = 3.0


class LeanError(Exception):
    """A transport failure or an answer this client cannot read."""


class LeanHttp:
    """Kept-alive connections to one server. Each request takes an idle connection (or
    opens one), and puts it back when the answer was read whole; connections are never
    shared by two requests at once, so there is no pipelining to get wrong."""

    def __init__(self, url: str, token: str | None, ssl_context: ssl.SSLContext | bool
                 ) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context if isinstance(ssl_context, ssl.SSLContext) \
                else ssl.create_default_context()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._fixed = (f"Host: {parts.netloc}\r\n{auth}Accept: application/json\r\n"
                       "User-Agent: flotilla-bench\r\n").encode()
        #: (reader, writer, when it became idle), the most recently used last
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self._host, self._port, ssl=self._ssl,
                                             server_hostname=self._host if self._ssl
                                             else None)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """(status, body bytes); ``body`` is sent as JSON. A kept-alive connection the server closed
        while idle is retried once on a new one (nothing was read from it)."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = (f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed
                + (b"Content-Type: application/json\r\n" if body is not None else b"")
                + f"Content-Length: {len(payload)}\r\n\r\n".encode())
        async with asyncio.timeout(TIMEOUT):
            for attempt in range(2):
                kept = self._take() if attempt == 0 else None
                reused = kept is not None
                reader, writer = kept if kept is not None else await self._connect()
                try:
                    writer.write(head + payload)
                    status, keep, data = await self._read(reader)
                except (OSError, asyncio.IncompleteReadError, LeanError) as exc:
                    writer.close()
                    if reused and attempt == 0 and _nothing_read(exc):
                        continue
                    raise LeanError(f"{method} {path}: {exc!r}") from None
                except BaseException:
                    writer.close()  # cancelled mid-answer: the connection is unusable
                    raise
                if keep:
                    self._idle.append((reader, writer, time.monotonic()))
                else:
                    writer.close()
                return status, data
        raise AssertionError("unreachable")

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently used idle connection; the stale ones are closed."""
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < MAX_IDLE and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise LeanError(f"bad status line {lines[0][:80]!r}") from None
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise LeanError("chunked answers are not supported")
        return status, keep, await reader.readexactly(length) if length else b""

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()


def _nothing_read(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError) or (
        isinstance(exc, asyncio.IncompleteReadError) and not exc.partial)
