"""Shared pieces of the security tests: a real server with one token per role, made
through the real ``flotilla token`` command, and plain HTTP calls with any token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.cli.serverproc import ServerProcess, clean_env, flotilla

CLUSTERS = "/apis/cluster.flotilla.io/v1alpha1/clusters"
LEASES = "/apis/coordination.flotilla.io/v1alpha1/namespaces/flotilla-system/leases"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def eps_path(ns: str = "default") -> str:
    return f"/apis/discovery.flotilla.io/v1alpha1/namespaces/{ns}/endpointslices"


def create_token(data_dir: Path, name: str, *args: str) -> str:
    """``flotilla token create`` through the console script; the token is the last line."""
    r = flotilla("token", "create", name, *args, "--data-dir", str(data_dir), env=clean_env())
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert len(token) >= 40, r.stdout
    assert " " not in token, r.stdout
    return token


def call(server: ServerProcess, token: str | None, method: str, path: str,
         body: dict[str, Any] | None = None, params: dict[str, str] | None = None
         ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, server.url + path, json=body, params=params,
                         headers=headers, timeout=10, verify=server.verify)


def cluster(name: str, ranges: list[str]) -> dict[str, Any]:
    return {"apiVersion": "cluster.flotilla.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {"region": "r1", "zone": "r1-a", "addressRange": ranges}}


def lease(name: str) -> dict[str, Any]:
    return {"apiVersion": "coordination.flotilla.io/v1alpha1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "flotilla-system"},
            "spec": {"holderIdentity": f"agent-{name}", "leaseDurationSeconds": 3}}


def endpoint_slice(cluster_name: str, address: str, name: str = "") -> dict[str, Any]:
    return {"apiVersion": "discovery.flotilla.io/v1alpha1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"web.{cluster_name}", "namespace": "default",
                         "labels": {"flotilla.io/cluster": cluster_name,
                                    "flotilla.io/service-name": "web"}},
            "spec": {"service": "web", "cluster": cluster_name,
                     "endpoints": [{"address": address,
                                    "ports": [{"name": "http", "port": 8080}],
                                    "ready": True}]}}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def audit_json(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    import json

    r = flotilla("audit", "--data-dir", str(data_dir), "-o", "json", *args, env=clean_env())
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert isinstance(entries, list)
    return entries
