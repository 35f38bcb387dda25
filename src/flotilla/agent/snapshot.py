"""Pure functions from the runtime's view to the API objects the agent reports.

Kept free of I/O so they are trivially testable and so the reporter can compare the
new snapshot with the last one it wrote and skip writes that would change nothing.
"""

from __future__ import annotations

from typing import Any

from flotilla.agent.config import AgentConfig
from flotilla.resources.kinds import by_kind
from flotilla.resources.naming import endpoint_slice_name
from flotilla.resources.wellknown import (
    LABEL_CLUSTER,
    LABEL_REGION,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    rfc3339_at,
)
from flotilla.runtimes.base import (
    CapacityStatus,
    Resources,
    ServiceEndpoints,
    WorkloadStatus,
)
from flotilla.runtimes.base import manifest_identifier as manifest_identifier  # its home

Object = dict[str, Any]
CLUSTER = by_kind("Cluster")
ENDPOINT_SLICE = by_kind("EndpointSlice")


def cluster_manifest(cfg: AgentConfig, api_endpoint: str | None = None) -> Object:
    """The Cluster as this agent registers it. Taints and cordon are not the agent's:
    `merge_cluster_spec` keeps whatever the control plane or an operator set there."""
    labels = {**cfg.labels, LABEL_CLUSTER: cfg.cluster}
    if cfg.region:
        labels[LABEL_REGION] = cfg.region
    if cfg.zone:
        labels[LABEL_ZONE] = cfg.zone
    return {
        "apiVersion": CLUSTER.api_version,
        "kind": "Cluster",
        "metadata": {"name": cfg.cluster, "labels": labels},
        "spec": {
            "region": cfg.region,
            "zone": cfg.zone,
            "provider": cfg.provider,
            "ingressAddress": cfg.address,
            "runtime": cfg.runtime,
            **({"apiEndpoint": api_endpoint} if api_endpoint else {}),
        },
    }


def merge_cluster_spec(current: Object, wanted: Object) -> bool:
    """Bring ``current`` to the agent's view of identity fields; True if it changed."""
    changed = False
    meta = current.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    for key, value in wanted["metadata"]["labels"].items():
        if labels.get(key) != value:
            labels[key] = value
            changed = True
    meta["labels"] = labels
    spec = current.setdefault("spec", {})
    for key, value in wanted["spec"].items():
        if spec.get(key) != value:
            spec[key] = value
            changed = True
    return changed


def quantities(r: Resources) -> dict[str, str | int]:
    """Kubernetes quantity strings (cpu in millicores, memory in bytes) and a pod count."""
    return {"cpu": f"{r.cpu_millis}m", "memory": str(r.memory_bytes), "pods": r.pods}


def capacity_status(cap: CapacityStatus) -> Object:
    return {
        "capacity": quantities(cap.capacity),
        "allocatable": quantities(cap.allocatable),
        "allocated": quantities(cap.allocated),
        "nodeSummary": {"total": cap.nodes.total, "ready": cap.nodes.ready},
    }


def endpoint_slice(cfg: AgentConfig, svc: ServiceEndpoints) -> Object:
    """One EndpointSlice per (Service, cluster): what the gateway and the DNS route to.
    ValueError when the pair has no unique name (`endpoint_slice_name`)."""
    ingress_ports = [
        {"name": p.name, "port": p.ingress_port, "protocol": p.protocol}
        for p in svc.ports if p.ingress_port is not None
    ]
    return {
        "apiVersion": ENDPOINT_SLICE.api_version,
        "kind": "EndpointSlice",
        "metadata": {
            "name": endpoint_slice_name(svc.name, cfg.cluster),
            "namespace": svc.namespace,
            "labels": {LABEL_SERVICE_NAME: svc.name, LABEL_CLUSTER: cfg.cluster},
        },
        "spec": {
            "service": svc.name,
            "cluster": cfg.cluster,
            "region": cfg.region,
            "zone": cfg.zone,
            "ingress": {"address": cfg.address, "ports": ingress_ports},
            "endpoints": [
                {
                    "address": ep.address,
                    "ports": [
                        {"name": name, "port": port, "protocol": _protocol(svc, name)}
                        for name, port in sorted(ep.ports.items())
                    ],
                    "ready": ep.ready,
                    "pod": ep.pod,
                    "node": ep.node or "",
                    "zone": cfg.zone,
                }
                for ep in sorted(svc.endpoints, key=lambda e: e.pod)
            ],
        },
    }


def _protocol(svc: ServiceEndpoints, port_name: str) -> str:
    for p in svc.ports:
        if p.name == port_name:
            return p.protocol
    return "TCP"


def workload_health(w: WorkloadStatus) -> str:
    """Healthy when every desired replica is available; Unhealthy when none is ready
    (the signal application failover acts on); Unknown while it is progressing. A Job
    is Healthy while it runs or once Complete, Unhealthy once Failed."""
    if w.job is not None:
        return "Unhealthy" if any(c.type == "Failed" for c in w.conditions) else "Healthy"
    if w.desired_replicas == 0 or w.available_replicas >= w.desired_replicas:
        return "Healthy"
    return "Unhealthy" if w.ready_replicas == 0 else "Unknown"


def workload_status(w: WorkloadStatus) -> Object:
    """A Deployment's (or a Job's, `job_status`) status in Kubernetes' shape, plus
    ``podMetrics`` (the metrics API's PodMetrics, one line a pod) where the runtime
    measures them."""
    if w.job is not None:
        return job_status(w)
    out = _deployment_status(w)
    if w.pod_usage:
        out["podMetrics"] = [{"name": u.name, "cpu": f"{u.cpu_millicores}m",
                              "memory": str(u.memory_bytes), "ready": u.ready}
                             for u in w.pod_usage]
    return out


def _deployment_status(w: WorkloadStatus) -> Object:
    return {
        "replicas": w.replicas,
        "desiredReplicas": w.desired_replicas,
        "updatedReplicas": w.updated_replicas,
        "readyReplicas": w.ready_replicas,
        "availableReplicas": w.available_replicas,
        "observedGeneration": w.observed_generation,
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in w.conditions
        ],
    }


def job_status(w: WorkloadStatus) -> Object:
    """A Job's status on one cluster in the shape of Kubernetes ``JobStatus``, plus
    ``indexes`` (this cluster's share) and ``ignored`` (failures not counted)."""
    job = w.job
    assert job is not None
    out: Object = {
        "active": job.active, "succeeded": job.succeeded, "failed": job.failed,
        "ignored": job.ignored,
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in w.conditions
        ],
    }
    if job.indexes:
        out["indexes"] = job.indexes
        out["completedIndexes"] = job.completed_indexes
    if job.start_time is not None:
        out["startTime"] = rfc3339_at(job.start_time)
    if job.completion_time is not None:
        out["completionTime"] = rfc3339_at(job.completion_time)
    return out

