"""The routing model the gateway's hot path reads, and the pure function that builds it.

Why a separate, immutable model: the proxy must never see a half-applied change. The
config source builds a whole new `RoutingModel` from API objects and the gateway swaps
one reference; requests already running keep the model they started with.

TrafficPolicy is validated with the shared pydantic model (the API validates on write;
the gateway validates again as its last line of defence: a bad policy is skipped and
reported in ``RoutingModel.errors``, never half-applied) and mapped to small frozen
dataclasses, which are cheaper to read per request than pydantic objects.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.views import ClusterView, EndpointSliceView

IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class PolicyError(ValueError):
    """A TrafficPolicy field is invalid; the message names the field path."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    cluster: str
    region: str
    zone: str
    address: str
    port: int
    ready: bool = True
    weight: int = 1

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity across model rebuilds: pools and health state follow it."""
        return (self.cluster, self.address, self.port)

    @property
    def name(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class HashOn:
    source: str  # "header" | "cookie" | "source-ip"
    name: str = ""


@dataclass(frozen=True, slots=True)
class Strategy:
    type: str = "RoundRobin"
    hash_on: HashOn | None = None


@dataclass(frozen=True, slots=True)
class Locality:
    #: The preferred region; None: the gateway's own ``--region``.
    region: str | None = None
    #: Request header naming the client's region, overriding ``region`` per request.
    region_header: str | None = None
    failover: tuple[str, ...] = ()
    #: Leave a region when fewer than this share of its endpoints are available.
    spill_threshold: float = 0.7


@dataclass(frozen=True, slots=True)
class HealthCheck:
    path: str = "/healthz"
    interval: float = 5.0
    timeout: float = 1.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_errors: int = 5
    consecutive_connect_errors: int = 5
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    #: At most this share of endpoints ejected at once (but one may always be ejected).
    max_ejection_percent: float = 10.0
    #: Below this available share the balancer uses every endpoint (Envoy's panic mode).
    panic_threshold: float = 0.5


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int = 2
    retry_on: frozenset[str] = frozenset({"connect-failure", "reset", "503"})
    allow_non_idempotent: bool = False
    budget_percent: float = 20.0
    min_retry_concurrency: int = 3


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 1.0
    per_try: float = 15.0
    total: float = 30.0


@dataclass(frozen=True, slots=True)
class Tls:
    #: ``namespace/name`` of the Secret (kubernetes.io/tls) holding the certificate.
    secret: str
    #: Plain HTTP for the policy's hosts gets a 308 to https.
    redirect_http: bool = False


@dataclass(frozen=True, slots=True)
class CertSource:
    """What the Secret a host's certificate comes from held when the model was built:
    the PEM pair, or why there is none (``problem``). Parsing the PEM and keeping the last
    good pair is `flotilla.traffic.tls`'s job; this is the part a pure function can do."""

    secret: str
    cert_pem: bytes = b""
    key_pem: bytes = b""
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    namespace: str
    service: str
    hosts: tuple[str, ...]
    paths: tuple[str, ...] = ("/",)
    strategy: Strategy = Strategy()
    locality: Locality = Locality()
    health_check: HealthCheck | None = None
    outlier: OutlierDetection = OutlierDetection()
    retries: Retries = Retries()
    timeouts: Timeouts = Timeouts()
    cluster_weights: Mapping[str, int] = field(default_factory=dict)
    cluster_header: bool = True
    tls: Tls | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    """One policy's target: the endpoints of its Service across the usable clusters."""

    policy: Policy
    endpoints: tuple[Endpoint, ...]

    @property
    def id(self) -> str:
        return f"{self.policy.namespace}/{self.policy.name}"

    @property
    def service(self) -> str:
        return f"{self.policy.namespace}/{self.policy.service}"


@dataclass(frozen=True, slots=True)
class RoutingModel:
    #: host -> (path prefix, backend id), longest prefix first. "*.example.test" matches
    #: one level of subdomain, "*" any host.
    routes: Mapping[str, tuple[tuple[str, str], ...]]
    backends: Mapping[str, Backend]
    errors: tuple[str, ...] = ()
    #: host (as routed: exact, "*.suffix" or "*") -> where its certificate comes from.
    certificates: Mapping[str, CertSource] = field(default_factory=dict)

    def match(self, host: str, path: str) -> Backend | None:
        table = self.routes.get(host)
        if table is None:
            dot = host.find(".")
            table = (self.routes.get("*" + host[dot:]) if dot > 0 else None) \
                or self.routes.get("*")
        if table is None:
            return None
        for prefix, backend_id in table:
            if path.startswith(prefix):
                return self.backends[backend_id]
        return None


EMPTY_MODEL = RoutingModel(routes={}, backends={})


# --- parsing -------------------------------------------------------------------------

_GATEWAY_ERRORS = frozenset({"502", "503", "504", "timeout"})
_ALL_5XX = frozenset(str(c) for c in range(500, 600)) | {"timeout", "connect-failure", "reset"}


