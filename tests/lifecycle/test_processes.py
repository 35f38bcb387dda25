"""Real processes on the one lifecycle: SIGTERM stops each promptly with exit 0 and
nothing left behind; a cluster name has one live agent; slice names never collide."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.agent.heartbeat import holder_process
from flotilla.pki import PkiLayout
from tests.helpers import agent_tls_args, free_port, wait_for_sync
from tests.up.harness import FLOTILLA, Api, app_processes, proc_table, work_manifest

pytestmark = pytest.mark.slow
LEASES = "/apis/coordination.flotilla.io/v1alpha1/namespaces/flotilla-system/leases"
SLICES = "/apis/discovery.flotilla.io/v1alpha1/namespaces/default/endpointslices"
#: How long a stopped process may take: generous for a loaded 2-core machine.
STOP_WITHIN = 15.0


class Procs:
    """Every process a test starts, each in its own process group; all are killed at
    the end, whatever happened."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([*FLOTILLA, *args], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=self.folder)
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.kill_all()


def start_server(procs: Procs) -> tuple[subprocess.Popen[bytes], Api]:
    port = free_port()
    proc = procs.start("server", "server", "--data-dir", str(procs.folder / "data"),
                       "--listen", f"127.0.0.1:{port}", "--cluster-grace-period", "2")
    token = wait_for_sync(lambda: _token(procs.log("server")), 20, what="admin token")
    api = Api(f"https://127.0.0.1:{port}", token, PkiLayout(procs.folder / "data").ca_cert)
    wait_for_sync(lambda: _answers(api, "/readyz"), 20, what="server ready")
    return proc, api


def _token(log: str) -> str | None:
    match = re.search(r"Admin token[^:]*: (\S+)", log)
    return match.group(1) if match else None


def _answers(api: Api, path: str) -> bool:
    try:
        return api.client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


def start_agent(procs: Procs, api: Api, cluster: str, address: str,
                log: str | None = None) -> subprocess.Popen[bytes]:
    return procs.start(
        log or f"agent-{cluster}", "agent", "--server", api.server, "--token", api.token,
        "--cluster", cluster, "--region", "r1", "--zone", "r1-a", "--address", address,
        "--nodes", "1", "--state-dir", str(procs.folder / f"state-{log or cluster}"),
        "--heartbeat-interval", "0.3", "-v",
        *agent_tls_args(procs.folder / "data", cluster, address))


def lease(api: Api, cluster: str) -> dict[str, Any]:
    r = api.client.get(f"{LEASES}/{cluster}")
    return r.json() if r.status_code == 200 else {}


def holder(api: Api, cluster: str) -> str:
    return str((lease(api, cluster).get("spec") or {}).get("holderIdentity") or "")


def renew_time(api: Api, cluster: str) -> str:
    return str((lease(api, cluster).get("spec") or {}).get("renewTime") or "")


def pid_of(holder_identity: str) -> int | None:
    where = holder_process(holder_identity)
    return where[1] if where else None


def group_left(pgid: int) -> list[str]:
    """Processes still alive in process group ``pgid`` (zombies do not count)."""
    return [cmd for _pid, group, state, cmd in proc_table() if group == pgid and state != "Z"]


