"""The feed against a real `flotilla server` process, through the HTTP client: list then
watch, a burst coalesced into one build, a watch resumed after the server drops it, a
re-list after compaction (410), back-off driven by an injected clock, keep-last-good,
and a cache that cannot be changed in place."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flotilla.client.base import Object
from flotilla.client.feed import Caches, Feed, ModelPublisher
from flotilla.client.http import HttpClient
from flotilla.client.informer import ObjectKey
from flotilla.resources.kinds import by_kind
from tests.cli.serverproc import ServerProcess, api_only_args
from tests.helpers import wait_for

CM = by_kind("ConfigMap")
Model = dict[str, str]


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


def cm(name: str, value: str) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"v": value}}


def values(caches: Caches) -> Model:
    """The model of these tests: each ConfigMap's name and value."""
    return {o["metadata"]["name"]: o["data"]["v"] for o in caches["ConfigMap"].list()}


async def server_values(client: HttpClient) -> Model:
    return {o["metadata"]["name"]: o["data"]["v"] for o in (await client.list(CM)).items}


class Models:
    """What ``on_model`` received, in order."""

    def __init__(self) -> None:
        self.seen: list[Model] = []

    def __call__(self, model: Model) -> None:
        self.seen.append(model)

    @property
    def last(self) -> Model | None:
        return self.seen[-1] if self.seen else None


class ScriptedTime:
    """An injected ``sleep``: records every delay asked for and returns only while the
    test allows (`allow`), so the test, not the wall clock, decides when time passes."""

    def __init__(self, allowed: int = 0) -> None:
        self.delays: list[float] = []
        self.allowed = allowed
        self._more = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        while self.allowed <= 0:
            self._more.clear()
            await self._more.wait()
        self.allowed -= 1
        await asyncio.sleep(0)

    def allow(self, n: int) -> None:
        self.allowed += n
        self._more.set()


@contextlib.asynccontextmanager
async def running(feed: Feed) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def model_feed(client: HttpClient, models: Models, **feed_args: object
               ) -> tuple[Feed, ModelPublisher[Model]]:
    feed = Feed(client, **feed_args)  # type: ignore[arg-type]
    return feed, feed.publish(["ConfigMap"], values, models, debounce=0.05)


async def test_lists_then_follows_and_coalesces_a_burst(client: HttpClient) -> None:
    await client.create(cm("a", "1"))
    time = ScriptedTime()
    models = Models()
    feed, publisher = model_feed(client, models, sleep=time.sleep)
    async with running(feed):
        await asyncio.wait_for(publisher.ready.wait(), 10)
        assert models.seen == [{"a": "1"}], "one model, from the list"
        await client.create(cm("b", "2"))

        async def debouncing() -> bool:
            return time.delays == [0.05]

        await wait_for(debouncing, timeout=10, what="the debounce to start")
        # The debounce window is held open: a burst of changes lands inside it.
        for i in range(10):
            await client.create(cm(f"burst-{i}", str(i)))
        existing = await client.get(CM, "default", "a")
        existing["data"] = {"v": "changed"}
        await client.update(existing)
        await client.delete(CM, "default", "b")
        inf = feed.informer(CM)

        async def cache_caught_up() -> bool:
            return values({"ConfigMap": inf.cache}) == await server_values(client)

        await wait_for(cache_caught_up, timeout=10, what="the watch to deliver the burst")
        assert len(models.seen) == 1, "nothing is built inside the debounce window"
        time.allow(1)

        async def rebuilt() -> bool:
            return len(models.seen) == 2

        await wait_for(rebuilt, timeout=10, what="the rebuild after the burst")
        assert models.last == await server_values(client)
        assert models.last["a"] == "changed"
        assert "b" not in models.last
        assert inf.lists == 1
        assert publisher.builds == 2
        assert publisher.failures == 0


async def test_resumes_the_watch_after_the_server_drops_it(
        server: ServerProcess, client: HttpClient) -> None:
    await client.create(cm("a", "1"))
    models = Models()
    feed, publisher = model_feed(client, models, min_backoff=0.05, max_backoff=0.5)
    inf = feed.informer(CM)
    async with running(feed):
        await asyncio.wait_for(publisher.ready.wait(), 10)
        await client.create(cm("b", "2"))

        async def follows() -> bool:
            return models.last == await server_values(client)

        await wait_for(follows, timeout=10, what="the model to follow the watch")
        watches = inf.watches
        server.stop()  # every open watch is cut; the data plane keeps its model
        assert models.last == {"a": "1", "b": "2"}
        server.start()
        await client.create(cm("c", "3"))
        await wait_for(follows, timeout=15, what="the model to follow after the restart")
        assert inf.watches > watches, "the watch was opened again"
        assert inf.lists == 1, "resumed from the last resourceVersion, not re-listed"


async def test_relists_after_compaction_and_drops_what_was_deleted(
        client: HttpClient) -> None:
    for name in ("keep", "gone"):
        await client.create(cm(name, "0"))
    models = Models()
    feed, publisher = model_feed(client, models)
    async with running(feed):
        await asyncio.wait_for(publisher.ready.wait(), 10)
    assert models.last == {"keep": "0", "gone": "0"}
    # While the feed is away: far more revisions than the server keeps (20).
    await client.delete(CM, "default", "gone")
    for i in range(30):
        await client.create(cm(f"new-{i}", "0"))
    for i in range(25):
        await client.delete(CM, "default", f"new-{i}")
    async with running(feed):

        async def caught_up() -> bool:
            return models.last == await server_values(client)

        await wait_for(caught_up, timeout=10, what="the model after the 410")
    assert feed.informer(CM).lists == 2, "the expired resume point forced one re-list"
    assert models.last is not None
    assert "gone" not in models.last


