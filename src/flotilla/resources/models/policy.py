"""Karmada's placement and override policies, with Karmada's exact field names.

Both ``policy.flotilla.io/v1alpha1`` and ``policy.karmada.io/v1alpha1`` validate against
these models, so a Karmada user's YAML applies unchanged. The shapes follow Karmada's
``pkg/apis/policy/v1alpha1`` (propagation_types.go, override_types.go). Fields that exist
there but that Flotilla does not implement are declared as `Unsupported` (refused by
name) or accepted only at Karmada's default value, never silently ignored.

Two Flotilla extensions (``failover.budget``, ``rebalance``) are accepted only under
``policy.flotilla.io``: in a ``policy.karmada.io`` document they would make the YAML
unusable on a real Karmada, which is exactly what that apiVersion promises it is not.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from flotilla.resources.models.common import (
    Duration,
    LabelSelector,
    Model,
    NonNegInt,
    PosInt,
    Unsupported,
    karmada_default_only,
)
from flotilla.resources.models.meta import Object

__all__ = [
    "FLOTILLA_POLICY_GROUP",
    "KARMADA_POLICY_GROUP",
    "ApplicationFailoverBehavior",
    "ClusterAffinity",
    "ClusterAffinityTerm",
    "ClusterFailoverBehavior",
    "ClusterOverridePolicy",
    "ClusterPreferences",
    "ClusterPropagationPolicy",
    "CommandArgsOverrider",
    "FailoverBehavior",
    "FieldSelector",
    "FieldSelectorRequirement",
    "ImageOverrider",
    "LabelAnnotationOverrider",
    "OverridePolicy",
    "OverrideRule",
    "OverrideSpec",
    "Overriders",
    "Placement",
    "PlaintextOverrider",
    "PropagationPolicy",
    "PropagationSpec",
    "ReplicaSchedulingStrategy",
    "ResourceSelector",
    "SpreadConstraint",
    "StaticClusterWeight",
    "Toleration",
    "purge_mode",
]

FLOTILLA_POLICY_GROUP = "policy.flotilla.io"
KARMADA_POLICY_GROUP = "policy.karmada.io"


def _flotilla_only(value: Any, info: ValidationInfo) -> Any:
    """Refuse a Flotilla extension in a document that claims to be Karmada's."""
    group = (info.context or {}).get("group")
    if value is not None and group == KARMADA_POLICY_GROUP:
        raise PydanticCustomError(
            "flotilla_only",
            "field is a Flotilla extension, not part of Karmada's API; "
            "use apiVersion policy.flotilla.io/v1alpha1 to set it",
        )
    return value


FlotillaOnly = BeforeValidator(_flotilla_only)


# --- selectors and affinity ------------------------------------------------------------

class ResourceSelector(Model):
    api_version: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    namespace: str = ""
    #: Empty selects every object of the kind (narrowed by labelSelector).
    name: str = ""
    label_selector: LabelSelector | None = None


class FieldSelectorRequirement(Model):
    """Karmada allows only the cluster fields provider/region/zone and In/NotIn."""

    key: Literal["provider", "region", "zone"]
    operator: Literal["In", "NotIn"]
    values: list[str] = Field(min_length=1)


class FieldSelector(Model):
    match_expressions: list[FieldSelectorRequirement] = []


class ClusterAffinity(Model):
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    cluster_names: list[str] = []
    exclude: list[str] = []


class ClusterAffinityTerm(ClusterAffinity):
    """One ordered fallback group of ``placement.clusterAffinities``."""

    affinity_name: str = Field(min_length=1, max_length=32)


class Toleration(Model):
    """``corev1.Toleration`` matched against Cluster taints."""

    key: str = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] = ""
    toleration_seconds: int | None = None

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not have a value")
        if not self.key and self.operator != "Exists":
            raise ValueError("an empty key needs operator Exists (tolerate everything)")
        return self


class SpreadConstraint(Model):
    spread_by_field: Literal["cluster", "region", "zone", "provider"] | None = None
    spread_by_label: str | None = None
    max_groups: NonNegInt = 0
    min_groups: NonNegInt = 0

    @model_validator(mode="after")
    def _consistent(self) -> SpreadConstraint:
        if self.spread_by_field and self.spread_by_label:
            raise ValueError("spreadByField and spreadByLabel cannot both be set")
        if self.max_groups and self.min_groups > self.max_groups:
            raise ValueError("minGroups must not exceed maxGroups")
        return self

    @property
    def field(self) -> str:
        """What to group clusters by; Karmada defaults to ``cluster``."""
        return self.spread_by_field or ("" if self.spread_by_label else "cluster")


