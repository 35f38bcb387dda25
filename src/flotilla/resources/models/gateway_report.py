"""GatewayReport: what one gateway's active health checks see of each cluster.

Each gateway writes its own report (``flotilla-system/<the gateway's identity name>``)
and renews it every couple of seconds; it says nothing about any other gateway's view.
The cluster-health controller reads every fresh report and sets the Cluster's
``TrafficReachable`` condition from them (`flotilla.controllers.cluster_health`), so no
single gateway can take a cluster out of service on its own view.
"""

from __future__ import annotations

from pydantic import Field

from flotilla.resources.models.common import Model, Timestamp
from flotilla.resources.models.meta import Object

__all__ = ["ClusterReach", "GatewayReport", "GatewayReportSpec"]


class ClusterReach(Model):
    name: str = Field(min_length=1)
    """The Cluster the checks were sent to."""
    reachable: bool
    """True when at least one of the cluster's checked endpoints answered the last
    checks; False when none did."""
    since: Timestamp | None = None
    """When ``reachable`` last changed, on the gateway's clock."""
    reason: str = ""
    message: str = ""


class GatewayReportSpec(Model):
    renew_time: Timestamp | None = None
    """When the gateway last wrote the report. The controller judges freshness by when
    it saw this change, on its own clock (as for heartbeat Leases)."""
    clusters: list[ClusterReach] = Field(default_factory=list)
    """One entry per cluster the gateway has checked endpoints in; a cluster it does not
    check is left out (it has no view of it)."""


class GatewayReport(Object):
    spec: GatewayReportSpec = Field(default_factory=GatewayReportSpec)
