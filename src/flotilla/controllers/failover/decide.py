"""The failover decisions, as pure functions of a binding, the clusters and the clock.

Three questions, asked on every reconcile (level-triggered, so a restarted controller
asks them again from what the store holds):

* which clusters must the binding's replicas leave now (a NoExecute taint outlasted its
  toleration, or the workload stayed unhealthy there past the application toleration);
* which graceful-eviction tasks are finished (replacements ready, cluster recovered,
  timeout) and may release the old cluster's Work;
* when to look again, if nothing else wakes us (a toleration or a timeout running out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flotilla.controllers.failover.timers import TIMED_TAINTS, PurgeMode, Timers
from flotilla.resources.views import ClusterView, EvictionTask, ResourceBindingView, Taint
from flotilla.resources.wellknown import TAINT_TRAFFIC_UNREACHABLE, parse_rfc3339

Obj = Mapping[str, Any]
PRODUCER_CLUSTER = "taint-manager"
PRODUCER_APPLICATION = "application-failover"


@dataclass(frozen=True, slots=True)
class Eviction:
    cluster: str
    replicas: int
    reason: str  # TaintUntolerated | ApplicationFailure
    message: str
    producer: str
    purge: PurgeMode


@dataclass(frozen=True, slots=True)
class Finished:
    cluster: str
    why: str
    #: Replicas to put back on the cluster in the same write (it recovered before its
    #: replicas found a home elsewhere): no churn for a cluster that comes back quickly.
    restore: int = 0
    #: Release the old replicas but keep the task (the cluster stays out of scheduling
    #: until the task times out): a workload that failed there is not sent straight back.
    release_only: bool = False


def targets(binding: Obj) -> dict[str, int]:
    return dict(ResourceBindingView.of(binding).targets)


def tasks(binding: Obj) -> tuple[EvictionTask, ...]:
    return ResourceBindingView.of(binding).eviction_tasks


def holding_tasks(binding: Obj) -> tuple[EvictionTask, ...]:
    """Tasks whose old replicas still run (not yet released)."""
    return ResourceBindingView.of(binding).holding_tasks


def cluster_ready(cluster: Obj | None) -> bool:
    return cluster is not None and ClusterView.of(cluster).ready


def no_execute_taints(cluster: Obj | None) -> tuple[Taint, ...]:
    return ClusterView.of(cluster).no_execute_taints if cluster is not None else ()


def healthy(cluster: Obj | None) -> bool:
    """Ready and carrying no NoExecute taint: replicas may live there again."""
    return cluster is not None and ClusterView.of(cluster).serves_traffic


def _other_toleration(placement: Obj, taint: Taint) -> float | None:
    """Seconds a non-health NoExecute taint is tolerated (0: not at all)."""
    best: float | None = 0.0
    for tol in placement.get("clusterTolerations") or []:
        if tol.get("effect") not in (None, "", "NoExecute"):
            continue
        if tol.get("key") and tol.get("key") != taint.key:
            continue
        if (tol.get("operator") or "Equal") == "Equal" and \
                str(tol.get("value") or "") != taint.value:
            continue
        seconds = tol.get("tolerationSeconds")
        if seconds is None:
            return None
        best = max(best or 0.0, float(seconds))
    return best


def taint_evictions(binding: Obj, clusters: Mapping[str, Obj], timers: Timers, now: float
                    ) -> tuple[list[Eviction], float | None]:
    """Clusters whose NoExecute taints outlasted the policy's tolerations. The
    traffic-unreachable taint is an application failure seen by the gateways: its
    eviction is the application failover's (producer, purge mode), under the reason
    ``TrafficUnreachable``."""
    view = ResourceBindingView.of(binding)
    out: list[Eviction] = []
    recheck: float | None = None
    for name, replicas in sorted(view.targets.items()):
        if replicas <= 0:
            continue
        for taint in no_execute_taints(clusters.get(name)):
            key = taint.key
            tolerated = timers.toleration_for(key) if key in TIMED_TAINTS \
                else _other_toleration(view.placement, taint)
            if tolerated is None:
                continue
            added = taint.time_added
            elapsed = now - parse_rfc3339(str(added)) if added else tolerated
            if elapsed >= tolerated:
                if key == TAINT_TRAFFIC_UNREACHABLE:
                    out.append(Eviction(
                        name, replicas, "TrafficUnreachable",
                        f"no gateway has reached cluster {name} for {elapsed:.1f}s "
                        f"(tolerated {tolerated:g}s)", PRODUCER_APPLICATION,
                        timers.application_purge))
                    break
                out.append(Eviction(
                    name, replicas, "TaintUntolerated",
                    f"cluster {name} has carried taint {key}:NoExecute for {elapsed:.1f}s "
                    f"(tolerated {tolerated:g}s)", PRODUCER_CLUSTER, timers.cluster_purge))
                break
            left = tolerated - elapsed
            recheck = left if recheck is None else min(recheck, left)
    return out, recheck


def unhealthy_clusters(binding: Obj) -> set[str]:
    """Clusters whose agent reports the workload Unhealthy (no ready replica)."""
    view = ResourceBindingView.of(binding)
    wanted = view.targets
    return {i.cluster for i in view.aggregated
            if i.health == "Unhealthy" and wanted.get(i.cluster, 0) > 0}


def application_evictions(binding: Obj, timers: Timers, unhealthy_since: Mapping[str, float],
                          now: float) -> tuple[list[Eviction], float | None]:
    """Clusters where the workload has been unhealthy past the application toleration."""
    if timers.application_toleration is None:
        return [], None
    out: list[Eviction] = []
    recheck: float | None = None
    wanted = targets(binding)
    for name, since in sorted(unhealthy_since.items()):
        if wanted.get(name, 0) <= 0:
            continue
        elapsed = now - since
        if elapsed >= timers.application_toleration:
            out.append(Eviction(
                name, wanted[name], "ApplicationFailure",
                f"workload unhealthy on {name} for {elapsed:.1f}s "
                f"(tolerated {timers.application_toleration:g}s)",
                PRODUCER_APPLICATION, timers.application_purge))
        else:
            left = timers.application_toleration - elapsed
            recheck = left if recheck is None else min(recheck, left)
    return out, recheck


def ready_elsewhere(binding: Obj, clusters: Mapping[str, Obj]) -> int:
    """Ready replicas on the clusters the binding is scheduled to, each counted up to its
    share (a cluster still scaling down must not stand in for one still starting)."""
    view = ResourceBindingView.of(binding)
    wanted = view.targets
    total = 0
    for item in view.aggregated:
        if item.cluster in wanted and cluster_ready(clusters.get(item.cluster)):
            total += min(item.ready_replicas, wanted[item.cluster])
    return total


def finished_tasks(binding: Obj, clusters: Mapping[str, Obj], timers: Timers, now: float
                   ) -> tuple[list[Finished], float | None]:
    """Graceful-eviction tasks whose old replicas may now go."""
    view = ResourceBindingView.of(binding)
    desired = view.replicas
    wanted = view.targets
    placed = sum(wanted.values())
    replaced = placed >= desired and ready_elsewhere(binding, clusters) >= desired
    out: list[Finished] = []
    recheck: float | None = None
    for task in view.eviction_tasks:
        name = task.from_cluster
        if name in wanted:
            out.append(Finished(name, f"cluster {name} is scheduled again"))
            continue
        created = task.creation_timestamp
        timeout = task.grace_period_seconds or timers.eviction_timeout
        age = now - parse_rfc3339(created) if created else timeout
        if task.released or task.suppress_deletion:
            # Old replicas gone (or, purgeMode Never, left to a person): the task only
            # keeps the cluster out of scheduling until it times out.
            if age >= timeout:
                out.append(Finished(name, f"avoided for {timeout:g}s, it may take "
                                          "replicas again"))
            else:
                recheck = timeout - age if recheck is None else min(recheck, timeout - age)
            continue
        if replaced:
            why = f"{desired} replicas ready on {', '.join(sorted(wanted)) or 'no cluster'}"
            out.append(Finished(name, why, release_only=age < timeout and
                                task.producer == PRODUCER_APPLICATION))
            if age < timeout and task.producer == PRODUCER_APPLICATION:
                recheck = timeout - age if recheck is None else min(recheck, timeout - age)
            continue
        if task.producer == PRODUCER_CLUSTER and healthy(clusters.get(name)) and \
                placed < desired:
            restore = min(task.replicas, desired - placed)
            placed += restore
            out.append(Finished(name, f"cluster {name} recovered before its replicas "
                                      "found room elsewhere", restore))
            continue
        if age >= timeout:
            out.append(Finished(name, f"eviction timeout ({timeout:g}s) passed"))
        else:
            recheck = timeout - age if recheck is None else min(recheck, timeout - age)
    return out, recheck
