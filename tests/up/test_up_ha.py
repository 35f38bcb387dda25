"""`flotilla up --ha` end to end: three real etcd members and three real servers, two
clusters, a gateway and a DNS; chaos on servers and etcd members; a clean stop.

One `up` for the module (start-up is the expensive part); the tests run in order and
the last one revives what the others killed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from flotilla.up.supervisor import pid_alive
from tests.helpers import free_port, wait_for_sync
from tests.up.harness import Api, UpProcess, wait_gone

pytestmark = pytest.mark.slow
CLUSTERS = [
    {"name": "ha-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.221.1",
     "nodes": 1},
    {"name": "ha-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.222.1", "nodes": 1},
]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("up-ha")
    running = UpProcess(folder, CLUSTERS, ha=True, gateway=f"127.0.0.1:{free_port()}",
                        dns=f"127.0.0.1:{free_port()}")
    try:
        api = running.wait_up(timeout=120)
        yield running, api
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop()
        left = wait_gone(lambda: running.leftovers(pgids), timeout=30)
        assert not left, f"processes left behind after SIGTERM: {left}"
        assert code == 0, running.output()


def test_up_json_lists_three_servers_and_three_etcd_members(
        up: tuple[UpProcess, Api]) -> None:
    running, _ = up
    state = running.state()
    assert [s["name"] for s in state["servers"]] == ["server-1", "server-2", "server-3"]
    assert [e["name"] for e in state["etcd"]] == ["etcd-1", "etcd-2", "etcd-3"]
    assert state["server"] == state["servers"][0]["url"]
    urls = [s["url"] for s in state["servers"]]
    assert len(set(urls)) == 3
    assert all(u.startswith("https://127.0.0.1:") for u in urls)
    assert all(e["url"].startswith("https://127.0.0.1:") for e in state["etcd"])
    assert all(pid_alive(int(p["pid"])) for p in [*state["servers"], *state["etcd"]])
    # agents, gateway and DNS are given every server
    joined = ",".join(urls)
    for argv in [*(c["argv"] for c in state["clusters"]), state["gateway"]["argv"],
                 state["dns"]["argv"]]:
        assert argv[argv.index("--server") + 1] == joined
    # every server its own identity; one secrets key for all, private
    keys = set()
    for s in state["servers"]:
        folder = running.data_dir / "servers" / s["name"]
        cert = x509.load_pem_x509_certificate((folder / "pki" / "server.crt").read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == s["name"]
        key = (folder / "pki" / "secrets.key").resolve()
        keys.add(key)
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        etcd_cert = Path(s["argv"][s["argv"].index("--etcd-cert-file") + 1])
        client = x509.load_pem_x509_certificate(etcd_cert.read_bytes())
        assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == s["name"]
    assert len(keys) == 1


def test_leases_readable_through_the_cli(up: tuple[UpProcess, Api]) -> None:
    running, _ = up
    out = running.cli("get", "leases", "-n", "flotilla-system", "-o", "json").stdout
    leases = {item["metadata"]["name"]: item for item in json.loads(out)["items"]}
    # the clusters' heartbeat Leases, renewed through the servers on etcd
    assert {"ha-east", "ha-south"} <= set(leases), sorted(leases)
    servers = {s["name"] for s in running.state()["servers"]}
    # the controller leader Lease (issue 15.3): held by one of up.json's servers
    assert "flotilla-controllers" in leases, sorted(leases)
    leader = leases["flotilla-controllers"]
    assert leader["spec"]["holderIdentity"] in servers, leader


def test_killed_server_the_others_still_serve(up: tuple[UpProcess, Api]) -> None:
    running, _ = up
    victim = running.state()["servers"][0]
    running.cli("chaos", "kill-server", "server-1")
    assert not wait_gone(lambda: pid_alive(int(victim["pid"])))
    table = running.cli("get", "clusters").stdout
    assert "ha-east" in table
    assert "ha-south" in table
    status = running.cli("status").stdout
    line = next(ln for ln in status.splitlines() if ln.startswith("server-1"))
    assert "dead" in line


def test_killed_etcd_member_writes_still_succeed(up: tuple[UpProcess, Api],
                                                 tmp_path: Path) -> None:
    running, _ = up
    running.cli("chaos", "kill-etcd", "etcd-1")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "after-kill", "namespace": "default"},
                                    "data": {"k": "v"}}))
    running.cli("apply", "-f", str(manifest))
    got = json.loads(running.cli("get", "configmap", "after-kill", "-n", "default",
                                 "-o", "json").stdout)
    assert got["data"] == {"k": "v"}


def test_unknown_names_and_revive(up: tuple[UpProcess, Api]) -> None:
    running, _ = up
    wrong = running.cli("chaos", "kill-etcd", "etcd-9", check=False)
    assert wrong.returncode != 0
    assert "etcd-1, etcd-2, etcd-3" in wrong.stderr
    again = running.cli("chaos", "revive-server", "server-2", check=False)
    assert again.returncode != 0
    assert "still running" in again.stderr
    running.cli("chaos", "revive-etcd", "etcd-1")
    running.cli("chaos", "revive-server", "server-1")

    def all_healthy() -> bool:
        lines = running.cli("status").stdout.splitlines()
        parts = [ln for ln in lines if ln.startswith(("server-", "etcd-"))]
        return len(parts) == 6 and all(ln.rstrip().endswith(" healthy") for ln in parts)
    wait_for_sync(all_healthy, timeout=60, interval=0.5, what="every server and member healthy")
    state = running.state()
    assert pid_alive(int(state["servers"][0]["pid"]))
    assert state["serverPid"] == state["servers"][0]["pid"]


def test_audit_merges_every_servers_log_naming_the_writer(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    state = running.state()
    # one write through each server, in turn
    for s in state["servers"]:
        through = Api(s["url"], api.token, api.ca)
        r = through.client.post("/api/v1/namespaces/default/configmaps", json={
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"audit-via-{s['name']}", "namespace": "default"}})
        assert r.status_code == 201, r.text
        # each server's own log, in its own data dir
        own = running.data_dir / "servers" / s["name"] / "audit.log"
        assert f"audit-via-{s['name']}" in own.read_text()
    entries = json.loads(running.cli("audit", "-o", "json").stdout)
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    ours = [e for e in entries if str(e.get("name", "")).startswith("audit-via-")]
    assert [(e["name"], e["server"]) for e in ours] == [
        (f"audit-via-{s['name']}", s["name"]) for s in state["servers"]]
    table = running.cli("audit").stdout.splitlines()
    assert table[0].split()[:3] == ["TIME", "SERVER", "USER"]
    row = next(ln for ln in table if "audit-via-server-2" in ln)
    assert row.split()[1] == "server-2"
