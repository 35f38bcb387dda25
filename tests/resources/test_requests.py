"""A pod's effective request: Kubernetes' rule over app, init and sidecar containers."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.resources.quantity import Quantity
from flotilla.resources.requests import RequestError, container_requests, pod_requests
from flotilla.resources.validation import InvalidObject, validate_object


def _c(name: str, requests: dict[str, Any] | None = None,
       limits: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "x", "resources": resources, **extra}


def _as_text(requests: dict[str, Quantity]) -> dict[str, str]:
    return {name: str(q) for name, q in requests.items()}


def test_app_containers_are_summed_per_resource() -> None:
    spec = {"containers": [_c("a", {"cpu": "250000u", "memory": "1e9"}),
                           _c("b", {"cpu": "0.5", "nvidia.com/gpu": 1}),
                           _c("c")]}
    assert _as_text(pod_requests(spec)) == {"cpu": "750m", "memory": "1e9",
                                            "nvidia.com/gpu": "1"}


def test_a_limit_without_a_request_is_the_request() -> None:
    assert _as_text(container_requests(_c("a", {"cpu": "100m"},
                                          {"cpu": "2", "memory": "1Gi"}))) == {
        "cpu": "100m", "memory": "1Gi"}


def test_init_containers_count_by_their_peak_not_their_sum() -> None:
    spec = {"initContainers": [_c("i1", {"cpu": "2"}), _c("i2", {"cpu": "1", "memory": "2Gi"})],
            "containers": [_c("a", {"cpu": "500m", "memory": "1Gi"}),
                           _c("b", {"cpu": "500m", "memory": "512Mi"})]}
    # cpu: max(0.5 + 0.5, max(2, 1)) = 2; memory: max(1.5Gi, 2Gi) = 2Gi
    assert _as_text(pod_requests(spec)) == {"cpu": "2", "memory": "2Gi"}


def test_sidecars_run_alongside_everything_started_after_them() -> None:
    spec = {"initContainers": [
        _c("sidecar", {"cpu": "1"}, restartPolicy="Always"),
        _c("migrate", {"cpu": "2"})],
        "containers": [_c("a", {"cpu": "500m"})]}
    # app phase: 0.5 + 1 (sidecar) = 1.5; while migrate runs: 2 + 1 (sidecar) = 3
    assert _as_text(pod_requests(spec)) == {"cpu": "3"}
    spec["initContainers"].reverse()  # migrate before the sidecar starts: 2 vs 1.5
    assert _as_text(pod_requests(spec)) == {"cpu": "2"}


def test_bad_requests_name_the_field_and_the_value() -> None:
    spec = {"initContainers": [_c("i", {"cpu": "lots"})], "containers": [_c("a")]}
    with pytest.raises(RequestError, match=r"^spec.initContainers\[0\].resources.requests.cpu: "
                                           r"invalid quantity 'lots'"):
        pod_requests(spec)
    with pytest.raises(RequestError, match=r"spec.containers\[0\].resources: expected an obj"):
        pod_requests({"containers": [{"name": "a", "resources": ["cpu"]}]})


def test_the_api_checks_every_quantity_the_rule_reads() -> None:
    """Init containers and extended resources are validated too: the scheduler reads
    them, so the API must refuse what the scheduler could not parse."""
    doc = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "w", "namespace": "default"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                        "initContainers": [_c("i", {"cpu": "1e3x"})],
                        "containers": [_c("c", {"cpu": "-1"}, {"nvidia.com/gpu": "two"})]}}}}
    with pytest.raises(InvalidObject) as info:
        validate_object(doc)
    errors = {e.path: e.message for e in info.value.errors}
    prefix = "spec.template.spec"
    assert set(errors) == {f"{prefix}.initContainers[0].resources.requests.cpu",
                           f"{prefix}.containers[0].resources.requests.cpu",
                           f"{prefix}.containers[0].resources.limits"}
    assert errors[f"{prefix}.containers[0].resources.requests.cpu"] == \
        "invalid quantity '-1': must not be negative"
    assert errors[f"{prefix}.containers[0].resources.limits"].startswith(
        "nvidia.com/gpu: invalid quantity 'two'")
    assert "invalid quantity '1e3x'" in errors[f"{prefix}.initContainers[0].resources.requests.cpu"]
