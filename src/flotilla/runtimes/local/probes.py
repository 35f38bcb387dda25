"""One probe attempt: httpGet, tcpSocket or exec, each bounded by timeoutSeconds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Sequence
from typing import Any, Protocol

from flotilla.runtimes.local.manifests import Probe
from flotilla.runtimes.local.procs import identify, signal_tree, wait_exit


class Launcher(Protocol):
    """Starts a process of the probed container (see `ContainerRunner.launch`)."""

    def launch(self, argv: Sequence[str], env: dict[str, str],
               **streams: Any) -> subprocess.Popen[bytes]: ...

    def forget(self, pid: int) -> None: ...


async def run_probe(probe: Probe, host: str, port: int | None, env: dict[str, str],
                    launcher: Launcher | None = None) -> str | None:
    """None on success, else a short reason (shown in the pod's message). ``launcher``
    starts processes the way the container's own are started (user, group, directory,
    cgroup): an exec probe is the manifest's command too, so it runs with the
    container's identity, not the agent's, and nothing it leaves behind outlives the
    container."""
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with completion, which would leave a probe loop running after its container
        async with asyncio.timeout(probe.timeout):
            return await _attempt(probe, host, port, env, launcher)
    except TimeoutError:
        return f"{probe.action} probe timed out after {probe.timeout:g}s"
    except OSError as exc:
        return f"{probe.action} probe failed: {exc.strerror or exc}"


async def _attempt(probe: Probe, host: str, port: int | None, env: dict[str, str],
                   launcher: Launcher | None) -> str | None:
    if probe.action == "exec":
        if launcher is None:
            return "exec probe: no container to run it in"
        return await _exec(probe.command, env, launcher)
    if port is None:
        return f"probe port {probe.port!r} is not a port of this container"
    if probe.action == "tcpSocket":
        _, writer = await asyncio.open_connection(probe.host or host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return await _http_get(probe.host or host, port, probe.path)


async def _http_get(host: str, port: int, path: str) -> str | None:
    """A minimal HTTP/1.0 GET: enough to read a status line, with no client library
    state (connection pools) to leak between probe periods."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                     "User-Agent: flotilla-probe\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"HTTP probe got no valid status line: {status_line[:60]!r}"
    status = int(parts[1])
    return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"


async def _exec(command: tuple[str, ...], env: dict[str, str],
                launcher: Launcher) -> str | None:
    """Run the probe's command; exit is observed through a pidfd (no asyncio child
    watcher), and a probe cut short by its timeout is killed with its process tree."""
    proc = launcher.launch(command, env)
    try:
        await wait_exit(proc.pid)
        code = proc.wait()
    finally:
        if proc.returncode is None:
            ident = identify(proc.pid)
            if ident is not None:
                signal_tree(ident, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # SIGKILLed: returns at once
        launcher.forget(proc.pid)
    return None if code == 0 else f"exec probe exited with {code}"
