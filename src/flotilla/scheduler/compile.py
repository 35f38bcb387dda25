"""Compile API dicts (Karmada field names) into the scheduler's frozen types.

This runs once per policy / cluster change, not once per decision, so it can afford to
check everything and name the offending field path when something is wrong: the
scheduler itself then trusts its inputs. The pydantic models in
`flotilla.resources.models` validate objects at the API; this module only reads the
fields placement needs, so it stays usable on anything the store holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Literal, cast

from flotilla.resources.conditions import is_true
from flotilla.resources.labels import SelectorError, selector_from_dict
from flotilla.resources.quantity import QuantityError, integer_amount
from flotilla.resources.requests import RequestError, pod_requests

from .types import (
    MATCH_ALL,
    ClusterAffinity,
    ClusterInfo,
    DivisionPreference,
    Placement,
    SchedulingType,
    SpreadConstraint,
    SpreadField,
    Taint,
    TaintEffect,
    Target,
    Toleration,
    WeightRule,
    WorkloadInfo,
)


class PlacementError(ValueError):
    """A placement the scheduler cannot use; the message starts with the field path."""


class InvalidQuantity(PlacementError):
    """A request or capacity that is not a quantity: bad input the object carries, not a
    placement that cannot be met, so a controller reports it as such (InvalidInput)."""


_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_SPREAD_FIELDS = ("cluster", "region", "zone", "provider")
_FIELD_KEYS = ("provider", "region", "zone")


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PlacementError(f"{path}: expected an object")
    return value


def _list(value: Any, path: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise PlacementError(f"{path}: expected a list")
    return value


def _int(value: Any, path: str, default: int, minimum: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlacementError(f"{path}: expected an integer >= {minimum}")
    return value


def _strings(value: Any, path: str) -> frozenset[str]:
    items = _list(value, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise PlacementError(f"{path}[{i}]: expected a string")
    return frozenset(items)


def _known(spec: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Refuse fields we do not implement rather than silently ignore them."""
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise PlacementError(f"{path}.{unknown[0]}: field not supported by the scheduler")


def compile_affinity(spec: Any, path: str, name: str = "") -> ClusterAffinity:
    spec = _obj(spec, path)
    _known(spec, ("affinityName", "clusterNames", "exclude", "labelSelector", "fieldSelector"),
           path)
    try:
        labels = selector_from_dict(_obj(spec.get("labelSelector"), f"{path}.labelSelector"),
                                    f"{path}.labelSelector")
    except SelectorError as e:
        raise PlacementError(str(e)) from None
    fields = _obj(spec.get("fieldSelector"), f"{path}.fieldSelector")
    _known(fields, ("matchExpressions",), f"{path}.fieldSelector")
    for i, expr in enumerate(_list(fields.get("matchExpressions"), f"{path}.fieldSelector")):
        key = _obj(expr, f"{path}.fieldSelector.matchExpressions[{i}]").get("key")
        if key not in _FIELD_KEYS:
            raise PlacementError(
                f"{path}.fieldSelector.matchExpressions[{i}].key: expected one of "
                f"{', '.join(_FIELD_KEYS)}, got {key!r}")
    try:
        field_selector = selector_from_dict(fields, f"{path}.fieldSelector")
    except SelectorError as e:
        raise PlacementError(str(e)) from None
    return ClusterAffinity(
        name=str(spec.get("affinityName") or name),
        cluster_names=_strings(spec.get("clusterNames"), f"{path}.clusterNames"),
        exclude=_strings(spec.get("exclude"), f"{path}.exclude"),
        label_selector=labels,
        field_selector=field_selector,
    )


def _toleration(spec: Any, path: str) -> Toleration:
    spec = _obj(spec, path)
    _known(spec, ("key", "operator", "value", "effect", "tolerationSeconds"), path)
    op = spec.get("operator") or "Equal"
    if op not in ("Equal", "Exists"):
        raise PlacementError(f"{path}.operator: expected Equal or Exists, got {op!r}")
    effect = spec.get("effect") or ""
    if effect and effect not in _EFFECTS:
        raise PlacementError(f"{path}.effect: expected one of {', '.join(_EFFECTS)}")
    key, value = str(spec.get("key") or ""), str(spec.get("value") or "")
    if op == "Exists" and value:
        raise PlacementError(f"{path}.value: must be empty when operator is Exists")
    if not key and op != "Exists":
        raise PlacementError(f"{path}.operator: an empty key needs operator Exists")
    return Toleration(key=key, operator=cast(Literal["Equal", "Exists"], op), value=value,
                      effect=effect)


