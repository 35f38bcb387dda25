"""Application failover survives a control-plane restart (real server and agents).

A workload crashes in one cluster; the server is stopped and started again (same data
dir) well before the policy's ``decisionConditions.tolerationSeconds`` ran out. The
eviction must still come at the original deadline, counted from when the workload was
first seen Unhealthy (recorded on the binding), not a full toleration after the restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.controllers.failover.unhealthy import ANNOTATION_UNHEALTHY_SINCE
from flotilla.resources.wellknown import parse_rfc3339
from tests.cli.serverproc import FLOTILLA, ServerProcess, flotilla
from tests.failover.harness import manifests
from tests.helpers import agent_tls_args, wait_for_sync
from tests.up.harness import Api, app_processes

pytestmark = pytest.mark.slow
EAST, BURST = "rs-east", "rs-burst"
ADDRESSES = {EAST: "127.0.233.1", BURST: "127.0.233.2"}
TOLERATION = 30
#: How far into the toleration the server is restarted: late enough that a clock
#: restarted from zero would evict at least 10 s too late, far outside the margin below,
#: and early enough that a slow restart (stop, start, caches synced) still ends well
#: inside the toleration.
RESTART_AT = 10
#: Slack for the controller to notice the deadline on a loaded machine.
MARGIN = 4.0


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[ServerProcess, Api, Path]]:
    server = ServerProcess(tmp_path / "state", "--cluster-grace-period", "3")
    agents: list[subprocess.Popen[bytes]] = []
    server.start()
    try:
        for name, address in ADDRESSES.items():
            with open(tmp_path / f"agent-{name}.log", "wb") as log:
                agents.append(subprocess.Popen(
                    [FLOTILLA, "agent", "--server", server.url, "--token", server.token,
                     "--cluster", name, "--region", "r1", "--zone", "r1-a",
                     "--address", address, "--nodes", "1", "--heartbeat-interval", "0.5",
                     "--state-dir", str(tmp_path / name),
                     *agent_tls_args(server.data_dir, name, address)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        api = Api(server.url, server.token, server.ca)
        for name in ADDRESSES:
            wait_for_sync(lambda n=name: api.ready(n) == "True", 60,  # type: ignore[misc]
                          what=f"cluster {name} Ready")
        yield server, api, tmp_path
    finally:
        for agent in agents:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGTERM)
        for agent in agents:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(20)
            # The agent leaves its pods for a successor (kubelet semantics); end them.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGKILL)
        server.stop()
        wait_for_sync(lambda: all(not app_processes(n) for n in ADDRESSES), 15,
                      what="pods gone")


def _binding(api: Api) -> dict[str, Any]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       "resourcebindings/crashy-deployment")
    return dict(r.json()) if r.status_code == 200 else {}


def _unhealthy_since(api: Api) -> dict[str, float]:
    raw = ((_binding(api).get("metadata") or {}).get("annotations") or {}).get(
        ANNOTATION_UNHEALTHY_SINCE)
    return {k: parse_rfc3339(v) for k, v in json.loads(raw).items()} if raw else {}


def _eviction(api: Api) -> dict[str, Any] | None:
    for task in (_binding(api).get("spec") or {}).get("gracefulEvictionTasks") or []:
        if task.get("fromCluster") == BURST:
            return dict(task)
    return None


def test_application_failover_deadline_survives_a_server_restart(
        plane: tuple[ServerProcess, Api, Path]) -> None:
    server, api, folder = plane
    crash = {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "OverridePolicy",
             "metadata": {"name": "crashy-burst", "namespace": "default"},
             "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "crashy"}],
                      "overrideRules": [{"targetCluster": {"clusterNames": [BURST]},
                                         "overriders": {"plaintext": [{
                                             "path": "/spec/template/spec/containers/0/command",
                                             "operator": "replace",
                                             "value": ["python3", "-c", "raise SystemExit(3)"],
                                         }]}}]}}
    policy = {"placement": {
        "clusterAffinity": {"clusterNames": [EAST, BURST]},
        "replicaScheduling": {"replicaSchedulingType": "Divided", "weightPreference": {
            "staticWeightList": [{"targetCluster": {"clusterNames": [EAST, BURST]},
                                  "weight": 1}]}}},
        "failover": {"application": {"decisionConditions": {"tolerationSeconds": TOLERATION},
                                     "gracePeriodSeconds": 120}}}
    path = folder / "crashy.yaml"
    path.write_text("\n---\n".join(json.dumps(o) for o in [crash,
                                                           *manifests("crashy", 2, policy)]))
    applied = flotilla("apply", "-f", str(path), env=server.client_env())
    assert applied.returncode == 0, applied.stderr + applied.stdout

    since = wait_for_sync(lambda: _unhealthy_since(api).get(BURST), 60,
                          what="the crash on burst recorded on the binding")
    assert _eviction(api) is None
    # Restart the control plane well before the deadline (waiting on the wall clock is
    # the point here: the restart has to fall inside the toleration).
    wait_for_sync(lambda: time.time() >= since + RESTART_AT, RESTART_AT + 5,
                  what="the restart point")
    assert _eviction(api) is None, "evicted before the toleration ran out"
    server.restart()
    restarted = time.time()
    assert restarted < since + TOLERATION - 2, "the restart took too long to mean anything"

    task = wait_for_sync(lambda: _eviction(api), TOLERATION + 30,
                         what="the eviction from burst")
    evicted = parse_rfc3339(task["creationTimestamp"])
    assert task["reason"] == "ApplicationFailure"
    # At the original deadline (from the recorded time), not restart + toleration.
    assert since + TOLERATION - 0.5 <= evicted <= since + TOLERATION + MARGIN, \
        (evicted - since, restarted - since)
    assert evicted < restarted + TOLERATION - 4
    placed = {t["name"] for t in _binding(api)["spec"]["clusters"]}
    assert placed == {EAST}
