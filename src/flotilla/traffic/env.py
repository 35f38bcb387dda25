"""`ProxyEnv`: what a client connection may use of the gateway, and nothing more - the
current routing state, the metrics, the limits and timeouts, the event loop (the clock
of every timeout) and where to register itself.

A small object instead of the gateway itself, so the proxy depends on what it reads and
not on the process around it (listeners, config source, health-check tasks), and a test
or an embedding can run connections without a `Gateway`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from flotilla.traffic.backend import BackendRuntime
from flotilla.traffic.metrics import GatewayMetrics
from flotilla.traffic.model import EMPTY_MODEL, RoutingModel


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
    __slots__ = ("connections", "connects", "https_port", "loop", "metrics", "options",
                 "state")

    def __init__(self, options: GatewayOptions, metrics: GatewayMetrics) -> None:
        self.options = options
        self.metrics = metrics
        #: Swapped whole on every model change; a request keeps the one it started with.
        self.state = GatewayState(EMPTY_MODEL)
        #: Open client connections (closed on stop).
        self.connections: set[Closable] = set()
        #: Upstream connects in progress (tasks must be referenced until done).
        self.connects: set[asyncio.Task[None]] = set()
        #: Set when the gateway starts; its ``time()`` and ``call_at`` time every timeout.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Where plain-HTTP requests of a ``redirectHTTP`` policy are sent (the TLS
        #: listener's port; 443 is left out of the URL).
        self.https_port = 443
