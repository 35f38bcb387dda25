"""The scheduler's own inputs and outputs: small frozen dataclasses.

The API hands us JSON dicts with Karmada's field names; `flotilla.scheduler.compile`
turns them into these types once, so that the hot loop (thousands of templates against
hundreds of clusters) works on tuples and precompiled selectors and never touches a dict
key by string. Every collection here is a tuple so that the same input always iterates
in the same order: the scheduler must be deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from flotilla.resources.labels import EVERYTHING, Selector

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
SpreadField = Literal["cluster", "region", "zone", "provider"]
SchedulingType = Literal["Duplicated", "Divided"]
DivisionPreference = Literal["Aggregated", "Weighted"]

#: The estimate used when a workload asks for nothing countable: as Karmada does with
#: ``math.MaxInt32``, "no limit we know of".
UNLIMITED = 2**31 - 1

_EMPTY: Mapping[str, int] = MappingProxyType({})
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"

    def __str__(self) -> str:
        return f"{self.key}{'=' + self.value if self.value else ''}:{self.effect}"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A Kubernetes toleration; ``key=""`` with ``Exists`` tolerates every taint."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    #: ``""`` tolerates every effect.
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What the scheduler knows about one member cluster.

    ``free`` is allocatable minus allocated per resource, in integer base units
    (millicores for ``cpu``, bytes for ``memory``, a count for ``pods``): the
    resource-based estimate divides it by a replica's requests. ``available_replicas``
    holds per-workload estimates an agent reported (keyed by `WorkloadInfo.key`); when
    present it wins over the resource-based estimate, as Karmada's estimator does.
    """

    name: str
    region: str = ""
    zone: str = ""
    provider: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False
    free: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    available_replicas: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    def field_value(self, name: str) -> str:
        """The value of a spread/field-selector field (``provider``, ``region``, ``zone``)."""
        if name == "cluster":
            return self.name
        if name == "region":
            return self.region
        if name == "zone":
            return self.zone
        if name == "provider":
            return self.provider
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ClusterAffinity:
    """Karmada's ``ClusterAffinity``: every set part must match (a conjunction)."""

    name: str = ""
    cluster_names: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    label_selector: Selector = EVERYTHING
    #: ``fieldSelector.matchExpressions`` over ``provider``/``region``/``zone``.
    field_selector: Selector = EVERYTHING

    def matches(self, cluster: ClusterInfo) -> bool:
        if cluster.name in self.exclude:
            return False
        if self.cluster_names and cluster.name not in self.cluster_names:
            return False
        if not self.label_selector.matches(cluster.labels):
            return False
        if self.field_selector.empty:
            return True
        fields = {"provider": cluster.provider, "region": cluster.region, "zone": cluster.zone}
        return self.field_selector.matches({k: v for k, v in fields.items() if v})


MATCH_ALL = ClusterAffinity()


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """One ``spreadConstraints`` entry. ``max_groups == 0`` means no upper bound."""

    field: SpreadField | None = None
    label: str | None = None
    min_groups: int = 1
    max_groups: int = 0

    @property
    def by(self) -> str:
        return f"label {self.label}" if self.label else str(self.field)

    def group_of(self, cluster: ClusterInfo) -> str | None:
        """The group a cluster belongs to, or ``None`` if it has no value for the key."""
        if self.label is not None:
            return cluster.labels.get(self.label)
        value = cluster.field_value(self.field or "cluster")
        return value or None


@dataclass(frozen=True, slots=True)
class WeightRule:
    target: ClusterAffinity
    weight: int


@dataclass(frozen=True, slots=True)
class Placement:
    """A compiled Karmada ``spec.placement``.

    ``affinities`` is never empty: a placement with a single ``clusterAffinity`` (or
    none) has one group; ``clusterAffinities`` gives the ordered fallback groups.
    """

    affinities: tuple[ClusterAffinity, ...] = (MATCH_ALL,)
    tolerations: tuple[Toleration, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    scheduling_type: SchedulingType = "Duplicated"
    division: DivisionPreference = "Weighted"
    static_weights: tuple[WeightRule, ...] = ()
    dynamic_weight: bool = False

    @property
    def strategy(self) -> str:
        """Karmada's strategy name for this placement (used in messages and tests)."""
        if self.scheduling_type == "Duplicated":
            return "Duplicated"
        if self.division == "Aggregated":
            return "Aggregated"
        return "DynamicWeight" if self.dynamic_weight else "StaticWeight"


Target = tuple[str, int]


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """One template to place.

    ``requests`` are one replica's resource requests in the same units as
    `ClusterInfo.free`; ``current`` is the assignment the binding holds now, which the
    scheduler disturbs as little as the strategy allows.
    """

    key: str
    replicas: int
    requests: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    current: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The decision: ``targets`` sorted by cluster name, or why there are none.

    ``cluster_reasons`` names, for each cluster that was left out, the filter that left
    it out (what ``describe`` and the what-if command print). ``affinity`` is the name
    of the ``clusterAffinities`` group that won, if any.
    """

    targets: tuple[Target, ...]
    reason: str | None = None
    cluster_reasons: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    affinity: str | None = None

    @property
    def scheduled(self) -> bool:
        return self.reason is None

    def replicas_of(self, cluster: str) -> int:
        for name, n in self.targets:
            if name == cluster:
                return n
        return 0
