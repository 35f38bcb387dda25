"""Per-pod samples of a Resource metric, from what the agents report.

Each agent writes its pods' CPU and memory into the Work status of the Deployment
(``podMetrics``, the metrics API's PodMetrics: `flotilla.agent.snapshot`); the status
controller copies every cluster's Work status onto the ResourceBinding's
``aggregatedStatus``. So one read of the binding gives every pod in every cluster,
which is what Kubernetes' replica calculator takes. A pod's request is the sum of its
containers' requests in the Deployment's template (as Kubernetes sums them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.controllers.autoscaling.replicas import PodSample
from flotilla.resources.quantity import QuantityError, integer_amount

__all__ = ["pod_request", "pod_samples"]


def pod_request(deployment: Mapping[str, Any], resource: str) -> float | None:
    """The pod template's request of ``resource`` (millicores, bytes); None if a
    container requests none (utilisation is then undefined, as in Kubernetes)."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    total = 0
    for container in spec.get("containers") or []:
        amount = ((container.get("resources") or {}).get("requests") or {}).get(resource)
        if amount is None:
            return None
        try:
            total += integer_amount(resource, amount)
        except QuantityError:
            return None
    return float(total) if total else None


def pod_samples(binding: Mapping[str, Any] | None, deployment: Mapping[str, Any],
                resource: str) -> tuple[PodSample, ...]:
    """Every reported pod of the target, in every cluster, for ``resource``."""
    if binding is None:
        return ()
    request = pod_request(deployment, resource)
    out: list[PodSample] = []
    for item in (binding.get("status") or {}).get("aggregatedStatus") or []:
        cluster = str(item.get("clusterName", ""))
        for pod in (item.get("status") or {}).get("podMetrics") or []:
            try:
                value = float(integer_amount(resource, pod.get(resource)))
            except (QuantityError, TypeError):
                value = None
            out.append(PodSample(f"{cluster}/{pod.get('name')}", value, request,
                                 ready=bool(pod.get("ready"))))
    return tuple(out)
