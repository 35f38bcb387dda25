"""The apply-time check of ``failover.budget``: refuse a budget the timers cannot meet.

It lives in the API write path (``Registry.add_check``), not in the binder, so that
``flotilla apply`` itself answers with the reason and a budget that would work, and a
refused policy is never stored half-right. It needs the server's grace period, which the
schema validation does not know; the control plane registers it with its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flotilla.controllers.failover.timers import budget_problem
from flotilla.resources.validation import FieldError, InvalidObject

POLICY_KINDS = ("PropagationPolicy", "ClusterPropagationPolicy")


def budget_check(grace: float, heartbeat: float) -> Callable[[dict[str, Any]], None]:
    """A check that raises `InvalidObject` at ``spec.failover.budget`` when needed."""

    def check(obj: dict[str, Any]) -> None:
        if obj.get("kind") not in POLICY_KINDS:
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        problem = budget_problem(spec, grace, heartbeat)
        if problem is not None:
            raise InvalidObject([FieldError("spec.failover.budget", problem)])

    return check