def _spread(spec: Any, path: str) -> SpreadConstraint:
    spec = _obj(spec, path)
    _known(spec, ("spreadByField", "spreadByLabel", "minGroups", "maxGroups"), path)
    by_field, by_label = spec.get("spreadByField"), spec.get("spreadByLabel")
    if bool(by_field) == bool(by_label):
        raise PlacementError(f"{path}: set exactly one of spreadByField and spreadByLabel")
    if by_field and by_field not in _SPREAD_FIELDS:
        raise PlacementError(
            f"{path}.spreadByField: expected one of {', '.join(_SPREAD_FIELDS)}, got {by_field!r}")
    min_groups = _int(spec.get("minGroups"), f"{path}.minGroups", 1)
    max_groups = _int(spec.get("maxGroups"), f"{path}.maxGroups", 0)
    if max_groups and max_groups < min_groups:
        raise PlacementError(f"{path}.maxGroups: must not be lower than minGroups")
    return SpreadConstraint(
        field=cast(SpreadField, by_field) if by_field else None,
        label=str(by_label) if by_label else None,
        min_groups=min_groups, max_groups=max_groups)


def compile_placement(spec: Mapping[str, Any] | None, path: str = "spec.placement") -> Placement:
    """Compile a Karmada ``spec.placement`` dict; raise `PlacementError` naming the field."""
    spec = _obj(spec, path)
    _known(spec, ("clusterAffinity", "clusterAffinities", "clusterTolerations",
                  "spreadConstraints", "replicaScheduling"), path)
    if spec.get("clusterAffinity") and spec.get("clusterAffinities"):
        raise PlacementError(f"{path}: clusterAffinity and clusterAffinities are exclusive")
    affinities: tuple[ClusterAffinity, ...] = (MATCH_ALL,)
    if spec.get("clusterAffinities"):
        items = _list(spec["clusterAffinities"], f"{path}.clusterAffinities")
        affinities = tuple(
            compile_affinity(a, f"{path}.clusterAffinities[{i}]") for i, a in enumerate(items))
        names = [a.name for a in affinities]
        if "" in names or len(set(names)) != len(names):
            raise PlacementError(
                f"{path}.clusterAffinities: every group needs a distinct affinityName")
    elif spec.get("clusterAffinity") is not None:
        affinities = (compile_affinity(spec["clusterAffinity"], f"{path}.clusterAffinity"),)
    tolerations = tuple(
        _toleration(t, f"{path}.clusterTolerations[{i}]")
        for i, t in enumerate(_list(spec.get("clusterTolerations"), f"{path}.clusterTolerations")))
    spread = tuple(
        _spread(s, f"{path}.spreadConstraints[{i}]")
        for i, s in enumerate(_list(spec.get("spreadConstraints"), f"{path}.spreadConstraints")))
    keys = [s.label or s.field for s in spread]
    if len(set(keys)) != len(keys):
        raise PlacementError(f"{path}.spreadConstraints: each field or label at most once")
    if len([s for s in spread if s.field != "cluster"]) > 1:
        raise PlacementError(
            f"{path}.spreadConstraints: at most one of region/zone/provider/label may be "
            "combined with the cluster constraint")
    return _replica_scheduling(spec.get("replicaScheduling"), f"{path}.replicaScheduling",
                               Placement(affinities=affinities, tolerations=tolerations,
                                         spread=spread))


def _replica_scheduling(spec: Any, path: str, base: Placement) -> Placement:
    spec = _obj(spec, path)
    _known(spec, ("replicaSchedulingType", "replicaDivisionPreference", "weightPreference"),
           path)
    kind = spec.get("replicaSchedulingType") or "Duplicated"
    if kind not in ("Duplicated", "Divided"):
        raise PlacementError(f"{path}.replicaSchedulingType: expected Duplicated or Divided")
    division = spec.get("replicaDivisionPreference") or "Weighted"
    if division not in ("Aggregated", "Weighted"):
        raise PlacementError(
            f"{path}.replicaDivisionPreference: expected Aggregated or Weighted")
    wp = _obj(spec.get("weightPreference"), f"{path}.weightPreference")
    _known(wp, ("staticWeightList", "dynamicWeight"), f"{path}.weightPreference")
    dynamic = wp.get("dynamicWeight")
    if dynamic not in (None, "", "AvailableReplicas"):
        raise PlacementError(f"{path}.weightPreference.dynamicWeight: expected AvailableReplicas")
    rules = []
    for i, rule in enumerate(_list(wp.get("staticWeightList"),
                                   f"{path}.weightPreference.staticWeightList")):
        rpath = f"{path}.weightPreference.staticWeightList[{i}]"
        rule = _obj(rule, rpath)
        _known(rule, ("targetCluster", "weight"), rpath)
        rules.append(WeightRule(compile_affinity(rule.get("targetCluster"),
                                                 f"{rpath}.targetCluster"),
                                _int(rule.get("weight"), f"{rpath}.weight", 1, minimum=1)))
    return replace(base, scheduling_type=cast(SchedulingType, kind),
                   division=cast(DivisionPreference, division), static_weights=tuple(rules),
                   dynamic_weight=bool(dynamic))


