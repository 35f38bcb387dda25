"""A pod of a real `flotilla up` run by root: it runs as nobody, with a clean environment,
and cannot read the control plane's secret files (up.json with the admin token, the
secrets-at-rest key, the components' credential files).

The folder `up` runs in is made 0755 on purpose, so that only each file's own mode
stands between the pod and the file (pytest's 0700 temporary folders would hide them
anyway and the test could not fail). The pod runs /bin/sh, which nobody may execute.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.pki.layout import PkiLayout
from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess, environ_of, proc_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods change user only under root")

CLUSTER = "sec-1"
NOBODY = pwd.getpwnam("nobody").pw_uid
REPORT = ('for f in "$@"; do if cat "$f" >/dev/null 2>&1; then echo "read:$f"; '
          'else echo "denied:$f"; fi; done; echo "uid:$(id -u)"; echo done; exec sleep 300')


def peek_work(paths: list[str]) -> dict[str, Any]:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "peek", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "peek"}},
                 "template": {"metadata": {"labels": {"app": "peek"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "sh", "image": "busybox",
                                     "command": ["/bin/sh", "-c", REPORT, "sh", *paths]}]}}}}
    return {"apiVersion": "work.flotilla.io/v1alpha1", "kind": "Work",
            "metadata": {"name": "peek", "namespace": f"flotilla-es-{CLUSTER}"},
            "spec": {"workload": {"manifests": [deployment]}}}


@pytest.fixture
def up(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[UpProcess, Api]]:
    monkeypatch.delenv("FLOTILLA_POD_USER")  # the default: nobody, as root
    folder = Path(tempfile.mkdtemp(prefix="flotilla-boundary-"))
    folder.chmod(0o755)
    running = UpProcess(folder, [{"name": CLUSTER, "region": "r", "zone": "r-a",
                                  "address": "127.0.61.1", "nodes": 1}])
    try:
        api = running.wait_up()
        wait_for_sync(lambda: api.ready(CLUSTER) == "True", 60, what=f"{CLUSTER} Ready")
        yield running, api
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def pod_pids() -> list[int]:
    return [pid for pid, _pgid, state, cmd in proc_table()
            if state != "Z" and cmd.startswith("sleep")
            and environ_of(pid).get("CLUSTER_NAME") == CLUSTER]


def test_a_pod_runs_as_nobody_and_reads_none_of_the_control_planes_secrets(
        up: tuple[UpProcess, Api]) -> None:
    running, api = up
    data = running.data_dir
    layout = PkiLayout(data)
    secret_files = [data / "up.json", layout.secrets_key,
                    *sorted(layout.credentials_dir.glob("*"))]
    for path in secret_files[:2]:
        assert path.is_file(), path
    control = "/etc/passwd"  # readable by anyone: the check itself works
    api.apply_work(peek_work([*map(str, secret_files), control]))
    logs = data / "clusters" / CLUSTER / "logs"

    def report() -> str | None:
        for log in logs.glob("default_peek-*_sh.log"):
            text = log.read_text()
            if "done" in text:
                return text
        return None
    text = wait_for_sync(report, 60, what="the pod's report")
    for path in secret_files:
        assert f"denied:{path}" in text, text
    assert f"read:{control}" in text
    assert f"uid:{NOBODY}" in text
    [pid] = wait_for_sync(pod_pids, 10, what="the pod's process")
    env = environ_of(pid)
    assert not [k for k in env if k.startswith("FLOTILLA_")]
    assert env["HOME"].startswith(str(data / "clusters" / CLUSTER / "pods"))
    assert running.state()["token"] not in "".join(env.values())
