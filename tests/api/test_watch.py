"""Watch over HTTP: order, cut-and-resume without loss or duplicates, bookmarks, 410."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from flotilla.client.base import GoneError, WatchEvent
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import by_kind
from tests.api.conftest import ServerProcess, start_server
from tests.api.samples import sample
from tests.helpers import wait_for

CM = by_kind("ConfigMap")
SECRET = by_kind("Secret")


async def _take(events: AsyncIterator[WatchEvent], n: int, timeout: float = 10.0,
                skip_bookmarks: bool = True) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async with asyncio.timeout(timeout):
        async for ev in events:
            if skip_bookmarks and ev.type == "BOOKMARK":
                continue
            out.append(ev)
            if len(out) == n:
                break
    return out


async def test_watch_reports_changes_in_order(client: HttpClient) -> None:
    start = (await client.list(CM, "w1")).resource_version
    created = await client.create(sample(CM, "a", namespace="w1"))
    created["data"] = {"greeting": "hi"}
    await client.update(created)
    await client.create(sample(CM, "other-ns", namespace="w2"))
    await client.delete(CM, "w1", "a")
    stream = client.watch(CM, "w1", resource_version=start)
    try:
        events = await _take(stream, 3)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[1].object["data"] == {"greeting": "hi"}


async def test_watch_without_version_starts_with_current_objects(
    http: httpx.AsyncClient, client: HttpClient,
) -> None:
    await client.create(sample(CM, "existing", namespace="w3"))
    async with http.stream("GET", "/api/v1/namespaces/w3/configmaps",
                           params={"watch": "1"}) as r:
        assert r.status_code == 200
        lines = r.aiter_lines()
        first = json.loads(await anext(lines))
        assert first["type"] == "ADDED"
        assert first["object"]["metadata"]["name"] == "existing"
        await client.create(sample(CM, "later", namespace="w3"))
        second = json.loads(await anext(lines))
        assert (second["type"], second["object"]["metadata"]["name"]) == ("ADDED", "later")


async def test_cut_and_resumed_watch_loses_and_repeats_nothing(client: HttpClient) -> None:
    """Writers run while a watcher is cut every few events and resumes from the last
    resourceVersion it saw; every acknowledged write shows up exactly once."""
    ns = "resume"
    start = (await client.list(CM, ns)).resource_version
    acked: set[str] = set()
    writers_done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(25):
            obj = await client.create(sample(CM, f"w{w}-{i}", namespace=ns))
            acked.add(obj["metadata"]["resourceVersion"])
            if i % 3 == 0:
                obj["data"] = {"i": str(i)}
                acked.add((await client.update(obj))["metadata"]["resourceVersion"])

    seen: list[str] = []

    def complete() -> bool:
        return writers_done.is_set() and set(seen) >= acked

    async def watcher() -> None:
        rv = start
        for _ in range(200):  # bounded number of reconnections
            stream = client.watch(CM, ns, resource_version=rv)
            try:
                got = 0
                async for ev in stream:
                    rv = ev.object["metadata"]["resourceVersion"]
                    if ev.type != "BOOKMARK":
                        seen.append(rv)
                        got += 1
                    if got == 7 or complete():
                        break  # the cut: the connection is closed mid-stream
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            if complete():
                return

    watching = asyncio.create_task(watcher())
    await asyncio.gather(*(writer(w) for w in range(3)))
    writers_done.set()
    await asyncio.wait_for(watching, 30)
    assert len(seen) == len(set(seen)), "an event was delivered twice"
    assert set(seen) == acked
    assert seen == sorted(seen, key=int), "events out of order"


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a short watch history and quick bookmarks."""
    srv = start_server(tmp_path_factory.mktemp("fast"), "--keep-revisions", "20",
                       "--bookmark-interval", "0.2")
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


