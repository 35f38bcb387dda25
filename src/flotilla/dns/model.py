"""The DNS answer model: what the server may say, built by one pure function from API objects.

The server never reads API objects on the query path. `build_model` turns the current
TrafficPolicies, EndpointSlices, Clusters and ServiceExports (plain dicts, as listed from
the API) into small frozen records that already exclude everything unhealthy, so that a
query only has to pick among healthy targets, and so that a model update is one atomic
reference swap.

The input is parsed defensively on purpose: the typed models of
`flotilla.resources.models` were written at the same time as this module, and the DNS must
keep answering for every *other* object when one object is odd. A malformed object is
skipped and named in `DnsModel.problems` instead of failing the whole build.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flotilla.resources.models.common import parse_duration
from flotilla.resources.views import ClusterView, TrafficPolicyView

Strategy = Literal["RoundRobin", "Weighted", "Failover", "Geo"]
STRATEGIES: tuple[Strategy, ...] = ("RoundRobin", "Weighted", "Failover", "Geo")
DEFAULT_TTL = 5
CLUSTERSET_ZONE = "clusterset.local"

# How the gateway's strategy (``spec.strategy``) maps to a DNS strategy when the policy has no
# ``spec.dns.strategy``: DNS can only shape *which addresses* a resolver gets, so every
# per-request balancer (least request, hashing, latency) degrades to plain rotation.
_FROM_GATEWAY: dict[str, Strategy] = {
    "RoundRobin": "RoundRobin",
    "Random": "RoundRobin",
    "LeastRequest": "RoundRobin",
    "ConsistentHash": "RoundRobin",
    "Latency": "RoundRobin",
    "WeightedRoundRobin": "Weighted",
    "Weighted": "Weighted",
    "Failover": "Failover",
    "Locality": "Geo",
    "Geo": "Geo",
    "All": "RoundRobin",
}

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    port: int
    protocol: str  # upper case: TCP, UDP, SCTP


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready pod endpoint; ``pod`` is already a valid DNS label."""

    pod: str
    address: str
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """A healthy cluster that can take traffic for one global name."""

    cluster: str
    region: str
    addresses: tuple[str, ...]  # ingress addresses, IPv4 and/or IPv6
    weight: int = 1


@dataclass(frozen=True, slots=True)
class GlobalName:
    """A TrafficPolicy host inside the served zone and its healthy targets."""

    host: str  # lower case, no trailing dot
    policy: str  # "namespace/name", for logs and errors
    strategy: Strategy
    ttl: int
    targets: tuple[Target, ...]
    failover: tuple[str, ...] = ()  # ordered regions


@dataclass(frozen=True, slots=True)
class ClusterBackend:
    """One cluster's share of an exported service: its ingress and its ready endpoints."""

    cluster: str
    region: str
    ingress: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class ExportedService:
    name: str
    namespace: str
    backends: tuple[ClusterBackend, ...]  # healthy clusters with >= 1 ready endpoint


@dataclass(frozen=True, slots=True)
class DnsModel:
    zone: str  # lower case, no trailing dot
    ttl: int = DEFAULT_TTL
    names: Mapping[str, GlobalName] = field(default_factory=dict)
    services: Mapping[tuple[str, str], ExportedService] = field(default_factory=dict)
    #: Human-readable reasons why some objects were left out (bad shape, outside zone).
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _ClusterState:
    name: str
    region: str
    ingress: tuple[str, ...]
    healthy: bool


