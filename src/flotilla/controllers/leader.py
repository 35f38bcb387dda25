"""The controller leader: one replica of several runs the controllers, elected with a
Lease, as Kubernetes' controller managers are (client-go ``leaderelection``).

The Lease is ``flotilla-system/flotilla-controllers`` (``coordination`` Lease shape:
``holderIdentity`` = the server's ``--name``, ``leaseDurationSeconds``, ``acquireTime``,
``renewTime``, ``leaseTransitions``). The rules, client-go's:

* a candidate takes the Lease when it is absent, released (empty holder), or has not
  changed for ``lease_duration`` *on the candidate's own monotonic clock*, counted from
  when it last saw the record change: no trust in another machine's clock;
* every write of the Lease is a compare-and-set on its resourceVersion, so two
  candidates racing for it cannot both win;
* the leader renews every ``renew_interval``; when it has not renewed for
  ``renew_deadline`` (< ``lease_duration``) it steps down by itself, so its
  controllers stop before any candidate may take over;
* on a clean stop it releases the Lease (empty holder) so a successor starts at once.

Timers alone cannot stop a paused process (SIGSTOP, a long GC, a VM freeze) that wakes
up believing it still leads, so every controller write is also *fenced*
(`flotilla.store.fence`): it carries the revision of the Lease this leader last wrote,
and the store applies it only while the Lease is still at that revision. A refused
write makes the leader step down. Renewals move the revision, so they take the
exclusive side of a lock whose shared side every fenced write holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from flotilla.client.base import ApiError, NotFoundError, Object, ResourceClient
from flotilla.controllers.manager import ControllerManager, LostLeadership
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import CONTROLLER_LEADER_LEASE, SYSTEM_NAMESPACE, now_rfc3339
from flotilla.store.base import Fence, Fenced
from flotilla.store.fence import FENCE_SOURCE

log = logging.getLogger(__name__)

LEASE = by_kind("Lease")
#: The controller leader's Lease, in `SYSTEM_NAMESPACE`.
LEADER_LEASE = CONTROLLER_LEADER_LEASE


@dataclass(frozen=True, slots=True)
class ElectionTimers:
    """Seconds. A kill -9'd leader is replaced within about ``lease_duration +
    retry_period`` (4.5 s by default); the defaults need ``renew_deadline <
    lease_duration`` and a renewal round trip well under ``renew_deadline``."""

    lease_duration: float = 4.0
    renew_deadline: float = 3.0
    renew_interval: float = 1.0
    retry_period: float = 0.5

    def problems(self) -> list[str]:
        out = []
        if min(self.lease_duration, self.renew_deadline, self.renew_interval,
               self.retry_period) <= 0:
            out.append("leader election timers must be > 0")
        if self.renew_deadline >= self.lease_duration:
            out.append(f"renew deadline ({self.renew_deadline}s) must be shorter than the "
                       f"lease duration ({self.lease_duration}s)")
        if self.renew_interval >= self.renew_deadline:
            out.append(f"renew interval ({self.renew_interval}s) must be shorter than the "
                       f"renew deadline ({self.renew_deadline}s)")
        return out


class LeaderMetrics:
    """Whether this replica leads the controllers, on the API server's /metrics.

    Every replica exports both, so a scrape of all of them shows exactly one 1 (two
    would be a split brain, none a plane without controllers) and which one it is; the
    counter shows flapping, which the Lease's ``leaseTransitions`` cannot (it counts only
    changes of holder, and only as the newest holder wrote it). Kept by `LeaseElector`
    through its ``on_change``, so the gauge moves in the same step as the term."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.leader = Gauge(
            "flotilla_leader",
            "1 while this server leads the controllers (holds the leader Lease), else 0",
            registry=r)
        self.transitions = Counter(
            "flotilla_leader_transitions_total",
            "Times this server started or ended a term as controller leader", registry=r)

    def changed(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        self.transitions.inc()


class _SharedExclusive:
    """An asyncio lock with a shared side (fenced writes) and an exclusive side
    (renewals); a waiting renewal blocks new shared holders so it cannot starve."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(
                lambda: not self._exclusive and not self._waiting_exclusive)
            self._shared += 1
        try:
            yield
        finally:
            async with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting_exclusive += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class LeaseElector:
    """Campaigns for `LEADER_LEASE` (`run`), and is the `LeaderElector` of a
    `ControllerManager` and the `FenceSource` of its writes."""

    def __init__(self, client: ResourceClient, identity: str,
                 timers: ElectionTimers | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity (--name)")
        self.client = client
        self.identity = identity
        self.timers = timers or ElectionTimers()
        self._clock = clock
        self._on_change = on_change
        self._lock = _SharedExclusive()
        self._lease: Object | None = None  # the Lease as this leader last wrote it
        self._renewed_at = 0.0
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()
        self._observed: tuple[str, float] | None = None  # (resourceVersion, seen at)
        self.terms = 0
        self.refusals = 0

    # -- LeaderElector -----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def wait_until_leader(self) -> None:
        await self._leading.wait()

    async def lost(self) -> None:
        """Return when the current term ends (or at once when not leading)."""
        if not self._leading.is_set():
            return
        await self._lost.wait()

    # -- FenceSource -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Fence]:
        async with self._lock.shared():
            lease = self._lease
            if lease is None or not self._leading.is_set():
                raise Fenced(f"{self.identity} does not lead the controllers")
            if self._clock() - self._renewed_at >= self.timers.renew_deadline:
                self._step_down("renew deadline passed before a controller write")
                raise Fenced(f"{self.identity}: leader Lease not renewed within "
                             f"{self.timers.renew_deadline}s")
            yield Fence(LEASE.resource, SYSTEM_NAMESPACE, LEADER_LEASE,
                        int(lease["metadata"]["resourceVersion"]))

    def refused(self, exc: Fenced) -> None:
        self.refusals += 1
        log.warning("leader %s: a controller write was fenced off (%s)", self.identity, exc)
        self._step_down("a controller write was fenced off")

    # -- the campaign ------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign, lead until the term ends, campaign again; forever. On cancel, the
        Lease is released if held."""
        try:
            while True:
                await self._acquire()
                await self._renew_until_lost()
        finally:
            await self._release()

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try_acquire_or_renew():
                    self._begin_term()
                    return
            except (ApiError, OSError) as exc:
                log.info("leader election (%s): %s; retrying", self.identity, exc)
            except Exception:  # keep campaigning: a crash here would leave no leader
                log.exception("leader election (%s) failed; retrying", self.identity)
            await asyncio.sleep(self.timers.retry_period)

    async def _renew_until_lost(self) -> None:
        while self._leading.is_set():
            await asyncio.sleep(self.timers.renew_interval)
            deadline = self._renewed_at + self.timers.renew_deadline
            while self._leading.is_set():
                try:  # the wait for the lock counts too: a stuck write cannot hold it
                    renewed = await asyncio.wait_for(self._renew_exclusive(),
                                                     max(0.01, deadline - self._clock()))
                except (ApiError, OSError, TimeoutError) as exc:
                    log.warning("leader %s: renewing the Lease: %s", self.identity,
                                exc or "timed out")
                    renewed = False
                if renewed:
                    break
                if self._clock() >= deadline:
                    self._step_down(f"Lease not renewed within {self.timers.renew_deadline}s")
                    break
                await asyncio.sleep(self.timers.retry_period)

    async def _renew_exclusive(self) -> bool:
        async with self._lock.exclusive():
            return await self._try_acquire_or_renew()

    async def _try_acquire_or_renew(self) -> bool:
        """One client-go ``tryAcquireOrRenew``: True when this process holds the Lease
        after it (the write succeeded)."""
        now = now_rfc3339()
        spec: Object = {"holderIdentity": self.identity,
                        "leaseDurationSeconds": max(1, round(self.timers.lease_duration)),
                        "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        try:
            current = await self.client.get(LEASE, SYSTEM_NAMESPACE, LEADER_LEASE)
        except NotFoundError:
            self._store(await self.client.create({
                "apiVersion": LEASE.api_version, "kind": "Lease",
                "metadata": {"name": LEADER_LEASE, "namespace": SYSTEM_NAMESPACE},
                "spec": spec}))
            return True
        old = dict(current.get("spec") or {})
        version = str(current["metadata"].get("resourceVersion") or "")
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, self._clock())
        holder = str(old.get("holderIdentity") or "")
        duration = float(old.get("leaseDurationSeconds") or self.timers.lease_duration)
        if holder and holder != self.identity:
            if self._leading.is_set():  # taken over behind this leader's back
                self._step_down(f"the Lease is held by {holder}")
                return False
            if self._clock() - self._observed[1] < duration:
                return False  # held and renewed recently, as far as this clock knows
            log.warning("leader election: Lease of %s unchanged for %.1fs: taking over",
                        holder, duration)
        if holder == self.identity and self._lease is not None:
            spec["acquireTime"] = old.get("acquireTime") or now
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0)
        else:
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + (
                1 if holder != self.identity else 0)
        self._store(await self.client.update({**current, "spec": spec}))
        return True

    def _store(self, lease: Object) -> None:
        self._lease = lease
        self._renewed_at = self._clock()
        self._observed = (str(lease["metadata"].get("resourceVersion") or ""),
                          self._renewed_at)

    def _begin_term(self) -> None:
        self.terms += 1
        self._lost = asyncio.Event()
        self._leading.set()
        log.info("leader %s: leading the controllers (term %d)", self.identity, self.terms)
        if self._on_change is not None:
            self._on_change(True)

    def _step_down(self, why: str) -> None:
        if not self._leading.is_set():
            return
        log.warning("leader %s: stepping down: %s", self.identity, why)
        self._leading.clear()
        self._lease = None
        self._lost.set()
        if self._on_change is not None:
            self._on_change(False)

    async def _release(self) -> None:
        lease = self._lease
        self._step_down("stopping")
        if lease is None:
            return
        spec = {**(lease.get("spec") or {}), "holderIdentity": "",
                "leaseDurationSeconds": 1}
        try:
            await self.client.update({**lease, "spec": spec})
            log.info("leader %s: Lease released", self.identity)
        except (ApiError, OSError) as exc:
            log.info("leader %s: Lease not released: %s", self.identity, exc)


