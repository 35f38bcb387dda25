"""Random, truncated and mangled packets: the server never stops answering valid queries.

Bounded in count and time, loopback only, and seeded so a failure replays exactly.
"""

from __future__ import annotations

import asyncio
import random
import time

import dns.asyncquery
import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.dns.limits import DnsLimits
from flotilla.dns.responder import Responder
from flotilla.dns.select import Selector
from flotilla.dns.server import DnsServer
from flotilla.dns.zone import compile_zones
from tests.dns.conftest import Serve, model_of
from tests.dns.objects import three_regions, traffic_policy

PACKETS = 4000
BATCH = 50
TIME_BUDGET = 15.0


def _objects() -> dict[str, list[dict[str, object]]]:
    objects: dict[str, list[dict[str, object]]] = dict(three_regions())
    objects["traffic_policies"] = [traffic_policy("shop", ["shop.global.test"])]
    return objects


def _seeds() -> list[bytes]:
    """Valid queries of several shapes to mutate: EDNS, ECS, SRV, TCP-sized names."""
    out = []
    for name, rdtype, kw in [
        ("shop.global.test", "A", {}),
        ("shop.global.test", "AAAA", {"use_edns": 0}),
        ("_http._tcp.shop.default.svc.clusterset.local", "SRV", {"use_edns": 0}),
        ("global.test", "SOA", {}),
        ("example.com", "ANY", {}),
    ]:
        out.append(dns.message.make_query(name, rdtype, **kw).to_wire())  # type: ignore[arg-type]
    return out


def _mangle(rng: random.Random, seeds: list[bytes]) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    seed = rng.choice(seeds)
    if kind == 1:
        return seed[: rng.randrange(0, len(seed))]
    data = bytearray(seed)
    if kind == 2:
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:  # lie in the header counts, or append junk
        data[4:12] = rng.randbytes(8)
        data += rng.randbytes(rng.randrange(0, 40))
    return bytes(data)


class _Sink(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: object) -> None:
        pass


async def test_udp_fuzz_never_stops_valid_answers(serve: Serve) -> None:
    # Rate limiting off: the fuzz comes from one address faster than the default rate,
    # and this test is about junk never hurting answers (tests/dns/test_abuse.py covers
    # the limiter).
    server = await serve(model_of(_objects()), limits=DnsLimits(rrl_rate=0))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        _Sink, remote_addr=("127.0.0.1", server.port)
    )
    rng = random.Random(20261122)
    seeds = _seeds()
    deadline = time.monotonic() + TIME_BUDGET
    sent = checked = 0
    try:
        while sent < PACKETS and time.monotonic() < deadline:
            for _ in range(BATCH):
                transport.sendto(_mangle(rng, seeds))
                sent += 1
            # In-order processing on one socket: once this is answered, the batch was read.
            q = dns.message.make_query("shop.global.test", "A")
            answer = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
            assert answer.rcode() == dns.rcode.NOERROR
            assert len(answer.answer[0]) == 3
            checked += 1
    finally:
        transport.close()
    assert sent >= 1000, f"only {sent} packets in {TIME_BUDGET}s"
    assert checked == sent // BATCH
    _assert_no_internal_errors(server)


async def test_tcp_fuzz_bad_frames_do_not_hurt_other_connections(serve: Serve) -> None:
    server = await serve(model_of(_objects()), limits=DnsLimits(tcp_idle_timeout=2.0))
    rng = random.Random(7)
    seeds = _seeds()
    for _ in range(40):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            payload = _mangle(rng, seeds)
            declared = rng.choice([len(payload), len(payload) + 5, 0, 65535])
            writer.write(declared.to_bytes(2, "big") + payload)
            await writer.drain()
        finally:
            writer.close()  # mid-frame disconnects included
        q = dns.message.make_query("global.test", "SOA")
        answer = await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2)
        assert answer.rcode() == dns.rcode.NOERROR
    _assert_no_internal_errors(server)


def _assert_no_internal_errors(server: DnsServer) -> None:
    """The listener turns a responder exception into SERVFAIL; a fuzz run must have none."""
    errors = server.metrics.registry.get_sample_value(
        "flotilla_dns_queries_total", {"name": "<error>", "type": "-", "rcode": "SERVFAIL"})
    assert not errors
    formerr = server.metrics.registry.get_sample_value(
        "flotilla_dns_queries_total", {"name": "<malformed>", "type": "-", "rcode": "FORMERR"})
    assert formerr


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=700))
def test_responder_never_raises_on_any_bytes(wire: bytes) -> None:
    responder = _RESPONDER
    for tcp in (False, True):
        out, outcome = responder.respond(wire, "127.0.0.1", tcp=tcp)
        assert out is None or len(out) >= 12
        assert outcome.rcode


_RESPONDER = Responder(compile_zones(model_of(_objects())), Selector())
