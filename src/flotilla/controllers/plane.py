"""The control plane's controllers, assembled for `flotilla server`.

One function lists every controller the server runs, so adding one is one line here
and a ``build(manager)`` function in its own module. The server side
(`flotilla.api.plane`) runs them, next to the API's admission checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from flotilla.client.base import ResourceClient
from flotilla.controllers import cluster_health, discovery
from flotilla.controllers.autoscaling import controller as autoscaling
from flotilla.controllers.autoscaling import cron as cron_autoscaling
from flotilla.controllers.cronjob import controller as cronjob
from flotilla.controllers.failover import controller as failover
from flotilla.controllers.leader import (
    ElectionTimers,
    LeaderMetrics,
    LeaseElector,
    run_while_leading,
)
from flotilla.controllers.manager import ControllerManager
from flotilla.controllers.metrics import ACTIVE, ControllerMetrics
from flotilla.controllers.placement import binder, rendering, scheduling, status
from flotilla.controllers.rollout import controller as rollout


@dataclass(frozen=True, slots=True)
class PlaneSettings:
    cluster_grace_period: float = cluster_health.DEFAULT_GRACE
    #: This replica's identity (``flotilla server --name``): the leader Lease's holder.
    server_name: str = ""
    election: ElectionTimers = field(default_factory=ElectionTimers)
    #: where the controllers count (exported on the API server's /metrics)
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    #: ``flotilla_leader`` and its transitions (exported on the API server's /metrics)
    leader: LeaderMetrics = field(default_factory=LeaderMetrics)


def control_plane(settings: PlaneSettings) -> Callable[[ResourceClient], Awaitable[None]]:
    """The background task `run_server` runs: every controller on the in-process client,
    while this replica holds the controller leader Lease (`flotilla.controllers.leader`)."""

    def build(manager: ControllerManager) -> None:
        settings.metrics.manager = manager  # the state metrics read this term's caches
        cluster_health.build(manager, grace=settings.cluster_grace_period)
        binder.build(manager)
        scheduling.build(manager)
        rendering.build(manager)
        status.build(manager)
        rollout.build(manager)
        autoscaling.build(manager)
        cron_autoscaling.build(manager)
        failover.build(manager, grace=settings.cluster_grace_period)
        discovery.build(manager)
        cronjob.build(manager)

    async def run(client: ResourceClient) -> None:
        # Every replica campaigns; only the holder of the leader Lease runs controllers.
        elector = LeaseElector(client, settings.server_name or "flotilla-server",
                               settings.election, on_change=settings.leader.changed)
        ACTIVE.set(settings.metrics)  # this task's and its children's (`ACTIVE`)
        await run_while_leading(elector, client, build)

    return run
