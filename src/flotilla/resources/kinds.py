"""The table of kinds Flotilla serves: group, versions, plural, scope, sub-resources.

This table is the single source the API router, the CLI (`flotilla get deploy`), the
OpenAPI document and the store keys are derived from. Adding a kind means adding one
`Kind` here and (for our own kinds) its model in `flotilla.resources.models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    plural: str
    #: API groups this kind is served under; the first is canonical ("" is the core group).
    groups: tuple[str, ...]
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    #: Whether ``status`` is a sub-resource (only writable through ``.../status``).
    has_status: bool = True
    #: Kubernetes kinds are stored as given and validated only for the fields we use;
    #: our own kinds reject unknown fields.
    strict: bool = True
    #: Whether ``.../scale`` serves an ``autoscaling/v1`` Scale of ``spec.replicas``
    #: (``kubectl scale``).
    has_scale: bool = False
    #: Extra API versions accepted and served for the same stored object.
    extra_versions: tuple[str, ...] = field(default=())
    #: Discovery categories: ``all`` puts the kind in ``kubectl get all``.
    categories: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.groups[0]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_versions(self) -> tuple[str, ...]:
        out = []
        for g in self.groups:
            for v in (self.version, *self.extra_versions):
                out.append(f"{g}/{v}" if g else v)
        return tuple(out)

    @property
    def resource(self) -> str:
        """The store's name for this kind: ``plural.group`` (``plural`` in the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_POLICY_GROUPS = ("policy.flotilla.io", "policy.karmada.io")
_RBAC = "rbac.authorization.k8s.io"

