"""The timers in force for one binding: tolerations, purge modes, the failover budget.

Kept pure (plain dicts in, a frozen dataclass out) so the controller, `describe` and
`what-if` all read the same numbers.

Defaults. Karmada's webhook adds, to every policy, NoExecute tolerations of 300 s for
its ``not-ready`` and ``unreachable`` cluster taints; a Karmada policy applied here keeps
exactly that behaviour. A ``policy.flotilla.io`` policy defaults to 5 s: Flotilla's
promise is rebuilding in seconds, and graceful eviction keeps the old replicas until the
new ones are ready, so a short toleration costs a few spare processes, not an outage.

The ``traffic-unreachable`` taint (the gateways reach none of the cluster's endpoints,
heartbeats fine: `flotilla.controllers.cluster_health`) goes through the same rule, but
its default toleration is the policy's *application*-failover toleration
(``failover.application.decisionConditions.tolerationSeconds``): users cannot reach the
workload there, which is an application failure seen from outside. A policy without
application failover tolerates it forever (its replicas stay; traffic already left), as
Karmada moves nothing without ``failover.application``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flotilla.resources.models.common import parse_duration
from flotilla.resources.wellknown import (
    TAINT_NOT_READY,
    TAINT_TRAFFIC_UNREACHABLE,
    TAINT_UNREACHABLE,
)

PurgeMode = Literal["Immediately", "Graciously", "Never"]
FLOTILLA_DEFAULT_TOLERATION = 5.0
KARMADA_DEFAULT_TOLERATION = 300.0
#: Karmada's ``--graceful-eviction-timeout`` default: the old replicas go at the latest
#: this long after their eviction started, ready replacements or not.
DEFAULT_EVICTION_TIMEOUT = 600.0
#: Karmada's default for ``decisionConditions.tolerationSeconds``.
DEFAULT_APPLICATION_TOLERATION = 300.0
#: What a budget must leave for rescheduling, rendering, pod start and readiness once
#: the toleration ran out (measured by bench/failover_bench.py: about 2 s on a shared
#: 2-core machine; 3 s leaves headroom).
RESTART_ALLOWANCE = 3.0
HEALTH_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
#: Every taint whose toleration `Timers` holds (the health taints and the gateways').
TIMED_TAINTS = (*HEALTH_TAINTS, TAINT_TRAFFIC_UNREACHABLE)
_PURGE: dict[str, PurgeMode] = {
    "Directly": "Immediately", "Gracefully": "Graciously", "Immediately": "Immediately",
    "Graciously": "Graciously", "Never": "Never"}


class BudgetError(ValueError):
    """A ``failover.budget`` the configured heartbeat timers cannot meet."""


@dataclass(frozen=True, slots=True)
class Timers:
    """Everything failover needs to know about one binding's policy."""

    #: Seconds a NoExecute taint of `TIMED_TAINTS` is tolerated, per key; None = forever.
    tolerations: Mapping[str, float | None]
    cluster_purge: PurgeMode = "Graciously"
    application_toleration: float | None = None  # None: no application failover
    application_purge: PurgeMode = "Graciously"
    eviction_timeout: float = DEFAULT_EVICTION_TIMEOUT
    rebalance: bool = False
    budget: float | None = None
    #: Where the numbers came from, for `describe` ("default", "policy", "budget").
    source: str = "default"

    def toleration_for(self, taint_key: str) -> float | None:
        """Seconds before replicas leave a cluster carrying ``taint_key`` (NoExecute).

        A taint the policy does not tolerate at all is left at once (0 s), as in
        Kubernetes' taint manager.
        """
        return self.tolerations.get(taint_key, 0.0)


def _tolerates(tol: Mapping[str, Any], key: str) -> bool:
    effect = tol.get("effect") or ""
    if effect and effect != "NoExecute":
        return False
    if tol.get("key") and tol.get("key") != key:
        return False
    # Health taints carry no value: Equal matches only an empty value.
    return (tol.get("operator") or "Equal") == "Exists" or not tol.get("value")


def explicit_tolerations(placement: Mapping[str, Any]) -> dict[str, float | None]:
    """The tolerations of `TIMED_TAINTS` a placement states itself (the longest wins)."""
    out: dict[str, float | None] = {}
    for tol in placement.get("clusterTolerations") or []:
        for key in TIMED_TAINTS:
            if not _tolerates(tol, key):
                continue
            seconds = tol.get("tolerationSeconds")
            value = None if seconds is None else max(0.0, float(seconds))
            if key not in out:
                out[key] = value
            else:
                old = out[key]
                out[key] = None if old is None or value is None else max(old, value)
    return out


