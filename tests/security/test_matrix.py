"""Role x verb x resource over the real server process: every cell's answer asserted.

The tokens are made with the real ``flotilla token create``; the calls are plain HTTP.
An allowed write answers 200/201, a refused one 403 with a Status naming the user, the
verb and the resource; no token or an expired one, 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.serverproc import ServerProcess, api_only_args
from tests.helpers import wait_for_sync
from tests.security.common import (
    CLUSTERS,
    DEPLOYMENTS,
    LEASES,
    call,
    cluster,
    create_token,
    deployment,
    endpoint_slice,
    eps_path,
    lease,
)

ROLES = ("admin", "edit", "view", "agent-c", "gateway", "dns", "expired", "none")
SECRETS = "/api/v1/namespaces/default/secrets"
WORKS_C = "/apis/work.flotilla.io/v1alpha1/namespaces/flotilla-es-c/works"
WORKS_D = "/apis/work.flotilla.io/v1alpha1/namespaces/flotilla-es-d/works"
CLUSTERROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
TRAFFIC = "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/trafficpolicies"
EXPORTS = "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/default/serviceexports"
REPORTS = "/apis/traffic.flotilla.io/v1alpha1/namespaces/flotilla-system/gatewayreports"


def _report(name: str, namespace: str = "flotilla-system") -> dict[str, Any]:
    return {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "GatewayReport",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusters": [{"name": "c", "reachable": False}]}}


def _status(name: str) -> dict[str, Any]:
    return {**cluster(name, []), "status": {"nodeSummary": {"total": 1, "ready": 1}}}


def _work(ns: str) -> dict[str, Any]:
    return {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "Work",
            "metadata": {"name": "w", "namespace": ns},
            "spec": {"workload": {"manifests": []}},
            "status": {"conditions": []}}


def _role(name: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]}


#: name -> (method, path, body factory (role -> body) or None, params)
CELLS: dict[str, tuple[str, str, Any, dict[str, str] | None]] = {
    "list deployments": ("GET", DEPLOYMENTS, None, None),
    "create deployment": ("POST", DEPLOYMENTS, lambda r: deployment(f"d-{r}"), None),
    "update deployment": ("PUT", f"{DEPLOYMENTS}/web", lambda r: deployment("web", 2), None),
    "get secret": ("GET", f"{SECRETS}/s", None, None),
    "create clusterrole": ("POST", CLUSTERROLES, lambda r: _role(f"r-{r}"), None),
    "list clusters": ("GET", CLUSTERS, None, None),
    "update cluster c status": ("PUT", f"{CLUSTERS}/c/status", lambda r: _status("c"), None),
    "update cluster d status": ("PUT", f"{CLUSTERS}/d/status", lambda r: _status("d"), None),
    "update lease c": ("PUT", f"{LEASES}/c", lambda r: lease("c"), None),
    "update lease d": ("PUT", f"{LEASES}/d", lambda r: lease("d"), None),
    "list works of c": ("GET", WORKS_C, None, None),
    "list works of d": ("GET", WORKS_D, None, None),
    "update work status of c": ("PUT", f"{WORKS_C}/w/status", lambda r: _work("flotilla-es-c"),
                                None),
    "write endpointslice of c": ("PUT", f"{eps_path()}/web.c",
                                 lambda r: endpoint_slice("c", "127.0.50.7"), None),
    "write endpointslice of d": ("PUT", f"{eps_path()}/web.d",
                                 lambda r: endpoint_slice("d", "127.0.50.7"), None),
    "list endpointslices of c": ("GET", "/apis/discovery.flotilla.io/v1alpha1/endpointslices",
                                 None, {"labelSelector": "flotilla.io/cluster=c"}),
    "list all endpointslices": ("GET", "/apis/discovery.flotilla.io/v1alpha1/endpointslices",
                                None, None),
    "list trafficpolicies": ("GET", TRAFFIC, None, None),
    "list serviceexports": ("GET", EXPORTS, None, None),
    # A gateway writes its own report (named after its token, "gw") and nothing else.
    "create own gatewayreport": ("POST", REPORTS,
                                 lambda r: _report("gw" if r == "gateway" else f"g-{r}"), None),
    "update gatewayreport of another": ("PUT", f"{REPORTS}/other",
                                        lambda r: _report("other"), None),
    "get gatewayreport of another": ("GET", f"{REPORTS}/other", None, None),
    "create gatewayreport elsewhere": (
        "POST", "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/gatewayreports",
        lambda r: _report("gw" if r == "gateway" else f"g-{r}", "default"), None),
}

OK, CREATED, DENIED = 200, 201, 403
#: The expected code of every cell for admin, edit, view, agent-c, gateway, dns.
EXPECTED: dict[str, tuple[int, int, int, int, int, int]] = {
    "list deployments":          (OK, OK, OK, DENIED, DENIED, DENIED),
    "create deployment":         (CREATED, CREATED, DENIED, DENIED, DENIED, DENIED),
    "update deployment":         (OK, OK, DENIED, DENIED, DENIED, DENIED),
    "get secret":                (OK, OK, DENIED, DENIED, OK, DENIED),
    "create clusterrole":        (CREATED, DENIED, DENIED, DENIED, DENIED, DENIED),
    "list clusters":             (OK, OK, OK, DENIED, OK, OK),
    "update cluster c status":   (OK, DENIED, DENIED, OK, DENIED, DENIED),
    "update cluster d status":   (OK, DENIED, DENIED, DENIED, DENIED, DENIED),
    "update lease c":            (OK, DENIED, DENIED, OK, DENIED, DENIED),
    "update lease d":            (OK, DENIED, DENIED, DENIED, DENIED, DENIED),
    "list works of c":           (OK, OK, OK, OK, DENIED, DENIED),
    "list works of d":           (OK, OK, OK, DENIED, DENIED, DENIED),
    "update work status of c":   (OK, DENIED, DENIED, OK, DENIED, DENIED),
    "write endpointslice of c":  (OK, DENIED, DENIED, OK, DENIED, DENIED),
    "write endpointslice of d":  (OK, DENIED, DENIED, DENIED, DENIED, DENIED),
    "list endpointslices of c":  (OK, OK, OK, OK, OK, OK),
    "list all endpointslices":   (OK, OK, OK, DENIED, OK, OK),
    "list trafficpolicies":      (OK, OK, OK, DENIED, OK, OK),
    "list serviceexports":       (OK, OK, OK, DENIED, DENIED, OK),
    "create own gatewayreport":  (CREATED, DENIED, DENIED, DENIED, CREATED, DENIED),
    "update gatewayreport of another": (OK, DENIED, DENIED, DENIED, DENIED, DENIED),
    "get gatewayreport of another": (OK, OK, OK, DENIED, DENIED, DENIED),
    "create gatewayreport elsewhere": (CREATED, DENIED, DENIED, DENIED, DENIED, DENIED),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess,
                                                                     dict[str, str | None]]]:
    data = tmp_path_factory.mktemp("matrix") / "data"
    server = ServerProcess(data, *api_only_args())
    server.start()
    try:
        tokens: dict[str, str | None] = {
            "admin": server.token,
            "edit": create_token(data, "erin", "--role", "edit"),
            "view": create_token(data, "victor", "--role", "view"),
            "agent-c": create_token(data, "agent-c", "--cluster", "c"),
            "gateway": create_token(data, "gw", "--role", "gateway"),
            "dns": create_token(data, "dns", "--role", "dns"),
            "expired": create_token(data, "old", "--role", "admin", "--ttl", "1ms"),
            "none": None,
        }
        admin = server.token
        for body, path in ((cluster("c", ["127.0.50.0/24"]), CLUSTERS),
                           (cluster("d", ["127.0.60.0/24"]), CLUSTERS),
                           (lease("c"), LEASES), (lease("d"), LEASES),
                           (deployment("web"), DEPLOYMENTS),
                           ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                             "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}},
                            SECRETS),
                           (_work("flotilla-es-c"), WORKS_C), (_work("flotilla-es-d"), WORKS_D),
                           (endpoint_slice("c", "127.0.50.1"), eps_path()),
                           (endpoint_slice("d", "127.0.60.1"), eps_path()),
                           (_report("other"), REPORTS)):
            r = call(server, admin, "POST", path, body)
            assert r.status_code == 201, r.text
        # Every new token works within the server's re-read interval.
        wait_for_sync(lambda: call(server, tokens["gateway"], "GET",
                                   CLUSTERS).status_code == 200, timeout=10, what="new tokens")
        yield server, tokens
    finally:
        server.stop()


@pytest.mark.parametrize("cell", list(CELLS))
def test_matrix(world: tuple[ServerProcess, dict[str, str | None]], cell: str) -> None:
    server, tokens = world
    method, path, body, params = CELLS[cell]
    got: dict[str, int] = {}
    messages: dict[str, str] = {}
    for role in ROLES:
        r = call(server, tokens[role], method, path, body(role) if body else None, params)
        got[role] = r.status_code
        messages[role] = r.json().get("message", "") if r.status_code >= 400 else ""
    expected = dict(zip(ROLES, (*EXPECTED[cell], 401, 401), strict=True))
    assert got == expected, f"{cell}: {messages}"
    for role, code in got.items():
        if code == 403:
            user = {"edit": "erin", "view": "victor", "gateway": "gw"}.get(role, role)
            assert f'User "{user}"' in messages[role], messages[role]
            verb = "update" if method == "PUT" else "create" if method == "POST" else ""
            assert verb in messages[role], messages[role]
        if role == "expired":
            assert "expired" in messages[role], messages[role]


def test_forbidden_status_names_user_verb_resource_and_object(
        world: tuple[ServerProcess, dict[str, str | None]]) -> None:
    server, tokens = world
    r = call(server, tokens["view"], "PUT", f"{DEPLOYMENTS}/web", deployment("web", 3))
    assert r.status_code == 403
    status = r.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "Forbidden"
    assert status["message"].startswith(
        'deployments.apps "web" is forbidden: User "victor" cannot update resource '
        '"deployments" in API group "apps" in the namespace "default"'), status["message"]


def test_namespaced_token_and_bindings(world: tuple[ServerProcess, dict[str, str | None]],
                                       tmp_path: Path) -> None:
    """``--namespace`` confines a role; a RoleBinding to a User grants more, at once
    for a refused call (bindings are read when the built-in roles say no)."""
    server, tokens = world
    ns_token = create_token(server.data_dir, "nina", "--role", "edit", "--namespace", "shop")
    shop = "/apis/apps/v1/namespaces/shop/deployments"
    wait_for_sync(lambda: call(server, ns_token, "GET", shop).status_code == 200, timeout=10,
                  what="the namespaced token")
    assert call(server, ns_token, "GET", DEPLOYMENTS).status_code == 403
    assert call(server, ns_token, "GET", "/apis/apps/v1/deployments").status_code == 403
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "nina-view", "namespace": "default"},
               "subjects": [{"kind": "User", "name": "nina"}],
               "roleRef": {"kind": "ClusterRole", "name": "view"}}
    r = call(server, tokens["admin"], "POST",
             "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", binding)
    assert r.status_code == 201, r.text
    assert call(server, ns_token, "GET", DEPLOYMENTS).status_code == 200
    assert call(server, ns_token, "PUT", f"{DEPLOYMENTS}/web",
                deployment("web", 4)).status_code == 403  # view, not edit, in default


def test_a_gateway_is_told_which_report_is_its_own(
        world: tuple[ServerProcess, dict[str, str | None]]) -> None:
    """RBAC allows the gateway role gatewayreports; the gateway restriction narrows it to
    the one named after the token, and the 403 says so."""
    server, tokens = world
    r = call(server, tokens["gateway"], "PUT", f"{REPORTS}/other", _report("other"))
    assert r.status_code == 403
    assert "may only touch its own GatewayReport flotilla-system/gw" in r.json()["message"]
    # Its own, read back and renewed (what the gateway's reporter does every 2 s).
    r = call(server, tokens["gateway"], "GET", f"{REPORTS}/gw")
    if r.status_code == 404:  # the matrix cell that creates it may not have run
        assert call(server, tokens["gateway"], "POST", REPORTS, _report("gw")).status_code \
            == 201
        r = call(server, tokens["gateway"], "GET", f"{REPORTS}/gw")
    assert r.status_code == 200
    body = r.json()
    body["spec"]["clusters"][0]["reachable"] = True
    assert call(server, tokens["gateway"], "PUT", f"{REPORTS}/gw", body).status_code == 200
    # Deleting is not renewing: refused like every other write.
    assert call(server, tokens["gateway"], "DELETE", f"{REPORTS}/gw").status_code == 403
