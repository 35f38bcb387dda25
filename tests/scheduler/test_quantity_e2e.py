"""Quantities end to end on a real `flotilla up` with two small local clusters.

A Deployment asking ``cpu: 250000u, memory: 1e9`` (Kubernetes quantities the scheduler
used to refuse after the API had stored them) is scheduled and its pods run; a pod of
two containers is fitted by the sum of their requests: a cluster that could take either
container alone but not both is left out, and a policy allowing only that cluster says
it cannot fit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess

pytestmark = pytest.mark.slow
CLUSTERS = [
    # One node of 1 cpu: room for a 750m container, not for two.
    {"name": "q-small", "region": "r1", "zone": "r1-a", "address": "127.0.181.1",
     "nodes": 1, "nodeCpu": "1", "nodeMemory": "2Gi"},
    {"name": "q-big", "region": "r2", "zone": "r2-a", "address": "127.0.182.1",
     "nodes": 1, "nodeCpu": "4", "nodeMemory": "8Gi"},
]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    running = UpProcess(tmp_path_factory.mktemp("quantity"), CLUSTERS)
    try:
        yield running, running.wait_up()
    finally:
        running.stop()


def deployment(name: str, replicas: int, requests: list[dict[str, Any]]) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": "sleeper:1", "command": SLEEPER,
                   "resources": {"requests": r}} for i, r in enumerate(requests)]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": containers}}}}


def policy(name: str, clusters: list[str]) -> dict[str, Any]:
    return {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": name}],
                     "placement": {"clusterAffinity": {"clusterNames": clusters},
                                   "replicaScheduling": {
                                       "replicaSchedulingType": "Divided",
                                       "replicaDivisionPreference": "Aggregated"}}}}


def apply(running: UpProcess, name: str, docs: list[dict[str, Any]]) -> None:
    path = running.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    running.cli("apply", "-f", str(path))


def binding(api: Api, name: str) -> dict[str, Any]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       f"resourcebindings/{name}-deployment")
    return dict(r.json()) if r.status_code == 200 else {}


def scheduled(api: Api, name: str) -> dict[str, Any] | None:
    conds = (binding(api, name).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Scheduled"), None)


def split(api: Api, name: str) -> dict[str, int]:
    return {t["name"]: t["replicas"]
            for t in (binding(api, name).get("spec") or {}).get("clusters") or []}


def ready(api: Api, name: str) -> int:
    r = api.client.get(f"/apis/apps/v1/namespaces/default/deployments/{name}")
    return int((r.json().get("status") or {}).get("readyReplicas", 0)) \
        if r.status_code == 200 else 0


def test_micro_cpu_and_exponent_memory_are_scheduled_and_run(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    apply(running, "tiny", [deployment("tiny", 2, [{"cpu": "250000u", "memory": "1e9"}]),
                            policy("tiny", ["q-big"])])
    cond = wait_for_sync(lambda: (c := scheduled(api, "tiny")) and c["status"] == "True"
                         and c, 30, what="tiny Scheduled=True")
    assert cond["reason"] == "Success"
    assert split(api, "tiny") == {"q-big": 2}
    # The binder recorded the request in canonical form, as Kubernetes prints it.
    requirements = binding(api, "tiny")["spec"]["replicaRequirements"]["resourceRequest"]
    assert requirements == {"cpu": "250m", "memory": "1e9"}
    wait_for_sync(lambda: ready(api, "tiny") == 2, 60, what="2 tiny pods ready")
    # The member cluster counts the same figures as used capacity.
    cluster = wait_for_sync(
        lambda: (c := api.cluster("q-big")) and
        ((c.get("status") or {}).get("allocated") or {}).get("cpu") == "500m" and c,
        30, what="q-big allocated 500m")
    assert cluster["status"]["allocated"]["memory"] == str(2 * 10**9)


def test_two_containers_are_fitted_by_their_sum(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    both = [{"cpu": "750m", "memory": "100Mi"}, {"cpu": "0.75", "memory": "100Mi"}]
    # Either cluster is allowed: only q-big has room for 1500m, so it gets the replica.
    apply(running, "pair", [deployment("pair", 1, both), policy("pair", ["q-small", "q-big"])])
    wait_for_sync(lambda: split(api, "pair") == {"q-big": 1}, 30, what="pair on q-big only")
    wait_for_sync(lambda: ready(api, "pair") == 1, 60, what="pair pod ready")
    # Only q-small is allowed: one 750m container would fit its 1 cpu, the pod does not.
    apply(running, "lonely", [deployment("lonely", 1, both), policy("lonely", ["q-small"])])
    cond = wait_for_sync(lambda: scheduled(api, "lonely"), 30, what="lonely Scheduled")
    assert (cond["status"], cond["reason"]) == ("False", "NoClusterFit")
    assert "no capacity" in cond["message"], cond
    assert split(api, "lonely") == {}
    one = deployment("lonely", 1, both[:1])
    apply(running, "lonely", [one])  # a single 750m container does fit q-small
    wait_for_sync(lambda: split(api, "lonely") == {"q-small": 1}, 30, what="lonely placed")
    wait_for_sync(lambda: ready(api, "lonely") == 1, 60, what="lonely pod ready")


def test_init_containers_count_by_their_peak(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    doc = deployment("setup", 1, [{"cpu": "100m"}])
    # A 2-cpu init container: q-small (1 cpu) cannot run the pod although its app can.
    doc["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "migrate", "image": "sleeper:1", "command": [sys.executable, "-c", "0"],
         "resources": {"requests": {"cpu": "2"}}}]
    apply(running, "setup", [doc, policy("setup", ["q-small"])])
    cond = wait_for_sync(lambda: scheduled(api, "setup"), 30, what="setup Scheduled")
    assert (cond["status"], cond["reason"]) == ("False", "NoClusterFit"), cond
    assert binding(api, "setup")["spec"]["replicaRequirements"]["resourceRequest"] == {
        "cpu": "2"}
