"""`flotilla up --prometheus` against the real Prometheus: it scrapes every process `up`
started (TLS to the API and the agents), the Grafana dashboard's queries all return
data, every documented metric is exported, and killing a cluster fires the
cluster-unreachable alert, which resolves once the cluster is revived."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.up.supervisor import pid_alive
from tests.helpers import free_port, wait_for_sync
from tests.up.harness import Api, UpProcess, wait_gone

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="Debian's prometheus is not installed "
    "(scripts/test.sh installs it)")]
ROOT = Path(__file__).resolve().parents[2]
GRACE = 3.0
CLUSTERS = [
    {"name": "p-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.221.1",
     "nodes": 2},
    {"name": "p-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.222.1", "nodes": 2},
    {"name": "p-burst", "region": "cn-south", "zone": "cn-south-b",
     "address": "127.0.223.1", "labels": {"flotilla.io/burst": "true"}, "nodes": 2},
]


class Prom:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=5.0)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/query", params={"query": expr})
        assert r.status_code == 200, r.text
        return list(r.json()["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.http.get("/api/v1/targets").json()["data"]["activeTargets"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        alerts = self.http.get("/api/v1/alerts").json()["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == name]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api, Prom]]:
    folder: Path = tmp_path_factory.mktemp("prom")
    gateway, gw_admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    dns, dns_admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    prometheus = f"127.0.0.1:{free_port()}"
    running = UpProcess(folder, CLUSTERS, grace=GRACE, gateway=gateway, dns=dns, extra=(
        "--gateway-admin-listen", gw_admin, "--dns-admin-listen", dns_admin, "--demo",
        "--prometheus", "--prometheus-listen", prometheus))
    try:
        api = running.wait_up(90)
        yield running, api, Prom(f"http://{prometheus}")
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        code = running.stop()
        left = wait_gone(lambda: running.leftovers(pgids))
        assert not left, f"processes left behind after SIGTERM: {left}"
        assert code == 0, running.output()


def _health(prom: Prom) -> dict[str, str]:
    return {t["scrapeUrl"]: t["health"] for t in prom.targets()}


def test_up_json_names_prometheus_and_every_process_is_scraped(
        up: tuple[UpProcess, Api, Prom]) -> None:
    running, _api, prom = up
    state = running.state()
    assert state["prometheus"]["url"] == str(prom.http.base_url).rstrip("/")
    assert pid_alive(int(state["prometheus"]["pid"]))

    def all_up() -> dict[str, str] | None:
        health = _health(prom)
        return health if len(health) == 6 and set(health.values()) == {"up"} else None

    health = wait_for_sync(all_up, 30, 0.2, what="3 agents, API, gateway and DNS up")
    urls = sorted(health)
    assert sum(u.startswith("https://127.0.22") for u in urls) == 3, urls  # agents, TLS
    assert f"{state['server']}/metrics" in urls  # the API server, over HTTPS with its CA
    assert f"http://{state['gateway']['admin']}/metrics" in urls
    assert f"http://{state['dns']['admin']}/metrics" in urls
    config = Path(state["prometheus"]["config"])
    assert "ca_file" in config.read_text()


def test_every_documented_metric_is_exported(up: tuple[UpProcess, Api, Prom]) -> None:
    _running, api, prom = up
    documented = set(re.findall(r"^\| `(flotilla_[a-z_]+)`",
                                (ROOT / "docs" / "metrics.md").read_text(), re.M))
    assert len(documented) > 40
    exported: set[str] = set()
    for url in _health(prom):
        text = httpx.get(url, verify=api.verify, timeout=5.0).text
        for family in text_string_to_metric_families(text):
            suffix = "_total" if family.type == "counter" else ""
            if not family.name.endswith("_created"):  # see docs/metrics.md
                exported.add(family.name + suffix)
    assert documented - exported == set(), "documented but not exported"
    assert {m for m in exported if m.startswith("flotilla_")} - documented == set(), \
        "exported but not in docs/metrics.md"


def test_every_grafana_panel_query_returns_data(up: tuple[UpProcess, Api, Prom]) -> None:
    running, _api, prom = up
    state = running.state()
    gateway = f"http://{state['gateway']['listen']}"
    host, port = state["dns"]["listen"].split(":")
    for _ in range(20):  # traffic for the gateway's panels, queries for the DNS's
        assert httpx.get(gateway, headers={"Host": "shop.example.test"},
                         timeout=5.0).status_code == 200
    for _ in range(3):
        subprocess.run(["dig", "+short", f"@{host}", "-p", port, "shop.example.test"],
                       capture_output=True, timeout=10, check=True)
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "flotilla.json").read_text())
    panels = {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"]}
    assert len(panels) >= 15
    # rates need two scrapes of the new traffic: wait (bounded) until none is empty
    left = wait_gone(lambda: [t for t, e in panels.items() if not prom.query(e)], 30.0)
    assert not left, f"panels whose query returns no data: {left}"


def test_killing_a_cluster_fires_unreachable_and_revive_resolves_it(
        up: tuple[UpProcess, Api, Prom]) -> None:
    running, api, prom = up
    wait_for_sync(lambda: len(_health(prom)) == 6 and "down" not in _health(prom).values(),
                  30, 0.2, what="every target up before the kill")
    assert prom.alerts("FlotillaClusterUnreachable") == []
    running.cli("chaos", "kill-cluster", "p-east", "--data-dir", str(running.data_dir))
    firing = wait_for_sync(
        lambda: [a for a in prom.alerts("FlotillaClusterUnreachable")
                 if a["state"] == "firing"], 30, 0.2, what="the alert firing")
    assert [a["labels"]["cluster"] for a in firing] == ["p-east"]
    assert firing[0]["labels"]["severity"] == "critical"
    running.cli("chaos", "revive-cluster", "p-east", "--data-dir", str(running.data_dir))
    wait_for_sync(lambda: api.ready("p-east") == "True", 30, what="p-east Ready again")
    wait_for_sync(lambda: prom.alerts("FlotillaClusterUnreachable") == [], 30, 0.2,
                  what="the alert resolved")
    # the revived agent listens on a new port: the targets followed the Cluster
    endpoint = (api.cluster("p-east") or {})["spec"]["apiEndpoint"]
    wait_for_sync(lambda: _health(prom).get(f"{endpoint}/metrics") == "up", 30, 0.2,
                  what="the revived agent scraped")
