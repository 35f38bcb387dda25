"""From a scheduled binding to the manifests each cluster must run (pure functions).

A Work carries the template as the member must apply it: server-set metadata removed,
the cluster's replica count set, overrides applied, and what the workload needs to run
alongside it: the ConfigMaps and Secrets it references (``propagateDeps``) and the
Services that select its pods but have no policy of their own. Everything a workload
needs therefore arrives in one Work, atomically.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.controllers.placement.overrides import Applied, apply_overrides
from flotilla.resources.labels import selector_from_labels
from flotilla.scheduler import ClusterInfo

Object = dict[str, Any]
#: Metadata the control plane sets; a member must not receive ours.
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp",
                  "deletionTimestamp", "managedFields", "ownerReferences", "finalizers")


def has_replicas(template: Object) -> bool:
    return template.get("kind") == "Deployment"


def clean(template: Object) -> Object:
    """A copy fit to send to a member: no status, no server-set metadata."""
    out = copy.deepcopy(template)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    meta.setdefault("namespace", "default")
    return out


def referenced_dependencies(template: Object) -> set[tuple[str, str]]:
    """(kind, name) of the ConfigMaps and Secrets a pod template uses: env valueFrom,
    envFrom, volumes and imagePullSecrets."""
    pod = (((template.get("spec") or {}).get("template") or {}).get("spec")) or {}
    found: set[tuple[str, str]] = set()
    for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            if (ref := source.get("configMapKeyRef")) and ref.get("name"):
                found.add(("ConfigMap", ref["name"]))
            if (ref := source.get("secretKeyRef")) and ref.get("name"):
                found.add(("Secret", ref["name"]))
        for env_from in c.get("envFrom") or []:
            if (ref := env_from.get("configMapRef")) and ref.get("name"):
                found.add(("ConfigMap", ref["name"]))
            if (ref := env_from.get("secretRef")) and ref.get("name"):
                found.add(("Secret", ref["name"]))
    for vol in pod.get("volumes") or []:
        if (ref := vol.get("configMap")) and ref.get("name"):
            found.add(("ConfigMap", ref["name"]))
        if (ref := vol.get("secret")) and ref.get("secretName"):
            found.add(("Secret", ref["secretName"]))
    for ref in pod.get("imagePullSecrets") or []:
        if ref.get("name"):
            found.add(("Secret", ref["name"]))
    return found


def services_selecting(template: Object, services: Iterable[Object]) -> list[Object]:
    """Services in the template's namespace whose selector matches its pods."""
    labels = ((((template.get("spec") or {}).get("template") or {}).get("metadata") or {})
              .get("labels")) or {}
    namespace = (template.get("metadata") or {}).get("namespace") or "default"
    out = []
    for svc in services:
        meta = svc.get("metadata") or {}
        selector = (svc.get("spec") or {}).get("selector") or {}
        if (meta.get("namespace") or "default") != namespace or not selector:
            continue
        if selector_from_labels(selector).matches(labels):
            out.append(svc)
    return sorted(out, key=lambda s: s["metadata"]["name"])


@dataclass(slots=True)
class Rendered:
    manifests: list[Object]
    applied: list[Applied] = field(default_factory=list)


def render_for_cluster(
    template: Object,
    replicas: int | None,
    cluster: ClusterInfo,
    overrides: Iterable[Object],
    companions: Iterable[Object] = (),
) -> Rendered:
    """The Work manifests for one cluster: the template (with ``replicas`` when it has
    replicas) and its companions (dependencies, following Services), overrides applied."""
    main = clean(template)
    if replicas is not None and has_replicas(main):
        main.setdefault("spec", {})["replicas"] = replicas
    policies = list(overrides)
    main, applied = apply_overrides(main, cluster, policies)
    manifests = [main]
    for companion in companions:
        rendered, more = apply_overrides(clean(companion), cluster, policies)
        manifests.append(rendered)
        applied += more
    return Rendered(manifests, applied)


def by_name(objects: Iterable[Object]) -> Mapping[str, Object]:
    return {o["metadata"]["name"]: o for o in objects}
