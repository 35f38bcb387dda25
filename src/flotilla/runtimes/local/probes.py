"""One probe attempt: httpGet, tcpSocket or exec, each bounded by timeoutSeconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from flotilla.runtimes.local.manifests import Probe


async def run_probe(probe: Probe, host: str, port: int | None, env: dict[str, str],
                    spawn: Mapping[str, object] | None = None) -> str | None:
    """None on success, else a short reason (shown in the pod's message). ``spawn`` is
    how the container itself is started (user, group, directory): an exec probe is the
    manifest's command too, so it runs with the container's identity, not the agent's."""
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with completion, which would leave a probe loop running after its container
        async with asyncio.timeout(probe.timeout):
            return await _attempt(probe, host, port, env, spawn or {})
    except TimeoutError:
        return f"{probe.action} probe timed out after {probe.timeout:g}s"
    except OSError as exc:
        return f"{probe.action} probe failed: {exc.strerror or exc}"


async def _attempt(probe: Probe, host: str, port: int | None, env: dict[str, str],
                   spawn: Mapping[str, object]) -> str | None:
    if probe.action == "exec":
        return await _exec(probe.command, env, spawn)
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
                spawn: Mapping[str, object]) -> str | None:
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        **spawn)  # type: ignore[arg-type]
    try:
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return None if code == 0 else f"exec probe exited with {code}"
