"""`flotilla up` with one local and two Kubernetes members (real kube-apiserver,
controller-manager and scheduler from scripts/kube-up.sh, pods run by the node agent):
the shop demo placed, overridden, served and moved across both kinds of member, checked
in each kube-apiserver with the real kubectl."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flotilla.resources.rollout_state import STATE
from tests.helpers import free_port, wait_for_sync
from tests.rollout.harness import rollout_policy
from tests.up.harness import FLOTILLA, SHOP_APP, Api, UpProcess, wait_gone

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "shop.yaml"
KUBE = ("k-south", "k-burst")
CLUSTERS = [
    {"name": "k-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.231.1",
     "nodes": 2},
    {"name": "k-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.232.1", "nodes": 2, "runtime": "kubernetes"},
    {"name": "k-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": "127.0.233.1", "labels": {"flotilla.io/burst": "true"}, "nodes": 2,
     "runtime": "kubernetes"},
]
HOST = "shop.example.test"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    gateway, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    # the gateway's /metrics: the rollout gates' figures
    running = UpProcess(tmp_path_factory.mktemp("kubeup"), CLUSTERS, gateway=gateway,
                        gateway_admin=admin)
    try:
        yield running, running.wait_up(timeout=240)
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop(timeout=90)
        left = wait_gone(lambda: running.leftovers(pgids), timeout=30)
        assert not left, f"processes left behind: {left}"
        assert code == 0, running.output()


def shop_docs() -> list[dict[str, Any]]:
    text = EXAMPLE.read_text().replace("examples/shop/app.py", SHOP_APP)
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            c = d["spec"]["template"]["spec"]["containers"][0]
            c.pop("livenessProbe", None)
    # members, not rollouts or autoscaling: no RolloutPolicy, and no FederatedHPA (these
    # tests' loads through the gateway would otherwise scale the shop they count)
    return [d for d in docs if d["kind"] not in ("RolloutPolicy", "FederatedHPA")]


def write(folder: Path, name: str, docs: list[dict[str, Any]]) -> str:
    path = folder / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def kubeconfig(running: UpProcess, cluster: str) -> str:
    entry = next(c for c in running.state()["clusters"] if c["name"] == cluster)
    return str(entry["kubeconfig"])


def kubectl(running: UpProcess, cluster: str, *args: str, check: bool = True) -> str:
    run = subprocess.run(["kubectl", "--kubeconfig", kubeconfig(running, cluster), *args],
                         capture_output=True, text=True, timeout=30, check=False)
    if check and run.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {run.stderr}")
    return run.stdout if check else run.stdout + run.stderr


def kube_deployment(running: UpProcess, cluster: str) -> dict[str, Any] | None:
    out = kubectl(running, cluster, "get", "deployment", "shop", "-n", "default", "-o",
                  "json", "--show-managed-fields", check=False)
    return json.loads(out) if out.startswith("{") else None


def kube_replicas(running: UpProcess) -> dict[str, int]:
    """spec.replicas of the shop Deployment in each kube-apiserver (0: none there)."""
    out = {}
    for c in KUBE:
        dep = kube_deployment(running, c)
        out[c] = int(dep["spec"]["replicas"]) if dep else 0
    return out


def binding_split(api: Api) -> dict[str, int]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       "resourcebindings/shop-deployment")
    if r.status_code != 200:
        return {}
    return {t["name"]: t["replicas"] for t in r.json()["spec"].get("clusters") or []}


def ready_total(api: Api) -> int:
    r = api.client.get("/apis/apps/v1/namespaces/default/deployments/shop")
    return int((r.json().get("status") or {}).get("readyReplicas", 0)) \
        if r.status_code == 200 else 0


def served_by(gateway: str, count: int, seconds: float) -> tuple[set[str], int]:
    """Up to ``count`` GETs through the gateway within ``seconds``: the clusters that
    answered, and how many requests failed."""
    seen, failed = set(), 0
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=5) as http:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            try:
                r = http.get(f"http://{gateway}/", headers={"Host": HOST})
                r.raise_for_status()
                seen.add(str(r.json()["cluster"]))
            except (httpx.HTTPError, ValueError, KeyError):
                failed += 1
    return seen, failed


def wide_clusters(running: UpProcess) -> dict[str, dict[str, str]]:
    header, *rows = running.cli("get", "clusters", "-o", "wide").stdout.splitlines()
    names = header.split()
    return {row.split()[0]: dict(zip(names, row.split(), strict=True)) for row in rows}


def test_shop_places_4_1_1_on_local_and_kubernetes_members_and_serves_from_all(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    entries = {c["name"]: c for c in running.state()["clusters"]}
    assert "kubeconfig" not in entries["k-east"]
    for c in KUBE:
        assert Path(entries[c]["kubeconfig"]).is_file()
        assert entries[c]["runtime"] == "kubernetes"
    assert "created" in running.cli("apply", "-f", write(running.folder, "shop.yaml",
                                                         shop_docs())).stdout
    want = {"k-east": 4, "k-south": 1, "k-burst": 1}
    wait_for_sync(lambda: binding_split(api) == want, 30, what=f"binding split {want}")
    wait_for_sync(lambda: kube_replicas(running) == {"k-south": 1, "k-burst": 1}, 60,
                  what="a shop Deployment of 1 replica in each kube-apiserver")
    for c in KUBE:
        dep = kube_deployment(running, c)
        assert dep is not None
        managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
        assert "flotilla" in managers, managers
        assert dep["metadata"]["labels"]["flotilla.io/owned-by"] == c
        env = {e["name"]: e.get("value") for e in
               dep["spec"]["template"]["spec"]["containers"][0].get("env") or []}
        assert env.get("SHOP_TIER") == ("burst" if c == "k-burst" else None), env
        svc = json.loads(kubectl(running, c, "get", "service", "shop", "-n", "default",
                                 "-o", "json"))
        assert svc["metadata"]["labels"]["flotilla.io/owned-by"] == c
    try:
        wait_for_sync(lambda: ready_total(api) == 6, 90, interval=0.5,
                      what="Flotilla's Deployment 6/6 ready")
    except AssertionError:
        print(running.cli("get", "deploy", "shop", "-o", "wide").stdout)
        for c in KUBE:
            print(kubectl(running, c, "get", "pods,nodes", "-A", "-o", "wide", check=False))
        raise
    header, row = running.cli("get", "deploy", "shop", "-o", "wide").stdout.splitlines()[:2]
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert (cells["READY"], cells["K-EAST"], cells["K-SOUTH"], cells["K-BURST"]) == \
        ("6/6", "4/4", "1/1", "1/1")

    # Requests through the gateway reach pods in all three members.
    def all_three() -> bool:
        seen, _ = served_by(running.gateway, 30, 10)
        return seen == {"k-east", "k-south", "k-burst"}
    wait_for_sync(all_three, 45, interval=0.5, what="answers from all three members")

    # Karmada-style status: the Kubernetes version, node and resource summaries.
    wide = wide_clusters(running)
    for c in KUBE:
        assert wide[c]["VERSION"] == "v1.20.2", wide[c]
        assert wide[c]["RUNTIME"] == "kubernetes"
        assert wide[c]["NODES"] == "2/2"
        assert wide[c]["CPU"].endswith("/8"), wide[c]  # 2 nodes of 4 cpus
    assert wide["k-east"]["VERSION"] == "<none>"


def test_changing_the_policy_moves_replicas_and_deleting_it_prunes_only_ours(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    wait_for_sync(lambda: ready_total(api) == 6, 90, interval=0.5, what="6/6 ready")
    # Someone else's object in the same namespace of a member: never touched.
    kubectl(running, "k-south", "create", "configmap", "theirs", "-n", "default",
            "--from-literal=k=v")
    docs = shop_docs()
    policy = next(d for d in docs if d["kind"] == "PropagationPolicy")
    weights = policy["spec"]["placement"]["replicaScheduling"]["weightPreference"]
    weights["staticWeightList"][0]["weight"] = 1
    weights["staticWeightList"][1]["weight"] = 2
    assert "configured" in running.cli("apply", "-f", write(running.folder, "policy.yaml",
                                                            [policy])).stdout

    def moved() -> dict[str, int] | None:
        split = binding_split(api)
        return split if sum(split.values()) == 6 and split.get("k-east", 0) < 4 else None
    split = wait_for_sync(moved, 30, what="weights 1:2 moving replicas out of cn-east")
    in_kube = {c: split.get(c, 0) for c in KUBE}
    assert sum(in_kube.values()) > 2, split
    wait_for_sync(lambda: kube_replicas(running) == in_kube, 60,
                  what=f"the kube-apiservers' Deployments at {in_kube}")
    wait_for_sync(lambda: ready_total(api) == 6, 90, interval=0.5,
                  what="6/6 ready after the move")

    running.cli("delete", "propagationpolicy", "shop")

    def pruned() -> bool:
        return all("NotFound" in kubectl(running, c, "get", kind, "shop", "-n", "default",
                                         check=False)
                   for c in KUBE for kind in ("deployment", "service"))
    wait_for_sync(pruned, 60, interval=0.5, what="every owned object pruned")
    owned = kubectl(running, "k-south", "get", "all,configmaps", "-A", "-l",
                    "flotilla.io/owned-by", "-o", "name")
    assert owned.strip() == "", owned
    assert "configmap/theirs" in kubectl(running, "k-south", "get", "configmap", "theirs",
                                         "-n", "default", "-o", "name")


class Load:
    """GETs through the gateway on a thread, bounded in count and time, until stopped."""

    def __init__(self, gateway: str, count: int = 3000, seconds: float = 120.0) -> None:
        import threading

        self.gateway, self.count, self.seconds = gateway, count, seconds
        self.sent = self.failed = 0
        self.errors: list[str] = []
        self.answers: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set() and self.sent < self.count \
                    and time.monotonic() < deadline:
                self.sent += 1
                try:
                    r = http.get(f"http://{self.gateway}/", headers={"Host": HOST})
                    r.raise_for_status()
                    body = r.json()
                    self.answers[(str(body["cluster"]), str(body["version"]))] += 1
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.failed += 1
                    self.errors.append(repr(exc))
                self._stop.wait(0.02)  # a steady, bounded rate (~40/s), not a flood


def test_a_killed_apiserver_taints_the_member_and_fails_over_without_failed_requests(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    running.cli("apply", "-f", write(running.folder, "shop.yaml", shop_docs()))
    want = {"k-east": 4, "k-south": 1, "k-burst": 1}
    wait_for_sync(lambda: binding_split(api) == want, 30, what=f"binding split {want}")
    wait_for_sync(lambda: ready_total(api) == 6, 90, interval=0.5, what="6/6 ready")
    wait_for_sync(lambda: served_by(running.gateway, 30, 10)[0] == set(want), 45,
                  interval=0.5, what="answers from all three members")

    with Load(running.gateway) as load:
        running.cli("chaos", "kill-cluster", "k-south")
        wait_for_sync(lambda: api.taint_keys("k-south"), 30, interval=0.2,
                      what="k-south tainted")
        reachable = next(c for c in (api.cluster("k-south") or {})["status"]["conditions"]
                         if c["type"] == "APIServerReachable")
        assert reachable["status"] == "False"
        assert reachable["message"].startswith("apiserver unreachable")

        def failed_over() -> dict[str, int] | None:
            split = binding_split(api)
            return split if split.get("k-south", 0) == 0 and sum(split.values()) == 6 \
                and ready_total(api) == 6 else None
        split = wait_for_sync(failed_over, 60, interval=0.5,
                              what="k-south's replica failed over, 6/6 ready")
        served, _ = served_by(running.gateway, 30, 10)
        assert "k-south" not in served
    assert load.sent > 50, load.sent
    assert load.failed == 0, f"{load.failed}/{load.sent} failed: {load.errors[:5]}"

    # While it is down, the operator keeps it out for good: its objects must go from
    # its API once that is back, though the agent could not delete them meanwhile.
    policy = next(d for d in shop_docs() if d["kind"] == "PropagationPolicy")
    policy["spec"]["placement"]["clusterAffinity"]["exclude"] = ["k-south"]
    running.cli("apply", "-f", write(running.folder, "exclude.yaml", [policy]))
    running.cli("chaos", "revive-cluster", "k-south")
    wait_for_sync(lambda: api.ready("k-south") == "True", 60, interval=0.5,
                  what="k-south Ready again")
    assert binding_split(api).get("k-south", 0) == 0

    def pruned() -> bool:
        return all("NotFound" in kubectl(running, "k-south", "get", kind, "shop", "-n",
                                         "default", check=False)
                   for kind in ("deployment", "service"))
    wait_for_sync(pruned, 60, interval=0.5, what="what moved away pruned from k-south")
    assert kube_replicas(running)["k-burst"] == binding_split(api)["k-burst"]
    # and without the exclusion it is placed there again
    running.cli("apply", "-f", write(running.folder, "shop.yaml", shop_docs()))
    wait_for_sync(lambda: binding_split(api) == want, 30, what=f"binding split {want}")
    wait_for_sync(lambda: kube_replicas(running)["k-south"] == 1, 60, interval=0.5,
                  what="k-south's Deployment back")
    assert split.get("k-burst", 0) >= 1


def binding_annotation(api: Api, key: str) -> Any:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       "resourcebindings/shop-deployment")
    text = ((r.json().get("metadata") or {}).get("annotations") or {}).get(key) \
        if r.status_code == 200 else None
    return json.loads(text) if text else None


def test_a_rollout_with_gates_runs_across_local_and_kubernetes_members(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    # The canary is a Kubernetes member; the second wave takes the rest, local included.
    policy = rollout_policy(waves=[{"clusters": ["k-burst"]}, {"percent": 100}])
    running.cli("apply", "-f", write(running.folder, "rollout.yaml", [policy]))
    wait_for_sync(lambda: (binding_annotation(api, STATE) or {}).get("phase") == "Succeeded",
                  30, interval=0.5, what="the rollout controller adopting the revision")
    wait_for_sync(lambda: ready_total(api) == 6, 90, interval=0.5, what="6/6 ready")
    placed = {c for c, n in binding_split(api).items() if n > 0}
    assert {"k-east", "k-burst"} <= placed, placed
    docs = shop_docs()
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "SHOP_VERSION", "value": "v2"}]
    with Load(running.gateway, count=8000, seconds=170) as load:
        wait_for_sync(lambda: load.sent > 30, 30, what="load flowing")
        running.cli("apply", "-f", write(running.folder, "v2.yaml", [dep]))
        result = subprocess.run([*FLOTILLA, "rollout", "status", "deploy/shop",
                                 "--timeout", "150"], cwd=running.folder, capture_output=True,
                                text=True, timeout=170, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Succeeded" in result.stdout
    state = binding_annotation(api, STATE)
    records = state["records"][-2:]
    assert [r["wave"] for r in records] == [0, 1]
    assert records[0]["clusters"] == ["k-burst"]
    assert set(records[1]["clusters"]) == placed - {"k-burst"}
    assert all(r["result"] == "passed" and r["figures"]["requests"] >= 10 for r in records)
    assert records[1]["started_at"] >= records[0]["ended_at"]
    assert load.failed == 0, f"{load.failed}/{load.sent} failed: {load.errors[:5]}"
    assert {c for (c, v) in load.answers if v == "v2"} == placed
    for c in KUBE:
        if c in placed:
            live = kube_deployment(running, c)
            assert live is not None
            env = live["spec"]["template"]["spec"]["containers"][0]["env"]
            assert {"name": "SHOP_VERSION", "value": "v2"} in env, env
