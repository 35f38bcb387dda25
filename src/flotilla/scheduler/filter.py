"""Cluster filters: which clusters may hold a workload at all, and why not.

Split in two on purpose. The *placement* filters (affinity, taints, Ready, cordon) do
not depend on the workload, so the scheduler runs them once per (placement, cluster
snapshot) and reuses the answer for every template the policy selects. The *capacity*
filter depends on the workload's requests and runs per decision on cached estimates.

Following Karmada, a cluster that already holds the workload's replicas is not removed
by a taint (nor by Ready/cordon, which Karmada expresses as taints): evicting running
replicas is the failover controller's decision, taken after its toleration period, not
a side effect of rescheduling. Such a cluster keeps its replicas but gets no new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .types import UNLIMITED, ClusterAffinity, ClusterInfo, Toleration, WorkloadInfo

EXCLUDED_BY_AFFINITY = "excluded by affinity"
NOT_READY = "not ready"
CORDONED = "cordoned (unschedulable)"
NO_CAPACITY = "has no capacity"


def untolerated_taint(cluster: ClusterInfo, tolerations: tuple[Toleration, ...]) -> str | None:
    """The first NoSchedule/NoExecute taint no toleration covers, as a reason."""
    for taint in cluster.taints:
        if taint.effect == "PreferNoSchedule":
            continue
        if not any(t.tolerates(taint) for t in tolerations):
            return f"tainted {taint} not tolerated"
    return None


@dataclass(frozen=True, slots=True)
class PlacementFilter:
    """The workload-independent verdict on every cluster for one affinity group.

    ``passed`` keeps the snapshot's (name) order. ``soft`` are clusters refused only for
    new placements (taint, Ready, cordon): a cluster already holding replicas stays.
    """

    passed: tuple[ClusterInfo, ...]
    soft: Mapping[str, tuple[ClusterInfo, str]]
    hard: Mapping[str, str]


def filter_placement(clusters: Iterable[ClusterInfo], affinity: ClusterAffinity,
                     tolerations: tuple[Toleration, ...]) -> PlacementFilter:
    passed: list[ClusterInfo] = []
    soft: dict[str, tuple[ClusterInfo, str]] = {}
    hard: dict[str, str] = {}
    for c in clusters:
        if not affinity.matches(c):
            hard[c.name] = EXCLUDED_BY_AFFINITY
            continue
        reason = (NOT_READY if not c.ready else CORDONED if c.unschedulable
                  else untolerated_taint(c, tolerations))
        if reason is None:
            passed.append(c)
        else:
            soft[c.name] = (c, reason)
    return PlacementFilter(tuple(passed), soft, hard)


def estimate(cluster: ClusterInfo, workload: WorkloadInfo) -> int:
    """How many more replicas of ``workload`` fit on ``cluster``.

    An agent's per-workload estimate wins; otherwise the tightest resource decides
    (free // request). A resource the cluster does not report is not a limit.
    """
    reported = cluster.available_replicas.get(workload.key)
    if reported is not None:
        return max(0, reported)
    fit = UNLIMITED
    free = cluster.free
    for resource, amount in workload.requests.items():
        if amount <= 0:
            continue
        have = free.get(resource)
        if have is not None and have // amount < fit:
            fit = have // amount
    return fit


def capacity_reason(available: int, needed: int) -> str | None:
    """Why a cluster cannot take ``needed`` new replicas, or ``None`` if it can."""
    if available <= 0:
        return NO_CAPACITY
    if available < needed:
        return f"has room for {available} of {needed} replicas"
    return None


def summarize(total: int, available: int, reasons: Mapping[str, str]) -> str:
    """``0/5 clusters available: 2 excluded by affinity, 1 has no capacity``."""
    counts: dict[str, int] = {}
    for reason in reasons.values():
        key = "has too little capacity" if reason.startswith("has room for") else reason
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{n} {'have' + r[3:] if n > 1 and r.startswith('has ') else r}"
             for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    head = f"{available}/{total} clusters available"
    return f"{head}: {', '.join(parts)}" if parts else head
