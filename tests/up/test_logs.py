"""`flotilla logs deploy/shop` across clusters, against a real `flotilla up --demo`:
lines from the pods of every cluster, each prefixed [cluster/pod]; with -f, a pod
created after the command started joins the stream."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for_sync
from tests.up.harness import FLOTILLA, Api, UpProcess, wait_gone

pytestmark = pytest.mark.slow
CLUSTERS = [
    {"name": "l-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.231.1",
     "nodes": 2},
    {"name": "l-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.232.1", "nodes": 2},
    {"name": "l-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": "127.0.233.1", "labels": {"flotilla.io/burst": "true"}, "nodes": 2},
]
LINE = re.compile(r"^\[(?P<cluster>[a-z0-9-]+)/(?P<pod>[a-z0-9-]+)\] (?P<text>.*)$")
DEPLOY = "/apis/apps/v1/namespaces/default/deployments/shop"
FHPA = "/apis/autoscaling.karmada.io/v1alpha1/namespaces/default/federatedhpas/shop"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder: Path = tmp_path_factory.mktemp("logs")
    running = UpProcess(folder, CLUSTERS, gateway=f"127.0.0.1:{free_port()}",
                        extra=("--demo",))
    try:
        api = running.wait_up(90)
        wait_for_sync(lambda: _ready_replicas(api) == 6, 60, 0.2, what="6 shop pods ready")
        yield running, api
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop()
        left = wait_gone(lambda: running.leftovers(pgids))
        assert not left, f"processes left behind after SIGTERM: {left}"
        assert code == 0, running.output()


def _ready_replicas(api: Api) -> int:
    r = api.client.get(DEPLOY)
    return int((r.json().get("status") or {}).get("readyReplicas") or 0) \
        if r.status_code == 200 else -1


def test_logs_of_a_deployment_come_from_every_cluster(up: tuple[UpProcess, Api]) -> None:
    running, _api = up
    out = running.cli("logs", "deploy/shop", "--all-clusters").stdout
    lines = [LINE.match(line) for line in out.splitlines()]
    assert lines, out
    assert all(lines), out  # every line carries its [cluster/pod] prefix
    assert {m["cluster"] for m in lines if m} == {c["name"] for c in CLUSTERS}, out
    assert all("serving on" in m["text"] for m in lines if m), out
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    one = running.cli("logs", "deploy/shop", "--cluster", "l-east", "--tail", "1").stdout
    assert {m["cluster"] for m in map(LINE.match, one.splitlines()) if m} == {"l-east"}


def test_bad_target_and_unknown_container_are_clear_errors(up: tuple[UpProcess, Api]) -> None:
    running, _api = up
    bad = running.cli("logs", "service/shop", check=False)
    assert bad.returncode == 2
    assert "deploy/NAME" in bad.stderr
    none = running.cli("logs", "deploy/shop", "-c", "nope", check=False)
    assert none.returncode != 0
    assert "no pods of Deployment/shop" in none.stderr


def test_follow_picks_up_a_pod_created_after_it_started(up: tuple[UpProcess, Api]) -> None:
    running, api = up
    proc = subprocess.Popen([*FLOTILLA, "logs", "deploy/shop", "-f"], cwd=running.folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []],
                              daemon=True)
    reader.start()
    seen: dict[str, str] = {}

    def drain() -> dict[str, str]:
        while True:
            try:
                m = LINE.match(lines.get_nowait().rstrip("\n"))
            except queue.Empty:
                return seen
            if m:
                seen[m["pod"]] = m["cluster"]

    try:
        wait_for_sync(lambda: len(set(drain().values())) == 3, 30, 0.1,
                      what="lines from the three clusters")
        before = set(seen)
        # the demo's FederatedHPA owns the shop's replicas (it would undo a scale of the
        # Deployment): new pods come from raising its minimum
        r = api.client.patch(FHPA, content=json.dumps({"spec": {"minReplicas": 9}}),
                             headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        new = wait_for_sync(lambda: set(drain()) - before, 60, 0.1,
                            what="a line from a pod created after -f started")
        assert all(seen[p] in {c["name"] for c in CLUSTERS} for p in new)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
