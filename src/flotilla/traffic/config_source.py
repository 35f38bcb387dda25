"""Keep the gateway's routing model current from the API: list, then watch, the three
kinds the model is built from, and rebuild + swap the model when any of them changes.

Changes are coalesced (``debounce``): an agent rewriting twenty EndpointSlices at once
costs one rebuild, not twenty. A watch that breaks resumes from the last resourceVersion
it saw; one that is too old (410 Gone) re-lists. While the API is unreachable the gateway
keeps routing on its last model - a control-plane outage must not become a data-plane
outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from flotilla.client.base import ApiError, GoneError, Object, ResourceClient
from flotilla.client.http import HttpClient
from flotilla.resources.kinds import Kind, by_kind
from flotilla.traffic.model import RoutingModel, build_model

log = logging.getLogger(__name__)

KINDS = ("TrafficPolicy", "EndpointSlice", "Cluster")


def http_client(server: str, token: str) -> HttpClient:
    return HttpClient(server, token or None)


def _key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class ConfigSource:
    def __init__(self, client: ResourceClient, on_model: Callable[[RoutingModel], None], *,
                 debounce: float = 0.05, retry_delay: float = 1.0) -> None:
        self.client = client
        self.on_model = on_model
        self.debounce = debounce
        self.retry_delay = retry_delay
        self.objects: dict[str, dict[tuple[str, str], Object]] = {k: {} for k in KINDS}
        self._changed = asyncio.Event()
        self._synced: set[str] = set()
        #: Set once every kind has been listed and the first model swapped in.
        self.ready = asyncio.Event()
        self.rebuilds = 0

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for name in KINDS:
                tg.create_task(self._follow(by_kind(name)))
            tg.create_task(self._rebuild_loop())

    async def _follow(self, kind: Kind) -> None:
        store = self.objects[kind.kind]
        rv = ""
        while True:
            try:
                if not rv:
                    listed = await self.client.list(kind, None)
                    store.clear()
                    store.update((_key(o), o) for o in listed.items)
                    rv = listed.resource_version
                    self._synced.add(kind.kind)
                    self._changed.set()
                async for event in self.client.watch(kind, None, resource_version=rv):
                    obj = event.object
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event.type == "BOOKMARK":
                        continue
                    if event.type == "DELETED":
                        store.pop(_key(obj), None)
                    else:
                        store[_key(obj)] = obj
                    self._changed.set()
            except GoneError:
                rv = ""  # history compacted: start over from a fresh list
            except Exception as e:  # a control-plane hiccup of any kind
                # must not take the data plane down: keep the last model, retry.
                log.warning("watching %s: %s; retrying in %.1fs", kind.plural,
                            e if isinstance(e, ApiError) else repr(e), self.retry_delay)
                await asyncio.sleep(self.retry_delay)

    async def _rebuild_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.debounce)  # coalesce a burst of changes
            self._changed.clear()
            if len(self._synced) < len(KINDS):
                continue  # a partial view would drop routes that do exist
            self.on_model(self.build())
            self.rebuilds += 1
            self.ready.set()

    def build(self) -> RoutingModel:
        objs: dict[str, list[dict[str, Any]]] = {k: list(v.values())
                                                 for k, v in self.objects.items()}
        return build_model(objs["TrafficPolicy"], objs["EndpointSlice"], objs["Cluster"])
