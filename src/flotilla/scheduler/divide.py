"""Replica division, reproducing Karmada's assignment (``pkg/scheduler/core/assignment.go``,
``division_algorithm.go`` and ``pkg/util/helper/binding.go``'s ``Dispenser``).

* Duplicated: every candidate gets ``replicas``.
* StaticWeight: a cluster's weight is the highest weight of the ``staticWeightList`` rules
  it matches; clusters no rule matches get weight 0 and are left out; if every weight is
  0, all candidates weigh 1. Each cluster gets ``floor(weight * replicas / sum)``; the
  remainder goes one by one down the list sorted by weight (desc), then the cluster's
  last replicas (desc, so remainders stay where they were), then name. Karmada breaks
  the final tie at random; we break it by name (what Karmada did before v1.8), so that the
  same input always gives the same output. Karmada recomputes static splits from scratch
  (no scale-up/down path), and so do we.
* DynamicWeight / Aggregated ("dynamic" strategies, Karmada's ``assignByDynamicStrategy``,
  Steady mode): on scale-down the previous result is the weight of the new split; on
  scale-up (first placement included) only the extra replicas are divided, weighted by
  the clusters' available replicas, and added to what is already placed. Aggregated first
  cuts the list to the fewest clusters that can hold the replicas, clusters already
  holding replicas first.
* Burst clusters (labelled ``flotilla.io/burst=true``) under a dynamic strategy take
  only the overflow beyond the core candidates' available replicas, and lose their
  replicas first on a scale-down (`dynamic`); Karmada has no such tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flotilla.resources.wellknown import LABEL_BURST

from .types import ClusterInfo, Target, WeightRule

Weight = tuple[str, int, int]  # (cluster, weight, last replicas)


class Unschedulable(Exception):
    """Division is impossible (not enough capacity); the message says why."""


def dispense(replicas: int, weights: Sequence[Weight], init: Sequence[Target] = ()
             ) -> list[Target]:
    """Karmada's ``Dispenser.TakeByWeight`` merged into ``init``."""
    result = dict(init)
    total = sum(w for _, w, _ in weights)
    if replicas <= 0 or total == 0:
        return sorted(result.items())
    ordered = sorted(weights, key=lambda w: (-w[1], -w[2], w[0]))
    shares = [(name, weight * replicas // total) for name, weight, _ in ordered]
    remain = replicas - sum(n for _, n in shares)
    for i, (name, n) in enumerate(shares):
        extra = 1 if i < remain else 0
        result[name] = result.get(name, 0) + n + extra
    return sorted(result.items())


def duplicated(candidates: Sequence[ClusterInfo], replicas: int) -> list[Target]:
    return sorted((c.name, replicas) for c in candidates)


def static_weights(candidates: Sequence[ClusterInfo], rules: Sequence[WeightRule],
                   replicas: int, current: Sequence[Target]) -> list[Target]:
    """Karmada's ``getStaticWeightInfoList`` + ``Dispenser`` (see the module docstring),
    made stable when the workload is already placed.

    Karmada recomputes a static split from scratch on every change, so a scale-up can
    take a replica *away* from a cluster (its remainder moves elsewhere) and a cluster
    loss can move replicas between two healthy clusters. We start from the current
    placement instead and add (or remove) replicas one at a time on the cluster
    furthest below (above) its Karmada share; the result is kept only if no cluster
    ends more than one replica away from Karmada's split, otherwise (a policy change)
    Karmada's split is taken as is. A first placement is always exactly Karmada's.
    """
    weights: list[Weight] = []
    last = dict(current)
    for c in candidates:
        weight = max((r.weight for r in rules if r.target.matches(c)), default=0)
        if weight > 0:
            weights.append((c.name, weight, last.get(c.name, 0)))
    if not weights:
        weights = [(c.name, 1, 0) for c in candidates]
    split = dispense(replicas, weights)
    weight_of = {n: w for n, w, _ in weights}
    placed = {n: r for n, r in current if n in weight_of and r > 0}
    if not placed or (sum(placed.values()) == replicas and len(placed) == len(current)):
        return split
    share = dict(split)
    step = 1 if sum(placed.values()) < replicas else -1
    for _ in range(abs(replicas - sum(placed.values()))):
        if step > 0:
            name = min(weight_of, key=lambda n: (placed.get(n, 0) - share[n], -weight_of[n], n))
        else:
            name = max(placed, key=lambda n: (placed[n] - share[n], -weight_of[n], n))
        placed[name] = placed.get(name, 0) + step
    if any(abs(placed.get(name, 0) - n) > 1 for name, n in share.items()):
        return split
    return sorted(placed.items())


def is_burst(cluster: ClusterInfo) -> bool:
    """A cluster labelled ``flotilla.io/burst=true``: capacity for the overflow only."""
    return cluster.labels.get(LABEL_BURST) == "true"


def dynamic(candidates: Sequence[ClusterInfo], available: Mapping[str, int], replicas: int,
            current: Sequence[Target], aggregated: bool) -> list[Target]:
    """Karmada's Steady ``assignByDynamicStrategy``, burst clusters last in and first out.

    Candidates labelled ``flotilla.io/burst=true`` take only what the others cannot:
    a scale-up is divided over the core candidates up to their available replicas and
    only the rest over the burst ones; a scale-down takes the burst replicas away
    first and only then scales the core ones down. Without burst candidates this is
    exactly `karmada_dynamic`.
    """
    burst = [c for c in candidates if is_burst(c)]
    if not burst or len(burst) == len(candidates):
        return karmada_dynamic(candidates, available, replicas, current, aggregated)
    core = [c for c in candidates if not is_burst(c)]
    core_names = {c.name for c in core}
    names = core_names | {c.name for c in burst}
    held = [(n, r) for n, r in current if n in names and r > 0]
    core_held = [(n, r) for n, r in held if n in core_names]
    burst_held = [(n, r) for n, r in held if n not in core_names]
    core_now, burst_now = sum(r for _, r in core_held), sum(r for _, r in burst_held)
    if core_now + burst_now > replicas:  # scale down: burst first
        burst_want = max(0, replicas - core_now)
        core_want = replicas - burst_want
    else:  # scale up: core up to its room, the overflow to burst
        room = sum(max(0, available.get(c.name, 0)) for c in core)
        core_want = core_now + min(room, replicas - core_now - burst_now)
        burst_want = replicas - core_want
    out = karmada_dynamic(core, available, core_want, core_held, aggregated)
    if burst_want or burst_held:
        out += karmada_dynamic(burst, available, burst_want, burst_held, aggregated)
    return sorted(t for t in out if t[1] > 0)


def karmada_dynamic(candidates: Sequence[ClusterInfo], available: Mapping[str, int],
                    replicas: int, current: Sequence[Target], aggregated: bool
                    ) -> list[Target]:
    """Karmada's Steady ``assignByDynamicStrategy`` for DynamicWeight and Aggregated.

    ``available`` is how many *more* replicas each candidate can take. Replicas on
    clusters that are no longer candidates are not counted as assigned, so they are
    rescheduled like a scale-up (a cluster leaving moves only its own replicas).
    """
    names = {c.name for c in candidates}
    scheduled = [(n, r) for n, r in current if n in names and r > 0]
    assigned = sum(r for _, r in scheduled)
    if assigned == replicas:
        return sorted(scheduled)
    if assigned > replicas:
        # Scale down proportionally to the previous result (Karmada: dynamicScaleDown).
        # Karmada weighs by its whole previous result; we weigh only by candidates.
        ranked = sorted(scheduled, key=lambda t: (-t[1], t[0]))
        pool: list[Target] = ranked
        init: list[Target] = []
        target = replicas
    else:
        target = replicas - assigned
        pool = sorted(((c.name, available[c.name]) for c in candidates),
                      key=lambda t: (-t[1], t[0]))
        init = scheduled
    room = sum(n for _, n in pool)
    if room < target:
        raise Unschedulable(f"clusters can take {room} more replicas, {target} needed")
    if aggregated:
        held = {n for n, _ in init}
        pool = [t for t in pool if t[0] in held] + [t for t in pool if t[0] not in held]
        acc = 0
        for i, (_, n) in enumerate(pool):
            acc += n
            if acc >= target:
                pool = pool[: i + 1]
                break
    last = dict(init)
    return [(n, r) for n, r in dispense(target, [(n, w, last.get(n, 0)) for n, w in pool], init)
            if r > 0]
