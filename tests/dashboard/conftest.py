"""A real `flotilla up` (three clusters, a gateway with its /metrics, the shop app under a
RolloutPolicy) and Debian's headless Chromium driven by Playwright, for the dashboard's
browser tests.

Chromium is /usr/bin/chromium (``apt-get install chromium``, scripts/test.sh does it);
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import sync_playwright

from tests.helpers import free_port
from tests.rollout.harness import HOST, Load, deployment, rollout_policy
from tests.up.harness import Api, UpProcess, wait_gone

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Seconds without a heartbeat before a cluster is Unknown: short, the test waits 5 s.
GRACE = 2.0
CLUSTERS = [
    {"name": "d-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.181.1",
     "nodes": 2},
    {"name": "d-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.182.1", "nodes": 1},
    {"name": "d-west", "region": "cn-west", "zone": "cn-west-a", "address": "127.0.183.1",
     "nodes": 1},
]
NAMES = [c["name"] for c in CLUSTERS]
REPLICAS = 3


def shop(version: str) -> dict[str, Any]:
    obj = deployment(version)
    obj["spec"]["replicas"] = REPLICAS
    return obj


def app_objects(version: str) -> list[dict[str, Any]]:
    """The shop at ``version``: one replica per cluster (divided, equal weights), one
    global name through the gateway, a canary wave then the rest."""
    return [
        shop(version),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"selector": {"app": "shop"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"resourceSelectors": [
             {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
             {"apiVersion": "v1", "kind": "Service", "name": "shop"}],
             "placement": {"clusterAffinity": {"clusterNames": NAMES},
                           "replicaScheduling": {
                               "replicaSchedulingType": "Divided",
                               "replicaDivisionPreference": "Weighted",
                               "weightPreference": {"staticWeightList": [
                                   {"targetCluster": {"clusterNames": NAMES},
                                    "weight": 1}]}}}}},
        {"apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
         "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"service": "shop", "hosts": [HOST], "strategy": {"type": "RoundRobin"},
                  "healthCheck": {"path": "/healthz", "interval": "1s", "timeout": "500ms",
                                  "healthyThreshold": 1, "unhealthyThreshold": 1},
                  "retries": {"attempts": 3, "retryOn": ["connect-failure", "reset", "503"]},
                  "timeouts": {"connect": "300ms", "perTry": "2s", "total": "4s"}}},
        rollout_policy(pause="5s", ready_timeout="60s",
                       waves=[{"clusters": [NAMES[0]]}, {"percent": 100}]),
    ]


@dataclass
class Platform:
    up: UpProcess
    api: Api
    gateway: str

    def apply(self, objects: list[dict[str, Any]], name: str) -> None:
        path = self.up.folder / name
        path.write_text(yaml.safe_dump_all(objects))
        self.up.cli("apply", "-f", str(path))

    def signed_in_url(self) -> str:
        """What `flotilla dashboard --print-url` prints in the `up` folder."""
        out = self.up.cli("dashboard", "--print-url")
        assert "holds your token" in out.stderr
        lines = out.stdout.strip().splitlines()
        assert len(lines) == 1, out.stdout
        return lines[0]

    def load(self, limit: float) -> Load:
        return Load(f"http://{self.gateway}/", rate=20.0, limit=limit).start()


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of each page; the path is printed (pytest -s, or the -ra summary)."""
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\ndashboard screenshots: {folder}", file=sys.stderr)
    return folder


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("dashboard-up")
    gateway = f"127.0.180.1:{free_port('127.0.180.1')}"
    admin = f"127.0.180.1:{free_port('127.0.180.1')}"
    running = UpProcess(folder, CLUSTERS, grace=GRACE, gateway=gateway, gateway_admin=admin)
    try:
        api = running.wait_up()
        plat = Platform(running, api, gateway)
        plat.apply(app_objects("v1"), "shop-v1.yaml")
        yield plat
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        running.stop()
        left = wait_gone(lambda: running.leftovers(pgids))
        assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def save_readme_image(shot: Path, name: str) -> None:
    """With UPDATE_DOCS_IMG=1, copy ``shot`` to docs/img/ (how the README's
    picture is refreshed); otherwise the repository is not touched."""
    if os.environ.get("UPDATE_DOCS_IMG") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "img" / name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, target)
