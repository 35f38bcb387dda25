"""What a user sees of member clusters: `get clusters` (-o wide) and `describe cluster`,
against a real `flotilla up` with two local clusters, a Work running one pod (250m CPU,
64Mi) on v-east, and an operator's cordon and taint on v-west.

Loopback addresses 127.0.221.x-127.0.222.x are this file's own (tests/up uses 211-213).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess, wait_gone, work_manifest

pytestmark = pytest.mark.slow
GRACE = 2.0
CLUSTERS = [
    {"name": "v-east", "region": "r-east", "zone": "r-east-a", "address": "127.0.221.1",
     "nodes": 2, "nodeCpu": "2", "nodeMemory": "4Gi"},
    {"name": "v-west", "region": "r-west", "zone": "r-west-b", "address": "127.0.222.1",
     "nodes": 1, "nodeCpu": "1", "nodeMemory": "512Mi"},
]


def _table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Rows of a `get` table by NAME, cells by header (cells contain no spaces here)."""
    lines = [line for line in text.splitlines() if line.strip()]
    headers = lines[0].split()
    return headers, {cells[0]: dict(zip(headers, cells, strict=True))
                     for cells in (line.split() for line in lines[1:])}


def _sized_work(cluster: str) -> dict[str, Any]:
    """The shop app, one replica, requesting 250m CPU and 64Mi: what CPU/MEMORY count."""
    work = copy.deepcopy(work_manifest(cluster, 1))
    deploy = work["spec"]["workload"]["manifests"][0]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "250m", "memory": "64Mi"}}
    return work


def _reported(api: Api, name: str) -> bool:
    return "nodeSummary" in ((api.cluster(name) or {}).get("status") or {})


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("views")
    running = UpProcess(folder, CLUSTERS, grace=GRACE)
    try:
        api = running.wait_up()
        for name in running.names:  # capacity comes with the agent's first status report
            wait_for_sync(partial(_reported, api, name), 20, what=f"{name} capacity")
        api.apply_work(_sized_work("v-east"))
        wait_for_sync(lambda: api.work_ready("v-east") == 1, 30, what="the shop pod ready")
        yield running, api
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop()
        assert not wait_gone(lambda: running.leftovers(pgids)), "processes left behind"
        assert code == 0, running.output()


def test_get_clusters_shows_place_health_capacity_and_workloads(
        up: tuple[UpProcess, Api]) -> None:
    running, _api = up

    def table() -> tuple[list[str], dict[str, dict[str, str]]] | None:
        out = _table(running.cli("get", "clusters").stdout)
        return out if out[1]["v-east"]["CPU"] == "250m/4" else None
    # The agent reports allocation on its own period, a moment after the pod is ready.
    shown = wait_for_sync(table, 15, interval=0.2, what="allocation reported")
    assert shown is not None
    headers, rows = shown
    assert headers == ["NAME", "READY", "REGION", "ZONE", "NODES", "CPU", "MEMORY",
                       "WORKLOADS", "AGE"]
    east, west = rows["v-east"], rows["v-west"]
    assert (east["READY"], east["REGION"], east["ZONE"]) == ("True", "r-east", "r-east-a")
    assert (east["NODES"], east["MEMORY"], east["WORKLOADS"]) == ("2/2", "64Mi/8Gi", "1")
    assert (west["NODES"], west["CPU"], west["MEMORY"], west["WORKLOADS"]) == \
        ("1/1", "0/1", "0/512Mi", "0")
    assert re.fullmatch(r"\d+[sm]", east["AGE"])
    named = _table(running.cli("get", "cluster", "v-west").stdout)[1]
    assert named["v-west"]["WORKLOADS"] == "0", "the one-namespace path counts too"


