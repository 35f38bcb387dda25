"""Objects read from the cluster's API (plain dicts) → the runtime's status dataclasses.

Pure and total: a field the server left out reads as zero or empty, never raises.
"""

from __future__ import annotations

from typing import Any

from flotilla.resources.indexes import IndexSetError, format_indexes, parse_indexes
from flotilla.resources.quantity import QuantityError, integer_amount
from flotilla.resources.requests import RequestError, pod_requests
from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES, parse_rfc3339
from flotilla.runtimes.base import (
    Condition,
    ContainerStatus,
    Endpoint,
    JobProgress,
    NodeStatus,
    PodStatus,
    Resources,
    WorkloadStatus,
)

Obj = dict[str, Any]
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def resources(raw: Any) -> Resources:
    """A Node's capacity or allocatable; quantities it cannot read count as zero."""
    raw = raw if isinstance(raw, dict) else {}
    out = {}
    for name in ("cpu", "memory", "pods"):
        try:
            out[name] = integer_amount(name, raw[name]) if name in raw else 0
        except QuantityError:
            out[name] = 0
    return Resources(out["cpu"], out["memory"], out["pods"])


def requests_of(pod_spec: Any) -> Resources:
    """What one pod asks for (Kubernetes' effective request rule), as one pod."""
    try:
        req = pod_requests(pod_spec or {})
    except RequestError:
        req = {}
    return Resources(integer_amount("cpu", req["cpu"]) if "cpu" in req else 0,
                     integer_amount("memory", req["memory"]) if "memory" in req else 0, 1)


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def node_status(node: Obj, pods: list[Obj]) -> NodeStatus:
    name = str(_meta(node).get("name", ""))
    status = node.get("status") or {}
    bound = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name
             and (p.get("status") or {}).get("phase") not in TERMINAL_PHASES]
    allocated = Resources()
    for p in bound:
        allocated = allocated + requests_of(p.get("spec"))
    ready = node_ready(node) and not (node.get("spec") or {}).get("unschedulable")
    return NodeStatus(name=name, ready=ready, capacity=resources(status.get("capacity")),
                      allocatable=resources(status.get("allocatable")) if ready
                      else Resources(), allocated=allocated, pods=len(bound),
                      labels=dict(_meta(node).get("labels") or {}))


def _conditions(raw: Any) -> tuple[Condition, ...]:
    return tuple(Condition(str(c.get("type", "")), str(c.get("status", "Unknown")),
                           str(c.get("reason") or ""), str(c.get("message") or ""))
                 for c in raw or [] if isinstance(c, dict))


def crash_looping(pods: list[Obj]) -> list[tuple[str, str]]:
    """(pod, container) pairs waiting in CrashLoopBackOff."""
    out = []
    for p in pods:
        for c in (p.get("status") or {}).get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                out.append((str(_meta(p).get("name", "")), str(c.get("name", ""))))
    return out


