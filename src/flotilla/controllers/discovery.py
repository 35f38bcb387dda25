"""Cross-cluster service discovery: ServiceExport in, ServiceImport out (MCS API, KEP-1645).

A ServiceExport ``NS/NAME`` in the control plane says "make Service NS/NAME reachable
from the whole clusterset". This controller keeps the matching ServiceImport:

* **spec** (MCS shape: type, ports) comes from the Service *as each member cluster runs
  it*, i.e. the Service manifest in that cluster's Works, after overrides. Clusters may
  disagree (an OverridePolicy changed a port in one of them); as the KEP says, the
  oldest export wins (here: the cluster whose Work holding the Service is oldest, ties by
  cluster name), and every disagreement is reported on the ServiceExport as a
  ``Conflict`` condition (``PortConflict``, ``TypeConflict``).
* **status.clusters** lists the clusters whose Works hold the Service (they export it
  until placement moves it away, healthy or not), and **status.endpoints** (a Flotilla
  extension) lists every (pod, port) the agents reported in their EndpointSlices, with
  cluster, region, zone, address, port and readiness. A cluster that is not Ready or
  carries a NoExecute taint contributes no endpoints, the same rule the DNS and the
  gateway apply, so the three agree on where traffic can go. A conflicting cluster's
  endpoints are listed only for the ports it declares exactly as the import does: a
  client must never be sent to a port that cluster's Service does not have.

A ServiceExport whose Service is missing (or of type ExternalName) gets ``Valid=False``
and no import; removing the export removes the import.

The derivation (`derive`) is a pure function of plain API objects, so it is tested
without a server; `Discovery` only reads informer caches and writes the difference.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.client.base import NotFoundError, Object, ResourceClient
from flotilla.client.desired import converge
from flotilla.controllers.controller import Controller, Result
from flotilla.controllers.events import EventRecorder
from flotilla.controllers.informer import EventHandlers, Informer, ObjectKey
from flotilla.controllers.manager import ControllerManager
from flotilla.resources import views
from flotilla.resources.conditions import Condition, set_conditions
from flotilla.resources.kinds import by_kind
from flotilla.resources.wellknown import parse_rfc3339

log = logging.getLogger(__name__)

SERVICE = by_kind("Service")
SERVICE_EXPORT = by_kind("ServiceExport")
SERVICE_IMPORT = by_kind("ServiceImport")
ENDPOINT_SLICE = by_kind("EndpointSlice")
CLUSTER = by_kind("Cluster")
WORK = by_kind("Work")

VALID = "Valid"
CONFLICT = "Conflict"
#: Marks imports this controller derived (so a reader can tell them from hand-made ones).
LABEL_EXPORT = "multicluster.flotilla.io/service-export"

#: A Service port as MCS compares them: (name, protocol, port).
PortKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class ClusterExport:
    """One member cluster's copy of the exported Service."""

    cluster: str
    #: creationTimestamp (epoch seconds) of the oldest Work that holds the Service:
    #: when the cluster began exporting it.
    since: float
    type: str  # "ClusterSetIP" | "Headless"
    ports: tuple[PortKey, ...]


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What discovery needs of a Cluster: where it is, and whether it may get traffic."""

    region: str = ""
    zone: str = ""
    healthy: bool = False


@dataclass(slots=True)
class Derived:
    """The desired import (None: there must be none) and the export's conditions."""

    conditions: list[Condition]
    spec: Object | None = None
    status: Object = field(default_factory=dict)


def service_shape(service: Mapping[str, Any]) -> tuple[str, tuple[PortKey, ...]]:
    """The MCS type and sorted ports of a Service manifest (defensive: manifests are
    stored as the user wrote them)."""
    spec = service.get("spec") or {}
    kind = "Headless" if spec.get("clusterIP") == "None" else "ClusterSetIP"
    ports: list[PortKey] = []
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("port"), int):
            ports.append((str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                          int(p["port"])))
    return kind, tuple(sorted(ports))


def cluster_exports(works: Iterable[Object], namespace: str, name: str
                    ) -> dict[str, ClusterExport]:
    """Per member cluster, the Service ``namespace/name`` as its Works carry it."""
    out: dict[str, ClusterExport] = {}
    for view in map(views.WorkView.of, works):
        cluster = view.cluster
        if not cluster:
            continue
        since = _epoch(view.meta.creation_timestamp)
        for manifest in view.services:
            m_meta = manifest.get("metadata") or {}
            if (m_meta.get("namespace") or "default", m_meta.get("name")) != (namespace, name):
                continue
            kind, ports = service_shape(manifest)
            held = out.get(cluster)
            if held is None or since < held.since:
                out[cluster] = ClusterExport(cluster, since, kind, ports)
    return out


def _epoch(timestamp: Any) -> float:
    """A creationTimestamp as seconds; a missing or odd one sorts last (newest)."""
    try:
        return parse_rfc3339(str(timestamp))
    except (TypeError, ValueError):
        return math.inf


