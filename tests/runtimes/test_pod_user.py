"""The pod user boundary: pods of a root agent run as nobody (or their runAsUser), with
their own directory and a clean environment, and none of their processes outlives them.

The pods here run /bin/sh, which any user may execute (the suite's own interpreter may
not be readable by nobody). They write what they saw to their log, which the agent
opened for them.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.runtimes.base import ManifestError
from flotilla.runtimes.local import LocalRuntime, users
from flotilla.runtimes.local.manifests import parse_template
from flotilla.runtimes.local.users import IdentityError, PodUser, SecurityContext
from tests.helpers import wait_for
from tests.runtimes.conftest import MakeCluster, cluster_processes, pods_of

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
NOBODY = pwd.getpwnam("nobody")


def shell_pod(name: str, script: str, *, pod_security: dict[str, Any] | None = None,
              container_security: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "sh", "image": "busybox",
                                 "command": ["/bin/sh", "-c", script]}
    if container_security is not None:
        container["securityContext"] = container_security
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if pod_security is not None:
        spec["securityContext"] = pod_security
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


async def running_pid(rt: LocalRuntime, app: str) -> int:
    async def check() -> int | None:
        pods = pods_of(rt, app)
        return pods[0].containers[0].pid if pods and pods[0].containers else None
    return await wait_for(check, timeout=10, what=f"{app} running")


def proc_ids(pid: int) -> tuple[int, int]:
    """(real uid, real gid) of a process, from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.partition("=")[::2] for item in raw.split("\0") if item)


