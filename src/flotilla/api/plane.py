"""The control plane a `flotilla server` runs: the API's admission checks and every
controller, composed here on the server side.

The CLI's ``flotilla server`` only calls `control_plane_tasks`: it never imports the
controllers itself, so the layering (the CLI talks to the API, the API server hosts the
controllers) holds for the one process that runs both. The failover budget check is
registered on the `Registry` directly, because only the server holds one: the
controllers themselves see nothing but the `ResourceClient` seam.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable

from flotilla.api.metrics import ApiMetrics
from flotilla.api.registry import Registry
from flotilla.controllers.failover.admission import budget_check
from flotilla.controllers.failover.controller import DEFAULT_HEARTBEAT
from flotilla.controllers.leader import ElectionTimers, LeaderMetrics
from flotilla.controllers.metrics import ControllerMetrics
from flotilla.controllers.plane import PlaneSettings, control_plane

__all__ = ["ApiMetrics", "ElectionTimers", "control_plane_tasks", "default_server_name"]


def default_server_name(listen: str) -> str:
    """``HOSTNAME-PORT`` of ``--listen``: unique among replicas on one host (they cannot
    share a port) and across hosts. With port 0 the port is unknown before binding, so the
    process id stands in (``HOSTNAME-pPID``)."""
    _, _, port = listen.rpartition(":")
    host = socket.gethostname() or "localhost"
    return f"{host}-{port}" if port not in ("", "0") else f"{host}-p{os.getpid()}"


def control_plane_tasks(cluster_grace_period: float, *, server_name: str = "",
                        election: ElectionTimers | None = None,
                        metrics: ApiMetrics | None = None,
                        ) -> tuple[Callable[[Registry], Awaitable[None]], ...]:
    """The background tasks for `flotilla.api.server.main`: admission checks, controllers.

    ``server_name`` is this replica's identity (``flotilla server --name``): the
    holderIdentity of the controller leader Lease. The controllers' metrics go on
    ``metrics`` (the API server's, so one /metrics shows both)."""
    registry = metrics.registry if metrics is not None else None
    settings = PlaneSettings(cluster_grace_period=cluster_grace_period,
                             server_name=server_name,
                             election=election or ElectionTimers(),
                             metrics=ControllerMetrics(registry),
                             leader=LeaderMetrics(registry))
    controllers = control_plane(settings)

    async def plane(registry: Registry) -> None:
        # The API refuses a failover budget the timers cannot meet, at apply time.
        registry.add_check(budget_check(settings.cluster_grace_period, DEFAULT_HEARTBEAT))
        await controllers(registry)

    return (plane,)
