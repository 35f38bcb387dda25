"""One container's life: start its process, probe it, restart it with back-off.

Each container is supervised by one asyncio task. The loop is the kubelet's in
miniature: resolve env → spawn → probe until exit → decide (restart policy) → back off
(doubling from ``backoff_base`` to ``backoff_cap``, reset after ``backoff_reset`` of
healthy running) → spawn again. While it waits the container shows CrashLoopBackOff.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flotilla.runtimes.base import ContainerStatus, RuntimeCounters
from flotilla.runtimes.local.config import Timings
from flotilla.runtimes.local.containment import Containment
from flotilla.runtimes.local.envvars import EnvError, container_argv
from flotilla.runtimes.local.manifests import ContainerSpec, Probe
from flotilla.runtimes.local.probes import run_probe
from flotilla.runtimes.local.procs import (
    ProcessId,
    ProcessWatch,
    identify,
    is_alive,
    terminate_tree,
)
from flotilla.runtimes.local.users import (
    IdentityError,
    PodUser,
    agent_user,
    container_user,
    spawn_options,
)

EnvResolver = Callable[[], dict[str, str]]


class ContainerRunner:
    def __init__(self, spec: ContainerSpec, *, pod_name: str, address: str,
                 ports: dict[str, int], log_path: Path, timings: Timings,
                 restart_policy: str, grace: float, resolve_env: EnvResolver,
                 on_change: Callable[[], None], restart_count: int = 0,
                 adopt: ProcessId | None = None, started_at: float | None = None,
                 pod_user: PodUser | None = None, home: Path | None = None,
                 namespace: str = "default", containment: Containment | None = None,
                 counters: RuntimeCounters | None = None,
                 ) -> None:
        self.spec = spec
        self.ports = ports
        self.log_path = log_path
        self.restart_count = restart_count
        self.state = "waiting"
        self.reason = "ContainerCreating"
        self.message = ""
        self.ready = False
        self.last_exit_code: int | None = None
        #: wall-clock start of the current process, persisted so adoption keeps delays
        self.started_at = started_at
        self.watch: ProcessWatch | None = None
        self._pod_name = pod_name
        self._address = address
        self._timings = timings
        self._policy = restart_policy
        self._grace = grace
        self._resolve_env = resolve_env
        self._on_change = on_change
        self._adopt = adopt
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._env: dict[str, str] = {}
        self._pod_user = pod_user or agent_user()
        self._home = home
        #: how the process (and its exec probes) is started: user, group, directory
        self._spawn_options: dict[str, object] = {}
        self._pod_key = (namespace, pod_name)
        self._contain = containment or Containment("", "no runtime")
        self._counters = counters or RuntimeCounters()

    # -- control ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"container {self._pod_name}/{self.spec.name}")

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def process(self) -> ProcessId | None:
        return self.watch.ident if self.watch is not None else None

    async def stop(self, grace: float) -> None:
        """Terminate the process (SIGTERM, ``grace``, SIGKILL) and end supervision."""
        self._stopping = True
        self._wake.set()
        watch = self.watch
        if watch is not None and is_alive(watch.ident):
            await terminate_tree(watch.ident, min(grace, self._timings.max_grace),
                                 watch.exited())
        await self._join()

    async def detach(self) -> None:
        """End supervision but leave the process running (for the next agent to adopt)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        await self._join()

    async def _join(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> ContainerStatus:
        pid = self.watch.ident.pid if self.watch is not None and self.state == "running" \
            else None
        return ContainerStatus(
            name=self.spec.name, image=self.spec.image, state=self.state, reason=self.reason,
            message=self.message, ready=self.ready, restart_count=self.restart_count, pid=pid,
            ports=dict(self.ports), last_exit_code=self.last_exit_code)

    # -- supervision -----------------------------------------------------------------
    def _set(self, state: str, reason: str, message: str = "", *, ready: bool = False) -> None:
        changed = (state, reason, message, ready) != (self.state, self.reason, self.message,
                                                      self.ready)
        self.state, self.reason, self.message, self.ready = state, reason, message, ready
        if changed:
            self._on_change()

    async def _pause(self, seconds: float) -> None:
        """Back-off wait that a stop interrupts at once."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _run(self) -> None:
        crashes = 0
        while not self._stopping:
            watch = self._adopted() or self._spawn()
            if watch is None:
                if self.reason == "NoCommand":
                    await self._wake.wait()  # never fixable without a new template
                    break
                await self._pause(self._delay(crashes))
                continue
            self.watch = watch
            self._set("running", "Running", ready=self.spec.readiness is None)
            began = time.monotonic()
            exited = watch.exited()
            probes = [asyncio.create_task(self._probe_loop(p, live, exited))
                      for p, live in ((self.spec.readiness, False), (self.spec.liveness, True))
                      if p is not None]
            try:
                code = await exited
            finally:
                for task in probes:
                    task.cancel()
                if probes:
                    # the loops also end by themselves once ``exited`` is done
                    await asyncio.wait(probes)
            self._contain.spawned.discard(watch.ident.pid)
            # what the process left behind (daemons, probe leftovers) ends with it
            await self._contain.kill_container(self._pod_key, self.spec.name)
            self.last_exit_code = code
            if self.stopping:
                self._set("terminated", "Completed" if code == 0 else "Error")
                break
            if self._policy == "Never" or (self._policy == "OnFailure" and code == 0):
                self._set("terminated", "Completed" if code == 0 else "Error",
                          f"exit code {code}")
                break
            if time.monotonic() - began >= self._timings.backoff_reset:
                crashes = 0
            delay = self._delay(crashes)
            crashes += 1
            self._set("waiting", "CrashLoopBackOff",
                      f"back-off {delay:g}s restarting failed container={self.spec.name} "
                      f"pod={self._pod_name} (exit code {code})")
            await self._pause(delay)
            if not self.stopping:
                self.restart_count += 1

    def _delay(self, crashes: int) -> float:
        return float(min(self._timings.backoff_base * 2 ** crashes, self._timings.backoff_cap))

    def _adopted(self) -> ProcessWatch | None:
        ident, self._adopt = self._adopt, None
        if ident is None or not is_alive(ident):
            if ident is not None:
                self.restart_count += 1  # it died while no agent was watching
            return None
        self._env = self._safe_env()
        return ProcessWatch(ident, None)

    def _safe_env(self) -> dict[str, str]:
        try:
            return self._resolve_env()
        except EnvError:
            return {}

    def _spawn(self) -> ProcessWatch | None:
        try:
            env = self._resolve_env()
        except EnvError as exc:
            self._set("waiting", "CreateContainerConfigError", str(exc))
            return None
        argv = container_argv(self.spec, env)
        if not argv:
            self._set("waiting", "NoCommand",
                      f"container {self.spec.name} has no command: the local runtime runs "
                      f"command/args as a process (image {self.spec.image!r} is only recorded)")
            return None
        try:
            user = container_user(self._pod_user, self.spec.security, pod=self._pod_name,
                                  container=self.spec.name)
        except IdentityError as exc:
            self._set("waiting", "CreateContainerConfigError", str(exc))
            return None
        self._env = env
        self._spawn_options = spawn_options(user, self.spec.working_dir or self._home)
        try:
            # 0600: a pod's output may hold its secrets; other pods must not read it
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "ab") as log:
                child = self.launch(argv, env, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            hint = "" if user == agent_user() else \
                f" (the container runs as {user}: what it runs must be readable by that user)"
            self._set("waiting", "RunContainerError", f"cannot run {argv[0]!r}: {exc}{hint}")
            return None
        ident = identify(child.pid) or ProcessId(child.pid, 0)
        self.started_at = time.time()
        return ProcessWatch(ident, child)

    def launch(self, argv: Sequence[str], env: dict[str, str],
               **streams: Any) -> subprocess.Popen[bytes]:
        """Start a process of this container (its main process or an exec probe) as its
        user, inside its containment (see `flotilla.runtimes.local.containment`)."""
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
                list(argv), env=env, stdin=subprocess.DEVNULL, close_fds=True,
                **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **streams},
                **self._spawn_options)
        child = self._contain.spawn(self._pod_key, self.spec.name, start)
        self._contain.spawned.add(child.pid)
        return child

    def forget(self, pid: int) -> None:
        """A process `launch` started has been reaped."""
        self._contain.spawned.discard(pid)

    async def _probe_loop(self, probe: Probe, liveness: bool,
                          exited: asyncio.Task[int | None]) -> None:
        delay = probe.initial_delay
        if self.started_at is not None:
            delay = max(0.0, self.started_at + probe.initial_delay - time.time())
        await asyncio.sleep(delay)
        successes = failures = 0
        port = self._probe_port(probe)
        while not exited.done():
            error = await run_probe(probe, self._address, port, self._env, self)
            if error is None:
                successes, failures = successes + 1, 0
                if not liveness and successes >= probe.success_threshold and not self.ready:
                    self._set("running", "Running", ready=True)
            else:
                successes, failures = 0, failures + 1
                self._counters.probe_failed("liveness" if liveness else "readiness")
                if failures >= probe.failure_threshold:
                    if liveness:
                        await self._restart_unhealthy(error)
                        return
                    if self.ready:
                        self._set("running", "Running", f"Readiness probe failed: {error}")
                    self.message = f"Readiness probe failed: {error}"
            await asyncio.sleep(probe.period)

    async def _restart_unhealthy(self, error: str) -> None:
        self._set("running", "Unhealthy", f"Liveness probe failed: {error}; restarting")
        watch = self.watch
        if watch is not None:
            await terminate_tree(watch.ident, min(self._grace, self._timings.max_grace),
                                 watch.exited())

    def _probe_port(self, probe: Probe) -> int | None:
        """Named or numeric containerPort → the port actually assigned on this machine."""
        if probe.action == "exec":
            return None
        for port in self.spec.ports:
            if probe.port in (port.name, port.container_port) and port.key in self.ports:
                return self.ports[port.key]
        return None
