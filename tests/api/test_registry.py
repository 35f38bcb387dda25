"""The registry as the in-process `ResourceClient` controllers use (real SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from flotilla.api.registry import Registry
from flotilla.client.base import ResourceClient, WatchEvent
from flotilla.resources.kinds import by_kind
from tests.api.samples import sample

CM = by_kind("ConfigMap")


async def _next(events: AsyncIterator[WatchEvent]) -> WatchEvent:
    return await asyncio.wait_for(anext(events), 5)


async def test_registry_is_a_resource_client(registry: Registry) -> None:
    client: ResourceClient = registry  # checked by mypy: the seam is implemented
    created = await client.create(sample(CM, "a", namespace="ns"))
    assert (await client.get(CM, "ns", "a")) == created


async def test_watch_filters_by_namespace_and_selector(registry: Registry) -> None:
    start = (await registry.list(CM)).resource_version
    events = registry.watch(CM, "ns", resource_version=start, selector="app=web")
    try:
        await registry.create(sample(CM, "other-ns", namespace="elsewhere",
                                     labels={"app": "web"}))
        await registry.create(sample(CM, "other-app", namespace="ns", labels={"app": "db"}))
        wanted = await registry.create(sample(CM, "web", namespace="ns", labels={"app": "web"}))
        ev = await _next(events)
        assert (ev.type, ev.object) == ("ADDED", wanted)
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def test_bookmarking_watch_advances_past_other_resources(registry: Registry) -> None:
    start = (await registry.list(CM)).resource_version
    events = registry.watch(CM, "ns", resource_version=start, bookmark_interval=0.05)
    try:
        secret = await registry.create(sample("Secret", "s", namespace="ns"))
        for _ in range(100):  # bounded: bookmarks come every 50 ms
            ev = await _next(events)
            assert ev.type == "BOOKMARK"
            if ev.object["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]:
                break
        else:
            pytest.fail("no bookmark reached the latest revision")
        registry.close_watches()
        with pytest.raises(StopAsyncIteration):
            await _next(events)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
