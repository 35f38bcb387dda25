"""A real agent on a credential of cluster A: its own heartbeats and status work, and
the same credential cannot renew B's Lease, write B's EndpointSlice, report an address
outside A's range or change a Deployment; every refusal is in the audit log."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flotilla.pki.files import write_private
from flotilla.pki.layout import PkiLayout
from tests.cli.serverproc import FLOTILLA, ServerProcess, clean_env
from tests.helpers import agent_tls_args, wait_for_sync
from tests.security.common import (
    CLUSTERS,
    DEPLOYMENTS,
    LEASES,
    audit_json,
    call,
    cluster,
    create_token,
    deployment,
    endpoint_slice,
    eps_path,
    lease,
)

ADDRESS_A = "127.0.61.1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", "--cluster-grace-period", "2")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _agent(server: ServerProcess, token_file: Path, state: Path) -> subprocess.Popen[bytes]:
    """`flotilla agent` with the flags `flotilla up` gives it."""
    log = (state.parent / "agent-a.log").open("ab")
    return subprocess.Popen(
        [FLOTILLA, "agent", "--server", server.url, "--token-file", str(token_file),
         "--cluster", "a", "--region", "r1", "--zone", "r1-a", "--runtime", "local",
         "--nodes", "1", "--address", ADDRESS_A, "--state-dir", str(state),
         "--heartbeat-interval", "0.3", "--admin-listen", f"{ADDRESS_A}:0",
         *agent_tls_args(server.data_dir, "a", ADDRESS_A)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=clean_env())


def _ready(server: ServerProcess, name: str) -> bool:
    r = call(server, server.token, "GET", f"{CLUSTERS}/{name}")
    conds = (r.json().get("status") or {}).get("conditions") or [] if r.status_code == 200 \
        else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def test_agent_is_confined_to_its_cluster(server: ServerProcess, tmp_path: Path) -> None:
    admin = server.token
    for body, path in ((cluster("a", [f"{ADDRESS_A}/32", "127.0.0.1/32"]), CLUSTERS),
                       (cluster("b", ["127.0.62.1/32"]), CLUSTERS), (lease("b"), LEASES),
                       (endpoint_slice("b", "127.0.62.1"), eps_path()),
                       (deployment("web"), DEPLOYMENTS)):
        assert call(server, admin, "POST", path, body).status_code == 201
    token_a = create_token(server.data_dir, "agent-a", "--cluster", "a")
    token_b = create_token(server.data_dir, "agent-b", "--cluster", "b")
    token_file = PkiLayout(server.data_dir).credential("agent-a")
    write_private(token_file, (token_a + "\n").encode())
    proc = _agent(server, token_file, tmp_path / "state-a")
    try:
        # A's own heartbeats (Lease renewals judged by the health controller) and status.
        wait_for_sync(lambda: _ready(server, "a"), timeout=30, what="cluster a Ready")
        a = call(server, admin, "GET", f"{CLUSTERS}/a").json()
        assert a["status"]["capacity"]["pods"] > 0
        assert a["spec"]["apiEndpoint"].startswith(f"https://{ADDRESS_A}:")
        assert a["spec"]["addressRange"] == [f"{ADDRESS_A}/32", "127.0.0.1/32"]
        assert a["metadata"]["annotations"]["flotilla.io/changed-by"] == "agent-a"
        lease_a = call(server, admin, "GET", f"{LEASES}/a").json()
        assert lease_a["metadata"]["annotations"]["flotilla.io/changed-by"] == "agent-a"

        # The same credential, used directly: each attempt refused.
        lease_b = call(server, admin, "GET", f"{LEASES}/b").json()
        lease_b["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
        attempts: list[tuple[str, httpx.Response]] = [
            ("leases", call(server, token_a, "PUT", f"{LEASES}/b", lease_b)),
            ("endpointslices", call(server, token_a, "PUT", f"{eps_path()}/web.b",
                                    endpoint_slice("b", ADDRESS_A))),
            ("endpointslices", call(server, token_a, "POST", eps_path(),
                                    endpoint_slice("a", "10.9.9.9", name="evil.a"))),
            ("deployments", call(server, token_a, "PUT", f"{DEPLOYMENTS}/web",
                                 deployment("web", 9))),
        ]
        for _resource, r in attempts:
            assert r.status_code == 403, r.text
            assert 'User "agent-a"' in r.json()["message"]
        assert "outside the cluster's address range" in attempts[2][1].json()["message"]
        # A's agent may not widen its own range either.
        a = call(server, admin, "GET", f"{CLUSTERS}/a").json()
        a["spec"]["addressRange"] = ["0.0.0.0/0"]
        assert call(server, token_a, "PUT", f"{CLUSTERS}/a", a).status_code == 403
        # Nor register a cluster of its own choosing.
        r = call(server, token_b, "POST", CLUSTERS, cluster("b", ["0.0.0.0/0"]))
        assert r.status_code == 403
        assert "an operator registers Cluster b" in r.json()["message"]
        # Nothing changed.
        assert call(server, admin, "GET", f"{LEASES}/b").json()["spec"].get("renewTime") is None
        assert call(server, admin, "GET", f"{DEPLOYMENTS}/web").json()["spec"]["replicas"] == 1
        assert call(server, admin, "GET", f"{eps_path()}/evil.a").status_code == 404

        # The agent's endpoint serves callers the control plane allows, nobody else.
        endpoint = call(server, admin, "GET", f"{CLUSTERS}/a").json()["spec"]["apiEndpoint"]
        assert httpx.get(f"{endpoint}/pods", headers={"Authorization": f"Bearer {admin}"},
                         timeout=5, verify=server.verify).status_code == 200
        assert httpx.get(f"{endpoint}/pods", headers={"Authorization": f"Bearer {token_b}"},
                         timeout=5, verify=server.verify).status_code == 403
        assert httpx.get(f"{endpoint}/pods", timeout=5, verify=server.verify).status_code == 401

        entries = audit_json(server.data_dir, "--since", "5m", "--user", "agent-a")
        denied = [(e["verb"], e["resource"], e["name"]) for e in entries if e["code"] == 403]
        for expected in (("update", "leases", "b"), ("update", "endpointslices", "web.b"),
                         ("create", "endpointslices", "evil.a"),
                         ("update", "deployments", "web"), ("update", "clusters", "a")):
            assert expected in denied, denied
        allowed = {(e["verb"], e["resource"], e["name"]) for e in entries if e["code"] == 200}
        assert ("update", "leases", "a") in allowed, entries[-5:]
        assert all(e["source"].startswith("127.0.0.1:") for e in entries)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


