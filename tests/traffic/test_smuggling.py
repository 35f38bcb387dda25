"""Request smuggling: every framing that two HTTP parsers could read differently is
refused with 400 and the connection closed, and never reaches the real backend as two
requests. Raw sockets, the pinned parser (httptools/llhttp) plus the gateway's own
checks (`ClientConnection._begin`, `ChunkedScanner`), a real backend process that
reports what it was sent (``/control?seen=1``)."""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest

from flotilla.traffic.gateway import Gateway

from .conftest import HOST, Backend, StartBackend, model_for, url

#: What each attack tries to get past the gateway as a request of its own.
SMUGGLED = f"GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
POST = f"POST /attack HTTP/1.1\r\nHost: {HOST}\r\n".encode()
STATUS_LINE = re.compile(rb"(?:^|\n)HTTP/1\.[01] \d{3} ")


def chunked(body: bytes) -> bytes:
    return POST + b"Transfer-Encoding: chunked\r\n\r\n" + body


HEAD_ATTACKS = {
    "content-length and transfer-encoding":
        POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "transfer-encoding before content-length":
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 45\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "duplicate content-length, differing":
        POST + b"Content-Length: 0\r\nContent-Length: 45\r\n\r\n" + SMUGGLED,
    "duplicate content-length, equal":
        POST + b"Content-Length: 45\r\nContent-Length: 45\r\n\r\n" + SMUGGLED,
    "content-length list": POST + b"Content-Length: 45, 45\r\n\r\n" + SMUGGLED,
    "negative content-length": POST + b"Content-Length: -45\r\n\r\n" + SMUGGLED,
    "content-length overflow":
        POST + b"Content-Length: 18446744073709551661\r\n\r\n" + SMUGGLED,
    "obs-fold in a header":
        POST + b"X-Note: a\r\n folded\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
    "obs-fold continuing transfer-encoding":
        POST + b"Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "space before the colon": POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "transfer-encoding not chunked last":
        POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "transfer-encoding identity then chunked":
        POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "transfer-encoding twice":
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + SMUGGLED,
    "unknown transfer-encoding": POST + b"Transfer-Encoding: xchunked\r\n\r\n" + SMUGGLED,
    "HTTP/1.0 with transfer-encoding":
        b"POST /attack HTTP/1.0\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
    "bare LF line ends": b"POST /attack HTTP/1.1\nHost: shop.test\nContent-Length: 45\n\n"
        + SMUGGLED,
    "CR inside a header value": POST + b"X-Note: a\rContent-Length: 45\r\n\r\n" + SMUGGLED,
    "NUL inside a header value": POST + b"X-Note: a\x00b\r\nContent-Length: 0\r\n\r\n"
        + SMUGGLED,
    "HTTP/0.9 style request line": b"GET /attack\r\nHost: shop.test\r\n\r\n" + SMUGGLED,
    "HTTP/2.0 over HTTP/1 framing": b"GET /attack HTTP/2.0\r\nHost: shop.test\r\n\r\n"
        + SMUGGLED,
}

BODY_ATTACKS = {
    "negative chunk size": chunked(b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "chunk size overflowing 64 bits": chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"
                                              + SMUGGLED),
    "chunk size of 16 hex digits": chunked(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "non-hex chunk size": chunked(b"5g\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "0x-prefixed chunk size": chunked(b"0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "whitespace before the chunk size": chunked(b" 5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "empty chunk size": chunked(b"\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "bare LF after the chunk size": chunked(b"5\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "control character in a chunk extension": chunked(b"5;a\x01b\r\nhello\r\n0\r\n\r\n"
                                                      + SMUGGLED),
    "chunk longer than its size": chunked(b"3\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    "obs-fold in a trailer": chunked(b"0\r\nX-T: a\r\n b\r\n\r\n" + SMUGGLED),
    "trailer without a colon": chunked(b"0\r\nnot a field\r\n\r\n" + SMUGGLED),
    "content-length as a trailer": chunked(b"0\r\nContent-Length: 45\r\n\r\n" + SMUGGLED),
    "transfer-encoding as a trailer": chunked(b"0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              + SMUGGLED),
    "bare LF ending the trailers": chunked(b"0\r\nX-T: a\r\n\n" + SMUGGLED),
}


async def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; all the gateway answers until it closes the
    connection (a connection left open fails the test by timing out)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def seen(backend: Backend) -> list[str]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{backend.port}/control", params={"seen": "1"})
    return r.text.splitlines()


async def assert_refused_and_not_smuggled(gw: Gateway, backend: Backend,
                                          attack: bytes) -> None:
    answer = await exchange(gw.port, attack)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    # one answer: nothing after the attack's head was served
    assert len(STATUS_LINE.findall(answer)) == 1, answer
    assert b"connection: close" in answer.lower()
    # The gateway still serves, and the backend never saw the smuggled request.
    async with httpx.AsyncClient(headers={"host": HOST}, timeout=10) as c:
        assert (await c.get(url(gw, "/after"))).status_code == 200
    requests = await seen(backend)
    assert "GET /smuggled" not in requests
    assert requests[-1] == "GET /after"
    # At most the attack's head (forwarded before its body turned out bad), once.
    assert requests[:-1] in ([], ["POST /attack"]), requests


@pytest.mark.parametrize("name", list(HEAD_ATTACKS))
async def test_bad_request_head_is_refused(name: str, start_backend: StartBackend,
                                           gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    await assert_refused_and_not_smuggled(gw, b, HEAD_ATTACKS[name])
    assert await seen(b) == ["GET /after"]  # a bad head never goes upstream


@pytest.mark.parametrize("name", list(BODY_ATTACKS))
async def test_bad_chunked_body_is_refused(name: str, start_backend: StartBackend,
                                           gateway) -> None:
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    await assert_refused_and_not_smuggled(gw, b, BODY_ATTACKS[name])


async def test_good_framings_still_pass(start_backend: StartBackend, gateway) -> None:
    """The strict checks do not refuse what real clients send: chunk extensions, upper
    case hex, trailers, a content-length body, then a pipelined request."""
    b = await start_backend("east")
    gw = await gateway(model_for([b]))
    body = b"5;name=\"v\"\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Checksum: abc\r\n\r\n"
    answer = await exchange(gw.port, chunked(body) + POST + b"Content-Length: 2\r\n"
                            b"Connection: close\r\n\r\nok")
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2, answer
    assert b"hello0123456789" in answer
    assert answer.endswith(b"ok")
    assert await seen(b) == ["POST /attack", "POST /attack"]
