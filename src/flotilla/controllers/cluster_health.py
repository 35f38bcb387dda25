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

Heartbeats say nothing of the data plane, so the same controller also sets
``TrafficReachable`` from the gateways' reports (GatewayReports, one per gateway, each
that gateway's own view: `flotilla.traffic.reachability`), judged by `judge_traffic`:

    a fresh report says its checks reach the cluster             -> True
    fresh reports list it, and every one says unreachable        -> False, traffic taints
    no fresh report lists it (no gateway checks it, or all stale) -> Unknown, no taint

A report is fresh while it keeps being renewed (seen to change within
`DEFAULT_REPORT_STALE` on this controller's clock, as Leases). Unknown takes the taints
off: the absence of a view (every gateway down) must never evict a cluster. The
``traffic-unreachable`` taints are tolerated for the application-failover toleration
(`flotilla.controllers.failover.timers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flotilla.client.base import Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources.conditions import Condition, conditions_of, find, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.views import ClusterReach, ClusterView, GatewayReportView
from flotilla.resources.wellknown import (
    CONDITION_TRAFFIC_REACHABLE,
    SYSTEM_NAMESPACE,
    TAINT_NOT_READY,
    TAINT_TRAFFIC_UNREACHABLE,
    TAINT_UNREACHABLE,
    now_rfc3339,
    parse_rfc3339,
    rfc3339_at,
)

log = logging.getLogger(__name__)
CLUSTER = by_kind("Cluster")
LEASE = by_kind("Lease")
REPORT = by_kind("GatewayReport")
HEALTH_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
TRAFFIC_TAINTS = (TAINT_TRAFFIC_UNREACHABLE,)
DEFAULT_GRACE = 3.0
#: A GatewayReport not seen renewed for this long is stale: three of the gateways'
#: renewal intervals (`flotilla.traffic.reachability.REPORT_INTERVAL`, 2 s).
DEFAULT_REPORT_STALE = 6.0


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


@dataclass(frozen=True, slots=True)
class TrafficVerdict:
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str

    @property
    def taint(self) -> str | None:
        return TAINT_TRAFFIC_UNREACHABLE if self.status == "False" else None


def judge_traffic(views: Mapping[str, ClusterReach | None]) -> TrafficVerdict:
    """The pure decision for one cluster, given each *fresh* report's entry for it
    (gateway -> its entry, None when that gateway does not check the cluster).

    One gateway that reaches the cluster is enough for True (the others may be the ones
    cut off); False needs every gateway that checks it to say unreachable."""
    listed = {gw: e for gw, e in sorted(views.items()) if e is not None}
    reaching = [gw for gw, e in listed.items() if e.reachable]
    if reaching:
        return TrafficVerdict("True", "TrafficReachable",
                              f"reached by the health checks of gateway "
                              f"{', '.join(reaching)}")
    if listed:
        detail = "; ".join(f"{gw}: {e.message or e.reason or 'unreachable'}"
                           + (f" since {e.since}" if e.since else "")
                           for gw, e in listed.items())
        return TrafficVerdict("False", "TrafficUnreachable",
                              f"no gateway's health checks reach the cluster ({detail})")
    return TrafficVerdict("Unknown", "NoFreshGatewayReport",
                          "no gateway with a fresh report checks endpoints of the cluster")


class LeaseWatch:
    """When each cluster's Lease (or each gateway's report) was last seen to change, on
    the controller's clock."""

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
                 reports: Informer | None = None, *, grace: float = DEFAULT_GRACE,
                 report_stale: float = DEFAULT_REPORT_STALE,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clusters = clusters
        self.leases = leases
        self.reports = reports
        self.grace = grace
        self.report_stale = report_stale
        self.clock = clock
        self.monotonic = monotonic
        self.events = EventRecorder(client, "cluster-health", clock=clock)
        self.seen = LeaseWatch()
        self.reports_seen = LeaseWatch()

    def fresh_reports(self) -> tuple[list[GatewayReportView], float | None]:
        """The reports renewed within `report_stale`, and the seconds until the first of
        them goes stale (None: none fresh)."""
        if self.reports is None:
            return [], None
        now = self.monotonic()
        fresh: list[GatewayReportView] = []
        expires: float | None = None
        for obj in self.reports.cache.list():
            view = GatewayReportView.of(obj)
            if view.meta.namespace != SYSTEM_NAMESPACE:
                continue
            age = self.reports_seen.age(view.meta.name, view.renew_time, now)
            if age is None or age > self.report_stale:
                continue
            fresh.append(view)
            left = self.report_stale - age
            expires = left if expires is None else min(expires, left)
        return fresh, expires

    def traffic_verdict(self, cluster: Object) -> tuple[TrafficVerdict | None, float | None]:
        """`judge_traffic` over the fresh reports, or None while no gateway has ever had a
        view of the cluster (no condition is written for nothing); and when to look
        again (a fresh report going stale)."""
        fresh, expires = self.fresh_reports()
        name = ClusterView.of(cluster).name
        verdict = judge_traffic({r.meta.name: r.clusters.get(name) for r in fresh})
        if verdict.status == "Unknown" and \
                find(conditions_of(cluster), CONDITION_TRAFFIC_REACHABLE) is None:
            return None, expires
        return verdict, expires

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
        traffic, expires = self.traffic_verdict(cluster)
        await self._write(cluster, verdict, traffic)
        if verdict.ready and age is not None:
            # Wake up just after the grace period runs out, in case no event comes.
            after = max(0.05, self.grace - age + 0.05)
        else:
            after = self.grace
        if expires is not None:
            after = min(after, max(0.05, expires + 0.05))
        return Result(requeue_after=after)

    async def _write(self, cluster: Object, verdict: Verdict,
                     traffic: TrafficVerdict | None = None) -> None:
        """Taints first, then the conditions: by the time anyone reads Ready=Unknown (or
        TrafficReachable=False), the taints that keep new replicas (and traffic) away
        are already in place. ``traffic`` None leaves TrafficReachable alone."""
        view = ClusterView.of(cluster)
        want = {verdict.taint} if verdict.taint else set()
        have = {t.key for t in view.taints if t.key in HEALTH_TAINTS}
        retaint = have != want
        have_traffic = {t.key for t in view.taints if t.key in TRAFFIC_TAINTS}
        want_traffic = {traffic.taint} if traffic is not None and traffic.taint else set()
        retaint_traffic = traffic is not None and have_traffic != want_traffic
        changed = (view.ready_status, view.ready_reason) != (verdict.status, verdict.reason) \
            or not _has_ready_condition(cluster)
        traffic_changed = traffic is not None and (
            (view.traffic_status, view.traffic_reason) != (traffic.status, traffic.reason)
            or find(conditions_of(cluster), CONDITION_TRAFFIC_REACHABLE) is None)
        if not (retaint or retaint_traffic or changed or traffic_changed):
            return  # the common case: every renewal of a Ready, reachable one
        added = rfc3339_at(self.clock())
        wanted = []
        if changed:
            wanted.append(Condition("Ready", verdict.status, verdict.reason, verdict.message))
        if traffic is not None and traffic_changed:
            wanted.append(Condition(CONDITION_TRAFFIC_REACHABLE, traffic.status,
                                    traffic.reason, traffic.message))

        def desire(obj: Object) -> None:
            if retaint:
                set_health_taints(obj, verdict.taint, added)
            if retaint_traffic and traffic is not None:
                set_taints(obj, TRAFFIC_TAINTS, traffic.taint, added)
            if wanted:
                set_conditions(obj, wanted)

        # One spec write, then one status write (`converge` keeps that order).
        await converge(self.client, CLUSTER, "", view.name, desire, read=cluster)
        if changed:
            await self.events.record(cluster, "Normal" if verdict.ready else "Warning",
                                     verdict.reason, verdict.message)
            log.info("cluster %s: Ready=%s (%s)", view.name, verdict.status, verdict.reason)
        if traffic is not None and traffic_changed:
            await self.events.record(cluster, "Warning" if traffic.status == "False"
                                     else "Normal", traffic.reason, traffic.message)
            log.info("cluster %s: TrafficReachable=%s (%s)", view.name, traffic.status,
                     traffic.reason)


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
    return set_taints(cluster, HEALTH_TAINTS, taint, added)


def set_taints(cluster: Object, family: tuple[str, ...], taint: str | None,
               added: str | None = None) -> bool:
    """Make the taints of ``family`` on ``cluster`` exactly ``taint`` (both effects) or
    none, leaving every other taint alone."""
    spec = cluster.setdefault("spec", {})
    taints = list(spec.get("taints") or [])
    kept = [t for t in taints if t.get("key") not in family or t.get("key") == taint]
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
          report_stale: float = DEFAULT_REPORT_STALE,
          clock: Callable[[], float] = time.time,
          monotonic: Callable[[], float] = time.monotonic) -> Controller:
    """Register the cluster-health controller with ``manager``."""
    clusters = manager.informer(CLUSTER)
    leases = manager.informer(LEASE)
    reports = manager.informer(REPORT)
    reconciler = ClusterHealth(manager.client, clusters, leases, reports, grace=grace,
                               report_stale=report_stale, clock=clock, monotonic=monotonic)
    controller = Controller("cluster-health", reconciler, workers=2)
    controller.watches(clusters).watches(
        leases,
        lambda lease: (ObjectKey("", lease["metadata"]["name"]),)
        if lease["metadata"].get("namespace") == SYSTEM_NAMESPACE else (),
    ).watches(
        # Any report can change any cluster's verdict (one it no longer lists, too).
        reports, lambda _report: tuple(clusters.cache.list_keys()),
    )
    manager.add(controller)
    return controller