async def run_while_leading(elector: LeaseElector, client: ResourceClient,
                            build: Callable[[ControllerManager], None], *,
                            resync_period: float | None = None) -> None:
    """Campaign with ``elector`` and run a fresh `ControllerManager` (``build`` registers
    its controllers) for every term it wins, until cancelled.

    The campaign task starts before `FENCE_SOURCE` is set, so the elector's own Lease
    writes are not fenced; the managers' tasks inherit it, so every controller write is.
    A lost term stops all controllers (`ControllerManager.run`) and campaigns again.
    """
    campaign = asyncio.create_task(elector.run(), name="leader-election")
    token = FENCE_SOURCE.set(elector)
    managing: asyncio.Task[None] | None = None
    try:
        while True:
            manager = ControllerManager(client, resync_period=resync_period, leader=elector)
            build(manager)
            managing = asyncio.create_task(manager.run(), name="controller-manager")
            done, _ = await asyncio.wait({managing, campaign},
                                         return_when=asyncio.FIRST_COMPLETED)
            if campaign in done:  # the campaign never ends by itself: a bug, surface it
                campaign.result()
                raise RuntimeError("leader election ended")
            try:
                managing.result()
            except LostLeadership:
                log.warning("controllers stopped: %s lost the leadership; campaigning "
                            "again", elector.identity)
    finally:
        FENCE_SOURCE.reset(token)
        # controllers stop first, then the Lease is released: a successor never starts
        # while this replica's controllers still run
        if managing is not None:
            managing.cancel()
            await asyncio.gather(managing, return_exceptions=True)
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
