"""`flotilla up` end to end: three local clusters, heartbeats, chaos, a clean stop.

These start real processes (server, agents, pods) and read the real process table.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.resources.naming import endpoint_slice_name
from flotilla.up.supervisor import pid_alive
from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess, app_processes, wait_gone, work_manifest

pytestmark = pytest.mark.slow
GRACE = 3.0
CLUSTERS = [
    {"name": "t-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.211.1",
     "nodes": 2},
    {"name": "t-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.212.1", "nodes": 2},
    {"name": "t-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": "127.0.213.1", "labels": {"flotilla.io/burst": "true"}, "nodes": 2},
]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("up")
    running = UpProcess(folder, CLUSTERS, grace=GRACE)
    try:
        api = running.wait_up()
        yield running, api
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop()
        left = wait_gone(lambda: running.leftovers(pgids))
        assert not left, f"processes left behind after SIGTERM: {left}"
        assert code == 0, running.output()


def test_clusters_register_with_their_place_and_capacity(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    east = wait_for_sync(
        lambda: (c := api.cluster("t-east")) and "nodeSummary" in c["status"] and c, 10,
        what="capacity report")
    assert east["spec"]["region"] == "cn-east"
    assert east["spec"]["ingressAddress"] == "127.0.211.1"
    assert east["status"]["nodeSummary"] == {"total": 2, "ready": 2}
    assert east["status"]["capacity"]["pods"] == 2 * 110
    burst = api.cluster("t-burst")
    assert burst is not None
    assert burst["metadata"]["labels"]["flotilla.io/burst"] == "true"
    table = running.cli("get", "clusters").stdout
    assert all(name in table for name in ("t-east", "t-south", "t-burst"))


def test_a_work_runs_as_processes_and_reports_status_and_endpoints(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    api.apply_work(work_manifest("t-south", 2))
    wait_for_sync(lambda: api.work_ready("t-south") == 2, 30, what="2 ready replicas")
    assert len(app_processes("t-south")) == 2
    r = api.client.get("/apis/discovery.flotilla.io/v1alpha1/namespaces/default/"
                       f"endpointslices/{endpoint_slice_name('shop', 't-south')}")
    assert r.status_code == 200
    endpoints = r.json()["spec"]["endpoints"]
    assert len(endpoints) == 2
    assert all(e["ready"] for e in endpoints)
    pods = running.cli("get", "pods", "--cluster", "t-south").stdout
    assert pods.count("Running") == 2


def test_kill_cluster_goes_unknown_within_grace_and_revives_without_duplicates(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    api.apply_work(work_manifest("t-east", 2))
    wait_for_sync(lambda: api.work_ready("t-east") == 2, 30, what="2 ready replicas")
    before = app_processes("t-east")
    assert len(before) == 2

    # Signal the group directly so the clock starts at the kill itself, not at the CLI's
    # start-up; the CLI's kill-cluster is the same killpg (used in the next tests).
    pgid = next(int(c["pgid"]) for c in running.state()["clusters"] if c["name"] == "t-east")
    killed_at = time.monotonic()
    os.killpg(pgid, signal.SIGKILL)
    wait_for_sync(lambda: api.ready("t-east") == "Unknown" and
                  "cluster.flotilla.io/unreachable" in api.taint_keys("t-east"), GRACE + 5,
                  what="t-east Ready=Unknown with the unreachable taint")
    took = time.monotonic() - killed_at
    assert took <= GRACE + 1.0, f"unreachable detected after {took:.2f}s"
    assert app_processes("t-east") == [], "pods must die with their cluster"
    # The others are unaffected.
    assert api.ready("t-south") == "True"

    running.cli("chaos", "revive-cluster", "t-east")
    wait_for_sync(lambda: api.ready("t-east") == "True", 20, what="t-east Ready again")
    wait_for_sync(lambda: "cluster.flotilla.io/unreachable" not in api.taint_keys("t-east"),
                  10, what="unreachable taint removed")
    wait_for_sync(lambda: len(app_processes("t-east")) == 2 and
                  api.work_ready("t-east") == 2, 30, what="pods rebuilt")
    # Exactly the desired number of processes, none of them the old ones: no duplicate
    # and no orphan.
    time_limit = time.monotonic() + 2
    while time.monotonic() < time_limit:  # stays at 2 (bounded observation, not a sleep)
        assert len(app_processes("t-east")) == 2
    assert not set(app_processes("t-east")) & set(before)
    events = running.cli("events", "-A").stdout
    assert "ClusterStatusUnknown" in events
    assert "ClusterReady" in events


def test_pause_cluster_is_a_hang_and_resume_brings_it_back(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    running.cli("chaos", "pause-cluster", "t-burst")
    try:
        wait_for_sync(lambda: api.ready("t-burst") == "Unknown", GRACE + 5,
                      what="paused cluster Unknown")
        assert "paused" in running.cli("status").stdout
    finally:
        running.cli("chaos", "resume-cluster", "t-burst")
    wait_for_sync(lambda: api.ready("t-burst") == "True", 20, what="resumed cluster Ready")


def test_cordon_and_taint_from_the_cli(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    running.cli("cluster", "cordon", "t-south")
    assert (api.cluster("t-south") or {})["spec"]["unschedulable"] is True
    running.cli("cluster", "taint", "t-south", "maintenance=true:NoSchedule")
    assert "maintenance" in api.taint_keys("t-south")
    running.cli("cluster", "untaint", "t-south", "maintenance")
    running.cli("cluster", "uncordon", "t-south")
    assert "maintenance" not in api.taint_keys("t-south")
    assert (api.cluster("t-south") or {})["spec"]["unschedulable"] is False
    bad = running.cli("cluster", "taint", "t-south", "oops", check=False)
    assert bad.returncode == 2
    assert "KEY[=VALUE]:EFFECT" in bad.stderr


def test_agent_restart_adopts_its_pods(up: tuple[UpProcess, Api]) -> None:
    """SIGTERM to the agent alone (not its group): pods keep running; the next agent on
    the same state dir adopts them instead of starting duplicates."""
    running, api = up
    wait_for_sync(lambda: api.work_ready("t-south") == 2, 30, what="t-south pods")
    pods = app_processes("t-south")
    entry = next(c for c in running.state()["clusters"] if c["name"] == "t-south")
    os.kill(int(entry["pid"]), signal.SIGTERM)
    wait_for_sync(lambda: not pid_alive(int(entry["pid"])), 15, what="agent exit")
    assert app_processes("t-south") == pods, "pods must survive an agent restart"
    running.cli("chaos", "revive-cluster", "t-south")
    wait_for_sync(lambda: api.work_ready("t-south") == 2, 30, what="status after restart")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert app_processes("t-south") == pods
    # Killing the cluster still reaches the adopted pods in their old process group.
    running.cli("chaos", "kill-cluster", "t-south")
    wait_for_sync(lambda: app_processes("t-south") == [], 10, what="adopted pods killed")
    running.cli("chaos", "revive-cluster", "t-south")
    wait_for_sync(lambda: len(app_processes("t-south")) == 2 and
                  api.work_ready("t-south") == 2, 30, what="rebuilt after kill")


@pytest.mark.skipif(not os.path.exists("/usr/bin/kubectl"), reason="kubectl not installed")
def test_up_writes_an_owner_only_kubeconfig_that_kubectl_uses(
        up: tuple[UpProcess, Api], tmp_path: Path) -> None:
    running, _ = up
    path = running.data_dir / "kubeconfig"
    wait_for_sync(lambda: path.exists() and "export KUBECONFIG=" in running.output(), 30,
                  what="the kubeconfig and its export line")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    got = subprocess.run(["/usr/bin/kubectl", "get", "clusters", "-o", "name"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                              "HOME": str(tmp_path), "KUBECONFIG": str(path)})
    assert got.returncode == 0, got.stderr
    assert {"cluster.cluster.flotilla.io/t-east", "cluster.cluster.flotilla.io/t-south"} \
        <= set(got.stdout.split())
