"""FederatedHPA as the controller, ``flotilla get`` and ``flotilla describe`` read it.

One reading of the autoscaling/v2 metric shapes and one spelling of a metric's
"current/target" (``cpu: 45%/70%``, ``flotilla.io/requests-per-second: 31/20``), so the
table, the description and the controller's Events say the same thing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flotilla.resources.quantity import QuantityError, parse_quantity
from flotilla.resources.views.fields import Meta, entries, integer, mapping, text

__all__ = ["FederatedHPAView", "MetricView", "format_amount", "quantity_value"]


def quantity_value(value: object) -> float | None:
    """A Kubernetes quantity (``"20"``, ``"500m"``, ``200Mi``) as a float; None if bad."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(parse_quantity(value).amount)
    except (QuantityError, TypeError, ValueError):
        return None


def format_amount(value: float) -> str:
    """A measurement as status and tables show it: whole when large, else 3 digits."""
    if value >= 100 or value == int(value):
        return str(round(value))
    return f"{value:.3g}"


@dataclass(frozen=True, slots=True)
class MetricView:
    """One entry of ``spec.metrics``."""

    type: str  # Resource, Pods, Object
    #: ``cpu``/``memory`` for Resource, the metric's name otherwise
    name: str
    target_type: str  # Utilization, Value, AverageValue
    #: the target in the unit of ``target_type`` (percent for Utilization)
    target: float
    #: the described object (Object metrics): kind and name
    described_kind: str = ""
    described_name: str = ""

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> MetricView | None:
        kind = text(entry.get("type"))
        source = mapping(entry.get(kind[:1].lower() + kind[1:]))
        target = mapping(source.get("target"))
        target_type = text(target.get("type"))
        amount = (integer(target.get("averageUtilization")) if target_type == "Utilization"
                  else quantity_value(target.get(
                      "value" if target_type == "Value" else "averageValue")))
        if not amount:
            return None
        if kind == "Resource":
            name = text(source.get("name"))
        else:
            name = text(mapping(source.get("metric")).get("name"))
        described = mapping(source.get("describedObject"))
        return cls(kind, name, target_type, float(amount), text(described.get("kind")),
                   text(described.get("name")))

    def show(self, current: float | None) -> str:
        """``name: current/target`` (``<unknown>`` before the first measurement)."""
        unit = "%" if self.target_type == "Utilization" else ""
        now = "<unknown>" if current is None else f"{format_amount(current)}{unit}"
        return f"{self.name}: {now}/{format_amount(self.target)}{unit}"

    def status_entry(self, current: float) -> dict[str, Any]:
        """This metric's ``status.currentMetrics`` entry (autoscaling/v2 MetricStatus)."""
        if self.target_type == "Utilization":
            value: dict[str, Any] = {"averageUtilization": round(current)}
        elif self.target_type == "Value":
            value = {"value": format_amount(current)}
        else:
            value = {"averageValue": format_amount(current)}
        if self.type == "Resource":
            return {"type": "Resource", "resource": {"name": self.name, "current": value}}
        body: dict[str, Any] = {"metric": {"name": self.name}, "current": value}
        if self.type == "Object":
            body["describedObject"] = {"kind": self.described_kind,
                                       "name": self.described_name}
        key = self.type[:1].lower() + self.type[1:]
        return {"type": self.type, key: body}


def _current_of(entry: Mapping[str, Any]) -> tuple[str, float | None]:
    kind = text(entry.get("type"))
    source = mapping(entry.get(kind[:1].lower() + kind[1:]))
    name = (text(source.get("name")) if kind == "Resource"
            else text(mapping(source.get("metric")).get("name")))
    current = mapping(source.get("current"))
    for key in ("averageUtilization", "value", "averageValue"):
        if key in current:
            return f"{kind}/{name}", quantity_value(current[key])
    return f"{kind}/{name}", None


@dataclass(frozen=True, slots=True)
class FederatedHPAView:
    meta: Meta
    target_name: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricView, ...]
    behavior: Mapping[str, Any]
    current_replicas: int
    desired_replicas: int
    #: ``Type/name`` -> the value last measured (from ``status.currentMetrics``)
    current: Mapping[str, float | None]
    last_scale_time: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> FederatedHPAView:
        spec = mapping(obj.get("spec"))
        status = mapping(obj.get("status"))
        metrics = tuple(m for m in (MetricView.of(e) for e in entries(spec.get("metrics")))
                        if m is not None)
        return cls(
            meta=Meta.of(obj.get("metadata")),
            target_name=text(mapping(spec.get("scaleTargetRef")).get("name")),
            min_replicas=integer(spec.get("minReplicas"), 1),
            max_replicas=integer(spec.get("maxReplicas"), 1),
            metrics=metrics,
            behavior=MappingProxyType(copy.deepcopy(dict(mapping(spec.get("behavior"))))),
            current_replicas=integer(status.get("currentReplicas")),
            desired_replicas=integer(status.get("desiredReplicas")),
            current=MappingProxyType(
                dict(_current_of(e) for e in entries(status.get("currentMetrics")))),
            last_scale_time=text(status.get("lastScaleTime")),
        )

    def targets(self) -> tuple[str, ...]:
        """Each metric as ``name: current/target`` (kubectl get hpa's TARGETS)."""
        return tuple(m.show(self.current.get(f"{m.type}/{m.name}")) for m in self.metrics)
