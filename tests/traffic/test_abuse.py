"""Abuse limits, end to end over raw sockets against a real backend process: connection
caps at accept, the write timeout for a client that stops reading, the idle timeout of
an upstream gone quiet mid-response, the per-endpoint connection cap and its bounded
queue, and X-Forwarded-For from trusted proxies only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import pytest

from flotilla.traffic.gateway import Gateway, GatewayOptions
from tests.helpers import wait_for

from .conftest import HOST, StartBackend, model_for, url

GET = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def sample(gw: Gateway, name: str, **labels: str) -> float:
    value = gw.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def connect(gw: Gateway, source: str = "127.0.0.1"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", gw.port, local_addr=(source, 0))


async def get_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One GET on an open keep-alive connection: the response head."""
    writer.write(GET)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head


async def refused(gw: Gateway, source: str = "127.0.0.1") -> bytes:
    """What a connection over a cap gets before it is closed (it sends nothing)."""
    reader, writer = await connect(gw, source)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_per_client_cap_refuses_the_next_connection_of_that_address_only(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(max_connections_per_client=3))
    conns = [await connect(gw) for _ in range(3)]
    try:
        for reader, writer in conns:  # all three are served
            assert (await get_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
        answer = await refused(gw)  # the fourth from 127.0.0.1 is not
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections from 127.0.0.1" in answer
        assert sample(gw, "flotilla_gateway_refused_connections_total",
                      reason="max-connections-per-client") == 1
        # another address is not affected
        reader, writer = await connect(gw, "127.0.0.2")
        assert (await get_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
        writer.close()
        # and a closed connection gives its place back
        conns.pop()[1].close()

        async def admitted_again() -> bool:
            reader, writer = await connect(gw)
            try:
                return (await get_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
            except (asyncio.IncompleteReadError, ConnectionError):
                return False
            finally:
                writer.close()

        await wait_for(admitted_again, timeout=10, what="a fourth connection admitted")
    finally:
        for _, writer in conns:
            writer.close()


async def test_global_cap_refuses_past_max_connections(start_backend: StartBackend,
                                                        gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(max_connections=2))
    conns = [await connect(gw, f"127.0.0.{i + 1}") for i in range(2)]
    try:
        for reader, writer in conns:
            assert (await get_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
        answer = await refused(gw, "127.0.0.3")
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"connection limit" in answer
        assert sample(gw, "flotilla_gateway_refused_connections_total",
                      reason="max-connections") == 1
        assert sample(gw, "flotilla_gateway_active_connections") == 2
    finally:
        for _, writer in conns:
            writer.close()


async def test_slow_reader_is_cut_and_its_upstream_connection_freed(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(write_timeout=1.0))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", gw.port))
    try:
        # 64 MiB: far more than every socket buffer on the way; then never read
        await loop.sock_sendall(sock, f"GET /?size={64 << 20} HTTP/1.1\r\n"
                                f"Host: {HOST}\r\n\r\n".encode())

        async def cut() -> bool:
            return sample(gw, "flotilla_gateway_client_timeouts_total", kind="write") == 1

        started = time.monotonic()
        await wait_for(cut, timeout=30, what="the slow reader cut by the write timeout")
        assert time.monotonic() - started >= 0.9  # not before the write timeout

        async def freed() -> bool:
            return u.pool.opened == 0 and u.inflight == 0

        await wait_for(freed, timeout=10, what="the upstream connection closed")
        # the client sees its connection reset or ended, not a stall
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10):
                pass
    finally:
        sock.close()
    async with httpx.AsyncClient(headers={"host": HOST}, timeout=10) as c:
        assert (await c.get(url(gw))).status_code == 200  # the backend serves on


async def test_upstream_quiet_mid_response_is_cut_after_the_stream_idle_timeout(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(stream_idle_timeout=1.0))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    reader, writer = await connect(gw)
    try:
        # 100 KB (above the hold limit: it streams); the backend stops after 1 KiB
        writer.write(f"GET /?size=100000&stall=60 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        got = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), 30):
                got += chunk
        assert time.monotonic() - started >= 0.9
        assert len(got) == 1024  # cut, not completed or padded
    finally:
        writer.close()
    errors = {s.labels["reason"]: s.value for m in gw.metrics.registry.collect()
              for s in m.samples if s.name == "flotilla_gateway_errors_total"}
    assert errors == {"stream-timeout": 1}, errors

    async def freed() -> bool:
        return u.pool.opened == 0 and u.inflight == 0

    await wait_for(freed, timeout=10, what="the upstream connection closed")


async def test_endpoint_connection_cap_queues_then_refuses_when_the_queue_is_full(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(
        max_upstream_connections=1, max_queued_requests=1, queue_timeout=30))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    async with httpx.AsyncClient(headers={"host": HOST}, timeout=30) as c:
        first = asyncio.create_task(c.get(url(gw, "/?sleep=1.5")))
        await wait_for(lambda: _true(u.pool.opened == 1), what="the first request upstream")
        second = asyncio.create_task(c.get(url(gw, "/second")))
        await wait_for(lambda: _true(len(u.pool.waiters) == 1), what="the second queued")
        third = await c.get(url(gw, "/third"))  # the queue is full: at once
        assert third.status_code == 503
        assert "busy" in third.text
        assert third.headers["x-flotilla-error"] == "1"
        assert (await first).status_code == 200
        r = await second  # served on the connection the first one released
        assert r.status_code == 200
        assert r.text == "east GET /second\n"
    assert u.pool.opened <= 1
    assert sample(gw, "flotilla_gateway_local_responses_total", status="503",
                  reason="queue-full") == 1


async def test_a_request_waiting_too_long_for_a_connection_gets_503(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(
        max_upstream_connections=1, queue_timeout=0.5))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    async with httpx.AsyncClient(headers={"host": HOST}, timeout=30) as c:
        first = asyncio.create_task(c.get(url(gw, "/?sleep=5")))
        await wait_for(lambda: _true(u.pool.opened == 1), what="the first request upstream")
        started = time.monotonic()
        r = await c.get(url(gw, "/waits"))
        assert r.status_code == 503
        assert "no connection free within 0.5s" in r.text
        assert 0.4 <= time.monotonic() - started < 4.5  # by the queue timeout, not the 5 s
        assert not u.pool.waiters
        assert (await first).status_code == 200
    assert sample(gw, "flotilla_gateway_local_responses_total", status="503",
                  reason="queue-timeout") == 1


async def test_x_forwarded_for_is_extended_only_for_trusted_proxies(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(
        trusted_proxies=("127.0.0.2", "10.0.0.0/8")))
    spoof = (f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: 6.6.6.6\r\n"
             f"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\r\n").encode()
    seen = {}
    for source in ("127.0.0.1", "127.0.0.2"):
        reader, writer = await connect(gw, source)
        writer.write(spoof)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).lower()
        writer.close()
        seen[source] = {line.split(b": ", 1)[0]: line.split(b": ", 1)[1]
                        for line in head.split(b"\r\n") if line.startswith(b"x-seen-x-")}
    assert seen["127.0.0.1"][b"x-seen-x-forwarded-for"] == b"127.0.0.1"
    assert seen["127.0.0.2"][b"x-seen-x-forwarded-for"] == b"6.6.6.6, 127.0.0.2"
    for source in seen:  # scheme and host are the gateway's own, trusted peer or not
        assert seen[source][b"x-seen-x-forwarded-proto"] == b"http"
        assert seen[source][b"x-seen-x-forwarded-host"] == HOST.encode()


def test_options_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="trusted proxy 'not-an-ip'"):
        GatewayOptions(trusted_proxies=("not-an-ip",))
    with pytest.raises(ValueError, match="max_connections_per_client must be at least 1"):
        GatewayOptions(max_connections_per_client=0)
    with pytest.raises(ValueError, match="write_timeout must be positive"):
        GatewayOptions(write_timeout=0)


async def _true(value: bool) -> bool:
    return value
