"""Prometheus metrics of the DNS, on their own registry, and the admin HTTP listener.

An own registry (not the process-global default) so that several servers in one test
process, or the DNS embedded next to other components in `flotilla up`, never collide.
The admin listener is a few lines of asyncio rather than prometheus_client's threaded
server: it shares the DNS's event loop and stops with it, and serves only two paths.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flotilla.dns.responder import Outcome

# Sub-millisecond buckets: an authoritative answer from memory is tens of microseconds.
_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


class DnsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "flotilla_dns_queries_total",
            "DNS queries by name (as served; placeholders for unknown names), type and rcode",
            ["name", "type", "rcode"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flotilla_dns_answer_seconds",
            "Time to compute and send one answer",
            ["transport"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.model_updates = Counter(
            "flotilla_dns_model_updates_total", "Answer models swapped in", registry=self.registry
        )
        self.model_build_failures = Counter(
            "flotilla_dns_model_build_failures_total",
            "Answer models that could not be built or applied (the last good one stayed)",
            registry=self.registry,
        )
        self.model_last_build = Gauge(
            "flotilla_dns_model_last_build_timestamp_seconds",
            "When the answer model in service was built (Unix time)",
            registry=self.registry,
        )
        self.names = Gauge(
            "flotilla_dns_names", "Global names served by the current model",
            registry=self.registry,
        )
        self.tcp_connections = Gauge(
            "flotilla_dns_tcp_connections", "Open TCP connections", registry=self.registry
        )
        self.rate_limited = Counter(
            "flotilla_dns_rate_limited_total",
            "UDP answers replaced by an empty TC=1 reply by response-rate limiting",
            registry=self.registry,
        )
        self.tcp_closed = Counter(
            "flotilla_dns_tcp_closed_total",
            "TCP connections the server closed, by why (idle, evicted, lifetime, "
            "write_timeout, refused)", ["reason"], registry=self.registry,
        )
        self._counters: dict[Outcome, Any] = {}
        self._histograms: dict[str, Any] = {}

    def model_built(self, at: float) -> None:
        self.model_last_build.set(at)

    def model_build_failed(self) -> None:
        self.model_build_failures.inc()

    def observe(self, outcome: Outcome, seconds: float, transport: str) -> None:
        # ``labels()`` hashes and locks on every call; the children are cached here, which
        # on the fast path is a good share of a query's cost. Bounded like the names.
        counter = self._counters.get(outcome)
        if counter is None:
            counter = self._counters[outcome] = self.queries.labels(
                outcome.name, outcome.qtype, outcome.rcode)
        counter.inc()
        histogram = self._histograms.get(transport)
        if histogram is None:
            histogram = self._histograms[transport] = self.latency.labels(transport)
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve_admin(metrics: DnsMetrics, host: str, port: int) -> asyncio.Server:
    """Serve ``GET /metrics`` and ``GET /healthz`` over HTTP/1.0-style one-shot requests."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].split(b"?", 1)[0] if len(parts) >= 2 else b""
            if parts[:1] != [b"GET"]:
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
            elif path == b"/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
