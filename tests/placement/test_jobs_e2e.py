"""Jobs across clusters end to end: real `flotilla up`, real pods that run to completion.

Two analytics clusters and one trading cluster. An Indexed Job divided over the
analytics pair runs every index exactly once and completes once; killed halfway, the
lost cluster's unfinished indexes run on the survivor and the final status still lists
each index once; nothing runs after completion; the trading cluster never runs a pod of
a Job restricted to analytics; backoffLimit and podFailurePolicy hold across the plane.

Each pod that completes writes a marker ``<index>.<cluster>.<pid>`` into a folder of the
test, so "exactly once" is checked against what ran, not only against the status.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.resources.indexes import parse_indexes
from tests.helpers import wait_for_sync
from tests.up.harness import Api, UpProcess, environ_of, proc_table, started_by_this_run

pytestmark = pytest.mark.slow
A1, A2, TRADING = "j-analytics-1", "j-analytics-2", "j-trading"
CLUSTERS = [
    {"name": A1, "region": "eu", "zone": "eu-a", "address": "127.0.231.1", "nodes": 2,
     "labels": {"tier": "analytics"}},
    {"name": A2, "region": "eu", "zone": "eu-b", "address": "127.0.232.1", "nodes": 2,
     "labels": {"tier": "analytics"}},
    {"name": TRADING, "region": "eu", "zone": "eu-c", "address": "127.0.233.1", "nodes": 2,
     "labels": {"tier": "trading"}},
]
SHARD = """\
import os, pathlib, sys, time
index = os.environ.get("JOB_COMPLETION_INDEX", "x")
time.sleep(float(sys.argv[2]))
print("shard", index, "done on", os.environ["CLUSTER_NAME"], flush=True)
pathlib.Path(sys.argv[1], f"{index}.{os.environ['CLUSTER_NAME']}.{os.getpid()}").touch()
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Api]]:
    folder = tmp_path_factory.mktemp("jobs")
    (folder / "shard.py").write_text(SHARD)
    running = UpProcess(folder, CLUSTERS)
    try:
        api = running.wait_up()
        policy = {"apiVersion": "policy.flotilla.io/v1alpha1", "kind": "PropagationPolicy",
                  "metadata": {"name": "analytics", "namespace": "default"},
                  "spec": {"resourceSelectors": [{"apiVersion": "batch/v1", "kind": "Job"}],
                           "placement": {
                               "clusterAffinity": {"labelSelector": {
                                   "matchLabels": {"tier": "analytics"}}},
                               "replicaScheduling": {"replicaSchedulingType": "Divided"}}}}
        apply(running, "policy", [policy])
        yield running, api
    finally:
        running.stop()


def apply(running: UpProcess, name: str, docs: list[dict[str, Any]]) -> None:
    path = running.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    running.cli("apply", "-f", str(path))


def job(name: str, command: list[str], *, completions: int, parallelism: int,
        indexed: bool = True, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"completions": completions, "parallelism": parallelism,
                     **({"completionMode": "Indexed"} if indexed else {}), **spec,
                     "template": {"spec": {
                         "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "shard", "image": "python:3",
                                         "command": command}]}}}}


def shard_job(running: UpProcess, name: str, seconds: float) -> tuple[dict[str, Any], Path]:
    markers = running.folder / f"markers-{name}"
    markers.mkdir()
    return job(name, [sys.executable, str(running.folder / "shard.py"), str(markers),
                      str(seconds)], completions=24, parallelism=6), markers


def job_status(api: Api, name: str) -> dict[str, Any]:
    r = api.client.get(f"/apis/batch/v1/namespaces/default/jobs/{name}")
    return dict(r.json().get("status") or {}) if r.status_code == 200 else {}


def verdict(api: Api, name: str) -> dict[str, Any] | None:
    for c in job_status(api, name).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return dict(c)
    return None


def split(api: Api, name: str) -> dict[str, int]:
    r = api.client.get("/apis/work.flotilla.io/v1alpha1/namespaces/default/"
                       f"resourcebindings/{name}-job")
    if r.status_code != 200:
        return {}
    return {t["name"]: t["replicas"] for t in r.json()["spec"].get("clusters") or []}


def running_pods(folder: Path) -> Counter[str]:
    """Pods of this test's Jobs alive now, per cluster (found by the script's path)."""
    script = str(folder / "shard.py")
    found: Counter[str] = Counter()
    for pid, _pgid, state, cmd in proc_table():
        if state != "Z" and script in cmd and started_by_this_run(pid):
            found[environ_of(pid).get("CLUSTER_NAME", "?")] += 1
    return found


def marks(markers: Path) -> list[tuple[int, str]]:
    out = []
    for p in markers.iterdir():
        index, cluster, _pid = p.name.split(".")
        out.append((int(index), cluster))
    return sorted(out)


