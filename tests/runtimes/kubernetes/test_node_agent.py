"""Pods that really run: the node agent registers Nodes, the real kube-scheduler binds
the Deployment's pods to them, the real controller-manager fills the EndpointSlices,
and the addresses the runtime reports answer HTTP from real processes."""

from __future__ import annotations

import os
import pwd
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.nodeagent.agent import NodeAgent, NodeAgentConfig
from flotilla.runtimes.kubernetes import KubernetesConfig, KubernetesRuntime
from flotilla.runtimes.local.config import Timings
from tests.helpers import wait_for
from tests.kube_clusters import KubeClusters

APP = Path(__file__).resolve().parents[1] / "apps" / "httpapp.py"


def app(ns: str, replicas: int) -> list[dict[str, Any]]:
    labels = {"app": "hello"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "hello", "namespace": ns},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "terminationGracePeriodSeconds": 2,
                      "containers": [{
                          "name": "app", "image": "hello:1",
                          "command": [sys.executable, str(APP)],
                          "ports": [{"name": "http", "containerPort": 8080}],
                          "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
                          "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                             "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80,
                                                 "targetPort": "http"}]}},
    ]


async def test_pods_bound_to_node_agent_nodes_run_and_serve(
        kube: KubeClusters, tmp_path: Path) -> None:
    ns = f"n-{uuid.uuid4().hex[:8]}"
    nodes = (f"{ns}-node-1", f"{ns}-node-2")
    agent = NodeAgent(NodeAgentConfig(
        kubeconfig=kube.kubeconfig("kube-a"), nodes=nodes, state_dir=tmp_path / "node",
        cpu="2", memory="1Gi", pod_cidr="127.120.0.0/24", cluster="member",
        # the test's app lives in this checkout, which the default pod user (nobody)
        # may not read: run pods as the test's own user, as the local runtime tests do
        pod_user=pwd.getpwuid(os.getuid()).pw_name,
        timings=Timings(backoff_base=0.2, backoff_cap=1.0, max_grace=2.0)))
    rt = KubernetesRuntime(KubernetesConfig("member", kube.kubeconfig("kube-a"),
                                            state_dir=tmp_path / "rt", health_interval=0.2))
    await agent.start()
    await rt.start()
    try:
        async def registered() -> bool:
            out = kube.kubectl("kube-a", "get", "nodes", "-o", "name")
            return {f"node/{n}" for n in nodes} <= set(out.split())
        await wait_for(registered, timeout=30, what="the node agent's Nodes")
        status = kube.kubectl_json("kube-a", "get", "node", nodes[0])["status"]
        assert status["allocatable"]["cpu"] == "2"
        await rt.apply(app(ns, replicas=3))

        async def ready() -> bool:
            w = rt.workloads()
            return bool(w) and w[0].ready_replicas == 3 and w[0].available_replicas == 3
        try:
            await wait_for(ready, timeout=60, what="3/3 ready reported from the cluster")
        except AssertionError:
            print(kube.kubectl("kube-a", "get", "pods,nodes", "-A", "-o", "wide"))
            print(kube.kubectl("kube-a", "describe", "pods", "-n", ns))
            print(rt.workloads())
            raise

        async def endpoints() -> Any:
            eps = rt.endpoints()
            return eps and len(eps[0].endpoints) == 3 and eps[0].endpoints
        eps = await wait_for(endpoints, timeout=30, what="3 endpoints from EndpointSlices")
        answered = set()
        async with httpx.AsyncClient(timeout=5) as http:
            for ep in eps:
                assert ep.address.startswith("127.120.0.")
                resp = await http.get(f"http://{ep.address}:{ep.ports['http']}/")
                answered.add(resp.text)
        assert answered == {f"hello from {ep.pod}" for ep in eps}
        pods = kube.kubectl_json("kube-a", "get", "pods", "-n", ns)["items"]
        assert {p["status"]["phase"] for p in pods} == {"Running"}
        assert {p["spec"]["nodeName"] for p in pods} <= set(nodes)

        # capacity: the nodes' allocatable, minus what the pods request
        def mine() -> list[Any]:
            return [n for n in rt.nodes() if n.name in nodes]
        assert sum(n.allocatable.cpu_millis for n in mine()) == 4000
        assert sum(n.allocated.cpu_millis for n in mine()) == 1500
        assert rt.estimate_replicas(app(ns, 1)[0]["spec"]["template"]) >= 5

        # scaled down: the pods' processes stop and their objects go
        await rt.apply(app(ns, replicas=1))

        async def one_left() -> bool:
            items = kube.kubectl_json("kube-a", "get", "pods", "-n", ns)["items"]
            return len(items) == 1
        await wait_for(one_left, timeout=60, what="two pods stopped and removed")
        gone = [ep for ep in eps if ep.pod not in
                {p["metadata"]["name"] for p in
                 kube.kubectl_json("kube-a", "get", "pods", "-n", ns)["items"]}]
        async with httpx.AsyncClient(timeout=2) as http:
            for ep in gone:
                with pytest.raises(httpx.TransportError):
                    await http.get(f"http://{ep.address}:{ep.ports['http']}/")
        await rt.apply([])
    finally:
        await rt.stop(keep_pods=True)
        await agent.stop()
        for node in nodes:
            kube.kubectl("kube-a", "delete", "node", node, check=False)