class StaticClusterWeight(Model):
    target_cluster: ClusterAffinity
    weight: PosInt


class ClusterPreferences(Model):
    static_weight_list: list[StaticClusterWeight] = []
    #: When set, staticWeightList is ignored (as in Karmada).
    dynamic_weight: Literal["AvailableReplicas"] | None = None


class ReplicaSchedulingStrategy(Model):
    replica_scheduling_type: Literal["Duplicated", "Divided"] = "Divided"
    replica_division_preference: Literal["Aggregated", "Weighted"] | None = None
    weight_preference: ClusterPreferences | None = None


class Placement(Model):
    """Which member clusters the selected resources may run in, and how their replicas
    are divided among them (Karmada's Placement)."""

    cluster_affinity: ClusterAffinity | None = None
    """The clusters allowed: by name, label selector or field selector (provider,
    region, zone); mutually exclusive with clusterAffinities."""
    cluster_affinities: list[ClusterAffinityTerm] = []
    """Ordered fallback groups of clusters: the first group that can hold the workload
    is used, the next ones only when it cannot."""
    cluster_tolerations: list[Toleration] = []
    """Taints of clusters this placement tolerates."""
    spread_constraints: list[SpreadConstraint] = []
    """How many clusters (or regions, zones, providers) the replicas spread over."""
    replica_scheduling: ReplicaSchedulingStrategy | None = None
    """Duplicated (every cluster runs all replicas) or Divided (static or dynamic
    weights split them)."""
    # Karmada >= 1.15: co-locate / separate workloads by a label. Not implemented.
    workload_affinity: Unsupported = None

    @model_validator(mode="after")
    def _one_affinity_form(self) -> Placement:
        if self.cluster_affinity is not None and self.cluster_affinities:
            raise ValueError("clusterAffinity and clusterAffinities cannot both be set")
        names = [t.affinity_name for t in self.cluster_affinities]
        if len(set(names)) != len(names):
            raise ValueError("clusterAffinities: affinityName must be unique")
        fields = {c.spread_by_field for c in self.spread_constraints if c.spread_by_field}
        if fields and "cluster" not in fields:
            # Karmada's rule (ValidateSpreadConstraint): grouping by region/zone/provider
            # decides groups, a cluster constraint decides how many clusters in them.
            raise ValueError(
                "spreadConstraints: with spreadByField, a spreadByField: cluster "
                "constraint is required too (as in Karmada)"
            )
        return self


# --- failover --------------------------------------------------------------------------

#: Karmada >= 1.12 spells the first two ``Directly``/``Gracefully`` (cluster failover uses
#: only those); both spellings are accepted, `purge_mode` maps them to one meaning.
PurgeMode = Literal["Immediately", "Graciously", "Never", "Directly", "Gracefully"]
_PURGE_SYNONYMS: dict[str, Literal["Immediately", "Graciously", "Never"]] = {
    "Directly": "Immediately", "Gracefully": "Graciously",
    "Immediately": "Immediately", "Graciously": "Graciously", "Never": "Never",
}


def purge_mode(mode: PurgeMode) -> Literal["Immediately", "Graciously", "Never"]:
    """One name per behaviour, whichever Karmada release's spelling the policy used."""
    return _PURGE_SYNONYMS[mode]


class DecisionConditions(Model):
    toleration_seconds: NonNegInt | None = None


class ApplicationFailoverBehavior(Model):
    decision_conditions: DecisionConditions
    purge_mode: PurgeMode = "Graciously"
    grace_period_seconds: PosInt | None = None
    state_preservation: Unsupported = None


class ClusterFailoverBehavior(Model):
    purge_mode: PurgeMode = "Gracefully"
    state_preservation: Unsupported = None


class FailoverBehavior(Model):
    application: ApplicationFailoverBehavior | None = None
    cluster: ClusterFailoverBehavior | None = None
    #: Flotilla: end-to-end time from a cluster's death to full replica count elsewhere.
    budget: Annotated[Duration | None, FlotillaOnly] = None


# --- PropagationPolicy -----------------------------------------------------------------

