"""The API, the scheduler and the local runtime read quantities with one grammar.

Behaviourally: whatever cpu and memory text a user writes, the API accepts the
Deployment exactly when the scheduler can fit it and the runtime can run it, and all
three count the same millicores and bytes. (The scheduling reconcile used to retry
forever on ``1e3`` or ``250000u``, which the API accepted and the scheduler refused.)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.controllers.placement.binder import replica_requirements
from flotilla.resources.models.work import ReplicaRequirements
from flotilla.resources.validation import InvalidObject, validate_object
from flotilla.runtimes.base import ManifestError
from flotilla.runtimes.local.manifests import parse_template
from flotilla.scheduler import PlacementError, compile_cluster, compile_workload, workload_of

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
}

# Text users write, near misses, and junk: every kind of answer must agree.
_PIECES = st.sampled_from(["", "0", "1", "25", "250000", ".", "5", "-", "+", "e", "E",
                           "e3", "E-2", "u", "n", "m", "k", "M", "Mi", "Ki", "Gi", "i",
                           " ", "x", "1e9", "0.5", "e99"])
TEXT = st.one_of(st.lists(_PIECES, max_size=4).map("".join),
                 st.integers(-5, 10**12), st.floats(allow_nan=True),
                 st.text(max_size=6))


def _deployment(cpu: Any, memory: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEPLOYMENT)
    doc["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": cpu, "memory": memory}}
    return doc


def _api_accepts(doc: dict[str, Any]) -> bool:
    try:
        validate_object(doc)
    except InvalidObject:
        return False
    return True


def _scheduler(doc: dict[str, Any]) -> dict[str, int] | None:
    try:
        return dict(compile_workload(doc).requests)
    except PlacementError:
        return None


def _runtime(doc: dict[str, Any]) -> tuple[int, int] | None:
    try:
        r = parse_template(doc["spec"]["template"]).requests
    except ManifestError:
        return None
    return r.cpu_millis, r.memory_bytes


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT)
def test_what_the_api_accepts_the_scheduler_fits_and_the_runtime_runs(cpu: Any,
                                                                      memory: Any) -> None:
    doc = _deployment(cpu, memory)
    accepted, scheduled, run = _api_accepts(doc), _scheduler(doc), _runtime(doc)
    assert accepted == (scheduled is not None) == (run is not None), (cpu, memory)
    if scheduled is not None and run is not None:
        assert (scheduled["cpu"], scheduled["memory"]) == run
        # The binder records the request; the scheduling controller reads it back the same.
        binding = {"spec": {"resource": {"kind": "Deployment", "namespace": "default",
                                         "name": "web"}, "replicas": 2,
                            "replicaRequirements": replica_requirements(doc)}}
        ReplicaRequirements.model_validate(binding["spec"]["replicaRequirements"])
        assert dict(workload_of(binding).requests) == scheduled


def test_micro_cores_and_an_exponent_are_accepted_fitted_and_run_with_the_same_figures() -> None:
    doc = _deployment("250000u", "1e9")
    assert _api_accepts(doc)
    assert _scheduler(doc) == {"pods": 1, "cpu": 250, "memory": 10**9}
    assert _runtime(doc) == (250, 10**9)


def test_cluster_capacities_use_the_same_grammar() -> None:
    cluster = {"metadata": {"name": "a"}, "spec": {},
               "status": {"allocatable": {"cpu": "4", "memory": "8e9", "pods": "110"},
                          "allocated": {"cpu": "3500000u", "memory": "1Gi"}}}
    assert dict(compile_cluster(cluster).free) == {"cpu": 500, "memory": 8 * 10**9 - 2**30,
                                                   "pods": 110}
    cluster["status"]["allocatable"]["cpu"] = "Mi"
    with pytest.raises(PlacementError, match=r"status\.allocatable\.cpu: invalid quantity 'Mi'"):
        compile_cluster(cluster)
