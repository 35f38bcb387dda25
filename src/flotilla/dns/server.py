"""The DNS listeners (UDP and TCP on one port) around the `Responder`, and `run_dns`.

UDP is a `DatagramProtocol` answering inline in ``datagram_received``: an answer is pure
CPU on in-memory data, so there is nothing to await and no task per packet. TCP reads
2-byte length-framed queries, answers them in order, keeps the connection for further
queries and closes it after an idle timeout (RFC 7766), with a cap on open connections
so a flood of idle sockets cannot exhaust file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from flotilla.client.base import ResourceClient
from flotilla.client.http import HttpClient
from flotilla.dns.config_source import ConfigSource
from flotilla.dns.geo import GeoTable
from flotilla.dns.metrics import DnsMetrics, serve_admin
from flotilla.dns.model import DEFAULT_TTL, DnsModel, check_zone
from flotilla.dns.responder import Outcome, Responder, header_only
from flotilla.dns.select import Selector
from flotilla.dns.zone import compile_zones
from flotilla.lifecycle import Loops, Step, serve

log = logging.getLogger(__name__)

_ERROR = Outcome("<error>", "-", "SERVFAIL")


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
        tcp_idle_timeout: float = 10.0,
        max_tcp_connections: int = 512,
    ) -> None:
        self.host, self._port = parse_listen(listen)
        self._admin = parse_listen(admin_listen) if admin_listen else None
        self.metrics = DnsMetrics()
        self.responder = Responder(None, Selector(GeoTable.from_mapping(geo_table)))
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self._serial = int(time.time())
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._admin_server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
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
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
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

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_tcp_connections:
            writer.close()
            return
        self._connections.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self.metrics.tcp_connections.inc()
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else None
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_timeout)
                size = int.from_bytes(head, "big")
                if size == 0:
                    break
                wire = await asyncio.wait_for(reader.readexactly(size), self.tcp_idle_timeout)
                out = self.answer(wire, client, "tcp")
                if out is not None:
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            self.metrics.tcp_connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        out = self.server.answer(data, str(addr[0]), "udp")
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: not our problem.
        log.debug("dns udp: %s", exc)


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
    dns_server = DnsServer(None, listen=listen, admin_listen=admin_listen, geo_table=geo_table)
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