async def test_idle_watch_gets_bookmarks_and_resumes_past_compaction(
    fast_server: ServerProcess,
) -> None:
    async with HttpClient(fast_server.url, fast_server.token, ca=fast_server.ca) as client:
        start = (await client.list(CM, "quiet")).resource_version
        last_write = ""
        for i in range(60):  # other resources move the revision far past the history
            obj = await client.create(sample(SECRET, f"s{i}", namespace="busy"))
            last_write = obj["metadata"]["resourceVersion"]
        # The history before `start` is compacted: a resume from it is answered 410 ...
        with pytest.raises(GoneError, match="too old"):
            await _take(client.watch(CM, "quiet", resource_version=start), 1)
        # ... so an idle watcher must be kept current by bookmarks while others write.
        mark = last_write
        stream = client.watch(CM, "quiet", resource_version=mark)
        try:
            first = (await _take(stream, 1, skip_bookmarks=False))[0]  # the stream is open
            assert (first.type, first.object["metadata"]["resourceVersion"]) == (
                "BOOKMARK", last_write)
            for i in range(30):
                obj = await client.create(sample(SECRET, f"t{i}", namespace="busy"))

            async def caught_up() -> bool:
                nonlocal mark
                ev = (await _take(stream, 1, skip_bookmarks=False))[0]
                assert ev.type == "BOOKMARK"
                mark = ev.object["metadata"]["resourceVersion"]
                return bool(mark == obj["metadata"]["resourceVersion"])
            await wait_for(caught_up, timeout=10, what="a bookmark at the latest revision")
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        # 30 revisions later the original position is compacted, the bookmark is not.
        created = await client.create(sample(CM, "wakeup", namespace="quiet"))
        resumed = client.watch(CM, "quiet", resource_version=mark)
        try:
            ev = (await _take(resumed, 1))[0]
        finally:
            await resumed.aclose()  # type: ignore[attr-defined]
        assert ev.type == "ADDED"
        assert ev.object == created


async def test_compacted_version_is_a_410_status_event(fast_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=fast_server.url, verify=fast_server.verify,
                                 headers=fast_server.headers(),
                                 timeout=10) as http:
        for i in range(40):
            r = await http.post("/api/v1/namespaces/x/secrets",
                                json=sample(SECRET, f"s{i}", namespace="x"))
            assert r.status_code == 201
        async with http.stream("GET", "/api/v1/namespaces/x/secrets",
                               params={"watch": "1", "resourceVersion": "1"}) as r:
            line = await anext(r.aiter_lines())
        event = json.loads(line)
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"


async def test_sigterm_ends_open_watches_and_exits_cleanly(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        async with HttpClient(srv.url, srv.token, ca=srv.ca) as client:
            stream = client.watch(CM, "default", resource_version="")
            opened = asyncio.create_task(_take(stream, 1, timeout=15))

            async def watch_open() -> bool:
                async with httpx.AsyncClient(base_url=srv.url, verify=srv.verify,
                                             timeout=2) as anon:
                    metrics = (await anon.get("/metrics")).text
                return "flotilla_api_open_watches 1.0" in metrics
            await wait_for(watch_open, what="the watch to open")
            code = await asyncio.to_thread(srv.stop, 10.0)
            assert code == 0
            with contextlib.suppress(Exception):
                await opened  # the stream ended (or broke) instead of hanging
            assert opened.done()
    finally:
        srv.kill()


async def test_a_client_that_hangs_up_frees_its_watch(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, verify=server.verify, timeout=5) as anon:
        async def open_watches(n: int) -> bool:
            return f"flotilla_api_open_watches {n}.0" in (await anon.get("/metrics")).text

        await wait_for(lambda: open_watches(0), what="no watch open yet")
        async with httpx.AsyncClient(base_url=server.url, verify=server.verify,
                                     headers=server.headers(), timeout=5) as http, \
                http.stream("GET", "/api/v1/configmaps", params={"watch": "1"}) as r:
            assert r.status_code == 200
            await wait_for(lambda: open_watches(1), what="the watch to be counted")
        await wait_for(lambda: open_watches(0), what="the watch to be released")
