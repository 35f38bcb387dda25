"""What one pod asks for: Kubernetes' effective request rule, in one place.

The scheduler fits replicas with it, the binder records it on each ResourceBinding and
the local runtime admits pods and counts used capacity with it, so "does it fit" has the
same answer everywhere. The rule is Kubernetes' (``PodRequests`` in
``k8s.io/component-helpers/resource``), per resource:

* every app container's request is added up;
* a restartable init container (``restartPolicy: Always``, a sidecar) runs alongside the
  app containers, so it is added too;
* a plain init container runs before the app containers, alone except for the sidecars
  started before it, so the pod needs at least the largest such moment;
* the pod's request is the larger of the two.

A container that sets only a limit requests its limit, as Kubernetes defaults it.
Pod-level ``spec.resources`` and ``spec.overhead`` are not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.resources.quantity import Quantity, QuantityError, parse_quantity

__all__ = ["RequestError", "container_requests", "pod_requests"]

Requests = dict[str, Quantity]


class RequestError(ValueError):
    """A pod spec whose requests cannot be read; the message names the field."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def container_requests(container: Any, where: str = "container") -> Requests:
    """One container's requests, each resource defaulting to its limit."""
    resources = _mapping(_mapping(container, where).get("resources"), f"{where}.resources")
    given = {"limits": _mapping(resources.get("limits"), f"{where}.resources.limits"),
             "requests": _mapping(resources.get("requests"), f"{where}.resources.requests")}
    out: Requests = {}
    for part in ("limits", "requests"):  # requests override the limits they default from
        for name, value in given[part].items():
            try:
                out[str(name)] = parse_quantity(value, negative=False)
            except QuantityError as e:
                raise RequestError(str(e.naming(f"{where}.resources.{part}.{name}"))) from None
    return out


def _add(total: Requests, more: Requests) -> None:
    for name, q in more.items():
        total[name] = total[name] + q if name in total else q


def _at_least(total: Requests, floor: Requests) -> None:
    for name, q in floor.items():
        if name not in total or total[name] < q:
            total[name] = q


def pod_requests(pod_spec: Any, where: str = "spec") -> Requests:
    """The pod's effective request per resource (see the module docstring)."""
    spec = _mapping(pod_spec, where)
    total: Requests = {}
    for i, c in enumerate(_list(spec.get("containers"), f"{where}.containers")):
        _add(total, container_requests(c, f"{where}.containers[{i}]"))
    sidecars: Requests = {}
    init_peak: Requests = {}
    for i, c in enumerate(_list(spec.get("initContainers"), f"{where}.initContainers")):
        own = container_requests(c, f"{where}.initContainers[{i}]")
        if _mapping(c, f"{where}.initContainers[{i}]").get("restartPolicy") == "Always":
            _add(total, own)
            _add(sidecars, own)
            moment = dict(sidecars)
        else:
            moment = dict(own)
            _add(moment, sidecars)
        _at_least(init_peak, moment)
    _at_least(total, init_peak)
    return total
