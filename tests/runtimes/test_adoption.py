"""Agent restart: a new runtime on the same state dir adopts what it still wants."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from flotilla.runtimes.local import LocalRuntime
from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, cluster_processes, deployment, ready_pods

AGENT = Path(__file__).parent / "apps" / "agent.py"


def _pids(rt: LocalRuntime, app: str) -> set[int | None]:
    return {p.containers[0].pid for p in rt.pods() if p.labels.get("app") == app}


async def test_restart_adopts_wanted_pods_and_kills_the_rest(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    state = tmp_path / "cluster-state"
    first = await make_cluster(state_dir=state)
    await first.apply([deployment("web", 2), deployment("gone", 1)])
    await ready_pods(first, "web", 2)
    await ready_pods(first, "gone", 1)
    web = _pids(first, "web")
    gone = _pids(first, "gone")
    # The agent learns "gone" is no longer wanted and dies before acting on it.
    await first.apply([deployment("web", 2)])
    await first.stop(keep_pods=True)
    assert set(cluster_processes(first.name)) == web | gone

    second = await make_cluster(name=first.name, state_dir=state)
    assert set(cluster_processes(first.name)) == web, "unwanted pod killed during start()"
    pods = await ready_pods(second, "web", 2)
    assert {p.containers[0].pid for p in pods} == web
    assert all(p.restarts == 0 for p in pods)

    async def settled() -> bool:
        return set(cluster_processes(first.name)) == web and len(second.pods()) == 2
    await wait_for(settled, timeout=5, what="no duplicate pods")
    # Adopted processes are supervised: killing one is noticed and it restarts.
    await second.kill_pod("default", pods[0].name)
    await ready_pods(second, "web", 2)


def _run_agent(state: Path, cluster: str,
               mode: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Start the stand-in agent in its own process group, as `flotilla up` does."""
    proc = subprocess.Popen(
        [sys.executable, str(AGENT), str(state), cluster, mode], stdout=subprocess.PIPE,
        text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        proc.wait()
        raise AssertionError("stand-in agent exited before its pods were ready")
    return proc, json.loads(line)


async def test_pods_orphaned_by_an_exited_agent_are_adopted(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = f"t{uuid.uuid4().hex[:10]}"
    proc, pods = await asyncio.to_thread(_run_agent, tmp_path, cluster, "detach")
    try:
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert set(cluster_processes(cluster)) == set(pods.values())
        rt = await make_cluster(name=cluster, state_dir=tmp_path)
        adopted = await ready_pods(rt, "web", 2)
        assert {p.name: p.containers[0].pid for p in adopted} == pods
        # Not our children any more: exit is still noticed (pidfd) and the pod restarts.
        os.kill(next(iter(pods.values())), signal.SIGKILL)

        async def restarted() -> bool:
            return sum(p.restarts for p in rt.pods()) == 1 and all(p.ready for p in rt.pods())
        await wait_for(restarted, timeout=10, what="adopted container restarted")
        assert len(cluster_processes(cluster)) == 2
    finally:
        _kill_group(proc)


async def test_killing_the_agent_group_kills_its_pods_and_a_restart_rebuilds_them(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = f"t{uuid.uuid4().hex[:10]}"
    proc, pods = await asyncio.to_thread(_run_agent, tmp_path, cluster, "hold")
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # chaos kill-cluster
        await asyncio.to_thread(proc.wait, 10)
        await wait_for(lambda: _true(not cluster_processes(cluster)), timeout=5,
                       what="the whole cluster died with its agent")
    finally:
        _kill_group(proc)
    rt = await make_cluster(name=cluster, state_dir=tmp_path)
    back = await ready_pods(rt, "web", 2)
    assert {p.name for p in back} == set(pods), "same pods, restarted in place"
    assert [p.restarts for p in back] == [1, 1]
    assert len(cluster_processes(cluster)) == 2


async def _true(value: bool) -> bool:
    return value


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