def parse_hash_on(text: str) -> HashOn:
    """``header:NAME``, ``cookie:NAME`` or ``source-ip`` (already validated)."""
    if text == "source-ip":
        return HashOn("source-ip")
    source, _, name = text.partition(":")
    return HashOn(source, name.lower() if source == "header" else name)


def _retry_tokens(conditions: Iterable[str]) -> frozenset[str]:
    """Envoy's umbrella conditions expanded to what the proxy checks: status codes,
    ``connect-failure``, ``reset`` and ``timeout``."""
    out: set[str] = set()
    for c in conditions:
        out |= {"gateway-error": _GATEWAY_ERRORS, "5xx": _ALL_5XX}.get(c, {c})
    return frozenset(out)


def parse_policy(obj: Mapping[str, Any]) -> Policy:
    """A TrafficPolicy object -> `Policy`; `PolicyError` names the first bad field.

    Validation is the shared model's (`flotilla.resources.models.traffic`), so the API and
    the gateway accept exactly the same documents (its strategy names are those of
    `flotilla.traffic.balancers.table`, a test checks); this only maps it to the hot
    path's frozen dataclasses.
    """
    from pydantic import ValidationError

    from flotilla.resources.models.traffic import TrafficPolicySpec

    meta = obj.get("metadata") or {}
    spec_raw = obj.get("spec")
    if not isinstance(spec_raw, Mapping):
        raise PolicyError("spec: expected an object")
    try:
        spec = TrafficPolicySpec.model_validate(spec_raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in ("spec", *err["loc"]))
        raise PolicyError(f"{where}: {err['msg']}") from None
    loc = spec.locality
    hc = spec.health_check
    od = spec.outlier_detection
    rt = spec.retries
    to = spec.timeouts
    return Policy(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        service=spec.service,
        hosts=tuple(h.lower() for h in spec.hosts),
        paths=tuple(spec.paths) or ("/",),
        strategy=Strategy(spec.strategy.type,
                          parse_hash_on(spec.strategy.hash_on) if spec.strategy.hash_on
                          else None),
        locality=Locality() if loc is None else Locality(
            region=loc.region, region_header=loc.header.lower() if loc.header else None,
            failover=tuple(loc.failover), spill_threshold=loc.spill_threshold),
        health_check=None if hc is None else HealthCheck(
            hc.path, hc.interval, hc.timeout, hc.healthy_threshold, hc.unhealthy_threshold),
        outlier=OutlierDetection() if od is None else OutlierDetection(
            consecutive_errors=od.consecutive_errors,
            consecutive_connect_errors=od.consecutive_connect_errors or od.consecutive_errors,
            base_ejection_time=od.base_ejection_time,
            max_ejection_time=max(od.max_ejection_time, od.base_ejection_time),
            max_ejection_percent=float(od.max_ejection_percent),
            panic_threshold=od.panic_threshold / 100.0),
        retries=Retries(attempts=rt.attempts, retry_on=_retry_tokens(rt.retry_on),
                        allow_non_idempotent=rt.non_idempotent,
                        budget_percent=float(rt.budget_percent)),
        timeouts=Timeouts(to.connect, to.per_try if to.per_try is not None else to.total,
                          to.total),
        cluster_weights=dict(spec.weights),
        cluster_header=spec.serve_header,
        tls=None if spec.tls is None else Tls(
            f"{meta.get('namespace') or 'default'}/{spec.tls.secret_name}",
            spec.tls.redirect_http),
    )


# --- clusters and endpoints ----------------------------------------------------------


def cluster_usable(cluster: Mapping[str, Any]) -> bool:
    """`ClusterView.serves_traffic` (Ready, no NoExecute taint, not found unreachable):
    otherwise traffic must leave it at once."""
    return ClusterView.of(cluster).serves_traffic


def slice_endpoints(slice_view: EndpointSliceView, cluster: ClusterView | None,
                    policy: Policy) -> list[Endpoint]:
    """The ready endpoints one EndpointSlice contributes under ``policy``."""
    weight = policy.cluster_weights.get(slice_view.cluster, 1)
    if cluster is None or weight == 0 or not (cluster.serves_traffic or (
            policy.health_check is not None and cluster.left_to_health_checks)):
        # A cluster only the control plane lost keeps its endpoints while the policy's
        # active health checks pass (make-before-break): they, not the heartbeats, say
        # whether users reach its pods. One the gateways found unreachable keeps them
        # too, so the checks see it come back.
        return []
    region = slice_view.region or cluster.region
    zone = slice_view.zone or cluster.zone
    out = []
    for ep in slice_view.ready_endpoints:
        port = ep.proxied_port
        if ep.address and port is not None:
            out.append(Endpoint(slice_view.cluster, region, ep.zone or zone, ep.address,
                                port, True, weight))
    return out


TLS_SECRET_TYPE = "kubernetes.io/tls"