def cluster_view(cluster: Object) -> ClusterView:
    """Healthy is `views.ClusterView.serves_traffic`: the DNS's and gateway's rule."""
    view = views.ClusterView.of(cluster)
    return ClusterView(view.region, view.zone, view.serves_traffic)


def _ports_text(ports: Iterable[PortKey]) -> str:
    return ",".join(f"{n or '<unnamed>'}:{port}/{proto}" for n, proto, port in ports) or "none"


def derive(
    service: Object | None,
    exports: Mapping[str, ClusterExport],
    slices: Mapping[str, Object],
    clusters: Mapping[str, ClusterView],
) -> Derived:
    """The import and export conditions for one exported Service. Pure."""
    if service is None:
        return Derived([Condition(VALID, "False", "NoService",
                                  "the exported Service does not exist in this namespace")])
    if (service.get("spec") or {}).get("type") == "ExternalName":
        return Derived([Condition(VALID, "False", "InvalidServiceType",
                                  "an ExternalName Service cannot be exported")])
    ordered = sorted(exports.values(), key=lambda e: (e.since, e.cluster))
    if ordered:
        winner = ordered[0]
        kind, ports = winner.type, winner.ports
    else:  # placed nowhere yet: describe the template, so the import is useful early
        kind, ports = service_shape(service)
    conditions = [Condition(VALID, "True", "Valid", "the Service is exported")]
    conditions.append(_conflict(ordered, kind, ports))

    by_name = sorted(ordered, key=lambda e: e.cluster)
    endpoints: list[Object] = []
    for export in by_name:
        view = clusters.get(export.cluster, ClusterView())
        s = slices.get(export.cluster)
        if not view.healthy or s is None:
            continue
        declared = {n for n, proto, port in export.ports if (n, proto, port) in ports}
        endpoints += _endpoints(export.cluster, view, s, declared)
    spec = {"type": kind, "ports": [{"name": n, "protocol": proto, "port": port}
                                    for n, proto, port in ports]}
    status = {"clusters": [{"cluster": e.cluster} for e in by_name], "endpoints": endpoints}
    return Derived(conditions, spec, status)


def _conflict(ordered: list[ClusterExport], kind: str, ports: tuple[PortKey, ...]
              ) -> Condition:
    port_clash = [e for e in ordered if e.ports != ports]
    type_clash = [e for e in ordered if e.type != kind]
    if port_clash:
        winner = ordered[0].cluster
        detail = "; ".join(f"{e.cluster} has {_ports_text(e.ports)}" for e in port_clash)
        return Condition(CONFLICT, "True", "PortConflict",
                         f"ports differ between clusters; using {_ports_text(ports)} of the "
                         f"oldest export ({winner}): {detail}")
    if type_clash:
        names = ", ".join(e.cluster for e in type_clash)
        return Condition(CONFLICT, "True", "TypeConflict",
                         f"clusters {names} run the Service as a different type; using "
                         f"{kind} of the oldest export ({ordered[0].cluster})")
    return Condition(CONFLICT, "False", "NoConflicts", "every cluster exports the same ports")


def _endpoints(cluster: str, view: ClusterView, s: Object, declared: set[str]
               ) -> list[Object]:
    slice_view = views.EndpointSliceView.of(s)
    out = []
    for ep in slice_view.endpoints:
        for p in ep.ports:
            if p.name not in declared or p.port is None:
                continue
            out.append({
                "cluster": cluster,
                "region": view.region or slice_view.region,
                "zone": ep.zone or view.zone or slice_view.zone,
                "address": ep.address,
                "port": p.port,
                "portName": p.name,
                "protocol": p.protocol,
                "ready": ep.ready,
                "pod": ep.pod,
            })
    out.sort(key=lambda e: (e["pod"], e["address"], e["portName"], e["port"]))
    return out


class Index:
    """Objects of one informer grouped by the Service they concern, kept by its events.

    A reconcile needs "the Works that carry Service S" and "the slices of S"; scanning
    the informer cache for that would cost O(all Works) per reconcile, and a Cluster
    change reconciles every export. Handlers run synchronously in the informer's loop,
    so the index always matches the cache when a reconcile reads it.
    """

    def __init__(self, informer: Informer,
                 keys: Callable[[Object], Iterable[ObjectKey]]) -> None:
        self._keys = keys
        self._by_key: dict[ObjectKey, dict[ObjectKey, Object]] = {}
        informer.add_handler(EventHandlers(on_add=self._add, on_update=self._update,
                                           on_delete=self._remove))

    def get(self, key: ObjectKey) -> list[Object]:
        return list(self._by_key.get(key, {}).values())

    def _add(self, obj: Object) -> None:
        for key in self._keys(obj):
            self._by_key.setdefault(key, {})[ObjectKey.of(obj)] = obj

    def _remove(self, obj: Object) -> None:
        for key in self._keys(obj):
            group = self._by_key.get(key)
            if group is not None:
                group.pop(ObjectKey.of(obj), None)
                if not group:
                    del self._by_key[key]

    def _update(self, old: Object, new: Object) -> None:
        self._remove(old)
        self._add(new)


