"""Manifests → what is server-side applied, and which owned objects are pruned.

Pure functions: checked whole before anything is sent, so a bad manifest is refused
(naming the object) and nothing is half-applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from flotilla.runtimes.base import Manifest, ManifestError
from flotilla.runtimes.kubernetes.config import MANAGED_BY_LABEL, OWNED_LABEL

#: kinds pruned even when no manifest of them is wanted now (with those seen this run)
PRUNED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"),
    ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("v1", "ServiceAccount"),
    ("batch/v1", "Job"),
)
#: cluster-scoped kinds Flotilla may apply; everything else is namespaced
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding",
                            "CustomResourceDefinition", "PriorityClass", "StorageClass"})


@dataclass(frozen=True, slots=True)
class ObjectKey:
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def key_of(obj: Manifest) -> ObjectKey:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    namespace = "" if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "default")
    return ObjectKey(str(obj.get("apiVersion", "")), kind, namespace, str(meta.get("name", "")))


def prepare(manifests: list[Manifest], cluster: str) -> list[Manifest]:
    """The objects to apply, in order: each labelled as this cluster's, defaults the
    1.20 apply needs filled in. Raises ManifestError naming the first bad object."""
    out: list[Manifest] = []
    seen: set[ObjectKey] = set()
    for i, raw in enumerate(manifests):
        where = f"manifests[{i}]"
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: expected an object")
        for field in ("apiVersion", "kind"):
            if not isinstance(raw.get(field), str) or not raw[field]:
                raise ManifestError(f"{where}: {field} is required")
        meta = raw.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) \
                or not meta["name"]:
            raise ManifestError(f"{where} ({raw['kind']}): metadata.name is required")
        obj = copy.deepcopy(raw)
        obj_meta = obj["metadata"]
        for server_owned in ("resourceVersion", "uid", "creationTimestamp", "managedFields",
                             "generation", "selfLink"):
            obj_meta.pop(server_owned, None)
        obj.pop("status", None)
        if obj["kind"] not in CLUSTER_SCOPED:
            obj_meta["namespace"] = obj_meta.get("namespace") or "default"
        labels = dict(obj_meta.get("labels") or {})
        labels[OWNED_LABEL] = cluster
        labels.setdefault(MANAGED_BY_LABEL, "flotilla")
        obj_meta["labels"] = labels
        if obj["kind"] == "Service":
            _service_defaults(obj, where)
        key = key_of(obj)
        if key in seen:
            continue
        seen.add(key)
        out.append(obj)
    return out


def _service_defaults(obj: Manifest, where: str) -> None:
    """Kubernetes 1.20 keys a Service's ports by (port, protocol) in server-side apply
    and refuses a port without its protocol, although it defaults it; so fill it in."""
    ports = (obj.get("spec") or {}).get("ports")
    if not isinstance(ports, list):
        return
    for j, port in enumerate(ports):
        if not isinstance(port, dict):
            raise ManifestError(f"{where} (Service): spec.ports[{j}]: expected an object")
        port.setdefault("protocol", "TCP")


def namespaces_of(objects: list[Manifest]) -> list[str]:
    """Namespaces the objects live in, to be created when missing (never pruned: they
    may hold objects Flotilla does not own)."""
    wanted = {key_of(o).namespace for o in objects} - {""}
    declared = {key_of(o).name for o in objects if o["kind"] == "Namespace"}
    return sorted(wanted - declared)


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Deployment's ``matchLabels`` (expressions are not read) against pod labels."""
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())
