"""Resource metrics: the agents' per-pod usage on the binding turned into the replica
calculator's samples, and the decision `plan` takes from them."""

from __future__ import annotations

from typing import Any

from flotilla.agent.snapshot import workload_status
from flotilla.controllers.autoscaling.plan import History, Measurement, plan
from flotilla.controllers.autoscaling.pods import pod_request, pod_samples
from flotilla.resources.views import FederatedHPAView, MetricView
from flotilla.runtimes.base import PodUsage, WorkloadStatus


def deployment(cpu: str | None = "200m") -> dict[str, Any]:
    requests = {"cpu": cpu} if cpu else {}
    return {"metadata": {"name": "burn"}, "spec": {"template": {"spec": {"containers": [
        {"name": "a", "resources": {"requests": requests}},
        {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


def reported(cluster: str, usage: list[PodUsage]) -> dict[str, Any]:
    status = workload_status(WorkloadStatus("Deployment", "default", "burn", len(usage),
                                            len(usage), len(usage), len(usage), len(usage),
                                            1, pod_usage=tuple(usage)))
    return {"clusterName": cluster, "status": status}


def binding(*items: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"aggregatedStatus": list(items)}}


def fhpa(metric: dict[str, Any]) -> FederatedHPAView:
    return FederatedHPAView.of({"metadata": {"name": "burn"}, "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "burn"}, "minReplicas": 1,
        "maxReplicas": 10, "metrics": [metric]}})


CPU_70 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 70}}}


def test_requests_are_summed_over_containers_and_missing_ones_refused() -> None:
    assert pod_request(deployment(), "cpu") == 300
    assert pod_request(deployment(None), "cpu") is None
    assert pod_request(deployment(), "memory") is None  # container a requests none


def test_agent_report_reads_back_as_samples_of_every_cluster() -> None:
    b = binding(reported("east", [PodUsage("burn-1", 600, 50 << 20, True)]),
                reported("burst", [PodUsage("burn-1", 30, 40 << 20, False)]))
    assert b["status"]["aggregatedStatus"][0]["status"]["podMetrics"] == [
        {"name": "burn-1", "cpu": "600m", "memory": str(50 << 20), "ready": True}]
    samples = pod_samples(b, deployment(), "cpu")
    assert [(s.name, s.value, s.request, s.ready) for s in samples] == [
        ("east/burn-1", 600.0, 300.0, True), ("burst/burn-1", 30.0, 300.0, False)]
    assert pod_samples(None, deployment(), "cpu") == ()


def test_cpu_utilisation_over_target_scales_up() -> None:
    # two pods at 600m of 300m requested: 200 % against 70 % -> ceil(2 * 200/70) = 6
    b = binding(reported("east", [PodUsage("a", 600, 1, True), PodUsage("b", 600, 1, True)]))
    view = fhpa(CPU_70)
    metric = view.metrics[0]
    decision = plan(1000.0, view, 2, 2, [Measurement(metric, None, pods=pod_samples(
        b, deployment(), "cpu"))], History())
    assert decision.desired == 6
    assert decision.current_metrics[0]["resource"]["current"] == {"averageUtilization": 200}


def test_no_usage_reported_blocks_a_scale_down_only() -> None:
    view = fhpa(CPU_70)
    metric: MetricView = view.metrics[0]
    decision = plan(1000.0, view, 4, 4, [Measurement(metric, None, "no cpu usage")],
                    History())
    assert decision.desired == 4
    assert not decision.rescale
    assert {c.type: c.reason for c in decision.conditions}["ScalingActive"] == \
        "FailedGetObjectMetric"


def test_cpu_average_value_is_in_cores() -> None:
    view = fhpa({"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "AverageValue", "averageValue": "250m"}}})
    b = binding(reported("east", [PodUsage("a", 500, 1, True), PodUsage("b", 500, 1, True)]))
    decision = plan(1000.0, view, 2, 2, [Measurement(view.metrics[0], None, pods=pod_samples(
        b, deployment(), "cpu"))], History())
    assert decision.desired == 4  # 500m average over 250m: twice the pods
    assert decision.current_metrics[0]["resource"]["current"] == {"averageValue": "0.5"}
