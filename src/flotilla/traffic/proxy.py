"""The client side of the proxy: one `ClientConnection` (asyncio Protocol) per downstream
connection, running one exchange at a time (HTTP/1.1 keep-alive; pipelined requests are
queued and served in order).

Design, driven by measurement (docs/components/traffic.md):
- callbacks, not coroutines: a request that finds a pooled upstream connection is
  forwarded synchronously inside ``data_received`` - no task, no future, no timer;
- the request head is validated by httptools (llhttp) and forwarded as received, with
  the forwarding headers appended (`flotilla.traffic.http.heads`);
- bodies stream in both directions with transport flow control; only up to
  ``replay_limit`` bytes are kept to replay a body on a retry;
- a small response whose body did not come with its head (at most ``HOLD_LIMIT``
  bytes, content-length framed) is held until complete when the request could still be
  retried: an endpoint killed between its head and its body then costs a retry, not a
  cut response. Most small responses arrive in one read and skip this entirely;
- timeouts (header, idle, per try, total, queue wait; once a response streams: write
  blocked and upstream idle) are kept by each connection with at most one timer
  (`ClientConnection._on_timer`), re-armed only when a deadline moves *earlier*: on a
  keep-alive connection deadlines move later with every request, so a request pays a
  comparison, and the timer fires once per timeout period to re-arm itself. A timer
  created and cancelled per request would cost more than the request's routing. The
  streaming deadlines are armed only by what is rare: a response that did not come in
  one read (`upstream_streaming`) and a client buffer over its high-water mark
  (`pause_writing`);
- abuse limits (`GatewayOptions`): connection caps checked once per connection in
  `connection_made`; per endpoint, a cap on upstream connections with a bounded queue
  of waiting requests (`flotilla.traffic.pool.Pool`), which costs the hot path nothing
  while an idle connection is pooled.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

import httptools

from flotilla.lifecycle.net import kernel_unsent, reset_on_close
from flotilla.traffic.balancers.base import PickContext
from flotilla.traffic.drain import DrainWatch
from flotilla.traffic.env import is_trusted
from flotilla.traffic.http.chunked import ChunkedError, ChunkedScanner
from flotilla.traffic.http.heads import (
    connection_tokens,
    error_response,
    header_value,
    rewrite_request,
)
from flotilla.traffic.http.heads import rewrite_response as _rewrite_response
from flotilla.traffic.model import IDEMPOTENT_METHODS
from flotilla.traffic.pool import Pool, UpstreamConnection
from flotilla.traffic.tracing import (
    Record,
    client_traceparent,
    drop_traceparent,
    new_traceparent,
)

if TYPE_CHECKING:
    from flotilla.traffic.backend import BackendRuntime
    from flotilla.traffic.env import GatewayState, ProxyEnv
    from flotilla.traffic.upstream import Upstream

S_HEAD, S_BODY, S_WAIT, S_CLOSED = range(4)
_NO_BODY, _LENGTH, _CHUNKED = range(3)
_NEVER = float("inf")
#: The largest response (head excluded) held back until complete so that an upstream
#: dying mid-response can still be retried; larger ones stream as they come.
HOLD_LIMIT = 64 * 1024

#: A bodiless request head and what it parsed to: (head, state it was routed under,
#: runtime, method, HTTP/1.0, keep-alive, rewritten head, hash key, region, the client's
#: valid traceparent).
_RequestMemo = tuple[bytes, "GatewayState", "BackendRuntime", bytes, bool, bool, bytes,
                     "bytes | None", "str | None", "bytes | None"]


class _NoCallbacks:
    pass


_NO_CALLBACKS = _NoCallbacks()


_NO_BODY_REPLAY: list[bytes] = []  # shared by bodiless requests: nothing is ever added


class ClientConnection(asyncio.Protocol):
    __slots__ = ("admitted", "body_sent", "buf", "client_tp", "connecting", "ctx", "drain",
                 "env",
                 "framing", "generation", "hash_key", "head_out", "head_since", "held",
                 "http10", "idle_since", "idle_timeout", "in_exchange", "keep_alive",
                 "left", "loop", "max_head", "memo", "method", "parser", "peer", "pending",
                 "pending_size", "progress_at", "proto", "queued", "queued_at",
                 "read_paused", "region", "replay", "replay_limit", "replay_size",
                 "req_head", "request_done", "response_started", "retrying", "rt",
                 "scanner", "sent", "span", "state", "status", "t_start", "t_try", "timer",
                 "timer_at", "tp_line", "trace", "transport", "tried", "tries", "trusted",
                 "trying", "uconn", "upstream", "write_paused")

    def __init__(self, env: ProxyEnv, secure: bool = False) -> None:
        self.env = env
        #: The scheme the client used (TLS is terminated by the listener's transport).
        self.proto = b"https" if secure else b"http"
        self.max_head = env.options.max_head
        self.replay_limit = env.options.replay_limit
        self.idle_timeout = env.options.idle_timeout
        if env.loop is None:
            raise RuntimeError("a client connection needs a started gateway (ProxyEnv.loop)")
        self.loop = env.loop
        self.transport: asyncio.Transport | None = None
        self.peer = b"unknown"
        self.buf = bytearray()
        self.parser = httptools.HttpRequestParser(_NO_CALLBACKS)
        self.state = S_HEAD
        self.head_since = 0.0
        self.idle_since = 0.0
        self.read_paused = False
        self.write_paused = False
        #: Bytes written to the client (what it took: `delivered`).
        self.sent = 0
        #: The write-timeout and minimum-rate judge, from the first time writes blocked.
        self.drain: DrainWatch | None = None
        #: Counted in the connection caps (a refused connection never is).
        self.admitted = False
        #: The peer is a trusted proxy: its X-Forwarded-For is extended, not replaced.
        self.trusted = False
        # --- the current exchange ---
        self.rt: BackendRuntime | None = None
        self.method = b""
        self.keep_alive = True
        self.http10 = False
        self.head_out = b""
        self.framing = _NO_BODY
        self.left = 0
        self.scanner: ChunkedScanner | None = None
        self.request_done = True
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.body_sent = False
        self.upstream: Upstream | None = None
        #: A try to ``upstream`` is counted in flight and not yet settled.
        self.trying = False
        self.uconn: UpstreamConnection | None = None
        self.connecting = False
        self.generation = 0
        self.tries = 0
        self.tried: tuple[Upstream, ...] = ()
        self.retrying = False
        self.status = 0
        self.response_started = False
        #: A response held back until complete (see HOLD_LIMIT), or None.
        self.held: list[bytes] | None = None
        #: When the streaming response last got bytes from the upstream (0: it came whole).
        self.progress_at = 0.0
        #: The pool this request waits in for a connection (its endpoint is at its cap).
        self.queued: Pool | None = None
        self.queued_at = 0.0
        self.t_start = 0.0
        self.t_try = 0.0
        self.hash_key: bytes | None = None
        self.region: str | None = None
        self.in_exchange = False
        self.ctx = PickContext(())
        #: The last bodiless request head and what it parsed to (see `_head_bytes`).
        self.memo: _RequestMemo | None = None
        #: The one timer of this connection and when it fires (``_NEVER``: none).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = _NEVER
        # --- tracing (`flotilla.traffic.tracing`) ---
        #: The client's valid traceparent (forwarded as is), or None: one is started.
        self.client_tp: bytes | None = None
        #: The traceparent line added to the head upstream (b"": the client's is in it).
        self.tp_line = b""
        #: This request's traceparent, and its head (for the access log) and span.
        self.trace = b""
        self.req_head = b""
        self.span: object = None

    # --- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0]).encode()
        env = self.env
        opts = env.options
        if len(env.connections) >= opts.max_connections:
            self._refuse("max-connections", "the gateway is at its connection limit")
            return
        same = env.per_client.get(self.peer, 0)
        if same >= opts.max_connections_per_client:
            self._refuse("max-connections-per-client",
                         f"too many connections from {self.peer.decode()}")
            return
        env.per_client[self.peer] = same + 1
        self.admitted = True
        if env.trusted:
            self.trusted = is_trusted(self.peer, env.trusted)
        self.idle_since = now = self.loop.time()
        self._arm(now + self.idle_timeout)
        env.connections.add(self)
        env.metrics.active.inc()

    def _refuse(self, reason: str, message: str) -> None:
        """Over a connection cap: a 503 saying why, and the connection closed, before any
        byte of it is read."""
        self.state = S_CLOSED
        self.env.metrics.refused_connections.labels(reason).inc()
        assert self.transport is not None
        self.transport.write(error_response(503, message))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = S_CLOSED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.admitted:
            return
        self.admitted = False
        env = self.env
        env.connections.discard(self)
        env.metrics.active.dec()
        left = env.per_client[self.peer] - 1
        if left:
            env.per_client[self.peer] = left
        else:
            del env.per_client[self.peer]
        if self.in_exchange:
            self._abandon_upstream()
            self._end_exchange(ok=False)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def delivered(self) -> int:
        """Bytes the client has taken: written, minus what still waits in our buffer and
        in the kernel's (only called when writes block or on the timer: one ioctl)."""
        transport = self.transport
        assert transport is not None
        return self.sent - transport.get_write_buffer_size() - kernel_unsent(transport)

    def pause_writing(self) -> None:
        """The client reads slower than we write: stop reading the upstream, and judge
        the client (`flotilla.traffic.drain`: no byte for ``write_timeout``, or under
        ``min_send_rate``) until it catches up."""
        self.write_paused = True
        now = self.loop.time()
        drain = self.drain
        if drain is None:
            opts = self.env.options
            drain = self.drain = DrainWatch(opts.write_timeout, opts.min_send_rate,
                                            opts.min_send_rate_window)
        drain.fell_behind(now, self.delivered())
        deadline = drain.deadline()
        if deadline < self.timer_at:
            self._arm(deadline)
        if self.uconn is not None and self.uconn.transport is not None:
            self.uconn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and self.transport is not None:
            self.drain.caught_up(self.loop.time(), self.delivered())
        if self.progress_at:  # the upstream was paused by us, not idle
            self.progress_at = self.loop.time()
        if self.uconn is not None and self.uconn.transport is not None \
                and not self.uconn.closed:
            self.uconn.transport.resume_reading()

    def pause_client_reading(self) -> None:
        if not self.read_paused and self.transport is not None \
                and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.read_paused and self.transport is not None \
                and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == S_BODY:
            self._request_bytes(data, 0)
        elif state == S_HEAD:
            self._head_bytes(data)
        elif state == S_WAIT:  # pipelined: keep until the current exchange is done
            self.buf += data
            if len(self.buf) > self.max_head:
                self.pause_client_reading()

    # --- request side ----------------------------------------------------------------------

    def _head_bytes(self, data: bytes) -> None:
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        end = data.find(b"\r\n\r\n")
        max_head = self.max_head
        if end < 0 or end + 4 > max_head:
            if len(data) > max_head or end + 4 > max_head:
                self.req_head = b""
                self._local(431, "request header too large", "header-too-large")
                return
            if not self.head_since:
                self.head_since = now = self.loop.time()
                self._arm(now + self.env.options.header_timeout)
            buf += data
            return
        head = data if end + 4 == len(data) else data[:end + 4]
        self.head_since = 0.0
        memo = self.memo
        if memo is not None and head == memo[0] and memo[1] is self.env.state:
            # Byte-for-byte the previous bodiless request on this connection, under the
            # same model: validated, routed and rewritten already (clients resend the
            # same head on a keep-alive connection far more often than not).
            if end + 4 < len(data):
                self.buf += data[end + 4:]  # a pipelined request
            (_, _, self.rt, self.method, self.http10, self.keep_alive, self.head_out,
             self.hash_key, self.region, self.client_tp) = memo
            self.req_head = head
            self.framing = _NO_BODY
            self.request_done = True
            self.state = S_WAIT
            self.replay = _NO_BODY_REPLAY
            self._start()
            if len(self.buf) > max_head:
                self.pause_client_reading()
            return
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserError as e:
            self.req_head = b""
            self._local(400, f"malformed request: {e}", "bad-request")
            return
        if end + 4 < len(data):
            self.buf += data[end + 4:]  # body or a pipelined request: framing decides
        if self._begin(head) and self.state == S_BODY and self.buf:
            rest = bytes(self.buf)
            self.buf.clear()
            self._request_bytes(rest, 0)
        elif self.state == S_WAIT and len(self.buf) > max_head:
            self.pause_client_reading()

    def _begin(self, head: bytes) -> bool:
        """Route a validated head and start the exchange; False when answered locally."""
        # llhttp validated the head; read its parts from the bytes (the parser's own
        # accessors reset once a bodiless message completes).
        low = head.lower()
        self.req_head = head
        sp = head.find(b" ")
        self.method = method = head[:sp]
        eol = head.find(b"\r\n")
        version = head[eol - 9:eol]
        if version != b" HTTP/1.1" and version != b" HTTP/1.0":
            # llhttp also takes HTTP/0.9-style lines and other versions; we speak 1.x.
            return self._local(400, "only HTTP/1.0 and HTTP/1.1 requests are served",
                               "bad-request")
        self.http10 = http10 = version == b" HTTP/1.0"
        if low.find(b"\nconnection:") < 0:
            self.keep_alive = not http10
        else:
            tokens = connection_tokens(low)
            self.keep_alive = b"keep-alive" in tokens if http10 else b"close" not in tokens
        host_raw = header_value(low, b"\nhost:")
        if host_raw is None or low.count(b"\nhost:") > 1:
            return self._local(400, "a request needs exactly one Host header", "bad-request")
        target = head[sp + 1:head.find(b" ", sp + 1)]
        host = host_raw.decode("latin-1")
        host = host[:host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        # body framing first: a local answer must know whether a body follows
        if low.find(b"\ntransfer-encoding:") >= 0:
            if http10:  # RFC 9112 6.1: faulty framing; a 1.0 hop may not know chunked
                return self._local(400, "Transfer-Encoding in an HTTP/1.0 request",
                                   "bad-request")
            if header_value(low, b"\ntransfer-encoding:") != b"chunked":
                return self._local(400, "unsupported transfer-encoding", "bad-request")
            self.framing, self.scanner = _CHUNKED, ChunkedScanner()
        elif low.find(b"\ncontent-length:") >= 0:
            cl = header_value(low, b"\ncontent-length:")
            self.left = int(cl) if cl else 0
            self.framing = _LENGTH if self.left else _NO_BODY
        else:
            self.framing = _NO_BODY
        if self.framing != _NO_BODY:
            # The parser saw only this head; the body is framed by us. A fresh parser
            # starts the next request on a clean state.
            self.parser = httptools.HttpRequestParser(_NO_CALLBACKS)
        state = self.env.state
        rt = state.route(host, target.decode("latin-1"))
        if rt is None:
            return self._local(404, f"no route for host {host!r}", "no-route",
                               close=self.framing != _NO_BODY)
        tls = rt.policy.tls
        if tls is not None and tls.redirect_http and self.proto == b"http":
            return self._redirect(host, target)
        self.request_done = self.framing == _NO_BODY
        self.state = S_WAIT if self.request_done else S_BODY
        self.rt = rt
        self.head_out = rewrite_request(head, low, self.peer, host_raw, self.http10,
                                        self.proto, self.trusted)
        self.client_tp = None
        if low.find(b"\ntraceparent:") >= 0:
            self.client_tp, _ = client_traceparent(head, low)
            if self.client_tp is None or self.env.tracer is not None:
                self.head_out = drop_traceparent(self.head_out)  # ours replaces it
        self.hash_key = None
        if rt.hash_source:
            if rt.hash_source == "header":
                self.hash_key = header_value(low, rt.hash_header)
            elif rt.hash_source == "cookie":
                self.hash_key = _cookie(head, low, rt.hash_cookie)
            else:
                self.hash_key = self.peer
        self.region = None
        if rt.region_header:
            value = header_value(low, rt.region_header)
            self.region = value.decode("latin-1") if value else None
        if self.framing == _NO_BODY:
            self.replay = _NO_BODY_REPLAY
            self.memo = (head, state, rt, method, http10, self.keep_alive, self.head_out,
                         self.hash_key, self.region, self.client_tp)
        else:
            self.pending.clear()
            self.pending_size = 0
            self.replay = [] if method in IDEMPOTENT_METHODS or rt.retry_any_method else None
        self._start()
        return True

    def _start(self) -> None:
        """Start the exchange for the request just parsed (or recalled)."""
        rt = self.rt
        assert rt is not None
        self.replay_size = 0
        self.body_sent = False
        self.tries = 0
        self.tried = ()
        self.status = 0
        self.response_started = False
        self.held = None
        self.progress_at = 0.0
        self.in_exchange = True
        tracer = self.env.tracer
        if tracer is not None:
            self.span, tp = tracer.start(self.client_tp, rt.service)
            self.tp_line = b"traceparent: " + tp + b"\r\n\r\n"
        elif self.client_tp is None:
            tp = new_traceparent()
            self.tp_line = b"traceparent: " + tp + b"\r\n\r\n"
        else:
            tp = self.client_tp
            self.tp_line = b""
        self.trace = tp
        self.t_start = now = self.loop.time()
        if now + rt.first_timeout < self.timer_at:
            self._arm(now + rt.first_timeout)
        rt.active += 1
        self._try()

    def _request_bytes(self, data: bytes, pos: int) -> None:
        n = len(data)
        if self.framing == _LENGTH:
            take = min(self.left, n - pos)
            chunk = data if pos == 0 and take == n else data[pos:pos + take]
            self.left -= take
            end = pos + take if self.left == 0 else -1
        else:
            assert self.scanner is not None
            try:
                end = self.scanner.feed(data, pos)
            except ChunkedError as e:
                self._abandon_upstream()
                self._end_exchange(ok=False)
                self._local(400, f"bad chunked encoding: {e}", "bad-request")
                return
            chunk = data[pos:] if end < 0 else data[pos:end]
        if chunk:
            self._forward_body(chunk)
        if end >= 0:
            self.request_done = True
            self.state = S_WAIT
            if end < n:
                self.buf += data[end:]

    def _forward_body(self, chunk: bytes) -> None:
        if self.replay is not None:
            self.replay.append(chunk)
            self.replay_size += len(chunk)
            if self.replay_size > self.replay_limit:
                self.replay = None  # too big to replay: this request is not retried
        uconn = self.uconn
        if uconn is not None and uconn.transport is not None:
            uconn.transport.write(chunk)
            self.body_sent = True
        else:
            self.pending.append(chunk)
            self.pending_size += len(chunk)
            if self.pending_size > self.replay_limit:
                self.pause_client_reading()

    # --- trying upstreams -----------------------------------------------------------------

    def _try(self) -> None:
        rt = self.rt
        assert rt is not None
        ctx = self.ctx
        tried = self.tried
        if tried:
            ctx.reset(rt.candidates, self.hash_key, self.region, tried,
                      tuple({t.endpoint.cluster for t in tried}))
        else:
            ctx.reset(rt.candidates, self.hash_key, self.region)
        u = rt.pick(ctx)
        if u is None and tried:  # nothing else left: the same endpoint again
            ctx.reset(rt.candidates, self.hash_key, self.region)
            u = rt.pick(ctx)
        if u is None:
            self._end_exchange(ok=False)
            if not rt.upstreams:
                self._local(503, f"no endpoints for service {rt.service}", "no-endpoints",
                            close=not self.request_done)
            else:
                self._local(503, f"all endpoints of service {rt.service} are unavailable "
                            f"(ejected or failing health checks)", "all-unavailable",
                            close=not self.request_done)
            return
        self.upstream = u
        rt.try_started(u)
        self.trying = True
        self.t_try = self.loop.time()
        self.generation += 1
        pool = u.pool
        conn = pool.acquire()
        if conn is not None:
            self._attach(conn)
        elif pool.full():
            # The endpoint has all the connections it may have: wait for one of them
            # (`pool_ready`), a bounded number of requests and a bounded time.
            if not pool.enqueue(self):
                self._end_exchange(ok=False)
                self._local(503, f"endpoint {u.endpoint.cluster}/{u.endpoint.name} of "
                            f"service {rt.service} is busy: {len(pool.waiters)} requests "
                            f"already wait for a connection", "queue-full",
                            close=not self.request_done)
                return
            self.queued = pool
            self.queued_at = now = self.loop.time()
            deadline = now + self.env.options.queue_timeout
            if deadline < self.timer_at:
                self._arm(deadline)
        else:
            self._start_connect(u)

    def _start_connect(self, u: Upstream) -> None:
        self.connecting = True
        u.pool.connecting += 1
        task = self.loop.create_task(self._connect(u, self.generation))
        connects = self.env.connects
        connects.add(task)  # a strong reference until it is done
        task.add_done_callback(connects.discard)

    def pool_ready(self, conn: UpstreamConnection | None) -> None:
        """`Pool` callback for a queued request: ``conn`` to use, or None when there is
        room to open one."""
        self.queued = None
        if conn is not None:
            self._attach(conn)
        else:
            assert self.upstream is not None
            self._start_connect(self.upstream)

    async def _connect(self, u: Upstream, generation: int) -> None:
        rt = self.rt
        assert rt is not None
        e = u.endpoint
        pool = u.pool
        try:
            try:
                _, conn = await asyncio.wait_for(
                    self.loop.create_connection(lambda: UpstreamConnection(pool),
                                                e.address, e.port),
                    rt.policy.timeouts.connect)
            finally:
                pool.connect_ended()
        except (OSError, TimeoutError):
            if generation == self.generation and self.in_exchange:
                self.connecting = False
                self.upstream_failed(None, "connect-failure")
            return
        if generation == self.generation and self.in_exchange and self.state != S_CLOSED:
            self.connecting = False
            self._attach(conn)
        else:  # the exchange moved on (timeout, client gone): keep the connection
            conn.pool.release(conn, self.loop.time())

    def _attach(self, conn: UpstreamConnection) -> None:
        self.uconn = conn
        conn.begin(self, self.method == b"HEAD")
        transport = conn.transport
        assert transport is not None
        head = self.head_out[:-2] + self.tp_line if self.tp_line else self.head_out
        if self.pending:
            transport.writelines([head, *self.pending])
            self.body_sent = True
            self.pending.clear()
            self.pending_size = 0
            self.resume_client_reading()
        else:
            transport.write(head)
        # A pooled connection may come back with reading paused: the previous exchange
        # paused it (its client was slow) and finished before the client drained, so
        # nobody resumed it. Set it from *this* exchange's state, or its response would
        # never be read (seen as a rare 504 after a large download).
        if self.write_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _abandon_upstream(self) -> None:
        self.generation += 1
        self.connecting = False
        self.held = None
        if self.queued is not None:
            self.queued.dequeue(self)
            self.queued = None
        if self.uconn is not None:
            self.uconn.detach()
            self.uconn = None

    def _can_retry(self, reason: str) -> bool:
        rt = self.rt
        assert rt is not None
        r = rt.policy.retries
        key = "502" if reason == "bad-response" else reason
        if self.tries >= r.attempts or key not in r.retry_on or self.response_started:
            return False
        if self.method not in IDEMPOTENT_METHODS and not rt.retry_any_method:
            return False
        if self.body_sent and self.replay is None:
            return False
        if self.loop.time() - self.t_start >= rt.policy.timeouts.total:
            return False
        # The budget guards backends against retry storms when they are overloaded (5xx,
        # timeouts). A refused or reset connection means a dead endpoint: retrying adds
        # load to nobody, and is exactly what keeps users whole when an endpoint dies.
        return reason in ("connect-failure", "reset") or self.retrying or rt.may_retry()

    def _retry(self) -> None:
        rt = self.rt
        assert rt is not None
        assert self.upstream is not None
        self.tries += 1
        self.tried += (self.upstream,)
        if not self.retrying:
            self.retrying = True
            rt.retrying += 1
        self.env.metrics.retries.labels(rt.service).inc()
        if self.body_sent:
            assert self.replay is not None
            self.pending = list(self.replay)
            self.pending_size = self.replay_size
            self.body_sent = False
        self._try()

    def _try_failed(self, reason: str) -> None:
        """Account a failed try of the current upstream."""
        rt, u = self.rt, self.upstream
        assert rt is not None
        assert u is not None
        if self.trying:
            self.trying = False
            rt.try_failed(u, self.loop.time() - self.t_try,
                          connect=reason == "connect-failure")
        self.env.metrics.error(u.metrics, reason)

    # --- upstream callbacks ----------------------------------------------------------------

    def upstream_interim(self, head: bytes) -> None:
        if self.transport is not None:
            self.sent += len(head)
            self.transport.write(head)

    def upstream_head(self, conn: UpstreamConnection, status: int, head: bytes,
                      low: bytes, body: bytes) -> bool:
        """The response head (and the body bytes that came with it) arrived; False when
        the exchange retries elsewhere instead of forwarding it."""
        rt, u = self.rt, self.upstream
        assert rt is not None
        assert u is not None
        if status >= 500 and self._can_retry(str(status)):
            self._try_failed(str(status))
            self.uconn = None
            conn.detach()
            self._retry()
            return False
        self.status = status
        extra = u.response_header if rt.cluster_header else b""
        if not self.keep_alive or (not self.request_done and self.framing != _NO_BODY) \
                or conn.until_close:  # the body ends when the connection does
            self.keep_alive = False
            extra += b"connection: close\r\n"
        elif self.http10:
            extra += b"connection: keep-alive\r\n"
        if self.transport is not None:
            memo = conn.out_memo
            if memo is not None and memo[1] == extra and memo[0] == head:
                out = memo[2]
            else:
                out = _rewrite_response(head, low, extra)
                conn.out_memo = (head, extra, out)
            left = conn.length_left
            if left and left + len(body) <= HOLD_LIMIT and self._can_retry("reset"):
                self.held = [out, body]
                return True
            self.sent += len(out) + len(body)
            self.transport.write(out + body if body else out)
        self.response_started = True
        self.env.metrics.codes[status // 100 if status < 600 else 0] += 1
        return True

    def upstream_streaming(self) -> None:
        """The response continues after its first read: from here the upstream may go
        ``stream_idle_timeout`` without sending a byte."""
        self.progress_at = now = self.loop.time()
        deadline = now + self.env.options.stream_idle_timeout
        if deadline < self.timer_at:
            self._arm(deadline)

    def upstream_body(self, data: bytes) -> None:
        self.progress_at = self.loop.time()
        held = self.held
        if held is not None:
            held.append(data)
        elif self.transport is not None:
            self.sent += len(data)
            self.transport.write(data)

    def upstream_done(self, conn: UpstreamConnection, reusable: bool) -> None:
        rt, u = self.rt, self.upstream
        assert rt is not None
        assert u is not None
        now = self.loop.time()
        latency = now - self.t_try
        self.trying = False
        held = self.held
        if held is not None:
            self.held = None
            self.response_started = True
            self.env.metrics.codes[self.status // 100 if self.status < 600 else 0] += 1
            if self.transport is not None:
                self.sent += sum(map(len, held))
                self.transport.writelines(held)
        if self.status < 500:
            rt.try_succeeded(u, latency)
        else:
            rt.try_failed(u, latency)
            # per-cluster error rate for rollout gates (controllers/rollout/gates.py)
            self.env.metrics.error(u.metrics, "response-5xx")
        u.metrics.observe(latency)
        if self.env.observed:
            self._record(self.status, now)
        self.uconn = None
        if not self.request_done:
            reusable = False
            self.keep_alive = False
        if reusable and not u.retired:
            u.pool.release(conn, now)
        else:
            conn.close()
        self._end_exchange(ok=True)
        self._next_request(now)

    def upstream_failed(self, conn: UpstreamConnection | None, reason: str) -> None:
        if self.uconn is conn:
            self.uconn = None
        if conn is not None:
            conn.close()
        if not self.in_exchange:
            return
        self.held = None  # nothing of a held response went out: the exchange can go on
        self._try_failed(reason)
        if self.response_started:  # half a response is out: all we can do is cut it
            self._end_exchange(ok=False)
            if self.transport is not None:
                self.transport.abort()
            return
        if self._can_retry(reason):
            self._retry()
            return
        self._end_exchange(ok=False)
        rt = self.rt
        assert rt is not None
        if reason == "timeout":
            self._local(504, f"upstream timed out ({rt.service})", "upstream-timeout",
                        close=not self.request_done)
        else:
            self._local(502, f"upstream {reason} ({rt.service})", reason,
                        close=not self.request_done)

    # --- timeouts ---------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        """Make the timer fire by ``deadline`` (callers test ``deadline < timer_at``
        first on the hot path; a later deadline keeps the earlier timer, which re-arms)."""
        if deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _deadline(self) -> float:
        """When the current state times out (``_NEVER``: it does not)."""
        opts = self.env.options
        # A client that stopped reading, in any state (the response may be complete
        # upstream and still sit in our buffer).
        drain = self.drain
        blocked = drain.deadline() if self.write_paused and drain is not None else _NEVER
        state = self.state
        if state == S_HEAD:
            if self.head_since:
                return min(blocked, self.head_since + opts.header_timeout)
            return min(blocked, self.idle_since + self.idle_timeout)
        rt = self.rt
        if self.in_exchange and rt is not None:
            if not self.response_started:
                t = rt.policy.timeouts
                deadline = min(blocked, self.t_start + t.total, self.t_try + t.per_try)
                if self.queued is not None:
                    deadline = min(deadline, self.queued_at + opts.queue_timeout)
                return deadline
            if self.progress_at and not self.write_paused:
                return self.progress_at + opts.stream_idle_timeout
        return blocked  # closed, or a response complete upstream: the next state arms

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = _NEVER
        if self.state == S_CLOSED or self.transport is None:
            return
        now = self.loop.time()
        drain = self.drain
        if self.write_paused and drain is not None and drain.deadline() <= now:
            cut = drain.check(now, self.delivered())
            if cut is not None:
                self._write_timed_out(cut)
                return
        if self._deadline() <= now:
            opts = self.env.options
            if self.state == S_HEAD:
                if self.head_since:  # a head started and not finished in time: slowloris
                    self.head_since = 0.0
                    self.buf.clear()
                    self._local(408, "request header timeout", "header-timeout")
                else:  # idle keep-alive connection
                    self.state = S_CLOSED
                    self.transport.close()
                    return
            elif self.response_started:  # the upstream went quiet mid-response
                self._stream_timed_out()
            elif self.queued is not None and self.queued_at + opts.queue_timeout <= now:
                self._queue_timed_out()
            else:
                rt = self.rt
                assert rt is not None
                self.on_timeout(total=now >= self.t_start + rt.policy.timeouts.total)
        if self.state != S_CLOSED:
            # Early (the deadline moved later since arming) or a new state: re-arm. Never
            # sooner than 1 ms: a loop's timers may fire slightly before their time.
            self._arm(max(self._deadline(), now + 0.001))

    def _write_timed_out(self, kind: str) -> None:
        """The client took no byte for ``write_timeout`` (``kind`` "write") or drains
        under ``min_send_rate`` ("min-rate"): drop it, and the upstream connection it
        was pinning (its response is lost either way)."""
        self.env.metrics.client_timeouts.labels(kind).inc()
        self._abandon_upstream()  # closes the upstream connection; the try is abandoned
        self._end_exchange(ok=False)
        self.state = S_CLOSED
        assert self.transport is not None
        reset_on_close(self.transport)
        self.transport.abort()

    def _stream_timed_out(self) -> None:
        """The upstream sent nothing for ``stream_idle_timeout`` mid-response: a failed
        try of that endpoint; the client gets the cut response (as on a reset)."""
        conn = self.uconn
        self.uconn = None
        if conn is not None:
            conn.detach()
        self.upstream_failed(None, "stream-timeout")

    def _queue_timed_out(self) -> None:
        rt, u = self.rt, self.upstream
        assert rt is not None
        assert u is not None
        self._abandon_upstream()
        self._end_exchange(ok=False)
        self._local(503, f"endpoint {u.endpoint.cluster}/{u.endpoint.name} of service "
                    f"{rt.service} is busy: no connection free within "
                    f"{self.env.options.queue_timeout:g}s", "queue-timeout",
                    close=not self.request_done)

    def on_timeout(self, total: bool) -> None:
        """The try (or, ``total``, the whole request) ran out of time."""
        if not self.in_exchange or self.response_started:
            return
        self._abandon_upstream()
        if total:
            self._try_failed("timeout")
            self._end_exchange(ok=False)
            rt = self.rt
            assert rt is not None
            self._local(504, f"upstream timed out ({rt.service})", "upstream-timeout",
                        close=not self.request_done)
        else:
            self.upstream_failed(None, "timeout")

    # --- ending ---------------------------------------------------------------------------

    def _end_exchange(self, ok: bool) -> None:
        if not self.in_exchange:
            return
        self.in_exchange = False
        rt = self.rt
        if rt is not None:
            if self.trying:  # ended without a verdict on the endpoint (client gone...)
                self.trying = False
                assert self.upstream is not None
                rt.try_abandoned(self.upstream)
            rt.active -= 1
            if self.retrying:
                rt.retrying -= 1
                self.retrying = False
        self.connecting = False

    def _next_request(self, now: float) -> None:
        transport = self.transport
        if transport is None or self.state == S_CLOSED:
            return
        if not self.keep_alive:
            self.state = S_CLOSED
            transport.close()
            return
        self.state = S_HEAD
        self.idle_since = now
        if now + self.idle_timeout < self.timer_at:
            self._arm(now + self.idle_timeout)
        self.rt = None
        self.upstream = None
        if self.read_paused:
            self.resume_client_reading()
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            self._head_bytes(data)

    def _redirect(self, host: str, target: bytes) -> bool:
        """308 to the same host and target on https (the policy's ``redirectHTTP``)."""
        port = self.env.https_port
        location = f"https://{host}{'' if port == 443 else f':{port}'}".encode("latin-1") \
            + target
        return self._local(308, "use https", "redirect-https",
                           close=self.framing != _NO_BODY,
                           extra=b"location: " + location + b"\r\n")

    def _local(self, status: int, message: str, reason: str, close: bool = True,
               extra: bytes = b"") -> bool:
        """Answer from the gateway itself; False so callers can ``return self._local()``."""
        env = self.env
        metrics = env.metrics
        metrics.local_errors.labels(str(status), reason).inc()
        metrics.count(status)
        if env.observed:
            self._record(status, self.loop.time())
        transport = self.transport
        close = close or not self.keep_alive
        if transport is not None and not transport.is_closing():
            answer = error_response(status, message, close, extra)
            self.sent += len(answer)
            transport.write(answer)
            if close:
                self.state = S_CLOSED
                transport.close()
                return False
        self.state = S_WAIT
        self._next_request(self.loop.time())
        return False


    def _record(self, status: int, now: float) -> None:
        """The access log line and the span of the request that ends now (only with
        an access log or an OTLP endpoint configured: `ProxyEnv.observed`)."""
        rt, u, head = self.rt, self.upstream, self.req_head
        routed = rt is not None  # else answered before routing (404, 400, a redirect)
        line_end = head.find(b"\r\n")
        first = head[:line_end].split(b" ") if line_end > 0 else [b"", b""]
        host = header_value(head.lower(), b"\nhost:") or b""
        if routed and rt is not None:
            tp, started = self.trace, self.t_start
        else:
            tp = self.client_tp or new_traceparent()
            started = now
        cluster = endpoint = ""
        if routed and u is not None:
            _, cluster, endpoint = u.metrics.key
        record = Record(
            started=time.time() - (now - started), host=host.decode("latin-1"),
            method=first[0].decode("latin-1"),
            path=first[1].decode("latin-1") if len(first) > 1 else "",
            status=status, cluster=cluster, endpoint=endpoint,
            tries=self.tries + 1 if routed else 0,
            upstream_seconds=now - self.t_try if routed and u is not None else 0.0,
            total_seconds=now - started, traceparent=tp)
        env = self.env
        if env.access_log is not None:
            env.access_log.write(record)
        if env.tracer is not None and self.span is not None:
            env.tracer.end(self.span, record)
            self.span = None


def _cookie(head: bytes, low: bytes, name: bytes) -> bytes | None:
    value = header_value(low, b"\ncookie:")
    if value is None:
        return None
    start = low.find(b"\ncookie:") + 8
    raw = head[start:head.find(b"\r\n", start)]
    for part in raw.split(b";"):
        k, _, v = part.strip().partition(b"=")
        if k == name:
            return v
    return None


