"""Service discovery with real parts: `flotilla up` (server, two agents, local-runtime
pods, the DNS it starts), `flotilla apply`, `flotilla get serviceimports -o wide`, the
discovery endpoint, `dig`, and `flotilla chaos kill-cluster`.

Each test has its own `flotilla up` on its own loopback addresses (127.0.251-254.x), so
the two never share state and either can run alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.resources.naming import endpoint_slice_name
from tests.dns.conftest import DIG, DigAnswer, needs_dig, parse_dig
from tests.helpers import free_port, wait_for_sync
from tests.up.harness import SHOP_APP, Api, UpProcess, wait_gone

pytestmark = [pytest.mark.slow, needs_dig]
GRACE = 3.0
NS = "default"
SI_PATH = f"/apis/multicluster.x-k8s.io/v1alpha1/namespaces/{NS}/serviceimports"
SE_PATH = f"/apis/multicluster.x-k8s.io/v1alpha1/namespaces/{NS}/serviceexports"
SHOP_SRV = f"_http._tcp.shop.{NS}.svc.clusterset.local"


def shop_manifests(clusters: list[str]) -> list[dict[str, Any]]:
    """The shop app, one replica in every listed cluster, its Service and its export."""
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "shop", "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                  "template": {"metadata": {"labels": {"app": "shop"}},
                               "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                   "name": "shop", "image": "shop",
                                   "command": [sys.executable, "-u", SHOP_APP],
                                   "ports": [{"name": "http", "containerPort": 8080}],
                                   "readinessProbe": {"httpGet": {"path": "/healthz",
                                                                  "port": "http"},
                                                      "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": NS},
         "spec": {"selector": {"app": "shop"},
                  "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}},
        {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": "shop", "namespace": NS},
         "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "shop"},
                                        {"apiVersion": "v1", "kind": "Service", "name": "shop"}],
                  "placement": {"clusterAffinity": {"clusterNames": clusters},
                                "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}}},
        {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
         "metadata": {"name": "shop", "namespace": NS}},
    ]


class DiscoveryUp(UpProcess):
    """`flotilla up` with its DNS on (the shared harness turns it off)."""

    def __init__(self, folder: Path, clusters: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.data_dir = folder / ".flotilla"
        config = folder / "clusters.yaml"
        config.write_text(json.dumps({"clusters": clusters}))
        self.port = free_port()
        self.dns_port = free_port()
        self.log = open(folder / "up.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flotilla", "up", "--data-dir", str(self.data_dir),
             "--config", str(config), "--listen", f"127.0.0.1:{self.port}",
             "--gateway-listen", "", "--dns-listen", f"127.0.0.1:{self.dns_port}",
             "--dns-admin-listen", "", "--cluster-grace-period", str(GRACE)],
            cwd=folder, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.names = [c["name"] for c in clusters]

    def dig(self, *args: str) -> DigAnswer:
        assert DIG is not None
        out = subprocess.run([DIG, "@127.0.0.1", "-p", str(self.dns_port), "+norec",
                              "+tries=1", "+time=2", *args],
                             capture_output=True, text=True, timeout=20)
        answers = parse_dig(out.stdout)
        return answers[0] if answers else DigAnswer(status="NO-ANSWER")

    def apply(self, objects: list[dict[str, Any]]) -> None:
        path = self.folder / "apply.json"
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        self.cli("apply", "-f", str(path))

    def wide_table(self) -> dict[str, dict[str, str]]:
        """``get serviceimports -o wide`` as {name: {header: cell}} (cells have no
        spaces: endpoint lists are comma-joined)."""
        lines = self.cli("get", "serviceimports", "-o", "wide").stdout.splitlines()
        if len(lines) < 2:
            return {}
        headers = lines[0].split()
        out = {}
        for line in lines[1:]:
            cells = line.split()
            assert len(cells) == len(headers), lines
            out[cells[0]] = dict(zip(headers, cells, strict=True))
        return out


def start(tmp_path: Path, clusters: list[dict[str, Any]]) -> Iterator[tuple[DiscoveryUp, Api]]:
    running = DiscoveryUp(tmp_path, clusters)
    try:
        api = running.wait_up()
        wait_for_sync(lambda: running.dig("clusterset.local", "SOA").status == "NOERROR",
                      20, what="the DNS of flotilla up answering")
        yield running, api
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        running.stop()
        assert not wait_gone(lambda: running.leftovers(pgids))


def _cluster(name: str, region: str, address: str) -> dict[str, Any]:
    return {"name": name, "region": region, "zone": f"{region}-a", "address": address,
            "nodes": 1}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[DiscoveryUp, Api]]:
    yield from start(tmp_path, [_cluster("sd-east", "cn-east", "127.0.251.1"),
                                _cluster("sd-south", "cn-south", "127.0.252.1")])


@pytest.fixture
def up_conflict(tmp_path: Path) -> Iterator[tuple[DiscoveryUp, Api]]:
    yield from start(tmp_path, [_cluster("sc-east", "cn-east", "127.0.253.1"),
                                _cluster("sc-south", "cn-south", "127.0.254.1")])


def get_json(api: Api, path: str) -> dict[str, Any] | None:
    r = api.client.get(path)
    return dict(r.json()) if r.status_code == 200 else None


def import_endpoints(api: Api, name: str = "shop") -> list[dict[str, Any]]:
    si = get_json(api, f"{SI_PATH}/{name}") or {}
    return list((si.get("status") or {}).get("endpoints") or [])


def ready_by_cluster(endpoints: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in endpoints:
        if e["ready"]:
            out.setdefault(e["cluster"], []).append(f"{e['address']}:{e['port']}")
    return {c: sorted(v) for c, v in out.items()}


def slice_ports(api: Api, cluster: str) -> list[int]:
    """The ports the local runtime assigned to the ready shop pods of ``cluster``."""
    s = get_json(api, "/apis/discovery.flotilla.io/v1alpha1/namespaces/"
                      f"{NS}/endpointslices/{endpoint_slice_name('shop', cluster)}") \
        or {"spec": {"endpoints": []}}
    return sorted(p["port"] for ep in s["spec"]["endpoints"] if ep["ready"]
                  for p in ep["ports"] if p["name"] == "http")


def export_condition(api: Api, name: str, type_: str) -> tuple[str, str, str] | None:
    se = get_json(api, f"{SE_PATH}/{name}") or {}
    for c in (se.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c["reason"], c["message"]
    return None


def srv_ports(running: DiscoveryUp) -> list[int]:
    return sorted(int(d.split()[2]) for d in running.dig(SHOP_SRV, "SRV").data("SRV"))


def condition_is(api: Api, name: str, type_: str, status: str) -> tuple[str, ...]:
    """(status, reason, message) of the export's condition ``type_`` once its status is
    ``status``; ``()`` (falsy, for `wait_for_sync`) until then."""
    c = export_condition(api, name, type_)
    return c if c is not None and c[0] == status else ()


def ready_in(api: Api, clusters: set[str]) -> dict[str, list[str]]:
    """The import's ready endpoints per cluster, once exactly ``clusters`` have some."""
    ready = ready_by_cluster(import_endpoints(api))
    return ready if ready.keys() == clusters else {}


