"""Pods as real processes: start, answer, crash, restart, probes, termination."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from flotilla.runtimes.local import LocalRuntime
from tests.helpers import wait_for
from tests.runtimes.conftest import (
    MakeCluster,
    cluster_processes,
    deployment,
    http_get,
    pods_of,
    ready_pods,
)


def app_pid(rt: LocalRuntime, pod: str) -> int | None:
    for p in rt.pods():
        if p.name == pod:
            return p.containers[0].pid
    return None


async def test_three_replicas_become_ready_processes_answering(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 3)])
    pods = await ready_pods(rt, "web", 3)
    pids = {p.containers[0].pid for p in pods}
    assert len(pids) == 3
    assert set(cluster_processes(rt.name)) == pids
    assert len({p.node for p in pods}) == 3, "replicas spread over the three nodes"
    for pod in pods:
        answer = await http_get(f"http://127.0.0.1:{pod.containers[0].ports['http']}/")
        assert answer == f"hello from {pod.name}"
    [status] = rt.workloads()
    assert (status.desired_replicas, status.ready_replicas, status.updated_replicas) == (3, 3, 3)
    assert status.observed_generation == 1
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"


async def test_sigkilled_container_is_restarted(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 1)])
    [pod] = await ready_pods(rt, "web", 1)
    old = pod.containers[0].pid
    assert old is not None
    os.kill(old, signal.SIGKILL)

    async def restarted() -> bool:
        [p] = pods_of(rt, "web")
        return p.ready and p.restarts == 1 and p.containers[0].pid not in (None, old)
    await wait_for(restarted, timeout=10, what="a new process for the killed container")
    assert pods_of(rt, "web")[0].containers[0].last_exit_code == 128 + signal.SIGKILL


async def test_kill_pod_brings_a_replacement_pod(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 2)])
    pods = await ready_pods(rt, "web", 2)
    await rt.kill_pod("default", pods[0].name)
    after = await ready_pods(rt, "web", 2)
    assert pods[0].name not in {p.name for p in after}
    assert len(cluster_processes(rt.name)) == 2


async def test_crashing_container_shows_crashloopbackoff_with_growing_delay(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("crash", 1, args=("--crash",), readiness=False)])
    restart_times: dict[int, float] = {}
    messages: set[str] = set()
    deadline = time.monotonic() + 15
    async for _ in rt.changes():
        if time.monotonic() > deadline:
            break
        pods = pods_of(rt, "crash")
        if not pods:
            continue
        pod = pods[0]
        restart_times.setdefault(pod.restarts, time.monotonic())
        if pod.status == "CrashLoopBackOff":
            messages.add(pod.message.split(" restarting")[0])
        if pod.restarts >= 3:
            break
    [pod] = pods_of(rt, "crash")
    assert pod.restarts >= 3, pod
    assert {"back-off 0.2s", "back-off 0.4s", "back-off 0.8s"} <= messages
    # Each gap is process start-up + run + back-off; start-up varies on a loaded machine,
    # so compare gaps whose back-offs differ by a wide margin (0.2 s vs 0.8 s).
    gaps = [restart_times[i + 1] - restart_times[i] for i in range(3)]
    assert gaps[2] >= 0.8, gaps
    assert gaps[2] > gaps[0], gaps
    assert "crashing as asked" in rt.logs("default", pod.name)


async def test_failing_liveness_probe_restarts_container(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    rt = await make_cluster()
    health = tmp_path / "unhealthy"
    liveness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 0.1,
                "failureThreshold": 2}
    await rt.apply([deployment("live", 1, liveness=liveness, readiness=False,
                               env=[{"name": "HEALTH_FILE", "value": str(health)}])])
    [pod] = await ready_pods(rt, "live", 1)
    first = pod.containers[0].pid
    health.touch()

    async def restarted() -> bool:
        [p] = pods_of(rt, "live")
        return p.restarts >= 1 and p.containers[0].pid not in (None, first)
    await wait_for(restarted, timeout=10, what="liveness restart")
    health.unlink()
    [pod] = await ready_pods(rt, "live", 1)
    assert pod.restarts >= 1


async def test_readiness_gates_endpoints(make_cluster: MakeCluster, tmp_path: Path) -> None:
    from tests.runtimes.conftest import service
    rt = await make_cluster()
    env = [{"name": "HEALTH_FILE", "value": f"{tmp_path}/$(POD_NAME).down"}]
    await rt.apply([deployment("web", 2, env=env), service("web", 80)])
    pods = await ready_pods(rt, "web", 2)

    def endpoint_pods() -> set[str]:
        [svc] = rt.endpoints()
        return {e.pod for e in svc.endpoints}
    assert endpoint_pods() == {p.name for p in pods}
    (tmp_path / f"{pods[0].name}.down").touch()

    async def only_second() -> bool:
        return endpoint_pods() == {pods[1].name}
    await wait_for(only_second, timeout=10, what="not-ready pod dropped from endpoints")
    assert not next(p for p in rt.pods() if p.name == pods[0].name).ready
    (tmp_path / f"{pods[0].name}.down").unlink()

    async def both() -> bool:
        return endpoint_pods() == {p.name for p in pods}
    await wait_for(both, timeout=10, what="pod back in endpoints")


async def test_scale_to_zero_terminates_whole_process_trees(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("web", 2, args=("--child",))])
    await ready_pods(rt, "web", 2)
    assert len(cluster_processes(rt.name)) == 4, "each pod: the app and its child"
    await rt.apply([deployment("web", 0, args=("--child",))])

    async def gone() -> bool:
        return not rt.pods() and not cluster_processes(rt.name)
    await wait_for(gone, timeout=10, what="no pod and no process left")
    assert rt.workloads()[0].replicas == 0


async def test_grace_period_then_sigkill_for_a_process_ignoring_sigterm(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("stubborn", 1, args=("--ignore-term",), grace=0.5)])
    [_pod] = await ready_pods(rt, "stubborn", 1)
    began = time.monotonic()
    await rt.apply([])


    async def terminating() -> bool:
        return bool(rt.pods()) and rt.pods()[0].status == "Terminating"
    await wait_for(terminating, timeout=5, what="pod terminating")
    assert not rt.pods()[0].ready

    async def gone() -> bool:
        return not cluster_processes(rt.name) and not rt.pods()
    await wait_for(gone, timeout=10, what="SIGKILL after the grace period")
    assert time.monotonic() - began >= 0.5


async def test_container_without_command_fails_with_reason(make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    await rt.apply([deployment("nocmd", 1, command=[], readiness=False)])

    async def failed() -> bool:
        pods = pods_of(rt, "nocmd")
        return bool(pods) and pods[0].reason == "NoCommand"
    await wait_for(failed, timeout=10, what="NoCommand reason")
    [pod] = pods_of(rt, "nocmd")
    assert "has no command" in pod.message
    assert "example/httpapp:1" in pod.message
    assert not cluster_processes(rt.name)


async def test_exec_readiness_and_tcp_liveness_probes(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    rt = await make_cluster()
    down = tmp_path / "down"
    manifest = deployment("probed", 1, readiness=False,
                          env=[{"name": "HEALTH_FILE", "value": str(down)}],
                          liveness={"tcpSocket": {"port": "http"}, "periodSeconds": 0.1,
                                    "initialDelaySeconds": 1, "failureThreshold": 3})
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {
        "exec": {"command": ["/bin/sh", "-c", 'test ! -e "$HEALTH_FILE"']},
        "periodSeconds": 0.1, "failureThreshold": 1, "successThreshold": 2}
    await rt.apply([manifest])
    [pod] = await ready_pods(rt, "probed", 1)
    down.touch()

    async def not_ready() -> bool:
        return not pods_of(rt, "probed")[0].ready
    await wait_for(not_ready, timeout=10, what="exec readiness failing")
    down.unlink()
    [after] = await ready_pods(rt, "probed", 1)
    assert after.restarts == 0, "the tcpSocket liveness probe kept succeeding"
    assert after.containers[0].pid == pod.containers[0].pid
