"""Karmada policies written by other people apply unchanged, or are refused by name."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from flotilla.resources.models import PropagationPolicy
from flotilla.resources.models.policy import OverridePolicy, purge_mode
from flotilla.resources.validation import InvalidObject, parse_as, validate_object
from tests.resources.conftest import (
    KARMADA_FILES,
    SHARED_SAMPLES,
    SHARED_SAMPLES_SUMS,
    load_documents,
    load_one,
)

UNSUPPORTED = "field is not supported by Flotilla"

# Files copied from Karmada's repository and website: the paths each must be refused at
# (empty: the file must validate).
KARMADA_EXPECTED: dict[str, set[str]] = {
    "spread-region-cluster.yaml": set(),
    "field-selector.yaml": set(),
    "dynamic-weight.yaml": set(),
    "application-failover.yaml": set(),
    "alpine-overridepolicy.yaml": set(),
    "suspension.yaml": {"spec.suspension"},
    "workload-affinity.yaml": {"spec.placement.workloadAffinity"},
}


def _errors(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidObject) as info:
        validate_object(obj)
    return {e.path: e.message for e in info.value.errors}


@pytest.mark.parametrize("path", sorted(SHARED_SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shared_sample_validates_unchanged(path: Path) -> None:
    docs = load_documents(path)
    assert docs
    for doc in docs:
        before = copy.deepcopy(doc)
        kind = validate_object(doc)
        assert kind.kind == doc["kind"]
        assert doc == before, "validation must not modify the object"


def test_copy_of_shared_samples_is_as_taken() -> None:
    """Byte for byte what was copied (checksums taken then): an edit fails here, not silently."""
    origin = {name: digest for digest, name in (
        line.split("  ", 1) for line in SHARED_SAMPLES_SUMS.read_text().splitlines()
        if line.strip())}
    notes = {"ORIGIN.md", SHARED_SAMPLES_SUMS.name}
    copy_ = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in SHARED_SAMPLES.iterdir() if p.is_file() and p.name not in notes}
    assert copy_ == origin


def test_karmada_files_cover_the_folder() -> None:
    assert {p.name for p in KARMADA_FILES.glob("*.yaml")} == set(KARMADA_EXPECTED)


@pytest.mark.parametrize("name", sorted(KARMADA_EXPECTED))
def test_karmada_files_validate_or_are_refused_by_name(name: str) -> None:
    refused: dict[str, str] = {}
    for doc in load_documents(KARMADA_FILES / name):
        try:
            validate_object(doc)
        except InvalidObject as e:
            refused.update({err.path: err.message for err in e.errors})
    assert set(refused) == KARMADA_EXPECTED[name]
    assert all(message == UNSUPPORTED for message in refused.values())


def test_weighted_sample_reads_as_typed_placement() -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    policy = parse_as(doc, PropagationPolicy)
    rs = policy.spec.placement.replica_scheduling
    assert rs is not None
    assert rs.weight_preference is not None
    assert rs.replica_scheduling_type == "Divided"
    assert rs.replica_division_preference == "Weighted"
    weights = [(w.target_cluster.cluster_names, w.weight)
               for w in rs.weight_preference.static_weight_list]
    assert weights == [(["vn"], 1), (["us"], 1), (["eu"], 1)]


def test_same_policy_under_both_groups_reads_the_same() -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    flotilla = {**doc, "apiVersion": "policy.flotilla.io/v1alpha1"}
    assert validate_object(flotilla).kind == "PropagationPolicy"
    assert parse_as(flotilla, PropagationPolicy).spec == parse_as(doc, PropagationPolicy).spec


def test_legacy_override_form_folds_into_one_rule() -> None:
    doc = load_one("""
        apiVersion: policy.karmada.io/v1alpha1
        kind: ClusterOverridePolicy
        metadata: {name: legacy}
        spec:
          resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
          targetCluster: {clusterNames: [member1]}
          overriders:
            imageOverrider:
              - {component: Registry, operator: replace, value: registry.local}
            commandOverrider:
              - {containerName: nginx, operator: add, value: ["--verbose"]}
    """)
    validate_object(doc)
    doc["kind"] = "OverridePolicy"
    rules = parse_as(doc, OverridePolicy).spec.rules()
    assert len(rules) == 1
    assert rules[0].target_cluster is not None
    assert rules[0].target_cluster.cluster_names == ["member1"]
    assert rules[0].overriders.image_overrider[0].value == "registry.local"


def test_override_rules_and_legacy_form_cannot_coexist() -> None:
    doc = load_documents(SHARED_SAMPLES / "nginx-overridepolicy.yaml")[0]
    doc["spec"]["overriders"] = {"plaintext": [{"path": "/x", "operator": "remove"}]}
    assert _errors(doc) == {
        "spec": "overrideRules and (overriders or targetCluster) can't co-exist"}


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("suspension", {"dispatching": True}, "spec.suspension"),
        ("dependentOverrides", ["op"], "spec.dependentOverrides"),
        ("activationPreference", "Lazy", "spec.activationPreference"),
        ("schedulePriority", {"priorityClassName": "high"}, "spec.schedulePriority"),
        ("failover", {"application": {"decisionConditions": {},
                                      "statePreservation": {"rules": []}}},
         "spec.failover.application.statePreservation"),
        ("failover", {"cluster": {"statePreservation": {"rules": []}}},
         "spec.failover.cluster.statePreservation"),
    ],
)
def test_unsupported_karmada_fields_are_refused_by_name(field: str, value: Any, path: str) -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    doc["spec"][field] = value
    assert _errors(doc) == {path: UNSUPPORTED}


def test_unsupported_overrider_is_refused_by_name() -> None:
    doc = load_documents(SHARED_SAMPLES / "nginx-overridepolicy.yaml")[0]
    doc["spec"]["overrideRules"][0]["overriders"]["fieldOverrider"] = [{"fieldPath": "/data"}]
    assert _errors(doc) == {"spec.overrideRules[0].overriders.fieldOverrider": UNSUPPORTED}


def test_karmada_defaults_are_accepted_other_values_refused() -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    # What a Karmada API server writes into every stored policy.
    doc["spec"].update(schedulerName="default-scheduler", conflictResolution="Abort",
                       preemption="Never", preserveResourcesOnDeletion=False)
    validate_object(doc)
    doc["spec"].update(conflictResolution="Overwrite", schedulerName="mine")
    errors = _errors(doc)
    assert set(errors) == {"spec.conflictResolution", "spec.schedulerName"}
    assert "not supported by Flotilla" in errors["spec.conflictResolution"]


def test_flotilla_extensions_only_under_the_flotilla_group() -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    doc["spec"]["failover"] = {"budget": "10s", "cluster": {"purgeMode": "Gracefully"}}
    doc["spec"]["rebalance"] = "OnRecovery"
    errors = _errors(doc)
    assert set(errors) == {"spec.failover.budget", "spec.rebalance"}
    assert "policy.flotilla.io/v1alpha1" in errors["spec.rebalance"]

    doc["apiVersion"] = "policy.flotilla.io/v1alpha1"
    validate_object(doc)
    policy = parse_as(doc, PropagationPolicy)
    assert policy.spec.failover is not None
    assert policy.spec.failover.budget == 10.0
    assert policy.spec.failover.cluster is not None
    assert purge_mode(policy.spec.failover.cluster.purge_mode) == "Graciously"


def test_placement_rules_karmada_enforces() -> None:
    doc = load_documents(SHARED_SAMPLES / "even-weights-propagationpolicy.yaml")[0]
    placement = doc["spec"]["placement"]
    placement["spreadConstraints"] = [{"spreadByField": "region", "spreadByLabel": "tier"}]
    assert _errors(doc) == {
        "spec.placement.spreadConstraints[0]": "spreadByField and spreadByLabel cannot both be set"
    }
    placement["spreadConstraints"] = [{"spreadByField": "region", "maxGroups": 2}]
    assert "spreadByField: cluster" in _errors(doc)["spec.placement"]
    placement["spreadConstraints"].append({"spreadByField": "cluster", "maxGroups": 2})
    validate_object(doc)
    placement["clusterAffinities"] = [{"affinityName": "a", "clusterNames": ["x"]}]
    assert _errors(doc) == {
        "spec.placement": "clusterAffinity and clusterAffinities cannot both be set"
    }


def test_field_selector_keys_and_operators_are_karmadas() -> None:
    doc = load_documents(KARMADA_FILES / "field-selector.yaml")[0]
    expr = doc["spec"]["placement"]["clusterAffinity"]["fieldSelector"]["matchExpressions"]
    expr[0]["key"] = "cloud"
    expr[1]["operator"] = "Exists"
    errors = _errors(doc)
    base = "spec.placement.clusterAffinity.fieldSelector.matchExpressions"
    assert errors == {
        f"{base}[0].key": "expected 'provider', 'region' or 'zone', got 'cloud'",
        f"{base}[1].operator": "expected 'In' or 'NotIn', got 'Exists'",
    }