async def test_backoff_is_exponential_with_jitter_and_resets_after_success(
        tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state", *api_only_args())  # not started yet
    jitter = iter([0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    time = ScriptedTime(allowed=6)
    try:
        async with HttpClient(server.url, server.token, ca=server.ca, timeout=5) as client:
            feed = Feed(client, min_backoff=0.1, max_backoff=0.8, sleep=time.sleep,
                        rand=lambda: next(jitter, 1.0))
            inf = feed.informer(CM)
            async with running(feed):

                async def parked() -> bool:
                    return len(time.delays) == 7

                await wait_for(parked, timeout=10, what="seven failed lists")
                # Ceilings 0.1, 0.2, 0.4, 0.8 (the cap), 0.8 ...; each in [ceiling/2, ceiling].
                assert time.delays[:6] == pytest.approx([0.05, 0.2, 0.3, 0.4, 0.8, 0.6])
                assert time.delays[6] == pytest.approx(0.8)
                assert not inf.has_synced
                assert inf.failures == 7
                server.start()
                time.allow(1)
                await asyncio.wait_for(inf.wait_synced(), 10)
                server.stop()  # the next failure starts from the base delay again

                async def failed_again() -> bool:
                    return len(time.delays) == 8

                await wait_for(failed_again, timeout=10, what="the watch to fail")
                assert time.delays[7] == pytest.approx(0.1)
    finally:
        server.stop()


def poisonable(caches: Caches) -> Model:
    """The test model, except that it cannot be built while a ConfigMap says "poison"."""
    model = values(caches)
    bad = sorted(name for name, v in model.items() if v == "poison")
    if bad:
        raise ValueError(f"cannot route {', '.join(bad)}")
    return model


class Report:
    def __init__(self) -> None:
        self.built: list[float] = []
        self.failed = 0

    def model_built(self, at: float) -> None:
        self.built.append(at)

    def model_build_failed(self) -> None:
        self.failed += 1


async def test_a_model_that_cannot_be_built_keeps_the_last_good_one(
        client: HttpClient, caplog: pytest.LogCaptureFixture) -> None:
    await client.create(cm("a", "1"))
    models, report = Models(), Report()
    clock = iter(float(t) for t in range(1000, 2000))
    feed = Feed(client)
    publisher = feed.publish(["ConfigMap"], poisonable, models, debounce=0.0,
                             clock=lambda: next(clock), report=report, name="test model")
    caplog.set_level(logging.DEBUG, logger="flotilla.client.feed")

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]

    async with running(feed):
        await asyncio.wait_for(publisher.ready.wait(), 10)
        assert models.seen == [{"a": "1"}]
        assert report.built == [1000.0]
        await client.create(cm("bad", "poison"))

        async def failures(n: int) -> bool:
            return publisher.failures >= n

        await wait_for(lambda: failures(1), timeout=10, what="the failed build")
        assert models.seen == [{"a": "1"}], "the last good model stays"
        await client.create(cm("b", "2"))  # the same failure again: counted, not re-logged
        await wait_for(lambda: failures(2), timeout=10, what="the second failed build")
        assert models.seen == [{"a": "1"}]
        assert report.failed == 2
        assert report.built == [1000.0]
        assert len(errors()) == 1
        assert "cannot route bad" in errors()[0]
        assert "keeping the last good test model" in errors()[0]
        await client.delete(CM, "default", "bad")

        async def recovered() -> bool:
            return models.last == {"a": "1", "b": "2"}

        await wait_for(recovered, timeout=10, what="the model after the fix")
        assert report.built == [1000.0, 1001.0]
        assert publisher.last_error is None
        await client.create(cm("worse", "poison"))
        await wait_for(lambda: failures(3), timeout=10, what="a new failure")
        assert len(errors()) == 2
        assert "cannot route worse" in errors()[1]
        assert models.last == {"a": "1", "b": "2"}


async def test_the_cache_hands_out_objects_that_cannot_be_changed_in_place(
        client: HttpClient) -> None:
    await client.create({**cm("a", "1"), "metadata": {
        "name": "a", "namespace": "default", "labels": {"app": "x"},
        "finalizers": ["example.test/hold"]}})
    handed: list[Object] = []
    feed = Feed(client)
    inf = feed.informer(CM)
    from flotilla.client.informer import EventHandlers

    inf.add_handler(EventHandlers(on_add=handed.append))
    async with running(feed):
        await asyncio.wait_for(inf.wait_synced(), 10)
    cached = inf.cache.get(ObjectKey("default", "a"))
    assert cached is not None
    assert handed == [cached]
    for change in (lambda: cached["data"].__setitem__("v", "2"),
                   lambda: cached["metadata"]["labels"].update(app="y"),
                   lambda: cached["metadata"]["finalizers"].append("more"),
                   lambda: cached.pop("data"),
                   lambda: cached["metadata"].setdefault("annotations", {})):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert cached["data"] == {"v": "1"}
    assert cached["metadata"]["labels"] == {"app": "x"}
    # The usual update step still works: copy, change the copy, write it.
    mine = copy.deepcopy(cached)
    mine["data"]["v"] = "2"
    mine["metadata"]["finalizers"] = []
    assert json.loads(json.dumps(cached))["data"] == {"v": "1"}
    written = await client.update(mine)
    assert written["data"] == {"v": "2"}
    assert cached["data"] == {"v": "1"}
