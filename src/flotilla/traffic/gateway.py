"""The gateway process: listeners, the model swap, the timeout sweep, and the entry
point `run_gateway` the ``flotilla gateway`` command calls.

`Gateway` runs from any `RoutingModel` (tests and benchmarks give it a static one);
`run_gateway` feeds it from the API through `ConfigSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field

from flotilla.lifecycle import Loops, Step, serve
from flotilla.lifecycle import run as run_process
from flotilla.traffic.admin import serve_admin
from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.health import HealthChecks
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import EMPTY_MODEL, RoutingModel
from flotilla.traffic.pool import Pool
from flotilla.traffic.proxy import S_HEAD, ClientConnection
from flotilla.traffic.upstream import Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    #: A request head must be complete this long after its first byte (slowloris): 408.
    header_timeout: float = 10.0
    #: Idle keep-alive client connections are closed after this.
    idle_timeout: float = 60.0
    #: Largest request head accepted: 431 beyond.
    max_head: int = 32768
    #: Request body bytes kept to replay on a retry; a larger body is not retried.
    replay_limit: int = 65536
    #: Pooled upstream connections idle longer than this are closed.
    upstream_idle_timeout: float = 30.0
    max_idle_per_endpoint: int = 128
    #: Granularity of the timeout sweep (seconds).
    tick: float = 0.05


@dataclass(slots=True)
class GatewayState:
    """What a request reads at its start; swapped as a whole by `Gateway.update`."""

    model: RoutingModel
    runtimes: dict[str, BackendRuntime] = field(default_factory=dict)


def _split_hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


class Gateway:
    def __init__(self, model: RoutingModel = EMPTY_MODEL, *, listen: str = "127.0.0.1:0",
                 region: str | None = None, admin_listen: str | None = None,
                 options: GatewayOptions | None = None, reuse_port: bool = False) -> None:
        self.listen = listen
        self.admin_listen = admin_listen
        self.region = region
        self.options = options or GatewayOptions()
        self.reuse_port = reuse_port
        self.metrics = GatewayMetrics()
        self.connections: set[ClientConnection] = set()
        #: Upstream connects in progress (tasks must be referenced until done).
        self.connects: set[asyncio.Task[None]] = set()
        self.health = HealthChecks()
        self.state = GatewayState(EMPTY_MODEL)
        self._initial = model
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0
        self.admin_port = 0

    name = "gateway"

    async def start(self, tasks: asyncio.TaskGroup | None = None) -> None:
        """Listen; returns once both listeners accept. The timeout sweep runs in
        ``tasks`` (the process's TaskGroup) when given, else as a task `stop` awaits."""
        self.loop = asyncio.get_running_loop()
        self.update(self._initial)
        host, port = _split_hostport(self.listen)
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, backlog=2048,
            reuse_port=self.reuse_port or None)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.admin_listen:
            ahost, aport = _split_hostport(self.admin_listen)
            self._admin = await serve_admin(ahost, aport, self.metrics.registry, self.describe)
            self.admin_port = self._admin.sockets[0].getsockname()[1]
        self._sweeper = (tasks.create_task if tasks is not None else self.loop.create_task)(
            self._sweep(), name="gateway sweep")
        log.info("gateway listening on %s:%d", host, self.port)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.health.stop()
        connects = list(self.connects)
        for task in connects:
            task.cancel()
        await asyncio.gather(*connects, return_exceptions=True)
        for server in (self._server, self._admin):
            if server is not None:
                server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for rt in self.state.runtimes.values():
            rt.close()
            for u in rt.upstreams:
                u.pool.close()
        for server in (self._server, self._admin):
            if server is not None:
                await server.wait_closed()

    def update(self, model: RoutingModel) -> None:
        """Swap in ``model``. Requests already running finish on the state they started
        with; upstreams (health, ejections, pooled connections) carry over by key."""
        old = self.state
        previous: dict[tuple[str, tuple[str, str, int]], Upstream] = {
            (bid, u.endpoint.key): u for bid, rt in old.runtimes.items() for u in rt.upstreams}
        runtimes: dict[str, BackendRuntime] = {}
        kept: set[int] = set()
        for bid, backend in model.backends.items():
            ups = []
            for ep in backend.endpoints:
                u = previous.get((bid, ep.key))
                if u is None:
                    u = Upstream(ep)
                    u.pool = Pool(self.options.max_idle_per_endpoint)
                else:
                    u.endpoint = ep  # weight/region may have changed
                    kept.add(id(u))
                self.metrics.attach(u, backend.service)
                ups.append(u)
            runtimes[bid] = BackendRuntime(backend, ups, self.region, self.metrics)
        for u in previous.values():
            if id(u) not in kept:
                u.retired = True
                u.pool.close()
        for rt in old.runtimes.values():
            rt.close()
        self.state = GatewayState(model, runtimes)
        self.health.replace(list(runtimes.values()))
        for err in model.errors:
            log.warning("%s", err)

    def describe(self) -> object:
        """The live routing table, for ``/routes`` on the admin listener."""
        return {
            "routes": {h: [{"path": p, "backend": b} for p, b in t]
                       for h, t in self.state.model.routes.items()},
            "backends": {bid: {
                "strategy": rt.policy.strategy.type, "panic": rt.panic,
                "endpoints": [{"cluster": u.endpoint.cluster, "region": u.endpoint.region,
                               "endpoint": u.endpoint.name, "healthy": u.healthy,
                               "available": u.available, "inflight": u.inflight}
                              for u in rt.upstreams]}
                for bid, rt in self.state.runtimes.items()},
            "errors": list(self.state.model.errors),
        }

    async def _sweep(self) -> None:
        """Header, idle and request timeouts for every connection, every tick: one loop
        over the connections beats a timer per request on the hot path."""
        opts = self.options
        loop = self.loop
        ticks = 0
        while True:
            await asyncio.sleep(opts.tick)
            now = loop.time()
            for c in list(self.connections):
                if c.state == S_HEAD:
                    if c.head_since and now - c.head_since > opts.header_timeout:
                        c.head_since = 0.0
                        c.buf.clear()
                        c._local(408, "request header timeout", "header-timeout")
                    elif not c.head_since and now - c.idle_since > opts.idle_timeout \
                            and c.transport is not None:
                        c.transport.close()
                elif c.in_exchange and not c.response_started and c.rt is not None:
                    t = c.rt.policy.timeouts
                    if now - c.t_start > t.total:
                        c.on_timeout(total=True)
                    elif now - c.t_try > t.per_try:
                        c.on_timeout(total=False)
            ticks += 1
            if ticks % max(1, int(1 / opts.tick)) == 0:
                cutoff = now - opts.upstream_idle_timeout
                for rt in self.state.runtimes.values():
                    for u in rt.upstreams:
                        u.pool.expire(cutoff)


