"""The control plane a `flotilla server` runs: the API's admission checks and every
controller, composed here on the server side.

The CLI's ``flotilla server`` only calls `control_plane_tasks`: it never imports the
controllers itself, so the layering (the CLI talks to the API, the API server hosts the
controllers) holds for the one process that runs both. The failover budget check is
registered on the `Registry` directly, because only the server holds one: the
controllers themselves see nothing but the `ResourceClient` seam.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flotilla.api.registry import Registry
from flotilla.controllers.failover.admission import budget_check
from flotilla.controllers.failover.controller import DEFAULT_HEARTBEAT
from flotilla.controllers.plane import PlaneSettings, control_plane


def control_plane_tasks(cluster_grace_period: float
                        ) -> tuple[Callable[[Registry], Awaitable[None]], ...]:
    """The background tasks for `flotilla.api.server.main`: admission checks, controllers."""
    settings = PlaneSettings(cluster_grace_period=cluster_grace_period)
    controllers = control_plane(settings)

    async def plane(registry: Registry) -> None:
        # The API refuses a failover budget the timers cannot meet, at apply time.
        registry.add_check(budget_check(settings.cluster_grace_period, DEFAULT_HEARTBEAT))
        await controllers(registry)

    return (plane,)