def build_model(
    zone: str,
    *,
    traffic_policies: Iterable[Obj] = (),
    endpoint_slices: Iterable[Obj] = (),
    clusters: Iterable[Obj] = (),
    service_exports: Iterable[Obj] = (),
    ttl: int = DEFAULT_TTL,
) -> DnsModel:
    """Compile API objects into the answer model. Pure: same input, same model.

    A bad object is skipped and named in ``problems``; a bad ``zone`` (configuration,
    not data) raises ValueError."""
    zone = check_zone(zone)
    problems: list[str] = []
    cluster_states = {c.name: c for c in _clusters(clusters, problems)}
    # (namespace, service) -> cluster -> backend, healthy clusters with ready endpoints only.
    backends = _backends(endpoint_slices, cluster_states, problems)

    names: dict[str, GlobalName] = {}
    for tp in sorted(traffic_policies, key=_ns_name):
        try:
            for gname in _global_names(tp, zone, ttl, backends, problems):
                if gname.host in names:
                    problems.append(
                        f"TrafficPolicy {gname.policy}: host {gname.host} already served by "
                        f"TrafficPolicy {names[gname.host].policy}; ignored"
                    )
                    continue
                names[gname.host] = gname
        except (TypeError, ValueError, AttributeError) as exc:
            problems.append(f"TrafficPolicy {_ref(tp)}: {exc}; ignored")

    services: dict[tuple[str, str], ExportedService] = {}
    for se in service_exports:
        ns, name = _ns_name(se)
        if not name or not ns or not _is_label(name) or not _is_label(ns):
            problems.append(f"ServiceExport {_ref(se)}: name and namespace must be DNS labels")
            continue
        per_cluster = backends.get((ns, name), {})
        services[(ns, name)] = ExportedService(
            name=name,
            namespace=ns,
            backends=tuple(per_cluster[c] for c in sorted(per_cluster)),
        )
    return DnsModel(
        zone=zone, ttl=ttl, names=names, services=services, problems=tuple(problems)
    )


def normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def check_zone(zone: str) -> str:
    """The served zone, normalised, or ValueError saying why it cannot be served: an
    empty zone would be the root (authoritative for every name on the Internet)."""
    z = normalize_name(zone)
    labels = z.split(".")
    if not z or any(not 0 < len(label) <= 63 for label in labels) or len(z) > 253:
        raise ValueError(f"zone must be a DNS name such as 'example.test', got {zone!r}")
    if in_zone(z, CLUSTERSET_ZONE) or in_zone(CLUSTERSET_ZONE, z):
        raise ValueError(f"zone {zone!r} overlaps {CLUSTERSET_ZONE}, which is served apart")
    return z


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _clusters(objs: Iterable[Obj], problems: list[str]) -> Iterable[_ClusterState]:
    for c in objs:
        view = ClusterView.of(c)
        if not view.name:
            problems.append("Cluster without metadata.name; ignored")
            continue
        yield _ClusterState(
            name=view.name,
            region=view.region,
            # As stored, not `ClusterView.ingress_address`: a list of addresses is read too.
            ingress=_addresses(_dict(c.get("spec")).get("ingressAddress")),
            healthy=view.serves_traffic,
        )


def _backends(
    slices: Iterable[Obj], clusters: Mapping[str, _ClusterState], problems: list[str]
) -> dict[tuple[str, str], dict[str, ClusterBackend]]:
    out: dict[tuple[str, str], dict[str, ClusterBackend]] = {}
    for s in slices:
        ns, _ = _ns_name(s)
        spec = _dict(s.get("spec"))
        service, cluster = spec.get("service"), spec.get("cluster")
        if not isinstance(service, str) or not isinstance(cluster, str) or not ns:
            problems.append(f"EndpointSlice {_ref(s)}: spec.service and spec.cluster required")
            continue
        state = clusters.get(cluster)
        if state is None or not state.healthy:
            continue  # unknown, not Ready or NoExecute-tainted clusters get no traffic
        endpoints = tuple(_endpoints(spec.get("endpoints"), s, problems))
        if not endpoints:
            continue
        ingress = state.ingress or _addresses(_dict(spec.get("ingress")).get("address"))
        out.setdefault((ns, service), {})[cluster] = ClusterBackend(
            cluster=cluster,
            region=state.region or str(spec.get("region") or ""),
            ingress=ingress,
            endpoints=endpoints,
        )
    return out


def _endpoints(raw: Any, s: Obj, problems: list[str]) -> Iterable[Endpoint]:
    for i, ep in enumerate(_list(raw)):
        if not isinstance(ep, Mapping) or ep.get("ready") is not True:
            continue
        addr = _addresses(ep.get("address"))
        if not addr:
            problems.append(f"EndpointSlice {_ref(s)}: spec.endpoints[{i}].address invalid")
            continue
        pod = to_label(str(ep.get("pod") or f"ep-{i}"))
        yield Endpoint(pod=pod, address=addr[0], ports=tuple(_ports(ep.get("ports"))))


