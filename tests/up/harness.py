"""Run a real `flotilla up` (or a server plus agents) in a temp folder, and read the
process table: what the member-cluster tests assert on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flotilla.pki import verifying_context
from tests.helpers import RUN_ROOT_VARIABLE, free_port, wait_for_sync

FLOTILLA = [sys.executable, "-m", "flotilla"]
SHOP_APP = str(Path(__file__).resolve().parents[2] / "examples" / "shop" / "app.py")


def proc_table() -> Iterator[tuple[int, int, str, str]]:
    """(pid, pgid, state, cmdline) of every process, zombies included."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        yield int(entry.name), int(fields[2]), fields[0], cmd.decode(errors="replace")


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def started_by_this_run(pid: int) -> bool:
    """True when ``pid`` runs in a folder of this pytest run. Every process a test starts
    (and every pod of it, which inherits its agent's folder) works under the run's own
    temporary root (tests/conftest.py sets RUN_ROOT_VARIABLE), so another test run on the
    same machine, with the same cluster names, is never counted as ours."""
    root = os.environ.get(RUN_ROOT_VARIABLE)
    if not root:
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == root or cwd.startswith(root.rstrip("/") + "/")


def app_processes(cluster: str) -> list[int]:
    """Live pids of the shop app running as a pod of ``cluster`` in this test run."""
    return sorted(
        pid for pid, _pgid, state, cmd in proc_table()
        if state != "Z" and SHOP_APP in cmd and environ_of(pid).get("CLUSTER_NAME") == cluster
        and started_by_this_run(pid)
    )


def work_manifest(cluster: str, replicas: int, name: str = "shop") -> dict[str, Any]:
    """A Work that runs the shop app with ``replicas`` pods on ``cluster``."""
    return {
        "apiVersion": "work.flotilla.io/v1alpha1",
        "kind": "Work",
        "metadata": {"name": f"{name}-test", "namespace": f"flotilla-es-{cluster}"},
        "spec": {"workload": {"manifests": [
            {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                            "name": "shop", "image": "shop",
                            "command": [sys.executable, "-u", SHOP_APP],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/healthz",
                                                           "port": "http"},
                                               "periodSeconds": 1},
                        }]},
                    },
                },
            },
            {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"app": name},
                         "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]},
            },
        ]}},
    }


@dataclass
class Api:
    server: str
    token: str
    #: The CA file the server is verified against (up.json's ``ca``).
    ca: Path | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server, timeout=5.0, verify=self.verify,
                                   headers={"Authorization": f"Bearer {self.token}"})

    @property
    def verify(self) -> Any:
        """httpx's ``verify`` for this server: the shared context of its CA."""
        return verifying_context(self.ca) if self.ca is not None else True

    def cluster(self, name: str) -> dict[str, Any] | None:
        r = self.client.get(f"/apis/cluster.flotilla.io/v1alpha1/clusters/{name}")
        return r.json() if r.status_code == 200 else None

    def ready(self, name: str) -> str | None:
        c = self.cluster(name) or {}
        for cond in (c.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                return str(cond.get("status"))
        return None

    def taint_keys(self, name: str) -> set[str]:
        c = self.cluster(name) or {}
        return {t["key"] for t in (c.get("spec") or {}).get("taints") or []}

    def apply_work(self, work: dict[str, Any]) -> None:
        ns = work["metadata"]["namespace"]
        r = self.client.post(f"/apis/work.flotilla.io/v1alpha1/namespaces/{ns}/works",
                             json=work)
        assert r.status_code == 201, r.text

    def work_ready(self, cluster: str, name: str = "shop-test") -> int:
        r = self.client.get(f"/apis/work.flotilla.io/v1alpha1/namespaces/"
                            f"flotilla-es-{cluster}/works/{name}")
        if r.status_code != 200:
            return -1
        for ms in (r.json().get("status") or {}).get("manifestStatuses") or []:
            if ms["identifier"]["kind"] == "Deployment":
                return int((ms.get("status") or {}).get("readyReplicas", 0))
        return 0


class UpProcess:
    """A `flotilla up` in ``folder``, with clusters on the given loopback addresses."""

    def __init__(self, folder: Path, clusters: list[dict[str, Any]],
                 grace: float = 3.0, *, gateway: str = "", dns: str = "",
                 ha: bool = False, gateway_admin: str = "",
                 extra: tuple[str, ...] = ()) -> None:
        """``gateway``/``dns``: HOST:PORT to start them on ("" leaves them out);
        ``gateway_admin``: the gateway's /metrics listener ("": none); ``ha``:
        `up --ha` (three etcd members, three servers); ``extra``: more `up` options
        (later ones win over the defaults above)."""
        self.folder = folder
        self.data_dir = folder / ".flotilla"
        config = folder / "clusters.yaml"
        config.write_text(json.dumps({"clusters": clusters}))
        self.port = free_port()
        self.gateway = gateway
        self.log = open(folder / "up.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*FLOTILLA, "up", "--data-dir", str(self.data_dir), "--config", str(config),
             "--listen", f"127.0.0.1:{self.port}", "--gateway-listen", gateway,
             "--gateway-admin-listen", gateway_admin, "--gateway-tls-listen", "",
             "--dns-listen", dns, "--dns-admin-listen", "",
             "--cluster-grace-period", str(grace), *(["--ha"] if ha else []), *extra],
            cwd=folder, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.names = [c["name"] for c in clusters]

    def wait_up(self, timeout: float = 60.0) -> Api:
        def up_json() -> dict[str, Any] | None:
            assert self.proc.poll() is None, self.output()
            try:
                state = dict(json.loads((self.data_dir / "up.json").read_text()))
            except (OSError, ValueError):
                return None
            # A previous `up` in the same folder left its (stopped) state: not ours.
            return state if state.get("pid") == self.proc.pid else None
        state = wait_for_sync(up_json, timeout, what="up.json")
        api = Api(state["server"], state["token"], Path(state["ca"]))
        for name in self.names:
            wait_for_sync(lambda n=name: api.ready(n) == "True", timeout,
                          what=f"cluster {name} Ready")
        return api

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "up.json").read_text()))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*FLOTILLA, *args], cwd=self.folder, capture_output=True,
                                text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    def output(self) -> str:
        return (self.folder / "up.out").read_text(errors="replace")

    def pgids(self) -> set[int]:
        state = self.state()
        out = {int(c["pgid"]) for c in state["clusters"]}
        out |= {int(state[k]["pgid"]) for k in ("gateway", "dns", "prometheus")
                if k in state}
        out.add(int(state["serverPid"]))
        out |= {int(e["pgid"]) for kind in ("servers", "etcd") for e in state.get(kind, [])}
        out.add(self.proc.pid)
        return out

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(5)
        self.log.close()
        return code

    def leftovers(self, pgids: set[int]) -> list[tuple[int, int, str, str]]:
        """Processes still alive in any group `up` started, or mentioning our folder."""
        folder = str(self.folder)
        return [
            p for p in proc_table()
            if p[2] != "Z" and (p[1] in pgids or folder in p[3])
        ]


def wait_gone(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
