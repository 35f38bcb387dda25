"""The agent outlives its control plane: a server killed with SIGKILL and restarted on
the same data dir finds the cluster Ready again, and Works keep flowing, while the pods
that were running never stopped (static stability)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.pki import PkiLayout
from tests.helpers import agent_tls_args, free_port, wait_for_sync
from tests.up.harness import FLOTILLA, Api, app_processes, work_manifest

pytestmark = pytest.mark.slow
CLUSTER = "reconnect-1"


class Server:
    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.argv = [*FLOTILLA, "server", "--data-dir", str(data_dir),
                     "--listen", f"127.0.0.1:{port}", "--cluster-grace-period", "3"]
        self.log = log
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self.proc

    def token(self) -> str:
        match = re.search(r"Admin token[^:]*: (\S+)", self.log.read_text())
        assert match, self.log.read_text()
        return match.group(1)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[Server, subprocess.Popen[bytes], Api]]:
    port = free_port()
    server = Server(tmp_path / "data", port, tmp_path / "server.log")
    token = wait_for_sync(lambda: "Admin token" in server.log.read_text() and server.token(),
                          20, what="admin token")
    api = Api(f"https://127.0.0.1:{port}", token, PkiLayout(tmp_path / "data").ca_cert)
    wait_for_sync(lambda: _ready(api), 20, what="server ready")
    agent = subprocess.Popen(
        [*FLOTILLA, "agent", "--server", api.server, "--token", token, "--cluster", CLUSTER,
         "--region", "r1", "--zone", "r1-a", "--address", "127.0.171.1", "--nodes", "2",
         "--state-dir", str(tmp_path / "cluster"), "--heartbeat-interval", "0.5",
         *agent_tls_args(tmp_path / "data", CLUSTER, "127.0.171.1")],
        stdout=open(tmp_path / "agent.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield server, agent, api
    finally:
        for proc in (agent, server.proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        server.proc.wait(20)
        agent.wait(20)
        # The agent leaves its pods for a successor (kubelet semantics); end them here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGKILL)
        wait_for_sync(lambda: app_processes(CLUSTER) == [], 10, what="pods gone")


def _ready(api: Api) -> bool:
    try:
        return api.client.get("/readyz").status_code == 200
    except Exception:
        return False


def test_agent_survives_a_control_plane_crash(
        plane: tuple[Server, subprocess.Popen[bytes], Api]) -> None:
    server, agent, api = plane
    wait_for_sync(lambda: api.ready(CLUSTER) == "True", 20, what="cluster Ready")
    api.apply_work(work_manifest(CLUSTER, 2, name="before"))
    wait_for_sync(lambda: api.work_ready(CLUSTER, "before-test") == 2, 30, what="2 pods")
    pods = app_processes(CLUSTER)

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    # While the control plane is away the cluster keeps running what it has.
    assert agent.poll() is None
    assert app_processes(CLUSTER) == pods
    server.start()
    wait_for_sync(lambda: _ready(api), 20, what="server back")

    # Heartbeats resume: the cluster is (or becomes again) Ready, and new Works arrive
    # through the agent's resumed watch.
    wait_for_sync(lambda: api.ready(CLUSTER) == "True", 20, what="Ready after restart")
    api.apply_work(work_manifest(CLUSTER, 1, name="after"))
    wait_for_sync(lambda: api.work_ready(CLUSTER, "after-test") == 1, 30,
                  what="a Work created after the restart runs")
    assert set(pods) <= set(app_processes(CLUSTER)), "running pods must not be restarted"
    assert len(app_processes(CLUSTER)) == 3
    lease = api.client.get(f"/apis/coordination.flotilla.io/v1alpha1/namespaces/"
                           f"flotilla-system/leases/{CLUSTER}").json()
    assert json.dumps(lease["spec"]["holderIdentity"]).startswith(f'"agent-{CLUSTER}-')
