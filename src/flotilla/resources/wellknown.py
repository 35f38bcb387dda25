"""Names every component agrees on: system namespaces, label keys, taint keys, time format.

Kept in one module so that the agent writing an object and the controller reading it can
never drift apart on a string.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: Where per-cluster heartbeat Leases live.
SYSTEM_NAMESPACE = "flotilla-system"
#: The controller leader's Lease in `SYSTEM_NAMESPACE` (never a cluster's heartbeat).
CONTROLLER_LEADER_LEASE = "flotilla-controllers"
#: Works for cluster C live in namespace ``flotilla-es-C`` (Karmada's "execution space").
EXECUTION_NAMESPACE_PREFIX = "flotilla-es-"

LABEL_CLUSTER = "flotilla.io/cluster"
LABEL_SERVICE_NAME = "flotilla.io/service-name"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_BURST = "flotilla.io/burst"
#: On a Job a member runs: the completion indexes that are this cluster's share (compact
#: text, `flotilla.resources.indexes`), set by placement; absent means all of them.
ANNOTATION_JOB_INDEXES = "batch.flotilla.io/indexes"

TAINT_UNREACHABLE = "cluster.flotilla.io/unreachable"
TAINT_NOT_READY = "cluster.flotilla.io/not-ready"
#: The gateways' health checks reach none of the cluster's endpoints (TrafficReachable
#: False): set by cluster health, tolerated for the application-failover toleration.
TAINT_TRAFFIC_UNREACHABLE = "cluster.flotilla.io/traffic-unreachable"
#: The Cluster condition the gateways' reports feed (`GatewayReport`).
CONDITION_TRAFFIC_REACHABLE = "TrafficReachable"


def execution_namespace(cluster: str) -> str:
    return EXECUTION_NAMESPACE_PREFIX + cluster


def cluster_of_execution_namespace(namespace: str) -> str | None:
    if namespace.startswith(EXECUTION_NAMESPACE_PREFIX):
        return namespace[len(EXECUTION_NAMESPACE_PREFIX):]
    return None


def now_rfc3339() -> str:
    """Current UTC time as Kubernetes writes it: ``2026-11-22T03:14:18.123456Z``."""
    return rfc3339_at(datetime.now(UTC).timestamp())


def rfc3339_at(seconds: float) -> str:
    """``seconds`` since the epoch in the format of `now_rfc3339`: for decisions that
    take their clock as an argument (tests drive it) and still write timestamps."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for a timestamp written by `now_rfc3339` (or without µs)."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).timestamp()
