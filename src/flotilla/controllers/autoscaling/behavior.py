"""The HPA's ``behavior``: stabilisation windows and scaling policies, as pure functions.

Kubernetes' ``normalizeDesiredReplicasWithBehaviors`` (``horizontal.go``) in Python. A
recommendation is first *stabilised* (scale up to the lowest recommendation of the
scale-up window, down to the highest of the scale-down window: a brief dip does not
remove replicas), then *rate-limited* by the policies (Pods or Percent per period, the
largest change with ``selectPolicy: Max``, the smallest with ``Min``, none with
``Disabled``) counting the changes already made in each policy's period, then clamped to
min/max. Times are seconds on one clock the caller owns; history is returned, never
kept here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEFAULT_SCALE_DOWN",
    "DEFAULT_SCALE_UP",
    "Normalized",
    "ScaleEvent",
    "ScalingPolicy",
    "ScalingRules",
    "TimedRecommendation",
    "limit_rate",
    "normalize",
    "record_event",
    "stabilize",
]

SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy = "Max"
    policies: tuple[ScalingPolicy, ...] = ()


#: Kubernetes' defaults (``GenerateHPAScaleUpRules``/``GenerateHPAScaleDownRules``).
DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15),
                                           ScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True, slots=True)
class TimedRecommendation:
    at: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One change made, by its size (positive for both directions)."""

    at: float
    change: int


def stabilize(now: float, current: int, desired: int,
              history: Sequence[TimedRecommendation], up: ScalingRules,
              down: ScalingRules) -> tuple[int, str, tuple[TimedRecommendation, ...]]:
    """The stabilised recommendation, its reason, and the history with ``desired``
    recorded (entries older than both windows dropped)."""
    up_cutoff = now - up.stabilization_window_seconds
    down_cutoff = now - down.stabilization_window_seconds
    up_limit = desired
    down_limit = desired
    for rec in history:
        if rec.at > up_cutoff:
            up_limit = min(up_limit, rec.replicas)
        if rec.at > down_cutoff:
            down_limit = max(down_limit, rec.replicas)
    result = min(max(current, up_limit), down_limit)
    kept = tuple(rec for rec in history if rec.at >= min(up_cutoff, down_cutoff))
    reason = "ScaleUpStabilized" if desired >= current else "ScaleDownStabilized"
    return result, reason, (*kept, TimedRecommendation(now, desired))


def _changed_within(now: float, period: int, events: Sequence[ScaleEvent]) -> int:
    return sum(e.change for e in events if e.at > now - period)


def _scale_up_limit(now: float, current: int, ups: Sequence[ScaleEvent],
                    downs: Sequence[ScaleEvent], rules: ScalingRules) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for policy in rules.policies:
        start = (current - _changed_within(now, policy.period_seconds, ups)
                 + _changed_within(now, policy.period_seconds, downs))
        proposed = (start + policy.value if policy.type == "Pods"
                    else math.ceil(start * (1 + policy.value / 100)))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _scale_down_limit(now: float, current: int, ups: Sequence[ScaleEvent],
                      downs: Sequence[ScaleEvent], rules: ScalingRules) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for policy in rules.policies:
        start = (current - _changed_within(now, policy.period_seconds, ups)
                 + _changed_within(now, policy.period_seconds, downs))
        proposed = (start - policy.value if policy.type == "Pods"
                    else int(start * (1 - policy.value / 100)))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def limit_rate(now: float, current: int, desired: int, min_replicas: int,
               max_replicas: int, ups: Sequence[ScaleEvent], downs: Sequence[ScaleEvent],
               up: ScalingRules, down: ScalingRules) -> tuple[int, str]:
    """``desired`` within the policies' rate and min/max, and the condition reason
    (``ScaleUpLimit``, ``TooManyReplicas``, ``ScaleDownLimit``, ``TooFewReplicas`` or
    ``DesiredWithinRange``), as Kubernetes' ``convertDesiredReplicasWithBehaviorRate``."""
    if desired > current:
        limit = max(_scale_up_limit(now, current, ups, downs, up), current)
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(_scale_down_limit(now, current, ups, downs, down), current)
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


@dataclass(frozen=True, slots=True)
class Normalized:
    replicas: int
    #: why the stabilised value differs from the metrics' (or ``ReadyForNewScale``)
    able_reason: str
    #: why the rate/min/max changed it (``DesiredWithinRange`` when they did not)
    limit_reason: str
    limited: bool
    history: tuple[TimedRecommendation, ...] = field(default=())


def normalize(now: float, current: int, desired: int, min_replicas: int,
              max_replicas: int, history: Sequence[TimedRecommendation],
              ups: Sequence[ScaleEvent], downs: Sequence[ScaleEvent],
              up: ScalingRules = DEFAULT_SCALE_UP,
              down: ScalingRules = DEFAULT_SCALE_DOWN) -> Normalized:
    """Stabilise, then limit: the replicas to set and the AbleToScale/ScalingLimited
    reasons Kubernetes would write."""
    stabilized, reason, history_out = stabilize(now, current, desired, history, up, down)
    able = reason if stabilized != desired else "ReadyForNewScale"
    replicas, limit_reason = limit_rate(now, current, stabilized, min_replicas,
                                        max_replicas, ups, downs, up, down)
    return Normalized(replicas, able, limit_reason, replicas != stabilized, history_out)


def record_event(now: float, events: Sequence[ScaleEvent], change: int,
                 rules: ScalingRules) -> tuple[ScaleEvent, ...]:
    """``events`` with one more change, dropping those older than every policy's period
    (Kubernetes' ``storeScaleEvent``)."""
    longest = max((p.period_seconds for p in rules.policies), default=0)
    kept = tuple(e for e in events if e.at > now - longest)
    return (*kept, ScaleEvent(now, change))
