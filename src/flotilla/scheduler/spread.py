"""Spread constraints: choose clusters so the workload spans [minGroups, maxGroups] groups.

Modelled on Karmada's ``pkg/scheduler/core/spreadconstraint`` (``selectBestClustersByCluster``
and ``selectBestClustersByRegion`` / ``selectGroups``), generalised so that zone,
provider and ``spreadByLabel`` group the same way region does:

1. clusters arrive sorted by priority (held clusters first, then most available
   replicas, then name), which stands in for Karmada's score (its ClusterLocality
   plugin scores the clusters already holding the workload highest);
2. with a group constraint, groups are ranked by their best cluster, and the first
   combination of ``n`` groups (``n`` from ``minGroups`` up to ``maxGroups``) that has
   enough clusters for the cluster constraint's ``minGroups`` (and, for divided
   workloads, enough available replicas) wins; its best cluster per group is taken, then
   the remaining ones by available replicas up to the cluster constraint's ``maxGroups``;
3. with only a cluster constraint, the top ``maxGroups`` clusters are taken and, for
   divided workloads, the weakest are swapped for roomier ones until the replicas fit.

Every failure returns a sentence a user can act on instead of a cluster list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from .types import ClusterInfo, SpreadConstraint

#: Bound on the group-combination search, so one pathological policy cannot stall the
#: scheduler; beyond it the search settles for the greedy (top-n) combination.
_SEARCH_BUDGET = 20_000


class GroupKeys:
    """Each cluster's group under a constraint, computed once per cluster snapshot."""

    def __init__(self, clusters: Sequence[ClusterInfo]) -> None:
        self._clusters = clusters
        self._keys: dict[SpreadConstraint, dict[str, str | None]] = {}

    def __call__(self, constraint: SpreadConstraint) -> Mapping[str, str | None]:
        found = self._keys.get(constraint)
        if found is None:
            found = self._keys[constraint] = {c.name: constraint.group_of(c)
                                              for c in self._clusters}
        return found


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    clusters: tuple[ClusterInfo, ...]
    available: int


def select(constraints: Sequence[SpreadConstraint], ranked: Sequence[ClusterInfo],
           available: Mapping[str, int], need_replicas: int | None,
           held: AbstractSet[str] = frozenset(), keys: GroupKeys | None = None
           ) -> tuple[list[ClusterInfo], str | None]:
    """Pick clusters from ``ranked`` (best first) honouring ``constraints``.

    ``need_replicas`` is ``None`` when capacity does not matter (Duplicated, static
    weights); otherwise the chosen clusters must be able to take that many more
    replicas. ``held`` clusters already run the workload: they are ranked first and
    kept whenever the constraints allow, so that rescheduling does not move them.
    Returns (clusters, None) or ([], reason).
    """
    by_cluster = next((c for c in constraints if c.field == "cluster"), None)
    by_group = next((c for c in constraints if c.field != "cluster"), None)
    if by_group is None:
        assert by_cluster is not None
        return _by_cluster(by_cluster, ranked, available, need_replicas, held)
    group_keys = (keys or GroupKeys(ranked))(by_group)
    return _by_group(by_group, by_cluster, ranked, available, need_replicas, held, group_keys)


def _by_cluster(constraint: SpreadConstraint, ranked: Sequence[ClusterInfo],
                available: Mapping[str, int], need_replicas: int | None,
                held: AbstractSet[str]) -> tuple[list[ClusterInfo], str | None]:
    total = len(ranked)
    if total < constraint.min_groups:
        return [], (f"spread by cluster needs at least {constraint.min_groups} clusters, "
                    f"{total} feasible")
    count = min(constraint.max_groups or total, total)
    chosen, rest = list(ranked[:count]), list(ranked[count:])
    if need_replicas is None:
        return chosen, None
    # Karmada's selectClustersByAvailableResource: replace the lowest-ranked choice with
    # the roomiest left-over cluster until the chosen ones can hold the replicas.
    slot = len(chosen) - 1
    while sum(available[c.name] for c in chosen) < need_replicas and slot >= 0:
        if chosen[slot].name in held:
            slot -= 1
            continue
        best, best_i = available[chosen[slot].name], -1
        for i, c in enumerate(rest):
            if available[c.name] > best:
                best, best_i = available[c.name], i
        if best_i >= 0:
            chosen[slot], rest[best_i] = rest[best_i], chosen[slot]
        slot -= 1
    have = sum(available[c.name] for c in chosen)
    if have < need_replicas:
        return [], (f"spread by cluster allows at most {count} clusters, and the roomiest "
                    f"{count} can take {have} of {need_replicas} replicas")
    return chosen, None


