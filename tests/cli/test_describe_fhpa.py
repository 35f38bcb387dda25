"""``flotilla describe fhpa``: the autoscaler's summary above the generic sections."""

from __future__ import annotations

from flotilla.cli.describe import render
from flotilla.resources.kinds import by_kind


def test_describe_leads_with_metrics_replicas_and_last_scale() -> None:
    obj = {"apiVersion": "autoscaling.karmada.io/v1alpha1", "kind": "FederatedHPA",
           "metadata": {"name": "shop", "namespace": "default", "generation": 1},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "shop"},
                    "minReplicas": 2, "maxReplicas": 12,
                    "metrics": [{"type": "Object", "object": {
                        "describedObject": {"kind": "Service", "name": "shop"},
                        "metric": {"name": "flotilla.io/requests-per-second"},
                        "target": {"type": "AverageValue", "averageValue": "20"}}}]},
           "status": {"currentReplicas": 8, "desiredReplicas": 10,
                      "lastScaleTime": "2026-12-04T18:00:00Z",
                      "currentMetrics": [{"type": "Object", "object": {
                          "metric": {"name": "flotilla.io/requests-per-second"},
                          "current": {"averageValue": "25"}}}]}}
    event = {"type": "Normal", "reason": "SuccessfulRescale", "count": 1,
             "message": "New size: 10; reason: flotilla.io/requests-per-second above target",
             "lastTimestamp": "2026-12-04T18:00:00Z",
             "involvedObject": {"kind": "FederatedHPA", "name": "shop"}}
    text = render(by_kind("FederatedHPA"), obj, [event])
    assert "Reference:    Deployment/shop" in text
    assert "Metrics:      flotilla.io/requests-per-second: 25/20" in text
    assert "Replicas:     8 current / 10 desired (min 2, max 12)" in text
    assert "Last scale:   2026-12-04T18:00:00Z" in text
    assert "New size: 10; reason: flotilla.io/requests-per-second above target" in text
