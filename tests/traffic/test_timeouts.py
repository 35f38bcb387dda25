"""Timeouts each connection keeps itself: idle keep-alive clients, per-try deadlines with
a retry, pooled upstream connections, and in-flight counts of abandoned requests."""

from __future__ import annotations

import asyncio
import time

import httpx

from flotilla.traffic.gateway import GatewayOptions
from flotilla.traffic.model import Policy, Retries, Timeouts, static_model
from tests.helpers import wait_for

from .conftest import HOST, StartBackend, model_for

REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head


async def test_idle_client_connection_is_closed_but_a_busy_one_is_not(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    idle = 2.0
    gw = await gateway(model_for([b]), options=GatewayOptions(idle_timeout=idle))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        # requests for two idle periods, never idle that long: it stays open
        started = last = time.monotonic()
        while last - started < 2 * idle:
            await asyncio.sleep(0.2)  # pacing the client, not synchronisation
            assert (await _get(reader, writer)).startswith(b"HTTP/1.1 200")
            last = time.monotonic()  # the answer is complete: idle from here
        assert await asyncio.wait_for(reader.read(), idle + 10) == b""  # then closed...
        assert time.monotonic() - last >= idle - 0.05  # ...not before it was idle enough
    finally:
        writer.close()


async def test_per_try_timeout_retries_on_another_endpoint_within_the_total(
        start_backend: StartBackend, gateway) -> None:
    slow, fast = await start_backend("slow"), await start_backend("fast")
    await slow.control(slow=6)
    policy = Policy("shop", "default", "shop", (HOST,),
                    timeouts=Timeouts(connect=1.0, per_try=1.0, total=5.0),
                    retries=Retries(attempts=1, retry_on=frozenset({"timeout"})))
    gw = await gateway(static_model([(policy, [slow.endpoint, fast.endpoint])]))
    async with httpx.AsyncClient(headers={"host": HOST}, timeout=10) as c:
        for _ in range(4):  # round robin: half of them try the slow endpoint first
            started = time.monotonic()
            r = await c.get(f"http://127.0.0.1:{gw.port}/")
            assert r.status_code == 200
            assert r.headers["x-flotilla-cluster"] == "fast"
            assert time.monotonic() - started < 5.0
    rt = gw.state.runtimes["default/shop"]
    assert [u.inflight for u in rt.upstreams] == [0, 0]


async def test_idle_pooled_upstream_connections_are_closed(start_backend: StartBackend,
                                                           gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]), options=GatewayOptions(upstream_idle_timeout=0.3))
    async with httpx.AsyncClient(headers={"host": HOST}) as c:
        assert (await c.get(f"http://127.0.0.1:{gw.port}/")).status_code == 200
    (u,) = gw.state.runtimes["default/shop"].upstreams

    async def closed() -> bool:
        return u.pool.opened == 0 and not u.pool.idle

    await wait_for(closed, timeout=10, what="the idle upstream connection closed")
    async with httpx.AsyncClient(headers={"host": HOST}) as c:  # and a new one is made
        assert (await c.get(f"http://127.0.0.1:{gw.port}/")).status_code == 200


async def test_a_client_leaving_mid_request_is_not_counted_in_flight(
        start_backend: StartBackend, gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    (u,) = gw.state.runtimes["default/shop"].upstreams
    _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(f"GET /?sleep=2 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())

    async def in_flight(n: int) -> bool:
        async with httpx.AsyncClient() as c:
            routes = (await c.get(f"http://127.0.0.1:{gw.admin_port}/routes")).json()
        return bool(routes["backends"]["default/shop"]["endpoints"][0]["inflight"] == n)

    await wait_for(lambda: in_flight(1), timeout=10, what="the request in flight")
    writer.close()  # the client gives up before the answer
    await wait_for(lambda: in_flight(0), timeout=10, what="in-flight count back to 0")
    assert u.inflight == 0
