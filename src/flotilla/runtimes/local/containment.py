"""Containment: nothing a pod starts outlives the pod, daemons and setsid-escapers included.

Two modes, chosen once at agent start and logged (``containment: ...``); the nodes show
it as the label ``local.flotilla.io/containment``.

``cgroup`` (when a writable cgroup v2 hierarchy is found in /proc/self/mountinfo): every
container gets its own cgroup, ``<mount>/<agent's cgroup>/flotilla-<cluster>-<id>/
<namespace>_<pod>/<container>``, where ``<id>`` is a hash of the state directory so two
agents of the same cluster name (two test runs, two users) never share a subtree. Its
exec probes run in the same cgroup, as a Kubernetes exec runs inside the container.
A process cannot leave its cgroup without write access to the common ancestor's
``cgroup.procs`` (root-owned), so ``cgroup.kill`` (or, on kernels before 5.14, SIGKILL
to every pid of ``cgroup.procs`` until it is empty) ends every descendant however it
forked, re-sessioned or rewrote its environment. A container's cgroup is killed when
its main process ends (as Kubernetes ends a container's processes with it), a pod's
when the pod is deleted, and at start the agent kills the cgroups of pods it does not
adopt (pods deleted while no agent ran, or unwanted).

How a process gets into its cgroup without a race: the agent moves *itself* into the
container's cgroup, forks the process (which is born there, so it cannot fork away
before being moved), and moves itself back, all in one synchronous step of the event
loop. This keeps `subprocess.Popen` exactly as it was (its errors for a missing command,
argv, environment, user switch, the pid being the command's own) and needs no
``preexec_fn`` (unsafe with threads, and it runs after the switch to the pod user, who
may not write ``cgroup.procs``), no trampoline process waiting for a go signal (one
more exec per start, and a failed exec would look like the command's own exit 127)
and no ``CLONE_INTO_CGROUP`` (clone3, which Python does not expose). The cost, about a
millisecond per start, and one caveat: a process another thread of the agent forks
during that millisecond lands in the pod's cgroup; the agent forks only from the event
loop. Pod users need nothing in the cgroup directories: the root agent does every write.

``process`` (no cgroup v2, a read-only one as in many CI containers, a non-root agent
without a delegated subtree, or forced with ``FLOTILLA_CONTAINMENT=process``): the
agent becomes a *child subreaper*, so a pod's orphaned descendants are reparented to the
agent rather than to PID 1, and deleting a pod kills its containers' process trees,
every process whose initial environment names the pod (CLUSTER_NAME, POD_NAMESPACE,
POD_NAME), and every *stray*: a child of the agent it did not start, running as another
user than the agent (so a pod's descendant), whose environment names no pod. What can
still escape: a descendant that rewrites its environment and double-forks while the pod
runs as the agent's own user (a non-root agent): nothing then tells it apart from the
agent's other children.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from flotilla.runtimes.local.procs import (
    ProcessId,
    become_subreaper,
    children_of,
    environ,
    identify,
    is_subreaper,
    kill_all,
    pod_processes,
    process_uid,
    reap,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: "auto" (cgroup when possible), "cgroup" (refuse to start without) or "process"
MODES = ("auto", "cgroup", "process")
ENV = "FLOTILLA_CONTAINMENT"
PodKey = tuple[str, str]
_MARKERS = (b"CLUSTER_NAME", b"POD_NAMESPACE", b"POD_NAME")
#: how long a kill may take before the agent gives up waiting (and says so)
_KILL_WAIT = 10.0


class ContainmentError(Exception):
    """``cgroup`` containment was required but cannot work here; the reason says why."""


def parse_mode(text: str | None) -> str:
    mode = (text or "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"containment: expected one of {', '.join(MODES)}, got {text!r}")
    return mode


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def cgroup2_mount(mountinfo: str) -> tuple[Path, str] | None:
    """(mount point, root of the hierarchy it shows) of the first cgroup2 mount."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            return Path(_unescape(fields[4])), _unescape(fields[3])
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def locate_own_cgroup(mountinfo: str, proc_cgroup: str) -> Path | None:
    """The directory of this process's cgroup v2, or None when there is none visible."""
    mount = cgroup2_mount(mountinfo)
    own = own_cgroup(proc_cgroup)
    if mount is None or own is None or own.endswith(" (deleted)"):
        return None
    point, root = mount
    if root != "/":
        if own != root and not own.startswith(root.rstrip("/") + "/"):
            return None  # our cgroup is outside what this mount shows
        own = own[len(root):]
    return point / own.lstrip("/")


