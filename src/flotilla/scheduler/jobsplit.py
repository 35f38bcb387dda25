"""A Job's share per cluster: which completion indexes each cluster runs (pure).

The scheduler divides a Job's completions like replicas (`flotilla.scheduler.divide`);
this module turns those counts into disjoint index sets, so that an Indexed Job's
every index is owed by exactly one cluster. Three rules make a re-placement (a cluster
lost mid-Job) safe:

* an index a live cluster already holds stays with it, even if its count shrank:
  moving a running index would run it twice;
* an index the federation already saw complete (``done``, unioned from every
  cluster's reports into the Job's status) is never owed again, whoever completed it;
* every other index — the unfinished share of a lost cluster, or all of them on first
  placement — goes to the clusters short of their count, lowest index first, so the
  first placement gives each cluster one contiguous range.

Parallelism is divided in proportion to each cluster's share with the same dispenser
as replicas, each cluster with work getting at least one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .divide import dispense
from .types import Target


def split_indexes(completions: int, targets: Sequence[Target],
                  previous: Mapping[str, frozenset[int]] | None = None,
                  done: frozenset[int] = frozenset()) -> dict[str, frozenset[int]]:
    """Indexes per target cluster; ``previous`` is each live cluster's last share."""
    every = frozenset(range(completions))
    previous = previous or {}
    names = [name for name, _ in targets]
    shares: dict[str, set[int]] = {name: set(previous.get(name, frozenset()) & every)
                                   for name in names}
    held = set().union(*shares.values()) if shares else set()
    free = sorted(every - held - done)
    wanted = dict(targets)
    # Clusters short of their count fill up first, in the order the scheduler listed them.
    for name in names:
        while free and len(shares[name]) < wanted[name]:
            shares[name].add(free.pop(0))
    if free and names:  # counts below completions (should not happen): the largest takes
        largest = max(names, key=lambda n: (wanted[n], n))
        shares[largest].update(free)
    return {name: frozenset(indexes) for name, indexes in shares.items()}


def split_parallelism(parallelism: int, shares: Mapping[str, int]) -> dict[str, int]:
    """``parallelism`` divided by share size (`dispense`), at least 1 where work is
    owed, never more than the share."""
    working = [(name, size, 0) for name, size in sorted(shares.items()) if size > 0]
    divided = dict(dispense(parallelism, working))
    return {name: min(size, max(1, divided.get(name, 0))) if size > 0 else 0
            for name, size in shares.items()}
