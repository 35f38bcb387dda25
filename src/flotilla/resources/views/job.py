"""A ``batch/v1`` Job as the control plane reads it: its counts, its mode, and what the
federation already knows of its progress (docs/batch.md).

Two rules live here because the binder, the renderer and the status aggregator all
need them: a Job's *replicas* (what the scheduler divides) are its completions, and a
Job is *finished* once its federated status holds a true ``Complete`` or ``Failed``
condition — after that, nothing of it may be started again anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources import conditions
from flotilla.resources.indexes import IndexSetError, parse_indexes
from flotilla.resources.views.fields import Meta, integer, mapping, text

COMPLETE = "Complete"
FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class JobView:
    meta: Meta = field(default_factory=Meta)
    completions: int = 1
    parallelism: int = 1
    indexed: bool = False
    #: indexes the federation saw complete (the union of every cluster's reports)
    completed: frozenset[int] = frozenset()
    succeeded: int = 0
    #: "Complete" | "Failed" | "" (still running)
    finished: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> JobView:
        obj = mapping(obj)
        spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
        try:
            completed = parse_indexes(text(status.get("completedIndexes")))
        except IndexSetError:
            completed = frozenset()
        conds = status.get("conditions")
        finished = next((t for t in (COMPLETE, FAILED) if conditions.is_true(conds, t)), "")
        return cls(Meta.of(obj.get("metadata")),
                   completions=integer(spec.get("completions"), 1),
                   parallelism=integer(spec.get("parallelism"), 1),
                   indexed=spec.get("completionMode") == "Indexed",
                   completed=completed, succeeded=integer(status.get("succeeded")),
                   finished=finished)
