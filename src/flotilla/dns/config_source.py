"""Keep the DNS model current from the API: four kinds followed by one `Feed`, the model
rebuilt with the pure `build_model` after each burst of changes and handed to
``on_model`` (the server compiles and swaps it in one assignment).

The feed's data-plane rules apply (`flotilla.client.feed`). The one that matters most
here: nothing is published until every kind has been listed once, as a model built from
half the objects would answer NXDOMAIN for names that exist, and resolvers would cache
that for the negative TTL. A model that cannot be built keeps the last good one in
service, logged once and counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flotilla.client.base import ResourceClient
from flotilla.client.feed import Caches, Feed, ModelReport
from flotilla.dns.model import DEFAULT_TTL, DnsModel, build_model

KINDS = ("TrafficPolicy", "EndpointSlice", "Cluster", "ServiceExport")


def model_builder(zone: str, ttl: int = DEFAULT_TTL) -> Callable[[Caches], DnsModel]:
    """The DNS's ``build(caches)``: `build_model` over the cached objects."""

    def build(caches: Caches) -> DnsModel:
        return build_model(
            zone,
            traffic_policies=caches["TrafficPolicy"].list(),
            endpoint_slices=caches["EndpointSlice"].list(),
            clusters=caches["Cluster"].list(),
            service_exports=caches["ServiceExport"].list(),
            ttl=ttl,
        )

    return build


class ConfigSource:
    """``build`` replaces `model_builder` (tests inject a failing one); ``metrics`` gets
    each build's outcome (the server's `DnsMetrics`)."""

    def __init__(
        self,
        client: ResourceClient,
        zone: str,
        on_model: Callable[[DnsModel], None],
        *,
        ttl: int = DEFAULT_TTL,
        retry_delay: float = 0.2,
        debounce: float = 0.0,
        build: Callable[[Caches], DnsModel] | None = None,
        metrics: ModelReport | None = None,
    ) -> None:
        self.feed = Feed(client, min_backoff=retry_delay)
        self.publisher = self.feed.publish(KINDS, build or model_builder(zone, ttl), on_model,
                                           debounce=debounce, report=metrics,
                                           name="dns model")

    @property
    def synced(self) -> asyncio.Event:
        """Set once the first complete model has been published."""
        return self.publisher.ready

    async def run(self) -> None:
        """Follow the API until cancelled."""
        await self.feed.run()