class Containment:
    """The ``process`` mode (and the interface of the ``cgroup`` one)."""

    mode = "process"

    def __init__(self, cluster: str, reason: str) -> None:
        self.cluster = cluster
        #: why this mode is active, for the start-up log line
        self.reason = reason
        #: pids this runtime started itself (containers, exec probes): never strays
        self.spawned: set[int] = set()
        self._subreaper = False

    def describe(self) -> str:
        return f"containment: {self.mode} ({self.reason})"

    async def start(self, keep: Iterable[PodKey]) -> None:
        if not self._subreaper:
            _Subreaper.acquire()
            self._subreaper = True

    def spawn(self, pod: PodKey, container: str, start: Callable[[], T]) -> T:
        """Run ``start`` (which forks the container's or a probe's process) so that what
        it forks is contained."""
        return start()

    async def kill_container(self, pod: PodKey, container: str) -> None:
        """End whatever the container's main process left behind (cgroup mode only: in
        this mode leftovers are found per pod, when the pod goes)."""

    async def kill_pod(self, pod: PodKey) -> None:
        """Kill every process of the pod that is still alive, and wait until they are."""
        victims = pod_processes(self.cluster, *pod) + self._strays()
        kill_all(victims)
        await self._reap(victims)

    def forget_pod(self, pod: PodKey) -> None:
        """Remove what the pod left (its cgroup directories)."""

    async def stop(self, *, keep_pods: bool) -> None:
        """The agent stops: with ``keep_pods`` everything stays for the next agent."""
        if self._subreaper:
            _Subreaper.release()
            self._subreaper = False

    def _strays(self) -> list[ProcessId]:
        """Children of the agent it did not start itself, running as another user than
        the agent, and naming no pod in their environment: orphans of some pod that
        reparented to the agent (a subreaper) after hiding their identity."""
        me = os.geteuid()
        out = []
        for pid in children_of(os.getpid()):
            if pid in self.spawned or process_uid(pid) in (None, me):
                continue
            if any(key in environ(pid) for key in _MARKERS):
                continue  # some pod's, and that pod's deletion kills it
            ident = identify(pid)
            if ident is not None:
                out.append(ident)
        return out

    async def _reap(self, victims: list[ProcessId]) -> None:
        """Wait (bounded) for the killed processes to die, and reap those that were
        reparented to the agent so they do not stay zombies."""
        deadline = asyncio.get_running_loop().time() + _KILL_WAIT
        pending = [v for v in victims if v.pid not in self.spawned]
        while pending:
            pending = [v for v in pending if not reap(v)]
            if not pending or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        if pending:
            log.warning("cluster %s: processes %s survived SIGKILL for %gs", self.cluster,
                        [v.pid for v in pending], _KILL_WAIT)


class _Subreaper:
    """The subreaper bit is per process, and one process may run several runtimes (the
    tests do): set it while any runtime in the process mode runs, then put back what
    was there before (`flotilla up` sets it for itself)."""

    users = 0
    before = False

    @classmethod
    def acquire(cls) -> None:
        if cls.users == 0:
            cls.before = is_subreaper()
            become_subreaper()
        cls.users += 1

    @classmethod
    def release(cls) -> None:
        cls.users = max(0, cls.users - 1)
        if cls.users == 0 and not cls.before:
            become_subreaper(False)


