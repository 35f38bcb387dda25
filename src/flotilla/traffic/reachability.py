"""The gateway's report of which clusters its active health checks reach.

The gateway is the only part that sees the data plane: a cluster whose pods it cannot
reach while its heartbeats still arrive looks Ready to the control plane. So each
gateway writes its own view into one small object, the GatewayReport
``flotilla-system/<its identity name>``, and the cluster-health controller turns every
gateway's fresh report into the Cluster's ``TrafficReachable`` condition
(`flotilla.controllers.cluster_health`). A gateway only ever writes its own report (the
API refuses the rest: `flotilla.api.authz.gateway`), so one gateway's view cannot evict
a cluster alone.

The hot path never waits on this: the checks flip `Upstream.reached`, tell the reporter
(an `asyncio.Event`), and the reporter's own task writes at once and then every
`REPORT_INTERVAL` seconds, each write bounded by a timeout. An API that is down or slow
only means the report goes stale, which the controller reads as "this gateway has no
view" (Unknown), never as unreachable.

Per cluster, only endpoints of TrafficPolicies with active health checks that have been
checked count: reachable when one of them answered (any HTTP status: an app that
answers 500 is reachable, its failure is the app's), unreachable when none did. A
cluster with no checked endpoint is left out: this gateway has no view of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flotilla.client.base import ApiError, ConflictError, NotFoundError, ResourceClient
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import SYSTEM_NAMESPACE, rfc3339_at
from flotilla.traffic.backend import BackendRuntime

log = logging.getLogger(__name__)
REPORT = by_kind("GatewayReport")
#: Seconds between renewals (the controller takes a report as stale after 3x this).
REPORT_INTERVAL = 2.0

REACHED = "HealthChecksAnswered"
NOT_REACHED = "NoEndpointAnswered"


@dataclass(frozen=True, slots=True)
class Reach:
    reachable: bool
    answered: int
    checked: int

    @property
    def reason(self) -> str:
        return REACHED if self.reachable else NOT_REACHED

    @property
    def message(self) -> str:
        return (f"{self.answered} of {self.checked} checked endpoints answer this "
                f"gateway's health checks")


def cluster_reach(runtimes: Iterable[BackendRuntime]) -> dict[str, Reach]:
    """Pure: per cluster, what this gateway's checks reach (clusters without a checked
    endpoint are absent). An endpoint in several backends counts once per backend."""
    counts: dict[str, list[int]] = {}
    for rt in runtimes:
        if rt.policy.health_check is None:
            continue
        for u in rt.upstreams:
            if u.reached is None:
                continue
            c = counts.setdefault(u.endpoint.cluster, [0, 0])
            c[0] += 1 if u.reached else 0
            c[1] += 1
    return {name: Reach(answered > 0, answered, checked)
            for name, (answered, checked) in sorted(counts.items())}


class Reporter:
    """Writes this gateway's GatewayReport. ``runtimes`` returns the backends in service
    (the gateway's current state); ``clock`` is wall time for the times written."""

    def __init__(self, client: ResourceClient, name: str,
                 runtimes: Callable[[], Iterable[BackendRuntime]], *,
                 interval: float = REPORT_INTERVAL,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.name = name
        self.runtimes = runtimes
        self.interval = interval
        self.clock = clock
        self.changed = asyncio.Event()
        #: cluster -> (reachable, since) as last reported
        self._since: dict[str, tuple[bool, str]] = {}
        self._stored: dict[str, Any] | None = None
        self._failing = False
        self.writes = 0

    def notify(self) -> None:
        """The checks' reach changed: write at once (called from the hot loop)."""
        self.changed.set()

    def body(self) -> dict[str, Any]:
        """The report as it is now; keeps each cluster's ``since`` across writes."""
        now = rfc3339_at(self.clock())
        reach = cluster_reach(self.runtimes())
        entries = []
        since: dict[str, tuple[bool, str]] = {}
        for cluster, r in reach.items():
            old = self._since.get(cluster)
            since[cluster] = old if old is not None and old[0] == r.reachable \
                else (r.reachable, now)
            entries.append({"name": cluster, "reachable": r.reachable,
                            "since": since[cluster][1], "reason": r.reason,
                            "message": r.message})
        self._since = since
        return {"apiVersion": REPORT.api_version, "kind": REPORT.kind,
                "metadata": {"name": self.name, "namespace": SYSTEM_NAMESPACE},
                "spec": {"renewTime": now, "clusters": entries}}

    async def write(self) -> None:
        """One renewal: an update on the last stored version, a create when there is
        none, a read again after a conflict."""
        body = self.body()
        stored = self._stored
        if stored is None:
            try:
                stored = await self.client.get(REPORT, SYSTEM_NAMESPACE, self.name)
            except NotFoundError:
                self._stored = await self.client.create(body)
                return
        body["metadata"]["resourceVersion"] = stored["metadata"].get("resourceVersion")
        try:
            self._stored = await self.client.update(body)
        except (ConflictError, NotFoundError):
            self._stored = None
            raise

    async def run(self) -> None:
        """Until cancelled: write on every change and at least every ``interval``."""
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self.changed.wait()
            except TimeoutError:
                pass
            self.changed.clear()
            try:
                async with asyncio.timeout(self.interval):
                    await self.write()
                self.writes += 1
                if self._failing:
                    log.info("gateway report %s/%s written again", SYSTEM_NAMESPACE,
                             self.name)
                self._failing = False
            except (ApiError, OSError, TimeoutError) as exc:
                # Stale reports are the only consequence; say so once per outage.
                if not self._failing:
                    log.warning("cannot write gateway report %s/%s (it goes stale): %s",
                                SYSTEM_NAMESPACE, self.name, exc)
                self._failing = True
                self._stored = None