def test_cordon_and_taints_show_in_the_table_and_wide(up: tuple[UpProcess, Api]) -> None:
    running, _api = up
    running.cli("cluster", "cordon", "v-west")
    running.cli("cluster", "taint", "v-west", "maintenance=db:NoSchedule")
    try:
        _, rows = _table(running.cli("get", "clusters").stdout)
        assert rows["v-west"]["READY"] == "True,SchedulingDisabled"
        headers, wide = _table(running.cli("get", "clusters", "-o", "wide").stdout)
        assert headers[-5:] == ["PROVIDER", "RUNTIME", "INGRESS", "TAINTS", "TRAFFIC"]
        assert wide["v-west"]["TRAFFIC"] == "<none>"  # no gateway reports here
        assert wide["v-west"]["TAINTS"] == "maintenance:NoSchedule"
        assert wide["v-east"]["TAINTS"] == "<none>"
        assert wide["v-west"]["INGRESS"] == "127.0.222.1"
        described = running.cli("describe", "cluster", "v-west").stdout
        assert "Cordoned:     yes" in described
        assert "Taints:       maintenance=db:NoSchedule" in described
    finally:
        running.cli("cluster", "uncordon", "v-west")
        running.cli("cluster", "untaint", "v-west", "maintenance")


def test_describe_cluster_tells_spec_health_heartbeat_nodes_and_events(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    wait_for_sync(lambda: "250m" in running.cli("get", "clusters").stdout, 15,
                  interval=0.2, what="allocation reported")
    out = running.cli("describe", "cluster", "v-east").stdout
    assert out.startswith("Name:         v-east\n")
    for line in ("Region:       r-east", "Zone:         r-east-a",
                 "Ingress:      127.0.221.1", "Cordoned:     no", "Taints:       <none>",
                 "Nodes:        2/2 ready"):
        assert line in out, f"{line!r} missing in:\n{out}"
    endpoint = (api.cluster("v-east") or {})["spec"]["apiEndpoint"]
    assert f"API endpoint: {endpoint}" in out
    # The heartbeat is the Lease's renewTime, renewed every second by the agent.
    heartbeat = re.search(r"^Heartbeat:\s+(\S+) \((\d+)s ago\)$", out, re.M)
    assert heartbeat, out
    assert int(heartbeat[2]) <= 5, out
    ready = re.search(r"^\s+Ready\s+True\s+ClusterReady\s+\S+ \(\S+ ago\)", out, re.M)
    assert ready, out
    resources = re.findall(r"^\s+(cpu|memory|pods)\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert ("cpu", "4", "4", "250m") in resources, resources
    assert ("memory", "8Gi", "8Gi", "64Mi") in resources, resources
    # Live nodes from the agent: two nodes, one pod (the shop) on one of them.
    nodes = re.findall(r"^\s+(\S+)\s+(Ready|NotReady)\s+(\S+/2)\s+(\S+/4Gi)\s+(\d+)/\d+$",
                       out, re.M)
    assert len(nodes) == 2, out
    assert sum(int(n[4]) for n in nodes) == 1, out
    events = out.split("Events:", 1)[1]
    assert "ClusterReady" in events, out


def test_describe_a_paused_cluster_says_why_it_is_unknown(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    running.cli("chaos", "pause-cluster", "v-west")
    try:
        wait_for_sync(lambda: api.ready("v-west") == "Unknown", GRACE + 5,
                      what="v-west Ready=Unknown")
        out = running.cli("describe", "cluster", "v-west").stdout
    finally:
        running.cli("chaos", "resume-cluster", "v-west")
    assert re.search(r"^\s+Ready\s+Unknown\s+ClusterStatusUnknown\s", out, re.M), out
    assert "cluster.flotilla.io/unreachable:NoExecute" in out
    heartbeat = re.search(r"^Heartbeat:\s+\S+ \((\d+)s ago\)$", out, re.M)
    assert heartbeat, out
    assert int(heartbeat[1]) >= GRACE, "the last renewal is older than the grace period"
    assert "live nodes unavailable" in out, "a paused agent cannot list its nodes"
    assert "ClusterStatusUnknown" in out.split("Events:", 1)[1]
    wait_for_sync(lambda: api.ready("v-west") == "True", 15, what="v-west back")
