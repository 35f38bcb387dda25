"""Which lists of the Kubernetes kinds merge by key: the ``patchMergeKey`` /
``patchStrategy`` tags of ``k8s.io/api``'s types, for the kinds Flotilla serves.

One table, three readers: strategic-merge patch (`flotilla.api.patch.strategic`),
server-side apply's field sets (`flotilla.api.apply`) and the OpenAPI v3 documents
(``x-kubernetes-patch-merge-key``, so ``kubectl apply`` computes the same patch the server
applies). A list not named here is atomic: a patch replaces it whole. Flotilla's own
kinds have no entry: like a Kubernetes custom resource, they patch with merge-patch
semantics, lists replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True, slots=True)
class MergeList:
    """A list merged by ``key`` (None: a set of scalars, merged by value), whose items
    follow ``items`` (for lists of mappings)."""

    key: str | None
    items: Schema = field(default_factory=dict)
    #: ``patchStrategy:"merge,retainKeys"``: a patch may say which item keys survive.
    retain_keys: bool = False


Schema = Mapping[str, Union["Schema", MergeList]]

OBJECT_META: Schema = {
    "finalizers": MergeList(None),
    "ownerReferences": MergeList("uid"),
}

CONTAINER: Schema = {
    "ports": MergeList("containerPort"),
    "env": MergeList("name"),
    "volumeMounts": MergeList("mountPath"),
    "volumeDevices": MergeList("devicePath"),
}

POD_SPEC: Schema = {
    "volumes": MergeList("name", retain_keys=True),
    "initContainers": MergeList("name", CONTAINER),
    "containers": MergeList("name", CONTAINER),
    "ephemeralContainers": MergeList("name", CONTAINER),
    "imagePullSecrets": MergeList("name"),
    "hostAliases": MergeList("ip"),
    "topologySpreadConstraints": MergeList("topologyKey"),
    "resourceClaims": MergeList("name", retain_keys=True),
    "schedulingGates": MergeList("name"),
}

POD_TEMPLATE: Schema = {"metadata": OBJECT_META, "spec": POD_SPEC}
CONDITIONS: Schema = {"conditions": MergeList("type")}

#: Per kind (by ``kind``): the schema of the whole object.
KUBE_SCHEMAS: dict[str, Schema] = {
    "Deployment": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE},
                   "status": CONDITIONS},
    "Service": {"metadata": OBJECT_META, "spec": {"ports": MergeList("port")},
                "status": CONDITIONS},
    "ConfigMap": {"metadata": OBJECT_META},
    "Secret": {"metadata": OBJECT_META},
    "Event": {"metadata": OBJECT_META},
    "Role": {"metadata": OBJECT_META},
    "ClusterRole": {"metadata": OBJECT_META},
    "RoleBinding": {"metadata": OBJECT_META},
    "ClusterRoleBinding": {"metadata": OBJECT_META},
}

#: Flotilla's own kinds: only ``metadata`` has known list semantics.
GENERIC: Schema = {"metadata": OBJECT_META}


def schema_for(kind: str) -> Schema | None:
    """The strategic-merge schema of a Kubernetes kind, None for Flotilla's own kinds."""
    return KUBE_SCHEMAS.get(kind)


def child(schema: Schema, key: str) -> Schema | MergeList | None:
    return schema.get(key)
