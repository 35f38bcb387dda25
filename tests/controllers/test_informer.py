"""Informer against a real `flotilla server` process, through the HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flotilla.client.base import NotFoundError, Object, WatchEvent
from flotilla.client.http import HttpClient
from flotilla.controllers.runtime import EventHandlers, Informer, ObjectKey
from flotilla.resources.kinds import by_kind
from tests.cli.serverproc import ServerProcess, api_only_args
from tests.helpers import wait_for

CM = by_kind("ConfigMap")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "state", "--keep-revisions", "20", *api_only_args())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[HttpClient]:
    async with HttpClient(server.url, server.token, ca=server.ca, timeout=5) as c:
        yield c


def cm(name: str, value: str, namespace: str = "default", **labels: str) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"v": value}}


class View:
    """The world as seen only through handler calls; flags impossible sequences."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, str] = {}
        self.errors: list[str] = []
        self.calls = 0

    def handlers(self) -> EventHandlers:
        return EventHandlers(on_add=self.add, on_update=self.update, on_delete=self.delete)

    def add(self, obj: Object) -> None:
        self.calls += 1
        key = ObjectKey.of(obj)
        if key in self.objects:
            self.errors.append(f"duplicate add of {key}")
        self.objects[key] = obj["metadata"]["resourceVersion"]

    def update(self, old: Object, new: Object) -> None:
        self.calls += 1
        key = ObjectKey.of(new)
        if self.objects.get(key) != old["metadata"]["resourceVersion"]:
            self.errors.append(f"update of {key} from an unseen version")
        self.objects[key] = new["metadata"]["resourceVersion"]

    def delete(self, obj: Object) -> None:
        self.calls += 1
        if self.objects.pop(ObjectKey.of(obj), None) is None:
            self.errors.append(f"delete of unknown {ObjectKey.of(obj)}")


async def server_state(client: HttpClient) -> dict[ObjectKey, str]:
    items = (await client.list(CM, None)).items
    return {ObjectKey.of(o): o["metadata"]["resourceVersion"] for o in items}


def cache_state(inf: Informer) -> dict[ObjectKey, str]:
    return {ObjectKey.of(o): o["metadata"]["resourceVersion"] for o in inf.cache.list()}


