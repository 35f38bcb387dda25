"""ConfigSource recovery paths the real API cannot be made to hit on demand: an expired
watch (410 Gone) and a failing transport. A scripted `ResourceClient` stands in; the
normal list + watch path is tested against the real API in test_api_source.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flotilla.client.base import GoneError, ObjectList, WatchEvent
from flotilla.dns.config_source import ConfigSource
from flotilla.dns.model import DnsModel
from flotilla.resources.kinds import Kind
from tests.dns.objects import three_regions, traffic_policy
from tests.helpers import wait_for


class ScriptedClient:
    """Lists from ``objects``; each kind's first watch fails as scripted, later watches
    follow a queue of events."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], first_watch: Exception) -> None:
        self.objects = objects
        self.first_watch = first_watch
        self.lists: dict[str, int] = {}
        self.watches: dict[str, int] = {}
        self.events: dict[str, asyncio.Queue[WatchEvent]] = {}

    async def list(self, kind: Kind, namespace: str | None = None, **_: Any) -> ObjectList:
        self.lists[kind.kind] = self.lists.get(kind.kind, 0) + 1
        return ObjectList(items=list(self.objects.get(kind.kind, [])), resource_version="1")

    async def watch(self, kind: Kind, namespace: str | None = None, *,
                    resource_version: str, selector: str | None = None,
                    ) -> AsyncIterator[WatchEvent]:
        self.watches[kind.kind] = self.watches.get(kind.kind, 0) + 1
        if self.watches[kind.kind] == 1:
            raise self.first_watch
        queue = self.events.setdefault(kind.kind, asyncio.Queue())
        while True:
            yield await queue.get()


def _objects() -> dict[str, list[dict[str, Any]]]:
    base = three_regions()
    return {
        "Cluster": base["clusters"],
        "EndpointSlice": base["endpoint_slices"],
        "ServiceExport": base["service_exports"],
        "TrafficPolicy": [traffic_policy("shop", ["shop.global.test"])],
    }


@pytest.mark.parametrize(("failure", "relists"), [(GoneError("too old"), True),
                                              (ConnectionError("reset"), False)])
async def test_recovers_from_a_failed_watch_and_follows_events(failure: Exception,
                                                               relists: bool) -> None:
    """An expired resume point (410) forces a re-list; a broken connection resumes the
    watch from the last resourceVersion, with no re-list. Either way the answers then
    follow the events."""
    client = ScriptedClient(_objects(), failure)
    models: list[DnsModel] = []
    source = ConfigSource(client, "global.test", models.append, retry_delay=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), 5)

        async def recovered() -> bool:
            return all(client.watches.get(k, 0) >= 2 for k in ("Cluster", "TrafficPolicy"))

        await wait_for(recovered, timeout=5, what="every kind watching again")
        for kind in ("Cluster", "TrafficPolicy"):
            assert client.lists[kind] == (2 if relists else 1), kind
        assert len(models[-1].names["shop.global.test"].targets) == 3

        down = three_regions()["clusters"][0]
        down["status"]["conditions"][0]["status"] = "False"

        async def queue_ready() -> bool:
            return "Cluster" in client.events

        await wait_for(queue_ready, timeout=5, what="cluster watch running")
        await client.events["Cluster"].put(WatchEvent("MODIFIED", down))

        async def east_gone() -> bool:
            return [t.cluster for t in models[-1].names["shop.global.test"].targets] == [
                "south", "west"]

        await wait_for(east_gone, timeout=5, what="east to leave the model")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
