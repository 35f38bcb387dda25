"""The kubernetes runtime against a real kube-apiserver, checked with the real kubectl."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.runtimes.base import ManifestError
from flotilla.runtimes.kubernetes import KubernetesConfig, KubernetesRuntime
from tests.helpers import wait_for
from tests.kube_clusters import KubeClusters


def deployment(ns: str, name: str = "web", replicas: int = 2, image: str = "web:1"
               ) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{
                                  "name": "app", "image": image,
                                  "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    }


def service(ns: str, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


async def runtime_for(kube: KubeClusters, cluster: str, state: Path,
                      member: str = "member") -> KubernetesRuntime:
    rt = KubernetesRuntime(KubernetesConfig(member, kube.kubeconfig(cluster),
                                            state_dir=state, health_interval=0.2))
    await rt.start()
    return rt


@pytest.fixture
def ns() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def rt(kube: KubeClusters, tmp_path: Path) -> AsyncIterator[KubernetesRuntime]:
    runtime = await runtime_for(kube, "kube-a", tmp_path)
    try:
        yield runtime
    finally:
        await runtime.stop(keep_pods=True)


def managers(obj: dict[str, Any]) -> set[str]:
    return {str(m.get("manager")) for m in obj["metadata"].get("managedFields") or []}


async def gone(kube: KubeClusters, cluster: str, *args: str) -> bool:
    return "NotFound" in kube.kubectl(cluster, "get", *args, check=False)


async def test_apply_creates_objects_owned_by_flotilla_in_a_new_namespace(
        kube: KubeClusters, rt: KubernetesRuntime, ns: str) -> None:
    await rt.apply([deployment(ns), service(ns)])
    # Until the whole set is written the runtime says so (the agent's Work stays
    # Applied=False): seeing the Deployment does not mean the Service is written yet,
    # which is what this test once raced on.
    pending = dict(rt.info().unapplied)
    assert set(pending) == {("apps/v1", "Deployment", ns, "web"), ("v1", "Service", ns, "web")}
    assert all(why.startswith("applying") for why in pending.values())

    async def applied() -> bool:
        return rt.info().unapplied == ()

    await wait_for(applied, timeout=30, what="the runtime to report every object applied")
    dep = kube.kubectl_json("kube-a", "get", "deployment", "web", "-n", ns)
    assert managers(dep) >= {"flotilla"}
    assert dep["metadata"]["labels"]["flotilla.io/owned-by"] == "member"
    assert dep["spec"]["replicas"] == 2
    svc = kube.kubectl_json("kube-a", "get", "service", "web", "-n", ns)
    assert managers(svc) >= {"flotilla"}
    assert svc["spec"]["ports"][0]["protocol"] == "TCP"
    assert kube.kubectl_json("kube-a", "get", "namespace", ns)["status"]["phase"] == "Active"

    # Status comes from the cluster: the controller-manager made the ReplicaSet's pods.
    async def reported() -> bool:
        w = rt.workloads()
        return bool(w) and w[0].replicas == 2 and w[0].observed_generation >= 1
    await wait_for(reported, timeout=30, what="replicas reported from the cluster")
    assert rt.info().kubernetes_version == "v1.20.2"
    assert [e.name for e in rt.endpoints()] == ["web"]


async def test_a_changed_work_updates_and_a_removed_object_is_pruned(
        kube: KubeClusters, rt: KubernetesRuntime, ns: str) -> None:
    await rt.apply([deployment(ns), service(ns)])

    async def replicas(n: int) -> bool:
        out = kube.kubectl("kube-a", "get", "deployment", "web", "-n", ns,
                           "-o", "jsonpath={.spec.replicas}", check=False)
        return out == str(n)

    await wait_for(lambda: replicas(2), timeout=30, what="2 replicas")
    changed = deployment(ns, replicas=3, image="web:2")
    await rt.apply([changed])
    await wait_for(lambda: replicas(3), timeout=30, what="3 replicas after the change")
    image = kube.kubectl("kube-a", "get", "deployment", "web", "-n", ns, "-o",
                         "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "web:2"
    await wait_for(lambda: gone(kube, "kube-a", "service", "web", "-n", ns), timeout=30,
                   what="the Service pruned")
    await rt.apply([])
    await wait_for(lambda: gone(kube, "kube-a", "deployment", "web", "-n", ns), timeout=30,
                   what="the Deployment pruned")
    # the namespace it created for them stays: it may hold objects that are not ours
    assert kube.kubectl_json("kube-a", "get", "namespace", ns)["metadata"]["name"] == ns


async def test_objects_flotilla_does_not_own_are_never_touched(
        kube: KubeClusters, rt: KubernetesRuntime, ns: str, tmp_path: Path) -> None:
    kube.kubectl("kube-a", "create", "namespace", ns)
    kube.kubectl("kube-a", "create", "deployment", "foreign", "--image=theirs:1", "-n", ns)
    kube.kubectl("kube-a", "create", "configmap", "foreign", "--from-literal=k=v", "-n", ns)
    # another member's agent sharing this API owns its own objects
    other = await runtime_for(kube, "kube-a", tmp_path / "other", member="other")
    try:
        await other.apply([deployment(ns, name="theirs")])
        await rt.apply([deployment(ns)])

        async def both() -> bool:
            out = kube.kubectl("kube-a", "get", "deployments", "-n", ns, "-o", "name")
            return set(out.split()) >= {"deployment.apps/web", "deployment.apps/theirs"}
        await wait_for(both, timeout=30, what="both members' Deployments")
        await rt.apply([])
        await wait_for(lambda: gone(kube, "kube-a", "deployment", "web", "-n", ns),
                       timeout=30, what="our Deployment pruned")
    finally:
        await other.stop(keep_pods=True)
    names = set(kube.kubectl("kube-a", "get", "deployments,configmaps", "-n", ns,
                             "-o", "name").split())
    assert {"deployment.apps/foreign", "deployment.apps/theirs",
            "configmap/foreign"} <= names
    foreign = kube.kubectl_json("kube-a", "get", "deployment", "foreign", "-n", ns)
    assert "flotilla" not in managers(foreign)


async def test_a_bad_manifest_is_refused_whole(rt: KubernetesRuntime, ns: str) -> None:
    nameless = copy.deepcopy(deployment(ns))
    del nameless["metadata"]["name"]
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        await rt.apply([deployment(ns, name="fine"), nameless])
    with pytest.raises(ManifestError, match="Frobnicator"):
        await rt.apply([{"apiVersion": "example.com/v1", "kind": "Frobnicator",
                         "metadata": {"name": "x", "namespace": ns}}])
    assert rt.workloads() == []


async def test_an_apiserver_killed_is_reported_unreachable_and_recovers(
        kube: KubeClusters, tmp_path: Path, ns: str) -> None:
    rt = await runtime_for(kube, "kube-b", tmp_path)
    try:
        await rt.apply([deployment(ns, replicas=1)])

        def reachable() -> str:
            return next(c.status for c in rt.info().conditions
                        if c.type == "APIServerReachable")

        async def workload_replicas(n: int) -> bool:
            w = rt.workloads()
            return bool(w) and w[0].replicas == n
        await wait_for(lambda: workload_replicas(1), timeout=30, what="1 replica")
        kube.kill_apiserver("kube-b")

        async def unreachable() -> bool:
            return reachable() == "False"
        await wait_for(unreachable, timeout=15, what="apiserver unreachable")
        cond = next(c for c in rt.info().conditions if c.type == "APIServerReachable")
        assert cond.message.startswith("apiserver unreachable")
        assert rt.capacity().nodes.ready == 0

        # a change made while the API is down is applied once it is back
        await rt.apply([deployment(ns, replicas=2)])
        kube.start_apiserver("kube-b")

        async def recovered() -> bool:
            return reachable() == "True"
        await wait_for(recovered, timeout=30, what="apiserver reachable again")
        await wait_for(lambda: workload_replicas(2), timeout=30,
                       what="the change applied and watched after the restart")
        # the watches resumed: a change made by someone else is seen
        kube.kubectl("kube-b", "scale", "deployment", "web", "-n", ns, "--replicas=3")
        await wait_for(lambda: workload_replicas(3), timeout=30, what="the scale seen")
    finally:
        await rt.stop(keep_pods=True)


def batch_job(ns: str, name: str = "crunch") -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"completions": 4, "parallelism": 2, "backoffLimit": 1,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "c", "image": "crunch:1", "command": ["true"]}]}}}}


async def test_a_job_is_reported_from_the_members_job_controller_and_pruned_with_its_pods(
        kube: KubeClusters, rt: KubernetesRuntime, ns: str) -> None:
    await rt.apply([batch_job(ns)])

    async def two_active() -> bool:
        jobs = [w for w in rt.workloads() if w.kind == "Job" and w.name == "crunch"]
        return bool(jobs) and jobs[0].job is not None and jobs[0].job.active == 2

    # the member's controller-manager made the pods (no node runs them: they stay Pending)
    await wait_for(two_active, timeout=30, what="the Job's 2 active pods reported")
    [w] = [w for w in rt.workloads() if w.kind == "Job"]
    assert w.job is not None
    assert (w.desired_replicas, w.job.succeeded, w.job.failed) == (2, 0, 0)

    async def pods(n: int) -> bool:
        out = kube.kubectl("kube-a", "get", "pods", "-n", ns, "-l", "job-name=crunch",
                           "-o", "name", check=False)
        return len(out.split()) == n

    await wait_for(lambda: pods(2), timeout=30, what="2 pods of the Job")
    await rt.apply([])
    await wait_for(lambda: gone(kube, "kube-a", "job", "crunch", "-n", ns), timeout=30,
                   what="the Job pruned")
    await wait_for(lambda: pods(0), timeout=30, what="its pods deleted, not orphaned")
