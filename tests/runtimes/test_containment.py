"""Containment: nothing a pod, its exec probes or their descendants start outlives the pod.

Each escape is tried in both modes — ``cgroup`` (a cgroup v2 per container; skipped
where none is writable) and ``process`` (forced: process trees, the pod's environment
and the agent as child subreaper). The escapers are ``sleep <N>`` with a unique N, so
they are found by their command line even when they cleared their environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.runtimes.local import LocalRuntime
from flotilla.runtimes.local.containment import (
    CgroupContainment,
    ContainmentError,
    cgroup2_mount,
    choose,
    locate_own_cgroup,
    parse_mode,
)
from flotilla.runtimes.local.procs import is_subreaper
from flotilla.runtimes.local.runtime import CONTAINMENT_LABEL
from flotilla.runtimes.local.users import PodUser
from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, pods_of


def _cgroup_available() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        found = choose("probe", Path(tmp), "auto")
        asyncio.run(found.stop(keep_pods=False))
        return isinstance(found, CgroupContainment)


CGROUP = _cgroup_available()
needs_cgroup = pytest.mark.skipif(not CGROUP, reason="no writable cgroup v2 here")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
MODES = [pytest.param("cgroup", marks=needs_cgroup), "process"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def marker() -> Iterator[int]:
    """A unique sleep duration; whatever still runs with it is killed after the test."""
    n = random.randint(3_000_000, 3_999_999)
    yield n
    for pid in _sleepers(n):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sleepers(n: int) -> list[int]:
    """Live (non-zombie) pids whose command line is exactly ``sleep <n>``."""
    want = f"sleep\0{n}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != want:
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def _in_cgroup(pid: int, rt: LocalRuntime) -> bool:
    """Whether ``pid`` is in a cgroup below the runtime's own subtree."""
    contain = rt.containment
    assert isinstance(contain, CgroupContainment)
    line = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[-1]
    mine = "/" + str(contain.root.relative_to(_mount_point()))  # a mount of "/" here
    return line.startswith("0::") and line[3:].startswith(mine + "/")


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _mount_point() -> Path:
    found = cgroup2_mount(Path("/proc/self/mountinfo").read_text())
    assert found is not None
    return found[0]


def shell_pod(name: str, script: str, *, probe: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "sh", "image": "busybox",
                                 "command": ["/bin/sh", "-c", script]}
    if probe is not None:
        container["readinessProbe"] = {"exec": {"command": probe}, "periodSeconds": 0.2}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 1}}}}


async def _started(n: int, count: int) -> list[int]:
    async def check() -> list[int]:
        found = _sleepers(n)
        return found if len(found) >= count else []
    return await wait_for(check, timeout=15, what=f"{count} processes 'sleep {n}'")


async def _all_gone(rt: LocalRuntime, n: int) -> None:
    async def gone() -> bool:
        return not pods_of(rt, "esc") and not _sleepers(n)
    await wait_for(gone, timeout=15, what=f"pod deleted and no 'sleep {n}' left")