def test_indexed_job_divided_over_analytics_runs_every_index_once(
        plane: tuple[UpProcess, Api]) -> None:
    running, api = plane
    manifest, markers = shard_job(running, "shards", 0.3)
    apply(running, "shards", [manifest])
    wait_for_sync(lambda: split(api, "shards") == {A1: 12, A2: 12}, 30, what="split 12/12")
    seen: Counter[str] = Counter()

    def complete() -> dict[str, Any] | None:
        seen.update(running_pods(running.folder))
        return verdict(api, "shards")
    done = wait_for_sync(complete, 90, what="shards Complete")
    assert done["reason"] == "Completed"
    assert TRADING not in seen, "a Job for analytics ran a pod on the trading cluster"
    ran = marks(markers)
    assert [i for i, _ in ran] == list(range(24)), "every index exactly once"
    assert {c for i, c in ran if i < 12} == {A1}
    assert {c for i, c in ran if i >= 12} == {A2}
    status = job_status(api, "shards")
    assert status["completedIndexes"] == "0-23"
    assert (status["succeeded"], status["failed"]) == (24, 0)
    wait_for_sync(lambda: not running_pods(running.folder), 10,
                  what="no pod of the Job running after completion")
    assert len(marks(markers)) == 24
    lines = running.cli("logs", "job/shards", "--all-clusters").stdout.splitlines()
    printed = sorted(line.split("] ", 1)[1] for line in lines if "] shard" in line)
    assert printed == sorted(f"shard {i} done on {A1 if i < 12 else A2}" for i in range(24))
    assert all(line.startswith((f"[{A1}/shards-", f"[{A2}/shards-")) for line in lines)
    header, row = running.cli("get", "job", "shards", "-o", "wide").stdout.splitlines()[:2]
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert (cells["STATUS"], cells["COMPLETIONS"], cells["INDEXES"]) == (
        "Complete", "24/24", "0-23")


def test_a_cluster_killed_halfway_its_unfinished_indexes_run_on_the_other(
        plane: tuple[UpProcess, Api]) -> None:
    running, api = plane
    manifest, markers = shard_job(running, "halfway", 1.0)
    apply(running, "halfway", [manifest])
    wait_for_sync(lambda: split(api, "halfway") == {A1: 12, A2: 12}, 30, what="split")

    def some_done_on_a2() -> bool:
        done = parse_indexes(job_status(api, "halfway").get("completedIndexes") or "")
        return len(done & set(range(12, 24))) >= 3
    wait_for_sync(some_done_on_a2, 60, what="a few of A2's indexes done")
    running.cli("chaos", "kill-cluster", A2, "--data-dir", str(running.data_dir))
    try:
        wait_for_sync(lambda: split(api, "halfway") == {A1: 24}, 60,
                      what="A2's share re-placed on A1")
        done = wait_for_sync(lambda: verdict(api, "halfway"), 120, what="halfway Complete")
        assert done["reason"] == "Completed"
        status = job_status(api, "halfway")
        assert status["completedIndexes"] == "0-23", "each index listed once"
        assert status["succeeded"] == 24
        ran = marks(markers)
        assert {i for i, _ in ran} == set(range(24))
        assert {c for i, c in ran if i < 12} == {A1}, "A1's own share never moved"
        assert any(c == A1 for i, c in ran if i >= 12), "A2's unfinished indexes ran on A1"
        wait_for_sync(lambda: not running_pods(running.folder), 10,
                      what="nothing running after completion")
        count = len(ran)
        assert len(marks(markers)) == count
    finally:
        running.cli("chaos", "revive-cluster", A2, "--data-dir", str(running.data_dir))
        wait_for_sync(lambda: api.ready(A2) == "True", 60, what="A2 back")


def test_backoff_limit_fails_the_job_with_its_reason(plane: tuple[UpProcess, Api]) -> None:
    running, api = plane
    apply(running, "failing", [job("failing", [sys.executable, "-c", "raise SystemExit(1)"],
                                   completions=1, parallelism=1, indexed=False,
                                   backoffLimit=2)])
    failed = wait_for_sync(lambda: verdict(api, "failing"), 60, what="failing Failed")
    assert (failed["type"], failed["reason"]) == ("Failed", "BackoffLimitExceeded")
    assert job_status(api, "failing")["failed"] == 3


def test_pod_failure_policy_ignores_exit_42(plane: tuple[UpProcess, Api]) -> None:
    running, api = plane
    tries = running.folder / "tries"
    script = (f"import pathlib; p = pathlib.Path({str(tries)!r}); "
              "n = len(p.read_text()) if p.exists() else 0; p.write_text('x' * (n + 1)); "
              "raise SystemExit(42 if n < 2 else 0)")
    policy = {"rules": [{"action": "Ignore",
                         "onExitCodes": {"operator": "In", "values": [42]}}]}
    apply(running, "patient", [job("patient", [sys.executable, "-c", script], completions=1,
                                   parallelism=1, indexed=False, backoffLimit=0,
                                   podFailurePolicy=policy)])
    done = wait_for_sync(lambda: verdict(api, "patient"), 60, what="patient finished")
    assert (done["type"], done["reason"]) == ("Complete", "Completed")
    assert job_status(api, "patient")["failed"] == 0
    assert tries.read_text() == "xxx", "two ignored failures, then the success"