def _ports(raw: Any) -> Iterable[Port]:
    for p in _list(raw):
        if not isinstance(p, Mapping):
            continue
        port = p.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            continue
        yield Port(
            name=to_label(str(p.get("name") or "")) if p.get("name") else "",
            port=port,
            protocol=str(p.get("protocol") or "TCP").upper(),
        )


def _global_names(
    tp: Obj,
    zone: str,
    default_ttl: int,
    backends: Mapping[tuple[str, str], Mapping[str, ClusterBackend]],
    problems: list[str],
) -> Iterable[GlobalName]:
    ns, name = _ns_name(tp)
    view = TrafficPolicyView.of(tp)
    strategy = _strategy(view)
    ttl = _ttl(view.dns.get("ttl", default_ttl))
    _check_weights(view)
    failover = view.failover
    per_cluster = backends.get((ns, view.service), {}) if view.service else {}
    targets = tuple(
        Target(
            cluster=b.cluster,
            region=b.region,
            addresses=b.ingress,
            weight=view.weight_of(b.cluster),
        )
        for _, b in sorted(per_cluster.items())
        if b.ingress
    )
    for host in view.hosts:
        h = normalize_name(host)
        if not in_zone(h, zone):
            problems.append(f"TrafficPolicy {ns}/{name}: host {h} is outside zone {zone}")
            continue
        yield GlobalName(
            host=h,
            policy=f"{ns}/{name}",
            strategy=strategy,
            ttl=ttl,
            targets=targets,
            failover=failover,
        )


def _strategy(view: TrafficPolicyView) -> Strategy:
    """``spec.dns.strategy`` if set (our names, or the TrafficPolicy model's
    WeightedRoundRobin/Locality/All), else derived from ``spec.strategy.type``."""
    explicit = view.dns.get("strategy")
    if explicit is not None:
        if explicit not in _FROM_GATEWAY:
            raise ValueError(
                f"spec.dns.strategy must be one of {', '.join(STRATEGIES)}, got {explicit!r}"
            )
        return _FROM_GATEWAY[explicit]
    return _FROM_GATEWAY.get(view.strategy, "RoundRobin")


def _ttl(raw: Any) -> int:
    """Whole seconds: ``30`` or a Go duration ``"30s"``, as the TrafficPolicy model allows."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    if isinstance(raw, str):
        try:
            return round(parse_duration(raw))
        except ValueError:
            pass
    raise ValueError(f"spec.dns.ttl must be seconds or a duration such as '30s', got {raw!r}")


def _check_weights(view: TrafficPolicyView) -> None:
    """Cluster weights (read by `TrafficPolicyView.weights`, in either accepted place
    and shape) must not be negative."""
    for cluster, weight in view.weights.items():
        if weight < 0:
            raise ValueError(f"weight of cluster {cluster} must be >= 0, got {weight}")


def _addresses(raw: Any) -> tuple[str, ...]:
    """Valid IP addresses out of a string or a list of strings (host:port is tolerated)."""
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            continue
        for candidate in (v, v.rsplit(":", 1)[0], v.strip("[]")):
            try:
                out.append(str(ipaddress.ip_address(candidate.strip("[]"))))
                break
            except ValueError:
                continue
    return tuple(out)


def to_label(text: str) -> str:
    """Turn a pod or port name into a DNS label (lower case, [a-z0-9-], <= 63)."""
    label = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in text.lower())
    label = label.strip("-")[:63].strip("-")
    return label or "x"


def _is_label(text: str) -> bool:
    return 0 < len(text) <= 63 and to_label(text) == text


def _meta(obj: Obj) -> Obj:
    return _dict(obj.get("metadata"))


def _ns_name(obj: Obj) -> tuple[str, str]:
    meta = _meta(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _ref(obj: Obj) -> str:
    ns, name = _ns_name(obj)
    return f"{ns}/{name}" if ns else name or "<unnamed>"


def _dict(v: Any) -> Obj:
    return v if isinstance(v, Mapping) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []
