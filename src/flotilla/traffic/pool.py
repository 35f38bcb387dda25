"""Upstream connections: an asyncio Protocol per connection, the `Exchange` protocol it
reports to, and a LIFO idle pool per endpoint.

An upstream connection knows the request it serves only as an `Exchange` (the client
side of the proxy implements it), so this module needs nothing of the proxy.

LIFO because the most recently used connection is the least likely to have been closed
by the upstream's keep-alive timeout, and it leaves the cold ones to age out. The pool
expires idle connections with its own timer, armed only while it holds any.

The pool also caps the connections to its endpoint (``max_connections``, connects under
way included): a request finding none idle and the cap reached waits in a bounded FIFO
(``max_queue``) until a connection is released to it or one closes and makes room. So a
flood of slow requests cannot open thousands of connections to one backend; the caller
answers 503 when the queue is full or the wait too long. Releasing a connection checks
one field while nobody waits.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from flotilla.traffic.http.chunked import ChunkedError, ChunkedScanner
from flotilla.traffic.http.heads import connection_tokens, header_value

MAX_RESPONSE_HEAD = 65536
_IDLE, _HEAD, _BODY = range(3)
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NONE = range(4)


class Exchange(Protocol):
    """The request an `UpstreamConnection` is serving: where its response goes."""

    def upstream_interim(self, head: bytes) -> None:
        """A 1xx head (forwarded as is; the final head follows)."""
        ...

    def upstream_head(self, conn: UpstreamConnection, status: int, head: bytes,
                      low: bytes, body: bytes) -> bool:
        """The final response head and the body bytes that came with it; False when the
        exchange will not take this response (it retries elsewhere and has detached
        ``conn``)."""
        ...

    def upstream_streaming(self) -> None:
        """The response did not end with its head's read: more reads follow."""
        ...

    def upstream_body(self, data: bytes) -> None: ...

    def upstream_done(self, conn: UpstreamConnection, reusable: bool) -> None:
        """The response is complete; ``reusable``: ``conn`` may serve another request."""
        ...

    def upstream_failed(self, conn: UpstreamConnection | None, reason: str) -> None:
        """The try failed (``reset``, ``bad-response``...); ``conn`` is closed."""
        ...

    def pause_client_reading(self) -> None:
        """The upstream cannot take request bytes as fast as the client sends them."""
        ...

    def resume_client_reading(self) -> None: ...


class Waiter(Protocol):
    """A request queued in a `Pool` at its connection cap."""

    def pool_ready(self, conn: UpstreamConnection | None) -> None:
        """``conn`` is handed over (already taken from the pool), or (None) there is
        room now to open a connection, counted by `Pool.connecting` from the call on."""
        ...


class _NoCallbacks:
    """httptools needs a protocol object; the response head is only validated by it."""


_NO_CALLBACKS = _NoCallbacks()


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("buf", "closed", "exchange", "framing", "head_request", "idle_since",
                 "keep_alive", "left", "memo", "out_memo", "pool", "scanner", "state",
                 "transport")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.buf = bytearray()
        self.state = _IDLE
        self.framing = _NONE
        self.left = 0
        self.scanner: ChunkedScanner | None = None
        self.keep_alive = True
        self.head_request = False
        self.idle_since = 0.0
        self.closed = False
        #: The last response head and what it parsed to; the last rewrite of it for the
        #: client (`Exchange.upstream_head`). Both skip work on a repeated head.
        self.memo: tuple[bytes, bytes, int, bool, int, int] | None = None
        self.out_memo: tuple[bytes, bytes, bytes] | None = None

    # --- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.pool.opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        pool = self.pool
        pool.opened -= 1
        pool.forget(self)
        if pool.waiters:
            pool.wake()
        ex = self.exchange
        if ex is None:
            return
        if self.state == _BODY and self.framing == _UNTIL_CLOSE:
            self._finish(reusable=False)
        else:
            self.exchange = None
            ex.upstream_failed(self, "reset")

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_client_reading()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_client_reading()

    def data_received(self, data: bytes) -> None:
        if self.state == _BODY:
            self._body(data, 0)
        elif self.state == _HEAD:
            self._head(data)
        else:  # bytes nobody asked for: the stream is out of sync
            self.close()

    # --- exchange side -------------------------------------------------------------------

    def begin(self, exchange: Exchange, head_request: bool) -> None:
        self.exchange = exchange
        self.head_request = head_request
        self.state = _HEAD
        self.buf.clear()

    @property
    def length_left(self) -> int:
        """Bytes of a content-length body still to come (0 for any other framing)."""
        return self.left if self.framing == _LENGTH else 0

    def detach(self) -> None:
        """The exchange gives up on this connection (timeout, retry, client gone)."""
        self.exchange = None
        self.close()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    # --- parsing -------------------------------------------------------------------------

    def _head(self, data: bytes) -> None:
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        end = data.find(b"\r\n\r\n")
        if end < 0:
            buf += data
            if len(buf) > MAX_RESPONSE_HEAD:
                self._fail("bad-response")
            return
        head = data if end + 4 == len(data) else data[:end + 4]
        ex = self.exchange
        assert ex is not None
        memo = self.memo
        if memo is not None and head == memo[0] and not self.head_request:
            # Byte-for-byte the previous response head on this connection (upstreams
            # repeat theirs; only Date moves, once a second): parsed already.
            _, low, status, self.keep_alive, self.framing, self.left = memo
        else:
            try:
                httptools.HttpResponseParser(_NO_CALLBACKS).feed_data(head)
            except httptools.HttpParserError:
                self._fail("bad-response")
                return
            # Validated by llhttp; read from the bytes, because llhttp's keep-alive flag
            # is reset once a bodiless response (204, 304, content-length 0) completes.
            status = int(head[9:12])
            low = head.lower()
            if 100 <= status < 200:
                if status == 101:  # we never ask for an upgrade
                    self._fail("bad-response")
                    return
                ex.upstream_interim(head)
                if end + 4 < len(data):
                    self._head(data[end + 4:])
                return
            self._framing(head, low, status)
            if not self.head_request and self.framing in (_LENGTH, _NONE):
                self.memo = (head, low, status, self.keep_alive, self.framing, self.left)
        self.state = _BODY
        # The body bytes that came with the head go out in the same write as the head:
        # one syscall and one TCP segment instead of two for a typical small response.
        pos, n = end + 4, len(data)
        complete = False
        if self.framing == _NONE:
            body, complete, consumed = b"", True, pos
        elif self.framing == _LENGTH:
            take = min(self.left, n - pos)
            body, consumed = data[pos:pos + take], pos + take
            self.left -= take
            complete = self.left == 0
        elif self.framing == _CHUNKED:
            assert self.scanner is not None
            try:
                cend = self.scanner.feed(data, pos)
            except ChunkedError:
                self._fail("bad-response")
                return
            complete = cend >= 0
            consumed = cend if complete else n
            body = data[pos:consumed]
        else:
            body, consumed = data[pos:], n
        if not ex.upstream_head(self, status, head, low, body):
            return  # the exchange retries elsewhere and has detached us
        if complete:
            self._finish(reusable=self.keep_alive and consumed == n)
        elif self.exchange is ex:
            ex.upstream_streaming()

    @property
    def until_close(self) -> bool:
        """The response body is delimited by the connection closing."""
        return self.framing == _UNTIL_CLOSE

    def _framing(self, head: bytes, low: bytes, status: int) -> None:
        """Keep-alive and body framing of a final response head."""
        http11 = head[5:8] == b"1.1"
        if low.find(b"\nconnection:") < 0:
            keep_alive = http11
        elif low.find(b"\nconnection: keep-alive\r\n") >= 0 and low.count(b"\nconnection:") == 1:
            keep_alive = True
        else:
            tokens = connection_tokens(low)
            keep_alive = b"close" not in tokens if http11 else b"keep-alive" in tokens
        self.keep_alive = keep_alive
        if self.head_request or status in (204, 304):
            self.framing = _NONE
        elif (te := header_value(low, b"\ntransfer-encoding:")) is not None:
            if not te.endswith(b"chunked"):
                self.framing, self.keep_alive = _UNTIL_CLOSE, False
            else:
                self.framing, self.scanner = _CHUNKED, ChunkedScanner()
        elif (cl := header_value(low, b"\ncontent-length:")) is not None:
            self.framing, self.left = _LENGTH, int(cl)
        else:
            self.framing, self.keep_alive = _UNTIL_CLOSE, False

    def _body(self, data: bytes, pos: int) -> None:
        ex = self.exchange
        if ex is None:
            self.close()
            return
        n = len(data)
        if self.framing == _LENGTH:
            take = min(self.left, n - pos)
            ex.upstream_body(data if pos == 0 and take == n else data[pos:pos + take])
            self.left -= take
            if self.left == 0:
                self._finish(reusable=self.keep_alive and pos + take == n)
        elif self.framing == _CHUNKED:
            assert self.scanner is not None
            try:
                end = self.scanner.feed(data, pos)
            except ChunkedError:
                self._fail("bad-response")
                return
            if end < 0:
                ex.upstream_body(data if pos == 0 else data[pos:])
            else:
                ex.upstream_body(data[pos:end])
                self._finish(reusable=self.keep_alive and end == n)
        else:
            ex.upstream_body(data if pos == 0 else data[pos:])

    def _finish(self, reusable: bool) -> None:
        ex = self.exchange
        self.exchange = None
        self.state = _IDLE
        self.scanner = None
        if ex is not None:
            ex.upstream_done(self, reusable)
        elif not reusable:
            self.close()

    def _fail(self, reason: str) -> None:
        ex = self.exchange
        self.exchange = None
        self.close()
        if ex is not None:
            ex.upstream_failed(self, reason)


