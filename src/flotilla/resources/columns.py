"""Per-kind table columns, written once for ``flotilla get`` and for the API's
``meta.k8s.io`` Table responses (what ``kubectl get`` prints): a small registry
instead of an if/else.

Every table is ``[NAMESPACE] NAME <kind columns> AGE <wide columns>``. A component that
owns a kind registers its columns next to its code (``register_columns("Work", ...)``)
and the CLI and the API pick them up; re-registering replaces, so the defaults below are only a
starting point. Column functions must never raise on a half-filled object: status may be
missing right after creation, so they read with `dig` and fall back to "" or "<none>".

A column that needs other objects (a Cluster's WORKLOADS counts its Works) cannot look
them up per row; its kind registers an *enricher* instead, which `get` awaits once per
table: one list call (through a `Lister`: the CLI's client or the server's registry),
whose figures it stores on copies of the objects under `EXTRA`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flotilla.resources.ages import age
from flotilla.resources.kinds import Kind, by_kind
from flotilla.resources.quantity import cpu_millis, memory_bytes
from flotilla.resources.views import FederatedHPAView
from flotilla.resources.wellknown import execution_namespace

Object = dict[str, Any]
Getter = Callable[[Object], str]


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    get: Getter
    #: Shown only with ``-o wide``.
    wide: bool = False


_REGISTRY: dict[str, tuple[Column, ...]] = {}

#: Where an enricher puts what it fetched; never sent back to the server.
EXTRA = "__columns__"
#: Every object of a kind, in one namespace or (None) all: how an enricher reads.
Lister = Callable[[Kind, str | None], Awaitable[list[Object]]]
Enricher = Callable[[Lister, list[Object]], Awaitable[list[Object]]]
_ENRICHERS: dict[str, Enricher] = {}
_DYNAMIC: dict[str, Callable[[Sequence[Object]], list[Column]]] = {}


def register_columns(kind: str, *columns: Column) -> None:
    """Set the columns ``flotilla get`` shows for ``kind`` (between NAME and AGE)."""
    _REGISTRY[kind] = tuple(columns)


def register_dynamic_columns(
        kind: str, columns: Callable[[Sequence[Object]], list[Column]]) -> None:
    """Wide columns that depend on the objects listed (e.g. one per member cluster)."""
    _DYNAMIC[kind] = columns


def register_enricher(kind: str, enricher: Enricher) -> None:
    """Fetch, once per table, what ``kind``'s columns need beyond each object."""
    _ENRICHERS[kind] = enricher


async def enrich(kind: str, lister: Lister, objects: list[Object]) -> list[Object]:
    """``objects`` with their kind's extra figures (copies), or as they are."""
    enricher = _ENRICHERS.get(kind)
    return await enricher(lister, objects) if enricher and objects else objects


def columns_for(kind: str, *, wide: bool) -> list[Column]:
    return [c for c in _REGISTRY.get(kind, ()) if wide or not c.wide]


def all_columns(kind: str, objects: Sequence[Object]) -> list[Column]:
    """Every column of ``kind`` (narrow then wide, dynamic ones last), for ``objects``."""
    cols = columns_for(kind, wide=True)
    if kind in _DYNAMIC:
        cols += _DYNAMIC[kind](objects)
    return cols


def cell_text(column: Column, obj: Object) -> str:
    """One cell; a column bug shows as ``<error>`` rather than breaking the table."""
    try:
        return column.get(obj)
    except Exception:  # a column bug must not break `get`
        return "<error>"


