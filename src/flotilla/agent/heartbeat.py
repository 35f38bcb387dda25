"""The cluster heartbeat: a Lease object renewed every ``heartbeat_interval``, held by
exactly one agent.

Kubernetes nodes heartbeat the same way (a Lease in ``kube-node-lease``): one small
write per interval that the health controller watches. The control plane judges
liveness by ``spec.renewTime`` against its own grace period, so a hung agent (SIGSTOP)
and a dead one look alike: the renewals stop.

The Lease is also the cluster's identity claim. ``spec.holderIdentity`` names one agent
process (`agent_identity`: pid, a random part and host, so a restart is a new holder);
an agent `acquire`s the Lease before it touches the cluster and every renewal is a
compare-and-set that fails if anyone else wrote it. A second agent started with the name
of a live cluster is therefore refused (`ClusterHeld`), and an agent that finds its Lease
taken over while it was away (paused, partitioned) stops (`LeaseLost`), instead of both
running the cluster's Works. A holder is gone, and its Lease free to take, when:

- it released the Lease on a clean stop (empty holder);
- it ran on this host and its process no longer exists (a crash, ``kill-cluster``);
- the Lease did not change for a whole ``leaseDurationSeconds``, timed on this agent's
  own monotonic clock (no trust in another machine's clock, as Kubernetes' leader
  election does).

Acquiring writes ``holderIdentity`` and ``acquireTime`` but never ``renewTime``: only a
renewal (after the agent reported what it runs) tells the health controller the cluster
is alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

from flotilla.client.base import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    NotFoundError,
    Object,
    ResourceClient,
)
from flotilla.lifecycle import FatalError
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import SYSTEM_NAMESPACE, now_rfc3339

log = logging.getLogger(__name__)
LEASE = by_kind("Lease")


def agent_identity(cluster: str) -> str:
    """``agent-CLUSTER-PID-RANDOM@HOST``: unique per process (a restart is a new holder),
    and says where to look for the holder's process."""
    return f"agent-{cluster}-{os.getpid()}-{secrets.token_hex(4)}@{socket.gethostname()}"


def holder_process(holder: str) -> tuple[str, int] | None:
    """(host, pid) of an `agent_identity`, or None for another format."""
    rest, at, host = holder.rpartition("@")
    parts = rest.rsplit("-", 2)
    if not at or len(parts) != 3 or not parts[1].isdigit():
        return None
    return host, int(parts[1])


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (an `agent_identity`) ran on this host and its process has
    exited (or is a zombie). Other formats and other hosts: not known to be gone."""
    where = holder_process(holder)
    if where is None or where[0] != socket.gethostname() or where[1] == os.getpid():
        return False
    pid = where[1]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state == b"Z"


class ClusterHeld(FatalError):
    """Another live agent holds this cluster's Lease: this one must not start."""

    def __init__(self, cluster: str, holder: str) -> None:
        super().__init__(
            f"cluster {cluster!r} is already served by a live agent ({holder}): its Lease "
            f"{SYSTEM_NAMESPACE}/{cluster} is being renewed; stop that agent first, or give "
            f"this one another --cluster name")
        self.cluster = cluster
        self.holder = holder


class LeaseLost(FatalError):
    """Another agent took this cluster's Lease over: this one must stop."""

    def __init__(self, cluster: str, holder: str) -> None:
        super().__init__(
            f"cluster {cluster!r} was taken over by another agent ({holder}) while this "
            f"one was not renewing its Lease; stopping")
        self.cluster = cluster
        self.holder = holder


def lease_manifest(cluster: str, holder: str, duration: float, *,
                   renewed: bool = True) -> Object:
    now = now_rfc3339()
    spec: Object = {
        "holderIdentity": holder,
        "leaseDurationSeconds": max(1, round(duration)),
        "acquireTime": now,
    }
    if renewed:
        spec["renewTime"] = now
    return {
        "apiVersion": LEASE.api_version,
        "kind": "Lease",
        "metadata": {"name": cluster, "namespace": SYSTEM_NAMESPACE},
        "spec": spec,
    }