class PropagationSpec(Model):
    """What to propagate and where (Karmada's PropagationSpec)."""

    resource_selectors: list[ResourceSelector] = Field(min_length=1)
    """The resource templates this policy applies to (apiVersion, kind, name,
    namespace, labelSelector)."""
    propagate_deps: bool = False
    """Also propagate the ConfigMaps and Secrets the selected workloads use."""
    placement: Placement = Field(default_factory=Placement)
    """Where the selected resources run and how their replicas are divided."""
    priority: int = 0
    """Among several matching policies, the highest priority wins."""
    failover: FailoverBehavior | None = None
    """When and how replicas leave a failed cluster or a failing application."""
    #: Flotilla: move replicas back to the original split when a cluster recovers.
    rebalance: Annotated[Literal["OnRecovery"] | None, FlotillaOnly] = None

    # Karmada fields accepted only at their default value (see karmada_default_only).
    preemption: Annotated[Any, PlainValidator(karmada_default_only("Never"))] = None
    conflict_resolution: Annotated[Any, PlainValidator(karmada_default_only("Abort"))] = None
    scheduler_name: Annotated[
        Any, PlainValidator(karmada_default_only("default-scheduler"))] = None
    preserve_resources_on_deletion: Annotated[
        Any, PlainValidator(karmada_default_only(False))] = None
    association: Annotated[Any, PlainValidator(karmada_default_only(False))] = None
    # Karmada fields Flotilla does not implement.
    dependent_overrides: Unsupported = None
    activation_preference: Unsupported = None
    suspension: Unsupported = None
    schedule_priority: Unsupported = None


class PropagationPolicy(Object):
    """Places resource templates of its namespace on member clusters."""

    spec: PropagationSpec


class ClusterPropagationPolicy(Object):
    spec: PropagationSpec


# --- OverridePolicy --------------------------------------------------------------------

OverriderOperator = Literal["add", "remove", "replace"]


class PlaintextOverrider(Model):
    """A JSON-patch-like change at a JSON pointer ``path``."""

    path: str = Field(pattern=r"^/")
    operator: OverriderOperator
    value: Any = None


class ImagePredicate(Model):
    path: str = Field(pattern=r"^/")


class ImageOverrider(Model):
    predicate: ImagePredicate | None = None
    component: Literal["Registry", "Repository", "Tag"]
    operator: OverriderOperator
    value: str = ""


class CommandArgsOverrider(Model):
    container_name: str = Field(min_length=1)
    operator: Literal["add", "remove"]
    value: list[str] = []


class LabelAnnotationOverrider(Model):
    operator: OverriderOperator
    value: dict[str, str] = {}


class Overriders(Model):
    plaintext: list[PlaintextOverrider] = []
    image_overrider: list[ImageOverrider] = []
    command_overrider: list[CommandArgsOverrider] = []
    args_overrider: list[CommandArgsOverrider] = []
    labels_overrider: list[LabelAnnotationOverrider] = []
    annotations_overrider: list[LabelAnnotationOverrider] = []
    field_overrider: Unsupported = None


class OverrideRule(Model):
    """``RuleWithCluster``: overriders for the clusters ``targetCluster`` selects (all if
    absent)."""

    target_cluster: ClusterAffinity | None = None
    overriders: Overriders


class OverrideSpec(Model):
    #: Empty selects every resource, as in Karmada.
    resource_selectors: list[ResourceSelector] = []
    override_rules: list[OverrideRule] = []
    # Karmada's deprecated spec-level form; `rules` folds it into overrideRules.
    target_cluster: ClusterAffinity | None = None
    overriders: Overriders | None = None

    @model_validator(mode="after")
    def _one_form(self) -> OverrideSpec:
        # Karmada's webhook refuses the mix too (ValidateOverrideSpec).
        if self.override_rules and (self.target_cluster is not None or self.overriders):
            raise ValueError("overrideRules and (overriders or targetCluster) can't co-exist")
        return self

    def rules(self) -> list[OverrideRule]:
        """The rules to apply in order, folding the legacy spec-level form into one rule."""
        if self.override_rules:
            return list(self.override_rules)
        if self.overriders is None:
            return []
        return [OverrideRule(target_cluster=self.target_cluster, overriders=self.overriders)]


class OverridePolicy(Object):
    spec: OverrideSpec


class ClusterOverridePolicy(Object):
    spec: OverrideSpec
