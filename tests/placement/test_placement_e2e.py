"""Placement end to end on three local clusters: the shop example converges to its
split, a weight change moves processes without dropping below the policy's need minus
one cluster's share, deleting the policy removes every pod."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for_sync
from tests.up.harness import SHOP_APP, Api, UpProcess, app_processes, environ_of

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "shop.yaml"
SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "shared-samples"
CLUSTERS = [
    {"name": "p-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.241.1",
     "nodes": 2},
    {"name": "p-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.242.1", "nodes": 2},
    {"name": "p-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": "127.0.243.1", "labels": {"flotilla.io/burst": "true"}, "nodes": 2},
]
NAMES = [c["name"] for c in CLUSTERS]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    running = UpProcess(tmp_path_factory.mktemp("placement"), CLUSTERS)
    try:
        yield running, running.wait_up()
    finally:
        running.stop()


def shop_docs() -> list[dict[str, Any]]:
    text = EXAMPLE.read_text().replace("examples/shop/app.py", SHOP_APP)
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            # Quicker probes keep the test short; the split is what is under test.
            c = d["spec"]["template"]["spec"]["containers"][0]
            c["readinessProbe"]["periodSeconds"] = 1
            c.pop("livenessProbe", None)
    return docs


def write(folder: Path, name: str, docs: list[dict[str, Any]]) -> str:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def ready_total(api: Api) -> int:
    r = api.client.get("/apis/apps/v1/namespaces/default/deployments/shop")
    return int((r.json().get("status") or {}).get("readyReplicas", 0)) \
        if r.status_code == 200 else 0


def binding_split(api: Api) -> dict[str, int]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       "resourcebindings/shop-deployment")
    if r.status_code != 200:
        return {}
    return {t["name"]: t["replicas"] for t in r.json()["spec"].get("clusters") or []}


def processes() -> dict[str, int]:
    return {n: len(app_processes(n)) for n in NAMES}


def test_shop_converges_moves_on_weight_change_and_goes_with_its_policy(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    docs = shop_docs()
    out = running.cli("apply", "-f", write(running.folder, "shop.yaml", docs)).stdout
    assert "deployment/shop created" in out
    assert "propagationpolicy/shop created" in out

    # 6 replicas, 2:1 between cn-east and cn-south; the two cn-south clusters share theirs.
    want = {"p-east": 4, "p-south": 1, "p-burst": 1}
    wait_for_sync(lambda: binding_split(api) == want, 30, what=f"binding split {want}")
    wait_for_sync(lambda: processes() == want and ready_total(api) == 6, 60,
                  what=f"ready processes {want}")
    # The override reached the burst cluster only.
    (burst_pid,) = app_processes("p-burst")
    assert environ_of(burst_pid).get("SHOP_TIER") == "burst"
    assert all(environ_of(p).get("SHOP_TIER") is None for p in app_processes("p-east"))
    header, row = running.cli("get", "deploy", "shop", "-o", "wide").stdout.splitlines()[:2]
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert (cells["P-EAST"], cells["P-SOUTH"], cells["P-BURST"]) == ("4/4", "1/1", "1/1")

    # Flip the weights to 1:2. Sample readiness while processes move.
    policy = next(d for d in docs if d["kind"] == "PropagationPolicy")
    weights = policy["spec"]["placement"]["replicaScheduling"]["weightPreference"]
    weights["staticWeightList"][0]["weight"] = 1
    weights["staticWeightList"][1]["weight"] = 2
    path = write(running.folder, "policy.yaml", [policy])
    assert "configured" in running.cli("apply", "-f", path).stdout
    lowest = 6
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        split = binding_split(api)
        lowest = min(lowest, ready_total(api))
        if split != want and processes() == split and ready_total(api) == 6:
            break
    else:
        pytest.fail(f"did not converge: binding {binding_split(api)}, "
                    f"processes {processes()}")
    new = binding_split(api)
    assert sum(new.values()) == 6
    assert new["p-east"] < 4, "weights 1:2 must move replicas out of cn-east"
    assert lowest >= 6 - max(want.values()), f"ready replicas dipped to {lowest}"

    # Deleting the policy takes every pod away, and the Works with them.
    running.cli("delete", "propagationpolicy", "shop")
    wait_for_sync(lambda: processes() == dict.fromkeys(NAMES, 0), 30, what="all pods gone")
    works = api.client.get("/apis/work.flotilla.io/v1alpha1/works").json()["items"]
    assert not [w for w in works if w["metadata"]["name"].startswith("default.shop")]


def test_a_karmada_sample_applies_unchanged_and_says_why_it_cannot_place(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    sample = yaml.safe_load((SAMPLES / "even-weights-propagationpolicy.yaml").read_text())
    assert sample["apiVersion"] == "policy.karmada.io/v1alpha1"
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "demo-webapp", "namespace": "demo-basic"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "demo"}},
                       "template": {"metadata": {"labels": {"app": "demo"}},
                                    "spec": {"containers": [{"name": "w", "image": "w",
                                                             "command": ["true"]}]}}}}
    path = write(running.folder, "karmada.yaml", [deploy, sample])
    assert "propagationpolicy/demo-webapp-even created" in running.cli("apply", "-f",
                                                                       path).stdout

    def condition() -> dict[str, Any] | None:
        r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/demo-basic/"
                           "resourcebindings/demo-webapp-deployment")
        conds = (r.json().get("status") or {}).get("conditions") or [] \
            if r.status_code == 200 else []
        return next((c for c in conds if c["type"] == "Scheduled"), None)

    cond = wait_for_sync(condition, 20, what="Scheduled condition")
    # The sample names clusters vn, us and eu, which this Flotilla does not have.
    assert cond["status"] == "False"
    assert "excluded by affinity" in cond["message"]

    bad = dict(sample, metadata={"name": "bad", "namespace": "demo-basic"})
    bad["spec"] = dict(sample["spec"], suspension={"dispatching": True})
    result = running.cli("apply", "-f", write(running.folder, "bad.yaml", [bad]), check=False)
    assert result.returncode == 1
    assert "spec.suspension" in result.stderr
    assert "not supported by Flotilla" in result.stderr