def workload_status(manifest: Obj, live: Obj | None, pods: list[Obj]) -> WorkloadStatus:
    """A Deployment's status as the cluster reports it (zeros until it exists), with a
    ``PodsCrashLooping`` condition when any of its pods is in CrashLoopBackOff."""
    meta = _meta(manifest)
    desired = (manifest.get("spec") or {}).get("replicas")
    desired = 1 if desired is None else _int(desired)
    status = (live or {}).get("status") or {}
    conditions = _conditions(status.get("conditions"))
    looping = crash_looping(pods)
    if looping:
        pod, container = looping[0]
        conditions += (Condition("PodsCrashLooping", "True", "CrashLoopBackOff",
                                 f"{len(looping)} container(s) in CrashLoopBackOff, "
                                 f"e.g. {container} in pod {pod}"),)
    return WorkloadStatus(
        kind=str(manifest.get("kind", "Deployment")),
        namespace=str(meta.get("namespace") or "default"), name=str(meta.get("name", "")),
        desired_replicas=desired, replicas=_int(status.get("replicas")),
        updated_replicas=_int(status.get("updatedReplicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        available_replicas=_int(status.get("availableReplicas")),
        observed_generation=_int(status.get("observedGeneration")), conditions=conditions)


def _indexes(text: Any) -> frozenset[int]:
    try:
        return parse_indexes(text) if isinstance(text, str) else frozenset()
    except IndexSetError:
        return frozenset()


def _seconds(value: Any) -> float | None:
    try:
        return parse_rfc3339(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def job_status(manifest: Obj, live: Obj | None) -> WorkloadStatus:
    """A Job's progress as the member's own Job controller reports it (zeros until the
    Job exists): counts, Complete/Failed with Kubernetes' reasons, and for an Indexed
    Job its completed indexes, kept to the share Flotilla gave this cluster (the
    ``batch.flotilla.io/indexes`` annotation) so that the federation never counts an
    index outside the share as this cluster's."""
    meta = _meta(manifest)
    spec = manifest.get("spec") or {}
    status = (live or {}).get("status") or {}
    indexed = spec.get("completionMode") == "Indexed"
    share = str((meta.get("annotations") or {}).get(ANNOTATION_JOB_INDEXES) or "")
    completed = _indexes(status.get("completedIndexes"))
    if share:
        completed &= _indexes(share)
    active = _int(status.get("active"))
    ready = _int(status.get("ready"))
    parallelism = spec.get("parallelism")
    return WorkloadStatus(
        kind="Job", namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name", "")),
        desired_replicas=1 if parallelism is None else _int(parallelism),
        replicas=active, updated_replicas=active, ready_replicas=ready,
        available_replicas=ready, observed_generation=0,
        conditions=_conditions(status.get("conditions")),
        job=JobProgress(
            active=active,
            succeeded=len(completed) if indexed and share else _int(status.get("succeeded")),
            failed=_int(status.get("failed")),
            completed_indexes=format_indexes(completed) if indexed else "",
            indexes=share if indexed else "",
            start_time=_seconds(status.get("startTime")),
            completion_time=_seconds(status.get("completionTime"))))


def _pod_owner(pod: Obj) -> str:
    """``Deployment/NAME`` for a pod of a ReplicaSet a Deployment made, else the direct
    owner (``Kind/name``) or ""."""
    refs = _meta(pod).get("ownerReferences") or []
    if not refs:
        return ""
    ref = refs[0]
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    template_hash = (_meta(pod).get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"Deployment/{name[: -len(template_hash) - 1]}"
    return f"{kind}/{name}"


def _container(spec: Obj, status: Obj | None) -> ContainerStatus:
    status = status or {}
    state = status.get("state") or {}
    which = next((s for s in ("running", "terminated", "waiting") if s in state), "waiting")
    detail = state.get(which) or {}
    last = ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode")
    reason = str(detail.get("reason") or ("Running" if which == "running" else
                                          "ContainerCreating" if which == "waiting" else ""))
    return ContainerStatus(
        name=str(spec.get("name", "")), image=str(spec.get("image", "")), state=which,
        reason=reason, message=str(detail.get("message") or ""),
        ready=bool(status.get("ready")), restart_count=_int(status.get("restartCount")),
        pid=None, ports={str(p.get("name") or p.get("containerPort")): _int(p.get("containerPort"))
                         for p in spec.get("ports") or [] if isinstance(p, dict)},
        last_exit_code=last if isinstance(last, int) else None)


def pod_status(pod: Obj) -> PodStatus:
    meta = _meta(pod)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    by_name = {c.get("name"): c for c in status.get("containerStatuses") or []}
    containers = tuple(_container(c, by_name.get(c.get("name")))
                       for c in spec.get("containers") or [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    phase = str(status.get("phase") or "Pending")
    waiting = [c.reason for c in containers if c.state == "waiting" and c.reason]
    terminating = bool(meta.get("deletionTimestamp"))
    shown = "Terminating" if terminating else waiting[0] if waiting and phase != "Pending" \
        else phase
    created = 0.0
    return PodStatus(
        namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
        owner=_pod_owner(pod), node=spec.get("nodeName"), phase=phase, status=shown,
        reason=str(status.get("reason") or ""), message=str(status.get("message") or ""),
        ready=ready, terminating=terminating,
        restarts=sum(c.restart_count for c in containers), address=str(status.get("podIP") or ""),
        labels=dict(meta.get("labels") or {}),
        template_hash=str((meta.get("labels") or {}).get("pod-template-hash", "")),
        created=created, containers=containers)


def slice_endpoints(slices: list[Obj]) -> list[Endpoint]:
    """The ready endpoints of a Service's EndpointSlices (v1 and v1beta1 alike: the
    fields read here did not change; v1beta1's ``topology`` hostname stands in for
    v1's ``nodeName``)."""
    out = []
    for sl in sorted(slices, key=lambda s: str(_meta(s).get("name", ""))):
        ports = {str(p.get("name") or ""): _int(p.get("port"))
                 for p in sl.get("ports") or [] if isinstance(p, dict)}
        for ep in sl.get("endpoints") or []:
            if not (ep.get("conditions") or {}).get("ready"):
                continue
            addresses = ep.get("addresses") or []
            if not addresses:
                continue
            ref = ep.get("targetRef") or {}
            node = ep.get("nodeName") or (ep.get("topology") or {}).get("kubernetes.io/hostname")
            out.append(Endpoint(address=str(addresses[0]), ports=ports,
                                pod=str(ref.get("name") or addresses[0]),
                                node=str(node) if node else None))
    return out
