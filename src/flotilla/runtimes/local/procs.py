"""Processes: identity that survives pid reuse, process trees, graceful termination.

Pods are *not* put in sessions or process groups of their own: they stay in the
agent's process group so that ``chaos kill-cluster`` (SIGKILL to the agent's group)
takes the whole cluster down at once, like a machine losing power. Terminating one pod
therefore cannot signal a group; it signals the pod's process tree, found by walking
``/proc`` for descendants.

A descendant that double-forks away (a daemon) leaves the tree, so termination also
sweeps ``/proc`` for processes whose initial environment names the pod (its
``CLUSTER_NAME``, ``POD_NAMESPACE`` and ``POD_NAME``, which the runtime sets and every
descendant inherits): a pod's processes do not outlive it. Only a process that both
rewrites its environment and escapes the tree survives; real isolation needs cgroups.

A process is identified by (pid, start time in clock ticks since boot, field 22 of
``/proc/<pid>/stat``): a pid reused by an unrelated process after a crash has another
start time, so a restarted agent never adopts or kills a stranger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessId:
    pid: int
    start_time: int


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rfind(")") + 2:].split()


def identify(pid: int) -> ProcessId | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return ProcessId(pid, int(fields[19]))  # field 22 overall; index 19 after state


def is_alive(proc: ProcessId) -> bool:
    """Running (not a zombie) and still the same process that was recorded."""
    fields = _stat_fields(proc.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc.start_time


def descendants(pid: int) -> list[ProcessId]:
    """Every live descendant of ``pid`` (children, grandchildren...), by walking /proc."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[ProcessId] = []
    stack = list(children.get(pid, ()))
    while stack and len(out) < 10_000:
        child = stack.pop()
        ident = identify(child)
        if ident is not None:
            out.append(ident)
        stack.extend(children.get(child, ()))
    return out


def environ(pid: int) -> dict[bytes, bytes]:
    """The initial environment of ``pid`` (empty when gone or not ours to read)."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return {}
    return dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)


def pod_processes(cluster: str, namespace: str, pod: str) -> list[ProcessId]:
    """Every live process started for one pod, found by the environment the runtime gave
    it (so children that left the pod's process tree are found too)."""
    want = {b"CLUSTER_NAME": cluster.encode(), b"POD_NAMESPACE": namespace.encode(),
            b"POD_NAME": pod.encode()}
    me = os.getpid()
    out = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        env = environ(int(entry.name))
        if env and all(env.get(k) == v for k, v in want.items()):
            ident = identify(int(entry.name))
            if ident is not None and is_alive(ident):
                out.append(ident)
    return out


def children_of(pid: int) -> list[int]:
    """Pids of the live (non-zombie) children of ``pid``."""
    out = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def process_uid(pid: int) -> int | None:
    """The real uid of ``pid`` (None when it is gone)."""
    try:
        return (_PROC / str(pid)).stat().st_uid
    except OSError:
        return None


def reap(proc: ProcessId) -> bool:
    """True once ``proc`` no longer runs; a zombie that is the agent's child (an orphan
    reparented to the subreaper agent) is reaped here, since no Popen waits for it."""
    fields = _stat_fields(proc.pid)
    if fields is None or int(fields[19]) != proc.start_time:
        return True
    if fields[0] != "Z":
        return False
    if int(fields[1]) == os.getpid():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)
    return True


def _prctl(option: int, value: int) -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if option == _PR_GET_CHILD_SUBREAPER:
            out = ctypes.c_int(0)
            if libc.prctl(option, ctypes.byref(out), 0, 0, 0) != 0:
                return None
            return out.value
        return int(libc.prctl(option, value, 0, 0, 0))
    except (OSError, AttributeError):
        return None


_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def become_subreaper(enable: bool = True) -> None:
    """Have orphaned descendants reparented to this process rather than to PID 1 (or
    the nearest other subreaper), so they stay where this process can find, kill and
    reap them; ``enable=False`` undoes it. Linux only (prctl PR_SET_CHILD_SUBREAPER);
    elsewhere nothing changes."""
    _prctl(_PR_SET_CHILD_SUBREAPER, int(enable))


def is_subreaper() -> bool:
    return bool(_prctl(_PR_GET_CHILD_SUBREAPER, 0))


def kill_all(processes: list[ProcessId]) -> None:
    for proc in processes:
        if is_alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)


def signal_tree(root: ProcessId, sig: signal.Signals,
                known: list[ProcessId] | None = None) -> list[ProcessId]:
    """Send ``sig`` to ``root`` and its descendants (plus ``known`` ones that have since
    been orphaned); returns the tree it signalled so a later SIGKILL reaches the same set."""
    tree = [root, *descendants(root.pid)] if is_alive(root) else []
    for proc in known or ():
        if proc not in tree:
            tree.append(proc)
    for proc in tree:
        if is_alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)
    return tree


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def wait_exit(pid: int) -> None:
    """Return once ``pid`` has exited (or is gone), without polling: a pidfd becomes
    readable at exit whether or not the process is our child."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _resolve, exited)
        try:
            await exited
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)


class ProcessWatch:
    """A container's process, spawned by us or adopted from a previous agent run.

    We spawn with `subprocess.Popen`, not asyncio's subprocess API: asyncio kills a still
    running child when its transport is closed or collected, which would defeat
    ``stop(keep_pods=True)``. Exit is observed through a pidfd for both kinds.
    """

    def __init__(self, ident: ProcessId, child: subprocess.Popen[bytes] | None) -> None:
        self.ident = ident
        self._child = child
        self._exit: asyncio.Task[int | None] | None = None

    @property
    def adopted(self) -> bool:
        return self._child is None

    def exited(self) -> asyncio.Task[int | None]:
        """A task resolving to the exit code (128+signal when killed by a signal, as
        Kubernetes reports it); None for adopted processes, whose status is not ours."""
        if self._exit is None:
            self._exit = asyncio.get_running_loop().create_task(self._wait())
        return self._exit

    async def _wait(self) -> int | None:
        if self._child is not None:
            await wait_exit(self.ident.pid)
            code = self._child.wait()
            return 128 - code if code < 0 else code
        if is_alive(self.ident):
            await wait_exit(self.ident.pid)
        return None


async def terminate_tree(root: ProcessId, grace: float,
                         exited: asyncio.Future[int | None] | None = None) -> None:
    """SIGTERM the tree, wait up to ``grace`` seconds for the root to exit, then SIGKILL
    what is left of the tree and wait (bounded) until the root is gone."""
    tree = signal_tree(root, signal.SIGTERM) if grace > 0 else []
    if grace > 0:
        await _wait_gone(root, exited, grace)
    signal_tree(root, signal.SIGKILL, tree)
    await _wait_gone(root, exited, 5.0)


async def _wait_gone(root: ProcessId, exited: asyncio.Future[int | None] | None,
                     seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            if exited is not None:
                await asyncio.shield(exited)
            elif is_alive(root):
                await wait_exit(root.pid)