@pytest.fixture
def secrets() -> Iterator[Path]:
    """A folder anyone may enter (0755), with the agent user's 0600 credential, an
    up.json (0600) and a public 0644 file that a pod *can* read (the control)."""
    with tempfile.TemporaryDirectory(prefix="flotilla-podsec-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        for file, mode in (("agent.token", 0o600), ("up.json", 0o600), ("public", 0o644)):
            (folder / file).write_text(f"content of {file}\n")
            (folder / file).chmod(mode)
        yield folder


@root_only
async def test_pod_of_a_root_agent_runs_as_nobody_and_cannot_read_the_agents_files(
        make_cluster: MakeCluster, secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_TOKEN", "agent-secret-token")
    monkeypatch.setenv("FLOTILLA_SERVER", "https://127.0.0.1:1")
    rt = await make_cluster(pod_user=users.parse_pod_user(None))
    script = (f"for f in agent.token up.json public; do "
              f"if cat {secrets}/$f >/dev/null 2>&1; then echo read:$f; "
              f"else echo denied:$f; fi; done; echo cwd:$(pwd); echo done; exec sleep 60")
    await rt.apply([shell_pod("peek", script)])
    pid = await running_pid(rt, "peek")
    [pod] = pods_of(rt, "peek")
    log = await wait_for(lambda: _log_with(rt, pod.name, "done"), what="the pod's report")
    assert "denied:agent.token" in log
    assert "denied:up.json" in log
    assert "read:public" in log  # the control: the check itself works
    assert proc_ids(pid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    env = environ(pid)
    assert not [k for k in env if k.startswith("FLOTILLA_")]
    assert "agent-secret-token" not in "".join(env.values())
    home = Path(env["HOME"])
    assert home != Path(os.environ["HOME"])
    assert home.parent == rt.config.state_dir / "pods"
    assert f"cwd:{home}" in log
    mode = os.stat(home)
    assert (stat.S_IMODE(mode.st_mode), mode.st_uid) == (0o700, NOBODY.pw_uid)
    log_mode = os.stat(rt.log_path("default", pod.name)).st_mode
    assert stat.S_IMODE(log_mode) == 0o600  # other pods cannot read its output
    await rt.apply([])
    await wait_for(lambda: _gone(home), what="the pod's directory removed with it")


async def _log_with(rt: LocalRuntime, pod: str, marker: str) -> str | None:
    try:
        text = rt.logs("default", pod)
    except KeyError:
        return None
    return text if marker in text else None


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)


@root_only
async def test_run_as_user_and_group_are_honoured_container_over_pod(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster(pod_user=users.parse_pod_user(None))
    await rt.apply([
        shell_pod("podlevel", "exec sleep 60",
                  pod_security={"runAsUser": 4242, "runAsGroup": 4343}),
        shell_pod("both", "exec sleep 60",
                  pod_security={"runAsUser": 4242, "runAsGroup": 4343},
                  container_security={"runAsUser": 4444, "runAsNonRoot": True}),
    ])
    assert proc_ids(await running_pid(rt, "podlevel")) == (4242, 4343)
    assert proc_ids(await running_pid(rt, "both")) == (4444, 4343)


@root_only
async def test_run_as_non_root_with_uid_0_is_refused_with_a_clear_status(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster(pod_user=users.parse_pod_user(None))
    await rt.apply([
        shell_pod("rootly", "exec sleep 60",
                  container_security={"runAsUser": 0, "runAsNonRoot": True})])

    async def refused() -> str | None:
        pods = pods_of(rt, "rootly")
        if pods and pods[0].reason == "CreateContainerConfigError":
            return pods[0].message
        return None
    message = await wait_for(refused, what="the refusal")
    assert "runAsUser breaks non-root policy" in message
    assert "container: sh" in message
    [pod] = pods_of(rt, "rootly")
    assert pod.containers[0].pid is None
    assert pod.phase == "Pending"


async def test_run_as_non_root_refuses_a_root_pod_user(make_cluster: MakeCluster) -> None:
    rt = await make_cluster(pod_user=PodUser(0, 0))
    await rt.apply([shell_pod("rootly", "exec sleep 60", pod_security={"runAsNonRoot": True})])

    async def refused() -> str | None:
        pods = pods_of(rt, "rootly")
        return pods[0].message if pods and pods[0].reason == "CreateContainerConfigError" \
            else None
    assert "image will run as root" in await wait_for(refused, what="the refusal")


async def test_a_daemon_a_pod_leaves_behind_dies_with_the_pod(
        make_cluster: MakeCluster) -> None:
    rt = await make_cluster()
    # The subshell forks `sleep` and exits at once: the sleep is reparented away from
    # the container's process tree before the pod is ever stopped.
    await rt.apply([shell_pod("daemon", "(sleep 300 &); echo forked; exec sleep 300")])
    await running_pid(rt, "daemon")
    await wait_for(lambda: _count(rt.name, 2), what="container and its daemon")
    await rt.apply([])
    await wait_for(lambda: _count(rt.name, 0), what="no process of the pod left")


async def _count(cluster: str, n: int) -> bool:
    return len(cluster_processes(cluster)) == n


# -- rules without processes -------------------------------------------------------------
def test_security_context_is_validated() -> None:
    def template(security: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"securityContext": security,
                         "containers": [{"name": "c", "command": ["true"]}]}}
    with pytest.raises(ManifestError, match=r"spec.securityContext.runAsUser"):
        parse_template(template({"runAsUser": "root"}))
    with pytest.raises(ManifestError, match=r"runAsNonRoot must be true or false"):
        parse_template(template({"runAsNonRoot": "yes"}))
    parsed = parse_template(template({"runAsUser": 7, "capabilities": {"drop": ["ALL"]}}))
    assert parsed.containers[0].security == SecurityContext(7, None, None)


def test_a_non_root_agent_refuses_another_run_as_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    me = PodUser(1000, 1000)
    monkeypatch.setattr(users, "agent_user", lambda: me)
    assert users.container_user(me, SecurityContext(1000, 1000), pod="p", container="c") == me
    with pytest.raises(IdentityError, match=r"runAsUser cannot be honoured.*not root"):
        users.container_user(me, SecurityContext(run_as_user=2000), pod="p", container="c")
    with pytest.raises(IdentityError, match=r"runAsGroup cannot be honoured"):
        users.container_user(me, SecurityContext(run_as_group=5), pod="p", container="c")
    assert users.parse_pod_user(None) == me
    with pytest.raises(ValueError, match=r"--pod-user root: .* not root"):
        users.parse_pod_user("root")


def test_pod_user_parsing() -> None:
    if os.geteuid() == 0:
        assert users.parse_pod_user(None) == PodUser(NOBODY.pw_uid, NOBODY.pw_gid)
        assert users.parse_pod_user("4000:4001") == PodUser(4000, 4001)
        assert users.parse_pod_user("nobody:0") == PodUser(NOBODY.pw_uid, 0)
    with pytest.raises(ValueError, match=r"no user named 'no-such-user-x'"):
        users.parse_pod_user("no-such-user-x")
    with pytest.raises(ValueError, match=r"expected USER\[:GROUP\]"):
        users.parse_pod_user(":5")
