"""Stabilisation and scaling policies against Kubernetes' own cases.

The table is ``TestScalingWithRules`` of ``pkg/controller/podautoscaler/horizontal_test.go``
(row names kept), the stabilisation cases ``TestNormalizeDesiredReplicas``. Kubernetes
builds rules with ``generateScalingRules(pods, podsPeriod, percent, percentPeriod,
window)`` and spreads past events over a period with
``generateEventsUniformDistribution``; both are transcribed below.
"""

from __future__ import annotations

import pytest

from flotilla.controllers.autoscaling.behavior import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    TimedRecommendation,
    limit_rate,
    normalize,
    record_event,
    stabilize,
)

NOW = 10_000.0


def rules(pods: int, pods_period: int, percent: int, percent_period: int,
          window: int) -> ScalingRules:
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, "Max", tuple(policies))


def spread(changes: list[int], period: int) -> list[ScaleEvent]:
    """Events in the middle of equal segments of the last ``period`` seconds."""
    segment = period / len(changes)
    return [ScaleEvent(NOW - (period - segment * (i + 1) + segment / 2), c)
            for i, c in enumerate(changes)]


CASES = [
    # name, current, desired, min, max, up rules, down rules, ups, downs, expected, reason
    ("prenormalized desired replicas within range", 5, 7, 3, 8, None, None, [], [], 7,
     "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, None, None, [], [], 2,
     "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", 1, 0, 0, 10,
     None, None, [], [], 0, "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10,
     None, None, [], [], 10, "TooManyReplicas"),
    ("desired replica count is more than the maximum replica count", 100, 1000, 100, 150,
     None, None, [], [], 150, "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
     3, 1000, 1, 2000, rules(0, 0, 1, 60, 0), None, [], [], 4, "ScaleUpLimit"),
    ("scaleUp with default behavior", 10, 50, 1, 1000, None, None, [], [], 20,
     "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", 10, 500, 1, 1000,
     rules(100, 60, 100, 60, 0), None, [], [], 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", 10, 500, 1, 1000,
     rules(2, 60, 100, 60, 0), None, [], [], 20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", 10, 50, 1, 1000,
     rules(100, 60, 0, 0, 0), None, [], [], 50, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", 10, 50, 1, 1000,
     rules(10000, 60, 0, 0, 0), None, [], [], 50, "DesiredWithinRange"),
    ("scaleUp with pod policy limitation", 10, 50, 1, 1000, rules(30, 60, 0, 0, 0), None,
     [], [], 40, "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", 10, 50, 1, 1000, rules(0, 0, 200, 60, 0),
     None, [], [], 30, "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", 100, 2, 1, 1000, None,
     rules(20, 60, 1, 60, 300), [], [], 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", 100, 2, 1, 1000, None,
     rules(2, 60, 1, 60, 300), [], [], 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", 10, 0, 1, 1000,
     None, rules(100, 60, 0, 0, 300), [], [], 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", 10, 2, 5, 1000,
     None, rules(0, 0, 100, 60, 300), [], [], 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", 10, 2, 1, 1000, None,
     rules(5, 60, 0, 0, 300), [], [], 5, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", 10, 5, 1, 1000, None,
     rules(0, 0, 50, 60, 300), [], [], 5, "DesiredWithinRange"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", 100, 500,
     1, 200, rules(300, 60, 0, 0, 0), None, spread([1, 5, 9], 120), [], 200,
     "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", 100,
     500, 1, 200, rules(0, 0, 10000, 60, 0), None, spread([1, 5, 9], 120), [], 200,
     "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent"
     " scale up events", 100, 500, 1, 1000, rules(5, 120, 0, 0, 0), None,
     spread([1, 5, 9], 120), [], 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", 100, 500, 1, 1000,
     rules(150, 120, 0, 0, 0), None, spread([1, 5, 9], 120), [], 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", 100, 500, 1, 1000,
     rules(0, 0, 200, 120, 0), None, spread([1, 5, 9], 120), [], 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events", 6, 24, 1, 1000,
     rules(0, 0, 300, 300, 0), None, spread([4], 120), spread([2], 120), 16,
     "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", 10, 5, 1, 1000, None, None, [],
     spread([1, 5, 9], 120), 5, "DesiredWithinRange"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous"
     " events", 100, 0, 1, 1000, None, rules(115, 120, 0, 0, 300), [],
     spread([1, 5, 9], 120), 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events",
     100, 0, 5, 1000, None, rules(130, 120, 0, 0, 300), [], spread([1, 5, 9], 120), 5,
     "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous"
     " events", 100, 2, 5, 1000, None, rules(0, 0, 100, 120, 300), [],
     spread([1, 5, 9], 120), 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", 100, 2, 1, 1000, None,
     rules(5, 120, 0, 0, 300), [], spread([1, 5, 9], 120), 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", 100, 0, 1, 1000, None,
     rules(0, 0, 50, 120, 300), [], spread([2, 4, 6], 120), 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events", 10, 1, 1, 1000,
     None, rules(0, 0, 50, 180, 0), spread([2], 120), spread([4], 120), 6,
     "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", 100, 0, 1, 1000, None,
     rules(0, 0, 10, 120, 300), [], spread([10, 10, 10], 120), 100, "ScaleDownLimit"),
    ("scaleDown with with previous events still allowing more scale down", 10, 5, 1, 1000,
     None, rules(0, 0, 1000, 120, 300), [], spread([10, 10, 10], 120), 5,
     "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for up", 100, 200, 1, 1000,
     rules(1000, 60, 0, 0, 0), None, spread([8, 12, 9, 11], 120), [], 200,
     "DesiredWithinRange"),
    ("check that events were not marked 'outdated' for two different policies in the"
     " behavior for up", 100, 200, 1, 1000, rules(1000, 120, 100, 60, 0), None,
     spread([8, 12, 9, 11], 120), [], 200, "DesiredWithinRange"),
    ("check 'outdated' flag for events for one behavior for down", 100, 5, 1, 1000, None,
     rules(1000, 60, 0, 0, 300), [], spread([8, 12, 9, 11], 120), 5, "DesiredWithinRange"),
]


