"""`HttpClient` over several servers: when it switches, and what it sends again there.

Against real sockets on loopback: a port nobody listens on (refused), a tiny HTTP server
that answers what a test tells it (a 503 of each kind, a conflict, silence), and one
that answers like a healthy API. The rules are `flotilla.client.failover`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from flotilla.client.base import AlreadyExistsError, ApiError, ConflictError
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import for_api_version
from tests.helpers import free_port

CONFIGMAP = for_api_version("v1", "ConfigMap")
Answer = tuple[int, dict[str, str], Any]
Handler = Callable[[str, str, Any], Answer]


@dataclass
class Http:
    """A one-file HTTP/1.1 server: ``handler(method, path, body) -> (status, headers,
    json body)``; every request it got is in ``seen``. A handler returning status 0
    never answers (a server that hangs)."""

    handler: Handler
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = next((int(h.split(":", 1)[1]) for h in lines[1:]
                               if h.lower().startswith("content-length:")), 0)
                raw = await reader.readexactly(length) if length else b""
                path = target.split("?", 1)[0]
                self.seen.append((method, path))
                status, headers, body = self.handler(method, target, json.loads(raw)
                                                     if raw else None)
                if status == 0:
                    await asyncio.sleep(3600)
                data = (body if isinstance(body, bytes) else json.dumps(body).encode())
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(data)}\r\n"
                             f"content-type: application/json\r\n{extra}\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[asyncio.Server] = []

    async def run(handler: Handler) -> Http:
        http = Http(handler)
        server = await asyncio.start_server(http.serve, "127.0.0.1", 0)
        servers.append(server)
        http.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return http

    yield run
    for server in servers:
        server.close()


def status(code: int, reason: str, message: str) -> Answer:
    return code, {}, {"kind": "Status", "code": code, "reason": reason, "message": message}


def store_down(method: str, path: str, body: Any) -> Answer:
    return status(503, "ServiceUnavailable", "the store is unavailable: no leader; retry")


def shutting_down(method: str, path: str, body: Any) -> Answer:
    return status(503, "ServiceUnavailable", "the store is shutting down; retry")


def healthy(method: str, path: str, body: Any) -> Answer:
    if method == "GET" and "/configmaps/" in path:
        return 200, {}, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": path.rsplit("/", 1)[1], "namespace": "default",
                                      "resourceVersion": "7"}}
    if method == "GET":
        return 200, {}, {"kind": "ConfigMapList", "metadata": {"resourceVersion": "7"},
                         "items": []}
    return 200, {}, body


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def cm(name: str, rv: str | None = None, data: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


async def test_a_refused_server_is_left_for_the_next_and_the_switch_logged_once(
        start: Any, caplog: pytest.LogCaptureFixture) -> None:
    live = await start(healthy)
    dead = refused_url()
    caplog.set_level(logging.WARNING, "flotilla.client.http")
    async with HttpClient(f"{dead},{live.url}", None) as client:
        assert client.server == dead
        await asyncio.gather(*(client.list(CONFIGMAP, "default") for _ in range(5)))
        assert client.server == live.url  # sticks to it
        # Even a blind write is sent there: a refused connection carried nothing.
        await client.update(cm("a"))
    assert live.seen.count(("PUT", "/api/v1/namespaces/default/configmaps/a")) == 1
    switches = [r.getMessage() for r in caplog.records if "switching" in r.getMessage()]
    assert len(switches) == 1, switches
    assert dead in switches[0]
    assert live.url in switches[0]


async def test_a_store_503_moves_reads_and_compare_and_set_writes_but_not_blind_ones(
        start: Any) -> None:
    down, live = await start(store_down), await start(healthy)
    urls = [down.url, live.url]
    async with HttpClient(urls, None) as client:
        assert (await client.list(CONFIGMAP, "default")).resource_version == "7"
    async with HttpClient(urls, None) as client:
        await client.update(cm("cas", rv="5"))
    assert ("PUT", "/api/v1/namespaces/default/configmaps/cas") in live.seen
    async with HttpClient(urls, None) as client:
        with pytest.raises(ApiError) as err:
            await client.update(cm("blind"))  # may have been done: not repeated
        assert err.value.status == 503
        assert "store is unavailable" in err.value.message
        assert client.server == live.url  # but the next request goes to the other one
    assert ("PUT", "/api/v1/namespaces/default/configmaps/blind") not in live.seen


async def test_a_server_shutting_down_did_nothing_so_any_write_moves(start: Any) -> None:
    closing, live = await start(shutting_down), await start(healthy)
    async with HttpClient([closing.url, live.url], None) as client:
        await client.update(cm("blind"))
        await client.delete(CONFIGMAP, "default", "blind")
    assert live.seen == [("PUT", "/api/v1/namespaces/default/configmaps/blind"),
                         ("DELETE", "/api/v1/namespaces/default/configmaps/blind")]


async def test_a_timeout_moves_a_read_but_a_blind_write_is_not_sent_twice(
        start: Any) -> None:
    hung, live = await start(lambda m, p, b: (0, {}, None)), await start(healthy)
    async with HttpClient([hung.url, live.url], None, timeout=0.5) as client:
        assert (await client.get(CONFIGMAP, "default", "x"))["metadata"]["name"] == "x"
    async with HttpClient([hung.url, live.url], None, timeout=0.5) as client:
        with pytest.raises(ApiError) as err:
            await client.update(cm("blind"))
        assert err.value.status == 503
    assert not [s for s in live.seen if s[0] == "PUT"]


async def test_a_repeated_create_takes_an_identical_object_as_its_own_only(
        start: Any) -> None:
    """The first try's outcome is unknown (store 503); the repeat answers AlreadyExists.
    The object as sent is ours; a different one is someone else's."""
    stored: dict[str, dict[str, Any]] = {}

    def after_first_try(method: str, path: str, body: Any) -> Answer:
        name = path.rsplit("/", 1)[1]
        if method == "POST":
            return status(409, "AlreadyExists", "configmaps already exists")
        return 200, {}, stored[name]

    down, other = await start(store_down), await start(after_first_try)
    stored["mine"] = {**cm("mine", rv="9", data={"k": "v"})}
    stored["theirs"] = {**cm("theirs", rv="9", data={"k": "other"})}
    async with HttpClient([down.url, other.url], None) as client:
        created = await client.create(cm("mine", data={"k": "v"}))
        assert created["metadata"]["resourceVersion"] == "9"
        with pytest.raises(AlreadyExistsError):
            await client.create(cm("theirs", data={"k": "v"}))