class Discovery:
    """The reconciler, keyed by the exported Service's namespace/name."""

    def __init__(self, client: ResourceClient, informers: Mapping[str, Informer]) -> None:
        self.client = client
        self.inf = informers
        self.events = EventRecorder(client, "service-discovery")
        self.works = Index(informers["Work"], services_of_work)
        self.slices = Index(informers["EndpointSlice"], service_of_slice)

    async def reconcile(self, key: ObjectKey) -> Result | None:
        export = self.inf["ServiceExport"].cache.get(key)
        if export is None or views.Meta.of(export.get("metadata")).deleting:
            await self._remove_import(key)
            return None
        derived = derive(
            self.inf["Service"].cache.get(key),
            cluster_exports(self.works.get(key), key.namespace, key.name),
            {views.EndpointSliceView.of(s).cluster: s for s in self.slices.get(key)},
            {views.ClusterView.of(c).name: cluster_view(c)
             for c in self.inf["Cluster"].cache.list()},
        )
        if set_conditions(copy.deepcopy(export), derived.conditions):
            await converge(self.client, SERVICE_EXPORT, key.namespace, key.name,
                           lambda obj: set_conditions(obj, derived.conditions),
                           read=export)
            await self._tell(export, derived.conditions)
        if derived.spec is None:
            await self._remove_import(key)
        else:
            await self._write_import(key, derived.spec, derived.status)
        return None

    async def _tell(self, export: Object, conditions: list[Condition]) -> None:
        """An Event for each problem that is new (or whose reason changed), so
        `flotilla describe serviceexport` and `flotilla events` say why an import is
        missing or partial."""
        before = {c.get("type"): c for c in (export.get("status") or {}).get("conditions")
                  or []}
        for c in conditions:
            bad = c.status != "True" if c.type == VALID else c.status == "True"
            old = before.get(c.type) or {}
            if bad and (old.get("status"), old.get("reason")) != (c.status, c.reason):
                await self.events.record(export, "Warning", c.reason, c.message)

    async def _remove_import(self, key: ObjectKey) -> None:
        if self.inf["ServiceImport"].cache.get(key) is None:
            return
        with contextlib.suppress(NotFoundError):
            await self.client.delete(SERVICE_IMPORT, key.namespace, key.name)
            log.info("serviceimport %s removed: no valid export", key)

    async def _write_import(self, key: ObjectKey, spec: Object, status: Object) -> None:
        cached = self.inf["ServiceImport"].cache.get(key)
        if cached is not None and _same(cached.get("spec"), spec) and \
                _same(cached.get("status"), status):
            return  # the common case on every resync and echo of our own write

        def fresh() -> Object:
            return {"apiVersion": SERVICE_IMPORT.api_version, "kind": "ServiceImport",
                    "metadata": {"name": key.name, "namespace": key.namespace,
                                 "labels": {LABEL_EXPORT: key.name}},
                    "spec": copy.deepcopy(spec), "status": copy.deepcopy(status)}

        def desire(obj: Object) -> None:
            if not _same(obj.get("spec"), spec):
                obj["spec"] = copy.deepcopy(spec)
            if not _same(obj.get("status"), status):
                obj["status"] = copy.deepcopy(status)

        await converge(self.client, SERVICE_IMPORT, key.namespace, key.name, desire,
                       read=cached, create=fresh)


def _same(current: Any, wanted: Object) -> bool:
    """Compare on the fields we write only: the server fills defaults (``ips: []``,
    ``sessionAffinity``) we must not fight over."""
    if not isinstance(current, dict):
        return False
    return all(current.get(k) == v for k, v in wanted.items())


def services_of_work(work: Object) -> Iterable[ObjectKey]:
    for m in views.WorkView.of(work).services:
        meta = m.get("metadata") or {}
        yield ObjectKey(str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def service_of_slice(s: Object) -> Iterable[ObjectKey]:
    view = views.EndpointSliceView.of(s)
    return (ObjectKey(view.meta.namespace, view.service),) if view.service else ()


def build(manager: ControllerManager) -> Controller:
    """Register the discovery controller with ``manager``."""
    kinds = ("ServiceExport", "ServiceImport", "Service", "EndpointSlice", "Cluster", "Work")
    informers = {k: manager.informer(by_kind(k)) for k in kinds}
    controller = Controller("service-discovery", Discovery(manager.client, informers),
                            workers=2)
    exports = informers["ServiceExport"]
    controller.watches(exports).watches(informers["ServiceImport"]) \
        .watches(informers["Service"]) \
        .watches(informers["EndpointSlice"], service_of_slice) \
        .watches(informers["Work"], services_of_work) \
        .watches(informers["Cluster"], lambda _c: exports.cache.list_keys())
    manager.add(controller)
    return controller