class Pool:
    """Idle keep-alive connections to one endpoint, its connection cap and the requests
    queued at it."""

    __slots__ = ("_timer", "connecting", "idle", "idle_timeout", "max_connections",
                 "max_idle", "max_queue", "opened", "waiters")

    def __init__(self, max_idle: int = 128, idle_timeout: float = 30.0,
                 max_connections: int = 1024, max_queue: int = 1024) -> None:
        self.idle: list[UpstreamConnection] = []
        self.max_idle = max_idle
        #: Idle connections older than this (seconds) are closed.
        self.idle_timeout = idle_timeout
        #: Connections open (idle or busy) and connects under way, and their cap.
        self.opened = 0
        self.connecting = 0
        self.max_connections = max_connections
        #: Requests waiting for a connection, oldest first (a dict: O(1) removal of a
        #: request that gives up), and how many may wait.
        self.waiters: dict[Waiter, None] = {}
        self.max_queue = max_queue
        self._timer: asyncio.TimerHandle | None = None

    def acquire(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def full(self) -> bool:
        """No connection may be opened now (call when `acquire` found none idle)."""
        return self.opened + self.connecting >= self.max_connections

    def enqueue(self, waiter: Waiter) -> bool:
        """Queue ``waiter`` for a connection; False when the queue is full."""
        if len(self.waiters) >= self.max_queue:
            return False
        self.waiters[waiter] = None
        return True

    def dequeue(self, waiter: Waiter) -> None:
        self.waiters.pop(waiter, None)

    def connect_ended(self) -> None:
        """A connect counted in `connecting` succeeded (the connection is in `opened`
        already) or failed (its room goes to the next waiter)."""
        self.connecting -= 1
        if self.waiters:
            self.wake()

    def wake(self) -> None:
        """Let queued requests open connections while there is room."""
        while self.waiters and not self.full():
            waiter = next(iter(self.waiters))
            del self.waiters[waiter]
            waiter.pool_ready(None)  # counts itself in ``connecting``

    def release(self, conn: UpstreamConnection, now: float) -> None:
        """Keep ``conn`` for reuse (or hand it to the oldest waiter); ``now`` is the event
        loop's time."""
        if conn.closed:
            return
        if self.waiters:
            waiter = next(iter(self.waiters))
            del self.waiters[waiter]
            waiter.pool_ready(conn)
            return
        conn.idle_since = now
        self.idle.append(conn)
        if len(self.idle) > self.max_idle:
            self.idle.pop(0).close()
        if self._timer is None:
            self._arm(now)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def _arm(self, now: float) -> None:
        """Wake up when the oldest idle connection expires. One timer per pool, re-armed
        once per expiry: releasing a connection (every request) only tests a field."""
        if self.idle:
            due = max(self.idle[0].idle_since + self.idle_timeout, now + 0.001)
            self._timer = asyncio.get_running_loop().call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        cutoff = now - self.idle_timeout
        idle = self.idle
        while idle and idle[0].idle_since <= cutoff:
            idle.pop(0).close()
        self._arm(now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in self.idle:
            conn.close()
        self.idle.clear()
