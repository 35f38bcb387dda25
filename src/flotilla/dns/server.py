"""The DNS listeners (UDP and TCP on one port) around the `Responder`, and `run_dns`.

UDP is a `DatagramProtocol` answering inline in ``datagram_received``: an answer is pure
CPU on in-memory data, so there is nothing to await and no task per packet. UDP answers
pass through response-rate limiting first (`flotilla.dns.ratelimit`). TCP reads 2-byte
length-framed queries, answers them in order and keeps the connection for further
queries (RFC 7766) within the bounds of `DnsLimits`: an idle timeout, a lifetime, a
write timeout for peers that do not read, and caps in all and per source address. At a
cap the oldest idle connection is closed to admit the new one, so a crowd of idle
sockets can hold file descriptors but never lock out a real query.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from flotilla.client.base import ResourceClient
from flotilla.client.http import HttpClient
from flotilla.dns.config_source import ConfigSource
from flotilla.dns.geo import GeoTable
from flotilla.dns.limits import DnsLimits
from flotilla.dns.metrics import DnsMetrics, serve_admin
from flotilla.dns.model import DEFAULT_TTL, DnsModel, check_zone
from flotilla.dns.ratelimit import ResponseRateLimiter
from flotilla.dns.responder import Outcome, Responder, header_only, truncated_reply
from flotilla.dns.select import Selector
from flotilla.dns.zone import compile_zones
from flotilla.lifecycle import Loops, Step, serve
from flotilla.lifecycle.net import reset_on_close

log = logging.getLogger(__name__)

_ERROR = Outcome("<error>", "-", "SERVFAIL")
_TCP_SEND_BUFFER = 65536
#: Linux's SO_RCVBUFFORCE (not in `socket` on every platform or in its stubs)
_SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port); ValueError names what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


class DnsServer:
    """An authoritative DNS server over one answer model; `update` swaps the model."""

    def __init__(
        self,
        model: DnsModel | None,
        *,
        listen: str = "127.0.0.1:0",
        admin_listen: str | None = None,
        geo_table: Mapping[str, str] | None = None,
        limits: DnsLimits | None = None,
    ) -> None:
        self.host, self._port = parse_listen(listen)
        self._admin = parse_listen(admin_listen) if admin_listen else None
        self.metrics = DnsMetrics()
        self.responder = Responder(None, Selector(GeoTable.from_mapping(geo_table)))
        self.limits = limits = limits or DnsLimits()
        self.rate_limiter = (
            ResponseRateLimiter(limits.rrl_rate, burst=limits.rrl_burst,
                                ipv4_prefix=limits.rrl_ipv4_prefix,
                                ipv6_prefix=limits.rrl_ipv6_prefix)
            if limits.rrl_rate > 0 else None
        )
        self._serial = int(time.time())
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._admin_server: asyncio.Server | None = None
        #: Open TCP connections, oldest first, and how many each source holds.
        self._connections: dict[asyncio.StreamWriter, _TcpConnection] = {}
        self._per_source: dict[str | None, int] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._reported: set[str] = set()
        if model is not None:
            self.update(model)

    @property
    def port(self) -> int:
        return self._port

    @property
    def admin_port(self) -> int | None:
        if self._admin_server is None:
            return None
        return int(self._admin_server.sockets[0].getsockname()[1])

    def update(self, model: DnsModel) -> None:
        """Compile and swap in a new model; the next query sees it whole."""
        self._serial += 1
        ns = _ns_addresses(self.host)
        self.responder.update(compile_zones(model, serial=self._serial, ns_addresses=ns))
        self.metrics.model_updates.inc()
        self.metrics.names.set(len(model.names))
        # Every rebuild re-reports the same odd objects; log each problem once.
        for problem in set(model.problems) - self._reported:
            log.warning("dns model: %s", problem)
        self._reported = set(model.problems)

    name = "dns"

    async def start(self, tasks: asyncio.TaskGroup | None = None) -> None:
        """Bind UDP and TCP (and the admin listener); returns once all answer. Nothing
        runs in ``tasks``: UDP answers inline and each TCP connection's handler is the
        server's own task, which `stop` waits for."""
        loop = asyncio.get_running_loop()
        # With port 0, UDP picks the port and TCP must get the same one; another process
        # can take it in between, so retry with a fresh port a few times.
        for attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self._port)
            )
            port = int(udp.get_extra_info("sockname")[1])
            _grow_receive_buffer(udp.get_extra_info("socket"), self.limits.udp_receive_buffer)
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, self.host, port, backlog=self.limits.tcp_listen_backlog)
            except OSError:
                udp.close()
                if self._port != 0 or attempt == 19:
                    raise
                continue
            self._udp, self._port = udp, port
            break
        if self._admin is not None:
            self._admin_server = await serve_admin(self.metrics, *self._admin)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for server in (self._tcp, self._admin_server):
            if server is not None:
                server.close()
        for writer in list(self._connections):
            writer.close()  # the handler then sees EOF and ends on its own
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        for server in (self._tcp, self._admin_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.wait_closed()
        self._tcp = self._admin_server = None

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def answer(self, wire: bytes, client: str | None, transport: str) -> bytes | None:
        """One query → one answer (or None to drop), with metrics; never raises."""
        started = time.perf_counter()
        try:
            out, outcome = self.responder.respond(wire, client, tcp=transport == "tcp")
        except Exception:  # a bug must cost one answer, not the listener
            log.exception("dns: failed to answer a query")
            out, outcome = (header_only(wire) if len(wire) >= 12 else None), _ERROR
        self.metrics.observe(outcome, time.perf_counter() - started, transport)
        return out

    def answer_udp(self, wire: bytes, client: str) -> bytes | None:
        """A UDP answer, or past the source prefix's rate an empty TC=1 reply."""
        limiter = self.rate_limiter
        if limiter is not None and not limiter.allow(client):
            self.metrics.rate_limited.inc()
            return truncated_reply(wire)
        return self.answer(wire, client, "udp")

    # -- TCP ------------------------------------------------------------------------

    def _admit(self, source: str | None) -> bool:
        """Make room for a connection from ``source``: close the oldest idle connection
        of that source at the per-source cap, the oldest idle one of anyone at the total
        cap. False if every connection in the way is busy answering."""
        limits = self.limits
        if self._per_source.get(source, 0) >= limits.tcp_max_per_source and \
                not self._evict_idle(lambda c: c.source == source):
            return False
        return len(self._connections) < limits.tcp_max_connections or \
            self._evict_idle(lambda c: True)

    def _evict_idle(self, which: Callable[[_TcpConnection], bool]) -> bool:
        for conn in self._connections.values():  # oldest first
            if not conn.busy and which(conn):
                self._forget(conn)
                conn.writer.close()
                self.metrics.tcp_closed.labels("evicted").inc()
                return True
        return False

    def _forget(self, conn: _TcpConnection) -> None:
        if self._connections.pop(conn.writer, None) is not None:
            left = self._per_source[conn.source] - 1
            if left:
                self._per_source[conn.source] = left
            else:
                del self._per_source[conn.source]
            self.metrics.tcp_connections.dec()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else None
        if not self._admit(client):
            self.metrics.tcp_closed.labels("refused").inc()
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # A DNS message is at most 64 KiB: a kernel send buffer of that bounds what a
            # peer that does not read can make us hold, and lets the write timeout see it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _TCP_SEND_BUFFER)
        limits = self.limits
        conn = _TcpConnection(writer, client, time.monotonic() + limits.tcp_lifetime)
        self._connections[writer] = conn
        self._per_source[client] = self._per_source.get(client, 0) + 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self.metrics.tcp_connections.inc()
        reason = "idle"
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), conn.wait(limits))
                size = int.from_bytes(head, "big")
                if size == 0:
                    break
                wire = await asyncio.wait_for(reader.readexactly(size), conn.wait(limits))
                out = self.answer(wire, client, "tcp")
                if out is not None:
                    conn.busy = True
                    writer.write(len(out).to_bytes(2, "big") + out)
                    reason = "write_timeout"
                    await asyncio.wait_for(writer.drain(), limits.tcp_write_timeout)
                    reason, conn.busy = "idle", False
        except TimeoutError:
            if reason == "idle" and time.monotonic() >= conn.deadline:
                reason = "lifetime"
            if conn.writer in self._connections:
                self.metrics.tcp_closed.labels(reason).inc()
            if reason == "write_timeout":
                reset_on_close(writer.transport)  # RST: no orphan trickling the queue
                writer.transport.abort()  # a peer that does not read: drop its buffer
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._forget(conn)
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _TcpConnection:
    """One open TCP connection: whose, until when, and whether it is mid-answer (a busy
    connection is never evicted; its write is bounded by the write timeout)."""

    __slots__ = ("busy", "deadline", "source", "writer")

    def __init__(self, writer: asyncio.StreamWriter, source: str | None,
                 deadline: float) -> None:
        self.writer = writer
        self.source = source
        self.deadline = deadline
        self.busy = False

    def wait(self, limits: DnsLimits) -> float:
        """How long the next read may take: the idle timeout, cut by the lifetime."""
        return max(0.0, min(limits.tcp_idle_timeout, self.deadline - time.monotonic()))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.server.answer_udp(data, str(addr[0]))
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: not our problem.
        log.debug("dns udp: %s", exc)


