"""Fixtures for runtime tests: real local clusters whose pods are real processes.

Every cluster a test makes is stopped afterwards, and the test fails if any process of
that cluster is still alive (found by its CLUSTER_NAME in /proc/<pid>/environ, which
also catches grandchildren the containers started).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flotilla.runtimes.base import PodStatus
from flotilla.runtimes.local import LocalClusterConfig, LocalRuntime, Timings
from flotilla.runtimes.local.users import PodUser, agent_user
from tests.helpers import wait_for, wait_for_sync


def _mount_cgroup2_in_a_private_namespace() -> None:
    """`ip netns exec` (how the suite runs on the project's machines) gives the run a
    private mount namespace with a fresh /sys, which shows no cgroup v2: mount it there,
    so the runtime's cgroup containment is what these tests exercise. The mount lives
    and dies with that namespace; in the namespace of the process that started the
    run (the host's, for a plain ``pytest``) nothing is mounted."""
    if os.geteuid() != 0 or "cgroup2" in Path("/proc/self/mountinfo").read_text():
        return
    with contextlib.suppress(OSError):
        if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
            return
        target = Path("/sys/fs/cgroup")
        if target.is_dir() and not any(target.iterdir()):
            subprocess.run(["mount", "-t", "cgroup2", "cgroup2", str(target)],
                           check=False, capture_output=True, timeout=10)


_mount_cgroup2_in_a_private_namespace()

APP = Path(__file__).parent / "apps" / "httpapp.py"
FAST = Timings(backoff_base=0.2, backoff_cap=1.6, backoff_reset=600.0, max_grace=5.0)


def cluster_processes(cluster: str) -> list[int]:
    """Live (non-zombie) pids whose environment says CLUSTER_NAME=<cluster>."""
    marker = f"CLUSTER_NAME={cluster}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def deployment(name: str, replicas: int = 1, *, args: tuple[str, ...] = (),
               env: list[dict[str, Any]] | None = None, readiness: bool = True,
               liveness: dict[str, Any] | None = None, cpu: str | None = None,
               grace: float = 2, strategy: dict[str, Any] | None = None,
               command: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app", "image": "example/httpapp:1",
        "command": command if command is not None else [sys.executable, str(APP)],
        "args": list(args), "env": env or [],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    if readiness:
        container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"},
                                       "periodSeconds": 0.1, "failureThreshold": 1}
    if liveness:
        container["livenessProbe"] = liveness
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [container],
                              "terminationGracePeriodSeconds": grace}}}
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def service(name: str, port: int, target: str | int = "http") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": port, "targetPort": target}]}}


async def http_get(url: str) -> str:
    """GET ``url`` (off the event loop, which must keep serving probes meanwhile)."""
    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())
    return await asyncio.to_thread(fetch)


def pods_of(rt: LocalRuntime, app: str) -> list[PodStatus]:
    return [p for p in rt.pods() if p.labels.get("app") == app]


async def ready_pods(rt: LocalRuntime, app: str, count: int,
                     timeout: float = 15.0) -> list[PodStatus]:
    """Wait until exactly ``count`` non-terminating pods of ``app`` exist, all ready."""
    async def check() -> list[PodStatus]:
        pods = [p for p in pods_of(rt, app) if not p.terminating]
        return pods if len(pods) == count and all(p.ready for p in pods) else []
    return await wait_for(check, timeout=timeout, what=f"{count} ready pods of {app}")


MakeCluster = Callable[..., Awaitable[LocalRuntime]]


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[MakeCluster]:
    made: list[LocalRuntime] = []

    async def make(*, name: str | None = None, state_dir: Path | None = None,
                   nodes: int = 3, cpu: str = "4",
                   pod_user: PodUser | None = None,
                   containment: str = "auto") -> LocalRuntime:
        """A started cluster; its pods run as ``pod_user``, by default the test's own
        user (see tests/conftest.py), contained as ``containment`` says."""
        name = name or f"t{uuid.uuid4().hex[:10]}"
        address = f"127.0.{random.randint(100, 250)}.{random.randint(2, 250)}"
        config = LocalClusterConfig.uniform(
            name, state_dir or tmp_path / name, nodes=nodes, cpu=cpu, memory="8Gi",
            address=address, region="eu-west", zone="eu-west-1a", timings=FAST,
            pod_user=pod_user or agent_user(), containment=containment)
        rt = LocalRuntime(config)
        await rt.start()
        made.append(rt)
        return rt

    try:
        yield make
    finally:
        for rt in made:
            try:
                await asyncio.wait_for(rt.stop(keep_pods=False), 15)
            except TimeoutError:
                for t in asyncio.all_tasks():
                    t.print_stack()
                raise
        names = {rt.name for rt in made}
        wait_for_sync(lambda: not any(cluster_processes(n) for n in names), timeout=10,
                      what=f"no process left of clusters {sorted(names)}")
