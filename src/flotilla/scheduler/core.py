"""The scheduling decision: filter, spread, divide — pure, deterministic, cached.

`schedule` is the whole decision for one template as a pure function. `Scheduler` is
the same decision over a fixed snapshot of clusters, with caches that make it cheap to
run for thousands of templates: a snapshot is immutable, so anything computed from
(placement, snapshot) or (placement, snapshot, requests) stays true until the caller
builds a new `Scheduler` for a changed cluster set. Caches are keyed by value (frozen
dataclasses), never by iteration order, so a cached and an uncached run agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from . import divide, spread
from .filter import (
    PlacementFilter,
    capacity_reason,
    estimate,
    filter_placement,
    summarize,
)
from .types import ClusterInfo, Placement, ScheduleResult, Target, WorkloadInfo

_NO_REASONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Selection:
    """The workload-independent part of one attempt, shareable between decisions."""

    chosen: tuple[ClusterInfo, ...]
    available: Mapping[str, int]
    reasons: Mapping[str, str]
    error: str | None


class Scheduler:
    """Placement decisions over one immutable snapshot of the member clusters."""

    def __init__(self, clusters: Sequence[ClusterInfo], *, cache: bool = True) -> None:
        names = [c.name for c in clusters]
        if len(set(names)) != len(names):
            raise ValueError("cluster names must be unique")
        self.clusters: tuple[ClusterInfo, ...] = tuple(sorted(clusters, key=lambda c: c.name))
        self._cache = cache
        # Workload keys some agent reported a per-workload estimate for: their estimates
        # cannot be shared by request shape.
        self._reported = frozenset(k for c in self.clusters for k in c.available_replicas)
        self._filters: dict[tuple[Placement, int], PlacementFilter] = {}
        self._estimates: dict[tuple[object, ...], dict[str, int]] = {}
        self._selections: dict[tuple[object, ...], _Selection] = {}

    # --- public ------------------------------------------------------------------------

    def schedule(self, workload: WorkloadInfo, placement: Placement) -> ScheduleResult:
        """Place ``workload``; the first ``clusterAffinities`` group that can hold it wins."""
        if workload.replicas < 0:
            raise ValueError("replicas must be >= 0")
        failures: list[tuple[str, ScheduleResult]] = []
        for index, affinity in enumerate(placement.affinities):
            result = self._attempt(workload, placement, index)
            if result.scheduled:
                if len(placement.affinities) > 1:
                    return ScheduleResult(result.targets, None, result.cluster_reasons,
                                          affinity.name)
                return result
            failures.append((affinity.name, result))
        if len(failures) == 1:
            return failures[0][1]
        reason = "no clusterAffinities group can hold the workload: " + "; ".join(
            f"{name}: {r.reason}" for name, r in failures)
        return ScheduleResult((), reason, failures[0][1].cluster_reasons)

    # --- one affinity group ------------------------------------------------------------

    def _placement_filter(self, placement: Placement, index: int) -> PlacementFilter:
        key = (placement, index)
        found = self._filters.get(key) if self._cache else None
        if found is None:
            found = filter_placement(self.clusters, placement.affinities[index],
                                     placement.tolerations)
            if self._cache:
                self._filters[key] = found
        return found

    def _estimates_for(self, workload: WorkloadInfo) -> dict[str, int]:
        if workload.key in self._reported or not self._cache:
            return {c.name: estimate(c, workload) for c in self.clusters}
        key = tuple(sorted(workload.requests.items()))
        found = self._estimates.get(key)
        if found is None:
            found = self._estimates[key] = {c.name: estimate(c, workload)
                                            for c in self.clusters}
        return found

    def _attempt(self, workload: WorkloadInfo, placement: Placement, index: int
                 ) -> ScheduleResult:
        held = dict(workload.current)
        cacheable = self._cache and not held
        key: tuple[object, ...] = ()
        selection = None
        if cacheable:
            shape = (workload.key if workload.key in self._reported
                     else tuple(sorted(workload.requests.items())))
            key = (placement, index, shape, workload.replicas)
            selection = self._selections.get(key)
        if selection is None:
            selection = self._select(workload, placement, index, held)
            if cacheable:
                self._selections[key] = selection
        if selection.error is not None:
            return ScheduleResult((), selection.error, selection.reasons)
        try:
            targets = self._divide(workload, placement, selection, held)
        except divide.Unschedulable as e:
            return ScheduleResult((), f"{len(selection.chosen)}/{len(self.clusters)} clusters "
                                  f"selected, but {e}", selection.reasons)
        return ScheduleResult(tuple(targets), None, selection.reasons)

    def _select(self, workload: WorkloadInfo, placement: Placement, index: int,
                held: Mapping[str, int]) -> _Selection:
        base = self._placement_filter(placement, index)
        estimates = self._estimates_for(workload)
        duplicated = placement.scheduling_type == "Duplicated"
        reasons = dict(base.hard)
        eligible: list[ClusterInfo] = []
        available: dict[str, int] = {}
        for c in base.passed:
            room = estimates[c.name]
            if c.name not in held:
                why = capacity_reason(room, workload.replicas if duplicated else 1)
                if why is not None and workload.replicas > 0:
                    reasons[c.name] = why
                    continue
            eligible.append(c)
            available[c.name] = room
        for name, (c, why) in base.soft.items():
            if name in held:
                eligible.append(c)
                available[name] = 0  # keeps its replicas, takes no new ones
            else:
                reasons[name] = why
        frozen_reasons = MappingProxyType(reasons) if reasons else _NO_REASONS
        if not eligible:
            return _Selection((), available, frozen_reasons,
                              summarize(len(self.clusters), 0, reasons))
        # Karmada's order: score (ClusterLocality: clusters holding replicas first), then
        # available replicas, then name.
        eligible.sort(key=lambda c: (c.name not in held, -available[c.name], c.name))
        chosen: Sequence[ClusterInfo] = eligible
        if placement.spread:
            capacity_matters = placement.strategy in ("Aggregated", "DynamicWeight")
            picked, error = spread.select(
                placement.spread, eligible, available,
                workload.replicas - sum(held.values()) if capacity_matters else None,
                held.keys())
            if error is not None:
                head = summarize(len(self.clusters), len(eligible), reasons)
                return _Selection((), available, frozen_reasons, f"{head}; {error}")
            chosen = picked
        return _Selection(tuple(chosen), available, frozen_reasons, None)

    def _divide(self, workload: WorkloadInfo, placement: Placement, selection: _Selection,
                held: Mapping[str, int]) -> list[Target]:
        chosen, replicas = selection.chosen, workload.replicas
        strategy = placement.strategy
        if strategy == "Duplicated":
            return divide.duplicated(chosen, replicas)
        if strategy == "StaticWeight":
            targets = divide.static_weights(chosen, placement.static_weights, replicas,
                                             workload.current)
        else:
            targets = divide.dynamic(chosen, selection.available, replicas, workload.current,
                                     aggregated=strategy == "Aggregated")
        return [t for t in targets if t[1] > 0]


def schedule(workload: WorkloadInfo, placement: Placement,
             clusters: Sequence[ClusterInfo]) -> ScheduleResult:
    """Place one workload on ``clusters`` under ``placement``: the pure entry point.

    Same input, same output. For many templates over one cluster set, build one
    `Scheduler` and call its ``schedule``, which shares the per-policy work.
    """
    return Scheduler(clusters, cache=False).schedule(workload, placement)
