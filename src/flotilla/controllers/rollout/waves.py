"""Turning a RolloutPolicy's waves into ordered sets of cluster names.

The plan is computed once, when a rollout starts, and stored with it: a cluster that
joins or leaves half-way must not reshuffle which clusters were already judged. Each
cluster is in exactly one wave, the first that names it; a placed cluster no wave names
goes with the last wave, so "100%" is never needed for safety.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from flotilla.client.base import Object
from flotilla.resources.labels import selector_from_dict
from flotilla.resources.models.rollout import Wave


def _matches(wave: Wave, cluster: Object | None) -> bool:
    if cluster is None:
        return False
    if wave.regions is not None:
        return str((cluster.get("spec") or {}).get("region") or "") in wave.regions
    if wave.cluster_selector is not None:
        selector = selector_from_dict(wave.cluster_selector.model_dump(by_alias=True,
                                                                       exclude_none=True))
        return selector.matches(cluster["metadata"].get("labels") or {})
    return False


def plan_waves(waves: list[Wave], placed: list[str],
               clusters: Mapping[str, Object]) -> list[list[str]]:
    """One list of cluster names per wave, in order (a wave may be empty)."""
    order = sorted(placed)
    taken: set[str] = set()
    out: list[list[str]] = []
    for wave in waves:
        if wave.clusters is not None:
            chosen = [c for c in wave.clusters if c in order and c not in taken]
        elif wave.percent is not None:
            # percent is cumulative over all placed clusters (Argo's setWeight, by cluster)
            want = max(1, math.ceil(len(order) * wave.percent / 100))
            chosen = [c for c in order if c not in taken][:max(0, want - len(taken))]
        else:
            chosen = [c for c in order if c not in taken and _matches(wave, clusters.get(c))]
        taken.update(chosen)
        out.append(chosen)
    rest = [c for c in order if c not in taken]
    if rest:
        if out:
            out[-1] = [*out[-1], *rest]
        else:
            out.append(rest)
    return out
