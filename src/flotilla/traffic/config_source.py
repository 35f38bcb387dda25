"""Keep the gateway's routing model current from the API: the kinds the model is built
from (policies, endpoints, clusters, and the Secrets holding certificates), followed by
one `Feed`, and a new model swapped in after each burst of changes.

Everything a data plane needs from the feed applies (`flotilla.client.feed`): no model
before every kind is listed, bursts coalesced, a model that cannot be built keeps the
last good one in service (logged once, counted in ``/metrics``), and while the API is
unreachable the gateway keeps routing on its last model — a control-plane outage must
not become a data-plane outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flotilla.client.base import ResourceClient
from flotilla.client.feed import Caches, Feed, ModelReport
from flotilla.client.http import HttpClient
from flotilla.traffic.model import RoutingModel, build_model

#: Secrets for the certificates of ``spec.tls`` (only those a policy names are read).
KINDS = ("TrafficPolicy", "EndpointSlice", "Cluster", "Secret")


def http_client(server: str, token: str) -> HttpClient:
    return HttpClient(server, token or None)


def routing_model(caches: Caches) -> RoutingModel:
    return build_model(caches["TrafficPolicy"].list(), caches["EndpointSlice"].list(),
                       caches["Cluster"].list(), caches["Secret"].list())


class ConfigSource:
    """``build`` replaces `routing_model` (tests inject a failing one); ``metrics`` gets
    each build's outcome (the gateway's `GatewayMetrics`)."""

    def __init__(self, client: ResourceClient, on_model: Callable[[RoutingModel], None], *,
                 debounce: float = 0.05, retry_delay: float = 0.05,
                 build: Callable[[Caches], RoutingModel] = routing_model,
                 metrics: ModelReport | None = None) -> None:
        self.feed = Feed(client, min_backoff=retry_delay)
        self.publisher = self.feed.publish(KINDS, build, on_model, debounce=debounce,
                                           report=metrics, name="routing model")

    @property
    def ready(self) -> asyncio.Event:
        """Set once every kind has been listed and the first model swapped in."""
        return self.publisher.ready

    @property
    def rebuilds(self) -> int:
        return self.publisher.builds

    async def run(self) -> None:
        """Run until cancelled."""
        await self.feed.run()
