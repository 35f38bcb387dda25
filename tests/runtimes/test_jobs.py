"""Jobs on the local runtime: pods that run to completion as real processes, indexes,
backoff, podFailurePolicy, deadlines, and a Job's ledger across an agent restart."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from flotilla.resources.indexes import parse_indexes
from flotilla.resources.wellknown import ANNOTATION_JOB_INDEXES
from flotilla.runtimes.base import ManifestError, WorkloadStatus
from flotilla.runtimes.local import LocalRuntime
from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, cluster_processes


def job(name: str, script: str, *, completions: int | None = 4, parallelism: int = 2,
        indexed: bool = False, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parallelism": parallelism,
        "template": {"spec": {
            "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "work", "image": "python:3",
                            "command": [sys.executable, "-c", script]}]}},
        **spec}
    if completions is not None:
        body["completions"] = completions
    if indexed:
        body["completionMode"] = "Indexed"
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"}, "spec": body}


def status_of(rt: LocalRuntime, name: str) -> WorkloadStatus:
    [w] = [w for w in rt.workloads() if w.kind == "Job" and w.name == name]
    return w


async def finished(rt: LocalRuntime, name: str, timeout: float = 30.0) -> WorkloadStatus:
    async def done() -> WorkloadStatus | None:
        w = status_of(rt, name)
        return w if any(c.type in ("Complete", "Failed") for c in w.conditions) else None
    return await wait_for(done, timeout=timeout, what=f"Job {name} to finish")


def condition(w: WorkloadStatus) -> tuple[str, str]:
    [c] = w.conditions
    return c.type, c.reason


async def test_indexed_job_runs_every_index_once_with_its_index_in_env(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    script = "import os; print('index', os.environ['JOB_COMPLETION_INDEX'])"
    await rt.apply([job("shards", script, completions=6, parallelism=3, indexed=True)])
    w = await finished(rt, "shards")
    assert condition(w) == ("Complete", "Completed")
    assert w.job is not None
    assert (w.job.succeeded, w.job.failed, w.job.active) == (6, 0, 0)
    assert w.job.completed_indexes == "0-5"
    pods = [p for p in rt.pods() if p.owner == "Job/shards"]
    assert sorted(p.phase for p in pods) == ["Succeeded"] * 6
    printed = sorted(rt.logs("default", p.name).strip() for p in pods)
    assert printed == [f"index {i}" for i in range(6)]
    assert cluster_processes(rt.name) == [], "nothing runs after completion"


async def test_parallelism_bounds_the_running_pods(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    # each pod sleeps longer than the test, so the running count is observable
    await rt.apply([job("slow", "import time; time.sleep(30)", completions=5,
                        parallelism=2)])

    async def two_running() -> bool:
        running = [p for p in rt.pods() if p.owner == "Job/slow" and p.phase == "Running"]
        return len(running) == 2
    await wait_for(two_running, timeout=15, what="two pods running")
    assert status_of(rt, "slow").job.active == 2  # type: ignore[union-attr]
    assert len([p for p in rt.pods() if p.owner == "Job/slow"]) == 2


async def test_cluster_share_of_indexes_from_the_annotation(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    manifest = job("share", "print('ok')", completions=24, parallelism=4, indexed=True)
    manifest["metadata"]["annotations"] = {ANNOTATION_JOB_INDEXES: "3-5,20"}
    await rt.apply([manifest])
    w = await finished(rt, "share")
    assert condition(w)[0] == "Complete"
    assert w.job is not None
    assert parse_indexes(w.job.completed_indexes) == {3, 4, 5, 20}
    assert w.job.indexes == "3-5,20"


async def test_backoff_limit_fails_the_job_with_its_reason(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([job("bad", "raise SystemExit(1)", completions=1, parallelism=1,
                        backoffLimit=2)])
    w = await finished(rt, "bad")
    assert condition(w) == ("Failed", "BackoffLimitExceeded")
    assert w.job is not None
    assert w.job.failed == 3, "backoffLimit 2: the third failure ends it"
    assert len([p for p in rt.pods() if p.owner == "Job/bad"]) == 3


async def test_on_failure_restarts_in_place_and_counts_them(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([job("flaky", "raise SystemExit(1)", completions=1, parallelism=1,
                        restart="OnFailure", backoffLimit=1)])
    w = await finished(rt, "flaky")
    assert condition(w) == ("Failed", "BackoffLimitExceeded")
    assert len([p for p in rt.pods() if p.owner == "Job/flaky"]) == 1, "restarted in place"


async def test_pod_failure_policy_ignores_exit_42_and_fails_on_exit_3(
        make_cluster: MakeCluster, tmp_path: Any) -> None:
    rt = await make_cluster()
    marker = tmp_path / "tries"
    # exits 42 twice (ignored: not counted), then succeeds
    script = (f"import pathlib; p = pathlib.Path({str(marker)!r}); n = len(p.read_text()) "
              "if p.exists() else 0; p.write_text('x' * (n + 1)); "
              "raise SystemExit(42 if n < 2 else 0)")
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In",
                                                             "values": [42]}},
                        {"action": "FailJob", "onExitCodes": {"operator": "In",
                                                              "values": [3]}}]}
    await rt.apply([job("retry", script, completions=1, parallelism=1, backoffLimit=0,
                        podFailurePolicy=policy),
                    job("fatal", "raise SystemExit(3)", completions=1, parallelism=1,
                        backoffLimit=5, podFailurePolicy=policy)])
    w = await finished(rt, "retry")
    assert condition(w) == ("Complete", "Completed")
    assert w.job is not None
    assert (w.job.failed, w.job.ignored, w.job.succeeded) == (0, 2, 1)
    f = await finished(rt, "fatal")
    assert condition(f) == ("Failed", "PodFailurePolicy")
    assert f.job is not None
    assert f.job.failed == 1


async def test_active_deadline_fails_and_stops_the_pods(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([job("late", "import time; time.sleep(60)", completions=2,
                        activeDeadlineSeconds=1)])
    w = await finished(rt, "late", timeout=15)
    assert condition(w) == ("Failed", "DeadlineExceeded")
    await wait_for(lambda: _none(rt), timeout=10, what="the Job's processes to end")


async def _none(rt: LocalRuntime) -> bool:
    return cluster_processes(rt.name) == []


async def test_ttl_after_finished_removes_the_pods(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([job("brief", "print(1)", completions=1, parallelism=1,
                        ttlSecondsAfterFinished=1)])
    await finished(rt, "brief")

    async def gone() -> bool:
        return not [p for p in rt.pods() if p.owner == "Job/brief"]
    await wait_for(gone, timeout=10, what="the finished Job's pods to be removed")
    assert condition(status_of(rt, "brief"))[0] == "Complete", "the verdict stays"


async def test_finished_pods_hold_no_capacity(make_cluster: MakeCluster) -> None:
    rt = await make_cluster(nodes=1, cpu="1")
    manifest = job("big", "print(1)", completions=3, parallelism=1)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "900m"}}
    await rt.apply([manifest])
    w = await finished(rt, "big")
    assert condition(w)[0] == "Complete", "each pod frees its cpu for the next"
    assert rt.capacity().allocated.cpu_millis == 0


async def test_ledger_survives_an_agent_restart(make_cluster: MakeCluster, tmp_path: Any
                                                ) -> None:
    state = tmp_path / "kept"
    rt = await make_cluster(name="tjobkeep", state_dir=state)
    await rt.apply([job("keep", "print(1)", completions=3, parallelism=3, indexed=True)])
    await finished(rt, "keep")
    await rt.stop(keep_pods=True)
    again = await make_cluster(name="tjobkeep", state_dir=state)
    w = status_of(again, "keep")
    assert condition(w)[0] == "Complete"
    assert w.job is not None
    assert w.job.completed_indexes == "0-2"


@pytest.mark.parametrize(("spec", "problem"), [
    ({"completionMode": "Sideways"}, "spec.completionMode"),
    ({"backoffLimit": -1}, "spec.backoffLimit"),
])
async def test_bad_job_is_rejected_whole(make_cluster: MakeCluster, spec: dict[str, Any],
                                         problem: str) -> None:
    rt = await make_cluster()
    with pytest.raises(ManifestError, match=problem):
        await rt.apply([job("x", "print(1)", **spec)])
    always = job("y", "print(1)", restart="Always")
    with pytest.raises(ManifestError, match="restartPolicy"):
        await rt.apply([always])


async def test_suspend_stops_the_pods_without_counting(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    manifest = job("pause", "import time; time.sleep(60)", completions=2, parallelism=2)
    await rt.apply([manifest])

    async def running() -> bool:
        return len([p for p in rt.pods() if p.owner == "Job/pause"
                    and p.phase == "Running"]) == 2
    await wait_for(running, timeout=15, what="two pods running")
    manifest["spec"]["suspend"] = True
    await rt.apply([manifest])
    await wait_for(lambda: _none(rt), timeout=10, what="the suspended Job's processes to end")
    w = status_of(rt, "pause")
    assert w.job is not None
    assert (w.job.active, w.job.failed, w.job.succeeded) == (0, 0, 0)


async def test_a_job_without_room_waits_with_a_condition(make_cluster: MakeCluster) -> None:
    rt = await make_cluster(nodes=1, cpu="1")
    manifest = job("crowd", "import time; time.sleep(60)", completions=2, parallelism=2)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "600m"}}
    await rt.apply([manifest])

    async def waiting() -> bool:
        return any(c.reason == "Unschedulable" for c in status_of(rt, "crowd").conditions)
    await wait_for(waiting, timeout=15, what="the second pod waiting for room")
    phases = sorted(p.phase for p in rt.pods() if p.owner == "Job/crowd")
    assert phases == ["Pending", "Running"], "no node overfilled"
    assert rt.capacity().allocated.cpu_millis == 600
