"""The gateway process: listeners, the model swap, and the entry point `run_gateway` the
``flotilla gateway`` command calls.

`Gateway` runs from any `RoutingModel` (tests and benchmarks give it a static one);
`run_gateway` feeds it from the API through `ConfigSource`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from collections.abc import Mapping
from pathlib import Path

from flotilla.lifecycle import FatalError, Loops, Step, serve
from flotilla.lifecycle import run as run_process
from flotilla.traffic.admin import serve_admin
from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.balancers.table import BALANCERS, Factory
from flotilla.traffic.env import GatewayOptions, GatewayState, ProxyEnv
from flotilla.traffic.health import HealthChecks
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import EMPTY_MODEL, RoutingModel
from flotilla.traffic.pool import Pool
from flotilla.traffic.proxy import ClientConnection
from flotilla.traffic.tls import Certificates
from flotilla.traffic.tracing import AccessLog, SpanExporter
from flotilla.traffic.upstream import Upstream

__all__ = ["Gateway", "GatewayOptions", "GatewayState", "run_gateway", "serve_forever"]

log = logging.getLogger(__name__)


def _split_hostport(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def raise_fd_limit(options: GatewayOptions) -> int:
    """Raise this process's soft open-file limit towards what ``max_connections`` may
    need (a client connection can hold an upstream one, plus listeners and pools), up
    to the hard limit; warn when that is not enough. Returns the soft limit.

    Why here: a cap above the fd limit is no cap - accept fails with EMFILE first, and
    then for everyone. Only the process entry point (`run_gateway`) calls it."""
    want = 2 * options.max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft < want:
        log.warning("the open-file limit (%d) is below what max_connections=%d may need "
                    "(%d): lower --max-connections or raise the hard limit (ulimit -Hn)",
                    soft, options.max_connections, want)
    return soft


class Gateway:
    def __init__(self, model: RoutingModel = EMPTY_MODEL, *, listen: str = "127.0.0.1:0",
                 region: str | None = None, admin_listen: str | None = None,
                 options: GatewayOptions | None = None, reuse_port: bool = False,
                 balancers: Mapping[str, Factory] = BALANCERS,
                 tls_listen: str | None = None) -> None:
        self.listen = listen
        #: The HTTPS listener (certificates per host from the model, chosen by SNI).
        self.tls_listen = tls_listen
        self.admin_listen = admin_listen
        self.region = region
        self.options = options or GatewayOptions()
        self.reuse_port = reuse_port
        #: Strategy name -> balancer factory (an embedding may add its own).
        self.balancers = balancers
        self.metrics = GatewayMetrics()
        #: All the proxy sees of the gateway.
        self.env = ProxyEnv(self.options, self.metrics)
        self.health = HealthChecks()
        self.certificates = Certificates(self.metrics)
        #: Problems with the certificates of the model in service (on ``/routes``).
        self.tls_errors: tuple[str, ...] = ()
        self._initial = model
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self.port = 0
        self.tls_port = 0
        self.admin_port = 0

    name = "gateway"

    @property
    def state(self) -> GatewayState:
        return self.env.state

    async def start(self, tasks: asyncio.TaskGroup | None = None) -> None:
        """Listen; returns once both listeners accept (a `flotilla.lifecycle` Component:
        ``tasks`` is accepted for the protocol; connections time themselves out)."""
        self.loop = self.env.loop = asyncio.get_running_loop()
        self._observe()
        self.update(self._initial)
        host, port = _split_hostport(self.listen)
        env = self.env
        self._server = await self.loop.create_server(
            lambda: ClientConnection(env), host, port, backlog=2048,
            reuse_port=self.reuse_port or None)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.tls_listen:
            thost, tport = _split_hostport(self.tls_listen)
            self._tls_server = await self.loop.create_server(
                lambda: ClientConnection(env, secure=True), thost, tport, backlog=2048,
                reuse_port=self.reuse_port or None,
                ssl=self.certificates.listener_context,
                ssl_handshake_timeout=self.options.header_timeout)
            self.tls_port = env.https_port = self._tls_server.sockets[0].getsockname()[1]
            log.info("gateway listening for HTTPS on %s:%d", thost, self.tls_port)
        if self.admin_listen:
            ahost, aport = _split_hostport(self.admin_listen)
            self._admin = await serve_admin(ahost, aport, self.metrics.registry, self.describe)
            self.admin_port = self._admin.sockets[0].getsockname()[1]
        log.info("gateway listening on %s:%d", host, self.port)

    def _observe(self) -> None:
        """The access log and the OTLP exporter, when configured (else nothing is
        imported or opened: `flotilla.traffic.tracing`)."""
        o = self.options
        access = AccessLog(o.access_log) if o.access_log else None
        if access is not None:
            try:
                access.open()
            except OSError as exc:
                raise FatalError(f"cannot open the access log {o.access_log}: {exc}") from None
        tracer = SpanExporter(o.otlp_endpoint) if o.otlp_endpoint else None
        self.env.observe(access, tracer)

    async def stop(self) -> None:
        await self.health.stop()
        connects = list(self.env.connects)
        for task in connects:
            task.cancel()
        await asyncio.gather(*connects, return_exceptions=True)
        for server in (self._server, self._tls_server, self._admin):
            if server is not None:
                server.close()
        for conn in list(self.env.connections):
            conn.close()
        for rt in self.state.runtimes.values():
            rt.close()
            for u in rt.upstreams:
                u.pool.close()
        if self.env.access_log is not None:
            self.env.access_log.close()
        if self.env.tracer is not None:
            self.env.tracer.close()
        self.env.observe(None, None)
        for server in (self._server, self._tls_server, self._admin):
            if server is not None:
                await server.wait_closed()

    def update(self, model: RoutingModel) -> None:
        """Swap in ``model``. Requests already running finish on the state they started
        with; upstreams (health, ejections, pooled connections) carry over by key."""
        old = self.env.state
        opts = self.options
        previous: dict[tuple[str, tuple[str, str, int]], Upstream] = {
            (bid, u.endpoint.key): u for bid, rt in old.runtimes.items() for u in rt.upstreams}
        runtimes: dict[str, BackendRuntime] = {}
        kept: set[int] = set()
        for bid, backend in model.backends.items():
            ups = []
            for ep in backend.endpoints:
                u = previous.get((bid, ep.key))
                if u is None:
                    u = Upstream(ep, Pool(opts.max_idle_per_endpoint, opts.upstream_idle_timeout,
                                          opts.max_upstream_connections,
                                          opts.max_queued_requests))
                else:
                    u.endpoint = ep  # weight/region may have changed
                    kept.add(id(u))
                u.metrics = self.metrics.endpoint_stats(backend.service, ep)
                ups.append(u)
            runtimes[bid] = BackendRuntime(backend, ups, self.region, self.metrics,
                                           balancers=self.balancers)
        for u in previous.values():
            if id(u) not in kept:
                u.retired = True
                u.pool.close()
        for rt in old.runtimes.values():
            rt.close()
        # Certificates first: a host routed by the new model has its certificate by the
        # time the new routes are in service. Problems are logged by `Certificates`.
        # Without a TLS listener nothing would use them (``redirectHTTP`` still works).
        if self.tls_listen:
            self.tls_errors = tuple(self.certificates.apply(model.certificates))
        self.env.state = GatewayState(model, runtimes)
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
                               "available": u.available, "inflight": u.inflight,
                               "connections": u.pool.opened,
                               "queued": len(u.pool.waiters)}
                              for u in rt.upstreams]}
                for bid, rt in self.state.runtimes.items()},
            "errors": [*self.state.model.errors, *self.tls_errors],
            "certificates": {h: source.secret for h, source
                             in self.state.model.certificates.items()
                             if h in self.certificates.hosts},
        }


async def run_gateway(server: str, token: str, listen: str, region: str | None, *,
                      admin_listen: str | None = None, reuse_port: bool = False,
                      tls_listen: str | None = None, ca: Path | None = None,
                      options: GatewayOptions | None = None,
                      report_name: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM or cancelled: watch the API at ``server`` and route per
    TrafficPolicy. Components: the API client, the gateway (listening), the config
    source feeding it; stopped in reverse.

    ``reuse_port`` lets several gateway processes share ``listen`` (SO_REUSEPORT, the
    kernel spreads connections): how the gateway uses more than one core. Each process
    watches the API itself and exports its own metrics (give each its own
    ``admin_listen``). ``tls_listen`` adds the HTTPS listener; the certificates come
    from the Secrets the TrafficPolicies name, followed like the policies. ``ca``
    verifies an https API (else ``$FLOTILLA_CA_FILE``). ``options``: limits and
    timeouts (`GatewayOptions`; the open-file limit is raised to fit its caps).
    ``report_name``: write this gateway's view of which clusters its health checks
    reach as GatewayReport ``flotilla-system/<report_name>`` (the token's name; the API
    refuses any other), `flotilla.traffic.reachability`; None: no report.
    """
    from flotilla.traffic.config_source import ConfigSource, http_client
    from flotilla.traffic.reachability import Reporter

    options = options or GatewayOptions()
    raise_fd_limit(options)
    gateway = Gateway(EMPTY_MODEL, listen=listen, region=region, admin_listen=admin_listen,
                      reuse_port=reuse_port, tls_listen=tls_listen, options=options)
    client = http_client(server, token, ca)
    source = ConfigSource(client, gateway.update, metrics=gateway.metrics)
    loops = [("follow", source.run)]
    if report_name:
        reporter = Reporter(client, report_name, lambda: gateway.state.runtimes.values())
        gateway.health.on_reach = reporter.notify
        loops.append(("report", reporter.run))
    await serve([Step("api client", stop=client.close), gateway,
                 Loops("config source", loops)])


def serve_forever(server: str, token: str, listen: str, region: str | None, *,
                  admin_listen: str | None = None, reuse_port: bool = False,
                  tls_listen: str | None = None,
                  options: GatewayOptions | None = None,
                  report_name: str | None = None) -> None:
    """Blocking entry point on uvloop (the hot path is measured on uvloop)."""
    import uvloop

    run_process(functools.partial(run_gateway, server, token, listen, region,
                                  admin_listen=admin_listen, reuse_port=reuse_port,
                                  tls_listen=tls_listen, options=options,
                                  report_name=report_name),
                loop_factory=uvloop.new_event_loop)