def _by_group(constraint: SpreadConstraint, by_cluster: SpreadConstraint | None,
              ranked: Sequence[ClusterInfo], available: Mapping[str, int],
              need_replicas: int | None, held: AbstractSet[str],
              keys: Mapping[str, str | None]) -> tuple[list[ClusterInfo], str | None]:
    members: dict[str, list[ClusterInfo]] = {}
    room: dict[str, int] = {}
    for c in ranked:  # ranked order is kept inside each group: best cluster first
        key = keys[c.name]
        if key is None:
            continue
        bucket = members.get(key)
        if bucket is None:
            members[key] = [c]
            room[key] = available[c.name]
        else:
            bucket.append(c)
            room[key] += available[c.name]
    # Insertion order is the rank of each group's best cluster: groups are ranked by it.
    groups = [_Group(k, tuple(v), room[k]) for k, v in members.items()]
    what = constraint.by
    if len(groups) < constraint.min_groups:
        return [], (f"spread by {what} needs at least {constraint.min_groups} groups, "
                    f"{len(groups)} feasible")
    min_clusters = by_cluster.min_groups if by_cluster else 1
    high = min(constraint.max_groups or len(groups), len(groups))
    # Groups holding replicas rank first; trying at least that many groups keeps them all.
    holding = sum(1 for g in groups if any(c.name in held for c in g.clusters))
    chosen = _choose_groups(groups, min(max(constraint.min_groups, holding), high), high,
                            min_clusters, need_replicas or 0)
    if chosen is None:
        limit = constraint.max_groups or len(groups)
        need = [f"{min_clusters} clusters"] if by_cluster else []
        if need_replicas:
            need.append(f"room for {need_replicas} replicas")
        return [], (f"no {constraint.min_groups}..{limit} groups by {what} have "
                    f"{' and '.join(need) or 'a feasible cluster'}")
    picked = [g.clusters[0] for g in chosen]
    spare = [c for g in chosen for c in g.clusters[1:]]
    wanted = len(picked) + len(spare)
    if by_cluster and by_cluster.max_groups:
        wanted = min(wanted, by_cluster.max_groups)
    if wanted < len(picked):
        return [], (f"spread by {what} needs {len(picked)} groups but spread by cluster "
                    f"allows only {wanted} clusters")
    spare.sort(key=lambda c: (c.name not in held, -available[c.name], c.name))  # rank order
    return picked + spare[: wanted - len(picked)], None


def _choose_groups(groups: Sequence[_Group], low: int, high: int, min_clusters: int,
                   need_replicas: int) -> list[_Group] | None:
    """The first combination, in rank order, of ``low..high`` groups that is big enough.

    Fewer groups are tried first (as Karmada starts from ``minGroups``); among
    combinations of one size, the lexicographically first in rank order wins, so better
    groups are preferred. A depth-first search with suffix bounds, under a node budget.
    """
    n = len(groups)
    sizes = [len(g.clusters) for g in groups]
    avail = [g.available for g in groups]
    # suffix maxima bound what k more groups from position i can add
    max_size, max_avail = [0] * (n + 1), [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        max_size[i] = max(sizes[i], max_size[i + 1])
        max_avail[i] = max(avail[i], max_avail[i + 1])
    budget = [_SEARCH_BUDGET]

    def dfs(start: int, left: int, size: int, room: int, acc: list[int]) -> list[int] | None:
        if left == 0:
            return list(acc) if size >= min_clusters and room >= need_replicas else None
        for i in range(start, n - left + 1):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            if (size + left * max_size[i] < min_clusters
                    or room + left * max_avail[i] < need_replicas):
                return None  # bounds only shrink further right
            acc.append(i)
            found = dfs(i + 1, left - 1, size + sizes[i], room + avail[i], acc)
            acc.pop()
            if found is not None:
                return found
        return None

    for k in range(max(low, 1), high + 1):
        found = dfs(0, k, 0, 0, [])
        if found is not None:
            return [groups[i] for i in found]
        top = groups[:k]
        if (sum(len(g.clusters) for g in top) >= min_clusters
                and sum(g.available for g in top) >= need_replicas):
            return list(top)  # budget ran out; the greedy choice is still valid
    return None
