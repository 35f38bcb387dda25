"""A GatewayReport as the cluster-health controller reads it: one gateway's view of
which clusters its active health checks reach."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flotilla.resources.views import fields


@dataclass(frozen=True, slots=True)
class ClusterReach:
    """One cluster in one report; ``since`` as stored ("" if none)."""

    cluster: str
    reachable: bool
    since: str = ""
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class GatewayReportView:
    """Build it with `GatewayReportView.of`; ``renew_time`` is what the gateway last
    wrote ("" if never), which the controller watches change to judge freshness."""

    meta: fields.Meta = field(default_factory=fields.Meta)
    renew_time: str = ""
    clusters: Mapping[str, ClusterReach] = field(default_factory=fields.empty, hash=False)

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> GatewayReportView:
        obj = fields.mapping(obj)
        spec = fields.mapping(obj.get("spec"))
        entries: dict[str, ClusterReach] = {}
        for raw in fields.entries(spec.get("clusters")):
            name = fields.text(raw.get("name"))
            if name and isinstance(raw.get("reachable"), bool) and name not in entries:
                entries[name] = ClusterReach(name, bool(raw["reachable"]),
                                             fields.text(raw.get("since")),
                                             fields.text(raw.get("reason")),
                                             fields.text(raw.get("message")))
        return cls(fields.Meta.of(obj.get("metadata")), fields.text(spec.get("renewTime")),
                   MappingProxyType(entries))