async def run_gateway(server: str, token: str, listen: str, region: str | None, *,
                      admin_listen: str | None = None, reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM or cancelled: watch the API at ``server`` and route per
    TrafficPolicy. Components: the API client, the gateway (listening), the config
    source feeding it; stopped in reverse.

    ``reuse_port`` lets several gateway processes share ``listen`` (SO_REUSEPORT, the
    kernel spreads connections): how the gateway uses more than one core. Each process
    watches the API itself and exports its own metrics (give each its own
    ``admin_listen``).
    """
    from flotilla.traffic.config_source import ConfigSource, http_client

    gateway = Gateway(EMPTY_MODEL, listen=listen, region=region, admin_listen=admin_listen,
                      reuse_port=reuse_port)
    client = http_client(server, token)
    source = ConfigSource(client, gateway.update, metrics=gateway.metrics)
    await serve([Step("api client", stop=client.close), gateway,
                 Loops("config source", [("follow", source.run)])])


def serve_forever(server: str, token: str, listen: str, region: str | None, *,
                  admin_listen: str | None = None, reuse_port: bool = False) -> None:
    """Blocking entry point on uvloop (the hot path is measured on uvloop)."""
    import uvloop

    run_process(functools.partial(run_gateway, server, token, listen, region,
                                  admin_listen=admin_listen, reuse_port=reuse_port),
                loop_factory=uvloop.new_event_loop)
