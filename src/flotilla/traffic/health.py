"""Active HTTP health checks: one task per backend that has a ``healthCheck``, probing
every endpoint each interval with a plain ``GET path`` on a fresh connection.

A fresh connection (not a pooled one) on purpose: it also proves the endpoint still
accepts connections, which a reused keep-alive connection would not show.

Each check also says whether the endpoint *answered* at all (`Upstream.reached`): the
gateway's report of which clusters it reaches (`flotilla.traffic.reachability`) must
tell a network that is cut from an application that answers 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import NamedTuple

from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.model import HealthCheck
from flotilla.traffic.upstream import Upstream

log = logging.getLogger(__name__)


class ProbeResult(NamedTuple):
    #: answered 2xx/3xx within the timeout
    ok: bool
    #: answered with an HTTP status line at all
    answered: bool


async def probe(u: Upstream, hc: HealthCheck) -> ProbeResult:
    """One check of ``u``'s endpoint."""
    e = u.endpoint
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(hc.timeout):
            reader, writer = await asyncio.open_connection(e.address, e.port)
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flotilla-health\r\n"
                         b"Connection: close\r\n\r\n" % (hc.path.encode(), e.name.encode()))
            line = await reader.readline()
        parts = line.split(b" ", 2)
        answered = len(parts) >= 2 and parts[0].startswith(b"HTTP/1.")
        return ProbeResult(answered and parts[1][:1] in (b"2", b"3"), answered)
    except (OSError, TimeoutError, ValueError):
        return ProbeResult(False, False)
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


def apply_reach(u: Upstream, answered: bool, hc: HealthCheck) -> bool:
    """Whether the endpoint is reached: at once on an answer, after the policy's
    ``unhealthyThreshold`` checks in a row without one. True when `Upstream.reached`
    changed (None -> known counts)."""
    was = u.reached
    if answered:
        u.reach_failures = 0
        u.reached = True
    else:
        u.reach_failures += 1
        if u.reach_failures >= hc.unhealthy_threshold:
            u.reached = False
    return u.reached != was


async def check_backend(rt: BackendRuntime, hc: HealthCheck,
                        on_reach: Callable[[], None] | None = None) -> None:
    """Probe every endpoint of ``rt`` every ``hc.interval`` until cancelled;
    ``on_reach`` is called when an endpoint's `Upstream.reached` changed."""
    while True:
        results = await asyncio.gather(*(probe(u, hc) for u in rt.upstreams))
        changed = reach_changed = False
        for u, result in zip(rt.upstreams, results, strict=True):
            ok = result.ok
            rt.metrics.health_checks.labels(*u.metrics.key, "success" if ok else "failure").inc()
            if apply_result(rt, u, ok, hc):
                changed = True
                log.info("endpoint %s of %s is now %s", u.endpoint.name, rt.service,
                         "healthy" if u.healthy else "unhealthy")
            reach_changed |= apply_reach(u, result.answered, hc)
        if changed:
            rt.recompute()
        if reach_changed and on_reach is not None:
            on_reach()
        await asyncio.sleep(hc.interval)


class HealthChecks:
    """The running check tasks, replaced wholesale on each model swap (health state lives
    on the upstreams, so a restart loses nothing). ``on_reach``: told when what the checks
    reach changed (the gateway's reachability report)."""

    def __init__(self, on_reach: Callable[[], None] | None = None) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self.on_reach = on_reach

    def replace(self, runtimes: list[BackendRuntime]) -> None:
        self.cancel()
        for rt in runtimes:
            hc = rt.policy.health_check
            if hc is not None and rt.upstreams:
                self._tasks.append(asyncio.get_running_loop().create_task(
                    check_backend(rt, hc, self._reach_changed), name=f"health {rt.backend.id}"))

    def _reach_changed(self) -> None:
        if self.on_reach is not None:
            self.on_reach()

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