ESCAPES = {
    # the main process plus a daemon: a subshell forks it and exits (double fork)
    "double-fork": "(sleep {n} &); exec sleep {n}",
    # the grandchild leaves the session and process group too
    "setsid": "(setsid sleep {n} &); exec sleep {n}",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
async def test_a_deleted_pod_leaves_no_process(make_cluster: MakeCluster, mode: str,
                                               marker: int, escape: str) -> None:
    rt = await make_cluster(nodes=1, containment=mode)
    assert rt.containment.mode == mode
    assert rt.nodes()[0].labels[CONTAINMENT_LABEL] == mode
    await rt.apply([shell_pod("esc", ESCAPES[escape].format(n=marker))])
    pids = await _started(marker, 2)
    if mode == "cgroup":
        assert all(_in_cgroup(pid, rt) for pid in pids)
    await rt.apply([])
    await _all_gone(rt, marker)


async def test_an_exec_probes_grandchild_dies_with_its_pod(
        make_cluster: MakeCluster, mode: str, marker: int) -> None:
    rt = await make_cluster(nodes=1, containment=mode)
    # the probe succeeds and leaves a setsid'd daemon behind at every period
    probe = ["/bin/sh", "-c", f"(setsid sleep {marker} &); exit 0"]
    await rt.apply([shell_pod("esc", "exec sleep 300", probe=probe)])
    pids = await _started(marker, 1)

    async def ready() -> bool:
        return any(p.ready for p in pods_of(rt, "esc"))
    await wait_for(ready, timeout=15, what="the exec probe passing")
    if mode == "cgroup":  # the probe ran inside the container's cgroup
        assert _in_cgroup(pids[0], rt)
    await rt.apply([])
    await _all_gone(rt, marker)


@needs_cgroup
async def test_cgroup_mode_catches_a_setsid_escaper_that_clears_its_environment(
        make_cluster: MakeCluster, marker: int) -> None:
    rt = await make_cluster(nodes=1, containment="cgroup")
    await rt.apply([shell_pod("esc", f"(setsid env -i sleep {marker} &); exec sleep 300")])
    (pid,) = await _started(marker, 1)
    assert b"POD_NAME" not in _read(f"/proc/{pid}/environ")
    await rt.apply([])
    await _all_gone(rt, marker)


@root_only
async def test_process_mode_catches_a_hidden_escaper_of_a_pod_running_as_another_user(
        make_cluster: MakeCluster, marker: int) -> None:
    """No cgroup: a daemon that cleared its environment and left the tree is still an
    orphan reparented to the (subreaper) agent, running as the pod user, not the agent."""
    nobody = pwd.getpwnam("nobody")
    rt = await make_cluster(nodes=1, containment="process",
                            pod_user=PodUser(nobody.pw_uid, nobody.pw_gid))
    assert is_subreaper()
    await rt.apply([shell_pod("esc", f"(setsid env -i sleep {marker} &); exec sleep 300")])
    (pid,) = await _started(marker, 1)
    stat = _read(f"/proc/{pid}/stat").decode()
    assert int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid(), \
        "the orphan was reparented to the agent"
    await rt.apply([])
    await _all_gone(rt, marker)


@needs_cgroup
async def test_a_container_that_exits_takes_its_leftovers_with_it(
        make_cluster: MakeCluster, marker: int) -> None:
    """As in Kubernetes, a container's processes end with its main process: a restart
    does not pile up the daemons of every earlier run."""
    rt = await make_cluster(nodes=1, containment="cgroup")
    await rt.apply([shell_pod("esc", f"(setsid sleep {marker} &); sleep 0.3; exit 1")])

    async def restarted() -> bool:
        return any(p.restarts >= 2 for p in pods_of(rt, "esc"))
    await wait_for(restarted, timeout=20, what="two restarts")
    assert len(_sleepers(marker)) <= 1, "daemons of earlier runs were killed"
    await rt.apply([])
    await _all_gone(rt, marker)


@needs_cgroup
async def test_cgroups_survive_an_agent_restart_and_unwanted_ones_are_killed_at_start(
        make_cluster: MakeCluster, tmp_path: Path, marker: int) -> None:
    state = tmp_path / "state"
    first = await make_cluster(state_dir=state, nodes=1, containment="cgroup")
    hidden = f"(setsid env -i sleep {marker} &); exec sleep 300"
    await first.apply([shell_pod("esc", hidden)])
    (daemon,) = await _started(marker, 1)
    root = first.containment
    assert isinstance(root, CgroupContainment)
    # The agent learns the pod is unwanted and stops before acting on it.
    await first.apply([])
    await first.stop(keep_pods=True)
    assert _sleepers(marker) == [daemon], "a kept pod's processes keep running"

    second = await make_cluster(name=first.name, state_dir=state, nodes=1,
                                containment="cgroup")
    assert second.containment.root == root.root, "the same subtree"  # type: ignore
    assert _sleepers(marker) == [], "the unwanted pod's cgroup was killed at start"
    assert not [e for e in root.root.iterdir() if e.is_dir()]


@needs_cgroup
async def test_adopted_pods_stay_contained(make_cluster: MakeCluster, tmp_path: Path,
                                           marker: int) -> None:
    state = tmp_path / "state"
    first = await make_cluster(state_dir=state, nodes=1, containment="cgroup")
    hidden = f"(setsid env -i sleep {marker} &); exec sleep 300"
    await first.apply([shell_pod("esc", hidden)])
    await _started(marker, 1)
    await first.stop(keep_pods=True)
    second = await make_cluster(name=first.name, state_dir=state, nodes=1,
                                containment="cgroup")

    async def adopted() -> bool:
        return any(p.containers and p.containers[0].pid for p in pods_of(second, "esc"))
    await wait_for(adopted, timeout=10, what="the pod adopted")
    assert len(_sleepers(marker)) == 1
    await second.apply([])
    await _all_gone(second, marker)


@needs_cgroup
async def test_stopping_the_agent_removes_its_cgroup_subtree(
        make_cluster: MakeCluster, marker: int) -> None:
    rt = await make_cluster(nodes=1, containment="cgroup")
    contain = rt.containment
    assert isinstance(contain, CgroupContainment)
    await rt.apply([shell_pod("esc", f"(sleep {marker} &); exec sleep 300")])
    await _started(marker, 1)
    await rt.stop(keep_pods=False)
    assert not contain.root.exists()
    assert _sleepers(marker) == []


# -- units ---------------------------------------------------------------------------

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
BIND = "40 23 0:26 /kubepods/pod1 /sys/fs/c\\040g rw - cgroup2 cgroup2 rw\n"


def test_finding_the_cgroup2_mount_and_our_cgroup() -> None:
    assert cgroup2_mount(HYBRID) == (Path("/sys/fs/cgroup/unified"), "/")
    assert cgroup2_mount(UNIFIED) == (Path("/sys/fs/cgroup"), "/")
    assert cgroup2_mount(HYBRID.replace("cgroup2 cgroup2", "cgroup cgroup")) is None
    assert locate_own_cgroup(UNIFIED, "0::/user.slice/a.scope\n") == \
        Path("/sys/fs/cgroup/user.slice/a.scope")
    assert locate_own_cgroup(HYBRID, "4:memory:/x\n0::/\n") == Path("/sys/fs/cgroup/unified")
    # a mount showing only part of the hierarchy (escaped space in the mount point)
    assert locate_own_cgroup(BIND, "0::/kubepods/pod1/c1\n") == Path("/sys/fs/c g/c1")
    assert locate_own_cgroup(BIND, "0::/elsewhere\n") is None
    assert locate_own_cgroup(UNIFIED, "1:name=systemd:/\n") is None  # v1 only


def test_the_containment_option_is_checked() -> None:
    assert parse_mode(None) == parse_mode("") == "auto"
    assert parse_mode(" Process ") == "process"
    with pytest.raises(ValueError, match="containment: expected one of auto, cgroup, "
                                         "process, got 'cgroups'"):
        parse_mode("cgroups")


def test_requiring_cgroups_where_none_is_writable_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flotilla.runtimes.local.containment as containment

    monkeypatch.setattr(containment, "_try_cgroup", lambda *_: "no cgroup2 mount in "
                        "/proc/self/mountinfo")
    with pytest.raises(ContainmentError, match="cgroup was asked for but no cgroup2"):
        choose("c", tmp_path, "cgroup")
    fallback = choose("c", tmp_path, "auto")
    assert fallback.mode == "process"
    assert "falling back" in fallback.describe()