def test_import_lists_both_clusters_and_drops_a_killed_one(
    up: tuple[DiscoveryUp, Api],
) -> None:
    running, api = up
    running.apply(shop_manifests(["sd-east", "sd-south"]))
    both = wait_for_sync(lambda: ready_in(api, {"sd-east", "sd-south"}), 60,
                         what="both clusters' shop pods in the ServiceImport")

    si = get_json(api, f"{SI_PATH}/shop")
    assert si is not None
    assert si["spec"]["type"] == "ClusterSetIP"
    assert si["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8000}]
    assert si["status"]["clusters"] == [{"cluster": "sd-east"}, {"cluster": "sd-south"}]
    eps = si["status"]["endpoints"]
    for cluster, region in (("sd-east", "cn-east"), ("sd-south", "cn-south")):
        mine = [e for e in eps if e["cluster"] == cluster]
        # The very ports the local runtime gave the pods, as the agent reported them.
        assert sorted(e["port"] for e in mine) == slice_ports(api, cluster)
        assert {(e["region"], e["zone"]) for e in mine} == {(region, f"{region}-a")}
    assert condition_is(api, "shop", "Valid", "True") == ("True", "Valid",
                                                          "the Service is exported")
    assert condition_is(api, "shop", "Conflict", "False")[1] == "NoConflicts"

    # The discovery endpoint, the wide table and the DNS all say the same.
    doc = get_json(api, f"{SI_PATH}/shop/endpoints")
    assert doc is not None
    assert doc["kind"] == "ServiceImportEndpoints"
    assert doc["endpoints"] == eps
    assert doc["clusters"] == ["sd-east", "sd-south"]
    row = running.wide_table()["shop"]
    assert row["CLUSTERS"] == "sd-east,sd-south"
    assert row["SD-EAST"].split(",") == both["sd-east"]
    assert row["SD-SOUTH"].split(",") == both["sd-south"]
    # The DNS follows the same slices through its own watch: agreement is eventual.
    wait_for_sync(lambda: srv_ports(running) == sorted(e["port"] for e in eps if e["ready"]),
                  10, what="SRV answers with the import's ports")
    wait_for_sync(lambda: sorted(running.dig(f"shop.{NS}.svc.clusterset.local").data())
                  == ["127.0.251.1", "127.0.252.1"], 10, what="A answers of both clusters")

    # The endpoint is authenticated like every call, and names what is missing.
    anonymous = httpx.get(f"{api.server}{SI_PATH}/shop/endpoints", timeout=5,
                          verify=api.verify)
    assert anonymous.status_code == 401
    missing = api.client.get(f"{SI_PATH}/nothing/endpoints")
    assert missing.status_code == 404
    assert "nothing" in missing.json()["message"]

    killed_at = time.monotonic()
    running.cli("chaos", "kill-cluster", "sd-east")
    wait_for_sync(lambda: ready_by_cluster(import_endpoints(api)).keys() == {"sd-south"},
                  GRACE + 10, what="sd-east's endpoints to leave the ServiceImport")
    print(f"sd-east left the ServiceImport {time.monotonic() - killed_at:.2f}s after kill")
    assert {e["cluster"] for e in import_endpoints(api)} == {"sd-south"}
    south = ready_by_cluster(import_endpoints(api))["sd-south"]
    # sd-east still exports (its Work stays until failover moves the placement, and
    # then its column goes): either way the table offers nothing there.
    wait_for_sync(lambda: running.wide_table()["shop"].get("SD-EAST", "<none>") == "<none>",
                  10, what="the wide table to show no endpoint for sd-east")
    assert running.wide_table()["shop"]["SD-SOUTH"].split(",") == south
    wait_for_sync(lambda: running.dig(f"shop.{NS}.svc.clusterset.local").data()
                  == ["127.0.252.1"], 10, what="the DNS to drop sd-east")
    wait_for_sync(lambda: srv_ports(running) == sorted(int(a.rsplit(":", 1)[1])
                                                       for a in south),
                  10, what="SRV answers of sd-south only")


def test_port_conflict_missing_service_and_unexport(
    up_conflict: tuple[DiscoveryUp, Api],
) -> None:
    running, api = up_conflict
    running.apply(shop_manifests(["sc-east", "sc-south"]))
    wait_for_sync(lambda: ready_by_cluster(import_endpoints(api)).keys()
                  == {"sc-east", "sc-south"}, 60, what="both clusters in the ServiceImport")

    # sc-south's copy of the Service gets another port: the oldest export (sc-east,
    # whose Work the renderer created first) keeps its ports, sc-south is reported and
    # none of its endpoints is offered for a port its Service does not declare.
    running.apply([{
        "apiVersion": "policy.flotilla.io/v1alpha1", "kind": "OverridePolicy",
        "metadata": {"name": "shop-port", "namespace": NS},
        "spec": {"resourceSelectors": [{"apiVersion": "v1", "kind": "Service", "name": "shop"}],
                 "overrideRules": [{
                     "targetCluster": {"clusterNames": ["sc-south"]},
                     "overriders": {"plaintext": [{"path": "/spec/ports/0/port",
                                                   "operator": "replace", "value": 8001}]}}]},
    }])
    conflict = wait_for_sync(lambda: condition_is(api, "shop", "Conflict", "True"), 30,
                             what="a Conflict condition on the ServiceExport")
    assert conflict[1] == "PortConflict"
    assert "sc-south has http:8001/TCP" in conflict[2]
    si = get_json(api, f"{SI_PATH}/shop")
    assert si is not None
    assert si["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8000}]
    assert ready_by_cluster(si["status"]["endpoints"]).keys() == {"sc-east"}
    wait_for_sync(lambda: any(
        e["reason"] == "PortConflict" and e["involvedObject"]["kind"] == "ServiceExport"
        for e in (get_json(api, f"/api/v1/namespaces/{NS}/events") or {"items": []})["items"]),
        10, what="a PortConflict Event about the ServiceExport")
    assert running.cli("get", "serviceexports").stdout.split("\n")[1].split()[1:3] == \
        ["True", "True"]

    # Back to one shape: the conflict clears and sc-south's endpoints return.
    running.cli("delete", "overridepolicy", "shop-port")
    wait_for_sync(lambda: condition_is(api, "shop", "Conflict", "False"), 30,
                  what="the conflict to clear")
    wait_for_sync(lambda: ready_by_cluster(import_endpoints(api)).keys()
                  == {"sc-east", "sc-south"}, 30, what="sc-south back in the import")

    # Exporting a Service that does not exist says so, and imports nothing.
    running.apply([{"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                    "metadata": {"name": "ghost", "namespace": NS}}])
    valid = wait_for_sync(lambda: condition_is(api, "ghost", "Valid", "False"), 20,
                          what="Valid=False on the ghost export")
    assert valid[1] == "NoService"
    assert get_json(api, f"{SI_PATH}/ghost") is None
    # ...until the Service appears: placed nowhere yet, the import describes its template.
    running.apply([{"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "ghost", "namespace": NS},
                    "spec": {"selector": {"app": "ghost"}, "clusterIP": "None",
                             "ports": [{"name": "grpc", "port": 9000}]}}])
    ghost = wait_for_sync(lambda: get_json(api, f"{SI_PATH}/ghost"), 20,
                          what="the ghost import once its Service exists")
    assert ghost["spec"]["type"] == "Headless"
    assert ghost["spec"]["ports"] == [{"name": "grpc", "protocol": "TCP", "port": 9000}]
    assert condition_is(api, "ghost", "Valid", "True")

    # Removing the export removes the import.
    running.cli("delete", "serviceexport", "shop")
    wait_for_sync(lambda: get_json(api, f"{SI_PATH}/shop") is None, 20,
                  what="the ServiceImport to go with its export")