# --- clusters -------------------------------------------------------------------------

def compile_requests(spec: Any, path: str) -> dict[str, int]:
    """Requests or capacities in the scheduler's integer units (millicores for ``cpu``,
    the rounded-up amount for everything else), read with the one quantity grammar the
    API validates with, so anything the API stored can be fitted. Requests round up: a
    replica never looks cheaper than it is."""
    out: dict[str, int] = {}
    for name, value in sorted(_obj(spec, path).items()):
        try:
            out[str(name)] = integer_amount(str(name), value)
        except QuantityError as e:
            raise InvalidQuantity(f"{path}.{e}") from None
    return out


def compile_cluster(obj: Mapping[str, Any],
                    available_replicas: Mapping[str, int] | None = None) -> ClusterInfo:
    """A ``Cluster`` object as the scheduler sees it.

    Reads ``spec.region/zone/provider/taints/unschedulable``, ``metadata.labels``, the
    ``Ready`` condition and ``status.allocatable`` (else ``status.capacity``) minus
    ``status.allocated`` (a resource missing from them is not limited).
    """
    meta, spec = _obj(obj.get("metadata"), "metadata"), _obj(obj.get("spec"), "spec")
    status = _obj(obj.get("status"), "status")
    taints = []
    for i, t in enumerate(_list(spec.get("taints"), "spec.taints")):
        t = _obj(t, f"spec.taints[{i}]")
        effect = t.get("effect") or "NoSchedule"
        if effect not in _EFFECTS:
            raise PlacementError(f"spec.taints[{i}].effect: expected one of {', '.join(_EFFECTS)}")
        taints.append(Taint(str(t.get("key", "")), str(t.get("value") or ""),
                            cast(TaintEffect, effect)))
    ready = is_true(_list(status.get("conditions"), "status.conditions"), "Ready")
    # A cluster that reports only capacity (no reservations) offers all of it.
    allocatable = (compile_requests(status.get("allocatable"), "status.allocatable")
                   if status.get("allocatable") is not None
                   else compile_requests(status.get("capacity"), "status.capacity"))
    allocated = compile_requests(status.get("allocated"), "status.allocated")
    free = {k: max(0, v - allocated.get(k, 0)) for k, v in allocatable.items()}
    return ClusterInfo(
        name=str(meta.get("name", "")),
        region=str(spec.get("region") or ""), zone=str(spec.get("zone") or ""),
        provider=str(spec.get("provider") or ""),
        labels=MappingProxyType(dict(_obj(meta.get("labels"), "metadata.labels"))),
        taints=tuple(taints), ready=ready, unschedulable=bool(spec.get("unschedulable")),
        free=MappingProxyType(free),
        available_replicas=MappingProxyType(dict(available_replicas or {})),
    )


def workload_key(obj: Mapping[str, Any]) -> str:
    meta = _obj(obj.get("metadata"), "metadata")
    return f"{obj.get('kind', '')}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def compile_workload(obj: Mapping[str, Any], current: Iterable[Target] = ()) -> WorkloadInfo:
    """A template (Deployment-like: ``spec.replicas`` and a pod template) to place.

    A template without ``spec.replicas`` (a ConfigMap, a Service) counts as one replica
    asking for nothing: Duplicated placement is what such objects get.
    """
    spec = _obj(obj.get("spec"), "spec")
    replicas = _int(spec.get("replicas"), "spec.replicas", 1)
    pod = _obj(_obj(spec.get("template"), "spec.template").get("spec"), "spec.template.spec")
    requests: dict[str, int] = {"pods": 1} if "template" in spec else {}
    try:
        per_pod = pod_requests(pod, "spec.template.spec")
    except RequestError as e:
        raise InvalidQuantity(str(e)) from None
    requests.update({name: integer_amount(name, q) for name, q in per_pod.items()})
    return WorkloadInfo(key=workload_key(obj), replicas=replicas,
                        requests=MappingProxyType(requests),
                        current=tuple(sorted((str(n), int(r)) for n, r in current)))