class Heartbeat:
    """Holds and renews the cluster's Lease; `last_ok` tells when the last renewal
    succeeded."""

    def __init__(self, client: ResourceClient, cluster: str, interval: float,
                 holder: str | None = None) -> None:
        self.client = client
        self.cluster = cluster
        self.interval = interval
        self.holder = holder or agent_identity(cluster)
        self.last_ok: float | None = None
        self.renewals = 0
        self._lease: Object | None = None
        #: called after each renewal with (seconds it took, whether it succeeded)
        self.observe: Callable[[float, bool], None] = lambda _s, _ok: None

    @property
    def duration(self) -> float:
        return self.interval * 3

    # -- the claim ---------------------------------------------------------------------

    async def acquire(self) -> None:
        """Take the Lease for this agent, waiting for the server if it is not up yet.
        Raises `ClusterHeld` when a live agent holds it."""
        delay = 0.1
        watched: tuple[str, float] | None = None  # (resourceVersion, since) of a holder
        while True:
            try:
                if await self._try_acquire(watched):
                    return
            except _Live as live:
                if watched is not None and watched[0] != live.version:
                    raise ClusterHeld(self.cluster, live.holder) from None
                if watched is None:
                    watched = (live.version, time.monotonic())
                    log.info("cluster %s: Lease held by %s; waiting up to %.0fs to see "
                             "whether it is still renewed", self.cluster, live.holder,
                             live.duration)
                await asyncio.sleep(min(self.interval / 2, live.duration))
                continue
            except (ConflictError, AlreadyExistsError) as exc:  # a race: judge again
                log.info("cluster %s: acquiring the Lease: %s; retrying", self.cluster, exc)
                continue
            except Exception as exc:  # server not up yet, or refusing: as registering did
                log.warning("cluster %s: acquiring the Lease: %s; retrying in %.1fs",
                            self.cluster, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _try_acquire(self, watched: tuple[str, float] | None) -> bool:
        try:
            lease = await self.client.get(LEASE, SYSTEM_NAMESPACE, self.cluster)
        except NotFoundError:
            self._lease = await self.client.create(
                lease_manifest(self.cluster, self.holder, self.duration, renewed=False))
            return True
        spec = dict(lease.get("spec") or {})
        holder = str(spec.get("holderIdentity") or "")
        version = str(lease["metadata"].get("resourceVersion") or "")
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.holder and not holder_is_gone(holder):
            unchanged_since = watched[1] if watched and watched[0] == version else None
            if unchanged_since is None or time.monotonic() - unchanged_since < duration:
                raise _Live(holder, version, duration)
            log.warning("cluster %s: Lease of %s not renewed for %.0fs: taking over",
                        self.cluster, holder, duration)
        spec["holderIdentity"] = self.holder
        spec["acquireTime"] = now_rfc3339()
        spec["leaseDurationSeconds"] = max(1, round(self.duration))
        if holder != self.holder:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        self._lease = await self.client.update({**lease, "spec": spec})
        return True

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a successor need not wait for it."""
        lease, self._lease = self._lease, None
        # A renewal cancelled by the stop may have reached the server after all, leaving
        # the copy here one version behind (or none, after a failed renewal): read it
        # again and release it if it is still ours (once; a successor keeps it).
        for attempt in range(2):
            if lease is None:
                try:
                    lease = await self.client.get(LEASE, SYSTEM_NAMESPACE, self.cluster)
                except (ApiError, OSError) as exc:
                    log.info("cluster %s: Lease not released: %s", self.cluster, exc)
                    return
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.holder:
                return
            spec["holderIdentity"] = ""
            try:
                await self.client.update({**lease, "spec": spec})
                return
            except ConflictError as exc:
                if attempt:
                    log.info("cluster %s: Lease not released: %s", self.cluster, exc)
                    return
                lease = None
            except (ApiError, OSError) as exc:  # gone, or no server: nothing held
                log.info("cluster %s: Lease not released: %s", self.cluster, exc)
                return

    # -- renewals ----------------------------------------------------------------------

    async def renew_once(self) -> None:
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASE, SYSTEM_NAMESPACE, self.cluster)
            except NotFoundError:
                self._lease = await self.client.create(
                    lease_manifest(self.cluster, self.holder, self.duration))
                self._done()
                return
            holder = str((self._lease.get("spec") or {}).get("holderIdentity") or "")
            if holder and holder != self.holder:
                self._lease = None
                raise LeaseLost(self.cluster, holder)
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
        """Renew forever at a fixed rate; errors are logged and retried next tick, except
        a Lease taken over by another agent, which ends the agent."""
        next_tick = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                await self.renew_once()
                self.observe(time.monotonic() - started, True)
            except LeaseLost:
                raise
            except Exception as exc:  # API errors and transport errors alike: retry
                self.observe(time.monotonic() - started, False)
                log.warning("heartbeat for %s failed: %s", self.cluster, exc)
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # we fell behind (server down): do not burst to catch up
                next_tick = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)


class _Live(Exception):
    def __init__(self, holder: str, version: str, duration: float) -> None:
        self.holder = holder
        self.version = version
        self.duration = duration
