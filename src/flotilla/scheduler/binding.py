"""The seam to ResourceBinding objects: what the scheduling controller reads and writes.

Kept apart from the decision so the decision stays free of API shapes. Field names follow
Karmada's ResourceBinding (``spec.clusters[{name, replicas}]``, a ``Scheduled``
condition with reason ``Success`` or ``NoClusterFit``) so that ``describe`` output reads
the same to a Karmada user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.resources.conditions import Condition

from .types import ScheduleResult, Target

SCHEDULED = "Scheduled"


def current_targets(binding: Mapping[str, Any] | None) -> tuple[Target, ...]:
    """The assignment a binding holds now (``spec.clusters``), for stable rescheduling."""
    if not binding:
        return ()
    spec = binding.get("spec") or {}
    out = []
    for item in spec.get("clusters") or []:
        if isinstance(item, Mapping) and item.get("name"):
            out.append((str(item["name"]), int(item.get("replicas") or 0)))
    return tuple(sorted(out))


def target_clusters(result: ScheduleResult) -> list[dict[str, Any]]:
    """``spec.clusters`` for a binding; empty when the result is unscheduled."""
    return [{"name": name, "replicas": replicas} for name, replicas in result.targets]


def scheduled(result: ScheduleResult, generation: int = 0) -> Condition:
    """The ``Scheduled`` condition describing ``result``, to set with
    `flotilla.resources.conditions.set_condition` (which keeps the stored transition time
    while the status stays the same)."""
    if result.scheduled:
        message = "Binding has been scheduled successfully."
        if result.affinity:
            message += f" Cluster affinity group {result.affinity!r} was used."
        return Condition(SCHEDULED, "True", "Success", message, generation)
    return Condition(SCHEDULED, "False", "NoClusterFit", result.reason or "", generation)


def scheduled_condition(result: ScheduleResult, now: str, generation: int = 0
                        ) -> dict[str, Any]:
    """`scheduled` as a ``metav1.Condition`` dict that (newly) transitioned at ``now``."""
    return scheduled(result, generation).as_dict(now)
