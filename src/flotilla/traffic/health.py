"""Active HTTP health checks: one task per backend that has a ``healthCheck``, probing
every endpoint each interval with a plain ``GET path`` on a fresh connection.

A fresh connection (not a pooled one) on purpose: it also proves the endpoint still
accepts connections, which a reused keep-alive connection would not show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.model import HealthCheck
from flotilla.traffic.upstream import Upstream

log = logging.getLogger(__name__)


async def probe(u: Upstream, hc: HealthCheck) -> bool:
    """One check: True when the endpoint answered 2xx/3xx within the timeout."""
    e = u.endpoint
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(hc.timeout):
            reader, writer = await asyncio.open_connection(e.address, e.port)
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flotilla-health\r\n"
                         b"Connection: close\r\n\r\n" % (hc.path.encode(), e.name.encode()))
            line = await reader.readline()
        parts = line.split(b" ", 2)
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and \
            parts[1][:1] in (b"2", b"3")
    except (OSError, TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()


def apply_result(rt: BackendRuntime, u: Upstream, ok: bool, hc: HealthCheck) -> bool:
    """Threshold logic; True when the endpoint's health flipped."""
    if ok:
        u.health_failures = 0
        u.health_successes += 1
        if not u.healthy and u.health_successes >= hc.healthy_threshold:
            u.healthy = True
            return True
    else:
        u.health_successes = 0
        u.health_failures += 1
        if u.healthy and u.health_failures >= hc.unhealthy_threshold:
            u.healthy = False
            return True
    return False


async def check_backend(rt: BackendRuntime, hc: HealthCheck) -> None:
    """Probe every endpoint of ``rt`` every ``hc.interval`` until cancelled."""
    while True:
        results = await asyncio.gather(*(probe(u, hc) for u in rt.upstreams))
        changed = False
        for u, ok in zip(rt.upstreams, results, strict=True):
            rt.metrics.health_checks.labels(*u.metrics.key, "success" if ok else "failure").inc()
            if apply_result(rt, u, ok, hc):
                changed = True
                log.info("endpoint %s of %s is now %s", u.endpoint.name, rt.service,
                         "healthy" if u.healthy else "unhealthy")
        if changed:
            rt.recompute()
        await asyncio.sleep(hc.interval)


class HealthChecks:
    """The running check tasks, replaced wholesale on each model swap (health state lives
    on the upstreams, so a restart loses nothing)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def replace(self, runtimes: list[BackendRuntime]) -> None:
        self.cancel()
        for rt in runtimes:
            hc = rt.policy.health_check
            if hc is not None and rt.upstreams:
                self._tasks.append(asyncio.get_running_loop().create_task(
                    check_backend(rt, hc), name=f"health {rt.backend.id}"))

    def cancel(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks = []

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