KINDS: tuple[Kind, ...] = (
    Kind("Cluster", "clusters", ("cluster.flotilla.io",), "v1alpha1", False, ("cluster",)),
    Kind("Deployment", "deployments", ("apps",), "v1", True, ("deploy", "deployment"),
         strict=False, has_scale=True, categories=("all",)),
    Kind("Service", "services", ("",), "v1", True, ("svc", "service"), strict=False,
         categories=("all",)),
    Kind("ConfigMap", "configmaps", ("",), "v1", True, ("cm", "configmap"), has_status=False,
         strict=False),
    Kind("Secret", "secrets", ("",), "v1", True, ("secret",), has_status=False, strict=False),
    Kind("PropagationPolicy", "propagationpolicies", _POLICY_GROUPS, "v1alpha1", True,
         ("pp", "propagationpolicy"), has_status=False),
    Kind("ClusterPropagationPolicy", "clusterpropagationpolicies", _POLICY_GROUPS, "v1alpha1",
         False, ("cpp", "clusterpropagationpolicy"), has_status=False),
    Kind("OverridePolicy", "overridepolicies", _POLICY_GROUPS, "v1alpha1", True,
         ("op", "overridepolicy"), has_status=False),
    Kind("ClusterOverridePolicy", "clusteroverridepolicies", _POLICY_GROUPS, "v1alpha1", False,
         ("cop", "clusteroverridepolicy"), has_status=False),
    Kind("ResourceBinding", "resourcebindings", ("work.flotilla.io",), "v1alpha1", True,
         ("rb", "binding", "resourcebinding")),
    Kind("Work", "works", ("work.flotilla.io",), "v1alpha1", True, ("work",)),
    Kind("TrafficPolicy", "trafficpolicies", ("traffic.flotilla.io",), "v1alpha1", True,
         ("tp", "trafficpolicy")),
    Kind("ServiceExport", "serviceexports", ("multicluster.x-k8s.io",), "v1alpha1", True,
         ("svcex", "serviceexport")),
    Kind("ServiceImport", "serviceimports", ("multicluster.x-k8s.io",), "v1alpha1", True,
         ("svcim", "serviceimport")),
    Kind("RolloutPolicy", "rolloutpolicies", ("apps.flotilla.io",), "v1alpha1", True,
         ("ro", "rollout", "rolloutpolicy")),
    # Karmada's FederatedHPA, also served under Karmada's own group (same shape).
    Kind("FederatedHPA", "federatedhpas", ("autoscaling.flotilla.io", "autoscaling.karmada.io"),
         "v1alpha1", True, ("fhpa", "federatedhpa")),
    Kind("CronFederatedHPA", "cronfederatedhpas",
         ("autoscaling.flotilla.io", "autoscaling.karmada.io"), "v1alpha1", True,
         ("cronfhpa", "cronfederatedhpa")),
    Kind("Event", "events", ("",), "v1", True, ("ev", "event"), has_status=False, strict=False),
    # Service endpoints one member cluster reports (written by its agent): what the gateway,
    # the DNS and service discovery route to. Our own shape, because local-runtime pods
    # each have their own port, which a Kubernetes EndpointSlice cannot express.
    Kind("EndpointSlice", "endpointslices", ("discovery.flotilla.io",), "v1alpha1", True,
         ("eps", "endpointslice"), has_status=False),
    # Heartbeats: one Lease per member cluster, renewed by its agent (see agent/heartbeat).
    Kind("Lease", "leases", ("coordination.flotilla.io",), "v1alpha1", True, ("lease",),
         has_status=False),
    # Who may do what (Kubernetes RBAC shapes; evaluated by flotilla.api.authz).
    Kind("Role", "roles", (_RBAC,), "v1", True, ("role",), has_status=False),
    Kind("ClusterRole", "clusterroles", (_RBAC,), "v1", False, ("clusterrole",),
         has_status=False),
    Kind("RoleBinding", "rolebindings", (_RBAC,), "v1", True, ("rolebinding",),
         has_status=False),
    Kind("ClusterRoleBinding", "clusterrolebindings", (_RBAC,), "v1", False,
         ("clusterrolebinding",), has_status=False),
    # Run-to-completion work (docs/batch.md): completions divided across clusters.
    Kind("Job", "jobs", ("batch",), "v1", True, ("job",), strict=False, categories=("all",)),
    Kind("CronJob", "cronjobs", ("batch",), "v1", True, ("cronjob", "cj"), strict=False,
         categories=("all",)),
    # What each gateway's health checks reach (one per gateway, written by it): the
    # cluster-health controller's input for the TrafficReachable condition.
    Kind("GatewayReport", "gatewayreports", ("traffic.flotilla.io",), "v1alpha1", True,
         ("gatewayreport", "gwr"), has_status=False),
)

_BY_KIND = {k.kind: k for k in KINDS}
_BY_RESOURCE = {k.resource: k for k in KINDS}
_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _n in (_k.kind.lower(), _k.plural, *_k.short_names):
        _BY_NAME[_n] = _k


class UnknownKind(LookupError):
    pass


def by_kind(kind: str) -> Kind:
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKind(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(_BY_KIND))}")\
            from None


def by_resource(resource: str) -> Kind:
    try:
        return _BY_RESOURCE[resource]
    except KeyError:
        raise UnknownKind(f"unknown resource {resource!r}") from None


def lookup(name: str) -> Kind:
    """Resolve what a user types after ``flotilla get``: kind, plural or short name."""
    key = name.lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    if "." in key and key.split(".", 1)[0] in _BY_NAME:  # "deployments.apps"
        return _BY_NAME[key.split(".", 1)[0]]
    raise UnknownKind(
        f"unknown resource type {name!r}; try one of: "
        + ", ".join(sorted({k.plural for k in KINDS}))
    )


def for_api_version(api_version: str, kind: str) -> Kind:
    """The Kind for an object's ``apiVersion``/``kind``, or `UnknownKind` naming the problem."""
    k = by_kind(kind)
    if api_version not in k.api_versions:
        raise UnknownKind(
            f"kind {kind} is not served under apiVersion {api_version!r}; "
            f"use {' or '.join(k.api_versions)}"
        )
    return k