async def test_a_create_that_surely_never_landed_keeps_its_already_exists(
        start: Any) -> None:
    """Refused, then AlreadyExists: our first try carried nothing, so the name was
    someone else's even when the content is equal."""
    def exists(method: str, path: str, body: Any) -> Answer:
        if method == "POST":
            return status(409, "AlreadyExists", "configmaps \"a\" already exists")
        return 200, {}, cm("a", rv="3")

    other = await start(exists)
    async with HttpClient([refused_url(), other.url], None) as client:
        with pytest.raises(AlreadyExistsError):
            await client.create(cm("a"))
    assert ("GET", "/api/v1/namespaces/default/configmaps/a") not in other.seen


async def test_a_compare_and_set_repeat_that_conflicts_is_the_callers_conflict(
        start: Any) -> None:
    def conflict(method: str, path: str, body: Any) -> Answer:
        return status(409, "Conflict", "the object has been modified")

    down, other = await start(store_down), await start(conflict)
    async with HttpClient([down.url, other.url], None) as client:
        with pytest.raises(ConflictError):
            await client.update(cm("a", rv="5"))


async def test_a_watch_starts_on_the_next_server_when_the_first_refuses(start: Any) -> None:
    def one_event(method: str, path: str, body: Any) -> Answer:
        event = {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {
            "resourceVersion": "12"}}}
        return 200, {}, json.dumps(event).encode() + b"\n"

    live = await start(one_event)
    async with HttpClient([refused_url(), live.url], None) as client:
        events = [e async for e in client.watch(CONFIGMAP, "default", resource_version="5")]
    assert [e.object["metadata"]["resourceVersion"] for e in events] == ["12"]
    assert live.seen == [("GET", "/api/v1/namespaces/default/configmaps")]


async def test_every_server_down_is_one_clear_error_naming_the_last(start: Any) -> None:
    a, b = refused_url(), refused_url()
    async with HttpClient([a, b], None) as client:
        with pytest.raises(ApiError) as err:
            await client.list(CONFIGMAP)
    assert err.value.status == 503
    assert b in err.value.message