def sigterm_and_wait(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(STOP_WITHIN)
    return code, time.monotonic() - started


def tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_server_agent_gateway_and_dns_with_exit_0(procs: Procs) -> None:
    server, api = start_server(procs)
    agent = start_agent(procs, api, "lc-one", "127.0.191.1")
    wait_for_sync(lambda: api.ready("lc-one") == "True", 30, what="the agent's cluster Ready")
    gw_port, gw_admin = free_port(), free_port()
    gateway = procs.start("gateway", "gateway", "--server", api.server, "--token", api.token,
                          "--ca-file", str(api.ca), "--listen", f"127.0.0.1:{gw_port}",
                          "--admin-listen", f"127.0.0.1:{gw_admin}", "--workers", "2")
    dns_port = free_port()
    dns = procs.start("dns", "dns", "--server", api.server, "--token", api.token,
                      "--ca-file", str(api.ca), "--listen", f"127.0.0.1:{dns_port}",
                      "--zone", "lc.test")
    wait_for_sync(lambda: tcp_open(gw_port) and tcp_open(gw_admin), 20, what="gateway")
    wait_for_sync(lambda: tcp_open(dns_port), 20, what="dns")
    wait_for_sync(lambda: len(group_left(gateway.pid)) == 2, 20, what="two gateway workers")

    for name, proc in (("agent", agent), ("gateway", gateway), ("dns", dns),
                       ("server", server)):
        code, took = sigterm_and_wait(proc)
        log = procs.log("agent-lc-one" if name == "agent" else name)
        assert code == 0, f"{name} exited {code}:\n{log}"
        assert took < STOP_WITHIN
        wait_for_sync(lambda proc=proc: not group_left(proc.pid), 5,
                      what=f"nothing left of the {name}'s process group")
        if name == "agent":  # released on a clean stop: a successor need not wait
            assert lease(api, "lc-one")["spec"]["holderIdentity"] == ""


def test_a_second_agent_for_a_live_cluster_is_refused(procs: Procs) -> None:
    _server, api = start_server(procs)
    first = start_agent(procs, api, "lc-two", "127.0.192.1", log="first")
    wait_for_sync(lambda: api.ready("lc-two") == "True", 30, what="first agent's cluster")
    held_by = holder(api, "lc-two")
    assert pid_of(held_by) == first.pid

    second = start_agent(procs, api, "lc-two", "127.0.193.1", log="second")
    code = second.wait(STOP_WITHIN)
    out = procs.log("second")
    assert code != 0, out
    assert "cluster 'lc-two' is already served by a live agent" in out
    assert held_by in out
    # The first agent is untouched: still the holder, still renewing.
    before = renew_time(api, "lc-two")
    wait_for_sync(lambda: renew_time(api, "lc-two") != before, 10, what="first still renews")
    assert holder(api, "lc-two") == held_by
    assert first.poll() is None

    # A holder that stopped renewing (paused) is replaced after one lease duration, and
    # on waking up it finds the Lease taken and exits instead of fighting for it.
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        second = start_agent(procs, api, "lc-two", "127.0.193.1", log="replacement")
        wait_for_sync(lambda: pid_of(holder(api, "lc-two")) == second.pid, 20,
                      what="the replacement took the Lease of the paused agent")
        wait_for_sync(lambda: api.ready("lc-two") == "True", 30, what="Ready again")
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    code = first.wait(STOP_WITHIN)
    assert code != 0
    assert "cluster 'lc-two' was taken over by another agent" in procs.log("first")
    assert pid_of(holder(api, "lc-two")) == second.pid
    assert second.poll() is None

    # A crashed holder (its process is gone) does not block the next agent.
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(10)
    third = start_agent(procs, api, "lc-two", "127.0.193.1", log="third")
    wait_for_sync(lambda: pid_of(holder(api, "lc-two")) == third.pid, 15,
                  what="the restarted agent took the Lease over")
    wait_for_sync(lambda: api.ready("lc-two") == "True", 30, what="Ready again")
    assert third.poll() is None


def test_services_whose_old_slice_names_collided_are_both_routed(procs: Procs) -> None:
    """Service web in cluster a-b and web-a in cluster b were both ``web-a-b``."""
    _server, api = start_server(procs)
    start_agent(procs, api, "a-b", "127.0.194.1")
    start_agent(procs, api, "b", "127.0.195.1")
    for cluster in ("a-b", "b"):
        wait_for_sync(lambda c=cluster: api.ready(c) == "True", 30,
                      what=f"cluster {cluster} Ready")
    api.apply_work(work_manifest("a-b", 1, name="web"))
    api.apply_work(work_manifest("b", 1, name="web-a"))
    for service in ("web", "web-a"):
        r = api.client.post(
            "/apis/traffic.flotilla.io/v1alpha1/namespaces/default/trafficpolicies", json={
                "apiVersion": "traffic.flotilla.io/v1alpha1", "kind": "TrafficPolicy",
                "metadata": {"name": service, "namespace": "default"},
                "spec": {"service": service, "hosts": [f"{service}.lc.test"]}})
        assert r.status_code == 201, r.text
    gw_port, gw_admin = free_port(), free_port()
    procs.start("gateway", "gateway", "--server", api.server, "--token", api.token,
                "--ca-file", str(api.ca),
                "--listen", f"127.0.0.1:{gw_port}", "--admin-listen", f"127.0.0.1:{gw_admin}")

    def routed() -> dict[str, set[str]]:
        try:
            table = httpx.get(f"http://127.0.0.1:{gw_admin}/routes", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {bid: {e["cluster"] for e in b["endpoints"]}
                for bid, b in table["backends"].items() if b["endpoints"]}

    def both_routed() -> bool:
        clusters = routed().values()
        return {"a-b"} in clusters and {"b"} in clusters

    wait_for_sync(both_routed, 60, what="web (a-b) and web-a (b) both routed")
    slices = api.client.get(SLICES).json()["items"]
    owners = {(s["spec"]["service"], s["spec"]["cluster"]) for s in slices}
    assert owners == {("web", "a-b"), ("web-a", "b")}
    assert len({s["metadata"]["name"] for s in slices}) == 2
    for host in ("web.lc.test", "web-a.lc.test"):
        r = httpx.get(f"http://127.0.0.1:{gw_port}/", headers={"Host": host}, timeout=5)
        assert r.status_code == 200, (host, r.status_code, r.text)
    for cluster in ("a-b", "b"):
        assert len(app_processes(cluster)) == 1
