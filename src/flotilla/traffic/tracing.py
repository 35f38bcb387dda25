"""Tracing through the gateway: W3C ``traceparent`` on every request, a structured access
log line per request, and optional OTLP spans.

Every request leaves the gateway with a ``traceparent``: the client's when it sent a
valid one (forwarded as received, so a request already traced keeps its trace), else a
new one the gateway starts. A malformed one is replaced, never passed on. That costs a
request 24 random bytes and one concatenation (`new_traceparent`), measured in
docs/benchmarks.md; the header is added when the head is written upstream, not kept in
the proxy's memo of a repeated head, so two requests never share a trace id.

The access log (`AccessLog`) and the span exporter (`SpanExporter`) are off unless
configured; off, the proxy tests one attribute per request. The access log buffers lines
and writes them at most every `FLUSH_INTERVAL` seconds (or every `FLUSH_LINES`), so a
request never waits on a write. The OpenTelemetry SDK is imported only when an OTLP
endpoint is given; spans are sent by its batch processor's thread.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

_VALID = re.compile(rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
FLUSH_INTERVAL = 0.5
FLUSH_LINES = 256


def new_traceparent() -> bytes:
    """``00-<trace id>-<parent id>-01``: a new trace, sampled (random ids are all-zero
    with probability 2^-128, which the format forbids; not worth a test per request)."""
    h = binascii.hexlify(os.urandom(24))
    return b"00-" + h[:32] + b"-" + h[32:] + b"-01"


def valid_traceparent(value: bytes) -> bool:
    """Version, trace id, parent id, flags: lower-case hex of the right lengths, the
    version not ``ff`` and neither id all zeros (W3C Trace Context, traceparent)."""
    if len(value) == 55:
        return _VALID.fullmatch(value) is not None
    # a later version may append fields after a dash; version 00 may not
    return len(value) > 55 and value[55:56] == b"-" and value[:2] != b"00" and \
        _VALID.fullmatch(value[:55]) is not None


def client_traceparent(head: bytes, low: bytes) -> tuple[bytes | None, bool]:
    """The request's traceparent as sent, and whether the head carries one at all (a
    malformed one must then be cut out before the head goes upstream)."""
    i = low.find(b"\ntraceparent:")
    if i < 0:
        return None, False
    start = i + 13
    value = head[start:low.find(b"\r\n", start)].strip(b" \t")
    if low.find(b"\ntraceparent:", start) >= 0:
        return None, True  # two of them: neither is trusted
    return (value if valid_traceparent(value) else None), True


def drop_traceparent(head: bytes) -> bytes:
    """``head`` without its traceparent line(s)."""
    lines = head[:-4].split(b"\r\n")
    kept = [ln for ln in lines if not ln.lower().startswith(b"traceparent:")]
    return b"\r\n".join(kept) + b"\r\n\r\n"


def trace_id(traceparent: bytes) -> str:
    return traceparent[3:35].decode("ascii", "replace")


@dataclass(slots=True)
class Record:
    """One request, as the access log writes it."""

    started: float  # Unix time
    host: str
    method: str
    path: str
    status: int
    cluster: str
    endpoint: str
    tries: int
    upstream_seconds: float
    total_seconds: float
    traceparent: bytes

    def line(self) -> str:
        """The JSON line, built by hand: ``json.dumps`` of a dict cost 7 us a request
        (measured), this about 2; strings are escaped only when they need it."""
        second = int(self.started)
        stamp = _STAMP
        if stamp[0] != second:
            stamp = _STAMP[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.gmtime(second))]
        return (f'{{"time":"{stamp[1]}.{int((self.started - second) * 1000):03d}Z",'
                f'"host":"{_text(self.host)}","method":"{_text(self.method)}",'
                f'"path":"{_text(self.path)}","status":{self.status},'
                f'"cluster":"{_text(self.cluster)}","endpoint":"{_text(self.endpoint)}",'
                f'"tries":{self.tries},"upstream_ms":{self.upstream_seconds * 1000:.3f},'
                f'"total_ms":{self.total_seconds * 1000:.3f},'
                f'"trace_id":"{self.traceparent[3:35].decode("ascii", "replace")}"}}')


#: The last second formatted (a request per second or more shares it).
_STAMP: list[Any] = [-1, ""]
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def _text(value: str) -> str:
    """``value`` as the inside of a JSON string."""
    return value if _PLAIN.fullmatch(value) else json.dumps(value)[1:-1]


class AccessLog:
    """JSON lines to a file (appended, mode 0600: hosts and paths may be private) or to
    stdout (``-``), written in batches from the event loop."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self._out: IO[str] | None = None
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def open(self) -> None:
        if self.destination == "-":
            self._out = sys.stdout
        else:
            fd = os.open(self.destination, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._out = os.fdopen(fd, "a", buffering=1 << 16)

    def write(self, record: Record) -> None:
        self._lines.append(record.line())
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines and self._out is not None:
            self._out.write("\n".join(self._lines) + "\n")
            self._out.flush()
        self._lines.clear()

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None


class SpanExporter:
    """One SERVER span per request, exported over OTLP/HTTP to ``endpoint``
    (``http://collector:4318/v1/traces``) by the SDK's batch processor."""

    def __init__(self, endpoint: str, service_name: str = "flotilla-gateway") -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create(
            {"service.name": service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint)))
        self.tracer = self.provider.get_tracer("flotilla.traffic")

    def start(self, parent: bytes | None, name: str) -> tuple[Any, bytes]:
        """A span for one request (child of the client's ``parent`` traceparent, if
        any) and the traceparent to send upstream: this span as the parent."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        context = None
        if parent is not None:
            ctx = SpanContext(int(parent[3:35], 16), int(parent[36:52], 16), is_remote=True,
                              trace_flags=TraceFlags(int(parent[53:55], 16)))
            context = trace.set_span_in_context(NonRecordingSpan(ctx))
        span = self.tracer.start_span(name, context=context, kind=SpanKind.SERVER)
        sc = span.get_span_context()
        return span, b"00-%032x-%016x-%02x" % (sc.trace_id, sc.span_id, int(sc.trace_flags))

    @staticmethod
    def end(span: Any, record: Record) -> None:
        span.set_attribute("http.request.method", record.method)
        span.set_attribute("server.address", record.host)
        span.set_attribute("url.path", record.path)
        span.set_attribute("http.response.status_code", record.status)
        span.set_attribute("flotilla.cluster", record.cluster)
        span.set_attribute("flotilla.endpoint", record.endpoint)
        span.set_attribute("flotilla.tries", record.tries)
        if record.status >= 500:
            from opentelemetry.trace import Status, StatusCode
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def close(self) -> None:
        self.provider.shutdown()