def rows(
    kind: str, objects: Sequence[Object], *, wide: bool, all_namespaces: bool,
    name_prefix: str = "", now: datetime | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for ``objects`` of ``kind``; ``name_prefix`` (``deployment/``)
    tells kinds apart when one command prints several."""
    cols = all_columns(kind, objects) if wide else columns_for(kind, wide=False)
    narrow = [c for c in cols if not c.wide]
    extra = [c for c in cols if c.wide]
    headers = (["NAMESPACE"] if all_namespaces else []) + ["NAME"] \
        + [c.header for c in narrow] + ["AGE"] + [c.header for c in extra]
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        row = [str(meta.get("namespace") or "")] if all_namespaces else []
        row.append(name_prefix + str(meta.get("name") or ""))
        row += [cell_text(c, obj) for c in narrow]
        row.append(age(meta.get("creationTimestamp"), now))
        row += [cell_text(c, obj) for c in extra]
        out.append(row)
    return headers, out


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """``obj[p0][p1]...`` or ``default`` as soon as a step is missing or of the wrong type."""
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or not -len(cur) <= p < len(cur):
                return default
        elif not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return default if cur is None else cur


def condition(obj: Object, type_: str) -> str:
    """The status ("True"/"False"/"Unknown") of condition ``type_``, or "Unknown"."""
    for c in dig(obj, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == type_:
            return str(c.get("status") or "Unknown")
    return "Unknown"


def _count(*path: str) -> Getter:
    def get(obj: Object) -> str:
        value = dig(obj, *path, default=[])
        return str(len(value)) if isinstance(value, list | dict) else "0"
    return get


def _field(*path: str | int, default: str = "") -> Getter:
    def get(obj: Object) -> str:
        value = dig(obj, *path)
        return default if value in (None, "") else str(value)
    return get


def _labels(obj: Object) -> str:
    labels = dig(obj, "metadata", "labels", default={})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


# -- defaults for the kinds in kinds.py --------------------------------------------------


def _deploy_ready(obj: Object) -> str:
    want = dig(obj, "spec", "replicas", default=1)
    return f"{dig(obj, 'status', 'readyReplicas', default=0)}/{want}"


def _containers(field: str) -> Getter:
    def get(obj: Object) -> str:
        cs = dig(obj, "spec", "template", "spec", "containers", default=[])
        return ",".join(str(c.get(field, "")) for c in cs if isinstance(c, dict)) or "<none>"
    return get


def _deploy_cluster_columns(objects: Sequence[Object]) -> list[Column]:
    """One wide column per member cluster a listed Deployment is placed on, each cell
    READY/DESIRED there (``?`` when the cluster is unreachable: its last report is not
    trusted), from the status the placement controllers aggregate."""
    names = sorted({str(c.get("name")) for o in objects
                    for c in dig(o, "status", "clusters", default=[]) or []})

    def cell(name: str) -> Getter:
        def get(obj: Object) -> str:
            for c in dig(obj, "status", "clusters", default=[]) or []:
                if c.get("name") == name:
                    ready = c.get("readyReplicas", 0) if c.get("reachable", True) else "?"
                    return f"{ready}/{c.get('desiredReplicas', 0)}"
            return "-"
        return get

    return [Column(name.upper(), cell(name), wide=True) for name in names]


def _selector(obj: Object) -> str:
    sel = dig(obj, "spec", "selector", "matchLabels", default=None) \
        or dig(obj, "spec", "selector", default={})
    if not isinstance(sel, dict) or not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()) if isinstance(v, str)) \
        or "<none>"


def _ports(obj: Object) -> str:
    out = []
    for p in dig(obj, "spec", "ports", default=[]):
        if isinstance(p, dict):
            out.append(f"{p.get('port', '')}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


def _data_count(obj: Object) -> str:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    string = obj.get("stringData") or {}
    return str(len(data) + len(binary) + len(string))


def _taints(obj: Object) -> str:
    ts = dig(obj, "spec", "taints", default=[])
    return ",".join(f"{t.get('key')}:{t.get('effect')}" for t in ts if isinstance(t, dict)) \
        or "<none>"


def _cluster_ready(obj: Object) -> str:
    ready = condition(obj, "Ready")
    if dig(obj, "spec", "unschedulable", default=False):
        return f"{ready},SchedulingDisabled"
    return ready


def _condition_or_none(obj: Object, type_: str) -> str:
    """Like `condition`, but "<none>" when there is no such condition."""
    for c in dig(obj, "status", "conditions", default=[]):
        if isinstance(c, dict) and c.get("type") == type_:
            return str(c.get("status") or "Unknown")
    return "<none>"


def _reaches(obj: Object) -> str:
    """A GatewayReport's clusters: ``east-1=reachable,south-1=unreachable``."""
    out = [f"{c.get('name')}={'reachable' if c.get('reachable') else 'unreachable'}"
           for c in dig(obj, "spec", "clusters", default=[]) if isinstance(c, dict)]
    return ",".join(out) or "<none>"


def _nodes(obj: Object) -> str:
    summary = dig(obj, "status", "nodeSummary", default={})
    if not isinstance(summary, dict) or "total" not in summary:
        return "<unknown>"
    return f"{summary.get('ready', 0)}/{summary['total']}"


def format_cpu(value: Any) -> str:
    """Cores as people write them: ``4``, ``1.5``, ``250m``."""
    millis = cpu_millis(value)
    if millis < 1000 and millis != 0:
        return f"{millis}m"
    return f"{millis / 1000:g}"


def format_memory(value: Any) -> str:
    """Bytes in Mi, or in Gi from 1 Gi up (one decimal at most): ``512Mi``, ``7.5Gi``."""
    size = memory_bytes(value)
    if size == 0:
        return "0"
    if size >= 2**30:
        return f"{round(size / 2**30, 1):g}Gi"
    return f"{round(size / 2**20):d}Mi"


def _used_of(resource: str, fmt: Callable[[Any], str]) -> Getter:
    """``allocated/capacity`` of one resource; "<unknown>" before the agent reports."""
    def get(obj: Object) -> str:
        cap = dig(obj, "status", "capacity", resource)
        if cap is None:
            return "<unknown>"
        return f"{fmt(dig(obj, 'status', 'allocated', resource, default=0))}/{fmt(cap)}"
    return get


async def _count_works(lister: Lister, clusters: list[Object]) -> list[Object]:
    """Works per cluster execution namespace, from ONE list call: the namespace itself
    for a single cluster, else every namespace (cheaper than a call per row)."""
    work = by_kind("Work")
    names = [str(dig(c, "metadata", "name", default="")) for c in clusters]
    only = execution_namespace(names[0]) if len(names) == 1 else None
    counts: dict[str, int] = {}
    for w in await lister(work, only):
        ns = str(dig(w, "metadata", "namespace", default=""))
        counts[ns] = counts.get(ns, 0) + 1
    return [{**c, EXTRA: {"workloads": counts.get(execution_namespace(n), 0)}}
            for c, n in zip(clusters, names, strict=True)]


def _workloads(obj: Object) -> str:
    count = dig(obj, EXTRA, "workloads")
    return "<unknown>" if count is None else str(count)


def _selectors(obj: Object) -> str:
    out = []
    for s in dig(obj, "spec", "resourceSelectors", default=[]):
        if isinstance(s, dict):
            out.append(f"{s.get('kind', '')}/{s.get('name', '*')}")
    return ",".join(out) or "<none>"


def _placement_clusters(obj: Object) -> str:
    names = dig(obj, "spec", "placement", "clusterAffinity", "clusterNames", default=[])
    return ",".join(str(n) for n in names) or "<any>"


def _binding_resource(obj: Object) -> str:
    ref = dig(obj, "spec", "resource", default={})
    return f"{ref.get('kind', '')}/{ref.get('name', '')}" if ref else "<none>"


def _binding_clusters(obj: Object) -> str:
    out = []
    for c in dig(obj, "spec", "clusters", default=[]):
        if isinstance(c, dict):
            r = c.get("replicas")
            out.append(f"{c.get('name')}:{r}" if r is not None else str(c.get("name")))
    return ",".join(out) or "<none>"


def _event_object(obj: Object) -> str:
    ref = obj.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _endpoints(obj: Object) -> str:
    eps = obj.get("endpoints") or dig(obj, "spec", "endpoints", default=[])
    return str(len(eps)) if isinstance(eps, list) else "0"


register_columns(
    "Cluster",
    Column("READY", _cluster_ready),
    Column("REGION", _field("spec", "region")),
    Column("ZONE", _field("spec", "zone")),
    Column("NODES", _nodes),
    Column("CPU", _used_of("cpu", format_cpu)),
    Column("MEMORY", _used_of("memory", format_memory)),
    Column("WORKLOADS", _workloads),
    # a Kubernetes member's status.kubernetesVersion (Karmada's VERSION column); NODES,
    # CPU and MEMORY above are its node and resource summaries
    Column("VERSION", _field("status", "kubernetesVersion", default="<none>"), wide=True),
    Column("PROVIDER", _field("spec", "provider"), wide=True),
    Column("RUNTIME", _field("spec", "runtime"), wide=True),
    Column("INGRESS", _field("spec", "ingressAddress"), wide=True),
    Column("TAINTS", _taints, wide=True),
    # what the gateways' health checks reach (cluster health, from GatewayReports)
    Column("TRAFFIC", lambda o: _condition_or_none(o, "TrafficReachable"), wide=True),
)
register_enricher("Cluster", _count_works)
register_columns(
    "Deployment",
    Column("READY", _deploy_ready),
    Column("UP-TO-DATE", _field("status", "updatedReplicas", default="0")),
    Column("AVAILABLE", _field("status", "availableReplicas", default="0")),
    Column("CONTAINERS", _containers("name"), wide=True),
    Column("IMAGES", _containers("image"), wide=True),
    Column("SELECTOR", _selector, wide=True),
)
register_dynamic_columns("Deployment", _deploy_cluster_columns)
register_columns(
    "Service",
    Column("TYPE", _field("spec", "type", default="ClusterIP")),
    Column("PORT(S)", _ports),
    Column("SELECTOR", _selector, wide=True),
)


def _job_status(obj: Object) -> str:
    """What kubectl shows for a Job: Complete, Failed or Running (Waiting when a
    cluster has no room for its pods)."""
    for type_ in ("Complete", "Failed", "Waiting"):
        if condition(obj, type_) == "True":
            return type_
    return "Running"


def _job_completions(obj: Object) -> str:
    return f"{dig(obj, 'status', 'succeeded', default=0) or 0}/" \
        f"{dig(obj, 'spec', 'completions', default=1) or 1}"


def _job_clusters(obj: Object) -> str:
    return ",".join(f"{c.get('name')}:{c.get('succeeded', 0)}"
                    for c in dig(obj, "status", "clusters", default=[]) or []) or "<none>"


register_columns(
    "Job",
    Column("STATUS", _job_status),
    Column("COMPLETIONS", _job_completions),
    Column("ACTIVE", _field("status", "active", default="0")),
    Column("FAILED", _field("status", "failed", default="0"), wide=True),
    Column("INDEXES", _field("status", "completedIndexes"), wide=True),
    Column("CLUSTERS", _job_clusters, wide=True),
)
register_columns(
    "CronJob",
    Column("SCHEDULE", _field("spec", "schedule")),
    Column("TIMEZONE", _field("spec", "timeZone", default="<none>")),
    Column("SUSPEND", lambda o: str(dig(o, "spec", "suspend", default=False) is True)),
    Column("ACTIVE", _count("status", "active")),
    Column("LAST SCHEDULE", lambda o: age(dig(o, "status", "lastScheduleTime"))
           if dig(o, "status", "lastScheduleTime") else "<none>"),
)
register_columns("ConfigMap", Column("DATA", _data_count))
register_columns("Secret", Column("TYPE", _field("type", default="Opaque")),
                 Column("DATA", _data_count))
for _kind in ("PropagationPolicy", "ClusterPropagationPolicy"):
    register_columns(_kind, Column("RESOURCES", _selectors),
                     Column("CLUSTERS", _placement_clusters, wide=True))
for _kind in ("OverridePolicy", "ClusterOverridePolicy"):
    register_columns(_kind, Column("RESOURCES", _selectors),
                     Column("RULES", _count("spec", "overrideRules"), wide=True))
register_columns(
    "ResourceBinding",
    Column("RESOURCE", _binding_resource),
    Column("CLUSTERS", _binding_clusters),
    Column("SCHEDULED", lambda o: condition(o, "Scheduled"), wide=True),
)
register_columns(
    "Work",
    Column("MANIFESTS", _count("spec", "workload", "manifests")),
    Column("APPLIED", lambda o: condition(o, "Applied")),
)
register_columns("ServiceExport", Column("VALID", lambda o: condition(o, "Valid")),
                 Column("CONFLICT", lambda o: condition(o, "Conflict")))


def _import_clusters(obj: Object) -> str:
    names = [str(c.get("cluster")) for c in dig(obj, "status", "clusters", default=[]) or []
             if isinstance(c, dict)]
    return ",".join(names) or "<none>"


def _import_cluster_columns(objects: Sequence[Object]) -> list[Column]:
    """One wide column per exporting cluster: its ready endpoints as ``address:port``
    (``<none>`` for a cluster that exports but may not get traffic: not Ready,
    NoExecute-tainted or no ready pod), from the import's Flotilla status extension."""
    names = sorted({str(c.get("cluster")) for o in objects
                    for c in dig(o, "status", "clusters", default=[]) or []})

    def cell(name: str) -> Getter:
        def get(obj: Object) -> str:
            if name not in _import_clusters(obj).split(","):
                return "-"
            eps = [f"{e.get('address')}:{e.get('port')}"
                   for e in dig(obj, "status", "endpoints", default=[]) or []
                   if e.get("cluster") == name and e.get("ready")]
            return ",".join(eps) or "<none>"
        return get

    return [Column(name.upper(), cell(name), wide=True) for name in names]


register_columns("ServiceImport", Column("TYPE", _field("spec", "type")),
                 Column("PORT(S)", _ports), Column("CLUSTERS", _import_clusters))
register_dynamic_columns("ServiceImport", _import_cluster_columns)
register_columns("EndpointSlice", Column("ENDPOINTS", _endpoints))
register_columns("GatewayReport", Column("CLUSTERS", _reaches),
                 Column("RENEWED", _field("spec", "renewTime", default="<none>")))
register_columns("Lease", Column("HOLDER", _field("spec", "holderIdentity", default="<none>")),
                 Column("RENEWED", lambda o: age(dig(o, "spec", "renewTime"))))
register_columns(
    "Event",
    Column("LAST SEEN", lambda o: age(o.get("lastTimestamp"))),
    Column("TYPE", _field("type")),
    Column("REASON", _field("reason")),
    Column("OBJECT", _event_object),
    Column("COUNT", _field("count", default="1"), wide=True),
    Column("MESSAGE", _field("message")),
)
def _fhpa_targets(obj: Object) -> str:
    return ", ".join(FederatedHPAView.of(obj).targets()) or "<none>"


register_columns(
    "FederatedHPA",
    Column("REFERENCE", lambda o: f"Deployment/{FederatedHPAView.of(o).target_name}"),
    Column("TARGETS", _fhpa_targets),
    Column("MINPODS", lambda o: str(FederatedHPAView.of(o).min_replicas)),
    Column("MAXPODS", lambda o: str(FederatedHPAView.of(o).max_replicas)),
    Column("REPLICAS", lambda o: str(FederatedHPAView.of(o).current_replicas)),
)


def _cron_reference(obj: Object) -> str:
    ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _cron_rules(obj: Object) -> str:
    rules = (obj.get("spec") or {}).get("rules") or []
    return ", ".join(f"{r.get('name')}({r.get('schedule')})" + (" suspended"
                     if r.get("suspend") else "") for r in rules) or "<none>"


def _cron_next(obj: Object) -> str:
    times = sorted(str(h["nextExecutionTime"]) for h in
                   (obj.get("status") or {}).get("executionHistories") or []
                   if h.get("nextExecutionTime"))
    return times[0] if times else "<none>"


register_columns(
    "CronFederatedHPA",
    Column("REFERENCE", _cron_reference),
    Column("RULES", _cron_rules),
    Column("NEXT", _cron_next),
)
for _kind in ("TrafficPolicy", "RolloutPolicy"):
    register_columns(_kind, Column("LABELS", _labels, wide=True))
