"""Tracing through the gateway, with real backend processes that echo the headers they
got: a W3C traceparent on every request upstream (the client's kept, a bad one
replaced, a new one per request otherwise), the access log line of each request, and
spans sent over OTLP/HTTP to a real receiver (a local HTTP server decoding the
protobuf the SDK's exporter posts)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.traffic.gateway import Gateway, GatewayOptions
from flotilla.traffic.tracing import new_traceparent, valid_traceparent
from tests.helpers import wait_for
from tests.traffic.conftest import HOST, StartBackend, model_for, url

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
CLIENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_format() -> None:
    tp = new_traceparent()
    assert TRACEPARENT.match(tp.decode())
    assert valid_traceparent(tp)
    assert valid_traceparent(CLIENT.encode())
    for bad in (b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01",  # all-zero trace id
                b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                CLIENT.encode() + b"-extra", b"garbage"):
        assert not valid_traceparent(bad), bad


async def test_every_request_gets_a_traceparent_upstream(
        start_backend: StartBackend, gateway: Callable[..., Any]) -> None:
    b = await start_backend("a")
    gw: Gateway = await gateway(model_for([b]))
    async with httpx.AsyncClient(headers={"Host": HOST}) as c:
        # the same head twice on one keep-alive connection: the proxy's memo path
        first = (await c.get(url(gw))).headers
        second = (await c.get(url(gw))).headers
        kept = (await c.get(url(gw), headers={"traceparent": CLIENT})).headers
        bad = (await c.get(url(gw), headers={"traceparent": "00-nonsense-01"})).headers
        two = (await c.get(url(gw), headers=[("traceparent", CLIENT),
                                             ("traceparent", CLIENT)])).headers
    for seen in (first, second, bad, two):
        assert TRACEPARENT.match(seen["x-seen-traceparent"]), seen
        assert seen["x-seen-traceparent-count"] == "1"
    assert first["x-seen-traceparent"][3:35] != second["x-seen-traceparent"][3:35]
    assert kept["x-seen-traceparent"] == CLIENT  # an incoming trace goes on unchanged
    assert kept["x-seen-traceparent-count"] == "1"
    assert two["x-seen-traceparent"] != CLIENT  # two headers: neither is trusted


async def test_access_log_line_per_request(start_backend: StartBackend,
                                           gateway: Callable[..., Any],
                                           tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    b = await start_backend("a", cluster="east-1")
    gw: Gateway = await gateway(model_for([b]), options=GatewayOptions(access_log=str(log)))
    async with httpx.AsyncClient() as c:
        ok = await c.get(url(gw, "/cart?x=1"), headers={"Host": HOST, "traceparent": CLIENT})
        fresh = await c.get(url(gw, "/fail?status=503"), headers={"Host": HOST})
        missing = await c.get(url(gw, "/"), headers={"Host": "nobody.test"})
    assert (ok.status_code, fresh.status_code, missing.status_code) == (200, 503, 404)

    async def lines() -> list[dict[str, Any]] | None:
        text = log.read_text() if log.exists() else ""
        got = [json.loads(line) for line in text.splitlines()]
        return got if len(got) >= 3 else None

    first, second, third = (await wait_for(lines, 5, 0.05, what="3 access log lines"))[:3]
    assert first["host"] == HOST
    assert first["path"] == "/cart?x=1"
    assert first["method"] == "GET"
    assert first["status"] == 200
    assert first["cluster"] == "east-1"
    assert first["endpoint"] == b.endpoint.name
    assert first["tries"] == 1
    assert first["trace_id"] == CLIENT[3:35]
    assert 0 < first["upstream_ms"] <= first["total_ms"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first["time"])
    assert second["status"] == 503
    assert second["trace_id"] == fresh.headers["x-seen-traceparent"][3:35]
    assert third["status"] == 404
    assert third["cluster"] == ""
    assert third["tries"] == 0
    assert oct(log.stat().st_mode & 0o777) == "0o600"


class _Receiver(BaseHTTPRequestHandler):
    spans: list[Any] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                _Receiver.spans.extend(ss.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def otlp_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.spans = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


async def test_spans_go_to_an_otlp_endpoint(start_backend: StartBackend,
                                            gateway: Callable[..., Any],
                                            otlp_receiver: str) -> None:
    b = await start_backend("a", cluster="east-1")
    gw: Gateway = await gateway(model_for([b]),
                                options=GatewayOptions(otlp_endpoint=otlp_receiver))
    async with httpx.AsyncClient(headers={"Host": HOST}) as c:
        r = await c.get(url(gw, "/traced"), headers={"traceparent": CLIENT})
    upstream = r.headers["x-seen-traceparent"]
    assert upstream[3:35] == CLIENT[3:35]  # the same trace
    assert upstream[36:52] != CLIENT[36:52]  # the gateway's span is the parent now
    gw.env.tracer.provider.force_flush()  # type: ignore[union-attr]

    async def spans() -> list[Any] | None:
        await asyncio.sleep(0)
        return list(_Receiver.spans) or None

    (span,) = await wait_for(spans, 10, 0.05, what="the span at the receiver")
    assert span.trace_id.hex() == CLIENT[3:35]
    assert span.parent_span_id.hex() == CLIENT[36:52]
    assert span.span_id.hex() == upstream[36:52]
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["flotilla.cluster"].string_value == "east-1"
    assert attrs["http.response.status_code"].int_value == 200
