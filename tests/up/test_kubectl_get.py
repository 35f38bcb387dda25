"""The real ``kubectl`` (1.32) reading a real ``flotilla up`` through the kubeconfig it
writes: server-side Table columns (READY/REGION/ZONE, the per-cluster ``-o wide`` ones),
``-A``, ``-l``, ``--show-labels``, ``-o yaml|json|jsonpath``, ``get -w``, ``wait``,
``delete -f``/``--wait`` and ``describe`` with its Events.

kubectl runs with HOME in the test's tmp folder (its discovery cache there) and the
kubeconfig ``flotilla up`` wrote (0600, in the up folder); every watch it runs is killed
once the expected line is read or a deadline passes.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for_sync
from tests.up.harness import SHOP_APP, Api, UpProcess, wait_gone

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")]
CLUSTERS = [
    {"name": "east-1", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.231.1",
     "nodes": 1},
    {"name": "west-1", "region": "cn-west", "zone": "cn-west-a", "address": "127.0.232.1",
     "nodes": 1},
]


def _shop() -> list[dict[str, Any]]:
    """A small shop: one replica per cluster, the real app as its pod."""
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "shop", "namespace": "default", "labels": {"app": "shop"}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                  "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {
                      "terminationGracePeriodSeconds": 2,
                      "containers": [{"name": "shop", "image": "flotilla/shop:v1",
                                      "command": [sys.executable, "-u", SHOP_APP],
                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "shop"}],
                  "placement": {
                      "clusterAffinity": {"clusterNames": ["east-1", "west-1"]},
                      "replicaScheduling": {
                          "replicaSchedulingType": "Divided",
                          "replicaDivisionPreference": "Weighted",
                          "weightPreference": {"staticWeightList": [
                              {"targetCluster": {"clusterNames": ["east-1"]}, "weight": 1},
                              {"targetCluster": {"clusterNames": ["west-1"]}, "weight": 1},
                          ]}}}}},
    ]


class Kubectl:
    def __init__(self, config: Path, home: Path) -> None:
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "KUBECONFIG": str(config)}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=self.env,
                              timeout=60, check=False)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def watch_until(self, args: list[str], pattern: str, act: Any,
                    timeout: float = 30.0) -> list[str]:
        """Run ``kubectl ARGS`` (a watch), call ``act()`` once its first line is out, and
        return its lines up to the first matching ``pattern``; killed either way."""
        proc = subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        acted = False
        try:
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    break
                seen.append(line)
                if not acted and len(seen) >= 2:  # the header and the first row
                    act()
                    acted = True
                elif acted and re.search(pattern, line):
                    return seen
        finally:
            proc.kill()
            proc.wait(timeout=10)
        stderr = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"no line matching {pattern!r} from kubectl {' '.join(args)}: "
                             f"{seen}; stderr: {stderr}")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api, Kubectl]]:
    folder: Path = tmp_path_factory.mktemp("kubectl-up")
    running = UpProcess(folder, CLUSTERS)
    try:
        api = running.wait_up()
        config = running.data_dir / "kubeconfig"
        wait_for_sync(lambda: config.exists(), 30, what="the kubeconfig of flotilla up")
        manifests = folder / "shop.yaml"
        manifests.write_text(yaml.safe_dump_all(_shop()))
        running.cli("apply", "-f", str(manifests))
        home = folder / "home"
        home.mkdir()
        yield running, api, Kubectl(config, home)
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        running.stop()
        wait_gone(lambda: running.leftovers(pgids))


def _rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]


def test_get_clusters_shows_ready_region_and_zone(up: tuple[UpProcess, Api, Kubectl]) -> None:
    _, _, kubectl = up
    rows = _rows(kubectl("get", "clusters").stdout)
    header = rows[0]
    assert header[:4] == ["NAME", "READY", "REGION", "ZONE"]
    east = next(r for r in rows if r[0] == "east-1")
    assert east[1:4] == ["True", "cn-east", "cn-east-a"]
    assert "AGE" in header
    assert "PROVIDER" not in header
    wide = _rows(kubectl("get", "clusters", "-o", "wide").stdout)[0]
    assert "PROVIDER" in wide
    assert "TAINTS" in wide


def test_get_deploy_wide_shows_the_per_cluster_columns(
        up: tuple[UpProcess, Api, Kubectl]) -> None:
    _, _, kubectl = up

    def placed() -> list[list[str]] | None:
        rows = _rows(kubectl("get", "deploy", "-o", "wide").stdout)
        return rows if {"EAST-1", "WEST-1"} <= set(rows[0]) else None
    rows = wait_for_sync(placed, 60, interval=0.5, what="the shop placed on both clusters")
    header, shop = rows[0], next(r for r in rows if r[0] == "shop")
    assert header[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert shop[header.index("EAST-1")].endswith("/1")
    assert shop[header.index("WEST-1")].endswith("/1")
    assert shop[header.index("CONTAINERS")] == "shop"
    assert "EAST-1" not in _rows(kubectl("get", "deploy").stdout)[0]


def test_all_namespaces_selectors_labels_and_output_formats(
        up: tuple[UpProcess, Api, Kubectl]) -> None:
    running, _, kubectl = up
    manifests = running.folder / "cms.yaml"
    manifests.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "paid", "namespace": "team-a", "labels": {"team": "pay"}},
         "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "free", "namespace": "team-b", "labels": {"team": "web"}}},
    ]))
    running.cli("apply", "-f", str(manifests))
    rows = _rows(kubectl("get", "cm", "-A").stdout)
    assert rows[0][:3] == ["NAMESPACE", "NAME", "DATA"]
    assert next(r for r in rows if r[1] == "paid")[:3] == ["team-a", "paid", "1"]
    assert any(r[:2] == ["team-b", "free"] for r in rows)
    selected = _rows(kubectl("get", "cm", "-A", "-l", "team=pay", "--show-labels").stdout)
    assert [r[1] for r in selected[1:]] == ["paid"]
    assert selected[0][-1] == "LABELS"
    assert selected[1][-1] == "team=pay"
    as_yaml = yaml.safe_load(kubectl("get", "cm", "paid", "-n", "team-a", "-o", "yaml").stdout)
    assert as_yaml["data"] == {"k": "v"}
    listed = json.loads(kubectl("get", "cm", "-n", "team-a", "-o", "json").stdout)
    assert listed["kind"] == "List"
    assert listed["items"][0]["metadata"]["name"] == "paid"
    path = kubectl("get", "clusters", "-o", "jsonpath={.items[*].spec.region}").stdout
    assert sorted(path.split()) == ["cn-east", "cn-west"]
    named = kubectl("get", "cm", "-n", "team-a", "--field-selector", "metadata.name=paid",
                    "-o", "name").stdout.split()
    assert named == ["configmap/paid"]


def test_get_watch_sees_a_change_made_by_flotilla_apply(
        up: tuple[UpProcess, Api, Kubectl]) -> None:
    running, _, kubectl = up
    path = running.folder / "watched.yaml"

    def write(data: dict[str, str]) -> None:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "watched", "namespace": "kw"}, "data": data}))
        running.cli("apply", "-f", str(path))
    write({"a": "1"})
    seen = kubectl.watch_until(["get", "cm", "-n", "kw", "-w"], r"^watched\s+2\s",
                               lambda: write({"a": "1", "b": "2"}))
    assert seen[0].split()[:3] == ["NAME", "DATA", "AGE"]
    assert re.match(r"^watched\s+1\s", seen[1])


def test_wait_for_the_ready_condition(up: tuple[UpProcess, Api, Kubectl]) -> None:
    _, _, kubectl = up
    done = kubectl("wait", "--for=condition=Ready", "cluster/east-1", "--timeout", "30s")
    assert "cluster.cluster.flotilla.io/east-1 condition met" in done.stdout


def test_delete_from_a_file_and_with_wait(up: tuple[UpProcess, Api, Kubectl]) -> None:
    running, api, kubectl = up
    path = running.folder / "doomed.yaml"
    path.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"doomed-{i}", "namespace": "kd"}} for i in range(2)]))
    running.cli("apply", "-f", str(path))
    gone = kubectl("delete", "-f", str(path)).stdout
    assert 'configmap "doomed-0" deleted' in gone
    assert 'configmap "doomed-1" deleted' in gone
    assert api.client.get("/api/v1/namespaces/kd/configmaps/doomed-0").status_code == 404
    running.cli("apply", "-f", str(path))
    waited = kubectl("delete", "cm", "doomed-1", "-n", "kd", "--wait", "--timeout", "30s")
    assert 'configmap "doomed-1" deleted' in waited.stdout
    assert api.client.get("/api/v1/namespaces/kd/configmaps/doomed-1").status_code == 404


def test_describe_deploy_shows_its_events(up: tuple[UpProcess, Api, Kubectl]) -> None:
    _, api, kubectl = up
    # Events about other objects in the namespace, and about a predecessor named shop:
    # describe asks for its own with a fieldSelector on involvedObject, uid included.
    for name, about, uid in (("cart.1", "cart", "u-cart"), ("shop.old", "shop", "u-old")):
        r = api.client.post("/api/v1/namespaces/default/events", json={
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": about, "namespace": "default", "uid": uid},
            "type": "Normal", "reason": f"NotAbout{about.title()}", "message": "elsewhere"})
        assert r.status_code == 201, r.text

    def described() -> str | None:
        out = kubectl("describe", "deploy", "shop").stdout
        return out if "PolicyApplied" in out else None
    out = wait_for_sync(described, 60, interval=0.5,
                        what="describe showing the PolicyApplied event")
    assert re.search(r"^Name:\s+shop$", out, re.M)
    events = out[out.index("Events:"):]
    assert "propagated by PropagationPolicy shop" in events
    assert "NotAbout" not in events
