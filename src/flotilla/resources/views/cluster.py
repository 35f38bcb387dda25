"""A member Cluster as the control plane and the data planes read it.

The rule that matters most here is `ClusterView.serves_traffic`: failover (may replicas
live there again), discovery (does it contribute endpoints to a ServiceImport), the DNS
(is it a target) and the gateway (are its endpoints routable) must give the same answer
for the same Cluster, or a client is sent where the control plane has already given up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flotilla.resources import conditions
from flotilla.resources.views import fields
from flotilla.resources.wellknown import (
    CONDITION_TRAFFIC_REACHABLE,
    TAINT_TRAFFIC_UNREACHABLE,
    TAINT_UNREACHABLE,
)

READY = "Ready"
NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"

_empty = fields.empty
_mapping = fields.mapping
_text = fields.text
_frozen_strings = fields.frozen_strings


def _frozen_quantities(value: object) -> Mapping[str, str]:
    """A read-only copy of a resource list, each quantity as the text the API accepts
    (``pods: 110`` and ``pods: "110"`` read the same)."""
    return MappingProxyType({
        k: str(v) for k, v in _mapping(value).items()
        if isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool)
    })


@dataclass(frozen=True, slots=True)
class Taint:
    """A taint on a cluster (``corev1.Taint``); ``time_added`` as stored, "" if none."""

    key: str
    effect: str
    value: str = ""
    time_added: str = ""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Taint:
        return cls(_text(raw.get("key")), _text(raw.get("effect")),
                   "" if raw.get("value") is None else str(raw.get("value")),
                   _text(raw.get("timeAdded")))


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What every component reads of a Cluster. Build it with `ClusterView.of`."""

    name: str
    labels: Mapping[str, str] = field(default_factory=_empty, hash=False)
    region: str = ""
    zone: str = ""
    provider: str = ""
    taints: tuple[Taint, ...] = ()
    #: ``spec.unschedulable``: no new replicas, existing ones stay.
    cordoned: bool = False
    #: ``spec.ingressAddress`` as stored (host or host:port): where users reach it.
    ingress_address: str = ""
    #: ``spec.apiEndpoint``: the agent's own endpoint for live views ("" if none).
    api_endpoint: str = ""
    #: The Ready condition's status: "True", "False", "Unknown", or "" when there is none.
    ready_status: str = ""
    ready_reason: str = ""
    #: The TrafficReachable condition's status (the gateways' health checks, judged by
    #: cluster health): "True", "False", "Unknown", or "" when there is none.
    traffic_status: str = ""
    traffic_reason: str = ""
    capacity: Mapping[str, str] = field(default_factory=_empty, hash=False)
    allocatable: Mapping[str, str] = field(default_factory=_empty, hash=False)
    allocated: Mapping[str, str] = field(default_factory=_empty, hash=False)

    @classmethod
    def of(cls, obj: Mapping[str, Any] | None) -> ClusterView:
        """The view of a stored Cluster dict; never raises (odd fields read as empty)."""
        obj = _mapping(obj)
        meta, spec, status = (_mapping(obj.get(k)) for k in ("metadata", "spec", "status"))
        raw_taints = spec.get("taints")
        taints = tuple(Taint.of(t) for t in raw_taints if isinstance(t, Mapping)) \
            if isinstance(raw_taints, list | tuple) else ()
        ready = conditions.find(status.get("conditions"), READY) or {}
        traffic = conditions.find(status.get("conditions"), CONDITION_TRAFFIC_REACHABLE) or {}
        return cls(
            name=_text(meta.get("name")),
            labels=_frozen_strings(meta.get("labels")),
            region=_text(spec.get("region")),
            zone=_text(spec.get("zone")),
            provider=_text(spec.get("provider")),
            taints=taints,
            cordoned=spec.get("unschedulable") is True,
            ingress_address=_text(spec.get("ingressAddress")),
            api_endpoint=_text(spec.get("apiEndpoint")),
            ready_status=_text(ready.get("status")),
            ready_reason=_text(ready.get("reason")),
            traffic_status=_text(traffic.get("status")),
            traffic_reason=_text(traffic.get("reason")),
            capacity=_frozen_quantities(status.get("capacity")),
            allocatable=_frozen_quantities(status.get("allocatable")),
            allocated=_frozen_quantities(status.get("allocated")),
        )

    @property
    def ready(self) -> bool:
        """The first Ready condition says exactly "True". Unknown (the agent stopped
        heartbeating) and a missing condition (never heard from) are not ready."""
        return self.ready_status == conditions.TRUE

    @property
    def no_execute_taints(self) -> tuple[Taint, ...]:
        return tuple(t for t in self.taints if t.effect == NO_EXECUTE)

    @property
    def traffic_unreachable(self) -> bool:
        """TrafficReachable=False: every gateway with a fresh view of the cluster says
        its health checks reach none of its endpoints (a data-plane cut while heartbeats
        still arrive). Unknown (no gateway checks it) is not unreachable."""
        return self.traffic_status == conditions.FALSE

    @property
    def serves_traffic(self) -> bool:
        """Ready, carrying no NoExecute taint, and not found unreachable by the gateways:
        the one rule for "may users and replicas be sent here". A NoExecute taint means
        "everything leaves now" whatever tolerates it for scheduling; NoSchedule only
        keeps new replicas away and leaves traffic where it is."""
        return self.ready and not self.no_execute_taints and not self.traffic_unreachable

    @property
    def lost_by_control_plane(self) -> bool:
        """Ready=Unknown (heartbeats stopped arriving) and no NoExecute taint but the
        unreachable one: the control plane lost the cluster, which says nothing of
        whether users still reach its pods (a control-plane partition). Only a reader
        that checks the pods itself may keep using them: the gateway, for a
        TrafficPolicy with active health checks (`flotilla.traffic.model`). Every other
        reader follows `serves_traffic`."""
        return self.ready_status == conditions.UNKNOWN and all(
            t.key == TAINT_UNREACHABLE for t in self.no_execute_taints)

    @property
    def left_to_health_checks(self) -> bool:
        """Out of `serves_traffic` only for reasons a reader that checks the pods itself
        judges better: heartbeats stopped (Ready=Unknown, the unreachable taint) and/or
        the gateways' checks found it unreachable (TrafficReachable=False, the
        traffic-unreachable taint), and no other NoExecute taint. The gateway keeps such
        a cluster's endpoints for a TrafficPolicy with active health checks: its checks
        then both keep users away and see the heal (were the endpoints dropped, nothing
        would check them again and the cluster could never be found reachable)."""
        if self.ready_status == conditions.TRUE:
            allowed: tuple[str, ...] = (TAINT_TRAFFIC_UNREACHABLE,)
        elif self.ready_status == conditions.UNKNOWN:
            allowed = (TAINT_UNREACHABLE, TAINT_TRAFFIC_UNREACHABLE)
        else:
            return False
        return all(t.key in allowed for t in self.no_execute_taints)
