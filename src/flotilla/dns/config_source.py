"""Keep the DNS model current from the API: list, then watch, four kinds; rebuild on change.

One follower task per kind keeps a local copy of its objects (list, then watch from the
list's resourceVersion; re-list on 410 Gone or on any transport error, with a capped
back-off). A single publisher task rebuilds the model with the pure `build_model` and
hands it to ``on_model`` — the server compiles and swaps it in one assignment.

Bursts coalesce: followers only set an `asyncio.Event`, and the publisher rebuilds once
per wake-up however many events arrived meanwhile, so an agent rewriting fifty
EndpointSlices costs one rebuild, not fifty. Nothing is published until every kind has
been listed once: a model built from half the objects would answer NXDOMAIN for names
that exist, and resolvers would cache that for the negative TTL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from flotilla.client.base import GoneError, Object, ResourceClient
from flotilla.dns.model import DEFAULT_TTL, DnsModel, build_model
from flotilla.resources.kinds import Kind, by_kind

log = logging.getLogger(__name__)

KINDS = ("TrafficPolicy", "EndpointSlice", "Cluster", "ServiceExport")
_MAX_BACKOFF = 5.0


class ConfigSource:
    def __init__(
        self,
        client: ResourceClient,
        zone: str,
        on_model: Callable[[DnsModel], None],
        *,
        ttl: int = DEFAULT_TTL,
        retry_delay: float = 0.2,
    ) -> None:
        self.client = client
        self.zone = zone
        self.on_model = on_model
        self.ttl = ttl
        self.retry_delay = retry_delay
        self._objects: dict[str, dict[tuple[str, str], Object]] = {k: {} for k in KINDS}
        self._listed: set[str] = set()
        self._changed = asyncio.Event()
        #: Set once the first complete model has been published.
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """Follow the API until cancelled."""
        async with asyncio.TaskGroup() as group:
            for name in KINDS:
                group.create_task(self._follow(by_kind(name)), name=f"dns-follow-{name}")
            group.create_task(self._publish(), name="dns-publish")

    def build(self) -> DnsModel:
        return build_model(
            self.zone,
            traffic_policies=list(self._objects["TrafficPolicy"].values()),
            endpoint_slices=list(self._objects["EndpointSlice"].values()),
            clusters=list(self._objects["Cluster"].values()),
            service_exports=list(self._objects["ServiceExport"].values()),
            ttl=self.ttl,
        )

    async def _publish(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if len(self._listed) < len(KINDS):
                continue
            try:
                self.on_model(self.build())
            except Exception:  # keep serving the last good model
                log.exception("dns: failed to rebuild the model; keeping the previous one")
                continue
            self.synced.set()

    async def _follow(self, kind: Kind) -> None:
        delay = self.retry_delay
        while True:
            try:
                listed = await self.client.list(kind, None)
                self._objects[kind.kind] = {_key(o): o for o in listed.items}
                self._listed.add(kind.kind)
                self._changed.set()
                delay = self.retry_delay
                version = listed.resource_version
                while True:  # resume the watch where it ended; only errors force a re-list
                    version, seen = await self._watch(kind, version)
                    if not seen:
                        await asyncio.sleep(self.retry_delay)  # empty stream: do not spin
            except GoneError:
                log.info("dns: watch of %s expired; re-listing", kind.plural)
                continue
            except Exception as exc:
                log.warning("dns: following %s failed (%s); retrying in %.1fs",
                            kind.plural, exc, delay)
            await asyncio.sleep(delay)  # back-off before re-listing
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _watch(self, kind: Kind, version: str) -> tuple[str, bool]:
        """Apply watch events until the stream ends; return the last resourceVersion seen
        and whether any event came."""
        objects = self._objects[kind.kind]
        seen = False
        async for event in self.client.watch(kind, None, resource_version=version):
            seen = True
            version = str((event.object.get("metadata") or {}).get("resourceVersion") or version)
            if event.type == "BOOKMARK":
                continue
            if event.type == "DELETED":
                objects.pop(_key(event.object), None)
            else:
                objects[_key(event.object)] = event.object
            self._changed.set()
        return version, seen


def _key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