@pytest.mark.parametrize(
    ("current", "desired", "lo", "hi", "up", "down", "ups", "downs", "expected", "reason"),
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_scaling_with_rules(current: int, desired: int, lo: int, hi: int,
                            up: ScalingRules | None, down: ScalingRules | None,
                            ups: list[ScaleEvent], downs: list[ScaleEvent], expected: int,
                            reason: str) -> None:
    assert limit_rate(NOW, current, desired, lo, hi, ups, downs, up or DEFAULT_SCALE_UP,
                      down or DEFAULT_SCALE_DOWN) == (expected, reason)


def test_select_policy_min_and_disabled() -> None:
    """``Min`` takes the smaller change; ``Disabled`` forbids the direction (Kubernetes'
    ``calculateScaleUpLimitWithScalingRules`` / ``...ScaleDownLimitWithBehaviors``)."""
    both = (ScalingPolicy("Pods", 2, 60), ScalingPolicy("Percent", 50, 60))
    assert limit_rate(NOW, 5, 100, 1, 100, [], [], ScalingRules(0, "Min", both),
                      DEFAULT_SCALE_DOWN) == (7, "ScaleUpLimit")
    # horizontal_test.go's calculateScaleDownLimitWithBehaviors(5, ..., Min): 5-2=3 over 5*0.5=2
    assert limit_rate(NOW, 5, 0, 0, 100, [], [], DEFAULT_SCALE_UP,
                      ScalingRules(300, "Min", both)) == (3, "ScaleDownLimit")
    assert limit_rate(NOW, 5, 100, 1, 100, [], [], ScalingRules(0, "Disabled", both),
                      DEFAULT_SCALE_DOWN) == (5, "ScaleUpLimit")


def recs(*pairs: tuple[int, float]) -> list[TimedRecommendation]:
    return [TimedRecommendation(NOW - age, r) for r, age in pairs]


@pytest.mark.parametrize(("history", "current", "desired", "expected"), [
    ([], 5, 5, 5),                                          # "empty log"
    (recs((4, 120), (5, 60)), 5, 3, 5),                     # "stabilize"
    (recs((1, 120), (2, 60)), 3, 3, 3),                     # "no stabilize"
    (recs((10, 600), (9, 540)), 3, 3, 3),                   # "no stabilize - old recommendations"
    (recs((10, 600), (4, 60), (5, 120), (9, 540)), 5, 3, 5),  # "stabilize - old recommendations"
])
def test_normalize_desired_replicas(history: list[TimedRecommendation], current: int,
                                    desired: int, expected: int) -> None:
    # TestNormalizeDesiredReplicas: a 5-minute scale-down window keeps the highest
    # recommendation of the window; older ones are dropped from the log.
    replicas, _, log = stabilize(NOW, current, desired, history, DEFAULT_SCALE_UP,
                                 DEFAULT_SCALE_DOWN)
    assert replicas == expected
    assert all(rec.at >= NOW - 300 for rec in log)
    assert log[-1] == TimedRecommendation(NOW, desired)


def test_scale_down_waits_for_its_window_then_goes() -> None:
    """A load drop removes replicas only once the scale-down window has passed."""
    down = ScalingRules(30, "Max", (ScalingPolicy("Percent", 100, 15),))
    history: tuple[TimedRecommendation, ...] = ()
    out = normalize(0.0, 10, 10, 2, 12, history, [], [], DEFAULT_SCALE_UP, down)
    out = normalize(10.0, 10, 2, 2, 12, out.history, [], [], DEFAULT_SCALE_UP, down)
    assert (out.replicas, out.able_reason) == (10, "ScaleDownStabilized")
    out = normalize(31.0, 10, 2, 2, 12, out.history, [], [], DEFAULT_SCALE_UP, down)
    assert (out.replicas, out.able_reason) == (2, "ReadyForNewScale")


def test_record_event_drops_what_no_policy_counts() -> None:
    events = record_event(NOW, [ScaleEvent(NOW - 61, 7), ScaleEvent(NOW - 59, 6)], 5,
                          rules(10, 60, 0, 0, 0))
    assert [e.change for e in events] == [6, 5]  # TestStoreScaleEvents "two entries..."
