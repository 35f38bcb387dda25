"""Agent restart: a new runtime on the same state dir adopts what it still wants."""

from __future__ import annotations

from pathlib import Path

from flotilla.runtimes.local import LocalRuntime
from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, cluster_processes, deployment, ready_pods


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