@contextlib.asynccontextmanager
async def running(inf: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(inf.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def converged(client: HttpClient, inf: Informer, view: View) -> bool:
    want = await server_state(client)
    return cache_state(inf) == want and view.objects == want


async def churn(client: HttpClient, prefix: str, n: int) -> None:
    """Creates, updates and deletes: every kind of event, in several namespaces."""
    for i in range(n):
        await client.create(cm(f"{prefix}-{i}", "0", namespace=f"ns{i % 3}"))
    for i in range(0, n, 2):
        obj = await client.get(CM, f"ns{i % 3}", f"{prefix}-{i}")
        obj["data"] = {"v": "1"}
        await client.update(obj)
    for i in range(0, n, 3):
        await client.delete(CM, f"ns{i % 3}", f"{prefix}-{i}")


async def test_informer_lists_then_follows_and_converges(client: HttpClient) -> None:
    for i in range(5):
        await client.create(cm(f"pre-{i}", "x", app="a" if i % 2 else "b"))
    inf = Informer(client, CM)
    view = View()
    inf.add_handler(view.handlers())
    async with running(inf):
        await asyncio.wait_for(inf.wait_synced(), 10)
        assert inf.has_synced
        assert len(inf.cache) == 5
        assert [o["metadata"]["name"] for o in inf.cache.list("app=a")] == ["pre-1", "pre-3"]
        got = inf.cache.get(ObjectKey("default", "pre-0"))
        assert got is not None
        assert got["data"] == {"v": "x"}
        await churn(client, "live", 12)
        await wait_for(lambda: converged(client, inf, view), timeout=10, what="convergence")
        assert inf.cache.list(namespace="ns1")
        assert all(o["metadata"]["namespace"] == "ns1" for o in inf.cache.list(namespace="ns1"))
    assert view.errors == []
    assert inf.lists == 1, "no re-list was needed"


async def test_late_handler_gets_the_cached_objects(client: HttpClient) -> None:
    await client.create(cm("one", "1"))
    inf = Informer(client, CM)
    async with running(inf):
        await asyncio.wait_for(inf.wait_synced(), 10)
        view = View()
        inf.add_handler(view.handlers())
        assert set(view.objects) == {ObjectKey("default", "one")}


async def test_informer_survives_server_restart_and_ends_with_server_state(
    server: ServerProcess, client: HttpClient,
) -> None:
    await churn(client, "before", 6)
    inf = Informer(client, CM, min_backoff=0.05, max_backoff=0.5)
    view = View()
    inf.add_handler(view.handlers())
    async with running(inf):
        await asyncio.wait_for(inf.wait_synced(), 10)
        for round_ in range(2):
            watches = inf.watches
            server.restart()  # every open watch is cut
            # Writes right after the restart race the informer's reconnect: whichever
            # wins, resuming from the last resourceVersion must deliver each change once.
            await churn(client, f"after{round_}", 6)
            await wait_for(lambda: converged(client, inf, view), timeout=15,
                           what="convergence after restart")
            assert inf.watches > watches, "the informer resumed its watch"
        # One more change to prove the resumed watch is live, not just a re-list.
        await client.create(cm("last", "z"))
        await wait_for(lambda: converged(client, inf, view), timeout=10)
    assert view.errors == []


async def test_expired_resume_point_relists_and_emits_differences(client: HttpClient) -> None:
    for i in range(4):
        await client.create(cm(f"keep-{i}", "0"))
    inf = Informer(client, CM)
    view = View()
    inf.add_handler(view.handlers())
    async with running(inf):
        await asyncio.wait_for(inf.wait_synced(), 10)
    # While the informer is away: delete, update, create -- far more revisions than the
    # server keeps (--keep-revisions 20), so the resume point is compacted away.
    await client.delete(CM, "default", "keep-0")
    changed = await client.get(CM, "default", "keep-1")
    changed["data"] = {"v": "changed"}
    await client.update(changed)
    for i in range(40):
        await client.create(cm(f"new-{i}", "0"))
    for i in range(30):
        await client.delete(CM, "default", f"new-{i}")
    async with running(inf):
        await wait_for(lambda: converged(client, inf, view), timeout=10,
                       what="convergence after 410")
    assert inf.lists == 2, "the expired resume point forced exactly one re-list"
    assert view.errors == []
    assert ObjectKey("default", "keep-0") not in view.objects
    with pytest.raises(NotFoundError):
        await client.get(CM, "default", "keep-0")


def test_replayed_and_stale_events_are_dropped() -> None:
    """What a resumed watch may replay: versions the cache already holds, and the
    deletion of an older incarnation of a name that was re-created since."""
    inf = Informer(None, CM)  # type: ignore[arg-type]  # _apply needs no client
    view = View()
    inf.add_handler(view.handlers())

    def ev(type_: str, name: str, rv: int) -> WatchEvent:
        obj = cm(name, str(rv))
        obj["metadata"]["resourceVersion"] = str(rv)
        return WatchEvent(type_, obj)  # type: ignore[arg-type]

    for e in (ev("ADDED", "a", 11), ev("DELETED", "a", 10), ev("ADDED", "a", 11),
              ev("MODIFIED", "a", 12), ev("MODIFIED", "a", 12), ev("DELETED", "b", 13),
              ev("DELETED", "a", 14), ev("DELETED", "a", 14)):
        inf._apply(e)
    assert view.errors == []
    assert view.objects == {}
    assert view.calls == 3, "add a@11, update a@12, delete a@14; the rest were replays"
    assert inf.last_resource_version == "14"
