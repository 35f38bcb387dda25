"""`ProxyEnv`: what a client connection may use of the gateway, and nothing more - the
current routing state, the metrics, the limits and timeouts, the event loop (the clock
of every timeout) and where to register itself.

A small object instead of the gateway itself, so the proxy depends on what it reads and
not on the process around it (listeners, config source, health-check tasks), and a test
or an embedding can run connections without a `Gateway`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import EMPTY_MODEL, RoutingModel
from flotilla.traffic.tracing import AccessLog, SpanExporter


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
    # --- abuse limits (defaults safe for a public listener; docs/components/traffic.md) ---
    #: Open client connections in all; past it a new one gets a 503 and is closed.
    max_connections: int = 10000
    #: Open client connections per client address (a NAT may hide many users behind
    #: one address, hence not lower); past it a new one gets a 503 and is closed.
    max_connections_per_client: int = 256
    #: Seconds a write to the client may stay blocked (the client stopped reading):
    #: then the client connection is cut and the upstream connection serving it closed.
    write_timeout: float = 30.0
    #: Bytes a second a client that is behind must take on average over
    #: ``min_send_rate_window`` seconds spent behind, or be cut (0: no minimum).
    min_send_rate: float = 1024.0
    min_send_rate_window: float = 30.0
    #: Seconds a response that has started may go without a byte from the upstream.
    stream_idle_timeout: float = 60.0
    #: Upstream connections per endpoint (idle and busy, connects under way included).
    max_upstream_connections: int = 1024
    #: Requests waiting for a connection to an endpoint at its cap; past it: 503.
    max_queued_requests: int = 1024
    #: Seconds a request may wait in that queue before it is answered 503.
    queue_timeout: float = 10.0
    #: Client addresses or CIDRs whose X-Forwarded-For is extended (other proxies in
    #: front of the gateway); from anyone else it is replaced by the peer address.
    trusted_proxies: tuple[str, ...] = ()
    #: One JSON line per request to this file, or ``-`` for stdout; None: no access log.
    access_log: str | None = None
    #: Export a span per request over OTLP/HTTP to this URL; None: no spans.
    otlp_endpoint: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_head", "max_connections", "max_connections_per_client",
                     "max_upstream_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queued_requests < 0 or self.replay_limit < 0 or self.min_send_rate < 0:
            raise ValueError("max_queued_requests, replay_limit and min_send_rate must be "
                             ">= 0")
        for name in ("header_timeout", "idle_timeout", "upstream_idle_timeout",
                     "write_timeout", "stream_idle_timeout", "queue_timeout",
                     "min_send_rate_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        trusted_networks(self.trusted_proxies)  # names a bad entry


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """``entries`` (addresses or CIDRs) as networks; ValueError naming a bad one."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {entry!r} is not an IP address or CIDR "
                             f"(e.g. 10.0.0.0/8)") from None
    return tuple(out)


def is_trusted(peer: bytes, networks: tuple[Network, ...]) -> bool:
    """Whether the client address ``peer`` is inside one of ``networks`` (an IPv4
    address mapped into IPv6 counts as the IPv4 one)."""
    try:
        ip = ipaddress.ip_address(peer.decode())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks)


@dataclass(slots=True)
class GatewayState:
    """What a request reads at its start; swapped as a whole by `Gateway.update`."""

    model: RoutingModel
    runtimes: dict[str, BackendRuntime] = field(default_factory=dict)

    def route(self, host: str, path: str) -> BackendRuntime | None:
        backend = self.model.match(host, path)
        return None if backend is None else self.runtimes[backend.id]


class Closable(Protocol):
    def close(self) -> None: ...


class ProxyEnv:
    __slots__ = ("access_log", "connections", "connects", "https_port", "loop", "metrics",
                 "observed", "options", "per_client", "state", "tracer", "trusted")

    def __init__(self, options: GatewayOptions, metrics: GatewayMetrics) -> None:
        self.options = options
        self.metrics = metrics
        #: Swapped whole on every model change; a request keeps the one it started with.
        self.state = GatewayState(EMPTY_MODEL)
        #: Open client connections (closed on stop).
        self.connections: set[Closable] = set()
        #: Open client connections per client address (for ``max_connections_per_client``).
        self.per_client: dict[bytes, int] = {}
        #: ``options.trusted_proxies``, parsed once.
        self.trusted = trusted_networks(options.trusted_proxies)
        #: Upstream connects in progress (tasks must be referenced until done).
        self.connects: set[asyncio.Task[None]] = set()
        #: Set when the gateway starts; its ``time()`` and ``call_at`` time every timeout.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Where plain-HTTP requests of a ``redirectHTTP`` policy are sent (the TLS
        #: listener's port; 443 is left out of the URL).
        self.https_port = 443
        #: Where each request is written once done, and who makes spans of them (both
        #: None unless configured, `flotilla.traffic.tracing`); ``observed``: either is.
        self.access_log: AccessLog | None = None
        self.tracer: SpanExporter | None = None
        self.observed = False

    def observe(self, access_log: AccessLog | None, tracer: SpanExporter | None) -> None:
        self.access_log, self.tracer = access_log, tracer
        self.observed = access_log is not None or tracer is not None
