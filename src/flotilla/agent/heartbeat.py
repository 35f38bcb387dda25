"""The cluster heartbeat: a Lease object renewed every ``heartbeat_interval``.

Kubernetes nodes heartbeat the same way (a Lease in ``kube-node-lease``): one small
write per interval that the health controller watches. The control plane judges
liveness by ``spec.renewTime`` against its own grace period, so a hung agent (SIGSTOP)
and a dead one look alike: the renewals stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from flotilla.client.base import ConflictError, NotFoundError, Object, ResourceClient
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import SYSTEM_NAMESPACE, now_rfc3339

log = logging.getLogger(__name__)
LEASE = by_kind("Lease")


def lease_manifest(cluster: str, holder: str, duration: float) -> Object:
    now = now_rfc3339()
    return {
        "apiVersion": LEASE.api_version,
        "kind": "Lease",
        "metadata": {"name": cluster, "namespace": SYSTEM_NAMESPACE},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, round(duration)),
            "acquireTime": now,
            "renewTime": now,
        },
    }


class Heartbeat:
    """Renews the cluster's Lease; `last_ok` tells when the last renewal succeeded."""

    def __init__(self, client: ResourceClient, cluster: str, interval: float) -> None:
        self.client = client
        self.cluster = cluster
        self.interval = interval
        self.holder = f"agent-{cluster}-{os.getpid()}"
        self.last_ok: float | None = None
        self.renewals = 0
        self._lease: Object | None = None

    async def renew_once(self) -> None:
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASE, SYSTEM_NAMESPACE, self.cluster)
            except NotFoundError:
                self._lease = await self.client.create(
                    lease_manifest(self.cluster, self.holder, self.interval * 3))
                self._done()
                return
        lease = dict(self._lease)
        spec = dict(lease.get("spec") or {})
        spec["holderIdentity"] = self.holder
        spec["renewTime"] = now_rfc3339()
        lease["spec"] = spec
        try:
            self._lease = await self.client.update(lease)
        except (ConflictError, NotFoundError):
            self._lease = None  # somebody else wrote it, or it was deleted: re-read
            raise
        self._done()

    def _done(self) -> None:
        self.last_ok = time.monotonic()
        self.renewals += 1

    async def run(self) -> None:
        """Renew forever at a fixed rate; errors are logged and retried next tick."""
        next_tick = time.monotonic()
        while True:
            try:
                await self.renew_once()
            except Exception as exc:  # API errors and transport errors alike: retry
                log.warning("heartbeat for %s failed: %s", self.cluster, exc)
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # we fell behind (server down): do not burst to catch up
                next_tick = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)