def _grow_receive_buffer(sock: Any, size: int) -> None:
    """Ask for a ``size``-byte receive buffer; past net.core.rmem_max the kernel caps
    SO_RCVBUF, so with the privilege (root, CAP_NET_ADMIN) ask past the cap. Never
    fails: a smaller buffer only drops more under a flood."""
    if sock is None or size <= 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        # Linux reports twice what was granted (the bookkeeping overhead it adds)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
        log.debug("dns udp: receive buffer %s bytes",
                  sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _ns_addresses(host: str) -> tuple[str, ...]:
    """Glue for ``ns.<zone>``: the address we listen on, when it is a concrete one."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return ()
    return () if addr.is_unspecified else (str(addr),)


async def run_dns(
    server: str,
    token: str,
    listen: str,
    zone: str,
    *,
    admin_listen: str | None = None,
    geo_table: dict[str, str] | None = None,
    ttl: int = DEFAULT_TTL,
    limits: DnsLimits | None = None,
    client: ResourceClient | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    ca: Path | None = None,
) -> None:
    """Serve DNS for ``zone`` and clusterset.local from the API at ``server`` until
    SIGINT/SIGTERM or cancelled. ``client`` replaces the HTTP client (in-process
    embedding, tests); ``on_listening(host, port)`` is called once both sockets are bound
    (port 0 picks one). Components: the API client, the listeners, the config source."""
    check_zone(zone)  # before any socket or connection: a bad zone is a usage error
    own_client = client is None
    api: ResourceClient = HttpClient(server, token, ca=ca) if client is None else client
    dns_server = DnsServer(None, listen=listen, admin_listen=admin_listen, geo_table=geo_table,
                           limits=limits)
    source = ConfigSource(api, zone, dns_server.update, ttl=ttl, metrics=dns_server.metrics)

    async def close_client() -> None:
        if own_client and isinstance(api, HttpClient):
            await api.close()

    def listening() -> None:
        log.info("dns: serving %s and clusterset.local on %s:%d", zone, dns_server.host,
                 dns_server.port)
        if on_listening is not None:
            on_listening(dns_server.host, dns_server.port)

    await serve([Step("api client", stop=close_client), dns_server,
                 Step("announce", start=listening),
                 Loops("config source", [("follow", source.run)])])