def budget_toleration(budget: float, grace: float, heartbeat: float) -> float:
    """The toleration that makes ``budget`` hold: budget = detection + toleration + restart.

    Detection is the grace period plus up to one heartbeat interval (the last renewal
    may have come just before the death). Raises `BudgetError` saying what would work.
    """
    detection = grace + heartbeat
    toleration = budget - detection - RESTART_ALLOWANCE
    if toleration < 0:
        need = detection + RESTART_ALLOWANCE
        max_grace = budget - heartbeat - RESTART_ALLOWANCE
        fix = (f"or run the server with --cluster-grace-period {max_grace:g}"
               if max_grace >= 0.1 else "or shorten the heartbeat interval")
        raise BudgetError(
            f"failover budget {budget:g}s cannot be met: detecting a dead cluster takes up "
            f"to {detection:g}s (grace period {grace:g}s + heartbeat interval {heartbeat:g}s) "
            f"and starting replicas elsewhere about {RESTART_ALLOWANCE:g}s; use a budget of "
            f"at least {math.ceil(need)}s, {fix}")
    return toleration


def budget_problem(policy_spec: Mapping[str, Any], grace: float, heartbeat: float
                   ) -> str | None:
    """Why a policy's ``failover.budget`` cannot be met, or None (the apply-time check)."""
    raw = (policy_spec.get("failover") or {}).get("budget")
    if raw is None:
        return None
    try:
        budget = parse_duration(raw) if isinstance(raw, str) else float(raw)
        toleration = budget_toleration(budget, grace, heartbeat)
    except (BudgetError, ValueError) as exc:
        return str(exc)
    explicit = explicit_tolerations(policy_spec.get("placement") or {})
    for key, seconds in sorted(explicit.items()):
        if key not in HEALTH_TAINTS:
            continue  # the budget is about a dead cluster, not the gateways' view
        if seconds is None or seconds > toleration:
            shown = "forever" if seconds is None else f"{seconds:g}s"
            return (f"failover budget {budget:g}s cannot be met: clusterTolerations "
                    f"tolerate {key} {shown}, but the budget leaves {toleration:g}s; "
                    f"lower tolerationSeconds to {math.floor(toleration)} or raise the budget")
    return None


def timers_for(policy: Mapping[str, Any] | None, placement: Mapping[str, Any],
               grace: float, heartbeat: float) -> Timers:
    """The timers for a binding whose policy is ``policy`` (None: gone, use defaults)."""
    group = str((policy or {}).get("apiVersion") or "").partition("/")[0]
    spec = (policy or {}).get("spec") or {}
    failover = spec.get("failover") or {}
    default = KARMADA_DEFAULT_TOLERATION if group == "policy.karmada.io" \
        else FLOTILLA_DEFAULT_TOLERATION
    source = "default"
    budget: float | None = None
    if failover.get("budget") is not None:
        try:
            raw = failover["budget"]
            budget = parse_duration(raw) if isinstance(raw, str) else float(raw)
            default = budget_toleration(budget, grace, heartbeat)
            source = "budget"
        except (BudgetError, ValueError):
            budget = None  # refused at apply time; an old object keeps the defaults
    tolerations: dict[str, float | None] = dict.fromkeys(HEALTH_TAINTS, default)
    app = failover.get("application")
    app_toleration = None
    app_purge: PurgeMode = "Graciously"
    timeout = DEFAULT_EVICTION_TIMEOUT
    if app:
        seconds = (app.get("decisionConditions") or {}).get("tolerationSeconds")
        app_toleration = DEFAULT_APPLICATION_TOLERATION if seconds is None else float(seconds)
        app_purge = _purge(app.get("purgeMode"), "Graciously")
        if app.get("gracePeriodSeconds") is not None:
            timeout = float(app["gracePeriodSeconds"])
    tolerations[TAINT_TRAFFIC_UNREACHABLE] = app_toleration
    explicit = explicit_tolerations(placement)
    if explicit:
        tolerations.update(explicit)
        source = "policy" if source == "default" else f"{source}+policy"
    return Timers(
        tolerations=tolerations,
        cluster_purge=_purge((failover.get("cluster") or {}).get("purgeMode"), "Graciously"),
        application_toleration=app_toleration, application_purge=app_purge,
        eviction_timeout=timeout, rebalance=spec.get("rebalance") == "OnRecovery",
        budget=budget, source=source)


def _purge(value: Any, default: PurgeMode) -> PurgeMode:
    """One name per behaviour, whichever Karmada release's spelling the policy used."""
    return _PURGE.get(str(value), default) if value else default


def describe_timers(timers: Timers, grace: float | None = None) -> list[tuple[str, str]]:
    """(name, value) rows for `flotilla describe`."""
    def secs(v: float | None) -> str:
        return "forever" if v is None else f"{v:g}s"
    rows: Sequence[tuple[str, str]] = [
        *((f"toleration {k}", secs(v)) for k, v in sorted(timers.tolerations.items())),
        ("cluster purge mode", timers.cluster_purge),
        ("application failover", "off" if timers.application_toleration is None
         else f"after {timers.application_toleration:g}s unhealthy "
              f"({timers.application_purge})"),
        ("eviction timeout", secs(timers.eviction_timeout)),
        ("rebalance on recovery", "yes" if timers.rebalance else "no"),
        ("budget", secs(timers.budget) if timers.budget is not None else "none"),
        ("source", timers.source),
    ]
    out = list(rows)
    if grace is not None:
        out.insert(0, ("cluster grace period", secs(grace)))
    return out
