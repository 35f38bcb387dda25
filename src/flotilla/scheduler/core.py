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
class _Pool:
    """Clusters that may take new replicas of one request shape, ranked, with reasons."""

    ranked: tuple[ClusterInfo, ...]
    available: Mapping[str, int]
    reasons: Mapping[str, str]
    base: PlacementFilter
    estimates: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class _Selection:
    """The clusters one attempt chose (filters and spread applied), before division.

    For a first placement it depends only on (placement, group, request shape,
    replicas), so it is cached and shared by every template with those.
    """

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
        self._estimates: dict[object, dict[str, int]] = {}
        self._selections: dict[tuple[object, ...], _Selection] = {}
        self._pools: dict[tuple[object, ...], _Pool] = {}
        self._by_name = {c.name: c for c in self.clusters}
        self._group_keys = spread.GroupKeys(self.clusters)

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
        shape = self._shape(workload)
        found = self._estimates.get(shape) if self._cache else None
        if found is None:
            found = {c.name: estimate(c, workload) for c in self.clusters}
            if self._cache:
                self._estimates[shape] = found
        return found

    def _attempt(self, workload: WorkloadInfo, placement: Placement, index: int
                 ) -> ScheduleResult:
        held = dict(workload.current)
        cacheable = self._cache and not held
        key: tuple[object, ...] = ()
        selection = None
        if cacheable:
            key = (placement, index, self._shape(workload), workload.replicas)
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

    def _shape(self, workload: WorkloadInfo) -> object:
        """What a workload's estimates depend on: its requests, or its own key if an
        agent reported per-workload estimates for it."""
        if workload.key in self._reported:
            return workload.key
        return tuple(sorted(workload.requests.items()))

    def _pool(self, workload: WorkloadInfo, placement: Placement, index: int) -> _Pool:
        """The clusters that may take new replicas of this workload, best first."""
        duplicated = placement.scheduling_type == "Duplicated"
        need = workload.replicas if duplicated else min(workload.replicas, 1)
        key = (placement, index, self._shape(workload), need)
        found = self._pools.get(key) if self._cache else None
        if found is not None:
            return found
        base = self._placement_filter(placement, index)
        estimates = self._estimates_for(workload)
        reasons = dict(base.hard)
        reasons.update((name, why) for name, (_, why) in base.soft.items())
        ranked: list[ClusterInfo] = []
        available: dict[str, int] = {}
        for c in base.passed:
            room = estimates[c.name]
            why = capacity_reason(room, need) if need else None
            if why is None:
                ranked.append(c)
                available[c.name] = room
            else:
                reasons[c.name] = why
        # Karmada's order without locality: most available replicas first, then name.
        ranked.sort(key=lambda c: (-available[c.name], c.name))
        found = _Pool(tuple(ranked), available, MappingProxyType(reasons), base, estimates)
        if self._cache:
            self._pools[key] = found
        return found

    def _select(self, workload: WorkloadInfo, placement: Placement, index: int,
                held: Mapping[str, int]) -> _Selection:
        pool = self._pool(workload, placement, index)
        ranked: Sequence[ClusterInfo] = pool.ranked
        available: Mapping[str, int] = pool.available
        reasons: Mapping[str, str] = pool.reasons
        if held:
            ranked, available, reasons = self._with_held(pool, held)
        frozen_reasons = (reasons if isinstance(reasons, MappingProxyType)
                          else MappingProxyType(dict(reasons)) if reasons else _NO_REASONS)
        if not ranked:
            return _Selection((), available, frozen_reasons,
                              summarize(len(self.clusters), 0, reasons))
        chosen: Sequence[ClusterInfo] = ranked
        if placement.spread:
            capacity_matters = placement.strategy in ("Aggregated", "DynamicWeight")
            picked, error = spread.select(
                placement.spread, ranked, available,
                workload.replicas - sum(held.values()) if capacity_matters else None,
                held.keys(), self._group_keys)
            if error is not None:
                head = summarize(len(self.clusters), len(ranked), reasons)
                return _Selection((), available, frozen_reasons, f"{head}; {error}")
            chosen = picked
        return _Selection(tuple(chosen), available, frozen_reasons, None)

    def _with_held(self, pool: _Pool, held: Mapping[str, int]
                   ) -> tuple[list[ClusterInfo], Mapping[str, int], Mapping[str, str]]:
        """Overlay the clusters already holding replicas on a pool.

        They rank first (Karmada's ClusterLocality score) and stay eligible even when a
        taint, Ready, cordon or capacity would refuse them new replicas; a cluster the
        affinity now excludes, or one that is gone, is not kept. The pool's mappings are
        shared, and copied only when a held cluster needs an override.
        """
        available: Mapping[str, int] = pool.available
        reasons: Mapping[str, str] = pool.reasons
        overrides: dict[str, int] = {}
        kept: list[ClusterInfo] = []
        for name in held:
            if name in pool.available:
                kept.append(self._by_name[name])
            elif name in pool.base.soft:
                kept.append(pool.base.soft[name][0])
                overrides[name] = 0  # keeps its replicas, takes no new ones
            elif name in pool.reasons and name not in pool.base.hard:  # refused: capacity
                kept.append(self._by_name[name])
                overrides[name] = pool.estimates[name]
        if overrides:
            available = {**pool.available, **overrides}
            reasons = {k: v for k, v in pool.reasons.items() if k not in overrides}
        kept.sort(key=lambda c: (-available[c.name], c.name))
        return kept + [c for c in pool.ranked if c.name not in held], available, reasons

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