def cert_source(secret_id: str, secret: Mapping[str, Any] | None) -> CertSource:
    """The PEM pair a kubernetes.io/tls Secret holds, or the problem with it."""
    if secret is None:
        return CertSource(secret_id, problem=f"Secret {secret_id} does not exist")
    kind = secret.get("type") or "Opaque"
    if kind != TLS_SECRET_TYPE:
        return CertSource(secret_id, problem=f"Secret {secret_id} has type {kind!r}, "
                          f"expected {TLS_SECRET_TYPE!r}")
    data = secret.get("data") or {}
    strings = secret.get("stringData") or {}
    pem: dict[str, bytes] = {}
    for key in ("tls.crt", "tls.key"):
        if isinstance(strings, Mapping) and isinstance(strings.get(key), str):
            pem[key] = strings[key].encode()
            continue
        raw = data.get(key) if isinstance(data, Mapping) else None
        if not isinstance(raw, str) or not raw:
            return CertSource(secret_id, problem=f"Secret {secret_id} has no data {key!r}")
        try:
            pem[key] = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return CertSource(secret_id, problem=f"Secret {secret_id}: data {key!r} is not "
                              f"base64")
    return CertSource(secret_id, pem["tls.crt"], pem["tls.key"])


def build_model(policies: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
                clusters: Iterable[Mapping[str, Any]],
                secrets: Iterable[Mapping[str, Any]] = ()) -> RoutingModel:
    """Pure: API objects in, routing model out. Bad policies are skipped and reported.

    ``secrets`` are only read for the certificates policies name (``spec.tls``)."""
    by_secret = {f"{(s.get('metadata') or {}).get('namespace') or 'default'}/"
                 f"{(s.get('metadata') or {}).get('name')}": s for s in secrets}
    certificates: dict[str, CertSource] = {}
    by_cluster = {v.name: v for v in map(ClusterView.of, clusters)}
    by_service: dict[tuple[str, str], list[EndpointSliceView]] = {}
    for s in slices:
        if isinstance(s.get("spec"), Mapping):
            view = EndpointSliceView.of(s)
            by_service.setdefault((view.meta.namespace or "default", view.service),
                                  []).append(view)

    errors: list[str] = []
    backends: dict[str, Backend] = {}
    routes: dict[str, list[tuple[str, str]]] = {}
    for obj in sorted(policies, key=lambda o: (str((o.get("metadata") or {}).get("namespace")),
                                               str((o.get("metadata") or {}).get("name")))):
        meta = obj.get("metadata") or {}
        try:
            policy = parse_policy(obj)
        except PolicyError as e:
            errors.append(f"TrafficPolicy {meta.get('namespace')}/{meta.get('name')}: {e}")
            continue
        eps: list[Endpoint] = []
        for view in sorted(by_service.get((policy.namespace, policy.service), ()),
                           key=lambda v: v.cluster):
            eps.extend(slice_endpoints(view, by_cluster.get(view.cluster), policy))
        backend = Backend(policy, tuple(eps))
        backends[backend.id] = backend
        if policy.tls is not None:
            source = cert_source(policy.tls.secret, by_secret.get(policy.tls.secret))
            if source.problem:
                errors.append(f"TrafficPolicy {backend.id}: spec.tls.secretName: "
                              f"{source.problem}")
            for host in policy.hosts:
                other = certificates.setdefault(host, source)
                if other.secret != source.secret:
                    errors.append(f"TrafficPolicy {backend.id}: host {host} already takes "
                                  f"its certificate from Secret {other.secret}; "
                                  f"{source.secret} ignored for it")
        for host in policy.hosts:
            table = routes.setdefault(host, [])
            for prefix in policy.paths:
                if any(p == prefix for p, _ in table):
                    errors.append(f"TrafficPolicy {backend.id}: host {host} path {prefix} "
                                  f"is already routed; ignored")
                    continue
                table.append((prefix, backend.id))
    frozen = {h: tuple(sorted(t, key=lambda r: -len(r[0]))) for h, t in routes.items()}
    return RoutingModel(routes=frozen, backends=backends, errors=tuple(errors),
                        certificates=certificates)


def static_model(backends: Iterable[tuple[Policy, Iterable[Endpoint]]],
                 certificates: Mapping[str, CertSource] | None = None) -> RoutingModel:
    """A model from already-built parts: for tests, benchmarks and embedding
    (``certificates``: host -> PEM pair, as `build_model` makes from Secrets)."""
    certificates = certificates or {}
    built = {f"{p.namespace}/{p.name}": Backend(p, tuple(eps)) for p, eps in backends}
    routes: dict[str, list[tuple[str, str]]] = {}
    for bid, b in built.items():
        for host in b.policy.hosts:
            routes.setdefault(host, []).extend((prefix, bid) for prefix in b.policy.paths)
    return RoutingModel({h: tuple(sorted(t, key=lambda r: -len(r[0])))
                         for h, t in routes.items()}, built, certificates=dict(certificates))