class CgroupContainment(Containment):
    """The ``cgroup`` mode: one cgroup v2 per container (see the module docstring)."""

    mode = "cgroup"

    def __init__(self, cluster: str, reason: str, own: Path, root: Path) -> None:
        super().__init__(cluster, reason)
        self.own = own
        self.root = root
        self.has_kill = (root / "cgroup.kill").exists()

    def describe(self) -> str:
        how = "cgroup.kill" if self.has_kill else "SIGKILL to each pid of cgroup.procs"
        return f"containment: cgroup at {self.root}, killed by {how} ({self.reason})"

    async def start(self, keep: Iterable[PodKey]) -> None:
        """Kill and remove the cgroups of pods that are not kept (adopted)."""
        kept = {_pod_dir(p) for p in keep}
        for entry in self._pod_dirs():
            if entry.name not in kept:
                await self._kill(entry)
                _remove_tree(entry)

    def _pod_dirs(self) -> list[Path]:
        with contextlib.suppress(FileNotFoundError):
            return [e for e in self.root.iterdir() if e.is_dir()]
        return []

    def leaf(self, pod: PodKey, container: str) -> Path:
        return self.root / _pod_dir(pod) / container

    def spawn(self, pod: PodKey, container: str, start: Callable[[], T]) -> T:
        leaf = self.leaf(pod, container)
        leaf.mkdir(parents=True, exist_ok=True)
        me = str(os.getpid()).encode()
        back = _current_cgroup() or self.own
        _write(leaf / "cgroup.procs", me)
        try:
            return start()
        finally:
            _write(back / "cgroup.procs", me)

    async def kill_container(self, pod: PodKey, container: str) -> None:
        await self._kill(self.leaf(pod, container))

    async def kill_pod(self, pod: PodKey) -> None:
        await self._kill(self.root / _pod_dir(pod))
        # processes of a pod adopted from a run in the process mode are in no cgroup
        victims = pod_processes(self.cluster, *pod)
        kill_all(victims)
        await self._reap(victims)

    def forget_pod(self, pod: PodKey) -> None:
        _remove_tree(self.root / _pod_dir(pod))

    async def stop(self, *, keep_pods: bool) -> None:
        """Without ``keep_pods`` every pod's cgroup goes; with it only the empty ones
        (a pod between restarts gets its cgroup again when it next starts)."""
        for entry in self._pod_dirs():
            if not keep_pods:
                await self._kill(entry)
            if not keep_pods or not _populated(entry):
                _remove_tree(entry)
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def _kill_now(self, cgroup: Path) -> None:
        """Signal every process in ``cgroup`` and below, never the agent itself."""
        if not cgroup.is_dir():
            return
        if os.getpid() in _members(cgroup):
            raise RuntimeError(f"the agent itself is in {cgroup}; refusing to kill it")
        if self.has_kill:
            with contextlib.suppress(FileNotFoundError):
                _write(cgroup / "cgroup.kill", b"1")
            return
        for pid in _members(cgroup):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def _kill(self, cgroup: Path) -> None:
        """Kill every process in ``cgroup`` and wait (bounded) until it is empty. Without
        cgroup.kill, a process forking while we signal is caught by the next round."""
        deadline = asyncio.get_running_loop().time() + _KILL_WAIT
        while True:
            self._kill_now(cgroup)
            if not _populated(cgroup):
                return
            if asyncio.get_running_loop().time() > deadline:
                log.warning("cluster %s: cgroup %s still has processes %s after %gs",
                            self.cluster, cgroup, sorted(_members(cgroup)), _KILL_WAIT)
                return
            await asyncio.sleep(0.01)


def _pod_dir(pod: PodKey) -> str:
    return f"{pod[0]}_{pod[1]}"  # a namespace (a DNS label) has no "_"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _current_cgroup() -> Path | None:
    try:
        return locate_own_cgroup(Path("/proc/self/mountinfo").read_text(),
                                 Path("/proc/self/cgroup").read_text())
    except OSError:
        return None


def _members(cgroup: Path) -> set[int]:
    """Pids in ``cgroup`` and every cgroup below it."""
    out: set[int] = set()
    for dirpath, _dirs, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                out.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return out


def _populated(cgroup: Path) -> bool:
    """Whether any process (zombies excepted) is left in ``cgroup`` or below."""
    try:
        events = (cgroup / "cgroup.events").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return bool(_members(cgroup))
    return "populated 1" in events


def _remove_tree(cgroup: Path) -> None:
    """rmdir ``cgroup`` and its children, deepest first (a cgroup holds no files)."""
    if not cgroup.is_dir():
        return
    for dirpath, _dirs, _files in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT,):
                log.warning("cannot remove cgroup %s: %s", dirpath, exc)


def _agent_dir_name(cluster: str, state_dir: Path) -> str:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return f"flotilla-{cluster}-{digest}"


def _try_cgroup(cluster: str, state_dir: Path) -> CgroupContainment | str:
    """The cgroup mode if it works here, else the reason it does not."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        return f"cannot read /proc/self: {exc}"
    if cgroup2_mount(mountinfo) is None:
        return "no cgroup2 mount in /proc/self/mountinfo"
    own = locate_own_cgroup(mountinfo, proc_cgroup)
    if own is None or not own.is_dir():
        return "the agent's own cgroup v2 is not visible in this mount namespace"
    root = own / _agent_dir_name(cluster, state_dir)
    me = str(os.getpid()).encode()
    try:
        root.mkdir(exist_ok=True)
        # the real test: can the agent move itself there and back (as spawn does)?
        _write(root / "cgroup.procs", me)
        _write(own / "cgroup.procs", me)
    except OSError as exc:
        with contextlib.suppress(OSError):
            _write(own / "cgroup.procs", me)
        with contextlib.suppress(OSError):
            root.rmdir()
        return f"cgroup v2 at {own} is not writable for this agent: {exc.strerror or exc}"
    return CgroupContainment(cluster, "a writable cgroup v2 was found", own, root)


def choose(cluster: str, state_dir: Path, mode: str) -> Containment:
    """The containment for one agent: ``mode`` is ``auto``, ``cgroup`` or ``process``."""
    if mode == "process":
        return Containment(cluster, f"forced ({ENV}=process or containment option)")
    found = _try_cgroup(cluster, state_dir)
    if isinstance(found, CgroupContainment):
        return found
    if mode == "cgroup":
        raise ContainmentError(f"containment cgroup was asked for but {found}")
    return Containment(cluster, f"{found}; falling back to process trees + subreaper")
