"""Malformed and hostile requests get 400/408/431 or a closed connection, and a
well-behaved client on another connection is not harmed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from flotilla.traffic.gateway import Gateway, GatewayOptions

from .conftest import HOST, StartBackend, model_for, url


async def raw(gw: Gateway, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the gateway answers until it
    closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.fixture
async def busy_gateway(start_backend: StartBackend, gateway) -> AsyncIterator[Gateway]:
    """A gateway with a good client hammering it for the whole test; the test fails if
    any of the good client's requests fails."""
    b = await start_backend("east")
    gw: Gateway = await gateway(model_for([b]), options=GatewayOptions(
        header_timeout=0.5, max_head=8192))
    stop = asyncio.Event()
    results: list[int] = []

    async def good_client() -> None:
        async with httpx.AsyncClient(headers={"host": HOST}, timeout=5) as c:
            for _ in range(10_000):  # bounded; normally ends through ``stop``
                if stop.is_set():
                    return
                results.append((await c.get(url(gw))).status_code)

    task = asyncio.create_task(good_client())
    try:
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert results
    assert set(results) == {200}


async def test_bad_request_line_is_400(busy_gateway: Gateway) -> None:
    answer = await raw(busy_gateway, b"THIS IS NOT HTTP\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"malformed request" in answer


async def test_missing_host_is_400(busy_gateway: Gateway) -> None:
    answer = await raw(busy_gateway, b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_huge_headers_are_431(busy_gateway: Gateway) -> None:
    big = b"x-big: " + b"a" * 9000 + b"\r\n"
    answer = await raw(busy_gateway, b"GET / HTTP/1.1\r\nHost: shop.test\r\n" + big + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    # also when the head never ends at all
    answer = await raw(busy_gateway, b"GET / HTTP/1.1\r\nHost: shop.test\r\n" + big * 2)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_bad_chunked_encoding_is_400(busy_gateway: Gateway) -> None:
    answer = await raw(busy_gateway, b"POST / HTTP/1.1\r\nHost: shop.test\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"chunk" in answer


async def test_content_length_with_chunked_is_refused(busy_gateway: Gateway) -> None:
    """The request-smuggling shape: both framings at once."""
    answer = await raw(busy_gateway, b"POST / HTTP/1.1\r\nHost: shop.test\r\n"
                       b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_slowloris_gets_408(busy_gateway: Gateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", busy_gateway.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\nx-slow: ")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # header timeout is 0.5 s
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_pipelined_requests_are_answered_in_order(busy_gateway: Gateway) -> None:
    one = b"GET /one HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    two = b"GET /two HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    answer = await raw(busy_gateway, one + two)
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert answer.index(b"east GET /one") < answer.index(b"east GET /two")


async def test_abrupt_client_disconnect_mid_body_harms_nobody(busy_gateway: Gateway) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", busy_gateway.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100000\r\n\r\n"
                 + b"x" * 1000)
    await writer.drain()
    writer.transport.abort()
    # the gateway is still healthy for the next client
    answer = await raw(busy_gateway, b"GET / HTTP/1.1\r\nHost: shop.test\r\n"
                       b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
