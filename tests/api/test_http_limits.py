"""Connection limits against a real server over TLS (`flotilla.api.http_guard`): a
slowloris client is cut off while others are served; past the requests-in-flight limit
a client gets a 503 Status, and the probes still answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from flotilla.pki import verifying_context
from tests.api.conftest import ServerProcess, start_server
from tests.helpers import wait_for

CMS = "/api/v1/namespaces/limits/configmaps"
HEADER_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("limits"), "--header-timeout",
                       str(HEADER_TIMEOUT), "--max-inflight", "2")
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


async def _connect(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    return await asyncio.open_connection(url.hostname, url.port,
                                         ssl=verifying_context(server.ca),
                                         server_hostname=url.hostname)


async def _slowloris(server: ServerProcess, limit: float) -> tuple[float, bytes]:
    """Send a request's headers a few bytes at a time, as long as the server lets us;
    returns how long it did and what it answered."""
    reader, writer = await _connect(server)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    received = b""
    try:
        n = 0
        while time.monotonic() - started < limit:
            writer.write(b"X-Slow-%d: y\r\n" % n)
            n += 1
            try:
                await writer.drain()
                chunk = await asyncio.wait_for(reader.read(4096), timeout=0.2)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                break
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
    return time.monotonic() - started, received


async def test_slowloris_cut_off_while_others_are_served(limited: ServerProcess) -> None:
    served: list[int] = []
    done = asyncio.Event()

    async def others() -> None:
        async with httpx.AsyncClient(base_url=limited.url, verify=limited.verify,
                                     headers=limited.headers(), timeout=10) as http:
            while not done.is_set():
                served.append((await http.get(CMS)).status_code)
                await asyncio.sleep(0.05)

    other = asyncio.ensure_future(others())
    try:
        results = await asyncio.gather(*[_slowloris(limited, 30) for _ in range(20)])
    finally:
        done.set()
        await other
    for elapsed, answer in results:
        # Cut at the header timeout (generous slack for a shared machine), not at 30 s.
        assert HEADER_TIMEOUT * 0.9 < elapsed < HEADER_TIMEOUT + 8, elapsed
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within the limit of 1.5s" in answer
    assert served, "no other request was served"
    assert set(served) == {200}, served


async def test_silent_connection_is_closed(limited: ServerProcess) -> None:
    reader, writer = await _connect(limited)
    started = time.monotonic()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=HEADER_TIMEOUT + 8)
    finally:
        writer.close()
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    assert answer.startswith(b"HTTP/1.1 408")


async def test_keep_alive_connection_serves_a_second_request(limited: ServerProcess) -> None:
    """The header timer is per request: a kept-alive connection idle for less than the
    keep-alive timeout serves its next request even after the header timeout passed."""
    async with httpx.AsyncClient(base_url=limited.url, verify=limited.verify,
                                 headers=limited.headers(), timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        await asyncio.sleep(HEADER_TIMEOUT + 0.5)  # the interval under test, not a sync
        assert (await http.get("/healthz")).status_code == 200


async def _hold_request(server: ServerProcess) -> asyncio.StreamWriter:
    """A create whose body never finishes: one request in flight until closed."""
    _reader, writer = await _connect(server)
    writer.write(f"POST {CMS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
    await writer.drain()
    return writer


async def test_requests_in_flight_limit(limited: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=limited.url, verify=limited.verify,
                                 headers=limited.headers(), timeout=10) as http:
        holders = [await _hold_request(limited) for _ in range(2)]
        try:
            async def refused() -> httpx.Response | None:
                r = await http.get(CMS)
                return r if r.status_code == 503 else None

            r = await wait_for(refused, timeout=10, what="a 503 past the limit")
            body = r.json()
            assert body["kind"] == "Status"
            assert body["code"] == 503
            assert "limit of 2 concurrent requests" in body["message"]
            assert r.headers["retry-after"] == "1"
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
        finally:
            for writer in holders:
                writer.close()

        async def served() -> bool:
            return (await http.get(CMS)).status_code == 200

        await wait_for(served, timeout=10, what="service after the holders left")


def test_flags_in_help(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flotilla.cli.main import cli

    out = CliRunner().invoke(cli, ["server", "--help"]).output
    for flag in ("--max-inflight", "--header-timeout", "--keep-alive-timeout",
                 "--max-body-bytes", "docs/api.md"):
        assert flag in out, flag
