"""A Work (the manifests one member cluster must run) as the controllers read it.

Three things are read of a Work by more than one component, and so live here: which
cluster it is for (its execution namespace), which binding it was rendered from (the
`LABEL_BINDING` label), and the manifests and per-manifest statuses its agent reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources import conditions
from flotilla.resources.views.binding import LABEL_BINDING
from flotilla.resources.views.fields import Meta, entries, frozen_json, mapping, text
from flotilla.resources.wellknown import cluster_of_execution_namespace

APPLIED = "Applied"


@dataclass(frozen=True, slots=True)
class ManifestStatus:
    """One ``status.manifestStatuses`` entry: a manifest's state on the member."""

    kind: str
    namespace: str
    name: str
    health: str = ""
    #: The member's status of the object (replica counts), read-only.
    status: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> ManifestStatus:
        ident = mapping(raw.get("identifier"))
        return cls(text(ident.get("kind")), text(ident.get("namespace")),
                   text(ident.get("name")), text(raw.get("health")),
                   frozen_json(raw.get("status")))


@dataclass(frozen=True, slots=True)
class WorkView:
    """What the controllers read of a Work. Build it with `of`."""

    meta: Meta = field(default_factory=Meta)
    #: The member cluster (from the execution namespace); "" when not in one.
    cluster: str = ""
    #: The core/v1 Service manifests of ``spec.workload.manifests`` (what discovery
    #: exports), each a read-only copy; the other manifests are the agent's business
    #: and are not copied on every read.
    services: tuple[Mapping[str, Any], ...] = ()
    manifest_statuses: tuple[ManifestStatus, ...] = ()
    applied: conditions.Condition | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> WorkView:
        """The view of a stored Work dict; never raises."""
        obj = mapping(obj)
        meta = Meta.of(obj.get("metadata"))
        status = mapping(obj.get("status"))
        applied = conditions.find(status.get("conditions"), APPLIED)
        return cls(
            meta=meta,
            cluster=cluster_of_execution_namespace(meta.namespace) or "",
            services=tuple(frozen_json(m) for m in entries(
                mapping(mapping(obj.get("spec")).get("workload")).get("manifests"))
                if m.get("kind") == "Service" and m.get("apiVersion") == "v1"),
            manifest_statuses=tuple(ManifestStatus.of(m)
                                    for m in entries(status.get("manifestStatuses"))),
            applied=conditions.Condition.of(applied) if applied is not None else None,
        )

    @property
    def binding(self) -> tuple[str, str] | None:
        """(namespace, name) of the binding it was rendered from; None if unlabelled."""
        return binding_of_label(self.meta.labels.get(LABEL_BINDING))

    @property
    def is_applied(self) -> bool:
        return self.applied is not None and self.applied.status == conditions.TRUE

    def manifest_status(self, kind: str, name: str) -> ManifestStatus | None:
        """The reported status of the manifest ``kind``/``name``, if any."""
        return next((m for m in self.manifest_statuses
                     if m.kind == kind and m.name == name), None)


def binding_of_label(label: str | None) -> tuple[str, str] | None:
    """The (namespace, name) a `LABEL_BINDING` value names; None if it names none."""
    if not label or "." not in label:
        return None
    namespace, _, name = label.partition(".")
    return namespace, name
