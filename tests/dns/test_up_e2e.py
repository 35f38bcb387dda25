"""The whole path with real parts: `flotilla up` (server, two agents, local-runtime pods),
`flotilla dns` as its own process, `dig` — and `flotilla chaos kill-cluster`.

Slow (several processes): SRV answers carry the ports the local runtime assigned, and a
killed cluster leaves the DNS answers within its health detection time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.resources.naming import endpoint_slice_name
from tests.dns.conftest import DIG, DigAnswer, needs_dig, parse_dig
from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess, wait_gone, work_manifest

pytestmark = [pytest.mark.slow, needs_dig]
_SERVING = re.compile(r"serving global\.test and clusterset\.local on 127\.0\.0\.1:(\d+)")
GRACE = 3.0
CLUSTERS = [
    {"name": "d-east", "region": "cn-east", "zone": "cn-east-a", "address": "127.0.231.1",
     "nodes": 1},
    {"name": "d-south", "region": "cn-south", "zone": "cn-south-a",
     "address": "127.0.232.1", "nodes": 1},
]


def dig_sync(port: int, *args: str) -> DigAnswer:
    assert DIG is not None
    out = subprocess.run([DIG, "@127.0.0.1", "-p", str(port), "+norec", "+tries=1",
                          "+time=2", *args], capture_output=True, text=True, timeout=20)
    answers = parse_dig(out.stdout)
    return answers[0] if answers else DigAnswer(status="NO-ANSWER")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[UpProcess, Api]]:
    running = UpProcess(tmp_path, CLUSTERS, grace=GRACE)
    try:
        yield running, running.wait_up()
    finally:
        pgids = running.pgids() if (running.data_dir / "up.json").exists() else set()
        running.stop()
        assert not wait_gone(lambda: running.leftovers(pgids))


@pytest.fixture
def dns_port(up: tuple[UpProcess, Api], tmp_path: Path) -> Iterator[int]:
    _, api = up
    log_path = tmp_path / "dns.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flotilla", "dns", "--server", api.server, "--token", api.token,
         "--listen", "127.0.0.1:0", "--zone", "global.test", "-v", "--ca-file", str(api.ca)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def bound_port() -> int | None:
        assert proc.poll() is None, log_path.read_text()
        m = _SERVING.search(log_path.read_text())
        return int(m.group(1)) if m else None

    try:
        found = wait_for_sync(bound_port, 20, what="flotilla dns listening")
        assert found is not None
        port = found
        wait_for_sync(lambda: dig_sync(port, "global.test", "SOA").status == "NOERROR",
                      20, what="flotilla dns answering")
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def _post(api: Api, path: str, obj: dict[str, Any]) -> None:
    r = api.client.post(path, json=obj)
    assert r.status_code == 201, r.text


def _endpoint_ports(api: Api, cluster: str) -> list[int]:
    r = api.client.get("/apis/discovery.flotilla.io/v1alpha1/namespaces/default/"
                       f"endpointslices/{endpoint_slice_name('shop', cluster)}")
    if r.status_code != 200:
        return []
    return sorted(p["port"] for ep in r.json()["spec"]["endpoints"] if ep["ready"]
                  for p in ep["ports"] if p["name"] == "http")


def test_srv_ports_and_kill_cluster_leaves_the_answers(
    up: tuple[UpProcess, Api], dns_port: int,
) -> None:
    running, api = up
    for cluster in ("d-east", "d-south"):
        api.apply_work(work_manifest(cluster, 1))
    _post(api, "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/trafficpolicies", {
        "apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"service": "shop", "hosts": ["shop.global.test"]}})
    _post(api, "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/default/serviceexports", {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
        "metadata": {"name": "shop", "namespace": "default"}})

    both = ["127.0.231.1", "127.0.232.1"]
    wait_for_sync(lambda: sorted(dig_sync(dns_port, "shop.global.test").data()) == both,
                  60, what="both clusters answered once their pods are ready")

    ports = _endpoint_ports(api, "d-east") + _endpoint_ports(api, "d-south")
    srv = dig_sync(dns_port, "_http._tcp.shop.default.svc.clusterset.local", "SRV")
    assert sorted(int(d.split()[2]) for d in srv.data("SRV")) == sorted(ports)
    assert len(ports) == 2

    killed_at = time.monotonic()
    running.cli("chaos", "kill-cluster", "d-east")
    wait_for_sync(lambda: dig_sync(dns_port, "shop.global.test").data() == ["127.0.232.1"],
                  GRACE + 10, what="d-east to leave the answers")
    took = time.monotonic() - killed_at
    print(f"d-east left the DNS answers {took:.2f}s after kill-cluster")
    # Detection is the control plane's grace period; the DNS adds one watch event.
    assert took <= GRACE + 3.0, f"d-east left the answers after {took:.1f}s"
