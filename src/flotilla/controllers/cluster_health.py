"""Cluster health: the Ready condition and the unreachable/not-ready taints, from heartbeats.

Each agent renews a Lease (``flotilla-system/<cluster>``). This controller judges a
cluster by when it *saw* the lease change, on its own monotonic clock, not by the
``renewTime`` the agent wrote: a member whose clock is off must not look dead (or
alive). This is how Kubernetes' node lifecycle controller treats node leases.

    lease renewed within the grace period, nodes ready  -> Ready=True,    no taints
    lease renewed, but no ready node                    -> Ready=False,   not-ready taints
    no renewal for longer than the grace period         -> Ready=Unknown, unreachable taints

The taints come in pairs (NoSchedule: place nothing new; NoExecute: the failover
controller moves replicas away after the policy's toleration) so placement and failover
read one signal. Every transition records an Event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.conditions import Condition, conditions_of, find, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ClusterView
from flotilla.resources.wellknown import (
    SYSTEM_NAMESPACE,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    now_rfc3339,
    parse_rfc3339,
    rfc3339_at,
)

log = logging.getLogger(__name__)
CLUSTER = by_kind("Cluster")
LEASE = by_kind("Lease")
HEALTH_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
DEFAULT_GRACE = 3.0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    taint: str | None

    @property
    def ready(self) -> bool:
        return self.status == "True"


def judge(lease_age: float | None, grace: float, nodes_ready: int | None) -> Verdict:
    """The pure decision, given how long ago the lease was last seen renewed."""
    if lease_age is None:
        return Verdict("Unknown", "ClusterStatusNeverUpdated",
                       "the cluster's agent has never sent a heartbeat", TAINT_UNREACHABLE)
    if lease_age > grace:
        return Verdict("Unknown", "ClusterStatusUnknown",
                       f"no heartbeat for {lease_age:.1f}s (grace period {grace:g}s)",
                       TAINT_UNREACHABLE)
    if nodes_ready == 0:
        return Verdict("False", "NoReadyNodes", "the cluster reports no ready node",
                       TAINT_NOT_READY)
    return Verdict("True", "ClusterReady", "heartbeats arrive and nodes are ready", None)


class LeaseWatch:
    """When each cluster's Lease was last seen to change, on the controller's clock."""

    def __init__(self) -> None:
        #: cluster -> (renewTime last seen, time we saw it change)
        self._seen: dict[str, tuple[str, float]] = {}

    def age(self, cluster: str, renew: str | None, now: float) -> float | None:
        """Seconds since ``renew`` (the Lease's renewTime; None: no Lease; empty: claimed,
        never renewed) last changed."""
        if not renew:  # no Lease, or claimed by an agent that has not heartbeated yet
            self._seen.pop(cluster, None)
            return None
        seen = self._seen.get(cluster)
        if seen is None or seen[0] != renew:
            # A change, or first sight (e.g. after a control-plane restart: a full grace
            # period from now rather than trusting the member's clock).
            self._seen[cluster] = (renew, now)
            return 0.0
        return now - seen[1]

    def forget(self, cluster: str) -> None:
        self._seen.pop(cluster, None)


class ClusterHealth:
    """The reconciler; `build` wires it into a ControllerManager.

    Two clocks, injected so tests drive time: ``monotonic`` for how long ago a Lease
    changed (immune to wall-clock steps), ``clock`` (wall time) for comparing with times
    written on objects (a Cluster's creationTimestamp) and for the taints' timeAdded.
    """

    def __init__(self, client: ResourceClient, clusters: Informer, leases: Informer,
                 *, grace: float = DEFAULT_GRACE, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clusters = clusters
        self.leases = leases
        self.grace = grace
        self.clock = clock
        self.monotonic = monotonic
        self.events = EventRecorder(client, "cluster-health", clock=clock)
        self.seen = LeaseWatch()

    def lease_age(self, cluster: str) -> float | None:
        lease = self.leases.cache.get(ObjectKey(SYSTEM_NAMESPACE, cluster))
        renew = None if lease is None else \
            str((lease.get("spec") or {}).get("renewTime") or "")
        return self.seen.age(cluster, renew, self.monotonic())

    async def reconcile(self, key: ObjectKey) -> Result | None:
        cluster = self.clusters.cache.get(key)
        if cluster is None:
            self.seen.forget(key.name)
            return None
        age = self.lease_age(key.name)
        registered = _age_of(cluster, self.clock())
        if age is None and not _has_ready_condition(cluster) and registered < self.grace:
            # Just registered; its first heartbeat is on the way. Judge it after a full
            # grace period, not before (no "never heartbeated" noise at every start).
            return Result(requeue_after=max(0.05, self.grace - registered))
        summary = (cluster.get("status") or {}).get("nodeSummary") or {}
        nodes_ready = summary.get("ready") if "ready" in summary else None
        verdict = judge(age, self.grace, nodes_ready)
        await self._write(cluster, verdict)
        if verdict.ready and age is not None:
            # Wake up just after the grace period runs out, in case no event comes.
            return Result(requeue_after=max(0.05, self.grace - age + 0.05))
        return Result(requeue_after=self.grace)

    async def _write(self, cluster: Object, verdict: Verdict) -> None:
        """Taints first, then the condition: by the time anyone reads Ready=Unknown, the
        taints that keep new replicas (and traffic) away are already in place."""
        view = ClusterView.of(cluster)
        want = {verdict.taint} if verdict.taint else set()
        have = {t.key for t in view.taints if t.key in HEALTH_TAINTS}
        retaint = have != want
        changed = (view.ready_status, view.ready_reason) != (verdict.status, verdict.reason) \
            or not _has_ready_condition(cluster)
        if not retaint and not changed:  # the common case: every renewal of a Ready one
            return
        added = rfc3339_at(self.clock())
        ready = Condition("Ready", verdict.status, verdict.reason, verdict.message)

        def desire(obj: Object) -> None:
            if retaint:
                set_health_taints(obj, verdict.taint, added)
            if changed:
                set_conditions(obj, [ready])

        # One spec write, then one status write (`converge` keeps that order).
        await converge(self.client, CLUSTER, "", view.name, desire, read=cluster)
        if changed:
            await self.events.record(cluster, "Normal" if verdict.ready else "Warning",
                                     verdict.reason, verdict.message)
            log.info("cluster %s: Ready=%s (%s)", view.name, verdict.status, verdict.reason)


def _has_ready_condition(cluster: Object) -> bool:
    return find(conditions_of(cluster), "Ready") is not None


def _age_of(obj: Object, now: float) -> float:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return float("inf")
    return now - parse_rfc3339(str(created))


def set_health_taints(cluster: Object, taint: str | None, added: str | None = None) -> bool:
    """Make the health taints on ``cluster`` exactly ``taint`` (both effects) or none;
    a new taint's ``timeAdded`` is ``added`` (default: now), which failover counts from."""
    spec = cluster.setdefault("spec", {})
    taints = list(spec.get("taints") or [])
    kept = [t for t in taints if t.get("key") not in HEALTH_TAINTS or t.get("key") == taint]
    if taint:
        now = added or now_rfc3339()
        for effect in ("NoSchedule", "NoExecute"):
            if not any(t.get("key") == taint and t.get("effect") == effect for t in kept):
                kept.append({"key": taint, "effect": effect, "timeAdded": now})
    if kept == taints:
        return False
    spec["taints"] = kept
    return True


def build(manager: ControllerManager, *, grace: float = DEFAULT_GRACE,
          clock: Callable[[], float] = time.time,
          monotonic: Callable[[], float] = time.monotonic) -> Controller:
    """Register the cluster-health controller with ``manager``."""
    clusters = manager.informer(CLUSTER)
    leases = manager.informer(LEASE)
    reconciler = ClusterHealth(manager.client, clusters, leases, grace=grace, clock=clock,
                               monotonic=monotonic)
    controller = Controller("cluster-health", reconciler, workers=2)
    controller.watches(clusters).watches(
        leases,
        lambda lease: (ObjectKey("", lease["metadata"]["name"]),)
        if lease["metadata"].get("namespace") == SYSTEM_NAMESPACE else (),
    )
    manager.add(controller)
    return controller
