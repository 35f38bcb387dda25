"""Small valid objects of every kind, and a desired-state change for each (which must
bump ``generation``), built in code so a model change shows up as a failing test."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flotilla.resources.kinds import KINDS, Kind, by_kind

Object = dict[str, Any]


def _deployment(replicas: int) -> Object:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    }


_BODIES: dict[str, Object] = {
    "Cluster": {"spec": {"region": "eu-west", "zone": "eu-west-1a"}},
    "Deployment": {"spec": _deployment(2)},
    "Job": {"spec": {"completions": 4, "parallelism": 2, "completionMode": "Indexed",
                     "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "work", "image": "python:3"}]}}}},
    "CronJob": {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "work", "image": "python:3"}]}}}}}},
    "Service": {"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    "ConfigMap": {"data": {"greeting": "hello"}},
    "Secret": {"stringData": {"password": "s3cret"}},
    "PropagationPolicy": {"spec": {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}},
    "ClusterPropagationPolicy": {"spec": {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}},
    "OverridePolicy": {"spec": {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}},
    "ClusterOverridePolicy": {"spec": {"resourceSelectors": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}},
    "ResourceBinding": {"spec": {
        "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "replicas": 2}},
    "Work": {"spec": {"workload": {"manifests": []}}},
    "TrafficPolicy": {"spec": {"service": "web", "hosts": ["web.example.com"]}},
    "ServiceExport": {"spec": {}},
    "ServiceImport": {"spec": {"ports": [{"port": 80}]}},
    "RolloutPolicy": {"spec": {"selector": {"name": "web"}, "waves": [{"percent": 100}]}},
    "FederatedHPA": {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 5,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}},
    "CronFederatedHPA": {"spec": {
        "scaleTargetRef": {"apiVersion": "autoscaling.karmada.io/v1alpha1",
                           "kind": "FederatedHPA", "name": "web"},
        "rules": [{"name": "sale", "schedule": "0 20 * * *", "targetMinReplicas": 6,
                   "timeZone": "Asia/Shanghai"}]}},
    "Event": {"involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": "web"},
              "reason": "Scheduled", "message": "placed"},
    "EndpointSlice": {"spec": {"service": "web", "cluster": "east"}},
    "Lease": {"spec": {}},
    "GatewayReport": {"spec": {"clusters": [{"name": "east", "reachable": True}]}},
    "Role": {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]},
    "ClusterRole": {"rules": [{"verbs": ["list"], "apiGroups": ["*"], "resources": ["*"]}]},
    "RoleBinding": {"subjects": [{"kind": "User", "name": "ci"}],
                    "roleRef": {"kind": "ClusterRole", "name": "view"}},
    "ClusterRoleBinding": {"subjects": [{"kind": "Group", "name": "view"}],
                           "roleRef": {"kind": "ClusterRole", "name": "view"}},
}

#: One change to each kind's desired state (spec, data, ...): generation must move.
#: ServiceExport has none (its spec is empty in MCS v1alpha1).
_MUTATIONS: dict[str, Callable[[Object], None]] = {
    "Cluster": lambda o: o["spec"].update(zone="eu-west-1b"),
    "Deployment": lambda o: o["spec"].update(replicas=3),
    "Job": lambda o: o["spec"].update(parallelism=4),
    "CronJob": lambda o: o["spec"].update(schedule="@hourly"),
    "Service": lambda o: o["spec"].update(ports=[{"port": 8080}]),
    "ConfigMap": lambda o: o["data"].update(greeting="bonjour"),
    "Secret": lambda o: o["stringData"].update(password="other"),
    "PropagationPolicy": lambda o: o["spec"]["resourceSelectors"][0].update(name="api"),
    "ClusterPropagationPolicy": lambda o: o["spec"]["resourceSelectors"][0].update(name="api"),
    "OverridePolicy": lambda o: o["spec"]["resourceSelectors"][0].update(name="api"),
    "ClusterOverridePolicy": lambda o: o["spec"]["resourceSelectors"][0].update(name="api"),
    "ResourceBinding": lambda o: o["spec"].update(replicas=4),
    "Work": lambda o: o["spec"]["workload"]["manifests"].append(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    "TrafficPolicy": lambda o: o["spec"].update(hosts=["shop.example.com"]),
    "ServiceImport": lambda o: o["spec"].update(ports=[{"port": 81}]),
    "RolloutPolicy": lambda o: o["spec"].update(waves=[{"percent": 50}, {"percent": 100}]),
    "FederatedHPA": lambda o: o["spec"].update(maxReplicas=9),
    "CronFederatedHPA": lambda o: o["spec"]["rules"][0].update(targetMinReplicas=8),
    "Event": lambda o: o.update(message="placed again"),
    "EndpointSlice": lambda o: o["spec"].update(cluster="west"),
    "Lease": lambda o: o.update(spec={"holderIdentity": "agent-east"}),
    "GatewayReport": lambda o: o["spec"]["clusters"][0].update(reachable=False),
    "Role": lambda o: o["rules"][0].update(verbs=["get", "list"]),
    "ClusterRole": lambda o: o["rules"][0].update(verbs=["watch"]),
    "RoleBinding": lambda o: o["subjects"].append({"kind": "Group", "name": "edit"}),
    "ClusterRoleBinding": lambda o: o["subjects"].append({"kind": "User", "name": "x"}),
}


def sample(kind: Kind | str, name: str = "sample", namespace: str = "default",
           api_version: str | None = None, labels: dict[str, str] | None = None) -> Object:
    k = by_kind(kind) if isinstance(kind, str) else kind
    meta: Object = {"name": name}
    if k.namespaced:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    obj: Object = {"apiVersion": api_version or k.api_version, "kind": k.kind, "metadata": meta}
    obj.update(copy.deepcopy(_BODIES[k.kind]))
    return obj


def mutate(obj: Object) -> Object | None:
    """A copy of ``obj`` with its desired state changed; None for a kind without one."""
    change = _MUTATIONS.get(obj["kind"])
    if change is None:
        return None
    out = copy.deepcopy(obj)
    change(out)
    return out


ALL_KINDS: tuple[Kind, ...] = KINDS
